"""The training loop: the state of a model in training, the solvers over the
optimizer kernel, and the epochs of mini-batches with their stopping rules.

The estimator validates and prepares data and hands this layer a
TrainState (a working copy of the model), a TrainWorkspace (crnn._nn.engine)
and the samples to train on; nothing here knows about input formats.
"""
import math
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass, field, fields

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .. import _kernels, _optim
from .threads import blas_single_threaded


@dataclass
class TrainState:
    """A model in training: weights, optimizer state and history.

    Every field is a fitted attribute of the estimator under the name in
    its metadata ("attr"); a fit works on a copy and the estimator takes all
    of them at once when it succeeds, so a failed call changes nothing.
    The history lists (loss_curve, ...) hold this call's epochs only; the
    estimator's earlier history is in `past`, extended in place on commit
    (copying it would make every partial_fit cost O(epochs so far))."""
    layout: object = field(metadata={"attr": "_layout"})
    theta: np.ndarray = field(metadata={"attr": "_theta"})
    opt_m: np.ndarray = field(metadata={"attr": "_opt_m"})
    opt_v: np.ndarray = field(metadata={"attr": "_opt_v"})
    _: KW_ONLY
    opt_step: int = field(default=0, metadata={"attr": "_opt_step"})
    loss_curve: list = field(default_factory=list, metadata={"attr": "loss_curve_"})
    validation_scores: list = field(default_factory=list,
                                    metadata={"attr": "validation_scores_"})
    validation_loss_curve: list = field(default_factory=list,
                                        metadata={"attr": "validation_loss_curve_"})
    best_loss: float = field(default=np.inf, metadata={"attr": "best_loss_"})
    best_validation_score: float = field(default=-np.inf,
                                         metadata={"attr": "best_validation_score_"})
    no_improvement_count: int = field(default=0, metadata={"attr": "_no_improvement_count"})
    n_iter: int = field(default=0, metadata={"attr": "n_iter_"})
    t: int = field(default=0, metadata={"attr": "t_"})
    loss: float = field(default=None, metadata={"attr": "loss_"})
    learning_rate_curve: list = field(default_factory=list,
                                      metadata={"attr": "learning_rate_curve_"})
    learning_rate: float = field(default=None, metadata={"attr": "_learning_rate"})
    past: dict = field(default_factory=dict, repr=False)

    @classmethod
    def new(cls, layout, theta):
        """A fresh state at weights theta (zero optimizer state, no history)."""
        return cls(layout, theta, np.zeros_like(theta), np.zeros_like(theta))

    @classmethod
    def of(cls, estimator, dtype):
        """A copy of a fitted estimator's state, arrays cast to dtype."""
        e = estimator.__dict__
        theta, m, v = e["_theta"], e["_opt_m"], e["_opt_v"]
        if theta.dtype == dtype:
            theta, m, v = theta.copy(), m.copy(), v.copy()
        else:
            theta, m, v = theta.astype(dtype), m.astype(dtype), v.astype(dtype)
        return cls(
            e["_layout"], theta, m, v, opt_step=e["_opt_step"],
            best_loss=np.inf if e["best_loss_"] is None else e["best_loss_"],
            best_validation_score=(-np.inf if e["best_validation_score_"] is None
                                   else e["best_validation_score_"]),
            no_improvement_count=e["_no_improvement_count"], n_iter=e["n_iter_"], t=e["t_"],
            loss=e["loss_"], learning_rate=e.get("_learning_rate"),
            past={name: e.get(attr) for name, attr in _HISTORY})

    def reset_optimizer(self):
        """A new optimizer on the same weights (fit with warm_start); the
        learning-rate schedule starts again too."""
        self.opt_m[:] = 0
        self.opt_v[:] = 0
        self.opt_step = 0
        self.learning_rate = None

    def attributes(self, early_stopping, commit=False):
        """The estimator's attributes for this state.  best_loss_ is None
        when early stopping decided, best_validation_score_ otherwise.
        History lists: copies of the whole history, or with commit (the last
        step of a fit, which must not fail after it) the estimator's own
        lists extended in place."""
        out = {attr: getattr(self, name) for name, attr in _STATE_ATTRS}
        for name, attr in _HISTORY:
            old, new = self.past.get(name), out[attr]
            if commit and old is not None:
                old.extend(new)
                out[attr] = old
            elif old is not None:
                out[attr] = old + new
        out["best_loss_" if early_stopping else "best_validation_score_"] = None
        return out

    def record_epoch(self, loss, n_samples, tol, validation=None):
        """Log one finished epoch (run at self.learning_rate) and count it
        as an improvement or not: on the validation score (higher is better)
        when there is one, else on the training loss.  Returns True when the
        validation score is the best so far (the caller keeps those
        weights)."""
        self.n_iter += 1
        self.t += n_samples
        self.loss = loss
        self.loss_curve.append(loss)
        self.learning_rate_curve.append(self.learning_rate)
        if validation is None:
            improved = loss <= self.best_loss - tol
            self.best_loss = min(self.best_loss, loss)
            best = False
        else:
            score, vloss = validation
            self.validation_scores.append(score)
            self.validation_loss_curve.append(vloss)
            improved = score >= self.best_validation_score + tol
            best = score > self.best_validation_score
            if best:
                self.best_validation_score = score
        self.no_improvement_count = 0 if improved else self.no_improvement_count + 1
        return best


# (field, estimator attribute) of every TrainState field (dataclasses.fields
# is slow enough to show in partial_fit's overhead)
_STATE_ATTRS = tuple((f.name, f.metadata["attr"]) for f in fields(TrainState)
                     if "attr" in f.metadata)
_HISTORY = tuple((name, attr) for name, attr in _STATE_ATTRS
                 if name in ("loss_curve", "validation_scores", "validation_loss_curve",
                             "learning_rate_curve"))


class Solver:
    """An optimizer over the fused update kernel (crnn._optim.apply_update):
    gradient reduction over shards, global-norm clipping, the L2 penalty on
    weight matrices and the update rule, in one pass."""
    code = None

    def __init__(self, alpha, clip_norm):
        self.alpha = float(alpha)
        self.clip = -1.0 if clip_norm is None else float(clip_norm)

    def _rule(self):
        """(beta1, beta2, eps, momentum, nesterov) for the kernel."""
        raise NotImplementedError

    def step(self, state, grads, lr, wmask, n_threads, batch_weight=1.0):
        """One update of state.theta from per-shard gradients of a batch
        whose loss terms weigh batch_weight in all: the L2 penalty is
        alpha / 2 * ||W||^2 / batch_weight, scikit-learn MLP's (a torch
        weight_decay of alpha / batch_weight).  Returns (gradient norm before
        clipping, sum of squared weights before the step); a non-finite norm
        means nothing but grads was changed."""
        state.opt_step += 1
        return _optim.apply_update(state.theta, grads, state.opt_m, state.opt_v, wmask,
                                   self.code, float(lr), self.alpha / batch_weight, self.clip,
                                   *self._rule(), state.opt_step, n_threads)


class Adam(Solver):
    """torch.optim.Adam (with weight_decay on the weight matrices)."""
    code = _kernels.SOLVER_CODES["adam"]

    def __init__(self, alpha, clip_norm, beta_1, beta_2, epsilon):
        super().__init__(alpha, clip_norm)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _rule(self):
        return self.beta_1, self.beta_2, self.epsilon, 0.0, False


class SGD(Solver):
    """torch.optim.SGD with momentum (Nesterov or not)."""
    code = _kernels.SOLVER_CODES["sgd"]

    def __init__(self, alpha, clip_norm, momentum, nesterovs_momentum):
        super().__init__(alpha, clip_norm)
        self.momentum, self.nesterov = float(momentum), bool(nesterovs_momentum)

    def _rule(self):
        return 0.0, 0.0, 0.0, self.momentum, self.nesterov


def make_solver(params):
    """The solver an estimator's parameters ask for."""
    if params.solver == "adam":
        return Adam(params.alpha, params.clip_norm, params.beta_1, params.beta_2,
                    params.epsilon)
    return SGD(params.alpha, params.clip_norm, params.momentum, params.nesterovs_momentum)


class LearningRate:
    """The learning rate of each epoch, as scikit-learn's MLP schedules it
    (for every solver here, as a torch.optim.lr_scheduler would):

    - "constant": learning_rate_init;
    - "invscaling": learning_rate_init / (t + 1) ** power_t, t the training
      samples seen before the epoch (the estimator's t_);
    - "adaptive": learning_rate_init until the stopping rule fires (more
      than n_iter_no_change epochs without improvement by tol); then, instead
      of stopping, the rate is divided by 5 and the count restarts, until it
      is at most 1e-6;
    - "cosine": learning_rate_init * (1 + cos(pi * e / max_iter)) / 2, e the
      epochs run so far in this fit (in all partial_fit calls), as
      torch.optim.lr_scheduler.CosineAnnealingLR(T_max=max_iter): it decays
      to zero over max_iter epochs.
    """
    KINDS = ("constant", "invscaling", "adaptive", "cosine")

    def __init__(self, kind, init, power_t=0.5, max_iter=200):
        self.kind, self.init = kind, float(init)
        self.power_t, self.max_iter = float(power_t), int(max_iter)

    def rate(self, state, epoch):
        """The rate of the coming epoch: `epoch` epochs done in this run of
        the schedule, state.t samples seen, state.learning_rate the current
        adaptive rate (None: none yet)."""
        if self.kind == "invscaling":
            return self.init / (state.t + 1) ** self.power_t
        if self.kind == "adaptive":
            return self.init if state.learning_rate is None else state.learning_rate
        if self.kind == "cosine":
            return self.init * 0.5 * (1.0 + math.cos(math.pi * epoch / self.max_iter))
        return self.init

    def on_plateau(self, state):
        """The stopping rule fired: True to stop, False when the adaptive
        schedule lowered the rate instead (and restarted the count)."""
        if self.kind != "adaptive" or state.learning_rate <= 1e-6:
            return True
        state.learning_rate /= 5.0
        state.no_improvement_count = 0
        return False


@contextmanager
def sigint_after_batch():
    """Turn the first Ctrl-C into a flag the loop reads after each batch (a
    second Ctrl-C raises KeyboardInterrupt as usual).  Only the main thread
    can install signal handlers; elsewhere this does nothing."""
    state = {"hit": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum, frame):
        if state["hit"]:
            raise KeyboardInterrupt
        state["hit"] = True

    try:
        old = signal.signal(signal.SIGINT, handler)
    except (ValueError, OSError):  # pragma: no cover - embedded interpreters
        yield state
        return
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, old if old is not None else signal.default_int_handler)


def all_finite(a):
    """True when every value of a is finite (a sum first: one pass, no
    temporary, in the common case)."""
    with np.errstate(all="ignore"):
        return bool(np.isfinite(np.add.reduce(a, axis=None))) or bool(np.isfinite(a).all())


def _may_overflow(layout, theta):
    """Whether a forward pass at theta can overflow on finite inputs: always
    for an Elman ReLU network (nothing bounds its states); for bounded cells
    (tanh, GRU, LSTM) only once a weight passes the square root of the
    dtype's largest value."""
    if getattr(layout, "cell", None) == "rnn" and getattr(layout, "nonlinearity", None) == "relu":
        return True
    # theta . theta overflows when a weight passes the square root (and may
    # a little before: then the check merely runs): one pass, no temporary,
    # after every partial_fit call
    with np.errstate(over="ignore", invalid="ignore"):
        return not np.isfinite(np.dot(theta, theta))


def _outputs_finite(work, theta, samples, extra):
    """Whether the network's outputs at theta are finite on a batch: a
    forward pass only (about a third of a training step), from zero states
    (stateful training's carried states are not rewritten).  Workspaces
    without a prediction engine (the encoder-decoder's) recompute the
    batch's loss instead."""
    engine = getattr(work, "engine", None)
    if engine is None:
        extra = {k: v for k, v in extra.items() if k != "states"}
        return bool(np.isfinite(work.train_batch(theta, samples, 0, **extra)))
    data = extra.get("data") or work.data
    samples = np.asarray(samples, dtype=np.intp)
    out = engine.predict(theta, data, work.n_threads, idx=samples)
    if engine.seq:      # a row per step, only those of the batch's samples set
        rows = np.concatenate([np.arange(data.start[s], data.start[s] + data.lens[s])
                               for s in samples])
        return all_finite(out[rows])
    return all_finite(out[samples])


def diverged(what, value):
    raise ValueError(
        f"Training produced a non-finite {what} ({value}); the model is left as it was "
        "before this call. The input data may contain very large values, or the "
        "learning rate may be too high."
    )


def _interrupted():
    warnings.warn("Training interrupted by user; the model keeps the weights after the "
                  "last completed batch.", UserWarning)


@dataclass
class EpochLoop:
    """Epochs of mini-batch training with the estimators' stopping rules.

    n_epochs: epochs at most (1 for partial_fit); n_iter_no_change and tol:
    stop (or, with the adaptive schedule, lower the rate) once more than
    that many epochs in a row did not improve the validation score (or the
    training loss) by tol; max_iter: named in the ConvergenceWarning raised
    when n_epochs run out (None: no warning).  epoch0: the state's n_iter
    where the schedule's epoch count starts.  dropout: draw a dropout seed
    per batch.  monitor: called around every epoch (see EpochMonitor), or
    None.  batches: pool, batch size, rng -> the epoch's batches as
    (samples, keyword arguments of work.train_batch); None: shuffled (or
    not) slices of the pool."""
    solver: Solver
    schedule: LearningRate
    n_epochs: int
    tol: float
    n_iter_no_change: int
    _: KW_ONLY
    shuffle: bool = True
    verbose: int = 0
    max_iter: int = None
    epoch0: int = 0
    dropout: bool = False
    incremental: bool = False
    monitor: object = None
    batches: object = None

    def _slices(self, pool, batch, rng):
        order = pool[rng.permutation(len(pool))] if self.shuffle else pool
        for start in range(0, len(pool), batch):
            yield order[start:start + batch], {}

    def run(self, state, work, pool, rng, validate=None):
        """Train state.theta in place on the samples `pool` with the
        TrainWorkspace `work`.  validate: theta -> (score, loss) on held-out
        data, or None; with it the weights of the best epoch are kept.
        Batches whose weights sum to zero are skipped."""
        theta = state.theta
        wmask = state.layout.weight_mask
        n, batch = len(pool), work.batch
        last = None
        best_theta = theta.copy() if validate is not None else None
        batches = self._slices if self.batches is None else self.batches
        alpha = self.solver.alpha
        with blas_single_threaded(), sigint_after_batch() as interrupt:
            for _ in range(self.n_epochs):
                t0 = time.perf_counter()
                if self.monitor is not None:
                    self.monitor.begin_epoch()
                lr = self.schedule.rate(state, state.n_iter - self.epoch0)
                state.learning_rate = lr
                total, weight, done = 0.0, 0.0, 0
                for samples, extra in batches(pool, batch, rng):
                    last = (samples, extra)
                    seed = int(rng.randint(2**63 - 1, dtype=np.int64)) if self.dropout else 0
                    loss = work.train_batch(theta, samples, seed, **extra)
                    if not np.isfinite(loss):
                        diverged("loss", loss)
                    done += len(samples)
                    bw = work.batch_weight
                    if bw > 0:
                        norm, wsq = self.solver.step(state, work.grads, lr, wmask,
                                                     work.n_threads, bw)
                        if not np.isfinite(norm):
                            diverged("gradient norm", norm)
                        total += loss * bw + 0.5 * alpha * wsq
                        weight += bw
                    if interrupt["hit"]:
                        break
                if done < n:                 # cut short: keep the weights, log nothing
                    _interrupted()
                    break
                self._end_epoch(state, total / weight if weight > 0 else 0.0, n, validate,
                                best_theta, t0)
                if interrupt["hit"]:
                    _interrupted()
                    break
                if self.monitor is not None and self.monitor.end_epoch(state):
                    break                    # a callback asked to stop
                if self.incremental:
                    continue
                if state.no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if validate is not None else "Training loss"
                    if self.schedule.on_plateau(state):
                        if self.verbose:
                            print(f"{what} did not improve more than tol={self.tol} for "
                                  f"{self.n_iter_no_change} consecutive epochs. Stopping.")
                        break
                    if self.verbose:
                        print(f"{what} did not improve more than tol={self.tol} for "
                              f"{self.n_iter_no_change} consecutive epochs. Setting learning "
                              f"rate to {state.learning_rate:f}")
            else:
                if self.max_iter is not None:
                    warnings.warn(
                        f"Stochastic optimizer: maximum iterations ({self.max_iter}) reached "
                        "and the optimization hasn't converged yet.", ConvergenceWarning,
                    )
        if validate is not None and state.validation_scores:
            theta[:] = best_theta
        # the loss and gradient checks come before each update: the last
        # update can still overflow, and must not be committed
        for what, arr in (("weight", theta), ("optimizer state", state.opt_m),
                          ("optimizer state", state.opt_v)):
            if not all_finite(arr):
                diverged(what, "inf or nan")
        if last is not None and _may_overflow(state.layout, theta) \
                and not _outputs_finite(work, theta, *last):
            # finite weights can still overflow a forward pass: an Elman
            # ReLU network's states grow without bound (an absurd learning
            # rate committed weights whose predictions were all inf), and
            # any network's do once its weights near the float range
            diverged("prediction at the final weights", "inf or nan")

    def _end_epoch(self, state, loss, n, validate, best_theta, t0):
        validation = None if validate is None else validate(state.theta)
        if state.record_epoch(loss, n, self.tol, validation):
            best_theta[:] = state.theta
        if self.verbose:
            msg = f"Epoch {state.n_iter}: loss = {loss:.6f}"
            if validation is not None:
                msg += (f", validation loss = {validation[1]:.6f}, validation score = "
                        f"{validation[0]:.6f}")
            print(f"{msg}, {time.perf_counter() - t0:.3f} s", flush=True)
