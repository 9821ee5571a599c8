# The convolutional front-end's kernels, one call per layer and batch:
# 2-D convolution (+ bias, ReLU) forward and backward, and max pooling
# forward and backward, channels-last (N, H, W, C), float32 or float64.
#
# The per-tile work is in crnn_conv.pxd (shared with the fused training
# step).  Here: validation, the packed copies of the kernel (packed once per
# call, shared by every thread), per-thread workspace, and the share-out:
# - forward: images x tiles of output rows, dynamically;
# - weight and bias gradients: a fixed number of chunks of (image, tile)
#   tasks, each with its own partial sums, added in chunk order, so the
#   result does not depend on the number of threads;
# - input gradients and pooling's backward: one image per task (the tiles of
#   one image overlap in the input when the stride is below the kernel).
#
# Weights are (KH, KW, C, F); torch.nn.Conv2d's weight (F, C, KH, KW) is
# weight.permute(2, 3, 1, 0).
from cython cimport floating
from cython.parallel cimport prange, threadid

import numpy as np

from crnn_net cimport _pack, _mm, SIMD_BF16
from crnn_net cimport crnn_simd_detect, crnn_packed_size, CRNN_PW_BYTES
from crnn_conv cimport (ConvGeom, PoolGeom, conv_geom, pool_geom, conv_col_size, cpack, cgemm,
                        cgemm_width, crnn_cpacked_size,
                        im2col, conv_tile_forward, conv_tile_forward_implicit,
                        conv_image_input_grad,
                        pool_row_forward, pool_image_backward)
from crnn_omp cimport crnn_ftz_enter, crnn_ftz_leave
from crnn_isa cimport isa_init, isa_ran_levels

# the SIMD cap (CRNN_MAX_SIMD), before any kernel of this module can run
isa_init()

# weight and bias gradients are summed in at most this many partial sums
cdef enum:
    GRAD_CHUNKS = 16


# strides, paddings and kernels beyond this are refused before any
# arithmetic on them (sums of sizes then stay far from overflowing)
cdef Py_ssize_t MAX_GEOM = 2 ** 31 - 1


def _pair(value, name, int low):
    """(a, b) from an int or a pair of ints, each in [low, 2**31 - 1]."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        a, b = value
    else:
        a = b = value
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an int >= {low} or a pair of them, got {value!r}")
        if v > MAX_GEOM:
            raise ValueError(f"{name} must be at most 2**31 - 1, got {value!r}")
    return int(a), int(b)


def simd_level(int simd=-1):
    """The level the products run at when asked for `simd` (-1: the best):
    at most the CPU's, capped by CRNN_MAX_SIMD (2 AVX-512, 1 AVX2, 0 none,
    BLAS)."""
    return _level(simd)


cdef int _level(int simd) noexcept:
    cdef int best = crnn_simd_detect()
    return best if simd < 0 or simd > best else simd


def output_size(Py_ssize_t size, Py_ssize_t kernel, Py_ssize_t stride, Py_ssize_t padding):
    """floor((size + 2 padding - kernel) / stride) + 1, as torch (0 when the
    kernel does not fit)."""
    if size < 0 or kernel < 1 or stride < 1 or padding < 0 \
            or max(size, kernel, stride, padding) > MAX_GEOM:
        raise ValueError(f"output_size needs size >= 0, kernel >= 1, stride >= 1 and "
                         f"padding >= 0, each below 2**31; got {(size, kernel, stride, padding)}")
    if size + 2 * padding < kernel:
        return 0
    return (size + 2 * padding - kernel) // stride + 1


def _buf(dict work, name, shape, dtype, bint zero=False):
    """An array of this shape and dtype: work[name] when it has them (it is
    then reused; else it is replaced), or a new one without work."""
    a = None if work is None else work.get(name)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = np.empty(shape, dtype=dtype)
        if work is not None:
            work[name] = a
    if zero:
        a.fill(0)
    return a


def _shape4(a):
    """The shape of a 4-D memoryview, as a tuple."""
    return tuple(a.shape[:4])


cdef ConvGeom _conv_geom(tuple xshape, tuple wshape, stride, padding,
                         Py_ssize_t itemsize) except *:
    cdef ConvGeom g
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if wshape[2] != xshape[3]:
        raise ValueError(f"the weights are for {wshape[2]} input channels; the images have "
                         f"{xshape[3]} (weights are (KH, KW, C, F), images (N, H, W, C))")
    if conv_geom(&g, xshape[1], xshape[2], xshape[3], wshape[0], wshape[1], wshape[3],
                 sh, sw, ph, pw, itemsize) != 0:
        raise ValueError(f"a {wshape[0]}x{wshape[1]} kernel with padding {(ph, pw)} does not "
                         f"fit an image of {xshape[1]}x{xshape[2]}, or a size is 0")
    return g


cdef object _packed(int level, const floating[:, :, :, ::1] Wt, const ConvGeom* g, bint trans):
    """Wm packed by cpack one kernel row at a time (the forward product), or
    Wm^T packed for _rgemm
    (trans: the input gradient's, many columns), at `level`; None at level 0."""
    cdef Py_ssize_t PWn, kps, ky
    cdef floating[::1] out
    if level <= 0 or level == SIMD_BF16:
        return None
    dtype = np.float32 if floating is float else np.float64
    if not trans:
        # one packed matrix per kernel row ky (conv_tile_forward_implicit)
        kps = crnn_cpacked_size(level, g.KW * g.C, g.F, sizeof(floating))
        arr = np.empty(g.KH * kps, dtype=dtype)
        out = arr
        for ky in range(g.KH):
            cpack(level, &Wt[ky, 0, 0, 0], g.F, g.KW * g.C, g.F, &out[ky * kps])
        return arr
    PWn = CRNN_PW_BYTES // sizeof(floating)
    arr = np.empty(crnn_packed_size(g.F, 1, g.K, sizeof(floating)), dtype=dtype)
    out = arr
    _pack(level, &Wt[0, 0, 0, 0], g.F, True, g.F, 1, g.K, g.K, 0, (g.K + PWn - 1) // PWn,
          &out[0])
    return arr


def conv2d_forward(const floating[:, :, :, ::1] X, const floating[:, :, :, ::1] weight,
                   const floating[::1] bias, stride=1, padding=0, bint relu=True,
                   int simd=-1, int n_threads=1, dict work=None):
    """Y = act(conv(X, weight) + bias): X (N, H, W, C), weight (KH, KW, C, F),
    bias (F,); act = ReLU or (relu False) none.  Returns Y (N, HO, WO, F).
    simd: the level of the products (-1: the best allowed).  work: a dict
    whose arrays this call reuses when their shapes fit (Y included: it
    is overwritten by the next call with the same work), so that repeated
    calls do not allocate and fault in fresh pages."""
    cdef ConvGeom g = _conv_geom(_shape4(X), _shape4(weight), stride, padding,
                                 sizeof(floating))
    cdef Py_ssize_t N = X.shape[0], task, n, t, ntask, kps
    cdef int level = _level(simd), nt = max(1, n_threads), tid
    cdef unsigned int csr
    cdef floating[:, :, :, ::1] Y
    cdef floating[:, ::1] col, acc
    cdef unsigned char[:, ::1] wbad
    cdef const unsigned char* wbadp = NULL
    cdef const floating* wp = NULL
    cdef floating[::1] wpk
    if bias.shape[0] != g.F:
        raise ValueError(f"bias has {bias.shape[0]} entries for {g.F} filters")
    dtype = np.float32 if floating is float else np.float64
    Yarr = _buf(work, "Y", (N, g.HO, g.WO, g.F), dtype)
    if N == 0:
        return Yarr
    Y = Yarr
    packed = _packed(level, weight, &g, False)
    if packed is not None:
        wpk = packed
        wp = &wpk[0]
    ntask = N * g.ntile
    nt = <int> min(nt, ntask)
    # the im2col tile (level 0) or the pixels on the padding (conv_tile_forward_implicit)
    col = _buf(work, "fcol", (nt, max(conv_col_size(&g), g.WO * g.KW * g.C)), dtype)
    kps = crnn_cpacked_size(level, g.KW * g.C, g.F, sizeof(floating))
    acc = _buf(work, "acc", (nt, g.WO * cgemm_width(level, g.F, sizeof(floating))), dtype)
    # the (kernel row, filter) pairs with an inf or NaN weight, if any
    bad = np.ascontiguousarray(~np.isfinite(np.asarray(weight)).all(axis=(1, 2)), dtype=np.uint8)
    if bad.any():
        wbad = bad
        wbadp = &wbad[0, 0]
    for task in prange(ntask, nogil=True, schedule='dynamic', num_threads=nt,
                       use_threads_if=nt > 1):
        tid = threadid()
        n = task // g.ntile
        t = task % g.ntile
        csr = crnn_ftz_enter()
        if wp != NULL:
            conv_tile_forward_implicit(&g, level, &X[n, 0, 0, 0], wp, kps, &bias[0], wbadp,
                                       relu, t, &col[tid, 0], &acc[tid, 0], &Y[n, 0, 0, 0])
        else:
            conv_tile_forward(&g, &X[n, 0, 0, 0], &weight[0, 0, 0, 0], &bias[0], relu, t,
                              &col[tid, 0], &Y[n, 0, 0, 0])
        crnn_ftz_leave(csr)
    return Yarr


def conv2d_backward(const floating[:, :, :, ::1] X, const floating[:, :, :, ::1] weight,
                    const floating[:, :, :, ::1] Y, const floating[:, :, :, ::1] dY,
                    stride=1, padding=0, bint relu=True, bint input_grad=True, int simd=-1,
                    int n_threads=1, dict work=None):
    """Gradients of conv2d_forward: from its input X, weight, output Y (used
    for ReLU's mask) and the gradient dY at Y, returns (dX, dweight, dbias);
    dX is None when input_grad is False (a first layer).  Weight and bias
    gradients are summed in a fixed order: the same for any n_threads.
    work: as conv2d_forward's (the returned arrays live in it then)."""
    cdef ConvGeom g = _conv_geom(_shape4(X), _shape4(weight), stride, padding,
                                 sizeof(floating))
    cdef Py_ssize_t N = X.shape[0], n, t, c, e, task, ntask, nch, lo, hi, i, j, M, oy0, oy1
    cdef Py_ssize_t KF = g.K * g.F, npix = g.HO * g.WO * g.F, FP, src
    cdef int level = _level(simd), tid
    # no more threads than the most parallel loop has items
    cdef int nt = <int> max(1, min(n_threads, max(N, GRAD_CHUNKS)))
    cdef unsigned int csr
    cdef floating[:, :, :, ::1] dZ
    cdef floating[:, ::1] col, parts, dzp
    cdef floating[:, :, :, ::1] dX
    cdef floating[::1] dW
    cdef const floating* wtp = NULL
    cdef floating[::1] wtpk
    cdef const floating* A
    cdef const floating* dzt
    cdef floating* part
    cdef floating s
    cdef tuple oshape = (N, g.HO, g.WO, g.F)
    if _shape4(Y) != oshape or _shape4(dY) != oshape:
        raise ValueError(f"Y and dY must have the output's shape {oshape}, got "
                         f"{_shape4(Y)} and {_shape4(dY)}")
    dtype = np.float32 if floating is float else np.float64
    dWarr = _buf(work, "dW", (KF + g.F,), dtype, N == 0)
    dXarr = _buf(work, "dX", _shape4(X), dtype, N == 0) if input_grad else None
    if N > 0:
        # the gradient at the pre-activation: dY where the ReLU passed
        if relu:
            dZarr = _buf(work, "dZ", oshape, dtype)
            dZ = dZarr
            for n in prange(N, nogil=True, schedule='static', num_threads=nt,
                            use_threads_if=nt > 1 and N > 1):
                for e in range(npix):
                    (&dZ[n, 0, 0, 0])[e] = (&dY[n, 0, 0, 0])[e] \
                        if (&Y[n, 0, 0, 0])[e] > 0 else 0
        else:
            dZarr = dY
        dZ = dZarr
        ntask = N * g.ntile
        nch = min(ntask, GRAD_CHUNKS)
        # partial sums (K x FP, then the bias's F): rows of whole vectors
        FP = cgemm_width(level, g.F, sizeof(floating))
        parts = _buf(work, "parts", (nch, g.K * FP + g.F), dtype, True)
        col = _buf(work, "col", (nt, 1 if g.direct else conv_col_size(&g)), dtype)
        dzp = _buf(work, "dzp", (nt, max(1, crnn_cpacked_size(level, g.R * g.WO, g.F,
                                                              sizeof(floating)))), dtype)
        for c in prange(nch, nogil=True, schedule='dynamic', num_threads=nt,
                        use_threads_if=nt > 1 and nch > 1):
            tid = threadid()
            csr = crnn_ftz_enter()
            lo = c * ntask // nch
            hi = (c + 1) * ntask // nch
            part = &parts[c, 0]
            for task in range(lo, hi):
                n = task // g.ntile
                t = task % g.ntile
                # (not through conv_tile_rows: prange makes private only the
                # variables it sees assigned)
                oy0 = t * g.R
                oy1 = min(oy0 + g.R, g.HO)
                M = (oy1 - oy0) * g.WO
                if g.direct:
                    A = &X[n, oy0, 0, 0]
                else:
                    im2col(&g, &X[n, 0, 0, 0], oy0, oy1, &col[tid, 0])
                    A = &col[tid, 0]
                dzt = &dZ[n, oy0, 0, 0]
                # part (K x F) += A^T dz: A an im2col tile (M x K), read transposed
                if level > 0:
                    cpack(level, dzt, g.F, M, g.F, &dzp[tid, 0])
                    cgemm(level, g.K, FP, M, A, 1, g.K, &dzp[tid, 0], part, FP, False)
                else:
                    _mm(0, True, False, g.K, g.F, M, A, g.K, dzt, g.F, <floating> 1, part, g.F)
                for i in range(M):
                    for j in range(g.F):
                        part[g.K * FP + j] += dzt[i * g.F + j]
            crnn_ftz_leave(csr)
        dW = dWarr
        for e in prange(KF + g.F, nogil=True, schedule='static', num_threads=nt,
                        use_threads_if=nt > 1 and KF > 4096):
            src = (e // g.F) * FP + e % g.F if e < KF else g.K * FP + e - KF
            s = 0
            for c in range(nch):
                s = s + parts[c, src]
            dW[e] = s
        if input_grad:
            dX = dXarr
            packed = _packed(level, weight, &g, True)
            if packed is not None:
                wtpk = packed
                wtp = &wtpk[0]
            for n in prange(N, nogil=True, schedule='dynamic', num_threads=nt,
                            use_threads_if=nt > 1 and N > 1):
                tid = threadid()
                csr = crnn_ftz_enter()
                conv_image_input_grad(&g, level, &dZ[n, 0, 0, 0], &weight[0, 0, 0, 0], wtp,
                                      &col[tid, 0], &dX[n, 0, 0, 0])
                crnn_ftz_leave(csr)
    return (dXarr, dWarr[:KF].reshape(weight.shape[0], weight.shape[1], weight.shape[2],
                                      weight.shape[3]), dWarr[KF:])


def maxpool2d_forward(const floating[:, :, :, ::1] X, kernel, stride=None, padding=0,
                      int n_threads=1, dict work=None):
    """Max pooling of X (N, H, W, C), as torch.nn.MaxPool2d(kernel, stride,
    padding) (stride None: the kernel).  Returns (Y, arg): Y (N, HO, WO, C)
    and arg, int32 of Y's shape, the index iy * W + ix in its image of the
    input each maximum came from (for the backward pass)."""
    cdef PoolGeom g
    cdef Py_ssize_t N = X.shape[0], r, n, oy
    cdef int nt
    kh, kw = _pair(kernel, "kernel", 1)
    sh, sw = _pair(kernel if stride is None else stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if X.shape[1] * X.shape[2] >= 2 ** 31:
        raise ValueError("images of 2**31 pixels or more are not supported")
    if pool_geom(&g, X.shape[1], X.shape[2], X.shape[3], kh, kw, sh, sw, ph, pw) != 0:
        raise ValueError(f"pooling {kh}x{kw} with padding {(ph, pw)} does not fit an image of "
                         f"{X.shape[1]}x{X.shape[2]}x{X.shape[3]} (padding may be at most half "
                         "the kernel)")
    nt = <int> max(1, min(n_threads, N * g.HO))
    dtype = np.float32 if floating is float else np.float64
    Yarr = _buf(work, "P", (N, g.HO, g.WO, g.C), dtype)
    Aarr = _buf(work, "arg", (N, g.HO, g.WO, g.C), np.int32)
    cdef floating[:, :, :, ::1] Y = Yarr
    cdef int[:, :, :, ::1] arg = Aarr
    if N == 0:
        return Yarr, Aarr
    for r in prange(N * g.HO, nogil=True, schedule='static', num_threads=nt,
                    use_threads_if=nt > 1 and N * g.HO > 1):
        n = r // g.HO
        oy = r % g.HO
        pool_row_forward(&g, &X[n, 0, 0, 0], oy, &Y[n, 0, 0, 0], &arg[n, 0, 0, 0])
    return Yarr, Aarr


def maxpool2d_backward(const floating[:, :, :, ::1] dY, const int[:, :, :, ::1] arg,
                       Py_ssize_t height, Py_ssize_t width, int n_threads=1,
                       dict work=None):
    """The input gradient (N, height, width, C) of max pooling, from the
    gradient dY at its output and maxpool2d_forward's arg."""
    cdef PoolGeom g
    cdef Py_ssize_t N = dY.shape[0], n
    cdef int nt = <int> max(1, min(n_threads, N))
    if _shape4(arg) != _shape4(dY):
        raise ValueError(f"arg has shape {_shape4(arg)}, dY {_shape4(dY)}")
    if height < 1 or width < 1 or height > MAX_GEOM or width > MAX_GEOM \
            or height * width >= 2 ** 31:
        raise ValueError(f"the input size must be positive and below 2**31 pixels, got "
                         f"{(height, width)}")
    a = np.asarray(arg)
    if a.size and (a.min() < 0 or a.max() >= height * width):
        raise ValueError("arg holds an index outside the input image")
    g.H = height
    g.W = width
    g.C = dY.shape[3]
    g.HO = dY.shape[1]
    g.WO = dY.shape[2]
    dtype = np.float32 if floating is float else np.float64
    dXarr = _buf(work, "dP", (N, height, width, g.C), dtype)
    cdef floating[:, :, :, ::1] dX = dXarr
    if N == 0 or g.C == 0:
        dXarr[...] = 0
        return dXarr
    for n in prange(N, nogil=True, schedule='static', num_threads=nt,
                    use_threads_if=nt > 1 and N > 1):
        pool_image_backward(&g, &dY[n, 0, 0, 0], &arg[n, 0, 0, 0], &dX[n, 0, 0, 0])
    return dXarr


def isa_ran():
    """The SIMD levels (crnn._isa.LEVELS) this module's kernels have run at
    since it loaded, per family (for the tests of CRNN_MAX_SIMD)."""
    return isa_ran_levels()
