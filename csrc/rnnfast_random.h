/*
 * rnnfast_random.h: standard normal numbers for the estimators' input noise (_random.pxi splits the blocks
 * over the threads).
 *
 * The output is cut into blocks of RF_NORMAL_BLOCK elements. Block j draws from its own xoshiro256++ stream
 * (Blackman & Vigna), seeded by splitmix64 from (seed, j): the numbers depend on the seed and on each element's
 * position only, never on the thread count or on which thread ran a block.
 *
 * Each number is a ziggurat draw (Marsaglia & Tsang, "The ziggurat method for generating random variables",
 * 2000), 128 layers of area v under f(x) = exp(−x²/2), in double:
 *
 *   x_1 = r = 3.442619855899,  v = 9.91256303526217e-3,  x_0 = v / f(r)        (the base layer with the tail)
 *   x_{i+1} = √(−2 ln(v / x_i + f(x_i)))       i = 1 … 126;   x_128 = 0
 *
 * One 64-bit draw u gives the layer i (its low 7 bits), the sign (bit 7) and a uniform U (its top 52 bits, 53
 * in the fix-up's fresh draws); x = U·x_i is returned at once when x < x_{i+1} (97.2% of draws, one integer
 * comparison). Otherwise: in the base layer, a tail value r + a, a = −ln(U₁)/r, accepted when −2 ln(U₂) > a²;
 * in layer i ≥ 1, x itself when f(x_i) + U₃·(f(x_{i+1}) − f(x_i)) < f(x) (the wedge); else a fresh draw. The
 * layer index and the value come from disjoint bits (Doornik's fix of the original's correlation between them).
 *
 * A block runs in two passes: the fast pass draws every element's first u from 8 streams side by side (AVX2
 * where the CPU has it) and keeps the accepted x; the fix-up then finishes each rejected draw, in order, on a
 * ninth stream of the block.
 */
#ifndef RNNFAST_RANDOM_H
#define RNNFAST_RANDOM_H

#include <math.h>
#include <stdint.h>
#include "rnnfast_recgemm.h"   /* rf_has_avx2_fma: the instruction set, capped by set_isa_limit */

#define RF_NORMAL_BLOCK 4096
#define RF_ZIG_LAYERS 128

static double rf_zig_x[RF_ZIG_LAYERS + 1];    /* x_i, the layers' right edges */
static double rf_zig_f[RF_ZIG_LAYERS + 1];    /* f(x_i) */
static double rf_zig_w[RF_ZIG_LAYERS];        /* x_i / 2⁵³: U's 53 bits times this is U·x_i */
static int64_t rf_zig_k[RF_ZIG_LAYERS];       /* ⌊2⁵³ x_{i+1}/x_i⌋: U's bits below this give x < x_{i+1} */
static double rf_zig_w52[RF_ZIG_LAYERS];      /* x_i / 2⁵², and ⌊2⁵² x_{i+1}/x_i⌋: the same for the fast */
static int64_t rf_zig_k52[RF_ZIG_LAYERS];     /* pass's 52 bits */
static const double rf_zig_r = 3.442619855899;

/* The tables, once, when the module is imported (before any thread reads them). */
static void rf_normal_init(void) {
    const double v = 9.91256303526217e-3, two53 = 9007199254740992.0;
    rf_zig_x[1] = rf_zig_r;
    rf_zig_x[0] = v / exp(-0.5 * rf_zig_r * rf_zig_r);
    for (int i = 1; i < RF_ZIG_LAYERS - 1; ++i)
        rf_zig_x[i + 1] = sqrt(-2.0 * log(v / rf_zig_x[i] + exp(-0.5 * rf_zig_x[i] * rf_zig_x[i])));
    rf_zig_x[RF_ZIG_LAYERS] = 0.0;
    for (int i = 0; i <= RF_ZIG_LAYERS; ++i)
        rf_zig_f[i] = exp(-0.5 * rf_zig_x[i] * rf_zig_x[i]);
    for (int i = 0; i < RF_ZIG_LAYERS; ++i) {
        rf_zig_w[i] = rf_zig_x[i] / two53;
        rf_zig_k[i] = (int64_t) (rf_zig_x[i + 1] / rf_zig_x[i] * two53);
        rf_zig_w52[i] = 2.0 * rf_zig_w[i];
        rf_zig_k52[i] = (int64_t) (rf_zig_x[i + 1] / rf_zig_x[i] * (0.5 * two53));
    }
}

typedef struct { uint64_t s[4]; } rf_xoshiro;

static inline uint64_t rf_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rf_splitmix64(uint64_t *z) {
    uint64_t r = (*z += 0x9E3779B97F4A7C15ULL);
    r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ULL;
    r = (r ^ (r >> 27)) * 0x94D049BB133111EBULL;
    return r ^ (r >> 31);
}

static inline uint64_t rf_xoshiro_next(rf_xoshiro *g) {
    uint64_t *s = g->s;
    const uint64_t result = rf_rotl(s[0] + s[3], 23) + s[0];
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rf_rotl(s[3], 45);
    return result;
}

/* Block j's stream: splitmix64 from the seed, then from j, so that neighbouring seeds and blocks share nothing. */
static inline void rf_xoshiro_seed(rf_xoshiro *g, uint64_t seed, uint64_t block) {
    uint64_t z = seed;
    z = rf_splitmix64(&z) ^ block;
    for (int i = 0; i < 4; ++i)
        g->s[i] = rf_splitmix64(&z);
}

/* A uniform in (0, 1]: never 0, so that its logarithm is finite. */
static inline double rf_uniform_open0(rf_xoshiro *g) {
    return (double) ((rf_xoshiro_next(g) >> 11) + 1) * (1.0 / 9007199254740992.0);
}

static inline double rf_normal_slow(rf_xoshiro *g, int i, double x) {
    if (i == 0) {                                               /* the tail beyond r */
        double a, b;
        do {
            a = -log(rf_uniform_open0(g)) / rf_zig_r;
            b = -log(rf_uniform_open0(g));
        } while (b + b < a * a);
        return rf_zig_r + a;
    }
    const double y = rf_zig_f[i] + rf_uniform_open0(g) * (rf_zig_f[i + 1] - rf_zig_f[i]);
    return y < exp(-0.5 * x * x) ? x : -1.0;                   /* −1: rejected, draw again */
}

/* One full ziggurat draw, on one stream: the fix-up of the draws the fast pass rejected. */
static double rf_normal(rf_xoshiro *g) {
    for (;;) {
        const uint64_t u = rf_xoshiro_next(g);
        const int i = (int) (u & (RF_ZIG_LAYERS - 1));
        const int64_t bits = (int64_t) (u >> 11);               /* U·2⁵³ (signed: one instruction to double) */
        double x = (double) bits * rf_zig_w[i];
        if (bits >= rf_zig_k[i]) {
            x = rf_normal_slow(g, i, x);
            if (x < 0.0)
                continue;
        }
        return (u & RF_ZIG_LAYERS) ? -x : x;
    }
}

/* The rest of the draw u that the fast pass rejected: the tail or the wedge test of the same x, then fresh draws. */
static double rf_normal_rejected(rf_xoshiro *g, uint64_t u) {
    const int i = (int) (u & (RF_ZIG_LAYERS - 1));
    const double x = rf_normal_slow(g, i, (double) (int64_t) (u >> 12) * rf_zig_w52[i]);
    if (x < 0.0)
        return rf_normal(g);
    return (u & RF_ZIG_LAYERS) ? -x : x;
}

/* The fast pass: RF_NORMAL_LANES streams side by side (element e of a block reads lane e mod RF_NORMAL_LANES), so
 * that the generator and the fast acceptance run on vectors; a rejected draw is left as NaN for the fix-up. U·2⁵²
 * goes to double through the exponent trick (2⁵² + m as the bits of a double, minus 2⁵²), exact, with no 64-bit
 * integer conversion (AVX2 has none). The AVX2 version below gives the same bits as this loop (a test checks). */
#define RF_NORMAL_LANES 8

typedef struct { uint64_t s0[RF_NORMAL_LANES], s1[RF_NORMAL_LANES], s2[RF_NORMAL_LANES], s3[RF_NORMAL_LANES]; }
    rf_xoshiro_lanes;

static void rf_normal_fast_pass_any(int64_t n, double *z, uint64_t *draw, rf_xoshiro_lanes *g) {
    for (int64_t j = 0; j < n; j += RF_NORMAL_LANES) {
        for (int l = 0; l < RF_NORMAL_LANES; ++l) {
            const uint64_t s0 = g->s0[l], s1 = g->s1[l], s2 = g->s2[l], s3 = g->s3[l];
            const uint64_t u = rf_rotl(s0 + s3, 23) + s0;       /* xoshiro256++, lane l */
            const uint64_t t = s1 << 17, n2 = s2 ^ s0, n3 = s3 ^ s1;
            g->s0[l] = s0 ^ n3;
            g->s1[l] = s1 ^ n2;
            g->s2[l] = n2 ^ t;
            g->s3[l] = rf_rotl(n3, 45);
            const int i = (int) (u & (RF_ZIG_LAYERS - 1));
            const uint64_t m = u >> 12;                         /* U·2⁵² */
            union { uint64_t i; double d; } b = { m | 0x4330000000000000ULL };
            const double x = (b.d - 4503599627370496.0) * rf_zig_w52[i];
            const double signed_x = (u & RF_ZIG_LAYERS) ? -x : x;
            z[j + l] = (int64_t) m < rf_zig_k52[i] ? signed_x : NAN;
            draw[j + l] = u;
        }
    }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(RNNFAST_NO_CLONES)
#include <immintrin.h>

#define rf_rotl4(x, k) _mm256_or_si256(_mm256_slli_epi64((x), (k)), _mm256_srli_epi64((x), 64 - (k)))

/* The loop above, four lanes a vector, two vectors a step; the tables read by gathers. */
__attribute__((target("avx2"))) static void rf_normal_fast_pass_avx2(int64_t n, double *z, uint64_t *draw,
                                                                     rf_xoshiro_lanes *g) {
    const __m256i low7 = _mm256_set1_epi64x(RF_ZIG_LAYERS - 1), bit7 = _mm256_set1_epi64x(RF_ZIG_LAYERS);
    const __m256i magic = _mm256_set1_epi64x(0x4330000000000000LL);
    const __m256d two52 = _mm256_set1_pd(4503599627370496.0), nan = _mm256_set1_pd(NAN);
    for (int h = 0; h < RF_NORMAL_LANES; h += 4) {
        __m256i s0 = _mm256_loadu_si256((const __m256i *) (g->s0 + h));
        __m256i s1 = _mm256_loadu_si256((const __m256i *) (g->s1 + h));
        __m256i s2 = _mm256_loadu_si256((const __m256i *) (g->s2 + h));
        __m256i s3 = _mm256_loadu_si256((const __m256i *) (g->s3 + h));
        for (int64_t j = 0; j < n; j += RF_NORMAL_LANES) {
            const __m256i u = _mm256_add_epi64(rf_rotl4(_mm256_add_epi64(s0, s3), 23), s0);
            const __m256i t = _mm256_slli_epi64(s1, 17);
            const __m256i n2 = _mm256_xor_si256(s2, s0), n3 = _mm256_xor_si256(s3, s1);
            s0 = _mm256_xor_si256(s0, n3);
            s1 = _mm256_xor_si256(s1, n2);
            s2 = _mm256_xor_si256(n2, t);
            s3 = rf_rotl4(n3, 45);
            const __m256i i = _mm256_and_si256(u, low7);
            const __m256i m = _mm256_srli_epi64(u, 12);
            const __m256d w = _mm256_i64gather_pd(rf_zig_w52, i, 8);
            const __m256i k = _mm256_i64gather_epi64((const long long *) rf_zig_k52, i, 8);
            const __m256d x = _mm256_mul_pd(_mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(m, magic)), two52), w);
            const __m256d sign = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_and_si256(u, bit7), 56));
            const __m256d fast = _mm256_castsi256_pd(_mm256_cmpgt_epi64(k, m));
            _mm256_storeu_pd(z + j + h, _mm256_blendv_pd(nan, _mm256_xor_pd(x, sign), fast));
            _mm256_storeu_si256((__m256i *) (draw + j + h), u);
        }
        _mm256_storeu_si256((__m256i *) (g->s0 + h), s0);
        _mm256_storeu_si256((__m256i *) (g->s1 + h), s1);
        _mm256_storeu_si256((__m256i *) (g->s2 + h), s2);
        _mm256_storeu_si256((__m256i *) (g->s3 + h), s3);
    }
}

static void rf_normal_fast_pass(int64_t n, double *z, uint64_t *draw, rf_xoshiro_lanes *g) {
    if (rf_has_avx2_fma()) rf_normal_fast_pass_avx2(n, z, draw, g);
    else rf_normal_fast_pass_any(n, z, draw, g);
}
#else
#define rf_normal_fast_pass rf_normal_fast_pass_any
#endif

/* out[e] = x[e] + sigma·z_e (x NULL: sigma·z_e) for the elements e of block `block` of arrays of n elements. */
#define RF_ADD_NORMAL(NAME, T)                                                                            \
static void NAME(int64_t n, T *out, const T *x, T sigma, uint64_t seed, int64_t block) {                \
    const int64_t lo = block * RF_NORMAL_BLOCK, hi = n < lo + RF_NORMAL_BLOCK ? n : lo + RF_NORMAL_BLOCK; \
    double z[RF_NORMAL_BLOCK];                                    /* the block's numbers */              \
    uint64_t draw[RF_NORMAL_BLOCK];                               /* the fast pass's draws */            \
    rf_xoshiro_lanes lanes;                                                                              \
    rf_xoshiro g;                                                                                        \
    for (int l = 0; l < RF_NORMAL_LANES; ++l) {                                                          \
        rf_xoshiro_seed(&g, seed, (uint64_t) block * (RF_NORMAL_LANES + 1) + (uint64_t) l);              \
        lanes.s0[l] = g.s[0]; lanes.s1[l] = g.s[1]; lanes.s2[l] = g.s[2]; lanes.s3[l] = g.s[3];          \
    }                                                                                                    \
    rf_xoshiro_seed(&g, seed, (uint64_t) block * (RF_NORMAL_LANES + 1) + RF_NORMAL_LANES);   /* fix-up */ \
    rf_normal_fast_pass((hi - lo + RF_NORMAL_LANES - 1) / RF_NORMAL_LANES * RF_NORMAL_LANES, z, draw, &lanes); \
    for (int64_t e = 0; e < hi - lo; ++e)                                                                \
        if (z[e] != z[e]) z[e] = rf_normal_rejected(&g, draw[e]);                                        \
    if (x)                                                                                               \
        for (int64_t e = lo; e < hi; ++e) out[e] = x[e] + sigma * (T) z[e - lo];                         \
    else                                                                                                 \
        for (int64_t e = lo; e < hi; ++e) out[e] = sigma * (T) z[e - lo];                                \
}
RF_ADD_NORMAL(rf_add_normal_f, float)
RF_ADD_NORMAL(rf_add_normal_d, double)
#undef RF_ADD_NORMAL

#endif
