# Gradient reduction, global-norm clipping, L2 penalty and the Adam / SGD
# updates on the flat parameter vector, in one or two passes over memory.
#
# Sums (the gradient norm, the squared weights) are formed per fixed-size
# chunk and then added in chunk order, so the result does not depend on how
# many threads ran: a given random_state and n_jobs always give the same
# model bit for bit.  The per-chunk loops are C (crnn_optim.h), written to
# vectorize; this file validates, splits the vector into chunks over the
# threads and adds the chunks' sums.
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, pow, isfinite

import numpy as np

from crnn_codes cimport SOLVER_ADAM
from crnn_isa cimport isa_init, isa_ran_levels

# the SIMD cap (CRNN_MAX_SIMD), before any kernel of this module can run
isa_init()

cdef enum:
    CHUNK = 16384


cdef extern from "crnn_optim.h" nogil:
    double crnn_reduce_f32(float* grads, Py_ssize_t S, Py_ssize_t P, Py_ssize_t lo,
                           Py_ssize_t hi)
    double crnn_reduce_f64(double* grads, Py_ssize_t S, Py_ssize_t P, Py_ssize_t lo,
                           Py_ssize_t hi)
    double crnn_wsq_f32(const float* theta, const unsigned char* wmask, Py_ssize_t lo,
                        Py_ssize_t hi)
    double crnn_wsq_f64(const double* theta, const unsigned char* wmask, Py_ssize_t lo,
                        Py_ssize_t hi)
    void crnn_adam_f32(float* theta, const float* g, float* m, float* v,
                       const unsigned char* wmask, Py_ssize_t lo, Py_ssize_t hi,
                       double gscale, double alpha, double beta1, double beta2, double eps,
                       double lr_bc1, double bc2_sqrt)
    void crnn_adam_f64(double* theta, const double* g, double* m, double* v,
                       const unsigned char* wmask, Py_ssize_t lo, Py_ssize_t hi,
                       double gscale, double alpha, double beta1, double beta2, double eps,
                       double lr_bc1, double bc2_sqrt)
    void crnn_sgd_f32(float* theta, const float* g, const unsigned char* wmask,
                      Py_ssize_t lo, Py_ssize_t hi, double gscale, double alpha, double lr)
    void crnn_sgd_f64(double* theta, const double* g, const unsigned char* wmask,
                      Py_ssize_t lo, Py_ssize_t hi, double gscale, double alpha, double lr)
    void crnn_momentum_f32(float* theta, const float* g, float* m,
                           const unsigned char* wmask, Py_ssize_t lo, Py_ssize_t hi,
                           double gscale, double alpha, double lr, double momentum,
                           int nesterov, int first)
    void crnn_momentum_f64(double* theta, const double* g, double* m,
                           const unsigned char* wmask, Py_ssize_t lo, Py_ssize_t hi,
                           double gscale, double alpha, double lr, double momentum,
                           int nesterov, int first)


cdef void _reduce_chunk(floating* grads, Py_ssize_t S, Py_ssize_t P, Py_ssize_t lo,
                        Py_ssize_t hi, double* nsq) noexcept nogil:
    """grads[0, j] <- sum_s grads[s, j] (in shard order); nsq <- sum of squares."""
    if floating is float:
        nsq[0] = crnn_reduce_f32(grads, S, P, lo, hi)
    else:
        nsq[0] = crnn_reduce_f64(grads, S, P, lo, hi)


def reduce_grads(floating[:, ::1] grads, int n_threads=1):
    """Sum the shard rows of `grads` into row 0; return the gradient's 2-norm."""
    cdef Py_ssize_t P = grads.shape[1], nch = (P + CHUNK - 1) // CHUNK, c
    cdef double[::1] part = np.zeros(max(nch, 1))
    cdef double total = 0
    for c in prange(nch, nogil=True, schedule='static', num_threads=n_threads,
                    use_threads_if=n_threads > 1 and nch > 1):
        _reduce_chunk(&grads[0, 0], grads.shape[0], P, c * CHUNK, min((c + 1) * CHUNK, P),
                      &part[c])
    for c in range(nch):
        total += part[c]
    return sqrt(total)


cdef void _update_chunk(floating* theta, const floating* g, floating* m,
                        floating* v, const unsigned char* wmask,
                        Py_ssize_t lo, Py_ssize_t hi, int solver, double lr,
                        double gscale, double alpha, double beta1, double beta2,
                        double eps, double bc1, double bc2_sqrt, double momentum,
                        bint nesterov, bint first, double* wsq) noexcept nogil:
    # the squared masked weights before the step (only the L2 term reads them)
    wsq[0] = 0
    if alpha != 0:
        if floating is float:
            wsq[0] = crnn_wsq_f32(theta, wmask, lo, hi)
        else:
            wsq[0] = crnn_wsq_f64(theta, wmask, lo, hi)
    if solver == SOLVER_ADAM:
        if floating is float:
            crnn_adam_f32(theta, g, m, v, wmask, lo, hi, gscale, alpha, beta1, beta2, eps,
                          lr / bc1, bc2_sqrt)
        else:
            crnn_adam_f64(theta, g, m, v, wmask, lo, hi, gscale, alpha, beta1, beta2, eps,
                          lr / bc1, bc2_sqrt)
    elif momentum != 0:
        if floating is float:
            crnn_momentum_f32(theta, g, m, wmask, lo, hi, gscale, alpha, lr, momentum,
                              nesterov, first)
        else:
            crnn_momentum_f64(theta, g, m, wmask, lo, hi, gscale, alpha, lr, momentum,
                              nesterov, first)
    else:
        if floating is float:
            crnn_sgd_f32(theta, g, wmask, lo, hi, gscale, alpha, lr)
        else:
            crnn_sgd_f64(theta, g, wmask, lo, hi, gscale, alpha, lr)


def apply_update(floating[::1] theta, floating[:, ::1] grads, floating[::1] m,
                 floating[::1] v, const unsigned char[::1] wmask, int solver,
                 double lr, double alpha, double clip, double beta1, double beta2,
                 double eps, double momentum, bint nesterov, long step, int n_threads):
    """One optimizer step from per-shard gradients.

    Sums the rows of `grads` (shard order), clips the sum to global 2-norm
    `clip` as torch.nn.utils.clip_grad_norm_ does (clip <= 0: off), adds
    alpha * w for the weights flagged in `wmask` (PyTorch's weight_decay on
    the weight matrices), then takes the Adam or SGD step number `step`
    (1-based) exactly as torch.optim does.

    Returns (gradient norm before clipping, sum of squared masked weights
    before the step; 0 when alpha is 0, where nothing reads it).  A
    non-finite gradient leaves every array untouched except `grads` and
    returns (nan or inf, nan).
    """
    cdef Py_ssize_t P = theta.shape[0], nch = (P + CHUNK - 1) // CHUNK, c
    cdef double[::1] part = np.zeros(max(nch, 1))
    cdef double norm, gscale = 1.0, wsq = 0, bc1 = 1, bc2_sqrt = 1
    if grads.shape[1] != P or m.shape[0] != P or v.shape[0] != P or wmask.shape[0] != P:
        raise ValueError("optimizer arrays do not match the parameter vector")
    if step < 1:
        raise ValueError("step counts from 1")
    norm = reduce_grads(grads, n_threads)
    if not isfinite(norm):
        return norm, float("nan")
    if clip > 0:
        gscale = clip / (norm + 1e-6)
        if gscale > 1.0:
            gscale = 1.0
    if solver == SOLVER_ADAM:
        bc1 = 1 - pow(beta1, <double> step)
        bc2_sqrt = sqrt(1 - pow(beta2, <double> step))
    for c in prange(nch, nogil=True, schedule='static', num_threads=n_threads,
                    use_threads_if=n_threads > 1 and nch > 1):
        _update_chunk(&theta[0], &grads[0, 0], &m[0], &v[0], &wmask[0], c * CHUNK, min((c + 1) * CHUNK, P),
                      solver, lr, gscale, alpha, beta1, beta2, eps, bc1, bc2_sqrt,
                      momentum, nesterov, step == 1, &part[c])
    for c in range(nch):
        wsq += part[c]
    return norm, wsq


def isa_ran():
    """The SIMD levels (crnn._isa.LEVELS) this module's kernels have run at
    since it loaded, per family: {"products": packed float products,
    "bf16": bfloat16 products, "vector": element-wise loops}.  For tests."""
    return isa_ran_levels()
