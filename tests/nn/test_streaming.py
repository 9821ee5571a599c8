"""Stateful streaming: predict with carried states, and the step API."""
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from crnn import RNNClassifier, RNNRegressor


def _series(n=12, T=40, D=3, seed=0):
    rng = np.random.default_rng(seed)
    X = np.cumsum(rng.normal(size=(n, T, D)), axis=1) * 0.3
    return X


def _fit(cls, cell, seq, y_kind="1d", **kw):
    X = _series()
    rng = np.random.default_rng(1)
    if cls is RNNClassifier:
        y = rng.integers(0, 3, size=(12, 40) if seq else 12)
    elif y_kind == "1d":
        y = rng.normal(size=(12, 40) if seq else 12)
    else:
        y = rng.normal(size=(12, 40, 2) if seq else (12, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cls(cell=cell, hidden_size=16, num_layers=2, max_iter=3, return_sequences=seq,
                   random_state=0, **kw).fit(X, y), X


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunked_predict_with_carried_state_equals_one_shot(cell, dtype):
    reg, X = _fit(RNNRegressor, cell, True, dtype=dtype)
    full, full_state = reg.predict(X, return_state=True)
    parts, state = [], None
    for lo, hi in ((0, 7), (7, 8), (8, 25), (25, 40)):
        p, state = reg.predict(X[:, lo:hi], initial_state=state, return_state=True)
        parts.append(p)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=tol, atol=tol)
    pairs = zip(state, full_state) if cell == "lstm" else [(state, full_state)]
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    # many-to-one: the prediction after the last chunk is the one-shot one
    clf, X = _fit(RNNClassifier, cell, False, dtype=dtype)
    state = None
    for lo, hi in ((0, 13), (13, 40)):
        proba, state = clf.predict_proba(X[:, lo:hi], initial_state=state, return_state=True)
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=tol, atol=tol)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_state_format_and_errors(cell):
    reg, X = _fit(RNNRegressor, cell, False)
    pred, state = reg.predict(X, return_state=True)
    assert pred.shape == (12,)
    if cell == "lstm":
        h, c = state
        assert h.shape == c.shape == (2, 12, 16)
    else:
        assert state.shape == (2, 12, 16)
    with pytest.raises(ValueError, match="shape"):
        reg.predict(X, initial_state=state[0][:, :5] if cell == "lstm" else state[:, :5])
    bad = (np.full((2, 12, 16), np.nan),) * 2 if cell == "lstm" else np.full((2, 12, 16), np.nan)
    with pytest.raises(ValueError, match="NaN"):
        reg.predict(X, initial_state=bad)
    if cell == "lstm":
        with pytest.raises(ValueError, match="tuple"):
            reg.predict(X, initial_state=np.zeros((2, 12, 16)))
    # a non-zero initial state changes the result
    start = (np.ones((2, 12, 16)), np.ones((2, 12, 16))) if cell == "lstm" else np.ones((2, 12, 16))
    assert not np.allclose(reg.predict(X[:, :3], initial_state=start), reg.predict(X[:, :3]))


@pytest.mark.parametrize("cls", [RNNRegressor, RNNClassifier])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("seq", [False, True])
def test_stepper_matches_predict_on_prefixes(cls, cell, seq):
    est, X = _fit(cls, cell, seq)
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(est).items()}
    s = est.stepper()
    x = X[3]                                   # one stream
    state = None
    for t in range(12):
        before_step = state
        y_t, state = s.step(x[t], state)
        want, want_state = est.predict(x[None, :t + 1], return_state=True)
        want = want[0, -1] if seq else want[0]
        if cls is RNNClassifier:
            assert y_t == want
            p_t, _ = s.step_proba(x[t], before_step)
            wp = est.predict_proba(x[None, :t + 1])
            np.testing.assert_allclose(p_t, wp[0, -1] if seq else wp[0], rtol=1e-5, atol=1e-6)
        else:
            assert np.ndim(y_t) == 0
            assert y_t == pytest.approx(want, rel=1e-5, abs=1e-6)
        got_h = state[0] if cell == "lstm" else state
        want_h = want_state[0] if cell == "lstm" else want_state
        np.testing.assert_allclose(got_h[:, 0], want_h[:, 0], rtol=1e-5, atol=1e-6)
    # the estimator was not touched
    for k, v in vars(est).items():
        if isinstance(v, np.ndarray):
            assert np.array_equal(v, before[k])


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_a_tuple_state_is_refused_for_networks_without_a_cell_state(cell):
    """An (h, c) tuple was accepted for a GRU or Elman network (issue 24)."""
    reg, X = _fit(RNNRegressor, cell, False)
    s = reg.stepper()
    _, h = s.step(X[0, 0])
    for bad in ((h, h), [h, h], (h,)):
        with pytest.raises(ValueError, match="one array .* only an LSTM's state is a tuple"):
            s.step(X[0, 1], bad)
    lstm, _ = _fit(RNNRegressor, "lstm", False)
    with pytest.raises(ValueError, match="tuple \\(h, c\\)"):
        lstm.stepper().step(X[0, 0], h)


def test_stepper_with_several_streams_and_multi_output():
    reg, X = _fit(RNNRegressor, "gru", False, y_kind="2d")
    s = reg.stepper(n_streams=4)
    state = s.initial_state()
    for t in range(10):
        y_t, state = s.step(X[:4, t], state)
    assert y_t.shape == (4, 2)
    np.testing.assert_allclose(y_t, reg.predict(X[:4, :10]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        s.step(X[:3, 0], state)
    with pytest.raises(ValueError, match="NaN"):
        s.step(np.full((4, 3), np.nan), state)


def test_stepper_is_a_snapshot_and_refuses_bidirectional():
    reg, X = _fit(RNNRegressor, "lstm", False)
    s = reg.stepper()
    y0, _ = s.step(X[0, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.partial_fit(X, np.ones(12) * 5)
    y1, _ = s.step(X[0, 0])
    assert y0 == y1
    assert reg.stepper().step(X[0, 0])[0] != y0
    s2 = pickle.loads(pickle.dumps(reg)).stepper()
    assert s2.step(X[0, 0])[0] == reg.stepper().step(X[0, 0])[0]
    bi, _ = _fit(RNNRegressor, "gru", False, bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        bi.stepper()
    with pytest.raises(ValueError, match="n_streams"):
        reg.stepper(n_streams=0)
