"""MobileNet v1 (Howard et al. 2017, "MobileNets: Efficient Convolutional Neural Networks for
Mobile Vision Applications", Table 1), following Keras Applications
(``keras.applications.MobileNet``, alpha 1, depth multiplier 1; layer names as there):
4,253,864 parameters counted the Keras way (4,231,976 trainable + 21,888 BatchNorm moving
statistics), 224x224x3 input, ReLU6 activations, convolutions without bias + BatchNorm
(eps 1e-3), classifier = global average pool, dropout 1e-3, 1x1 conv ``conv_preds``.

| type / stride | filter shape | input |
|---|---|---|
| conv / s2 | 3x3x3x32 | 224x224x3 |
| conv dw / s1, conv 1x1 | 3x3x32 dw, 1x1x32x64 | 112x112x32 |
| conv dw / s2, conv 1x1 | 3x3x64 dw, 1x1x64x128 | 112x112x64 |
| conv dw / s1, conv 1x1 | 3x3x128 dw, 1x1x128x128 | 56x56x128 |
| conv dw / s2, conv 1x1 | 3x3x128 dw, 1x1x128x256 | 56x56x128 |
| conv dw / s1, conv 1x1 | 3x3x256 dw, 1x1x256x256 | 28x28x256 |
| conv dw / s2, conv 1x1 | 3x3x256 dw, 1x1x256x512 | 28x28x256 |
| 5 x (conv dw / s1, conv 1x1) | 3x3x512 dw, 1x1x512x512 | 14x14x512 |
| conv dw / s2, conv 1x1 | 3x3x512 dw, 1x1x512x1024 | 14x14x512 |
| conv dw / s1, conv 1x1 | 3x3x1024 dw, 1x1x1024x1024 | 7x7x1024 |
| avg pool, FC (1x1 conv), softmax | 1024 x 1000 | 7x7x1024 |

Strided layers pad one pixel at the bottom/right (Keras ZeroPadding2D(((0, 1), (0, 1)))).
"""
from __future__ import annotations

from .. import autograd as A
from .. import nn

BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def _bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class DepthwiseSeparableBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, depth_multiplier=1):
        super().__init__()
        self.stride = stride
        self.pad = nn.ZeroPad2d((0, 1, 0, 1)) if stride == 2 else nn.Identity()
        self.conv_dw = nn.DepthwiseConv2d(cin, 3, stride=stride, padding=0 if stride == 2 else 1,
                                          depth_multiplier=depth_multiplier, bias=False)
        self.conv_dw_bn = _bn(cin * depth_multiplier)
        self.conv_pw = nn.Conv2d(cin * depth_multiplier, cout, 1, bias=False)
        self.conv_pw_bn = _bn(cout)

    def forward(self, x):
        x = A.relu6(self.conv_dw_bn(self.conv_dw(self.pad(x))))
        return A.relu6(self.conv_pw_bn(self.conv_pw(x)))


class MobileNet(nn.Module):
    def __init__(self, num_classes=1000, alpha=1.0, depth_multiplier=1, dropout=1e-3, in_channels=3):
        super().__init__()
        c = int(32 * alpha)
        self.conv1_pad = nn.ZeroPad2d((0, 1, 0, 1))
        self.conv1 = nn.Conv2d(in_channels, c, 3, stride=2, bias=False)
        self.conv1_bn = _bn(c)
        blocks = []
        for f, s in BLOCKS:
            blocks.append(DepthwiseSeparableBlock(c, int(f * alpha), s, depth_multiplier))
            c = int(f * alpha)
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.conv_preds = nn.Conv2d(c, num_classes, 1)

    def forward(self, x):
        x = A.relu6(self.conv1_bn(self.conv1(self.conv1_pad(x))))
        x = A.global_avg_pool2d(self.blocks(x))
        x = self.conv_preds(self.dropout(x))
        return A.flatten(x, 1)


def mobilenet(num_classes=1000, alpha=1.0, depth_multiplier=1, dropout=1e-3):
    """MobileNet v1 (Keras layout): 4,253,864 parameters the Keras way (with BN moving statistics)."""
    return MobileNet(num_classes, alpha, depth_multiplier, dropout)
