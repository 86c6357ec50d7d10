# Standard normal numbers for the estimators' input noise (rnnfast_random.h has the generator):
#
#     add_normal:  out := x + σ·z, or σ·z without x, z standard normal, element by element.
#
# Each block of RF_NORMAL_BLOCK elements draws from its own stream, fixed by (seed, block index), so the blocks
# split over the threads and the numbers are the same bits for every thread count.

from libc.stdint cimport uint64_t

cdef extern from "rnnfast_random.h" nogil:
    int RF_NORMAL_BLOCK
    void rf_normal_init()
    void rf_add_normal_f(int64_t n, float* out, const float* x, float sigma, uint64_t seed, int64_t block)
    void rf_add_normal_d(int64_t n, double* out, const double* x, double sigma, uint64_t seed, int64_t block)

rf_normal_init()

NORMAL_BLOCK = RF_NORMAL_BLOCK

# Blocks per thread below which one thread fills them all: a block costs ~10 µs, a woken thread about as much.
cdef Py_ssize_t _MIN_NORMAL_BLOCKS_PER_THREAD = 2


cdef inline void _add_normal(Py_ssize_t n, floating* out, const floating* x, double sigma, uint64_t seed,
                             Py_ssize_t block) noexcept nogil:
    """Block `block` of out := x + σ·z over arrays of n elements (x NULL: out := σ·z)."""
    if floating is float:
        rf_add_normal_f(n, out, x, <float> sigma, seed, block)
    else:
        rf_add_normal_d(n, out, x, sigma, seed, block)


def add_normal(floating[::1] out,                   # OUT    (n,) x + σ·z
               const floating[::1] x,               # IN     (n,) or None (then out := σ·z); may be out itself
               double sigma,                        # IN     σ
               uint64_t seed,                       # IN     the draw's seed: the same seed, the same numbers
               int num_threads):
    """out := x + σ·z, z standard normal (rnnfast_random.h), over flat arrays; the numbers depend on the seed and
    the element's index only, not on the thread count."""
    cdef Py_ssize_t n = out.shape[0], nblocks, k, team
    cdef const floating* xp = NULL
    if x is not None:
        if x.shape[0] != n:
            raise ValueError(f"x has {x.shape[0]} elements, expected {n} (out's)")
        xp = &x[0] if n else NULL
    if n == 0:
        return
    nblocks = (n + RF_NORMAL_BLOCK - 1) // RF_NORMAL_BLOCK
    team = _memory_team(num_threads, nblocks, _MIN_NORMAL_BLOCKS_PER_THREAD)
    with nogil:
        if team == 1:
            for k in range(nblocks):
                _add_normal(n, &out[0], xp, sigma, seed, k)
        else:
            with parallel(num_threads=team):
                for k in prange(nblocks, schedule="static"):
                    _add_normal(n, &out[0], xp, sigma, seed, k)
