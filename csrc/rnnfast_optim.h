/*
 * rnnfast_optim.h: the optimizer's and clip_grad_norm_'s passes over one parameter's elements (_optim.pxi
 * splits long parameters over the threads; every element is independent, so any split gives the same bits).
 *
 * Adam / AdamW (rnnfast.Adam, rnnfast.AdamW), torch.optim.Adam's rule in its order, per element:
 *
 *   g ← s·∇ + λ θ                 s = −1 with maximize, else 1; λ the L2 term (Adam), 0 for AdamW
 *   θ ← d θ                       d = 1 − γλ for AdamW's decoupled decay, else 1
 *   m ← m + (1 − β₁)(g − m)       (torch: exp_avg.lerp_(g, 1 − β₁))
 *   v ← β₂ v + (1 − β₂) g²
 *   v̂ ← max(v̂, v) with AMSGrad (NaN wins, as in torch.maximum), else v̂ = v
 *   θ ← θ − m / (√v̂ / √(1 − β₂ᵗ) + ε) · γ/(1 − β₁ᵗ)
 *
 * The constants come in the parameter's dtype, as NumPy's in-place operations with Python floats use them.
 *
 * The build passes -fno-math-errno (setup.py): otherwise GCC keeps sqrt scalar, with a branch to libm to set
 * errno for a negative input, and the pass does not vectorise.
 *
 * Σ g² for clip_grad_norm_'s 2-norm: each square in the gradient's dtype (so a float32 square under- or
 * overflows where torch's float32 norm does), summed in double.
 */
#ifndef RNNFAST_OPTIM_H
#define RNNFAST_OPTIM_H

#include <math.h>
#include <stdint.h>
#include "rnnfast_pointwise.h"

/* NAME##_body is inlined with has_l2 and has_vmax constant, so each of the four copies vectorises. */
#define RF_ADAM(NAME, T, SQRT)                                                                             \
RF_PW_INLINE void NAME##_body(int64_t n, T *p, const T *grad, T *m, T *v, T *vmax, const int has_l2,  \
                              const int has_vmax, T sign, T l2, T decay, T one_minus_beta1, T beta2,  \
                              T one_minus_beta2, T bias2_sqrt, T eps, T step_size) {                  \
    RF_SIMD for (int64_t i = 0; i < n; ++i) {                                                         \
        T g = sign * grad[i];                                                                         \
        if (has_l2) g = g + l2 * p[i];                              /* torch: grad.add(θ, alpha=λ) */ \
        const T theta = p[i] * decay;                                                                 \
        const T mi = m[i] + (g - m[i]) * one_minus_beta1;                                             \
        const T vi = v[i] * beta2 + (g * g) * one_minus_beta2;                                        \
        T vh = vi;                                                                                    \
        if (has_vmax) {                                                                               \
            vh = (vi != vi || vi >= vmax[i]) ? vi : vmax[i];                                          \
            vmax[i] = vh;                                                                             \
        }                                                                                             \
        m[i] = mi;                                                                                    \
        v[i] = vi;                                                                                    \
        p[i] = theta - mi / (SQRT(vh) / bias2_sqrt + eps) * step_size;                                \
    }                                                                                                 \
}                                                                                                     \
RF_CLONES static void NAME(int64_t n, T *p, const T *grad, T *m, T *v, T *vmax, T sign, T l2, T decay,\
                           T one_minus_beta1, T beta2, T one_minus_beta2, T bias2_sqrt, T eps,        \
                           T step_size) {                                                             \
    if (vmax && l2 != 0)                                                                              \
        NAME##_body(n, p, grad, m, v, vmax, 1, 1, sign, l2, decay, one_minus_beta1, beta2,            \
                    one_minus_beta2, bias2_sqrt, eps, step_size);                                     \
    else if (vmax)                                                                                    \
        NAME##_body(n, p, grad, m, v, vmax, 0, 1, sign, l2, decay, one_minus_beta1, beta2,            \
                    one_minus_beta2, bias2_sqrt, eps, step_size);                                     \
    else if (l2 != 0)                                                                                 \
        NAME##_body(n, p, grad, m, v, NULL, 1, 0, sign, l2, decay, one_minus_beta1, beta2,            \
                    one_minus_beta2, bias2_sqrt, eps, step_size);                                     \
    else                                                                                              \
        NAME##_body(n, p, grad, m, v, NULL, 0, 0, sign, l2, decay, one_minus_beta1, beta2,            \
                    one_minus_beta2, bias2_sqrt, eps, step_size);                                     \
}
RF_ADAM(rf_adam_f, float, sqrtf)
RF_ADAM(rf_adam_d, double, sqrt)

#define RF_SUMSQ(NAME, T)                                                                             \
RF_CLONES static double NAME(int64_t n, const T *g) {                                                 \
    double s = 0;                                                                                     \
    _Pragma("omp simd reduction(+:s)")                                                                \
    for (int64_t i = 0; i < n; ++i) s += (double) (g[i] * g[i]);                                      \
    return s;                                                                                         \
}
RF_SUMSQ(rf_sumsq_f, float)
RF_SUMSQ(rf_sumsq_d, double)

#endif
