/*
 * rnnfast_optim.h: one parameter's Adam update in one pass over its elements (rnnfast.Adam / AdamW;
 * _optim.pxi splits long parameters over the threads). torch.optim.Adam's rule, in its order:
 *
 *   m ← m + (1 − β₁)(g − m)                 (torch: exp_avg.lerp_(g, 1 − β₁))
 *   v ← β₂ v + (1 − β₂) g²
 *   v̂ ← max(v̂, v) with AMSGrad (vmax), else v̂ = v
 *   θ ← θ − γ/(1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)
 *
 * g is the gradient after maximize's sign and the L2 term (rnnfast/optim.py forms it). The constants come
 * in the parameter's dtype, as NumPy's in-place operations with Python floats use them.
 */
#ifndef RNNFAST_OPTIM_H
#define RNNFAST_OPTIM_H

#include <math.h>
#include <stdint.h>
#include "rnnfast_pointwise.h"

#define RF_ADAM(NAME, T, SQRT)                                                                    \
RF_CLONES static void NAME(int64_t n, T *p, const T *g, T *m, T *v, T *vmax, T one_minus_beta1,   \
                           T beta2, T one_minus_beta2, T bias2_sqrt, T eps, T step_size) {        \
    if (vmax) {                                                                                   \
        RF_SIMD for (int64_t i = 0; i < n; ++i) {                                                 \
            const T mi = m[i] + (g[i] - m[i]) * one_minus_beta1;                                  \
            const T vi = v[i] * beta2 + (g[i] * g[i]) * one_minus_beta2;                          \
            const T vh = vmax[i] > vi ? vmax[i] : vi;                                             \
            m[i] = mi; v[i] = vi; vmax[i] = vh;                                                   \
            p[i] -= mi / (SQRT(vh) / bias2_sqrt + eps) * step_size;                               \
        }                                                                                         \
    } else {                                                                                      \
        RF_SIMD for (int64_t i = 0; i < n; ++i) {                                                 \
            const T mi = m[i] + (g[i] - m[i]) * one_minus_beta1;                                  \
            const T vi = v[i] * beta2 + (g[i] * g[i]) * one_minus_beta2;                          \
            m[i] = mi; v[i] = vi;                                                                 \
            p[i] -= mi / (SQRT(vi) / bias2_sqrt + eps) * step_size;                               \
        }                                                                                         \
    }                                                                                             \
}
RF_ADAM(rf_adam_f, float, sqrtf)
RF_ADAM(rf_adam_d, double, sqrt)

/* Σ g² of one block, in double (clip_grad_norm_'s 2-norm: the total is √ of the sum over parameters). */
#define RF_SUMSQ(NAME, T)                                                                         \
RF_CLONES static double NAME(int64_t n, const T *g) {                                             \
    double s = 0;                                                                                 \
    _Pragma("omp simd reduction(+:s)")                                                            \
    for (int64_t i = 0; i < n; ++i) s += (double) g[i] * (double) g[i];                           \
    return s;                                                                                     \
}
RF_SUMSQ(rf_sumsq_f, float)
RF_SUMSQ(rf_sumsq_d, double)

#endif
