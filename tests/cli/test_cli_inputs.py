"""The command line against hostile input: it never destroys the user's files
(outputs over inputs, failed writes) and refuses bad options and files with
one error line, before any training."""
import errno
import os
import sys
import warnings

import numpy as np
import pytest

from crnn import RNNLanguageModel
from crnn.__main__ import main

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 20


@pytest.fixture
def pd():
    return pytest.importorskip("pandas")


@pytest.fixture
def no_training(monkeypatch):
    """Training, or generating, would fail the test: refusals come first."""
    from crnn._forecasting.forecaster import RNNForecaster

    def refuse(self, *args, **kwargs):
        raise AssertionError("the command started working before refusing")

    monkeypatch.setattr(RNNForecaster, "fit", refuse)
    monkeypatch.setattr(RNNLanguageModel, "fit", refuse)
    monkeypatch.setattr(RNNLanguageModel, "generate", refuse)


def _csv(pd, path, n=40, years=False):
    t = np.arange(n)
    df = pd.DataFrame({"sales": 50 + 5 * np.sin(2 * np.pi * t / 12) + 0.2 * t,
                       "promo": (t % 4 == 0).astype(float)})
    if years:
        df.insert(0, "year", 1971 + t)
    df.to_csv(path, index=False)
    return path


def _run(args, capsys):
    """main(args) -> (rc, stdout, stderr lines), warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err.strip().splitlines()


def _refused(args, capsys, message):
    rc, _, err = _run(args, capsys)
    prog = " ".join(args[:2]) if args[0] == "text" else args[0]
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith(f"crnn {prog}: error: ") and message in err[0], err
    return err[0]


FAST = ["--max-iter", "2", "--window-length", "4", "--hidden-size", "4"]


# ---------------------------------------------------------------------------
# 1. outputs never replace inputs

@pytest.mark.parametrize("how", ["same", "relative", "symlink", "hardlink"])
@pytest.mark.parametrize("option", ["--out", "--plot"])
def test_forecast_never_writes_over_its_input(tmp_path, capsys, monkeypatch, no_training,
                                              pd, how, option):
    src = _csv(pd, tmp_path / "d.csv")
    before = src.read_bytes()
    out = str(src)
    if how == "relative":
        monkeypatch.chdir(tmp_path)
        out = os.path.join(".", "sub", "..", "d.csv")
        (tmp_path / "sub").mkdir()
    elif how == "symlink":
        os.symlink(src, tmp_path / "link.csv")
        out = str(tmp_path / "link.csv")
    elif how == "hardlink":
        os.link(src, tmp_path / "hard.csv")
        out = str(tmp_path / "hard.csv")
    _refused(["forecast", str(src), "--column", "sales", option, out], capsys,
             "is the input file")
    assert src.read_bytes() == before


def test_forecast_input_through_a_link_and_out_equal_to_plot(tmp_path, capsys, no_training, pd):
    src = _csv(pd, tmp_path / "d.csv")
    os.symlink(src, tmp_path / "link.csv")
    before = src.read_bytes()
    # the input named through a symbolic link, the output by its real name
    _refused(["forecast", str(tmp_path / "link.csv"), "--column", "sales", "--out", str(src)],
             capsys, "is the input file")
    assert src.read_bytes() == before
    _refused(["forecast", str(src), "--column", "sales", "--out", str(tmp_path / "f.png"),
              "--plot", str(tmp_path / "." / "f.png")], capsys, "are the same file")
    assert not (tmp_path / "f.png").exists()


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "input-link"])
def test_text_train_never_writes_over_its_input(tmp_path, capsys, no_training, how):
    src = tmp_path / "in.txt"
    src.write_text(TEXT)
    inp, out = src, src
    if how == "symlink":
        out = tmp_path / "link.txt"
        os.symlink(src, out)
    elif how == "hardlink":
        out = tmp_path / "hard.txt"
        os.link(src, out)
    elif how == "input-link":
        inp = tmp_path / "link.txt"
        os.symlink(src, inp)
    _refused(["text", "train", str(inp), "--out", str(out)], capsys, "is the input file")
    assert src.read_text() == TEXT


# ---------------------------------------------------------------------------
# 2. a time column of integers (years)

def test_integer_years_continue_as_years(tmp_path, capsys, pd):
    src = _csv(pd, tmp_path / "d.csv", years=True)           # 1971 ... 2010
    rc, out, err = _run(["forecast", str(src), "--column", "sales", "--time-column", "year",
                         "--steps", "3", "--out", str(tmp_path / "f.csv")] + FAST, capsys)
    assert rc == 0, err
    f = pd.read_csv(tmp_path / "f.csv")
    assert list(f.columns) == ["year", "forecast", "lower", "upper"]
    assert list(f["year"]) == [2011, 2012, 2013]


def test_integer_years_with_covariates_for_the_future_rows(tmp_path, capsys, pd):
    src = _csv(pd, tmp_path / "d.csv", n=44, years=True)      # 1971 ... 2014
    df = pd.read_csv(src)
    df.loc[40:, "sales"] = np.nan                             # 2011 ... 2014 to forecast
    df.to_csv(src, index=False)
    rc, out, err = _run(["forecast", str(src), "--column", "sales", "--time-column", "year",
                         "--covariates", "promo"] + FAST, capsys)
    assert rc == 0, err
    rows = out.strip().splitlines()[2:]
    assert [int(r.split()[0]) for r in rows] == [2011, 2012, 2013, 2014]


@pytest.mark.parametrize("years,message", [
    ([2001, 2002, 2004, 2005], "not evenly spaced and increasing (2002 then 2004 at row 4)"),
    ([2004, 2003, 2002, 2001], "not evenly spaced and increasing (2004 then 2003 at row 3)"),
    ([2001, 2001, 2002, 2003], "not evenly spaced"),
    ([2001.5, 2002.5, 2003.5, 2004.5], "numbers that are not whole"),
    ([2001, None, 2003, 2004], "missing time at row 3"),
    (["2001-04-01", "2001-03-01", "2001-02-01", "2001-01-01"],
     "the dates in 'year' are not in increasing order"),
])
def test_time_columns_that_are_not_times(tmp_path, capsys, no_training, pd, years, message):
    n = len(years)
    pd.DataFrame({"year": years, "sales": np.arange(n, dtype=float)}).to_csv(
        tmp_path / "d.csv", index=False)
    _refused(["forecast", str(tmp_path / "d.csv"), "--column", "sales", "--time-column",
              "year"], capsys, message)


# ---------------------------------------------------------------------------
# 3. options and files refused before any work

@pytest.mark.parametrize("args,message", [
    (["--steps", str(10**10)], "--steps must be at most 10000"),
    (["--steps", "-3"], "--steps must be positive"),
    (["--coverage", "1.5"], "--coverage must be between 0 and 1"),
    (["--coverage", "0"], "--coverage must be between 0 and 1"),
    (["--coverage", "nan"], "--coverage must be between 0 and 1 (e.g. 0.9); got nan"),
    (["--learning-rate-init", "nan"], "--learning-rate-init must be a positive number"),
    (["--learning-rate-init", "1e400"], "--learning-rate-init must be a positive number; "
                                        "got inf"),
    (["--learning-rate-init", "0"], "--learning-rate-init must be a positive number"),
    (["--hidden-size", "0"], "--hidden-size must be positive"),
    (["--max-iter", "-1"], "--max-iter must be positive"),
    (["--window-length", "0"], "--window-length must be positive"),
    (["--difference", "-1"], "--difference must be at least 0"),
    (["--seasonal-period", "0"], "--seasonal-period must be positive"),
    (["--random-state", "-1"], "--random-state must be between 0 and 2**32 - 1"),
    (["--n-jobs", "0"], "--n-jobs must be a number of threads"),
    (["--out", "{tmp}/no/such/dir/f.csv"], "no such directory"),
    (["--out", "{tmp}"], "is a directory"),
    (["--plot", "{tmp}/no/such/dir/f.png"], "no such directory"),
    (["--plot", "{tmp}"], "is a directory"),
])
def test_forecast_options_are_refused_before_training(tmp_path, capsys, no_training, pd,
                                                      args, message):
    src = _csv(pd, tmp_path / "d.csv")
    args = [a.format(tmp=tmp_path) for a in args]
    _refused(["forecast", str(src), "--column", "sales"] + args, capsys, message)


def test_a_plot_format_matplotlib_cannot_write_is_refused_first(tmp_path, capsys, no_training,
                                                                pd):
    pytest.importorskip("matplotlib")
    src = _csv(pd, tmp_path / "d.csv")
    _refused(["forecast", str(src), "--column", "sales", "--plot", str(tmp_path / "f.xyz")],
             capsys, "matplotlib cannot write .xyz images")


def test_plot_without_matplotlib_is_refused_before_training_and_writing(
        tmp_path, capsys, monkeypatch, no_training, pd):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib fails
    src = _csv(pd, tmp_path / "d.csv")
    _refused(["forecast", str(src), "--column", "sales", "--out", str(tmp_path / "f.csv"),
              "--plot", str(tmp_path / "f.png")], capsys, "--plot needs matplotlib")
    assert not (tmp_path / "f.csv").exists()


@pytest.mark.parametrize("column,value", [("sales", "1e400"), ("sales", "-inf"),
                                          ("promo", "1e999")])
def test_an_overflowing_number_is_named_as_such(tmp_path, capsys, no_training, pd, column,
                                                value):
    src = _csv(pd, tmp_path / "d.csv")
    df = pd.read_csv(src, dtype=str)
    df.loc[len(df)] = ["", "1.0"]                             # a forecast-period row
    df.loc[6, column] = value                                 # row 8 of the file
    df.to_csv(src, index=False)
    msg = _refused(["forecast", str(src), "--column", "sales", "--covariates", "promo"],
                   capsys, f"column {column!r} holds a non-finite value at row 8")
    assert "missing" not in msg


def test_forecast_input_files_that_are_not_csv(tmp_path, capsys, no_training, pd):
    (tmp_path / "latin1.csv").write_bytes("caf\xe9,sales\n1,2\n".encode("latin-1"))
    _refused(["forecast", str(tmp_path / "latin1.csv"), "--column", "sales"], capsys,
             "not UTF-8 text")
    _refused(["forecast", str(tmp_path), "--column", "sales"], capsys, "is a directory")


@pytest.mark.parametrize("args,message", [
    (["--validation-fraction", "nan"], "--validation-fraction must be in [0, 1)"),
    (["--validation-fraction", "1"], "--validation-fraction must be in [0, 1)"),
    (["--validation-fraction", "-0.1"], "--validation-fraction must be in [0, 1)"),
    (["--dropout", "nan"], "--dropout must be in [0, 1)"),
    (["--dropout", "inf"], "--dropout must be in [0, 1)"),
    (["--learning-rate-init", "inf"], "--learning-rate-init must be a positive number"),
    (["--learning-rate-init", "-1"], "--learning-rate-init must be a positive number"),
    (["--epochs", "0"], "--epochs must be positive"),
    (["--hidden-size", "-5"], "--hidden-size must be positive"),
    (["--num-layers", "0"], "--num-layers must be positive"),
    (["--seq-length", "0"], "--seq-length must be positive"),
    (["--batch-size", "0"], "--batch-size must be positive"),
    (["--embedding-dim", "0"], "--embedding-dim must be positive"),
    (["--max-vocab", "2"], "--max-vocab must be at least 3"),
    (["--random-state", str(2**32)], "--random-state must be between 0 and 2**32 - 1"),
    (["--n-jobs", "0"], "--n-jobs must be"),
    (["--out", "{tmp}"], "is a directory"),
    (["--out", "{tmp}/no/such/dir/m.crnnlm"], "no such directory"),
])
def test_text_train_options_are_refused_before_training(tmp_path, capsys, no_training,
                                                        args, message):
    src = tmp_path / "in.txt"
    src.write_text(TEXT)
    args = [a.format(tmp=tmp_path) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "m.crnnlm")]
    _refused(["text", "train", str(src)] + args, capsys, message)
    assert not (tmp_path / "m.crnnlm").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_text_train_does_not_rename_a_model_over_a_pipe_or_device(tmp_path, capsys,
                                                                  no_training):
    (tmp_path / "in.txt").write_text(TEXT)
    os.mkfifo(tmp_path / "fifo")
    _refused(["text", "train", str(tmp_path / "in.txt"), "--out", str(tmp_path / "fifo")],
             capsys, "is not a regular file")


@pytest.mark.parametrize("content,message", [
    (b"", "the file is empty"),
    (b"\xff\xfe\x00a\x00b", "cannot be read as UTF-8 text"),
    (b"a", "too few to hold out --validation-fraction=0.1"),
    (None, "is a directory"),
])
def test_text_train_input_files_that_are_not_text(tmp_path, capsys, no_training, content,
                                                  message):
    src = tmp_path / "in.txt"
    if content is None:
        src.mkdir()
    else:
        src.write_bytes(content)
    _refused(["text", "train", str(src), "--out", str(tmp_path / "m.crnnlm")], capsys,
             message)


def test_text_train_drops_a_byte_order_mark(tmp_path, capsys):
    (tmp_path / "in.txt").write_bytes(("\ufeff" + TEXT).encode("utf-8"))
    rc, out, err = _run(["text", "train", str(tmp_path / "in.txt"), "--out",
                         str(tmp_path / "m.crnnlm"), "--epochs", "1", "--hidden-size", "4",
                         "--num-layers", "1", "--seq-length", "8",
                         "--validation-fraction", "0"], capsys)
    assert rc == 0, err
    vocab = RNNLanguageModel.load(tmp_path / "m.crnnlm").vocab_
    assert "\ufeff" not in vocab and "q" in vocab


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "m.crnnlm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        RNNLanguageModel(hidden_size=4, num_layers=1, seq_length=8, max_iter=1,
                         random_state=0).fit(TEXT).save(path)
    return path


@pytest.mark.parametrize("args,message", [
    (["-n", str(10**12)], "-n/--n-tokens must be between 0 and 1,000,000"),
    (["-n", "-1"], "-n/--n-tokens must be between 0 and 1,000,000"),
    (["--temperature", "nan"], "--temperature must be a number >= 0"),
    (["--temperature", "inf"], "--temperature must be a number >= 0"),
    (["--temperature", "-1"], "--temperature must be a number >= 0"),
    (["--top-p", "nan"], "--top-p must be in (0, 1]"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--top-p", "1.5"], "--top-p must be in (0, 1]"),
    (["--top-k", "0"], "--top-k must be positive"),
    (["--random-state", "-1"], "--random-state must be between 0 and 2**32 - 1"),
])
def test_text_generate_options_are_refused_before_generating(capsys, no_training, model_file,
                                                             args, message):
    _refused(["text", "generate", str(model_file)] + args, capsys, message)


def test_text_generate_from_a_directory_or_a_text_file(tmp_path, capsys, no_training):
    _refused(["text", "generate", str(tmp_path)], capsys, "is a directory, not a model file")
    (tmp_path / "in.txt").write_text(TEXT)
    _refused(["text", "generate", str(tmp_path / "in.txt")], capsys, "not a crnn model file")


def test_text_generate_up_to_the_bound_works(capsys, model_file):
    rc, out, err = _run(["text", "generate", str(model_file), "-n", "40", "--prompt", "the",
                         "--random-state", "0"], capsys)
    assert rc == 0 and out.startswith("the") and len(out) == len("the") + 40 + 1, err


# ---------------------------------------------------------------------------
# 4. writes are whole or not at all

def _fail_midway(real_write):
    """A writer that writes part of its output, then fails (a full disk)."""
    def write(self_or_fig, target, *args, **kwargs):
        if isinstance(target, (str, os.PathLike)):
            with open(target, "w") as f:
                f.write("partial")
        else:
            target.write(b"partial" if "b" in getattr(target, "mode", "") else "partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    return write


@pytest.mark.parametrize("which", ["out", "plot"])
def test_a_failed_write_leaves_the_existing_file_whole(tmp_path, capsys, monkeypatch, pd,
                                                       which):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    src = _csv(pd, tmp_path / "d.csv")
    for name in ("f.csv", "f.png"):
        (tmp_path / name).write_text("precious")
    if which == "out":
        monkeypatch.setattr(pd.DataFrame, "to_csv", _fail_midway(pd.DataFrame.to_csv))
    else:
        monkeypatch.setattr(Figure, "savefig", _fail_midway(Figure.savefig))
    rc, out, err = _run(["forecast", str(src), "--column", "sales", "--steps", "2",
                         "--out", str(tmp_path / "f.csv"), "--plot", str(tmp_path / "f.png")]
                        + FAST, capsys)
    assert rc == 1 and len(err) == 1 and "No space left on device" in err[0], err
    assert (tmp_path / f"f.{'csv' if which == 'out' else 'png'}").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "f.csv", "f.png"]


def test_writes_keep_links_and_permissions(tmp_path, capsys, pd):
    pytest.importorskip("matplotlib")
    src = _csv(pd, tmp_path / "d.csv")
    (tmp_path / "real.csv").write_text("old")
    os.chmod(tmp_path / "real.csv", 0o640)
    os.symlink(tmp_path / "real.csv", tmp_path / "link.csv")
    rc, out, err = _run(["forecast", str(src), "--column", "sales", "--steps", "2",
                         "--out", str(tmp_path / "link.csv"), "--plot",
                         str(tmp_path / "f.png")] + FAST, capsys)
    assert rc == 0, err
    assert os.path.islink(tmp_path / "link.csv")
    assert (tmp_path / "real.csv").read_text().startswith("step,forecast,lower,upper")
    assert os.stat(tmp_path / "real.csv").st_mode & 0o777 == 0o640
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "f.png", "link.csv",
                                                          "real.csv"]


def test_the_demo_refuses_zero_threads_before_running(capsys, monkeypatch):
    import crnn.__main__ as demo

    def refuse(*args):
        raise AssertionError("the demo started before refusing")

    monkeypatch.setattr(demo, "forecasting", refuse)
    rc = main(["--n-jobs", "0", "--quick"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err == ["crnn: error: --n-jobs must be a number of threads, or "
                               "negative (-1: all cores, -2: all but one); got 0"], err


def test_the_demo_runs_each_estimator_at_its_defaults(capsys):
    """python -m crnn --quick: three sections, each estimator called with
    random_state alone (and the quick epoch budget), and its baselines."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["--quick", "--n-jobs", "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    for line in ("RNNForecaster()", "seasonal naive (last year)", "RNNClassifier()",
                 "logistic regression (64 pixels)", "RNNLanguageModel()", "bigram (add-one)"):
        assert line in out, out
    assert "candidates on the last 20% and chose" in out


def test_text_generate_refuses_a_model_over_token_ids(tmp_path, capsys):
    """A language model trained on id arrays generates an int array: the
    command, which writes text, says so instead of failing on it."""
    from crnn import RNNLanguageModel
    docs = [np.array([5, 7, 9, 5, 7]), np.array([9, 5, 7, 9])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = RNNLanguageModel(hidden_size=4, embedding_dim=3, seq_length=4, max_iter=1,
                              random_state=0).fit(docs)
    path = tmp_path / "ids.crnnlm"
    lm.save(path)
    _refused(["text", "generate", str(path), "-n", "5"], capsys, "over token ids")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_as_input_is_refused_before_it_is_read(tmp_path, capsys, no_training):
    """text train /dev/zero read for 12 s and 4.9 GB before 'out of memory'."""
    _refused(["text", "train", "/dev/zero", "--out", str(tmp_path / "m.crnnlm")], capsys,
             "is a device or socket, not a file")
    _refused(["forecast", "/dev/zero", "--column", "x"], capsys,
             "is a device or socket, not a file")
