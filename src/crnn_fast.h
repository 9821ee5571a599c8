/* Vectorizable element-wise kernels for crnn (float32).
 *
 * libm's tanhf is a scalar call of tens of cycles; the recurrent layers
 * evaluate it B*T*H times per pass, which made it the largest single cost of
 * a forward pass.  crnn_tanhf below is branch-free arithmetic that GCC turns
 * into SIMD code (4, 8 or 16 lanes), accurate to a few ulp:
 *
 *   |x| <  0.625: tanh x = x + x^3 P(x^2), a degree-4 minimax polynomial
 *                 (the Cephes tanhf coefficients);
 *   |x| >= 0.625: tanh |x| = (1 - e) / (1 + e), e = exp(-2|x|), with exp
 *                 by Cody-Waite range reduction exp(t) = 2^n exp(r),
 *                 |r| <= ln2/2, and a degree-6 polynomial for exp(r)
 *                 (Cephes expf), 2^n built from the exponent bits.  |x| is
 *                 clamped to 10, where tanh rounds to 1 in float32.
 *
 * The sigmoid of the GRU and LSTM gates uses the same exp.
 *
 * NaN propagates and the sign of zero is kept.  The loops are compiled
 * three times (crnn_isa.h's CRNN_VERSIONS) for baseline x86-64, AVX2+FMA
 * and AVX-512, and each call runs the version of the module's SIMD level
 * (the CPU's best, capped by CRNN_MAX_SIMD), so a portable wheel still runs
 * wide SIMD code.  (GCC's target_clones did this before, but its
 * "arch=haswell" version is chosen by CPU model, Intel Haswell only: AMD
 * Zen 2/3 and later Intel cores without AVX-512 ran the baseline SSE2
 * loops.)  The float64 versions of the cell
 * kernels use libm (full double precision).
 */
#ifndef CRNN_FAST_H
#define CRNN_FAST_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* MSVC's C compiler spells C99's restrict __restrict */
#if defined(_MSC_VER) && !defined(__clang__) && !defined(restrict)
#define restrict __restrict
#endif

#include "crnn_isa.h"       /* CRNN_VERSIONS, CRNN_PICK: a version per SIMD level */

/* float <-> bits through a union: GCC turns it into register moves that it
 * can vectorize (memcpy bit casts left whole loops scalar once several were
 * inlined into one). */
typedef union { float f; int32_t i; uint32_t u; } crnn_f32bits;

/* c ? a : b with no branch: a mask from the comparison.  GCC turns some
 * ternaries of these functions into branches, and a loop with branches
 * vectorizes only where the ISA has mask registers (AVX-512): with AVX2 the
 * cells ran one float at a time.  Same value as the ternary, bit for bit. */
static inline float crnn_selectf(int c, float a, float b)
{
    crnn_f32bits ab, bb, res;
    const uint32_t m = 0u - (uint32_t)(c != 0);
    ab.f = a;
    bb.f = b;
    res.u = (ab.u & m) | (bb.u & ~m);
    return res.f;
}

/* the same for double */
typedef union { double f; uint64_t u; } crnn_f64bits;
static inline double crnn_selectd(int c, double a, double b)
{
    crnn_f64bits ab, bb, res;
    const uint64_t m = 0u - (uint64_t)(c != 0);
    ab.f = a;
    bb.f = b;
    res.u = (ab.u & m) | (bb.u & ~m);
    return res.f;
}

/* exp(t) for |t| <= 87 (NaN propagates): Cody-Waite range reduction
 * exp(t) = 2^n exp(r), |r| <= ln2/2, a degree-6 polynomial for exp(r)
 * (Cephes expf) and 2^n from the exponent bits (|n| <= 126: a normal
 * float). */
static inline float crnn_expf(float t)
{
    const float shifter = 12582912.0f;                 /* 1.5 * 2^23: round to integer */
    crnn_f32bits fn, sh, two_n;
    fn.f = t * 1.44269504088896341f + shifter;
    sh.f = shifter;
    /* unsigned: NaN (whose bits are no integer n) must not reach a signed
     * overflow or a shift of a negative value; finite inputs give the same bits */
    const uint32_t n = fn.u - sh.u;
    const float fl = fn.f - shifter;
    const float r = (t - fl * 0.693359375f) - fl * -2.12194440e-4f;
    const float p = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
                       + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f)
                    * (r * r) + r + 1.0f;
    two_n.u = (n + 127u) << 23;
    return p * two_n.f;
}

/* exp(-a) for a >= 0, a clamped to 87 (NaN propagates) */
static inline float crnn_exp_negf(float a)
{
    return crnn_expf(-crnn_selectf(a > 87.0f, 87.0f, a));
}

static inline float crnn_tanhf(float x)
{
    crnn_f32bits xb, ab, res;
    xb.f = x;
    const uint32_t sign = xb.u & 0x80000000u;
    ab.u = xb.u ^ sign;
    const float ax = ab.f;
    /* small arguments */
    const float z = ax * ax;
    const float small =
        ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z
          + 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * ax + ax;
    /* large arguments: (1 - e) / (1 + e), e = exp(-2|x|) <= 0.29 */
    const float e = crnn_exp_negf(2.0f * crnn_selectf(ax > 10.0f, 10.0f, ax));   /* NaN stays NaN */
    const float large = (1.0f - e) / (1.0f + e);
    res.f = crnn_selectf(ax < 0.625f, small, large);
    res.u |= sign;                                     /* tanh is odd: restore the sign */
    return res.f;
}

/* 1 / (1 + exp(-x)), exp taken of the signed argument: for x < 0, exp(-x)
 * is large and the quotient keeps its relative accuracy (a few ulp, as
 * e / (1 + e) with e = exp(x) did, in fewer operations: the LSTM cell, with
 * three sigmoids, got 16% faster).  Below -87 the value is a denormal: 0, as
 * flush-to-zero would make it. */
static inline float crnn_sigmoidf(float x)
{
    const float t = crnn_selectf(x > 87.0f, -87.0f, crnn_selectf(x < -87.0f, 87.0f, -x));
    const float q = 1.0f / (1.0f + crnn_expf(t));
    return crnn_selectf(x < -87.0f, 0.0f, q);          /* NaN stays NaN */
}

/* z[i, j] <- tanh(z[i, j] + b[j]) on rows x H, row stride ld */
#define CRNN_DEF_TANH_BIAS_F32(NAME, T, ATTR)                                      \
    ATTR static void NAME(float *z, long rows, long H, long ld, const float *b)\
    {                                                                        \
        for (long i = 0; i < rows; i++) {                                    \
            float *restrict r = z + i * ld;                                  \
            for (long j = 0; j < H; j++)                                     \
                r[j] = crnn_tanhf(r[j] + b[j]);                              \
        }                                                                    \
    }
CRNN_VERSIONS(CRNN_DEF_TANH_BIAS_F32, crnn_tanh_bias_f32, float)
static void crnn_tanh_bias_f32(float *z, long rows, long H, long ld, const float *b)
{
    CRNN_PICK(crnn_tanh_bias_f32, (z, rows, H, ld, b));
}

/* z[i, j] <- max(z[i, j] + b[j], 0) */
#define CRNN_DEF_RELU_BIAS_F32(NAME, T, ATTR)                                      \
    ATTR static void NAME(float *z, long rows, long H, long ld, const float *b)\
    {                                                                        \
        for (long i = 0; i < rows; i++) {                                    \
            float *restrict r = z + i * ld;                                  \
            for (long j = 0; j < H; j++) {                                   \
                const float v = r[j] + b[j];                                 \
                r[j] = v > 0.0f ? v : 0.0f;                                  \
            }                                                                \
        }                                                                    \
    }
CRNN_VERSIONS(CRNN_DEF_RELU_BIAS_F32, crnn_relu_bias_f32, float)
static void crnn_relu_bias_f32(float *z, long rows, long H, long ld, const float *b)
{
    CRNN_PICK(crnn_relu_bias_f32, (z, rows, H, ld, b));
}

/* g[i, j] <- g[i, j] * (1 - y[i, j]^2): the tanh derivative from the output */
#define CRNN_DEF_TANH_GRAD_F32(NAME, T, ATTR)                                                 \
    ATTR static void NAME(float *g, long ldg, const float *y, long ldy, long rows, long H)\
    {                                                                                   \
        for (long i = 0; i < rows; i++) {                                               \
            float *restrict gr = g + i * ldg;                                           \
            const float *restrict yr = y + i * ldy;                                     \
            for (long j = 0; j < H; j++)                                                \
                gr[j] = gr[j] * (1.0f - yr[j] * yr[j]);                                 \
        }                                                                               \
    }
CRNN_VERSIONS(CRNN_DEF_TANH_GRAD_F32, crnn_tanh_grad_f32, float)
static void crnn_tanh_grad_f32(float *g, long ldg, const float *y, long ldy, long rows, long H)
{
    CRNN_PICK(crnn_tanh_grad_f32, (g, ldg, y, ldy, rows, H));
}

/* g[i, j] <- y[i, j] > 0 ? g[i, j] : 0 */
#define CRNN_DEF_RELU_GRAD_F32(NAME, T, ATTR)                                                 \
    ATTR static void NAME(float *g, long ldg, const float *y, long ldy, long rows, long H)\
    {                                                                                   \
        for (long i = 0; i < rows; i++) {                                               \
            float *restrict gr = g + i * ldg;                                           \
            const float *restrict yr = y + i * ldy;                                     \
            for (long j = 0; j < H; j++)                                                \
                gr[j] = yr[j] > 0.0f ? gr[j] : 0.0f;                                    \
        }                                                                               \
    }
CRNN_VERSIONS(CRNN_DEF_RELU_GRAD_F32, crnn_relu_grad_f32, float)
static void crnn_relu_grad_f32(float *g, long ldg, const float *y, long ldy, long rows, long H)
{
    CRNN_PICK(crnn_relu_grad_f32, (g, ldg, y, ldy, rows, H));
}

/* Softmax cross-entropy of one row of n float32 logits with target class c:
 * returns log(sum_j exp(z_j)) - z_c, and replaces the row by its gradient
 * times ws, ws * (softmax(z) - onehot(c)).  One exp per logit (kept for the
 * gradient), with 16 partial maxima and sums so that the loops vectorize;
 * the log-sum-exp is accumulated in float, as the vector exp is. */
#define CRNN_XENT_LANES 16
#define CRNN_DEF_XENT_ROW_F32(NAME, T, ATTR)                               \
    ATTR static double NAME(float *restrict z, long n, int c, float ws)\
    {                                                                \
        float m[CRNN_XENT_LANES], s[CRNN_XENT_LANES];                \
        const long nb = n - n % CRNN_XENT_LANES;                     \
        const float zc = z[c];                                       \
        float mx = z[0];                                             \
        long j, k;                                                   \
        for (k = 0; k < CRNN_XENT_LANES; k++)                        \
            m[k] = z[0];                                             \
        for (j = 0; j < nb; j += CRNN_XENT_LANES)                    \
            for (k = 0; k < CRNN_XENT_LANES; k++)                    \
                m[k] = z[j + k] > m[k] ? z[j + k] : m[k];            \
        for (k = 0; k < CRNN_XENT_LANES; k++)                        \
            mx = m[k] > mx ? m[k] : mx;                              \
        for (j = nb; j < n; j++)                                     \
            mx = z[j] > mx ? z[j] : mx;                              \
        for (k = 0; k < CRNN_XENT_LANES; k++)                        \
            s[k] = 0.0f;                                             \
        for (j = 0; j < nb; j += CRNN_XENT_LANES)                    \
            for (k = 0; k < CRNN_XENT_LANES; k++) {                  \
                const float e = crnn_exp_negf(mx - z[j + k]);        \
                z[j + k] = e;                                        \
                s[k] += e;                                           \
            }                                                        \
        double total = 0.0;                                          \
        for (k = 0; k < CRNN_XENT_LANES; k++)                        \
            total += s[k];                                           \
        for (j = nb; j < n; j++) {                                   \
            const float e = crnn_exp_negf(mx - z[j]);                \
            z[j] = e;                                                \
            total += e;                                              \
        }                                                            \
        const float scale = (float)(ws / total);                     \
        for (j = 0; j < n; j++)                                      \
            z[j] *= scale;                                           \
        z[c] -= ws;                                                  \
        return (double)mx + log(total) - (double)zc;                 \
    }
CRNN_VERSIONS(CRNN_DEF_XENT_ROW_F32, crnn_xent_row_f32, float)
static double crnn_xent_row_f32(float *restrict z, long n, int c, float ws)
{
    return CRNN_PICK(crnn_xent_row_f32, (z, n, c, ws));
}

/* Test hooks: tanh / sigmoid of a whole array with the vector kernels
 * (FN applied in place). */
#define CRNN_DEF_MAP_F32(NAME, FN, ATTR)     \
    ATTR static void NAME(float *x, long n)  \
    {                                        \
        for (long j = 0; j < n; j++)         \
            x[j] = FN(x[j]);                 \
    }
CRNN_VERSIONS(CRNN_DEF_MAP_F32, crnn_tanh_array_f32, crnn_tanhf)
CRNN_VERSIONS(CRNN_DEF_MAP_F32, crnn_sigmoid_array_f32, crnn_sigmoidf)
static void crnn_tanh_array_f32(float *x, long n)
{
    CRNN_PICK(crnn_tanh_array_f32, (x, n));
}

static void crnn_sigmoid_array_f32(float *x, long n)
{
    CRNN_PICK(crnn_sigmoid_array_f32, (x, n));
}

/* ---- gated cells ---------------------------------------------------------
 * One time step on rows [0, M), hidden units [j0, j1).  Gate g of unit j is
 * column g*H + j.  Z holds the input projections of the step (W_ih x, no
 * bias); R the recurrent projections (W_hh h_{t-1}, no bias); bz the summed
 * biases; the forward pass overwrites Z with what the backward pass needs. */

static inline double crnn_sigmoid(double x)
{
    const double e = exp(-(x < 0 ? -x : x));
    const double q = 1.0 / (1.0 + e);
    return x < 0 ? e * q : q;
}

/* The loop over one row's units is an always-inline function whose gate
 * columns arrive as separate restrict parameters: GCC honours restrict on
 * parameters, not on pointers computed inside a loop, and with the gates
 * at offsets of H (unknown when compiling) it would otherwise need more
 * run-time alias checks than it is willing to emit, and leave the loop
 * scalar. */
#if defined(_MSC_VER) && !defined(__clang__)
#define CRNN_INLINE static __forceinline
#else
#define CRNN_INLINE static inline __attribute__((always_inline))
#endif

/* LSTM (gates i, f, g, o): c = f c_prev + i g, h = o tanh(c); Z <- (i, f, g, o) */
#define CRNN_DEF_LSTM_FWD(NAME, T, TANH, SIGM, ATTR)                                     \
    CRNN_INLINE void NAME##_row(long j0, long j1, T *restrict zi, T *restrict zf,        \
                                T *restrict zg, T *restrict zo, const T *restrict ri,    \
                                const T *restrict rf, const T *restrict rg,              \
                                const T *restrict ro, const T *restrict bi,              \
                                const T *restrict bf, const T *restrict bg,              \
                                const T *restrict bo, const T *restrict cp,              \
                                T *restrict ci, T *restrict hi)                          \
    {                                                                                    \
        /* one loop per gate, then the cell: each loop's iterations are      \
         * independent chains short enough for the core to overlap many      \
         * (one loop doing all five functions per unit was latency-bound) */   \
        for (long j = j0; j < j1; j++)                                                   \
            zi[j] = SIGM(zi[j] + ri[j] + bi[j]);                                         \
        for (long j = j0; j < j1; j++)                                                   \
            zf[j] = SIGM(zf[j] + rf[j] + bf[j]);                                         \
        for (long j = j0; j < j1; j++)                                                   \
            zg[j] = TANH(zg[j] + rg[j] + bg[j]);                                         \
        for (long j = j0; j < j1; j++)                                                   \
            zo[j] = SIGM(zo[j] + ro[j] + bo[j]);                                         \
        for (long j = j0; j < j1; j++) {                                                 \
            const T cn = zf[j] * cp[j] + zi[j] * zg[j];                                  \
            ci[j] = cn;                                                                  \
            hi[j] = zo[j] * TANH(cn);                                                    \
        }                                                                                \
    }                                                                                    \
    ATTR static void NAME(long M, long j0, long j1, long H, T *Z, long ldz, const T *R,   \
                          long ldr, const T *bz, const T *cprev, long ldcp, T *c,        \
                          long ldc, T *h, long ldh)                                      \
    {                                                                                    \
        for (long i = 0; i < M; i++) {                                                   \
            T *z = Z + i * ldz;                                                          \
            const T *r = R + i * ldr;                                                    \
            NAME##_row(j0, j1, z, z + H, z + 2 * H, z + 3 * H, r, r + H, r + 2 * H,      \
                       r + 3 * H, bz, bz + H, bz + 2 * H, bz + 3 * H, cprev + i * ldcp,  \
                       c + i * ldc, h + i * ldh);                                        \
        }                                                                                \
    }

/* LSTM backward: dh = dL/dh_t, dc = dL/dc_t from later steps (updated to
 * dL/dc_{t-1}); dZ <- dL/d(pre-activations), the same for W_ih and W_hh. */
#define CRNN_DEF_LSTM_BWD(NAME, T, TANH, ATTR)                                           \
    CRNN_INLINE void NAME##_row(long j0, long j1, const T *restrict zi,                  \
                                const T *restrict zf, const T *restrict zg,              \
                                const T *restrict zo, const T *restrict ci,              \
                                const T *restrict cp, const T *restrict dhi,             \
                                T *restrict dci, T *restrict di, T *restrict df,         \
                                T *restrict dg, T *restrict dpo)                         \
    {                                                                                    \
        for (long j = j0; j < j1; j++) {                                                 \
            const T ig = zi[j], fg = zf[j], gg = zg[j], og = zo[j];                      \
            const T tc = TANH(ci[j]);                                                    \
            const T dct = dci[j] + dhi[j] * og * (1 - tc * tc);                          \
            di[j] = dct * gg * ig * (1 - ig);                                            \
            df[j] = dct * cp[j] * fg * (1 - fg);                                         \
            dg[j] = dct * ig * (1 - gg * gg);                                            \
            dpo[j] = dhi[j] * tc * og * (1 - og);                                        \
            dci[j] = dct * fg;                                                           \
        }                                                                                \
    }                                                                                    \
    ATTR static void NAME(long M, long j0, long j1, long H, const T *Z, long ldz,        \
                          const T *c, long ldc, const T *cprev, long ldcp, const T *dh,  \
                          long ldh, T *dc, long lddc, T *dZ, long lddz)                  \
    {                                                                                    \
        for (long i = 0; i < M; i++) {                                                   \
            const T *z = Z + i * ldz;                                                    \
            T *d = dZ + i * lddz;                                                        \
            NAME##_row(j0, j1, z, z + H, z + 2 * H, z + 3 * H, c + i * ldc,              \
                       cprev + i * ldcp, dh + i * ldh, dc + i * lddc, d, d + H,          \
                       d + 2 * H, d + 3 * H);                                            \
        }                                                                                \
    }

/* GRU (gates r, z, n; PyTorch's form, b_hn inside the reset product):
 * r = s(.. + R_r), z = s(.. + R_z), n = tanh(Z_n + b_in + r (R_n + b_hn)),
 * h = (1 - z) n + z h_prev.  Z (4H wide) <- (r, z, n, R_n + b_hn).  bz holds
 * (b_ir + b_hr, b_iz + b_hz, b_in). */
#define CRNN_DEF_GRU_FWD(NAME, T, TANH, SIGM, ATTR)                                      \
    CRNN_INLINE void NAME##_row(long j0, long j1, T *restrict zr, T *restrict zz,        \
                                T *restrict zn, T *restrict zh, const T *restrict rr,    \
                                const T *restrict rz, const T *restrict rn,              \
                                const T *restrict br, const T *restrict bzz,             \
                                const T *restrict bn, const T *restrict bh,              \
                                const T *restrict hp, T *restrict hi)                    \
    {                                                                                    \
        /* a loop per gate, as the LSTM's */                                  \
        for (long j = j0; j < j1; j++)                                                   \
            zr[j] = SIGM(zr[j] + rr[j] + br[j]);                                         \
        for (long j = j0; j < j1; j++)                                                   \
            zz[j] = SIGM(zz[j] + rz[j] + bzz[j]);                                        \
        for (long j = j0; j < j1; j++) {                                                 \
            const T hn = rn[j] + bh[j];                                                  \
            const T ng = TANH(zn[j] + bn[j] + zr[j] * hn);                               \
            zn[j] = ng;                                                                  \
            zh[j] = hn;                                                                  \
            hi[j] = (1 - zz[j]) * ng + zz[j] * hp[j];                                    \
        }                                                                                \
    }                                                                                    \
    ATTR static void NAME(long M, long j0, long j1, long H, T *Z, long ldz, const T *R,   \
                          long ldr, const T *bz, const T *bhn, const T *hprev, long ldhp, \
                          T *h, long ldh)                                                \
    {                                                                                    \
        for (long i = 0; i < M; i++) {                                                   \
            T *z = Z + i * ldz;                                                          \
            const T *r = R + i * ldr;                                                    \
            NAME##_row(j0, j1, z, z + H, z + 2 * H, z + 3 * H, r, r + H, r + 2 * H, bz,  \
                       bz + H, bz + 2 * H, bhn, hprev + i * ldhp, h + i * ldh);          \
        }                                                                                \
    }

/* GRU backward: dZ (3H) <- dL/d(W_hh h + b_hh) = (dr, dz, dn * r) pre-activation
 * gradients; dAn <- dL/d(W_in x + b_in) for the n gate (its W_ih gradient
 * differs from W_hh's); dhp <- dh * z, the direct part of dL/dh_{t-1}
 * (written, or added when add_dhp). */
#define CRNN_DEF_GRU_BWD(NAME, T, ATTR)                                                  \
    CRNN_INLINE void NAME##_row(long j0, long j1, const T *restrict zr,                  \
                                const T *restrict zz, const T *restrict zn,              \
                                const T *restrict zh, const T *restrict hp,              \
                                const T *restrict dhi, T *restrict dr, T *restrict dzz,  \
                                T *restrict dn, T *restrict da, T *restrict dp,          \
                                int add_dhp)                                             \
    {                                                                                    \
        for (long j = j0; j < j1; j++) {                                                 \
            const T rg = zr[j], zg = zz[j], ng = zn[j], hn = zh[j];                      \
            const T g = dhi[j];                                                          \
            const T dan = g * (1 - zg) * (1 - ng * ng);                                  \
            dr[j] = dan * hn * rg * (1 - rg);                                            \
            dzz[j] = g * (hp[j] - ng) * zg * (1 - zg);                                   \
            dn[j] = dan * rg;                                                            \
            da[j] = dan;                                                                 \
            dp[j] = add_dhp ? dp[j] + g * zg : g * zg;                                   \
        }                                                                                \
    }                                                                                    \
    /* add_dhp a constant in each loop (the row function is inlined): a select  \
     * on a run-time flag kept the loop scalar at AVX2 */                        \
    ATTR static void NAME(long M, long j0, long j1, long H, const T *Z, long ldz,        \
                          const T *hprev, long ldhp, const T *dh, long ldh, T *dZ,       \
                          long lddz, T *dAn, long ldan, T *dhp, long lddhp, int add_dhp) \
    {                                                                                    \
        for (long i = 0; i < M; i++) {                                                   \
            const T *z = Z + i * ldz;                                                    \
            T *d = dZ + i * lddz;                                                        \
            if (add_dhp)                                                                 \
                NAME##_row(j0, j1, z, z + H, z + 2 * H, z + 3 * H, hprev + i * ldhp,     \
                           dh + i * ldh, d, d + H, d + 2 * H, dAn + i * ldan,            \
                           dhp + i * lddhp, 1);                                          \
            else                                                                         \
                NAME##_row(j0, j1, z, z + H, z + 2 * H, z + 3 * H, hprev + i * ldhp,     \
                           dh + i * ldh, d, d + H, d + 2 * H, dAn + i * ldan,            \
                           dhp + i * lddhp, 0);                                          \
        }                                                                                \
    }

/* float32: a version per SIMD level (crnn_isa.h); float64: libm, one version */
CRNN_VERSIONS(CRNN_DEF_LSTM_FWD, crnn_lstm_fwd_f32, float, crnn_tanhf, crnn_sigmoidf)
CRNN_DEF_LSTM_FWD(crnn_lstm_fwd_f64, double, tanh, crnn_sigmoid, )
CRNN_VERSIONS(CRNN_DEF_LSTM_BWD, crnn_lstm_bwd_f32, float, crnn_tanhf)
CRNN_DEF_LSTM_BWD(crnn_lstm_bwd_f64, double, tanh, )
CRNN_VERSIONS(CRNN_DEF_GRU_FWD, crnn_gru_fwd_f32, float, crnn_tanhf, crnn_sigmoidf)
CRNN_DEF_GRU_FWD(crnn_gru_fwd_f64, double, tanh, crnn_sigmoid, )
CRNN_VERSIONS(CRNN_DEF_GRU_BWD, crnn_gru_bwd_f32, float)
CRNN_DEF_GRU_BWD(crnn_gru_bwd_f64, double, )

static void crnn_lstm_fwd_f32(long M, long j0, long j1, long H, float *Z, long ldz,
                              const float *R, long ldr, const float *bz, const float *cprev,
                              long ldcp, float *c, long ldc, float *h, long ldh)
{
    CRNN_PICK(crnn_lstm_fwd_f32, (M, j0, j1, H, Z, ldz, R, ldr, bz, cprev, ldcp, c, ldc, h, ldh));
}

static void crnn_lstm_bwd_f32(long M, long j0, long j1, long H, const float *Z, long ldz,
                              const float *c, long ldc, const float *cprev, long ldcp,
                              const float *dh, long ldh, float *dc, long lddc, float *dZ,
                              long lddz)
{
    CRNN_PICK(crnn_lstm_bwd_f32,
              (M, j0, j1, H, Z, ldz, c, ldc, cprev, ldcp, dh, ldh, dc, lddc, dZ, lddz));
}

static void crnn_gru_fwd_f32(long M, long j0, long j1, long H, float *Z, long ldz,
                             const float *R, long ldr, const float *bz, const float *bhn,
                             const float *hprev, long ldhp, float *h, long ldh)
{
    CRNN_PICK(crnn_gru_fwd_f32, (M, j0, j1, H, Z, ldz, R, ldr, bz, bhn, hprev, ldhp, h, ldh));
}

static void crnn_gru_bwd_f32(long M, long j0, long j1, long H, const float *Z, long ldz,
                             const float *hprev, long ldhp, const float *dh, long ldh,
                             float *dZ, long lddz, float *dAn, long ldan, float *dhp,
                             long lddhp, int add_dhp)
{
    CRNN_PICK(crnn_gru_bwd_f32, (M, j0, j1, H, Z, ldz, hprev, ldhp, dh, ldh, dZ, lddz, dAn,
                                 ldan, dhp, lddhp, add_dhp));
}

#endif
