# Row-major BLAS helpers over scipy.linalg.cython_blas (fused float/double).
#
# BLAS is column-major; a row-major matrix is the column-major transpose, so a
# row-major product C = op(A) op(B) is computed as the column-major product
# C^T = op(B)^T op(A)^T: swap the operands, keep the transpose flags.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* A, int lda,
                      const floating* B, int ldb,
                      floating beta, floating* C, int ldc) noexcept nogil:
    """C (m x n, row-major, ld ldc) = alpha op(A) op(B) + beta C."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int i, j
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        # BLAS rejects a leading dimension of 0; an empty sum only scales C.
        for i in range(m):
            for j in range(n):
                C[i * ldc + j] = 0 if beta == 0 else beta * C[i * ldc + j]
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> B, &ldb, <float*> A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> B, &ldb, <double*> A, &lda,
              &beta, C, &ldc)
