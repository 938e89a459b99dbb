"""Fake quantization on the compiler's own grid.

The trainer never re-implements the compiler's quantizers: :class:`CompilerView` runs
the compiler's own passes (trace, BatchNorm fold, readout, ``quantize_synapses``,
``fold_neurons``, ``lower_membrane``) on the current weights and reads back, per
synapse, the real value of one integer weight (``step``, per output channel) and the
grid of integers it may take (``levels``); per neuron, its unit sigma, fractional
membrane bits, decay constant and register width. Between two refreshes the trainer
rounds onto that grid in torch (nearest level, a straight-through gradient); a refresh
before every evaluation and before saving makes the scales exactly the compiler's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UnsupportedLayerError
from ..passes import quantizers as Q

#: weight quantizers whose rounding is "nearest level of w / scale" (what the STE trains)
QAT_QUANTIZERS = ("uniform", "vanilla", "rescaw", "pot", "apot")


def signed_levels(quantizer: str, bits: int) -> np.ndarray:
    """The integers a ``bits``-bit synapse of ``quantizer`` may take (sorted)."""
    if quantizer == "uniform":
        q = (1 << (bits - 1)) - 1
        return np.arange(-q, q + 1)
    if quantizer in ("vanilla", "rescaw"):
        s = (1 << bits) - 1
        return np.arange(-s, s + 1, 2)
    if quantizer == "pot":
        mag = Q.pot_levels(bits)
    elif quantizer == "apot":
        mag = Q.apot_levels(bits)
    else:
        raise UnsupportedLayerError(
            f"quantization-aware training supports the quantizers {', '.join(QAT_QUANTIZERS)}; "
            f"{quantizer!r} does not round to the nearest level of its grid")
    return np.concatenate([-mag[:0:-1], mag])


@dataclass
class SynapseGrid:
    """One Conv2d/Linear: model weights are ``step[o] * k`` with k in ``levels``."""

    module: str              # qualified name in the torch model
    neuron: str              # IR neuron it feeds
    step: np.ndarray         # (C_out,) real value of one integer weight, in model units
    levels: np.ndarray       # sorted integers
    w_int: np.ndarray        # the compiler's integers for the weights of this refresh


@dataclass
class NeuronGrid:
    """One neuron layer as the compiler sees it (sigma: real value of one input unit)."""

    name: str
    sigma: np.ndarray        # (C,) or (1,)
    act_shift: int
    dv: int
    v_bits: int
    v_overflow: str
    fires: bool


@dataclass
class View:
    synapses: dict           # module name -> SynapseGrid
    neurons: dict            # IR neuron name -> NeuronGrid
    groups: dict             # IR neuron name -> [module names of its synapses]
    shortcuts: dict          # IR neuron name -> (C,) real weight of its identity shortcut
    readout: str | None      # IR name of the added readout neuron (None: the model ends in a neuron)
    int_graph: object        # the integer graph (the compiled model of these weights)


def compiler_view(model, example_input, cfg) -> View:
    """Run the compiler's passes on ``model`` (a plain snncc/torch model, BatchNorm folded
    or not) and collect the grids."""
    from ..frontends.pytorch import trace
    from ..passes.integerize import fold_neurons, lower_membrane
    from ..passes.pipeline import FLOAT_PASSES, run_pipeline
    from ..passes.quantize import quantize_synapses, spike_scale, synapse_plan

    g = run_pipeline(trace(model, example_input, cfg), cfg, FLOAT_PASSES, [], [])
    plan = synapse_plan(g, cfg)
    gq, _ = quantize_synapses(g, cfg)
    gi, _ = fold_neurons(gq, cfg)
    gi, _ = lower_membrane(gi, cfg)
    syn, groups, shortcuts = {}, {}, {}
    for n, plans in plan.items():
        groups[n] = []
        for p in plans:
            op, qop = g.node(p.name), gq.node(p.name)
            step = np.asarray(qop.scale, np.float64) * p.branch.factor / p.unit
            syn[op.source] = SynapseGrid(op.source, n, step, signed_levels(cfg.quantizer, p.bits),
                                         np.asarray(qop.weight))
            groups[n].append(op.source)
    neurons = {}
    for n in plan:
        iop = gi.node(n)
        neurons[n] = NeuronGrid(n, np.asarray(gq.node(n).scale, np.float64), iop.act_shift, iop.dv,
                                iop.v_bits, iop.v_overflow, iop.fires)
        for s in gq.inputs(n) + [x for a in gq.inputs(n) for x in gq.inputs(a)]:
            if s.startswith(f"{n}.shortcut"):
                sop = gq.node(s)
                w = np.asarray(sop.weight, np.float64).reshape(sop.weight.shape[0], -1).sum(1)
                s_in = spike_scale(g, gq.inputs(s)[0], {}, {})  # real value of one input unit
                shortcuts[n] = w * np.asarray(sop.scale, np.float64) / s_in
    readout = next((n for n, op in g.items() if op.kind == "LIF" and op.source == "readout"), None)
    return View(syn, neurons, groups, shortcuts, readout, gi)


def nearest_levels(x, levels):
    """Nearest entry of the sorted 1-D tensor ``levels`` to every element of ``x``."""
    if len(levels) > 2 and bool(torch.all(levels[1:] - levels[:-1] == levels[1] - levels[0])):
        d = levels[1] - levels[0]
        k = torch.clamp(torch.floor((x - levels[0]) / d + 0.5), 0, len(levels) - 1)
        return levels[0] + k * d
    mids = (levels[1:] + levels[:-1]) / 2
    return levels[torch.bucketize(x, mids)]


class _STE(torch.autograd.Function):
    """Forward the quantized value, backward the identity (straight-through)."""

    @staticmethod
    def forward(ctx, x, xq):  # type: ignore[override]
        return xq

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return g, None


def fake_quant_weight(w, step, levels):
    """w -> step * nearest level of w / step (per output channel), straight-through."""
    col = step.reshape((-1,) + (1,) * (w.dim() - 1))
    with torch.no_grad():
        wq = nearest_levels(w / col, levels) * col
    return _STE.apply(w, wq)


def round_half_away(x):
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)
