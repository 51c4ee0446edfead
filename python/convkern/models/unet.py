"""U-Net (Ronneberger, Fischer, Brox 2015, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", Figure 1): 572x572x1 -> 388x388x2 with unpadded 3x3 convolutions, 2x2 max-pooling,
2x2 up-convolutions (transposed, stride 2) halving the channels, and crop-and-concatenate skip
connections; 31,030,658 parameters for 1 input channel and 2 classes (conv biases included, no
BatchNorm). ``padding=1`` gives the common 'same' variant (output size = input size, no crop),
``batch_norm=True`` adds BatchNorm after each conv (then convs have no bias).

| level | contracting path (2 x conv 3x3 + ReLU) | expanding path (up-conv 2x2, concat, 2 x conv 3x3) |
|---|---|---|
| 1 | 64 (568x568) | 64 -> 1x1 conv to 2 classes (388x388) |
| 2 | 128 (280x280) | 128 |
| 3 | 256 (136x136) | 256 |
| 4 | 512 (64x64) | 512 |
| 5 | 1024 (28x28) | - |
"""
from __future__ import annotations

from .. import autograd as A
from .. import nn


class DoubleConv(nn.Sequential):
    def __init__(self, cin, cout, padding=0, batch_norm=False):
        layers = []
        for a, b in ((cin, cout), (cout, cout)):
            layers.append(nn.Conv2d(a, b, 3, padding=padding, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(b))
            layers.append(nn.ReLU())
        super().__init__(*layers)


def center_crop(x, h, w):
    """Crop the skip connection's feature map to (h, w) (the paper's copy-and-crop)."""
    H, W = x.shape[-2:]
    t, l = (H - h) // 2, (W - w) // 2
    if (t, l) == (0, 0) and (H, W) == (h, w):
        return x
    return x[:, :, t:t + h, l:l + w]


class UNet(nn.Module):
    def __init__(self, in_channels=1, num_classes=2, base=64, depth=4, padding=0, batch_norm=False):
        super().__init__()
        chs = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([DoubleConv(in_channels if i == 0 else chs[i - 1], chs[i], padding, batch_norm)
                                   for i in range(depth + 1)])
        self.pool = nn.MaxPool2d(2, 2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(chs[i + 1], chs[i], 2, stride=2) for i in reversed(range(depth))])
        self.up_conv = nn.ModuleList([DoubleConv(2 * chs[i], chs[i], padding, batch_norm)
                                      for i in reversed(range(depth))])
        self.head = nn.Conv2d(chs[0], num_classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = self.pool(x)
        for up, conv, skip in zip(self.up, self.up_conv, reversed(skips)):
            x = up(x)
            x = conv(A.cat([center_crop(skip, x.shape[-2], x.shape[-1]), x], 1))
        return self.head(x)


def unet(in_channels=1, num_classes=2, base=64, depth=4, padding=0, batch_norm=False):
    """U-Net as in the paper (572x572x1 -> 388x388x2; 31,030,658 parameters)."""
    return UNet(in_channels, num_classes, base, depth, padding, batch_norm)
