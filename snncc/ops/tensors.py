"""Flatten, Add (exact at both levels) and BatchNorm (float level, folded away)."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedLayerError
from .base import Interval, OpDef, _label, exact_dtype, not_finite, per_step, register, take_channels


@register
class FlattenOp(OpDef):
    """(C, H, W) -> (C*H*W,), C-major like torch.flatten(x, 1)."""

    kind = "Flatten"
    role = "reshape"

    def channel_flow(self, node):
        return "flatten"

    def shape(self, node, in_shapes):
        return (int(np.prod(in_shapes[0])),)

    def reference(self, node, xs):
        return xs[0].reshape(xs[0].shape[0], -1)

    def runner(self, node, name, bounds, n, in_shapes):
        return lambda xs: xs[0].reshape(xs[0].shape[0], -1)  # any dtype: the reshape is exact

    def interval(self, node, ins):
        return ins[0]

    def float(self, name, node, xs, rt):
        return per_step(xs[0], lambda x: x.flatten(1))

    def scale(self, node, in_scales, name):
        return in_scales[0]


@register
class AddOp(OpDef):
    """y = the sum of two or more inputs of one shape (residual connections, fan-in)."""

    kind = "Add"
    role = "add"
    arity = None

    def channel_flow(self, node):
        return "follow"

    def check_inputs(self, name, node, in_shapes):
        if len(in_shapes) < 2:
            return [f"{name}: Add needs at least 2 inputs"]
        if len(set(in_shapes)) != 1:
            return [f"{name}: Add inputs differ in shape {list(in_shapes)}"]
        return []

    def reference(self, node, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out

    def runner(self, node, name, bounds, n, in_shapes):
        """The sum in a kept buffer, in the float dtype the bounds prove exact: every
        input and every partial sum lies in the Add's interval, the sum of its inputs'
        intervals, each of which holds 0."""
        dt = exact_dtype(bounds.iv[name].mag)
        if dt is None:
            return None
        out = np.empty((n,) + tuple(in_shapes[0]), dt)

        def run(xs):
            out[...] = xs[0]
            for x in xs[1:]:
                np.add(out, x, out=out, casting="unsafe")
            return out
        return run

    def interval(self, node, ins):
        return Interval(sum(i.lo for i in ins), sum(i.hi for i in ins))

    def float(self, name, node, xs, rt):
        if all(st for _, st in xs):
            return sum(x for x, _ in xs[1:]) + xs[0][0], True
        ts = [x.unsqueeze(1).expand(-1, rt.steps, *x.shape[1:]) if st else x for x, st in xs]
        return sum(ts[1:], ts[0]), False

    def scale(self, node, in_scales, name):
        if len(set(in_scales)) != 1:
            raise UnsupportedLayerError(f"Add '{name}' sums tensors of different scales {sorted(set(in_scales))}")
        return in_scales[0]


@register
class BatchNormOp(OpDef):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta per channel; folded into the synapse
    before it by ``snncc.passes.fold.fold_batchnorm``."""

    kind = "BatchNorm"
    role = "norm"

    def channel_flow(self, node):
        return "follow"

    def take_out(self, node, keep):
        return take_channels(node, keep, ("mean", "var", "gamma", "beta"))

    def validate(self, name, node):
        errs = not_finite(name, node, ("mean", "var", "gamma", "beta"))
        denom = np.asarray(node.var, np.float64) + node.eps
        bad = int((denom <= 0).sum())
        if not errs and bad:
            errs.append(f"{_label(name, node)}: running_var + eps <= 0 in {bad} channel{'s' * (bad > 1)} "
                        f"(eps = {node.eps}): the normalization divides by zero; give eps > 0 or retrain")
        return errs

    def float(self, name, node, xs, rt):
        def fn(x):
            c = (1, -1) + (1,) * (x.dim() - 2)
            s = rt.const((name, "s"), node.gamma / np.sqrt(node.var + node.eps)).reshape(c)
            return (x - rt.const((name, "mean"), node.mean).reshape(c)) * s + rt.const((name, "beta"),
                                                                                        node.beta).reshape(c)
        return per_step(xs[0], fn)
