"""Run the kernels directly on a parameter dict (test helper)."""
import dataclasses
from contextlib import contextmanager

import numpy as np
import pytest

from crnn import _kernels
from crnn._nn.data import shard_batch
from crnn._nn.layout import LOSS_MSE, LOSS_XENT, Layout


# the SIMD level the configs below are built at (None: the CPU's best)
_LEVEL = [None]
BF16 = _kernels.SIMD_BF16_LEVEL


@contextmanager
def simd(level):
    """Run the kernels' products at SIMD `level` (None: level 0, every
    product through BLAS and no packing, the path of CPUs without AVX2;
    BF16: every product on bfloat16 operands)."""
    if level is None:
        _LEVEL[0] = 0
        try:
            yield False
        finally:
            _LEVEL[0] = None
        return
    if level == BF16:
        if not _kernels.bf16_supported():
            pytest.skip("this CPU has no AVX512-BF16")
    elif _kernels.simd_level() < level:
        pytest.skip(f"this CPU has no SIMD level {level}")
    _LEVEL[0] = level
    try:
        yield True
    finally:
        _LEVEL[0] = None


def config(layout, seq, loss, trunc, dropout=0.0, tokens=False):
    """The layout's kernel Config at the SIMD level of the enclosing simd()
    (tokens: of the layout with token input)."""
    if tokens and not layout.tokens:
        layout = dataclasses.replace(layout, tokens=True)
    return layout.config(seq, loss, trunc, -1 if _LEVEL[0] is None else _LEVEL[0], dropout)


SIMD_LEVELS = [None, 1, 2]
SIMD_IDS = ["blas", "avx2", "avx512"]


def make_layout(*, n_features, hidden, n_outputs, num_layers, bidirectional, nonlinearity,
                cell="rnn"):
    return Layout(cell, nonlinearity, num_layers, 2 if bidirectional else 1, hidden,
                  n_features, n_outputs)


def pack(layout, params, dtype):
    theta = np.zeros(layout.n_params, dtype=dtype)
    views = layout.views(theta)
    assert set(views) == set(params)
    for k, v in params.items():
        views[k][...] = v
    return theta


def flatten(X):
    """(N, T, D) array or list of (T_i, D) arrays -> (rows, start, lens)."""
    seqs = list(X)
    lens = np.array([len(x) for x in seqs], dtype=np.intp)
    start = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.intp)
    return np.concatenate(seqs, axis=0), start, lens


def shard(idx, lens, S):
    """Split a batch into S shards with the estimators' own sharding code."""
    idx = np.asarray(idx, dtype=np.intp)
    return shard_batch(idx, lens, S, bool(np.all(lens[idx] == lens[idx[0]])))


def kernel_loss_grad(layout, params, X, y, idx, *, loss, seq, trunc=None, n_threads=1,
                     dtype=np.float64, readonly=False, hidden_split=False, packed=False,
                     weights=None, dropout=0.0, seed=0, states=None, tokens=False,
                     input_grad=False):
    """(mean loss, {name: gradient}) of the batch X[idx] from train_step
    (batch split over n_threads shards, or one shard split over hidden units;
    recurrent products on packed weights, or through BLAS).

    X: (N, T, D) array or a list of (T_i, D) arrays.  y: per sample (N, ...)
    or, with seq, per step: (N, T, ...) array or list of (T_i, ...) arrays.
    weights: per target row, as y without its output axis (None: none).
    dropout, seed: dropout between layers and the masks' seed.  states:
    (h0, c0, hN, cN) for train_step (any may be None; hN, cN are filled).
    tokens: X holds one column of token ids (a one-hot input of
    layout.n_features columns).  input_grad: also return dLoss/dX, as the
    rows of X (a third value; rows outside idx are NaN)."""
    theta = pack(layout, params, dtype)
    cfg = config(layout, seq, LOSS_MSE if loss == "mse" else LOSS_XENT, trunc, dropout, tokens)
    sw = None
    if weights is not None:
        sw = np.ascontiguousarray(np.concatenate([np.ravel(w) for w in weights]) if seq
                                  else np.ravel(weights), dtype=np.float64)
    rows, start, lens = flatten(X)
    rows = np.ascontiguousarray(rows, dtype=dtype)
    if seq:
        ycat = np.concatenate(list(y), axis=0)
    else:
        ycat = np.asarray(y)
    if loss == "mse":
        yreg = np.ascontiguousarray(np.asarray(ycat, dtype=dtype).reshape(len(ycat), -1))
        ylab = np.zeros(0, np.int32)
    else:
        yreg = np.zeros((0, 0), dtype)
        ylab = np.ascontiguousarray(np.asarray(ycat, dtype=np.int32).reshape(-1))
    S = 1 if hidden_split else max(1, min(n_threads, len(idx)))
    order, bounds = shard(idx, lens, S)
    varlen = bool(np.any(lens != lens[0]))
    T = int(lens.max())
    bmax = int(np.max(np.diff(bounds)))
    if readonly:
        for a in (theta, rows, yreg, ylab, order, start, lens):
            a.setflags(write=False)
    ws = np.zeros((S, cfg.workspace_size(bmax, T, True, varlen, input_grad)), dtype)
    iws = np.zeros((S, cfg.index_workspace_size(T)), np.intp)
    grads = np.zeros((S, layout.n_params), dtype)
    wpack = np.full(cfg.packed_size(True, np.dtype(dtype).itemsize) if packed else 0, np.nan,
                    dtype)
    dX = np.full(rows.shape, np.nan, dtype) if input_grad else None
    value = _kernels.train_step(cfg, theta, grads, rows, start, lens, yreg, ylab, order, bounds,
                                ws, iws, T, bmax, varlen, n_threads, hidden_split, wpack, sw,
                                seed, *(states or (None,) * 4), dX=dX)
    g = grads.sum(axis=0)
    out = value, {k: v.copy() for k, v in layout.views(g).items()}
    return out + (dX,) if input_grad else out


def kernel_predict(layout, params, X, *, seq, n_threads=1, chunk=3, dtype=np.float64,
                   readonly=False, hidden_split=False, packed=False, states=None,
                   tokens=False):
    """Head outputs: (N, O) many-to-one; per step (N, T, O), or a list of
    (T_i, O) arrays for a list X.  states: (h0, c0, hN, cN) or None.
    tokens: X holds token ids, as in kernel_loss_grad."""
    theta = pack(layout, params, dtype)
    cfg = config(layout, seq, LOSS_MSE, None, tokens=tokens)
    rows, start, lens = flatten(X)
    rows = np.ascontiguousarray(rows, dtype=dtype)
    order = np.argsort(-lens, kind="stable").astype(np.intp)
    T = int(lens.max())
    if readonly:
        theta.setflags(write=False)
        rows.setflags(write=False)
    out = np.zeros((rows.shape[0] if seq else len(lens), layout.n_outputs), dtype)
    nws = 1 if hidden_split else n_threads
    ws = np.zeros((nws, cfg.workspace_size(chunk, T, False)), dtype)
    iws = np.zeros((nws, cfg.index_workspace_size(T)), np.intp)
    wpack = np.zeros(cfg.packed_size(False, np.dtype(dtype).itemsize) if packed else 0, dtype)
    if packed:
        _kernels.pack_weights(cfg, theta, wpack, False, n_threads)
        if readonly:
            wpack.setflags(write=False)
    _kernels.predict(cfg, theta, rows, start, lens, order, out, ws, iws, chunk, T, n_threads,
                     hidden_split, wpack, *(states or ()))
    if not seq:
        return out
    parts = [out[s:s + n] for s, n in zip(start, lens)]
    if isinstance(X, np.ndarray):
        return np.stack(parts)
    return parts
