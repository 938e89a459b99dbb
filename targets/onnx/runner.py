"""Run an emitted ONNX model with onnxruntime (CPU) and return the reference's dict."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import ArtifactError, SnnccError
from ...ir import serialize
from ...reference.interpreter import prepare_input
from .emitter import MODEL, PROBE_MODEL

_NP_TYPES = {"tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16, "tensor(int16)": np.int16,
             "tensor(int64)": np.int64}


def session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session for ``path`` (``threads``: intra-op threads, default ORT's)."""
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - the target import already needs it
        raise SnnccError(f"the ONNX target needs onnxruntime (pip install snncc[onnx]): {e}") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ArtifactError(f"{path} cannot be loaded by onnxruntime ({str(e).strip().splitlines()[0]}); "
                            "recompile the build") from None


def simulate(out_dir: str | Path, x: np.ndarray, probe_state: bool = False,
             steps: int | None = None) -> dict[str, np.ndarray]:
    """Run ``out_dir``/model.onnx (``model_probe.onnx`` with ``probe_state``) on the integer
    input ``x`` ((N, T, ...) or static (N, ...), checked like the reference does) and return
    exactly what ``snncc.reference.interpreter.run`` returns (int64 arrays)."""
    out = Path(out_dir)
    path = out / (PROBE_MODEL if probe_state else MODEL)
    if not path.is_file():
        raise ArtifactError(f"{out} is not an emitted ONNX target: {path.name} is missing "
                            "(run `snncc compile MODEL --target onnx` first)")
    graph = serialize.load(out.parent)
    x = prepare_input(graph, x, steps)
    sess = session(path)
    (inp,) = sess.get_inputs()
    dtype = _NP_TYPES.get(inp.type)
    if dtype is None:
        raise ArtifactError(f"{path}: unexpected input type {inp.type}")
    names = [o.name for o in sess.get_outputs()]
    meta = sess.get_modelmeta().custom_metadata_map
    keys = json.loads(meta.get("snncc.outputs", "null")) or names
    if sorted(keys) != sorted(names):
        raise ArtifactError(f"{path}: outputs {names} do not match its metadata {keys}")
    res = sess.run(keys, {inp.name: x.astype(dtype)})
    return {k: np.ascontiguousarray(v).astype(np.int64) for k, v in zip(keys, res)}
