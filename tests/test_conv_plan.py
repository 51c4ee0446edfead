"""ConvPlan: one conv_nd call made repeatable (the ONNX backend's per-node fast path).

A plan's run() on a new input must give bit for bit what conv_nd gives on it, on every route
'auto' picks, with and without residual and relu/ReLU6, plain and packed weights; it must
refuse (return None, running nothing) any input it was not made for; conv_nd_plan gives no plan
where a call cannot be repeated; and an ONNX Conv node uses its plan from the second run on,
with the same outputs, and leaves it for a new input shape.
"""
from __future__ import annotations

import numpy as np
import pytest

import convkern.functional as F
from convkern._ops import conv as C

from test_fused_relu6 import CASES


def _args(case, dtype, seed):
    N, Ci, K, H, W, Rk, Sk, s, p, g, _ = case
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, Ci, H, W)) * 3).astype(dtype)
    w = rng.standard_normal((K, Ci // g, Rk, Sk)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, w, b, dict(stride=s, padding=p, groups=g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[c[-1] + str(i) for i, c in enumerate(CASES)])
def test_plan_repeats_conv_nd(isa, case, dtype):
    x, w, b, kw = _args(case, dtype, 3)
    rng = np.random.default_rng(4)
    weights = [w] + ([F.PackedConvWeight(w, 1)] if kw["groups"] == 1 else [])
    for wt in weights:
        for relu, hi, with_res in [(False, None, False), (True, None, False), (True, 6.0, False),
                                   (True, 6.0, True), (False, None, True)]:
            msg = f"{case} {type(wt).__name__} relu={relu} relu_max={hi} residual={with_res}"
            r0 = None
            if with_res:
                r0 = rng.standard_normal(C.conv_nd(2, x, w, b, **kw).shape).astype(dtype) * 4
            y0, plan = C.conv_nd_plan(2, x, wt, b, relu=relu, relu_max=hi, residual=r0, **kw)
            assert plan is not None, msg
            np.testing.assert_array_equal(y0, C.conv_nd(2, x, w, b, relu=relu, relu_max=hi, residual=r0, **kw),
                                          err_msg=msg)
            for _ in range(2):  # new inputs of the same shape, each output a fresh array
                x1 = (rng.standard_normal(x.shape) * 3).astype(dtype)
                x1.flat[x1.size // 2] = np.nan
                r1 = None if r0 is None else rng.standard_normal(r0.shape).astype(dtype)
                got = plan.run(x1, r1)
                assert got is not None and got is not y0 and not np.shares_memory(got, x1), msg
                want = C.conv_nd(2, x1, w, b, relu=relu, relu_max=hi, residual=r1, **kw)
                np.testing.assert_array_equal(got, want, err_msg=msg)


def test_plan_refuses_other_inputs():
    x, w, b, kw = _args(CASES[0], np.float32, 5)
    r = np.ones(C.conv_nd(2, x, w, b, **kw).shape, np.float32)
    _, plain = C.conv_nd_plan(2, x, w, b, **kw)
    _, with_res = C.conv_nd_plan(2, x, w, b, residual=r, **kw)
    others = [
        x.astype(np.float64),                                   # dtype
        np.concatenate([x, x]),                                 # batch
        x[..., :-1].copy(),                                     # plane
        np.asfortranarray(x),                                   # layout
        x.tolist(),                                             # not an array
    ]
    for o in others:
        assert plain.run(o) is None
        assert with_res.run(o, r) is None
    assert plain.run(x, r) is None            # a residual the plan was made without
    assert with_res.run(x) is None            # and none where it was made with one
    assert with_res.run(x, r.astype(np.float64)) is None
    assert with_res.run(x, r[:, :-1].copy()) is None
    assert with_res.run(x, np.asfortranarray(r)) is None
    np.testing.assert_array_equal(with_res.run(x, r), C.conv_nd(2, x, w, b, residual=r, **kw))


def test_no_plan_where_a_call_cannot_repeat():
    x, w, b, kw = _args(CASES[0], np.float32, 6)
    y, plan = C.conv_nd_plan(2, x[0], w, b, **kw)        # unbatched
    assert plan is None
    np.testing.assert_array_equal(y, C.conv_nd(2, x, w, b, **kw)[0])
    y, plan = C.conv_nd_plan(2, x[:0], w, b, **kw)       # empty output
    assert plan is None and y.shape[0] == 0
    with pytest.raises(ValueError, match="relu_max"):    # validated like conv_nd
        C.conv_nd_plan(2, x, w, b, relu=True, relu_max=-1, **kw)


def test_onnx_conv_node_runs_its_plan():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    import convkern.onnx as ckonnx

    rng = np.random.default_rng(8)
    w1 = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    b2 = rng.standard_normal(16).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["a", "lo", "hi"], ["c"]),
             helper.make_node("Conv", ["c", "W2", "B2"], ["d"], pads=[1, 1, 1, 1], group=16),
             helper.make_node("Add", ["d", "c"], ["y"])]
    inits = [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2"), numpy_helper.from_array(b2, "B2"),
             numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32), "hi")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    rep = ckonnx.prepare(m)
    plain = ckonnx.prepare(m, optimize=False)  # (no fusion, and no residual Conv)
    convs = [n for _, n, _ in rep.plan if n.op_type == "Conv"]
    assert len(convs) == 2 and convs[1].extra.get("residual")  # the Add fused into the depthwise Conv
    runs, cls_run = [], C.ConvPlan.run

    def spy(self, *a):
        out = cls_run(self, *a)
        runs.append(out is not None)
        return out
    C.ConvPlan.run = spy
    xs = [rng.standard_normal(shape).astype(np.float32) for shape in [(1, 8, 10, 10), (1, 8, 10, 10), (2, 8, 7, 9),
                                                                       (2, 8, 7, 9)]]
    try:
        got = [rep.run([x])[0] for x in xs]
    finally:
        C.ConvPlan.run = cls_run
    for x, y in zip(xs, got):
        a = np.clip(C.conv_nd(2, x, w1, padding=1), 0, 6)
        want = C.conv_nd(2, a, w2, b2, padding=1, groups=16) + a
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(y, plain.run([x])[0])
    # each Conv node: no plan on the first run, its plan on the second, refused (another
    # shape) on the third, which makes a new one, used on the fourth
    assert runs == [True] * len(convs) + [False] * len(convs) + [True] * len(convs), runs
    assert all("conv_plan" in n.extra for n in convs)


def test_plan_belongs_to_its_isa():
    """A plan made under one instruction set refuses under another (its packed layouts are the
    first one's), and the ONNX Conv node then packs its weight and plans again for the new one
    instead of repacking on every call."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    import convkern
    import convkern.onnx as ckonnx

    isas = convkern.available_isas()
    if len(isas) < 2:
        pytest.skip("one instruction set on this CPU")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 24, 7, 7)).astype(np.float32)
    w = rng.standard_normal((40, 24, 1, 1)).astype(np.float32)
    with convkern.isa(isas[-1]):
        y, plan = C.conv_nd_plan(2, x, F.PackedConvWeight(w), None)
        np.testing.assert_array_equal(plan.run(x), y)
    with convkern.isa(isas[0]):
        assert plan.run(x) is None
    with convkern.isa(isas[-1]):
        assert plan.run(x) is not None

    g = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(w, "W")])
    rep = ckonnx.prepare(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    node = next(n for _, n, _ in rep.plan if n.op_type == "Conv")
    for name in (isas[-1], isas[-1], isas[0], isas[0]):
        with convkern.isa(name):
            got = rep.run([x])[0]
            np.testing.assert_allclose(got, C.conv_nd(2, x, w), rtol=1e-5, atol=1e-5)
            assert node.extra["packed"][1].isa == convkern._C.get_isa()
            assert node.extra["conv_plan"][2].isa == convkern._C.get_isa()
