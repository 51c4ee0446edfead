"""Vision Transformer (Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words", Table 1), in
torchvision's layout (``torchvision.models.vit_b_16``: pre-norm encoder blocks, LayerNorm
eps 1e-6, class token, learned position embeddings, ``heads.head``), same parameter names.

| model | patch | layers | hidden | MLP | heads | params (1000 classes, 224x224) |
|---|---:|---:|---:|---:|---:|---:|
| vit_b_16 (ViT-Base/16) | 16 | 12 | 768 | 3072 | 12 | 86,567,656 |
| vit_tiny (DeiT-Ti / timm vit_tiny_patch16_224) | 16 | 12 | 192 | 768 | 3 | 5,717,416 |

The patch embedding is a strided convolution (``conv_proj``, kernel = stride = patch size).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from .. import autograd as A
from .. import nn
from ..nn.module import new_array


class MLPBlock(nn.Sequential):
    def __init__(self, in_dim, mlp_dim, dropout):
        super().__init__(nn.Linear(in_dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, in_dim),
                         nn.Dropout(dropout))


class EncoderBlock(nn.Module):
    def __init__(self, num_heads, hidden_dim, mlp_dim, dropout=0.0, attention_dropout=0.0):
        super().__init__()
        self.num_heads = num_heads
        self.ln_1 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(hidden_dim, num_heads, dropout=attention_dropout,
                                                    batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.mlp = MLPBlock(hidden_dim, mlp_dim, dropout)

    def forward(self, inp):
        x = self.ln_1(inp)
        x, _ = self.self_attention(x, x, x, need_weights=False)
        x = self.dropout(x) + inp
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, seq_length, num_layers, num_heads, hidden_dim, mlp_dim, dropout=0.0, attention_dropout=0.0):
        super().__init__()
        self.pos_embedding = nn.Parameter(new_array((1, seq_length, hidden_dim), np.float32,
                                                    init=lambda rng, s: rng.normal(0, 0.02, s)))
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(num_heads, hidden_dim, mlp_dim, dropout, attention_dropout))
            for i in range(num_layers)))
        self.ln = nn.LayerNorm(hidden_dim, eps=1e-6)

    def forward(self, x):
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(nn.Module):
    def __init__(self, image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072,
                 dropout=0.0, attention_dropout=0.0, num_classes=1000, in_channels=3):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size: {image_size} is not divisible by patch_size {patch_size}")
        self.image_size, self.patch_size, self.hidden_dim = image_size, patch_size, hidden_dim
        self.conv_proj = nn.Conv2d(in_channels, hidden_dim, patch_size, stride=patch_size)
        seq_length = (image_size // patch_size) ** 2 + 1
        self.class_token = nn.Parameter(new_array((1, 1, hidden_dim), np.float32))
        self.encoder = Encoder(seq_length, num_layers, num_heads, hidden_dim, mlp_dim, dropout, attention_dropout)
        self.seq_length = seq_length
        self.heads = nn.Sequential(OrderedDict([("head", nn.Linear(hidden_dim, num_classes))]))

    def forward(self, x):
        n = x.shape[0]
        x = self.conv_proj(x)                                   # (N, D, h, w)
        x = A.permute(A.reshape(x, (n, self.hidden_dim, -1)), (0, 2, 1))  # (N, h*w, D)
        cls = A.mul(self.class_token, np.ones((n, 1, 1), dtype=x.dtype))
        x = self.encoder(A.cat([cls, x], 1))
        return self.heads(x[:, 0])


def vit_b_16(num_classes=1000, image_size=224, dropout=0.0):
    """ViT-B/16 (torchvision layout): 86,567,656 parameters at 224x224."""
    return VisionTransformer(image_size, 16, 12, 12, 768, 3072, dropout, num_classes=num_classes)


def vit_tiny(num_classes=1000, image_size=224, patch_size=16, dropout=0.0):
    """ViT-Tiny (DeiT-Ti configuration: 12 layers, width 192, 3 heads, MLP 768): 5,717,416 parameters
    at 224x224 with 1000 classes; ``image_size=32, patch_size=4`` gives a CIFAR-sized variant."""
    return VisionTransformer(image_size, patch_size, 12, 3, 192, 768, dropout, num_classes=num_classes)


def vit_micro(num_classes=10, image_size=8, patch_size=4, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16):
    """A very small ViT for gradient checks."""
    return VisionTransformer(image_size, patch_size, num_layers, num_heads, hidden_dim, mlp_dim,
                             num_classes=num_classes)
