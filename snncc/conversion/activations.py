"""Which ANN activations an IF neuron can stand for, read off torch modules and calls.

An IF neuron with subtract reset, threshold theta and initial membrane v0 emits, over T
steps, a spike count whose rate times theta approximates ``clamp(x, 0, theta)`` of its
mean input x (Rueckauer et al. 2017; Bu et al. 2022 for v0 = theta / 2 and QCFS). So an
activation converts when it is (a quantized form of) a clip of x to [0, c]:

==========================================  =======  ==========================
activation                                  kind     threshold
==========================================  =======  ==========================
ReLU, F.relu, torch.relu, Tensor.relu       relu     calibration percentile
ReLU6, F.relu6                              clip     6
Hardtanh(0, c), F.hardtanh(x, 0, c)         clip     c
torch.clamp / Tensor.clamp(x, 0, c)         clip     c (clamp(x, 0): relu)
QCFS (snncc.nn.QCFS, or any module named    qcfs     its trained ``up`` (lambda),
``*QCFS*`` with ``up`` and ``t``)                    ``t`` = L quantization steps
==========================================  =======  ==========================

Activations that let negative values through (LeakyReLU, Tanh, GELU, clamp(-1, 1), ...)
cannot be spike rates and are refused, as are other shapes (Sigmoid, Softplus)."""
from __future__ import annotations

import numbers
from dataclasses import dataclass

#: the activations this module converts, for messages
CONVERTIBLE = ("ReLU, ReLU6, Hardtanh(0, c), clamp(x, 0[, c]), F.relu/relu6/hardtanh, torch.relu/clamp/clip, "
               "Tensor.relu/clamp/clip, QCFS")
NEGATIVE_HINT = ("an IF neuron emits only non-negative spike rates; use ReLU, a clip to [0, c] (ReLU6, "
                 "Hardtanh(0, c), clamp(x, 0, c)) or QCFS")


@dataclass(frozen=True)
class Act:
    """A convertible activation: ``kind`` relu | clip | qcfs, its upper bound ``clip``
    (None: unbounded ReLU), QCFS's ``levels`` (0: continuous) and how it was written."""

    kind: str
    clip: float | None = None
    levels: int = 0
    what: str = ""


def _negative_modules():
    from torch import nn

    return (nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh,
            nn.Hardswish, nn.Softsign, nn.Tanhshrink, nn.Hardshrink, nn.Softshrink, nn.LogSigmoid)


def _other_modules():
    from torch import nn

    return (nn.Sigmoid, nn.Hardsigmoid, nn.Softplus, nn.Threshold, nn.Softmax, nn.LogSoftmax, nn.GLU)


def _bounds(lo, hi, what: str) -> Act | str:
    """clamp(x, lo, hi) as an activation: lo must be 0 (a non-negative output from 0 up)."""
    for name, v in (("lower", lo), ("upper", hi)):
        if v is not None and not isinstance(v, numbers.Real):
            return f"{what}: a {name} bound that is not a constant number cannot be a neuron threshold"
    if lo is None or lo < 0:
        return f"{what} lets negative values through: {NEGATIVE_HINT}"
    if lo > 0:
        return f"{what} has a lower bound {lo:g} > 0, which an IF neuron (resting at 0) cannot produce; clip at 0"
    if hi is None:
        return Act("relu", None, 0, what)
    if not hi > 0:
        return f"{what}: the upper bound {hi:g} must be > 0"
    return Act("clip", float(hi), 0, what)


def is_qcfs(m) -> bool:
    """A QCFS module: snncc.nn.QCFS, or one of the public QCFS code (a class named *QCFS*
    with ``up`` and ``t``); a leaf for torch.fx (its floor is not traced through)."""
    return "QCFS" in type(m).__name__.upper() and hasattr(m, "up") and hasattr(m, "t")


def _module(m) -> Act | str | None:
    from torch import nn

    name = type(m).__name__
    if is_qcfs(m):
        up = float(m.up.detach().reshape(-1)[0]) if hasattr(m.up, "detach") else float(m.up)
        if not up > 0 or int(m.t) < 1:
            return f"{name} with up={up:g}, t={m.t}: needs up > 0 and t >= 1"
        return Act("qcfs", up, int(m.t), f"{name}(up={up:g}, L={int(m.t)})")
    if isinstance(m, nn.ReLU):
        return Act("relu", None, 0, "ReLU")
    if isinstance(m, nn.Hardtanh):  # ReLU6 is a Hardtanh(0, 6)
        return _bounds(float(m.min_val), float(m.max_val), f"{name}({m.min_val:g}, {m.max_val:g})")
    if isinstance(m, _negative_modules()):
        return f"{name} lets negative values through: {NEGATIVE_HINT}"
    if isinstance(m, _other_modules()):
        return f"{name} is not a clip of its input to [0, c], which is what IF neurons compute in rate; use " \
               "ReLU, a clip or QCFS"
    return None


def _arg(node, i: int, key: str, default=None):
    return node.args[i] if len(node.args) > i else node.kwargs.get(key, default)


def _call(node) -> Act | str | None:
    """Activations written as function or method calls in forward."""
    import torch
    import torch.nn.functional as F

    t = node.target
    if node.op == "call_method":
        if t in ("relu", "relu_"):
            return Act("relu", None, 0, f"Tensor.{t}")
        if t in ("clamp", "clamp_", "clip", "clip_"):
            return _bounds(_arg(node, 1, "min"), _arg(node, 2, "max"), f"Tensor.{t}")
        return None
    if node.op != "call_function":
        return None
    if t in (F.relu, torch.relu, getattr(torch, "relu_", None)):
        return Act("relu", None, 0, "relu")
    if t is F.relu6:
        return Act("clip", 6.0, 0, "relu6")
    if t is F.hardtanh:
        return _bounds(_arg(node, 1, "min_val", -1.0), _arg(node, 2, "max_val", 1.0), "hardtanh")
    if t in (torch.clamp, torch.clip):
        return _bounds(_arg(node, 1, "min"), _arg(node, 2, "max"), t.__name__)
    negative = (F.leaky_relu, F.gelu, F.silu, F.elu, F.selu, F.celu, F.mish, F.hardswish, torch.tanh, F.tanh)
    if t in negative:
        return f"{t.__name__} lets negative values through: {NEGATIVE_HINT}"
    return None


def classify(node, module) -> Act | str | None:
    """The activation an fx call node computes: an :class:`Act` if it converts, a string
    saying why not if it is an activation that does not, None if it is no activation."""
    if module is not None:
        return _module(module)
    return _call(node)
