"""The two small networks of the course notes (Keras functional API examples).

``simple_cnn``: three Dense layers (64, 64, 10; relu, relu, softmax) applied to every pixel
of a 28x28x3 image, i.e. on the channel axis as Keras' Dense does: 256 + 4,160 + 650 =
5,066 parameters; output (N, 28, 28, 10) (channels last, as in the notes' summary).

``toy_resnet``: the Keras documentation's toy ResNet on 32x32x3 (223,242 parameters):

| layer | output (C, H, W) | params |
|---|---|---:|
| Conv_1 32 3x3 valid, relu | 32x30x30 | 896 |
| Conv_2 64 3x3 valid, relu | 64x28x28 | 18,496 |
| Pool_1 max 3 | 64x9x9 | 0 |
| Conv_3, Conv_4 64 3x3 same, relu; add Pool_1 | 64x9x9 | 2 x 36,928 |
| Conv_5, Conv_6 64 3x3 same, relu; add | 64x9x9 | 2 x 36,928 |
| Conv_7 64 3x3 valid, relu | 64x7x7 | 36,928 |
| Pool_2 global average | 64 | 0 |
| FC_1 256 relu, Dropout 0.5 | 256 | 16,640 |
| FC_2 10 | 10 | 2,570 |
"""
from __future__ import annotations

from .. import autograd as A
from .. import nn


class SimpleCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, softmax: bool = False):
        super().__init__()
        self.to_channels_last = nn.Permute(0, 2, 3, 1)
        self.FC_1 = nn.Linear(in_channels, 64)
        self.FC_2 = nn.Linear(64, 64)
        self.FC_3 = nn.Linear(64, num_classes)
        self.softmax = softmax

    def forward(self, x):
        x = self.to_channels_last(x)
        x = A.relu(self.FC_1(x))
        x = A.relu(self.FC_2(x))
        x = self.FC_3(x)
        return A.softmax(x, -1) if self.softmax else x


def simple_cnn(num_classes: int = 10, in_channels: int = 3, softmax: bool = False) -> SimpleCNN:
    """The notes' SimpleCNN: input (N, 3, 28, 28) -> (N, 28, 28, 10); 5,066 parameters."""
    return SimpleCNN(num_classes, in_channels, softmax)


class ToyResNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        self.Conv_1 = nn.Conv2d(in_channels, 32, 3)
        self.Conv_2 = nn.Conv2d(32, 64, 3)
        self.Pool_1 = nn.MaxPool2d(3)
        self.Conv_3 = nn.Conv2d(64, 64, 3, padding=1)
        self.Conv_4 = nn.Conv2d(64, 64, 3, padding=1)
        self.Conv_5 = nn.Conv2d(64, 64, 3, padding=1)
        self.Conv_6 = nn.Conv2d(64, 64, 3, padding=1)
        self.Conv_7 = nn.Conv2d(64, 64, 3)
        self.Pool_2 = nn.GlobalAvgPool2d()
        self.FC_1 = nn.Linear(64, 256)
        self.dropout = nn.Dropout(dropout)
        self.FC_2 = nn.Linear(256, num_classes)

    def forward(self, x):
        x = A.relu(self.Conv_1(x))
        x = A.relu(self.Conv_2(x))
        block1 = self.Pool_1(x)
        x = A.relu(self.Conv_4(A.relu(self.Conv_3(block1))))
        block2 = x + block1
        x = A.relu(self.Conv_6(A.relu(self.Conv_5(block2))))
        block3 = x + block2
        x = A.relu(self.Conv_7(block3))
        x = A.relu(self.FC_1(self.Pool_2(x)))
        return self.FC_2(self.dropout(x))


def toy_resnet(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5) -> ToyResNet:
    """The notes' toy_resnet on 32x32x3 (223,242 parameters)."""
    return ToyResNet(num_classes, in_channels, dropout)
