"""Property-based fuzzing (hypothesis) of every operator against convkern.reference.

Valid cases: random shapes and parameters inside each operator's domain, forward and
backward, every ISA this CPU has, float32 and float64, compared with the NumPy reference
(tests/check.py's tolerance: grows with the reduction length).
Invalid cases: a valid call with one argument replaced by a hostile value (wrong type,
dtype, rank, a zero/negative/huge size or parameter, NaN parameter...). The call must either
succeed or raise ValueError/TypeError, never crash or raise anything else; mutations that are
invalid by construction must raise.

Default run: CK_FUZZ_QUICK (default 3) derandomized examples per (op, ISA, dtype) - fast and
the same every time. Campaign: ``pytest -m fuzz tests/test_fuzz.py`` runs CK_FUZZ_EXAMPLES
(default 30) random valid examples per (op, ISA, dtype) and twice that many hostile calls per
(op, direction). The campaign's seed is printed in the session header (``CK_FUZZ_SEED=N``;
set it to replay the whole campaign; ``--hypothesis-seed=N`` works too). A failure prints
the falsifying example (array data come from a numpy seed drawn by hypothesis, printed with
it) and a ``@reproduce_failure(...)`` line.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convkern
import convkern.functional as F
import convkern.reference as R
from check import check_against_reference

ISAS = list(convkern._backend.ISA_NAMES)
DTYPES = [np.float32, np.float64]
QUICK_EXAMPLES = int(os.environ.get("CK_FUZZ_QUICK", "3"))
CAMPAIGN_EXAMPLES = int(os.environ.get("CK_FUZZ_EXAMPLES", "30"))

# statistics of a run, printed at the end of a campaign (see test_zz_report)
STATS = {"valid": 0, "invalid": 0, "rejected": 0, "accepted": 0}

_COMMON = dict(deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
QUICK = settings(max_examples=QUICK_EXAMPLES, derandomize=True, database=None, **_COMMON)
CAMPAIGN = settings(max_examples=CAMPAIGN_EXAMPLES, **_COMMON)


def _campaign_enabled(config) -> bool:
    from conftest import fuzz_selected

    return fuzz_selected(config)


@pytest.fixture(autouse=True)
def _only_with_m_fuzz(request):
    if request.node.get_closest_marker("fuzz") and not _campaign_enabled(request.config):
        pytest.skip("fuzz campaign: run with -m fuzz")


def _use_isa(name):
    if name not in convkern.available_isas():
        pytest.skip(f"{name} not supported by this CPU")
    return convkern.isa(name)


# ---------------------------------------------------------------------------------------------
# Valid cases: each builder draws (args, kwargs, k) for one op; arrays are float64 here and
# check_against_reference casts them to the dtype under test.
# ---------------------------------------------------------------------------------------------

def _arr(rng, shape, lo=None):
    a = rng.standard_normal(shape)
    if lo is not None:
        a = np.abs(a) + lo
    return a


def _noncontig(draw, rng, a):
    """Sometimes hand the op a non-contiguous view with the same values."""
    if a.ndim >= 2 and draw(st.booleans()):
        return np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)
    if a.ndim >= 1 and draw(st.booleans()):
        big = np.repeat(a, 2, axis=-1)
        return big[..., ::2]
    return a


def _window_size(draw, k, s, p, d, lo=1, hi=9):
    """An input length giving at least one output for kernel k, stride s, padding p, dilation d."""
    need = max(1, d * (k - 1) + 1 - 2 * p)
    return draw(st.integers(need, max(need, hi)))


def b_conv(nd, transpose=False):
    @st.composite
    def build(draw):
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        g = draw(st.integers(1, 3))
        cin, cout = g * draw(st.integers(1, 3)), g * draw(st.integers(1, 3))
        n = draw(st.integers(1, 2))
        ks = [draw(st.integers(1, 4 if nd < 3 else 3)) for _ in range(nd)]
        ss = [draw(st.integers(1, 3)) for _ in range(nd)]
        ds = [draw(st.integers(1, 3)) for _ in range(nd)]
        hi = {1: 12, 2: 8, 3: 5}[nd]
        if transpose:
            ps = [draw(st.integers(0, d * (k - 1))) for k, d in zip(ks, ds)]
            ops = [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(ss, ds)]
            sizes = []
            for k, s, p, d, o in zip(ks, ss, ps, ds, ops):
                # (L-1)s - 2p + d(k-1) + o + 1 >= 1
                need = 1
                while (need - 1) * s - 2 * p + d * (k - 1) + o + 1 < 1:
                    need += 1
                sizes.append(draw(st.integers(need, max(need, hi - 2))))
            x = _arr(rng, (n, cin, *sizes))
            w = _arr(rng, (cin, cout // g, *ks))
        else:
            ps = [draw(st.integers(0, k)) for k in ks]
            sizes = [_window_size(draw, k, s, p, d, hi=hi) for k, s, p, d in zip(ks, ss, ps, ds)]
            x = _arr(rng, (n, cin, *sizes))
            w = _arr(rng, (cout, cin // g, *ks))
        b = _arr(rng, (cout,)) if draw(st.booleans()) else None
        kw = dict(stride=tuple(ss) if draw(st.booleans()) else ss[0] if len(set(ss)) == 1 else tuple(ss),
                  padding=tuple(ps), dilation=tuple(ds), groups=g)
        if transpose:
            kw["output_padding"] = tuple(ops)
        name = f"conv{'_transpose' if transpose else ''}{nd}d"
        if nd == 2 and not transpose:
            kw["algo"] = draw(st.sampled_from(["auto", "im2col", "direct"]))
        x = _noncontig(draw, rng, x)
        kred = int(np.prod(ks)) * max(cin, cout) // g
        kred = max(kred, n * int(np.prod(sizes)) * int(np.prod(ss)) * 2)  # weight-grad reduction
        return name, (x, w, b), kw, kred
    return build()


@st.composite
def b_depthwise(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c, m, n = draw(st.integers(1, 5)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ks = [draw(st.sampled_from([1, 2, 3, 5])) for _ in range(2)]
    ss = [draw(st.integers(1, 2)) for _ in range(2)]
    ds = [draw(st.integers(1, 2)) for _ in range(2)]
    ps = [draw(st.integers(0, k)) for k in ks]
    sizes = [_window_size(draw, k, s, p, d, hi=12) for k, s, p, d in zip(ks, ss, ps, ds)]
    x = _noncontig(draw, rng, _arr(rng, (n, c, *sizes)))
    w = _arr(rng, (c * m, 1, *ks))
    b = _arr(rng, (c * m,)) if draw(st.booleans()) else None
    kred = max(int(np.prod(ks)), n * int(np.prod(sizes)))
    return "depthwise_conv2d", (x, w, b), dict(stride=tuple(ss), padding=tuple(ps), dilation=tuple(ds)), kred


def _pool_geom(draw, dilation=True):
    ks = [draw(st.integers(1, 4)) for _ in range(2)]
    ss = [draw(st.integers(1, 3)) for _ in range(2)]
    ps = [draw(st.integers(0, k // 2)) for k in ks]
    ds = [draw(st.integers(1, 2)) if dilation else 1 for _ in range(2)]
    sizes = [_window_size(draw, k, s, p, d, hi=11) for k, s, p, d in zip(ks, ss, ps, ds)]
    return ks, ss, ps, ds, sizes


@st.composite
def b_max_pool(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ks, ss, ps, ds, sizes = _pool_geom(draw)
    x = _noncontig(draw, rng, _arr(rng, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *sizes)))
    stride = None if draw(st.booleans()) and ks == ks else tuple(ss)
    kw = dict(stride=stride, padding=tuple(ps), dilation=tuple(ds), ceil_mode=draw(st.booleans()),
              return_indices=draw(st.booleans()))
    return "max_pool2d", (x, tuple(ks)), kw, int(np.prod(ks))


@st.composite
def b_avg_pool(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ks, ss, ps, ds, sizes = _pool_geom(draw, dilation=False)
    x = _noncontig(draw, rng, _arr(rng, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *sizes)))
    kw = dict(stride=draw(st.sampled_from([None, tuple(ss)])), padding=tuple(ps), ceil_mode=draw(st.booleans()),
              count_include_pad=draw(st.booleans()), divisor_override=draw(st.sampled_from([None, 1, 3, 7])))
    return "avg_pool2d", (x, tuple(ks)), kw, int(np.prod(ks))


def b_adaptive(op):
    @st.composite
    def build(draw):
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
        x = _noncontig(draw, rng, _arr(rng, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w)))
        osz = draw(st.one_of(st.integers(1, 8), st.tuples(st.integers(1, 8), st.integers(1, 8))))
        kw = {"return_indices": draw(st.booleans())} if op == "adaptive_max_pool2d" else {}
        return op, (x, osz), kw, h * w
    return build()


def b_global(op):
    @st.composite
    def build(draw):
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        shape = (draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
        return op, (_noncontig(draw, rng, _arr(rng, shape)),), {}, shape[2] * shape[3]
    return build()


@st.composite
def b_batch_norm(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    nd = draw(st.integers(2, 5))
    c = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, 3)), c] + [draw(st.integers(1, 5)) for _ in range(nd - 2)]
    training = draw(st.booleans())
    if training and int(np.prod(shape)) // c == 1:
        shape[0] = 2
    x = _noncontig(draw, rng, _arr(rng, tuple(shape)))
    affine = draw(st.booleans())
    args = (x, _arr(rng, (c,)), _arr(rng, (c,), lo=0.5), _arr(rng, (c,)) if affine else None,
            _arr(rng, (c,)) if affine and draw(st.booleans()) else None)
    kw = dict(training=training, momentum=draw(st.floats(0, 1)), eps=draw(st.sampled_from([1e-5, 1e-3, 0.1])))
    return "batch_norm", args, kw, int(np.prod(shape)) // c * 4


@st.composite
def b_lrn(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    nd = draw(st.integers(3, 4))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 7))) + tuple(draw(st.integers(1, 5)) for _ in range(nd - 2))
    size = draw(st.integers(1, 6))
    kw = dict(alpha=draw(st.sampled_from([1e-4, 1e-2, 0.5])), beta=draw(st.sampled_from([0.5, 0.75, 1.0])),
              k=draw(st.sampled_from([1.0, 2.0])))
    return "local_response_norm", (_noncontig(draw, rng, _arr(rng, shape)), size), kw, size * 4


@st.composite
def b_layer_norm(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    nn = draw(st.integers(1, len(shape)))
    ns = shape[len(shape) - nn:]
    aff = draw(st.booleans())
    args = (_noncontig(draw, rng, _arr(rng, shape)), ns, _arr(rng, ns) if aff else None,
            _arr(rng, ns) if aff and draw(st.booleans()) else None)
    return "layer_norm", args, dict(eps=draw(st.sampled_from([1e-5, 1e-2]))), int(np.prod(shape)) * 2


@st.composite
def b_linear(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lead = tuple(draw(st.lists(st.integers(1, 5), min_size=0, max_size=2)))
    fi, fo = draw(st.integers(1, 40)), draw(st.integers(1, 20))
    x = _noncontig(draw, rng, _arr(rng, lead + (fi,)))
    b = _arr(rng, (fo,)) if draw(st.booleans()) else None
    return "linear", (x, _arr(rng, (fo, fi)), b), {}, max(fi, fo, int(np.prod(lead)))


def _any_shape(draw, min_dims=0):
    return tuple(draw(st.lists(st.integers(1, 7), min_size=min_dims, max_size=4)))


def b_unary(op, **params):
    @st.composite
    def build(draw):
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        x = _arr(rng, _any_shape(draw)) * draw(st.sampled_from([1.0, 4.0, 30.0]))
        kw = {k: draw(v) for k, v in params.items()}
        return op, (_noncontig(draw, rng, np.asarray(x)),), kw, 1
    return build()


@st.composite
def b_prelu(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = _any_shape(draw, min_dims=1)
    c = shape[1] if len(shape) >= 2 and draw(st.booleans()) else 1
    return "prelu", (_noncontig(draw, rng, _arr(rng, shape)), _arr(rng, (c,))), {}, int(np.prod(shape))


def b_softmax(op):
    @st.composite
    def build(draw):
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        shape = _any_shape(draw, min_dims=1)
        dim = draw(st.integers(-len(shape), len(shape) - 1))
        x = _arr(rng, shape) * draw(st.sampled_from([1.0, 10.0]))
        return op, (_noncontig(draw, rng, x),), {"dim": dim}, shape[dim] * 2
    return build()


@st.composite
def b_dropout(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kw = dict(p=draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])), training=draw(st.booleans()),
              seed=draw(st.integers(0, 2**63 - 1)))
    return "dropout", (_noncontig(draw, rng, _arr(rng, _any_shape(draw))),), kw, 1


@st.composite
def b_cross_entropy(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c = draw(st.integers(1, 6))
    form = draw(st.integers(0, 2))
    if form == 0:
        shape, tshape = (c,), ()
    else:
        n = draw(st.integers(1, 4))
        extra = tuple(draw(st.lists(st.integers(1, 4), max_size=2))) if form == 2 else ()
        shape, tshape = (n, c) + extra, (n,) + extra
    ii = draw(st.sampled_from([-100, 0, c - 1]))
    t = rng.integers(0, c, size=tshape).astype(np.int64)
    if draw(st.booleans()) and t.ndim:
        t.flat[0] = ii
    w = _arr(rng, (c,), lo=0.1) if draw(st.booleans()) else None
    kw = dict(weight=w, ignore_index=ii, reduction=draw(st.sampled_from(["mean", "sum", "none"])),
              label_smoothing=draw(st.sampled_from([0.0, 0.1, 0.5])))
    return "cross_entropy", (_noncontig(draw, rng, _arr(rng, shape)), t), kw, int(np.prod(shape)) * 2


@st.composite
def b_mse(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = _any_shape(draw)
    kw = dict(reduction=draw(st.sampled_from(["mean", "sum", "none"])))
    return "mse_loss", (_noncontig(draw, rng, _arr(rng, shape)), _arr(rng, shape)), kw, int(np.prod(shape)) * 2


BUILDERS = {
    "conv1d": b_conv(1), "conv2d": b_conv(2), "conv3d": b_conv(3),
    "conv_transpose1d": b_conv(1, True), "conv_transpose2d": b_conv(2, True), "conv_transpose3d": b_conv(3, True),
    "depthwise_conv2d": b_depthwise(),
    "max_pool2d": b_max_pool(), "avg_pool2d": b_avg_pool(),
    "adaptive_avg_pool2d": b_adaptive("adaptive_avg_pool2d"), "adaptive_max_pool2d": b_adaptive("adaptive_max_pool2d"),
    "global_avg_pool2d": b_global("global_avg_pool2d"), "global_max_pool2d": b_global("global_max_pool2d"),
    "batch_norm": b_batch_norm(), "local_response_norm": b_lrn(), "layer_norm": b_layer_norm(),
    "linear": b_linear(),
    "relu": b_unary("relu"), "relu6": b_unary("relu6"), "leaky_relu": b_unary("leaky_relu", negative_slope=st.sampled_from([0.0, 0.01, 0.2, -1.5])),
    "prelu": b_prelu(), "elu": b_unary("elu", alpha=st.sampled_from([0.0, 1.0, 0.3, 2.5])),
    "sigmoid": b_unary("sigmoid"), "tanh": b_unary("tanh"),
    "gelu": b_unary("gelu", approximate=st.sampled_from(["none", "tanh"])),
    "softmax": b_softmax("softmax"), "log_softmax": b_softmax("log_softmax"),
    "dropout": b_dropout(), "cross_entropy": b_cross_entropy(), "mse_loss": b_mse(),
}
OPS = sorted(BUILDERS)


def test_every_operator_is_fuzzed():
    forward = {n for n in F.DIFFERENTIABLE}
    assert forward <= set(BUILDERS), sorted(forward - set(BUILDERS))


def _run_valid(case, isa, dtype):
    op, args, kw, k = case
    desc = (f"{op} isa={isa} dtype={np.dtype(dtype).name} shapes={[getattr(a, 'shape', a) for a in args]} "
            f"kwargs={ {k_: getattr(v, 'shape', v) for k_, v in kw.items()} }")
    with _use_isa(isa), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        check_against_reference(op, args, kw, dtype=dtype, k=k, case=desc)
    STATS["valid"] += 1


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("op", OPS)
def test_valid_quick(op, isa, dtype):
    @QUICK
    @given(case=BUILDERS[op])
    def run(case):
        _run_valid(case, isa, dtype)
    run()


@pytest.mark.fuzz
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("op", OPS)
def test_valid_campaign(op, isa, dtype, fuzz_seed):
    @fuzz_seed
    @CAMPAIGN
    @given(case=BUILDERS[op])
    def run(case):
        _run_valid(case, isa, dtype)
    run()


# ---------------------------------------------------------------------------------------------
# Invalid cases: mutate one argument of a valid call.
# ---------------------------------------------------------------------------------------------

HOSTILE_SCALARS = [-1, 0, -(2**31), 2**31, 2**31 - 1, 2**32 + 1, 2**62, 2**63 - 1, 2**63, 2**64 + 5, -(2**63),
                   1.5, float("nan"), float("inf"), -float("inf"), True, None, "3", b"x", (), (1, 2, 3, 4),
                   [2, -1], (0, 0), np.int64(-5), np.float32(2.0), np.uint64(2**63), object()]


def _hostile_arrays(a):
    out = [
        ("int", a.astype(np.int64), True),
        ("f16", a.astype(np.float16), True),
        ("complex", a.astype(np.complex128), True),
        ("object", a.astype(object), True),
        ("bool", a > 0, True),
        ("list", a.tolist(), True),
        ("scalar0d", np.asarray(1.0, a.dtype), False),
        ("rank+1", a[None], False),
        ("flat", a.reshape(-1), False),
        ("zero-dim", np.zeros((0,) + a.shape[1:], a.dtype), False),
        ("zero-last", np.zeros(a.shape[:-1] + (0,), a.dtype) if a.ndim else a, False),
        ("other-float", a.astype(np.float32 if a.dtype == np.float64 else np.float64), False),
        ("shrunk", a[..., :1] if a.ndim else a, False),
        ("grown", np.concatenate([a, a], axis=-1) if a.ndim else a, False),
        ("big-endian", a.astype(a.dtype.newbyteorder(">")), False),
        ("readonly", _readonly(a), False),
        ("broadcast0stride", np.broadcast_to(a.reshape(-1)[:1].reshape((1,) * a.ndim), a.shape) if a.size else a, False),
        ("nan", np.full(a.shape, np.nan, a.dtype), False),
        ("inf", np.full(a.shape, np.inf, a.dtype), False),
        ("reversed", a[..., ::-1] if a.ndim else a, False),
    ]
    return out


def _readonly(a):
    b = a.copy()
    b.flags.writeable = False
    return b


def _slots(op, args, kw):
    """Every (position or keyword) the mutator may replace, including unset defaults."""
    import inspect
    params = list(inspect.signature(getattr(F, op)).parameters)
    slots = list(range(len(args)))
    slots += [p for p in params[len(args):]]
    return slots


def _call(fn, args, kw):
    return fn(*args, **kw)


def _run_invalid(data, op, dtype, backward):
    rng_case = data.draw(BUILDERS[op], label="valid case")
    _, args, kw, _ = rng_case
    args = [a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args]
    kw = {k: (v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v) for k, v in kw.items()}
    slot = data.draw(st.sampled_from(_slots(op, args, kw)), label="slot")
    cur = args[slot] if isinstance(slot, int) else kw.get(slot)
    must_raise = False
    if isinstance(cur, np.ndarray):
        label, bad, must_raise = data.draw(st.sampled_from(_hostile_arrays(cur)), label="array mutation")
        if cur.dtype.kind in "iu" and label == "int":
            must_raise = False
    else:
        bad = data.draw(st.sampled_from(HOSTILE_SCALARS + [np.ones(3)]), label="scalar mutation")
    if isinstance(slot, int):
        args = list(args)
        args[slot] = bad
    else:
        kw = dict(kw)
        kw[slot] = bad
    fn = getattr(F, op)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if backward:
                # grad_output shaped like the valid forward's output, or itself hostile
                g = data.draw(st.sampled_from(["ok", "bad"]), label="grad_output")
                ok_args = [a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
                           for a in rng_case[1]]
                ok_kw = {k: (v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
                         for k, v in rng_case[2].items()}
                y0 = fn(*ok_args, **ok_kw)
                y0 = y0[0] if isinstance(y0, tuple) else y0
                grad = np.ones_like(y0)
                if g == "bad":
                    grad = data.draw(st.sampled_from([m[1] for m in _hostile_arrays(grad)]), label="bad grad")
                getattr(F, op + "_backward")(grad, *args, **kw)
            else:
                _call(fn, args, kw)
    except (ValueError, TypeError) as e:
        assert str(e), f"{op}: empty error message"
        STATS["rejected"] += 1
        STATS["invalid"] += 1
        return
    STATS["invalid"] += 1
    STATS["accepted"] += 1
    assert not must_raise, f"{op}: {slot} = {type(bad).__name__} {getattr(bad, 'dtype', '')} was accepted"


@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "bwd"])
@pytest.mark.parametrize("op", OPS)
def test_invalid_quick(op, backward):
    if backward and op not in F.DIFFERENTIABLE:
        pytest.skip("no backward")

    @settings(QUICK, max_examples=QUICK_EXAMPLES * 4)
    @given(data=st.data())
    def run(data):
        _run_invalid(data, op, data.draw(st.sampled_from(DTYPES), label="dtype"), backward)
    run()


@pytest.mark.fuzz
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "bwd"])
@pytest.mark.parametrize("op", OPS)
def test_invalid_campaign(op, backward, fuzz_seed):
    if backward and op not in F.DIFFERENTIABLE:
        pytest.skip("no backward")

    @fuzz_seed
    @settings(CAMPAIGN, max_examples=CAMPAIGN_EXAMPLES * 2)
    @given(data=st.data())
    def run(data):
        _run_invalid(data, op, data.draw(st.sampled_from(DTYPES), label="dtype"), backward)
    run()


def test_zz_report(capsys):
    """Prints the example counts of this session (run last in the file)."""
    with capsys.disabled():
        print(f"\n[fuzz] valid examples checked: {STATS['valid']}; invalid calls: {STATS['invalid']} "
              f"(rejected with ValueError/TypeError: {STATS['rejected']}, accepted: {STATS['accepted']})")


@pytest.mark.fuzz
def test_zz_report_campaign(capsys):
    from conftest import FUZZ_SEED

    test_zz_report(capsys)
    with capsys.disabled():
        print(f"[fuzz] campaign seed: CK_FUZZ_SEED={FUZZ_SEED}")
