"""Independent numpy references for the convolutional kernels (crnn._conv).

Written from the definitions, channels-last, in float64, without im2col:
a convolution is a sum over the kernel offsets (ky, kx) of a strided slice
of the zero-padded input times the weights at that offset; its gradients
are the adjoints of the same slices.  Max pooling takes each window
explicitly and keeps the first largest value in (ky, kx) order, or the last
NaN, as torch.nn.MaxPool2d does.
"""
import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def conv2d(X, W, b, stride=1, padding=0, relu=True):
    """X (N, H, W, C), W (KH, KW, C, F), b (F,) -> (N, HO, WO, F) in float64."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    X = np.asarray(X, np.float64)
    W = np.asarray(W, np.float64)
    N, H, Wd, C = X.shape
    KH, KW, _, F = W.shape
    HO, WO = (H + 2 * ph - KH) // sh + 1, (Wd + 2 * pw - KW) // sw + 1
    Xp = np.pad(X, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    out = np.zeros((N, HO, WO, F)) + np.asarray(b, np.float64)
    for ky in range(KH):
        for kx in range(KW):
            patch = Xp[:, ky:ky + sh * (HO - 1) + 1:sh, kx:kx + sw * (WO - 1) + 1:sw, :]
            out += patch @ W[ky, kx]
    return np.maximum(out, 0) if relu else out


def conv2d_grads(X, W, Y, dY, stride=1, padding=0, relu=True):
    """(dX, dW, db) of conv2d at X, W given its output Y and the gradient dY."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    X = np.asarray(X, np.float64)
    W = np.asarray(W, np.float64)
    dZ = np.asarray(dY, np.float64) * ((np.asarray(Y) > 0) if relu else 1.0)
    N, H, Wd, C = X.shape
    KH, KW, _, F = W.shape
    HO, WO = dZ.shape[1:3]
    Xp = np.pad(X, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    dXp = np.zeros_like(Xp)
    dW = np.zeros_like(W)
    for ky in range(KH):
        for kx in range(KW):
            sl = (slice(None), slice(ky, ky + sh * (HO - 1) + 1, sh),
                  slice(kx, kx + sw * (WO - 1) + 1, sw), slice(None))
            dW[ky, kx] = np.einsum("nhwc,nhwf->cf", Xp[sl], dZ)
            dXp[sl] += dZ @ W[ky, kx].T
    dX = dXp[:, ph:ph + H, pw:pw + Wd, :]
    return dX, dW, dZ.sum(axis=(0, 1, 2))


def maxpool2d(X, kernel, stride=None, padding=0):
    """(Y, arg): torch.nn.MaxPool2d's output and the flat index iy * W + ix of
    each maximum in its image (channels-last)."""
    (kh, kw) = _pair(kernel)
    (sh, sw) = _pair(kernel if stride is None else stride)
    (ph, pw) = _pair(padding)
    X = np.asarray(X)
    N, H, Wd, C = X.shape
    HO, WO = (H + 2 * ph - kh) // sh + 1, (Wd + 2 * pw - kw) // sw + 1
    Y = np.empty((N, HO, WO, C), X.dtype)
    arg = np.empty((N, HO, WO, C), np.int64)
    for n in range(N):
        for oy in range(HO):
            for ox in range(WO):
                for c in range(C):
                    best, where = -np.inf, None
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * sh - ph + ky, ox * sw - pw + kx
                            if not (0 <= iy < H and 0 <= ix < Wd):
                                continue
                            v = X[n, iy, ix, c]
                            if where is None or v > best or np.isnan(v):
                                best, where = v, iy * Wd + ix
                    Y[n, oy, ox, c], arg[n, oy, ox, c] = best, where
    return Y, arg


def maxpool2d_grad(dY, arg, H, W):
    """The input gradient of max pooling: each output's gradient added to the
    pixel its maximum came from."""
    N, HO, WO, C = dY.shape
    dX = np.zeros((N, H * W, C))
    for n in range(N):
        for c in range(C):
            np.add.at(dX[n, :, c], arg[n, :, :, c].ravel(), dY[n, :, :, c].ravel())
    return dX.reshape(N, H, W, C)
