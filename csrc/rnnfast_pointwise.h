/*
 * rnnfast_pointwise.h: the fused pointwise passes of the Elman and LSTM kernels, in C so that the
 * compiler vectorises them (one contiguous inner loop per row, `#pragma omp simd`).
 *
 * float32 uses inlined polynomial exp/tanh (no libm call in the loop, so the loop vectorises);
 * float64 calls libm's exp/tanh, which is exact enough for float64 finite-difference checks.
 *
 *   rf_expf(x):  x = n ln2 + r, |r| <= ln2/2; e^r by Cephes' degree-7 polynomial, 2^n by exponent bits.
 *                Input clamped to [-87.33, 88.37] (FLT_MIN .. FLT_MAX); max rel. error ~2 ulp.
 *   rf_tanhf(x): |x| < 0.625: x * P(x^2) (degree-6 fit of tanh(x)/x, rel. error < 2e-10 before rounding);
 *                else sign(x) * (1 - e) / (1 + e), e = exp(-2|x|), which has no cancellation there.
 *   sigmoid(x) = 1 / (1 + exp(-x)).
 *
 * Forward LSTM, per row (gates laid out i | f | g | o, each H wide, pre-activations in, activations out):
 *   i = σ(a_i)  f = σ(a_f)  g = tanh(a_g)  o = σ(a_o)
 *   c = f ⊙ c_prev + i ⊙ g       tc = tanh(c)       h = o ⊙ tc
 * Backward LSTM, per row (dh = dL/dh_t incl. dout_t, dc = dL/dc_t from step t+1):
 *   dc  += dh ⊙ o ⊙ (1 − tc²)                          # through h = o ⊙ tanh(c)
 *   da_i = dc ⊙ g ⊙ i(1−i)    da_f = dc ⊙ c_prev ⊙ f(1−f)
 *   da_g = dc ⊙ i ⊙ (1−g²)    da_o = dh ⊙ tc ⊙ o(1−o)
 *   dc_prev = dc ⊙ f
 * Elman: h = φ(a);  da = dh ⊙ φ'(h) with φ' read off h: tanh 1−h², sigmoid h(1−h), relu [h > 0].
 * GRU: see the GRU passes below.
 *
 * Every pass covers rows [0, n) and hidden units [j0, j1) of each gate block (H wide): the whole layer
 * with j0 = 0, j1 = H, or one thread's share of the units when the threads split the columns.
 *
 * Small x86-64 builds get AVX2 / AVX-512 clones of each pass chosen at run time (GCC target_clones),
 * so a wheel built for the baseline still uses wide vectors where the CPU has them. The AVX2 clone is the
 * ISA level x86-64-v3 (GCC 12 and later), which has FMA: GCC's "avx2" clone has none, and on an AMD EPYC
 * without AVX-512 the whole training loops ran 5-40% slower with it (benchmarks/training_loops.py).
 */
#ifndef RNNFAST_POINTWISE_H
#define RNNFAST_POINTWISE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(RNNFAST_NO_CLONES)
#if __GNUC__ >= 12        /* x86-64-v3: AVX2 + FMA + ..., dispatched on those features, not on the CPU model */
#define RF_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define RF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#else
#define RF_CLONES
#endif

#if defined(_OPENMP) || defined(__GNUC__)
#define RF_SIMD _Pragma("omp simd")
#else
#define RF_SIMD
#endif

enum { RF_TANH = 0, RF_RELU = 1, RF_SIGMOID = 2 };

#if defined(__GNUC__) || defined(__clang__)
#define RF_PW_INLINE static inline __attribute__((always_inline))
#else
#define RF_PW_INLINE static inline
#endif

/* A forward pass takes an optional bias (NULL: none). Its loop reads `bias ? bias[j] : 0`, which GCC does
 * not vectorise as written; NAME calls the inlined body NAME##_rows once with bias known non-NULL and once
 * with NULL, so each copy folds the test away and vectorises. */
#define RF_WITH_BIAS(NAME, bias, ...)                                                             \
    if (bias) NAME##_rows(bias, __VA_ARGS__); else NAME##_rows(NULL, __VA_ARGS__)

/* ---------------------------------------------------------------- float32 transcendental functions */
static inline float rf_expf(float x) {
    x = x < -87.336544f ? -87.336544f : x;
    x = x > 88.376259f ? 88.376259f : x;
    /* n = round(x / ln2) by the 1.5*2^23 trick (vectorises without SSE4.1 roundps) */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float rf_sigmoidf(float x) { return 1.0f / (1.0f + rf_expf(-x)); }

static inline float rf_tanhf(float x) {
    float ax = x < 0.0f ? -x : x;
    float x2 = x * x;
    float small = 0.0021422054f;
    small = small * x2 - 0.0081761312f;
    small = small * x2 + 0.021699883f;
    small = small * x2 - 0.053946506f;
    small = small * x2 + 0.13333201f;
    small = small * x2 - 0.33333331f;
    small = (small * x2 + 1.0f) * x;
    float e = rf_expf(-2.0f * ax);
    float big = (1.0f - e) / (1.0f + e);
    big = x < 0.0f ? -big : big;
    return ax < 0.625f ? small : big;
}

static inline double rf_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* --------------------------------------------------------------------------------- LSTM passes */
#define RF_LSTM_FWD(NAME, T, SIG, TANH)                                                           \
RF_PW_INLINE void NAME##_rows(const T *bias, int n, int H, int j0, int j1, T *gates,               \
                              const T *c_prev, T *c, T *tanh_c, T *h) {                           \
    /* gates (n, 4H): pre-activations less the bias (4H, or NULL) in, activations out;            \
       c_prev, c, tanh_c, h (n, H) */                                                             \
    const T *bi = bias, *bf = bias + H, *bg = bias + 2 * H, *bo = bias + 3 * H;                   \
    for (int b = 0; b < n; ++b) {                                                                \
        T *gi = gates + (size_t)b * 4 * H, *gf = gi + H, *gg = gi + 2 * H, *go = gi + 3 * H;      \
        const T *cp = c_prev + (size_t)b * H;                                                     \
        T *cb = c + (size_t)b * H, *tb = tanh_c + (size_t)b * H, *hb = h + (size_t)b * H;         \
        RF_SIMD for (int j = j0; j < j1; ++j) {                                                     \
            T i = SIG(gi[j] + (bias ? bi[j] : 0)), f = SIG(gf[j] + (bias ? bf[j] : 0));          \
            T g = TANH(gg[j] + (bias ? bg[j] : 0)), o = SIG(go[j] + (bias ? bo[j] : 0));          \
            T cc = f * cp[j] + i * g;                                                             \
            T tc = TANH(cc);                                                                      \
            gi[j] = i; gf[j] = f; gg[j] = g; go[j] = o;                                           \
            cb[j] = cc; tb[j] = tc; hb[j] = o * tc;                                               \
        }                                                                                         \
    }                                                                                             \
}                                                                                                 \
RF_CLONES static void NAME(int n, int H, int j0, int j1, const T *bias, T *gates, const T *c_prev, \
                           T *c, T *tanh_c, T *h) {                                               \
    RF_WITH_BIAS(NAME, bias, n, H, j0, j1, gates, c_prev, c, tanh_c, h);                          \
}
RF_LSTM_FWD(rf_lstm_fwd_f, float, rf_sigmoidf, rf_tanhf)
RF_LSTM_FWD(rf_lstm_fwd_d, double, rf_sigmoid, tanh)

#define RF_LSTM_BWD(NAME, T)                                                                      \
RF_CLONES static void NAME(int n, int H, int j0, int j1, T *gates, const T *c_prev, const T *tanh_c,\
                           const T *dout, const T *dh_in, const T *dc_in, T *dc_out) {            \
    /* gates (n, 4H): activations in, pre-activation gradients out. dout, dh_in (n, H): summed    \
       into dh. dc_in (n, H): dL/dc_t; dc_out (n, H): dL/dc_{t-1} (may alias dc_in). */           \
    for (int b = 0; b < n; ++b) {                                                                \
        T *gi = gates + (size_t)b * 4 * H, *gf = gi + H, *gg = gi + 2 * H, *go = gi + 3 * H;      \
        const T *cp = c_prev + (size_t)b * H, *tc = tanh_c + (size_t)b * H;                       \
        const T *dob = dout + (size_t)b * H, *dhb = dh_in + (size_t)b * H;                        \
        const T *dcb = dc_in + (size_t)b * H;                                                     \
        T *dco = dc_out + (size_t)b * H;                                                          \
        RF_SIMD for (int j = j0; j < j1; ++j) {                                                     \
            T i = gi[j], f = gf[j], g = gg[j], o = go[j], t = tc[j];                              \
            T dh = dob[j] + dhb[j];                                                               \
            T dc = dcb[j] + dh * o * (1 - t * t);     /* backprop through h = o tanh(c) */       \
            gi[j] = dc * g * i * (1 - i);                                                         \
            gf[j] = dc * cp[j] * f * (1 - f);                                                     \
            gg[j] = dc * i * (1 - g * g);                                                         \
            go[j] = dh * t * o * (1 - o);                                                         \
            dco[j] = dc * f;                                                                      \
        }                                                                                         \
    }                                                                                             \
}
RF_LSTM_BWD(rf_lstm_bwd_f, float)
RF_LSTM_BWD(rf_lstm_bwd_d, double)

/* -------------------------------------------------------------------------------- Elman passes */
#define RF_ELMAN_FWD(NAME, T, SIG, TANH)                                                          \
RF_PW_INLINE void NAME##_rows(const T *bias, int n, int H, int j0, int j1, int act, const T *a,    \
                              T *h) {                                                             \
    /* a (n, H): pre-activations less the bias (H, or NULL); h (n, H) = φ(a + bias) (h may alias a) */ \
    for (int b = 0; b < n; ++b) {                                                                \
        const T *ab = a + (size_t)b * H;                                                          \
        T *hb = h + (size_t)b * H;                                                                \
        if (act == RF_TANH) {                                                                     \
            RF_SIMD for (int j = j0; j < j1; ++j) hb[j] = TANH(ab[j] + (bias ? bias[j] : 0));     \
        } else if (act == RF_SIGMOID) {                                                           \
            RF_SIMD for (int j = j0; j < j1; ++j) hb[j] = SIG(ab[j] + (bias ? bias[j] : 0));      \
        } else {                                               /* relu; NaN stays NaN */          \
            RF_SIMD for (int j = j0; j < j1; ++j) {                                               \
                T v = ab[j] + (bias ? bias[j] : 0);                                               \
                hb[j] = v <= 0 ? 0 : v;                                                           \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
}                                                                                                 \
RF_CLONES static void NAME(int n, int H, int j0, int j1, const T *bias, int act, const T *a, T *h) { \
    RF_WITH_BIAS(NAME, bias, n, H, j0, j1, act, a, h);                                            \
}
RF_ELMAN_FWD(rf_elman_fwd_f, float, rf_sigmoidf, rf_tanhf)
RF_ELMAN_FWD(rf_elman_fwd_d, double, rf_sigmoid, tanh)

#define RF_ELMAN_BWD(NAME, T)                                                                     \
RF_CLONES static void NAME(int n, int H, int j0, int j1, int act, const T *h, const T *dout,      \
                           const T *dh_in, T *da) {                                               \
    /* da (n, H) = (dout + dh_in) ⊙ φ'(h), φ' read off the output h */                            \
    for (int b = 0; b < n; ++b) {                                                                \
        size_t o = (size_t)b * H;                                                                 \
        const T *hb = h + o, *db = dout + o, *dhb = dh_in + o;                                    \
        T *dab = da + o;                                                                          \
        if (act == RF_TANH) {                                                                     \
            RF_SIMD for (int j = j0; j < j1; ++j) dab[j] = (db[j] + dhb[j]) * (1 - hb[j] * hb[j]); \
        } else if (act == RF_SIGMOID) {                                                           \
            RF_SIMD for (int j = j0; j < j1; ++j) dab[j] = (db[j] + dhb[j]) * hb[j] * (1 - hb[j]); \
        } else {                                                                                  \
            RF_SIMD for (int j = j0; j < j1; ++j) dab[j] = hb[j] <= 0 ? 0 : db[j] + dhb[j];       \
        }                                                                                         \
    }                                                                                             \
}
RF_ELMAN_BWD(rf_elman_bwd_f, float)
RF_ELMAN_BWD(rf_elman_bwd_d, double)

/* ---------------------------------------------------------------------------------- GRU passes */
/* Forward, per row (gates r | z | n, each H wide; gx holds the input projection x W_ihᵀ and is overwritten
 * with the activations; bias = b_ih + [b_hr b_hz 0] (3H, or NULL); gh holds h_{t-1} W_hhᵀ without bias):
 *   r = σ(gx_r + b_r + gh_r)   z = σ(gx_z + b_z + gh_z)   hn = gh_n + b_hn   n = tanh(gx_n + b_n + r ⊙ hn)
 *   h = (1 − z) ⊙ n + z ⊙ h_prev                                   (hn kept for BPTT) */
#define RF_GRU_FWD(NAME, T, SIG, TANH)                                                            \
RF_PW_INLINE void NAME##_rows(const T *bias, int n, int H, int j0, int j1, T *gx, const T *gh,     \
                              const T *b_hn, const T *h_prev, T *hn, T *h) {                      \
    for (int b = 0; b < n; ++b) {                                                                \
        T *xr = gx + (size_t)b * 3 * H, *xz = xr + H, *xn = xr + 2 * H;                           \
        const T *hr = gh + (size_t)b * 3 * H, *hz = hr + H, *hh = hr + 2 * H;                     \
        const T *hp = h_prev + (size_t)b * H;                                                     \
        T *hnb = hn + (size_t)b * H, *hb = h + (size_t)b * H;                                     \
        RF_SIMD for (int j = j0; j < j1; ++j) {                                                     \
            T ar = xr[j] + hr[j] + (bias ? bias[j] : 0);                                          \
            T az = xz[j] + hz[j] + (bias ? bias[H + j] : 0);                                      \
            T an = xn[j] + (bias ? bias[2 * H + j] : 0);                                          \
            T r = SIG(ar), z = SIG(az);                                                           \
            T hnj = hh[j] + (b_hn ? b_hn[j] : 0);                                                 \
            T nn = TANH(an + r * hnj);                                                            \
            xr[j] = r; xz[j] = z; xn[j] = nn; hnb[j] = hnj;                                       \
            hb[j] = (1 - z) * nn + z * hp[j];                                                     \
        }                                                                                         \
    }                                                                                             \
}                                                                                                 \
RF_CLONES static void NAME(int n, int H, int j0, int j1, const T *bias, T *gx, const T *gh,       \
                           const T *b_hn, const T *h_prev, T *hn, T *h) {                         \
    RF_WITH_BIAS(NAME, bias, n, H, j0, j1, gx, gh, b_hn, h_prev, hn, h);                          \
}
RF_GRU_FWD(rf_gru_fwd_f, float, rf_sigmoidf, rf_tanhf)
RF_GRU_FWD(rf_gru_fwd_d, double, rf_sigmoid, tanh)

/* Backward, per row (dh = dout + dh_in):
 *   dn = dh ⊙ (1 − z)   da_n = dn ⊙ (1 − n²)   da_r = da_n ⊙ hn ⊙ r(1 − r)   da_z = dh ⊙ (h_prev − n) ⊙ z(1 − z)
 * Input side (gates, in place): [da_r, da_z, da_n]. The recurrent side is [da_r, da_z, da_n ⊙ r]: its r, z
 * blocks are the input side's, and its n block goes into dhn (n, H) (which may alias hn), so the caller's
 * product reads it from those two. dh_out := dh ⊙ z, the direct path to h_{t-1} (dh_out may alias dh_in;
 * the caller then adds [da_r, da_z, da_n ⊙ r] W_hh). */
#define RF_GRU_BWD(NAME, T)                                                                       \
RF_CLONES static void NAME(int n, int H, int j0, int j1, T *gates, const T *hn, const T *h_prev,  \
                           const T *dout, const T *dh_in, T *dhn, T *dh_out) {                    \
    for (int b = 0; b < n; ++b) {                                                                \
        T *gr = gates + (size_t)b * 3 * H, *gz = gr + H, *gn = gr + 2 * H;                        \
        const T *hnb = hn + (size_t)b * H, *hp = h_prev + (size_t)b * H;                          \
        const T *dob = dout + (size_t)b * H, *dhb = dh_in + (size_t)b * H;                        \
        T *dhnb = dhn + (size_t)b * H, *dho = dh_out + (size_t)b * H;                             \
        RF_SIMD for (int j = j0; j < j1; ++j) {                                                     \
            T r = gr[j], z = gz[j], nn = gn[j];                                                   \
            T dh = dob[j] + dhb[j];                                                               \
            T da_n = dh * (1 - z) * (1 - nn * nn);                                                \
            T da_r = da_n * hnb[j] * r * (1 - r);                                                 \
            T da_z = dh * (hp[j] - nn) * z * (1 - z);                                             \
            gr[j] = da_r; gz[j] = da_z; gn[j] = da_n;                                             \
            dhnb[j] = da_n * r;                                                                   \
            dho[j] = dh * z;                                                                      \
        }                                                                                         \
    }                                                                                             \
}
RF_GRU_BWD(rf_gru_bwd_f, float)
RF_GRU_BWD(rf_gru_bwd_d, double)

/* ------------------------------------------------------------------------------- bias gradients */
/* out[j] += Σ_r a[r·lda + j] for j < n: the column sums of a (rows, n) block, in blocks of RF_COLS columns
 * held in a local array while the rows stream by. */
#define RF_COLS 64
#define RF_COLSUM(NAME, T)                                                                        \
RF_CLONES static void NAME(size_t rows, int n, const T *a, size_t lda, T *out) {                  \
    for (int j0 = 0; j0 < n; j0 += RF_COLS) {                                                     \
        const int w = n - j0 < RF_COLS ? n - j0 : RF_COLS;                                        \
        T acc[RF_COLS] = {0};                                                                     \
        for (size_t r = 0; r < rows; ++r) {                                                       \
            const T *ar = a + r * lda + j0;                                                       \
            RF_SIMD for (int j = 0; j < w; ++j) acc[j] += ar[j];                                  \
        }                                                                                         \
        for (int j = 0; j < w; ++j) out[j0 + j] += acc[j];                                        \
    }                                                                                             \
}
RF_COLSUM(rf_colsum_f, float)
RF_COLSUM(rf_colsum_d, double)

/* ------------------------------------------------------------------------------- max over rows */
/* out[j] = max_r a[r·lda + j] for j < n over rows >= 1 rows, in the rows' order; a NaN, once met, stays (as
 * numpy's max has it). The max-pooling readout's maxima over time (csrc/_pool.pxi). */
#define RF_COLMAX(NAME, T)                                                                        \
RF_CLONES static void NAME(size_t rows, int n, const T *a, size_t lda, T *out) {                  \
    for (int j = 0; j < n; ++j) out[j] = a[j];                                                    \
    for (size_t r = 1; r < rows; ++r) {                                                           \
        const T *ar = a + r * lda;                                                                \
        RF_SIMD for (int j = 0; j < n; ++j) {                                                     \
            const T v = ar[j], m = out[j];                                                        \
            out[j] = (v > m) | (v != v) ? v : m;                                                  \
        }                                                                                         \
    }                                                                                             \
}
RF_COLMAX(rf_colmax_f, float)
RF_COLMAX(rf_colmax_d, double)

/* first[j] = the first r with a[r·lda + j] == m[j], or, where m[j] is NaN, the first NaN (−1 where none): the
 * step each maximum of RF_COLMAX came from, for the max-pooling readout's backward. Branch-free, so it
 * vectorises: the per-element branch it replaced cost 15x the maxima themselves (csrc/_pool.pxi). */
#define RF_COLFIRST(NAME, T)                                                                      \
RF_CLONES static void NAME(size_t rows, int n, const T *a, size_t lda, const T *m, int64_t *first) { \
    for (int j = 0; j < n; ++j) first[j] = -1;                                                    \
    for (size_t r = 0; r < rows; ++r) {                                                           \
        const T *ar = a + r * lda;                                                                \
        RF_SIMD for (int j = 0; j < n; ++j) {                                                     \
            const T v = ar[j], mj = m[j];                                                         \
            const int hit = (first[j] < 0) & ((v == mj) | ((v != v) & (mj != mj)));               \
            first[j] = hit ? (int64_t)r : first[j];                                               \
        }                                                                                         \
    }                                                                                             \
}
RF_COLFIRST(rf_colfirst_f, float)
RF_COLFIRST(rf_colfirst_d, double)

/* Exposed for the accuracy tests of the float32 approximations. */
static void rf_expf_array(int n, const float *x, float *y) { for (int j = 0; j < n; ++j) y[j] = rf_expf(x[j]); }
static void rf_tanhf_array(int n, const float *x, float *y) { for (int j = 0; j < n; ++j) y[j] = rf_tanhf(x[j]); }
static void rf_sigmoidf_array(int n, const float *x, float *y) { for (int j = 0; j < n; ++j) y[j] = rf_sigmoidf(x[j]); }

#endif
