import subprocess
import sys

import numpy as np
import pytest

import convkern
from convkern import _C


def test_info_reports_isas_and_threads():
    d = convkern.info()
    assert d["isa"] in d["available_isas"]
    assert d["available_isas"][0] == "scalar"
    assert d["compiled_isas"] == ["scalar", "avx2", "avx512"]
    assert d["num_threads"] >= 1
    assert isinstance(d["cuda_built"], bool)


def test_cli_info_runs():
    out = subprocess.run([sys.executable, "-m", "convkern", "info"], capture_output=True, text=True, check=True)
    assert "convkern" in out.stdout and "isa:" in out.stdout


def test_isa_context_manager_restores(isa):
    assert convkern.get_isa() == isa
    with convkern.isa("scalar"):
        assert convkern.get_isa() == "scalar"
    assert convkern.get_isa() == isa


def test_bad_isa_names():
    with pytest.raises(ValueError, match="isa"):
        convkern.set_isa("sse9")


def test_env_isa_forces_scalar():
    code = "import convkern; print(convkern.get_isa())"
    env = {"CONVKERN_ISA": "scalar", "PATH": ""}
    import os

    env = dict(os.environ, CONVKERN_ISA="scalar", CONVKERN_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code + "; print(convkern.get_num_threads())"], env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["scalar", "1"]


def test_set_num_threads():
    old = convkern.get_num_threads()
    try:
        convkern.set_num_threads(1)
        assert convkern.get_num_threads() == 1
        with pytest.raises(ValueError, match="num_threads"):
            convkern.set_num_threads(0)
        with pytest.raises(TypeError, match="num_threads"):
            convkern.set_num_threads(1.5)
    finally:
        convkern.set_num_threads(old)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,k,ta,tb", [(1, 1, 1, 0, 0), (7, 13, 5, 1, 0), (37, 45, 300, 0, 1), (130, 70, 513, 1, 1),
                                         (12, 32, 256, 0, 0), (13, 33, 257, 0, 0), (200, 3, 700, 0, 1),
                                         (1, 37, 100, 0, 0), (1, 37, 100, 1, 1), (37, 1, 100, 0, 0), (250, 40, 300, 1, 0),
                                         (37, 1, 100, 1, 1), (1, 1, 300, 0, 1), (1, 50, 3, 1, 0),
                                         (250, 10, 300, 0, 0), (300, 11, 50, 1, 1)])
def test_gemm_matches_numpy(isa, dtype, m, n, k, ta, tb, rng):
    """The micro-kernel tiles at their edges (m<MR, n<NR, k=1, k>KC) against NumPy. The last two
    run transposed (C^T = B^T A^T: a column-major C, written through register transposes where a
    tile has over half a vector of rows), one with two K slices accumulated in C."""
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    ref = 0.5 * ((a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)) + 2.0 * c
    _C.gemm(a, b, c, 0.5, 2.0, bool(ta), bool(tb))
    from check import assert_close

    assert_close(c, ref, k=k)


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize("m,n,k", [(300, 20, 50), (20, 300, 50), (400, 2100, 300), (150, 149, 260), (7, 2000, 9),
                                   (600, 10, 300)])
def test_gemm_thread_blocks(isa, threads, m, n, k, rng):
    """Every thread computes its own block of C (a grid of whole micro-tiles, split along M, N
    or both, several MC/NC/KC blocks each): every count of threads gives NumPy's product."""
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    ref = a.astype(np.float64) @ b.astype(np.float64) - c
    old = convkern.get_num_threads()
    try:
        convkern.set_num_threads(threads)
        _C.gemm(a, b, c, 1.0, -1.0, False, False)
    finally:
        convkern.set_num_threads(old)
    from check import assert_close

    assert_close(c, ref, k=k)


def test_gemm_beta_zero_ignores_nan_in_c(isa):
    a = np.ones((3, 4), np.float32)
    c = np.full((3, 5), np.nan, np.float32)
    _C.gemm(a, np.ones((4, 5), np.float32), c, 1.0, 0.0)
    np.testing.assert_array_equal(c, 4.0)


def test_gemm_rejects_bad_buffers():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="b"):
        _C.gemm(a, np.ones((5, 5), np.float32), np.zeros((3, 5), np.float32))
    with pytest.raises(TypeError, match="b"):
        _C.gemm(a, np.ones((4, 5), np.float64), np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="c"):
        _C.gemm(a, np.ones((4, 5), np.float32), np.zeros((3, 5), np.float32).T)


def test_output_pool_reuses_blocks():
    """Large outputs come from the caching allocator: a freed output's block serves the next."""
    import gc

    import convkern.functional as F

    x = np.random.default_rng(0).standard_normal((1, 4, 128, 128)).astype(np.float32)
    y = F.relu(x)
    assert y.flags.c_contiguous and y.flags.writeable and y.dtype == np.float32
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    addr = y.__array_interface__["data"][0]
    del y
    gc.collect()
    before = convkern.memory_stats()
    assert before["cached_blocks"] >= 1
    y2 = F.relu(x)
    after = convkern.memory_stats()
    assert after["hits"] == before["hits"] + 1
    assert y2.__array_interface__["data"][0] == addr  # the same block, pages already resident
    np.testing.assert_array_equal(y2, np.maximum(x, 0))
    # an output outlives everything that made it, and keeps its values
    z = F.relu(-x)
    del x
    gc.collect()
    assert (z >= 0).all()


def test_output_pool_limit_and_empty_cache():
    import gc

    import convkern.functional as F

    x = np.ones((1, 4, 128, 128), np.float32)
    try:
        convkern.set_cache_limit(0)
        y = F.relu(x)
        del y
        gc.collect()
        assert convkern.memory_stats()["cached_bytes"] == 0
    finally:
        convkern.set_cache_limit(1 << 30)
    y = F.relu(x)
    del y
    gc.collect()
    assert convkern.memory_stats()["cached_bytes"] > 0
    convkern.empty_cache()
    assert convkern.memory_stats()["cached_bytes"] == 0
    with pytest.raises(ValueError, match="nbytes"):
        convkern.set_cache_limit(-1)
    with pytest.raises(TypeError, match="nbytes"):
        convkern.set_cache_limit(1.5)
    with pytest.raises(ValueError, match="shape"):
        convkern._C.empty((-1, 2), np.float32)
