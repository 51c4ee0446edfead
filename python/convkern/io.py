"""Weights on disk without pickle: ``.npz`` (``allow_pickle=False``) and safetensors.

The safetensors reader/writer is self-contained (the format is an 8-byte little-endian
header length, a JSON header ``{name: {"dtype", "shape", "data_offsets"}}`` and the raw
little-endian tensor bytes), so no extra dependency is needed. A torchvision ``.pth``
converts with one line of torch:

    python -c "import torch,numpy as np; sd=torch.load('resnet50.pth'); np.savez('resnet50.npz', **{k: v.numpy() for k, v in sd.items()})"
"""
from __future__ import annotations

import json
import os
import struct
from collections import OrderedDict

import numpy as np

__all__ = ["save", "load", "save_npz", "load_npz", "save_safetensors", "load_safetensors"]

_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "I16": np.int16,
    "I8": np.int8, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32, "U64": np.uint64, "BOOL": np.bool_,
}
_ST_NAMES = {np.dtype(v).str.lstrip("<|="): k for k, v in _ST_DTYPES.items()}


def _arrays(state_dict):
    out = OrderedDict()
    for k, v in state_dict.items():
        v = getattr(v, "data", v) if not isinstance(v, np.ndarray) else v
        out[str(k)] = np.asarray(v)
    return out


def save_npz(state_dict, path) -> None:
    """``np.savez`` of the arrays (plain arrays only: loadable with allow_pickle=False)."""
    arrays = _arrays(state_dict)
    for k, v in arrays.items():
        if v.dtype == object:
            raise TypeError(f"state_dict: {k} is an object array (would need pickle)")
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_npz(path) -> "OrderedDict[str, np.ndarray]":
    with np.load(path, allow_pickle=False) as z:
        return OrderedDict((k, z[k]) for k in z.files)


def save_safetensors(state_dict, path, metadata=None) -> None:
    """Write a safetensors file (tensors in key order, 8-byte aligned header)."""
    arrays = _arrays(state_dict)
    header, offset, blobs = OrderedDict(), 0, []
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for k, v in arrays.items():
        code = v.dtype.str.lstrip("<|=")
        if code not in _ST_NAMES or v.dtype.byteorder == ">":
            raise TypeError(f"state_dict: {k} has dtype {v.dtype}, which safetensors cannot store")
        b = np.ascontiguousarray(v).tobytes()
        header[k] = {"dtype": _ST_NAMES[code], "shape": list(v.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def _bf16_to_f32(raw: bytes, shape):
    u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return u.view(np.float32).reshape(shape)


def load_safetensors(path) -> "OrderedDict[str, np.ndarray]":
    """Read a safetensors file into NumPy arrays (BF16 is widened to float32)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw_len = f.read(8)
        if len(raw_len) != 8:
            raise ValueError(f"path: {path} is not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", raw_len)
        if n > size - 8:
            raise ValueError(f"path: {path}: header length {n} exceeds the file")
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    out = OrderedDict()
    for k, info in header.items():
        if k == "__metadata__":
            continue
        dt, shape, (lo, hi) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        if not 0 <= lo <= hi <= len(data):
            raise ValueError(f"path: {path}: tensor {k} lies outside the file")
        raw = data[lo:hi]
        if dt == "BF16":
            arr = _bf16_to_f32(raw, shape)
        elif dt in _ST_DTYPES:
            dtype = np.dtype(_ST_DTYPES[dt]).newbyteorder("<")
            if len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
                raise ValueError(f"path: {path}: tensor {k} has {len(raw)} bytes for shape {shape} {dt}")
            arr = np.empty(shape, dtype=_ST_DTYPES[dt])  # native, canonical dtype
            arr[...] = np.frombuffer(raw, dtype=dtype).reshape(shape)
        else:
            raise ValueError(f"path: {path}: tensor {k} has unsupported dtype {dt}")
        out[k] = arr
    return out


def save(state_dict, path) -> None:
    """By extension: ``.safetensors`` or (anything else) ``.npz``."""
    if str(path).endswith(".safetensors"):
        save_safetensors(state_dict, path)
    else:
        save_npz(state_dict, path)


def load(path):
    if str(path).endswith(".safetensors"):
        return load_safetensors(path)
    return load_npz(path)
