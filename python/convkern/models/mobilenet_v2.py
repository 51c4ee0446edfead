"""MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
Table 2), torchvision's layout (``torchvision.models.mobilenet_v2``), same parameter names:
3,504,872 parameters (= Keras' trainable count; Keras' 3,538,984 adds the 34,112 BN moving
statistics), 300,774,272 MACs at 224.

| input | operator | t | c | n | s |
|---|---|---:|---:|---:|---:|
| 224x224x3 | conv2d 3x3 | - | 32 | 1 | 2 |
| 112x112x32 | bottleneck | 1 | 16 | 1 | 1 |
| 112x112x16 | bottleneck | 6 | 24 | 2 | 2 |
| 56x56x24 | bottleneck | 6 | 32 | 3 | 2 |
| 28x28x32 | bottleneck | 6 | 64 | 4 | 2 |
| 14x14x64 | bottleneck | 6 | 96 | 3 | 1 |
| 14x14x96 | bottleneck | 6 | 160 | 3 | 2 |
| 7x7x160 | bottleneck | 6 | 320 | 1 | 1 |
| 7x7x320 | conv2d 1x1 | - | 1280 | 1 | 1 |
| 7x7x1280 | avgpool 7x7, dropout 0.2, linear | - | k | | |
"""
from __future__ import annotations

from .. import autograd as A
from .. import nn


def _make_divisible(v, divisor=8, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def conv_bn_act(cin, cout, kernel_size=3, stride=1, groups=1, act=True):
    """torchvision's Conv2dNormActivation: conv (no bias) + BN + ReLU6 (keys .0 .1)."""
    layers = [nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, groups=groups,
                        bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        self.stride = stride
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(conv_bn_act(inp, hidden, 1))
        layers += [conv_bn_act(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                [6, 320, 1, 1]]

    def __init__(self, num_classes=1000, width_mult=1.0, round_nearest=8, dropout=0.2):
        super().__init__()
        inp = _make_divisible(32 * width_mult, round_nearest)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features = [conv_bn_act(3, inp, stride=2)]
        for t, c, n, s in self.SETTINGS:
            out = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(inp, out, s if i == 0 else 1, t))
                inp = out
        features.append(conv_bn_act(inp, self.last_channel, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))

    def forward(self, x):
        x = A.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(A.flatten(x, 1))


def mobilenet_v2(num_classes=1000, width_mult=1.0, dropout=0.2):
    """MobileNetV2 (torchvision layout): 3,504,872 parameters."""
    return MobileNetV2(num_classes, width_mult, dropout=dropout)
