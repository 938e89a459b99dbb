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
VERSION = 3          # 2: IntLIF.u_bias (version 1 files read with u_bias = 0); 3: IntLIF sparsity masks (older: none)
READS = (1, 2, 3)
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


def from_dict(doc: dict, arrays, stage: str | None = None) -> Graph:
    """The graph of a model.json document and its arrays, every structural problem an
    ArtifactError; with ``stage`` ("float" or "int") also the IR invariants of that stage
    (bit widths, shapes, dtypes), so that a hand-edited model is refused before it runs."""
    if not isinstance(doc, dict):
        raise ArtifactError(f"not an snncc model: the document is a JSON {type(doc).__name__}, not an object")
    if doc.get("format") != FORMAT:
        raise ArtifactError(f"not an snncc model: format is {doc.get('format')!r}, expected {FORMAT!r}")
    if doc.get("version") not in READS:
        raise ArtifactError(f"snncc model version {doc.get('version')} is not supported (this snncc reads "
                            f"versions {', '.join(map(str, READS))})")
    g = Graph()
    g.meta = _meta(doc.get("meta", {}))
    for rec in _field(doc, "nodes", list, "the model"):
        _node(g, rec, arrays)
    g.outputs = [str(o) for o in _field(doc, "outputs", list, "the model")]
    if stage is not None:
        from .verify import problems

        errs = problems(g, stage)
        if errs:
            raise ArtifactError(f"the model breaks {len(errs)} invariant(s) of a valid {stage} graph:\n"
                                + "\n".join(f"  - {e}" for e in errs))
    return g


def _field(d, key: str, typ, where: str):
    if not isinstance(d, dict) or key not in d:
        raise ArtifactError(f"{where} has no {key!r} entry")
    if not isinstance(d[key], typ):
        raise ArtifactError(f"{where}: {key!r} must be a JSON {typ.__name__}, got {type(d[key]).__name__}")
    return d[key]


def _meta(meta) -> dict:
    if not isinstance(meta, dict):
        raise ArtifactError(f"the model's meta must be an object, got {type(meta).__name__}")
    steps = meta.get("steps", 1)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ArtifactError(f"the model's meta.steps must be an integer >= 1, got {steps!r}")
    return meta


#: JSON value types each Python default accepts (an int field takes no bool, a float field takes ints)
_ACCEPTS = {bool: (bool,), int: (int,), float: (int, float), str: (str,), tuple: (list,)}


def _node(g: Graph, rec, arrays) -> None:
    name = str(_field(rec, "name", str, "a node"))
    kind = _field(rec, "kind", str, f"node {name!r}")
    cls = KINDS.get(kind)
    if cls is None:
        raise ArtifactError(f"node {name!r} has unknown kind {kind!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kw = {}
    for k, v in _field(rec, "params", dict, f"node {name!r}").items():
        if k not in fields:
            raise ArtifactError(f"node {name!r} ({kind}) has unknown field {k!r}")
        default = fields[k].default
        ok = _ACCEPTS.get(type(default))
        if ok is not None and (not isinstance(v, ok) or (isinstance(v, bool) and bool not in ok)):
            raise ArtifactError(f"node {name!r} ({kind}): field {k!r} must be a {type(default).__name__}, "
                                f"got {v!r}")
        kw[k] = tuple(v) if isinstance(v, list) else v
    for k, key in _field(rec, "arrays", dict, f"node {name!r}").items():
        if k not in fields:
            raise ArtifactError(f"node {name!r} ({kind}) has unknown array {k!r}")
        if key not in arrays:
            raise ArtifactError(f"array {key!r} missing from model.npz")
        a = np.asarray(arrays[key])
        if a.dtype.kind not in "biuf":
            raise ArtifactError(f"array {key!r} in model.npz holds {a.dtype}, not numbers")
        kw[k] = a
    ins = _field(rec, "inputs", list, f"node {name!r}")
    try:
        g.add(name, cls(**kw), [str(i) for i in ins])
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"node {name!r} ({kind}) cannot be built: {e}") from None


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
        return from_dict(doc, arrays, stage="int")
    except ArtifactError as e:
        raise ArtifactError(f"{jpath} (with model.npz): {e}") from None
