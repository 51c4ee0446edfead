"""LeNet-5 (LeCun et al. 1998, "Gradient-Based Learning Applied to Document Recognition"), in the
fully connected Keras form of the course notes: 61,706 parameters on a 32x32x1 input.

| layer | output | params |
|---|---|---:|
| conv 6@5x5, tanh | 6x28x28 | 156 |
| avg-pool 2 | 6x14x14 | 0 |
| conv 16@5x5, tanh | 16x10x10 | 2,416 |
| avg-pool 2 | 16x5x5 | 0 |
| dense 120, tanh | 120 | 48,120 |
| dense 84, tanh | 84 | 10,164 |
| dense 10 (softmax in the loss) | 10 | 850 |

(The 1998 paper's C3 is partially connected, 1,516 parameters; this variant connects fully.)
"""
from __future__ import annotations

from .. import nn


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 32):
        super().__init__()
        s = ((input_size - 4) // 2 - 4) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(16 * s * s, 120), nn.Tanh(),
            nn.Linear(120, 84), nn.Tanh(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def lenet5(num_classes: int = 10, in_channels: int = 1, input_size: int = 32) -> LeNet5:
    """LeNet-5, 32x32x1 -> logits (61,706 parameters for 10 classes)."""
    return LeNet5(num_classes, in_channels, input_size)
