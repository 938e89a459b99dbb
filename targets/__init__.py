"""Emitters. Each target is a subpackage ``snncc.targets.<name>`` exposing

    emit(graph: Graph, out_dir: Path) -> list[Path]          # write the artifacts
    simulate(out_dir: Path, x: np.ndarray, probe_state: bool) -> dict[str, np.ndarray]

where ``out_dir`` is ``<build>/<name>/`` and ``simulate`` returns exactly what
``snncc.reference.interpreter.run`` returns (same keys, shapes, int64 values), and
optionally declaring (module attributes; :func:`spec` fills in the defaults):

    PIPELINE          the pass list it needs (None: any integer graph; the default one)
    CONFIG_DEFAULTS   config values it suggests where the user set none
    CONFIG_FORCED     config values its semantics require
    BIT_EXACT         False for float interchange formats (verify skips them)
    NEEDS_FLOAT       emit also takes ``float_graph=`` (the traced float model)
    notes(graph)      non-blocking findings [(kind, message)], printed at compile time
    runs(out_dir)     every runnable artifact for `snncc verify` (default: simulate)
    not_run(out_dir)  {artifact: why} that verify cannot run here (it prints them)
    report(out_dir, memory, x)  (dict, text lines) added to `snncc report`
    ARCHS, simulate_arch(out_dir, x, probe_state, arch), arch_note(out_dir, arch)
                      other machines it runs on (emulated), for `simulate --arch`
    NOTES_KEY/TITLE   where `report --json` and the terminal show those notes

Targets are imported lazily so that a missing optional backend gives a clear message.
Adding a target: a subpackage and a row in TARGETS (DEVELOPERS.md)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from ..errors import SnnccError

TARGETS = {
    "c": ("snncc.targets.c", "the system C compiler (cc)"),
    "lava": ("snncc.targets.lava", "lava-nc 0.10.0 (pip install --ignore-requires-python lava-nc==0.10.0)"),
    "netx": ("snncc.targets.netx", "h5py"),
    "onnx": ("snncc.targets.onnx", "onnx and onnxruntime (pip install snncc[onnx])"),
    "nir": ("snncc.targets.nir", "nir (pip install snncc[nir])"),
}

DEFAULT_TARGETS = ["c"]  # what `snncc compile` emits when --target is not given


def get(name: str):
    """The target's module (imported on first use)."""
    if name not in TARGETS:
        raise SnnccError(f"unknown target {name!r}; available: {', '.join(sorted(TARGETS))}")
    module, needs = TARGETS[name]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise SnnccError(f"target {name!r} needs {needs}: {e}") from None


@dataclass(frozen=True, eq=False)
class Target:
    """What the compile flow needs to know about one target (see the module docstring)."""

    name: str
    module: object
    pipeline: list | None = None
    config_defaults: dict = field(default_factory=dict)
    config_forced: dict = field(default_factory=dict)
    bit_exact: bool = True
    needs_float: bool = False
    notes_key: str = ""
    notes_title: str = ""
    notes_hint: str = ""
    archs: tuple = ()  # machines besides the host it runs on (emulated): module ARCHS


    def emit(self, graph, out_dir, float_graph=None):
        if self.needs_float:
            return self.module.emit(graph, out_dir, float_graph=float_graph)
        return self.module.emit(graph, out_dir)

    def simulate(self, out_dir, x, probe_state: bool = False, arch: str = "host"):
        if arch != "host":
            return self.module.simulate_arch(out_dir, x, probe_state=probe_state, arch=arch)
        return self.module.simulate(out_dir, x, probe_state=probe_state)

    def runs(self, out_dir) -> list[tuple[str, Callable, bool]]:
        """What ``snncc verify`` runs of this target: (artifact, fn(x) -> results, whether
        the results include v and u). Default: the target's simulate with state probes;
        a target with several runnable artifacts lists each (``runs(out_dir)``)."""
        fn: Callable | None = getattr(self.module, "runs", None)
        if fn is not None:
            return fn(out_dir)
        return [(self.name, lambda x: self.simulate(out_dir, x, probe_state=True), True)]

    def notes(self, graph) -> list[tuple[str, str]]:
        fn: Callable | None = getattr(self.module, "notes", None)
        return fn(graph) if fn is not None else []


def spec(name: str) -> Target:
    m = get(name)
    return Target(name=name, module=m, pipeline=getattr(m, "PIPELINE", None),
                  config_defaults=dict(getattr(m, "CONFIG_DEFAULTS", {})),
                  config_forced=dict(getattr(m, "CONFIG_FORCED", {})), bit_exact=getattr(m, "BIT_EXACT", True),
                  needs_float=getattr(m, "NEEDS_FLOAT", False), notes_key=getattr(m, "NOTES_KEY", name),
                  notes_title=getattr(m, "NOTES_TITLE", name), notes_hint=getattr(m, "NOTES_HINT", ""),
                  archs=tuple(getattr(m, "ARCHS", ())))
