# The per-timestep Linear's products on rnnfast's own threads (rnnfast.Linear):
#
#     forward:   y  = x Wᵀ             x (N, I), W (O, I), y (N, O)       rows of y split across threads
#     backward:  dW += dyᵀ x           dy (N, O), dW (O, I)               rows of dW split across threads
#                dx  = dy W            dx (N, I)                          rows of dx split across threads
#
# Each thread calls the single-threaded BLAS (rnnfast._threads.blas_single_thread holds it) on its own block,
# so no second thread pool wakes and every sum runs in the order one BLAS call would use for that block.


def linear_forward(const floating[:, ::1] x,          # IN  (N, I)
                   const floating[:, ::1] w,          # IN  (O, I)
                   floating[:, ::1] y,                # OUT (N, O)
                   int num_threads):
    """y := x Wᵀ, the rows of y split across up to ``num_threads`` threads."""
    cdef Py_ssize_t N = x.shape[0], k, lo, hi, nblocks
    cdef int I = <int> x.shape[1], O = <int> w.shape[0]
    if w.shape[1] != I or y.shape[0] != N or y.shape[1] != O:
        raise ValueError(f"x ({N}, {I}), w ({w.shape[0]}, {w.shape[1]}) and y ({y.shape[0]}, {y.shape[1]}) "
                         f"do not fit")
    if N == 0 or O == 0:
        return
    if I == 0:
        y[...] = 0
        return
    nblocks = _team(num_threads, N, 2.0 * N * O * I)
    with nogil, parallel(num_threads=nblocks):
        for k in prange(nblocks, schedule="static"):
            lo = _blas_bound(N, nblocks, k)
            hi = _blas_bound(N, nblocks, k + 1)
            gemm(False, True, <int> (hi - lo), O, I, <floating> 1, &x[lo, 0], I, &w[0, 0], I,
                 <floating> 0, &y[lo, 0], O)


def linear_backward(const floating[:, ::1] dy,        # IN  (N, O)
                    const floating[:, ::1] x,         # IN  (N, I)
                    const floating[:, ::1] w,         # IN  (O, I)
                    floating[:, ::1] dw,              # IN/OUT (O, I) accumulated
                    floating[:, ::1] dx,              # OUT (N, I), or None
                    int num_threads):
    """dW += dyᵀ x and dx := dy W (dx None: skipped), each split by rows across up to ``num_threads``."""
    cdef Py_ssize_t N = dy.shape[0], k, lo, hi, nblocks
    cdef int O = <int> dy.shape[1], I = <int> x.shape[1]
    cdef floating* dx_p = NULL
    if (x.shape[0] != N or w.shape[0] != O or w.shape[1] != I or dw.shape[0] != O or dw.shape[1] != I
            or (dx is not None and (dx.shape[0] != N or dx.shape[1] != I))):
        raise ValueError(f"dy ({N}, {O}), x ({x.shape[0]}, {I}), w ({w.shape[0]}, {w.shape[1]}), dw "
                         f"({dw.shape[0]}, {dw.shape[1]}) and dx do not fit")
    if dx is not None and N > 0 and I > 0:
        dx_p = &dx[0, 0]
        if O == 0:
            dx[...] = 0
    if N == 0 or O == 0 or I == 0:
        return
    nblocks = _team(num_threads, min(N, <Py_ssize_t> O), 4.0 * N * O * I)
    with nogil, parallel(num_threads=nblocks):
        for k in prange(nblocks, schedule="static"):
            lo = _blas_bound(O, nblocks, k)                                  # dW rows [lo, hi): Σ_n dy[n, lo:hi]ᵀ x[n]
            hi = _blas_bound(O, nblocks, k + 1)
            gemm(True, False, <int> (hi - lo), I, <int> N, <floating> 1, &dy[0, 0] + lo, O, &x[0, 0], I,
                 <floating> 1, &dw[lo, 0], I)
            if dx_p != NULL:
                lo = _blas_bound(N, nblocks, k)                              # dx rows [lo, hi) = dy[lo:hi] W
                hi = _blas_bound(N, nblocks, k + 1)
                gemm(False, False, <int> (hi - lo), I, O, <floating> 1, &dy[lo, 0], O, &w[0, 0], I,
                     <floating> 0, dx_p + lo * I, I)
