# cython: language_level=3
"""The one BLAS shim: row-major GEMM for float32/float64 through scipy.linalg.cython_blas.

Row-major trick: a C-contiguous C = op(A) @ op(B) is, read column-major, Cᵀ = op(B)ᵀ @ op(A)ᵀ, so we call
the Fortran GEMM with the operands swapped and nothing is copied.
"""
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """C(m, n) := alpha * op(A) @ op(B) + beta * C, all row-major; op(X) = Xᵀ when trans_x."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if m <= 0 or n <= 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda, &beta, c, &ldc)
