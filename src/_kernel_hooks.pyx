# Test-only entry points into the kernels: they run one kernel of the
# C headers (crnn_fast.h, crnn_gemm.h, crnn_bf16.h) on arrays a test gives,
# so the tests can check it against numpy at every SIMD level.  Nothing in
# crnn uses this module; it ships in the wheel (the suite runs against an
# installed wheel too) under a private name.  Do not call it from crnn.
#
# It is its own translation unit, as every kernel module: the headers'
# code is compiled here with the same flags as in crnn._kernels, and its
# SIMD state (the CRNN_MAX_SIMD cap, the record of which versions ran,
# isa_ran()) is this module's own.
from cython cimport floating

import numpy as np

from crnn_isa cimport isa_init, isa_ran_levels
from crnn_net cimport (SIMD_BF16, crnn_simd_detect, crnn_bf16_detect, crnn_tanh_array_f32,
                       crnn_sigmoid_array_f32, crnn_gemm_f32, crnn_gemm_f64, crnn_gemm_bf16,
                       crnn_bf16_packed_size, crnn_pack_bf16, crnn_rgemm_bf16)

from crnn._kernels import bf16_unsupported_message

# the SIMD cap (CRNN_MAX_SIMD), before any kernel of this module can run
isa_init()


def fast_tanh_f32(float[::1] x):
    """tanh of x in place with the kernels' float32 vector tanh."""
    if x.shape[0]:
        crnn_tanh_array_f32(&x[0], x.shape[0])


def fast_sigmoid_f32(float[::1] x):
    """Sigmoid of x in place with the kernels' float32 vector version."""
    if x.shape[0]:
        crnn_sigmoid_array_f32(&x[0], x.shape[0])


def packed_gemm(int level, bint trans_a, bint trans_b, const floating[:, ::1] A,
                const floating[:, ::1] B, floating[:, ::1] C, double beta=0.0):
    """C = op(A) op(B) + beta C (beta 0 or 1) through the general product of
    the backward pass at SIMD `level`: crnn_gemm.h's (1 or 2) or, float32
    only, crnn_bf16.h's (crnn._kernels.SIMD_BF16_LEVEL: bfloat16 operands,
    float32 sums)."""
    cdef Py_ssize_t M = A.shape[1] if trans_a else A.shape[0]
    cdef Py_ssize_t K = A.shape[0] if trans_a else A.shape[1]
    cdef Py_ssize_t N = B.shape[0] if trans_b else B.shape[1]
    cdef int ok
    if level == SIMD_BF16:
        if floating is not float or not crnn_bf16_detect():
            raise ValueError(bf16_unsupported_message())
    elif not 1 <= level <= crnn_simd_detect():
        raise ValueError(f"no SIMD level {level} on this CPU")
    if (B.shape[1] if trans_b else B.shape[0]) != K or C.shape[0] != M or C.shape[1] != N:
        raise ValueError("shapes do not match")
    if M == 0 or N == 0:
        return
    cdef const floating* ap = &A[0, 0] if K > 0 else NULL
    cdef const floating* bp = &B[0, 0] if K > 0 else NULL
    with nogil:
        if floating is float:
            if level == SIMD_BF16:
                ok = crnn_gemm_bf16(trans_a, trans_b, M, N, K, ap, A.shape[1], bp, B.shape[1],
                                    <float> beta, &C[0, 0], C.shape[1])
            else:
                ok = crnn_gemm_f32(level, trans_a, trans_b, M, N, K, ap, A.shape[1], bp,
                                   B.shape[1], <float> beta, &C[0, 0], C.shape[1])
        else:
            ok = crnn_gemm_f64(level, trans_a, trans_b, M, N, K, ap, A.shape[1], bp,
                               B.shape[1], beta, &C[0, 0], C.shape[1])
    if not ok:
        raise ValueError("beta must be 0 or 1")


def bf16_rgemm(const float[:, ::1] A, const float[:, ::1] W, float[:, ::1] C, Py_ssize_t G,
               Py_ssize_t u0, Py_ssize_t u1, bint beta0=True):
    """C[:, g*Hs + u] (+)= A W[g*Hs + u, :]^T for u in [u0, u1) (Hs = C's
    columns / G) through crnn_pack_bf16 and crnn_rgemm_bf16, the time loop's
    packed product."""
    cdef Py_ssize_t M = A.shape[0], K = A.shape[1], Hs = C.shape[1] // G, PW = 32
    cdef unsigned int[::1] packed
    if not crnn_bf16_detect():
        raise ValueError(bf16_unsupported_message())
    if W.shape[0] != G * Hs or W.shape[1] != K or C.shape[0] != M or C.shape[1] != G * Hs \
            or not (0 <= u0 <= u1 <= Hs) or u0 % PW or K < 1 or M < 1:
        raise ValueError("shapes do not match")
    packed = np.zeros(crnn_bf16_packed_size(K, G, Hs), dtype=np.uint32)
    with nogil:
        crnn_pack_bf16(&W[0, 0], K, True, K, G, Hs, Hs, 0, (Hs + PW - 1) // PW, &packed[0])
        crnn_rgemm_bf16(M, u0, u1, G, Hs, K, &A[0, 0], K, &packed[0], &C[0, 0], C.shape[1],
                        beta0)


def isa_ran():
    """The SIMD levels this module's kernels have run at since it loaded,
    per family (as crnn._kernels.isa_ran)."""
    return isa_ran_levels()
