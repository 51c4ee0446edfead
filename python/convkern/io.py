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
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

__all__ = ["save", "load", "save_npz", "load_npz", "save_safetensors", "load_safetensors", "WeightsFileError"]

_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header


class WeightsFileError(ValueError):
    """A weights file is malformed, truncated, lies about its sizes or would need pickle."""


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 46


def _nbytes(shape, itemsize, path, key):
    """Bytes of a tensor of `shape` (Python ints: no int64 wrap-around), refusing nonsense."""
    if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                      for d in shape):
        raise WeightsFileError(f"path: {path}: tensor {key!r} has an invalid shape {shape!r}")
    n = itemsize
    for d in shape:
        n *= d
    if n > _memory_bytes():
        raise WeightsFileError(f"path: {path}: tensor {key!r} claims shape {tuple(shape)} ({n} bytes), more than "
                               f"this machine's memory")
    return n

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
    """Read an ``.npz`` (plain or compressed) without ever unpickling: each member's ``.npy``
    header is parsed first and its size checked against the data actually present, so a
    truncated or lying file is a WeightsFileError before any large allocation."""
    out = OrderedDict()
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version in ((2, 0), (3, 0)):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise WeightsFileError(f"path: {path}: member {key!r} has .npy version {version}")
                    if dtype.hasobject:
                        raise WeightsFileError(f"path: {path}: member {key!r} is an object array (it would need "
                                               f"pickle, which is never loaded)")
                    n = _nbytes(list(shape), dtype.itemsize, path, key)
                    raw = f.read(n + 1)
                    if len(raw) != n:
                        raise WeightsFileError(f"path: {path}: member {key!r} holds {len(raw)} bytes of data, its "
                                               f"header promises {n} (shape {shape}, {dtype})")
                order = "F" if fortran else "C"
                arr = np.frombuffer(raw, dtype=dtype).reshape(shape, order=order) if n else \
                    np.empty(shape, dtype=dtype, order=order)
                out[key] = np.array(arr, dtype=dtype.newbyteorder("=") if dtype.byteorder != "|" else dtype,
                                    order="C")
    except WeightsFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError,
            ValueError, TypeError, SyntaxError, KeyError, struct.error, UnicodeDecodeError) as e:
        raise WeightsFileError(f"path: {path}: not a valid .npz file ({type(e).__name__}: {e})") from None
    except OSError as e:
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise WeightsFileError(f"path: {path}: not a valid .npz file ({type(e).__name__}: {e})") from None
    return out


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
    """Read a safetensors file into NumPy arrays (BF16 is widened to float32). A malformed,
    truncated or lying file is a WeightsFileError (a ValueError)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw_len = f.read(8)
        if len(raw_len) != 8:
            raise WeightsFileError(f"path: {path} is not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", raw_len)
        if n > size - 8 or n > _MAX_HEADER:
            raise WeightsFileError(f"path: {path}: header length {n} exceeds the file")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (ValueError, RecursionError) as e:
            raise WeightsFileError(f"path: {path}: the header is not valid JSON ({e})") from None
        data = f.read()
    if not isinstance(header, dict):
        raise WeightsFileError(f"path: {path}: the header is not a JSON object")
    out = OrderedDict()
    for k, info in header.items():
        if k == "__metadata__":
            continue
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise WeightsFileError(f"path: {path}: tensor {k!r} needs dtype, shape and data_offsets")
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if not (isinstance(offs, list) and len(offs) == 2 and all(type(o) is int for o in offs)):
            raise WeightsFileError(f"path: {path}: tensor {k!r} has invalid data_offsets {offs!r}")
        lo, hi = offs
        if not 0 <= lo <= hi <= len(data):
            raise WeightsFileError(f"path: {path}: tensor {k!r} lies outside the file")
        if not isinstance(dt, str) or (dt != "BF16" and dt not in _ST_DTYPES):
            raise WeightsFileError(f"path: {path}: tensor {k!r} has unsupported dtype {dt!r}")
        dtype = np.dtype("<u2") if dt == "BF16" else np.dtype(_ST_DTYPES[dt]).newbyteorder("<")
        nbytes = _nbytes(shape, dtype.itemsize, path, k)
        shape = tuple(shape)
        raw = data[lo:hi]
        if len(raw) != nbytes:
            raise WeightsFileError(f"path: {path}: tensor {k!r} has {len(raw)} bytes for shape {shape} {dt}")
        if dt == "BF16":
            arr = _bf16_to_f32(raw, shape)
        else:
            arr = np.empty(shape, dtype=_ST_DTYPES[dt])  # native, canonical dtype
            arr[...] = np.frombuffer(raw, dtype=dtype).reshape(shape)
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
