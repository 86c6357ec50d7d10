# The products of the time loops (included by recurrent.pyx): the input projection, once before the loop (or,
# with KernelOptions.input_gemm, each step's inside it: _plan.pxi, _input_by_step), and the recurrent product
# of every step, by rnnfast's packed micro-kernel (rnnfast_recgemm.h; W_hh packed once per call) or by BLAS
# (KernelOptions.step_gemm = "blas": no packed buffer); and the calibration that chooses input_gemm="auto".

cdef inline Py_ssize_t _panels(Py_ssize_t N, Py_ssize_t itemsize) noexcept nogil:
    """Number of packed panels that hold N columns."""
    cdef Py_ssize_t nr = _panel_width(itemsize)
    return (N + nr - 1) // nr


cdef inline Py_ssize_t _packed_size(Py_ssize_t itemsize, Py_ssize_t K, Py_ssize_t N) noexcept nogil:
    return K * _panels(N, itemsize) * _panel_width(itemsize)


def packed_size(int itemsize, int K, int N):
    """Length of the buffer that holds a (K, N) recurrent operand packed for the step product."""
    return _packed_size(itemsize, K, N)


cdef extern from "rnnfast_sparse.h" nogil:
    size_t rf_sparse_count_f(size_t n, const float* x, size_t limit)
    size_t rf_sparse_count_d(size_t n, const double* x, size_t limit)
    void rf_sparse_project_f(size_t n, int I, int N, const float* x, const float* wt, float* a, size_t lda)
    void rf_sparse_project_d(size_t n, int I, int N, const double* x, const double* wt, double* a, size_t lda)
    void rf_sparse_wgrad_f(size_t n, int I, int N, const float* x, const float* da, size_t lda, float* g,
                           size_t ldg)
    void rf_sparse_wgrad_d(size_t n, int I, int N, const double* x, const double* da, size_t lda, double* g,
                           size_t ldg)


# Sparse inputs (rnnfast_sparse.h): when at most one value of x in _SPARSE_FRACTION is nonzero (one-hot
# characters: 1 in I) and I is at least _SPARSE_MIN_I (below that the dense product is cheap anyway), the
# input projection and dW_ih go through x's nonzeros only; dx = dA W_ih stays a dense GEMM.
cdef int _SPARSE_FRACTION = 8
cdef int _SPARSE_MIN_I = 16


cdef Py_ssize_t _sparse_nnz(Py_ssize_t rows, int I, const floating* x, Py_ssize_t real_rows=-1) noexcept nogil:
    """The nonzeros of x (rows, I) when the input side should take the sparse path, else -1. With real_rows,
    x is a padded batch of that many real rows (the rest padding): the limit counts those only."""
    cdef size_t n = <size_t> rows * I, nnz
    cdef size_t limit = <size_t> (real_rows if real_rows >= 0 else rows) * I // _SPARSE_FRACTION
    if I < _SPARSE_MIN_I or rows == 0:
        return -1
    if floating is float:
        nnz = rf_sparse_count_f(n, x, limit)
    else:
        nnz = rf_sparse_count_d(n, x, limit)
    return <Py_ssize_t> nnz if nnz <= limit else -1


cdef floating* _transposed(int N, int K, const floating* w, bint* finite) noexcept nogil:
    """A malloc'd (K, N) copy of wᵀ, w (N, K) (the caller frees; NULL when malloc fails); ``finite``: no NaN or
    inf in w. The sparse projection skips x's zeros, so a NaN or inf in W_ih would not reach the rows whose x
    is 0 there (0 · NaN is NaN in the dense product, and in torch): the callers then take the dense one."""
    cdef floating* wt = <floating*> malloc(<size_t> N * K * sizeof(floating))
    cdef Py_ssize_t n, k
    cdef bint bad = False
    cdef floating v
    if wt != NULL:
        for n in range(N):
            for k in range(K):
                v = w[n * K + k]
                wt[k * N + n] = v
                bad |= not isfinite(v)              # an or, not a chain of float adds (as slow as the copy)
    finite[0] = not bad
    return wt


def sparse_input(const floating[:, ::1] x):
    """Whether the kernels take x (rows, I) as sparse (the projection and dW_ih by its nonzeros)."""
    return _sparse_nnz(x.shape[0], <int> x.shape[1], &x[0, 0] if x.shape[0] else NULL) >= 0


cdef void _input_projection(Py_ssize_t r0, Py_ssize_t r1, int I, int GH, const floating* x,
                            const floating* w_ih, const floating* w_iht, floating* a) noexcept nogil:
    """a[r0:r1] (rows, GH) := x[r0:r1] (rows, I) @ W_ihᵀ (the pointwise passes add the bias): by x's nonzeros
    when given w_iht = W_ihᵀ (I, GH) (a sparse x), else by BLAS."""
    if r1 <= r0:
        return
    if w_iht != NULL:
        if floating is float:
            rf_sparse_project_f(r1 - r0, I, GH, x + r0 * I, w_iht, a + r0 * GH, GH)
        else:
            rf_sparse_project_d(r1 - r0, I, GH, x + r0 * I, w_iht, a + r0 * GH, GH)
    else:
        gemm(False, True, <int> (r1 - r0), GH, I, <floating> 1, x + r0 * I, I, w_ih, I, <floating> 0,
             a + r0 * GH, GH)


cdef inline void _step_product(Py_ssize_t m, int K, const floating* a, int lda, const floating* packed, int kp,
                               int koff, const floating* w, bint trans_w, int ncols, int n0, int N,
                               floating* c, int ldc, bint accumulate) noexcept nogil:
    """c (m, N) := a (m, K) @ B[koff:koff+K, n0:n0+N] + (c if accumulate), a's rows lda apart, c's ldc apart;
    B = wᵀ or w (kp, ncols). With a packed copy of B (kp rows a panel), n0 must start a panel."""
    cdef Py_ssize_t nr = _panel_width(sizeof(floating))
    if packed != NULL:
        recgemm(<int> m, N, K, a, lda, packed + <Py_ssize_t> n0 * kp + koff * nr, kp, c, ldc, accumulate)
    elif trans_w:
        gemm(False, True, <int> m, N, K, <floating> 1, a, lda, w + <Py_ssize_t> n0 * kp + koff, kp,
             <floating> (1 if accumulate else 0), c, ldc)
    else:
        gemm(False, False, <int> m, N, K, <floating> 1, a, lda, w + <Py_ssize_t> koff * ncols + n0, ncols,
             <floating> (1 if accumulate else 0), c, ldc)


cdef inline void _gate_products(int G, int H, int K, int j0, int j1, Py_ssize_t m, const floating* h,
                                const floating* packed, const floating* w, floating* c,
                                bint accumulate) noexcept nogil:
    """Units [j0, j1) of every gate block of c (m, G·H) (+)= h (m, K) @ wᵀ, w (G·H, K): the forward recurrent
    product (w = W_hh, K = H), or the inference forward's input projection of a step (w = W_ih, K = I)."""
    cdef int g
    if j0 == 0 and j1 == H:                     # one product over all gates: panels may straddle gate blocks
        _step_product(m, K, h, K, packed, K, 0, w, True, G * H, 0, G * H, c, G * H, accumulate)
        return
    for g in range(G):
        _step_product(m, K, h, K, packed, K, 0, w, True, G * H, g * H + j0, j1 - j0, c + g * H + j0, G * H,
                      accumulate)


from posix.time cimport clock_gettime, timespec, CLOCK_THREAD_CPUTIME_ID


cdef inline double _thread_seconds() noexcept nogil:
    """CPU time of the calling thread (s): what the calibration below compares, blind to other processes."""
    cdef timespec ts
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


def _time_input_gemm(const floating[:, ::1] a,          # IN   (steps·m, K)
                     const floating[:, ::1] w,          # IN   (N, K)
                     floating[:, ::1] c,                # OUT  (steps·m, N)
                     floating[::1] packed,              # WORK (packed_size(K, N))
                     int m,                             # rows of a step
                     int repeats):
    """(packed, blas): the least CPU seconds of the calling thread, over `repeats` alternations, of
    c := a @ wᵀ by the packed micro-kernel a step of m rows at a time, as the time loop runs it with
    KernelOptions.input_gemm = "step" (w packed once beforehand), and by one BLAS GEMM over all rows, as
    "blas" runs it. BLAS must be held to one thread by the caller. What input_gemm = "auto" compares."""
    cdef Py_ssize_t rows = a.shape[0], i
    cdef int K = <int> a.shape[1], N = <int> w.shape[0], r
    cdef double t0, best_packed = 1e300, best_blas = 1e300
    if (w.shape[1] != K or c.shape[0] != rows or c.shape[1] != N or m < 1 or repeats < 1 or rows == 0
            or K == 0 or N == 0 or packed.shape[0] < _packed_size(sizeof(floating), K, N)):
        raise ValueError(f"a ({rows}, {K}), w ({N}, {w.shape[1]}), c ({c.shape[0]}, {c.shape[1]}), packed "
                         f"({packed.shape[0]},), m = {m} and repeats = {repeats} do not fit")
    with nogil:
        pack_by_team(True, K, N, &w[0, 0], &packed[0])
        for r in range(repeats):
            t0 = _thread_seconds()
            i = 0
            while i < rows:
                recgemm(<int> min(<Py_ssize_t> m, rows - i), N, K, &a[i, 0], K, &packed[0], K, &c[i, 0], N, False)
                i += m
            best_packed = min(best_packed, _thread_seconds() - t0)
            t0 = _thread_seconds()
            gemm(False, True, <int> rows, N, K, <floating> 1, &a[0, 0], K, &w[0, 0], K, <floating> 0, &c[0, 0], N)
            best_blas = min(best_blas, _thread_seconds() - t0)
    return best_packed, best_blas
