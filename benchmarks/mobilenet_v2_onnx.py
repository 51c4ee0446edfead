"""MobileNetV2 as an ONNX graph, for target 8 of the speed issue (whole networks vs ONNX Runtime).

The ONNX backend test data ships no MobileNetV2, and torchvision is not installed here, so this
script writes the torchvision architecture (Sandler et al. 2018: width 1.0, 224x224, inverted
residuals with ReLU6, BatchNorm) in plain PyTorch, exports it with the TorchScript exporter
(random weights, BatchNorm in eval mode with random statistics), and saves the .onnx file.
Then run the whole-graph comparison on it:

    python benchmarks/mobilenet_v2_onnx.py /tmp/mobilenet_v2.onnx
    PYTHONPATH=python python -m convkern onnx bench /tmp/mobilenet_v2.onnx --batch 1 --repeat 20

Needs torch and onnx (the optional extras).
"""
from __future__ import annotations

import argparse

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s), the paper's Table 2
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def conv_bn(cin, cout, k, stride, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        layers = [conv_bn(cin, hidden, 1, 1)] if t != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, 1, relu=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


def mobilenet_v2(num_classes=1000):
    layers = [conv_bn(3, 32, 3, 2)]
    cin = 32
    for t, c, n, s in SETTINGS:
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    layers.append(conv_bn(cin, 1280, 1, 1))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, num_classes))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="path of the .onnx file to write")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    model = mobilenet_v2().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(model, (x,), a.out, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=13, dynamo=False)
    print(f"wrote {a.out}: MobileNetV2, {params:,} parameters")


if __name__ == "__main__":
    main()
