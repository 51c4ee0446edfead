"""Datasets and augmentation for training.

* ``load_digits_32(test_fraction=0.2, seed=0)``: scikit-learn's 8x8 handwritten digits (1,797
  images, shipped with sklearn, no download) resized to 32x32 by bilinear interpolation, as
  float32 (N, 1, 32, 32) in [0, 1], with a stratified train/test split.
* ``load_mnist(dir)`` / ``read_idx(path)``: MNIST in its IDX files (``train-images-idx3-ubyte``
  etc., optionally ``.gz``), padded to 32x32 for LeNet-5.
* ``random_crop``, ``horizontal_flip``, ``batches``.
"""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np

__all__ = ["resize_bilinear", "load_digits_32", "read_idx", "write_idx", "load_mnist", "random_crop",
           "horizontal_flip", "batches", "standardize"]


def _interp_matrix(n_in, n_out):
    """(n_out, n_in) bilinear interpolation weights, align_corners=False (pixel centres)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = min(max((i + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1)
        lo = int(np.floor(src))
        hi = min(lo + 1, n_in - 1)
        w = src - lo
        m[i, lo] += 1 - w
        m[i, hi] += w
    return m


def resize_bilinear(images, size):
    """(..., H, W) -> (..., size, size) bilinear (half-pixel centres)."""
    images = np.asarray(images, dtype=np.float64)
    mh = _interp_matrix(images.shape[-2], size)
    mw = _interp_matrix(images.shape[-1], size)
    return np.einsum("ih,...hw,jw->...ij", mh, images, mw)


def load_digits_32(test_fraction: float = 0.2, seed: int = 0, size: int = 32):
    """((x_train, y_train), (x_test, y_test)): sklearn digits as (N, 1, size, size) float32 in [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover
        raise ImportError("load_digits_32 needs scikit-learn (pip install scikit-learn)") from e
    d = load_digits()
    x = resize_bilinear(d.images / 16.0, size).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for c in np.unique(y):  # stratified split
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[:int(round(len(idx) * test_fraction))]] = True
    return (x[~test], y[~test]), (x[test], y[test])


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """An IDX file (MNIST's format; ``.gz`` allowed) as a NumPy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"path: {path} is not an IDX file (bad magic)")
    code, nd = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"path: {path}: unknown IDX data type 0x{code:02x}")
    shape = struct.unpack(f">{nd}I", raw[4:4 + 4 * nd])
    dt = np.dtype(_IDX_TYPES[code])
    n = int(np.prod(shape, dtype=np.int64))
    body = raw[4 + 4 * nd:]
    if len(body) != n * dt.itemsize:
        raise ValueError(f"path: {path}: {len(body)} data bytes for shape {shape}")
    return np.frombuffer(body, dtype=dt).reshape(shape).astype(dt.newbyteorder("="))


def write_idx(path, array):
    """Write a uint8/int8/int16/int32/float32/float64 array as an IDX file."""
    a = np.asarray(array)
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B, np.dtype(np.int32): 0x0C,
             np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
    code = codes[a.dtype]
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape))
        f.write(a.astype(a.dtype.newbyteorder(">")).tobytes())


def load_mnist(directory, pad_to: int = 32):
    """((x_train, y_train), (x_test, y_test)) from the four MNIST IDX files in ``directory``
    (names as distributed, with or without .gz); images float32 in [0, 1], zero-padded to
    ``pad_to`` (LeNet-5's 32x32)."""
    def find(stem):
        for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
            p = os.path.join(directory, name)
            if os.path.exists(p):
                return p
        raise FileNotFoundError(f"directory: {directory} has no {stem}[.gz]")

    def images(stem):
        x = read_idx(find(stem)).astype(np.float32) / 255.0
        p = max(0, pad_to - x.shape[-1]) // 2
        return np.pad(x, ((0, 0), (p, p), (p, p)))[:, None]

    return ((images("train-images-idx3-ubyte"), read_idx(find("train-labels-idx1-ubyte")).astype(np.int64)),
            (images("t10k-images-idx3-ubyte"), read_idx(find("t10k-labels-idx1-ubyte")).astype(np.int64)))


def random_crop(x, size, padding: int = 0, rng=None):
    """Random (size x size) crops of a (N, C, H, W) batch after zero padding (AlexNet/ResNet style)."""
    rng = rng or np.random.default_rng()
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, h, w = x.shape
    size = (size, size) if isinstance(size, int) else size
    if size[0] > h or size[1] > w:
        raise ValueError(f"size: crop {size} larger than the (padded) image {(h, w)}")
    ys = rng.integers(0, h - size[0] + 1, n)
    xs = rng.integers(0, w - size[1] + 1, n)
    return np.stack([x[i, :, ys[i]:ys[i] + size[0], xs[i]:xs[i] + size[1]] for i in range(n)])


def horizontal_flip(x, p: float = 0.5, rng=None):
    """Mirror each image of a (N, C, H, W) batch left-right with probability p."""
    rng = rng or np.random.default_rng()
    flip = rng.random(len(x)) < p
    out = np.array(x, copy=True)
    out[flip] = out[flip][..., ::-1]
    return out


def standardize(x, mean=None, std=None):
    mean = float(np.mean(x)) if mean is None else mean
    std = float(np.std(x)) if std is None else std
    return ((x - mean) / std).astype(np.float32), mean, std


def batches(x, y, batch_size, shuffle=True, rng=None):
    n = len(x)
    idx = (rng or np.random.default_rng()).permutation(n) if shuffle else np.arange(n)
    for i in range(0, n, batch_size):
        j = idx[i:i + batch_size]
        yield x[j], y[j]
