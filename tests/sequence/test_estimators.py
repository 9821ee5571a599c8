"""Estimator behaviour: learning, determinism, the fit loop, errors."""
import io
import os
import signal
import threading
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from crnn import RNNClassifier, RNNRegressor


def _sine_windows(n=2400, window=20, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n + window) * 0.15
    s = np.sin(t) + 0.5 * np.sin(0.31 * t) + noise * rng.normal(size=t.size)
    X = np.lib.stride_tricks.sliding_window_view(s[:-1], window)[:n]
    y = s[window:window + n]
    return X, y


def _toy(seed=0, n=40, T=6, D=3, classes=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, D))
    y = (X[:, -1, 0] > 0).astype(int) + (X[:, 0, 1] > 0.5)
    return X, y % classes


# ---------------------------------------------------------------------------
# it learns


def test_noisy_sine_next_value():
    """Next-value prediction of a noisy sine: R^2 > 0.95 on held-out windows
    (the later part of the series)."""
    X, y = _sine_windows()
    Xtr, ytr, Xte, yte = X[:1800], y[:1800], X[1800:], y[1800:]
    reg = RNNRegressor(hidden_size=32, max_iter=40, learning_rate_init=3e-3,
                       random_state=0).fit(Xtr, ytr)
    assert reg.n_features_in_ == 1
    assert reg.score(Xte, yte) > 0.95
    # a trained network beats the persistence forecast
    naive = 1 - np.mean((Xte[:, -1] - yte) ** 2) / np.var(yte)
    assert reg.score(Xte, yte) > naive


def test_digits_row_by_row():
    """sklearn's digits read row by row (8 steps of 8 features): accuracy >= 0.95."""
    d = load_digits()
    X = d.data.reshape(-1, 8, 8) / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, d.target, test_size=0.25, random_state=0,
                                          stratify=d.target)
    clf = RNNClassifier(hidden_size=64, max_iter=60, learning_rate_init=3e-3,
                        random_state=0).fit(Xtr, ytr)
    assert clf.n_features_in_ == 8
    acc = clf.score(Xte, yte)
    assert acc >= 0.95, acc
    # training accuracy (what check_classifiers_train asks, on 3D input)
    assert clf.score(Xtr, ytr) > 0.83


def test_next_token_prediction_with_return_sequences():
    """Per-step classification: predict the next symbol of a deterministic
    cycle from the current one (o_t = softmax(V s_t))."""
    rng = np.random.default_rng(0)
    seqs = (np.arange(12)[None, :] + rng.integers(0, 5, size=(200, 1))) % 5
    X = np.eye(5)[seqs[:, :-1]]
    y = seqs[:, 1:]
    clf = RNNClassifier(hidden_size=16, return_sequences=True, max_iter=60,
                        learning_rate_init=1e-2, random_state=0).fit(X, y)
    assert clf.predict(X).shape == y.shape
    assert clf.predict_proba(X).shape == (200, 11, 5)
    assert clf.score(X, y) > 0.99


# ---------------------------------------------------------------------------
# determinism and the training loop


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_same_random_state_gives_identical_weights(n_jobs):
    X, y = _toy()
    kw = dict(hidden_size=12, num_layers=2, max_iter=5, batch_size=8, random_state=3,
              n_jobs=n_jobs)
    a = RNNClassifier(**kw).fit(X, y).state_dict()
    b = RNNClassifier(**kw).fit(X, y).state_dict()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    c = RNNClassifier(**{**kw, "random_state": 4}).fit(X, y).state_dict()
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_partial_fit_is_one_epoch_and_keeps_optimizer_state():
    X, y = _toy()
    kw = dict(hidden_size=8, batch_size=16, random_state=0, n_iter_no_change=100)
    fitted = RNNClassifier(max_iter=3, **kw)
    with pytest.warns(ConvergenceWarning):
        fitted.fit(X, y)
    inc = RNNClassifier(**kw)
    for _ in range(3):
        inc.partial_fit(X, y, classes=np.unique(y))
    assert inc.n_iter_ == 3 and inc.t_ == 3 * len(X)
    assert inc._opt_step == fitted._opt_step == 3 * 3
    assert inc.loss_curve_ == fitted.loss_curve_
    a, b = fitted.state_dict(), inc.state_dict()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_warm_start_continues_from_the_weights():
    X, y = _sine_windows(300)
    reg = RNNRegressor(hidden_size=8, max_iter=4, random_state=0, warm_start=True)
    with pytest.warns(ConvergenceWarning):
        reg.fit(X, y)
    first = reg.state_dict()
    with pytest.warns(ConvergenceWarning):
        reg.fit(X, y)
    assert len(reg.loss_curve_) == 8 and reg.n_iter_ == 8
    assert reg.loss_curve_[4] < reg.loss_curve_[0]
    cold = RNNRegressor(hidden_size=8, max_iter=4, random_state=0)
    with pytest.warns(ConvergenceWarning):
        cold.fit(X, y)
    assert all(np.array_equal(cold.state_dict()[k], first[k]) for k in first)


def test_convergence_warning_and_tol_stopping():
    X, y = _toy()
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        RNNClassifier(max_iter=2).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = RNNClassifier(max_iter=100, tol=1e3, n_iter_no_change=3).fit(X, y)
    assert clf.n_iter_ == 5          # first epoch sets best_loss_, then 4 > 3 misses
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.best_validation_score_ is None


def test_early_stopping_restores_the_best_weights():
    X, y = _sine_windows(600)
    reg = RNNRegressor(hidden_size=16, max_iter=25, early_stopping=True, n_iter_no_change=3,
                       validation_fraction=0.2, learning_rate_init=2e-2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    assert len(reg.validation_scores_) == reg.n_iter_ == len(reg.validation_loss_curve_)
    assert reg.best_loss_ is None
    assert reg.best_validation_score_ == max(reg.validation_scores_)
    # rebuild the validation split the way fit draws it: weights first, then the split
    rng = check_random_state(0)
    reg._layout.init_params(rng, np.float32)
    _, X_val, _, y_val = train_test_split(X, y, random_state=rng, test_size=0.2)
    assert reg.score(X_val, y_val) == pytest.approx(reg.best_validation_score_, abs=1e-9)
    assert np.mean((reg.predict(X_val) - y_val) ** 2) == pytest.approx(
        min(reg.validation_loss_curve_), rel=1e-5)


def test_early_stopping_for_the_classifier_is_stratified_and_scored_by_accuracy():
    X, y = _toy(n=80)
    clf = RNNClassifier(hidden_size=8, max_iter=8, early_stopping=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    scores = np.array(clf.validation_scores_)
    assert np.all((scores >= 0) & (scores <= 1))
    # accuracies on 8 held-out samples are multiples of 1/8
    assert np.allclose(scores * 8, np.round(scores * 8))
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        RNNClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_verbose_prints_a_line_per_epoch():
    X, y = _toy()
    buf = io.StringIO()
    with redirect_stdout(buf), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        RNNClassifier(max_iter=3, verbose=1, early_stopping=True, random_state=0).fit(X, y)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.startswith("Epoch")]
    assert len(lines) == 3
    assert "loss = " in lines[0] and "validation loss" in lines[0]
    assert "validation score" in lines[0] and lines[0].endswith(" s")


def test_ctrl_c_stops_after_the_current_batch():
    X, y = _sine_windows(2000)
    reg = RNNRegressor(hidden_size=32, max_iter=10_000, batch_size=16, random_state=0,
                       n_iter_no_change=10_000)
    # Python's default handler, or SIG_IGN when the run was started in the
    # background (nohup, `&` in a script): fit must put it back either way
    before = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.warns(UserWarning, match="interrupted"):
            reg.fit(X, y)
    finally:
        timer.cancel()
    assert 0 < reg.n_iter_ < 10_000 or reg.n_iter_ == 0
    assert np.all(np.isfinite(reg.predict(X[:5])))
    assert reg._opt_step >= 1
    # the handler is gone afterwards
    assert signal.getsignal(signal.SIGINT) is before


def test_bptt_truncate_trains_and_changes_the_gradient():
    X, y = _sine_windows(200, window=30)
    kw = dict(hidden_size=8, max_iter=2, random_state=0, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full = RNNRegressor(**kw).fit(X, y).state_dict()
        cut = RNNRegressor(bptt_truncate=3, **kw).fit(X, y).state_dict()
    assert not np.allclose(full["rnn.weight_hh_l0"], cut["rnn.weight_hh_l0"])
    # the head sees the same states at the first step: only the recurrence differs
    assert np.all(np.isfinite(cut["rnn.weight_hh_l0"]))


# ---------------------------------------------------------------------------
# shapes and conventions


def test_2d_input_is_a_batch_of_univariate_series():
    X, y = _sine_windows(200)
    a = RNNRegressor(hidden_size=8, max_iter=3, random_state=0)
    b = RNNRegressor(hidden_size=8, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(X, y)
        b.fit(X[:, :, None], y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X[:, :, None]))
    assert a.n_features_in_ == 1
    # a many-to-one model reads sequences of any length
    assert a.predict(X[:, :7]).shape == (200,)


def test_regressor_output_shapes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5, 2))
    cases = [
        (dict(), rng.normal(size=30), (30,)),
        (dict(), rng.normal(size=(30, 1)), (30, 1)),
        (dict(), rng.normal(size=(30, 3)), (30, 3)),
        (dict(return_sequences=True), rng.normal(size=(30, 5)), (30, 5)),
        (dict(return_sequences=True), rng.normal(size=(30, 5, 2)), (30, 5, 2)),
    ]
    for kw, y, shape in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            reg = RNNRegressor(hidden_size=4, max_iter=2, **kw).fit(X, y)
        pred = reg.predict(X)
        assert pred.shape == shape and pred.dtype == np.float64
        assert np.isfinite(reg.score(X, y))


def test_classifier_with_string_labels_and_two_classes():
    X, y = _toy(classes=2)
    labels = np.array(["no", "yes"])[y]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = RNNClassifier(max_iter=5).fit(X, labels)
    assert list(clf.classes_) == ["no", "yes"]
    proba = clf.predict_proba(X)
    assert proba.shape == (40, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-10)
    assert set(clf.predict(X)) <= {"no", "yes"}
    assert clf.state_dict()["head.weight"].shape == (2, 32)


def test_sample_order_invariance_at_float32_precision():
    X, y = _toy(n=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = RNNClassifier(max_iter=3, random_state=0).fit(X, y)
    perm = np.random.default_rng(1).permutation(60)
    np.testing.assert_allclose(clf.predict_proba(X)[perm], clf.predict_proba(X[perm]),
                               rtol=1e-5, atol=1e-6)
    for start in range(0, 60, 7):
        np.testing.assert_allclose(clf.predict_proba(X[start:start + 7]),
                                   clf.predict_proba(X)[start:start + 7], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_only_and_memmap_inputs(tmp_path, dtype):
    X, y = _toy()
    path = tmp_path / "X.npy"
    np.save(path, X)
    Xm = np.load(path, mmap_mode="r")
    yr = y.copy()
    yr.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = RNNClassifier(max_iter=2, random_state=0, dtype=dtype).fit(Xm, yr)
    assert clf._theta.dtype == dtype
    np.testing.assert_array_equal(clf.predict(Xm), clf.predict(X))


def test_n_jobs_values():
    X, y = _toy()
    for n_jobs in (None, -1, 1, 2, 3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = RNNClassifier(max_iter=1, n_jobs=n_jobs, random_state=0).fit(X, y)
        assert clf.predict(X).shape == (40,)


# ---------------------------------------------------------------------------
# errors


def _fitted(cls=RNNClassifier, **kw):
    X, y = _toy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cls(max_iter=1, random_state=0, **kw).fit(X, y if cls is RNNClassifier else
                                                          y.astype(float))


@pytest.mark.parametrize("cls", [RNNClassifier, RNNRegressor])
def test_bad_X_raises_clear_errors(cls):
    X, y = _toy()
    y = y if cls is RNNClassifier else y.astype(float)
    est = cls(max_iter=1)
    bad = X.copy()
    bad[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad, y)
    bad[3, 2, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        est.fit(bad, y)
    with pytest.raises(ValueError, match="2D"):
        est.fit(X[:, 0, 0], y)
    with pytest.raises(ValueError, match="4 dimensions"):
        est.fit(X[..., None], y)
    with pytest.raises(ValueError, match="0 sample"):
        est.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="0 time steps"):
        est.fit(X[:, :0], y)
    with pytest.raises(ValueError, match="0 features"):
        est.fit(X[:, :, :0], y)
    with pytest.raises(ValueError, match="numbers|convert"):
        est.fit(np.full((40, 3), "a"), y)
    with pytest.raises(ValueError, match="different numbers of samples"):
        est.fit(X, y[:-1])
    with pytest.raises(TypeError, match="sparse"):
        from scipy import sparse
        est.fit(sparse.random(40, 6, format="csr"), y)
    with pytest.raises(NotFittedError):
        cls().predict(X)
    fitted = _fitted(cls)
    with pytest.raises(ValueError, match="2 features per time step, but .* with 3"):
        fitted.predict(X[:, :, :2])
    with pytest.raises(ValueError, match="features per time step"):
        fitted.partial_fit(X[:, :, :2], y)
    bad = X.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted.predict(bad)


@pytest.mark.parametrize("param, value", [
    ("hidden_size", 0), ("hidden_size", 2.5), ("num_layers", 0), ("nonlinearity", "sigmoid"),
    ("solver", "lbfgs"), ("learning_rate_init", 0.0), ("batch_size", 0), ("max_iter", 0),
    ("alpha", -1.0), ("clip_norm", 0.0), ("bptt_truncate", -1), ("momentum", 1.5),
    ("beta_1", 1.0), ("beta_2", -0.1), ("epsilon", 0.0), ("validation_fraction", 1.0),
    ("n_iter_no_change", 0), ("tol", -1.0), ("shuffle", "yes"), ("n_jobs", 0),
    ("n_jobs", 1.5), ("dtype", np.int32), ("dtype", "float16"), ("return_sequences", 1),
    ("random_state", "seed"), ("verbose", -1), ("early_stopping", None),
])
def test_bad_parameters_are_rejected_in_fit(param, value):
    X, y = _toy()
    est = RNNClassifier(**{param: value})          # __init__ only stores
    assert est.get_params()[param] is value
    with pytest.raises(ValueError, match=f"'{param}' parameter"):
        est.fit(X, y)
    assert not hasattr(est, "classes_")


def test_classifier_target_errors():
    X, y = _toy()
    with pytest.raises(ValueError, match="Unknown label type"):
        RNNClassifier().fit(X, np.linspace(0, 1, 40))
    with pytest.raises(ValueError, match="class"):
        RNNClassifier().fit(X, np.ones(40))
    with pytest.raises(ValueError, match="classes must be passed"):
        RNNClassifier().partial_fit(X, y)
    clf = RNNClassifier().partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="not the same"):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="not in classes"):
        clf.partial_fit(X, y + 5)
    with pytest.raises(ValueError, match="per-step|return_sequences"):
        RNNClassifier().fit(X, np.stack([y, y], 1))
    with pytest.raises(ValueError, match="return_sequences=True, y must have shape"):
        RNNClassifier(return_sequences=True).fit(X, y)
    with pytest.raises(ValueError, match="target y is None"):
        RNNClassifier().fit(X, None)
    with pytest.warns(Warning, match="column-vector"):
        RNNClassifier(max_iter=1).fit(X, y[:, None])


def test_regressor_target_errors():
    X, y = _toy()
    y = y.astype(float)
    with pytest.raises(ValueError, match="NaN"):
        RNNRegressor().fit(X, np.where(y > 0, np.nan, y))
    with pytest.raises(ValueError, match="return_sequences"):
        RNNRegressor().fit(X, np.zeros((40, 6, 1, 1)))
    with pytest.raises(ValueError, match=r"\(40, 6\[, n_outputs\]\) matching X.s steps"):
        RNNRegressor(return_sequences=True).fit(X, np.zeros((40, 5)))
    reg = _fitted(RNNRegressor)
    with pytest.raises(ValueError, match="output"):
        reg.partial_fit(X, np.zeros((40, 2)))


def test_a_failed_call_leaves_the_model_as_it_was():
    X, y = _sine_windows(300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = RNNRegressor(hidden_size=8, max_iter=2, random_state=0).fit(X, y)
    before = reg.state_dict()
    attrs = (reg.n_iter_, reg.t_, list(reg.loss_curve_), reg._opt_step)
    # divergence: a huge learning rate with no clipping overflows float32
    reg.set_params(learning_rate_init=1e30, clip_norm=None, solver="sgd", warm_start=True)
    with pytest.raises(ValueError, match="non-finite"):
        reg.fit(X * 1e20, y * 1e30)
    with pytest.raises(ValueError, match="non-finite"):
        reg.partial_fit(X * 1e20, y * 1e30)
    # bad input to partial_fit
    with pytest.raises(ValueError):
        reg.partial_fit(X[:, :, None].repeat(2, axis=2), y)
    after = reg.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert (reg.n_iter_, reg.t_, list(reg.loss_curve_), reg._opt_step) == attrs


def test_load_state_dict_validates():
    reg = _fitted(RNNRegressor, hidden_size=6, num_layers=2)
    sd = reg.state_dict()
    fresh = RNNRegressor(hidden_size=6, num_layers=2).load_state_dict(sd)
    X, _ = _toy()
    np.testing.assert_array_equal(fresh.predict(X), reg.predict(X))
    assert fresh.n_features_in_ == 3 and fresh.n_outputs_ == 1
    with pytest.raises(ValueError, match="missing keys"):
        RNNRegressor(hidden_size=6, num_layers=3).load_state_dict(sd)
    with pytest.raises(ValueError, match="shape"):
        RNNRegressor(hidden_size=6, num_layers=2).load_state_dict(
            {**sd, "rnn.bias_hh_l1": np.zeros(5)})
    with pytest.raises(ValueError, match="unexpected keys"):
        RNNRegressor(hidden_size=6, num_layers=2).load_state_dict({**sd, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="NaN"):
        RNNRegressor(hidden_size=6, num_layers=2).load_state_dict(
            {**sd, "head.bias": np.array([np.nan])})
    with pytest.raises(ValueError, match="missing keys"):
        RNNRegressor(hidden_size=6, num_layers=2, bidirectional=True).load_state_dict(sd)
    with pytest.raises(ValueError, match="distinct labels"):
        RNNClassifier(hidden_size=6, num_layers=2).load_state_dict(
            {**sd, "head.weight": np.zeros((3, 6)), "head.bias": np.zeros(3)}, classes=[1, 2])
    # loaded weights are a starting point for partial_fit
    fresh.partial_fit(X, np.zeros(40))
    assert fresh.n_iter_ == 1


def test_parameter_changes_between_calls_are_seen():
    """Validation and the kernels' configuration are cached between calls;
    set_params must still take effect (and bad values still be caught)."""
    X, y = _sine_windows(100, window=12)
    reg = RNNRegressor(hidden_size=6, random_state=0, shuffle=False, batch_size=100)
    reg.partial_fit(X, y)
    reg.set_params(learning_rate_init=-1.0)
    with pytest.raises(ValueError, match="learning_rate_init"):
        reg.partial_fit(X, y)
    reg.set_params(learning_rate_init=1e-3)
    start = reg.state_dict()
    grads = {}
    for trunc in (None, 2):
        r = RNNRegressor(hidden_size=6, random_state=0, shuffle=False, batch_size=100,
                         bptt_truncate=trunc,
                         solver="sgd", momentum=0.0, learning_rate_init=1.0)
        r.load_state_dict(start)
        r.partial_fit(X, y)
        grads[trunc] = start["rnn.weight_hh_l0"] - r.state_dict()["rnn.weight_hh_l0"]
        reg.set_params(bptt_truncate=trunc, solver="sgd", momentum=0.0, learning_rate_init=1.0)
        reg.load_state_dict(start)
        reg.partial_fit(X, y)
        np.testing.assert_array_equal(start["rnn.weight_hh_l0"] - reg.state_dict()["rnn.weight_hh_l0"],
                                      grads[trunc])
    assert not np.allclose(grads[None], grads[2])


@pytest.mark.parametrize("cls", [RNNRegressor, RNNClassifier])
def test_batch_and_hidden_split_train_the_same_model(monkeypatch, cls):
    """The two ways to spread a batch over threads differ only in rounding."""
    import crnn._nn.engine as engine_mod

    X, y = _toy(n=30, T=5)
    y = y if cls is RNNClassifier else y.astype(float)
    results = {}
    for forced in (False, True):
        def plan(layout, n_rows, n_threads, itemsize, streaming=False, f=forced):
            return engine_mod.ThreadPlan(f, n_threads if f else max(1, min(n_threads, n_rows)))
        monkeypatch.setattr(engine_mod, "plan_threads", plan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            m = cls(hidden_size=48, num_layers=2, bidirectional=True, max_iter=3, batch_size=10,
                    n_jobs=2, dtype=np.float64, random_state=0).fit(X, y)
        out = m.predict_proba(X) if cls is RNNClassifier else m.predict(X)
        results[forced] = (m.state_dict(), out)
    for k in results[False][0]:
        np.testing.assert_allclose(results[True][0][k], results[False][0][k], rtol=1e-9,
                                   atol=1e-12, err_msg=k)
    np.testing.assert_allclose(results[True][1], results[False][1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cell,compute_dtype", [("gru", None), ("lstm", None),
                                                ("lstm", "bfloat16")])
def test_adding_problem_T100(cell, compute_dtype):
    """Two marked values 100 steps apart: predicting 1 gives MSE ~0.167; GRU
    and LSTM get below 0.01 within 30 epochs (a few seconds here), the LSTM
    also trained in bfloat16 (mixed precision).  The tanh RNN does not
    (benches/adding_problem.py reports it)."""
    from crnn import _kernels
    from crnn.datasets import make_adding_problem
    if compute_dtype == "bfloat16" and not _kernels.bf16_supported():
        pytest.skip("this CPU has no AVX512-BF16")

    Xtr, ytr = make_adding_problem(10000, 100, random_state=0)
    Xte, yte = make_adding_problem(2000, 100, random_state=1)
    assert Xtr.shape == (10000, 100, 2) and np.all(Xtr[:, :, 1].sum(axis=1) == 2)
    assert np.all(Xtr[:, :50, 1].sum(axis=1) == 1)
    assert np.mean((1 - yte) ** 2) == pytest.approx(1 / 6, abs=0.02)
    reg = RNNRegressor(cell=cell, hidden_size=32, batch_size=64, learning_rate_init=1e-2,
                       random_state=0, compute_dtype=compute_dtype)
    best = np.inf
    for _ in range(30):
        reg.partial_fit(Xtr, ytr)
        best = min(best, np.mean((reg.predict(Xte) - yte) ** 2))
        if best < 0.01:
            break
    assert best < 0.01, best
