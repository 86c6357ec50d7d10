# Adam's update of one parameter in one pass over its elements (rnnfast.Adam, AdamW; rnnfast_optim.h), and
# Σ g² for clip_grad_norm_'s 2-norm. Elements are independent, so a long parameter splits into contiguous
# blocks over the threads, with the same bits for every thread count.

cdef extern from "rnnfast_optim.h" nogil:
    void rf_adam_f(int64_t n, float* p, const float* g, float* m, float* v, float* vmax, float one_minus_beta1,
                   float beta2, float one_minus_beta2, float bias2_sqrt, float eps, float step_size)
    void rf_adam_d(int64_t n, double* p, const double* g, double* m, double* v, double* vmax,
                   double one_minus_beta1, double beta2, double one_minus_beta2, double bias2_sqrt, double eps,
                   double step_size)
    double rf_sumsq_f(int64_t n, const float* g)
    double rf_sumsq_d(int64_t n, const double* g)

cdef double _MIN_ELEMENTS_PER_THREAD = 1 << 17     # a memory-bound pass: below this a woken thread costs more


def adam_update(floating[::1] p,                    # IN/OUT (n,) θ
                const floating[::1] g,              # IN     (n,) the gradient
                floating[::1] m,                    # IN/OUT (n,) exp_avg
                floating[::1] v,                    # IN/OUT (n,) exp_avg_sq
                floating[::1] vmax,                 # IN/OUT (n,) max_exp_avg_sq (AMSGrad), or None
                double beta1, double beta2, double bias2_sqrt, double eps, double step_size,
                int num_threads):
    """One Adam step of one parameter (rnnfast_optim.h); the arrays are flat views of the same length."""
    cdef Py_ssize_t n = p.shape[0], k, lo, hi, nblocks
    cdef floating* vmax_p = NULL
    if g.shape[0] != n or m.shape[0] != n or v.shape[0] != n or (vmax is not None and vmax.shape[0] != n):
        raise ValueError(f"p ({n},), g ({g.shape[0]},), m ({m.shape[0]},), v ({v.shape[0]},) and vmax do not fit")
    if n == 0:
        return
    if vmax is not None:
        vmax_p = &vmax[0]
    nblocks = max(1, min(<Py_ssize_t> num_threads, <Py_ssize_t> (n / _MIN_ELEMENTS_PER_THREAD)))
    with nogil, parallel(num_threads=nblocks):
        for k in prange(nblocks, schedule="static"):
            lo = _bound(n, nblocks, k)
            hi = _bound(n, nblocks, k + 1)
            if floating is float:
                rf_adam_f(hi - lo, &p[lo], &g[lo], &m[lo], &v[lo], NULL if vmax_p == NULL else vmax_p + lo,
                          <float> (1 - beta1), <float> beta2, <float> (1 - beta2), <float> bias2_sqrt,
                          <float> eps, <float> step_size)
            else:
                rf_adam_d(hi - lo, &p[lo], &g[lo], &m[lo], &v[lo], NULL if vmax_p == NULL else vmax_p + lo,
                          1 - beta1, beta2, 1 - beta2, bias2_sqrt, eps, step_size)


def sum_of_squares(const floating[::1] g):
    """Σ g², accumulated in double, on the calling thread (clip_grad_norm_'s 2-norm)."""
    if g.shape[0] == 0:
        return 0.0
    if floating is float:
        return rf_sumsq_f(g.shape[0], &g[0])
    return rf_sumsq_d(g.shape[0], &g[0])
