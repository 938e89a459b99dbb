"""Channel groups: which channels of a float graph must be removed together.

A *group* is one channel space: the output channels of one or more synapses (its
producers: a Conv or Dense makes its own output channels) and every node whose channel
c is the producers' channel c (BatchNorm, neurons, pools, depthwise convs: ``follow``;
Flatten turns channel c into the block of H*W positions c*H*W .. c*H*W + H*W - 1). A
residual Add joins the channel spaces of its inputs into one group. Removing channel c
of a group cuts it out of every producer (a weight row and its bias), every member (its
per-channel parameters) and every *consumer*, a synapse that reads the group (an input
channel of a Conv, the block of columns of a Dense). Each op says how its channels flow
(``OpDef.channel_flow``, ``take_out``, ``take_in``).

A group cannot be pruned when it holds the network input or output, or a node whose
channels are fixed (a grouped, non-depthwise Conv), or is read by one; the reason is
kept in ``Group.problem``."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...ir.graph import Graph
from ...ops import op_def, role


@dataclass
class Group:
    """One channel space of a float graph (see the module docstring)."""

    name: str                                                # its first producer's layer name
    channels: int = 0
    producers: list[str] = field(default_factory=list)
    members: dict[str, int] = field(default_factory=dict)    # node -> positions per channel at its output
    consumers: dict[str, int] = field(default_factory=dict)  # synapse reading it -> positions per channel
    neurons: list[str] = field(default_factory=list)         # spiking members (scored by svs/sca)
    problems: list[str] = field(default_factory=list)        # why it cannot be pruned

    @property
    def prunable(self) -> bool:
        return not self.problems and self.channels > 0

    def layers(self, g: Graph) -> list[str]:
        """Its producers' user-facing names (the module a node came from, else the node)."""
        return [g.node(p).source or p for p in self.producers]


def expand(keep: np.ndarray, block: int) -> np.ndarray:
    """Channel indices -> the positions they occupy in a tensor with ``block`` positions
    per channel (Flatten: C-major)."""
    keep = np.asarray(keep, np.int64)
    return keep if block == 1 else (keep[:, None] * block + np.arange(block)[None, :]).reshape(-1)


def channel_groups(g: Graph) -> list[Group]:
    """The channel groups of a float graph, in the order of their first node."""
    import networkx as nx

    uf = nx.utils.UnionFind()
    order = g.order()
    for n in order:
        uf[n]
        if op_def(g.node(n)).channel_flow(g.node(n)) in ("follow", "flatten"):
            for s in g.inputs(n):
                uf.union(s, n)
    groups: dict[str, Group] = {}
    for n in order:
        root = uf[n]
        if root not in groups:
            groups[root] = Group(name=n)
    _fill(g, order, uf, groups)
    return list(groups.values())


def _fill(g: Graph, order: list[str], uf, groups: dict[str, Group]) -> None:
    shapes = g.shapes()
    block: dict[str, int] = {}
    for n in order:
        op = g.node(n)
        flow, grp, ins = op_def(op).channel_flow(op), groups[uf[n]], g.inputs(n)
        if flow == "produce":
            block[n] = 1
            grp.producers.append(n)
            for s in ins:
                groups[uf[s]].consumers[n] = block[s]
        elif flow == "follow":
            blocks = {block[s] for s in ins}
            if len(blocks) > 1:
                grp.problems.append(f"{op.kind} '{n}' joins channels of different layouts")
            block[n] = min(blocks) if blocks else 1
        elif flow == "flatten":
            block[n] = block[ins[0]] * int(np.prod(shapes[ins[0]][1:]))
        else:
            block[n] = 1
            why = "is the network input" if role(op) == "input" else f"{op.kind} '{n}' cannot change its channels"
            grp.problems.append(why)
            for s in ins:
                groups[uf[s]].problems.append(f"read by {op.kind} '{n}', which cannot drop input channels")
        grp.members[n] = block[n]  # producers too: their output channels are the group's
        if role(op) == "neuron":
            grp.neurons.append(n)
    for o in g.outputs:
        groups[uf[o]].problems.append("holds the network output")
    for grp in groups.values():
        _channels(g, grp)


def _channels(g: Graph, grp: Group) -> None:
    counts = {int(g.node(p).weight.shape[0]) for p in grp.producers}
    if len(counts) > 1:
        grp.problems.append(f"its producers have different channel counts {sorted(counts)}")
    grp.channels = min(counts) if counts else 0
    if grp.producers:
        grp.name = grp.producers[0]
    sources = [g.node(p).source for p in grp.producers if g.node(p).source]
    if len(set(sources)) != len(sources):
        grp.problems.append("one module is used for more than one layer (shared weights)")
