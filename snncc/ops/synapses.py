"""Synapses: Conv and Dense (float), IntConv and IntDense (integer).

Integer semantics (``snncc.reference.kernels``): a = wrap_out_bits((W x) << weight_exp),
delivered ``delay`` steps later (the interpreter holds the delay line)."""
from __future__ import annotations

import numpy as np

from ..ir.ints import fits_signed, shift
from ..reference import kernels as K
from .base import Interval, OpDef, _label, exact_dtype, not_finite, per_step, register, take_channels, value_range


def _conv_out(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


class _Synapse(OpDef):
    role = "synapse"

    # ---- bounds: every partial sum of W x, then the shift and the wrap
    def accumulator(self, node, x: Interval) -> Interval:
        """Every partial sum of one output's products lies between the sum of its negative
        and the sum of its positive products (any subset, any order)."""
        w = node.weight.reshape(node.weight.shape[0], -1)
        pos = [int(s) for s in np.where(w > 0, w, 0).sum(axis=1)]
        neg = [int(s) for s in np.where(w < 0, w, 0).sum(axis=1)]
        return Interval(min([p * x.lo + n * x.hi for p, n in zip(pos, neg)] + [0]),
                        max([p * x.hi + n * x.lo for p, n in zip(pos, neg)] + [0]))

    def interval(self, node, ins):
        if node.level == "float":
            self._no("integer value bounds (is the graph quantized?)")
        acc = self.accumulator(node, ins[0])
        lo, hi = shift(acc.lo, node.weight_exp), shift(acc.hi, node.weight_exp)
        b = node.out_bits
        if b and not (-(1 << (b - 1)) <= lo and hi < 1 << (b - 1)):
            lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1  # wraps to out_bits
        return Interval(lo, hi)

    # ---- invariants
    def validate(self, name, node):
        if node.level != "float":
            return []
        if node.weight.size == 0:
            return [f"{_label(name, node)}: an empty {self.kind} (weight of shape {tuple(node.weight.shape)}: 0 "
                    f"inputs or 0 outputs)"]
        return not_finite(name, node, ("weight", "bias"))

    def check(self, name, node, shape):
        if node.level == "float":
            return []
        errs = []
        w = node.weight
        if w.dtype != np.int64:
            errs.append(f"{name}: integer weights must be int64, got {w.dtype}")
        elif not fits_signed(w, node.weight_bits):
            errs.append(f"{name}: weights in [{w.min()}, {w.max()}] exceed {node.weight_bits} bits")
        if node.delay < 0:
            errs.append(f"{name}: negative delay {node.delay}")
        return errs

    # ---- reports
    def inspect(self, node):
        return {"weight_shape": list(node.weight.shape), "weight_bits": node.weight_bits,
                "weight": value_range(node.weight), "weight_exp": node.weight_exp, "delay": node.delay,
                "scale": value_range(node.scale), "out_bits": node.out_bits}

    def describe(self, r):
        return (f"W{tuple(r['weight_shape'])} {r['weight_bits']}b in {r['weight']}  exp {r['weight_exp']}  "
                f"delay {r['delay']}  scale {r['scale']}")

    def report(self, node, shape):
        return {"params": int(node.weight.size), "bits": node.weight_bits,
                "size_bits": int(node.weight.size) * node.weight_bits,
                "r_utilize": float(len(np.unique(node.weight)) / ((1 << node.weight_bits) - 1))}

    def events(self, node, nonzero: np.ndarray) -> int:
        """Synaptic events (input nonzero x fan-out) of a batch of (B, *in_shape) 0/1 inputs."""
        raise NotImplementedError

    def fan_out(self, node, in_shape) -> np.ndarray:
        """The fan-out of each input, ``in_shape`` (int64): the events of that input alone,
        so that events(nonzero) = sum over the batch of nonzero x fan_out."""
        raise NotImplementedError

    def dense_macs(self, node, in_shape) -> int:
        """Multiply-adds of the same layer in an ANN (every input, every weight)."""
        raise NotImplementedError


def exact_float(bounds, name: str, node):
    """float32 or float64 where every partial sum of ``name``'s accumulation, every input
    value and every weight lies below 2^24 or 2^53 in magnitude (``bounds``: the one
    exactness proof), so that a BLAS product computes exactly the integer one in any order
    (every partial sum is exactly representable); None otherwise, and where the result
    may wrap to ``out_bits`` (the int64 reference then runs)."""
    acc = bounds.acc[name]
    if node.out_bits:
        m = 1 << (node.out_bits - 1)
        if not (-m <= shift(acc.lo, node.weight_exp) and shift(acc.hi, node.weight_exp) < m):
            return None
    return exact_dtype(max(acc.mag, bounds.input_of(name).mag, int(np.abs(node.weight).max(initial=0))))


class _ConvBase(_Synapse):
    def channel_flow(self, node):
        o, cg = node.weight.shape[:2]
        if node.groups == 1:
            return "produce"
        return "follow" if cg == 1 and node.groups == o else "fixed"  # depthwise | grouped

    def take_out(self, node, keep):
        depthwise = self.channel_flow(node) == "follow"
        node = take_channels(node, keep, ("weight", "bias", "scale"))
        return node.replace(groups=len(keep)) if depthwise else node

    def take_in(self, node, keep):
        return node.replace(weight=node.weight[:, keep].copy())

    def shape(self, node, in_shapes):
        _, h, w = in_shapes[0]
        o, _, kh, kw = node.weight.shape
        return (o, _conv_out(h, kh, node.stride[0], node.padding[0], node.dilation[0]),
                _conv_out(w, kw, node.stride[1], node.padding[1], node.dilation[1]))

    def check_inputs(self, name, node, in_shapes):
        if in_shapes and (len(in_shapes[0]) != 3 or in_shapes[0][0] != node.weight.shape[1] * node.groups):
            return [f"{name}: weight takes {node.weight.shape[1] * node.groups} channels, input is {in_shapes[0]}"]
        return []

    def events(self, node, nonzero):
        ones = np.ones_like(node.weight)
        return int(K.conv2d(nonzero, ones, node.stride, node.padding, node.dilation, node.groups).sum())

    def fan_out(self, node, in_shape):
        """An input (c, y, x) reaches the O / groups outputs of its group at every output
        position whose window holds it: (outputs whose rows hold y) x (whose columns hold x)."""
        c, h, w = in_shape
        o, _, kh, kw = node.weight.shape

        def reach(n, k, s, p, d):  # per input coordinate: the (output, tap) pairs that read it
            cnt = np.zeros(n, np.int64)
            for out in range(_conv_out(n, k, s, p, d)):
                for i in range(k):
                    y = out * s - p + i * d
                    if 0 <= y < n:
                        cnt[y] += 1
            return cnt

        rows = reach(h, kh, node.stride[0], node.padding[0], node.dilation[0])
        cols = reach(w, kw, node.stride[1], node.padding[1], node.dilation[1])
        return np.broadcast_to((o // node.groups) * np.outer(rows, cols), (c, h, w)).copy()

    def dense_macs(self, node, in_shape):
        o, cg, kh, kw = node.weight.shape
        _, ho, wo = self.shape(node, [in_shape])
        return o * ho * wo * cg * kh * kw


class _DenseBase(_Synapse):
    def channel_flow(self, node):
        return "produce"

    def take_out(self, node, keep):
        return take_channels(node, keep, ("weight", "bias", "scale"))

    def take_in(self, node, keep):
        return node.replace(weight=node.weight[:, keep].copy())

    def shape(self, node, in_shapes):
        return (node.weight.shape[0],)

    def check_inputs(self, name, node, in_shapes):
        if in_shapes and int(np.prod(in_shapes[0])) != node.weight.shape[1]:
            return [f"{name}: weight takes {node.weight.shape[1]} inputs, input has {int(np.prod(in_shapes[0]))}"]
        return []

    def events(self, node, nonzero):
        return int(nonzero.reshape(nonzero.shape[0], -1).sum()) * node.weight.shape[0]

    def fan_out(self, node, in_shape):
        return np.full(tuple(in_shape), node.weight.shape[0], np.int64)

    def dense_macs(self, node, in_shape):
        return int(node.weight.size)


@register
class ConvOp(_ConvBase):
    kind = "Conv"

    def float(self, name, node, xs, rt):
        F = rt.F
        w, b = rt.weight(name, node.weight), rt.const((name, "b"), node.bias)
        return per_step(xs[0], lambda x: F.conv2d(x, w, b, node.stride, node.padding, node.dilation, node.groups))


@register
class DenseOp(_DenseBase):
    kind = "Dense"

    def float(self, name, node, xs, rt):
        w, b = rt.weight(name, node.weight), rt.const((name, "b"), node.bias)
        return per_step(xs[0], lambda x: rt.F.linear(x, w, b))


@register
class IntConvOp(_ConvBase):
    kind = "IntConv"

    def runner(self, node, name, bounds, n, in_shapes):
        dt = exact_float(bounds, name, node)
        if dt is None:
            return None
        plan = K.ConvPlan(node.weight, in_shapes[0], n, dt, node.stride, node.padding, node.dilation, node.groups,
                          node.weight_exp, ring=node.delay + 1)
        return lambda xs: plan(xs[0])

    def reference(self, node, xs):
        a = K.conv2d(xs[0], node.weight, node.stride, node.padding, node.dilation, node.groups, node.weight_exp)
        return K.overflow(a, node.out_bits, "wrap") if node.out_bits else a

    def inspect(self, node):
        return {**super().inspect(node), "stride": list(node.stride), "padding": list(node.padding),
                "groups": node.groups}

    def describe(self, r):
        return (super().describe(r) + f"  stride {tuple(r['stride'])} pad {tuple(r['padding'])}"
                + (f" groups {r['groups']}" if r["groups"] > 1 else ""))


@register
class IntDenseOp(_DenseBase):
    kind = "IntDense"

    def runner(self, node, name, bounds, n, in_shapes):
        dt = exact_float(bounds, name, node)
        if dt is None:
            return None
        plan = K.DensePlan(node.weight, dt, node.weight_exp)
        return lambda xs: plan(xs[0])

    def reference(self, node, xs):
        a = K.dense(xs[0], node.weight, node.weight_exp)
        return K.overflow(a, node.out_bits, "wrap") if node.out_bits else a
