"""convkern.nn: every layer's gradients vs finite differences (float64), Module mechanics,
state dicts, freezing / transfer learning, and parity with torch.nn where torch is installed."""
import numpy as np
import pytest

import convkern.autograd as A
import convkern.nn as nn

LAYERS = [
    ("Conv1d", lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1), (2, 2, 7)),
    ("Conv2d", lambda: nn.Conv2d(2, 4, 3, stride=1, padding=1, dilation=1, groups=2), (2, 2, 5, 5)),
    ("Conv2d_same", lambda: nn.Conv2d(2, 3, 3, padding="same", bias=False), (1, 2, 5, 4)),
    ("Conv3d", lambda: nn.Conv3d(2, 2, 2), (1, 2, 3, 3, 3)),
    ("ConvTranspose2d", lambda: nn.ConvTranspose2d(3, 2, 2, stride=2), (1, 3, 3, 3)),
    ("DepthwiseConv2d", lambda: nn.DepthwiseConv2d(3, 3, stride=2, padding=1, depth_multiplier=2), (2, 3, 5, 5)),
    ("SeparableConv2d", lambda: nn.SeparableConv2d(3, 4, 3, padding=1), (1, 3, 4, 4)),
    ("MaxPool2d", lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), (1, 2, 6, 6)),
    ("AvgPool2d", lambda: nn.AvgPool2d(2, count_include_pad=False, padding=1), (1, 2, 5, 5)),
    ("AdaptiveAvgPool2d", lambda: nn.AdaptiveAvgPool2d((2, 3)), (1, 2, 5, 7)),
    ("GlobalAvgPool2d", lambda: nn.GlobalAvgPool2d(), (2, 3, 4, 4)),
    ("GlobalMaxPool2d", lambda: nn.GlobalMaxPool2d(), (2, 3, 4, 4)),
    ("BatchNorm1d", lambda: nn.BatchNorm1d(3), (4, 3)),
    ("BatchNorm2d", lambda: nn.BatchNorm2d(3), (2, 3, 3, 3)),
    ("LocalResponseNorm", lambda: nn.LocalResponseNorm(3, alpha=0.1), (1, 5, 3, 3)),
    ("LayerNorm", lambda: nn.LayerNorm(4), (2, 3, 4)),
    ("Linear", lambda: nn.Linear(5, 3), (2, 4, 5)),
    ("Dropout", lambda: nn.Dropout(0.3), (3, 6)),
    ("Flatten", lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), (2, 3, 2, 2)),
    ("ReLU", lambda: nn.ReLU(), (3, 5)),
    ("ReLU6", lambda: nn.ReLU6(), (3, 5)),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.2), (3, 5)),
    ("PReLU", lambda: nn.PReLU(3), (2, 3, 4)),
    ("ELU", lambda: nn.ELU(), (3, 5)),
    ("Sigmoid", lambda: nn.Sigmoid(), (3, 5)),
    ("Tanh", lambda: nn.Tanh(), (3, 5)),
    ("GELU", lambda: nn.GELU(), (3, 5)),
    ("GELU_tanh", lambda: nn.GELU("tanh"), (3, 5)),
    ("Softmax", lambda: nn.Softmax(1), (3, 5)),
    ("LogSoftmax", lambda: nn.LogSoftmax(-1), (3, 5)),
    ("ZeroPad2d", lambda: nn.Sequential(nn.ZeroPad2d((0, 1, 2, 0)), nn.Conv2d(1, 1, 2)), (1, 1, 3, 3)),
]


class _Attn(nn.Module):
    def __init__(self, batch_first):
        super().__init__()
        self.mha = nn.MultiheadAttention(6, 2, batch_first=batch_first)

    def forward(self, x):
        return self.mha(x, x, x, need_weights=False)[0]


class _CrossAttn(nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(4, 2, batch_first=True)
        self.mem = nn.Parameter(np.random.default_rng(5).standard_normal((2, 3, 4)))

    def forward(self, x):
        return self.mha(x, self.mem, self.mem)[0]


LAYERS += [("MHA", lambda: _Attn(True), (2, 3, 6)), ("MHA_seq_first", lambda: _Attn(False), (3, 2, 6)),
           ("MHA_cross", _CrossAttn, (2, 5, 4))]


@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_gradcheck(name, make, shape, rng):
    m = make()
    x = rng.standard_normal(shape)
    if name == "MaxPool2d" or name.startswith("GlobalMax"):
        x = rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.1  # no ties
    nn.gradcheck_model(m, x, samples=20)


@pytest.mark.parametrize("name,make,shape", LAYERS[:8] + LAYERS[12:17], ids=[c[0] for c in LAYERS[:8] + LAYERS[12:17]])
def test_layer_native_vs_reference(name, make, shape, rng):
    d = nn.compare_backends(make(), rng.standard_normal(shape))
    assert max(d.values()) < 1e-10, d


def _net():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))


def test_state_dict_names_and_roundtrip(tmp_path, rng):
    m = _net()
    keys = list(m.state_dict())
    assert keys == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                    "1.num_batches_tracked", "4.weight", "4.bias"]
    assert [k for k, _ in m.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"]
    m.train()
    m(nn.Tensor(rng.standard_normal((3, 1, 4, 4)).astype(np.float32)))
    assert int(m[1].num_batches_tracked) == 1 and np.any(m[1].running_mean != 0)
    for ext in ("npz", "safetensors"):
        p = tmp_path / f"w.{ext}"
        m.save(p)
        m2 = _net().load(p)
        for (k, a), (k2, b) in zip(m.state_dict().items(), m2.state_dict().items()):
            assert k == k2 and a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    m.eval()
    m2.eval()
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(m(nn.Tensor(x)).data, m2(nn.Tensor(x)).data)


def test_load_state_dict_errors():
    m = _net()
    sd = dict(m.state_dict())
    sd.pop("0.bias")
    with pytest.raises(KeyError, match="0.bias"):
        m.load_state_dict(sd)
    sd = dict(m.state_dict())
    sd["0.weight"] = np.zeros((2, 1, 2, 2))
    with pytest.raises(ValueError, match="0.weight"):
        m.load_state_dict(sd)
    missing, unexpected = m.load_state_dict({"extra": np.zeros(1)}, strict=False)
    assert unexpected == ["extra"] and "0.weight" in missing


def test_train_eval_dropout_batchnorm(rng):
    m = nn.Sequential(nn.BatchNorm1d(4), nn.Dropout(0.5))
    x = nn.Tensor(rng.standard_normal((8, 4)).astype(np.float32))
    assert m.training and m[1].training
    y1 = m(x).data
    assert np.any(y1 == 0)
    m.eval()
    assert not m[1].training
    y2 = m(x).data
    np.testing.assert_allclose(y2, m[0](x).data)
    assert not np.any(y2 == 0)


def test_freeze_and_replace_head(rng):
    """Transfer learning: freeze the backbone, replace the classifier, train only the head."""
    m = _net()
    m.requires_grad_(False)
    m[4] = nn.Linear(8, 5)
    assert m.num_parameters(trainable_only=True) == 8 * 5 + 5
    x = nn.Tensor(rng.standard_normal((2, 1, 4, 4)).astype(np.float32))
    loss = nn.CrossEntropyLoss()(m(x), np.array([0, 4]))
    loss.backward()
    assert m[0].weight.grad is None and m[4].weight.grad is not None
    m.zero_grad()
    assert m[4].weight.grad is None


def test_module_registration_and_repr():
    m = _net()
    assert len(list(m.modules())) == 6 and len(m) == 5
    assert "Conv2d(1, 2, kernel_size=(3, 3)" in repr(m)
    m.double()
    assert all(p.dtype == np.float64 for p in m.parameters()) and m[1].running_var.dtype == np.float64
    assert m[1].num_batches_tracked.dtype == np.int64
    with pytest.raises(AttributeError):
        m.nonexistent


def test_losses(rng):
    x = rng.standard_normal((4, 3))
    nn.gradcheck_model(nn.Sequential(nn.Linear(3, 3)), x)  # sanity
    t = np.array([0, 2, 1, 2])
    lin = nn.Linear(3, 3).double()
    xt = nn.Tensor(x, requires_grad=True)
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)(lin(xt), t)
    loss.backward()
    assert loss.shape == () and xt.grad.shape == x.shape
    mse = nn.MSELoss()(lin(nn.Tensor(x)), np.zeros((4, 3)))
    assert mse.item() >= 0


# ----------------------------------------------------------------------------- torch parity

def _torch():
    return pytest.importorskip("torch")


def test_multihead_attention_matches_torch(rng):
    torch = _torch()
    for batch_first in (True, False):
        tm = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first).double().eval()
        m = nn.MultiheadAttention(8, 2, batch_first=batch_first)
        m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
        m.double()
        q = rng.standard_normal((2, 5, 8) if batch_first else (5, 2, 8))
        kv = rng.standard_normal((2, 3, 8) if batch_first else (3, 2, 8))
        ref, ref_w = tm(torch.tensor(q), torch.tensor(kv), torch.tensor(kv))
        out, w = m(nn.Tensor(q), nn.Tensor(kv), nn.Tensor(kv))
        np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(w, ref_w.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_sequential_cnn_matches_torch(rng):
    """Same state-dict keys and the same numbers as the torch.nn equivalent (train-mode BN too)."""
    torch = _torch()
    tn = torch.nn
    tm = tn.Sequential(tn.Conv2d(3, 4, 3, padding=1), tn.BatchNorm2d(4), tn.ReLU(), tn.MaxPool2d(2),
                       tn.Conv2d(4, 4, 3, groups=4, bias=False), tn.LayerNorm(2), tn.GELU(), tn.Flatten(),
                       tn.Linear(16, 5)).double()
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                      nn.DepthwiseConv2d(4, 3, bias=False), nn.LayerNorm(2), nn.GELU(), nn.Flatten(),
                      nn.Linear(16, 5)).double()
    sd = {k: v.detach().numpy().copy() for k, v in tm.state_dict().items()}
    assert list(sd) == list(m.state_dict())
    m.load_state_dict(sd)
    x = rng.standard_normal((2, 3, 8, 8))
    xt = torch.tensor(x, requires_grad=True)
    ref = tm(xt)
    out = m(nn.Tensor(x))
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(m[1].running_var, tm[1].running_var.numpy(), rtol=1e-12)
    g = rng.standard_normal(ref.shape)
    ref.backward(torch.tensor(g))
    xa = nn.Tensor(x, requires_grad=True)
    m.load_state_dict(sd)
    m(xa).backward(g)
    np.testing.assert_allclose(xa.grad, xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m[0].weight.grad, tm[0].weight.grad.numpy(), rtol=1e-8, atol=1e-10)
