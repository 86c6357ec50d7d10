"""The standard normal draws behind the estimators' input noise (csrc/_random.pxi, rnnfast_random.h): their
distribution against the normal one (Kolmogorov-Smirnov, chi-square on equiprobable bins, the ziggurat's tail and
moments), their independence (lags, blocks, seeds), and that the numbers depend on the seed and the position only:
the same bits on 1 and 2 threads, with AVX2 and without, in float32 and float64."""
import numpy as np
import pytest
from scipy import stats

from rnnfast import _kernels, _recurrent
from rnnfast.estimators._data import _jittered

R_TAIL = 3.442619855899          # where the ziggurat's base layer hands over to its tail
N = 2_000_000                    # ~490 blocks: both threads, every layer, ~1150 tail draws


def draw(n, seed, dtype=np.float64, threads=2, sigma=1.0, x=None):
    out = np.empty(n, dtype)
    _kernels.add_normal(out, x, sigma, seed, threads)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2**64 - 1])
def test_draws_follow_the_standard_normal_distribution(seed):
    z = draw(N, seed)
    assert stats.kstest(z, "norm").pvalue > 1e-4
    edges = stats.norm.ppf(np.linspace(0, 1, 101)[1:-1])                   # 100 equiprobable bins
    counts = np.bincount(np.searchsorted(edges, z), minlength=100)
    assert stats.chisquare(counts).pvalue > 1e-4
    # the tail beyond r comes from the tail sampler, the rest from the layers: both at their share
    for cut in (R_TAIL, 4.5):
        p = 2 * stats.norm.sf(cut)
        assert abs(np.count_nonzero(np.abs(z) > cut) - N * p) < 5 * np.sqrt(N * p * (1 - p)) + 1
    assert abs(z.mean()) < 5 / np.sqrt(N)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / N)
    assert abs(stats.skew(z)) < 5 * np.sqrt(6 / N)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / N)


def test_draws_are_independent_across_lags_blocks_and_seeds():
    z = draw(N, 7)
    block = _recurrent.NORMAL_BLOCK
    for lag in (1, 2, 7, 8, 9, block):                      # 8: the lanes of the fast pass; block: the streams
        assert abs(np.corrcoef(z[:-lag], z[lag:])[0, 1]) < 5 / np.sqrt(N)
    blocks = z[: (N // block) * block].reshape(-1, block)
    assert abs(np.corrcoef(blocks[0], blocks[1])[0, 1]) < 5 / np.sqrt(block)
    assert len({b.tobytes() for b in blocks}) == len(blocks)
    assert abs(np.corrcoef(z, draw(N, 8))[0, 1]) < 5 / np.sqrt(N)    # neighbouring seeds share nothing
    np.testing.assert_array_equal(draw(N, 7), z)                      # the same seed, the same numbers


@pytest.mark.parametrize("n", [1, 4095, 4097, 300_001])
def test_the_same_bits_for_every_thread_count_instruction_set_and_dtype(n):
    ref = draw(n, 3, threads=1)
    np.testing.assert_array_equal(draw(n, 3, threads=2), ref)
    np.testing.assert_array_equal(draw(n + 5, 3)[:n], ref)           # an element's number: its position's
    for level in (1, 0):                    # AVX2's fast pass, then the portable loop (same bits on any CPU)
        old = _recurrent._set_isa_limit(level)
        try:
            np.testing.assert_array_equal(draw(n, 3), ref)
        finally:
            _recurrent._set_isa_limit(old)
    np.testing.assert_array_equal(draw(n, 3, np.float32), ref.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_normal_adds_sigma_times_the_draw_in_place_or_not(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(10_000).astype(dtype)
    z = draw(x.size, 5, dtype)
    expected = x + dtype(0.3) * z                            # the kernel's arithmetic, in x's dtype
    out = draw(x.size, 5, dtype, sigma=0.3, x=x)
    np.testing.assert_allclose(out, expected, rtol=np.finfo(dtype).eps, atol=np.finfo(dtype).eps)
    inplace = x.copy()
    _kernels.add_normal(inplace, inplace, 0.3, 5, 2)
    np.testing.assert_array_equal(inplace, out)


def test_add_normal_rejects_arrays_that_do_not_fit():
    with pytest.raises(ValueError, match="x has 9 elements, expected 10"):
        _kernels.add_normal(np.empty(10), np.empty(9), 1.0, 0, 1)
    with pytest.raises(ValueError, match="not C-contiguous"):
        _kernels.add_normal(np.empty((10, 2))[:, 0], None, 1.0, 0, 1)
    _kernels.add_normal(np.empty(0), None, 1.0, 0, 2)                  # nothing to draw


def test_jittered_follows_random_state_and_takes_one_number_from_it():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)[:, ::-1]       # not contiguous: copied, then jittered
    a = _jittered(x, 0.5, np.random.default_rng(42))
    b = _jittered(x, 0.5, np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert 0.05 < np.std(a - x) < 1.5
    rng = np.random.default_rng(42)
    _jittered(np.zeros(100_000), 1.0, rng)
    after = rng.integers(0, 2**63)
    rng = np.random.default_rng(42)
    rng.integers(0, 2**64, dtype=np.uint64)
    assert rng.integers(0, 2**63) == after
    out = np.empty((2, 3, 5), np.float32)
    with pytest.raises(ValueError, match="out must be a C-contiguous float32 array of shape"):
        _jittered(x, 0.5, np.random.default_rng(0), out=out)
