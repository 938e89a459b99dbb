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
from ..ops import op_def
from . import kernels as K


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
        hint = ("; binned event data (counts > 1 per bin): compile with --input-encoding counts"
                if inp.encoding == "spikes" and x.min() >= 0 else "")
        raise SnnccError(f"input values lie in [{x.min()}, {x.max()}] but the model's {inp.encoding} "
                         f"input takes integers in [{lo}, {hi}]{hint}")
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
    defs = {name: op_def(op) for name, op in ops.items()}
    states = {name: defs[name].state(op, (n,) + shapes[name]) for name, op in ops.items() if isinstance(op, IntLIF)}
    lines = {name: deque([np.zeros((n,) + shapes[name], np.int64)] * op.delay)
             for name, op in ops.items() if getattr(op, "delay", 0) > 0}
    rec: dict[str, list[np.ndarray]] = {}
    inputs = {name: graph.inputs(name) for name in order}
    for t in range(t_steps):
        vals: dict[str, np.ndarray] = {}
        for name in order:
            op = ops[name]
            if not inputs[name]:  # the input node
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
            out = defs[name].reference(op, ins)
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
