/*
 * rnnfast_loss.h: softmax cross-entropy of a block of rows, the loss and its gradient in one pass over
 * the logits (rnnfast.cross_entropy; _loss.pxi splits the rows over the threads).
 *
 * Row n of x (N, C), label k_n, weight w_n (1 without weights), scale s (1/Σw for a mean, else 1):
 *
 *   m = max_c x_c,   z = x − m,   S = Σ_c exp(z_c)                      (stable: exp cannot overflow)
 *   loss_n = w_n · (log S − z_k)                                         (−w_n log softmax(x)_k)
 *   grad_n = s · w_n · (exp(z) / S − onehot(k))                          (∂(s Σ_n loss_n)/∂x_n)
 *
 * A row of weight 0 gets an exact zero gradient and loss whatever its logits and label (padding).
 * float32 uses rnnfast_pointwise.h's vectorised rf_expf and sums S in float, as torch's CPU kernel and
 * NumPy do; log S − z_k is formed in double. float64 uses libm's exp.
 */
#ifndef RNNFAST_LOSS_H
#define RNNFAST_LOSS_H

#include <math.h>
#include <stdint.h>
#include "rnnfast_pointwise.h"

#define RF_XENT(NAME, T, EXP)                                                                     \
RF_CLONES static void NAME(int64_t n, int C, const T *x, const int64_t *labels, const T *w,         \
                           double scale, T *grad, double *loss) {                                 \
    for (int64_t r = 0; r < n; ++r) {                                                             \
        const T *xr = x + r * (int64_t) C;                                                        \
        T *gr = grad + r * (int64_t) C;                                                           \
        const double wr = w ? (double) w[r] : 1.0;                                                \
        if (wr == 0.0) {                                                                          \
            memset(gr, 0, sizeof(T) * (size_t) C);                                                \
            loss[r] = 0.0;                                                                        \
            continue;                                                                             \
        }                                                                                         \
        const int64_t k = labels[r];                                                              \
        T m = xr[0];                                                                              \
        _Pragma("omp simd reduction(max:m)")                                                      \
        for (int c = 1; c < C; ++c) m = xr[c] > m ? xr[c] : m;                                    \
        T s = 0;                                                                                  \
        RF_SIMD for (int c = 0; c < C; ++c) { gr[c] = EXP(xr[c] - m); }                           \
        _Pragma("omp simd reduction(+:s)")                                                        \
        for (int c = 0; c < C; ++c) { s += gr[c]; }                                               \
        loss[r] = wr * (log((double) s) - ((double) xr[k] - (double) m));                         \
        const T f = (T) (scale * wr / (double) s);                                                \
        RF_SIMD for (int c = 0; c < C; ++c) { gr[c] *= f; }                                       \
        gr[k] -= (T) (scale * wr);                                                                \
    }                                                                                             \
}
RF_XENT(rf_xent_f, float, rf_expf)
RF_XENT(rf_xent_d, double, exp)

#endif
