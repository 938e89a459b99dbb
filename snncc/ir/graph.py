"""The graph IR: a networkx DiGraph of named nodes with ordered inputs."""
from __future__ import annotations

from typing import Iterator

import networkx as nx

from .nodes import Node


class Graph:
    """Named nodes (``Node`` instances) and ordered input edges.

    Node order is deterministic: topological, ties broken by insertion order, so that
    every artifact derived from a graph is byte-identical across runs."""

    def __init__(self) -> None:
        self.g = nx.DiGraph()
        self.outputs: list[str] = []
        self.meta: dict = {}
        self._counter = 0

    # -- construction ------------------------------------------------------------------
    def add(self, name: str, node: Node, inputs: list[str] | tuple[str, ...] = ()) -> str:
        if name in self.g:
            raise ValueError(f"duplicate node name {name!r}")
        self.g.add_node(name, op=node, rank=self._counter)
        self._counter += 1
        for i, src in enumerate(inputs):
            if src not in self.g:
                raise ValueError(f"node {name!r} reads unknown node {src!r}")
            self.g.add_edge(src, name, index=i)
        return name

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.g:
            name, k = f"{base}_{k}", k + 1
        return name

    def set(self, name: str, node: Node) -> None:
        self.g.nodes[name]["op"] = node

    def set_inputs(self, name: str, inputs: list[str]) -> None:
        for src in list(self.g.predecessors(name)):
            self.g.remove_edge(src, name)
        for i, src in enumerate(inputs):
            self.g.add_edge(src, name, index=i)

    def replace_uses(self, old: str, new: str, exclude: tuple[str, ...] = ()) -> None:
        """Make every reader of ``old`` (but those in ``exclude``) read ``new`` instead."""
        for user in self.users(old):
            if user in exclude:
                continue
            self.set_inputs(user, [new if s == old else s for s in self.inputs(user)])
        self.outputs = [new if o == old else o for o in self.outputs]

    def erase(self, name: str) -> None:
        """Delete a node and its edges (its readers must no longer need it)."""
        self.g.remove_node(name)

    def remove(self, name: str) -> None:
        """Remove a single-input node, wiring its readers to its input."""
        (src,) = self.inputs(name)
        self.replace_uses(name, src)
        self.erase(name)

    def insert_after(self, name: str, new_name: str, node: Node) -> str:
        """Insert ``node`` reading ``name``; every former reader of ``name`` reads it."""
        readers = self.users(name)
        self.add(new_name, node, [name])
        for user in readers:
            self.set_inputs(user, [new_name if s == name else s for s in self.inputs(user)])
        self.outputs = [new_name if o == name else o for o in self.outputs]
        return new_name

    # -- queries -----------------------------------------------------------------------
    def node(self, name: str) -> Node:
        return self.g.nodes[name]["op"]

    def __contains__(self, name: str) -> bool:
        return name in self.g

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def inputs(self, name: str) -> list[str]:
        edges = sorted(self.g.in_edges(name, data="index"), key=lambda e: e[2])
        return [e[0] for e in edges]

    def users(self, name: str) -> list[str]:
        return sorted(self.g.successors(name), key=lambda n: self.g.nodes[n]["rank"])

    def order(self) -> list[str]:
        return list(nx.lexicographical_topological_sort(self.g, key=lambda n: self.g.nodes[n]["rank"]))

    def items(self) -> Iterator[tuple[str, Node]]:
        for n in self.order():
            yield n, self.node(n)

    def of_kind(self, *kinds: str) -> list[str]:
        return [n for n, op in self.items() if op.kind in kinds]

    @property
    def input_name(self) -> str:
        names = self.of_kind("Input", "IntInput")
        if len(names) != 1:
            raise ValueError(f"expected exactly one input node, found {names}")
        return names[0]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every node's output shape (without batch), from the op table's shape rules."""
        from ..ops import shape_of

        out: dict[str, tuple[int, ...]] = {}
        for n, op in self.items():
            out[n] = shape_of(op, [out[s] for s in self.inputs(n)])
        return out

    def reaches(self, a: str, b: str) -> bool:
        """Is there a path from node ``a`` to a different node ``b``?"""
        return a != b and nx.has_path(self.g, a, b)

    def latency(self) -> int:
        """Steps an input needs to reach the output: the longest sum of synapse delays
        along any input-to-output path."""
        best: dict[str, int] = {}
        for n, op in self.items():
            ins = [best[s] for s in self.inputs(n)]
            best[n] = (max(ins) if ins else 0) + int(getattr(op, "delay", 0))
        return max(best[o] for o in self.outputs) if self.outputs else 0

    def copy(self) -> "Graph":
        g = Graph()
        g.g = self.g.copy()
        g.outputs = list(self.outputs)
        g.meta = dict(self.meta)
        g._counter = self._counter
        return g
