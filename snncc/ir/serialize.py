"""Deterministic on-disk form of a graph: ``model.json`` (structure, scalars) and
``model.npz`` (arrays). Same graph -> byte-identical files: sorted keys, no timestamps,
zip entries with a fixed date."""
from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ArtifactError
from .graph import Graph
from .nodes import KINDS

FORMAT = "snncc-ir"
VERSION = 2          # 2: IntLIF.u_bias (version 1 files read with u_bias = 0)
READS = (1, 2)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez with fixed entry dates and sorted names (np.savez stamps the time)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def to_dict(graph: Graph) -> tuple[dict, dict[str, np.ndarray]]:
    nodes, arrays = [], {}
    for name, op in graph.items():
        refs = {}
        for field, arr in op.arrays().items():
            key = f"{name}/{field}"
            arrays[key] = arr
            refs[field] = key
        nodes.append({"name": name, "kind": op.kind, "inputs": graph.inputs(name),
                      "params": {k: _jsonable(v) for k, v in op.params().items()},
                      "arrays": refs})
    doc = {"format": FORMAT, "version": VERSION, "outputs": graph.outputs,
           "meta": graph.meta, "nodes": nodes}
    return doc, arrays


def dump_json(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, indent=1) + "\n"


def save(graph: Graph, out_dir: str | Path) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc, arrays = to_dict(graph)
    (out / "model.json").write_text(dump_json(doc))
    write_npz(out / "model.npz", arrays)


def from_dict(doc: dict, arrays) -> Graph:
    if doc.get("format") != FORMAT:
        raise ArtifactError(f"not an snncc model: format is {doc.get('format')!r}, expected {FORMAT!r}")
    if doc.get("version") not in READS:
        raise ArtifactError(f"snncc model version {doc.get('version')} is not supported (this snncc reads "
                            f"versions {', '.join(map(str, READS))})")
    g = Graph()
    g.meta = doc.get("meta", {})
    for rec in doc["nodes"]:
        cls = KINDS.get(rec["kind"])
        if cls is None:
            raise ArtifactError(f"node {rec['name']!r} has unknown kind {rec['kind']!r}")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        kw = {}
        for k, v in rec["params"].items():
            if k not in types:
                raise ArtifactError(f"node {rec['name']!r} ({rec['kind']}) has unknown field {k!r}")
            kw[k] = tuple(v) if types[k] == "tuple" else v
        for k, key in rec["arrays"].items():
            if key not in arrays:
                raise ArtifactError(f"array {key!r} missing from model.npz")
            kw[k] = np.asarray(arrays[key])
        g.add(rec["name"], cls(**kw), rec["inputs"])
    g.outputs = list(doc["outputs"])
    return g


def load(build_dir: str | Path) -> Graph:
    d = Path(build_dir)
    jpath, npath = d / "model.json", d / "model.npz"
    if not jpath.is_file() or not npath.is_file():
        raise ArtifactError(f"{d} is not an snncc build directory: model.json and model.npz are "
                            f"required (run `snncc compile MODEL --out {d}` first)")
    try:
        doc = json.loads(jpath.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{jpath} is not valid JSON: {e}") from None
    try:
        with np.load(npath, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001
        raise ArtifactError(f"{npath} cannot be read as a numpy archive: {e}") from None
    try:
        return from_dict(doc, arrays)
    except (KeyError, TypeError) as e:
        raise ArtifactError(f"{jpath} is malformed: {e!r}") from None
