"""AlexNet (Krizhevsky, Sutskever, Hinton 2012), torchvision's single-GPU layout
(``torchvision.models.alexnet``; from "One weird trick", 64-192-384-256-256 channels,
no LRN): 61,100,840 parameters, 714,188,480 MACs at 224x224. Same parameter names.

| layer | output | params |
|---|---|---:|
| features.0 conv 64 11x11/4 p2, relu, max 3/2 | 64x27x27 | 23,296 |
| features.3 conv 192 5x5 p2, relu, max 3/2 | 192x13x13 | 307,392 |
| features.6 conv 384 3x3 p1, relu | 384x13x13 | 663,936 |
| features.8 conv 256 3x3 p1, relu | 256x13x13 | 884,992 |
| features.10 conv 256 3x3 p1, relu, max 3/2 | 256x6x6 | 590,080 |
| avgpool adaptive 6x6; classifier.1 dense 4096 (dropout before) | 4096 | 37,752,832 |
| classifier.4 dense 4096 (dropout before) | 4096 | 16,781,312 |
| classifier.6 dense 1000 | 1000 | 4,097,000 |
"""
from __future__ import annotations

from .. import autograd as A
from .. import nn


class AlexNet(nn.Module):
    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(A.flatten(x, 1))


def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """torchvision AlexNet (61,100,840 parameters for 1000 classes)."""
    return AlexNet(num_classes, dropout)
