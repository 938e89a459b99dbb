"""Tracing an ANN: the torch.fx frontend (``snncc.frontends.torch_fx.from_torch``) with a
hook that turns every activation into an IF neuron (its threshold set later, from the
activation's clip or from calibration) and AdaptiveAvgPool2d into an AvgPool."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph
from ..ir.nodes import LIF, AvgPool
from .activations import CONVERTIBLE, Act, classify, is_qcfs

#: the layers an ANN may hold, for messages
ANN_SUPPORTED = ("Conv2d, Linear, BatchNorm1d/2d, AvgPool2d, AdaptiveAvgPool2d, MaxPool2d, Flatten, Dropout, "
                 f"Identity, residual add (+), torch.flatten/view; activations: {CONVERTIBLE}")


def if_neuron(source: str, theta: float, v_init: float) -> LIF:
    """The IF neuron standing for an activation with threshold ``theta``: no leak, subtract
    reset, spike at v >= theta (the rounding of QCFS, and SpikingJelly's IF), initial
    membrane ``v_init`` x theta, each spike worth theta."""
    thr = np.array([theta])
    return LIF(source=source, beta=1.0, alpha=0.0, threshold=thr, reset="subtract", reset_value=thr.copy(),
               v_init=float(v_init * theta) if v_init else 0.0, threshold_test="ge", spike_value=float(theta),
               state_level=thr.copy())


class AnnHook:
    """The ``extra`` converter of from_torch for an ANN: activations -> IF neurons
    (recorded in ``acts``), AdaptiveAvgPool2d -> AvgPool, spiking neurons refused."""

    def __init__(self) -> None:
        self.acts: dict[str, Act] = {}

    @staticmethod
    def is_leaf(m) -> bool:
        return is_qcfs(m)

    def __call__(self, node, m, g: Graph, env: dict, bad) -> str | None:
        from torch import nn

        from ..frontends.torch_fx import _is_neuron

        where = node.target if m is not None else node.name
        if m is not None and _is_neuron(m):
            bad.add(where, m, "a spiking neuron: --convert takes an ANN (ReLU/clip/QCFS activations); compile an "
                              "SNN without --convert")
            return ""
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return self._adaptive(node, m, g, env, bad)
        act = classify(node, m)
        if act is None:
            return None
        src = env.get(node.args[0].name) if node.args and hasattr(node.args[0], "name") else None
        if isinstance(act, str):
            _refuse(bad, where, m, act, node)
            return ""
        if src is None:
            return ""
        name = g.add(g.unique(str(where)), if_neuron(str(where), float("inf"), 0.0), [src])
        self.acts[name] = act
        return name

    def _adaptive(self, node, m, g: Graph, env: dict, bad) -> str:
        src = env.get(node.args[0].name)
        if src is None:
            return ""
        c, h, w = g.shapes()[src]
        out = m.output_size if isinstance(m.output_size, tuple) else (m.output_size, m.output_size)
        oh, ow = (h if out[0] is None else out[0]), (w if out[1] is None else out[1])
        if h % oh or w % ow:
            bad.add(node.target, m, f"output size {oh}x{ow} does not divide the {h}x{w} input into equal windows")
            return ""
        k = (h // oh, w // ow)
        return g.add(g.unique(node.target), AvgPool(source=node.target, kernel=k, stride=k, padding=(0, 0)), [src])


def _refuse(bad, where: str, m, why: str, node) -> None:
    if m is not None:
        bad.add(where, m, why)
    else:
        bad.append(f"operation '{node.name}' in forward: {why}")


def activation_hint(node, m, g: Graph, env: dict, bad) -> str | None:
    """The ``extra`` converter of from_torch for an SNN: an ANN activation is refused with
    the way to convert the ANN."""
    act = classify(node, m)
    if not isinstance(act, Act):  # not an activation, or one no conversion takes: the frontend's own message
        return None
    hint = ("an ANN activation: an SNN compile takes spiking neurons; add --convert (compile(..., convert=True)) "
            "to convert this ANN into an SNN (docs/conversion.md)")
    _refuse(bad, node.target if m is not None else node.name, m, hint, node)
    return ""


activation_hint.is_leaf = is_qcfs  # type: ignore[attr-defined]
