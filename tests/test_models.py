"""convkern.models: published parameter counts, output shapes, MACs (torchvision's table),
torchvision-layout state dicts through .npz and safetensors, whole-model gradient checks."""
import numpy as np
import pytest

import convkern
import convkern.nn as nn
import convkern.models as M
from convkern.models.checks import WHOLE_MODEL_CHECKS
from convkern.summary import flops, summary

OUTPUT = {
    "simple_cnn": (1, 28, 28, 10), "toy_resnet": (1, 10), "lenet5": (1, 10), "unet": (1, 2, 388, 388),
}

# torchvision's measured MACs (conv + linear) from reference_numbers.md, plus the Keras LeNet-5 table
MACS = {
    "lenet5": 416_520, "alexnet": 714_188_480, "vgg11": 7_609_090_048, "vgg16": 15_470_264_320,
    "vgg19": 19_632_062_464, "vgg16_bn": 15_470_264_320, "googlenet": 1_498_376_192, "resnet18": 1_814_073_344,
    "resnet34": 3_663_761_408, "resnet50": 4_089_184_256, "resnet101": 7_801_405_440, "resnet152": 11_513_626_624,
    "mobilenet_v2": 300_774_272, "densenet121": 2_834_161_664,
}
CONV_LINEAR = {"resnet50": (4_087_136_256, 2_048_000), "densenet121": (2_833_137_664, 1_024_000),
               "alexnet": (655_566_528, 58_621_952)}


def _build(name, **kw):
    with nn.skip_init():
        return M.get_model(name, **kw)


@pytest.mark.parametrize("name", list(M.ZOO))
def test_parameter_count(name):
    published, keras = M.published_params(name)
    assert nn.count_params(_build(name), include_bn_stats=keras) == published


def test_keras_and_torchvision_reconciliation():
    """Keras counts = torchvision params + BN moving statistics (reference_numbers.md 3c)."""
    m = _build("mobilenet_v2")
    assert m.num_parameters() == 3_504_872 and nn.count_params(m, True) == 3_538_984
    m = _build("densenet121")
    assert nn.count_params(m, True) == 8_062_504
    m = _build("xception")
    assert m.num_parameters() == 22_855_952
    m = _build("mobilenet")
    assert m.num_parameters() == 4_231_976
    assert _build("googlenet", aux_logits=True).num_parameters() == 13_004_888


@pytest.mark.parametrize("name", list(M.ZOO))
def test_output_shape(name):
    """Shape-only pass (no kernels) through every architecture at its reference input size."""
    _, shape, *_ = M.ZOO[name]
    s = summary(_build(name), shape, print_fn=None)
    assert s.output_shape == OUTPUT.get(name, (1, 1000))


@pytest.mark.parametrize("name", list(MACS))
def test_macs_match_reference_numbers(name):
    _, shape, *_ = M.ZOO[name]
    assert flops(_build(name), shape) == MACS[name]


def test_macs_by_kind():
    for name, (conv, lin) in CONV_LINEAR.items():
        d = flops(_build(name), M.ZOO[name][1], by_kind=True)
        assert (d["conv"], d["linear"], d["total"]) == (conv, lin, conv + lin)
    assert flops(_build("resnet50"), (3, 224, 224), batch_size=2) == 2 * 4_089_184_256


def test_summary_table_lenet():
    s = summary(M.lenet5(), (1, 32, 32), print_fn=None)
    rows = [r for r in s.rows if r[3] or r[4]]
    assert [(r[3], r[4]) for r in rows] == [(156, 117_600), (2_416, 240_000), (48_120, 48_000), (10_164, 10_080),
                                           (850, 840)]
    text = str(s)
    assert "Total params: 61,706" in text and "Total MACs: 416,520" in text


def test_summary_of_toy_resnet_matches_notes():
    s = summary(M.toy_resnet(), (3, 32, 32), print_fn=None)
    shapes = {r[0]: r[2] for r in s.rows}
    assert shapes["Conv_1"] == (1, 32, 30, 30) and shapes["Pool_1"] == (1, 64, 9, 9)
    assert shapes["Conv_7"] == (1, 64, 7, 7) and shapes["Pool_2"] == (1, 64)
    assert s.total_params == 223_242


@pytest.mark.parametrize("name,shape,out", [
    ("lenet5", (2, 1, 32, 32), (2, 10)), ("toy_resnet", (2, 3, 32, 32), (2, 10)),
    ("simple_cnn", (2, 3, 28, 28), (2, 28, 28, 10)),
])
def test_real_forward_small(name, shape, out):
    m = M.get_model(name).eval()
    with nn.no_grad():
        y = m(nn.Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32)))
    assert y.shape == out and np.all(np.isfinite(y.data))


@pytest.mark.parametrize("name,kw,shape,out", [
    ("resnet18", {"num_classes": 7}, (1, 3, 64, 64), (1, 7)),
    ("mobilenet_v2", {"num_classes": 5}, (1, 3, 64, 64), (1, 5)),
    ("googlenet", {"num_classes": 3}, (1, 3, 64, 64), (1, 3)),
    ("densenet121", {"num_classes": 4}, (1, 3, 32, 32), (1, 4)),
    ("vit_tiny", {"num_classes": 10, "image_size": 32, "patch_size": 8}, (1, 3, 32, 32), (1, 10)),
    ("unet", {"padding": 1, "base": 4, "batch_norm": True}, (1, 1, 32, 32), (1, 2, 32, 32)),
    ("xception", {"num_classes": 6}, (1, 3, 71, 71), (1, 6)),
    ("mobilenet", {"num_classes": 6, "alpha": 0.25}, (1, 3, 64, 64), (1, 6)),
])
def test_real_forward_reduced_inputs(name, kw, shape, out):
    """Real kernels on small inputs (input-size and num_classes options)."""
    m = M.get_model(name, **kw).eval()
    with nn.no_grad():
        y = m(nn.Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32)))
    assert y.shape == out and np.all(np.isfinite(y.data))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "vgg11", "resnet50", "googlenet", "mobilenet_v2", "densenet121",
                                  "xception", "mobilenet", "vit_b_16", "unet"])
def test_real_forward_full_size(name):
    _, shape, *_ = M.ZOO[name]
    m = M.get_model(name).eval()
    with nn.no_grad():
        y = m(nn.Tensor(np.random.default_rng(0).standard_normal((1,) + shape).astype(np.float32)))
    assert y.shape == OUTPUT.get(name, (1, 1000)) and np.all(np.isfinite(y.data))


def _torchvision_like_state_dict(model, seed=0):
    """What ``{k: v.numpy() for k, v in torchvision_model.state_dict().items()}`` looks like."""
    rng = np.random.default_rng(seed)
    sd = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            sd[k] = np.array(rng.integers(0, 100), dtype=np.int64)
        elif k.endswith("running_var"):
            sd[k] = rng.uniform(0.5, 2, v.shape).astype(np.float32)
        else:
            sd[k] = (rng.standard_normal(v.shape) * 0.05).astype(np.float32)
    return sd


@pytest.mark.parametrize("name,shape", [("resnet18", (1, 3, 32, 32)), ("mobilenet_v2", (1, 3, 32, 32)),
                                        ("googlenet", (1, 3, 32, 32)), ("densenet121", (1, 3, 32, 32))])
def test_torchvision_state_dict_roundtrip(name, shape, tmp_path):
    ref = M.get_model(name, num_classes=10).eval()
    sd = _torchvision_like_state_dict(ref)
    ref.load_state_dict(sd)
    np.savez(tmp_path / "tv.npz", **sd)  # the README's .pth -> .npz one-liner writes exactly this
    convkern.io.save_safetensors(sd, tmp_path / "tv.safetensors")
    x = nn.Tensor(np.random.default_rng(1).standard_normal(shape).astype(np.float32))
    with nn.no_grad():
        y = ref(x).data
        for f in ("tv.npz", "tv.safetensors"):
            m = M.get_model(name, num_classes=10).eval().load(tmp_path / f)
            np.testing.assert_array_equal(m(x).data, y)
            assert int(m.state_dict()[[k for k in sd if k.endswith("num_batches_tracked")][0]]) >= 0


def test_resnet_keys_are_torchvision():
    keys = list(_build("resnet50").state_dict())
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                        "bn1.num_batches_tracked"]
    assert "layer1.0.downsample.0.weight" in keys and "layer4.2.bn3.running_var" in keys and keys[-1] == "fc.bias"
    assert len(keys) == 320
    vit = list(_build("vit_b_16").state_dict())
    assert vit[:3] == ["class_token", "conv_proj.weight", "conv_proj.bias"] or vit[:3] == [
        "conv_proj.weight", "conv_proj.bias", "class_token"]
    assert "encoder.layers.encoder_layer_11.self_attention.in_proj_weight" in vit and "heads.head.weight" in vit
    assert "encoder.pos_embedding" in vit and "encoder.layers.encoder_layer_0.mlp.3.bias" in vit
    d = list(_build("densenet121").state_dict())
    assert "features.denseblock4.denselayer16.conv2.weight" in d and "features.transition3.norm.running_var" in d
    mb = list(_build("mobilenet_v2").state_dict())
    assert "features.1.conv.0.0.weight" in mb and "features.18.1.running_mean" in mb and "classifier.1.bias" in mb
    g = list(_build("googlenet").state_dict())
    assert "inception5b.branch4.1.bn.running_var" in g and "fc.weight" in g


# ----------------------------------------------------------------------------- whole-model gradchecks

WHOLE = WHOLE_MODEL_CHECKS


@pytest.mark.parametrize("name", list(WHOLE))
def test_whole_model_gradients(name):
    make, shape, samples = WHOLE[name]
    x = np.random.default_rng(3).standard_normal(shape)
    nn.manual_seed(0)
    m = make()
    m.train()
    nn.gradcheck_model(m, x, samples=samples)          # native vs finite differences (float64)
    d = nn.compare_backends(m, x)                      # native vs the NumPy reference operators
    assert max(d.values()) < 1e-10, d
