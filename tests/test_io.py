"""convkern.io: .npz without pickle and the self-contained safetensors reader/writer."""
import json
import struct

import numpy as np
import pytest

from convkern import io


def _sd():
    rng = np.random.default_rng(0)
    return {"a.weight": rng.standard_normal((3, 4)).astype(np.float32), "a.bias": np.arange(3, dtype=np.float64),
            "bn.num_batches_tracked": np.array(7, dtype=np.int64), "mask": np.array([True, False]),
            "u8": np.arange(5, dtype=np.uint8), "half": np.ones((2, 2), np.float16)}


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_roundtrip(tmp_path, ext):
    sd = _sd()
    p = tmp_path / f"w.{ext}"
    io.save(sd, p)
    back = io.load(p)
    assert list(back) == list(sd)
    for k in sd:
        assert back[k].dtype == sd[k].dtype and back[k].shape == sd[k].shape
        np.testing.assert_array_equal(back[k], sd[k])


def test_safetensors_layout(tmp_path):
    p = tmp_path / "w.safetensors"
    io.save_safetensors({"x": np.arange(6, dtype=np.float32).reshape(2, 3)}, p, metadata={"format": "pt"})
    raw = p.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert header["x"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    assert header["__metadata__"] == {"format": "pt"}
    np.testing.assert_array_equal(np.frombuffer(raw[8 + n:], "<f4"), np.arange(6))


def test_safetensors_bf16_and_errors(tmp_path):
    vals = np.array([1.0, -2.5, 3072.0], np.float32)
    bf = (vals.view(np.uint32) >> 16).astype("<u2").tobytes()
    h = json.dumps({"b": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    p = tmp_path / "bf.safetensors"
    p.write_bytes(struct.pack("<Q", len(h)) + h + bf)
    np.testing.assert_array_equal(io.load_safetensors(p)["b"], vals)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(ValueError, match="path"):
        io.load_safetensors(bad)
    h = json.dumps({"b": {"dtype": "F32", "shape": [3], "data_offsets": [0, 100]}}).encode()
    bad.write_bytes(struct.pack("<Q", len(h)) + h + bf)
    with pytest.raises(ValueError, match="outside"):
        io.load_safetensors(bad)


def test_npz_refuses_objects(tmp_path):
    with pytest.raises(TypeError, match="pickle"):
        io.save_npz({"o": np.array([{}], dtype=object)}, tmp_path / "o.npz")
