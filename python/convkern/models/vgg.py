"""VGG (Simonyan & Zisserman 2014, configurations A, B, D, E = VGG-11/13/16/19), torchvision's
layout (``torchvision.models.vgg*``; optional BatchNorm after each conv for ``_bn``), same
parameter names (``features.<i>``, ``classifier.0/3/6``).

Published parameter counts (torchvision; VGG-16/19 equal Keras'): vgg11 132,863,336,
vgg13 133,047,848, vgg16 138,357,544, vgg19 143,667,240; vgg11_bn 132,868,840, vgg13_bn
133,053,736, vgg16_bn 138,365,992, vgg19_bn 143,678,248. MACs at 224: vgg11 7,609,090,048,
vgg16 15,470,264,320, vgg19 19,632,062,464.

Every conv is 3x3, stride 1, padding 1, ReLU; "M" is 2x2 max-pooling; then adaptive
average pooling to 7x7 and the classifier 25088 -> 4096 -> 4096 -> classes (dropout 0.5).
"""
from __future__ import annotations

from .. import autograd as A
from .. import nn

CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_layers(cfg, batch_norm: bool = False, in_channels: int = 3) -> nn.Sequential:
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers.append(nn.Conv2d(in_channels, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU())
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, features: nn.Module, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(A.flatten(x, 1))


def _vgg(cfg, bn, num_classes, dropout):
    return VGG(make_layers(CFGS[cfg], bn), num_classes, dropout)


def vgg11(num_classes=1000, dropout=0.5):
    """VGG-11 (configuration A): 132,863,336 parameters."""
    return _vgg("A", False, num_classes, dropout)


def vgg13(num_classes=1000, dropout=0.5):
    """VGG-13 (configuration B): 133,047,848 parameters."""
    return _vgg("B", False, num_classes, dropout)


def vgg16(num_classes=1000, dropout=0.5):
    """VGG-16 (configuration D): 138,357,544 parameters."""
    return _vgg("D", False, num_classes, dropout)


def vgg19(num_classes=1000, dropout=0.5):
    """VGG-19 (configuration E): 143,667,240 parameters."""
    return _vgg("E", False, num_classes, dropout)


def vgg11_bn(num_classes=1000, dropout=0.5):
    """VGG-11 with BatchNorm: 132,868,840 parameters."""
    return _vgg("A", True, num_classes, dropout)


def vgg13_bn(num_classes=1000, dropout=0.5):
    """VGG-13 with BatchNorm: 133,053,736 parameters."""
    return _vgg("B", True, num_classes, dropout)


def vgg16_bn(num_classes=1000, dropout=0.5):
    """VGG-16 with BatchNorm: 138,365,992 parameters."""
    return _vgg("D", True, num_classes, dropout)


def vgg19_bn(num_classes=1000, dropout=0.5):
    """VGG-19 with BatchNorm: 143,678,248 parameters."""
    return _vgg("E", True, num_classes, dropout)
