"""pytest-benchmark suite of rnnfast (run explicitly: ``pytest benchmarks/``; ``pytest`` alone runs tests/).

rnnfast's thread count is its default (``OMP_NUM_THREADS``, else the usable cores); NumPy/SciPy's BLAS is
held to the same count for the whole session.
"""
import os
import sys

import pytest

import rnnfast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `import bench_helpers` under any import mode


@pytest.fixture(scope="session", autouse=True)
def _blas_threads():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(rnnfast.get_num_threads(), user_api="blas"):
        yield
