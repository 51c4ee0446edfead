"""Hostile files: weights (.npz, safetensors, nn.Module.load) and ONNX models that are
truncated, have wrong dtypes, lie about shapes, claim absurd sizes, carry pickles or point
their external data outside the model's directory. Each is a clear exception (ValueError /
TypeError / KeyError / NotImplementedError for unsupported ONNX operators), never a crash, never
a pickle loaded, never a file read outside the model's directory.

The mutation fuzzers (byte flips, truncation, insertions of valid files) run a small seeded
number of mutants by default and CK_FUZZ_FILE_EXAMPLES (default 2000) of each with ``-m fuzz``.
"""
from __future__ import annotations

import io as _pyio
import json
import os
import pickle
import struct
import sys
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convkern
from convkern import io
from convkern.io import WeightsFileError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import convkern.onnx as ckonnx  # noqa: E402

QUICK = int(os.environ.get("CK_FUZZ_QUICK", "3")) * 10
CAMPAIGN = int(os.environ.get("CK_FUZZ_FILE_EXAMPLES", "2000"))
_COMMON = dict(deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
STATS = {}


def _campaign_enabled(config) -> bool:
    from conftest import fuzz_selected

    return fuzz_selected(config)


@pytest.fixture(autouse=True)
def _only_with_m_fuzz(request):
    if request.node.get_closest_marker("fuzz") and not _campaign_enabled(request.config):
        pytest.skip("fuzz campaign: run with -m fuzz")


# ---------------------------------------------------------------------------------------------
# "never unpickle, never read outside": an audit hook records every file opened and every
# pickle load while a hostile file is handled.

_WATCH = {"on": False, "opened": [], "pickle": 0}


def _audit(event, args):
    if not _WATCH["on"]:
        return
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _WATCH["opened"].append(os.fsdecode(args[0]))
    elif event == "pickle.find_class":
        _WATCH["pickle"] += 1


sys.addaudithook(_audit)


class _Watch:
    def __enter__(self):
        _WATCH.update(on=True, opened=[], pickle=0)
        return _WATCH

    def __exit__(self, *exc):
        _WATCH["on"] = False


class _Evil:
    """Unpickling this would create a marker file (the classic pickle exploit)."""

    marker = None

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ---------------------------------------------------------------------------------------------
# weights files

def _sd():
    rng = np.random.default_rng(0)
    return {"conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
            "conv.bias": rng.standard_normal(4).astype(np.float32),
            "bn.running_var": np.ones(4, np.float64), "bn.num_batches_tracked": np.array(3, np.int64),
            "half": np.ones((2, 3), np.float16)}


def _npz_bytes(sd, compressed=False):
    b = _pyio.BytesIO()
    (np.savez_compressed if compressed else np.savez)(b, **sd)
    return b.getvalue()


def _st_bytes(header, data=b""):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def _npy_member(header: dict, data: bytes) -> bytes:
    b = _pyio.BytesIO()
    np.lib.format.write_array_header_1_0(b, header)
    return b.getvalue() + data


def _zip(members: dict) -> bytes:
    b = _pyio.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    return b.getvalue()


def _expect_clean(fn, *, allowed=(ValueError, TypeError, KeyError)):
    try:
        fn()
    except allowed as e:
        assert str(e), f"{type(e).__name__} without a message"
        return e
    return None


def test_npz_pickles_never_loaded(tmp_path):
    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    # 1. an object array inside an .npz (np.savez pickles it)
    p = tmp_path / "obj.npz"
    np.savez(p, a=np.array([_Evil()], dtype=object))
    # 2. a raw pickle renamed .npz, and a .npy holding a pickle
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps({"w": _Evil()}))
    npy = tmp_path / "objnpy.npz"
    b = _pyio.BytesIO()
    np.save(b, np.array([_Evil()], dtype=object), allow_pickle=True)
    npy.write_bytes(_zip({"w.npy": b.getvalue()}))
    for f, what in [(p, "pickle"), (raw, "not a valid"), (npy, "pickle")]:
        with _Watch() as w, pytest.raises(WeightsFileError, match=what):
            io.load(f)
        assert w["pickle"] == 0 and not marker.exists()
        with pytest.raises(ValueError):
            convkern.nn.Conv2d(3, 4, 3).load(f)
    assert not marker.exists()


@pytest.mark.parametrize("case", ["lies-bigger", "lies-smaller", "absurd", "int64-overflow", "bad-descr",
                                  "not-npy", "npy-not-npz", "empty-file", "dir"])
def test_npz_lying_or_broken(tmp_path, case):
    p = tmp_path / "w.npz"
    data = np.arange(6, dtype="<f4").tobytes()
    hdr = {"descr": "<f4", "fortran_order": False, "shape": (2, 3)}
    if case == "lies-bigger":
        p.write_bytes(_zip({"w.npy": _npy_member(dict(hdr, shape=(200, 300)), data)}))
    elif case == "lies-smaller":
        p.write_bytes(_zip({"w.npy": _npy_member(dict(hdr, shape=(1, 3)), data)}))
    elif case == "absurd":
        p.write_bytes(_zip({"w.npy": _npy_member(dict(hdr, shape=(2**40, 2**20)), data)}))
    elif case == "int64-overflow":
        p.write_bytes(_zip({"w.npy": _npy_member(dict(hdr, shape=(2**62, 4)), data)}))
    elif case == "bad-descr":
        p.write_bytes(_zip({"w.npy": _npy_member(dict(hdr, descr="<q16"), data)}))
    elif case == "not-npy":
        p.write_bytes(_zip({"w.npy": b"hello world, not an array"}))
    elif case == "npy-not-npz":
        b = _pyio.BytesIO()
        np.save(b, np.ones(3))
        p.write_bytes(b.getvalue())
    elif case == "empty-file":
        p.write_bytes(b"")
    elif case == "dir":
        p.mkdir()
    with pytest.raises((WeightsFileError, IsADirectoryError)) as e:
        io.load(p)
    if case in ("absurd", "int64-overflow"):
        assert "memory" in str(e.value)


@pytest.mark.parametrize("case", ["not-object", "tensor-not-object", "missing-keys", "bad-offsets", "float-offsets",
                                  "negative-dim", "float-dim", "bool-dim", "lies", "absurd", "int64-overflow",
                                  "unknown-dtype", "list-dtype", "bf16-odd", "huge-header", "bad-json", "bad-utf8",
                                  "deep-json", "short"])
def test_safetensors_lying_or_broken(tmp_path, case):
    d = np.arange(6, dtype="<f4").tobytes()
    ok = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    blobs = {
        "not-object": _st_bytes([1, 2, 3]),
        "tensor-not-object": _st_bytes({"w": [1, 2]}, d),
        "missing-keys": _st_bytes({"w": {"dtype": "F32"}}, d),
        "bad-offsets": _st_bytes({"w": dict(ok, data_offsets=[0])}, d),
        "float-offsets": _st_bytes({"w": dict(ok, data_offsets=[0.0, 24.0])}, d),
        "negative-dim": _st_bytes({"w": dict(ok, shape=[-2, -3])}, d),
        "float-dim": _st_bytes({"w": dict(ok, shape=[2.0, 3])}, d),
        "bool-dim": _st_bytes({"w": dict(ok, shape=[True, 6])}, d),
        "lies": _st_bytes({"w": dict(ok, shape=[3, 3])}, d),
        "absurd": _st_bytes({"w": dict(ok, shape=[2**40, 2**20])}, d),
        "int64-overflow": _st_bytes({"w": dict(ok, shape=[2**62, 4], data_offsets=[0, 0])}, d),
        "unknown-dtype": _st_bytes({"w": dict(ok, dtype="C64")}, d),
        "list-dtype": _st_bytes({"w": dict(ok, dtype=["F32"])}, d),
        "bf16-odd": _st_bytes({"w": dict(ok, dtype="BF16", data_offsets=[0, 5])}, d),
        "huge-header": struct.pack("<Q", 2**63) + b"{}",
        "bad-json": struct.pack("<Q", 5) + b"{nope",
        "bad-utf8": struct.pack("<Q", 4) + b"\xff\xfe{}",
        "deep-json": struct.pack("<Q", 200000) + b"[" * 100000 + b"]" * 100000,
        "short": b"\x01\x02",
    }
    p = tmp_path / "w.safetensors"
    p.write_bytes(blobs[case])
    with pytest.raises(WeightsFileError):
        io.load(p)


def test_module_load_wrong_dtypes_shapes_and_keys(tmp_path):
    m = convkern.nn.Conv2d(3, 4, 3)
    good = {k: np.asarray(v) for k, v in m.state_dict().items()}
    for bad, exc, what in [
        ({**good, "weight": good["weight"].astype(np.complex64)}, TypeError, "weight"),
        ({**good, "weight": np.full(good["weight"].shape, "x")}, TypeError, "weight"),
        ({**good, "weight": good["weight"][:2]}, ValueError, "weight"),
        ({**good, "extra": np.ones(1)}, KeyError, "extra"),
        ({"weight": good["weight"]}, KeyError, "bias"),
    ]:
        for ext in ("npz", "safetensors"):
            p = tmp_path / f"m.{ext}"
            if ext == "safetensors" and bad.get("weight") is not None and bad["weight"].dtype.kind in "cU":
                with pytest.raises(TypeError):
                    io.save(bad, p)
                continue
            io.save(bad, p)
            with pytest.raises(exc, match=what):
                convkern.nn.Conv2d(3, 4, 3).load(p)
    # float64 / float16 / int files load into float32 parameters (torch's copy_ semantics)
    p = tmp_path / "m.npz"
    io.save({k: v.astype(np.float16) for k, v in good.items()}, p)
    m2 = convkern.nn.Conv2d(3, 4, 3).load(p)
    assert np.asarray(m2.state_dict()["weight"]).dtype == np.float32


# -- mutation fuzzing of valid weights files ----------------------------------------------------

def _mutate(draw, blob: bytes) -> bytes:
    b = bytearray(blob)
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3, 4]))):
        kind = draw(st.sampled_from(["flip", "byte", "truncate", "insert", "delete", "dup"]))
        if not b:
            break
        i = draw(st.integers(0, len(b) - 1))
        if kind == "flip":
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            b[i] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, ord("9"), ord("-"), ord("[")]))
        elif kind == "truncate":
            del b[i:]
        elif kind == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del b[i:i + draw(st.integers(1, 16))]
        else:
            j = draw(st.integers(i, min(len(b), i + 64)))
            b[j:j] = b[i:j]
    return bytes(b)


def _count(name, outcome):
    s = STATS.setdefault(name, {"mutants": 0, "loaded": 0, "rejected": 0})
    s["mutants"] += 1
    s[outcome] += 1


def _st_file_bytes():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "w.safetensors")
        io.save_safetensors(_sd(), p)
        with open(p, "rb") as f:
            return f.read()


WEIGHT_FILES = {
    "npz": lambda: _npz_bytes(_sd()),
    "npz-compressed": lambda: _npz_bytes(_sd(), True),
    "safetensors": _st_file_bytes,
}


def _fuzz_weights(kind, tmp_path, data):
    blob = WEIGHT_FILES[kind]()
    bad = _mutate(data.draw, blob)
    p = tmp_path / ("w.safetensors" if kind == "safetensors" else "w.npz")
    p.write_bytes(bad)
    with _Watch() as w, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sd = io.load(p)
        except WeightsFileError as e:
            assert str(e)
            _count(kind, "rejected")
        else:
            _count(kind, "loaded")
            assert all(isinstance(v, np.ndarray) and v.dtype.kind in "biuf" for v in sd.values())
            # loading into a model: a clean error or success
            _expect_clean(lambda: convkern.nn.Conv2d(3, 4, 3).load_state_dict(
                {k.split(".", 1)[-1]: v for k, v in sd.items() if k.startswith("conv.")}))
    assert w["pickle"] == 0
    assert all(os.path.realpath(f) == os.path.realpath(p) or not f.startswith(str(tmp_path)) for f in w["opened"])


@pytest.mark.parametrize("kind", sorted(WEIGHT_FILES))
def test_weights_mutations_quick(kind, tmp_path):
    @settings(max_examples=QUICK, derandomize=True, database=None, **_COMMON)
    @given(data=st.data())
    def run(data):
        _fuzz_weights(kind, tmp_path, data)
    run()


@pytest.mark.fuzz
@pytest.mark.parametrize("kind", sorted(WEIGHT_FILES))
def test_weights_mutations_campaign(kind, tmp_path, fuzz_seed):
    @fuzz_seed
    @settings(max_examples=CAMPAIGN, **_COMMON)
    @given(data=st.data())
    def run(data):
        _fuzz_weights(kind, tmp_path, data)
    run()


# ---------------------------------------------------------------------------------------------
# ONNX models

def _vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def _cnn_model(external=False):
    """Conv-BN-Relu-MaxPool-Flatten-Gemm-Softmax with a Reshape constant; optionally the conv
    weight in an external file next to the model."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32), "W")
    inits = [w, numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "B")]
    inits += [numpy_helper.from_array(a.astype(np.float32), n) for a, n in
              zip([rng.uniform(0.5, 1.5, 4), rng.standard_normal(4), rng.standard_normal(4) * 0.1,
                   rng.uniform(0.5, 1.5, 4)], ["s", "bb", "m", "v"])]
    inits += [numpy_helper.from_array(rng.standard_normal((5, 36)).astype(np.float32), "G"),
              numpy_helper.from_array(np.zeros(5, np.float32), "gb"),
              numpy_helper.from_array(np.array([1, -1], np.int64), "shape")]
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[1, 1]),
             helper.make_node("Reshape", ["p", "shape"], ["f"]),
             helper.make_node("Gemm", ["f", "G", "gb"], ["g"], transB=1),
             helper.make_node("Softmax", ["g"], ["y"], axis=1)]
    g = helper.make_graph(nodes, "g", [_vi("x", [1, 3, 8, 8])], [_vi("y", [1, 5])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    if external:
        t = m.graph.initializer[0]
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", "w.bin"), ("offset", "0"), ("length", str(4 * 3 * 3 * 3 * 4))):
            e = t.external_data.add()
            e.key, e.value = k, v
    return m


def _onnx_dir(tmp_path, external):
    d = tmp_path / "model"
    d.mkdir(exist_ok=True)
    (tmp_path / "secret.bin").write_bytes(np.ones(108, np.float32).tobytes())
    if external:
        rng = np.random.default_rng(0)
        (d / "w.bin").write_bytes((rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32).tobytes())
    return d


def test_cnn_model_runs(tmp_path):
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    d = _onnx_dir(tmp_path, True)
    (d / "m.onnx").write_bytes(_cnn_model(True).SerializeToString())
    y_ext = ckonnx.prepare(str(d / "m.onnx")).run([x])[0]
    y = ckonnx.prepare(_cnn_model()).run([x])[0]
    np.testing.assert_allclose(y_ext, y, rtol=1e-6)
    assert y.shape == (1, 5) and abs(float(y.sum()) - 1) < 1e-5


@pytest.mark.parametrize("case", ["absolute", "dotdot", "symlink", "nested-dotdot", "offset-past-end",
                                  "negative-offset", "huge-length", "not-a-number", "missing-file", "dir",
                                  "from-bytes"])
def test_onnx_external_data_hostile(tmp_path, case):
    d = _onnx_dir(tmp_path, True)
    m = _cnn_model(True)
    ext = {e.key: e for e in m.graph.initializer[0].external_data}
    loc = {"absolute": str(tmp_path / "secret.bin"), "dotdot": "../secret.bin", "symlink": "link.bin",
           "nested-dotdot": "a/../../secret.bin", "missing-file": "nope.bin", "dir": "sub"}.get(case)
    if loc:
        ext["location"].value = loc
    if case == "symlink":
        os.symlink(tmp_path / "secret.bin", d / "link.bin")
    if case == "dir":
        (d / "sub").mkdir()
    if case == "offset-past-end":
        ext["offset"].value = "100000"
    if case == "negative-offset":
        ext["offset"].value = "-8"
    if case == "huge-length":
        ext["length"].value = str(2**62)
    if case == "not-a-number":
        ext["length"].value = "12abc"
    (d / "m.onnx").write_bytes(m.SerializeToString())
    with _Watch() as w, pytest.raises(ValueError):
        ckonnx.prepare(m.SerializeToString() if case == "from-bytes" else str(d / "m.onnx"))
    assert not any(os.path.realpath(f) == os.path.realpath(tmp_path / "secret.bin") for f in w["opened"])


def test_onnx_integer_weights_are_cast_like_the_input():
    """A deliberate leniency of convkern.onnx: numeric initializers of another type are cast to
    the input's float type (onnxruntime would refuse the model); non-numeric ones are errors."""
    m = _cnn_model()
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.ones((4, 3, 3, 3), np.int32), "W"))
    y = ckonnx.prepare(m).run([np.zeros((1, 3, 8, 8), np.float32)])[0]
    assert y.dtype == np.float32 and np.all(np.isfinite(y))


@pytest.mark.parametrize("case", ["dims-lie", "absurd-dims", "negative-dims", "wrong-dtype", "string-weights", "input-absurd", "attr-absurd-pads", "attr-zero-stride",
                                  "attr-huge-kernel", "reshape-absurd", "bn-3-inputs", "bn-string-eps",
                                  "bn-list-eps", "conv-0d-weight"])
def test_onnx_lying_models(case):
    m = _cnn_model()
    W = m.graph.initializer[0]
    if case == "dims-lie":
        W.dims[0] = 40
    elif case == "absurd-dims":
        del W.dims[:]
        W.dims.extend([2**40, 2**30, 1, 1])
    elif case == "negative-dims":
        W.dims[0] = -4
    elif case == "wrong-dtype":
        W.data_type = TensorProto.DOUBLE
    elif case == "string-weights":
        W.CopyFrom(helper.make_tensor("W", TensorProto.STRING, [4, 3, 3, 3], [b"x"] * 108))
    elif case == "input-absurd":
        m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 2**40
    elif case == "attr-absurd-pads":
        m.graph.node[0].attribute[0].ints[:] = [2**40] * 4
    elif case == "attr-zero-stride":
        m.graph.node[0].attribute[1].ints[:] = [0, 0]
    elif case == "attr-huge-kernel":
        m.graph.node[3].attribute[0].ints[:] = [2**40, 2**40]
    elif case == "bn-3-inputs":  # found by the mutation fuzzer: crashed the BN-folding pass
        del m.graph.node[1].input[3:]
    elif case in ("bn-string-eps", "bn-list-eps"):
        m.graph.node[1].attribute[0].CopyFrom(
            helper.make_attribute("epsilon", "x" if case == "bn-string-eps" else [1e-3, 2e-3]))
    elif case == "conv-0d-weight":
        W.CopyFrom(numpy_helper.from_array(np.array(1.0, np.float32), "W"))
    elif case == "reshape-absurd":
        m.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.array([2**40, 2**40], np.int64), "shape"))
    x = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises((ValueError, TypeError, NotImplementedError)) as e:
        ckonnx.prepare(m).run([x])
    assert str(e.value)


def _fuzz_onnx(tmp_path, data, external):
    d = _onnx_dir(tmp_path, external)
    blob = _mutate(data.draw, _cnn_model(external).SerializeToString())
    p = d / "m.onnx"
    p.write_bytes(blob)
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    with _Watch() as w, warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            ckonnx.prepare(str(p)).run([x])
        except (ValueError, TypeError, KeyError, NotImplementedError) as e:
            assert str(e) or isinstance(e, KeyError)
            _count("onnx-ext" if external else "onnx", "rejected")
        else:
            _count("onnx-ext" if external else "onnx", "loaded")
    secret = os.path.realpath(tmp_path / "secret.bin")
    assert not any(os.path.realpath(f) == secret for f in w["opened"]), "read outside the model's directory"
    assert w["pickle"] == 0


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external"])
def test_onnx_mutations_quick(tmp_path, external):
    @settings(max_examples=QUICK, derandomize=True, database=None, **_COMMON)
    @given(data=st.data())
    def run(data):
        _fuzz_onnx(tmp_path, data, external)
    run()


@pytest.mark.fuzz
@pytest.mark.parametrize("external", [False, True], ids=["inline", "external"])
def test_onnx_mutations_campaign(tmp_path, external, fuzz_seed):
    @fuzz_seed
    @settings(max_examples=CAMPAIGN, **_COMMON)
    @given(data=st.data())
    def run(data):
        _fuzz_onnx(tmp_path, data, external)
    run()


def test_zz_report(capsys):
    with capsys.disabled():
        for k, v in sorted(STATS.items()):
            print(f"\n[hostile files] {k}: {v['mutants']} mutants, {v['rejected']} rejected cleanly, "
                  f"{v['loaded']} loaded", end="")
        print()


@pytest.mark.fuzz
def test_zz_report_campaign(capsys):
    from conftest import FUZZ_SEED

    test_zz_report(capsys)
    with capsys.disabled():
        print(f"[hostile files] campaign seed: CK_FUZZ_SEED={FUZZ_SEED}")
