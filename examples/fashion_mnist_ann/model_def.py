"""The Fashion-MNIST ANN shipped for SNNQ's flow (ANN -> SNN conversion; see train.py).

A small VGG-style CNN whose activations are QCFS (quantization-clip-floor-shift, Bu et
al. 2022, ``snncc.nn.QCFS``): the activation low-latency ANN-to-SNN conversion trains
with, so that ``snncc compile model.pt --convert`` turns each one into an IF neuron with
threshold = its trained ``up`` and initial membrane ``up / 2``. Pooling is AvgPool2d, as
SNNQ and ANN2SNN_SRP train theirs (they replace MaxPool2d by AvgPool2d before training).

Built only from torch.nn and snncc.nn classes: saved whole with ``torch.save(model,
path)``, loaded with ``torch.load(path, weights_only=True)`` under snncc's allow-list.
Inputs are ``uint8 pixels / 255`` of shape (N, 1, 28, 28); the output is 10 class logits.
"""
from __future__ import annotations

from torch import nn

from snncc.nn import QCFS

#: QCFS quantization steps L (SNNQ's default) and the initial clip value lambda
LEVELS = 4
UP = 4.0


def _act() -> QCFS:
    return QCFS(up=UP, levels=LEVELS)


def build() -> nn.Sequential:
    """A fresh (untrained) ANN: 1x28x28 -> 10 logits."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), _act(),
        nn.AvgPool2d(2),                                                    # 14 x 14
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), _act(),
        nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), _act(),
        nn.AvgPool2d(2),                                                    # 7 x 7
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 7 * 7, 10),
    )
