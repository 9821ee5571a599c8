"""The kernels against the plain-numpy reference and finite differences."""
import dataclasses
import itertools
import re
from pathlib import Path

import numpy as np
import pytest

import reference as ref
from kernel_helpers import (SIMD_IDS, SIMD_LEVELS, flatten, kernel_loss_grad,
                            kernel_predict, make_layout, pack, simd)
from crnn import _kernel_hooks, _kernels
from crnn._nn.layout import LOSS_MSE, LOSS_XENT, Layout

B, T, D, H, O = 6, 7, 3, 5, 4


# (cell, nonlinearity) of every recurrent cell
CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("gru", "tanh"), ("lstm", "tanh")]
CELL_IDS = ["tanh", "relu", "gru", "lstm"]


def _problem(seed, *, num_layers, bidirectional, nonlinearity, seq, loss, n_extra=3,
             T=T, scale=0.6, cell="rnn", hidden=H):
    rng = np.random.default_rng(seed)
    arch = dict(num_layers=num_layers, bidirectional=bidirectional, nonlinearity=nonlinearity,
                return_sequences=seq, cell=cell)
    layout = make_layout(n_features=D, hidden=hidden, n_outputs=O, num_layers=num_layers,
                         bidirectional=bidirectional, nonlinearity=nonlinearity, cell=cell)
    params = ref.init_params(rng, n_features=D, hidden=hidden, n_outputs=O,
                             num_layers=num_layers, bidirectional=bidirectional,
                             dtype=np.float64, scale=scale, cell=cell)
    N = B + n_extra
    X = rng.normal(size=(N, T, D))
    Ty = T if seq else 1
    if loss == "mse":
        y = rng.normal(size=(N, Ty, O))
    else:
        y = rng.integers(0, O, size=(N, Ty))
    idx = rng.permutation(N)[:B]          # a shuffled batch, not all samples
    return layout, params, X, y, idx, arch


def _ref_target(y, idx, seq):
    return y[idx] if seq else y[idx][:, 0]


def _rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)


def _assert_loss_grads(got_loss, got, want_loss, want, loss_rel, grad_rel, where=()):
    """The kernel's loss within loss_rel and every gradient within grad_rel of the reference."""
    assert got_loss == pytest.approx(want_loss, rel=loss_rel), where
    assert set(got) == set(want), where
    for name in want:
        assert _rel_err(got[name], want[name]) < grad_rel, (name,) + tuple(where)


# (n_threads, hidden_split): batch shards per thread, or one shard whose
# hidden units are split over a team of threads (H = 5 gives uneven and, with
# 4 threads, empty slices).
THREADING = [(1, False), (2, False), (2, True), (3, True)]
THREAD_IDS = ["1t", "2t-batch", "2t-hidden", "3t-hidden"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cellnl", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("level", SIMD_LEVELS, ids=SIMD_IDS)
def test_loss_and_gradients_match_reference(dtype, threading, num_layers, cellnl, seq, level):
    n_threads, hidden_split = threading
    cell, nonlinearity = cellnl
    readonly = level is None        # read-only inputs on one pass of the grid
    for loss, bidirectional in itertools.product(["mse", "xent"], [False, True]):
        layout, params, X, y, idx, arch = _problem(
            1, num_layers=num_layers, bidirectional=bidirectional, nonlinearity=nonlinearity,
            seq=seq, loss=loss, cell=cell)
        # reference in float64 on the same (rounded) weights and inputs
        p_d = {k: v.astype(dtype).astype(np.float64) for k, v in params.items()}
        X_d = X.astype(dtype).astype(np.float64)
        y_d = y.astype(dtype).astype(np.float64) if loss == "mse" else y
        want_loss, want = ref.loss_and_grads(p_d, X_d[idx], _ref_target(y_d, idx, seq),
                                             loss=loss, **arch)
        with simd(level) as packed:
            got_loss, got = kernel_loss_grad(layout, params, X, y, idx, loss=loss, seq=seq,
                                             n_threads=n_threads, dtype=dtype,
                                             readonly=readonly, hidden_split=hidden_split,
                                             packed=packed)
        tol = 1e-11 if dtype == np.float64 else 2e-5
        assert abs(got_loss - want_loss) <= tol * max(1, abs(want_loss))
        assert set(got) == set(want)
        for name in want:
            assert got[name].dtype == dtype
            assert _rel_err(got[name], want[name]) < tol * 10, (name, loss, bidirectional)


@pytest.mark.parametrize("trunc", [0, 1, 3, 6, 20])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("level", SIMD_LEVELS, ids=SIMD_IDS)
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_truncated_bptt_matches_reference(trunc, num_layers, seq, bidirectional, level, cell):
    layout, params, X, y, idx, arch = _problem(
        2, num_layers=num_layers, bidirectional=bidirectional, nonlinearity="tanh", seq=seq,
        loss="mse", T=9, cell=cell)
    want_loss, want = ref.loss_and_grads(params, X[idx], _ref_target(y, idx, seq), loss="mse",
                                         bptt_truncate=trunc, **arch)
    for n_threads, hidden_split in THREADING + [(4, True)]:
        with simd(level) as packed:
            got_loss, got = kernel_loss_grad(layout, params, X, y, idx, loss="mse", seq=seq,
                                             trunc=trunc, n_threads=n_threads,
                                             hidden_split=hidden_split, packed=packed)
        _assert_loss_grads(got_loss, got, want_loss, want, 1e-12, 1e-10)
    # truncation really changes the gradient (when it cuts anything)
    _, full = ref.loss_and_grads(params, X[idx], _ref_target(y, idx, seq), loss="mse", **arch)
    cut = trunc < 9 - 1
    differs = any(not np.allclose(full[k], want[k]) for k in full)
    assert differs == cut


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("level", SIMD_LEVELS, ids=SIMD_IDS)
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_predict_matches_reference(dtype, threading, num_layers, bidirectional, seq, level,
                                   cell):
    n_threads, hidden_split = threading
    layout, params, X, y, idx, arch = _problem(
        3, num_layers=num_layers, bidirectional=bidirectional, nonlinearity="tanh", seq=seq,
        loss="mse", cell=cell)
    want, _ = ref.forward({k: v.astype(dtype).astype(np.float64) for k, v in params.items()},
                          X.astype(dtype).astype(np.float64), **arch)
    for chunk in (1, 2, 4, 100):
        with simd(level) as packed:
            got = kernel_predict(layout, params, X, seq=seq, n_threads=n_threads, chunk=chunk,
                                 dtype=dtype, readonly=True, hidden_split=hidden_split,
                                 packed=packed)
        assert got.dtype == dtype
        tol = 1e-12 if dtype == np.float64 else 2e-6
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("cellnl", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("loss", ["mse", "xent"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradients_match_finite_differences(cellnl, seq, loss, bidirectional):
    """Central differences in float64 on every parameter: relative error < 1e-6."""
    cell, nonlinearity = cellnl
    layout, params, X, y, idx, arch = _problem(
        4, num_layers=2, bidirectional=bidirectional, nonlinearity=nonlinearity, seq=seq,
        loss=loss, T=5, cell=cell)
    _, grad = kernel_loss_grad(layout, params, X, y, idx, loss=loss, seq=seq)
    eps = 1e-6
    for name, value in params.items():
        fd = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            old = value[i]
            value[i] = old + eps
            lp, _ = kernel_loss_grad(layout, params, X, y, idx, loss=loss, seq=seq)
            value[i] = old - eps
            lm, _ = kernel_loss_grad(layout, params, X, y, idx, loss=loss, seq=seq)
            value[i] = old
            fd[i] = (lp - lm) / (2 * eps)
        err = np.linalg.norm(fd - grad[name]) / max(np.linalg.norm(fd) + np.linalg.norm(grad[name]), 1e-30)
        assert err < 1e-6, (name, err)
        assert np.linalg.norm(grad[name]) > 0, name


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_long_and_single_step_sequences(cell):
    for T_ in (1, 2, 60):
        layout, params, X, y, idx, arch = _problem(5, num_layers=2, bidirectional=True,
                                                   nonlinearity="tanh", seq=True, loss="xent",
                                                   T=T_, cell=cell)
        want_loss, want = ref.loss_and_grads(params, X[idx], y[idx], loss="xent", **arch)
        for n_threads, hidden_split in THREADING:
            got_loss, got = kernel_loss_grad(layout, params, X, y, idx, loss="xent", seq=True,
                                             n_threads=n_threads, hidden_split=hidden_split)
            _assert_loss_grads(got_loss, got, want_loss, want, 1e-12, 1e-10)


def test_more_threads_than_samples_and_uneven_shards():
    layout, params, X, y, idx, arch = _problem(6, num_layers=1, bidirectional=False,
                                               nonlinearity="tanh", seq=False, loss="mse")
    want_loss, want = ref.loss_and_grads(params, X[idx[:5]], y[idx[:5]][:, 0], loss="mse",
                                         **arch)
    for n_threads in (1, 2, 3, 4, 8):
        got_loss, got = kernel_loss_grad(layout, params, X, y, idx[:5], loss="mse", seq=False,
                                         n_threads=n_threads)
        _assert_loss_grads(got_loss, got, want_loss, want, 1e-12, 1e-10)


def test_train_step_is_deterministic():
    layout, params, X, y, idx, arch = _problem(7, num_layers=2, bidirectional=True,
                                               nonlinearity="tanh", seq=True, loss="mse")
    for n_threads, hidden_split in THREADING:
        runs = [kernel_loss_grad(layout, params, X, y, idx, loss="mse", seq=True,
                                 n_threads=n_threads, dtype=np.float32,
                                 hidden_split=hidden_split) for _ in range(3)]
        for r in runs[1:]:
            assert r[0] == runs[0][0]
            for k in r[1]:
                assert np.array_equal(r[1][k], runs[0][1][k])


def test_kernel_rejects_inconsistent_arrays():
    layout, params, X, y, idx, arch = _problem(8, num_layers=1, bidirectional=False,
                                               nonlinearity="tanh", seq=False, loss="mse")
    theta = pack(layout, params, np.float64)
    cfg = layout.config(False, LOSS_MSE, None)
    rows, start, lens = flatten(X)
    ws = np.zeros((1, cfg.workspace_size(B, T, True)))
    iws = np.zeros((1, cfg.index_workspace_size(T)), np.intp)
    grads = np.zeros((1, layout.n_params))
    yreg = np.ascontiguousarray(y.reshape(len(y), O))
    lab = np.zeros(0, np.int32)
    idx = np.asarray(idx, np.intp)
    bounds = np.array([0, len(idx)], np.intp)

    def call(**kw):
        args = dict(theta=theta, rows=rows, start=start, lens=lens, idx=idx, bounds=bounds,
                    ws=ws, T=T, varlen=False)
        args.update(kw)
        return _kernels.train_step(cfg, args["theta"], grads, args["rows"], args["start"],
                                   args["lens"], yreg, lab, args["idx"], args["bounds"],
                                   args["ws"], iws, args["T"], B, args["varlen"], 1)

    call()
    with pytest.raises(ValueError, match="features"):
        call(rows=np.zeros((rows.shape[0], D + 1)))
    with pytest.raises(IndexError):
        call(idx=np.array([0, 99], np.intp), bounds=np.array([0, 2], np.intp))
    with pytest.raises(ValueError, match="workspace"):
        call(ws=ws[:, :10])
    with pytest.raises(ValueError, match="parameter"):
        call(theta=theta[:-1])
    with pytest.raises(ValueError, match="outside the data"):
        call(lens=lens + 1)
    with pytest.raises(ValueError, match="cover the batch"):
        call(bounds=np.array([0, 2], np.intp))
    ragged = lens.copy()
    ragged[idx[1]] = 2
    by_length = idx[np.argsort(-ragged[idx], kind="stable")]
    with pytest.raises(ValueError, match="varlen"):
        call(lens=ragged, idx=by_length)
    with pytest.raises(ValueError, match="sorted by decreasing length"):
        call(lens=ragged, varlen=True, idx=by_length[::-1].copy())
    call(lens=ragged, varlen=True, idx=by_length,
         ws=np.zeros((1, cfg.workspace_size(B, T, True, True))))


def test_vector_tanh_is_accurate_to_a_few_ulp():
    rng = np.random.default_rng(0)
    x = np.concatenate([
        np.linspace(-12, 12, 200_001, dtype=np.float32),
        (10.0 ** rng.uniform(-8, 1.1, 200_000) * rng.choice([-1, 1], 200_000)).astype(np.float32),
        np.array([0.0, -0.0, 0.625, -0.625, np.nextafter(0.625, 0), 10, 1e30, -1e30,
                  np.inf, -np.inf], np.float32),
    ])
    got = x.copy()
    _kernel_hooks.fast_tanh_f32(got)
    want = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - want) / ulp) < 2.0
    assert got[-2] == 1.0 and got[-1] == -1.0 and np.signbit(got[-9])
    nan = np.array([np.nan, 0.5], np.float32)
    _kernel_hooks.fast_tanh_f32(nan)
    assert np.isnan(nan[0]) and abs(nan[1] - np.tanh(0.5)) < 2 * np.spacing(np.float32(0.46))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [2, 3])
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("trunc", [None, 3])
@pytest.mark.parametrize("level", SIMD_LEVELS, ids=SIMD_IDS)
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_hidden_split_with_real_unit_slices(dtype, n_threads, seq, trunc, level, cell):
    """H = 70 gives each thread its own slice of units (aligned to panels of 32
    float32 or 16 float64), in both directions and both layers, with a
    partial last panel."""
    rng = np.random.default_rng(9)
    Hb, Tb, Bb = 70, 6, 5
    arch = dict(num_layers=2, bidirectional=True, nonlinearity="tanh", return_sequences=seq,
                cell=cell)
    layout = make_layout(n_features=D, hidden=Hb, n_outputs=O, num_layers=2, bidirectional=True,
                         nonlinearity="tanh", cell=cell)
    params = ref.init_params(rng, n_features=D, hidden=Hb, n_outputs=O, num_layers=2,
                             bidirectional=True, dtype=np.float64, scale=0.3, cell=cell)
    X = rng.normal(size=(Bb, Tb, D))
    y = rng.normal(size=(Bb, Tb if seq else 1, O))
    idx = np.arange(Bb)
    p_d = {k: v.astype(dtype).astype(np.float64) for k, v in params.items()}
    X_d = X.astype(dtype).astype(np.float64)
    y_d = y.astype(dtype).astype(np.float64)
    want_loss, want = ref.loss_and_grads(p_d, X_d, y_d if seq else y_d[:, 0], loss="mse",
                                         bptt_truncate=trunc, **arch)
    with simd(level) as packed:
        got_loss, got = kernel_loss_grad(layout, params, X, y, idx, loss="mse", seq=seq,
                                         trunc=trunc, n_threads=n_threads, dtype=dtype,
                                         hidden_split=True, packed=packed)
    tol = 1e-11 if dtype == np.float64 else 3e-5
    _assert_loss_grads(got_loss, got, want_loss, want, tol, tol * 10)
    with simd(level) as packed:
        pred = kernel_predict(layout, params, X, seq=seq, n_threads=n_threads, chunk=2,
                              dtype=dtype, hidden_split=True, packed=packed)
    want_pred, _ = ref.forward(p_d, X_d, **arch)
    np.testing.assert_allclose(pred, want_pred, rtol=tol, atol=tol)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
@pytest.mark.parametrize("level", SIMD_LEVELS, ids=SIMD_IDS)
def test_predict_with_initial_and_final_states(cell, bidirectional, threading, level):
    n_threads, hidden_split = threading
    layout, params, X, y, idx, arch = _problem(10, num_layers=2, bidirectional=bidirectional,
                                               nonlinearity="tanh", seq=True, loss="mse",
                                               cell=cell)
    rng = np.random.default_rng(11)
    shape = (2 * (2 if bidirectional else 1), X.shape[0], H)
    h0 = rng.normal(size=shape) * 0.5
    c0 = rng.normal(size=shape) * 0.5 if cell == "lstm" else None
    want, _ = ref.forward(params, X, h0=h0, c0=c0, **arch)
    want_h, want_c = ref.final_states(params, X, h0=h0, c0=c0, **arch)
    with simd(level) as packed:
        for chunk in (2, 4, 100):
            hN = np.zeros(shape)
            cN = np.zeros(shape) if cell == "lstm" else None
            out = kernel_predict(layout, params, X, seq=True, n_threads=n_threads, chunk=chunk,
                                 hidden_split=hidden_split, packed=packed,
                                 states=(h0, c0, hN, cN))
            np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(hN, want_h, rtol=1e-12, atol=1e-12)
            if cell == "lstm":
                np.testing.assert_allclose(cN, want_c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
def test_training_from_given_states_matches_reference(cell, bidirectional, seq, threading):
    """train_step from initial states: the loss, every gradient (no gradient
    into the states: truncated BPTT across calls) and the batch's final
    states; other samples' rows of hN are left alone."""
    n_threads, hidden_split = threading
    layout, params, X, y, idx, arch = _problem(21, num_layers=2, bidirectional=bidirectional,
                                               nonlinearity="tanh", seq=seq, loss="mse",
                                               cell=cell)
    rng = np.random.default_rng(5)
    shape = (2 * (2 if bidirectional else 1), X.shape[0], H)
    h0 = rng.normal(size=shape) * 0.5
    c0 = rng.normal(size=shape) * 0.5 if cell == "lstm" else None
    hN = np.full(shape, np.nan)
    cN = np.full(shape, np.nan) if cell == "lstm" else None
    yt = y[idx] if seq else y[idx][:, 0]
    want_loss, want = ref.loss_and_grads(params, X[idx], yt, loss="mse", h0=h0[:, idx],
                                         c0=None if c0 is None else c0[:, idx], **arch)
    want_h, want_c = ref.final_states(params, X[idx], h0=h0[:, idx],
                                      c0=None if c0 is None else c0[:, idx], **arch)
    got_loss, got = kernel_loss_grad(layout, params, X, y if seq else y[:, 0], idx, loss="mse",
                                     seq=seq, n_threads=n_threads, hidden_split=hidden_split,
                                     states=(h0, c0, hN, cN))
    assert got_loss == pytest.approx(want_loss, rel=1e-12)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    np.testing.assert_allclose(hN[:, idx], want_h, rtol=1e-12, atol=1e-12)
    others = np.setdiff1d(np.arange(X.shape[0]), idx)
    assert np.all(np.isnan(hN[:, others]))
    if cell == "lstm":
        np.testing.assert_allclose(cN[:, idx], want_c, rtol=1e-12, atol=1e-12)
    # zero initial states are the stateless call
    _, plain = kernel_loss_grad(layout, params, X, y if seq else y[:, 0], idx, loss="mse",
                                seq=seq, n_threads=n_threads, hidden_split=hidden_split)
    _, zeros = kernel_loss_grad(layout, params, X, y if seq else y[:, 0], idx, loss="mse",
                                seq=seq, n_threads=n_threads, hidden_split=hidden_split,
                                states=(np.zeros(shape), None if c0 is None else
                                        np.zeros(shape), None, None))
    for name in plain:
        np.testing.assert_array_equal(zeros[name], plain[name])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_training_on_chunks_with_the_state_carried_sees_one_long_sequence(cell):
    """Two chunks of a long sequence, the second starting from the first's
    final state: the second chunk's loss is the long sequence's loss over
    its steps (what stateful training over a long text relies on), and its
    ragged shards (sequences of different lengths) do the same."""
    layout, params, X, y, idx, arch = _problem(8, num_layers=2, bidirectional=False,
                                               nonlinearity="tanh", seq=True, loss="mse",
                                               cell=cell, T=10)
    N = X.shape[0]
    shape = (2, N, H)
    everyone = np.arange(N)
    hN = np.zeros(shape)
    cN = np.zeros(shape) if cell == "lstm" else None
    kernel_loss_grad(layout, params, X[:, :6], y[:, :6], everyone, loss="mse", seq=True,
                     states=(None, None, hN, cN))
    loss2, _ = kernel_loss_grad(layout, params, X[:, 6:], y[:, 6:], everyone, loss="mse",
                                seq=True, n_threads=2, states=(hN, cN, None, None))
    logits, _ = ref.forward(params, X, **arch)
    want = np.mean((logits[:, 6:] - y[:, 6:]) ** 2)
    assert loss2 == pytest.approx(want, rel=1e-12)
    # ragged second chunks: each sequence's own steps, from its own state
    lens = [1 + (3 * i) % 4 for i in range(N)]
    Xr = [X[i, 6:6 + lens[i]] for i in range(N)]
    yr = [y[i, 6:6 + lens[i]] for i in range(N)]
    loss_r, _ = kernel_loss_grad(layout, params, Xr, yr, everyone, loss="mse", seq=True,
                                 n_threads=2, states=(hN, cN, None, None))
    terms = np.concatenate([((logits[i, 6:6 + lens[i]] - y[i, 6:6 + lens[i]]) ** 2).ravel()
                            for i in range(N)])
    assert loss_r == pytest.approx(terms.mean(), rel=1e-12)


def test_train_step_rejects_bad_states():
    layout, params, X, y, idx, arch = _problem(12, num_layers=1, bidirectional=False,
                                               nonlinearity="tanh", seq=False, loss="mse")
    with pytest.raises(ValueError, match="h0 must have shape"):
        kernel_loss_grad(layout, params, X, y[:, 0], idx, loss="mse", seq=False,
                         states=(np.zeros((1, 3, H)), None, None, None))
    with pytest.raises(ValueError, match="only the LSTM"):
        kernel_loss_grad(layout, params, X, y[:, 0], idx, loss="mse", seq=False,
                         states=(None, None, None, np.zeros((1, X.shape[0], H))))


def test_predict_rejects_bad_states():
    layout, params, X, y, idx, arch = _problem(12, num_layers=1, bidirectional=False,
                                               nonlinearity="tanh", seq=False, loss="mse")
    N = X.shape[0]
    with pytest.raises(ValueError, match="h0 must have shape"):
        kernel_predict(layout, params, X, seq=False, states=(np.zeros((1, 3, H)),))
    with pytest.raises(ValueError, match="only the LSTM"):
        kernel_predict(layout, params, X, seq=False,
                       states=(np.zeros((1, N, H)), np.zeros((1, N, H))))


def _read_only(*arrays):
    out = []
    for a in arrays:
        if a is not None:
            a = a.copy()
            a.flags.writeable = False
        out.append(a)
    return out


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_read_only_initial_states_give_the_same_answer(cell):
    """Initial states the caller cannot write (h0, c0 read-only: a
    np.broadcast_to, a memory-mapped file) are accepted by predict and
    train_step and give exactly the writable arrays' results."""
    layout, params, X, y, idx, arch = _problem(31, num_layers=2, bidirectional=True,
                                               nonlinearity="tanh", seq=True, loss="mse",
                                               cell=cell)
    rng = np.random.default_rng(3)
    shape = (4, X.shape[0], H)
    h0 = rng.normal(size=shape) * 0.5
    c0 = rng.normal(size=shape) * 0.5 if cell == "lstm" else None
    results = []
    for h, c in ((h0, c0), _read_only(h0, c0)):
        hN = np.zeros(shape)
        out = kernel_predict(layout, params, X, seq=True, states=(h, c, hN, None))
        loss, grads = kernel_loss_grad(layout, params, X, y, idx, loss="mse", seq=True,
                                       states=(h, c, None, None))
        results.append((out, hN, loss, grads))
    (out, hN, loss, grads), (out_ro, hN_ro, loss_ro, grads_ro) = results
    np.testing.assert_array_equal(out_ro, out)
    np.testing.assert_array_equal(hN_ro, hN)
    assert loss_ro == loss
    for name in grads:
        np.testing.assert_array_equal(grads_ro[name], grads[name], err_msg=name)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_estimator_predict_from_read_only_initial_state(cell):
    """The estimator passes a read-only initial_state of its own dtype on to
    the kernels as it is (no copy): the same predictions and final states as
    from writable arrays; the stepper too."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from crnn import RNNRegressor
    rng = np.random.default_rng(4)
    X = rng.normal(size=(7, 6, 3)).astype(np.float32)
    y = rng.normal(size=7).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = RNNRegressor(cell=cell, hidden_size=6, num_layers=2, max_iter=2, batch_size=4,
                           random_state=0).fit(X, y)
    h = rng.normal(size=(2, 7, 6)).astype(np.float32)
    parts = [h, rng.normal(size=h.shape).astype(np.float32)] if cell == "lstm" else [h]

    def state(arrays):
        return tuple(arrays) if cell == "lstm" else arrays[0]

    def flat(st):
        return list(st) if cell == "lstm" else [st]
    want, want_state = est.predict(X, initial_state=state(parts), return_state=True)
    got, got_state = est.predict(X, initial_state=state(_read_only(*parts)), return_state=True)
    np.testing.assert_array_equal(got, want)
    for g, w in zip(flat(got_state), flat(want_state)):
        np.testing.assert_array_equal(g, w)
    stepper = est.stepper(n_streams=7)
    want_y, want_next = stepper.step(X[:, 0], state(parts))
    got_y, got_next = stepper.step(X[:, 0], state(_read_only(*parts)))
    np.testing.assert_array_equal(got_y, want_y)
    for g, w in zip(flat(got_next), flat(want_next)):
        np.testing.assert_array_equal(g, w)

# ---------------------------------------------------------------------------
# variable-length batches: the same as running each sequence alone


def _ragged(seed, lens, *, seq, loss, cell, num_layers, bidirectional, hidden=H):
    rng = np.random.default_rng(seed)
    arch = dict(num_layers=num_layers, bidirectional=bidirectional, nonlinearity="tanh",
                return_sequences=seq, cell=cell)
    layout = make_layout(n_features=D, hidden=hidden, n_outputs=O, num_layers=num_layers,
                         bidirectional=bidirectional, nonlinearity="tanh", cell=cell)
    params = ref.init_params(rng, n_features=D, hidden=hidden, n_outputs=O,
                             num_layers=num_layers, bidirectional=bidirectional,
                             dtype=np.float64, scale=0.5, cell=cell)
    X = [rng.normal(size=(n, D)) for n in lens]
    if loss == "mse":
        y = [rng.normal(size=(n, O)) for n in lens] if seq else rng.normal(size=(len(lens), O))
    else:
        y = [rng.integers(0, O, size=n) for n in lens] if seq else rng.integers(0, O, len(lens))
    return layout, params, X, y, arch


def _one_at_a_time(params, X, y, idx, *, loss, seq, trunc, arch):
    """Loss and gradients of a batch as the mean of each sequence run alone,
    weighted by its number of loss terms."""
    total, grads, terms = 0.0, None, 0
    for i in idx:
        yi = y[i][None] if seq else np.asarray(y[i])[None]
        li, gi = ref.loss_and_grads(params, X[i][None], yi, loss=loss, bptt_truncate=trunc,
                                    **arch)
        w = len(X[i]) if seq else 1
        total += li * w
        terms += w
        grads = {k: w * v for k, v in gi.items()} if grads is None else \
            {k: grads[k] + w * v for k, v in gi.items()}
    return total / terms, {k: v / terms for k, v in grads.items()}


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
@pytest.mark.parametrize("level", [None, 2], ids=["blas", "avx512"])
def test_ragged_batch_equals_sequences_run_alone(cell, seq, bidirectional, threading, level):
    n_threads, hidden_split = threading
    lens = [7, 1, 4, 7, 2, 5, 3]
    for loss, trunc, num_layers in (("mse", None, 2), ("xent", None, 1), ("mse", 1, 2)):
        layout, params, X, y, arch = _ragged(20, lens, seq=seq, loss=loss, cell=cell,
                                             num_layers=num_layers, bidirectional=bidirectional)
        idx = [5, 0, 2, 6, 1, 3]           # a batch: not all samples, not sorted
        want_loss, want = _one_at_a_time(params, X, y, idx, loss=loss, seq=seq, trunc=trunc,
                                         arch=arch)
        with simd(level) as packed:
            got_loss, got = kernel_loss_grad(layout, params, X, y, idx, loss=loss, seq=seq,
                                             trunc=trunc, n_threads=n_threads,
                                             hidden_split=hidden_split, packed=packed)
        _assert_loss_grads(got_loss, got, want_loss, want, 1e-11, 1e-10, (loss, trunc))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
def test_ragged_predict_and_states_equal_sequences_run_alone(cell, bidirectional, threading):
    n_threads, hidden_split = threading
    lens = [6, 2, 9, 1, 6, 4]
    layout, params, X, y, arch = _ragged(21, lens, seq=True, loss="mse", cell=cell,
                                         num_layers=2, bidirectional=bidirectional)
    rng = np.random.default_rng(22)
    shape = (2 * (2 if bidirectional else 1), len(lens), H)
    h0 = rng.normal(size=shape) * 0.5
    c0 = rng.normal(size=shape) * 0.5 if cell == "lstm" else None
    for seq in (False, True):
        a = dict(arch, return_sequences=seq)
        for chunk in (1, 2, 100):
            hN = np.zeros(shape)
            cN = np.zeros(shape) if cell == "lstm" else None
            got = kernel_predict(layout, params, X, seq=seq, n_threads=n_threads, chunk=chunk,
                                 hidden_split=hidden_split, states=(h0, c0, hN, cN))
            for i, x in enumerate(X):
                ci = None if c0 is None else c0[:, i:i + 1]
                want, _ = ref.forward(params, x[None], h0=h0[:, i:i + 1], c0=ci, **a)
                np.testing.assert_allclose(got[i], want[0], rtol=1e-12, atol=1e-12)
                wh, wc = ref.final_states(params, x[None], h0=h0[:, i:i + 1], c0=ci, **a)
                np.testing.assert_allclose(hN[:, i], wh[:, 0], rtol=1e-12, atol=1e-12)
                if cell == "lstm":
                    np.testing.assert_allclose(cN[:, i], wc[:, 0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_lengths_1_and_1000_in_one_batch(cell):
    layout, params, X, y, arch = _ragged(23, [1000, 1], seq=True, loss="mse", cell=cell,
                                         num_layers=1, bidirectional=True, hidden=4)
    want_loss, want = _one_at_a_time(params, X, y, [0, 1], loss="mse", seq=True, trunc=None,
                                     arch=arch)
    for n_threads, hidden_split in ((1, False), (2, False), (2, True)):
        got_loss, got = kernel_loss_grad(layout, params, X, y, [1, 0], loss="mse", seq=True,
                                         n_threads=n_threads, hidden_split=hidden_split)
        _assert_loss_grads(got_loss, got, want_loss, want, 1e-11, 1e-9)


def test_vector_sigmoid_is_accurate():
    x = np.concatenate([np.linspace(-100, 100, 200_001, dtype=np.float32),
                        np.array([0.0, np.inf, -np.inf], np.float32)])
    got = x.copy()
    _kernel_hooks.fast_sigmoid_f32(got)
    want = 1 / (1 + np.exp(-x.astype(np.float64)))
    ok = want > 1e-37                 # below that flush-to-zero territory
    ulp = np.spacing(want[ok].astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[ok] - want[ok]) / ulp) < 4.0
    assert got[-2] == 1.0 and got[-1] == 0.0 and got[-3] == 0.5
    nan = np.array([np.nan], np.float32)
    _kernel_hooks.fast_sigmoid_f32(nan)
    assert np.isnan(nan[0])


# ---------------------------------------------------------------------------
# sample weights and dropout


@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
@pytest.mark.parametrize("cellnl", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_weighted_loss_and_gradients_match_reference(threading, cellnl, seq, loss):
    """The weighted mean sum(w * term) / sum(w) and its gradient, weights per
    sample or (seq) per step, zeros included."""
    n_threads, hidden_split = threading
    cell, nonlinearity = cellnl
    layout, params, X, y, idx, arch = _problem(3, num_layers=2, bidirectional=True,
                                               nonlinearity=nonlinearity, seq=seq, loss=loss,
                                               cell=cell)
    rng = np.random.default_rng(5)
    w = rng.integers(0, 4, size=(len(X), T) if seq else len(X)).astype(np.float64)
    w[idx[0]] = 2.5
    want_loss, want = ref.loss_and_grads(params, X[idx], _ref_target(y, idx, seq), loss=loss,
                                         weights=w[idx], **arch)
    got_loss, got = kernel_loss_grad(layout, params, X, y, idx, loss=loss, seq=seq,
                                     n_threads=n_threads, hidden_split=hidden_split, weights=w)
    _assert_loss_grads(got_loss, got, want_loss, want, 1e-11, 1e-10, (loss, seq))
    # unit weights are no weights, bit for bit
    ones = np.ones_like(w)
    a = kernel_loss_grad(layout, params, X, y, idx, loss=loss, seq=seq, weights=ones)
    b = kernel_loss_grad(layout, params, X, y, idx, loss=loss, seq=seq)
    assert a[0] == b[0] and all(np.array_equal(a[1][k], b[1][k]) for k in a[1])


def test_a_batch_of_zero_weight_has_zero_loss_and_gradient():
    layout, params, X, y, idx, arch = _problem(3, num_layers=1, bidirectional=False,
                                               nonlinearity="tanh", seq=False, loss="mse")
    w = np.ones(len(X))
    w[idx] = 0
    value, g = kernel_loss_grad(layout, params, X, y, idx, loss="mse", seq=False, weights=w)
    assert value == 0 and all(not v.any() for v in g.values())
    with pytest.raises(ValueError, match="non-negative"):
        w[idx[0]] = -1
        kernel_loss_grad(layout, params, X, y, idx, loss="mse", seq=False, weights=w)


@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
@pytest.mark.parametrize("cellnl", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("level", SIMD_LEVELS, ids=SIMD_IDS)
def test_dropout_matches_reference_with_the_same_masks(threading, cellnl, seq, level):
    """Dropout between 3 stacked bidirectional layers: the kernel's loss and
    gradients equal the numpy reference given the masks of the documented
    hash, whatever the sharding and threads."""
    n_threads, hidden_split = threading
    cell, nonlinearity = cellnl
    p, seed = 0.3, 12345
    for loss in ("mse", "xent"):
        layout, params, X, y, idx, arch = _problem(4, num_layers=3, bidirectional=True,
                                                   nonlinearity=nonlinearity, seq=seq,
                                                   loss=loss, cell=cell)
        masks = ref.dropout_masks(seed, p, idx, T, 2 * H, 3)
        assert 0.15 < np.mean(np.concatenate(masks) == 0) < 0.45
        want_loss, want = ref.loss_and_grads(params, X[idx], _ref_target(y, idx, seq),
                                             loss=loss, masks=masks, **arch)
        with simd(level) as packed:
            got_loss, got = kernel_loss_grad(layout, params, X, y, idx, loss=loss, seq=seq,
                                             n_threads=n_threads, hidden_split=hidden_split,
                                             packed=packed, dropout=p, seed=seed)
        _assert_loss_grads(got_loss, got, want_loss, want, 1e-11, 1e-10, (loss, seq))
        # another seed, other masks
        other = kernel_loss_grad(layout, params, X, y, idx, loss=loss, seq=seq, dropout=p,
                                 seed=seed + 1)
        assert other[0] != got_loss


def test_dropout_with_ragged_batches_and_truncation_matches_reference():
    """Masks are keyed by (sample, step): ragged sequences get the entries of
    their own steps, as each sequence alone would."""
    rng = np.random.default_rng(7)
    layout = make_layout(n_features=D, hidden=H, n_outputs=O, num_layers=2,
                         bidirectional=False, nonlinearity="tanh", cell="gru")
    params = ref.init_params(rng, n_features=D, hidden=H, n_outputs=O, num_layers=2,
                             bidirectional=False, dtype=np.float64, scale=0.6, cell="gru")
    arch = dict(num_layers=2, bidirectional=False, nonlinearity="tanh", return_sequences=False,
                cell="gru")
    lens = [7, 3, 5, 1]
    X = [rng.normal(size=(n, D)) for n in lens]
    y = rng.normal(size=(len(X), 1, O))
    got_loss, got = kernel_loss_grad(layout, params, X, y, np.arange(4), loss="mse", seq=False,
                                     n_threads=2, dropout=0.5, seed=99)
    # the reference, one sequence at a time, as a sum of per-sequence terms
    total, grads = 0.0, None
    for i, x in enumerate(X):
        masks = ref.dropout_masks(99, 0.5, [i], len(x), H, 2)
        v, g = ref.loss_and_grads(params, x[None], y[i], loss="mse", masks=masks, **arch)
        total += v / len(X)
        grads = {k: g[k] / len(X) + (0 if grads is None else grads[k]) for k in g}
    _assert_loss_grads(got_loss, got, total, grads, 1e-11, 1e-10)


# ---------------------------------------------------------------------------
# token-id input (a one-hot input never materialised)


def _token_problem(seed, cell, num_layers, bidirectional, seq, V=11, ragged=False):
    layout, params, X, y, idx, arch = _problem(seed, num_layers=num_layers,
                                               bidirectional=bidirectional,
                                               nonlinearity="tanh", seq=seq, loss="xent",
                                               cell=cell)
    rng = np.random.default_rng(seed + 100)
    layout = make_layout(n_features=V, hidden=H, n_outputs=O, num_layers=num_layers,
                         bidirectional=bidirectional, nonlinearity="tanh", cell=cell)
    params = ref.init_params(rng, n_features=V, hidden=H, n_outputs=O, num_layers=num_layers,
                             bidirectional=bidirectional, dtype=np.float64, scale=0.6, cell=cell)
    N = X.shape[0]
    ids = rng.integers(0, V, size=(N, T))
    ids[0, :] = V - 1                       # the last id is used
    if ragged:
        lens = rng.integers(1, T + 1, size=N)
        tok = [ids[i, :lens[i], None].astype(np.float64) for i in range(N)]
        hot = [np.eye(V)[ids[i, :lens[i]]] for i in range(N)]
        y = [y[i, :lens[i]] for i in range(N)] if seq else y[:, 0]
    else:
        tok = ids[:, :, None].astype(np.float64)
        hot = np.eye(V)[ids]
        y = y if seq else y[:, 0]
    return layout, params, tok, hot, y, idx


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
def test_token_ids_train_as_the_dense_one_hot_input(cell, num_layers, bidirectional, seq,
                                                    ragged, threading):
    """Layer 0 gathers a column of W_ih per token and scatters its gradient
    back: the same loss and gradients as the one-hot rows (float64)."""
    n_threads, hidden_split = threading
    layout, params, tok, hot, y, idx = _token_problem(31, cell, num_layers, bidirectional, seq,
                                                      ragged=ragged)
    kw = dict(loss="xent", seq=seq, n_threads=n_threads, hidden_split=hidden_split)
    want_loss, want = kernel_loss_grad(layout, params, hot, y, idx, **kw)
    got_loss, got = kernel_loss_grad(layout, params, tok, y, idx, tokens=True, **kw)
    assert got_loss == pytest.approx(want_loss, rel=1e-13)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-11, atol=1e-13,
                                   err_msg=name)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
@pytest.mark.parametrize("level", SIMD_LEVELS, ids=SIMD_IDS)
def test_token_ids_predict_as_the_dense_one_hot_input(cell, dtype, threading, level):
    n_threads, hidden_split = threading
    layout, params, tok, hot, y, idx = _token_problem(32, cell, 2, False, True, ragged=True)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    with simd(level) as packed:
        want = kernel_predict(layout, params, hot, seq=True, dtype=dtype, n_threads=n_threads,
                              hidden_split=hidden_split, packed=packed)
        got = kernel_predict(layout, params, tok, seq=True, dtype=dtype, n_threads=n_threads,
                             hidden_split=hidden_split, packed=packed, tokens=True)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_token_ids_are_checked():
    layout, params, tok, hot, y, idx = _token_problem(33, "gru", 1, False, False)
    for bad, what in [(-1.0, "-1.0"), (11.0, "11.0"), (2.5, "2.5"), (np.nan, "nan")]:
        X = tok.copy()
        X[3, 2, 0] = bad
        with pytest.raises(ValueError, match=rf"token id {what} at row \d+ is not an integer "
                                             r"in \[0, 11\)"):
            kernel_loss_grad(layout, params, X, y, idx, loss="xent", seq=False, tokens=True)
        with pytest.raises(ValueError, match="is not an integer"):
            kernel_predict(layout, params, X, seq=False, tokens=True)
    with pytest.raises(ValueError, match="one column of token ids, got 11 columns"):
        kernel_predict(layout, params, hot, seq=False, tokens=True)
    from crnn import _step
    cfg = dataclasses.replace(layout, tokens=True).config(False, LOSS_MSE, None)
    kernel = _step.StepKernel(cfg, pack(layout, params, np.float64), 2, False, 1)
    for bad in (-1.0, 11.0, 0.5):
        with pytest.raises(ValueError, match=r"token id .* of stream 1 is not an integer in "
                                             r"\[0, 11\)"):
            kernel.step(np.array([[3.0], [bad]]))
    with pytest.raises(ValueError, match="expected"):
        kernel.step(np.zeros((2, 11)))          # one-hot rows into a token kernel


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("level", SIMD_LEVELS, ids=SIMD_IDS)
def test_token_ids_step_as_predict_and_as_one_hot_rows(cell, dtype, n_threads, level):
    """The step kernel on token ids (generation's path): step by step, the
    outputs of predict over the whole sequence, and of one-hot rows."""
    from crnn import _step
    from kernel_helpers import config
    layout, params, tok, hot, y, idx = _token_problem(34, cell, 2, False, True)
    N, T = tok.shape[:2]
    tol = 1e-12 if dtype == np.float64 else 2e-5
    theta = pack(layout, params, dtype)
    with simd(level) as packed:
        want = kernel_predict(layout, params, tok, seq=True, dtype=dtype, tokens=True,
                              packed=packed)
        kernel = _step.StepKernel(config(layout, True, LOSS_MSE, None, tokens=True), theta, N,
                                  False, n_threads)
        dense = _step.StepKernel(config(layout, True, LOSS_MSE, None), theta, N, False,
                                 n_threads)
    h = c = hd = cd = None
    for t in range(T):
        out, h, c = kernel.step(tok[:, t].astype(dtype), h, c)
        out_d, hd, cd = dense.step(hot[:, t].astype(dtype), hd, cd)
        np.testing.assert_allclose(out, want[:, t], rtol=tol, atol=tol)
        np.testing.assert_allclose(out, out_d, rtol=tol, atol=tol)



# ---------------------------------------------------------------------------
# token ids through an embedding (embedding_dim=E)


def _embedding_problem(seed, cell, num_layers, bidirectional, seq, E=5, ragged=False):
    """A token problem with an embedding: (embedding layout, its params, the
    dense layout of E features, token ids, their embedding rows, y, idx)."""
    layout, params, tok, hot, y, idx = _token_problem(seed, cell, num_layers, bidirectional,
                                                      seq, ragged=ragged)
    V = layout.n_features
    rng = np.random.default_rng(seed + 200)
    lay_e = dataclasses.replace(layout, tokens=True, embedding_dim=E)
    lay_d = dataclasses.replace(layout, n_features=E)
    pe = {k: v.copy() for k, v in lay_e.views(lay_e.init_params(rng, np.float64)).items()}
    # a tensor of each name in both layouts has the same shape
    emb = pe["embedding.weight"]
    rows = [emb[t[:, 0].astype(int)] for t in tok]
    dense = np.stack(rows) if isinstance(tok, np.ndarray) else rows
    pd = {k: v for k, v in pe.items() if k != "embedding.weight"}
    assert set(pd) == set(lay_d.views(np.zeros(lay_d.n_params)))
    return lay_e, pe, lay_d, pd, tok, dense, y, idx, V


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
def test_embedding_trains_as_dense_input_of_its_rows(cell, num_layers, bidirectional, seq,
                                                     ragged, threading):
    """An embedding layer feeds layer 0 the rows of its token ids: the loss
    and the gradients of the rnn and head equal the dense network's on
    those rows (float64), and the embedding's gradient (scattered into the
    rows of the batch's tokens) equals central finite differences."""
    n_threads, hidden_split = threading
    lay_e, pe, lay_d, pd, tok, dense, y, idx, V = _embedding_problem(
        41, cell, num_layers, bidirectional, seq, ragged=ragged)
    kw = dict(loss="xent", seq=seq, n_threads=n_threads, hidden_split=hidden_split)
    want_loss, want = kernel_loss_grad(lay_d, pd, dense, y, idx, **kw)
    got_loss, got = kernel_loss_grad(lay_e, pe, tok, y, idx, **kw)
    assert got_loss == pytest.approx(want_loss, rel=1e-13)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-11, atol=1e-13, err_msg=name)
    emb = pe["embedding.weight"]
    fd = np.zeros_like(emb)
    eps = 1e-6
    used = np.unique(np.concatenate([t[:, 0] for t in tok]).astype(int))
    for v in used:
        for e in range(emb.shape[1]):
            vals = []
            for s in (1, -1):
                p = dict(pe, **{"embedding.weight": emb.copy()})
                p["embedding.weight"][v, e] += s * eps
                vals.append(kernel_loss_grad(lay_e, p, tok, y, idx, loss="xent", seq=seq)[0])
            fd[v, e] = (vals[0] - vals[1]) / (2 * eps)
    np.testing.assert_allclose(got["embedding.weight"], fd, rtol=1e-6, atol=1e-9)
    unused = np.setdiff1d(np.arange(V), used)
    assert not np.any(got["embedding.weight"][unused])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
@pytest.mark.parametrize("level", SIMD_LEVELS, ids=SIMD_IDS)
def test_embedding_predicts_and_steps_as_dense_input(cell, dtype, threading, level):
    """predict (packed W_ih^T of E columns for layer 0) and the step kernel
    on token ids equal the dense network on the embedding rows."""
    from crnn import _step
    from kernel_helpers import config
    n_threads, hidden_split = threading
    lay_e, pe, lay_d, pd, tok, dense, y, idx, V = _embedding_problem(42, cell, 2, False, True)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    with simd(level) as packed:
        want = kernel_predict(lay_d, pd, dense, seq=True, dtype=dtype, n_threads=n_threads,
                              hidden_split=hidden_split, packed=packed)
        got = kernel_predict(lay_e, pe, tok, seq=True, dtype=dtype, n_threads=n_threads,
                             hidden_split=hidden_split, packed=packed)
        kernel = _step.StepKernel(config(lay_e, True, LOSS_MSE, None), pack(lay_e, pe, dtype),
                                  tok.shape[0], False, n_threads)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    h = c = None
    for t in range(tok.shape[1]):
        out, h, c = kernel.step(tok[:, t].astype(dtype), h, c)
        np.testing.assert_allclose(out, want[:, t], rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="is not an integer"):
        kernel.step(np.full((tok.shape[0], 1), V, dtype=dtype))


def test_embedding_layout():
    """The embedding comes first in the state_dict (as a module whose
    `embedding` is declared before `rnn`), last in the kernels' offset
    table; it needs token input."""
    lay = Layout("lstm", "tanh", 2, 1, 8, 30, 30, tokens=True, embedding_dim=6)
    names = [t[0] for t in lay.tensors()]
    assert names[0] == "embedding.weight" and names[1] == "rnn.weight_ih_l0"
    assert lay.views(np.zeros(lay.n_params))["rnn.weight_ih_l0"].shape == (32, 6)
    offs = lay.offsets()
    assert len(offs) == 4 * 2 + 2 + 1 and offs[-1] == 0 and offs[0] == 30 * 6
    with pytest.raises(ValueError, match="needs token input"):
        Layout("lstm", "tanh", 1, 1, 8, 30, 30, embedding_dim=6)
    theta = lay.init_params(np.random.RandomState(0), np.float64)
    emb = lay.views(theta)["embedding.weight"]
    assert 0.8 < emb.std() < 1.2                   # nn.Embedding's N(0, 1)
    with pytest.raises(ValueError, match="offset table"):
        _kernels.Config(lay.cell_code, 2, 1, 8, 30, 30, True, LOSS_XENT, -1,
                        lay.offsets()[:-1], lay.n_params, -1, 0.0, True, 6)


@pytest.mark.parametrize("n_outputs", [1, 15, 16, 17, 2003])
def test_float32_cross_entropy_of_wide_heads(n_outputs):
    """The float32 cross-entropy (vector exp, partial sums over 16 lanes and a
    tail) against float64, for head widths around the lane count and a wide
    vocabulary, with logits spread over tens of nats."""
    rng = np.random.default_rng(n_outputs)
    layout = make_layout(n_features=3, hidden=8, n_outputs=n_outputs, num_layers=1,
                         bidirectional=False, nonlinearity="tanh", cell="gru")
    params = {k: v.astype(np.float64) * (8.0 if k.startswith("head") else 1.0)
              for k, v in ref.init_params(rng, n_features=3, hidden=8, n_outputs=n_outputs,
                                          num_layers=1, bidirectional=False,
                                          dtype=np.float64, scale=0.6, cell="gru").items()}
    X = rng.normal(size=(5, 6, 3))
    y = rng.integers(0, n_outputs, size=(5, 6))
    kw = dict(loss="xent", seq=True)
    want_loss, want = kernel_loss_grad(layout, params, X, y, np.arange(5), **kw)
    got_loss, got = kernel_loss_grad(layout, params, X, y, np.arange(5), dtype=np.float32, **kw)
    assert got_loss == pytest.approx(want_loss, rel=2e-6)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=2e-4,
                                   atol=2e-6 * np.abs(want[name]).max(), err_msg=name)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("level", SIMD_LEVELS, ids=SIMD_IDS)
@pytest.mark.parametrize("threading", [(1, False), (2, True)], ids=["1t", "2t-hidden"])
def test_predict_projects_inputs_in_blocks_of_steps(cell, level, threading):
    """predict computes the input projections of gated cells a few steps at
    a time (PROJ_BLOCK_BYTES of gates): on a batch big enough for several
    blocks, ragged (block boundaries inside the ragged tail), bidirectional,
    two layers, from initial states, the outputs and final states are the
    reference's."""
    n_threads, hidden_split = threading
    Bn, Tn, Hn, Dn = 40, 11, 48, 3
    steps = (_kernels.PROJ_BLOCK_BYTES // 8) // (Bn * 4 * Hn)
    assert 1 <= steps < Tn // 2                   # several blocks, the last one short
    rng = np.random.default_rng(21)
    layout = make_layout(n_features=Dn, hidden=Hn, n_outputs=2, num_layers=2,
                         bidirectional=True, nonlinearity="tanh", cell=cell)
    params = ref.init_params(rng, n_features=Dn, hidden=Hn, n_outputs=2, num_layers=2,
                             bidirectional=True, dtype=np.float64, scale=0.6, cell=cell)
    lens = rng.integers(1, Tn + 1, size=Bn)
    lens[0] = Tn
    X = [rng.normal(size=(k, Dn)) for k in lens]
    shape = (4, Bn, Hn)
    h0 = rng.normal(size=shape) * 0.5
    c0 = rng.normal(size=shape) * 0.5 if cell == "lstm" else None
    arch = dict(num_layers=2, bidirectional=True, nonlinearity="tanh", return_sequences=True,
                cell=cell)
    with simd(level) as packed:
        hN = np.zeros(shape)
        cN = np.zeros(shape) if cell == "lstm" else None
        got = kernel_predict(layout, params, X, seq=True, n_threads=n_threads, chunk=Bn,
                             hidden_split=hidden_split, packed=packed, states=(h0, c0, hN, cN))
    for i, x in enumerate(X):
        sl = (slice(None), slice(i, i + 1))
        want, _ = ref.forward(params, x[None], h0=h0[sl], c0=None if c0 is None else c0[sl],
                              **arch)
        np.testing.assert_allclose(got[i], want[0], rtol=1e-11, atol=1e-12)
        wh, wc = ref.final_states(params, x[None], h0=h0[sl],
                                  c0=None if c0 is None else c0[sl], **arch)
        np.testing.assert_allclose(hN[:, i], wh[:, 0], rtol=1e-11, atol=1e-12)
        if cell == "lstm":
            np.testing.assert_allclose(cN[:, i], wc[:, 0], rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", [1, 2], ids=["avx2", "avx512"])
@pytest.mark.parametrize("trans_a,trans_b", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 3, 7), (97, 33, 257), (200, 70, 1100),
                                   (8, 17, 0), (3, 40, 513), (1, 70, 600), (40, 1, 30)])
def test_general_product_matches_numpy(dtype, level, trans_a, trans_b, shape):
    """The packed general product of the backward pass (crnn_gemm.h):
    blocks of K (512), rows (96) and panels, every transpose, beta 0 and 1;
    one row (M = 1: the transposed problem) and one column."""
    if _kernels.simd_level() < level:
        pytest.skip(f"this CPU has no SIMD level {level}")
    M, N, K = shape
    rng = np.random.default_rng(M + 7 * N + K)
    A = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    a, b = (A.T if trans_a else A), (B.T if trans_b else B)
    tol = 1e-13 if dtype == np.float64 else 1e-6
    for beta in (0.0, 1.0):
        C0 = rng.standard_normal((M, N)).astype(dtype)
        C = C0.copy()
        _kernel_hooks.packed_gemm(level, trans_a, trans_b, A, B, C, beta)
        want = a.astype(np.float64) @ b.astype(np.float64) + beta * C0
        bound = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64) + np.abs(C0)
        assert np.all(np.abs(C - want) <= tol * max(1, np.sqrt(K)) * (bound + 1e-300))
    # a row slice or a column slice of the problem gives the same bits
    C = np.zeros((M, N), dtype)
    _kernel_hooks.packed_gemm(level, trans_a, trans_b, A, B, C)
    if M > 1:
        part = np.zeros((M - 1, N), dtype)
        _kernel_hooks.packed_gemm(level, trans_a, trans_b,
                                  np.ascontiguousarray(A[:, 1:] if trans_a else A[1:]), B, part)
        np.testing.assert_array_equal(part, C[1:])
    with pytest.raises(ValueError, match="beta"):
        _kernel_hooks.packed_gemm(level, trans_a, trans_b, A, B, C, 0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", [1, 2], ids=["avx2", "avx512"])
@pytest.mark.parametrize("trans_a", [False, True])
def test_row_blocks_of_every_size(dtype, level, trans_a):
    """Every number of rows from 2 to 26, at the start and at the end of a
    27-row problem: register blocks of every width (up to 8 rows at AVX-512,
    3 at AVX2), the tail split so that no block is narrow.  The values match
    numpy, and each row has the same bits whatever block it falls in."""
    if _kernels.simd_level() < level:
        pytest.skip(f"this CPU has no SIMD level {level}")
    rng = np.random.default_rng(27)
    R, K, N = 27, 37, 70
    A = rng.standard_normal((R, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)

    def product(a):
        C = np.zeros((a.shape[0], N), dtype)
        _kernel_hooks.packed_gemm(level, trans_a, False,
                                  np.ascontiguousarray(a.T if trans_a else a), B, C)
        return C

    full = product(A)
    want = A.astype(np.float64) @ B.astype(np.float64)
    bound = np.abs(A).astype(np.float64) @ np.abs(B).astype(np.float64)
    tol = 1e-13 if dtype == np.float64 else 1e-6
    assert np.all(np.abs(full - want) <= tol * np.sqrt(K) * bound)
    for M in range(2, R):
        for s in (0, R - M):
            np.testing.assert_array_equal(product(A[s:s + M]), full[s:s + M],
                                          err_msg=f"rows {s}..{s + M}")


# ---------------------------------------------------------------------------
# the module's structure


def test_test_hooks_live_outside_the_production_module():
    """The kernels' test-only entry points are in crnn._kernel_hooks, not in
    crnn._kernels (whose Python functions the estimators and tools use)."""
    for name in ("fast_tanh_f32", "fast_sigmoid_f32", "packed_gemm", "bf16_rgemm"):
        assert not hasattr(_kernels, name), name
        assert callable(getattr(_kernel_hooks, name)), name


SRC = Path(__file__).resolve().parents[2] / "src"


def _names(path):
    """The identifiers of a Cython file outside comments and strings, counted."""
    import collections
    import tokenize
    with open(path, encoding="utf-8") as f:
        return collections.Counter(tok.string for tok in tokenize.generate_tokens(f.readline)
                                   if tok.type == tokenize.NAME)


def _core_cimports(text):
    """The names of a part's `from crnn._kernels cimport (...)`."""
    m = re.search(r"^from crnn\._kernels cimport (?:\(([^)]*)\)|(.*)$)", text, re.M)
    assert m, "the part does not cimport the core's interface"
    return {w for w in re.split(r"[\s,]+", m.group(1) or m.group(2)) if w}


@pytest.mark.skipif(not (SRC / "_kernels.pyx").exists(),
                    reason="needs the source tree (not an installed wheel)")
def test_included_parts_use_only_the_core_interface():
    """src/_seq2seq.pxi and src/_ctc.pxi are included into crnn._kernels, so
    they could call any private function of the core.  They use only what
    src/crnn/_kernels.pxd declares (Cython checks the core's definitions
    against it), each cimports exactly the core names it uses, and the .pxd
    declares nothing that no part uses."""
    core = (SRC / "_kernels.pyx").read_text()
    pxd_path = SRC / "crnn" / "_kernels.pxd"
    pxd = pxd_path.read_text()
    top = re.compile(r"^(?:cdef|cpdef|def|ctypedef)\s[^=(:]*?\b(\w+)\s*[(:]|^(\w+)\s*=", re.M)
    block = re.compile(r"^cdef (?:enum|extern)\b[^\n]*:\n((?:[ ]+\S[^\n]*\n|[ ]*\n)*)", re.M)
    member = re.compile(r"^\s+(\w+)\s*=|^\s+(?:\w+\s+)+\**(\w+)\s*(?:\(|$)", re.M)

    def defined(text):
        """Module-level definitions: functions, structs, classes, names
        assigned, and the members of enum and extern blocks."""
        text = re.sub(r'"""[\s\S]*?"""', "", re.sub(r"#[^\n]*", "", text))
        found = {a or b for a, b in top.findall(text)}
        for body in block.findall(text):
            found |= {a or b for a, b in member.findall(body)}
        return found - {"enum", "struct", "class", "extern"}
    core_defs = defined(core) - {"np"}
    interface = defined(pxd)
    assert {"_ws_layout", "_forward_layers", "Seqs", "WS_TOTAL"} <= interface
    pxd_names = _names(pxd_path)
    used_by_parts = set()
    for part in ("_seq2seq.pxi", "_ctc.pxi"):
        names = set(_names(SRC / part))
        used = names & (core_defs | interface)
        assert used <= interface, (part, sorted(used - interface))
        assert _core_cimports((SRC / part).read_text()) == used, part
        used_by_parts |= used
    # the WS_* slots are one enum; a struct can be there for a signature
    unused = {n for n in interface - used_by_parts
              if not n.startswith("WS_") and pxd_names[n] < 2}
    assert not unused, sorted(unused)
