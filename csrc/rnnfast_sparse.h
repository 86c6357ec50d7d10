/*
 * rnnfast_sparse.h: the input side of a layer when its input rows are mostly zeros (one-hot characters or
 * words, bags of a few features), where a dense GEMM spends nearly all its multiply-adds on zeros.
 *
 * With x (n, I) row-major and W_ih (N, I), W_ihᵀ (I, N) copied once per kernel call:
 *   projection       a[r] := Σ_{k: x[r,k] ≠ 0} x[r,k] · W_ihᵀ[k]            (n, N), row r's nonzeros only
 *   weight gradient  G[k] += Σ_{r: x[r,k] ≠ 0} x[r,k] · dA[r]               G = dW_ihᵀ (I, N)
 * so a one-hot row costs one N-long copy (projection) or axpy (gradient) instead of I·N multiply-adds.
 * Both equal the dense products in exact arithmetic and to rounding in floating point (a one-hot row's
 * projection is bit for bit the dense one). They differ only where the dense product would multiply a
 * zero of x by an infinite or NaN weight (0 · inf = NaN), which these skip.
 *
 * rf_sparse_count decides: it counts nonzeros and stops, at the end of a 1024-value block, as soon as the
 * count passes `limit` (an eighth of the values), so a dense input costs a scan of about an eighth of x,
 * not of all of it.
 */
#ifndef RNNFAST_SPARSE_H
#define RNNFAST_SPARSE_H

#include <stddef.h>
#include <string.h>

#include "rnnfast_pointwise.h"   /* RF_CLONES, RF_SIMD */

/* Nonzeros of x (n values), or limit + 1 once there are more than limit. */
#define RF_SPARSE_COUNT(NAME, T)                                                                  \
static size_t NAME(size_t n, const T *x, size_t limit) {                                          \
    size_t nnz = 0;                                                                               \
    for (size_t i0 = 0; i0 < n; i0 += 1024) {   /* count a block branch-free, then test */        \
        const size_t i1 = n - i0 < 1024 ? n : i0 + 1024;                                          \
        for (size_t i = i0; i < i1; ++i) nnz += x[i] != 0;                                        \
        if (nnz > limit) return limit + 1;                                                        \
    }                                                                                             \
    return nnz;                                                                                   \
}
RF_SPARSE_COUNT(rf_sparse_count_f, float)
RF_SPARSE_COUNT(rf_sparse_count_d, double)

/* a (n, N), rows lda apart := x (n, I) @ W_ihᵀ, wt = W_ihᵀ (I, N): each row the sum of wt's rows at its
 * nonzeros, scaled (a zero row gives zeros). */
#define RF_SPARSE_PROJECT(NAME, T)                                                                \
RF_CLONES static void NAME(size_t n, int ni, int N, const T *x, const T *wt, T *a, size_t lda) {   \
    for (size_t r = 0; r < n; ++r) {                                                              \
        const T *xr = x + r * ni;                                                                  \
        T *ar = a + r * lda;                                                                      \
        int first = 1;                                                                            \
        for (int k = 0; k < ni; ++k) {                                                             \
            const T v = xr[k];                                                                    \
            if (v == 0) continue;                                                                 \
            const T *w = wt + (size_t)k * N;                                                      \
            if (first) { RF_SIMD for (int j = 0; j < N; ++j) ar[j] = v * w[j]; }                  \
            else { RF_SIMD for (int j = 0; j < N; ++j) ar[j] += v * w[j]; }                       \
            first = 0;                                                                            \
        }                                                                                         \
        if (first) memset(ar, 0, (size_t)N * sizeof(T));                                          \
    }                                                                                             \
}
RF_SPARSE_PROJECT(rf_sparse_project_f, float)
RF_SPARSE_PROJECT(rf_sparse_project_d, double)

/* g (I, N), rows ldg apart, += x (n, I)ᵀ @ da (n, N), da's rows lda apart: row k of g gathers the rows of da
 * whose x has a nonzero in column k. */
#define RF_SPARSE_WGRAD(NAME, T)                                                                  \
RF_CLONES static void NAME(size_t n, int ni, int N, const T *x, const T *da, size_t lda, T *g,     \
                           size_t ldg) {                                                          \
    for (size_t r = 0; r < n; ++r) {                                                              \
        const T *xr = x + r * ni, *dr = da + r * lda;                                              \
        for (int k = 0; k < ni; ++k) {                                                             \
            const T v = xr[k];                                                                    \
            if (v == 0) continue;                                                                 \
            T *gk = g + (size_t)k * ldg;                                                          \
            RF_SIMD for (int j = 0; j < N; ++j) gk[j] += v * dr[j];                               \
        }                                                                                         \
    }                                                                                             \
}
RF_SPARSE_WGRAD(rf_sparse_wgrad_f, float)
RF_SPARSE_WGRAD(rf_sparse_wgrad_d, double)

#endif
