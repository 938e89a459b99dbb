"""The Fashion-MNIST spiking CNN shipped with snncc (see train.py).

Built only from torch.nn and snncc.nn classes, so the trained network is saved whole
with ``torch.save(model, path)`` and loaded back with ``torch.load(path,
weights_only=True)`` once :func:`snncc.frontends.safe_load.safe_globals` is allow-listed.

The model advances ONE time step per call (stateful neurons). Inputs are float images
``uint8 pixels / 255`` with shape (N, 1, 28, 28), presented at every step (direct
encoding); use ``snncc.nn.run(model, x, steps=T)`` -> (N, T, 10) logits and predict
``argmax`` of their mean over T (T = 4).
"""
from __future__ import annotations

from torch import nn

from snncc.nn import LIF, Residual

#: neuron parameters shared by every layer
BETA = 0.5
THRESHOLD = 1.0
RESET = "zero"
#: time steps the example is trained and evaluated with
T = 4


def _lif() -> LIF:
    return LIF(beta=BETA, threshold=THRESHOLD, reset=RESET)


def build() -> nn.Sequential:
    """Return a fresh (untrained) network: 28x28x1 -> 10 class logits per step."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), _lif(),
        nn.AvgPool2d(2),                                                   # 14 x 14
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), _lif(),
        Residual(nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)), _lif(),
        nn.MaxPool2d(2),                                                   # 7 x 7
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 7 * 7, 10),
    )
