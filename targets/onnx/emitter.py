"""Integer graph -> ``model.onnx`` (+ ``model_probe.onnx``) in standard ONNX operators.

Design (argued at length in docs/onnx.md):

* **Time** is one ``Scan`` over axis 1 of the input ``(N, T, ...)``. The body is one
  time step of the reference interpreter, written node for node in topological order;
  every membrane ``v``/``u`` and every slot of a synaptic delay line is a Scan state
  variable (loop-carried int64 tensor) whose initial value is built from the batch size.
  Scan keeps the model size independent of T, accepts any T and N at run time, and
  reads like the math (state in, state out). Unrolling would copy the body T times.
* **Dtypes.** Every neuron register, constant and accumulator is int64; spikes are bool.
  Register widths show up as explicit ops: ``Clip`` (saturate), ``Mod`` (two's-complement
  wrap) or ``Where`` (Lava's single fold), each named ``<layer>/v.saturate24`` etc.
* **Synapses.** ``IntDense`` is an int64 ``MatMul`` (always exact, wraps like numpy's
  int64). onnxruntime has no integer ``Conv`` beyond 8-bit ``ConvInteger`` (int32
  accumulators, 8-bit weights only) and its ``Conv`` kernel exists for float32 only, so
  ``IntConv`` is a float32 ``Conv`` *when exactness is proven*: a static interval
  analysis bounds every input |x| and every accumulator by sum_k |w_k| * max|x|; when
  that bound is below 2^24 every product and every partial sum, in any summation order
  (also with FMA), is an integer a float32 represents exactly, so the result is the
  exact integer. Otherwise the conv is lowered to an exact int64 im2col: ``Pad`` +
  ``Gather`` (constant window indices) + int64 ``MatMul``. ``SumPool`` likewise (float32
  depthwise ``Conv`` with ones, or ``Gather`` + ``MatMul`` with ones), ``MaxPool`` as a float32 /
  float64 ``MaxPool`` below 2^24 / 2^53 or ``Gather`` + ``ReduceMax``. ``windows="int64"``
  forces the integer lowering everywhere (a model without any float op).
* **Arithmetic shifts** are ``Mul`` by 2^k (left) and, for the floor right shift,
  ``(x - Mod(x, 2^k)) / 2^k``: ONNX integer ``Mod`` (fmod=0) takes the sign of the
  divisor, so the difference is an exact multiple and the ``Div`` has nothing to round.
  The decay ``sign(p) * (|p| >> 12)``, p = x * (4096 - d), is written literally:
  ``Where(p < 0, -q, q)`` with ``q = Div(Abs(p), 4096)`` (a non-negative dividend, so the
  integer division is unambiguous).
* **Avoided operators.** onnxruntime 1.31's int64 ``Sign`` is wrong beyond 2^31 and its
  int64 ``ReduceSum`` rounds beyond 2^53 (found while building this target);
  ``Where`` and a ``MatMul`` with ones replace them.

Node names are ``<IR node name>/<step>`` and every node's doc_string names the IR node,
its kind and its ``source`` (the PyTorch module), so a layer is found in Netron by
name. Output names are exactly the reference interpreter's keys. Same graph -> same
bytes (no timestamps, deterministic names and constant order).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..._version import __version__
from ...errors import SnnccError
from ...ir.bounds import value_bounds  # noqa: F401 - re-exported by the package
from ...ir.bounds import Bounds
from ...ir.graph import Graph
from ...ir.nodes import DECAY_ONE, IntLIF
from ...ir.verify import verify
from ...ops import records_u

OPSET = 17          # every operator used here exists unchanged since opset 13..17
IR_VERSION = 8      # the IR version of opset 17; onnxruntime 1.31 reads up to 13
MODEL = "model.onnx"
PROBE_MODEL = "model_probe.onnx"
WINDOWS = ("auto", "int64")

I64, F32, F64, BOOL = TensorProto.INT64, TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.BOOL
_NP = {I64: np.int64, F32: np.float32, F64: np.float64, BOOL: np.bool_}
F32_EXACT, F64_EXACT = 1 << 24, 1 << 53
MAX_SHIFT = 62


def _chan(a: np.ndarray, ndim: int) -> np.ndarray:
    """(C,) or (1,) -> (1, C, 1, ...) for an (N, C, ...) tensor of ``ndim`` dims."""
    return np.asarray(a, np.int64).reshape((1, -1) + (1,) * (ndim - 2))


def _doc(name: str, op) -> str:
    src = f" (source: {op.source})" if op.source else ""
    p = op.params()
    keep = {k: v for k, v in p.items() if k not in ("source",) and not (k == "presim" and not v)}
    text = ", ".join(f"{k}={v}" for k, v in sorted(keep.items()))
    if op.kind == "IntLIF":
        for f in ("threshold", "bias", "reset_value", "v_init", "state_level") + (("u_bias",) if op.u_bias.any() else ()) \
                + (("prune_level",) if op.presim else ()):
            a = getattr(op, f)
            text += f", {f}={a.tolist() if a.size <= 8 else f'array{a.shape}'}"
    return f"snncc {op.kind} '{name}'{src}: {text}"


class _Names:
    """One namespace for every value and node name of the model (outer graph and Scan
    body share the value namespace: a subgraph may not shadow an outer name)."""

    def __init__(self, reserved=()) -> None:
        self.used = set(reserved)

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name


class _Builder:
    """Accumulates the nodes and initializers of one (sub)graph."""

    def __init__(self, values: _Names, nodes: _Names) -> None:
        self.values, self.node_names = values, nodes
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._consts: dict[tuple, str] = {}
        self.layer, self.doc = "snncc", ""

    def at(self, layer: str, doc: str) -> None:
        self.layer, self.doc = layer, doc

    def const(self, value, dtype: int, hint: str = "c") -> str:
        arr = np.ascontiguousarray(np.asarray(value, dtype=_NP[dtype]))
        key = (dtype, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self.values.fresh(f"{self.layer}::{hint}" if arr.size > 1 else
                                     f"const::{hint}")
            self.inits.append(numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def i64(self, value, hint: str = "c") -> str:
        return self.const(value, I64, hint)

    def op(self, op_type: str, inputs: list[str], role: str, n_out: int = 1, **attrs):
        outs = [self.values.fresh(f"{self.layer}::{role}" + (f".{i}" if n_out > 1 else ""))
                for i in range(n_out)]
        node = helper.make_node(op_type, inputs, outs, name=self.node_names.fresh(f"{self.layer}/{role}"),
                                doc_string=self.doc, **attrs)
        self.nodes.append(node)
        return outs[0] if n_out == 1 else outs


class _Step:
    """One time step of the reference interpreter as ONNX nodes (the Scan body)."""

    def __init__(self, b: _Builder, windows: str, bounds, accs) -> None:
        self.b, self.windows, self.bounds, self.accs = b, windows, bounds, accs
        self.vals: dict[str, tuple[str, int]] = {}     # IR node -> (value, dtype)
        self.owner: dict[str, tuple[str, str]] = {}    # value -> (IR node, doc) that made it
        self._casts: dict[tuple[str, int], str] = {}

    def set(self, node: str, value: str, dtype: int) -> None:
        self.vals[node] = (value, dtype)
        self.owner.setdefault(value, (self.b.layer, self.b.doc))

    # -------------------------------------------------------------- helpers
    def cast(self, value: tuple[str, int], dtype: int) -> str:
        name, have = value
        if have == dtype:
            return name
        key = (name, dtype)
        if key not in self._casts:
            # named after the producer: one cast shared by all its readers
            tag = {I64: "int64", F32: "float32", F64: "float64", BOOL: "bool"}[dtype]
            here = (self.b.layer, self.b.doc)
            self.b.at(*self.owner.get(name, here))
            self._casts[key] = self.b.op("Cast", [name], f"as_{tag}", to=dtype)
            self.b.at(*here)
        return self._casts[key]

    def shift(self, x: str, e: int, role: str) -> str:
        """x << e (e >= 0) or floor(x / 2^-e) (arithmetic right shift)."""
        if e == 0:
            return x
        if abs(e) > MAX_SHIFT:
            raise SnnccError(f"layer '{self.b.layer}': shift by {e} bits is beyond int64")
        b = self.b
        if e > 0:
            return b.op("Mul", [x, b.i64(1 << e, f"pow2_{e}")], f"{role}.shl{e}")
        p = b.i64(1 << -e, f"pow2_{-e}")
        r = b.op("Mod", [x, p], f"{role}.shr{-e}.mod", fmod=0)
        return b.op("Div", [b.op("Sub", [x, r], f"{role}.shr{-e}.sub"), p], f"{role}.shr{-e}")

    def overflow(self, x: str, bits: int, mode: str, role: str) -> str:
        b = self.b
        if bits > MAX_SHIFT or bits < 2:
            raise SnnccError(f"layer '{b.layer}': {role} register of {bits} bits: the ONNX target "
                             f"supports 2..{MAX_SHIFT} bits")
        m = 1 << (bits - 1)
        if mode == "saturate":
            return b.op("Clip", [x, b.i64(-(m - 1), f"neg_max{bits}"), b.i64(m - 1, f"max{bits}")],
                        f"{role}.saturate{bits}")
        if mode == "wrap":
            t = b.op("Add", [x, b.i64(m, f"half{bits}")], f"{role}.wrap{bits}.add")
            t = b.op("Mod", [t, b.i64(1 << bits, f"mod{bits}")], f"{role}.wrap{bits}.mod", fmod=0)
            return b.op("Sub", [t, b.i64(m, f"half{bits}")], f"{role}.wrap{bits}")
        if mode == "wrap_lava":
            hi = b.op("Greater", [x, b.i64(m, f"half{bits}")], f"{role}.wrap_lava{bits}.gt")
            lo = b.op("LessOrEqual", [x, b.i64(-m, f"neg_half{bits}")], f"{role}.wrap_lava{bits}.le")
            two = b.i64(2 * m, f"mod{bits}")
            inner = b.op("Where", [lo, b.op("Add", [x, two], f"{role}.wrap_lava{bits}.up"), x],
                         f"{role}.wrap_lava{bits}.low")
            return b.op("Where", [hi, b.op("Sub", [x, two], f"{role}.wrap_lava{bits}.down"), inner],
                        f"{role}.wrap_lava{bits}")
        raise SnnccError(f"unknown overflow mode {mode!r}")

    def decay(self, x: str, d: int, role: str, bound: int | None) -> str | None:
        """sign(p) * (|p| >> 12) with p = x * (4096 - d), literally (the int64 product wraps
        like the reference's); None for the constant 0 (d = 4096). d = 0 is the identity
        only while |x| * 4096 stays inside int64, so it is skipped only where the register
        bound proves that."""
        if d == DECAY_ONE:
            return None
        if d == 0 and bound is not None and bound * DECAY_ONE < 1 << 63:
            return x
        b = self.b
        p = b.op("Mul", [x, b.i64(DECAY_ONE - d, f"keep{DECAY_ONE - d}")], f"{role}.scale")
        q = b.op("Div", [b.op("Abs", [p], f"{role}.abs"), b.i64(DECAY_ONE, "decay_one")], f"{role}.shr12")
        # sign(p) * q as a select: onnxruntime's int64 Sign is wrong beyond 2^31
        neg = b.op("Less", [p, b.i64(0, "zero")], f"{role}.negative")
        return b.op("Where", [neg, b.op("Neg", [q], f"{role}.neg"), q], role)

    # -------------------------------------------------------------- windows
    def _patches(self, x: str, shape, kernel, stride, padding, dilation) -> tuple[str, int, int]:
        """(N, C, P, kh*kw) int64 windows of an (N, C, H, W) int64 tensor (zero padding)."""
        b = self.b
        c, h, w = shape
        ph, pw = padding
        if ph or pw:
            x = b.op("Pad", [x, b.i64([0, 0, ph, pw, 0, 0, ph, pw], "pads")], "im2col.pad", mode="constant")
        hp, wp = h + 2 * ph, w + 2 * pw
        eh, ew = dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1
        ho, wo = (hp - eh) // stride[0] + 1, (wp - ew) // stride[1] + 1
        oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
        ki, kj = np.meshgrid(np.arange(kernel[0]), np.arange(kernel[1]), indexing="ij")
        rows = oy.reshape(-1, 1) * stride[0] + ki.reshape(1, -1) * dilation[0]
        cols = ox.reshape(-1, 1) * stride[1] + kj.reshape(1, -1) * dilation[1]
        idx = (rows * wp + cols).astype(np.int64)  # (P, kh*kw)
        flat = b.op("Reshape", [x, b.i64([0, c, hp * wp], "flat_shape")], "im2col.flatten")
        return b.op("Gather", [flat, b.i64(idx, "window_index")], "im2col.gather", axis=2), ho, wo

    def conv(self, name: str, op, src: str, in_shape) -> tuple[str, int]:
        b = self.b
        xv = self.vals[src]
        stride, pad, dil = tuple(op.stride), tuple(op.padding), tuple(op.dilation)
        if self.windows == "auto" and self.accs[name] < F32_EXACT and self.bounds[src] < F32_EXACT:
            x = self.cast(xv, F32)
            y = b.op("Conv", [x, b.const(op.weight, F32, "weight")], "conv", strides=list(stride),
                     pads=[pad[0], pad[1], pad[0], pad[1]], dilations=list(dil), group=int(op.groups),
                     kernel_shape=list(op.weight.shape[2:]))
            return b.op("Cast", [y], "conv.to_int64", to=I64), I64
        o, cg, kh, kw = op.weight.shape
        g = int(op.groups)
        og = o // g
        pt, ho, wo = self._patches(self.cast(xv, I64), in_shape, (kh, kw), stride, pad, dil)
        p = ho * wo
        t = b.op("Reshape", [pt, b.i64([0, g, cg, p, kh * kw], "group_shape")], "im2col.groups")
        t = b.op("Transpose", [t], "im2col.transpose", perm=[0, 1, 3, 2, 4])
        t = b.op("Reshape", [t, b.i64([0, g, p, cg * kh * kw], "patch_shape")], "im2col.patches")
        wmat = op.weight.reshape(g, og, cg * kh * kw).transpose(0, 2, 1)  # (G, K, og)
        y = b.op("MatMul", [t, b.i64(wmat, "weight_im2col")], "conv.matmul")  # (N, G, P, og)
        y = b.op("Transpose", [y], "conv.transpose", perm=[0, 1, 3, 2])
        return b.op("Reshape", [y, b.i64([0, o, ho, wo], "out_shape")], "conv"), I64

    def pool(self, name: str, op, src: str, in_shape, kind: str) -> tuple[str, int]:
        b = self.b
        xv = self.vals[src]
        k, s, p = tuple(op.kernel), tuple(op.stride), tuple(op.padding)
        c = in_shape[0]
        if self.windows == "auto":
            if kind == "SumPool" and self.accs[name] < F32_EXACT:
                ones = np.ones((c, 1) + k, np.float32)
                y = b.op("Conv", [self.cast(xv, F32), b.const(ones, F32, "ones")], "sumpool", strides=list(s),
                         pads=[p[0], p[1], p[0], p[1]], group=c, kernel_shape=list(k))
                return b.op("Cast", [y], "sumpool.to_int64", to=I64), I64
            if kind == "MaxPool" and self.bounds[src] < F64_EXACT:
                dt = F32 if self.bounds[src] < F32_EXACT else F64
                y = b.op("MaxPool", [self.cast(xv, dt)], "maxpool", kernel_shape=list(k), strides=list(s))
                return y, dt
        pt, ho, wo = self._patches(self.cast(xv, I64), in_shape, k, s, p, (1, 1))
        if kind == "SumPool":
            # a MatMul with ones: onnxruntime's int64 ReduceSum rounds beyond 2^53
            y = b.op("MatMul", [pt, b.i64(np.ones((k[0] * k[1], 1)), "ones")], "window_sum")
        else:
            y = b.op("ReduceMax", [pt], "window_max", axes=[3], keepdims=0)
        return b.op("Reshape", [y, b.i64([0, c, ho, wo], "out_shape")], kind.lower()), I64

    # -------------------------------------------------------------- neuron
    def neuron(self, op: IntLIF, a: tuple[str, int], v_in: str, u_in: str | None, nd: int):
        """Returns (spikes bool, v int64, u int64)."""
        b = self.b
        x = self.cast(a, I64)
        if op.act_shift:
            x = self.shift(x, op.act_shift, "input")
        if op.u_bias.any():
            x = b.op("Add", [x, b.i64(_chan(op.u_bias, nd), "u_bias")], "u.bias")
        if op.du == DECAY_ONE:
            u = self.overflow(x, op.u_bits, op.u_overflow, "u")
        else:
            du = self.decay(u_in, op.du, "u.decay", self.state[0])
            u = self.overflow(b.op("Add", [du, x], "u.integrate"), op.u_bits, op.u_overflow, "u")
        dv = self.decay(v_in, op.dv, "v.decay", self.state[1])
        v = u if dv is None else b.op("Add", [dv, u], "v.integrate")
        if op.bias.any():
            v = b.op("Add", [v, b.i64(_chan(op.bias, nd), "bias")], "v.bias")
        v = self.overflow(v, op.v_bits, op.v_overflow, "v")
        if op.fires:
            s = b.op("Greater", [v, b.i64(_chan(op.threshold, nd), "threshold")], "spike")
            if op.reset == "zero":
                v = b.op("Where", [s, b.i64(0, "zero"), v], "reset_zero")
            elif op.reset == "subtract":
                sub = b.op("Sub", [v, b.i64(_chan(op.reset_value, nd), "reset_value")], "reset.sub")
                v = b.op("Where", [s, sub, v], "reset_subtract")
        else:
            s = b.op("ConstantOfShape", [b.op("Shape", [v], "shape")], "spike",
                     value=numpy_helper.from_array(np.zeros(1, np.bool_), "value"))
        if op.state_quant != "none":
            lvl = b.i64(_chan(op.state_level, nd), "state_level")
            v2 = b.op("Add", [v, v], "quant.double")
            q = b.op("Cast", [b.op("GreaterOrEqual", [v2, lvl], "quant.ge")], "quant.pos", to=I64)
            if op.state_quant == "ternary":
                neg = b.op("Neg", [lvl], "quant.neg_level")
                qn = b.op("Cast", [b.op("LessOrEqual", [v2, neg], "quant.le")], "quant.neg", to=I64)
                q = b.op("Sub", [q, qn], "quant.q")
            v = b.op("Mul", [q, lvl], f"quant_{op.state_quant}")
        return s, v, u


def _tensor_type(name: str, dtype: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, list(shape))


def _input_dtype(op) -> int:
    if op.encoding == "bias":  # signed
        return TensorProto.INT16 if op.bits <= 16 else I64
    if op.encoding == "spikes" or op.bits <= 8:
        return TensorProto.UINT8
    if op.bits <= 16:
        return TensorProto.UINT16
    return I64


def build_model(graph: Graph, probe_state: bool, windows: str = "auto") -> onnx.ModelProto:
    """The ONNX model of ``graph`` (``probe_state``: also v and u of every step)."""
    return _Model(graph, probe_state, windows).build()


def _reference_keys(graph: Graph, lifs: list[str], probe_state: bool) -> list[str]:
    """The reference's result keys in its insertion order: spikes (and v/u) per layer, output."""
    keys: list[str] = []
    for n in lifs:
        keys.append(n)
        if probe_state:
            keys.append(f"{n}/v")
            if records_u(graph.node(n), graph.meta.get("schedule")):
                keys.append(f"{n}/u")
    keys.append("output")
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise SnnccError(f"node names collide with output keys {dup} (the reference interpreter "
                         "would mix them up too): rename the layers")
    out_shapes = {graph.shapes()[o] for o in graph.outputs}
    if len(out_shapes) != 1:
        raise SnnccError(f"the outputs {graph.outputs} differ in shape {sorted(out_shapes)}: the reference "
                         "interleaves outputs along time, which needs one shape")
    return keys


class _Model:
    """Builds the model: the Scan body (one step: state in, the nodes in topological order
    through the lowering table LOWER, state out and per-step outputs), then the outer
    graph (initial states, the Scan over time, output interleaving)."""

    def __init__(self, graph: Graph, probe_state: bool, windows: str) -> None:
        if windows not in WINDOWS:
            raise SnnccError(f"windows={windows!r}: choose one of {', '.join(WINDOWS)}")
        verify(graph, "int", after="(onnx target input)")
        self.graph, self.probe_state, self.windows = graph, probe_state, windows
        self.shapes = graph.shapes()
        self.order = graph.order()
        self.ops = {n: graph.node(n) for n in self.order}
        self.lifs = [n for n in self.order if isinstance(self.ops[n], IntLIF)]
        self.keys = _reference_keys(graph, self.lifs, probe_state)
        self.values, self.node_names = _Names(self.keys), _Names()
        self.bounds_all = Bounds(graph)
        bounds = {k: v.mag for k, v in self.bounds_all.iv.items()}
        accs = {k: v.mag for k, v in self.bounds_all.acc.items()}
        self.in_op = self.ops[graph.input_name]
        self.in_dtype = _input_dtype(self.in_op)
        self.x_name = self.values.fresh(graph.input_name)
        self.body = _Builder(self.values, self.node_names)
        self.step = _Step(self.body, windows, bounds, accs)
        self.state_in: list[onnx.ValueInfoProto] = []
        self.state_init: list[tuple[str, str, tuple]] = []   # (kind "v_init"/"zeros"/"step", layer, shape)
        self.scan_out: list[tuple[str, str, int, tuple]] = []  # (key, body value, dtype, shape)
        self.new_state: dict[str, str] = {}
        self.st_names: dict[tuple, str] = {}
        self.spikes: dict[str, str] = {}
        self.potentials: dict[str, tuple[str, str | None]] = {}
        self.step_in: str | None = None

    def build(self) -> onnx.ModelProto:
        self._states()
        x_t = self.values.fresh(f"{self.graph.input_name}::t")
        x_t_info = _tensor_type(x_t, self.in_dtype, ("N",) + tuple(self.in_op.shape))
        self._step_counter()
        self.x_t = x_t
        for n in self.order:
            op = self.ops[n]
            self.body.at(n, _doc(n, op))
            lower = LOWER.get(op.kind)
            if lower is None:
                raise SnnccError(f"the ONNX target has no lowering for {op.kind} ('{n}')")
            lower(self, n, op, self.graph.inputs(n))
        n_out = self._step_outputs()
        body_graph = self._body_graph(x_t_info)
        return self._outer(body_graph, n_out)

    # ---- state
    def _state(self, layer: str, what: str, shape, init: str) -> str:
        nm = self.values.fresh(f"{layer}::{what}.in")
        self.state_in.append(_tensor_type(nm, I64, ("N",) + tuple(shape)))
        self.state_init.append((init, layer, tuple(shape)))
        return nm

    def _states(self) -> None:
        for n in self.order:
            op = self.ops[n]
            if isinstance(op, IntLIF):
                self.st_names[(n, "v")] = self._state(n, "v", self.shapes[n], "v_init")
                if op.du != DECAY_ONE:
                    self.st_names[(n, "u")] = self._state(n, "u", self.shapes[n], "zeros")
                if op.presim and op.fires:  # TNP: 1 where the neuron keeps firing after the presimulation
                    self.st_names[(n, "keep")] = self._state(n, "keep", self.shapes[n], "ones")
            elif getattr(op, "delay", 0) > 0:
                for i in range(op.delay):
                    self.st_names[(n, f"delay{i}")] = self._state(n, f"delay{i}", self.shapes[n], "zeros")

    def _step_counter(self) -> None:
        """The step counter t of periodic resets, where a neuron has one."""
        if not any(self.ops[n].reset_interval or self.ops[n].presim for n in self.lifs):
            return
        body = self.body
        self.step_in = self.values.fresh("time::step.in")
        self.state_in.append(_tensor_type(self.step_in, I64, (1,)))
        self.state_init.append(("step", "time", (1,)))
        body.at("time", "the step counter t (0-based) of the periodic neuron resets and TNP")
        self.new_state[self.step_in] = body.op("Add", [self.step_in, body.i64([1], "one")], "step.next")

    def state_bounds(self, n: str) -> tuple[int | None, int | None]:
        """|u| and |v| carried between steps (snncc.ir.bounds); (None, None) where the
        input may leave exact int64 arithmetic (the int64 ops then wrap like the reference)."""
        try:
            return self.bounds_all.neuron(n)
        except SnnccError:
            return None, None

    # ---- lowering, one method per IR kind (LOWER)
    def lower_input(self, n, op, ins) -> None:
        self.step.set(n, self.x_t, self.in_dtype)

    def lower_lif(self, n, op, ins) -> None:
        body, step = self.body, self.step
        nd = len(self.shapes[n]) + 1
        v_in, u_in = self.st_names[(n, "v")], self.st_names.get((n, "u"))
        if op.reset_interval:  # Lava's LIFReset: u = v = 0 when t % interval == offset
            due = body.op("Equal", [body.op("Mod", [self.step_in, body.i64([op.reset_interval], "reset_interval")],
                                            "reset.phase"), body.i64([op.reset_offset], "reset_offset")],
                          "reset.due")
            zero = body.i64(0, "zero")
            v_in = body.op("Where", [due, zero, v_in], "reset.v")
            if u_in is not None:
                u_in = body.op("Where", [due, zero, u_in], "reset.u")
        keep = None
        if op.presim:
            v_in, u_in, keep = self._tnp_start(n, op, v_in, u_in, nd)
        step.state = self.state_bounds(n)
        gate = self._gate_prior(n, op, v_in) if op.gate_weight.size else None
        s, v, u = step.neuron(op, step.vals[ins[0]], v_in, u_in, nd)
        s, v, u = self._masks(op, step.vals[ins[0]], (v_in, u_in), (s, v, u), gate, nd)
        if keep is not None:  # TNP: only the kept neurons' spikes leave the layer
            s = body.op("And", [s, body.op("Cast", [keep], "keep.bool", to=BOOL)], "tnp.spikes")
        step.set(n, s, BOOL)
        self.spikes[n] = s
        self.potentials[n] = (v, u if records_u(op, self.graph.meta.get("schedule")) else None)
        self.new_state[self.st_names[(n, "v")]] = v
        if op.du != DECAY_ONE:
            self.new_state[self.st_names[(n, "u")]] = u

    def _gate_prior(self, n, op, v_in):
        """Channel gate (SpQuant-SNN Eq. 23) on the membrane prior v_in: keep (N, C, 1...)
        bool = gate_weight @ (sum of each channel's v) >= gate_level (int64 MatMuls: an
        int64 ReduceSum rounds beyond 2^53)."""
        body, shape = self.body, self.shapes[n]
        c, hw = shape[0], int(np.prod(shape[1:], dtype=np.int64))
        flat = body.op("Reshape", [v_in, body.i64([0, c, hw], "gate.flat_shape")], "gate.flat")
        p = body.op("Reshape", [body.op("MatMul", [flat, body.i64(np.ones((hw, 1)), "ones")], "gate.sum"),
                                body.i64([0, c], "gate.sum_shape")], "gate.prior")
        z = body.op("MatMul", [p, body.i64(np.ascontiguousarray(op.gate_weight.T), "gate_weight")], "gate.z")
        keep = body.op("GreaterOrEqual", [z, body.i64(np.broadcast_to(op.gate_level, (c,)).reshape(1, c),
                                                      "gate_level")], "gate.keep")
        return body.op("Reshape", [keep, body.i64([0, c] + [1] * (len(shape) - 1), "gate.keep_shape")], "gate.mask")

    def _masks(self, op, a, prior, new, gate, nd):
        """SpQuant-SNN's masks after the update (IntLIF): spatial (|a| <= level keeps the
        prior state, no spike), negative (v < 0 -> 0, no spike), the channel gate."""
        body, (v_in, u_in), (s, v, u) = self.body, prior, new
        if op.spatial_level >= 0:
            skip = body.op("LessOrEqual", [body.op("Abs", [self.step.cast(a, I64)], "spatial.abs"),
                                           body.i64(op.spatial_level, "spatial_level")], "spatial.skip")
            v = body.op("Where", [skip, v_in, v], "spatial.v")
            if u_in is not None:
                u = body.op("Where", [skip, u_in, u], "spatial.u")
            s = body.op("And", [s, body.op("Not", [skip], "spatial.keep")], "spatial.spikes")
        if op.neg_mask:
            neg = body.op("Less", [v, body.i64(0, "zero")], "neg.mask")
            v = body.op("Where", [neg, body.i64(0, "zero"), v], "neg.v")
            s = body.op("And", [s, body.op("Not", [neg], "neg.keep")], "neg.spikes")
        if gate is not None:
            s = body.op("And", [s, gate], "gate.spikes")
        return s, v, u

    def _tnp_start(self, n, op, v_in, u_in, nd):
        """TNP at t == presim, before integrating: keep = v > prune_level, u = 0, v = v_init
        (IntLIF); returns (v, u, keep state or None for a readout)."""
        body = self.body
        due = body.op("Equal", [self.step_in, body.i64([op.presim], "presim")], "tnp.due")
        keep = None
        if op.fires:
            k_in = self.st_names[(n, "keep")]
            fresh = body.op("Cast", [body.op("Greater", [v_in, body.i64(_chan(op.prune_level, nd), "prune_level")],
                                             "tnp.above")], "tnp.keep_new", to=I64)
            keep = self.new_state[k_in] = body.op("Where", [due, fresh, k_in], "tnp.keep")
        v_in = body.op("Where", [due, body.i64(_chan(op.v_init, nd), "v_init"), v_in], "tnp.v")
        if u_in is not None:
            u_in = body.op("Where", [due, body.i64(0, "zero"), u_in], "tnp.u")
        return v_in, u_in, keep

    def lower_synapse(self, n, op, ins) -> None:
        body, step = self.body, self.step
        if op.kind == "IntConv":
            y, _ = step.conv(n, op, ins[0], self.shapes[ins[0]])
        else:
            x = step.cast(step.vals[ins[0]], I64)
            if len(self.shapes[ins[0]]) != 1:
                x = body.op("Flatten", [x], "flatten", axis=1)
            y = body.op("MatMul", [x, body.i64(op.weight.T, "weight_t")], "matmul")
        y = step.shift(y, op.weight_exp, "weight_exp")
        if op.out_bits:
            y = step.overflow(y, op.out_bits, "wrap", "out")
        if op.delay > 0:
            slots = [self.st_names[(n, f"delay{i}")] for i in range(op.delay)]
            for i in range(op.delay - 1):
                self.new_state[slots[i]] = body.op("Identity", [slots[i + 1]], f"delay_line{i}")
            self.new_state[slots[-1]] = body.op("Identity", [y], f"delay_line{op.delay - 1}")
            y = slots[0]
        step.set(n, y, I64)

    def lower_pool(self, n, op, ins) -> None:
        self.step.set(n, *self.step.pool(n, op, ins[0], self.shapes[ins[0]], op.kind))

    def lower_flatten(self, n, op, ins) -> None:
        xv = self.step.vals[ins[0]]
        self.step.set(n, self.body.op("Flatten", [xv[0]], "flatten", axis=1), xv[1])

    def lower_add(self, n, op, ins) -> None:
        step = self.step
        acc = step.cast(step.vals[ins[0]], I64)
        for i, s_ in enumerate(ins[1:]):
            acc = self.body.op("Add", [acc, step.cast(step.vals[s_], I64)], f"add{i}")
        step.set(n, acc, I64)

    # ---- outputs
    def _step_outputs(self) -> int:
        """Per-step outputs (spikes, v/u when probed, the network output); returns how
        many network outputs are interleaved."""
        body, step = self.body, self.step
        out_shape = tuple(self.shapes[self.graph.outputs[0]])
        for n in self.lifs:
            body.at(n, _doc(n, self.ops[n]))
            self.scan_out.append((n, body.op("Identity", [self.spikes[n]], "spikes.out"), BOOL, self.shapes[n]))
            if self.probe_state:
                v, u = self.potentials[n]
                self.scan_out.append((f"{n}/v", body.op("Identity", [v], "v.out"), I64, self.shapes[n]))
                if u is not None:
                    self.scan_out.append((f"{n}/u", body.op("Identity", [u], "u.out"), I64, self.shapes[n]))
        body.at("output", "snncc network output per step: a readout's v, or the output node's value")
        outs = []
        for o in self.graph.outputs:
            op = self.ops[o]
            val = (self.potentials[o][0], I64) if isinstance(op, IntLIF) and not op.fires else step.vals[o]
            outs.append(step.cast(val, I64))
        if len(outs) == 1:
            y = body.op("Identity", [outs[0]], "out")
            self.scan_out.append(("output", y, I64, out_shape))
        else:
            axis1 = body.i64([1], "axis1")
            parts = [body.op("Unsqueeze", [v, axis1], f"out{i}") for i, v in enumerate(outs)]
            y = body.op("Concat", parts, "out", axis=1)
            self.scan_out.append(("output", y, I64, (len(outs),) + out_shape))
        return len(outs)

    def _body_graph(self, x_t_info) -> onnx.GraphProto:
        body = self.body
        body_outputs = []
        for vi in self.state_in:
            nm = self.new_state[vi.name]
            fin = body.op("Identity", [nm], "state.out") if nm in [x.name for x in self.state_in] else nm
            body_outputs.append(_tensor_type(fin, I64, [d.dim_param or d.dim_value
                                                        for d in vi.type.tensor_type.shape.dim]))
        for key, nm, dt, shp in self.scan_out:
            body_outputs.append(_tensor_type(nm, dt, ("N",) + tuple(shp)))
        return helper.make_graph(body.nodes, "snncc_step", self.state_in + [x_t_info], body_outputs,
                                 initializer=body.inits,
                                 doc_string="one time step of the integer network (snncc reference semantics)")

    def _initial_states(self, outer: _Builder) -> list[str]:
        """The initial value of every Scan state for a batch of N samples."""
        outer.at("init", "initial neuron state and empty delay lines for a batch of N samples")
        n_dim = outer.op("Slice", [outer.op("Shape", [self.x_name], "input_shape"), outer.i64([0], "zero_1d"),
                                   outer.i64([1], "one_1d")], "batch_size")
        full_shapes: dict[tuple, str] = {}
        inits = []
        for (kind, layer, shp), vi in zip(self.state_init, self.state_in):
            if shp not in full_shapes and kind != "step":
                full_shapes[shp] = outer.op("Concat", [n_dim, outer.i64(list(shp), "layer_shape")],
                                            "state_shape", axis=0)
            if kind == "step":
                outer.at("time", "the step counter starts at 0")
                inits.append(outer.op("Identity", [outer.i64([0], "step0")], "step.init"))
                continue
            outer.at(layer, _doc(layer, self.ops[layer]))
            if kind == "v_init":
                v0 = outer.i64(_chan(self.ops[layer].v_init, len(shp) + 1), "v_init")
                inits.append(outer.op("Expand", [v0, full_shapes[shp]], "v.init"))
            else:
                inits.append(outer.op("ConstantOfShape", [full_shapes[shp]], "state.init",
                                      value=numpy_helper.from_array(np.full(1, int(kind == "ones"), np.int64),
                                                                    "value")))
        return inits

    def _outer(self, body_graph, n_out: int) -> onnx.ModelProto:
        values, node_names = self.values, self.node_names
        outer = _Builder(values, node_names)
        inits = self._initial_states(outer)
        outer.at("time", "snncc: the time loop; the body is one step of the integer network")
        final = [values.fresh(f"{vi.name[:-3]}.final") for vi in self.state_in]
        results = {}
        scan_names = []
        for key, nm, dt, shp in self.scan_out:
            target = key if not (key == "output" and n_out > 1) else values.fresh("output::interleaved")
            scan_names.append(target)
            results[key] = (target, dt, shp)
        outer.nodes.append(helper.make_node(
            "Scan", inits + [self.x_name], final + scan_names, name=node_names.fresh("time_loop"),
            doc_string="one step of the integer network per input time step (axis 1); state: membranes, "
                       "currents and synaptic delay lines", body=body_graph, num_scan_inputs=1,
            scan_input_axes=[1], scan_output_axes=[1] * len(self.scan_out)))
        graph_outputs = self._graph_outputs(outer, results, n_out)
        return self._model(outer, graph_outputs)

    def _graph_outputs(self, outer: _Builder, results: dict, n_out: int) -> list:
        out_shape = tuple(self.shapes[self.graph.outputs[0]])
        graph_outputs = []
        for key, nm, dt, shp in self.scan_out:
            if key == "output" and n_out > 1:
                outer.at("output", "outputs interleaved along time, like the reference interpreter")
                outer.nodes.append(helper.make_node(
                    "Reshape", [results[key][0], outer.i64([0, -1] + list(out_shape), "interleave_shape")],
                    ["output"], name=self.node_names.fresh("output/interleave"), doc_string=outer.doc))
                graph_outputs.append(_tensor_type("output", I64, ("N", "T_out") + out_shape))
            else:
                graph_outputs.append(_tensor_type(key, dt, ("N", "T") + tuple(shp)))
        return graph_outputs

    def _model(self, outer: _Builder, graph_outputs: list) -> onnx.ModelProto:
        graph, ops = self.graph, self.ops
        x_info = _tensor_type(self.x_name, self.in_dtype, ("N", "T") + tuple(self.in_op.shape))
        g = helper.make_graph(outer.nodes, f"snncc_{graph.meta.get('name', 'model')}", [x_info], graph_outputs,
                              initializer=outer.inits,
                              doc_string="snncc integer SNN: input (N, T, ...) integers; outputs: spikes (N, T, ...) "
                                         "of every neuron layer" + (", v and u of every step" if self.probe_state else "")
                                         + " and the network output")
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="snncc",
                                  producer_version=__version__,
                                  doc_string="bit-exact integer model compiled by snncc; semantics: docs/semantics.md, "
                                             "lowering: docs/onnx.md")
        model.ir_version = IR_VERSION
        meta = {"snncc.outputs": json.dumps(self.keys), "snncc.input": json.dumps(self.x_name),
                "snncc.steps": str(int(graph.meta.get("steps", 1))), "snncc.probe_state": str(bool(self.probe_state)),
                "snncc.windows": self.windows,
                "snncc.layers": json.dumps({n: {"kind": ops[n].kind, "source": ops[n].source} for n in self.order},
                                           sort_keys=True)}
        helper.set_model_props(model, meta)
        return model


#: IR kind -> its lowering into the Scan body
LOWER = {"IntInput": _Model.lower_input, "IntLIF": _Model.lower_lif, "IntConv": _Model.lower_synapse,
         "IntDense": _Model.lower_synapse, "SumPool": _Model.lower_pool, "MaxPool": _Model.lower_pool,
         "Flatten": _Model.lower_flatten, "Add": _Model.lower_add}


def emit(graph: Graph, out_dir: str | Path, *, windows: str = "auto") -> list[Path]:
    """Write ``model.onnx`` (spikes of every layer + output) and ``model_probe.onnx``
    (also v and u of every step) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fname, probe in ((MODEL, False), (PROBE_MODEL, True)):
        model = build_model(graph, probe, windows)
        onnx.checker.check_model(model, full_check=True)
        path = out / fname
        path.write_bytes(model.SerializeToString(deterministic=True))
        paths.append(path)
    return paths
