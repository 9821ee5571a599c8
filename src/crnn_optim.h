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
 * AVX2+FMA and AVX-512 (crnn_isa.h's CRNN_VERSIONS), each call running the
 * version of the module's SIMD level.
 * Indices are ptrdiff_t: S * P may pass 2^31 where long has 32 bits.
 */
#ifndef CRNN_OPTIM_H
#define CRNN_OPTIM_H

#include <math.h>
#include <stddef.h>
#include "crnn_fast.h"        /* CRNN_VERSIONS, CRNN_PICK, restrict on MSVC */

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

/* double total = the sum over j in [lo, hi) of TERM(j), in CRNN_ACC
 * interleaved accumulators added in a fixed order (the loop vectorizes; the
 * order depends on neither the vector width nor the threads) */
#define CRNN_ACC_SUM(total, TERM)                                                      \
    double total = 0;                                                                  \
    {                                                                                  \
        double acc_[CRNN_ACC] = {0};                                                   \
        ptrdiff_t j_ = lo;                                                             \
        for (; j_ + CRNN_ACC <= hi; j_ += CRNN_ACC)                                    \
            for (int k_ = 0; k_ < CRNN_ACC; k_++)                                      \
                acc_[k_] += TERM(j_ + k_);                                             \
        for (; j_ < hi; j_++)                                                          \
            acc_[0] += TERM(j_);                                                       \
        for (int k_ = 0; k_ < CRNN_ACC; k_++)                                          \
            total += acc_[k_];                                                         \
    }

#define CRNN_GRAD_SQ(j) ((double)g0[j] * (double)g0[j])
#define CRNN_MASKED_W_SQ(j) (wmask[j] ? (double)theta[j] * (double)theta[j] : 0.0)

/* g[j] <- sum_s g[s * P + j] for j in [lo, hi) (shard order); returns the
 * sum of the squared results. */
#define CRNN_DEF_REDUCE(NAME, T, ATTR)                                                 \
    ATTR static double NAME(T *grads, ptrdiff_t S, ptrdiff_t P, ptrdiff_t lo,           \
                            ptrdiff_t hi)                                              \
    {                                                                                  \
        T *restrict g0 = grads;                                                        \
        for (ptrdiff_t s = 1; s < S; s++) {                                            \
            const T *restrict gs = grads + s * P;                                      \
            for (ptrdiff_t j = lo; j < hi; j++)                                        \
                g0[j] = g0[j] + gs[j];                                                 \
        }                                                                              \
        CRNN_ACC_SUM(total, CRNN_GRAD_SQ)                                              \
        return total;                                                                  \
    }

/* the sum of the squared masked weights */
#define CRNN_DEF_WSQ(NAME, T, ATTR)                                                    \
    ATTR static double NAME(const T *restrict theta, const unsigned char *restrict wmask, \
                            ptrdiff_t lo, ptrdiff_t hi)                                \
    {                                                                                  \
        CRNN_ACC_SUM(total, CRNN_MASKED_W_SQ)                                          \
        return total;                                                                  \
    }

/* the clipped gradient plus the L2 term for masked weights */
#define CRNN_OPT_GRAD(j)                                                               \
    const double w = theta[j];                                                         \
    const double gs = gscale * g[j];                                                   \
    const double gj = crnn_selectd(wmask[j], gs + alpha * w, gs);  /* no branch: AVX2 */

/* The updates, one loop each (no reduction in it: it vectorizes). */
#define CRNN_DEF_OPTIM(SUFFIX, T, ATTR)                                                \
    ATTR static void crnn_adam_##SUFFIX(T *restrict theta, const T *restrict g,        \
                                        T *restrict m, T *restrict v,                  \
                                        const unsigned char *restrict wmask, ptrdiff_t lo, \
                                        ptrdiff_t hi, double gscale, double alpha,     \
                                        double beta1, double beta2, double eps,        \
                                        double lr_bc1, double bc2_sqrt)                \
    {                                                                                  \
        for (ptrdiff_t j = lo; j < hi; j++) {                                          \
            CRNN_OPT_GRAD(j)                                                           \
            const double mj = beta1 * m[j] + (1 - beta1) * gj;                         \
            const double vj = beta2 * v[j] + (1 - beta2) * gj * gj;                    \
            m[j] = mj;                                                                 \
            v[j] = vj;                                                                 \
            theta[j] = w - lr_bc1 * mj / (sqrt(vj) / bc2_sqrt + eps);                  \
        }                                                                              \
    }                                                                                  \
    ATTR static void crnn_sgd_##SUFFIX(T *restrict theta, const T *restrict g,         \
                                       const unsigned char *restrict wmask,             \
                                       ptrdiff_t lo, ptrdiff_t hi, double gscale,       \
                                       double alpha, double lr)                         \
    {                                                                                  \
        for (ptrdiff_t j = lo; j < hi; j++) {                                          \
            CRNN_OPT_GRAD(j)                                                           \
            theta[j] = w - lr * gj;                                                    \
        }                                                                              \
    }                                                                                  \
    /* m <- g (first step) or momentum m + g; Nesterov steps along g + momentum m,     \
     * plain momentum along m */                                                       \
    ATTR static void crnn_momentum_##SUFFIX(T *restrict theta, const T *restrict g,    \
                                            T *restrict m,                             \
                                            const unsigned char *restrict wmask,       \
                                            ptrdiff_t lo, ptrdiff_t hi, double gscale, \
                                            double alpha, double lr, double momentum,  \
                                            int nesterov, int first)                   \
    {                                                                                  \
        for (ptrdiff_t j = lo; j < hi; j++) {                                          \
            CRNN_OPT_GRAD(j)                                                           \
            const double mj = first ? gj : momentum * m[j] + gj;                       \
            m[j] = mj;                                                                 \
            theta[j] = w - lr * (nesterov ? gj + momentum * mj : mj);                  \
        }                                                                              \
    }

CRNN_VERSIONS(CRNN_DEF_REDUCE, crnn_reduce_f32, float)
CRNN_VERSIONS(CRNN_DEF_REDUCE, crnn_reduce_f64, double)
CRNN_VERSIONS(CRNN_DEF_WSQ, crnn_wsq_f32, float)
CRNN_VERSIONS(CRNN_DEF_WSQ, crnn_wsq_f64, double)
/* CRNN_DEF_OPTIM names its three functions from a suffix */
#define CRNN_DEF_OPTIM_V(SUFFIX, T, ATTR) CRNN_DEF_OPTIM(SUFFIX, T, ATTR)
CRNN_VERSIONS(CRNN_DEF_OPTIM_V, f32, float)
CRNN_VERSIONS(CRNN_DEF_OPTIM_V, f64, double)

/* The functions the module calls, for one parameter type: each runs the
 * version of the module's level (CRNN_PICK; the versions above are named
 * crnn_<name>_<suffix>_v<level>). */
#define CRNN_DEF_OPTIM_DISPATCH(SUF, T)                                                 \
    static double crnn_reduce_##SUF(T *grads, ptrdiff_t S, ptrdiff_t P, ptrdiff_t lo,  \
                                    ptrdiff_t hi)                                      \
    {                                                                                  \
        return CRNN_PICK(crnn_reduce_##SUF, (grads, S, P, lo, hi));                    \
    }                                                                                  \
    static double crnn_wsq_##SUF(const T *theta, const unsigned char *wmask,           \
                                 ptrdiff_t lo, ptrdiff_t hi)                           \
    {                                                                                  \
        return CRNN_PICK(crnn_wsq_##SUF, (theta, wmask, lo, hi));                      \
    }                                                                                  \
    static void crnn_adam_##SUF(T *theta, const T *g, T *m, T *v,                      \
                                const unsigned char *wmask, ptrdiff_t lo, ptrdiff_t hi, \
                                double gscale, double alpha, double beta1, double beta2, \
                                double eps, double lr_bc1, double bc2_sqrt)            \
    {                                                                                  \
        CRNN_PICK(crnn_adam_##SUF, (theta, g, m, v, wmask, lo, hi, gscale, alpha, beta1, \
                                    beta2, eps, lr_bc1, bc2_sqrt));                    \
    }                                                                                  \
    static void crnn_sgd_##SUF(T *theta, const T *g, const unsigned char *wmask,       \
                               ptrdiff_t lo, ptrdiff_t hi, double gscale, double alpha, \
                               double lr)                                              \
    {                                                                                  \
        CRNN_PICK(crnn_sgd_##SUF, (theta, g, wmask, lo, hi, gscale, alpha, lr));       \
    }                                                                                  \
    static void crnn_momentum_##SUF(T *theta, const T *g, T *m,                        \
                                    const unsigned char *wmask, ptrdiff_t lo,          \
                                    ptrdiff_t hi, double gscale, double alpha,         \
                                    double lr, double momentum, int nesterov, int first) \
    {                                                                                  \
        CRNN_PICK(crnn_momentum_##SUF, (theta, g, m, wmask, lo, hi, gscale, alpha, lr, \
                                        momentum, nesterov, first));                   \
    }
CRNN_DEF_OPTIM_DISPATCH(f32, float)
CRNN_DEF_OPTIM_DISPATCH(f64, double)

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif
