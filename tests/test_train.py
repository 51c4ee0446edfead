"""convkern.optim, convkern.data and the training loop (a short LeNet-5 run on digits)."""
import numpy as np
import pytest

import convkern.autograd as A
import convkern.data as D
import convkern.nn as nn
import convkern.optim as O


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("kind,kw", [
    ("sgd", dict(lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True)),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.1)),
    ("sgd", dict(lr=0.05)),
    ("adam", dict(lr=0.01, weight_decay=1e-3)),
])
def test_optimizers_match_torch(kind, kw):
    torch = _torch()
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(4)]
    p = nn.Parameter(w0.copy())
    tp = torch.tensor(w0.copy(), requires_grad=True)
    opt = (O.SGD if kind == "sgd" else O.Adam)([p], **kw)
    topt = (torch.optim.SGD if kind == "sgd" else torch.optim.Adam)([tp], **kw)
    for g in grads:
        p.grad = g.copy()
        tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
    np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_schedules():
    p = nn.Parameter(np.zeros(1))
    opt = O.SGD([p], lr=1.0)
    s = O.StepLR(opt, 2, 0.1)
    lrs = [s.step() for _ in range(4)]
    np.testing.assert_allclose(lrs, [1.0, 0.1, 0.1, 0.01])
    opt.lr = 1.0
    r = O.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    for v in [1.0, 0.9, 0.95, 0.95, 0.95]:
        r.step(v)
    assert opt.lr == 0.5
    with pytest.raises(ValueError, match="mode"):
        O.ReduceLROnPlateau(opt, mode="up")


def test_optimizer_state_roundtrip():
    p = nn.Parameter(np.ones(3))
    opt = O.Adam([p])
    p.grad = np.ones(3)
    opt.step()
    sd = opt.state_dict()
    opt2 = O.Adam([p])
    opt2.load_state_dict(sd)
    assert opt2.step_count == 1 and np.allclose(opt2.state[id(p)]["exp_avg"], opt.state[id(p)]["exp_avg"])


def test_idx_roundtrip_and_mnist_loader(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5).astype(np.uint8)
    D.write_idx(tmp_path / "train-images-idx3-ubyte", imgs)
    D.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    D.write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs[:2])
    D.write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:2])
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03" and int.from_bytes(raw[4:8], "big") == 5
    np.testing.assert_array_equal(D.read_idx(tmp_path / "train-images-idx3-ubyte"), imgs)
    (xtr, ytr), (xte, yte) = D.load_mnist(tmp_path)
    assert xtr.shape == (5, 1, 32, 32) and xte.shape == (2, 1, 32, 32) and ytr.dtype == np.int64
    np.testing.assert_allclose(xtr[:, 0, 2:30, 2:30], imgs / 255.0, rtol=1e-6)
    D.write_idx(tmp_path / "f.idx", np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(D.read_idx(tmp_path / "f.idx"), np.arange(6).reshape(2, 3))
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="magic"):
        D.read_idx(tmp_path / "bad")


def test_augmentation():
    rng = np.random.default_rng(0)
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    c = D.random_crop(x, 4, padding=1, rng=rng)
    assert c.shape == x.shape
    f = D.horizontal_flip(x, p=1.0, rng=rng)
    np.testing.assert_array_equal(f, x[..., ::-1])
    np.testing.assert_array_equal(D.horizontal_flip(x, p=0.0, rng=rng), x)
    with pytest.raises(ValueError, match="size"):
        D.random_crop(x, 7)


def test_digits_32():
    pytest.importorskip("sklearn")
    (xtr, ytr), (xte, yte) = D.load_digits_32()
    assert xtr.shape[1:] == (1, 32, 32) and len(xtr) + len(xte) == 1797
    assert abs(len(xte) - 360) <= 5 and set(np.unique(yte)) == set(range(10))
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0 + 1e-6
    r = D.resize_bilinear(np.ones((8, 8)), 32)
    np.testing.assert_allclose(r, 1.0)


def test_train_short_run_and_resume(tmp_path):
    """A few epochs of LeNet-5 on a subset of digits: learns, saves, resumes."""
    pytest.importorskip("sklearn")
    from convkern.train import train
    import convkern

    convkern.set_num_threads(1)
    try:
        r = train("lenet5", "digits", epochs=3, out_dir=str(tmp_path), progress=False, limit=600, log=None)
        assert r["test_acc"] > 0.6
        assert (tmp_path / "lenet5_digits.npz").exists() and (tmp_path / "lenet5_digits_ckpt.npz").exists()
        r2 = train("lenet5", "digits", epochs=1, out_dir=str(tmp_path), progress=False, limit=600, resume=True,
                   log=None)
        assert len(r2["history"]["test_acc"]) == 4
    finally:
        convkern.set_num_threads(2)


@pytest.mark.slow
def test_cli_train_reaches_97_percent(tmp_path):
    pytest.importorskip("sklearn")
    from convkern.__main__ import main
    import time

    t0 = time.perf_counter()
    assert main(["train", "lenet5", "--dataset", "digits", "--out", str(tmp_path), "--no-progress"]) == 0
    assert time.perf_counter() - t0 < 120
    from convkern import io
    ck = io.load_npz(tmp_path / "lenet5_digits_ckpt.npz")
    assert ck["hist.test_acc"][-1] >= 0.97
