"""The one fit pipeline of every network estimator.

``run_fit`` is what ``fit`` and ``partial_fit`` of RNNRegressor,
RNNClassifier, RNNTranscriber, RNNLanguageModel and RNNTranslator do: take
the instance's fit lock, validate the parameters, check the early-stopping
arguments, ask the estimator for its data (``_plan_fit``), run the epochs
(crnn._nn.training.EpochLoop) with callbacks, Ctrl-C and the stopping rules,
and commit the fitted attributes all at once, or nothing when anything
failed.

An estimator's own part is ``_plan_fit(ctx, X, y, **kwargs) -> FitPlan``:
read and encode its data, build the network's layout, start the training
state with ``ctx.start(layout)``, and hand back a workspace factory (the
batches), the samples to train on and a validation function (the held-out
score).
"""
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np

from .callbacks import EpochMonitor, wants_callbacks
from .._nn.threads import effective_n_threads
from .._nn.training import EpochLoop, LearningRate, make_solver

# one lock per estimator instance: fits of one model from several threads run
# one after the other (each would otherwise train a copy and the last commit
# would silently drop the other's work)
_FIT_LOCKS = weakref.WeakKeyDictionary()
_FIT_LOCKS_GUARD = threading.Lock()

# y_val's default when an estimator's fit takes no y_val (language models)
NO_Y_VAL = object()


def fit_lock(estimator):
    """The re-entrant lock that serialises fits (and saves) of one instance."""
    lock = _FIT_LOCKS.get(estimator)
    if lock is None:
        with _FIT_LOCKS_GUARD:
            lock = _FIT_LOCKS.setdefault(estimator, threading.RLock())
    return lock


@dataclass
class FitContext:
    """What the runner decided before the estimator reads its data.

    dtype: the compute dtype; incremental: partial_fit; continue_from_fitted:
    partial_fit or warm_start on a fitted model (the vocabularies, classes
    and weights are the fitted ones); early_stopping: held-out scoring is on
    (never in partial_fit); n_threads: the kernels' thread count.  After
    ``start(layout)``: layout, state (a crnn._nn.training.TrainState) and rng."""
    estimator: object
    dtype: np.dtype
    incremental: bool
    continue_from_fitted: bool
    early_stopping: bool
    n_threads: int
    layout: object = None
    state: object = None
    rng: object = None

    def start(self, layout):
        """The training state the fit starts from (a copy of the fitted model
        or new weights) for the network `layout`; returns (state, rng)."""
        est = self.estimator
        self.state, self.rng = est._start_state(layout, self.dtype, self.incremental,
                                                self.continue_from_fitted)
        self.layout = layout
        return self.state, self.rng


@dataclass
class FitPlan:
    """An estimator's data, as the runner trains on it.

    open_work: () -> a training workspace (``train_batch``, ``grads``,
    ``batch``, ``n_threads``, ``batch_weight``, ``release``), taken last;
    once it has returned one, the runner releases it whatever happens (a
    factory that fails gives back what it took itself); pool: the samples an epoch walks; validate:
    theta -> (score, loss) on held-out data, or None; fitted_info: fitted
    attributes the data set (classes, vocabularies, n_features_in_, ...);
    batches: the epoch's batches (crnn._nn.training.EpochLoop), None for
    shuffled slices of the pool; shuffle: shuffle those slices;
    warn_max_iter: a ConvergenceWarning when max_iter epochs end without
    convergence (False where epochs are a budget: text, corpora); engine:
    packs the committed weights for inference (crnn._nn.engine.Engine), None
    when the estimator keeps none; callback_metadata: what callbacks are
    told of the fit call (sample_weight)."""
    open_work: object
    pool: np.ndarray
    fitted_info: dict
    validate: object = None
    batches: object = None
    shuffle: bool = True
    warn_max_iter: bool = True
    engine: object = None
    callback_metadata: dict = field(default_factory=dict)


def check_fit_arguments(estimator, incremental, X_val, y_val, sample_weight_val):
    """The early-stopping arguments of fit: X_val (and y_val, unless the
    estimator's fit has none) only with early_stopping, given together;
    partial_fit never stops early."""
    if incremental and estimator.early_stopping:
        raise ValueError("partial_fit does not support early_stopping=True.")
    pair = y_val is not NO_Y_VAL
    if pair and (X_val is None) != (y_val is None):
        raise ValueError(f"{'X_val' if y_val is None else 'y_val'} is provided, but "
                         f"{'y_val' if y_val is None else 'X_val'} was not provided.")
    if X_val is not None and not estimator.early_stopping:
        raise ValueError(
            f"{'X_val and y_val are' if pair else 'X_val is'} passed to fit while "
            f"early_stopping is False; set early_stopping=True to use "
            f"{'them' if pair else 'it'} for early stopping.")
    if sample_weight_val is not None and X_val is None:
        raise ValueError("sample_weight_val is provided, but X_val was not provided.")


def run_fit(est, X, y, incremental, *, X_val=None, y_val=NO_Y_VAL,
            sample_weight_val=None, **kwargs):
    """fit (incremental False) or partial_fit (True) of a network estimator.

    kwargs go to the estimator's ``_plan_fit`` with X_val, y_val (when its
    fit takes one) and sample_weight_val.  Returns the estimator."""
    with fit_lock(est):
        dtype = est._validate_hyperparams()
        check_fit_arguments(est, incremental, X_val, y_val, sample_weight_val)
        if y_val is not NO_Y_VAL:
            kwargs["y_val"] = y_val
        if sample_weight_val is not None:
            kwargs["sample_weight_val"] = sample_weight_val
        ctx = FitContext(est, dtype, incremental,
                         continue_from_fitted=hasattr(est, "_theta") and (
                             incremental or bool(est.warm_start)),
                         early_stopping=bool(est.early_stopping) and not incremental,
                         n_threads=effective_n_threads(est.n_jobs))
        plan = est._plan_fit(ctx, X, y, X_val=X_val, **kwargs)
        state, rng, layout = ctx.state, ctx.rng, ctx.layout
        if state is None:
            raise RuntimeError(f"{type(est).__name__}._plan_fit did not call ctx.start")
        n_epochs = 1 if incremental else int(est.max_iter)
        loop = EpochLoop(
            make_solver(est),
            LearningRate(est.learning_rate, est.learning_rate_init, est.power_t, est.max_iter),
            n_epochs, est.tol, est.n_iter_no_change, shuffle=bool(plan.shuffle),
            verbose=est.verbose,
            max_iter=est.max_iter if plan.warn_max_iter and not incremental else None,
            epoch0=0 if incremental else state.n_iter,
            dropout=float(est.dropout) > 0 and layout.num_layers > 1,
            incremental=incremental, batches=plan.batches,
        )
        # taken last: nothing can fail between taking the workspace's buffers
        # and the finally that gives them back
        work = plan.open_work()
        try:
            if wants_callbacks(est):
                loop.monitor = EpochMonitor(
                    est, X, y, "partial_fit" if incremental else "fit", n_epochs,
                    snapshot(plan.engine, ctx.early_stopping, plan.fitted_info),
                    plan.callback_metadata)
            loop.run(state, work, plan.pool, rng, plan.validate)
        finally:
            work.release()
        attrs = dict(plan.fitted_info, _random_state=rng)
        if plan.engine is not None:
            attrs["_wpack"] = (state.theta, plan.engine.packed_weights(state.theta))
        # commit: from here on nothing can fail (the history lists grow in place)
        attrs.update(state.attributes(ctx.early_stopping, commit=True))
        est.__dict__.update(attrs)
        if loop.monitor is not None:
            loop.monitor.close()            # the root task ends with the fitted model
        return est


def snapshot(engine, early_stopping, fitted_info):
    """For callbacks: state -> the fitted attributes of the model at that
    state (copies), with fitted_info (what the data set) and, when the
    estimator keeps packed weights, the packed copy."""
    def attributes(st):
        attrs = st.attributes(early_stopping)
        for name in ("_theta", "_opt_m", "_opt_v"):
            attrs[name] = attrs[name].copy()
        attrs.update(fitted_info)
        if engine is not None:
            attrs["_wpack"] = (attrs["_theta"], engine.packed_weights(attrs["_theta"]))
        return attrs
    return attributes
