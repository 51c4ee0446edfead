"""CUDA plumbing that needs no GPU: device arrays reaching a binding without a usable device are
refused with a TypeError naming the argument (never a crash), the runtime helpers behave in
CPU-only and CUDA builds alike, and the CUDA benchmark exits cleanly without a GPU."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import convkern
import convkern.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _convkern_parent() -> str:
    """The directory holding the convkern this test imported (the installed one in CI, the source
    tree after scripts/dev_build.sh), so the subprocess imports the same build, with its _C."""
    return os.path.dirname(os.path.dirname(os.path.abspath(convkern.__file__)))


class FakeDeviceArray:
    """Claims to be a device array but points to host memory (or nowhere)."""

    def __init__(self, a: np.ndarray, ptr=None):
        self._a = a
        self.__cuda_array_interface__ = {
            "shape": a.shape, "typestr": a.dtype.str, "version": 3, "strides": None,
            "data": (a.ctypes.data if ptr is None else ptr, False), "stream": None,
        }


@pytest.mark.parametrize("ptr", [None, 16])
def test_binding_refuses_unusable_device_array(ptr):
    x = FakeDeviceArray(np.zeros((1, 1, 4, 4), np.float32), ptr)
    y = np.zeros((1, 1, 2, 2), np.float32)
    with pytest.raises(TypeError, match="input"):
        convkern._C.max_pool2d_forward(x, y, None, 2, 2, 2, 2, 0, 0, 1, 1, False)


def test_binding_refuses_bad_device_dtype():
    x = FakeDeviceArray(np.zeros((4,), np.int32))
    y = np.zeros((4,), np.float32)
    with pytest.raises(TypeError, match="input"):
        convkern._C.act_forward(x, y, 0, 0.0)


def test_runtime_helpers():
    d = convkern.info()
    assert isinstance(d["cuda_built"], bool)
    assert len(d["cuda_devices"]) == len(d["cuda_compute_capabilities"]) == convkern._C.cuda_device_count()
    assert isinstance(convkern.cuda.available(), bool)
    assert convkern.cuda.get_conv_algo() in ("auto", "im2col", "implicit")
    with pytest.raises(ValueError, match="algo"):
        convkern.cuda.set_conv_algo("winograd")
    if d["cuda_built"]:
        with convkern.cuda.conv_algo("implicit"):
            assert convkern.cuda.get_conv_algo() == "implicit"
        assert convkern.cuda.get_conv_algo() == "auto"


def test_numpy_stays_numpy_and_wrappers_keep_names():
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    assert isinstance(F.relu(x), np.ndarray)
    assert F.conv2d.__name__ == "conv2d" and F.conv2d.__wrapped__.__module__.endswith("_ops.conv")
    assert convkern.cuda.current_device() is None


def test_bench_cuda_exits_cleanly_without_gpu(tmp_path):
    if convkern.cuda.available():
        pytest.skip("a GPU is visible: the benchmark would run for real")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_cuda.py"), "--out",
                        str(tmp_path / "b")], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": _convkern_parent()})
    assert r.returncode == 0, r.stderr
    assert "skipped" in r.stdout
