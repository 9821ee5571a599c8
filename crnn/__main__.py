"""``crnn`` / ``python -m crnn``: each estimator at its defaults (only
``random_state`` given) against the baseline a user would otherwise reach
for, in about half a minute on two cores.  ``crnn forecast data.csv --column
sales --steps 24`` forecasts a column of a CSV file (``crnn forecast
--help``); ``crnn text train input.txt --out model.crnnlm`` and ``crnn text
generate model.crnnlm --prompt ...`` train and sample a language model
(``crnn text --help``).

1. Forecasting: ``RNNForecaster()`` on a monthly series with a trend and a
   growing yearly season (12 years, the last one held out), against the
   seasonal naive forecast (last year again) and the drift.
2. Sequence classification: ``RNNClassifier()`` on scikit-learn's
   handwritten digits read row by row (8 steps of 8 pixels), against
   logistic regression on the 64 pixels and the majority class.
3. Next-character prediction: ``RNNLanguageModel()`` on docstrings of
   Python's standard library, against a bigram model, and a generated
   sample.
"""
import argparse
import sys
import time
import warnings

import numpy as np


def _monthly(rng):
    """12 years of a monthly series: a trend, a yearly season that grows with
    the level (as airline passengers do), and noise; a pandas Series with a
    monthly index when pandas is installed."""
    t = np.arange(144, dtype=np.float64)
    y = (100 + 2.0 * t) * (1 + 0.15 * np.sin(2 * np.pi * t / 12)
                           + 0.08 * np.cos(4 * np.pi * t / 12)) + 6 * rng.normal(size=144)
    try:
        import pandas as pd
    except ImportError:
        return y
    return pd.Series(y, index=pd.date_range("2012-01-01", periods=144, freq="MS"),
                     name="sales")


def _timed_fit(est, *args):
    """Fit (its ConvergenceWarning silenced); seconds."""
    from sklearn.exceptions import ConvergenceWarning

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(*args)
    return time.perf_counter() - t0


def forecasting(n_jobs, quick):
    from . import RNNForecaster

    rng = np.random.default_rng(0)
    y = _monthly(rng)
    values = np.asarray(y, dtype=np.float64)
    train, test = y[:-12], values[-12:]
    f = RNNForecaster(random_state=0, n_jobs=n_jobs)
    if quick:
        f.set_params(max_iter=40)
    fit_s = _timed_fit(f, train)
    pred = np.asarray(f.predict(12), dtype=np.float64)
    hist = values[:-12]
    scale = np.mean(np.abs(hist[12:] - hist[:-12]))
    snaive = hist[-12:]
    drift = hist[-1] + np.arange(1, 13) * (hist[-1] - hist[0]) / (len(hist) - 1)
    c = f.config_
    chose = c["model"] if c["model"] != "rnn" else (
        f"the network (GRU, window {c['window_length']}, {c['difference']} regular and "
        f"{'one seasonal' if c['seasonal_difference'] else 'no seasonal'} difference)")
    print("Forecasting: the last 12 months of a trending seasonal series "
          "(132 months of history)")
    print(f"  RNNForecaster() read a season of {c['seasonal_period']} from the data, "
          f"scored {len(c['candidates'])} candidates on the last 20% and chose {chose} "
          f"({fit_s:.1f} s)")
    print(f"  {'model':<30}{'MASE':>7}{'MAE':>8}")
    for name, p in (("RNNForecaster()", pred), ("seasonal naive (last year)", snaive),
                    ("drift", drift)):
        mae = np.mean(np.abs(test - p))
        print(f"  {name:<30}{mae / scale:>7.3f}{mae:>8.2f}")


def digits(n_jobs, quick):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from . import RNNClassifier

    d = load_digits()
    X = d.data.reshape(-1, 8, 8) / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, d.target, test_size=0.25, random_state=0,
                                          stratify=d.target)
    clf = RNNClassifier(random_state=0, n_jobs=n_jobs)
    if quick:
        clf.set_params(max_iter=30)
    fit_s = _timed_fit(clf, Xtr, ytr)
    logreg = LogisticRegression(max_iter=5000).fit(Xtr.reshape(len(Xtr), -1), ytr)
    majority = np.mean(yte == np.bincount(ytr).argmax())
    print("Classification: digits read row by row (8 steps x 8 pixels), 10 classes")
    print(f"  train {len(ytr)}, test {len(yte)}, {clf.n_iter_} epochs in {fit_s:.2f} s")
    print(f"  {'model':<34}{'accuracy':>9}")
    print(f"  {'RNNClassifier()':<34}{clf.score(Xte, yte):>9.3f}")
    print(f"  {'logistic regression (64 pixels)':<34}"
          f"{logreg.score(Xte.reshape(len(Xte), -1), yte):>9.3f}")
    print(f"  {'majority class':<34}{majority:>9.3f}")


def _docstrings():
    """The docstrings of some standard-library modules' public names: real
    English text (about 200,000 characters) on every machine."""
    import builtins
    import collections
    import functools
    import inspect
    import itertools
    import json
    import os
    import pathlib
    import re
    docs = []
    for module in (builtins, collections, re, os, itertools, functools, json, pathlib):
        for name in sorted(dir(module)):
            doc = None if name.startswith("_") else inspect.getdoc(getattr(module, name, None))
            if doc and doc not in docs:
                docs.append(doc)
    return docs


def language(n_jobs, quick):
    from . import RNNLanguageModel

    docs = _docstrings()
    split = int(0.9 * len(docs))
    train, test = docs[:split], docs[split:]
    # up to 150,000 characters (about 80,000 of docstrings on Python 3.11):
    # the default 10 epochs in about 10 s on 2 cores
    keep, total = [], 0
    for d in train:
        if total > 150_000:
            break
        keep.append(d)
        total += len(d)
    train = keep
    lm = RNNLanguageModel(random_state=0, n_jobs=n_jobs)
    if quick:
        lm.set_params(max_iter=3)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm.fit(train)
    fit_s = time.perf_counter() - t0
    # the bigram model (add-one) over the same vocabulary, documents and end tokens
    enc = lm._encode(train, "X")
    V = len(lm.vocab_)
    counts = np.ones((V, V))
    for d in enc:
        ids = np.concatenate([[1], d])
        np.add.at(counts, (ids[:-1], ids[1:]), 1)
    logp = np.log(counts / counts.sum(axis=1, keepdims=True))
    nll, n = 0.0, 0
    for d in lm._encode(test, "X"):
        ids = np.concatenate([[1], d])
        nll -= logp[ids[:-1], ids[1:]].sum()
        n += len(d)
    chars = sum(len(d) for d in train)
    print("Language model: next character of Python's docstrings (one document each)")
    print(f"  train {len(train)} documents ({chars:,} characters), test {len(test)}, "
          f"{lm.n_iter_} epochs in {fit_s:.2f} s")
    print(f"  {'model':<26}{'bits/char':>10}")
    print(f"  {'RNNLanguageModel()':<26}{lm.bits_per_token(test):>10.3f}")
    print(f"  {'bigram (add-one)':<26}{nll / n / np.log(2):>10.3f}")
    sample = lm.generate(160, prompt="Return the ", temperature=0.6, random_state=0)
    print("  sample: " + ("Return the " + sample).replace("\n", "\n          "))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["forecast"]:
        from ._cli import forecast_main
        return forecast_main(argv[1:])
    if argv[:1] == ["text"]:
        from ._cli import text_main
        return text_main(argv[1:])
    parser = argparse.ArgumentParser(prog="crnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="threads for the kernels (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="smaller, faster run")
    parser.add_argument("--info", action="store_true",
                        help="print the build and run-time configuration (crnn.show_config) "
                             "and exit")
    args = parser.parse_args(argv)
    if args.n_jobs == 0:                      # before any work, as crnn forecast / text do
        print("crnn: error: --n-jobs must be a number of threads, or negative (-1: all "
              "cores, -2: all but one); got 0", file=sys.stderr)
        return 1
    if args.info:
        from . import show_config
        show_config()
        return 0

    from ._openmp import openmp_enabled
    from ._nn.threads import effective_n_threads
    from . import __version__

    print(f"crnn {__version__}: OpenMP {'on' if openmp_enabled() else 'off'}, "
          f"{effective_n_threads(args.n_jobs)} thread(s)\n")
    t0 = time.perf_counter()
    forecasting(args.n_jobs, args.quick)
    print()
    digits(args.n_jobs, args.quick)
    print()
    language(args.n_jobs, args.quick)
    print(f"\nTotal time {time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
