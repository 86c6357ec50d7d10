# The after-loop work of backward (included by recurrent.pyx): dW_ih = Σ_t dA_tᵀ x_t, dW_hh = Σ_t dA_tᵀ h_{t-1}
# by rnnfast_wgrad.h where the CPU has AVX-512 or AVX2 + FMA (else, or with KernelOptions.weight_gradients =
# "blas", by BLAS), dW_hh and dW_ih in one pass over dA where they can be, and dx_t = dA_t W_ih by BLAS (unless the time
# loop computed it: KernelOptions.input_gemm), split across threads by output block.

cdef inline Py_ssize_t _wgrad_work_size(int itemsize, bint use_blas) noexcept nogil:
    """Elements of one thread's workspace for rnnfast_wgrad.h; 0 when BLAS does the work (use_blas, or neither
    AVX-512 nor AVX2 + FMA on this CPU)."""
    if use_blas or not rf_wgrad_available():
        return 0
    return <Py_ssize_t> rf_wgrad_work_size(itemsize)


cdef inline void _wgrad(int M, int N, int K, const floating* a, int lda, const floating* b, int ldb,
                        floating* c, int ldc, floating* work) noexcept nogil:
    """c (M, N) += aᵀ b, a (K, M) and b (K, N) row-major: rnnfast_wgrad.h with a workspace, else BLAS."""
    if work == NULL:
        gemm(True, False, M, N, K, <floating> 1, a, lda, b, ldb, <floating> 1, c, ldc)
    else:
        wgrad(M, N, K, a, lda, b, ldb, c, ldc, work)


cdef extern from "rnnfast_wgrad.h" nogil:
    void rf_wgrad2_f(int M, int N1, int N2, int K, const float* A, int lda, const float* B1, int ldb1, float* C1,
                     int ldc1, const float* B2, int ldb2, float* C2, int ldc2, float* work)
    void rf_wgrad2_d(int M, int N1, int N2, int K, const double* A, int lda, const double* B1, int ldb1,
                     double* C1, int ldc1, const double* B2, int ldb2, double* C2, int ldc2, double* work)


cdef inline void _wgrad2(int M, int N1, int N2, int K, const floating* a, int lda, const floating* b1, int ldb1,
                         floating* c1, int ldc1, const floating* b2, int ldb2, floating* c2, int ldc2,
                         floating* work) noexcept nogil:
    """[c1 | c2] (M, N1 + N2) += aᵀ [b1 | b2] by rnnfast_wgrad.h in one pass (a packed once; N1 whole panels)."""
    if floating is float:
        rf_wgrad2_f(M, N1, N2, K, a, lda, b1, ldb1, c1, ldc1, b2, ldb2, c2, ldc2, work)
    else:
        rf_wgrad2_d(M, N1, N2, K, a, lda, b1, ldb1, c1, ldc1, b2, ldb2, c2, ldc2, work)


cdef inline void* _wgrad_workspace(Py_ssize_t threads, Py_ssize_t wsize, size_t itemsize,
                                   void** mem) noexcept nogil:
    """Room for `threads` workspaces of wsize elements from one malloc (*mem, for free), starting on a 64-byte
    cache line, so that the packed blocks' vector loads do not straddle lines (malloc's large blocks start
    16 bytes into one); NULL when malloc fails."""
    mem[0] = malloc(threads * wsize * itemsize + 64)
    return <void*> ((<size_t> mem[0] + 63) & ~(<size_t> 63)) if mem[0] != NULL else NULL


def _wgrad_product(const floating[:, ::1] a, const floating[:, ::1] b, floating[:, ::1] c, int col0,
                   bint use_blas):
    """c (M, N) += a[:, col0:col0 + M]ᵀ b through _wgrad, as the layers call it (for the kernel tests)."""
    cdef int K = <int> a.shape[0], M = <int> c.shape[0], N = <int> c.shape[1]
    cdef Py_ssize_t size = _wgrad_work_size(sizeof(floating), use_blas)
    cdef void* work_mem = NULL
    cdef floating* work = NULL
    if b.shape[0] != K or b.shape[1] != N or col0 < 0 or col0 + M > a.shape[1]:
        raise ValueError("a (K, ≥ col0 + M), b (K, N) and c (M, N) do not fit together")
    if M == 0 or N == 0:
        return
    if size:
        work = <floating*> _wgrad_workspace(1, size, sizeof(floating), &work_mem)
        if work == NULL:
            raise MemoryError()
    with nogil:
        _wgrad(M, N, K, &a[0, 0] + col0 if K else NULL, <int> a.shape[1], &b[0, 0] if K else NULL, N,
               &c[0, 0], N, work)
    free(work_mem)


def _wgrad_pair(const floating[:, ::1] a, const floating[:, ::1] b1, floating[:, ::1] c1,
                const floating[:, ::1] b2, floating[:, ::1] c2):
    """c1 (M, N1) += aᵀ b1 and c2 (M, N2) += aᵀ b2 in one pass of rnnfast_wgrad.h, a (K, M) packed once, as
    backward computes dW_hh and dW_ih (for the kernel tests; N1 whole panels). False, untouched, without
    AVX-512."""
    cdef int K = <int> a.shape[0], M = <int> a.shape[1], N1 = <int> b1.shape[1], N2 = <int> b2.shape[1]
    cdef Py_ssize_t size = _wgrad_work_size(sizeof(floating), False)
    cdef void* work_mem = NULL
    cdef floating* work
    if (b1.shape[0] != K or b2.shape[0] != K or c1.shape[0] != M or c2.shape[0] != M or c1.shape[1] != N1
            or c2.shape[1] != N2 or K == 0 or M == 0 or N2 == 0 or N1 % _panel_width(sizeof(floating))):
        raise ValueError("a (K, M), b1 (K, N1), b2 (K, N2), c1 (M, N1), c2 (M, N2) do not fit (N1 whole panels)")
    if size == 0:
        return False
    work = <floating*> _wgrad_workspace(1, size, sizeof(floating), &work_mem)
    if work == NULL:
        raise MemoryError()
    with nogil:
        _wgrad2(M, N1, N2, K, &a[0, 0], M, &b1[0, 0], N1, &c1[0, 0], N1, &b2[0, 0], N2, &c2[0, 0], N2, work)
    free(work_mem)
    return True


cdef void _weight_gradients(Py_ssize_t T, Py_ssize_t B, Py_ssize_t rows, int I, int H, int GH, int split,
                            Py_ssize_t g0, Py_ssize_t g1, Py_ssize_t r0, Py_ssize_t r1,
                            const floating* da, const floating* da_n, const floating* x,
                            const floating* h0, const floating* out, const floating* h_prev,
                            const floating* w_ih, floating* dx, floating* dw_ih, floating* dw_hh,
                            floating* work, floating* g_iht) noexcept nogil:
    """Gate rows [g0, g1) of dW_ih, dW_hh (accumulated) and rows [r0, r1) of dx (overwritten); work: the
    thread's workspace for rnnfast_wgrad.h, or NULL for BLAS. With g_iht, zeros (I, GH) shared by the
    threads (each writes its own columns), x is sparse and dW_ih goes by its nonzeros (rnnfast_sparse.h):
    G = dW_ihᵀ summed into g_iht's columns [g0, g1), then added into dW_ih.

    The input side reads dA (rows, GH). The recurrent side reads dA for gate rows < split and, for rows
    from split on (GRU's n block, whose recurrent gradient is r ⊙ da_n), da_n (rows, GH − split), against
    h_prev (rows, H) when given (packed layout), else against [h_0 .. h_{T-1}] (padded: rows = T·B)."""
    cdef Py_ssize_t lo, hi, ld
    cdef const floating* src
    cdef int ng = <int> (g1 - g0)
    cdef Py_ssize_t n, k
    cdef Py_ssize_t m1 = g0         # gate rows [g0, m1): dW_hh and dW_ih in one pass over dA (packed once)
    cdef bint joined = T > 1 and h0 + B * H == out     # h_0 stored just before h_1: [h_0 .. h_{T-1}] is one operand
    if h_prev != NULL:
        h0, joined = h_prev, True                       # one operand, beside dA row for row
    if ng > 0 and g_iht == NULL and work != NULL and joined and H % _panel_width(sizeof(floating)) == 0:
        m1 = max(g0, min(g1, <Py_ssize_t> split))
        if m1 > g0:                                     # Σ_t dA_tᵀ [h_{t-1} | x_t]
            _wgrad2(<int> (m1 - g0), H, I, <int> rows, da + g0, GH, h0, H, dw_hh + g0 * H, H, x, I,
                    dw_ih + g0 * I, I, work)
    if ng > 0:
        if g_iht != NULL:                                                               # Σ_t x_tᵀ dA_t
            if floating is float:
                rf_sparse_wgrad_f(rows, I, ng, x, da + g0, GH, g_iht + g0, GH)
            else:
                rf_sparse_wgrad_d(rows, I, ng, x, da + g0, GH, g_iht + g0, GH)
            for n in range(g0, g1):
                for k in range(I):
                    dw_ih[n * I + k] += g_iht[k * GH + n]
        elif g1 > m1:
            _wgrad(<int> (g1 - m1), I, <int> rows, da + m1, GH, x, I, dw_ih + m1 * I, I, work)   # Σ_t dA_tᵀ x_t
        for part in range(2):                  # recurrent side: rows below split, then from split on
            lo = m1 if part == 0 else max(g0, <Py_ssize_t> split)
            hi = min(g1, <Py_ssize_t> split) if part == 0 else g1
            if hi <= lo:
                continue
            src = (da + lo) if part == 0 else (da_n + (lo - split))
            ld = GH if part == 0 else GH - split
            if joined:
                _wgrad(<int> (hi - lo), H, <int> rows, src, <int> ld, h0, H, dw_hh + lo * H, H,
                       work)                                                    # Σ_t dA_tᵀ h_{t-1}
                continue
            _wgrad(<int> (hi - lo), H, <int> B, src, <int> ld, h0, H, dw_hh + lo * H, H, work)  # dA_0ᵀ h_0
            if T > 1:
                _wgrad(<int> (hi - lo), H, <int> ((T - 1) * B), src + B * ld, <int> ld, out, H,
                       dw_hh + lo * H, H, work)                                 # Σ_{t≥1} dA_tᵀ h_{t-1}
    if r1 > r0:
        gemm(False, False, <int> (r1 - r0), I, GH, <floating> 1, da + r0 * GH, GH, w_ih, I,
             <floating> 0, dx + r0 * I, I)                                      # dx_t = dA_t W_ih


cdef inline Py_ssize_t _distance(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a - b if a >= b else b - a


cdef void _after_loop_bounds(Py_ssize_t n, Py_ssize_t rows, int I, int H, int GH, int split,
                             bint blas_wgrad, double x_width, Py_ssize_t dx_rows, Py_ssize_t* gate_bounds,
                             Py_ssize_t* row_bounds) noexcept nogil:
    """Block k of the after-loop work: gate rows [gate_bounds[k], gate_bounds[k+1]) of the weight
    gradients and rows [row_bounds[k], row_bounds[k+1]) of dx, k < n.

    The gate rows are split evenly, except that when BLAS computes the weight gradients and there is a split
    (GRU's n block) on a multiple of _BLAS_ROWS, the nearest inner bound moves onto it, so that no block runs two recurrent GEMMs (each
    packing h again) where one would do. rnnfast_wgrad.h packs h in blocks anyway, and loses more to the
    bigger share of C that the moved bound gives one thread (benchmarks/README.md, weight gradients). The dx
    rows then even out the work: a block with more gate rows gets fewer dx rows. x_width is what one row of x
    costs dW_ih per gate row: I, or its nonzeros per row when x is sparse. dx_rows: rows (or 0 when no dx is
    wanted: every block's dx rows are then empty)."""
    cdef Py_ssize_t k, best = 0
    cdef double per_gate = <double> rows * (x_width + H)  # dW_ih and dW_hh work of one gate row
    cdef double per_row = <double> GH * I                 # dx work of one row
    cdef double target, total = 0, acc = 0
    for k in range(n + 1):
        gate_bounds[k] = _blas_bound(GH, n, k) if blas_wgrad else _bound(GH, n, k)
    if split < GH and n > 1 and blas_wgrad and split % _BLAS_ROWS == 0:   # (else dW_ih's sums would move)
        for k in range(1, n):                             # the inner bound nearest to split
            if best == 0 or _distance(gate_bounds[k], split) < _distance(gate_bounds[best], split):
                best = k
        gate_bounds[best] = split
    target = (GH * per_gate + dx_rows * per_row) / n
    for k in range(n):
        total += max(0.0, target - (gate_bounds[k + 1] - gate_bounds[k]) * per_gate)
    row_bounds[0] = 0
    for k in range(n):
        acc += max(0.0, target - (gate_bounds[k + 1] - gate_bounds[k]) * per_gate)
        row_bounds[k + 1] = dx_rows if k == n - 1 or total <= 0 else min(dx_rows, (<Py_ssize_t> (
            dx_rows * acc / total / _BLAS_ROWS + 0.5)) * _BLAS_ROWS)        # dx's BLAS row blocks: _blas_bound
