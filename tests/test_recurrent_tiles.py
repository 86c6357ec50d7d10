"""The time loop's packed micro-kernel (csrc/rnnfast_recgemm.h) at every row count a shrinking packed batch
passes through: c = a @ wᵀ as NumPy computes it, and each row's result bit for bit the same whichever tile
(of how many rows) takes it, so a sequence's result does not depend on which others share its step. Each
instruction-set path the CPU has (AVX-512, AVX2 + FMA, the portable loop) is checked, and the two FMA paths
give the same bits."""
import numpy as np
import pytest

from rnnfast import _recurrent

TOL = {"float32": 1e-5, "float64": 1e-13}
ISA_LEVELS = {"avx512": 2, "avx2_fma": 1, "portable": 0}


@pytest.fixture(params=list(ISA_LEVELS))
def isa(request):
    """Run under each cap of the product's instruction set (a level the CPU lacks falls to the next below)."""
    old = _recurrent._set_isa_limit(ISA_LEVELS[request.param])
    yield request.param
    _recurrent._set_isa_limit(old)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("N, K", [(37, 5), (192, 64), (64, 130)])
def test_every_row_count_matches_numpy_and_each_row_alone(dtype, N, K, isa):
    rng = np.random.default_rng(N + K)
    w = rng.standard_normal((N, K)).astype(dtype)                  # (N, K)
    a = rng.standard_normal((40, K)).astype(dtype)                 # (40, K): rows 0 .. m-1 of each product
    alone = np.empty((40, N), dtype)
    for r in range(40):                                            # each row as a product of one row
        _recurrent._recurrent_product(a[r:r + 1], w, alone[r:r + 1], False)
    exact = a.astype(np.float64) @ w.T.astype(np.float64)          # (40, N)
    np.testing.assert_allclose(alone, exact, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(exact).max())
    for m in range(1, 41):
        c = np.full((m, N), np.nan, dtype)
        _recurrent._recurrent_product(a[:m], w, c, False)
        np.testing.assert_array_equal(c, alone[:m], err_msg=f"m = {m}")
        start = rng.standard_normal((m, N)).astype(dtype)          # accumulate: c := start + a @ wᵀ
        c = start.copy()
        _recurrent._recurrent_product(a[:m], w, c, True)
        np.testing.assert_allclose(c, start + exact[:m], rtol=TOL[dtype],
                                   atol=TOL[dtype] * np.abs(exact).max(), err_msg=f"m = {m}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fma_paths_give_the_same_bits(dtype):
    """AVX-512 (16-float vectors, tiles of up to 12 rows) and AVX2 + FMA (8-float vectors, up to 6 rows) sum each
    element k ascending in one FMA chain: a model gives the same bits on either CPU (where the CPU lacks
    AVX-512 both runs take the AVX2 path, and the check is trivially true)."""
    rng = np.random.default_rng(7)
    w = rng.standard_normal((100, 77)).astype(dtype)                # (N, K)
    a = rng.standard_normal((29, 77)).astype(dtype)                 # (m, K)
    out = {}
    for level in (2, 1):
        old = _recurrent._set_isa_limit(level)
        try:
            out[level] = np.empty((29, 100), dtype)
            _recurrent._recurrent_product(a, w, out[level], False)
        finally:
            _recurrent._set_isa_limit(old)
    np.testing.assert_array_equal(out[1], out[2])


def test_isa_limit_rejects_unknown_levels():
    with pytest.raises(ValueError, match="level must be 0, 1 or 2"):
        _recurrent._set_isa_limit(3)


def test_rejects_shapes_that_do_not_fit():
    a, w = np.zeros((3, 4)), np.zeros((5, 4))
    with pytest.raises(ValueError, match="do not fit"):
        _recurrent._recurrent_product(a, w, np.zeros((3, 6)), False)
    with pytest.raises(ValueError, match="do not fit"):
        _recurrent._recurrent_product(a, np.zeros((5, 3)), np.zeros((3, 5)), False)
