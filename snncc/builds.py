"""Build directories: read what ``snncc compile`` wrote, and run a build on a target.

Layout (every file deterministic)::

    build/model.json, model.npz          the integer model (the specification)
    build/float_model.json, .npz         the float graph after tracing (for eval, NIR)
    build/compile.json                   config, targets, pass log, source digest
    build/<target>/                      one folder per emitted target
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import SnnccError
from .ir import serialize
from .ir.graph import Graph

MANIFEST = "compile.json"


def load_build(path: str | Path) -> tuple[Graph, dict]:
    """The integer graph and compile manifest of a build directory."""
    path = Path(path)
    g = serialize.load(path)
    mpath = path / MANIFEST
    manifest = json.loads(mpath.read_text()) if mpath.is_file() else {"targets": []}
    return g, manifest


def load_float_graph(path: str | Path) -> Graph:
    path = Path(path)
    jp, npz = path / "float_model.json", path / "float_model.npz"
    if not jp.is_file():
        raise SnnccError(f"{path} has no float_model.json (compiled by an older snncc?)")
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return serialize.from_dict(json.loads(jp.read_text()), arrays)


def load_input(path: str | Path) -> np.ndarray:
    """An integer input batch from .npy, or the array ``x`` of an .npz."""
    p = Path(path)
    if not p.is_file():
        raise SnnccError(f"input file {p} does not exist")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if "x" not in z.files:
                    raise SnnccError(f"{p} has no array named 'x' (found: {', '.join(z.files)})")
                return z["x"]
        return np.load(p, allow_pickle=False)
    except SnnccError:
        raise
    except Exception as e:  # noqa: BLE001
        raise SnnccError(f"{p} is not a readable numpy file: {e}") from None


def simulate(build: str | Path, target: str, x: np.ndarray, probe_state: bool = False) -> dict:
    """Run ``x`` on one target of a build ("reference": the interpreter itself); returns
    what the reference interpreter returns."""
    from .reference import interpreter as R
    from .targets import spec

    g, manifest = load_build(build)
    if target == "reference":
        return R.run(g, x, probe_state=probe_state)
    t = spec(target)
    tdir = Path(build) / target
    if not tdir.is_dir():
        raise SnnccError(f"{build} has no {target} target: compile with --target {target}")
    R.prepare_input(g, x)  # one input contract for every target
    return t.simulate(tdir, x, probe_state=probe_state)
