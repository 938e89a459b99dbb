"""Pass pipelines: explicit ordered lists. A pass is ``fn(graph, cfg) -> (graph, changed)``;
its name is its function name; the IR is verified after every pass at the stage the
pass produces. The building blocks below are shared; a target that needs another list
declares it (``PIPELINE`` in its package, e.g. ``snncc.targets.lava``), written out in
full rather than derived from DEFAULT, so that changing one pipeline never silently
changes another."""
from __future__ import annotations

from typing import Callable

from ..config import CompileConfig
from ..ir.graph import Graph
from ..ir.verify import check_values, verify
from .fold import add_readout, apply_state_quant, fold_batchnorm
from .integerize import fold_neurons, lower_membrane, set_schedule
from .lava import LAVA_PASSES, latency_reset
from .masks import apply_masks
from .quantize import quantize_synapses
from .tnp import apply_tnp

Pass = Callable[[Graph, CompileConfig], tuple[Graph, bool]]

# (pass, stage of its output)
#: float graph -> float graph ready for quantization (the prefix BWR runs after)
FLOAT_PASSES: list[tuple[Pass, str]] = [
    (fold_batchnorm, "float"),
    (add_readout, "float"),
    (apply_state_quant, "float"),
    (apply_tnp, "float"),  # --tnp / presim > 0 only: SNNQ's test-time neuron pruning
]
#: float graph -> integer graph in its declared widths
INTEGER_PASSES: list[tuple[Pass, str]] = [
    (quantize_synapses, "quantized"),
    (fold_neurons, "int"),
    (lower_membrane, "int"),
    (apply_masks, "int"),  # SpQuant-SNN's sparsity masks (neg_mask, spatial_sparsity, channel_threshold) only
]
#: every target that takes any integer graph (c, onnx, nir)
DEFAULT: list[tuple[Pass, str]] = FLOAT_PASSES + INTEGER_PASSES + [
    (set_schedule, "int"),
    (latency_reset, "int"),  # Lava schedule only: clear each neuron when its input starts
]


#: Loihi 2 (the lava and netx targets): the Lava schedule, pools into synapses, Loihi's LIF form
LAVA: list[tuple[Pass, str]] = FLOAT_PASSES + INTEGER_PASSES + LAVA_PASSES + [(latency_reset, "int")]
#: what a Loihi 2 target needs from the configuration, and what it suggests
LAVA_CONFIG_FORCED = {"schedule": "lava"}        # Loihi's synapses take one step
LAVA_CONFIG_DEFAULTS = {"granularity": "tensor"}  # Loihi 2's LIF has one threshold per process


def float_prefix(passes: list[tuple[Pass, str]]) -> list[tuple[Pass, str]]:
    """The leading passes of a pipeline that produce float graphs."""
    n = 0
    while n < len(passes) and passes[n][1] == "float":
        n += 1
    return passes[:n]


def run_pipeline(graph: Graph, cfg: CompileConfig, passes: list[tuple[Pass, str]],
                 log: list[str] | None = None, history: list[str] | None = None,
                 notes: list[str] | None = None) -> Graph:
    """Run ``passes`` in order, verifying the IR after each; ``log`` collects one line per
    pass, ``history`` the names of the passes run so far (for error messages), ``notes``
    what passes that make a choice (not an exact rewrite) say they changed."""
    history = [] if history is None else history
    if not history:
        verify(graph, "float", after="frontend")
        check_values(graph)
    from time import perf_counter

    from ..progress import log as logger

    for fn, stage in passes:
        t0 = perf_counter()
        graph, changed = fn(graph, cfg)  # changed: a bool, or what changed (a note for the user)
        verify(graph, stage, after=fn.__name__, history=tuple(history))
        history.append(fn.__name__)
        line = f"{fn.__name__}: {changed if isinstance(changed, str) else 'changed' if changed else 'no change'}"
        logger.debug("pass %s (%.0f ms)", line, 1e3 * (perf_counter() - t0))
        if log is not None:
            log.append(line)
        if notes is not None and isinstance(changed, str):
            notes.append(changed)
    return graph
