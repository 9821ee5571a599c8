# The convolutional front-end's per-task kernels: 2-D convolution (+ bias,
# ReLU) and max pooling, channels-last (an image is H x W x C, C fastest),
# float or double.  Everything here is inline and works on one image, or a
# block of its output rows, so that a driver (crnn._conv, and the fused
# training step) shares images x tiles out over its threads.
#
# A convolution is a product on the packed kernels of crnn_gemm.h: the
# kernel is the matrix Wm (KH * KW * C rows, F columns; row (ky, kx, c)),
# which is the layout of a weight array (KH, KW, C, F) as it is stored, and a
# block of output rows is im2col(block) @ Wm, where im2col's row for output
# pixel (oy, ox) lists the input pixels under the kernel, (ky, kx, c) order,
# zeros outside the image.  Channels last, a kernel row of KW pixels is KW * C
# contiguous numbers, copied in one go when it lies inside the image.
#
# Each output element is one sequential chain of FMAs over the KH * KW * C
# products (crnn_gemm.h), so it does not depend on the tiling nor on the
# thread that computes it.
from cython cimport floating
from libc.math cimport NAN
from libc.string cimport memcpy, memset

from crnn_net cimport _rgemm, _mm

cdef extern from "crnn_cgemm.h" nogil:
    long crnn_cgemm_lanes(int level, long elem_bytes)
    long crnn_cpacked_size(int level, long K, long F, long elem_bytes)
    void crnn_cpack_f32(int level, const float* B, long ldb, long K, long F, float* out)
    void crnn_cpack_f64(int level, const double* B, long ldb, long K, long F, double* out)
    int crnn_cgemm_f32(int level, long M, long F, long K, const float* A, long ars, long aks,
                       const float* Bp, float* C, long ldc, int beta0)
    int crnn_cgemm_f64(int level, long M, long F, long K, const double* A, long ars, long aks,
                       const double* Bp, double* C, long ldc, int beta0)


cdef inline void cpack(int level, const floating* B, Py_ssize_t ldb, Py_ssize_t K,
                       Py_ssize_t F, floating* out) noexcept nogil:
    """B (K x F, row-major) packed for cgemm at `level` (crnn_cgemm.h)."""
    if floating is float:
        crnn_cpack_f32(level, B, ldb, K, F, out)
    else:
        crnn_cpack_f64(level, B, ldb, K, F, out)


cdef inline Py_ssize_t cgemm_width(int level, Py_ssize_t F, Py_ssize_t itemsize) noexcept nogil:
    """F rounded up to whole vectors at `level` (F at level 0): a C that
    wide is written by whole vectors, without the scalar tail."""
    cdef Py_ssize_t VL = crnn_cgemm_lanes(level, itemsize)
    return F if VL == 0 else (F + VL - 1) // VL * VL


cdef inline bint cgemm(int level, Py_ssize_t M, Py_ssize_t F, Py_ssize_t K, const floating* A,
                       Py_ssize_t ars, Py_ssize_t aks, const floating* Bp, floating* C,
                       Py_ssize_t ldc, bint beta0) noexcept nogil:
    """C (M x F) (+)= A B, A[r, k] at A[r ars + k aks], B packed by cpack at
    `level`; False (nothing done) at level 0."""
    if floating is float:
        return crnn_cgemm_f32(level, M, F, K, A, ars, aks, Bp, C, ldc, beta0) != 0
    else:
        return crnn_cgemm_f64(level, M, F, K, A, ars, aks, Bp, C, ldc, beta0) != 0


cdef struct ConvGeom:
    Py_ssize_t H, W, C          # input image
    Py_ssize_t KH, KW, F        # kernel and filters
    Py_ssize_t SH, SW, PH, PW   # stride and zero padding
    Py_ssize_t HO, WO           # output image
    Py_ssize_t K                # KH * KW * C: rows of Wm
    Py_ssize_t R                # output rows per tile
    Py_ssize_t ntile            # tiles per image: ceil(HO / R)
    bint direct                 # 1 x 1, stride 1, no padding: the input is its own im2col


# im2col tiles of at most this many bytes: a tile's rows stay in L2 while
# the product streams the packed kernel past them
cdef enum:
    CONV_TILE_BYTES = 196608


cdef inline int conv_geom(ConvGeom* g, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                          Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t F, Py_ssize_t SH,
                          Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW,
                          Py_ssize_t itemsize) noexcept nogil:
    """Fill g; -1 when the geometry gives no output pixel or a size is not
    positive."""
    if H < 1 or W < 1 or C < 1 or KH < 1 or KW < 1 or F < 1 or SH < 1 or SW < 1 \
            or PH < 0 or PW < 0:
        return -1
    if H + 2 * PH < KH or W + 2 * PW < KW:
        return -1
    g.H = H
    g.W = W
    g.C = C
    g.KH = KH
    g.KW = KW
    g.F = F
    g.SH = SH
    g.SW = SW
    g.PH = PH
    g.PW = PW
    g.HO = (H + 2 * PH - KH) // SH + 1
    g.WO = (W + 2 * PW - KW) // SW + 1
    g.K = KH * KW * C
    g.direct = KH == 1 and KW == 1 and SH == 1 and SW == 1 and PH == 0 and PW == 0
    g.R = CONV_TILE_BYTES // (g.WO * g.K * itemsize)
    if g.R < 1:
        g.R = 1
    if g.R > g.HO:
        g.R = g.HO
    g.ntile = (g.HO + g.R - 1) // g.R
    return 0


cdef inline Py_ssize_t conv_col_size(const ConvGeom* g) noexcept nogil:
    """Elements of one tile's im2col (and of its input gradient)."""
    return g.R * g.WO * g.K


cdef inline void conv_tile_rows(const ConvGeom* g, Py_ssize_t t, Py_ssize_t* oy0,
                                Py_ssize_t* oy1) noexcept nogil:
    oy0[0] = t * g.R
    oy1[0] = oy0[0] + g.R if oy0[0] + g.R < g.HO else g.HO


cdef inline void im2col(const ConvGeom* g, const floating* x, Py_ssize_t oy0, Py_ssize_t oy1,
                        floating* col) noexcept nogil:
    """col[(oy - oy0) * WO + ox, (ky, kx, c)] = x[oy SH - PH + ky, ox SW - PW + kx, c]
    (0 outside the image) for output rows [oy0, oy1) of one image x."""
    cdef Py_ssize_t C = g.C, KWC = g.KW * g.C, oy, ox, ky, kx, iy, ix0, ix, j
    cdef floating* row
    cdef floating* dst
    cdef const floating* src
    for oy in range(oy0, oy1):
        for ox in range(g.WO):
            row = col + ((oy - oy0) * g.WO + ox) * g.K
            ix0 = ox * g.SW - g.PW
            for ky in range(g.KH):
                iy = oy * g.SH - g.PH + ky
                if iy < 0 or iy >= g.H:
                    memset(row + ky * KWC, 0, KWC * sizeof(floating))
                elif ix0 >= 0 and ix0 + g.KW <= g.W:
                    # a loop, not memcpy: a first layer's kernel row is a few
                    # dozen bytes (5 x 3 floats), and a call per row costs more
                    # than the product of the pixel
                    dst = row + ky * KWC
                    src = x + (iy * g.W + ix0) * C
                    for j in range(KWC):
                        dst[j] = src[j]
                else:
                    for kx in range(g.KW):
                        ix = ix0 + kx
                        if ix < 0 or ix >= g.W:
                            memset(row + ky * KWC + kx * C, 0, C * sizeof(floating))
                        else:
                            memcpy(row + ky * KWC + kx * C, x + (iy * g.W + ix) * C,
                                   C * sizeof(floating))


cdef inline void col2im_add(const ConvGeom* g, const floating* col, Py_ssize_t oy0,
                            Py_ssize_t oy1, floating* dx) noexcept nogil:
    """The adjoint of im2col: dx[input pixel] += every col entry that copied
    it (entries over the padding are dropped).  Rows in order, so the sum
    into each input element has a fixed order."""
    cdef Py_ssize_t C = g.C, KWC = g.KW * g.C, oy, ox, ky, kx, iy, ix0, ix, j
    cdef const floating* row
    cdef const floating* src
    cdef floating* dst
    for oy in range(oy0, oy1):
        for ox in range(g.WO):
            row = col + ((oy - oy0) * g.WO + ox) * g.K
            ix0 = ox * g.SW - g.PW
            for ky in range(g.KH):
                iy = oy * g.SH - g.PH + ky
                if iy < 0 or iy >= g.H:
                    continue
                if ix0 >= 0 and ix0 + g.KW <= g.W:
                    src = row + ky * KWC
                    dst = dx + (iy * g.W + ix0) * C
                    for j in range(KWC):
                        dst[j] += src[j]
                else:
                    for kx in range(g.KW):
                        ix = ix0 + kx
                        if ix < 0 or ix >= g.W:
                            continue
                        src = row + ky * KWC + kx * C
                        dst = dx + (iy * g.W + ix) * C
                        for j in range(C):
                            dst[j] += src[j]


cdef inline void conv_tile_forward(const ConvGeom* g, const floating* x, const floating* Wm,
                                   const floating* bias, bint relu, Py_ssize_t t,
                                   floating* col, floating* y) noexcept nogil:
    """Output rows of tile t of one image: y (HO x WO x F, the whole image's)
    = act(im2col(x) Wm + bias), the product through BLAS: the path of level
    0 (the SIMD levels take conv_tile_forward_implicit)."""
    cdef Py_ssize_t oy0, oy1, M, F = g.F, i, j
    cdef const floating* A
    cdef floating* out
    cdef floating v
    conv_tile_rows(g, t, &oy0, &oy1)
    M = (oy1 - oy0) * g.WO
    if g.direct:
        A = x + oy0 * g.W * g.C
    else:
        im2col(g, x, oy0, oy1, col)
        A = col
    out = y + oy0 * g.WO * F
    _mm(0, False, False, M, F, g.K, A, g.K, Wm, F, <floating> 0, out, F)
    for i in range(M):
        for j in range(F):
            v = out[i * F + j] + bias[j]
            if relu and not (v > 0):
                v = 0 if v == v else v          # NaN stays NaN, as torch's ReLU
            out[i * F + j] = v


cdef inline void _edge_rows(const ConvGeom* g, const floating* xr, Py_ssize_t ox0,
                            Py_ssize_t ox1, floating* ebuf) noexcept nogil:
    """ebuf[ox - ox0, (kx, c)] = xr[ox SW - PW + kx, c] (0 outside the row):
    one kernel row of the output pixels [ox0, ox1) of input row xr."""
    cdef Py_ssize_t C = g.C, KWC = g.KW * g.C, ox, kx, ix, c
    cdef floating* row
    for ox in range(ox0, ox1):
        row = ebuf + (ox - ox0) * KWC
        for kx in range(g.KW):
            ix = ox * g.SW - g.PW + kx
            if ix < 0 or ix >= g.W:
                for c in range(C):
                    row[kx * C + c] = 0
            else:
                for c in range(C):
                    row[kx * C + c] = xr[ix * C + c]


cdef inline void conv_tile_forward_implicit(const ConvGeom* g, int level, const floating* x,
                                            const floating* wpk, Py_ssize_t kps,
                                            const floating* bias, const unsigned char* wbad,
                                            bint relu, Py_ssize_t t, floating* ebuf,
                                            floating* acc, floating* y) noexcept nogil:
    """conv_tile_forward without im2col (an implicit GEMM), at a SIMD level
    (not 0).  For output row oy and kernel row ky, the input pixels under
    the kernel row of output pixel ox are KW * C contiguous numbers starting
    SW * C further than ox - 1's: the product reads them in place (cgemm's
    row stride), one call per (oy, ky) adding into the row's sums acc
    (WO x cgemm_width(F): whole vectors, no scalar tail), which start at the
    bias.  Only the pixels whose kernel row crosses the left or right
    padding are copied (into ebuf, zeros filled in).  wpk: the kernel rows
    of Wm packed by cpack one ky at a time, kps elements apart.
    A kernel row over the top or bottom padding adds nothing, except where
    its weights hold an inf or NaN (wbad[ky * F + f], or wbad NULL: none):
    there 0 * inf is NaN, as in the products of level 0 and of torch.
    Per output element the sum is the bias, then ky in order, each a chain
    over (kx, c): fixed, whatever the tile or thread."""
    cdef Py_ssize_t F = g.F, FP = cgemm_width(level, g.F, sizeof(floating)), KWC = g.KW * g.C
    cdef Py_ssize_t oy0, oy1, oy, ky, iy, i, j, ox_lo, ox_hi
    cdef const floating* xr
    cdef const floating* bp
    cdef floating* out
    cdef floating v
    conv_tile_rows(g, t, &oy0, &oy1)
    # output pixels [ox_lo, ox_hi) have their whole kernel row inside the image
    ox_lo = (g.PW + g.SW - 1) // g.SW
    if ox_lo > g.WO:
        ox_lo = g.WO
    ox_hi = (g.W + g.PW - g.KW) // g.SW + 1 if g.W + g.PW >= g.KW else 0
    if ox_hi > g.WO:
        ox_hi = g.WO
    if ox_hi < ox_lo:
        ox_hi = ox_lo
    for oy in range(oy0, oy1):
        for i in range(g.WO):
            for j in range(F):
                acc[i * FP + j] = bias[j]
            for j in range(F, FP):
                acc[i * FP + j] = 0
        for ky in range(g.KH):
            iy = oy * g.SH - g.PH + ky
            if iy < 0 or iy >= g.H:
                if wbad != NULL:
                    for j in range(F):
                        if wbad[ky * F + j]:
                            for i in range(g.WO):
                                acc[i * FP + j] = NAN
                continue
            xr = x + iy * g.W * g.C
            bp = wpk + ky * kps
            if ox_hi > ox_lo:
                cgemm(level, ox_hi - ox_lo, FP, KWC, xr + (ox_lo * g.SW - g.PW) * g.C,
                      g.SW * g.C, 1, bp, acc + ox_lo * FP, FP, False)
            if ox_lo > 0:
                _edge_rows(g, xr, 0, ox_lo, ebuf)
                cgemm(level, ox_lo, FP, KWC, ebuf, KWC, 1, bp, acc, FP, False)
            if ox_hi < g.WO:
                _edge_rows(g, xr, ox_hi, g.WO, ebuf)
                cgemm(level, g.WO - ox_hi, FP, KWC, ebuf, KWC, 1, bp, acc + ox_hi * FP, FP,
                      False)
        out = y + oy * g.WO * F
        for i in range(g.WO):
            for j in range(F):
                v = acc[i * FP + j]
                if relu and not (v > 0) and v == v:   # NaN stays NaN, as torch's ReLU
                    v = 0
                out[i * F + j] = v


cdef inline void conv_image_input_grad(const ConvGeom* g, int level, const floating* dz,
                                       const floating* Wm, const floating* wtpack,
                                       floating* dcol, floating* dx) noexcept nogil:
    """dx (one image, H x W x C) = the input gradient of one image's
    convolution, from dz (HO x WO x F, the gradient at the pre-activation):
    per tile dcol = dz Wm^T (wtpack: Wm^T packed, or NULL for BLAS), then
    col2im, tiles in order."""
    cdef Py_ssize_t t, oy0, oy1, M, F = g.F
    cdef const floating* dzt
    cdef floating* dst
    if not g.direct:
        memset(dx, 0, g.H * g.W * g.C * sizeof(floating))
    for t in range(g.ntile):
        conv_tile_rows(g, t, &oy0, &oy1)
        M = (oy1 - oy0) * g.WO
        dzt = dz + oy0 * g.WO * F
        dst = dx + oy0 * g.W * g.C if g.direct else dcol
        if wtpack == NULL or not _rgemm(level, M, 0, g.K, 1, g.K, F, dzt, F, wtpack, dst,
                                        g.K, True):
            _mm(0, False, True, M, g.K, F, dzt, F, Wm, F, <floating> 0, dst, g.K)
        if not g.direct:
            col2im_add(g, dcol, oy0, oy1, dx)


# ---------------------------------------------------------------------------
# max pooling (floor mode, padding counts as -inf, as torch.nn.MaxPool2d)

cdef struct PoolGeom:
    Py_ssize_t H, W, C, KH, KW, SH, SW, PH, PW, HO, WO


cdef inline int pool_geom(PoolGeom* g, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                          Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                          Py_ssize_t PH, Py_ssize_t PW) noexcept nogil:
    """Fill g; -1 for a size that is not positive, padding above half the
    kernel (torch's rule: every window then holds an input pixel), or no
    output pixel."""
    if H < 1 or W < 1 or C < 1 or KH < 1 or KW < 1 or SH < 1 or SW < 1 or PH < 0 or PW < 0:
        return -1
    if 2 * PH > KH or 2 * PW > KW or H + 2 * PH < KH or W + 2 * PW < KW:
        return -1
    g.H = H
    g.W = W
    g.C = C
    g.KH = KH
    g.KW = KW
    g.SH = SH
    g.SW = SW
    g.PH = PH
    g.PW = PW
    g.HO = (H + 2 * PH - KH) // SH + 1
    g.WO = (W + 2 * PW - KW) // SW + 1
    return 0


cdef inline void pool_row_forward(const PoolGeom* g, const floating* x, Py_ssize_t oy,
                                  floating* y, int* arg) noexcept nogil:
    """Output row oy of one image: y[ox, c] = the largest x in the window,
    arg[ox, c] = its index iy * W + ix in the image: the first largest in
    (ky, kx) order, or the last NaN (a NaN wins, as in torch)."""
    cdef Py_ssize_t C = g.C, ox, ky, kx, iy, ix, iy0, ix0, c, first
    cdef floating* yo
    cdef int* ao
    cdef const floating* xp
    cdef floating v
    cdef int pos
    iy0 = oy * g.SH - g.PH
    for ox in range(g.WO):
        yo = y + (oy * g.WO + ox) * C
        ao = arg + (oy * g.WO + ox) * C
        ix0 = ox * g.SW - g.PW
        first = 1
        for ky in range(g.KH):
            iy = iy0 + ky
            if iy < 0 or iy >= g.H:
                continue
            for kx in range(g.KW):
                ix = ix0 + kx
                if ix < 0 or ix >= g.W:
                    continue
                xp = x + (iy * g.W + ix) * C
                pos = <int> (iy * g.W + ix)
                if first:
                    for c in range(C):
                        yo[c] = xp[c]
                        ao[c] = pos
                    first = 0
                else:
                    for c in range(C):
                        v = xp[c]
                        if v > yo[c] or v != v:
                            yo[c] = v
                            ao[c] = pos


cdef inline void pool_image_backward(const PoolGeom* g, const floating* dy, const int* arg,
                                     floating* dx) noexcept nogil:
    """dx (one image) = the pooling's input gradient: each output's gradient
    added to the input its maximum came from, outputs in order."""
    cdef Py_ssize_t C = g.C, HW = g.H * g.W, p, c, a
    memset(dx, 0, HW * C * sizeof(floating))
    for p in range(g.HO * g.WO):
        for c in range(C):
            a = arg[p * C + c]
            # the caller checked arg; checked again here, where another
            # thread may have changed it since: never a write outside dx
            if 0 <= a < HW:
                dx[a * C + c] += dy[p * C + c]
