"""Pooling: AvgPool (float), SumPool (integer: AvgPool's 1/(kH kW) moves into scales) and
MaxPool (both levels; on binary spikes a logical OR)."""
from __future__ import annotations

from ..reference import kernels as K
from .base import Interval, OpDef, exact_dtype, per_step, register
from .synapses import _conv_out


class _Pool(OpDef):
    role = "pool"

    def channel_flow(self, node):
        return "follow"

    def shape(self, node, in_shapes):
        c, h, w = in_shapes[0]
        return (c, _conv_out(h, node.kernel[0], node.stride[0], node.padding[0]),
                _conv_out(w, node.kernel[1], node.stride[1], node.padding[1]))

    def inspect(self, node):
        return {"kernel": list(node.kernel), "stride": list(node.stride), "padding": list(node.padding)}

    def describe(self, r):
        return f"kernel {tuple(r['kernel'])} stride {tuple(r['stride'])}"

    def window(self, node) -> int:
        return node.kernel[0] * node.kernel[1]

    def _plan(self, node, n, in_shapes, mag, op):
        """A runner on :class:`~snncc.reference.kernels.PoolPlan` in the float dtype that
        holds magnitude ``mag`` exactly, or None (the int64 reference) beyond 2^53."""
        dt = exact_dtype(mag)
        if dt is None:
            return None
        plan = K.PoolPlan(in_shapes[0], n, node.kernel, node.stride, node.padding, dt, op)
        return lambda xs: plan(xs[0])


@register
class AvgPoolOp(_Pool):
    kind = "AvgPool"

    def float(self, name, node, xs, rt):
        return per_step(xs[0], lambda x: rt.F.avg_pool2d(x, node.kernel, node.stride, node.padding))

    def scale(self, node, in_scales, name):
        return in_scales[0] / self.window(node)


@register
class SumPoolOp(_Pool):
    kind = "SumPool"

    def reference(self, node, xs):
        return K.sum_pool(xs[0], node.kernel, node.stride, node.padding)

    def runner(self, node, name, bounds, n, in_shapes):
        return self._plan(node, n, in_shapes, max(bounds.acc[name].mag, bounds.input_of(name).mag), "sum")

    def accumulator(self, node, x: Interval) -> Interval:
        return x.scaled(self.window(node))

    def interval(self, node, ins):
        return self.accumulator(node, ins[0])


@register
class MaxPoolOp(_Pool):
    kind = "MaxPool"

    def check_inputs(self, name, node, in_shapes):
        return [f"{name}: MaxPool takes no padding"] if any(node.padding) else []

    def reference(self, node, xs):
        return K.max_pool(xs[0], node.kernel, node.stride, node.padding)

    def runner(self, node, name, bounds, n, in_shapes):
        return self._plan(node, n, in_shapes, bounds.input_of(name).mag, "max")

    def interval(self, node, ins):
        return ins[0]

    def float(self, name, node, xs, rt):
        return per_step(xs[0], lambda x: rt.F.max_pool2d(x, node.kernel, node.stride))

    def scale(self, node, in_scales, name):
        return in_scales[0]
