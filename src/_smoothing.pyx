# Exponential smoothing filters for the forecaster's "ets" candidate
# (crnn/_forecasting/ets.py): the additive-error state space recursion with a level, a
# damped slope and m seasonal terms,
#
#     base = l + phi * b,   e_t = x_t - base - s[t % m],
#     l <- base + alpha * e_t,   b <- phi * b + beta * e_t,   s[t % m] += gamma * e_t
#
# run over each series once per parameter set of a grid.  sse_grid gives
# every (series, parameter set) pair's one-step squared error, the series
# shared out over the threads (one work buffer per thread) and the
# parameter sets in the inner loop, which the compiler vectorises: the
# filters of one series are independent.  path runs one filter and keeps
# its states, for the forecasts.  Double precision throughout; a filter
# that diverges gives inf or NaN, which the caller reads as unusable.
from cython.parallel cimport prange
from libc.stdlib cimport malloc, free

import numpy as np

from crnn_omp cimport omp_get_thread_num


cdef void _sse_one(const double* x, Py_ssize_t n, const double* init, const double* P,
                   Py_ssize_t G, Py_ssize_t m, double* buf, double* sse) noexcept nogil:
    """The one-step squared errors of every filter g of the grid P (rows
    alpha, beta, gamma, phi; G columns each) over x[0:n], from the initial
    level, slope and m seasonal terms in init.  buf holds (2 + m) * G."""
    cdef const double* alpha = P
    cdef const double* beta = P + G
    cdef const double* gamma = P + 2 * G
    cdef const double* phi = P + 3 * G
    cdef double* lev = buf
    cdef double* slo = buf + G
    cdef double* sea
    cdef Py_ssize_t g, t, j
    cdef double xt, base, e
    for g in range(G):
        lev[g] = init[0]
        slo[g] = init[1]
        sse[g] = 0.0
    for j in range(m):
        sea = buf + (2 + j) * G
        for g in range(G):
            sea[g] = init[2 + j]
    for t in range(n):
        xt = x[t]
        sea = buf + (2 + t % m) * G
        for g in range(G):
            base = lev[g] + phi[g] * slo[g]
            e = xt - base - sea[g]
            sse[g] += e * e
            lev[g] = base + alpha[g] * e
            slo[g] = phi[g] * slo[g] + beta[g] * e
            sea[g] += gamma[g] * e


def sse_grid(const double[::1] x, const Py_ssize_t[::1] offs, const double[:, ::1] init,
             const double[:, ::1] params, int n_threads=1):
    """sse[i, g]: the one-step squared error of filter g over series i.

    x holds the series one after another, series i being
    x[offs[i]:offs[i + 1]]; init[i] its initial level, slope and m seasonal
    terms (m = init.shape[1] - 2 >= 1; the first term is the first step's);
    params the grid, four rows (alpha, beta, gamma, phi) of G columns."""
    cdef Py_ssize_t S = offs.shape[0] - 1, G = params.shape[1], m = init.shape[1] - 2
    cdef Py_ssize_t i, n = x.shape[0]
    if S < 0 or init.shape[0] != S or params.shape[0] != 4 or m < 1 or G < 1:
        raise ValueError("sse_grid: offs (S + 1,), init (S, 2 + m) with m >= 1 and "
                         "params (4, G) with G >= 1 expected.")
    for i in range(S):
        if not 0 <= offs[i] < offs[i + 1] <= n:
            raise ValueError("sse_grid: offs must be increasing within x (no empty series).")
    out = np.empty((S, G))
    cdef double[:, ::1] o = out
    if S == 0:
        return out
    cdef int nt = max(1, min(n_threads, S))
    cdef Py_ssize_t per = (2 + m) * G
    # one work buffer per thread, indexed by the thread's number
    cdef double* buf = <double*> malloc(nt * per * sizeof(double))
    if buf == NULL:
        raise MemoryError("sse_grid: no memory for the threads' filter states.")
    try:
        for i in prange(S, nogil=True, schedule="dynamic", num_threads=nt,
                        use_threads_if=nt > 1):
            _sse_one(&x[offs[i]], offs[i + 1] - offs[i], &init[i, 0], &params[0, 0],
                     G, m, buf + omp_get_thread_num() * per, &o[i, 0])
    finally:
        free(buf)
    return out


def path(const double[::1] x, const double[::1] init, double alpha, double beta,
         double gamma, double phi):
    """One filter over x: (level, slope, seasonal) after each step, the
    seasonal array holding the term updated at that step (x's phase t % m,
    m = len(init) - 2)."""
    cdef Py_ssize_t n = x.shape[0], m = init.shape[0] - 2, t, j
    if m < 1:
        raise ValueError("path: init must hold a level, a slope and m >= 1 seasonal terms.")
    L = np.empty(n)
    B = np.empty(n)
    Sh = np.empty(n)
    cdef double[::1] lv = L, sl = B, sh = Sh
    cdef double[::1] sea = np.array(init[2:], dtype=np.float64)
    cdef double lev = init[0], slo = init[1], base, e
    with nogil:
        for t in range(n):
            j = t % m
            base = lev + phi * slo
            e = x[t] - base - sea[j]
            lev = base + alpha * e
            slo = phi * slo + beta * e
            sea[j] += gamma * e
            lv[t] = lev
            sl[t] = slo
            sh[t] = sea[j]
    return L, B, Sh

