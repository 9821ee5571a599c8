"""The training layer: solvers over the optimizer kernel, the state of a
model in training and the epoch loop's stopping rules."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from crnn import _optim
from crnn._nn.data import from_array
from crnn._nn.engine import Engine
from crnn._nn.layout import LOSS_MSE, Layout
from crnn._nn.training import SGD, Adam, EpochLoop, LearningRate, TrainState


def _numpy_step(theta, g, m, v, mask, solver, lr, alpha, clip, b1, b2, eps, mom, nesterov, step):
    """torch.optim semantics, written out in numpy (float64)."""
    theta, g, m, v = (a.astype(np.float64) for a in (theta, g, m, v))
    norm = np.linalg.norm(g)
    if clip is not None:
        g = g * min(1.0, clip / (norm + 1e-6))
    g = g + alpha * theta * mask
    if solver == "adam":
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        theta = theta - lr / (1 - b1 ** step) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** step) + eps)
    else:
        if mom:
            m = g if step == 1 else mom * m + g
            g = g + mom * m if nesterov else m
        theta = theta - lr * g
    return theta, m, v, norm


def _state(theta):
    return TrainState(None, theta, np.zeros_like(theta), np.zeros_like(theta))


@pytest.mark.parametrize("solver", ["adam", "sgd", "sgd-plain"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("P", [7, 40000, 40003])
@pytest.mark.parametrize("clip", [None, 0.5])
def test_solvers_match_numpy(solver, dtype, P, clip):
    rng = np.random.default_rng(0)
    mask = (rng.random(P) < 0.7).astype(np.uint8)
    st = _state(rng.normal(size=P).astype(dtype))
    em, ev, et = st.opt_m.astype(np.float64), st.opt_v.astype(np.float64), st.theta.astype(np.float64)
    mom, nesterov = {"adam": (0.0, False), "sgd": (0.9, True), "sgd-plain": (0.5, False)}[solver]
    if solver == "adam":
        opt = Adam(0.1, clip, 0.9, 0.999, 1e-8)
    else:
        opt = SGD(0.1, clip, mom, nesterov)
    for step in range(1, 4):
        shards = rng.normal(size=(3, P)).astype(dtype)
        g = shards.astype(np.float64).sum(axis=0)
        et, em, ev, enorm = _numpy_step(et, g, em, ev, mask, solver[:4].rstrip("-"), 0.01, 0.1,
                                        clip, 0.9, 0.999, 1e-8, mom, nesterov, step)
        ewsq = float(np.sum(mask * st.theta.astype(np.float64) ** 2))
        norm, wsq = opt.step(st, shards, 0.01, mask, 2)
        assert wsq == pytest.approx(ewsq, rel=1e-12)         # the weights before the step
        assert st.opt_step == step
        tol = 1e-12 if dtype == np.float64 else 2e-5
        assert norm == pytest.approx(enorm, rel=tol)
        np.testing.assert_allclose(st.theta, et, rtol=tol * 10, atol=tol * 10)


def test_optimizer_refuses_non_finite_gradient():
    st = _state(np.ones(10))
    shards = np.ones((2, 10))
    shards[1, 3] = np.nan
    norm, wsq = Adam(0.0, 1.0, 0.9, 0.999, 1e-8).step(st, shards, 0.1, np.ones(10, np.uint8), 1)
    assert not np.isfinite(norm)
    assert np.all(st.theta == 1) and np.all(st.opt_m == 0) and np.all(st.opt_v == 0)


def test_optimizer_result_does_not_depend_on_thread_count():
    rng = np.random.default_rng(1)
    base = rng.normal(size=70000).astype(np.float32)
    shards = rng.normal(size=(2, 70000)).astype(np.float32)
    out = []
    for nt in (1, 2, 4):
        st = _state(base.copy())
        r = Adam(0.01, 1.0, 0.9, 0.999, 1e-8).step(st, shards.copy(), 1e-3,
                                                   np.ones(70000, np.uint8), nt)
        out.append((r, st.theta))
    for r, theta in out[1:]:
        assert r == out[0][0]
        assert np.array_equal(theta, out[0][1])


def test_optimizer_kernel_validates_its_arrays():
    theta = np.ones(10)
    with pytest.raises(ValueError, match="do not match"):
        _optim.apply_update(theta, np.ones((2, 9)), np.zeros(10), np.zeros(10),
                            np.ones(10, np.uint8), 1, 0.1, 0.0, 1.0, 0.9, 0.999, 1e-8, 0.0,
                            False, 1, 1)
    with pytest.raises(ValueError, match="step counts from 1"):
        _optim.apply_update(theta, np.ones((2, 10)), np.zeros(10), np.zeros(10),
                            np.ones(10, np.uint8), 1, 0.1, 0.0, 1.0, 0.9, 0.999, 1e-8, 0.0,
                            False, 0, 1)


# ---------------------------------------------------------------------------
# TrainState


def test_record_epoch_counts_improvements_on_the_training_loss():
    st = _state(np.zeros(3))
    for loss, count in [(1.0, 0), (0.95, 0), (0.94995, 1), (0.96, 2), (0.9, 0)]:
        assert st.record_epoch(loss, 10, tol=1e-4) is False
        assert st.no_improvement_count == count
    assert st.loss_curve == [1.0, 0.95, 0.94995, 0.96, 0.9]
    assert st.best_loss == 0.9 and st.n_iter == 5 and st.t == 50 and st.loss == 0.9


def test_record_epoch_on_validation_scores_reports_the_best_epoch():
    st = _state(np.zeros(3))
    seen = [st.record_epoch(1.0, 10, 1e-3, (s, -s)) for s in (0.5, 0.6, 0.6005, 0.55, 0.7)]
    assert seen == [True, True, True, False, True]
    assert st.validation_scores == [0.5, 0.6, 0.6005, 0.55, 0.7]
    assert st.validation_loss_curve == [-0.5, -0.6, -0.6005, -0.55, -0.7]
    assert st.best_validation_score == 0.7 and st.no_improvement_count == 0
    # 0.6005 beat 0.6 but not by tol: the best weights move, the count goes up
    st2 = _state(np.zeros(3))
    for s in (0.5, 0.6, 0.6005):
        st2.record_epoch(1.0, 10, 1e-3, (s, 0.0))
    assert st2.no_improvement_count == 1


def test_state_copy_is_independent_and_attributes_round_trip():
    class Est:
        pass
    st = _state(np.arange(4.0))
    st.record_epoch(0.5, 4, 0.0)
    est = Est()
    est.__dict__.update(st.attributes(early_stopping=False))
    assert est.best_validation_score_ is None and est.loss_curve_ == [0.5]
    copy = TrainState.of(est, np.float32)
    assert copy.theta.dtype == np.float32 and copy.best_validation_score == -np.inf
    copy.theta[0] = 99
    copy.loss_curve.append(1.0)
    assert est._theta[0] == 0 and est.loss_curve_ == [0.5]
    copy.opt_m[:] = 1
    copy.opt_step = 3
    copy.reset_optimizer()
    assert copy.opt_step == 0 and not copy.opt_m.any()


# ---------------------------------------------------------------------------
# the epoch loop


def _problem(n=24, T=6, D=2, dtype=np.float64):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, T, D)).astype(dtype)
    y = X[:, :, 0].sum(axis=1, keepdims=True).astype(dtype)
    layout = Layout("rnn", "tanh", 1, 1, 8, D, 1)
    engine = Engine(layout, False, LOSS_MSE)
    data = from_array(X)
    return layout, engine, data, y


def _training_setup(batch_size):
    """A workspace over _problem()'s 24 samples, all of them as the pool, and
    a fresh state at the layout's initial weights."""
    layout, engine, data, y = _problem()
    work = engine.trainer(data, y, batch_size, 1, np.dtype(np.float64))
    st = _state(layout.init_params(np.random.RandomState(0), np.float64))
    st.layout = layout
    return work, np.arange(24, dtype=np.intp), st


def _loop(learning_rate=0.05, **kw):
    args = dict(solver=SGD(0.0, None, 0.0, False), schedule=LearningRate("constant", learning_rate),
                n_epochs=5, tol=0.0, n_iter_no_change=100, shuffle=False)
    args.update(kw)
    return EpochLoop(**args)


def test_epoch_loop_is_mini_batch_sgd_on_the_engine():
    """One epoch of the loop equals the batches run by hand through the
    engine's workspace and the update theta -= lr * grad."""
    layout, engine, data, y = _problem()
    theta0 = layout.init_params(np.random.RandomState(0), np.float64)
    st = _state(theta0.copy())
    st.layout = layout
    work = engine.trainer(data, y, 10, 1, np.dtype(np.float64))
    pool = np.arange(data.n_samples, dtype=np.intp)
    _loop(n_epochs=1).run(st, work, pool, np.random.RandomState(0))
    theta, losses = theta0.copy(), []
    for start in range(0, 24, 10):
        batch = pool[start:start + 10]
        losses.append(work.train_batch(theta, batch) * len(batch))
        theta -= 0.05 * work.grads.sum(axis=0)
    np.testing.assert_allclose(st.theta, theta, rtol=1e-12)
    assert st.loss_curve == [pytest.approx(sum(losses) / 24)]
    assert st.n_iter == 1 and st.t == 24 and st.opt_step == 3


def test_epoch_loop_stops_without_improvement_and_warns_at_max_iter():
    work, pool, st = _training_setup(24)
    # a learning rate of ~0: after the first epoch (an improvement on inf) the
    # loss never improves by tol, so it stops after 1 + n_iter_no_change + 1
    # epochs (scikit-learn's rule: more than n_iter_no_change), without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        _loop(learning_rate=1e-12, tol=1.0, n_iter_no_change=2, n_epochs=50,
              max_iter=50).run(st, work, pool, np.random.RandomState(0))
    assert st.n_iter == 4
    with pytest.warns(ConvergenceWarning, match=r"maximum iterations \(4\)"):
        _loop(n_epochs=4, max_iter=4).run(st, work, pool, np.random.RandomState(0))


def test_epoch_loop_keeps_the_best_validation_weights():
    work, pool, st = _training_setup(8)
    seen = []
    scores = iter([0.1, 0.9, 0.2, 0.3])

    def validate(theta):
        seen.append(theta.copy())
        return next(scores), 0.0

    _loop(n_epochs=4).run(st, work, pool, np.random.RandomState(0), validate)
    np.testing.assert_array_equal(st.theta, seen[1])
    assert st.validation_scores == [0.1, 0.9, 0.2, 0.3] and st.best_validation_score == 0.9


def test_partial_fit_extends_the_history_in_place_and_only_on_success():
    """A partial_fit copies no history (its cost must not grow with the
    epochs run so far); a failed call leaves the lists as they were."""
    from crnn import RNNRegressor
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 4, 2)), rng.normal(size=20)
    reg = RNNRegressor(hidden_size=4, random_state=0).partial_fit(X, y)
    curve, rates = reg.loss_curve_, reg.learning_rate_curve_
    reg.partial_fit(X, y)
    assert reg.loss_curve_ is curve and len(curve) == 2 and reg.learning_rate_curve_ is rates
    with pytest.raises(ValueError):
        reg.partial_fit(X, y * np.inf)
    assert reg.loss_curve_ is curve and len(curve) == 2 and len(rates) == 2
    # a new fit starts a new history
    reg.fit(X, y)
    assert reg.loss_curve_ is not curve and len(curve) == 2
