# Softmax cross-entropy, the loss and dlogits in one threaded pass (rnnfast.cross_entropy; rnnfast_loss.h):
#
#     loss_n = w_n (log Σ_c exp(x_nc − m_n) − (x_nk − m_n)),   m_n = max_c x_nc
#     grad_n = scale · w_n (softmax(x_n) − onehot(k_n))
#
# The rows split into contiguous blocks, one per thread; each row is independent, so every thread count
# gives the same bits.
from libc.stdint cimport int64_t

cdef extern from "rnnfast_loss.h" nogil:
    void rf_xent_f(int64_t n, int C, const float* x, const int64_t* labels, const float* w, double scale,
                   float* grad, double* loss)
    void rf_xent_d(int64_t n, int C, const double* x, const int64_t* labels, const double* w, double scale,
                   double* grad, double* loss)


cdef inline void _xent(int64_t n, int C, const floating* x, const int64_t* labels, const floating* w,
                       double scale, floating* grad, double* loss) noexcept nogil:
    if floating is float:
        rf_xent_f(n, C, x, labels, w, scale, grad, loss)
    else:
        rf_xent_d(n, C, x, labels, w, scale, grad, loss)


def cross_entropy_rows(const floating[:, ::1] x,        # IN  (N, C) logits
                       const int64_t[::1] labels,       # IN  (N,) in [0, C) where the weight is nonzero
                       const floating[::1] w,           # IN  (N,) weights >= 0, or None (all 1)
                       double scale,                    # IN  gradient scale (1/Σw for a mean)
                       floating[:, ::1] grad,           # OUT (N, C) scale · w (softmax − onehot)
                       double[::1] loss,                # OUT (N,) w · (−log softmax_k)
                       int num_threads):
    """Per-row softmax cross-entropy and its gradient; returns the index of the first row whose label is
    outside [0, C) with a nonzero weight (nothing is computed then), or -1."""
    cdef Py_ssize_t N = x.shape[0], k, lo, hi, nblocks, r
    cdef int C = <int> x.shape[1]
    cdef const floating* w_p = NULL
    if (labels.shape[0] != N or grad.shape[0] != N or grad.shape[1] != C or loss.shape[0] != N
            or (w is not None and w.shape[0] != N)):
        raise ValueError(f"x ({N}, {C}), labels ({labels.shape[0]},), grad ({grad.shape[0]}, {grad.shape[1]}), "
                         f"loss ({loss.shape[0]},) and w do not fit")
    if N == 0:
        return -1
    if C == 0:
        raise ValueError("x must have at least one class")
    if w is not None:
        w_p = &w[0]
    for r in range(N):
        if (labels[r] < 0 or labels[r] >= C) and (w_p == NULL or w_p[r] != 0):
            return r
    with nogil:
        nblocks = _team(num_threads, N, 20.0 * N * C)      # ~20 flops an entry (exp, max, sum, scale)
        if nblocks == 1:
            _xent(N, C, &x[0, 0], &labels[0], w_p, scale, &grad[0, 0], &loss[0])
        else:
            with parallel(num_threads=nblocks):
                for k in prange(nblocks, schedule="static"):
                    lo = _bound(N, nblocks, k)
                    hi = _bound(N, nblocks, k + 1)
                    _xent(hi - lo, C, &x[lo, 0], &labels[lo], NULL if w_p == NULL else w_p + lo, scale,
                          &grad[lo, 0], &loss[lo])
    return -1
