"""One training step (forward, cross-entropy, backward, SGD with momentum) of LeNet-5 and
ResNet-18: convkern.nn vs the same network in PyTorch, same weights, same batch, same thread
count, interleaved in one run (issue 5, target 8: ratio <= 1.0).

    python benchmarks/bench_train_step.py --threads 2
    python benchmarks/bench_train_step.py --models resnet18 --batch 8 --size 224 --rounds 3

The PyTorch networks are written here layer for layer (torchvision's ResNet-18 layout, so the
state dict names match convkern.models.resnet18) and get convkern's initial weights; the first
step's losses are compared as a correctness check.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


import convkern  # noqa: E402
from convkern import autograd as A, models, nn, optim  # noqa: E402

try:
    import torch
    import torch.nn as tnn
except ImportError:  # pragma: no cover
    torch = None


def torch_lenet5(num_classes=10):
    class LeNet5(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(tnn.Conv2d(1, 6, 5), tnn.Tanh(), tnn.AvgPool2d(2),
                                           tnn.Conv2d(6, 16, 5), tnn.Tanh(), tnn.AvgPool2d(2))
            self.flatten = tnn.Flatten()
            self.classifier = tnn.Sequential(tnn.Linear(400, 120), tnn.Tanh(), tnn.Linear(120, 84), tnn.Tanh(),
                                             tnn.Linear(84, num_classes))

        def forward(self, x):
            return self.classifier(self.flatten(self.features(x)))

    return LeNet5()


def torch_resnet18(num_classes=1000):
    class Basic(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.relu = tnn.ReLU(inplace=True)
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + idt)

    class ResNet18(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU(inplace=True)
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            chans = [64, 128, 256, 512]
            cin = 64
            for i, c in enumerate(chans):
                st = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", tnn.Sequential(Basic(cin, c, st), Basic(c, c, 1)))
                cin = c
            self.avgpool = tnn.AdaptiveAvgPool2d(1)
            self.fc = tnn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet18()


MODELS = {
    "lenet5": (lambda: models.lenet5(), lambda: torch_lenet5(), 1, 32, 10, 32),
    "resnet18": (lambda: models.resnet18(), lambda: torch_resnet18(), 3, 224, 1000, 8),
}


def copy_weights(ck_model, t_model):
    sd = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in ck_model.state_dict().items()}
    missing, unexpected = t_model.load_state_dict(sd, strict=False)
    real_missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if real_missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing {real_missing}, unexpected {unexpected}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="lenet5,resnet18")
    ap.add_argument("--batch", type=int, default=None, help="default: 32 for LeNet-5, 8 for ResNet-18")
    ap.add_argument("--size", type=int, default=None, help="input size (default 32 / 224)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per engine per round")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if torch is None:
        sys.exit("PyTorch is not installed: pip install torch==2.13.0")
    convkern.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for name in args.models.split(","):
        make_ck, make_t, cin, size0, ncls, batch0 = MODELS[name]
        batch, size = args.batch or batch0, args.size or size0
        ck = make_ck()
        tm = make_t()
        copy_weights(ck, tm)
        ck.train()
        tm.train()
        x = rng.standard_normal((batch, cin, size, size)).astype(np.float32)
        y = rng.integers(0, ncls, batch)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        ck_opt = optim.SGD(ck.parameters(), lr=0.01, momentum=0.9)
        t_opt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
        loss_ck, loss_t = nn.CrossEntropyLoss(), tnn.CrossEntropyLoss()

        def step_ck():
            loss = loss_ck(ck(A.Tensor(x)), y)
            ck_opt.zero_grad()
            loss.backward()
            ck_opt.step()
            return float(loss.data)

        def step_t():
            loss = loss_t(tm(tx), ty)
            t_opt.zero_grad()
            loss.backward()
            t_opt.step()
            return float(loss.detach())

        l0_ck, l0_t = step_ck(), step_t()  # warm-up; same weights, same batch: same loss
        ts = {"convkern": [], "torch": []}
        for _ in range(args.rounds):
            for eng, fn in (("convkern", step_ck), ("torch", step_t)):
                for _ in range(args.steps):
                    t0 = time.perf_counter()
                    fn()
                    ts[eng].append(time.perf_counter() - t0)
        ck_ms, t_ms = (1e3 * statistics.median(ts[e]) for e in ("convkern", "torch"))
        rows.append(dict(model=name, batch=batch, size=size, threads=args.threads, first_loss_convkern=l0_ck,
                         first_loss_torch=l0_t, convkern_ms=ck_ms, torch_ms=t_ms, ratio=ck_ms / t_ms))
    print(f"convkern {convkern.__version__} ({convkern.get_isa()}) vs PyTorch {torch.__version__}, "
          f"{args.threads} threads: one SGD training step (median)\n")
    print("| model | batch x size | first loss convkern / torch | convkern ms | torch ms | convkern/torch |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['batch']} x {r['size']} | {r['first_loss_convkern']:.5f} / "
              f"{r['first_loss_torch']:.5f} | {r['convkern_ms']:.1f} | {r['torch_ms']:.1f} | {r['ratio']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
