"""Xception (Chollet 2017, "Xception: Deep Learning with Depthwise Separable Convolutions",
Figure 5), following Keras Applications (``keras.applications.Xception``; layer names as there):
22,910,480 parameters counted the Keras way (22,855,952 trainable + 54,528 BatchNorm moving
statistics), 299x299x3 input.

| flow | layers | output at 299 |
|---|---|---|
| entry | conv 32 3x3/2 valid, conv 64 3x3 valid | 64x147x147 |
| entry | 3 blocks: [sepconv, sepconv, max 3x3/2 'same'] + 1x1/2 conv shortcut, 128 / 256 / 728 | 728x19x19 |
| middle | 8 blocks: [ReLU, sepconv 728] x 3 + identity | 728x19x19 |
| exit | [sepconv 728, sepconv 1024, max 3x3/2] + 1x1/2 conv shortcut | 1024x10x10 |
| exit | sepconv 1536, sepconv 2048, global average pool, dense | classes |

Separable convolutions have no bias (each followed by BatchNorm, eps 1e-3 as Keras). Keras' 'same'
max-pooling pads the extra pixel at the bottom/right; reproduced with -inf padding.
"""
from __future__ import annotations

import numpy as np

from .. import autograd as A
from .. import nn


def _bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class MaxPoolSame(nn.Module):
    """Keras MaxPooling2D(pool, strides, padding='same')."""

    def __init__(self, kernel_size=3, stride=2):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x):
        (t, b), (l, r) = (nn.same_padding(s, self.kernel_size, self.stride) for s in x.shape[-2:])
        if t or b or l or r:
            x = A.pad(x, [(0, 0), (0, 0), (t, b), (l, r)], -np.inf)
        return A.max_pool2d(x, self.kernel_size, self.stride)


class SepConvBN(nn.Module):
    def __init__(self, cin, cout, pre_relu=True):
        super().__init__()
        self.pre_relu = pre_relu
        self.sepconv = nn.SeparableConv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = _bn(cout)

    def forward(self, x):
        return self.bn(self.sepconv(A.relu(x) if self.pre_relu else x))


class EntryBlock(nn.Module):
    def __init__(self, cin, cout, first_relu=True, mid=None):
        super().__init__()
        mid = cout if mid is None else mid
        self.residual_conv = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.residual_bn = _bn(cout)
        self.sep1 = SepConvBN(cin, mid, pre_relu=first_relu)
        self.sep2 = SepConvBN(mid, cout)
        self.pool = MaxPoolSame(3, 2)

    def forward(self, x):
        residual = self.residual_bn(self.residual_conv(x))
        return self.pool(self.sep2(self.sep1(x))) + residual


class MiddleBlock(nn.Module):
    def __init__(self, c=728):
        super().__init__()
        self.sep1, self.sep2, self.sep3 = SepConvBN(c, c), SepConvBN(c, c), SepConvBN(c, c)

    def forward(self, x):
        return self.sep3(self.sep2(self.sep1(x))) + x


class Xception(nn.Module):
    def __init__(self, num_classes=1000, in_channels=3):
        super().__init__()
        self.block1_conv1 = nn.Conv2d(in_channels, 32, 3, stride=2, bias=False)
        self.block1_conv1_bn = _bn(32)
        self.block1_conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.block1_conv2_bn = _bn(64)
        self.block2 = EntryBlock(64, 128, first_relu=False)
        self.block3 = EntryBlock(128, 256)
        self.block4 = EntryBlock(256, 728)
        self.middle = nn.Sequential(*[MiddleBlock(728) for _ in range(8)])  # blocks 5..12
        self.block13 = EntryBlock(728, 1024, mid=728)
        self.block14_sepconv1 = SepConvBN(1024, 1536, pre_relu=False)
        self.block14_sepconv2 = SepConvBN(1536, 2048)
        self.avg_pool = nn.GlobalAvgPool2d()
        self.predictions = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = A.relu(self.block1_conv1_bn(self.block1_conv1(x)))
        x = A.relu(self.block1_conv2_bn(self.block1_conv2(x)))
        x = self.block4(self.block3(self.block2(x)))
        x = self.block13(self.middle(x))
        x = A.relu(self.block14_sepconv2(A.relu(self.block14_sepconv1(x))))
        return self.predictions(self.avg_pool(x))


def xception(num_classes=1000, in_channels=3):
    """Xception (Keras layout): 22,910,480 parameters the Keras way (with BN moving statistics)."""
    return Xception(num_classes, in_channels)
