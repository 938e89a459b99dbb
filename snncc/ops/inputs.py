"""Input (float level) and IntInput (integer level): the network's input, one sample per step."""
from __future__ import annotations

import numpy as np

from .base import Interval, OpDef, register


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

    def interval(self, node, ins):
        return Interval(0, 1) if node.encoding == "spikes" else Interval(0, (1 << node.bits) - 1)

    def inspect(self, node):
        return {"encoding": node.encoding, "bits": node.bits, "scale": f"{node.scale:.6g}"}

    def describe(self, row):
        return f"{row['encoding']} {row['bits']}-bit, real value = {row['scale']} x int"


@register
class IntInputOp(InputOp):
    kind = "IntInput"
