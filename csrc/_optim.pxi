# The optimizer's and clip_grad_norm_'s passes over a parameter's elements (rnnfast_optim.h has the rules):
#
#     adam_update:     one Adam / AdamW step of one parameter (rnnfast.Adam, rnnfast.AdamW), in one pass
#                      that reads ∇, θ, m, v (and v̂) once and writes θ, m, v (and v̂) once;
#     sum_of_squares:  Σ g², the squares in g's dtype, summed in double (clip_grad_norm_'s 2-norm).
#
# Elements are independent, so a long parameter splits into contiguous blocks over the threads, with the same
# bits for every thread count.

cdef extern from "rnnfast_optim.h" nogil:
    void rf_adam_f(int64_t n, float* p, const float* g, float* m, float* v, float* vmax, float sign, float l2,
                   float decay, float one_minus_beta1, float beta2, float one_minus_beta2, float bias2_sqrt,
                   float eps, float step_size)
    void rf_adam_d(int64_t n, double* p, const double* g, double* m, double* v, double* vmax, double sign,
                   double l2, double decay, double one_minus_beta1, double beta2, double one_minus_beta2,
                   double bias2_sqrt, double eps, double step_size)
    double rf_sumsq_f(int64_t n, const float* g)
    double rf_sumsq_d(int64_t n, const double* g)

cdef Py_ssize_t _MIN_ELEMENTS_PER_THREAD = 1 << 17  # a memory-bound pass: below this a woken thread costs more


cdef inline void _adam(Py_ssize_t n, floating* p, const floating* g, floating* m, floating* v, floating* vmax,
                       double sign, double l2, double decay, double beta1, double beta2, double bias2_sqrt,
                       double eps, double step_size) noexcept nogil:
    if floating is float:
        rf_adam_f(n, p, g, m, v, vmax, <float> sign, <float> l2, <float> decay, <float> (1 - beta1),
                  <float> beta2, <float> (1 - beta2), <float> bias2_sqrt, <float> eps, <float> step_size)
    else:
        rf_adam_d(n, p, g, m, v, vmax, sign, l2, decay, 1 - beta1, beta2, 1 - beta2, bias2_sqrt, eps, step_size)


def adam_update(floating[::1] p,                    # IN/OUT (n,) θ
                const floating[::1] g,              # IN     (n,) ∇, the parameter's .grad
                floating[::1] m,                    # IN/OUT (n,) exp_avg
                floating[::1] v,                    # IN/OUT (n,) exp_avg_sq
                floating[::1] vmax,                 # IN/OUT (n,) max_exp_avg_sq (AMSGrad), or None
                bint maximize,                      # IN     g ← −∇
                double l2,                          # IN     λ of the L2 term g ← g + λθ (Adam), else 0
                double decay,                       # IN     θ ← decay · θ first (AdamW: 1 − γλ), else 1
                double beta1, double beta2,         # IN     β₁, β₂
                double bias2_sqrt,                  # IN     √(1 − β₂ᵗ)
                double eps,                         # IN     ε
                double step_size,                   # IN     γ/(1 − β₁ᵗ)
                int num_threads):
    """One Adam step of one parameter (rnnfast_optim.h); the arrays are flat views of the same length."""
    cdef Py_ssize_t n = p.shape[0], k, lo, hi, nblocks
    cdef floating* vmax_p = NULL
    cdef double sign = -1.0 if maximize else 1.0
    if g.shape[0] != n or m.shape[0] != n or v.shape[0] != n or (vmax is not None and vmax.shape[0] != n):
        raise ValueError(f"p ({n},), g ({g.shape[0]},), m ({m.shape[0]},), v ({v.shape[0]},) and vmax do not fit")
    if n == 0:
        return
    if vmax is not None:
        vmax_p = &vmax[0]
    nblocks = _memory_team(num_threads, n, _MIN_ELEMENTS_PER_THREAD)
    with nogil:
        if nblocks == 1:
            _adam(n, &p[0], &g[0], &m[0], &v[0], vmax_p, sign, l2, decay, beta1, beta2, bias2_sqrt, eps, step_size)
        else:
            with parallel(num_threads=nblocks):
                for k in prange(nblocks, schedule="static"):
                    lo = _bound(n, nblocks, k)
                    hi = _bound(n, nblocks, k + 1)
                    _adam(hi - lo, &p[lo], &g[lo], &m[lo], &v[lo], NULL if vmax_p == NULL else vmax_p + lo,
                          sign, l2, decay, beta1, beta2, bias2_sqrt, eps, step_size)


def sum_of_squares(const floating[::1] g):          # IN (n,)
    """Σ g², each square in g's dtype, summed in double, on the calling thread (clip_grad_norm_'s 2-norm)."""
    if g.shape[0] == 0:
        return 0.0
    if floating is float:
        return rf_sumsq_f(g.shape[0], &g[0])
    else:
        return rf_sumsq_d(g.shape[0], &g[0])
