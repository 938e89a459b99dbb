"""The integer reference interpreter: the specification every target reproduces.

``run(graph, x)`` evaluates an integer graph over time, batch first, in int64 numpy,
with the exact semantics written in docs/semantics.md. Every step evaluates the nodes
in topological order; a synapse with ``delay = d`` delivers at step t what it computed
at step t - d (zero before), which expresses both the zero-latency schedule (d = 0,
like PyTorch) and Loihi's one-step-per-synapse schedule (d = 1)."""
from __future__ import annotations

from collections import deque

import numpy as np

from ..errors import SnnccError
from ..ir.graph import Graph
from ..ir.nodes import IntLIF
from ..ir.verify import verify
from . import kernels as K


def _chan(a: np.ndarray, ndim: int) -> np.ndarray:
    """Broadcast a per-channel (C,) or (1,) array along axis 1 of an (N, C, ...) tensor."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


class NeuronState:
    """u, v of one IntLIF layer for a batch."""

    def __init__(self, op: IntLIF, shape: tuple[int, ...]) -> None:
        self.op = op
        nd = len(shape)
        self.v = np.broadcast_to(_chan(op.v_init, nd), shape).astype(np.int64).copy()
        self.u = np.zeros(shape, np.int64)
        self.thr, self.bias = _chan(op.threshold, nd), _chan(op.bias, nd)
        self.rv, self.level = _chan(op.reset_value, nd), _chan(op.state_level, nd)

    def step(self, a: np.ndarray, t: int) -> np.ndarray:
        """Step ``t`` (0-based) with input current ``a``; returns the spikes."""
        op = self.op
        if op.reset_interval and t % op.reset_interval == op.reset_offset:  # Lava's LIFReset
            self.u = np.zeros_like(self.u)
            self.v = np.zeros_like(self.v)
        self.u = K.overflow(K.decay(self.u, op.du) + (a << op.act_shift), op.u_bits, op.u_overflow)
        v = K.overflow(K.decay(self.v, op.dv) + self.u + self.bias, op.v_bits, op.v_overflow)
        if op.fires:
            s = v > self.thr
            if op.reset == "zero":
                v = np.where(s, 0, v)
            elif op.reset == "subtract":
                v = np.where(s, v - self.rv, v)
        else:
            s = np.zeros(v.shape, bool)
        self.v = K.state_quant(v, self.level, op.state_quant)
        return s.astype(np.int64)


def _eval(op, ins: list[np.ndarray]) -> np.ndarray:
    k = op.kind
    if k == "IntConv":
        a = K.conv2d(ins[0], op.weight, op.stride, op.padding, op.dilation, op.groups, op.weight_exp)
        return K.overflow(a, op.out_bits, "wrap") if op.out_bits else a
    if k == "IntDense":
        a = K.dense(ins[0], op.weight, op.weight_exp)
        return K.overflow(a, op.out_bits, "wrap") if op.out_bits else a
    if k == "SumPool":
        return K.sum_pool(ins[0], op.kernel, op.stride, op.padding)
    if k == "MaxPool":
        return K.max_pool(ins[0], op.kernel, op.stride, op.padding)
    if k == "Flatten":
        return ins[0].reshape(ins[0].shape[0], -1)
    if k == "Add":
        out = ins[0]
        for x in ins[1:]:
            out = out + x
        return out
    raise SnnccError(f"the reference interpreter has no kernel for {k}")


def prepare_input(graph: Graph, x: np.ndarray, steps: int | None = None) -> np.ndarray:
    """Check an integer input batch and return it as int64 (N, T, *shape)."""
    inp = graph.node(graph.input_name)
    shape = tuple(inp.shape)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer) and x.dtype != bool:
        raise SnnccError(f"input must be an integer array (uint8 pixels or 0/1 spikes), got dtype {x.dtype}")
    steps = steps or int(graph.meta.get("steps", 1))
    if x.shape[1:] == shape:
        x = np.repeat(x[:, None], steps, axis=1)
    elif x.ndim == len(shape) + 2 and x.shape[2:] == shape:
        pass
    else:
        raise SnnccError(f"input has shape {x.shape}; expected (N, T, {', '.join(map(str, shape))}) "
                         f"or (N, {', '.join(map(str, shape))}) for a static input repeated over T")
    x = x.astype(np.int64)
    lo, hi = (0, 1) if inp.encoding == "spikes" else (0, (1 << inp.bits) - 1)
    if x.size and (x.min() < lo or x.max() > hi):
        raise SnnccError(f"input values lie in [{x.min()}, {x.max()}] but the model's {inp.encoding} "
                         f"input takes integers in [{lo}, {hi}]")
    return x


def run(graph: Graph, x: np.ndarray, steps: int | None = None, probe_state: bool = False) -> dict[str, np.ndarray]:
    """Simulate ``graph`` on integer input ``x`` ((N, T, ...) or static (N, ...)).

    Returns a dict: for every neuron layer ``name`` its spikes (N, T, ...) as int64, with
    ``probe_state`` also ``name/v`` and ``name/u`` (state after each step), and
    ``output``: the network output per step (a readout's v, or the output spikes)."""
    verify(graph, "int", after="(reference input)")
    x = prepare_input(graph, x, steps)
    n, t_steps = x.shape[:2]
    shapes = graph.shapes()
    order = graph.order()
    ops = {name: graph.node(name) for name in order}
    states = {name: NeuronState(op, (n,) + shapes[name]) for name, op in ops.items() if isinstance(op, IntLIF)}
    lines = {name: deque([np.zeros((n,) + shapes[name], np.int64)] * op.delay)
             for name, op in ops.items() if op.kind in ("IntConv", "IntDense") and op.delay > 0}
    rec: dict[str, list[np.ndarray]] = {}
    inputs = {name: graph.inputs(name) for name in order}
    for t in range(t_steps):
        vals: dict[str, np.ndarray] = {}
        for name in order:
            op = ops[name]
            if op.kind == "IntInput":
                vals[name] = x[:, t]
                continue
            ins = [vals[s] for s in inputs[name]]
            if name in states:
                st = states[name]
                vals[name] = st.step(ins[0], t)
                rec.setdefault(name, []).append(vals[name])
                if probe_state:
                    rec.setdefault(f"{name}/v", []).append(st.v)
                    if op.du != K.DECAY_ONE:
                        rec.setdefault(f"{name}/u", []).append(st.u)
                continue
            out = _eval(op, ins)
            if name in lines:
                lines[name].append(out)
                out = lines[name].popleft()
            vals[name] = out
        for o in graph.outputs:
            op = ops[o]
            val = states[o].v if isinstance(op, IntLIF) and not op.fires else vals[o]
            rec.setdefault("output", []).append(val)
    return {k: np.stack(v, axis=1) for k, v in rec.items()}


def predict(graph: Graph, result: dict[str, np.ndarray]) -> np.ndarray:
    """Class prediction from a run: argmax over classes of the final readout potential,
    or of the spike count when the output layer fires."""
    out = result["output"].reshape(result["output"].shape[:2] + (-1,))
    op = graph.node(graph.outputs[0])
    if isinstance(op, IntLIF) and not op.fires:
        return out[:, -1].argmax(axis=-1)
    return out.sum(1).argmax(-1)
