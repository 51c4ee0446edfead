"""The architecture zoo: ``convkern.models.<name>(num_classes=..., ...)`` or ``get_model(name)``.

Each family lives in its own module with a docstring giving the paper, the layout it follows
(torchvision's or Keras') and its published parameter count. ``PUBLISHED`` lists those counts
(``keras=True``: counted the Keras way, BatchNorm moving statistics included) and the input
shape the numbers refer to.
"""
from __future__ import annotations

from .alexnet import alexnet
from .densenet import densenet121
from .googlenet import googlenet, inception_module
from .lenet import lenet5
from .mobilenet import mobilenet
from .mobilenet_v2 import mobilenet_v2
from .resnet import resnet18, resnet34, resnet50, resnet101, resnet152
from .simple import simple_cnn, toy_resnet
from .unet import unet
from .vgg import vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn
from .vit import vit_b_16, vit_micro, vit_tiny
from .xception import xception

# name: (builder, input shape (C, H, W), published parameter count, counted the Keras way, source)
ZOO = {
    "simple_cnn": (simple_cnn, (3, 28, 28), 5_066, False, "course notes (Keras)"),
    "toy_resnet": (toy_resnet, (3, 32, 32), 223_242, False, "course notes (Keras docs)"),
    "lenet5": (lenet5, (1, 32, 32), 61_706, False, "Keras LeNet-5"),
    "alexnet": (alexnet, (3, 224, 224), 61_100_840, False, "torchvision"),
    "vgg11": (vgg11, (3, 224, 224), 132_863_336, False, "torchvision"),
    "vgg13": (vgg13, (3, 224, 224), 133_047_848, False, "torchvision"),
    "vgg16": (vgg16, (3, 224, 224), 138_357_544, False, "torchvision / Keras"),
    "vgg19": (vgg19, (3, 224, 224), 143_667_240, False, "torchvision / Keras"),
    "vgg11_bn": (vgg11_bn, (3, 224, 224), 132_868_840, False, "torchvision"),
    "vgg13_bn": (vgg13_bn, (3, 224, 224), 133_053_736, False, "torchvision"),
    "vgg16_bn": (vgg16_bn, (3, 224, 224), 138_365_992, False, "torchvision"),
    "vgg19_bn": (vgg19_bn, (3, 224, 224), 143_678_248, False, "torchvision"),
    "googlenet": (googlenet, (3, 224, 224), 6_624_904, False, "torchvision (aux_logits=False)"),
    "resnet18": (resnet18, (3, 224, 224), 11_689_512, False, "torchvision"),
    "resnet34": (resnet34, (3, 224, 224), 21_797_672, False, "torchvision"),
    "resnet50": (resnet50, (3, 224, 224), 25_557_032, False, "torchvision"),
    "resnet101": (resnet101, (3, 224, 224), 44_549_160, False, "torchvision"),
    "resnet152": (resnet152, (3, 224, 224), 60_192_808, False, "torchvision"),
    "xception": (xception, (3, 299, 299), 22_910_480, True, "Keras"),
    "mobilenet": (mobilenet, (3, 224, 224), 4_253_864, True, "Keras"),
    "mobilenet_v2": (mobilenet_v2, (3, 224, 224), 3_504_872, False, "torchvision"),
    "densenet121": (densenet121, (3, 224, 224), 7_978_856, False, "torchvision"),
    "unet": (unet, (1, 572, 572), 31_030_658, False, "U-Net paper (computed from its Figure 1)"),
    "vit_b_16": (vit_b_16, (3, 224, 224), 86_567_656, False, "torchvision"),
    "vit_tiny": (vit_tiny, (3, 224, 224), 5_717_416, False, "DeiT-Ti / timm vit_tiny_patch16_224"),
}

__all__ = ["ZOO", "get_model", "list_models", "published_params"] + list(ZOO) + ["inception_module", "vit_micro"]


def list_models():
    return list(ZOO)


def get_model(name: str, **kwargs):
    """Build architecture ``name`` (see ``list_models()``)."""
    if name not in ZOO:
        raise ValueError(f"name: unknown model {name!r} (available: {', '.join(ZOO)})")
    return ZOO[name][0](**kwargs)


def published_params(name: str):
    """(published parameter count, counted the Keras way)."""
    _, _, n, keras, _ = ZOO[name]
    return n, keras
