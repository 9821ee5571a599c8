/* The product of a convolution: C (M x F) (+)= A (M x K) B (K x F), where F
 * (the filters) is small and not a multiple of 32.
 *
 * crnn_gemm.h packs B in panels of 128 bytes (32 floats), which suits the
 * recurrent products (every gate is a multiple of the hidden size) but
 * wastes a convolution's lanes: 24 filters fill 75% of a panel, 36 fill 56%
 * of two.  Here B is packed in column chunks of 1-4 vectors (VL lanes: 16
 * floats or 8 doubles with AVX-512, 8 or 4 with AVX2): chunks of NVMAX
 * vectors, then one of the remaining vectors, so 36 filters take 48 lanes
 * with AVX-512 and 40 with AVX2.  Each chunk is a contiguous K x (nv VL)
 * block, k-major, columns past F zero.  The register block of a chunk of nv
 * vectors has as many rows as the accumulators allow (AVX-512: 32
 * registers, AVX2: 16), as in BLIS's micro-kernels.
 *
 * A[r, k] is read at A[r * ars + k * aks]: rows of an im2col tile (aks = 1),
 * or an im2col tile read transposed (ars = 1) for the weight gradient
 * col^T dz.  Each output element is one sequential chain of FMAs over k
 * (CRNN_BLOCK_S), whatever the blocking.
 *
 * The layout of the packed matrix depends on the level (VL): pack and
 * multiply at the same level.  Level 0: no kernel (the caller uses BLAS).
 */
#ifndef CRNN_CGEMM_H
#define CRNN_CGEMM_H

#include "crnn_gemm.h"

/* lanes of a vector at a level, per element size (0 at level 0) */
static long crnn_cgemm_lanes(int level, long elem_bytes)
{
    if (!CRNN_HAVE_SIMD || level <= 0)
        return 0;
    return (level >= 2 ? 64 : 32) / elem_bytes;
}

#define CRNN_CGEMM_NVMAX 4

/* elements of B (K x F) packed at `level` (0 at level 0) */
static long crnn_cpacked_size(int level, long K, long F, long elem_bytes)
{
    const long VL = crnn_cgemm_lanes(level, elem_bytes);
    return VL ? K * ((F + VL - 1) / VL) * VL : 0;
}

#define CRNN_DEFINE_CPACK(NAME, T)                                                      \
    static void NAME(int level, const T *B, long ldb, long K, long F, T *out)          \
    {                                                                                   \
        const long VL = crnn_cgemm_lanes(level, (long)sizeof(T));                       \
        const long nvec = VL ? (F + VL - 1) / VL : 0;                                   \
        long v0 = 0;                                                                    \
        while (v0 < nvec) {                                                             \
            const long nv = nvec - v0 >= CRNN_CGEMM_NVMAX ? CRNN_CGEMM_NVMAX : nvec - v0; \
            const long w = nv * VL, c0 = v0 * VL;                                       \
            const long valid = F - c0 < w ? F - c0 : w;                                 \
            for (long k = 0; k < K; k++) {                                              \
                T *p = out + k * w;                                                     \
                memcpy(p, B + k * ldb + c0, (size_t)valid * sizeof(T));                 \
                for (long j = valid; j < w; j++)                                        \
                    p[j] = (T)0;                                                        \
            }                                                                           \
            out += K * w;                                                               \
            v0 += nv;                                                                   \
        }                                                                               \
    }
CRNN_DEFINE_CPACK(crnn_cpack_f32, float)
CRNN_DEFINE_CPACK(crnn_cpack_f64, double)

#if CRNN_HAVE_SIMD

/* rows from i_ of A at strides (ars, aks) against one chunk of NV vectors */
#define CRNN_CROWS_(MR, T, VT, VL, NV, K, A, ars, aks, bp, C, ldc, nvalid, beta0)          \
    CRNN_BLOCK_S(T, VT, VL, NV, MR, K, (A) + i_ * (ars), ars, aks, bp, (C) + i_ * (ldc),  \
                 ldc, nvalid, beta0)

/* R1..R4: the most rows of a register block for chunks of 1..4 vectors */
#define CRNN_DEFINE_CGEMM(NAME, T, VT, VL, TARGET, R1, R2, R3, R4)                         \
    __attribute__((target(TARGET))) static void NAME(                                    \
        long M, long F, long K, const T *A, long ars, long aks, const T *Bp, T *C,       \
        long ldc, int beta0)                                                             \
    {                                                                                    \
        const long nvec = (F + VL - 1) / VL;                                             \
        long v0 = 0;                                                                     \
        while (v0 < nvec) {                                                              \
            const long nv = nvec - v0 >= CRNN_CGEMM_NVMAX ? CRNN_CGEMM_NVMAX : nvec - v0; \
            const long c0 = v0 * VL;                                                     \
            const int nvalid = (int)(F - c0 < nv * VL ? F - c0 : nv * VL);               \
            T *cp = C + c0;                                                              \
            switch (nv) {                                                                \
            case 1:                                                                      \
                CRNN_ROW_BLOCKS(CRNN_CROWS_, R1, R1, (R1 + 1) / 2, M, T, VT, VL, 1, K, A,  \
                                ars, aks, Bp, cp, ldc, nvalid, beta0);                   \
                break;                                                                   \
            case 2:                                                                      \
                CRNN_ROW_BLOCKS(CRNN_CROWS_, R2, R2, (R2 + 1) / 2, M, T, VT, VL, 2, K, A,  \
                                ars, aks, Bp, cp, ldc, nvalid, beta0);                   \
                break;                                                                   \
            case 3:                                                                      \
                CRNN_ROW_BLOCKS(CRNN_CROWS_, R3, R3, (R3 + 1) / 2, M, T, VT, VL, 3, K, A,  \
                                ars, aks, Bp, cp, ldc, nvalid, beta0);                   \
                break;                                                                   \
            default:                                                                     \
                CRNN_ROW_BLOCKS(CRNN_CROWS_, R4, R4, (R4 + 1) / 2, M, T, VT, VL, 4, K, A,  \
                                ars, aks, Bp, cp, ldc, nvalid, beta0);                   \
                break;                                                                   \
            }                                                                            \
            Bp += K * nv * VL;                                                           \
            v0 += nv;                                                                    \
        }                                                                                \
    }

/* AVX-512 (32 registers): 11 x 1, 11 x 2, 8 x 3, 6 x 4 accumulators */
CRNN_DEFINE_CGEMM(crnn_cgemm_f32_avx512, float, crnn_f32x16, 16, "avx512f,fma", 11, 11, 8, 6)
CRNN_DEFINE_CGEMM(crnn_cgemm_f64_avx512, double, crnn_f64x8, 8, "avx512f,fma", 11, 11, 8, 6)
/* AVX2 (16 registers): 11 x 1, 6 x 2, 4 x 3, 3 x 4 */
CRNN_DEFINE_CGEMM(crnn_cgemm_f32_avx2, float, crnn_f32x8, 8, "avx2,fma", 11, 6, 4, 3)
CRNN_DEFINE_CGEMM(crnn_cgemm_f64_avx2, double, crnn_f64x4, 4, "avx2,fma", 11, 6, 4, 3)

#endif /* CRNN_HAVE_SIMD */

/* C (+)= A B on B packed by crnn_cpack at the same level; returns 0 (doing
 * nothing) at level 0, where the caller uses BLAS. */
#if CRNN_HAVE_SIMD
#define CRNN_CDISPATCH(SUFFIX)                                                         \
    if (level >= 2) {                                                                  \
        crnn_isa_note(CRNN_RAN_PRODUCTS, 2);                                           \
        crnn_cgemm_##SUFFIX##_avx512(M, F, K, A, ars, aks, Bp, C, ldc, beta0);         \
        return 1;                                                                      \
    }                                                                                  \
    if (level == 1) {                                                                  \
        crnn_isa_note(CRNN_RAN_PRODUCTS, 1);                                           \
        crnn_cgemm_##SUFFIX##_avx2(M, F, K, A, ars, aks, Bp, C, ldc, beta0);           \
        return 1;                                                                      \
    }
#else
#define CRNN_CDISPATCH(SUFFIX)
#endif

#define CRNN_DEFINE_CGEMM_DISPATCH(T, SUFFIX)                                          \
    static int crnn_cgemm_##SUFFIX(int level, long M, long F, long K, const T *A,      \
                                   long ars, long aks, const T *Bp, T *C, long ldc,    \
                                   int beta0)                                          \
    {                                                                                  \
        CRNN_CDISPATCH(SUFFIX)                                                         \
        (void)level; (void)M; (void)F; (void)K; (void)A; (void)ars; (void)aks;         \
        (void)Bp; (void)C; (void)ldc; (void)beta0;                                     \
        return 0;                                                                      \
    }
CRNN_DEFINE_CGEMM_DISPATCH(float, f32)
CRNN_DEFINE_CGEMM_DISPATCH(double, f64)

#endif
