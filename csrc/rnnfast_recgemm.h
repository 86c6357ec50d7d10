/*
 * rnnfast_recgemm.h: the per-step recurrent product C (m, N) (+)= A (m, K) @ B (K, N) for small m.
 *
 * Inside the time loop B (W_hhᵀ forward, W_hh backward) is the same at every step, but a BLAS call
 * re-packs it every time, a sizeable part of a small step. Here B is packed once per kernel call into
 * panels of RF_NR columns, each panel K rows of RF_NR contiguous values (zero-padded past N):
 *     P[p][k][j] = B[k][p·RF_NR + j]
 * and a register-blocked micro-kernel computes RF_MR rows × RF_NR columns at a time:
 *     acc[r][:] += A[r][k] · P[p][k][:]   for k = 0..K-1,   then C[r][p·RF_NR + :] (+)= acc[r][:]
 * The accumulators are GCC/Clang vector-extension values (two 64-byte vectors per row), so they stay in
 * registers: 8 zmm on AVX-512, 16 ymm on AVX2 (the target_clones pick at run time). Other compilers get
 * a plain loop.
 */
#ifndef RNNFAST_RECGEMM_H
#define RNNFAST_RECGEMM_H

#include <stddef.h>
#include <string.h>

#include "rnnfast_pointwise.h"   /* RF_CLONES */

#define RF_NR_BYTES 128          /* panel width in bytes: 32 floats or 16 doubles (recurrent.pyx reads it too) */
#define RF_MR 4                  /* rows per micro-tile */

/* ----------------------------------------------------------------------------------------- packing */
/* Rows of k per pass of a transposing pack: 64 panel rows (8 KB of floats) stay in L1 while the 32 columns
 * fill them; one pass over all K thrashes it (benchmarks/README.md, design measurements). */
#define RF_PACK_KB 64

/* Panel p of P (columns p·nr .. p·nr + nr − 1, zero past N), where B[k][n] = W[n][k] (trans = 1, W is
 * (N, K)) or W[k][n] (trans = 0, W (K, N)). The panels are independent, so threads can share the work. */
#define RF_PACK_PANEL(NAME, T)                                                                    \
static void NAME(int trans, int K, int N, const T *W, T *P, int p) {                              \
    const int nr = RF_NR_BYTES / (int)sizeof(T);                                                  \
    const int p0 = p * nr, ncols = N - p0 < nr ? N - p0 : nr;                                     \
    T *panel = P + (size_t)p0 * K;                                                                \
    if (ncols < nr) memset(panel, 0, (size_t)K * nr * sizeof(T));                                 \
    if (trans) {          /* W's rows are contiguous in k: read along them, RF_PACK_KB values of k at a */ \
        for (int k0 = 0; k0 < K; k0 += RF_PACK_KB) {     /* time, so that the panel rows written stay in L1 */ \
            const int k1 = K - k0 < RF_PACK_KB ? K : k0 + RF_PACK_KB;                             \
            for (int j = 0; j < ncols; ++j) {                                                     \
                const T *w = W + (size_t)(p0 + j) * K;                                            \
                for (int k = k0; k < k1; ++k) panel[(size_t)k * nr + j] = w[k];                   \
            }                                                                                     \
        }                                                                                         \
    } else {                                                                                      \
        for (int k = 0; k < K; ++k)                                                               \
            memcpy(panel + (size_t)k * nr, W + (size_t)k * N + p0, (size_t)ncols * sizeof(T));     \
    }                                                                                             \
}
RF_PACK_PANEL(rf_pack_panel_f, float)
RF_PACK_PANEL(rf_pack_panel_d, double)

/* All panels of P, shared out among the threads of the enclosing parallel region (an orphaned `omp for`,
 * whose closing barrier leaves P whole for every thread); called outside one, a single thread packs all. */
#define RF_PACK_BY_TEAM(NAME, PANEL, T)                                                           \
static void NAME(int trans, int K, int N, const T *W, T *P) {                                     \
    const int panels = (N + RF_NR_BYTES / (int)sizeof(T) - 1) / (RF_NR_BYTES / (int)sizeof(T));    \
    _Pragma("omp for schedule(static)")                                                           \
    for (int p = 0; p < panels; ++p) PANEL(trans, K, N, W, P, p);                                 \
}
RF_PACK_BY_TEAM(rf_pack_by_team_f, rf_pack_panel_f, float)
RF_PACK_BY_TEAM(rf_pack_by_team_d, rf_pack_panel_d, double)

#if defined(__GNUC__) || defined(__clang__)
typedef float rf_vf __attribute__((vector_size(64), aligned(4)));    /* 16 floats, unaligned loads */
typedef double rf_vd __attribute__((vector_size(64), aligned(8)));   /* 8 doubles */
/* Halves and quarters of them. GCC keeps a vector wider than the target's registers in memory (a 64-byte
 * vector in an AVX2 clone goes through the stack at every operation), so code that AVX2 runs uses these. */
typedef float rf_vf8 __attribute__((vector_size(32), aligned(4)));
typedef float rf_vf4 __attribute__((vector_size(16), aligned(4)));
typedef double rf_vd4 __attribute__((vector_size(32), aligned(8)));
typedef double rf_vd2 __attribute__((vector_size(16), aligned(8)));

#define RF_INLINE static inline __attribute__((always_inline))

/* One row of a tile's result, two vectors: c[0:ncols] (+)= acc. A whole row (every tile but the last panel's)
 * goes by two vector stores (loads and adds when accumulating): the element-wise loop that a partial row
 * needs cost about 8% of a product with K = 128 on AVX2 (benchmarks/README.md, design measurements). The
 * same additions either way, so the same bits. */
#define RF_STORE(NAME, T, V)                                                                      \
RF_INLINE void NAME(const V *acc, T *c, int ncols, int accumulate) {                              \
    const int vl = (int)(sizeof(V) / sizeof(T));                                                  \
    if (ncols == 2 * vl) {                                                                        \
        V *c0 = (V *)c, *c1 = (V *)(c + vl);                                                      \
        if (accumulate) { *c0 += acc[0]; *c1 += acc[1]; }                                         \
        else { *c0 = acc[0]; *c1 = acc[1]; }                                                      \
        return;                                                                                   \
    }                                                                                             \
    T out[2 * sizeof(V) / sizeof(T)];                                                             \
    memcpy(out, acc, sizeof out);                                                                 \
    if (accumulate) { for (int j = 0; j < ncols; ++j) c[j] += out[j]; }                           \
    else { for (int j = 0; j < ncols; ++j) c[j] = out[j]; }                                       \
}
RF_STORE(rf_store_f, float, rf_vf)
RF_STORE(rf_store_d, double, rf_vd)
RF_STORE(rf_store8_f, float, rf_vf8)        /* half a panel: the AVX2 tiles */
RF_STORE(rf_store4_d, double, rf_vd4)

/* C rows [0, RF_MR), the columns of one panel (ncols valid): C (+)= A @ panel. */
#define RF_TILE(NAME, T, V, STORE)                                                                \
RF_INLINE void NAME(int mr, int K, const T *A, int lda, const T *panel, T *C, int ldc,            \
                    int ncols, int accumulate) {                                                  \
    const int vl = 64 / (int)sizeof(T);                                                           \
    const V zero = {0};                                                                           \
    V c00 = zero, c01 = zero, c10 = zero, c11 = zero, c20 = zero, c21 = zero, c30 = zero, c31 = zero; \
    const T *a0 = A, *a1 = A + lda, *a2 = A + 2 * lda, *a3 = A + 3 * lda;                         \
    (void)mr;                                                                                     \
    for (int k = 0; k < K; ++k) {                                                                 \
        V w0 = *(const V *)(panel + (size_t)k * 2 * vl);                                          \
        V w1 = *(const V *)(panel + (size_t)k * 2 * vl + vl);                                     \
        c00 += a0[k] * w0; c01 += a0[k] * w1;                                                     \
        c10 += a1[k] * w0; c11 += a1[k] * w1;                                                     \
        c20 += a2[k] * w0; c21 += a2[k] * w1;                                                     \
        c30 += a3[k] * w0; c31 += a3[k] * w1;                                                     \
    }                                                                                             \
    V acc[RF_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};                           \
    for (int r = 0; r < RF_MR; ++r) STORE(acc[r], C + (size_t)r * ldc, ncols, accumulate);        \
}
RF_TILE(rf_tile_f, float, rf_vf, rf_store_f)
RF_TILE(rf_tile_d, double, rf_vd, rf_store_d)
#else
#define RF_TILE(NAME, T, V)                                                                       \
static inline void NAME(int mr, int K, const T *A, int lda, const T *panel, T *C, int ldc,        \
                        int ncols, int accumulate) {                                              \
    const int nr = RF_NR_BYTES / (int)sizeof(T);                                                  \
    for (int r = 0; r < mr; ++r) {                                                                \
        T acc[RF_NR_BYTES / sizeof(T)] = {0};                                                     \
        for (int k = 0; k < K; ++k)                                                               \
            for (int j = 0; j < nr; ++j) acc[j] += A[(size_t)r * lda + k] * panel[(size_t)k * nr + j]; \
        T *c = C + (size_t)r * ldc;                                                               \
        for (int j = 0; j < ncols; ++j) c[j] = (accumulate ? c[j] : (T)0) + acc[j];               \
    }                                                                                             \
}
RF_TILE(rf_tile_f, float, float)
RF_TILE(rf_tile_d, double, double)
#endif

/* One row, with the same summation order as a row of RF_TILE (k ascending, one chain per vector), so a
 * row's result does not depend on which other rows share its batch or its thread's chunk. */
#define RF_ROW(NAME, T, V, STORE)                                                                 \
RF_INLINE void NAME(int K, const T *a, const T *panel, T *c, int ncols, int accumulate) {         \
    const int vl = 64 / (int)sizeof(T);                                                           \
    const V zero = {0};                                                                           \
    V acc[2] = {zero, zero};                                                                      \
    for (int k = 0; k < K; ++k) {                                                                 \
        const T *w = panel + (size_t)k * 2 * vl;                                                  \
        acc[0] += a[k] * *(const V *)w;                                                           \
        acc[1] += a[k] * *(const V *)(w + vl);                                                    \
    }                                                                                             \
    STORE(acc, c, ncols, accumulate);                                                             \
}
#if defined(__GNUC__) || defined(__clang__)
RF_ROW(rf_row_f, float, rf_vf, rf_store_f)
RF_ROW(rf_row_d, double, rf_vd, rf_store_d)
#else
#define rf_row_f(K, a, panel, c, ncols, acc) rf_tile_f(1, K, a, 0, panel, c, 0, ncols, acc)
#define rf_row_d(K, a, panel, c, ncols, acc) rf_tile_d(1, K, a, 0, panel, c, 0, ncols, acc)
#endif

/* C (m, N) := A (m, K) @ B + (accumulate ? C : 0), with B packed by rf_pack_panel_* with kp >= K rows a panel:
 * P points at row k0 of the first panel, and the product uses rows k0 .. k0 + K − 1 of each (B's rows
 * k0 .. k0 + K − 1). WIDE (tiles of more rows) runs first where the target has the registers for it; every
 * row sums in the same order whichever tile takes it. */
#define RF_RECGEMM(NAME, ATTR, T, WIDE, TILE, ROW)                                                \
ATTR static void NAME(int m, int N, int K, const T *A, int lda, const T *P, int kp, T *C, int ldc, \
                      int accumulate) {                                                           \
    const int nr = RF_NR_BYTES / (int)sizeof(T);                                                  \
    for (int p0 = 0; p0 < N; p0 += nr) {                                                          \
        const T *panel = P + (size_t)p0 * kp;                                                     \
        int ncols = N - p0 < nr ? N - p0 : nr;                                                    \
        int i0 = 0;                                                                               \
        WIDE                                                                                      \
        for (; i0 + RF_MR <= m; i0 += RF_MR)                                                      \
            TILE(RF_MR, K, A + (size_t)i0 * lda, lda, panel, C + (size_t)i0 * ldc + p0, ldc,      \
                 ncols, accumulate);                                                              \
        for (; i0 < m; ++i0)                                                                      \
            ROW(K, A + (size_t)i0 * lda, panel, C + (size_t)i0 * ldc + p0, ncols, accumulate);    \
    }                                                                                             \
}
RF_RECGEMM(rf_recgemm_any_f, RF_CLONES, float, , rf_tile_f, rf_row_f)
RF_RECGEMM(rf_recgemm_any_d, RF_CLONES, double, , rf_tile_d, rf_row_d)

/* The widest instruction set the hand-written products may use (set_isa_limit): 2 AVX-512, 1 AVX2 + FMA,
 * 0 the portable loop (target clones of it). Lowered only by the tests, to check every path on one machine. */
static int rf_isa_limit = 2;
static int rf_set_isa_limit(int level) { int old = rf_isa_limit; rf_isa_limit = level; return old; }

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(RNNFAST_NO_CLONES)
/* AVX-512 has 32 vector registers, enough for tiles of more rows, which cut the panel traffic from L2 per
 * FMA (what limits the 4-row tile at large K): 12 rows (24 accumulators) beat 8 rows (16), which in turn
 * beat 4, and m = 32 in tiles of 10 or 14 rows lost (benchmarks/README.md, design measurements); in tiles
 * of 11, 11 and 10 it runs as fast as in 12, 12 and 8 (what counts is the number of tiles, each a pass
 * over the panel). AVX2's 16 registers cannot hold them, so these are separate functions chosen at run
 * time rather than target clones. */
/* ROWS rows × two vectors V of columns (a whole panel with 64-byte V, half of one with 32-byte V), the panel's
 * rows RF_NR_BYTES apart. */
#define RF_TILE_ROWS(NAME, T, V, STORE, ROWS)                                                     \
RF_INLINE void NAME(int K, const T *A, int lda, const T *panel, T *C, int ldc, int ncols,         \
                    int accumulate) {                                                             \
    const int vl = (int)(sizeof(V) / sizeof(T)), nr = RF_NR_BYTES / (int)sizeof(T);               \
    const V zero = {0};                                                                           \
    V acc[ROWS][2];                                                                               \
    _Pragma("GCC unroll 16")                                                                      \
    for (int r = 0; r < ROWS; ++r) acc[r][0] = acc[r][1] = zero;                                  \
    for (int k = 0; k < K; ++k) {                                                                 \
        V w0 = *(const V *)(panel + (size_t)k * nr);                                              \
        V w1 = *(const V *)(panel + (size_t)k * nr + vl);                                         \
        _Pragma("GCC unroll 16")                                                                  \
        for (int r = 0; r < ROWS; ++r) {                                                          \
            T a = A[(size_t)r * lda + k];                                                         \
            acc[r][0] += a * w0; acc[r][1] += a * w1;                                             \
        }                                                                                         \
    }                                                                                             \
    for (int r = 0; r < ROWS; ++r) STORE(acc[r], C + (size_t)r * ldc, ncols, accumulate);         \
}
#define RF_TILES_OF_EVERY_HEIGHT(P, T, V, STORE)                                                 \
RF_TILE_ROWS(P##1, T, V, STORE, 1)   RF_TILE_ROWS(P##2, T, V, STORE, 2)   RF_TILE_ROWS(P##3, T, V, STORE, 3)   \
RF_TILE_ROWS(P##4, T, V, STORE, 4)   RF_TILE_ROWS(P##5, T, V, STORE, 5)   RF_TILE_ROWS(P##6, T, V, STORE, 6)   \
RF_TILE_ROWS(P##7, T, V, STORE, 7)   RF_TILE_ROWS(P##8, T, V, STORE, 8)   RF_TILE_ROWS(P##9, T, V, STORE, 9)   \
RF_TILE_ROWS(P##10, T, V, STORE, 10) RF_TILE_ROWS(P##11, T, V, STORE, 11) RF_TILE_ROWS(P##12, T, V, STORE, 12) \
RF_INLINE void P##_any(int rows, int K, const T *A, int lda, const T *panel, T *C, int ldc, int ncols,      \
                      int accumulate) {                                                           \
    switch (rows) {                                                                               \
    case 1: P##1(K, A, lda, panel, C, ldc, ncols, accumulate); break;                             \
    case 2: P##2(K, A, lda, panel, C, ldc, ncols, accumulate); break;                             \
    case 3: P##3(K, A, lda, panel, C, ldc, ncols, accumulate); break;                             \
    case 4: P##4(K, A, lda, panel, C, ldc, ncols, accumulate); break;                             \
    case 5: P##5(K, A, lda, panel, C, ldc, ncols, accumulate); break;                             \
    case 6: P##6(K, A, lda, panel, C, ldc, ncols, accumulate); break;                             \
    case 7: P##7(K, A, lda, panel, C, ldc, ncols, accumulate); break;                             \
    case 8: P##8(K, A, lda, panel, C, ldc, ncols, accumulate); break;                             \
    case 9: P##9(K, A, lda, panel, C, ldc, ncols, accumulate); break;                             \
    case 10: P##10(K, A, lda, panel, C, ldc, ncols, accumulate); break;                           \
    case 11: P##11(K, A, lda, panel, C, ldc, ncols, accumulate); break;                           \
    default: P##12(K, A, lda, panel, C, ldc, ncols, accumulate); break;                           \
    }                                                                                             \
}
RF_TILES_OF_EVERY_HEIGHT(rf_tile_rows_f, float, rf_vf, rf_store_f)
RF_TILES_OF_EVERY_HEIGHT(rf_tile_rows_d, double, rf_vd, rf_store_d)

/* Rows [0, m) as ⌈m/12⌉ tiles of near-equal height (m = 16: 8 + 8; m = 13: 7 + 6, not 12 + 1): as few panel
 * passes as 12-row tiles take, and no tile so short that its few accumulator chains wait on the FMA latency
 * (a lone row costs about what 2 rows of a taller tile cost). In a packed batch the active rows shrink step
 * by step through every count, so the remainders are the common case (benchmarks/README.md, variable
 * lengths, fourth pass). */
#define RF_EQUAL_TILES(TILE, MAXROWS, PANEL, COL0, NCOLS)                                        \
    for (int t = 0, ntiles = (m + MAXROWS - 1) / MAXROWS; t < ntiles; ++t) {                      \
        const int rows = (int)(((long)m * (t + 1)) / ntiles - ((long)m * t) / ntiles);            \
        TILE(rows, K, A + (size_t)i0 * lda, lda, PANEL, C + (size_t)i0 * ldc + (COL0), ldc, NCOLS, accumulate); \
        i0 += rows;                                                                               \
    }
#define RF_WIDE_ROWS(TILE) RF_EQUAL_TILES(TILE, 12, panel, p0, ncols)
RF_RECGEMM(rf_recgemm512_f, __attribute__((target("avx512f"))), float, RF_WIDE_ROWS(rf_tile_rows_f_any),
           rf_tile_f, rf_row_f)
RF_RECGEMM(rf_recgemm512_d, __attribute__((target("avx512f"))), double, RF_WIDE_ROWS(rf_tile_rows_d_any),
           rf_tile_d, rf_row_d)

/* AVX2 + FMA (Haswell and later, Zen): 16 ymm registers. The 64-byte vectors above, compiled for AVX2,
 * leave GCC broadcasting each a[k] through the stack and, before the clones were x86-64-v3, no FMA: 79% of an
 * LSTM step on an AMD EPYC without AVX-512, 15x slower than torch. Here each half of a panel (64 bytes,
 * two ymm) is a pass of tiles of up to 6 rows: 12 accumulators, two panel vectors and a broadcast, the
 * classic 6 x 16 Haswell micro-tile. Every element still sums k ascending in one FMA chain, so a row's
 * result is the same bits as on the AVX-512 path and does not depend on its tile. */
RF_TILES_OF_EVERY_HEIGHT(rf_half_rows_f, float, rf_vf8, rf_store8_f)      /* used up to 6 rows */
RF_TILES_OF_EVERY_HEIGHT(rf_half_rows_d, double, rf_vd4, rf_store4_d)

/* Rows [0, m) as ceil(m/6) tiles of near-equal height, for each half of each panel. */
#define RF_RECGEMM256(NAME, T, TILE)                                                              \
__attribute__((target("avx2,fma"))) static void NAME(int m, int N, int K, const T *A, int lda,   \
                                                     const T *P, int kp, T *C, int ldc, int accumulate) { \
    const int nr = RF_NR_BYTES / (int)sizeof(T), hw = nr / 2;                                     \
    for (int p0 = 0; p0 < N; p0 += nr) {                                                          \
        const T *panel = P + (size_t)p0 * kp;                                                     \
        for (int h0 = 0; h0 < nr && p0 + h0 < N; h0 += hw) {                                      \
            const int ncols = N - p0 - h0 < hw ? N - p0 - h0 : hw;                                \
            int i0 = 0;                                                                           \
            RF_EQUAL_TILES(TILE, 6, panel + h0, p0 + h0, ncols)                                   \
        }                                                                                         \
    }                                                                                             \
}
RF_RECGEMM256(rf_recgemm256_f, float, rf_half_rows_f_any)
RF_RECGEMM256(rf_recgemm256_d, double, rf_half_rows_d_any)

static int rf_has_avx512(void) {
    static int has = -1;                        /* a benign race: every thread stores the same value */
    if (has < 0) {
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx512f") != 0;
    }
    return has && rf_isa_limit >= 2;
}
static int rf_has_avx2_fma(void) {
    static int has = -1;
    if (has < 0) {
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return has && rf_isa_limit >= 1;
}
#define RF_DISPATCH(FAST, MID, ...)                                                               \
    if (rf_has_avx512()) { FAST(__VA_ARGS__); return; }                                           \
    if (rf_has_avx2_fma()) { MID(__VA_ARGS__); return; }
#else
#define RF_DISPATCH(FAST, MID, ...)
#endif

static void rf_recgemm_f(int m, int N, int K, const float *A, int lda, const float *P, int kp, float *C, int ldc,
                         int accumulate) {
    RF_DISPATCH(rf_recgemm512_f, rf_recgemm256_f, m, N, K, A, lda, P, kp, C, ldc, accumulate)
    rf_recgemm_any_f(m, N, K, A, lda, P, kp, C, ldc, accumulate);
}

static void rf_recgemm_d(int m, int N, int K, const double *A, int lda, const double *P, int kp, double *C,
                         int ldc, int accumulate) {
    RF_DISPATCH(rf_recgemm512_d, rf_recgemm256_d, m, N, K, A, lda, P, kp, C, ldc, accumulate)
    rf_recgemm_any_d(m, N, K, A, lda, P, kp, C, ldc, accumulate);
}

/* a[n] += Σ_k W[n][k] x[k], n < N: matrix-vector product by row dots (W row-major (N, K)). Used by the
 * streaming step, where the batch is a few rows and packing W would cost more than it saves. Four rows at a
 * time, each with one 32-byte vector of lane sums: x's vector is loaded once for the four, and the four
 * vectors are folded into their four sums together by pairwise shuffles, where one row at a time paid a whole
 * fold per row (benchmarks/README.md, streaming). Rows past the last four: one at a time, folded alone. */
#if defined(__GNUC__) || defined(__clang__)
typedef int rf_vi8 __attribute__((vector_size(32)));          /* shuffle masks of rf_vf8 */
typedef long long rf_vl4 __attribute__((vector_size(32)));    /* of rf_vd4 */
#if defined(__clang__)
#define RF_SHUF8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#define RF_SHUF4(a, b, i0, i1, i2, i3) __builtin_shufflevector(a, b, i0, i1, i2, i3)
#else
#define RF_SHUF8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shuffle(a, b, (rf_vi8){i0, i1, i2, i3, i4, i5, i6, i7})
#define RF_SHUF4(a, b, i0, i1, i2, i3) __builtin_shuffle(a, b, (rf_vl4){i0, i1, i2, i3})
#endif

/* The lane sums of s0..s3 into r[0..3]: pairs of adjacent lanes, then pairs of pairs, then the halves. */
RF_INLINE void rf_fold4_f(rf_vf8 s0, rf_vf8 s1, rf_vf8 s2, rf_vf8 s3, float *r) {
    rf_vf8 u0 = RF_SHUF8(s0, s1, 0, 8, 2, 10, 4, 12, 6, 14) + RF_SHUF8(s0, s1, 1, 9, 3, 11, 5, 13, 7, 15);
    rf_vf8 u1 = RF_SHUF8(s2, s3, 0, 8, 2, 10, 4, 12, 6, 14) + RF_SHUF8(s2, s3, 1, 9, 3, 11, 5, 13, 7, 15);
    rf_vf8 v = RF_SHUF8(u0, u1, 0, 1, 8, 9, 4, 5, 12, 13) + RF_SHUF8(u0, u1, 2, 3, 10, 11, 6, 7, 14, 15);
    r[0] = v[0] + v[4]; r[1] = v[1] + v[5]; r[2] = v[2] + v[6]; r[3] = v[3] + v[7];
}
RF_INLINE void rf_fold4_d(rf_vd4 s0, rf_vd4 s1, rf_vd4 s2, rf_vd4 s3, double *r) {
    rf_vd4 u0 = RF_SHUF4(s0, s1, 0, 4, 2, 6) + RF_SHUF4(s0, s1, 1, 5, 3, 7);
    rf_vd4 u1 = RF_SHUF4(s2, s3, 0, 4, 2, 6) + RF_SHUF4(s2, s3, 1, 5, 3, 7);
    rf_vd4 v = RF_SHUF4(u0, u1, 0, 1, 4, 5) + RF_SHUF4(u0, u1, 2, 3, 6, 7);
    r[0] = v[0]; r[1] = v[1]; r[2] = v[2]; r[3] = v[3];
}

#define RF_MATVEC(NAME, T, V, FOLD4)                                                              \
RF_CLONES static void NAME(int N, int K, const T *W, const T *x, T *a) {                          \
    enum { VL = 32 / sizeof(T) };                                                                 \
    const V zero = {0};                                                                           \
    const int kv = K - K % VL;                                                                    \
    int n = 0;                                                                                    \
    for (; n + 4 <= N; n += 4) {                                                                  \
        const T *w0 = W + (size_t)n * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;                \
        V s0 = zero, s1 = zero, s2 = zero, s3 = zero;                                             \
        for (int k = 0; k < kv; k += VL) {                                                        \
            const V xv = *(const V *)(x + k);                                                     \
            s0 += *(const V *)(w0 + k) * xv;                                                      \
            s1 += *(const V *)(w1 + k) * xv;                                                      \
            s2 += *(const V *)(w2 + k) * xv;                                                      \
            s3 += *(const V *)(w3 + k) * xv;                                                      \
        }                                                                                         \
        T r[4];                                                                                   \
        FOLD4(s0, s1, s2, s3, r);                                                                 \
        for (int k = kv; k < K; ++k) {                                                            \
            r[0] += w0[k] * x[k]; r[1] += w1[k] * x[k]; r[2] += w2[k] * x[k]; r[3] += w3[k] * x[k]; \
        }                                                                                         \
        a[n] += r[0]; a[n + 1] += r[1]; a[n + 2] += r[2]; a[n + 3] += r[3];                       \
    }                                                                                             \
    for (; n < N; ++n) {                                                                          \
        const T *w = W + (size_t)n * K;                                                           \
        V s = zero;                                                                               \
        for (int k = 0; k < kv; k += VL) s += *(const V *)(w + k) * *(const V *)(x + k);          \
        T r[4];                                                                                   \
        FOLD4(s, zero, zero, zero, r);                                                            \
        for (int k = kv; k < K; ++k) r[0] += w[k] * x[k];                                         \
        a[n] += r[0];                                                                             \
    }                                                                                             \
}
RF_MATVEC(rf_matvec_f, float, rf_vf8, rf_fold4_f)
RF_MATVEC(rf_matvec_d, double, rf_vd4, rf_fold4_d)
#else
#define RF_MATVEC(NAME, T)                                                                        \
static void NAME(int N, int K, const T *W, const T *x, T *a) {                                    \
    for (int n = 0; n < N; ++n) {                                                                 \
        T s = 0;                                                                                  \
        for (int k = 0; k < K; ++k) s += W[(size_t)n * K + k] * x[k];                             \
        a[n] += s;                                                                                \
    }                                                                                             \
}
RF_MATVEC(rf_matvec_f, float)
RF_MATVEC(rf_matvec_d, double)
#endif

#endif
