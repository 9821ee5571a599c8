/* bfloat16 products with float32 accumulation (AVX512-BF16, vdpbf16ps).
 *
 * With compute_dtype="bfloat16" every matrix product of the recurrent
 * layers and the head rounds both operands to bfloat16 (round to nearest
 * even; zero and subnormal inputs become a signed zero, NaN stays NaN, as
 * the hardware's vcvtneps2bf16 does) and sums the exact products in float32.
 * The weights stay float32 (the master copy the optimizer updates); their
 * bfloat16 copy is the packed matrix, made once per batch as the float32
 * path makes its packed copy.  Element-wise work (gates, cells, losses) stays
 * float32.
 *
 * vdpbf16ps multiplies pairs: lane j of dst += a[2j] b[2j] + a[2j+1] b[2j+1]
 * (bfloat16 halves of 32-bit words).  So the packed B holds, per pair of
 * rows (k, k+1), one 32-bit word (B[k, c], B[k+1, c]) per column c, in
 * panels of 32 columns (two vectors) ordered like crnn_gemm.h's float32
 * panels (unit block, then gate), so a thread owns the same unit blocks in
 * both paths; and A is read as 32-bit words (A[m, k], A[m, k+1]) broadcast
 * to all lanes.  An odd K gets a zero row.  A is converted once per call
 * into words, row-major (a word per pair along each row) or pair-major (a
 * row of words per pair, which is how a transposed operand converts with
 * contiguous loads).
 *
 * Kernels exist only for AVX-512F + AVX512-BF16 (+BW, VL) on x86-64 with GCC
 * or Clang; crnn_bf16_detect() says whether the CPU (and OS) has them, and
 * the caller refuses bfloat16 compute where it does not.
 */
#ifndef CRNN_BF16_H
#define CRNN_BF16_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crnn_gemm.h"

#define CRNN_BF_PW 32          /* columns per panel: as float32 (128 bytes) */

/* 1 when this build has the kernels, the CPU and OS run them and
 * CRNN_MAX_SIMD allows them (crnn_isa.h's level 3) */
static int crnn_bf16_detect(void)
{
    return crnn_isa_level() >= CRNN_ISA_AVX512_BF16;
}

/* elements (float-sized, so the float32 buffers fit it) of a packed matrix
 * of K rows and G * ceil(units / 32) panels: ceil(K / 2) words per column */
static long crnn_bf16_packed_size(long K, long G, long units)
{
    return ((units + CRNN_BF_PW - 1) / CRNN_BF_PW) * G * ((K + 1) / 2) * CRNN_BF_PW;
}

#if CRNN_HAVE_SIMD
#include <immintrin.h>

#define CRNN_BF_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma")))

static inline __mmask16 crnn_bf_mask(long n)
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/* 16 floats (n valid, the rest read as 0) -> 16 bfloat16 in 32-bit lanes */
CRNN_BF_TARGET static inline __m512i crnn_bf_cvt16(const float *p, long n)
{
    const __m512 v = _mm512_maskz_loadu_ps(crnn_bf_mask(n), p);
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(v));
}

/* words of one row: out[i] = (x[2i], x[2i+1]) for i < ceil(K / 2) */
CRNN_BF_TARGET static void crnn_bf_row_words(const float *x, long K, uint32_t *out)
{
    long k = 0;
    for (; k + 32 <= K; k += 32) {
        const __m512bh w = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + k + 16), _mm512_loadu_ps(x + k));
        _mm512_storeu_si512((void *)(out + k / 2), (__m512i)w);
    }
    for (; k < K; k += 16) {
        const long n = K - k < 16 ? K - k : 16;
        const __m256i h = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(crnn_bf_mask(n), x + k));
        /* n valid halves, plus the zero pad of an odd K */
        _mm256_mask_storeu_epi16((uint16_t *)(out + k / 2), crnn_bf_mask(n + (n & 1)), h);
    }
}

/* words of two rows, column by column: out[j] = (x0[j], x1[j]), j < n
 * (x1 NULL: zeros) */
CRNN_BF_TARGET static void crnn_bf_pair_words(const float *x0, const float *x1, long n,
                                               uint32_t *out)
{
    for (long j = 0; j < n; j += 16) {
        const long c = n - j < 16 ? n - j : 16;
        __m512i w = crnn_bf_cvt16(x0 + j, c);
        if (x1 != NULL)
            w = _mm512_or_si512(w, _mm512_slli_epi32(crnn_bf_cvt16(x1 + j, c), 16));
        _mm512_mask_storeu_epi32((void *)(out + j), crnn_bf_mask(c), w);
    }
}

/* op(A) (M x K) as words: transA 0: A[m * lda + k], row-major words
 * (row m at out + m * KP); transA 1: A[k * lda + m], pair-major (pair p at
 * out + p * M).  KP = ceil(K / 2). */
CRNN_BF_TARGET static void crnn_bf_words_a(int transA, long M, long K, const float *A, long lda,
                                            uint32_t *out)
{
    const long KP = (K + 1) / 2;
    if (!transA) {
        for (long m = 0; m < M; m++)
            crnn_bf_row_words(A + m * lda, K, out + m * KP);
    } else {
        for (long p = 0; p < KP; p++)
            crnn_bf_pair_words(A + 2 * p * lda, 2 * p + 1 < K ? A + (2 * p + 1) * lda : NULL, M,
                               out + p * M);
    }
}

/* ---- packing: B[k, g*Hs + u] = trans ? W[(g*Hs + u) * ldw + k] : W[k * ldw + g*Hs + u]
 * for unit blocks [b0, b1), as crnn_pack_f32 but in words of k pairs */
CRNN_BF_TARGET static void crnn_pack_bf16(const float *W, long ldw, int trans, long K, long G,
                                          long Hs, long units, long b0, long b1, uint32_t *out)
{
    const long KP = (K + 1) / 2, PW = CRNN_BF_PW;
    uint32_t tmp[8];
    if (!trans) {
        /* B[k, c] = W[k * ldw + c]: W's rows in order, two at a time */
        for (long q = 0; q < KP; q++)
            for (long ub = b0; ub < b1; ub++)
                for (long g = 0; g < G; g++) {
                    uint32_t *p = out + (ub * G + g) * KP * PW + q * PW;
                    const long c0 = g * Hs + ub * PW;
                    const long nv = units - ub * PW < PW ? units - ub * PW : PW;
                    crnn_bf_pair_words(W + 2 * q * ldw + c0,
                                       2 * q + 1 < K ? W + (2 * q + 1) * ldw + c0 : NULL, nv,
                                       p);
                    memset(p + nv, 0, (size_t)(PW - nv) * sizeof(uint32_t));
                }
        return;
    }
    /* B[k, c] = W[c * ldw + k]: a row of W (a column of B) at a time */
    for (long ub = b0; ub < b1; ub++)
        for (long g = 0; g < G; g++) {
            uint32_t *p = out + (ub * G + g) * KP * PW;
            const long c0 = g * Hs + ub * PW;
            const long nv = units - ub * PW < PW ? units - ub * PW : PW;
            for (long j = 0; j < PW; j++) {
                if (j >= nv) {
                    for (long q = 0; q < KP; q++)
                        p[q * PW + j] = 0;
                    continue;
                }
                const float *w = W + (c0 + j) * ldw;
                for (long q = 0; q < KP; q += 8) {
                    const long nq = KP - q < 8 ? KP - q : 8;
                    crnn_bf_row_words(w + 2 * q, 2 * q + 2 * nq <= K ? 2 * nq : K - 2 * q, tmp);
                    for (long i = 0; i < nq; i++)
                        p[(q + i) * PW + j] = tmp[i];
                }
            }
        }
}

/* One block of MR rows x one panel (32 columns) over KP pairs: A's word for
 * row r, pair q at a[r * ars + q * aps]. */
#define CRNN_BF_BLOCK(MR, KP, a, ars, aps, bp, C, ldc, nvalid, beta0)                       \
    do {                                                                                   \
        __m512 acc_[MR][2];                                                                \
        CRNN_UNROLL for (int r_ = 0; r_ < MR; r_++) {                                      \
            acc_[r_][0] = _mm512_setzero_ps();                                             \
            acc_[r_][1] = _mm512_setzero_ps();                                             \
        }                                                                                  \
        for (long q_ = 0; q_ < (KP); q_++) {                                               \
            const __m512bh b0_ = (__m512bh)_mm512_loadu_si512((const void *)((bp) + q_ * 32)); \
            const __m512bh b1_ =                                                           \
                (__m512bh)_mm512_loadu_si512((const void *)((bp) + q_ * 32 + 16));         \
            CRNN_UNROLL for (int r_ = 0; r_ < MR; r_++) {                                  \
                const __m512bh a_ =                                                        \
                    (__m512bh)_mm512_set1_epi32((int)(a)[r_ * (ars) + q_ * (aps)]);        \
                acc_[r_][0] = _mm512_dpbf16_ps(acc_[r_][0], a_, b0_);                      \
                acc_[r_][1] = _mm512_dpbf16_ps(acc_[r_][1], a_, b1_);                      \
            }                                                                              \
        }                                                                                  \
        const __mmask16 m0_ = crnn_bf_mask(nvalid), m1_ = crnn_bf_mask((nvalid) - 16);     \
        CRNN_UNROLL for (int r_ = 0; r_ < MR; r_++) {                                      \
            float *c_ = (C) + r_ * (ldc);                                                  \
            __m512 v0_ = acc_[r_][0], v1_ = acc_[r_][1];                                   \
            if (!(beta0)) {                                                                \
                v0_ = _mm512_add_ps(_mm512_maskz_loadu_ps(m0_, c_), v0_);                  \
                v1_ = _mm512_add_ps(_mm512_maskz_loadu_ps(m1_, c_ + 16), v1_);             \
            }                                                                              \
            _mm512_mask_storeu_ps(c_, m0_, v0_);                                           \
            _mm512_mask_storeu_ps(c_ + 16, m1_, v1_);                                      \
        }                                                                                  \
    } while (0)

/* CRNN_BF_BLOCK on rows from i_ (CRNN_ROW_BLOCKS) */
#define CRNN_BF_ROWS_(MR, KP, a, ars, aps, bp, C, ldc, nvalid, beta0)                        \
    CRNN_BF_BLOCK(MR, KP, (a) + i_ * (ars), ars, aps, bp, (C) + i_ * (ldc), ldc, nvalid, beta0)

/* C[:, g*Hs + u] (+)= op(A) B for u in [u0, u1) (u0 a multiple of 32), A
 * given as words (see CRNN_BF_BLOCK), B packed by crnn_pack_bf16 */
CRNN_BF_TARGET static void crnn_bf_kernel(long M, long u0, long u1, long G, long Hs, long KP,
                                          const uint32_t *Aw, long ars, long aps,
                                          const uint32_t *Bp, float *C, long ldc, int beta0)
{
    const long PW = CRNN_BF_PW;
    for (long ub = u0 / PW; ub * PW < u1; ub++) {
        const long ucol = ub * PW;
        const long nvalid = u1 - ucol < PW ? u1 - ucol : PW;
        for (long g = 0; g < G; g++) {
            const uint32_t *bp = Bp + (ub * G + g) * KP * PW;
            float *cp = C + g * Hs + ucol;
            /* blocks of 8 rows, the tail in blocks of 6 to 11: vdpbf16ps
             * needs 12 or more accumulators (6 rows) to hide its latency */
            CRNN_ROW_BLOCKS(CRNN_BF_ROWS_, 8, 11, 6, M, KP, Aw, ars, aps, bp, cp, ldc, nvalid,
                            beta0);
        }
    }
}

/* One row against 4 panels at once (a single row against one panel is a
 * latency-bound chain; four fill the pipeline): the streaming case M = 1. */
CRNN_BF_TARGET static void crnn_bf_row(long u0, long u1, long G, long Hs, long KP,
                                       const uint32_t *a, const uint32_t *Bp, float *C,
                                       int beta0)
{
    const long PW = CRNN_BF_PW;
    const long q0 = (u0 / PW) * G, q1 = ((u1 + PW - 1) / PW) * G;
    long q = q0;
    for (; q + 4 <= q1; q += 4) {
        __m512 acc[4][2];
        for (int p = 0; p < 4; p++)
            acc[p][0] = acc[p][1] = _mm512_setzero_ps();
        const uint32_t *bp = Bp + q * KP * PW;
        for (long k = 0; k < KP; k++) {
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[k]);
            CRNN_UNROLL for (int p = 0; p < 4; p++) {
                const uint32_t *b = bp + p * KP * PW + k * PW;
                acc[p][0] = _mm512_dpbf16_ps(acc[p][0], av,
                                             (__m512bh)_mm512_loadu_si512((const void *)b));
                acc[p][1] = _mm512_dpbf16_ps(acc[p][1], av,
                                             (__m512bh)_mm512_loadu_si512((const void *)(b + 16)));
            }
        }
        for (int p = 0; p < 4; p++) {
            const long ub = (q + p) / G, g = (q + p) % G, ucol = ub * PW;
            const long nv = u1 - ucol < PW ? u1 - ucol : PW;
            float *c = C + g * Hs + ucol;
            const __mmask16 m0 = crnn_bf_mask(nv), m1 = crnn_bf_mask(nv - 16);
            __m512 v0 = acc[p][0], v1 = acc[p][1];
            if (!beta0) {
                v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), v0);
                v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), v1);
            }
            _mm512_mask_storeu_ps(c, m0, v0);
            _mm512_mask_storeu_ps(c + 16, m1, v1);
        }
    }
    for (; q < q1; q++) {
        const long ub = q / G, g = q % G;
        const long hi = (ub + 1) * PW < u1 ? (ub + 1) * PW : u1;
        crnn_bf_kernel(1, 0, hi - ub * PW, 1, Hs, KP, a, 0, 1, Bp + q * KP * PW,
                       C + g * Hs + ub * PW, 0, beta0);
    }
}
#endif /* CRNN_HAVE_SIMD */

/* Words of up to this many bytes of A go on the stack, larger ones on the
 * heap. */
#define CRNN_BF_STACK 16384

/* The packed product of the time loop, as crnn_rgemm_f32: C[:, g*Hs + u]
 * (+)= A B for u in [u0, u1), A float32 (M x K, row stride lda), B packed by
 * crnn_pack_bf16.  Returns 0 (doing nothing) without the kernels or memory,
 * so the caller can fall back to float32. */
static int crnn_rgemm_bf16(long M, long u0, long u1, long G, long Hs, long K, const float *A,
                           long lda, const uint32_t *Bp, float *C, long ldc, int beta0)
{
#if CRNN_HAVE_SIMD
    const long KP = (K + 1) / 2;
    crnn_isa_note(CRNN_RAN_BF16, CRNN_ISA_AVX512_BF16);
    uint32_t stackbuf[CRNN_BF_STACK / sizeof(uint32_t)];
    uint32_t *Aw = stackbuf;
    if (M <= 0 || u1 <= u0)
        return 1;
    if ((size_t)M * KP * sizeof(uint32_t) > sizeof(stackbuf)) {
        Aw = (uint32_t *)malloc((size_t)M * KP * sizeof(uint32_t));
        if (Aw == NULL)
            return 0;
    }
    crnn_bf_words_a(0, M, K, A, lda, Aw);
    if (M == 1)
        crnn_bf_row(u0, u1, G, Hs, KP, Aw, Bp, C, beta0);
    else
        crnn_bf_kernel(M, u0, u1, G, Hs, KP, Aw, KP, 1, Bp, C, ldc, beta0);
    if (Aw != stackbuf)
        free(Aw);
    return 1;
#else
    (void)M; (void)u0; (void)u1; (void)G; (void)Hs; (void)K; (void)A; (void)lda; (void)Bp;
    (void)C; (void)ldc; (void)beta0;
    return 0;
#endif
}

/* General row-major C (M x N, ld ldc) = op(A) op(B) + beta C with beta 0 or
 * 1, op(A) M x K, op(B) K x N, on bfloat16 operands: op(B) is packed and
 * op(A) converted per call, K in chunks of KC so the buffers stay small, rows
 * in blocks of CRNN_GEMM_MC (as crnn_gemm_f32).
 * Returns 0 (doing nothing) without the kernels, for another beta, or
 * without memory: the caller then uses BLAS. */
#define CRNN_BF_KC 2048
static int crnn_gemm_bf16(int transA, int transB, long M, long N, long K, const float *A,
                          long lda, const float *B, long ldb, float beta, float *C, long ldc)
{
#if CRNN_HAVE_SIMD
    if (!(beta == 0.0f || beta == 1.0f))
        return 0;
    crnn_isa_note(CRNN_RAN_BF16, CRNN_ISA_AVX512_BF16);
    if (M <= 0 || N <= 0)
        return 1;
    if (K <= 0) {
        if (beta == 0.0f)
            for (long i = 0; i < M; i++)
                memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return 1;
    }
    if (M == 1 && N > 1)
        /* one row: C^T = op(B)^T op(A)^T (see crnn_gemm_f32) */
        return crnn_gemm_bf16(!transB, 0, N, 1, K, B, ldb, A, transA ? lda : 1, beta, C, 1);
    const long kc = K < CRNN_BF_KC ? K : CRNN_BF_KC, KPc = (kc + 1) / 2;
    const long nb = (N + CRNN_BF_PW - 1) / CRNN_BF_PW;
    const long mc = M < CRNN_GEMM_MC ? M : CRNN_GEMM_MC;
    uint32_t *Aw = (uint32_t *)malloc((size_t)mc * KPc * sizeof(uint32_t));
    uint32_t *Bw = (uint32_t *)malloc((size_t)nb * KPc * CRNN_BF_PW * sizeof(uint32_t));
    if (Aw == NULL || Bw == NULL) {
        free(Aw);
        free(Bw);
        return 0;
    }
    for (long k0 = 0; k0 < K; k0 += kc) {
        const long kn = K - k0 < kc ? K - k0 : kc, KP = (kn + 1) / 2;
        crnn_pack_bf16(transB ? B + k0 : B + k0 * ldb, ldb, transB, kn, 1, N, N, 0, nb, Bw);
        /* rows in blocks whose words (converted per block, compact) stay in
         * L2 while the panels stream past */
        for (long m0 = 0; m0 < M; m0 += mc) {
            const long mn = M - m0 < mc ? M - m0 : mc;
            crnn_bf_words_a(transA, mn, kn, transA ? A + k0 * lda + m0 : A + m0 * lda + k0,
                            lda, Aw);
            crnn_bf_kernel(mn, 0, N, 1, N, KP, Aw, transA ? 1 : KP, transA ? mn : 1, Bw,
                           C + m0 * ldc, ldc, k0 == 0 && beta == 0.0f);
        }
    }
    free(Aw);
    free(Bw);
    return 1;
#else
    (void)transA; (void)transB; (void)M; (void)N; (void)K; (void)A; (void)lda; (void)B;
    (void)ldb; (void)beta; (void)C; (void)ldc;
    return 0;
#endif
}

#endif
