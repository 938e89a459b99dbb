"""Test-time neuron pruning (TNP): SNNQ's name for ANN2SNN_SRP's residual-membrane rule.

Each sample first runs ``presim`` presimulation steps; then every firing neuron whose
membrane is at most ``tnp_eps`` x its threshold is silenced for the rest of the sample,
and every neuron (the readout too) starts again from its initial state before the T
counted steps. The rule and its sources are in docs/conversion.md; the neuron's
equations in docs/semantics.md (``LIF``/``IntLIF`` ``presim``, ``prune_level``)."""
from __future__ import annotations

import numpy as np

from ..config import CompileConfig
from ..errors import SnnccError
from ..ir.graph import Graph
from ..ops import role

#: presimulation steps of --tnp when the configuration sets none (ANN2SNN_SRP's and SNNQ's default)
DEFAULT_PRESIM = 4


def apply_tnp(graph: Graph, cfg: CompileConfig) -> tuple[Graph, bool]:
    """Give every neuron the presimulation (``cfg.presim`` steps) and, if it fires, its
    pruning level ``cfg.tnp_eps`` x threshold (per channel, in membrane units)."""
    if not cfg.presim:
        return graph, False
    if cfg.schedule != "zero":
        raise SnnccError(f"test-time neuron pruning (presim = {cfg.presim}) needs the zero-latency schedule: with "
                         f"schedule {cfg.schedule!r} each layer sees the sample a step later, so one presimulation "
                         "window cannot serve every layer (the lava target forces that schedule; compile for c or "
                         "onnx, or without --tnp)")
    g = graph.copy()
    for name, op in g.items():
        if role(op) != "neuron":
            continue
        level = cfg.tnp_eps * np.asarray(op.threshold, np.float64).reshape(-1) if op.fires else np.zeros(1)
        g.set(name, op.replace(presim=int(cfg.presim), prune_level=level))
    g.meta["presim"] = int(cfg.presim)
    return g, True
