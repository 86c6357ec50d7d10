"""blas_single_thread through OpenBLAS's own get/set functions (rnnfast._threads._switch): every BLAS is at one
thread inside a hold, from any Python thread, and a hold restores whatever limit the user set last."""
import threading

import pytest
import threadpoolctl

from rnnfast import _threads


def blas_limits():
    return [lc.get_num_threads() for lc in _threads._blas_controllers()]


@pytest.fixture
def two_blas_threads():
    if not _threads._blas_controllers():
        pytest.skip("threadpoolctl sees no BLAS")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        if set(blas_limits()) != {2}:
            pytest.skip("BLAS cannot run 2 threads here")
        yield


def test_a_hold_lowers_every_blas_and_restores_the_users_latest_limit(two_blas_threads):
    with _threads.blas_single_thread():
        assert set(blas_limits()) == {1}
    assert set(blas_limits()) == {2}
    with threadpoolctl.threadpool_limits(1, user_api="blas"):      # the user changes it between kernel calls
        with _threads.blas_single_thread():
            assert set(blas_limits()) == {1}
        assert set(blas_limits()) == {1}
    assert set(blas_limits()) == {2}
    with _threads.blas_single_thread():
        assert set(blas_limits()) == {1}
    assert set(blas_limits()) == {2}
    assert not _threads._holders and not _threads._saved


def test_a_hold_works_from_another_python_thread(two_blas_threads):
    inside = []

    def hold():
        with _threads.blas_single_thread():
            inside.append(blas_limits())

    with _threads.blas_single_thread():                             # the main thread holds first, then another
        t = threading.Thread(target=hold)
        t.start()
        t.join()
        assert set(blas_limits()) == {1}
    t = threading.Thread(target=hold)                               # ... and a thread alone
    t.start()
    t.join()
    assert [set(x) for x in inside] == [{1}, {1}]
    assert set(blas_limits()) == {2}
