"""Emitters. Each target is a subpackage ``snncc.targets.<name>`` exposing

    emit(graph: Graph, out_dir: Path) -> list[Path]          # write the artifacts
    simulate(out_dir: Path, x: np.ndarray, probe_state: bool) -> dict[str, np.ndarray]

where ``out_dir`` is ``<build>/<name>/`` and ``simulate`` returns exactly what
``snncc.reference.interpreter.run`` returns (same keys, shapes, int64 values).
Targets are imported lazily so that a missing optional backend gives a clear message."""
from __future__ import annotations

import importlib

from ..errors import SnnccError

TARGETS = {
    "c": ("snncc.targets.c", "the system C compiler (cc)"),
    "lava": ("snncc.targets.lava", "lava-nc 0.10.0 (pip install --ignore-requires-python lava-nc==0.10.0)"),
    "netx": ("snncc.targets.netx", "h5py"),
    "onnx": ("snncc.targets.onnx", "onnx and onnxruntime (pip install snncc[onnx])"),
    "nir": ("snncc.targets.nir", "nir (pip install snncc[nir])"),
}


def get(name: str):
    if name not in TARGETS:
        raise SnnccError(f"unknown target {name!r}; available: {', '.join(sorted(TARGETS))}")
    module, needs = TARGETS[name]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise SnnccError(f"target {name!r} needs {needs}: {e}") from None
