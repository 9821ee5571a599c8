"""The ``crnn forecast`` command line and the plots (issue 10)."""
import subprocess
import sys
import warnings
from importlib import metadata

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from crnn import RNNForecaster, RNNRegressor  # noqa: E402
from crnn.__main__ import main  # noqa: E402
from crnn.plotting import plot_forecast, plot_learning_curve  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _csv(tmp_path, n=72, future=0, name="data.csv"):
    t = np.arange(n + future)
    df = pd.DataFrame({
        "date": pd.date_range("2010-01-01", periods=n + future, freq="MS").strftime("%Y-%m-%d"),
        "sales": 50 + 5 * np.sin(2 * np.pi * t / 12) + 0.2 * t,
        "promo": (t % 4 == 0).astype(float),
    })
    df.loc[n:, "sales"] = np.nan
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def test_forecast_end_to_end_writes_the_csv_and_the_png(tmp_path, capsys):
    path = _csv(tmp_path)
    rc = main(["forecast", str(path), "--column", "sales", "--steps", "6", "--time-column",
               "date", "--seasonal-period", "12", "--max-iter", "5", "--window-length", "12",
               "--plot", str(tmp_path / "f.png"), "--out", str(tmp_path / "f.csv")])
    assert rc == 0
    out = pd.read_csv(tmp_path / "f.csv", parse_dates=["date"])
    assert list(out.columns) == ["date", "forecast", "lower", "upper"]
    assert list(out["date"]) == list(pd.date_range("2016-01-01", periods=6, freq="MS"))
    assert np.all(out["lower"] < out["forecast"]) and np.all(out["forecast"] < out["upper"])
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG
    assert "wrote 6 forecast rows" in capsys.readouterr().out


def test_forecast_with_covariates_for_the_future_rows(tmp_path, capsys):
    path = _csv(tmp_path, future=4)
    rc = main(["forecast", str(path), "--column", "sales", "--covariates", "promo",
               "--max-iter", "3", "--window-length", "6"])
    assert rc == 0
    printed = capsys.readouterr().out
    lines = printed.strip().splitlines()
    assert len(lines) == 6 and lines[0].split() == ["forecast", "lower", "upper"]  # 2 + 4


def test_the_console_script_is_installed_and_help_explains_every_option():
    eps = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "crnn"]
    assert eps and eps[0].value == "crnn.__main__:main"
    out = subprocess.run([sys.executable, "-m", "crnn", "forecast", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for option in ("--column", "--steps", "--time-column", "--covariates", "--out", "--plot",
                   "--coverage", "--method", "--window-length", "--difference",
                   "--seasonal-period", "--max-iter"):
        assert option in out.stdout, option


@pytest.mark.parametrize("setup,args,message", [
    (None, ["missing.csv", "--column", "sales"], "missing.csv: no such file"),
    ("data", ["{p}", "--column", "revenue"], "no column 'revenue' (columns: date, sales, promo)"),
    ("text", ["{p}", "--column", "sales"], "holds non-numbers, e.g. 'n/a' at row 4"),
    ("hole", ["{p}", "--column", "sales"], "missing value at row 11"),
    ("data", ["{p}", "--column", "sales", "--time-column", "promo", "--max-iter", "1"],
     "no regular frequency"),
    ("data", ["{p}", "--column", "sales", "--steps", "0"], "--steps must be positive"),
    ("empty", ["{p}", "--column", "sales"], "cannot be read as CSV"),
    ("short", ["{p}", "--column", "sales", "--max-iter", "1", "--window-length", "24"],
     "has 5 observations"),
    ("future", ["{p}", "--column", "sales"], "empty trailing rows"),
    ("data", ["{p}", "--column", "sales", "--covariates", "promo"], "values for the forecast"),
])
def test_bad_files_get_one_clear_error_line(tmp_path, capsys, setup, args, message):
    p = tmp_path / "in.csv"
    if setup == "data":
        _csv(tmp_path, name="in.csv")
    elif setup == "text":
        _csv(tmp_path, name="in.csv")
        df = pd.read_csv(p)
        df["sales"] = df["sales"].astype(object)
        df.loc[2, "sales"] = "n/a x"
        df.to_csv(p, index=False)
        message = "holds non-numbers, e.g. 'n/a x' at row 4"
    elif setup == "hole":
        _csv(tmp_path, name="in.csv")
        df = pd.read_csv(p)
        df.loc[9, "sales"] = np.nan
        df.to_csv(p, index=False)
    elif setup == "empty":
        p.write_text("")
    elif setup == "short":
        _csv(tmp_path, n=5, name="in.csv")
    elif setup == "future":
        _csv(tmp_path, future=3, name="in.csv")
    argv = [a.format(p=p) for a in args]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["forecast"] + argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("crnn forecast: error:") and message in err[0], err


def test_plots_return_axes_and_save_headless(tmp_path):
    y = pd.Series(np.sin(np.arange(60) / 3), index=pd.date_range("2020", periods=60, freq="D"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = RNNForecaster(window_length=8, max_iter=5, random_state=0).fit(y)
        reg = RNNRegressor(max_iter=5, early_stopping=True, random_state=0).fit(
            np.random.default_rng(0).normal(size=(40, 5, 2)), np.arange(40.0))
    pred = f.predict(10)
    ax = plot_forecast(y, pred, f.predict_interval(10, method="simulate", random_state=0),
                       coverage=0.9)
    assert ax.get_title() == "forecast" and len(ax.lines) == 2 and len(ax.collections) == 1
    ax.figure.savefig(tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG
    # numpy history and forecast: the forecast is placed after the history
    ax = plot_forecast(np.arange(5.0), np.array([5.0, 6.0]))
    assert list(ax.lines[1].get_xdata()) == [5, 6]
    ax = plot_learning_curve(reg)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training loss",
                                                                   "validation loss"]
    ax = plot_learning_curve(f)
    assert len(ax.lines[0].get_xdata()) == len(f.loss_curve_)
    with pytest.raises(ValueError, match="no loss_curve_"):
        plot_learning_curve(RNNRegressor())
    with pytest.raises(ValueError, match="1 column"):
        plot_forecast(np.zeros(5), np.zeros((2, 2)))
