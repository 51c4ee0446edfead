"""The small networks whose whole-model gradients are checked (tests and ``convkern zoo --check``):
LeNet-5, toy_resnet, a two-block ResNet (identity and projection shortcuts), an Inception module,
a depthwise-separable block and a tiny ViT. name: (builder, input shape, samples per tensor)."""
from __future__ import annotations

from .. import nn
from .googlenet import inception_module
from .lenet import lenet5
from .resnet import BasicBlock, conv1x1
from .simple import toy_resnet
from .vit import vit_micro


def two_block_resnet():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         BasicBlock(4, 4), BasicBlock(4, 8, 2, nn.Sequential(conv1x1(4, 8, 2), nn.BatchNorm2d(8))),
                         nn.GlobalAvgPool2d(), nn.Linear(8, 3))


def depthwise_separable_block():
    return nn.Sequential(nn.DepthwiseConv2d(3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU6(), nn.Conv2d(3, 8, 1),
                         nn.BatchNorm2d(8), nn.ReLU())


WHOLE_MODEL_CHECKS = {
    "lenet5": (lenet5, (2, 1, 32, 32), 3),
    "toy_resnet": (toy_resnet, (1, 3, 32, 32), 2),
    "two_block_resnet": (two_block_resnet, (2, 3, 8, 8), 4),
    "inception_module": (lambda: inception_module(6, 2, 3, 4, 2, 3, 2), (2, 6, 5, 5), 4),
    "depthwise_separable": (depthwise_separable_block, (2, 3, 6, 6), 6),
    "tiny_vit": (vit_micro, (2, 3, 8, 8), 4),
}
