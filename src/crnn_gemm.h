/* The recurrent product of the time loop, on weights packed once per batch.
 *
 * Every time step multiplies the previous states by the same W_hh
 * (forward: C += A W_hh^T; backward: dh += dz W_hh).  A general BLAS GEMM
 * re-packs W_hh on every call; here W_hh is packed once per batch into
 * panels of PW columns (128 bytes: 32 floats or 16 doubles), k-major, and a
 * register-blocked kernel (MR rows x one panel, FMA on 512- or 256-bit
 * vectors) streams A against it.  On the shapes of the time loop this runs
 * at 110-115 GFLOP/s per Zen 4 core where OpenBLAS's sgemm gets 55-95
 * (benches/, docs/performance.md).
 *
 * Logical product: C[:, g*Hs + u] (+)= sum_k A[:, k] B[k, g*Hs + u] for the
 * gates g < G and the units u in [u0, u1).  Panels are ordered by unit block
 * then gate, so a thread that owns a range of unit blocks reads a contiguous
 * range of panels.  u0 must be a multiple of PW.
 *
 * Each output element is one sequential chain of FMAs over k, so a row's
 * result does not depend on the other rows or on how rows are blocked.
 *
 * Kernels exist for AVX-512 and for AVX2+FMA (x86-64, GCC or Clang); every
 * call names the level to run at (at most crnn_simd_detect(), the CPU's
 * best; tests force lower ones).  Level 0 means no kernel: the caller then
 * uses BLAS.
 */
#ifndef CRNN_GEMM_H
#define CRNN_GEMM_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define CRNN_PW_BYTES 128

#include "crnn_isa.h"        /* CRNN_HAVE_SIMD, the level and its cap */

/* 2: AVX-512, 1: AVX2 + FMA, 0: none: crnn_isa_level() (the CPU's best,
 * capped by CRNN_MAX_SIMD) without the bfloat16 level.  No other state: the
 * caller keeps the level it runs at (crnn._kernels.Config) and passes it to
 * every call. */
static int crnn_simd_detect(void)
{
    const int level = crnn_isa_level();
    return level > CRNN_ISA_AVX512 ? CRNN_ISA_AVX512 : level;
}

/* ---- packing ------------------------------------------------------------
 * B[k, g*Hs + u] = trans ? W[(g*Hs + u) * ldw + k] : W[k * ldw + g*Hs + u],
 * for k < K, g < G, u < units; panels (unit block ub, gate g) of PW columns,
 * columns past `units` zero.  `blocks` = [b0, b1) selects the unit blocks
 * packed (so threads can share the work). */
#define CRNN_DEFINE_PACK(NAME, T)                                                    \
    static void NAME(const T *W, long ldw, int trans, long K, long G, long Hs,      \
                     long units, long b0, long b1, T *out)                          \
    {                                                                               \
        const long PW = CRNN_PW_BYTES / (long)sizeof(T);                            \
        /* reads in W's own order: a row of W at a time (each element is     \
         * read once either way; this keeps the reads sequential) */        \
        if (!trans) {                                                               \
            for (long k = 0; k < K; k++)                                            \
                for (long ub = b0; ub < b1; ub++)                                   \
                    for (long g = 0; g < G; g++) {                                  \
                        T *p = out + (ub * G + g) * K * PW + k * PW;                \
                        const T *w = W + k * ldw + g * Hs + ub * PW;                \
                        const long nv = units - ub * PW < PW ? units - ub * PW : PW; \
                        if (nv == PW) {                                             \
                            /* a fixed size: vector moves (a variable-length    \
                             * copy became rep movsq, 8.7% of a GRU training    \
                             * step's time) */                                  \
                            memcpy(p, w, (size_t)CRNN_PW_BYTES);                    \
                            continue;                                               \
                        }                                                           \
                        for (long j = 0; j < nv; j++)                               \
                            p[j] = w[j];                                            \
                        for (long j = nv; j < PW; j++)                              \
                            p[j] = (T)0;                                            \
                    }                                                               \
            return;                                                                 \
        }                                                                           \
        for (long ub = b0; ub < b1; ub++)                                           \
            for (long g = 0; g < G; g++) {                                          \
                T *p = out + (ub * G + g) * K * PW;                                 \
                for (long j = 0; j < PW; j++) {                                     \
                    const long u = ub * PW + j, c = g * Hs + u;                     \
                    if (u >= units)                                                 \
                        for (long k = 0; k < K; k++)                                \
                            p[k * PW + j] = (T)0;                                   \
                    else                                                            \
                        for (long k = 0; k < K; k++)                                \
                            p[k * PW + j] = W[c * ldw + k];                         \
                }                                                                   \
            }                                                                       \
    }
CRNN_DEFINE_PACK(crnn_pack_f32, float)
CRNN_DEFINE_PACK(crnn_pack_f64, double)

/* elements of a packed matrix with K rows and G * ceil(units / PW) panels */
static long crnn_packed_size(long K, long G, long units, long elem_bytes)
{
    const long PW = CRNN_PW_BYTES / elem_bytes;
    return ((units + PW - 1) / PW) * G * K * PW;
}

#if CRNN_HAVE_SIMD

#if defined(__clang__)
#define CRNN_UNROLL _Pragma("unroll")
#else
#define CRNN_UNROLL _Pragma("GCC unroll 16")
#endif

/* One block of MR rows x one panel: NV vectors of VL lanes per row; the
 * accumulators must stay in registers, so every small loop is unrolled. */
#define CRNN_BLOCK(T, VT, VL, NV, MR, K, A, lda, bp, C, ldc, nvalid, beta0)              \
    CRNN_BLOCK_S(T, VT, VL, NV, MR, K, A, lda, 1, bp, C, ldc, nvalid, beta0)

/* The same with A[r, k] at A[r * ars + k * aks] (aks = 1: rows of A; ars = 1:
 * A stored transposed). */
#define CRNN_BLOCK_S(T, VT, VL, NV, MR, K, A, ars, aks, bp, C, ldc, nvalid, beta0)        \
    do {                                                                                 \
        VT acc_[MR][NV];                                                                 \
        CRNN_UNROLL for (int r_ = 0; r_ < MR; r_++)                                      \
            CRNN_UNROLL for (int v_ = 0; v_ < NV; v_++)                                  \
                acc_[r_][v_] = (VT){0};                                                  \
        for (long k_ = 0; k_ < (K); k_++) {                                              \
            VT b_[NV];                                                                   \
            CRNN_UNROLL for (int v_ = 0; v_ < NV; v_++)                                  \
                memcpy(&b_[v_], (bp) + k_ * (NV * VL) + v_ * VL, sizeof(VT));            \
            CRNN_UNROLL for (int r_ = 0; r_ < MR; r_++) {                                \
                const T a_ = (A)[r_ * (ars) + k_ * (aks)];                               \
                CRNN_UNROLL for (int v_ = 0; v_ < NV; v_++)                              \
                    acc_[r_][v_] += a_ * b_[v_];                                         \
            }                                                                            \
        }                                                                                \
        for (int r_ = 0; r_ < MR; r_++) {                                                \
            T *c_ = (C) + r_ * (ldc);                                                    \
            if ((nvalid) == NV * VL) {                                                   \
                for (int v_ = 0; v_ < NV; v_++) {                                        \
                    VT cv_ = acc_[r_][v_];                                               \
                    if (!(beta0)) {                                                      \
                        VT old_;                                                         \
                        memcpy(&old_, c_ + v_ * VL, sizeof(VT));                         \
                        cv_ = old_ + cv_;                                                \
                    }                                                                    \
                    memcpy(c_ + v_ * VL, &cv_, sizeof(VT));                              \
                }                                                                        \
            } else {                                                                     \
                T tmp_[NV * VL];                                                         \
                memcpy(tmp_, acc_[r_], sizeof(tmp_));                                    \
                for (int j_ = 0; j_ < (nvalid); j_++)                                    \
                    c_[j_] = (beta0) ? tmp_[j_] : c_[j_] + tmp_[j_];                     \
            }                                                                            \
        }                                                                                \
    } while (0)

/* Rows of the next register block, of `rem` rows left: blocks of `pref`
 * rows while at least pref + minr rows are left, then the tail in one block
 * of at most maxr rows or two of at least minr (maxr >= 2 minr - 1), so that
 * no block has fewer than minr rows when M >= minr.  A narrower block has
 * too few accumulators to hide the FMA latency: one row of the float32
 * kernel runs at a quarter of its rate, and a batch of 25 rows in blocks of
 * 8, 8, 8 and 1 lost a tenth of its time to it.  Every row is summed in the
 * same order whatever block it falls in. */
static inline long crnn_next_rows(long rem, long pref, long maxr, long minr)
{
    if (rem <= maxr)
        return rem;
    return rem - pref >= minr ? pref : rem - minr;
}

/* Rows [0, M) against one panel in register blocks (crnn_next_rows(rem, PREF,
 * MAXR, MINR) rows each, MAXR <= 11): BLOCK(MR, ...) does rows [i_, i_ + MR)
 * with the trailing arguments; the sizes above MAXR compile to nothing.
 * Shared by the float kernels below (CRNN_ROWS_) and crnn_bf16.h's. */
#define CRNN_ROW_BLOCKS(BLOCK, PREF, MAXR, MINR, M, ...)                                  \
    for (long i_ = 0; i_ < (M);) {                                                       \
        const long mr_ = crnn_next_rows((M) - i_, PREF, MAXR, MINR);                     \
        switch (mr_) {                                                                   \
        case 11: if (MAXR >= 11) BLOCK(11, __VA_ARGS__); break;                          \
        case 10: if (MAXR >= 10) BLOCK(10, __VA_ARGS__); break;                          \
        case 9: if (MAXR >= 9) BLOCK(9, __VA_ARGS__); break;                             \
        case 8: if (MAXR >= 8) BLOCK(8, __VA_ARGS__); break;                             \
        case 7: if (MAXR >= 7) BLOCK(7, __VA_ARGS__); break;                             \
        case 6: if (MAXR >= 6) BLOCK(6, __VA_ARGS__); break;                             \
        case 5: if (MAXR >= 5) BLOCK(5, __VA_ARGS__); break;                             \
        case 4: if (MAXR >= 4) BLOCK(4, __VA_ARGS__); break;                             \
        case 3: if (MAXR >= 3) BLOCK(3, __VA_ARGS__); break;                             \
        case 2: BLOCK(2, __VA_ARGS__); break;                                            \
        default: BLOCK(1, __VA_ARGS__); break;                                           \
        }                                                                                \
        i_ += mr_;                                                                       \
    }

/* CRNN_BLOCK_S on rows from i_ of A (A[r, k] at A[r * ars + k * aks]) */
#define CRNN_ROWS_(MR, T, VT, VL, NV, K, A, ars, aks, bp, C, ldc, nvalid, beta0)           \
    CRNN_BLOCK_S(T, VT, VL, NV, MR, K, (A) + i_ * (ars), ars, aks, bp, (C) + i_ * (ldc),  \
                 ldc, nvalid, beta0)

/* One row against NP panels at once (NP * NV accumulators): a single row
 * against one panel is a chain of dependent FMAs, latency-bound; NP
 * independent panels fill the pipeline.  Per element the arithmetic is the
 * same sequential chain over k as in CRNN_BLOCK. */
#define CRNN_ROW_PANELS(T, VT, VL, NV, NP, K, a, bp, pstride, c, nvalid, beta0)           \
    do {                                                                                 \
        VT acc_[NP][NV];                                                                 \
        CRNN_UNROLL for (int p_ = 0; p_ < NP; p_++)                                      \
            CRNN_UNROLL for (int v_ = 0; v_ < NV; v_++)                                  \
                acc_[p_][v_] = (VT){0};                                                  \
        for (long k_ = 0; k_ < (K); k_++) {                                              \
            const T a_ = (a)[k_];                                                        \
            CRNN_UNROLL for (int p_ = 0; p_ < NP; p_++)                                  \
                CRNN_UNROLL for (int v_ = 0; v_ < NV; v_++) {                            \
                    VT b_;                                                               \
                    memcpy(&b_, (bp) + p_ * (pstride) + k_ * (NV * VL) + v_ * VL,        \
                           sizeof(VT));                                                  \
                    acc_[p_][v_] += a_ * b_;                                             \
                }                                                                        \
        }                                                                                \
        CRNN_UNROLL for (int p_ = 0; p_ < NP; p_++) {                                    \
            T tmp_[NV * VL];                                                             \
            const int nv_ = (nvalid)[p_];                                                \
            T *cp_ = (c)[p_];                                                            \
            memcpy(tmp_, acc_[p_], sizeof(tmp_));                                        \
            for (int j_ = 0; j_ < nv_; j_++)                                             \
                cp_[j_] = (beta0) ? tmp_[j_] : cp_[j_] + tmp_[j_];                       \
        }                                                                                \
    } while (0)

/* Driver over panels and row blocks (CRNN_ROW_BLOCKS).  A single row (M ==
 * 1, e.g. one stream) takes its panels four at a time. */
#define CRNN_DEFINE_RGEMM(NAME, T, VT, VL, NV, TARGET, MAXR, MINR)                       \
    __attribute__((target(TARGET))) static void NAME(                                  \
        long M, long u0, long u1, long G, long Hs, long K, const T *A, long lda,       \
        const T *Bp, T *C, long ldc, int beta0)                                        \
    {                                                                                  \
        const long PW = NV * VL;                                                       \
        if (M == 1) {                                                                  \
            /* panels in order (ub, g): four at a time, then one by one */             \
            const long q0 = (u0 / PW) * G, q1 = ((u1 + PW - 1) / PW) * G;              \
            long q = q0;                                                               \
            for (; q < q1; ) {                                                         \
                const int np = (int)(q1 - q >= 4 ? 4 : 1);                             \
                int nval[4];                                                           \
                T *cs[4];                                                              \
                for (int p = 0; p < np; p++) {                                         \
                    const long ub = (q + p) / G, g = (q + p) % G, ucol = ub * PW;      \
                    nval[p] = (int)(u1 - ucol < PW ? u1 - ucol : PW);                  \
                    cs[p] = C + g * Hs + ucol;                                         \
                }                                                                      \
                if (np == 4)                                                           \
                    CRNN_ROW_PANELS(T, VT, VL, NV, 4, K, A, Bp + q * K * PW, K * PW,   \
                                    cs, nval, beta0);                                  \
                else                                                                   \
                    CRNN_ROW_PANELS(T, VT, VL, NV, 1, K, A, Bp + q * K * PW, K * PW,   \
                                    cs, nval, beta0);                                  \
                q += np;                                                               \
            }                                                                          \
            return;                                                                    \
        }                                                                              \
        for (long ub = u0 / PW; ub * PW < u1; ub++) {                                  \
            const long ucol = ub * PW;                                                 \
            const int nvalid = (int)(u1 - ucol < PW ? u1 - ucol : PW);                 \
            for (long g = 0; g < G; g++) {                                             \
                const T *bp = Bp + (ub * G + g) * K * PW;                              \
                T *cp = C + g * Hs + ucol;                                             \
                CRNN_ROW_BLOCKS(CRNN_ROWS_, MAXR, MAXR, MINR, M, T, VT, VL, NV, K, A,  \
                                lda, 1, bp, cp, ldc, nvalid, beta0);                   \
            }                                                                          \
        }                                                                              \
    }

/* C (+)= A^T B on packed B (one gate, N columns): A stored transposed, A[r, k]
 * at At[k * lda + r]; the general product below uses it on copied blocks. */
#define CRNN_DEFINE_TGEMM(NAME, T, VT, VL, NV, TARGET, MAXR, MINR)                       \
    __attribute__((target(TARGET))) static void NAME(                                  \
        long M, long N, long K, const T *At, long lda, const T *Bp, T *C, long ldc,     \
        int beta0)                                                                     \
    {                                                                                  \
        const long PW = NV * VL;                                                       \
        for (long ub = 0; ub * PW < N; ub++) {                                         \
            const long ucol = ub * PW;                                                 \
            const int nvalid = (int)(N - ucol < PW ? N - ucol : PW);                   \
            const T *bp = Bp + ub * K * PW;                                            \
            T *cp = C + ucol;                                                          \
            CRNN_ROW_BLOCKS(CRNN_ROWS_, MAXR, MAXR, MINR, M, T, VT, VL, NV, K, At, 1,  \
                            lda, bp, cp, ldc, nvalid, beta0);                          \
        }                                                                              \
    }

typedef float crnn_f32x16 __attribute__((vector_size(64)));
typedef float crnn_f32x8 __attribute__((vector_size(32)));
typedef double crnn_f64x8 __attribute__((vector_size(64)));
typedef double crnn_f64x4 __attribute__((vector_size(32)));

/* AVX-512: up to 8 rows x 2 vectors = 16 accumulators of 32 registers, at
 * least 4 rows (8 accumulators: the FMA latency times its 2 pipes) */
CRNN_DEFINE_RGEMM(crnn_rgemm_f32_avx512, float, crnn_f32x16, 16, 2, "avx512f,fma", 8, 4)
CRNN_DEFINE_RGEMM(crnn_rgemm_f64_avx512, double, crnn_f64x8, 8, 2, "avx512f,fma", 8, 4)
/* AVX2: up to 3 rows x 4 vectors = 12 accumulators of 16 registers */
CRNN_DEFINE_RGEMM(crnn_rgemm_f32_avx2, float, crnn_f32x8, 8, 4, "avx2,fma", 3, 2)
CRNN_DEFINE_RGEMM(crnn_rgemm_f64_avx2, double, crnn_f64x4, 4, 4, "avx2,fma", 3, 2)
CRNN_DEFINE_TGEMM(crnn_tgemm_f32_avx512, float, crnn_f32x16, 16, 2, "avx512f,fma", 8, 4)
CRNN_DEFINE_TGEMM(crnn_tgemm_f64_avx512, double, crnn_f64x8, 8, 2, "avx512f,fma", 8, 4)
CRNN_DEFINE_TGEMM(crnn_tgemm_f32_avx2, float, crnn_f32x8, 8, 4, "avx2,fma", 3, 2)
CRNN_DEFINE_TGEMM(crnn_tgemm_f64_avx2, double, crnn_f64x4, 4, 4, "avx2,fma", 3, 2)

#endif /* CRNN_HAVE_SIMD */

/* C (+)= A B on packed B at SIMD level `level`; returns 0 (and does
 * nothing) when there is no kernel, so the caller falls back to BLAS. */
#if CRNN_HAVE_SIMD
#define CRNN_DISPATCH(T, SUFFIX)                                                        \
    switch (level) {                                                                    \
    case 2:                                                                             \
        crnn_isa_note(CRNN_RAN_PRODUCTS, 2);                                            \
        crnn_rgemm_##SUFFIX##_avx512(M, u0, u1, G, Hs, K, A, lda, Bp, C, ldc, beta0);   \
        return 1;                                                                       \
    case 1:                                                                             \
        crnn_isa_note(CRNN_RAN_PRODUCTS, 1);                                            \
        crnn_rgemm_##SUFFIX##_avx2(M, u0, u1, G, Hs, K, A, lda, Bp, C, ldc, beta0);     \
        return 1;                                                                       \
    }
#else
#define CRNN_DISPATCH(T, SUFFIX)
#endif

#define CRNN_DEFINE_RGEMM_DISPATCH(T, SUFFIX)                                           \
    static int crnn_rgemm_##SUFFIX(int level, long M, long u0, long u1, long G, long Hs, \
                                   long K, const T *A, long lda, const T *Bp, T *C,     \
                                   long ldc, int beta0)                                 \
    {                                                                                   \
        CRNN_DISPATCH(T, SUFFIX)                                                        \
        (void)level; (void)M; (void)u0; (void)u1; (void)G; (void)Hs; (void)K; (void)A; (void)lda;    \
        (void)Bp; (void)C; (void)ldc; (void)beta0;                                      \
        return 0;                                                                       \
    }
CRNN_DEFINE_RGEMM_DISPATCH(float, f32)
CRNN_DEFINE_RGEMM_DISPATCH(double, f64)

/* ---- the general product ----------------------------------------------
 * Row-major C (M x N, ld ldc) = op(A) op(B) + beta C, beta 0 or 1, on the
 * kernels above: the backward pass's GEMMs (weight gradients, dX, the
 * head's), where they beat the BLAS these wheels ship with (OpenBLAS's
 * sgemm runs AVX2 code on AMD CPUs).  Blocked as a GEMM is: K in chunks of
 * KC (op(B)'s chunk packed once, reused by every row), rows in blocks of MC
 * (their slice of A stays in L2 while the panels stream past); a
 * transposed A's block is copied row by row (no transposition) and read by
 * the transposed-A kernel.  Every output element is summed in the same
 * order whatever M and N are, so a thread's slice of rows or columns gets
 * the same values as the whole.  Returns 0 (doing nothing) at level 0, for
 * another beta or without memory: the caller then uses BLAS. */
#define CRNN_GEMM_KC 512
#define CRNN_GEMM_MC 96
#if CRNN_HAVE_SIMD
#define CRNN_TGEMM_CALL(SUFFIX)                                                         \
    crnn_isa_note(CRNN_RAN_PRODUCTS, level >= 2 ? 2 : 1);                               \
    if (level >= 2)                                                                     \
        crnn_tgemm_##SUFFIX##_avx512(mn, N, kn, Ap, mn, Bp, C + m0 * ldc, ldc, beta0);  \
    else                                                                                \
        crnn_tgemm_##SUFFIX##_avx2(mn, N, kn, Ap, mn, Bp, C + m0 * ldc, ldc, beta0);
#else
#define CRNN_TGEMM_CALL(SUFFIX)
#endif
#define CRNN_DEFINE_GEMM(T, SUFFIX)                                                     \
    static int crnn_gemm_##SUFFIX(int level, int transA, int transB, long M, long N,    \
                                  long K, const T *A, long lda, const T *B, long ldb,   \
                                  T beta, T *C, long ldc)                               \
    {                                                                                   \
        const long PW = CRNN_PW_BYTES / (long)sizeof(T);                                \
        if (!CRNN_HAVE_SIMD || level <= 0 || !(beta == 0 || beta == 1))                 \
            return 0;                                                                   \
        if (level > 2)                                                                  \
            level = 2;                                                                  \
        if (M <= 0 || N <= 0)                                                           \
            return 1;                                                                   \
        if (K <= 0) {                                                                   \
            if (beta == 0)                                                              \
                for (long i = 0; i < M; i++)                                            \
                    memset(C + i * ldc, 0, (size_t)N * sizeof(T));                      \
            return 1;                                                                   \
        }                                                                               \
        if (M == 1 && N > 1)                                                            \
            /* one row (a GEMV): packing op(B) would cost as much as the        \
             * product; C^T = op(B)^T op(A)^T packs the single column instead */ \
            return crnn_gemm_##SUFFIX(level, !transB, 0, N, 1, K, B, ldb, A,            \
                                      transA ? lda : 1, beta, C, 1);                    \
        const long nb = (N + PW - 1) / PW, kc = K < CRNN_GEMM_KC ? K : CRNN_GEMM_KC;    \
        T *Bp = (T *)malloc((size_t)nb * kc * PW * sizeof(T));                          \
        T *Ap = transA ? (T *)malloc((size_t)CRNN_GEMM_MC * kc * sizeof(T)) : NULL;     \
        if (Bp == NULL || (transA && Ap == NULL)) {                                     \
            free(Bp);                                                                   \
            free(Ap);                                                                   \
            return 0;                                                                   \
        }                                                                               \
        for (long k0 = 0; k0 < K; k0 += kc) {                                           \
            const long kn = K - k0 < kc ? K - k0 : kc;                                  \
            const int beta0 = k0 == 0 && beta == 0;                                     \
            crnn_pack_##SUFFIX(transB ? B + k0 : B + k0 * ldb, ldb, transB, kn, 1, N,   \
                               N, 0, nb, Bp);                                           \
            for (long m0 = 0; m0 < M; m0 += CRNN_GEMM_MC) {                             \
                const long mn = M - m0 < CRNN_GEMM_MC ? M - m0 : CRNN_GEMM_MC;          \
                if (!transA) {                                                          \
                    crnn_rgemm_##SUFFIX(level, mn, 0, N, 1, N, kn, A + m0 * lda + k0,   \
                                        lda, Bp, C + m0 * ldc, ldc, beta0);             \
                } else {                                                                \
                    for (long k = 0; k < kn; k++)                                       \
                        memcpy(Ap + k * mn, A + (k0 + k) * lda + m0,                    \
                               (size_t)mn * sizeof(T));                                 \
                    CRNN_TGEMM_CALL(SUFFIX)                                             \
                }                                                                       \
            }                                                                           \
        }                                                                               \
        free(Bp);                                                                       \
        free(Ap);                                                                       \
        return 1;                                                                       \
    }
CRNN_DEFINE_GEMM(float, f32)
CRNN_DEFINE_GEMM(double, f64)

#endif
