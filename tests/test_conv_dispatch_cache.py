"""The convolution geometry cache (_ops.conv._geom): calls with the shapes and arguments of an
earlier call reuse its validated geometry and the decisions kept with it (which kernel, the
workspace check). It must never let a call through that an uncached call would refuse, nor
carry a decision over to a call that differs in dtype, algo or thread count."""
import numpy as np
import pytest

import convkern
import convkern.functional as F
from convkern import reference as R
from convkern._ops import conv as convops


def _data(dtype, n=1, c=16, k=16, hw=12, ks=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, hw, hw)).astype(dtype)
    w = rng.standard_normal((k, c, ks, ks)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("bad, err", [(True, TypeError), (1.0, TypeError), (0, ValueError), (-1, ValueError),
                                      ((1, True), TypeError), ((1, 1, 1), ValueError), ("1", TypeError)])
def test_invalid_arguments_refused_after_a_cached_call(bad, err):
    x, w, b = _data(np.float32)
    F.conv2d(x, w, b, stride=1, padding=1)
    F.conv2d(x, w, b, stride=1, padding=1)  # now cached
    for _ in range(2):
        with pytest.raises(err, match="stride"):
            F.conv2d(x, w, b, stride=bad, padding=1)


def test_invalid_padding_and_groups_refused_after_a_cached_call():
    x, w, b = _data(np.float32)
    F.conv2d(x, w, b, padding="same")
    for _ in range(2):
        with pytest.raises(ValueError, match="padding"):
            F.conv2d(x, w, b, padding="full")
        with pytest.raises(TypeError, match="padding"):
            F.conv2d(x, w, b, padding=1.0)
        with pytest.raises(ValueError, match="groups"):
            F.conv2d(x, w, b, padding="same", groups=3)


def test_equal_arguments_of_other_types_give_the_same_result():
    x, w, b = _data(np.float32)
    y = F.conv2d(x, w, b, stride=1, padding=1)
    for s, p in [((1, 1), [1, 1]), (np.int64(1), np.int32(1)), ([1], (1,))]:
        np.testing.assert_array_equal(F.conv2d(x, w, b, stride=s, padding=p), y)


def test_route_follows_dtype():
    # float32 takes Winograd here (3x3, 16 channels, 48 tiles); float64 with the same shapes
    # must not reuse that choice: it keeps the exact-order sums of the reference
    x, w, b = _data(np.float32, n=3, hw=16)
    geom = convops._geom(2, x.shape, w.shape, 1, 1, 1, 1)
    y32 = F.conv2d(x, w, b, padding=1)
    assert geom.memo.get(("route", "auto", np.dtype(np.float32), None, True)) == "winograd"
    x64, w64, b64 = x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)
    y64 = F.conv2d(x64, w64, b64, padding=1)
    assert geom.memo.get(("route", "auto", np.dtype(np.float64), None, True)) != "winograd"
    ref = R.conv2d(x64, w64, b64, padding=1)
    np.testing.assert_allclose(y64, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y32, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("algo", ["auto", "im2col", "direct", "winograd", "nhwc"])
def test_forced_algorithms_after_auto(algo):
    x, w, b = _data(np.float32, n=2, hw=14)
    ref = R.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), padding=1)
    F.conv2d(x, w, b, padding=1)  # auto, cached
    for _ in range(2):
        np.testing.assert_allclose(F.conv2d(x, w, b, padding=1, algo=algo), ref, rtol=2e-4, atol=2e-4)


def test_forced_algorithm_that_does_not_apply_raises_every_time():
    x, w, b = _data(np.float32)
    F.conv2d(x, w, b, stride=2, padding=1)
    for _ in range(2):
        with pytest.raises(ValueError, match="algo"):
            F.conv2d(x, w, b, stride=2, padding=1, algo="winograd")


def test_thread_count_change():
    x, w, b = _data(np.float32, n=4, c=8, k=24, hw=9, ks=1)
    n0 = convkern.get_num_threads()
    try:
        ys = []
        for t in (1, 2, 1):
            convkern.set_num_threads(t)
            ys.append(F.conv2d(x, w, b))
    finally:
        convkern.set_num_threads(n0)
    ref = R.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64))
    for y in ys:
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_huge_output_refused_on_every_call():
    x = np.zeros((1, 1, 1, 1), np.float32)
    w = np.zeros((1, 1, 1, 1), np.float32)
    # a geometry whose output fits but whose batch of 2**40 images does not
    for _ in range(2):
        with pytest.raises((ValueError, MemoryError)):
            F.conv2d(np.broadcast_to(x, (1 << 40, 1, 1, 1)), w)


def test_depthwise_cached_geometry():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 11, 13)).astype(np.float64)
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float64)
    ref = R.conv2d(x, w, None, stride=2, padding=1, groups=6)
    for _ in range(3):
        np.testing.assert_allclose(F.conv2d(x, w, None, stride=2, padding=1, groups=6), ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="groups|channels"):
        F.conv2d(x, w, None, stride=2, padding=1, groups=4)


def test_cache_stays_bounded():
    w = np.ones((1, 1, 1, 1), np.float32)
    for n in range(convops._GEOMS_MAX + 10):
        F.conv2d(np.ones((1, 1, 1, n + 1), np.float32), w)
    assert 0 < len(convops._GEOMS) <= convops._GEOMS_MAX
