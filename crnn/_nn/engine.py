"""The kernel interface: everything between a model's parameter vector and
the Cython kernels.

An :class:`Engine` is made for one network (a :class:`~crnn._nn.layout.Layout`)
and one way of reading it (per-step outputs or not, the loss, BPTT
truncation).  It owns the kernels' ``Config`` and is the only code that
sizes workspaces, shards batches, packs weights and decides how threads
share the work:

- ``engine.trainer(data, target, ...)`` gives a :class:`TrainWorkspace`
  whose ``train_batch(theta, samples)`` returns a batch's loss and leaves
  its gradient (one row per shard) in ``grads``;
- ``engine.predict(theta, data, ...)`` gives the head's raw outputs;
- ``engine.packed_weights(theta)`` and ``engine.step_kernel(...)`` serve
  predict and the streaming stepper.

The estimators never see a workspace, a shard or a thread split.
"""
import os
import threading
from typing import NamedTuple

import numpy as np

from .. import _kernels, _step
from .data import shard_batch
from .threads import blas_single_threaded

# A thread's slice of the recurrent weights should stay in its core's
# cache: past this many bytes of W_hh the hidden units are split over the
# threads even when the batch could be split instead.
CORE_CACHE_BYTES = 512 * 1024
# A streaming step streams every layer's W_ih and W_hh and the head once; it
# only pays for a team of threads (a barrier per layer) once those weights
# outgrow half of that cache.
STEP_TEAM_BYTES = CORE_CACHE_BYTES // 2
# Each thread of a hidden-unit split owns at least this many gate units.
MIN_UNITS_PER_THREAD = 32
# predict keeps each thread's workspace under about this many bytes, and
# runs at most this many sequences per chunk.
PREDICT_WS_BYTES = 32 * 2**20
PREDICT_MAX_CHUNK = 256
# guards every engine's scratch (TrainWorkspace buffers kept for the next
# partial_fit): a take or a give-back is a dict operation under it.  A child
# forked while another thread held it gets a new one (else its first
# partial_fit would wait forever).
_SCRATCH_LOCK = threading.Lock()


def _new_scratch_lock():
    global _SCRATCH_LOCK
    _SCRATCH_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_scratch_lock)


class ThreadPlan(NamedTuple):
    """How n_threads threads share one kernel call.

    hidden_split: one team of all threads on each shard (or chunk), each
    owning a slice of the hidden units, a barrier per step; otherwise every
    thread runs whole shards on its own.  n_workers: shards run at once
    (batch split) or threads in the team (hidden split)."""
    hidden_split: bool
    n_workers: int


def plan_threads(layout, n_rows, n_threads, itemsize, streaming=False):
    """The one place that decides how threads share a batch of n_rows
    sequences, for training, prediction and the stepper.

    Hidden split when every thread gets at least MIN_UNITS_PER_THREAD gate
    units and either the batch would leave threads idle or with tiny shards
    (fewer than 4 sequences per thread) or W_hh outgrows CORE_CACHE_BYTES.
    The stepper (streaming=True) uses a team only when all its weights
    outgrow STEP_TEAM_BYTES, with as many threads as keep a packed panel of
    units each.  On the benchmark shapes at 2 threads this picks the faster
    way for every case (benches/, docs/performance.md)."""
    units = layout.gates * layout.hidden
    if streaming:
        weights = (layout.gates * layout.hidden * (layout.hidden + layout.n_features)
                   * layout.num_layers * itemsize)
        if n_threads < 2 or weights <= STEP_TEAM_BYTES:
            return ThreadPlan(True, 1)
        return ThreadPlan(True, max(1, min(n_threads, layout.hidden // _kernels.panel(itemsize))))
    if n_threads >= 2 and units >= MIN_UNITS_PER_THREAD * n_threads and (
            n_rows < 4 * n_threads
            or units * layout.hidden * itemsize > CORE_CACHE_BYTES):
        return ThreadPlan(True, n_threads)
    return ThreadPlan(False, max(1, min(n_threads, n_rows)))


def sample_rows(data, samples):
    """Data rows of the given samples' steps, in order."""
    if len(samples) == 0:
        return np.zeros(0, dtype=np.intp)
    return np.concatenate([np.arange(data.start[i], data.start[i] + data.lens[i])
                           for i in samples]).astype(np.intp)


class PackedWeights(np.ndarray):
    """Packed weights (Engine.packed_weights), with the SIMD level they were
    packed for: predict repacks weights packed at another level (the
    estimator's compute_dtype changed since) instead of misreading them."""

    simd = None


class Engine:
    """Kernel calls for one network layout and one way of reading it.

    Parameters
    ----------
    layout : Layout
    seq : bool
        An output at every step (return_sequences) instead of one per
        sequence.
    loss : int
        One of the kernels' loss codes (``_kernels.LOSS_CODES``).
    trunc : int or None
        Truncated BPTT length (None: full BPTT).
    simd : int
        SIMD level of the recurrent products (-1: the CPU's best; 0: BLAS).
    dropout : float
        Training only: probability of dropping each output of every layer
        but the last (PyTorch's nn.RNN(dropout=p)).
    """

    def __init__(self, layout, seq, loss, trunc=None, simd=-1, dropout=0.0):
        self.layout = layout
        self.seq = bool(seq)
        self.loss = loss
        self.trunc = trunc
        self.dropout = float(dropout)
        self.simd = int(simd)
        self.cfg = layout.config(self.seq, loss, trunc, simd, self.dropout)
        self._scratch = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_scratch"] = {}          # buffers, not state: never pickled
        return state

    def take_scratch(self, name, shape, dtype):
        """The buffer `name` kept by a released TrainWorkspace if it has this
        shape and dtype (it is then the caller's alone), else None."""
        with _SCRATCH_LOCK:
            arr = self._scratch.pop(name, None)
        if arr is not None and arr.shape == tuple(shape) and arr.dtype == dtype:
            return arr
        return None

    def keep_scratch(self, buffers):
        """Keep these buffers (name -> array) for the next take_scratch."""
        with _SCRATCH_LOCK:
            self._scratch.update(buffers)

    def clear_scratch(self):
        with _SCRATCH_LOCK:
            self._scratch.clear()

    @property
    def key(self):
        """What the engine was built for: a cached engine is reused while
        this stays the same."""
        return (self.layout, self.seq, self.loss, self.trunc, self.dropout, self.simd)

    def packed_size(self, train, dtype):
        """Elements of the packed W_hh copies (0 where the CPU has no SIMD
        kernel: the recurrent products then go through BLAS)."""
        return self.cfg.packed_size(train, dtype.itemsize) if self.cfg.simd else 0

    def packed_weights(self, theta):
        """W_hh of every layer packed for predict's recurrent products,
        marked with the SIMD level they were packed for (float32 and
        bfloat16 packings have the same size but not the same layout)."""
        wpack = np.empty(self.packed_size(False, theta.dtype), dtype=theta.dtype)
        if wpack.size:
            _kernels.pack_weights(self.cfg, theta, wpack, False)
        wpack = wpack.view(PackedWeights)
        wpack.simd = self.cfg.simd
        return wpack

    def trainer(self, data, target, batch_size, n_threads, dtype, weights=None, keep=False):
        """A TrainWorkspace for mini-batches of at most batch_size samples of
        `data` (see TrainWorkspace).

        keep: its buffers come from this engine's scratch where the last
        released workspace left ones of the same sizes, and go back there on
        ``release()`` (partial_fit: a fresh allocation of tens of MB is
        zeroed page by page by the OS, 7-12% of one partial_fit step of the
        mid to wide LSTM cases).  Without keep the scratch is dropped (fit:
        one allocation serves every epoch; nothing is held after it)."""
        if not keep:
            self.clear_scratch()
        return TrainWorkspace(self, data, target, batch_size, n_threads, dtype, weights,
                              keep=keep)

    def predict(self, theta, data, n_threads, wpack=None, states=None, idx=None):
        """Head outputs in theta's dtype: (n_samples, n_outputs), or a row
        per step (seq) aligned with data.rows.

        idx: only these samples (the other rows are left unset).  wpack:
        theta's packed weights if the caller has them.  states: (h0, c0, hN,
        cN) arrays (None entries: none) in PyTorch's layout."""
        cfg = self.cfg
        out = np.empty((data.rows.shape[0] if self.seq else data.n_samples,
                        self.layout.n_outputs), dtype=theta.dtype)
        if idx is None:
            order = data.order()
        else:
            order = np.asarray(idx, dtype=np.intp)
            order = order[np.argsort(-data.lens[order], kind="stable")]
        N = len(order)
        if N == 0:
            return out
        T = int(data.lens[order[0]])
        itemsize = theta.dtype.itemsize
        plan = plan_threads(self.layout, N, n_threads, itemsize)
        per_row = cfg.workspace_size(2, T, False) - cfg.workspace_size(1, T, False)
        cap = max(1, PREDICT_WS_BYTES // max(1, per_row * itemsize))
        chunk = N if plan.hidden_split else -(-N // plan.n_workers)
        chunk = int(max(1, min(chunk, cap, PREDICT_MAX_CHUNK)))
        bounds = None
        if not plan.hidden_split and not data.uniform:
            # ragged: deal the samples to the chunks by length, so every
            # chunk (thread) gets a similar amount of work
            order, bounds = shard_batch(order, data.lens, -(-N // chunk), False)
            chunk = int(np.max(np.diff(bounds)))
        nws = 1 if plan.hidden_split else plan.n_workers
        ws = np.empty((nws, cfg.workspace_size(chunk, T, False)), dtype=theta.dtype)
        iws = np.empty((nws, cfg.index_workspace_size(T)), dtype=np.intp)
        h0, c0, hN, cN = states or (None,) * 4
        with blas_single_threaded():
            if wpack is None or getattr(wpack, "simd", None) != cfg.simd:
                wpack = self.packed_weights(theta)
            _kernels.predict(cfg, theta, data.rows, data.start, data.lens, order, out, ws, iws,
                             chunk, T, plan.n_workers, plan.hidden_split, wpack, h0, c0, hN,
                             cN, bounds)
        return out

    def step_kernel(self, theta, n_streams, softmax, n_threads):
        """A StepKernel (one time step for n_streams streams) on a copy of
        theta, threaded as plan_threads decides for streaming."""
        plan = plan_threads(self.layout, n_streams, n_threads, theta.dtype.itemsize,
                            streaming=True)
        return _step.StepKernel(self.cfg, theta, n_streams, softmax, plan.n_workers)


class CtcTargets(NamedTuple):
    """The targets of the CTC loss: sample i's labeling is
    labels[lstart[i] : lstart[i] + llen[i]] (int32 classes >= 1; 0 is the
    blank).  zero_infinity: a labeling its input is too short to emit
    contributes nothing (else the loss is infinite)."""
    labels: np.ndarray
    lstart: np.ndarray
    llen: np.ndarray
    zero_infinity: bool = False


class TrainWorkspace:
    """Buffers and thread plan for training on one data set.

    Allocated once per fit (or partial_fit) for batches of at most
    `batch_size` samples; ``train_batch`` then runs one batch through the
    kernels.  target: a (rows, n_outputs) array of values (MSE) or (rows,)
    int32 class codes (cross-entropy), a row per sample or per step (seq),
    or CtcTargets (the CTC loss, weights per sample).
    weights: a non-negative weight per target row (None: all 1); the batch
    loss is then the weighted mean.  ``batch_weight``: the total weight of
    the last batch's loss terms (without weights, its number of samples, or
    of steps with per-step targets).
    """

    # the buffers a kept workspace takes from and gives back to its engine
    KEPT = ("ws", "iws", "grads", "wpack", "ctc_ws")

    def __init__(self, engine, data, target, batch_size, n_threads, dtype, weights=None,
                 keep=False, input_grad=False):
        cfg = engine.cfg
        self.engine = engine
        empty = self._empty
        self.data = data
        self.n_threads = n_threads
        self.varlen = not data.uniform
        self.T = data.max_len
        self.batch = int(min(batch_size, data.n_samples))
        self.plan = plan_threads(engine.layout, self.batch, n_threads, dtype.itemsize)
        self.n_shards = 1 if self.plan.hidden_split else self.plan.n_workers
        self.shard_rows = -(-self.batch // self.n_shards)
        self.keep = bool(keep)
        self.ws = empty("ws", (self.n_shards,
                               cfg.workspace_size(self.shard_rows, self.T, True, self.varlen,
                                                  bool(input_grad))),
                        dtype)
        self.iws = empty("iws", (self.n_shards, cfg.index_workspace_size(self.T)), np.intp)
        self.grads = empty("grads", (self.n_shards, engine.layout.n_params), dtype)
        # scratch for the packed W_hh of the recurrent products (empty: BLAS)
        self.wpack = empty("wpack", (engine.packed_size(True, dtype),), dtype)
        self.ctc = None
        self.ctc_ws = None
        if isinstance(target, CtcTargets):
            # CTC: a labeling per sample, work per shard (or per thread of a team)
            self.ctc = target
            self.yreg, self.ylab = np.zeros((0, 0), dtype=dtype), np.zeros(0, dtype=np.int32)
            longest = int(target.llen.max()) if len(target.llen) else 0
            self.ctc_ws = empty(
                "ctc_ws", (n_threads if self.plan.hidden_split else self.n_shards,
                           _kernels.ctc_work_size(self.T, longest, engine.layout.n_outputs)),
                np.float64)
        elif target.dtype == np.int32:
            self.yreg, self.ylab = np.zeros((0, 0), dtype=dtype), target
        else:
            self.yreg, self.ylab = target, np.zeros(0, dtype=np.int32)
        self.weights = None if weights is None else np.ascontiguousarray(weights, np.float64)
        # each sample's total weight of loss terms (None: 1 each)
        per_step = engine.seq and self.ctc is None        # a loss term per step
        if self.weights is not None:
            self.sample_weights = (np.add.reduceat(self.weights, data.start) if per_step
                                   else self.weights)
        else:
            self.sample_weights = data.lens if per_step else None
        self.batch_weight = 0.0
        # input_grad: dLoss/d(rows) of each batch's rows lands here (a
        # convolutional front-end's workspace reads it)
        self.dX = np.empty_like(data.rows) if input_grad else None

    def _empty(self, name, shape, dtype):
        """An uninitialised buffer (the kernels write before they read),
        from the engine's scratch when kept."""
        arr = self.engine.take_scratch(name, shape, np.dtype(dtype)) if self.keep else None
        return np.empty(shape, dtype=dtype) if arr is None else arr

    def release(self):
        """Done training: a kept workspace gives its buffers back to the
        engine for the next partial_fit.  The workspace is unusable after."""
        buffers = {name: getattr(self, name) for name in self.KEPT}
        for name in self.KEPT:
            setattr(self, name, None)
        if self.keep:
            self.engine.keep_scratch({k: v for k, v in buffers.items() if v is not None})

    def train_batch(self, theta, samples, seed=0, states=None, data=None):
        """Mean loss (without any penalty) of the batch `samples` (data
        sample indices, at most batch_size of them) at theta; its gradient
        is left in ``self.grads``, one row per shard, to be summed in order
        (the optimizer kernel does).  seed: the dropout masks (with dropout).
        states: (h0, c0, hN, cN), each None or a (num_layers * ndir,
        n_samples, hidden) array in theta's dtype indexed by data sample:
        the batch starts from h0 (c0) and writes its final states into hN
        (cN), with no gradient into the initial states (stateful training
        by truncated BPTT across batches).  data: another SeqData with the
        same row and target arrays and sample lengths (stateful training
        walks the chunks of a long stream as batches of their own)."""
        data = self.data if data is None else data
        idx, bounds = shard_batch(samples, data.lens, self.n_shards, not self.varlen)
        self.batch_weight = (len(samples) if self.sample_weights is None
                             else float(self.sample_weights[samples].sum()))
        ctc = {}
        if self.ctc is not None:
            ctc = dict(ctc_labels=self.ctc.labels, ctc_lstart=self.ctc.lstart,
                       ctc_llen=self.ctc.llen, ctc_ws=self.ctc_ws,
                       zero_infinity=self.ctc.zero_infinity)
        return _kernels.train_step(
            self.engine.cfg, theta, self.grads, data.rows, data.start, data.lens, self.yreg,
            self.ylab, idx, bounds, self.ws, self.iws, self.T, self.shard_rows, self.varlen,
            self.n_threads, self.plan.hidden_split, self.wpack, self.weights, seed,
            *(states or ()), dX=self.dX, **ctc,
        )
