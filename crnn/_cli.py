"""``crnn forecast``: fit an RNNForecaster on a column of a CSV file and write
its forecast with prediction intervals (and optionally a plot).

Covariates (--covariates): their values for the forecast period are the CSV's
last rows, those whose target cell is empty; --steps defaults to their number.

A time column (--time-column) of dates carries its frequency to the forecast;
one of evenly spaced integers (years, say) continues them (2011, 2012, ...).
--steps is at most 10000.  Outputs (--out, --plot) are written whole or not at
all (an existing file there is replaced only once the new one is complete),
and never over the input file.
"""
import argparse
import io
import math
import os
import stat
import sys
import warnings

import numpy as np

from ._base.params import is_int

# the longest forecast the command computes: the forecaster feeds each step
# back (one network step per horizon, and n_paths parallel paths of that
# length for simulated intervals), and a recursion this long has long since
# forgotten the data
MAX_STEPS = 10_000
# the most tokens ``crnn text generate`` writes in one call (the sample is
# built in memory, about 50 bytes a token, before it is printed)
MAX_TOKENS = 1_000_000


class CLIError(Exception):
    """One line for the user, no traceback."""


# ---------------------------------------------------------------------------
# checks of options, inputs and outputs, before any work

def _need(ok, option, value, what):
    if not ok:
        raise CLIError(f"{option} must be {what}; got {value!r}")


def _auto_int(text):
    """argparse type: an int, or the word auto."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or auto, got {text!r}") from None


def _auto_int_none(text):
    """argparse type: an int, auto, or none."""
    if text.strip().lower() == "none":
        return None
    try:
        return _auto_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected an int, auto or none, got {text!r}") \
            from None


def _check_int_option(args, name, low, high=None, option=None, allow_none=False):
    """The option args.<name> (argparse made it an int) in [low, high] (None
    when allowed; auto passes), in the command line's words."""
    v = getattr(args, name)
    option = option or "--" + name.replace("_", "-")
    if (v is None and allow_none) or v == "auto":
        return
    _need(is_int(v, low, high), option, v,
          ("positive" if low == 1 else f"at least {low}") if high is None
          else f"between {low} and {high}")


def _check_float(args, name, what, ok, option=None, allow_none=False):
    """args.<name> a finite float with ok(value) (argparse's float() takes
    'nan', 'inf' and an overflowing '1e400' (inf))."""
    v = getattr(args, name)
    if v is None and allow_none:
        return
    option = option or "--" + name.replace("_", "-")
    _need(math.isfinite(v) and ok(v), option, v, what)


def _check_seed(args):
    _need(args.random_state is None or 0 <= args.random_state < 2**32, "--random-state",
          args.random_state, "between 0 and 2**32 - 1")


def _check_n_jobs(args):
    _need(args.n_jobs is None or args.n_jobs != 0, "--n-jobs", args.n_jobs,
          "a number of threads, or negative (-1: all cores, -2: all but one)")


def _same_file(a, b):
    """Whether paths a and b name one file: the same inode when both exist
    (through symbolic and hard links), else the same resolved path."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):             # one does not exist (yet)
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _special(path):
    """A file that is not a regular one (a terminal, a pipe, /dev/null):
    writing it replaces nothing."""
    return os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)


def _check_output(path, option, inputs, others=(), special=True):
    """Refuse an output path that cannot be written, or that would replace an
    input (inputs: (what, path) pairs) or another output (others: the same);
    special: whether a terminal, pipe or device (written directly) will do."""
    if not path:
        raise CLIError(f"{option} needs a file name")
    for what, other in inputs:
        if _same_file(path, other) and not _special(path):
            raise CLIError(f"{option} {path} is the {what} {other}; refusing to overwrite "
                           "it (write to another file)")
    for what, other in others:
        if other and _same_file(path, other):
            raise CLIError(f"{option} {path} and {what} {other} are the same file; give "
                           "them different names")
    if _special(path):
        if special:
            return
        raise CLIError(f"{option} {path} is not a regular file (a device or a pipe); give a "
                       "file name")
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise CLIError(f"{option} {path} is a directory; give a file name")
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise CLIError(f"{option} {path}: no such directory {os.path.dirname(path) or parent}")
    if os.path.exists(target):
        if not os.access(target, os.W_OK):
            raise CLIError(f"{option} {path}: the file is not writable")
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"{option} {path}: cannot create files in {parent}")


def _write_atomic(path, write, binary=False):
    """write(file object) into a temporary file beside path, then rename it
    over path: an existing file there is replaced only by a complete new one,
    and is untouched when writing fails.  (A path that is not a regular file,
    /dev/stdout or a pipe, is written directly.)"""
    try:
        if _special(path):
            with open(path, "wb" if binary else "w", **({} if binary else {"newline": ""})) \
                    as f:
                write(f)
            return
        from ._io.model_files import replacing           # model files' atomic replacement
        with replacing(path) as f:
            if binary:
                write(f)
            else:
                text = io.TextIOWrapper(f, newline="")
                write(text)
                text.flush()
                text.detach()                 # f stays open for replacing's fsync
    except OSError as exc:
        raise CLIError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _check_plot(path):
    """The plot's image format, once matplotlib imports and can write it."""
    try:
        from .plotting import _pyplot
        _pyplot()
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install 'crnn[plot]'") from None
    ext = os.path.splitext(path)[1][1:].lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext and ext not in formats:
        raise CLIError(f"--plot {path}: matplotlib cannot write .{ext} images (it writes "
                       f"{', '.join(sorted(formats))})")
    return ext or "png"


def _parser():
    p = argparse.ArgumentParser(
        prog="crnn forecast", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", help="input CSV file (one row per time step)")
    p.add_argument("--column", required=True, help="the column to forecast")
    p.add_argument("--steps", type=int, default=None,
                   help=f"forecast horizon, at most {MAX_STEPS} (default: the rows with "
                        "covariates but no target, else 12)")
    p.add_argument("--time-column", default=None,
                   help="column of dates/times, whose frequency carries to the forecast, or "
                        "of evenly spaced integers (e.g. years), which the forecast continues "
                        "(default: rows are numbered)")
    p.add_argument("--covariates", default=None,
                   help="comma-separated columns known in advance (calendar, prices) used "
                        "as inputs")
    p.add_argument("--out", default=None,
                   help="write the forecast, lower and upper bounds to this CSV "
                        "(default: print them); never the input file")
    p.add_argument("--plot", default=None, help="write a plot of history, forecast and "
                                                "interval to this image file (PNG, or the "
                                                "format of its extension: needs matplotlib)")
    p.add_argument("--coverage", type=float, default=0.9,
                   help="nominal coverage of the interval, between 0 and 1 (default 0.9)")
    p.add_argument("--method", choices=["conformal", "simulate"], default="conformal",
                   help="interval method (default conformal; see "
                        "RNNForecaster.predict_interval)")
    p.add_argument("--window-length", type=_auto_int, default="auto",
                   help="an int, or auto (default: chosen with the rest, see "
                        "RNNForecaster)")
    p.add_argument("--difference", type=_auto_int, default="auto",
                   help="regular differences (1 for a trend), or auto (default: chosen on "
                        "the validation tail)")
    p.add_argument("--seasonal-period", type=_auto_int_none, default="auto",
                   help="seasonal difference at this lag (e.g. 12 for monthly data), none, "
                        "or auto (default: the season read from the dates or the data, "
                        "its difference chosen on the validation tail)")
    p.add_argument("--no-baselines", action="store_true",
                   help="always forecast with the network (default: exponential "
                        "smoothing, or a naive, seasonal naive or drift forecast, is used "
                        "when it validates better)")
    p.add_argument("--cell", choices=["rnn", "gru", "lstm"], default="gru")
    p.add_argument("--hidden-size", type=int, default=32)
    p.add_argument("--max-iter", type=int, default=200, help="training epochs (default 200)")
    p.add_argument("--learning-rate-init", type=float, default=1e-3)
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--n-jobs", type=int, default=None, help="threads (default: all cores)")
    return p


def _read(args):
    try:
        import pandas as pd
    except ImportError:
        raise CLIError("crnn forecast reads CSV files with pandas: pip install pandas") from None
    _check_input(args.csv)
    try:
        df = pd.read_csv(args.csv)
    except FileNotFoundError:
        raise CLIError(f"{args.csv}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CLIError(f"{args.csv}: cannot be read as CSV: it is not UTF-8 text ({exc}); "
                       "save it as UTF-8") from None
    except IsADirectoryError:
        raise CLIError(f"{args.csv}: cannot be read as CSV: it is a directory") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        msg = " ".join(str(exc).split())
        raise CLIError(f"{args.csv}: cannot be read as CSV ({msg})") from None
    except OSError as exc:
        raise CLIError(f"{args.csv}: cannot be read as CSV ({exc.strerror or exc})") from None
    cols = list(df.columns)

    def need(col):
        if col not in df.columns:
            raise CLIError(f"{args.csv}: no column {col!r} (columns: {', '.join(map(str, cols))})")
    need(args.column)
    covs = [c.strip() for c in args.covariates.split(",")] if args.covariates else []
    for c in covs:
        need(c)
    if args.time_column is not None:
        need(args.time_column)
        df = df.set_index(_time_index(df[args.time_column], args))
    target = pd.to_numeric(df[args.column], errors="coerce")
    bad = target.isna() & df[args.column].notna()
    if bad.any():
        raise CLIError(f"{args.csv}: column {args.column!r} holds non-numbers, e.g. "
                       f"{df[args.column][bad].iloc[0]!r} at row {int(bad.argmax()) + 2}")
    _check_finite(target, args.column, args.csv)
    # trailing rows without a target: the forecast period's covariates
    n_hist = len(target)
    while n_hist and pd.isna(target.iloc[n_hist - 1]):
        n_hist -= 1
    if n_hist == 0:
        raise CLIError(f"{args.csv}: column {args.column!r} is empty")
    if target.iloc[:n_hist].isna().any():
        first = int(target.iloc[:n_hist].isna().to_numpy().argmax()) + 2
        raise CLIError(f"{args.csv}: column {args.column!r} has a missing value at row "
                       f"{first}; fill or drop it first")
    future = len(target) - n_hist
    if future and not covs:
        raise CLIError(f"{args.csv}: column {args.column!r} has {future} empty trailing rows; "
                       "drop them (or give --covariates for the forecast period)")
    y = target.iloc[:n_hist]
    if isinstance(y.index, pd.DatetimeIndex) and y.index.freq is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # pandas 3's notice of an offset to come
            freq = pd.infer_freq(y.index) if len(y) >= 3 else None
        if freq is None:
            raise CLIError(f"{args.csv}: the dates in {args.time_column!r} have no regular "
                           "frequency (missing or repeated time steps?)")
        y = y.asfreq(freq)
    y.name = args.column
    X = Xf = None
    if covs:
        Xall = df[covs].apply(pd.to_numeric, errors="coerce")
        if Xall.isna().any().any():
            raise CLIError(f"{args.csv}: the covariates {', '.join(covs)} have missing or "
                           "non-numeric values")
        for c in covs:
            _check_finite(Xall[c], c, args.csv)
        X, Xf = Xall.iloc[:n_hist].to_numpy(), Xall.iloc[n_hist:].to_numpy()
        if not future:
            raise CLIError(f"{args.csv}: --covariates needs their values for the forecast "
                           f"period: rows after the last {args.column!r} value, with "
                           f"{args.column!r} empty")
    steps = args.steps if args.steps is not None else (future or 12)
    if steps > MAX_STEPS:
        raise CLIError(f"{args.csv} has covariates for {steps} future rows; the forecast "
                       f"is at most {MAX_STEPS} steps (--steps)")
    if covs and steps != future:
        raise CLIError(f"--steps={steps}, but {args.csv} has covariates for {future} future "
                       "rows")
    return y, X, Xf, steps


def _time_index(col, args):
    """The index of a time column: dates (a DatetimeIndex), or evenly spaced
    increasing integers (an integer index, which the forecast continues)."""
    import pandas as pd
    name = args.time_column
    missing = col.isna().to_numpy()
    if missing.any():
        raise CLIError(f"{args.csv}: column {name!r} has a missing time at row "
                       f"{int(missing.argmax()) + 2}")
    if pd.api.types.is_bool_dtype(col):
        raise CLIError(f"{args.csv}: column {name!r} holds True/False, not times")
    if pd.api.types.is_numeric_dtype(col):
        # numbers are not read as dates (pandas would take 2001 for 2001
        # nanoseconds after 1970): whole numbers evenly spaced are the time
        if pd.api.types.is_integer_dtype(col):
            v = col.to_numpy(dtype=np.int64)
        else:
            v = col.to_numpy(dtype=np.float64)
            if not (np.all(np.isfinite(v)) and np.all(v == np.round(v))
                    and np.all(np.abs(v) < 2**53)):
                raise CLIError(f"{args.csv}: column {name!r} holds numbers that are not "
                               "whole; give dates (e.g. 2020-01-31) or evenly spaced integers "
                               "(e.g. years)")
            v = v.astype(np.int64)
        d = np.diff(v)
        if len(d) and not (d[0] > 0 and np.all(d == d[0])):
            row = int(np.argmax(d != d[0])) + 3 if d[0] > 0 else 3
            raise CLIError(f"{args.csv}: the integers in {name!r} have no regular frequency: "
                           f"not evenly spaced and increasing ({v[row - 3]} then {v[row - 2]} "
                           f"at row {row}); give one row per time step, or dates")
        return pd.Index(v, name=name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # "could not infer format"
            times = pd.to_datetime(col)
    except (ValueError, TypeError, OverflowError) as exc:
        raise CLIError(f"{args.csv}: column {name!r} does not hold dates "
                       f"({' '.join(str(exc).split())})") from None
    times = pd.DatetimeIndex(times, name=name)
    if times.isna().any():
        raise CLIError(f"{args.csv}: column {name!r} has a missing time at row "
                       f"{int(np.argmax(times.isna())) + 2}")
    later = np.asarray(times[1:] > times[:-1])
    if not later.all():
        row = int(np.argmax(~later)) + 3
        raise CLIError(f"{args.csv}: the dates in {name!r} are not in increasing order "
                       f"({times[row - 3]} then {times[row - 2]} at row {row}); sort the "
                       "rows by time, one per time step")
    return times


def _check_finite(values, column, csv):
    """Refuse infinity (written as inf, or a number beyond float64's range
    such as 1e400, which parses to inf) with its row."""
    v = values.to_numpy(dtype=np.float64, na_value=np.nan)
    inf = np.isinf(v)
    if inf.any():
        row = int(inf.argmax())
        raise CLIError(f"{csv}: column {column!r} holds a non-finite value at row {row + 2} "
                       f"({v[row]}: infinity, or a number beyond float64's range of "
                       "about 1.8e308, e.g. 1e400)")


def _check_forecast_args(args):
    """Every option checked before the file is read (and so before training)."""
    if args.steps is not None:
        _need(args.steps > 0, "--steps", args.steps, "positive")
        _need(args.steps <= MAX_STEPS, "--steps", args.steps, f"at most {MAX_STEPS}")
    _check_float(args, "coverage", "between 0 and 1 (e.g. 0.9)", lambda c: 0 < c < 1)
    _check_int_option(args, "window_length", 1)
    _check_int_option(args, "difference", 0)
    _check_int_option(args, "seasonal_period", 1, allow_none=True)
    _check_int_option(args, "hidden_size", 1)
    _check_int_option(args, "max_iter", 1)
    _check_float(args, "learning_rate_init", "a positive number", lambda v: v > 0)
    _check_seed(args)
    _check_n_jobs(args)
    inputs = [("input file", args.csv)]
    if args.out is not None:
        _check_output(args.out, "--out", inputs)
    if args.plot is not None:
        _check_output(args.plot, "--plot", inputs, [("--out", args.out)])
        args.plot_format = _check_plot(args.plot)


def forecast_main(argv):
    args = _parser().parse_args(argv)
    try:
        return _forecast(args)
    except CLIError as exc:
        print(f"crnn forecast: error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:                 # the forecaster's own clear errors
        print(f"crnn forecast: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError:
        print("crnn forecast: error: out of memory (a smaller --hidden-size, --window-length "
              "or --steps?)", file=sys.stderr)
        return 1


def _forecast(args):
    _check_forecast_args(args)
    from ._forecasting.forecaster import RNNForecaster
    y, X, Xf, steps = _read(args)
    # a calibration tail long enough for conformal intervals at every horizon
    # (at least ceil(c / (1 - c)) out-of-sample errors per horizon), if the
    # series keeps two windows of training data before it
    need = int(np.ceil(args.coverage / (1 - args.coverage))) if 0 < args.coverage < 1 else 0
    tail = steps + need + 10
    W = 24 if args.window_length == "auto" else args.window_length
    d = 1 if args.difference == "auto" else args.difference
    s = args.seasonal_period if isinstance(args.seasonal_period, int) else 0
    calibration = tail if len(y) - d - s - tail >= 2 * W + 1 else 0.2
    f = RNNForecaster(window_length=args.window_length, difference=args.difference,
                      calibration_size=calibration, baselines=not args.no_baselines,
                      seasonal_period=args.seasonal_period, cell=args.cell,
                      hidden_size=args.hidden_size, max_iter=args.max_iter,
                      learning_rate_init=args.learning_rate_init,
                      random_state=args.random_state, n_jobs=args.n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # ConvergenceWarning at a fixed budget
        f.fit(y, X)
    pred = f.predict(steps, X=Xf)
    try:
        lo, hi = f.predict_interval(steps, coverage=args.coverage, X=Xf, method=args.method,
                                    random_state=args.random_state)
    except ValueError as exc:
        if args.method != "conformal":
            raise
        print(f"crnn forecast: note: {exc} Using simulated paths instead.", file=sys.stderr)
        lo, hi = f.predict_interval(steps, coverage=args.coverage, X=Xf, method="simulate",
                                    random_state=args.random_state)
    import pandas as pd
    out = pd.DataFrame({"forecast": pred, "lower": lo.to_numpy(), "upper": hi.to_numpy()},
                       index=pred.index)
    out.index.name = args.time_column or "step"
    fig = None
    if args.plot is not None:                 # drawn before anything is written
        from .plotting import _pyplot, plot_forecast
        ax = plot_forecast(y, pred, (lo, hi), coverage=args.coverage,
                           title=f"{args.column}: {steps}-step forecast")
        fig = ax.figure
    try:
        if args.out is not None:
            _write_atomic(args.out, out.to_csv)
            print(f"wrote {steps} forecast rows to {args.out}")
        else:
            print(out.to_string())
        if fig is not None:
            try:
                _write_atomic(args.plot, lambda f: fig.savefig(
                    f, format=args.plot_format, dpi=100, bbox_inches="tight"), binary=True)
            except ValueError as exc:
                raise CLIError(f"{args.plot}: cannot write the plot ({exc})") from None
            print(f"wrote the plot to {args.plot}")
    finally:
        if fig is not None:
            _pyplot().close(fig)
    return 0


# ---------------------------------------------------------------------------
# crnn text train / generate

_TEXT_DOC = """\
crnn text train: fit an RNNLanguageModel on a text file and save it
(a model file that loads without running code).
crnn text generate: continue a prompt with a saved model.

  crnn text train input.txt --out model.crnnlm --epochs 20 --hidden-size 256
  crnn text generate model.crnnlm --prompt "ROMEO:" -n 500 --temperature 0.8

--out is never the input file; the model file is replaced only by a complete
new one.  generate writes at most 1,000,000 tokens a call.
"""


def _text_parser():
    p = argparse.ArgumentParser(prog="crnn text", description=_TEXT_DOC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="fit a language model on a text file")
    t.add_argument("input", help="UTF-8 text file")
    t.add_argument("--out", required=True, help="model file to write (e.g. model.crnnlm); "
                                                "never the input file")
    t.add_argument("--epochs", type=int, default=10, help="passes over the text (default 10)")
    t.add_argument("--hidden-size", type=int, default=128)
    t.add_argument("--num-layers", type=int, default=2)
    t.add_argument("--cell", choices=["rnn", "gru", "lstm"], default="lstm")
    t.add_argument("--tokenizer", choices=["char", "word"], default="char")
    t.add_argument("--embedding-dim", type=_auto_int_none, default="auto",
                   help="embedding width, auto (default: the hidden size) or none "
                        "(one-hot input)")
    t.add_argument("--max-vocab", type=int, default=None)
    t.add_argument("--seq-length", type=int, default=100)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--learning-rate-init", type=float, default=1e-3)
    t.add_argument("--dropout", type=float, default=0.0)
    t.add_argument("--validation-fraction", type=float, default=0.1,
                   help="the text's tail held out and scored after every epoch; the best "
                        "epoch's weights are kept (default 0.1; 0: none)")
    t.add_argument("--random-state", type=int, default=0)
    t.add_argument("--n-jobs", type=int, default=None, help="threads (default: all cores)")
    g = sub.add_parser("generate", help="continue a prompt with a saved model")
    g.add_argument("model", help="a model file written by crnn text train")
    g.add_argument("--prompt", default="", help="text to continue (default: a new document)")
    g.add_argument("-n", "--n-tokens", type=int, default=500,
                   help=f"tokens to generate, at most {MAX_TOKENS:,} (default 500)")
    g.add_argument("--temperature", type=float, default=1.0, help="0: greedy (default 1.0)")
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--top-p", type=float, default=None, help="in (0, 1]")
    g.add_argument("--random-state", type=int, default=None)
    return p


def text_main(argv):
    args = _text_parser().parse_args(argv)
    try:
        return _text_train(args) if args.command == "train" else _text_generate(args)
    except (CLIError, ValueError, TypeError) as exc:
        print(f"crnn text {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"crnn text {args.command}: error: out of memory", file=sys.stderr)
        return 1


def _check_input(path):
    """Refuse a device (/dev/zero, a terminal) or socket as an input file
    before reading it: it need never end.  Regular files and pipes (a
    shell's <(zcat corpus.gz)) are read."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return                          # the reader says what is wrong
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise CLIError(f"{path}: is a device or socket, not a file")


def _read_text(path):
    _check_input(path)
    try:
        with open(path, encoding="utf-8-sig") as f:       # a byte-order mark is no text
            return f.read()
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CLIError(f"{path}: is a directory, not a text file") from None
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    except OSError as exc:
        raise CLIError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _check_train_args(args):
    """Every option checked before the text is read (and so before training)."""
    for name in ("epochs", "hidden_size", "num_layers", "seq_length", "batch_size"):
        _check_int_option(args, name, 1)
    _check_int_option(args, "embedding_dim", 1, allow_none=True)
    _check_int_option(args, "max_vocab", 3, allow_none=True)
    _check_float(args, "learning_rate_init", "a positive number", lambda v: v > 0)
    _check_float(args, "dropout", "in [0, 1)", lambda v: 0 <= v < 1)
    _check_float(args, "validation_fraction", "in [0, 1) (0: none)", lambda v: 0 <= v < 1)
    _check_seed(args)
    _check_n_jobs(args)
    # the model is written aside and renamed over --out: never over a device
    _check_output(args.out, "--out", [("input file", args.input)], special=False)


def _text_train(args):
    import time

    _check_train_args(args)
    from ._text.language_model import RNNLanguageModel
    text = _read_text(args.input)
    if not text:
        raise CLIError(f"{args.input}: the file is empty")
    val = None
    if args.validation_fraction > 0:
        cut = int(len(text) * (1 - args.validation_fraction))
        text, val = text[:cut], text[cut:]
        if not text or not val:
            raise CLIError(f"{args.input}: {len(text) + len(val)} characters are too few to "
                           f"hold out --validation-fraction={args.validation_fraction} of "
                           "them and train on the rest (use --validation-fraction 0)")
    # the estimator's own loop prints a line per epoch (verbose) and, with a
    # validation text, keeps the weights of the best epoch
    model = RNNLanguageModel(
        tokenizer=args.tokenizer, cell=args.cell, hidden_size=args.hidden_size,
        num_layers=args.num_layers, seq_length=args.seq_length,
        embedding_dim=args.embedding_dim, max_vocab=args.max_vocab,
        batch_size=args.batch_size, learning_rate_init=args.learning_rate_init,
        dropout=args.dropout, random_state=args.random_state, n_jobs=args.n_jobs,
        max_iter=args.epochs, early_stopping=val is not None,
        n_iter_no_change=max(1, args.epochs), verbose=1)
    start = time.perf_counter()
    model.fit(text, X_val=val)
    if val is not None:
        print(f"best validation loss {-model.best_validation_score_:.4f} nats/token "
              f"(those weights are kept)")
    try:
        model.save(args.out)
    except OSError as exc:
        raise CLIError(f"{args.out}: cannot write ({exc.strerror or exc})") from None
    print(f"wrote {args.out} ({len(model.vocab_)} tokens, "
          f"{time.perf_counter() - start:.1f} s in all)")
    return 0


def _check_generate_args(args):
    _need(0 <= args.n_tokens <= MAX_TOKENS, "-n/--n-tokens", args.n_tokens,
          f"between 0 and {MAX_TOKENS:,}")
    _check_float(args, "temperature", "a number >= 0 (0: greedy)", lambda v: v >= 0)
    _check_int_option(args, "top_k", 1, allow_none=True)
    _check_float(args, "top_p", "in (0, 1]", lambda v: 0 < v <= 1, allow_none=True)
    _check_seed(args)


def _text_generate(args):
    _check_generate_args(args)
    from ._io.model_files import ModelFileError, load
    from ._text.language_model import RNNLanguageModel
    if os.path.isdir(args.model):
        raise CLIError(f"{args.model}: is a directory, not a model file")
    try:
        model = load(args.model, expected=RNNLanguageModel)
    except FileNotFoundError:
        raise CLIError(f"{args.model}: no such file") from None
    except ModelFileError as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:
        raise CLIError(f"{args.model}: cannot be read ({exc.strerror or exc})") from None
    if model._kind() == "ids":
        raise CLIError(f"{args.model} is a language model over token ids (trained on integer "
                       "arrays); crnn text generate writes text. Use "
                       "RNNLanguageModel.generate in Python for its ids.")
    out = model.generate(args.n_tokens, prompt=args.prompt, temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p, random_state=args.random_state)
    sep = "" if model.tokenizer == "char" or not args.prompt else " "
    print(args.prompt + sep + out)
    return 0
