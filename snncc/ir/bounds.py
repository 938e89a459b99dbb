"""The one exactness proof: worst-case values of every integer tensor, from the weights and
the input range.

:class:`Bounds` walks the graph once, applying each op's rules from the op table
(``OpDef.interval`` and ``OpDef.magnitude``), and records

* ``iv[name]``: a signed :class:`~snncc.ops.Interval` holding every value the node's
  output can take in any step (delay lines start at 0, so every interval contains 0
  where it matters);
* ``acc[name]``: for synapses and sum pools, the interval of every partial sum of the
  accumulation before any shift (any subset of products, any order);
* ``neuron[name]``: for neurons, bounds of |u| and |v| carried between steps (an
  inductive invariant; None where none holds), from the interval of its input current;
* ``mag[name]`` / ``acc_mag[name]``: a coarser rule, |x| <= sum |w| max|x| per synapse,
  that the membrane lowering (``lower_membrane``), the ONNX float paths and the Loihi
  checker use today; every magnitude is >= the interval's.

Consumers: membrane lowering (can u overflow?), the C target's buffer and accumulator
types, the ONNX target's exact float paths, the Loihi 2 checker's int32 limits.
"""
from __future__ import annotations

from ..ops import Interval, op_def
from .graph import Graph


class Bounds:
    """Worst-case values of every node of an integer graph (see the module docstring)."""

    def __init__(self, graph: Graph) -> None:
        self.iv: dict[str, Interval] = {}
        self.acc: dict[str, Interval] = {}
        self.mag: dict[str, int] = {}
        self.acc_mag: dict[str, int] = {}
        self._graph = graph
        self._neuron: dict[str, tuple[int | None, int | None]] = {}
        for name, op in graph.items():
            d = op_def(op)
            ins = graph.inputs(name)
            in_iv = [self.iv[s] for s in ins]
            in_mag = [self.mag[s] for s in ins]
            self.iv[name] = d.interval(op, in_iv)
            self.mag[name] = d.magnitude(op, in_mag)
            if hasattr(d, "accumulator"):
                self.acc[name] = d.accumulator(op, in_iv[0])
                self.acc_mag[name] = d.accumulator_magnitude(op, in_mag[0])

    def input_of(self, name: str) -> Interval:
        """The interval of a single-input node's input."""
        return self.iv[self._graph.inputs(name)[0]]

    def neuron(self, name: str) -> tuple[int | None, int | None]:
        """(|u| bound or None, |v| bound or None) carried between steps by neuron ``name``
        (computed on first use: it raises where the input leaves exact int64 arithmetic)."""
        if name not in self._neuron:
            from ..ops.neurons import state_bounds

            self._neuron[name] = state_bounds(self._graph.node(name), self.input_of(name).mag)
        return self._neuron[name]


def value_bounds(graph: Graph) -> tuple[dict[str, int], dict[str, int]]:
    """(bound, acc): the magnitude view of :class:`Bounds`: worst-case |value| of every
    node's output in one step (IntLIF outputs spikes: 1), and for IntConv/IntDense/SumPool
    the worst-case |partial sum| of the accumulation before any shift."""
    b = Bounds(graph)
    return b.mag, b.acc_mag
