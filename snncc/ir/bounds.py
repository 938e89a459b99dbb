"""Worst-case magnitudes of integer tensors, from the weights and the input range.

Used wherever a width must be proven: membrane lowering (can u overflow?), the C
runtime's buffer types, ONNX's exact float paths, Loihi's int32 arithmetic."""
from __future__ import annotations

import numpy as np

from .graph import Graph


def value_bounds(graph: Graph) -> tuple[dict[str, int], dict[str, int]]:
    """(bound, acc): worst-case |value| of every node's output in one step (IntLIF outputs
    spikes: 1), and for IntConv/IntDense/SumPool the worst-case |partial sum| of the
    accumulation before any shift, as exact Python integers."""
    b: dict[str, int] = {}
    acc: dict[str, int] = {}
    for name, op in graph.items():
        ins = [b[s] for s in graph.inputs(name)]
        k = op.kind
        if k == "IntInput":
            b[name] = 1 if op.encoding == "spikes" else (1 << op.bits) - 1
        elif k == "IntLIF":
            b[name] = 1
        elif k in ("IntConv", "IntDense"):
            w = np.abs(op.weight.reshape(op.weight.shape[0], -1))
            a = int(w.sum(axis=1).max()) * ins[0] if w.size else 0
            acc[name] = a
            e = op.weight_exp
            out = a << e if e >= 0 else (a >> -e) + 1  # floor of a negative sum: one more
            b[name] = min(out, 1 << (op.out_bits - 1)) if op.out_bits else out
        elif k == "SumPool":
            acc[name] = b[name] = ins[0] * op.kernel[0] * op.kernel[1]
        elif k == "Add":
            b[name] = sum(ins)
        else:  # MaxPool, Flatten
            b[name] = ins[0]
    return b, acc
