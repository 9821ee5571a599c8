"""The convolutional front-end's kernels (crnn._conv): 2-D convolution (+
bias, ReLU) and max pooling, forward and backward, channels-last.

Checked against the numpy references of tests/support/conv_reference.py,
against central finite differences, and against torch.nn.functional's
conv2d / max_pool2d with the same weights (loss and every gradient), at
every SIMD level this CPU runs, with 1 to 3 threads, on odd sizes, strides
and paddings, and on images large enough to be split into several tiles.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conv_reference import conv2d, conv2d_grads, maxpool2d, maxpool2d_grad

from crnn import _conv
from crnn._nn.threads import blas_single_threaded

BEST = _conv.simd_level()
LEVELS = [pytest.param(lv, id=name, marks=pytest.mark.skipif(lv > BEST, reason="CPU lacks it"))
          for lv, name in ((0, "blas"), (1, "avx2"), (2, "avx512"))]

# (N, H, W, C, F, KH, KW, stride, padding)
GEOMETRIES = {
    "3x3-pad1": (2, 9, 11, 3, 5, 3, 3, 1, 1),
    "5x3-stride21-pad20": (3, 17, 13, 4, 7, 5, 3, (2, 1), (2, 0)),
    "1x1-direct": (2, 7, 5, 6, 9, 1, 1, 1, 0),
    "1x1-stride2": (2, 7, 5, 6, 9, 1, 1, 2, 0),
    "pilotnet-5x5-s2": (2, 31, 33, 3, 24, 5, 5, 2, 0),
    # K = 4 * 4 * 70 = 1120 rows: float64 tiles of one or two output rows
    "many-tiles": (2, 14, 23, 70, 17, 4, 4, (1, 2), (1, 2)),
    "kernel-is-image": (3, 4, 5, 2, 3, 4, 5, 1, 0),
}


def _rng(seed=0):
    return np.random.default_rng(seed)


def _problem(N, H, W, C, F, KH, KW, dtype, seed=0):
    rng = _rng(seed)
    X = rng.standard_normal((N, H, W, C)).astype(dtype)
    Wt = (rng.standard_normal((KH, KW, C, F)) / np.sqrt(KH * KW * C)).astype(dtype)
    b = (0.1 * rng.standard_normal(F)).astype(dtype)
    return X, Wt, b


def _tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def _run(X, Wt, b, stride, padding, relu, level, nt, dY=None, input_grad=True):
    with blas_single_threaded():
        Y = _conv.conv2d_forward(X, Wt, b, stride, padding, relu, level, nt)
        if dY is None:
            return Y, None
        return Y, _conv.conv2d_backward(X, Wt, Y, dY, stride, padding, relu, input_grad, level,
                                        nt)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", list(GEOMETRIES), ids=list(GEOMETRIES))
@pytest.mark.parametrize("relu", [True, False], ids=["relu", "linear"])
def test_conv_matches_numpy_reference(geom, dtype, level, relu):
    N, H, W, C, F, KH, KW, stride, padding = GEOMETRIES[geom]
    X, Wt, b = _problem(N, H, W, C, F, KH, KW, dtype)
    ref = conv2d(X, Wt, b, stride, padding, relu)
    dY = _rng(1).standard_normal(ref.shape).astype(dtype)
    Y, (dX, dW, db) = _run(X, Wt, b, stride, padding, relu, level, 2, dY)
    assert Y.shape == ref.shape and Y.dtype == dtype
    np.testing.assert_allclose(Y, ref, **_tol(dtype))
    rdX, rdW, rdb = conv2d_grads(X, Wt, Y, dY, stride, padding, relu)
    for got, want in ((dX, rdX), (dW, rdW), (db, rdb)):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **_tol(dtype))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("geom", ["3x3-pad1", "5x3-stride21-pad20", "many-tiles"])
def test_conv_results_do_not_depend_on_threads(geom, level):
    """Bit for bit: every output and input-gradient element is computed by
    one thread in a fixed order, and the weight and bias gradients are
    summed in a fixed number of partial sums, added in order."""
    N, H, W, C, F, KH, KW, stride, padding = GEOMETRIES[geom]
    X, Wt, b = _problem(5, H, W, C, F, KH, KW, np.float32, seed=3)
    dY = None
    runs = []
    for nt in (1, 2, 3):
        if dY is None:
            Y0, _ = _run(X, Wt, b, stride, padding, True, level, 1)
            dY = _rng(4).standard_normal(Y0.shape).astype(np.float32)
        Y, grads = _run(X, Wt, b, stride, padding, True, level, nt, dY)
        runs.append((Y,) + tuple(grads))
    for other in runs[1:]:
        for a, c in zip(runs[0], other):
            np.testing.assert_array_equal(a, c)


def test_conv_first_layer_skips_the_input_gradient():
    X, Wt, b = _problem(2, 8, 8, 3, 4, 3, 3, np.float64)
    Y = _conv.conv2d_forward(X, Wt, b, 1, 0, True)
    dX, dW, db = _conv.conv2d_backward(X, Wt, Y, np.ones_like(Y), 1, 0, True, False)
    full = _conv.conv2d_backward(X, Wt, Y, np.ones_like(Y), 1, 0, True, True)
    assert dX is None
    np.testing.assert_array_equal(dW, full[1])
    np.testing.assert_array_equal(db, full[2])


@pytest.mark.parametrize("geom", ["3x3-pad1", "5x3-stride21-pad20", "1x1-direct"])
def test_conv_gradients_match_finite_differences(geom):
    """Central differences of L = sum(G * conv(X)) in float64 against the
    kernels' dX, dW and db, each at a sample of coordinates."""
    N, H, W, C, F, KH, KW, stride, padding = GEOMETRIES[geom]
    X, Wt, b = _problem(N, H, W, C, F, KH, KW, np.float64, seed=5)
    Y = _conv.conv2d_forward(X, Wt, b, stride, padding, True)
    G = _rng(6).standard_normal(Y.shape)
    dX, dW, db = _conv.conv2d_backward(X, Wt, Y, G, stride, padding, True, True)

    def loss(X_, W_, b_):
        return float(np.sum(G * _conv.conv2d_forward(X_, W_, b_, stride, padding, True)))

    rng = _rng(7)
    eps = 1e-6
    for arr, grad, pos in ((X, dX, 0), (Wt, dW, 1), (b, db, 2)):
        for flat in rng.choice(arr.size, size=min(12, arr.size), replace=False):
            args = [X, Wt, b]
            up, down = arr.copy(), arr.copy()
            up.flat[flat] += eps
            down.flat[flat] -= eps
            args[pos] = up
            lu = loss(*args)
            args[pos] = down
            ld = loss(*args)
            assert abs((lu - ld) / (2 * eps) - grad.flat[flat]) < 1e-6 * max(1, abs(lu))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding,stride,kernel", [(0, None, 2), (1, 2, 3), ((1, 0), (2, 1), (3, 2)),
                                                  (0, 1, 3)])
def test_maxpool_matches_reference(kernel, stride, padding, dtype):
    rng = _rng(8)
    X = rng.standard_normal((2, 9, 7, 5)).astype(dtype)
    X[0, :3, :3, 0] = 1.5             # ties: the first in window order wins
    Y, arg = _conv.maxpool2d_forward(X, kernel, stride, padding, 2)
    rY, rarg = maxpool2d(X, kernel, stride, padding)
    np.testing.assert_array_equal(Y, rY)
    np.testing.assert_array_equal(arg, rarg)
    dY = rng.standard_normal(Y.shape).astype(dtype)
    dX = _conv.maxpool2d_backward(dY, arg, 9, 7, 2)
    np.testing.assert_allclose(dX, maxpool2d_grad(dY, rarg, 9, 7), rtol=1e-6, atol=1e-6)


def test_maxpool_threads_and_nan():
    X = _rng(9).standard_normal((4, 12, 10, 3))
    X[1, 2, 3, 1] = np.nan
    X[1, 2, 2, 1] = np.nan
    outs = [_conv.maxpool2d_forward(X, 3, 2, 1, nt) for nt in (1, 2, 3)]
    for Y, arg in outs[1:]:
        np.testing.assert_array_equal(Y, outs[0][0])
        np.testing.assert_array_equal(arg, outs[0][1])
    Y, arg = outs[0]
    rY, rarg = maxpool2d(X, 3, 2, 1)
    np.testing.assert_array_equal(Y, rY)          # NaN in the same places
    np.testing.assert_array_equal(arg, rarg)      # the last NaN of a window wins
    assert np.isnan(Y[1, 1, 1, 1]) and arg[1, 1, 1, 1] == 2 * 10 + 3


def test_empty_batch():
    X = np.zeros((0, 8, 8, 3), np.float32)
    Wt = np.zeros((3, 3, 3, 4), np.float32)
    Y = _conv.conv2d_forward(X, Wt, np.zeros(4, np.float32), 1, 1)
    assert Y.shape == (0, 8, 8, 4)
    dX, dW, db = _conv.conv2d_backward(X, Wt, Y, Y, 1, 1)
    assert dX.shape == X.shape and not dW.any() and not db.any()
    P, arg = _conv.maxpool2d_forward(X, 2)
    assert P.shape == (0, 4, 4, 3) and arg.shape == P.shape
    assert _conv.maxpool2d_backward(P, arg, 8, 8).shape == X.shape


def test_bad_input_is_refused_with_a_message():
    X, Wt, b = _problem(1, 6, 6, 3, 4, 3, 3, np.float32)
    with pytest.raises(ValueError, match="weights are for 2 input channels"):
        _conv.conv2d_forward(X, Wt[:, :, :2].copy(), b)
    with pytest.raises(ValueError, match="does not fit an image of 6x6"):
        _conv.conv2d_forward(X, np.zeros((7, 3, 3, 4), np.float32), b)
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        _conv.conv2d_forward(X, Wt, b, stride=0)
    with pytest.raises(ValueError, match="padding must be an int >= 0"):
        _conv.conv2d_forward(X, Wt, b, padding=(1, -1))
    with pytest.raises(ValueError, match="stride must be an int"):
        _conv.conv2d_forward(X, Wt, b, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="bias has 3 entries for 4 filters"):
        _conv.conv2d_forward(X, Wt, b[:3].copy())
    Y = _conv.conv2d_forward(X, Wt, b)
    with pytest.raises(ValueError, match="output's shape"):
        _conv.conv2d_backward(X, Wt, Y, Y[:, :3].copy())
    with pytest.raises(ValueError, match="dtype mismatch"):     # float32 images, float64 weights
        _conv.conv2d_forward(X, Wt.astype(np.float64), b)
    with pytest.raises(ValueError, match="at most half the kernel"):
        _conv.maxpool2d_forward(X, 2, 2, 2)
    P, arg = _conv.maxpool2d_forward(X, 2)
    arg[0, 0, 0, 0] = 36
    with pytest.raises(ValueError, match="outside the input image"):
        _conv.maxpool2d_backward(P, arg, 6, 6)
    arg[0, 0, 0, 0] = -1
    with pytest.raises(ValueError, match="outside the input image"):
        _conv.maxpool2d_backward(P, arg, 6, 6)


def test_output_size_is_torchs():
    assert _conv.output_size(96, 5, 2, 0) == 46
    assert _conv.output_size(7, 3, 2, 1) == 4
    assert _conv.output_size(2, 5, 1, 1) == 0


# ---------------------------------------------------------------------------
# PyTorch with the same weights: loss and every gradient

torch_cases = [("3x3-pad1", 1), ("5x3-stride21-pad20", 3), ("pilotnet-5x5-s2", 2),
               ("1x1-direct", 2), ("many-tiles", 3)]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("geom,nt", torch_cases, ids=[g for g, _ in torch_cases])
def test_conv_pool_stack_matches_torch(geom, nt, level):
    """conv + ReLU, then max pooling, then a second conv + ReLU: the loss
    sum(G * out) and the gradients of every weight, bias and the input."""
    torch = pytest.importorskip("torch")
    F_ = torch.nn.functional
    N, H, W, C, F, KH, KW, stride, padding = GEOMETRIES[geom]
    X, W1, b1 = _problem(N, H, W, C, F, KH, KW, np.float64, seed=11)
    rng = _rng(12)
    W2 = rng.standard_normal((2, 2, F, 6)) / np.sqrt(4 * F)
    b2 = 0.1 * rng.standard_normal(6)
    with blas_single_threaded():
        Y1 = _conv.conv2d_forward(X, W1, b1, stride, padding, True, level, nt)
        pk = 2 if min(Y1.shape[1:3]) >= 2 else 1
        P, arg = _conv.maxpool2d_forward(Y1, pk, None, 0, nt)
        Y2 = _conv.conv2d_forward(P, W2, b2, 1, 1, True, level, nt)
        G = rng.standard_normal(Y2.shape)
        dP, dW2, db2 = _conv.conv2d_backward(P, W2, Y2, G, 1, 1, True, True, level, nt)
        dY1 = _conv.maxpool2d_backward(dP, arg, Y1.shape[1], Y1.shape[2], nt)
        dX, dW1, db1 = _conv.conv2d_backward(X, W1, Y1, dY1, stride, padding, True, True, level,
                                             nt)

    def t(a):
        return torch.tensor(a, requires_grad=True)

    xt = t(X.transpose(0, 3, 1, 2).copy())
    w1t, w2t = t(W1.transpose(3, 2, 0, 1).copy()), t(W2.transpose(3, 2, 0, 1).copy())
    b1t, b2t = t(b1), t(b2)
    y1 = torch.relu(F_.conv2d(xt, w1t, b1t, stride=stride, padding=padding))
    y2 = torch.relu(F_.conv2d(F_.max_pool2d(y1, pk), w2t, b2t, padding=1))
    loss = (torch.tensor(G.transpose(0, 3, 1, 2).copy()) * y2).sum()
    loss.backward()
    np.testing.assert_allclose(float(np.sum(G * Y2)), loss.item(), rtol=1e-10)
    np.testing.assert_allclose(Y2, y2.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10,
                               atol=1e-12)
    pairs = [(dX, xt.grad.numpy().transpose(0, 2, 3, 1)),
             (dW1, w1t.grad.numpy().transpose(2, 3, 1, 0)), (db1, b1t.grad.numpy()),
             (dW2, w2t.grad.numpy().transpose(2, 3, 1, 0)), (db2, b2t.grad.numpy())]
    for got, want in pairs:
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("level", LEVELS)
def test_conv_float32_matches_torch(level):
    torch = pytest.importorskip("torch")
    N, H, W, C, F, KH, KW, stride, padding = GEOMETRIES["pilotnet-5x5-s2"]
    X, Wt, b = _problem(N, H, W, C, F, KH, KW, np.float32, seed=13)
    Y = _conv.conv2d_forward(X, Wt, b, stride, padding, True, level, 2)
    ref = torch.relu(torch.nn.functional.conv2d(
        torch.tensor(X.transpose(0, 3, 1, 2).copy()),
        torch.tensor(Wt.transpose(3, 2, 0, 1).copy()), torch.tensor(b), stride=stride))
    np.testing.assert_allclose(Y, ref.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# CRNN_MAX_SIMD reaches these kernels too

CHILD = r"""
import json
import numpy as np
from crnn import _conv
X = np.ones((1, 6, 6, 2), np.float32)
_conv.conv2d_forward(X, np.ones((3, 3, 2, 3), np.float32), np.zeros(3, np.float32))
print(json.dumps({"level": _conv.simd_level(), "ran": _conv.isa_ran()["products"]}))
"""


@pytest.mark.parametrize("cap,want", [("none", 0), ("avx2", 1), ("avx512", 2)])
def test_simd_cap_is_obeyed(cap, want):
    if want > BEST:
        pytest.skip("the CPU lacks this level")
    env = dict(os.environ, CRNN_MAX_SIMD=cap)
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                         check=True)
    got = json.loads(res.stdout)
    assert got["level"] == want
    # level 0 runs no packed product (BLAS): nothing recorded
    assert got["ran"] == ([want] if want > 0 else [])


# ---------------------------------------------------------------------------
# found by a hostile-input probe of the first version

def test_huge_strides_and_paddings_are_refused():
    """Values near 2**63 once overflowed the size arithmetic (a crash)."""
    X = np.ones((1, 10, 10, 2), np.float32)
    Wt, b = np.ones((1, 1, 2, 3), np.float32), np.zeros(3, np.float32)
    for stride, padding in (((1, 2), (0, 2 ** 63 - 1)), ((1, 2 ** 63 - 1), (0, 2)),
                            (1, (0, 2 ** 31))):
        with pytest.raises(ValueError, match="at most 2\\*\\*31 - 1"):
            _conv.conv2d_forward(X, Wt, b, stride, padding, False)
    with pytest.raises(ValueError, match="at most 2\\*\\*31 - 1"):
        _conv.maxpool2d_forward(X, 1, 1, (2 ** 63 - 1, 0))
    with pytest.raises(ValueError, match="kernel >= 1"):
        _conv.output_size(5, 0, 1, 0)
    with pytest.raises(ValueError, match="below 2\\*\\*31 pixels"):
        _conv.maxpool2d_backward(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int32),
                                 2 ** 32, 2 ** 32)
    # a stride past the image is fine: one output pixel per axis
    Y = _conv.conv2d_forward(X, Wt, b, (1, 2 ** 31 - 1), 0, False)
    assert Y.shape == (1, 10, 1, 3)


def test_thread_counts_are_capped_at_the_work():
    """n_threads far above the work once reached OpenMP as asked (libgomp
    then ran out of memory and exited the interpreter)."""
    X, Wt, b = _problem(2, 6, 6, 3, 4, 3, 3, np.float32)
    huge = 2 ** 31 - 1
    Y = _conv.conv2d_forward(X, Wt, b, 1, 1, True, -1, huge)
    ref = _conv.conv2d_forward(X, Wt, b, 1, 1, True, -1, 1)
    np.testing.assert_array_equal(Y, ref)
    for relu in (True, False):
        got = _conv.conv2d_backward(X, Wt, Y, Y, 1, 1, relu, True, -1, huge)
        want = _conv.conv2d_backward(X, Wt, Y, Y, 1, 1, relu, True, -1, 1)
        for a, c in zip(got, want):
            np.testing.assert_array_equal(a, c)
    P, arg = _conv.maxpool2d_forward(X, 2, None, 0, huge)
    assert _conv.maxpool2d_backward(P, arg, 6, 6, huge).shape == X.shape


@pytest.mark.parametrize("level", LEVELS)
def test_non_finite_weights_over_the_padding_give_nan_at_every_level(level):
    """0 * inf is NaN: a kernel row over the top padding with an inf weight
    makes those outputs NaN, as level 0's products and torch do (the
    implicit product once skipped such rows and gave finite values)."""
    X = np.ones((1, 3, 3, 1), np.float32)
    Wt = np.ones((3, 3, 1, 2), np.float32)
    Wt[0, 1, 0, 0] = np.inf
    Wt[2, 0, 0, 1] = np.nan
    b = np.zeros(2, np.float32)
    Y = _conv.conv2d_forward(X, Wt, b, 1, 1, False, level, 1)
    with np.errstate(invalid="ignore"):
        ref = conv2d(X, Wt, b, 1, 1, relu=False)
    np.testing.assert_array_equal(np.isnan(Y), np.isnan(ref))
    assert np.isnan(Y[0, 0, :, 0]).all() and np.isnan(Y[0, 2, :, 1]).all()
    np.testing.assert_allclose(Y[~np.isnan(ref)], ref[~np.isnan(ref)])


def test_work_buffers_are_reused_and_change_nothing():
    """With a work dict, the arrays of one call are reused by the next of
    the same shapes (no fresh pages each step) and the results equal a
    call without one; other shapes replace them."""
    X, Wt, b = _problem(3, 9, 8, 4, 5, 3, 3, np.float64, seed=30)
    work = {}
    Y1 = _conv.conv2d_forward(X, Wt, b, 1, 1, True, -1, 2, work)
    np.testing.assert_array_equal(Y1, _conv.conv2d_forward(X, Wt, b, 1, 1, True, -1, 2))
    dY = _rng(31).standard_normal(Y1.shape)
    got = _conv.conv2d_backward(X, Wt, Y1, dY, 1, 1, True, True, -1, 2, work)
    want = _conv.conv2d_backward(X, Wt, Y1, dY, 1, 1, True, True, -1, 2)
    for a, c in zip(got, want):
        np.testing.assert_array_equal(a, c)
    again = _conv.conv2d_backward(X, Wt, Y1, dY, 1, 1, True, True, -1, 2, work)
    assert again[0] is got[0] and again[1].base is got[1].base
    for a, c in zip(again, want):                    # accumulators start from zero again
        np.testing.assert_array_equal(a, c)
    Y2 = _conv.conv2d_forward(X[:2], Wt, b, 1, 1, True, -1, 2, work)
    assert Y2.shape[0] == 2 and work["Y"] is Y2
    P, arg = _conv.maxpool2d_forward(Y1, 2, None, 0, 2, work)
    assert _conv.maxpool2d_forward(Y1, 2, None, 0, 2, work)[0] is P
