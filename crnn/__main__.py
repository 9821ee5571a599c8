"""``crnn`` / ``python -m crnn``: train on two small datasets and compare with
naive baselines.  ``crnn forecast data.csv --column sales --steps 24`` forecasts
a column of a CSV file (``crnn forecast --help``); ``crnn text train input.txt
--out model.crnnlm`` and ``crnn text generate model.crnnlm --prompt ...`` train
and sample a language model (``crnn text --help``).

1. Forecasting: next-value prediction of a generated series (two seasonal
   cycles, a slow drift and noise) from windows of the last 24 values,
   against the persistence forecast (tomorrow = today).
2. Sequence classification: scikit-learn's handwritten digits read row by
   row (8 steps of 8 pixels), against always predicting the majority class.
3. Next-character prediction: a language model on the docstrings of Python's
   standard library, against a bigram model, and a generated sample.
"""
import argparse
import sys
import time
import warnings

import numpy as np


def _series(n, rng):
    t = np.arange(n, dtype=np.float64)
    s = (np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 168)
         + 0.3 * np.sin(2 * np.pi * t / 700) + 0.15 * rng.normal(size=n))
    return s


def _timed_fit(est, X, y):
    """Fit with the demo's fixed epoch budget (its ConvergenceWarning is expected); seconds."""
    from sklearn.exceptions import ConvergenceWarning

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    return time.perf_counter() - t0


def forecasting(n_jobs, quick):
    from sklearn.metrics import mean_squared_error, r2_score

    from . import RNNRegressor

    rng = np.random.default_rng(0)
    window = 24
    s = _series(4000 if not quick else 1500, rng)
    X = np.lib.stride_tricks.sliding_window_view(s[:-1], window)
    y = s[window:]
    split = int(0.8 * len(y))
    Xtr, ytr, Xte, yte = X[:split], y[:split], X[split:], y[split:]
    reg = RNNRegressor(hidden_size=32, max_iter=30 if not quick else 10,
                       learning_rate_init=3e-3, random_state=0, n_jobs=n_jobs)
    fit_s = _timed_fit(reg, Xtr, ytr)
    t0 = time.perf_counter()
    pred = reg.predict(Xte)
    pred_s = time.perf_counter() - t0
    naive = Xte[:, -1]
    print("Forecasting: next value of a noisy seasonal series from the last 24 values")
    print(f"  train windows {len(ytr)}, test windows {len(yte)}, "
          f"{reg.n_iter_} epochs in {fit_s:.2f} s, predict in {1e3 * pred_s:.1f} ms")
    print(f"  {'model':<26}{'R^2':>8}{'RMSE':>9}")
    print(f"  {'RNNRegressor (h=32)':<26}{r2_score(yte, pred):>8.3f}"
          f"{np.sqrt(mean_squared_error(yte, pred)):>9.3f}")
    print(f"  {'persistence (last value)':<26}{r2_score(yte, naive):>8.3f}"
          f"{np.sqrt(mean_squared_error(yte, naive)):>9.3f}")


def digits(n_jobs, quick):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from . import RNNClassifier

    d = load_digits()
    X = d.data.reshape(-1, 8, 8) / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, d.target, test_size=0.25, random_state=0,
                                          stratify=d.target)
    clf = RNNClassifier(hidden_size=64, max_iter=60 if not quick else 15,
                        learning_rate_init=3e-3, random_state=0, n_jobs=n_jobs)
    fit_s = _timed_fit(clf, Xtr, ytr)
    majority = np.mean(yte == np.bincount(ytr).argmax())
    print("Classification: digits read row by row (8 steps x 8 pixels), 10 classes")
    print(f"  train {len(ytr)}, test {len(yte)}, {clf.n_iter_} epochs in {fit_s:.2f} s")
    print(f"  {'model':<26}{'accuracy':>9}")
    print(f"  {'RNNClassifier (h=64)':<26}{clf.score(Xte, yte):>9.3f}")
    print(f"  {'majority class':<26}{majority:>9.3f}")


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
    lm = RNNLanguageModel(hidden_size=128, num_layers=1, seq_length=50, batch_size=16,
                          learning_rate_init=3e-3, max_iter=12 if not quick else 4,
                          random_state=0, n_jobs=n_jobs)
    t0 = time.perf_counter()
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
    print(f"  {'RNNLanguageModel (h=128)':<26}{lm.bits_per_token(test):>10.3f}")
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
    from ._threads import effective_n_threads
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
