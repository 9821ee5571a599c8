/* Vectorizable element-wise kernels for crnn (float32).
 *
 * libm's tanhf is a scalar call of tens of cycles; the recurrent layers
 * evaluate it B*T*H times per pass, which made it the largest single cost of
 * a forward pass.  crnn_tanhf below is branch-free arithmetic that GCC turns
 * into SIMD code (4, 8 or 16 lanes), accurate to a few ulp:
 *
 *   |x| <  0.625: tanh x = x + x^3 P(x^2), a degree-4 minimax polynomial
 *                 (the Cephes tanhf coefficients);
 *   |x| >= 0.625: tanh |x| = 1 - 2 / (exp(2|x|) + 1), with exp by Cody-Waite
 *                 range reduction exp(t) = 2^n exp(r), |r| <= ln2/2, and a
 *                 degree-6 polynomial for exp(r) (Cephes expf), 2^n built
 *                 from the exponent bits.  |x| is clamped to 10, where tanh
 *                 rounds to 1 in float32.
 *
 * NaN propagates and the sign of zero is kept.  The loops are compiled several times (function
 * multi-versioning) for baseline x86-64, AVX2+FMA and AVX-512, and the best
 * version is picked when the module loads, so a portable wheel still runs
 * wide SIMD code.
 */
#ifndef CRNN_FAST_H
#define CRNN_FAST_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && !defined(CRNN_NO_CLONES)
#define CRNN_CLONES __attribute__((target_clones("default", "arch=haswell", "arch=x86-64-v4")))
#else
#define CRNN_CLONES
#endif

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
    /* large arguments: exp(2|x|) */
    const float t = 2.0f * (ax > 10.0f ? 10.0f : ax);   /* NaN stays NaN */
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
    const float large = 1.0f - 2.0f / (p * two_n + 1.0f);
    float res = ax < 0.625f ? small : large;
    uint32_t rbits;
    memcpy(&rbits, &res, sizeof rbits);
    rbits |= sign;                                     /* tanh is odd: restore the sign */
    memcpy(&res, &rbits, sizeof res);
    return res;
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
CRNN_CLONES static void crnn_tanh_grad_f32(float *g, const float *y, long rows, long H,
                                           long ld)
{
    for (long i = 0; i < rows; i++) {
        float *restrict gr = g + i * ld;
        const float *restrict yr = y + i * ld;
        for (long j = 0; j < H; j++)
            gr[j] = gr[j] * (1.0f - yr[j] * yr[j]);
    }
}

/* g[i, j] <- y[i, j] > 0 ? g[i, j] : 0 */
CRNN_CLONES static void crnn_relu_grad_f32(float *g, const float *y, long rows, long H,
                                           long ld)
{
    for (long i = 0; i < rows; i++) {
        float *restrict gr = g + i * ld;
        const float *restrict yr = y + i * ld;
        for (long j = 0; j < H; j++)
            gr[j] = yr[j] > 0.0f ? gr[j] : 0.0f;
    }
}

/* Test hook: tanh of a whole array with the vector kernel. */
CRNN_CLONES static void crnn_tanh_array_f32(float *x, long n)
{
    for (long j = 0; j < n; j++)
        x[j] = crnn_tanhf(x[j]);
}

#endif
