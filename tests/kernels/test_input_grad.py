"""dLoss/dX from the training kernel (train_step(..., dX=...)): the gradient a
layer below the recurrent network (the convolutional front-end of issue 29)
trains on.  Checked against central finite differences, against torch's
x.grad with the same weights, across thread layouts and SIMD levels, and
for the rows it must leave alone."""
import numpy as np
import pytest

import reference as ref
from kernel_helpers import SIMD_IDS, SIMD_LEVELS, config, flatten, kernel_loss_grad, \
    make_layout, pack, simd
from crnn import _kernels
from crnn._nn.layout import LOSS_MSE

D, H, O = 3, 5, 4
CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("gru", "tanh"), ("lstm", "tanh")]
CELL_IDS = ["tanh", "relu", "gru", "lstm"]


def _problem(seed, *, cell, nonlinearity, bidirectional, seq, loss, ragged, num_layers=2,
             N=8, T=5, B=6):
    rng = np.random.default_rng(seed)
    layout = make_layout(n_features=D, hidden=H, n_outputs=O, num_layers=num_layers,
                         bidirectional=bidirectional, nonlinearity=nonlinearity, cell=cell)
    params = ref.init_params(rng, n_features=D, hidden=H, n_outputs=O, num_layers=num_layers,
                             bidirectional=bidirectional, dtype=np.float64, scale=0.6,
                             cell=cell)
    lens = rng.integers(1, T + 1, size=N) if ragged else np.full(N, T)
    X = [rng.normal(size=(t, D)) for t in lens]
    if seq:
        y = [rng.normal(size=(t, O)) if loss == "mse" else rng.integers(0, O, size=t)
             for t in lens]
    else:
        y = rng.normal(size=(N, O)) if loss == "mse" else rng.integers(0, O, size=N)
    idx = rng.permutation(N)[:B]            # not every sample is in the batch
    return layout, params, X, y, idx


def _rows_of(X, idx):
    """Boolean mask of the rows (of the concatenated X) of the samples idx."""
    _, start, lens = flatten(X)
    mask = np.zeros(int(lens.sum()), bool)
    for i in idx:
        mask[start[i]:start[i] + lens[i]] = True
    return mask


@pytest.mark.parametrize("ragged", [False, True], ids=["equal", "ragged"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("seq,loss", [(False, "mse"), (True, "xent")], ids=["many2one", "seq"])
@pytest.mark.parametrize("cellnl", CELLS, ids=CELL_IDS)
def test_input_gradient_matches_finite_differences(cellnl, seq, loss, bidirectional, ragged):
    cell, nonlinearity = cellnl
    layout, params, X, y, idx = _problem(21, cell=cell, nonlinearity=nonlinearity,
                                         bidirectional=bidirectional, seq=seq, loss=loss,
                                         ragged=ragged)
    _, _, dX = kernel_loss_grad(layout, params, X, y, idx, loss=loss, seq=seq, input_grad=True)
    inside = _rows_of(X, idx)
    assert np.isnan(dX[~inside]).all()             # rows of other samples: untouched
    assert np.isfinite(dX[inside]).all() and np.abs(dX[inside]).max() > 0
    rows, start, lens = flatten(X)
    eps = 1e-6
    fd = np.zeros_like(rows)
    for r in np.flatnonzero(inside):
        for j in range(D):
            Xp = [x.copy() for x in X]
            s = int(np.searchsorted(start, r, side="right") - 1)
            Xp[s][r - start[s], j] += eps
            lp, _ = kernel_loss_grad(layout, params, Xp, y, idx, loss=loss, seq=seq)
            Xp[s][r - start[s], j] -= 2 * eps
            lm, _ = kernel_loss_grad(layout, params, Xp, y, idx, loss=loss, seq=seq)
            fd[r, j] = (lp - lm) / (2 * eps)
    err = np.linalg.norm(fd[inside] - dX[inside]) / np.linalg.norm(fd[inside])
    assert err < 1e-6, err


THREADING = [(1, False), (2, False), (3, False), (2, True), (3, True)]


@pytest.mark.parametrize("level", SIMD_LEVELS, ids=SIMD_IDS)
@pytest.mark.parametrize("cellnl", CELLS, ids=CELL_IDS)
def test_input_gradient_is_the_same_for_every_thread_layout(cellnl, level):
    cell, nonlinearity = cellnl
    layout, params, X, y, idx = _problem(22, cell=cell, nonlinearity=nonlinearity,
                                         bidirectional=True, seq=True, loss="mse",
                                         ragged=True, N=11, B=9)
    ref_dX = None
    for dtype in (np.float64, np.float32):
        tol = 1e-12 if dtype == np.float64 else 2e-5
        with simd(level) as packed:
            base = None
            for n_threads, hidden_split in THREADING:
                _, g, dX = kernel_loss_grad(layout, params, X, y, idx, loss="mse", seq=True,
                                            n_threads=n_threads, hidden_split=hidden_split,
                                            packed=packed, dtype=dtype, input_grad=True)
                if base is None:
                    base = dX
                np.testing.assert_allclose(dX, base, rtol=tol, atol=tol)
        if ref_dX is None:
            ref_dX = base
        else:                                   # float32 against float64
            np.testing.assert_allclose(base, ref_dX, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("seq", [False, True], ids=["many2one", "seq"])
@pytest.mark.parametrize("cellnl", CELLS, ids=CELL_IDS)
def test_input_gradient_matches_torch(cellnl, seq, bidirectional):
    torch = pytest.importorskip("torch")
    from torch_nets import TorchNet

    cell, nonlinearity = cellnl
    torch.manual_seed(3)
    N, T = 7, 6
    net = TorchNet(D, H, 2, O, nonlinearity, bidirectional, seq, cell).double()
    layout = make_layout(n_features=D, hidden=H, n_outputs=O, num_layers=2,
                         bidirectional=bidirectional, nonlinearity=nonlinearity, cell=cell)
    params = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    rng = np.random.default_rng(4)
    X = rng.normal(size=(N, T, D))
    y = rng.normal(size=(N, T, O) if seq else (N, O))
    idx = np.arange(N)
    loss, _, dX = kernel_loss_grad(layout, params, X, y, idx, loss="mse", seq=seq,
                                   n_threads=2, input_grad=True)
    xt = torch.tensor(X, requires_grad=True)
    want = torch.mean((net(xt) - torch.tensor(y)) ** 2)
    want.backward()
    assert loss == pytest.approx(want.item(), rel=1e-10)
    np.testing.assert_allclose(dX.reshape(N, T, D), xt.grad.numpy(), rtol=1e-9, atol=1e-12)


def _one_layer():
    """(cfg, theta, X (8 rows), grads, iws) of a small Elman network, for
    calling train_step directly."""
    layout = make_layout(n_features=D, hidden=H, n_outputs=O, num_layers=1,
                         bidirectional=False, nonlinearity="tanh")
    params = ref.init_params(np.random.default_rng(0), n_features=D, hidden=H, n_outputs=O,
                             num_layers=1, bidirectional=False, dtype=np.float64, scale=0.6)
    cfg = config(layout, False, LOSS_MSE, None, 0.0, False)
    return (cfg, pack(layout, params, np.float64), np.random.default_rng(1).normal(size=(8, D)),
            np.zeros((1, layout.n_params)), np.zeros((1, cfg.index_workspace_size(4)), np.intp))


def test_input_gradient_refusals():
    cfg, theta, X, grads, iws = _one_layer()
    start, lens = np.array([0, 4], np.intp), np.array([4, 4], np.intp)
    args = (cfg, theta, grads, X, start, lens, np.zeros((2, O)), np.zeros(0, np.int32),
            np.array([0, 1], np.intp), np.array([0, 2], np.intp))
    small = np.zeros((1, cfg.workspace_size(2, 4, True, False)))
    with pytest.raises(ValueError, match="workspace too small"):
        _kernels.train_step(*args, small, iws, 4, 2, False, 1, dX=np.zeros_like(X))
    big = np.zeros((1, cfg.workspace_size(2, 4, True, False, True)))
    with pytest.raises(ValueError, match="dX must have X's shape"):
        _kernels.train_step(*args, big, iws, 4, 2, False, 1, dX=np.zeros((7, D)))
    dX = np.zeros_like(X)
    _kernels.train_step(*args, big, iws, 4, 2, False, 1, dX=dX)
    assert np.abs(dX).max() > 0


def test_input_gradient_refuses_samples_that_share_rows():
    """Each row's gradient is written by one sample: a sample twice in the
    batch, or overlapping windows, would lose contributions (found by a
    review of the first version), so they are refused with dX."""
    cfg, theta, X, grads, iws = _one_layer()
    ws = np.zeros((1, cfg.workspace_size(3, 4, True, False, True)))
    for start, idx in (([0, 4], [0, 0]), ([0, 2], [0, 1])):
        with pytest.raises(ValueError, match="must not share rows"):
            _kernels.train_step(cfg, theta, grads, X, np.array(start, np.intp),
                                np.array([4, 4], np.intp), np.zeros((2, O)),
                                np.zeros(0, np.int32), np.array(idx, np.intp),
                                np.array([0, 2], np.intp), ws, iws, 4, 3, False, 1,
                                dX=np.zeros_like(X))
