"""Run the kernels directly on a parameter dict (test helper)."""
from contextlib import contextmanager

import numpy as np
import pytest

from crnn import _kernels
from crnn._layout import LOSS_MSE, LOSS_XENT, Layout


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


@contextmanager
def simd(level):
    """Run the recurrent products at SIMD `level` (None: BLAS, no packing)."""
    if level is None:
        yield False
        return
    got = _kernels.set_simd_level(level)
    if got != level:
        _kernels.set_simd_level(-1)
        pytest.skip(f"this CPU has no SIMD level {level}")
    try:
        yield True
    finally:
        _kernels.set_simd_level(-1)


SIMD_LEVELS = [None, 1, 2]
SIMD_IDS = ["blas", "avx2", "avx512"]


def kernel_loss_grad(layout, params, X, y, idx, *, loss, seq, trunc=None, n_threads=1,
                     dtype=np.float64, readonly=False, hidden_split=False, packed=False):
    """(mean loss, {name: gradient}) of the batch X[idx] from train_step
    (batch split over n_threads shards, or one shard split over hidden units;
    recurrent products on packed weights, or through BLAS)."""
    theta = pack(layout, params, dtype)
    cfg = layout.config(seq, LOSS_MSE if loss == "mse" else LOSS_XENT, trunc)
    Ty = X.shape[1] if seq else 1
    X = np.ascontiguousarray(X, dtype=dtype)
    if loss == "mse":
        yreg = np.ascontiguousarray(np.asarray(y, dtype=dtype).reshape(X.shape[0], Ty, -1))
        ylab = np.zeros((0, 0), np.int32)
    else:
        yreg = np.zeros((0, 0, 0), dtype)
        ylab = np.ascontiguousarray(np.asarray(y, dtype=np.int32).reshape(X.shape[0], Ty))
    idx = np.asarray(idx, dtype=np.intp)
    if readonly:
        for a in (theta, X, yreg, ylab, idx):
            a.setflags(write=False)
    S = 1 if hidden_split else max(1, min(n_threads, len(idx)))
    ws = np.zeros((S, cfg.workspace_size(-(-len(idx) // S), X.shape[1], True)), dtype)
    grads = np.zeros((S, layout.n_params), dtype)
    wpack = np.full(cfg.packed_size(True, np.dtype(dtype).itemsize) if packed else 0, np.nan,
                    dtype)
    value = _kernels.train_step(cfg, theta, grads, X, yreg, ylab, idx, ws, n_threads,
                                hidden_split, wpack)
    g = grads.sum(axis=0)
    return value, {k: v.copy() for k, v in layout.views(g).items()}


def kernel_predict(layout, params, X, *, seq, n_threads=1, chunk=3, dtype=np.float64,
                   readonly=False, hidden_split=False, packed=False):
    theta = pack(layout, params, dtype)
    cfg = layout.config(seq, LOSS_MSE, None)
    X = np.ascontiguousarray(X, dtype=dtype)
    if readonly:
        theta.setflags(write=False)
        X.setflags(write=False)
    out = np.zeros((X.shape[0], X.shape[1] if seq else 1, layout.n_outputs), dtype)
    ws = np.zeros((n_threads, cfg.workspace_size(chunk, X.shape[1], False)), dtype)
    wpack = np.zeros(cfg.packed_size(False, np.dtype(dtype).itemsize) if packed else 0, dtype)
    if packed:
        _kernels.pack_weights(cfg, theta, wpack, False, n_threads)
        if readonly:
            wpack.setflags(write=False)
    _kernels.predict(cfg, theta, X, out, ws, chunk, n_threads, hidden_split, wpack)
    return out if seq else out[:, 0]
