"""DenseNet-121 (Huang et al. 2017, "Densely Connected Convolutional Networks", Table 1), in
torchvision's layout (``torchvision.models.densenet121``: growth rate 32, bottleneck size 4,
blocks (6, 12, 24, 16), compression 0.5), same parameter names: 7,978,856 parameters (= Keras'
trainable count; Keras' 8,062,504 adds the 83,648 BN moving statistics), 2,834,161,664 MACs
at 224.

| layers | output at 224 | DenseNet-121 |
|---|---|---|
| convolution | 112x112 | 7x7 conv, stride 2 (conv0, norm0, relu0) |
| pooling | 56x56 | 3x3 max pool, stride 2 (pool0) |
| dense block (1) | 56x56 | [1x1 conv, 3x3 conv] x 6 |
| transition (1) | 28x28 | 1x1 conv, 2x2 average pool |
| dense block (2) | 28x28 | [1x1 conv, 3x3 conv] x 12 |
| transition (2) | 14x14 | 1x1 conv, 2x2 average pool |
| dense block (3) | 14x14 | [1x1 conv, 3x3 conv] x 24 |
| transition (3) | 7x7 | 1x1 conv, 2x2 average pool |
| dense block (4) | 7x7 | [1x1 conv, 3x3 conv] x 16 |
| classification | 1x1 | norm5, relu, global average pool, 1000-d fc |
"""
from __future__ import annotations

from .. import autograd as A
from .. import nn


class DenseLayer(nn.Module):
    def __init__(self, num_input_features, growth_rate, bn_size, drop_rate=0.0):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, features):
        x = A.cat(features, 1) if isinstance(features, (list, tuple)) else features
        x = self.conv1(self.relu1(self.norm1(x)))
        x = self.conv2(self.relu2(self.norm2(x)))
        return self.drop(x) if self.drop.p > 0 else x


class DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers, num_input_features, bn_size, growth_rate, drop_rate=0.0):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}",
                            DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate))

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return A.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, num_input_features, num_output_features):
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(num_input_features))
        self.add_module("relu", nn.ReLU())
        self.add_module("conv", nn.Conv2d(num_input_features, num_output_features, 1, bias=False))
        self.add_module("pool", nn.AvgPool2d(2, 2))


class DenseNet(nn.Module):
    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bn_size=4,
                 drop_rate=0.0, num_classes=1000):
        super().__init__()
        from collections import OrderedDict

        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, num_init_features, 7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU()),
            ("pool0", nn.MaxPool2d(3, 2, 1)),
        ]))
        nf = num_init_features
        for i, n in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(n, nf, bn_size, growth_rate, drop_rate))
            nf += n * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(nf, nf // 2))
                nf //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(nf))
        self.classifier = nn.Linear(nf, num_classes)

    def forward(self, x):
        x = A.relu(self.features(x))
        x = A.flatten(A.adaptive_avg_pool2d(x, (1, 1)), 1)
        return self.classifier(x)


def densenet121(num_classes=1000, drop_rate=0.0):
    """DenseNet-121 (torchvision layout): 7,978,856 parameters."""
    return DenseNet(32, (6, 12, 24, 16), 64, 4, drop_rate, num_classes)
