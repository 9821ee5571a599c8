/* The optimizer's loops over the flat parameter vector (crnn._optim).
 *
 * Each loop is written so that GCC vectorizes it: the solver and momentum
 * choices are separate functions (no branch in the loop but selects), the
 * updates hold no reduction, and the sums (squared gradient, squared masked
 * weights) are separate loops into CRNN_ACC interleaved double accumulators,
 * added in a fixed order at the end, so the result still does not depend on
 * the thread count.  Element by
 * element the arithmetic is that of torch.optim, in double precision, with
 * one rounding to the parameter type at the end; scalar Cython loops did the
 * same at 5 ns per parameter (the Adam step of a streaming LSTM's 330,000
 * weights cost more than its forward pass).  Compiled for baseline x86-64,
 * AVX2+FMA and AVX-512, the best picked when the module loads (CRNN_CLONES).
 */
#ifndef CRNN_OPTIM_H
#define CRNN_OPTIM_H

#include <math.h>
#include "crnn_fast.h"        /* CRNN_CLONES, restrict on MSVC */

/* No FMA contraction in these loops: every clone (and the scalar code before
 * them) rounds each product and sum, so a given random_state trains the same
 * model on every CPU.  (The update is memory-bound; FMA would not speed it.) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

#define CRNN_ACC 8

/* g[j] <- sum_s g[s * P + j] for j in [lo, hi) (shard order); returns the
 * sum of the squared results. */
#define CRNN_DEF_REDUCE(NAME, T, ATTR)                                                 \
    ATTR static double NAME(T *grads, long S, long P, long lo, long hi)               \
    {                                                                                 \
        T *restrict g0 = grads;                                                       \
        for (long s = 1; s < S; s++) {                                                \
            const T *restrict gs = grads + s * P;                                     \
            for (long j = lo; j < hi; j++)                                            \
                g0[j] = g0[j] + gs[j];                                                \
        }                                                                             \
        double acc[CRNN_ACC] = {0};                                                   \
        long j = lo;                                                                  \
        for (; j + CRNN_ACC <= hi; j += CRNN_ACC)                                     \
            for (int k = 0; k < CRNN_ACC; k++)                                        \
                acc[k] += (double)g0[j + k] * (double)g0[j + k];                      \
        for (; j < hi; j++)                                                           \
            acc[0] += (double)g0[j] * (double)g0[j];                                  \
        double total = 0;                                                             \
        for (int k = 0; k < CRNN_ACC; k++)                                            \
            total += acc[k];                                                          \
        return total;                                                                 \
    }

/* sum of the squared masked weights (CRNN_ACC interleaved accumulators) */
#define CRNN_DEF_WSQ(NAME, T, ATTR)                                                    \
    ATTR static double NAME(const T *restrict theta, const unsigned char *restrict wmask, \
                            long lo, long hi)                                         \
    {                                                                                 \
        double acc[CRNN_ACC] = {0};                                                   \
        long j = lo;                                                                  \
        for (; j + CRNN_ACC <= hi; j += CRNN_ACC)                                     \
            for (int k = 0; k < CRNN_ACC; k++) {                                      \
                const double w = theta[j + k];                                        \
                acc[k] += wmask[j + k] ? w * w : 0.0;                                 \
            }                                                                         \
        for (; j < hi; j++) {                                                         \
            const double w = theta[j];                                                \
            acc[0] += wmask[j] ? w * w : 0.0;                                         \
        }                                                                             \
        double total = 0;                                                             \
        for (int k = 0; k < CRNN_ACC; k++)                                            \
            total += acc[k];                                                          \
        return total;                                                                 \
    }

/* the clipped gradient plus the L2 term for masked weights */
#define CRNN_OPT_GRAD(j)                                                              \
    const double w = theta[j];                                                        \
    const double gs = gscale * g[j];                                                  \
    const double gj = wmask[j] ? gs + alpha * w : gs;

/* The updates, one loop each (no reduction in it: it vectorizes). */
#define CRNN_DEF_OPTIM(SUFFIX, T, ATTR)                                                \
    ATTR static void crnn_adam_##SUFFIX(T *restrict theta, const T *restrict g,        \
                                        T *restrict m, T *restrict v,                  \
                                        const unsigned char *restrict wmask, long lo,   \
                                        long hi, double gscale, double alpha,           \
                                        double beta1, double beta2, double eps,         \
                                        double lr_bc1, double bc2_sqrt)                 \
    {                                                                                  \
        for (long j = lo; j < hi; j++) {                                               \
            CRNN_OPT_GRAD(j)                                                           \
            const double mj = beta1 * m[j] + (1 - beta1) * gj;                         \
            const double vj = beta2 * v[j] + (1 - beta2) * gj * gj;                    \
            m[j] = mj;                                                                 \
            v[j] = vj;                                                                 \
            theta[j] = w - lr_bc1 * mj / (sqrt(vj) / bc2_sqrt + eps);                  \
        }                                                                              \
    }                                                                                  \
    ATTR static void crnn_sgd_##SUFFIX(T *restrict theta, const T *restrict g,         \
                                       const unsigned char *restrict wmask, long lo,    \
                                       long hi, double gscale, double alpha, double lr) \
    {                                                                                  \
        for (long j = lo; j < hi; j++) {                                               \
            CRNN_OPT_GRAD(j)                                                           \
            theta[j] = w - lr * gj;                                                    \
        }                                                                              \
    }                                                                                  \
    /* m <- g (first step) or momentum m + g; Nesterov steps along g + momentum m,   \
     * plain momentum along m */                                                     \
    ATTR static void crnn_momentum_##SUFFIX(T *restrict theta, const T *restrict g,    \
                                            T *restrict m,                             \
                                            const unsigned char *restrict wmask,       \
                                            long lo, long hi, double gscale,           \
                                            double alpha, double lr, double momentum,  \
                                            int nesterov, int first)                   \
    {                                                                                  \
        for (long j = lo; j < hi; j++) {                                               \
            CRNN_OPT_GRAD(j)                                                           \
            const double mj = first ? gj : momentum * m[j] + gj;                       \
            m[j] = mj;                                                                 \
            theta[j] = w - lr * (nesterov ? gj + momentum * mj : mj);                  \
        }                                                                              \
    }

CRNN_DEF_REDUCE(crnn_reduce_f32, float, CRNN_CLONES)
CRNN_DEF_REDUCE(crnn_reduce_f64, double, CRNN_CLONES)
CRNN_DEF_WSQ(crnn_wsq_f32, float, CRNN_CLONES)
CRNN_DEF_WSQ(crnn_wsq_f64, double, CRNN_CLONES)
CRNN_DEF_OPTIM(f32, float, CRNN_CLONES)
CRNN_DEF_OPTIM(f64, double, CRNN_CLONES)

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif
