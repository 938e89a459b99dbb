"""Input (float level) and IntInput (integer level): the network's input, one sample per step.

Encodings (docs/semantics.md, "Input"): ``spikes`` (0/1 events), ``direct`` (unsigned
``bits``-bit graded values: pixels, binned event counts) and ``bias`` (signed
``bits``-bit values that drive the bias of the neurons they feed: netx's bias-driven
input layer, lava-dl's ``net.in_layer.neuron.bias_mant``)."""
from __future__ import annotations

import numpy as np

from .base import Interval, OpDef, register

#: the input encodings of the IR
ENCODINGS = ("direct", "spikes", "bias")


def input_range(node) -> tuple[int, int]:
    """(lowest, highest) integer an input of this encoding takes."""
    if node.encoding == "spikes":
        return 0, 1
    if node.encoding == "bias":
        return -(1 << (node.bits - 1)), (1 << (node.bits - 1)) - 1
    return 0, (1 << node.bits) - 1


@register
class InputOp(OpDef):
    kind = "Input"
    role = "input"
    arity = 0

    def shape(self, node, in_shapes):
        return tuple(node.shape)

    def scale(self, node, in_scales, name):
        return float(node.scale)

    def validate(self, name, node):
        s = float(node.scale)
        return [] if np.isfinite(s) and s > 0 else [f"input: scale {s} must be a finite number > 0"]

    def check(self, name, node, shape):
        if node.encoding not in ENCODINGS:
            return [f"{name}: encoding {node.encoding!r} is not one of {', '.join(ENCODINGS)}"]
        if node.encoding == "bias" and not 2 <= node.bits <= 24:
            return [f"{name}: a bias input takes 2..24 bits (signed), got {node.bits}"]
        return []

    def interval(self, node, ins):
        return Interval(*input_range(node))

    def inspect(self, node):
        return {"encoding": node.encoding, "bits": node.bits, "scale": f"{node.scale:.6g}"}

    def describe(self, row):
        if row["encoding"] == "bias":
            return (f"bias {row['bits']}-bit signed, drives the input neurons' bias (x << act_shift), real value "
                    f"= {row['scale']} x int")
        return f"{row['encoding']} {row['bits']}-bit, real value = {row['scale']} x int"


@register
class IntInputOp(InputOp):
    kind = "IntInput"
