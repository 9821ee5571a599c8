"""Property-based fuzzing of the public API (Hypothesis): whatever the
shapes, dtypes, values (NaN, inf, extremes), hyperparameters, ragged lists,
states and state dicts, every call returns a valid result or raises a
ValueError / TypeError that says something, and a failed call leaves a
fitted model unchanged.

Bounded for CI (CRNN_FUZZ_EXAMPLES examples per property, 60 by default);
for a longer local run: CRNN_FUZZ_EXAMPLES=2000 pytest tests/base/test_fuzz.py
"""
import os
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from crnn import RNNClassifier, RNNRegressor  # noqa: E402

EXAMPLES = int(os.environ.get("CRNN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SPECIAL = [np.nan, np.inf, -np.inf, 1e300, -1e300, 3.5e38, 1e-320, 0.0, -0.0]

values = st.one_of(st.floats(-10, 10, allow_nan=False, width=32),
                   st.sampled_from(SPECIAL))


@st.composite
def arrays(draw, max_dims=4):
    """An array of a random shape (0-4 dims, some axes empty), dtype and
    values, mostly well-formed sequences."""
    ndim = draw(st.sampled_from([3] * 6 + [2, 2, 1, 0, 4]))
    shape = tuple(draw(st.integers(0 if draw(st.integers(0, 9)) == 0 and ndim else 1, 5))
                  for _ in range(ndim))
    n = int(np.prod(shape)) if shape else 1
    kind = draw(st.sampled_from(["f4", "f8"] * 6 + ["i8", "bool", "c16", "U", "O", "M8[s]"]))
    if kind in ("f4", "f8"):
        special = draw(st.integers(0, 3)) == 0
        data = [draw(values) if special else draw(st.floats(-3, 3, width=32)) for _ in range(n)]
        return np.array(data, dtype=np.float64).astype(kind, copy=False).reshape(shape) \
            if n else np.zeros(shape, kind)
    if kind == "i8":
        return np.array(draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)),
                        dtype=np.int64).reshape(shape)
    if kind == "bool":
        return np.zeros(shape, bool)
    if kind == "c16":
        return np.asarray(np.zeros(shape, complex) + 1j)
    if kind == "U":
        return np.full(shape, "a")
    if kind == "M8[s]":
        return np.zeros(shape, "datetime64[s]")
    out = np.empty(shape, dtype=object)
    out[...] = draw(st.sampled_from([None, "x", 1.5]))
    return out


@st.composite
def ragged(draw):
    """A list of sequences of different lengths (some empty or malformed)."""
    D = draw(st.integers(1, 3))
    seqs = []
    for _ in range(draw(st.integers(1, 5))):
        T = draw(st.integers(0 if draw(st.booleans()) else 1, 6))
        d = D if draw(st.integers(0, 9)) else D + 1
        seqs.append(np.array([[draw(values) if draw(st.integers(0, 9)) == 0 else 0.5
                               for _ in range(d)] for _ in range(T)]).reshape(T, d))
    return seqs


params = st.fixed_dictionaries({}, optional={
    # mostly valid values, some invalid ones
    "cell": st.sampled_from(["rnn", "gru", "lstm"] * 3 + ["LSTM", 3]),
    "hidden_size": st.sampled_from([1, 3, 8] * 3 + [0, 2.5, 2**31]),
    "num_layers": st.sampled_from([1, 2] * 4 + [0]),
    "bidirectional": st.sampled_from([True, False] * 4 + ["yes"]),
    "return_sequences": st.sampled_from([True, False]),
    "dropout": st.sampled_from([0.0, 0.5] * 4 + [1.0, np.nan]),
    "learning_rate": st.sampled_from(["constant", "invscaling", "adaptive", "cosine"] * 2
                                     + ["x"]),
    "learning_rate_init": st.sampled_from([1e-3, 1.0] * 3 + [1e30, 0.0, np.inf]),
    "batch_size": st.sampled_from([1, 3, 1000] * 3 + [0]),
    "alpha": st.sampled_from([0.0, 1.0] * 3 + [1e30, -1.0]),
    "clip_norm": st.sampled_from([None, 1.0] * 3 + [0.0]),
    "bptt_truncate": st.sampled_from([None, 0, 2] * 3 + [-1]),
    "solver": st.sampled_from(["adam", "sgd"] * 4 + ["lbfgs"]),
    "early_stopping": st.sampled_from([False, True]),
    "dtype": st.sampled_from([np.float32, np.float64] * 3 + ["float32", np.int32, "abc"]),
    "n_jobs": st.sampled_from([None, 1, 2, -1] * 2 + [0]),
})


def _quiet():
    w = warnings.catch_warnings()
    w.__enter__()
    warnings.simplefilter("ignore")
    return w


def _call(fn):
    """Run fn: a result, or a ValueError/TypeError with a message; anything
    else (IndexError, OverflowError, MemoryError, a crash) fails the test."""
    try:
        return True, fn()
    except (ValueError, TypeError) as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        return False, exc


def _targets(draw, cls, X):
    n = (len(X) if X.ndim else 1) if isinstance(X, np.ndarray) else len(X)
    kind = draw(st.sampled_from(["ok"] * 8 + ["short", "nan", "scalar", "strings"]))
    if kind == "short":
        n = max(0, n - 1)
    if kind == "scalar":
        return 1.0
    if cls is RNNClassifier:
        y = np.arange(n) % 2
        return y.astype(str) if kind == "strings" else y
    y = np.linspace(-1, 1, n)
    if kind == "nan" and n:
        y[0] = np.nan
    return y


@FUZZ
@given(data=st.data(), cls=st.sampled_from([RNNRegressor, RNNClassifier]), p=params)
def test_fit_and_predict_return_or_raise_clearly(data, cls, p):
    w = _quiet()
    try:
        X = data.draw(st.one_of(arrays(), ragged()))
        y = _targets(data.draw, cls, X)
        if p.get("return_sequences") and isinstance(y, np.ndarray) and y.ndim == 1:
            # per-step targets, matching X's steps when X is well formed
            if isinstance(X, list):
                y = [np.full(len(x), t) for x, t in zip(X, y)]
            elif X.ndim >= 2:
                y = np.repeat(y[:, None], X.shape[1], axis=1)
        est = cls(max_iter=2, random_state=0, **p)
        ok, res = _call(lambda: est.fit(X, y))
        hypothesis.event("fit trained" if ok else f"fit refused: {str(res)[:50]}")
        if not ok:
            return
        assert res is est
        ok, pred = _call(lambda: est.predict(X))
        if ok:
            rows = pred if isinstance(pred, list) else [pred]
            assert all(isinstance(r, np.ndarray) for r in rows)
        Xn = data.draw(st.one_of(arrays(), ragged()))
        _call(lambda: est.predict(Xn))
    finally:
        w.__exit__(None, None, None)


def _fitted(cls, cell, seq):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 5, 2))
    y = (np.arange(12) % 2) if cls is RNNClassifier else X[:, :, 0].sum(axis=1)
    if seq:
        y = np.repeat(y[:, None], 5, axis=1)
    w = _quiet()
    try:
        return cls(cell=cell, hidden_size=4, return_sequences=seq, max_iter=1,
                   random_state=0).fit(X, y), X, y
    finally:
        w.__exit__(None, None, None)


@FUZZ
@given(data=st.data(), cls=st.sampled_from([RNNRegressor, RNNClassifier]),
       cell=st.sampled_from(["rnn", "gru", "lstm"]), seq=st.booleans())
def test_a_failed_call_leaves_a_fitted_model_unchanged(data, cls, cell, seq):
    est, X, y = _fitted(cls, cell, seq)
    before = {k: v.copy() for k, v in est.state_dict().items()}
    n_iter = est.n_iter_
    w = _quiet()
    try:
        Xb = X if data.draw(st.booleans()) else data.draw(st.one_of(arrays(), ragged()))
        yb = y if data.draw(st.booleans()) else _targets(data.draw, cls, Xb)
        sw = data.draw(st.sampled_from([None] * 6 + [-1.0, np.nan, 0.0, "w", np.ones(3), 2.0]))
        lr = data.draw(st.sampled_from([1e-3, 1e30]))
        est.set_params(learning_rate_init=lr)
        kw = {"classes": [0, 1]} if cls is RNNClassifier else {}
        ok, _ = _call(lambda: est.partial_fit(Xb, yb, sample_weight=sw, **kw))
        hypothesis.event("partial_fit trained" if ok else "partial_fit refused")
        if not ok:
            assert est.n_iter_ == n_iter
            for k, v in est.state_dict().items():
                np.testing.assert_array_equal(v, before[k])
        # states and the stepper with fuzzed values
        state = data.draw(arrays())
        _call(lambda: est.predict(X, initial_state=state))
        _call(lambda: est.predict(X, initial_state=(state, state)))
        stepper = est.stepper()
        _call(lambda: stepper.step(data.draw(arrays()), data.draw(
            st.one_of(st.none(), arrays()))))
        # a state dict with a fuzzed entry
        sd = {k: v.copy() for k, v in before.items()}
        key = data.draw(st.sampled_from(sorted(sd)))
        sd[key] = data.draw(arrays())
        fresh = cls(cell=cell, hidden_size=4, return_sequences=seq)
        _call(lambda: fresh.load_state_dict(sd))
    finally:
        w.__exit__(None, None, None)
