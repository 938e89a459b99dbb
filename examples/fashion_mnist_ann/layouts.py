"""The ANN layouts of the seed papers (SNNQ, ANN2SNN_SRP), written out for snncc's
conversion: VGG-16 in five blocks with average pooling (SNNQ replaces max pooling by
AvgPool2d before training) and ResNet-18 built from BasicBlocks (``relu(residual(x) +
shortcut(x))``, a 1x1 conv + BN shortcut where the shape changes, AdaptiveAvgPool2d and
a linear classifier). ``width`` divides every channel count (1: the papers' 64..512),
``act`` makes the activation (ReLU, or QCFS for low-latency conversion).

    from layouts import vgg16, resnet18
    model = resnet18(num_classes=10, in_channels=3, width=8, act=lambda: QCFS(up=4.0, levels=4))

These are layouts for tests and experiments; the shipped Fashion-MNIST ANN is model_def.py.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

VGG16 = [64, 64, "A", 128, 128, "A", 256, 256, 256, "A", 512, 512, 512, "A", 512, 512, 512, "A"]


def vgg16(num_classes: int = 10, in_channels: int = 3, width: int = 1, act: Callable[[], nn.Module] = nn.ReLU,
          image: int = 32) -> nn.Sequential:
    """VGG-16: 13 conv3x3-BN-act layers in five average-pooled blocks, then a
    linear-act-linear classifier (SNNQ's and SRP's CIFAR VGG)."""
    layers: list[nn.Module] = []
    c = in_channels
    for v in VGG16:
        if v == "A":
            layers.append(nn.AvgPool2d(2))
            image //= 2
            continue
        w = max(1, int(v) // width)
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), act()]
        c = w
    hidden = max(1, 4096 // (8 * width))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * image * image, hidden), act(), nn.Dropout(0.5),
                         nn.Linear(hidden, num_classes))


class BasicBlock(nn.Module):
    """ResNet's basic block as SNNQ writes it: act(residual_function(x) + shortcut(x))."""

    def __init__(self, c_in: int, c_out: int, stride: int, act: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.residual_function = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), act(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu = act()

    def forward(self, x):
        return self.relu(self.residual_function(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18: a conv3x3-BN-act stem, four stages of two BasicBlocks (64, 128, 256, 512
    channels / width; stride 2 from the second), AdaptiveAvgPool2d(1) and a linear layer."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 1,
                 act: Callable[[], nn.Module] = nn.ReLU) -> None:
        super().__init__()
        w = [max(1, c // width) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, w[0], 3, padding=1, bias=False), nn.BatchNorm2d(w[0]), act())
        blocks, c = [], w[0]
        for i, co in enumerate(w):
            for j in range(2):
                blocks.append(BasicBlock(c, co, 2 if (i > 0 and j == 0) else 1, act))
                c = co
        self.layers = nn.Sequential(*blocks)
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.avg_pool(self.layers(self.conv1(x)))
        return self.fc(x.view(x.size(0), -1))


def resnet18(num_classes: int = 10, in_channels: int = 3, width: int = 1,
             act: Callable[[], nn.Module] = nn.ReLU) -> ResNet18:
    return ResNet18(num_classes, in_channels, width, act)
