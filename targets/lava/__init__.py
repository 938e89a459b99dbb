"""The Lava target: a runnable lava-nc 0.10.0 network (bit-accurate Loihi 2 CPU
simulation) that reproduces the reference interpreter exactly.

    emit(graph, out_dir) -> list[Path]        # network.py, params.npz, custom procs, shim
    simulate(out_dir, x, probe_state=False)   # run it; same dict as the reference
    check(graph) -> list[str]                 # every Loihi 2 violation (see check.py)

The graph must have gone through ``snncc.passes.lava.LAVA_PASSES`` (pooling folded,
fan-in made of synapses, Lava's one-step synapse latency): then reference and Lava
agree step for step. Lava itself is imported only by ``simulate`` (through the shim in
``_shim.py``), so emitting needs jinja2 and numpy only.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

from ...errors import ArtifactError
from ...passes.pipeline import LAVA, LAVA_CONFIG_DEFAULTS, LAVA_CONFIG_FORCED
from .check import blockers, check, enforce, findings
from .emitter import emit

__all__ = ["emit", "simulate", "check", "blockers", "enforce", "load_network", "notes", "PIPELINE"]

#: Loihi 2 has no pooling, no adder and no zero-latency synapse: after the integer passes,
#: the exact Lava rewrites, then one step of latency per synapse (lava_schedule, the last
#: of LAVA_PASSES), then the reset that hides that latency
PIPELINE = LAVA
CONFIG_FORCED = LAVA_CONFIG_FORCED      # Loihi's synapses take one step
CONFIG_DEFAULTS = LAVA_CONFIG_DEFAULTS  # Loihi 2's LIF has one threshold per process
NOTES_KEY, NOTES_TITLE = "loihi2", "Loihi 2"
NOTES_HINT = "the Lava simulation is exact, these concern the chip"


def notes(graph) -> list[tuple[str, str]]:
    """Non-blocking Loihi 2 findings: hardware limits and simulation-only neurons."""
    return [(k, m) for k, m in findings(graph) if k != "blocking"]


def load_network(out_dir):
    """Import ``out_dir/network.py`` as a module (unique name per directory)."""
    path = Path(out_dir).resolve() / "network.py"
    if not path.is_file():
        raise ArtifactError(f"{path.parent} holds no network.py: run `snncc compile ... --target lava` first")
    from . import _shim  # noqa: F401  (lava-nc needs the shim on Python 3.11)

    name = "snncc_lava_network_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def simulate(out_dir, x: np.ndarray, probe_state: bool = False) -> dict[str, np.ndarray]:
    """Run the emitted network under ``Loihi2SimCfg(select_tag="fixed_pt")``: the whole
    batch in one Lava network where every periodic reset divides T, else one per sample
    (each sample starts from the reset state; ``runner.py``). Returns what
    ``snncc.reference.interpreter.run`` returns: every neuron layer's spikes (N, T, ...),
    with ``probe_state`` also ``<layer>/v`` and ``<layer>/u`` (every layer: Lava's schedule), and
    ``output``."""
    from snncc.progress import shown

    return load_network(out_dir).run(x, probe_state=probe_state, progress=shown())
