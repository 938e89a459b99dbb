"""The one exactness proof: worst-case values of every integer tensor, from the weights and
the input range.

:class:`Bounds` walks the graph once, applying each op's rule from the op table
(``OpDef.interval``, and ``OpDef.accumulator`` for synapses and sum pools), and records

* ``iv[name]``: a signed :class:`~snncc.ops.Interval` holding every value the node's
  output can take in any step. Every interval contains 0 (inputs and spikes start at
  0, delay lines hold 0 at first, a sum of products can be empty), which is what makes
  the accumulator rule below hold for every partial sum;
* ``acc[name]``: for synapses and sum pools, the interval of every partial sum of the
  accumulation before any shift: any subset of one output's products, in any order,
  lies between the sum of its negative and the sum of its positive products;
* ``neuron(name)``: for neurons, bounds of |u| and |v| carried between steps (an
  inductive invariant of the neuron's update; None where none holds), from the
  interval of its input current (:func:`snncc.ops.neurons.state_bounds`).

Consumers: membrane lowering (can u overflow?), the C target's buffer and accumulator
types and its lowered overflow modes (``ops.neurons.overflow_free``: an overflow that
never acts is lowered as the cheapest), the ONNX target's exact float paths and decay
shortcuts, the Loihi 2 checker's int32 limits, the reference interpreter's fast paths
(float32/float64 synapse products: ``ops.synapses.exact_float``; int32/float64 neurons:
``ops.neurons.fast_dtype``).
"""
from __future__ import annotations

from ..ops import Interval, op_def
from .graph import Graph


class Bounds:
    """Worst-case values of every node of an integer graph (see the module docstring)."""

    def __init__(self, graph: Graph) -> None:
        self.iv: dict[str, Interval] = {}
        self.acc: dict[str, Interval] = {}
        self._graph = graph
        self._neuron: dict[str, tuple[int | None, int | None]] = {}
        for name, op in graph.items():
            d = op_def(op)
            in_iv = [self.iv[s] for s in graph.inputs(name)]
            self.iv[name] = d.interval(op, in_iv)
            if hasattr(d, "accumulator"):
                self.acc[name] = d.accumulator(op, in_iv[0])

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
    """(bound, acc): worst-case |value| of every node's output in one step (IntLIF outputs
    spikes: 1), and for IntConv/IntDense/SumPool the worst-case |partial sum| of the
    accumulation before any shift (magnitudes of :class:`Bounds`'s intervals)."""
    b = Bounds(graph)
    return {k: v.mag for k, v in b.iv.items()}, {k: v.mag for k, v in b.acc.items()}
