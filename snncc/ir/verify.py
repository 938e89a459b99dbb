"""IR invariants, checked after every pass.

Stages: "float" (frontend output), "quantized" (synapses integer, neurons still float)
and "int" (every node integer-level, every tensor with a declared bit width)."""
from __future__ import annotations

import networkx as nx
import numpy as np

from ..errors import IRVerificationError
from .graph import Graph
from .nodes import DECAY_ONE, OVERFLOWS, RESETS, STATE_QUANTS, IntLIF

ARITY = {"Input": 0, "IntInput": 0}
STAGES = ("float", "quantized", "int")


def _bits_fit(a: np.ndarray, bits: int) -> bool:
    lim = 1 << (bits - 1)
    return a.size == 0 or (int(a.min()) >= -lim and int(a.max()) <= lim - 1)


def problems(graph: Graph, stage: str) -> list[str]:
    """All invariant violations of ``graph`` at ``stage`` (empty list: valid)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    errs: list[str] = []
    if not nx.is_directed_acyclic_graph(graph.g):
        return ["graph has a cycle"]
    try:
        shapes = graph.shapes()
    except Exception as e:  # noqa: BLE001 - reported as an invariant failure
        return [f"shape inference failed: {e}"]
    if len(graph.outputs) != 1:
        errs.append(f"graph must have exactly one output, has {graph.outputs}")
    for o in graph.outputs:
        if o not in graph:
            errs.append(f"output {o!r} is not a node")
    for name, op in graph.items():
        ins = graph.inputs(name)
        if "/" in name or name == "output":
            errs.append(f"node name {name!r} is reserved (results use 'output' and '<layer>/v')")
        if op.kind == "MaxPool" and any(op.padding):
            errs.append(f"{name}: MaxPool takes no padding")
        if op.kind in ("Dense", "IntDense") and ins and int(np.prod(shapes[ins[0]])) != op.weight.shape[1]:
            errs.append(f"{name}: weight takes {op.weight.shape[1]} inputs, input has {int(np.prod(shapes[ins[0]]))}")
        if op.kind in ("Conv", "IntConv") and ins and (len(shapes[ins[0]]) != 3 or
                                                       shapes[ins[0]][0] != op.weight.shape[1] * op.groups):
            errs.append(f"{name}: weight takes {op.weight.shape[1] * op.groups} channels, input is {shapes[ins[0]]}")
        want = ARITY.get(op.kind, None)
        if want is not None and len(ins) != want:
            errs.append(f"{name}: {op.kind} takes {want} inputs, has {len(ins)}")
        elif op.kind == "Add":
            if len(ins) < 2:
                errs.append(f"{name}: Add needs at least 2 inputs")
            elif len({shapes[s] for s in ins}) != 1:
                errs.append(f"{name}: Add inputs differ in shape {[shapes[s] for s in ins]}")
        elif want is None and len(ins) != 1:
            errs.append(f"{name}: {op.kind} takes 1 input, has {len(ins)}")
        if stage == "int" and op.level == "float":
            errs.append(f"{name}: float-level {op.kind} left in the integer graph")
        if stage == "quantized" and op.kind in ("Conv", "Dense", "BatchNorm", "AvgPool"):
            errs.append(f"{name}: {op.kind} left in the quantized graph")
        if op.kind in ("IntConv", "IntDense"):
            w = op.weight
            if w.dtype != np.int64:
                errs.append(f"{name}: integer weights must be int64, got {w.dtype}")
            elif not _bits_fit(w, op.weight_bits):
                errs.append(f"{name}: weights in [{w.min()}, {w.max()}] exceed {op.weight_bits} bits")
            if op.delay < 0:
                errs.append(f"{name}: negative delay {op.delay}")
        if isinstance(op, IntLIF):
            errs += _neuron_problems(name, op, shapes[name])
        if op.kind == "LIF" and op.reset not in RESETS:
            errs.append(f"{name}: unknown reset {op.reset!r}")
    return errs


def _neuron_problems(name: str, op: IntLIF, shape: tuple[int, ...]) -> list[str]:
    errs = []
    if op.reset not in RESETS:
        errs.append(f"{name}: unknown reset {op.reset!r}")
    if op.state_quant not in STATE_QUANTS:
        errs.append(f"{name}: unknown state_quant {op.state_quant!r}")
    for f in ("u_overflow", "v_overflow"):
        if getattr(op, f) not in OVERFLOWS:
            errs.append(f"{name}: unknown {f} {getattr(op, f)!r}")
    for f in ("du", "dv"):
        d = getattr(op, f)
        if not 0 <= d <= DECAY_ONE:
            errs.append(f"{name}: {f}={d} outside [0, {DECAY_ONE}]")
    if op.state_quant != "none" and op.du != DECAY_ONE:
        errs.append(f"{name}: a quantized membrane needs du={DECAY_ONE} (no current state)")
    for f in ("threshold", "bias", "reset_value", "v_init", "state_level"):
        a = getattr(op, f)
        if a.dtype != np.int64:
            errs.append(f"{name}: {f} must be int64, got {a.dtype}")
        if a.ndim != 1 or a.shape[0] not in (1, shape[0]):
            errs.append(f"{name}: {f} has shape {a.shape}, expected (1,) or ({shape[0]},)")
    if op.state_quant != "none" and (op.state_level <= 0).any():
        errs.append(f"{name}: state_level must be > 0")
    if not _bits_fit(op.v_init, op.v_bits):
        errs.append(f"{name}: v_init does not fit v_bits={op.v_bits}")
    ri, ro = op.reset_interval, op.reset_offset
    if not all(isinstance(x, (int, np.integer)) for x in (ri, ro)) or ri < 0 or not (0 <= ro < max(ri, 1)):
        errs.append(f"{name}: reset_interval={ri!r}, reset_offset={ro!r}: need integers with reset_interval >= 0 "
                    f"(0: no periodic reset) and 0 <= reset_offset < reset_interval (0 when there is none)")
    return errs


def verify(graph: Graph, stage: str, after: str = "frontend", history: tuple[str, ...] = ()) -> None:
    errs = problems(graph, stage)
    if errs:
        before = " -> ".join(history) if history else "(none)"
        raise IRVerificationError(
            f"IR invariants broken after pass {after!r} (stage {stage!r}; passes before it: {before}):\n"
            + "\n".join(f"  - {e}" for e in errs))
