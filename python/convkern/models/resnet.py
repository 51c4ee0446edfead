"""ResNet (He et al. 2015, "Deep Residual Learning for Image Recognition", Table 1), torchvision's
layout (``torchvision.models.resnet*``: v1.5, the stride of a bottleneck stage sits on the 3x3
conv; projection shortcuts ``downsample.0/1`` = 1x1 conv + BN where shape changes), same
parameter names.

| stage | output at 224 | resnet18/34 (BasicBlock) | resnet50/101/152 (Bottleneck) |
|---|---|---|---|
| conv1 7x7/2 64, BN, ReLU; max 3x3/2 | 64x56x56 | | |
| layer1 | 56x56 | [3x3 64, 3x3 64] x 2 / 3 | [1x1 64, 3x3 64, 1x1 256] x 3 / 3 / 3 |
| layer2 | 28x28 | [3x3 128] x2 x 2 / 4 | [.., 512] x 4 / 4 / 8 |
| layer3 | 14x14 | [3x3 256] x2 x 2 / 6 | [.., 1024] x 6 / 23 / 36 |
| layer4 | 7x7 | [3x3 512] x2 x 2 / 3 | [.., 2048] x 3 / 3 / 3 |
| avgpool, fc | classes | | |

Parameters (torchvision): resnet18 11,689,512, resnet34 21,797,672, resnet50 25,557,032,
resnet101 44,549,160, resnet152 60,192,808. MACs at 224 (conv + linear): 1,814,073,344,
3,663,761,408, 4,089,184,256, 7,801,405,440, 11,513,626,624.
"""
from __future__ import annotations

from .. import autograd as A
from .. import nn


def conv3x3(cin, cout, stride=1, groups=1, dilation=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, groups=groups, dilation=dilation, bias=False)


def conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000, in_channels=3, width=64, zero_init_residual=False):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    m.bn3.weight.data[...] = 0
                elif isinstance(m, BasicBlock):
                    m.bn2.weight.data[...] = 0

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = A.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet18(num_classes=1000, **kw):
    """ResNet-18: 11,689,512 parameters."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, **kw)


def resnet34(num_classes=1000, **kw):
    """ResNet-34: 21,797,672 parameters."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, **kw)


def resnet50(num_classes=1000, **kw):
    """ResNet-50: 25,557,032 parameters, 4,089,184,256 MACs at 224x224."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, **kw)


def resnet101(num_classes=1000, **kw):
    """ResNet-101: 44,549,160 parameters."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, **kw)


def resnet152(num_classes=1000, **kw):
    """ResNet-152: 60,192,808 parameters."""
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, **kw)
