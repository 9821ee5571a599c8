"""Variable-length sequences through the estimators."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score

from crnn import RNNClassifier, RNNRegressor


def _ragged(n=30, lo=2, hi=15, D=3, seed=0):
    rng = np.random.default_rng(seed)
    lens = rng.integers(lo, hi + 1, size=n)
    X = [rng.normal(size=(t, D)) for t in lens]
    return X, lens, rng


def _quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_each_sequence_as_if_alone(cell, bidirectional, n_jobs):
    X, lens, rng = _ragged()
    y = np.array([x[:, 0].sum() for x in X])
    reg = _quiet_fit(RNNRegressor(cell=cell, hidden_size=12, num_layers=2, max_iter=2,
                                  bidirectional=bidirectional, n_jobs=n_jobs, random_state=0,
                                  dtype=np.float64), X, y)
    pred = reg.predict(X)
    assert pred.shape == (30,)
    alone = np.array([reg.predict(x[None])[0] for x in X])
    np.testing.assert_allclose(pred, alone, rtol=1e-12, atol=1e-12)
    # per-step outputs of a sequence model come back as a list
    seqm = _quiet_fit(RNNRegressor(cell=cell, hidden_size=8, max_iter=2, return_sequences=True,
                                   bidirectional=bidirectional, n_jobs=n_jobs, random_state=0,
                                   dtype=np.float64),
                      X, [x[:, 1] for x in X])
    out = seqm.predict(X)
    assert isinstance(out, list) and [len(o) for o in out] == list(lens)
    for x, o in zip(X, out):
        np.testing.assert_allclose(o, seqm.predict(x[None])[0], rtol=1e-12, atol=1e-12)


def test_padding_does_not_matter_and_lists_of_equal_lengths_work():
    X, lens, rng = _ragged(n=20)
    y = rng.integers(0, 3, size=20)
    clf = _quiet_fit(RNNClassifier(hidden_size=8, max_iter=3, random_state=0), X, y)
    assert clf.n_features_in_ == 3
    proba = clf.predict_proba(X)
    assert proba.shape == (20, 3)
    # an object array of sequences is the same input
    obj = np.empty(len(X), dtype=object)
    obj[:] = X
    np.testing.assert_array_equal(clf.predict_proba(obj), proba)
    # lists of equal-length sequences: per-step outputs as lists
    same = [x[:5] for x in X if len(x) >= 5]
    seqc = _quiet_fit(RNNClassifier(hidden_size=8, max_iter=2, return_sequences=True,
                                    random_state=0),
                      same, [np.arange(5) % 2 for _ in same])
    assert isinstance(seqc.predict(same), list)
    assert seqc.predict(np.stack(same)).shape == (len(same), 5)
    np.testing.assert_array_equal(np.stack(seqc.predict(same)), seqc.predict(np.stack(same)))


def test_univariate_ragged_series():
    rng = np.random.default_rng(3)
    X = [rng.normal(size=t) for t in (5, 9, 3, 12)]
    reg = _quiet_fit(RNNRegressor(hidden_size=4, max_iter=2, random_state=0), X,
                     np.array([1.0, 2.0, 3.0, 4.0]))
    assert reg.n_features_in_ == 1
    assert reg.predict(X).shape == (4,)


def test_learns_on_ragged_sequences():
    """Is the running mean of the first feature positive at the end? With
    lengths 3..40 the answer needs each sequence's own last state."""
    rng = np.random.default_rng(1)
    lens = rng.integers(3, 41, size=600)
    X = [rng.normal(size=(t, 2)) + np.array([rng.choice([-0.6, 0.6]), 0.0]) for t in lens]
    y = np.array([int(x[:, 0].mean() > 0) for x in X])
    Xtr, ytr, Xte, yte = X[:450], y[:450], X[450:], y[450:]
    clf = _quiet_fit(RNNClassifier(cell="gru", hidden_size=16, max_iter=15,
                                   learning_rate_init=1e-2, random_state=0), Xtr, ytr)
    assert clf.score(Xte, yte) > 0.9


def test_sequence_targets_and_score():
    X, lens, rng = _ragged(n=25)
    ys = [np.cumsum(x[:, 0]) for x in X]
    reg = _quiet_fit(RNNRegressor(hidden_size=16, max_iter=30, return_sequences=True,
                                  learning_rate_init=1e-2, random_state=0), X, ys)
    assert np.isfinite(reg.score(X, ys))
    assert reg.score(X, ys) > 0.5
    y2 = [np.stack([y, -y], axis=1) for y in ys]
    reg2 = _quiet_fit(RNNRegressor(hidden_size=8, max_iter=2, return_sequences=True,
                                   random_state=0), X, y2)
    out = reg2.predict(X)
    assert [o.shape for o in out] == [(t, 2) for t in lens]
    clf = _quiet_fit(RNNClassifier(hidden_size=8, max_iter=2, return_sequences=True,
                                   random_state=0), X, [(x[:, 0] > 0).astype(int) for x in X])
    proba = clf.predict_proba(X)
    assert [p.shape for p in proba] == [(t, 2) for t in lens]
    assert 0 <= clf.score(X, [(x[:, 0] > 0).astype(int) for x in X]) <= 1


def test_early_stopping_partial_fit_and_states_with_ragged_input():
    X, lens, rng = _ragged(n=60, lo=3)
    y = np.array([x[:, 0].sum() for x in X])
    reg = _quiet_fit(RNNRegressor(hidden_size=8, max_iter=5, early_stopping=True,
                                  random_state=0), X, y)
    assert len(reg.validation_scores_) == reg.n_iter_
    reg.set_params(early_stopping=False).partial_fit(X[:10], y[:10])
    assert reg.n_iter_ == len(reg.loss_curve_)
    # chunked prediction with carried state, sequence by sequence
    lstm = _quiet_fit(RNNRegressor(cell="lstm", hidden_size=8, max_iter=1, return_sequences=True,
                                   random_state=0, dtype=np.float64),
                      X, [x[:, 0] for x in X])
    full = lstm.predict(X)
    first = [x[:2] for x in X]
    rest = [x[2:] for x in X]
    p1, state = lstm.predict(first, return_state=True)
    p2 = lstm.predict(rest, initial_state=state)
    for f, a, b in zip(full, p1, p2):
        np.testing.assert_allclose(f, np.concatenate([a, b]), rtol=1e-12, atol=1e-12)


def test_sklearn_tools_with_ragged_input():
    X, lens, rng = _ragged(n=60, lo=3, hi=12)
    y = np.array([int(x[:, 0].mean() > 0) for x in X])
    scores = cross_val_score(RNNClassifier(hidden_size=8, max_iter=3, random_state=0), X, y,
                             cv=3)
    assert scores.shape == (3,)
    grid = GridSearchCV(RNNClassifier(max_iter=2, random_state=0),
                        {"hidden_size": [4, 8]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
    assert grid.best_params_["hidden_size"] in (4, 8)


def test_ragged_input_errors():
    X, lens, rng = _ragged(n=10)
    reg = RNNRegressor(max_iter=1)
    bad = list(X)
    bad[3] = bad[3].copy()
    bad[3][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"X\[3\].*NaN"):
        reg.fit(bad, np.zeros(10))
    bad = list(X)
    bad[2] = bad[2][:, :2]
    with pytest.raises(ValueError, match=r"X\[2\] has 2 features"):
        reg.fit(bad, np.zeros(10))
    bad = list(X)
    bad[1] = bad[1][:0]
    with pytest.raises(ValueError, match=r"X\[1\] has 0 time steps"):
        reg.fit(bad, np.zeros(10))
    with pytest.raises(ValueError, match="different numbers of samples"):
        reg.fit(X, np.zeros(9))
    seq = RNNRegressor(max_iter=1, return_sequences=True)
    ys = [np.zeros(len(x)) for x in X]
    ys[4] = ys[4][:-1]
    with pytest.raises(ValueError, match=r"y\[4\] has"):
        seq.fit(X, ys)
    with pytest.raises(ValueError, match="has 10 sequences but y has 9"):
        seq.fit(X, ys[:9])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = RNNRegressor(max_iter=1).fit(X, np.zeros(10))
    with pytest.raises(ValueError, match="features per time step"):
        fitted.predict([x[:, :2] for x in X])
