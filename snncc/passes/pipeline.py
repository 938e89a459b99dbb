"""Pass pipelines: explicit ordered lists, one per target family. A pass is
``fn(graph, cfg) -> (graph, changed)``; its name is its function name; the IR is
verified after every pass at the stage the pass produces."""
from __future__ import annotations

from typing import Callable

from ..config import CompileConfig
from ..ir.graph import Graph
from ..ir.verify import verify
from .fold import add_readout, apply_state_quant, fold_batchnorm
from .integerize import fold_neurons, lower_membrane, set_schedule
from .lava import LAVA_PASSES, latency_reset
from .quantize import quantize_synapses

Pass = Callable[[Graph, CompileConfig], tuple[Graph, bool]]

# (pass, stage of its output)
DEFAULT: list[tuple[Pass, str]] = [
    (fold_batchnorm, "float"),
    (add_readout, "float"),
    (apply_state_quant, "float"),
    (quantize_synapses, "quantized"),
    (fold_neurons, "int"),
    (lower_membrane, "int"),
    (set_schedule, "int"),
    (latency_reset, "int"),  # Lava schedule only: clear each neuron when its input starts
]

# Lava / Loihi 2: lower what Loihi has no process for (exact rewrites), then one step of
# latency per synapse (lava_schedule, the last of LAVA_PASSES, replaces set_schedule).
LAVA: list[tuple[Pass, str]] = DEFAULT[:-2] + LAVA_PASSES + [(latency_reset, "int")]

PIPELINES: dict[str, list[tuple[Pass, str]]] = {"default": DEFAULT, "lava": LAVA}


def run_pipeline(graph: Graph, cfg: CompileConfig, passes: list[tuple[Pass, str]],
                 log: list[str] | None = None) -> Graph:
    history: list[str] = []
    verify(graph, "float", after="frontend")
    for fn, stage in passes:
        graph, changed = fn(graph, cfg)
        verify(graph, stage, after=fn.__name__, history=tuple(history))
        history.append(fn.__name__)
        if log is not None:
            log.append(f"{fn.__name__}: {'changed' if changed else 'no change'}")
    return graph
