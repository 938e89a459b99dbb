"""The op table: everything the compiler knows about each node kind, in one place per kind.

A node kind is a frozen dataclass in :mod:`snncc.ir.nodes` (its fields and equation).
Its :class:`OpDef` here, registered under the same name, says what every stage needs:

==============  ===================================================================
``role``        what the node is in a network: input, synapse, pool, reshape, add,
                norm or neuron (passes ask the role, not the kind)
``arity``       inputs it takes (None: two or more)
``shape``       output shape from input shapes
``check``       IR invariants of its parameters (``snncc.ir.verify``)
``reference``   integer semantics on int64 numpy arrays, batch first (the spec)
``runner``      optional: the same function prepared for one interpreter run (weights
                converted once, buffers kept, float products proven exact by the bounds)
``interval``    worst-case signed interval of its output (``snncc.ir.bounds``; synapses
                and sum pools also bound every partial sum: ``accumulator``)
``float``       float semantics in torch (``snncc.reference.float_sim``)
``scale``       the real value of one unit of its output for quantization
``inspect``     its row and one-line description in ``snncc inspect``
==============  ===================================================================

Neurons (stateful) add ``state`` (the reference neuron) and ``float_neuron`` (the float
neuron over time). A kind an op does not cover raises a clear error naming both.

Adding an op: its node class in ``snncc/ir/nodes.py``, its OpDef in the module of its
family here (``inputs``, ``synapses``, ``pools``, ``tensors``, ``neurons``), and its
lowering in each emitter's table (``targets/<name>``). See DEVELOPERS.md.
"""
from __future__ import annotations

from .base import OPS, OpDef, Interval, op_def, register, role, shape_of  # noqa: F401
from . import inputs, neurons, pools, synapses, tensors  # noqa: F401,E402  (registration)
from .inputs import ENCODINGS, input_range  # noqa: E402
from .neurons import probed_only_u, records_u  # noqa: E402

__all__ = ["OPS", "OpDef", "Interval", "op_def", "register", "role", "shape_of", "ENCODINGS", "input_range", "records_u",
           "probed_only_u"]
