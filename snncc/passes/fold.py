"""Float-level passes: fold BatchNorm, add the readout, set the membrane quantizer."""
from __future__ import annotations

import numpy as np

from ..config import CompileConfig
from ..errors import UnsupportedLayerError
from ..ir.graph import Graph
from ..ir.nodes import LIF


def fold_bn_weights(w: np.ndarray, b: np.ndarray, mean, var, gamma, beta, eps):
    """W' = W * s, b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps), per output channel."""
    s = gamma / np.sqrt(var + eps)
    return w * s.reshape((-1,) + (1,) * (w.ndim - 1)), (b - mean) * s + beta


def fold_batchnorm(graph: Graph, cfg: CompileConfig) -> tuple[Graph, bool]:
    """Fold every BatchNorm into the Conv/Dense right before it."""
    g = graph.copy()
    changed = False
    for name in g.of_kind("BatchNorm"):
        bn = g.node(name)
        (src,) = g.inputs(name)
        syn = g.node(src)
        if syn.kind not in ("Conv", "Dense") or len(g.users(src)) != 1:
            raise UnsupportedLayerError(
                f"BatchNorm at '{bn.source}' does not directly follow a Conv2d/Linear used only by it "
                f"(it reads '{syn.source or src}', a {syn.kind}); snncc folds BatchNorm into the "
                "preceding synapse: move it right after a Conv2d/Linear")
        w, b = fold_bn_weights(syn.weight, syn.bias, bn.mean, bn.var, bn.gamma, bn.beta, bn.eps)
        g.set(src, syn.replace(weight=w, bias=b))
        g.remove(name)
        changed = True
    return g, changed


def add_readout(graph: Graph, cfg: CompileConfig) -> tuple[Graph, bool]:
    """If the network output is not a neuron's, append a non-firing integrator whose
    membrane accumulates the output over time: v_T = sum_t y_t (the float model's
    prediction argmax(mean_t y_t) is argmax v_T)."""
    g = graph.copy()
    (out,) = g.outputs
    if g.node(out).kind == "LIF":
        return g, False
    g.insert_after(out, g.unique("readout"),
                   LIF(source="readout", beta=1.0, alpha=0.0, threshold=np.zeros(1),
                       reset="none", reset_value=np.zeros(1), fires=False))
    return g, True


def apply_state_quant(graph: Graph, cfg: CompileConfig) -> tuple[Graph, bool]:
    """Post-training SpQuant-SNN membrane quantization on every firing neuron."""
    if cfg.state_quant == "none":
        return graph, False
    g = graph.copy()
    for name in g.of_kind("LIF"):
        op = g.node(name)
        if not op.fires:
            continue
        if op.alpha:
            raise UnsupportedLayerError(
                f"neuron '{op.source}' has a synaptic current (alpha={op.alpha}); a quantized "
                "membrane (--state-quant) needs neurons without current state")
        level = op.threshold if cfg.state_level is None else np.array([cfg.state_level])
        g.set(name, op.replace(state_quant=cfg.state_quant, state_level=level))
    return g, True
