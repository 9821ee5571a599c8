"""The training controls, tested for their behaviour: sample and class
weights, a given validation set, learning-rate schedules, dropout, the
forget-gate bias, defaults that learn, scikit-learn callbacks."""
import math
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, recall_score
from sklearn.preprocessing import StandardScaler, scale
from sklearn.utils import shuffle

from crnn import RNNClassifier, RNNRegressor
from crnn._base.callbacks import HAVE_CALLBACKS
from callback_helpers import StopAfter


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _series(n=120, T=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, 2))
    y = X[:, :, 0].sum(axis=1) * 0.3 + X[:, -1, 1]
    return X, y


# ---------------------------------------------------------------------------
# sample_weight


def test_integer_weights_equal_repeated_samples_for_sequences_and_ragged_input():
    """Beyond scikit-learn's check (flat X): per-step targets and ragged
    sequences, one batch per epoch, float64."""
    rng = np.random.default_rng(1)
    X = [rng.normal(size=(n, 2)) for n in rng.integers(2, 9, size=12)]
    y = [x[:, 0].cumsum() for x in X]
    w = rng.integers(0, 4, size=12)
    Xr = [x for x, k in zip(X, w) for _ in range(k)]
    yr = [t for t, k in zip(y, w) for _ in range(k)]
    kw = dict(cell="gru", hidden_size=6, return_sequences=True, max_iter=20, batch_size=100,
              dtype=np.float64, random_state=0)
    a = RNNRegressor(**kw).fit(X, y, sample_weight=w)
    b = RNNRegressor(**kw).fit(Xr, yr)
    for p, q in zip(a.predict(X), b.predict(X)):
        np.testing.assert_allclose(p, q, rtol=1e-7, atol=1e-9)
    assert a.loss_curve_ == pytest.approx(b.loss_curve_, rel=1e-9)


def test_per_step_weights_zero_out_steps():
    """With a zero weight on a step, its target cannot matter."""
    X, _ = _series(60, T=6)
    y = np.cumsum(X[:, :, 0], axis=1)
    w = np.ones((60, 6))
    w[:, :3] = 0
    y2 = y.copy()
    y2[:, :3] = 100.0                       # garbage where the weight is zero
    kw = dict(hidden_size=8, return_sequences=True, max_iter=5, random_state=0)
    a = RNNRegressor(**kw).fit(X, y, sample_weight=w)
    b = RNNRegressor(**kw).fit(X, y2, sample_weight=w)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    c = RNNRegressor(**kw).fit(X, y2)
    assert not np.allclose(a.predict(X), c.predict(X))
    # score with per-step weights ignores those steps too
    assert a.score(X, y, sample_weight=w) == a.score(X, y2, sample_weight=w)


def test_weighted_training_loss_is_the_weighted_mean():
    """One full-batch epoch with a learning rate of ~0: loss_ is the
    weighted mean squared error of the initial model."""
    X, y = _series(50)
    w = np.random.default_rng(2).random(50) * 3
    reg = RNNRegressor(hidden_size=5, max_iter=1, batch_size=50, learning_rate_init=1e-12,
                       dtype=np.float64, random_state=0).fit(X, y, sample_weight=w)
    pred = reg.predict(X)
    assert reg.loss_ == pytest.approx(np.sum(w * (pred - y) ** 2) / np.sum(w), rel=1e-6)


def test_sample_weight_errors_and_partial_fit():
    X, y = _series(30)
    reg = RNNRegressor(max_iter=2)
    for bad, match in [(np.ones(29), "shape"), (-np.ones(30), "Negative"),
                       (np.zeros(30), "zero"), (np.full(30, np.nan), "NaN"),
                       (np.ones((30, 2)), "shape")]:
        with pytest.raises(ValueError, match=match):
            reg.fit(X, y, sample_weight=bad)
    assert not hasattr(reg, "n_iter_")
    w = np.ones(30)
    w[:27] = 0                            # the 3 samples left may all be held out
    with pytest.raises(ValueError, match="weights are all zero"):
        for seed in range(20):
            RNNRegressor(early_stopping=True, validation_fraction=0.1, max_iter=1,
                         random_state=seed).fit(X, y, sample_weight=w)
    reg.partial_fit(X, y, sample_weight=np.arange(30.0))
    reg.partial_fit(X, y, sample_weight=2.0)              # a scalar weighs every sample
    assert reg.n_iter_ == 2
    clf = RNNClassifier(max_iter=2)
    with pytest.raises(ValueError, match=r"\bclass\b"):
        clf.fit(X, (y > 0).astype(int), sample_weight=(y > 0).astype(float))


# ---------------------------------------------------------------------------
# class_weight


def _imbalanced(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5, 2))
    score = X[:, :, 0].mean(axis=1) + 0.5 * rng.normal(size=n)
    y = (score > np.quantile(score, 0.9)).astype(int)     # 10 % positives
    return X, y


def test_balanced_class_weight_raises_minority_recall():
    X, y = _imbalanced()
    Xt, yt = _imbalanced(seed=1)
    kw = dict(hidden_size=8, max_iter=30, learning_rate_init=1e-2, random_state=0)
    plain = RNNClassifier(**kw).fit(X, y)
    balanced = RNNClassifier(class_weight="balanced", **kw).fit(X, y)
    r_plain = recall_score(yt, plain.predict(Xt))
    r_bal = recall_score(yt, balanced.predict(Xt))
    assert r_bal > r_plain + 0.2, (r_plain, r_bal)
    # a dict of the same weights trains the same model
    w = len(y) / (2 * np.bincount(y))
    as_dict = RNNClassifier(class_weight={0: w[0], 1: w[1]}, **kw).fit(X, y)
    np.testing.assert_array_equal(as_dict.predict_proba(Xt), balanced.predict_proba(Xt))
    # and so does sample_weight
    as_sw = RNNClassifier(**kw).fit(X, y, sample_weight=w[y])
    np.testing.assert_array_equal(as_sw.predict_proba(Xt), balanced.predict_proba(Xt))


def test_class_weight_errors():
    X, y = _imbalanced(60)
    with pytest.raises(ValueError, match="partial_fit"):
        RNNClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="not in the classes"):
        RNNClassifier(class_weight={5: 1.0}, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="class_weight"):
        RNNClassifier(class_weight="auto").fit(X, y)
    with pytest.raises(ValueError, match="class_weight"):
        RNNClassifier(class_weight={0: -1.0}).fit(X, y)


# ---------------------------------------------------------------------------
# a validation set given to fit


def test_X_val_early_stopping_restores_the_best_weights_on_that_set():
    X, y = _series(200, seed=0)
    Xv, yv = _series(60, seed=5)
    wv = np.random.default_rng(3).random(60)
    reg = RNNRegressor(hidden_size=12, max_iter=30, early_stopping=True, n_iter_no_change=4,
                       learning_rate_init=3e-2, random_state=0)
    reg.fit(X, y, X_val=Xv, y_val=yv, sample_weight_val=wv)
    assert reg.n_iter_ == len(reg.validation_scores_) and reg.t_ == 200 * reg.n_iter_
    best = int(np.argmax(reg.validation_scores_))
    assert best < reg.n_iter_ - 1               # stopped after the best epoch: restored
    assert reg.score(Xv, yv, sample_weight=wv) == pytest.approx(reg.best_validation_score_,
                                                                abs=1e-6)
    loss = np.average((reg.predict(Xv) - yv) ** 2, weights=wv)
    assert loss == pytest.approx(reg.validation_loss_curve_[best], rel=1e-5)


def test_X_val_for_the_classifier_and_errors():
    X, y = _imbalanced(200)
    Xv, yv = _imbalanced(40, seed=3)
    clf = RNNClassifier(max_iter=5, early_stopping=True, random_state=0)
    clf.fit(X, y, X_val=Xv, y_val=yv)
    assert clf.best_validation_score_ == pytest.approx(clf.score(Xv, yv))
    with pytest.raises(ValueError, match="early_stopping is False"):
        RNNClassifier().fit(X, y, X_val=Xv, y_val=yv)
    with pytest.raises(ValueError, match="y_val was not provided"):
        clf.fit(X, y, X_val=Xv)
    with pytest.raises(ValueError, match="labels not in classes"):
        clf.fit(X, y, X_val=Xv, y_val=yv + 5)
    with pytest.raises(ValueError, match="X_val has 3 features"):
        clf.fit(X, y, X_val=np.zeros((40, 5, 3)), y_val=yv)


# ---------------------------------------------------------------------------
# learning-rate schedules


def test_schedules_follow_their_formulas():
    X, y = _series(40)
    kw = dict(hidden_size=4, max_iter=12, learning_rate_init=0.02, n_iter_no_change=1000,
              random_state=0)
    r = RNNRegressor(learning_rate="constant", **kw).fit(X, y)
    assert r.learning_rate_curve_ == [0.02] * 12
    r = RNNRegressor(learning_rate="invscaling", power_t=0.25, **kw).fit(X, y)
    assert r.learning_rate_curve_ == pytest.approx([0.02 / (40 * e + 1) ** 0.25
                                                    for e in range(12)])
    r = RNNRegressor(learning_rate="cosine", **kw).fit(X, y)
    assert r.learning_rate_curve_ == pytest.approx(
        [0.01 * (1 + math.cos(math.pi * e / 12)) for e in range(12)])
    # partial_fit continues the schedule
    p = RNNRegressor(learning_rate="cosine", **kw)
    for _ in range(3):
        p.partial_fit(X, y)
    assert p.learning_rate_curve_ == pytest.approx(r.learning_rate_curve_[:3])


def test_adaptive_divides_by_5_on_plateaus_then_stops():
    X, y = _series(40)
    # tol so large that no epoch improves: the rate drops after every
    # n_iter_no_change + 1 epochs until it is at most 1e-6
    r = RNNRegressor(hidden_size=4, max_iter=500, learning_rate="adaptive",
                     learning_rate_init=0.01, tol=1e6, n_iter_no_change=2,
                     random_state=0).fit(X, y)
    curve = np.array(r.learning_rate_curve_)
    levels = sorted(set(curve.tolist()), reverse=True)
    assert levels == pytest.approx([0.01 / 5 ** k for k in range(len(levels))])
    assert levels[-1] <= 1e-6 < levels[-2]
    # the first level lasts 1 + n_iter_no_change + 1 epochs (the first epoch
    # improves on inf), the later ones n_iter_no_change + 1
    assert np.sum(curve == levels[0]) == 4 and np.sum(curve == levels[1]) == 3
    assert r.n_iter_ < 500


def test_the_scheduled_rate_is_the_one_applied():
    """Plain SGD, one batch per epoch: a cosine schedule trains the same
    weights as constant-rate epochs run by hand at the formula's rates."""
    X, y = _series(30)
    kw = dict(hidden_size=5, solver="sgd", momentum=0.0, batch_size=30, shuffle=False,
              dtype=np.float64, random_state=0)
    sched = RNNRegressor(learning_rate="cosine", learning_rate_init=0.05, max_iter=4,
                         n_iter_no_change=100, **kw).fit(X, y)
    manual = RNNRegressor(learning_rate="constant", learning_rate_init=0.05, **kw)
    for e in range(4):
        manual.set_params(learning_rate_init=0.025 * (1 + math.cos(math.pi * e / 4)))
        manual.partial_fit(X, y)
    for k, v in sched.state_dict().items():
        np.testing.assert_allclose(manual.state_dict()[k], v, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------
# dropout


def _noisy_task(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 10, 4))
    y = np.tanh(X[:, -3:, 0].sum(axis=1)) + 0.5 * rng.normal(size=n)
    return X, y


def test_dropout_reduces_overfitting_and_is_off_in_predict():
    """80 noisy samples, a 2-layer GRU of 64 units trained to memorise them
    (train R^2 ~1): dropout between the layers lifts the held-out R^2 (by
    about 0.05 here, on every seed: inter-layer dropout is a mild
    regulariser), averaged over three initialisations."""
    X, y = _noisy_task(80, 0)
    Xt, yt = _noisy_task(2000, 1)
    kw = dict(cell="gru", hidden_size=64, num_layers=2, max_iter=150, batch_size=16,
              learning_rate_init=5e-3, n_iter_no_change=1000)
    gains = []
    for seed in range(3):
        plain = RNNRegressor(random_state=seed, **kw).fit(X, y)
        drop = RNNRegressor(dropout=0.5, random_state=seed, **kw).fit(X, y)
        assert plain.score(X, y) > 0.95                   # it does overfit
        gains.append(drop.score(Xt, yt) - plain.score(Xt, yt))
    assert np.mean(gains) > 0.02 and sum(g > 0 for g in gains) >= 2, gains
    # predict has no dropout: deterministic and the same as with dropout=0
    p = drop.predict(Xt)
    np.testing.assert_array_equal(p, drop.predict(Xt))
    np.testing.assert_array_equal(p, drop.set_params(dropout=0.0).predict(Xt))


def test_dropout_is_reproducible_and_seeded_by_random_state():
    X, y = _series(64)
    kw = dict(hidden_size=8, num_layers=3, dropout=0.3, max_iter=3, n_jobs=2)
    a = RNNRegressor(random_state=0, **kw).fit(X, y)
    b = RNNRegressor(random_state=0, **kw).fit(X, y)
    c = RNNRegressor(random_state=1, **kw).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert not np.array_equal(a.predict(X), c.predict(X))
    # one layer: nothing to drop between layers, dropout changes nothing
    one = dict(kw, num_layers=1)
    d0 = RNNRegressor(random_state=0, **dict(one, dropout=0.0)).fit(X, y)
    d1 = RNNRegressor(random_state=0, **one).fit(X, y)
    np.testing.assert_array_equal(d0.predict(X), d1.predict(X))


def test_dropout_validation():
    X, y = _series(20)
    for bad in (1.0, -0.1, "x"):
        with pytest.raises(ValueError, match="dropout"):
            RNNRegressor(dropout=bad).fit(X, y)


# ---------------------------------------------------------------------------
# forget-gate bias and defaults that learn


def test_forget_bias_shifts_the_lstm_forget_gate_at_init():
    X, y = _series(20)
    a = RNNRegressor(cell="lstm", hidden_size=6, num_layers=2, max_iter=1,
                     learning_rate_init=1e-12, forget_bias=0.0, random_state=0).fit(X, y)
    b = RNNRegressor(cell="lstm", hidden_size=6, num_layers=2, max_iter=1,
                     learning_rate_init=1e-12, random_state=0).fit(X, y)
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa:
        diff = sb[k] - sa[k]
        if k.startswith("rnn.bias_ih"):
            np.testing.assert_allclose(diff[6:12], 1.0, atol=1e-5)
            np.testing.assert_allclose(np.delete(diff, np.s_[6:12]), 0, atol=1e-5)
        else:
            np.testing.assert_allclose(diff, 0, atol=1e-5)
    # forget_bias=0 is PyTorch's initialisation: U(-1/sqrt(H), 1/sqrt(H)) everywhere
    assert max(np.abs(v).max() for v in sa.values()) <= 1 / np.sqrt(6) + 1e-5


CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("gru", "tanh"), ("lstm", "tanh")]


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell,nonlinearity", CELLS)
def test_defaults_pass_the_fitting_parts_of_sklearns_train_checks(cell, nonlinearity,
                                                                   num_layers):
    """check_regressors_train / check_classifiers_train, their data and
    thresholds (R^2 > 0.5, accuracy > 0.83), every cell at depths 1-2, at
    the default parameters but for what the checks set (alpha=0.01,
    random_state=0)."""
    from sklearn.utils.estimator_checks import _regression_dataset
    X, y = _regression_dataset()
    y = scale(y)
    kw = dict(cell=cell, nonlinearity=nonlinearity, num_layers=num_layers, alpha=0.01,
              random_state=0)
    reg = RNNRegressor(**kw).fit(X, y)
    reg.fit(X.tolist(), y.tolist())
    assert reg.score(X, y) > 0.5
    Xm, ym = make_blobs(n_samples=300, random_state=0)
    Xm, ym = shuffle(Xm, ym, random_state=7)
    Xm = StandardScaler().fit_transform(Xm)
    for labels in (ym, (ym != 0).astype(int)):      # multi-class and binary
        clf = RNNClassifier(**kw).fit(Xm, labels)
        assert accuracy_score(labels, clf.predict(Xm)) > 0.83


# ---------------------------------------------------------------------------
# scikit-learn callbacks


needs_callbacks = pytest.mark.skipif(not HAVE_CALLBACKS, reason="scikit-learn < 1.9")


@needs_callbacks
def test_scoring_monitor_sees_every_epoch_and_a_callback_can_stop():
    from sklearn.callback import ScoringMonitor
    X, y = _series(60)
    sm = ScoringMonitor(scoring="r2")
    reg = RNNRegressor(hidden_size=8, max_iter=5, learning_rate_init=1e-2, random_state=0)
    reg.set_callbacks(sm).fit(X, y)
    # one root task ("fit") and one per epoch, scored on the model of that epoch
    frame = sm.get_logs().data_as_pandas
    epochs = frame[frame["task_name"] == "epoch"]
    assert len(epochs) == 5
    assert epochs["r2"].iloc[-1] == pytest.approx(reg.score(X, y), abs=1e-9)
    assert epochs["r2"].iloc[-1] > epochs["r2"].iloc[0]

    stopped = RNNRegressor(hidden_size=8, max_iter=50, random_state=0)
    stopped.set_callbacks(StopAfter(3)).fit(X, y)
    assert stopped.n_iter_ == 3
    # no callback state is left on the estimator; clone and pickle still work
    assert "_callback_fit_ctx" not in stopped.__dict__
    import pickle
    from sklearn.base import clone
    clone(stopped).fit(X, y)
    pickle.loads(pickle.dumps(stopped)).predict(X)


@needs_callbacks
@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a terminal")
def test_progress_bar_shows_in_a_real_terminal(tmp_path):
    """The ProgressBar, in a pseudo-terminal made by script(1), as a user
    running a script would see it."""
    pytest.importorskip("rich")
    prog = tmp_path / "run.py"
    prog.write_text(textwrap.dedent("""
        import warnings
        import numpy as np
        from sklearn.callback import ProgressBar
        from crnn import RNNClassifier
        warnings.simplefilter("ignore")
        rng = np.random.default_rng(0)
        X = rng.normal(size=(64, 5, 2)); y = (X[:, 0, 0] > 0).astype(int)
        RNNClassifier(hidden_size=4, max_iter=7).set_callbacks(ProgressBar()).fit(X, y)
        print("done")
    """))
    env = dict(os.environ, TERM="xterm", COLUMNS="100")
    out = subprocess.run(["script", "-qec", f"{sys.executable} {prog}", "/dev/null"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "RNNClassifier - fit" in text and "100%" in text and "done" in text
