"""IR invariants, checked after every pass.

Stages: "float" (frontend output), "quantized" (synapses integer, neurons still float)
and "int" (every node integer-level, every tensor with a declared bit width). The
per-kind invariants are the op table's (``OpDef.check_inputs`` / ``check``)."""
from __future__ import annotations

import networkx as nx

from ..errors import IRVerificationError, ModelValueError
from .graph import Graph

STAGES = ("float", "quantized", "int")


def problems(graph: Graph, stage: str) -> list[str]:
    """All invariant violations of ``graph`` at ``stage`` (empty list: valid)."""
    from ..ops import op_def

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
        d = op_def(op)
        ins = graph.inputs(name)
        if "/" in name or name == "output":
            errs.append(f"node name {name!r} is reserved (results use 'output' and '<layer>/v')")
        errs += d.check_inputs(name, op, [shapes[s] for s in ins])
        if d.arity is not None and len(ins) != d.arity:
            errs.append(f"{name}: {op.kind} takes {d.arity} input{'s' if d.arity != 1 else ''}, has {len(ins)}")
        if stage == "int" and op.level == "float":
            errs.append(f"{name}: float-level {op.kind} left in the integer graph")
        if stage == "quantized" and op.level == "float" and d.role not in ("input", "neuron"):
            errs.append(f"{name}: {op.kind} left in the quantized graph")
        errs += d.check(name, op, shapes[name])
    return errs


def value_problems(graph: Graph) -> list[str]:
    """Parameters whose values make the float model meaningless (OpDef.validate)."""
    from ..ops import op_def

    return [p for name, op in graph.items() for p in op_def(op).validate(name, op)]


def check_values(graph: Graph) -> None:
    """Refuse, all problems at once, a float graph whose parameters cannot be compiled."""
    errs = value_problems(graph)
    if errs:
        raise ModelValueError(f"the model has {len(errs)} parameter value(s) snncc cannot compile:\n"
                              + "\n".join(f"  - {e}" for e in errs))


def verify(graph: Graph, stage: str, after: str = "frontend", history: tuple[str, ...] = ()) -> None:
    errs = problems(graph, stage)
    if errs:
        before = " -> ".join(history) if history else "(none)"
        raise IRVerificationError(
            f"IR invariants broken after pass {after!r} (stage {stage!r}; passes before it: {before}):\n"
            + "\n".join(f"  - {e}" for e in errs))
