"""GoogLeNet / Inception v1 (Szegedy et al. 2014, "Going Deeper with Convolutions", Table 1), in
torchvision's layout (``torchvision.models.googlenet``: every conv is ``BasicConv2d`` = conv
without bias + BatchNorm(eps=0.001) + ReLU; the "5x5" branch uses a 3x3 kernel as torchvision
does; no LRN; ``transform_input=False``), same parameter names. 6,624,904 parameters without
the auxiliary classifiers (13,004,888 with ``aux_logits=True``), 1,498,376,192 MACs at 224.

| stage | output at 224 | #1x1 | #3x3 reduce | #3x3 | #5x5 reduce | #5x5 | pool proj |
|---|---|---:|---:|---:|---:|---:|---:|
| conv1 7x7/2, max 3/2 | 64x56x56 | | | | | | |
| conv2 1x1, conv3 3x3, max 3/2 | 192x28x28 | | | | | | |
| inception3a | 256x28x28 | 64 | 96 | 128 | 16 | 32 | 32 |
| inception3b, max 3/2 | 480x14x14 | 128 | 128 | 192 | 32 | 96 | 64 |
| inception4a | 512x14x14 | 192 | 96 | 208 | 16 | 48 | 64 |
| inception4b | 512x14x14 | 160 | 112 | 224 | 24 | 64 | 64 |
| inception4c | 512x14x14 | 128 | 128 | 256 | 24 | 64 | 64 |
| inception4d | 528x14x14 | 112 | 144 | 288 | 32 | 64 | 64 |
| inception4e, max 2/2 | 832x7x7 | 256 | 160 | 320 | 32 | 128 | 128 |
| inception5a | 832x7x7 | 256 | 160 | 320 | 32 | 128 | 128 |
| inception5b | 1024x7x7 | 384 | 192 | 384 | 48 | 128 | 128 |
| avg pool, dropout 0.2, fc | classes | | | | | | |
"""
from __future__ import annotations

from .. import autograd as A
from .. import nn


class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return A.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, ch5x5red, 1), BasicConv2d(ch5x5red, ch5x5, 3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), BasicConv2d(cin, pool_proj, 1))

    def forward(self, x):
        return A.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    def __init__(self, cin, num_classes, dropout=0.7):
        super().__init__()
        self.conv = BasicConv2d(cin, 128, 1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = self.conv(A.adaptive_avg_pool2d(x, (4, 4)))
        x = A.relu(self.fc1(A.flatten(x, 1)))
        return self.fc2(self.dropout(x))


class GoogLeNet(nn.Module):
    def __init__(self, num_classes=1000, aux_logits=False, dropout=0.2, dropout_aux=0.7):
        super().__init__()
        self.aux_logits = aux_logits
        self.conv1 = BasicConv2d(3, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout_aux)
        else:
            self.aux1 = None
            self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        """Logits; in training mode with aux_logits, (logits, aux2, aux1) as torchvision."""
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(A.flatten(self.avgpool(x), 1)))
        if self.training and self.aux_logits:
            return x, aux2, aux1
        return x


def googlenet(num_classes=1000, aux_logits=False, dropout=0.2):
    """GoogLeNet (Inception v1), torchvision layout: 6,624,904 parameters (13,004,888 with aux)."""
    return GoogLeNet(num_classes, aux_logits, dropout)


def inception_module(cin=192, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32, pool_proj=32):
    """One Inception module (default: inception3a)."""
    return Inception(cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)
