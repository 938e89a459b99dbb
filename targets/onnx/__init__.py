"""The ONNX target: the integer model in standard ONNX operators (opset 17), runnable by
onnxruntime and viewable in Netron, bit-exact with the reference interpreter.

    emit(graph, out_dir) -> [model.onnx, model_probe.onnx]
    simulate(out_dir, x, probe_state=False)  # onnxruntime CPU, same dict as the reference

See emitter.py and docs/onnx.md for the lowering (Scan over time, int64 state, float32
Conv only where exactness is proven, int64 im2col otherwise).
"""
import onnx  # noqa: F401  (a clear import error when the optional backend is missing)
import onnxruntime  # noqa: F401

from .emitter import MODEL, PROBE_MODEL, build_model, emit, value_bounds
from .runner import simulate

BIT_EXACT = True


def runs(out_dir):
    """Both models are verified: the deployed one (spikes and output) and the probe one."""
    return [(MODEL, lambda x: simulate(out_dir, x, probe_state=False), False),
            (PROBE_MODEL, lambda x: simulate(out_dir, x, probe_state=True), True)]

__all__ = ["BIT_EXACT", "emit", "simulate", "build_model", "value_bounds", "MODEL", "PROBE_MODEL"]
