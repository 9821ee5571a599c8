"""The one fit pipeline (crnn._base.fitting.run_fit) that every network
estimator uses: the same argument checks, the same all-or-nothing commit,
the same callbacks and stopping, whichever estimator runs it."""
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from crnn import RNNClassifier, RNNLanguageModel, RNNRegressor, RNNTranscriber, RNNTranslator
from crnn._base import fitting as _fitting
from crnn._nn import training as _training


def _cases():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(12, 5, 2)).astype(np.float32)
    small = dict(hidden_size=4, max_iter=2, random_state=0)
    return {
        "regressor": (RNNRegressor(**small), (X, X[:, -1, 0]), (X[:4], X[:4, -1, 0])),
        "classifier": (RNNClassifier(**small), (X, (X[:, -1, 0] > 0).astype(int)),
                       (X[:4], np.array([0, 1, 0, 1]))),
        "transcriber": (RNNTranscriber(**small, num_layers=1),
                        (list(X), ["ab", "b", "a", "ba"] * 3), (list(X[:4]), ["a"] * 4)),
        "language model": (RNNLanguageModel(**small, num_layers=1, seq_length=4),
                           ("the cat sat on the mat " * 6,), ("a cat sat",)),
        "translator": (RNNTranslator(**small, embedding_dim=4),
                       (["a b", "b c", "c a", "a c"] * 3, ["x y", "y z", "z x", "x z"] * 3),
                       (["a b"], ["x y"])),
    }


CASES = _cases()


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _fit(est, data, **kw):
    return est.fit(*data, **kw) if len(data) == 2 else est.fit(data[0], **kw)


def _partial_fit(est, data):
    return est.partial_fit(*data) if len(data) == 2 else est.partial_fit(data[0])


def _val_kwargs(val):
    return {"X_val": val[0]} if len(val) == 1 else {"X_val": val[0], "y_val": val[1]}


@pytest.mark.parametrize("name", list(CASES))
def test_every_estimator_checks_the_early_stopping_arguments_alike(name):
    est, data, val = CASES[name]
    with pytest.raises(ValueError, match="while early_stopping is False"):
        _fit(est.set_params(early_stopping=False), data, **_val_kwargs(val))
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        _partial_fit(est.set_params(early_stopping=True), data)
    if len(val) == 2:
        with pytest.raises(ValueError, match="y_val was not provided"):
            _fit(est.set_params(early_stopping=True), data, X_val=val[0])
    assert not hasattr(est, "_theta")
    est.set_params(early_stopping=False)


def _fitted_state(est):
    """The fitted attributes.  Not compared: caches, and the fitted
    RandomState, which partial_fit draws from in place (a failed call may
    leave it advanced, see _BaseRNN._start_state)."""
    params = set(est.get_params(deep=False))
    return pickle.dumps({k: v for k, v in est.__dict__.items()
                         if k not in params and not k.endswith("_cache") and k not in
                         ("_validated_params", "_wpack", "_random_state")})


@pytest.mark.parametrize("name", list(CASES))
def test_a_failed_epoch_leaves_every_estimator_as_it_was(name, monkeypatch):
    est, data, _ = CASES[name]
    est = _fit(pickle.loads(pickle.dumps(est)), data)
    before = _fitted_state(est)

    def fail(self, *args, **kwargs):
        raise RuntimeError("the epoch failed")

    monkeypatch.setattr(_training.EpochLoop, "run", fail)
    for call in (lambda: _partial_fit(est, data),
                 lambda: _fit(est.set_params(warm_start=True), data),
                 lambda: _fit(est.set_params(warm_start=False), data)):
        with pytest.raises(RuntimeError, match="the epoch failed"):
            call()
        assert _fitted_state(est) == before


@pytest.mark.parametrize("name", list(CASES))
def test_the_runner_gives_the_workspace_back_when_training_fails(name, monkeypatch):
    est, data, _ = CASES[name]
    released = []
    real_run = _fitting.run_fit

    def watch(estimator, *args, **kwargs):
        plan_fit = type(estimator)._plan_fit

        def watched_plan(self, ctx, *a, **k):
            plan = plan_fit(self, ctx, *a, **k)
            open_work = plan.open_work

            def opened():
                work = open_work()
                release = work.release
                work.release = lambda: (released.append(True), release())
                return work
            plan.open_work = opened
            return plan

        monkeypatch.setattr(type(estimator), "_plan_fit", watched_plan)
        return real_run(estimator, *args, **kwargs)

    def fail(self, *args, **kwargs):
        raise RuntimeError("the epoch failed")

    monkeypatch.setattr(_training.EpochLoop, "run", fail)
    est = pickle.loads(pickle.dumps(est))
    with pytest.raises(RuntimeError):
        watch(est, *data, False) if len(data) == 2 else watch(est, data[0], None, False)
    assert released == [True]
    assert not hasattr(est, "_theta")


@pytest.mark.parametrize("name", list(CASES))
def test_every_estimator_commits_the_same_history_and_continues_it(name):
    est, data, _ = CASES[name]
    est = _fit(pickle.loads(pickle.dumps(est)).set_params(max_iter=3), data)
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 3
    assert len(est.learning_rate_curve_) == 3
    assert est.best_validation_score_ is None and est.best_loss_ == min(est.loss_curve_)
    curve = est.loss_curve_
    _partial_fit(est, data)
    assert est.loss_curve_ is curve and len(curve) == 4 and est.n_iter_ == 4
    assert np.isfinite(est.loss_)


@pytest.mark.parametrize("name", list(CASES))
def test_plans_without_a_started_state_are_refused(name, monkeypatch):
    est, data, _ = CASES[name]
    monkeypatch.setattr(type(est), "_plan_fit",
                        lambda self, ctx, *a, **k: _fitting.FitPlan(None, None, {}))
    with pytest.raises(RuntimeError, match="did not call ctx.start"):
        _fit(pickle.loads(pickle.dumps(est)), data)
