"""``crnn forecast``: fit an RNNForecaster on a column of a CSV file and write
its forecast with prediction intervals (and optionally a plot).

Covariates (--covariates): their values for the forecast period are the CSV's
last rows, those whose target cell is empty; --steps defaults to their number.
"""
import argparse
import sys
import warnings

import numpy as np


class CLIError(Exception):
    """One line for the user, no traceback."""


def _parser():
    p = argparse.ArgumentParser(
        prog="crnn forecast", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", help="input CSV file (one row per time step)")
    p.add_argument("--column", required=True, help="the column to forecast")
    p.add_argument("--steps", type=int, default=None,
                   help="forecast horizon (default: the rows with covariates but no target, "
                        "else 12)")
    p.add_argument("--time-column", default=None,
                   help="column of dates/times; its frequency carries to the forecast "
                        "(default: rows are numbered)")
    p.add_argument("--covariates", default=None,
                   help="comma-separated columns known in advance (calendar, prices) used "
                        "as inputs")
    p.add_argument("--out", default=None,
                   help="write the forecast, lower and upper bounds to this CSV "
                        "(default: print them)")
    p.add_argument("--plot", default=None, help="write a plot of history, forecast and "
                                                "interval to this image file (PNG)")
    p.add_argument("--coverage", type=float, default=0.9,
                   help="nominal coverage of the interval (default 0.9)")
    p.add_argument("--method", choices=["conformal", "simulate"], default="conformal",
                   help="interval method (default conformal; see "
                        "RNNForecaster.predict_interval)")
    p.add_argument("--window-length", type=int, default=24, help="default 24")
    p.add_argument("--difference", type=int, default=0,
                   help="regular differences (1 for a trend; default 0)")
    p.add_argument("--seasonal-period", type=int, default=None,
                   help="seasonal difference at this lag (e.g. 12 for monthly data)")
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
    try:
        df = pd.read_csv(args.csv)
    except FileNotFoundError:
        raise CLIError(f"{args.csv}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            IsADirectoryError, PermissionError) as exc:
        raise CLIError(f"{args.csv}: cannot be read as CSV ({str(exc).strip()})") from None
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
        try:
            times = pd.to_datetime(df[args.time_column])
        except (ValueError, TypeError) as exc:
            raise CLIError(f"{args.csv}: column {args.time_column!r} does not hold dates "
                           f"({exc})") from None
        df = df.set_index(pd.DatetimeIndex(times, name=args.time_column))
    target = pd.to_numeric(df[args.column], errors="coerce")
    bad = target.isna() & df[args.column].notna()
    if bad.any():
        raise CLIError(f"{args.csv}: column {args.column!r} holds non-numbers, e.g. "
                       f"{df[args.column][bad].iloc[0]!r} at row {int(bad.argmax()) + 2}")
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
    if args.time_column is not None and y.index.freq is None:
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
        X, Xf = Xall.iloc[:n_hist].to_numpy(), Xall.iloc[n_hist:].to_numpy()
        if not future:
            raise CLIError(f"{args.csv}: --covariates needs their values for the forecast "
                           f"period: rows after the last {args.column!r} value, with "
                           f"{args.column!r} empty")
    steps = args.steps if args.steps is not None else (future or 12)
    if steps <= 0:
        raise CLIError(f"--steps must be positive; got {steps}")
    if covs and steps != future:
        raise CLIError(f"--steps={steps}, but {args.csv} has covariates for {future} future "
                       "rows")
    return y, X, Xf, steps


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


def _forecast(args):
    from ._forecast import RNNForecaster
    y, X, Xf, steps = _read(args)
    # a calibration tail long enough for conformal intervals at every horizon
    # (at least ceil(c / (1 - c)) out-of-sample errors per horizon), if the
    # series keeps two windows of training data before it
    need = int(np.ceil(args.coverage / (1 - args.coverage))) if 0 < args.coverage < 1 else 0
    tail = steps + need + 10
    n_z = len(y) - args.difference - (args.seasonal_period or 0)
    calibration = tail if n_z - tail >= 2 * args.window_length + 1 else 0.2
    f = RNNForecaster(window_length=args.window_length, difference=args.difference,
                      calibration_size=calibration,
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
    if args.out:
        try:
            out.to_csv(args.out)
        except OSError as exc:
            raise CLIError(f"{args.out}: cannot write ({exc.strerror or exc})") from None
        print(f"wrote {steps} forecast rows to {args.out}")
    else:
        print(out.to_string())
    if args.plot:
        from .plotting import plot_forecast
        ax = plot_forecast(y, pred, (lo, hi), coverage=args.coverage,
                           title=f"{args.column}: {steps}-step forecast")
        try:
            ax.figure.savefig(args.plot, dpi=100, bbox_inches="tight")
        except (OSError, ValueError) as exc:
            raise CLIError(f"{args.plot}: cannot write the plot ({exc})") from None
        print(f"wrote the plot to {args.plot}")
    return 0


# ---------------------------------------------------------------------------
# crnn text train / generate

_TEXT_DOC = """\
crnn text train: fit an RNNLanguageModel on a text file and save it
(a model file that loads without running code).
crnn text generate: continue a prompt with a saved model.

  crnn text train input.txt --out model.crnnlm --epochs 20 --hidden-size 256
  crnn text generate model.crnnlm --prompt "ROMEO:" -n 500 --temperature 0.8
"""


def _text_parser():
    p = argparse.ArgumentParser(prog="crnn text", description=_TEXT_DOC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="fit a language model on a text file")
    t.add_argument("input", help="UTF-8 text file")
    t.add_argument("--out", required=True, help="model file to write (e.g. model.crnnlm)")
    t.add_argument("--epochs", type=int, default=10, help="passes over the text (default 10)")
    t.add_argument("--hidden-size", type=int, default=128)
    t.add_argument("--num-layers", type=int, default=2)
    t.add_argument("--cell", choices=["rnn", "gru", "lstm"], default="lstm")
    t.add_argument("--tokenizer", choices=["char", "word"], default="char")
    t.add_argument("--embedding-dim", type=int, default=None)
    t.add_argument("--max-vocab", type=int, default=None)
    t.add_argument("--seq-length", type=int, default=100)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--learning-rate-init", type=float, default=2e-3)
    t.add_argument("--dropout", type=float, default=0.0)
    t.add_argument("--validation-fraction", type=float, default=0.1,
                   help="the text's tail held out and scored after every epoch; the best "
                        "epoch's weights are kept (default 0.1; 0: none)")
    t.add_argument("--random-state", type=int, default=0)
    t.add_argument("--n-jobs", type=int, default=None, help="threads (default: all cores)")
    g = sub.add_parser("generate", help="continue a prompt with a saved model")
    g.add_argument("model", help="a model file written by crnn text train")
    g.add_argument("--prompt", default="", help="text to continue (default: a new document)")
    g.add_argument("-n", "--n-tokens", type=int, default=500, help="tokens to generate")
    g.add_argument("--temperature", type=float, default=1.0, help="0: greedy (default 1.0)")
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--random-state", type=int, default=None)
    return p


def text_main(argv):
    args = _text_parser().parse_args(argv)
    try:
        return _text_train(args) if args.command == "train" else _text_generate(args)
    except (CLIError, ValueError, TypeError) as exc:
        print(f"crnn text {args.command}: error: {exc}", file=sys.stderr)
        return 1


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
        raise CLIError(f"{path}: cannot be read as UTF-8 text ({exc})") from None


def _text_train(args):
    import time

    from ._lm import RNNLanguageModel
    text = _read_text(args.input)
    val = None
    if args.validation_fraction > 0:
        if not args.validation_fraction < 1:
            raise CLIError("--validation-fraction must be in [0, 1)")
        cut = int(len(text) * (1 - args.validation_fraction))
        text, val = text[:cut], text[cut:]
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


def _text_generate(args):
    from ._io import ModelFileError, load
    from ._lm import RNNLanguageModel
    try:
        model = load(args.model, expected=RNNLanguageModel)
    except FileNotFoundError:
        raise CLIError(f"{args.model}: no such file") from None
    except ModelFileError as exc:
        raise CLIError(str(exc)) from None
    out = model.generate(args.n_tokens, prompt=args.prompt, temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p, random_state=args.random_state)
    sep = "" if model.tokenizer == "char" or not args.prompt else " "
    print(args.prompt + sep + out)
    return 0
