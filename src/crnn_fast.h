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
 * several times (function multi-versioning) for baseline x86-64, AVX2+FMA
 * and AVX-512, and the best version is picked when the module loads, so a
 * portable wheel still runs wide SIMD code.  The float64 versions of the cell
 * kernels use libm (full double precision).
 */
#ifndef CRNN_FAST_H
#define CRNN_FAST_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && !defined(CRNN_NO_CLONES)
#define CRNN_CLONES __attribute__((target_clones("default", "arch=haswell", "arch=x86-64-v4")))
#else
#define CRNN_CLONES
#endif

/* exp(-a) for a >= 0 (NaN propagates): Cody-Waite range reduction
 * exp(-a) = 2^n exp(r), |r| <= ln2/2, a degree-6 polynomial for exp(r)
 * (Cephes expf) and 2^n from the exponent bits.  a is clamped to 87, where
 * exp(-a) is still a normal float. */
static inline float crnn_exp_negf(float a)
{
    const float t = -(a > 87.0f ? 87.0f : a);
    const float shifter = 12582912.0f;                 /* 1.5 * 2^23: round to integer */
    float fn = t * 1.44269504088896341f + shifter;
    int32_t nbits, sbits;
    memcpy(&nbits, &fn, sizeof nbits);
    memcpy(&sbits, &shifter, sizeof sbits);
    const int32_t n = nbits - sbits;
    fn -= shifter;
    const float r = (t - fn * 0.693359375f) - fn * -2.12194440e-4f;
    const float p = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
                       + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f)
                    * (r * r) + r + 1.0f;
    const int32_t ebits = (n + 127) << 23;
    float two_n;
    memcpy(&two_n, &ebits, sizeof two_n);
    return p * two_n;
}

static inline float crnn_tanhf(float x)
{
    uint32_t xbits, sign;
    memcpy(&xbits, &x, sizeof xbits);
    sign = xbits & 0x80000000u;
    xbits ^= sign;
    float ax;
    memcpy(&ax, &xbits, sizeof ax);
    /* small arguments */
    const float z = ax * ax;
    const float small =
        ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z
          + 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * ax + ax;
    /* large arguments: (1 - e) / (1 + e), e = exp(-2|x|) <= 0.29 */
    const float e = crnn_exp_negf(2.0f * (ax > 10.0f ? 10.0f : ax));   /* NaN stays NaN */
    const float large = (1.0f - e) / (1.0f + e);
    float res = ax < 0.625f ? small : large;
    uint32_t rbits;
    memcpy(&rbits, &res, sizeof rbits);
    rbits |= sign;                                     /* tanh is odd: restore the sign */
    memcpy(&res, &rbits, sizeof res);
    return res;
}

/* 1 / (1 + exp(-x)), as e / (1 + e) for x < 0 so tiny values keep their
 * relative accuracy. */
static inline float crnn_sigmoidf(float x)
{
    const float e = crnn_exp_negf(x < 0.0f ? -x : x);
    const float q = 1.0f / (1.0f + e);
    return x < 0.0f ? e * q : q;
}

/* z[i, j] <- tanh(z[i, j] + b[j]) on rows x H, row stride ld */
CRNN_CLONES static void crnn_tanh_bias_f32(float *z, long rows, long H, long ld,
                                           const float *b)
{
    for (long i = 0; i < rows; i++) {
        float *restrict r = z + i * ld;
        for (long j = 0; j < H; j++)
            r[j] = crnn_tanhf(r[j] + b[j]);
    }
}

/* z[i, j] <- max(z[i, j] + b[j], 0) */
CRNN_CLONES static void crnn_relu_bias_f32(float *z, long rows, long H, long ld,
                                           const float *b)
{
    for (long i = 0; i < rows; i++) {
        float *restrict r = z + i * ld;
        for (long j = 0; j < H; j++) {
            const float v = r[j] + b[j];
            r[j] = v > 0.0f ? v : 0.0f;
        }
    }
}

/* g[i, j] <- g[i, j] * (1 - y[i, j]^2): the tanh derivative from the output */
CRNN_CLONES static void crnn_tanh_grad_f32(float *g, long ldg, const float *y, long ldy,
                                           long rows, long H)
{
    for (long i = 0; i < rows; i++) {
        float *restrict gr = g + i * ldg;
        const float *restrict yr = y + i * ldy;
        for (long j = 0; j < H; j++)
            gr[j] = gr[j] * (1.0f - yr[j] * yr[j]);
    }
}

/* g[i, j] <- y[i, j] > 0 ? g[i, j] : 0 */
CRNN_CLONES static void crnn_relu_grad_f32(float *g, long ldg, const float *y, long ldy,
                                           long rows, long H)
{
    for (long i = 0; i < rows; i++) {
        float *restrict gr = g + i * ldg;
        const float *restrict yr = y + i * ldy;
        for (long j = 0; j < H; j++)
            gr[j] = yr[j] > 0.0f ? gr[j] : 0.0f;
    }
}

/* Test hooks: tanh / sigmoid of a whole array with the vector kernels. */
CRNN_CLONES static void crnn_tanh_array_f32(float *x, long n)
{
    for (long j = 0; j < n; j++)
        x[j] = crnn_tanhf(x[j]);
}

CRNN_CLONES static void crnn_sigmoid_array_f32(float *x, long n)
{
    for (long j = 0; j < n; j++)
        x[j] = crnn_sigmoidf(x[j]);
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

/* LSTM (gates i, f, g, o): c = f c_prev + i g, h = o tanh(c); Z <- (i, f, g, o) */
#define CRNN_DEF_LSTM_FWD(NAME, T, TANH, SIGM, ATTR)                                     \
    ATTR static void NAME(long M, long j0, long j1, long H, T *Z, long ldz, const T *R,   \
                          long ldr, const T *bz, const T *cprev, long ldcp, T *c,        \
                          long ldc, T *h, long ldh)                                      \
    {                                                                                    \
        for (long i = 0; i < M; i++) {                                                   \
            T *restrict z = Z + i * ldz;                                                 \
            const T *restrict r = R + i * ldr;                                           \
            const T *restrict cp = cprev + i * ldcp;                                     \
            T *restrict ci = c + i * ldc;                                                \
            T *restrict hi = h + i * ldh;                                                \
            for (long j = j0; j < j1; j++) {                                             \
                const T ig = SIGM(z[j] + r[j] + bz[j]);                                  \
                const T fg = SIGM(z[H + j] + r[H + j] + bz[H + j]);                      \
                const T gg = TANH(z[2 * H + j] + r[2 * H + j] + bz[2 * H + j]);          \
                const T og = SIGM(z[3 * H + j] + r[3 * H + j] + bz[3 * H + j]);          \
                const T cn = fg * cp[j] + ig * gg;                                       \
                z[j] = ig;                                                               \
                z[H + j] = fg;                                                           \
                z[2 * H + j] = gg;                                                       \
                z[3 * H + j] = og;                                                       \
                ci[j] = cn;                                                              \
                hi[j] = og * TANH(cn);                                                   \
            }                                                                            \
        }                                                                                \
    }

/* LSTM backward: dh = dL/dh_t, dc = dL/dc_t from later steps (updated to
 * dL/dc_{t-1}); dZ <- dL/d(pre-activations), the same for W_ih and W_hh. */
#define CRNN_DEF_LSTM_BWD(NAME, T, TANH, ATTR)                                           \
    ATTR static void NAME(long M, long j0, long j1, long H, const T *Z, long ldz,        \
                          const T *c, long ldc, const T *cprev, long ldcp, const T *dh,  \
                          long ldh, T *dc, long lddc, T *dZ, long lddz)                  \
    {                                                                                    \
        for (long i = 0; i < M; i++) {                                                   \
            const T *restrict z = Z + i * ldz;                                           \
            const T *restrict ci = c + i * ldc;                                          \
            const T *restrict cp = cprev + i * ldcp;                                     \
            const T *restrict dhi = dh + i * ldh;                                        \
            T *restrict dci = dc + i * lddc;                                             \
            T *restrict d = dZ + i * lddz;                                               \
            for (long j = j0; j < j1; j++) {                                             \
                const T ig = z[j], fg = z[H + j], gg = z[2 * H + j], og = z[3 * H + j];  \
                const T tc = TANH(ci[j]);                                                \
                const T dct = dci[j] + dhi[j] * og * (1 - tc * tc);                      \
                d[j] = dct * gg * ig * (1 - ig);                                         \
                d[H + j] = dct * cp[j] * fg * (1 - fg);                                  \
                d[2 * H + j] = dct * ig * (1 - gg * gg);                                 \
                d[3 * H + j] = dhi[j] * tc * og * (1 - og);                              \
                dci[j] = dct * fg;                                                       \
            }                                                                            \
        }                                                                                \
    }

/* GRU (gates r, z, n; PyTorch's form, b_hn inside the reset product):
 * r = s(.. + R_r), z = s(.. + R_z), n = tanh(Z_n + b_in + r (R_n + b_hn)),
 * h = (1 - z) n + z h_prev.  Z (4H wide) <- (r, z, n, R_n + b_hn).  bz holds
 * (b_ir + b_hr, b_iz + b_hz, b_in). */
#define CRNN_DEF_GRU_FWD(NAME, T, TANH, SIGM, ATTR)                                      \
    ATTR static void NAME(long M, long j0, long j1, long H, T *Z, long ldz, const T *R,   \
                          long ldr, const T *bz, const T *bhn, const T *hprev, long ldhp, \
                          T *h, long ldh)                                                \
    {                                                                                    \
        for (long i = 0; i < M; i++) {                                                   \
            T *restrict z = Z + i * ldz;                                                 \
            const T *restrict r = R + i * ldr;                                           \
            const T *restrict hp = hprev + i * ldhp;                                     \
            T *restrict hi = h + i * ldh;                                                \
            for (long j = j0; j < j1; j++) {                                             \
                const T rg = SIGM(z[j] + r[j] + bz[j]);                                  \
                const T zg = SIGM(z[H + j] + r[H + j] + bz[H + j]);                      \
                const T hn = r[2 * H + j] + bhn[j];                                      \
                const T ng = TANH(z[2 * H + j] + bz[2 * H + j] + rg * hn);               \
                z[j] = rg;                                                               \
                z[H + j] = zg;                                                           \
                z[2 * H + j] = ng;                                                       \
                z[3 * H + j] = hn;                                                       \
                hi[j] = (1 - zg) * ng + zg * hp[j];                                      \
            }                                                                            \
        }                                                                                \
    }

/* GRU backward: dZ (3H) <- dL/d(W_hh h + b_hh) = (dr, dz, dn * r) pre-activation
 * gradients; dAn <- dL/d(W_in x + b_in) for the n gate (its W_ih gradient
 * differs from W_hh's); dhp <- dh * z, the direct part of dL/dh_{t-1}
 * (written, or added when add_dhp). */
#define CRNN_DEF_GRU_BWD(NAME, T, ATTR)                                                  \
    ATTR static void NAME(long M, long j0, long j1, long H, const T *Z, long ldz,        \
                          const T *hprev, long ldhp, const T *dh, long ldh, T *dZ,       \
                          long lddz, T *dAn, long ldan, T *dhp, long lddhp, int add_dhp) \
    {                                                                                    \
        for (long i = 0; i < M; i++) {                                                   \
            const T *restrict z = Z + i * ldz;                                           \
            const T *restrict hp = hprev + i * ldhp;                                     \
            const T *restrict dhi = dh + i * ldh;                                        \
            T *restrict d = dZ + i * lddz;                                               \
            T *restrict da = dAn + i * ldan;                                             \
            T *restrict dp = dhp + i * lddhp;                                            \
            for (long j = j0; j < j1; j++) {                                             \
                const T rg = z[j], zg = z[H + j], ng = z[2 * H + j], hn = z[3 * H + j];  \
                const T g = dhi[j];                                                      \
                const T dan = g * (1 - zg) * (1 - ng * ng);                              \
                d[j] = dan * hn * rg * (1 - rg);                                         \
                d[H + j] = g * (hp[j] - ng) * zg * (1 - zg);                             \
                d[2 * H + j] = dan * rg;                                                 \
                da[j] = dan;                                                             \
                dp[j] = add_dhp ? dp[j] + g * zg : g * zg;                               \
            }                                                                            \
        }                                                                                \
    }

CRNN_DEF_LSTM_FWD(crnn_lstm_fwd_f32, float, crnn_tanhf, crnn_sigmoidf, CRNN_CLONES)
CRNN_DEF_LSTM_FWD(crnn_lstm_fwd_f64, double, tanh, crnn_sigmoid, )
CRNN_DEF_LSTM_BWD(crnn_lstm_bwd_f32, float, crnn_tanhf, CRNN_CLONES)
CRNN_DEF_LSTM_BWD(crnn_lstm_bwd_f64, double, tanh, )
CRNN_DEF_GRU_FWD(crnn_gru_fwd_f32, float, crnn_tanhf, crnn_sigmoidf, CRNN_CLONES)
CRNN_DEF_GRU_FWD(crnn_gru_fwd_f64, double, tanh, crnn_sigmoid, )
CRNN_DEF_GRU_BWD(crnn_gru_bwd_f32, float, CRNN_CLONES)
CRNN_DEF_GRU_BWD(crnn_gru_bwd_f64, double, )

#endif
