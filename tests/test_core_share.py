"""Concurrent trainings share the cores: each registered run gets cores // runs threads."""

import numba

from numbacnn.runtime.core_share import CoreShare, live_runs, set_blas_threads


def test_runs_share_the_cores_and_take_them_back(tmp_path):
    folder = str(tmp_path)
    (tmp_path / "999999").write_text("")  # left by a killed run: nobody holds its lock
    first = CoreShare(folder, cores=4, name="first")
    assert live_runs(folder) == 1 and not (tmp_path / "999999").exists()
    assert first.rebalance(force=True) == 4
    second = CoreShare(folder, cores=4, name="second")  # another run
    try:
        assert live_runs(folder) == 2
        assert first.rebalance(force=True) == 2
        assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
    finally:
        second.close()
    assert first.rebalance(force=True) == 4
    first.close()
    assert live_runs(folder) == 0
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS


def test_rebalancing_is_rate_limited(tmp_path):
    share = CoreShare(str(tmp_path), cores=2, every_s=3600, name="a")
    share.rebalance(force=True)
    other = CoreShare(str(tmp_path), cores=2, name="b")
    assert share.rebalance() == 2  # not looked again yet
    assert share.rebalance(force=True) == 1
    other.close()
    share.close()


def test_the_openblas_thread_count_can_be_set():
    import numpy as np

    np.ones((2, 2)) @ np.ones((2, 2))  # numpy's OpenBLAS is loaded
    assert set_blas_threads(1) is True
    set_blas_threads(numba.config.NUMBA_NUM_THREADS)
