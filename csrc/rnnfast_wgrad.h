/*
 * rnnfast_wgrad.h: the weight-gradient GEMM of BPTT,
 *     C (M, N) += Aᵀ B,   A (K, M) and B (K, N) row-major (rows lda, ldb apart),
 * where K = T·B runs over every (step, batch row): dW_ih = Σ_t dA_tᵀ x_t, dW_hh = Σ_t dA_tᵀ h_{t-1}.
 *
 * Why not BLAS: both operands have K as their outer index, the layout OpenBLAS packs slowest, and K is long
 * against M, N (LSTM 64×100×256: K = 6400 against 256 columns). `python benchmarks/wgrad.py` times a
 * training step with each (its figures: benchmarks/README.md).
 *
 * Blocking (BLIS's loops, Goto's packing), every block a whole number of cache-sized pieces:
 *     for jc over N by NC:  for pc over K by KC:  pack B[pc:pc+KC, jc:jc+NC] into panels of RF_NR columns
 *         for ic over M by MC:  pack Aᵀ[ic:ic+MC, pc:pc+KC] into micro-panels of RF_WG_MR rows
 *             for each panel, for each micro-panel: the RF_WG_MR × RF_NR tile, C (+)= a · b over KC
 *   - a B panel (KC × RF_NR, 32 KB) stays in L1 while the MC / RF_WG_MR micro-panels of A stream by from L2;
 *   - a micro-panel holds the RF_WG_MR values of A for one k side by side ([k][r]), so the tile's inner
 *     loop is two vector loads of B, RF_WG_MR broadcasts from one or two lines of A, 2·RF_WG_MR FMAs;
 *   - the tile prefetches its C rows as it starts (they come from L3); the caller's workspace starts on a
 *     cache line (the packed loads straddled lines otherwise).
 * Each element of C adds its K products to itself in order, KC at a time, so the result does not depend on
 * how M or N is split among threads.
 *
 * Two tiles, picked at run time: AVX-512 (24 accumulators of 16 floats in its 32 registers) and AVX2 + FMA,
 * which takes the same 12 × RF_NR tile as four 6-row × half-panel passes (12 accumulators of 8 floats in its
 * 16). Both add each element's products in the same order, so they give the same bits. Without either
 * (or another compiler) rf_wgrad_available() is 0 and the caller uses BLAS.
 */
#ifndef RNNFAST_WGRAD_H
#define RNNFAST_WGRAD_H

#include <stddef.h>
#include <string.h>

#include "rnnfast_recgemm.h"     /* RF_NR_BYTES, rf_vf / rf_vd, rf_has_avx512 */

#define RF_WG_MR 12              /* rows of C per tile */
#define RF_WG_KC 256             /* K per block: a B panel is RF_WG_KC × RF_NR_BYTES = 32 KB */
#define RF_WG_MC 192             /* rows of C per block of packed A (RF_WG_MR multiple) */
#define RF_WG_NC_BYTES 2048      /* columns of C per block of packed B, in bytes: 512 floats */

/* Elements of `itemsize` bytes a thread's workspace needs: a packed block of B, then one of A. */
static size_t rf_wgrad_work_size(size_t itemsize) {
    return (size_t)RF_WG_KC * (RF_WG_NC_BYTES / itemsize) + (size_t)RF_WG_MC * RF_WG_KC;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(RNNFAST_NO_CLONES)
#define RF_WG_TARGET512 __attribute__((target("avx512f")))
#define RF_WG_TARGET256 __attribute__((target("avx2,fma")))

#define RF_WGRAD(S, T, TARGET, TILE)                                                              \
/* P := panels of B[0:kc, 0:nc] (rows ldb apart), each kc × nr, zero past nc. */                  \
TARGET static void rf_wg_pack_b_##S(int kc, int nc, const T *B, int ldb, T *P) {                  \
    const int nr = RF_NR_BYTES / (int)sizeof(T);                                                  \
    for (int p0 = 0; p0 < nc; p0 += nr) {                                                         \
        T *panel = P + (size_t)p0 * kc;                                                           \
        const int ncols = nc - p0 < nr ? nc - p0 : nr;                                            \
        if (ncols == nr) {                 /* a constant size, so the copy is inlined, not a call */ \
            for (int k = 0; k < kc; ++k) memcpy(panel + (size_t)k * nr, B + (size_t)k * ldb + p0, RF_NR_BYTES); \
        } else {                                                                                  \
            memset(panel, 0, (size_t)kc * nr * sizeof(T));                                       \
            for (int k = 0; k < kc; ++k)                                                          \
                memcpy(panel + (size_t)k * nr, B + (size_t)k * ldb + p0, (size_t)ncols * sizeof(T)); \
        }                                                                                         \
    }                                                                                             \
}                                                                                                 \
/* P := micro-panels of Aᵀ[0:mc, 0:kc] (A is (kc, ·), rows lda apart): micro-panel i holds, for each k,  \
 * A[k][i·MR .. i·MR + MR) side by side, zero past mc. */                                         \
TARGET static void rf_wg_pack_a_##S(int kc, int mc, const T *A, int lda, T *P) {            \
    for (int i0 = 0; i0 < mc; i0 += RF_WG_MR) {                                                   \
        T *mp = P + (size_t)i0 * kc;                                                              \
        const int rows = mc - i0 < RF_WG_MR ? mc - i0 : RF_WG_MR;                                 \
        if (rows == RF_WG_MR) {            /* a constant size, so the copy is inlined, not a call */ \
            for (int k = 0; k < kc; ++k)                                                          \
                memcpy(mp + (size_t)k * RF_WG_MR, A + (size_t)k * lda + i0, RF_WG_MR * sizeof(T)); \
            continue;                                                                             \
        }                                                                                         \
        for (int k = 0; k < kc; ++k) {                                                            \
            T *dst = mp + (size_t)k * RF_WG_MR;                                                   \
            memcpy(dst, A + (size_t)k * lda + i0, (size_t)rows * sizeof(T));                      \
            memset(dst + rows, 0, (size_t)(RF_WG_MR - rows) * sizeof(T));                         \
        }                                                                                         \
    }                                                                                             \
}                                                                                                 \
/* [C1 | C2] (M, N1 + N2) += Aᵀ [B1 | B2]: two products that share A in one pass, A packed once for both  \
 * (dW_hh and dW_ih from dA); N1 must be whole panels when N2 > 0, so that no panel straddles the two.    \
 * Each element of C sums exactly as in a product of its own. work: rf_wgrad_work_size(sizeof(T)). */     \
TARGET static void rf_wgrad2_##S(int M, int N1, int N2, int K, const T *A, int lda,                \
                                 const T *B1, int ldb1, T *C1, int ldc1,                          \
                                 const T *B2, int ldb2, T *C2, int ldc2, T *work) {               \
    const int nr = RF_NR_BYTES / (int)sizeof(T), NC = RF_WG_NC_BYTES / (int)sizeof(T), N = N1 + N2; \
    T *Pb = work, *Pa = work + (size_t)RF_WG_KC * NC;                                             \
    for (int jc = 0; jc < N; jc += NC) {                                                          \
        const int nc = N - jc < NC ? N - jc : NC;                                                 \
        const int n1 = jc >= N1 ? 0 : (N1 - jc < nc ? N1 - jc : nc);   /* columns of part 1 here */ \
        for (int pc = 0; pc < K; pc += RF_WG_KC) {                                                \
            const int kc = K - pc < RF_WG_KC ? K - pc : RF_WG_KC;                                 \
            if (n1 > 0) rf_wg_pack_b_##S(kc, n1, B1 + (size_t)pc * ldb1 + jc, ldb1, Pb);          \
            if (nc > n1) rf_wg_pack_b_##S(kc, nc - n1, B2 + (size_t)pc * ldb2 + (jc + n1 - N1), ldb2, \
                                          Pb + (size_t)n1 * kc);                                  \
            for (int ic = 0; ic < M; ic += RF_WG_MC) {                                            \
                const int mc = M - ic < RF_WG_MC ? M - ic : RF_WG_MC;                             \
                rf_wg_pack_a_##S(kc, mc, A + (size_t)pc * lda + ic, lda, Pa);                     \
                for (int p0 = 0; p0 < nc; p0 += nr) {                                             \
                    const int v = jc + p0, one = p0 < n1;                                         \
                    T *c = one ? C1 + v : C2 + (v - N1);                                          \
                    const int ldc = one ? ldc1 : ldc2, end = one ? n1 : nc;                       \
                    for (int i0 = 0; i0 < mc; i0 += RF_WG_MR)                                     \
                        TILE(kc, Pa + (size_t)i0 * kc, Pb + (size_t)p0 * kc,                      \
                             c + (size_t)(ic + i0) * ldc, ldc,                                    \
                             mc - i0 < RF_WG_MR ? mc - i0 : RF_WG_MR,                             \
                             end - p0 < nr ? end - p0 : nr);                                      \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
}

#define RF_WG_TILE512(S, T, V)                                                                    \
/* C rows [0, rows), columns [0, ncols) += a · b over kc (a micro-panel, b a panel). */            \
RF_WG_TARGET512 static inline __attribute__((always_inline))                                       \
void rf_wg_tile512_##S(int kc, const T *a, const T *b, T *C, int ldc, int rows, int ncols) {           \
    const int vl = 64 / (int)sizeof(T), nr = 2 * vl;                                              \
    const V zero = {0};                                                                           \
    V acc[RF_WG_MR][2];                                                                           \
    _Pragma("GCC unroll 12")                                                                      \
    for (int r = 0; r < RF_WG_MR; ++r) {                                                          \
        acc[r][0] = acc[r][1] = zero;                                                             \
        if (r < rows) {                                                                           \
            __builtin_prefetch(C + (size_t)r * ldc, 1, 3);                                        \
            __builtin_prefetch(C + (size_t)r * ldc + vl, 1, 3);                                   \
            if (ncols == nr) memcpy(acc[r], C + (size_t)r * ldc, 2 * 64);                         \
            else memcpy(acc[r], C + (size_t)r * ldc, (size_t)ncols * sizeof(T));                  \
        }                                                                                         \
    }                                                                                             \
    for (int k = 0; k < kc; ++k) {                                                                \
        V w0, w1;                                                                                 \
        memcpy(&w0, b + (size_t)k * nr, 64); memcpy(&w1, b + (size_t)k * nr + vl, 64);            \
        _Pragma("GCC unroll 12")                                                                  \
        for (int r = 0; r < RF_WG_MR; ++r) {                                                      \
            const T s = a[(size_t)k * RF_WG_MR + r];                                              \
            acc[r][0] += s * w0; acc[r][1] += s * w1;                                             \
        }                                                                                         \
    }                                                                                             \
    if (rows == RF_WG_MR && ncols == nr) {                                                        \
        _Pragma("GCC unroll 12")                                                                  \
        for (int r = 0; r < RF_WG_MR; ++r) memcpy(C + (size_t)r * ldc, acc[r], 2 * 64);           \
    } else {                                                                                      \
        for (int r = 0; r < rows; ++r) memcpy(C + (size_t)r * ldc, acc[r], (size_t)ncols * sizeof(T)); \
    }                                                                                             \
}

/* The same tile on AVX2 + FMA: four passes of 6 rows × half a panel (12 accumulators of 32 bytes). */
#define RF_WG_TILE256(S, T, V)                                                                    \
RF_WG_TARGET256 static inline __attribute__((always_inline))                                       \
void rf_wg_tile256_##S(int kc, const T *a, const T *b, T *C, int ldc, int rows, int ncols) {       \
    const int vl = 32 / (int)sizeof(T), hw = 2 * vl, nr = 2 * hw;                                 \
    const V zero = {0};                                                                           \
    for (int r0 = 0; r0 < rows; r0 += 6) {                                                        \
        const int rr = rows - r0 < 6 ? rows - r0 : 6;                                             \
        for (int c0 = 0; c0 < ncols; c0 += hw) {                                                  \
            const int cc = ncols - c0 < hw ? ncols - c0 : hw;                                     \
            V acc[6][2];           /* vector loads and lane access only: an address taken (a memcpy) \
                                      would keep the accumulators in memory */                   \
            _Pragma("GCC unroll 6")                                                               \
            for (int r = 0; r < 6; ++r) {                                                         \
                const T *c = C + (size_t)(r0 + r) * ldc + c0;                                     \
                acc[r][0] = acc[r][1] = zero;                                                     \
                if (r < rr && cc == hw) { acc[r][0] = *(const V *)c; acc[r][1] = *(const V *)(c + vl); } \
                else if (r < rr) { for (int j = 0; j < cc; ++j) acc[r][j / vl][j % vl] = c[j]; }  \
            }                                                                                     \
            for (int k = 0; k < kc; ++k) {                                                        \
                const V w0 = *(const V *)(b + (size_t)k * nr + c0);                               \
                const V w1 = *(const V *)(b + (size_t)k * nr + c0 + vl);                          \
                _Pragma("GCC unroll 6")                                                           \
                for (int r = 0; r < 6; ++r) {                                                     \
                    const T s = a[(size_t)k * RF_WG_MR + r0 + r];                                 \
                    acc[r][0] += s * w0; acc[r][1] += s * w1;                                     \
                }                                                                                 \
            }                                                                                     \
            _Pragma("GCC unroll 6")                                                               \
            for (int r = 0; r < 6; ++r) {                                                         \
                T *c = C + (size_t)(r0 + r) * ldc + c0;                                           \
                if (r < rr && cc == hw) { *(V *)c = acc[r][0]; *(V *)(c + vl) = acc[r][1]; }      \
                else if (r < rr) { for (int j = 0; j < cc; ++j) c[j] = acc[r][j / vl][j % vl]; }  \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
}

RF_WG_TILE512(f, float, rf_vf)
RF_WG_TILE512(d, double, rf_vd)
RF_WG_TILE256(f, float, rf_vf8)
RF_WG_TILE256(d, double, rf_vd4)
RF_WGRAD(512_f, float, RF_WG_TARGET512, rf_wg_tile512_f)
RF_WGRAD(512_d, double, RF_WG_TARGET512, rf_wg_tile512_d)
RF_WGRAD(256_f, float, RF_WG_TARGET256, rf_wg_tile256_f)
RF_WGRAD(256_d, double, RF_WG_TARGET256, rf_wg_tile256_d)

/* [C1 | C2] += Aᵀ [B1 | B2] and C += Aᵀ B (above) on the widest tile the CPU runs. */
#define RF_WGRAD_DISPATCH(S, T)                                                                   \
static void rf_wgrad2_##S(int M, int N1, int N2, int K, const T *A, int lda, const T *B1, int ldb1, T *C1, \
                          int ldc1, const T *B2, int ldb2, T *C2, int ldc2, T *work) {            \
    if (rf_has_avx512()) rf_wgrad2_512_##S(M, N1, N2, K, A, lda, B1, ldb1, C1, ldc1, B2, ldb2, C2, ldc2, work); \
    else rf_wgrad2_256_##S(M, N1, N2, K, A, lda, B1, ldb1, C1, ldc1, B2, ldb2, C2, ldc2, work);   \
}                                                                                                 \
static void rf_wgrad_##S(int M, int N, int K, const T *A, int lda, const T *B, int ldb, T *C, int ldc, T *work) { \
    rf_wgrad2_##S(M, N, 0, K, A, lda, B, ldb, C, ldc, NULL, 0, NULL, 0, work);                    \
}
RF_WGRAD_DISPATCH(f, float)
RF_WGRAD_DISPATCH(d, double)

static int rf_wgrad_available(void) { return rf_has_avx512() || rf_has_avx2_fma(); }
#else
static int rf_wgrad_available(void) { return 0; }
#define RF_WGRAD2_NONE(S, T)                                                                      \
static void rf_wgrad2_##S(int M, int N1, int N2, int K, const T *A, int lda, const T *B1, int ldb1, T *C1, \
                          int ldc1, const T *B2, int ldb2, T *C2, int ldc2, T *work) {            \
    (void)M; (void)N1; (void)N2; (void)K; (void)A; (void)lda; (void)B1; (void)ldb1; (void)C1; (void)ldc1; \
    (void)B2; (void)ldb2; (void)C2; (void)ldc2; (void)work;                                      \
}
RF_WGRAD2_NONE(f, float)
RF_WGRAD2_NONE(d, double)
static void rf_wgrad_f(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
                       float *work) {
    (void)M; (void)N; (void)K; (void)A; (void)lda; (void)B; (void)ldb; (void)C; (void)ldc; (void)work;
}
static void rf_wgrad_d(int M, int N, int K, const double *A, int lda, const double *B, int ldb, double *C, int ldc,
                       double *work) {
    (void)M; (void)N; (void)K; (void)A; (void)lda; (void)B; (void)ldb; (void)C; (void)ldc; (void)work;
}
#endif

#endif
