"""BWR's blocks: neuron units (the synapses into one spiking neuron, with pooling, adds and
shortcuts on the way, plus the neuron), residual bodies merged into one block (BRECQ's
residual block) unless ``mode="layer"``."""
from __future__ import annotations

from dataclasses import dataclass

from networkx.utils import UnionFind

from ...ir.graph import Graph
from ...ops import role
from ..quantize import SynapsePlan, branches, source_neuron


@dataclass
class Block:
    name: str
    neurons: list[str]        # LIF nodes in the block (graph order)
    nodes: list[str]          # every node evaluated in the block (graph order)
    inputs: list[str]         # boundary nodes read (LIF or Input)
    outputs: list[str]        # neurons whose output leaves the block (loss targets)
    synapses: list[SynapsePlan]


def _unit_nodes(g: Graph, n: str) -> set[str]:
    """Nodes feeding neuron n back to (not including) the previous neurons / input."""
    seen: set[str] = set()
    stack = list(g.inputs(n))
    while stack:
        x = stack.pop()
        if x in seen or role(g.node(x)) in ("neuron", "input"):
            continue
        seen.add(x)
        stack.extend(g.inputs(x))
    return seen | {n}


def _residual_bodies(g: Graph, units: dict[str, set[str]]) -> UnionFind:
    """Neurons joined with every neuron between a shortcut's source and its destination."""
    uf = UnionFind(units)
    memo: dict = {}
    for c in units:
        for br in branches(g, g.inputs(c)[0], c, memo):
            if role(g.node(br.leaf)) == "synapse":
                continue
            a = source_neuron(g, br.leaf)
            if role(g.node(a)) != "neuron":
                continue
            for u in units:
                if u not in (a, c) and g.reaches(a, u) and g.reaches(u, c):
                    uf.union(u, c)
    return uf


def find_blocks(g: Graph, plan: dict[str, list[SynapsePlan]], mode: str = "residual") -> list[Block]:
    """Blocks in graph order: one per neuron unit, residual bodies merged (mode "residual")."""
    order = {n: i for i, n in enumerate(g.order())}
    units = {n: _unit_nodes(g, n) for n, op in g.items() if role(op) == "neuron"}
    groups = _residual_bodies(g, units).to_sets() if mode == "residual" else ({n} for n in units)
    blocks = []
    for neurons in sorted((sorted(s, key=order.get) for s in groups), key=lambda ns: order[ns[-1]]):
        nodes = sorted(set().union(*(units[m] for m in neurons)), key=order.get)
        node_set = set(nodes)
        inputs = sorted({s for x in nodes for s in g.inputs(x) if s not in node_set}, key=order.get)
        outs = [m for m in neurons if m in g.outputs or any(u not in node_set for u in g.users(m))]
        syn = [p for m in neurons for p in plan.get(m, [])]
        blocks.append(Block(neurons[-1], neurons, nodes, inputs, outs or neurons[-1:], syn))
    return blocks
