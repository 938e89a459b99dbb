"""OpDef, the registry and the value interval (see the package docstring)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import SnnccError

ROLES = ("input", "synapse", "pool", "reshape", "add", "norm", "neuron")


@dataclass(frozen=True)
class Interval:
    """Every value a tensor can hold lies in [lo, hi] (exact Python integers)."""

    lo: int
    hi: int

    @property
    def mag(self) -> int:
        """The largest |value|."""
        return max(-self.lo, self.hi)

    def scaled(self, k: int) -> "Interval":
        """k * x for k >= 0 (a sum of k values of this interval)."""
        return Interval(self.lo * k, self.hi * k)


class OpDef:
    """What every stage of the compiler knows about one node kind; subclasses override
    what applies to their kind (the defaults say clearly that it does not)."""

    kind: ClassVar[str] = ""
    role: ClassVar[str] = ""
    arity: ClassVar[int | None] = 1

    def _no(self, what: str):
        raise SnnccError(f"{self.kind} nodes have no {what}")

    # ---- structure
    def shape(self, node, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        return tuple(in_shapes[0])

    def check_inputs(self, name: str, node, in_shapes: list[tuple]) -> list[str]:
        """Invariants between the node and its input shapes (before the arity check)."""
        return []

    def check(self, name: str, node, shape: tuple) -> list[str]:
        """Invariants of the node's own parameters."""
        return []

    def validate(self, name: str, node) -> list[str]:
        """Values that make the float model meaningless (not finite, out of their range,
        degenerate), each naming the parameter; checked before any quantization."""
        return []

    # ---- integer semantics and bounds
    def reference(self, node, xs: list[np.ndarray]) -> np.ndarray:
        self._no("integer reference semantics (is the graph quantized?)")

    def interval(self, node, ins: list[Interval]) -> Interval:
        self._no("value-bound rule")

    def runner(self, node, name: str, bounds, n: int, in_shapes: list[tuple]):
        """A faster function ``xs -> output`` computing exactly :meth:`reference` for one
        run of the interpreter with ``n`` samples (weights converted and buffers allocated
        once), or None: the interpreter then calls :meth:`reference` on int64 inputs.
        ``bounds`` (:class:`snncc.ir.bounds.Bounds`) proves any float path exact. Its
        inputs may hold their integers in any dtype (bool spikes, float32 sums); its
        output must stay valid for ``node.delay`` more calls (a delay line holds it)."""
        return None

    # ---- float semantics and quantization
    def float(self, name: str, node, xs: list, rt):
        """Float evaluation in torch: ``xs`` are (tensor, static) pairs (static: one
        (N, ...) value for every step, else (N, T, ...)); ``rt`` is the runtime
        (:class:`snncc.reference.float_sim.FloatRuntime`). Returns such a pair."""
        self._no("float semantics")

    def scale(self, node, in_scales: list[float], name: str) -> float:
        """The real value of one unit of this node's (non-current) output."""
        raise SnnccError(f"cannot determine the scale of '{name}' ({self.kind})")

    # ---- channels (structured pruning, snncc.passes.prune)
    def channel_flow(self, node) -> str:
        """How output channels (axis 0 of the output) relate to input channels:
        "produce" (a synapse: its own output channels, any input channels), "follow"
        (channel c in -> channel c out: norms, neurons, pools, adds, depthwise convs),
        "flatten" ((C, H, W) -> C blocks of H*W) or "fixed" (channels cannot change)."""
        return "fixed"

    def take_out(self, node, keep: np.ndarray):
        """The node with only output channels ``keep`` (its per-channel parameters)."""
        return node

    def take_in(self, node, keep: np.ndarray):
        """A producer reading only the input elements ``keep`` (channels of a (C, H, W)
        input; positions of a flat input)."""
        self._no("input channels to remove")

    # ---- reports
    def inspect(self, node) -> dict:
        """Fields of the node's row in ``snncc inspect --json``."""
        return {}

    def describe(self, row: dict) -> str:
        """The row's details in the ``snncc inspect`` table."""
        return ""

    def report(self, node, shape: tuple) -> dict:
        """Static fields of the node's row in ``snncc report`` (parameters, bits, neurons)."""
        return {}


def exact_dtype(mag: int):
    """The float dtype in which integers of magnitude below ``mag`` (every value and every
    partial sum of a computation, from :class:`snncc.ir.bounds.Bounds`) are exact in any
    order of summation: float32 below 2^24, float64 below 2^53, None beyond (int64 then)."""
    return np.float32 if mag < 1 << 24 else np.float64 if mag < 1 << 53 else None


def per_step(x, fn):
    """Apply a stateless torch function to a (tensor, static) value: static tensors
    (N, ...) directly, sequences (N, T, ...) with time folded into the batch."""
    t, static = x
    if static:
        return fn(t), True
    y = fn(t.flatten(0, 1))
    return y.reshape(t.shape[:2] + y.shape[1:]), False


def not_finite(name: str, node, fields: tuple[str, ...]) -> list[str]:
    """'<layer>: <field> has k values that are not finite (NaN or Inf)' per such field."""
    out = []
    for f in fields:
        a = np.asarray(getattr(node, f), dtype=np.float64)
        bad = int((~np.isfinite(a)).sum())
        if bad:
            out.append(f"{_label(name, node)}: {f} has {bad} value{'s' * (bad > 1)} that {'are' if bad > 1 else 'is'} "
                       f"not finite (NaN or Inf)")
    return out


def _label(name: str, node) -> str:
    return f"layer '{node.source or name}'" + (f" ({name})" if node.source and node.source != name else "")


def take_channels(node, keep: np.ndarray, fields: tuple[str, ...]):
    """``node`` with its per-channel arrays (size > 1 along axis 0) cut to ``keep``; one
    value for all channels (size 1) stays."""
    kw = {}
    for f in fields:
        a = getattr(node, f, None)
        if isinstance(a, np.ndarray) and a.ndim >= 1 and a.shape[0] > 1:
            kw[f] = a[keep].copy()
    return node.replace(**kw) if kw else node


def value_range(a: np.ndarray) -> str:
    """A compact text of an array's range: one value, or [lo, hi]."""
    a = np.asarray(a)
    if a.size == 0:
        return "-"
    lo, hi = a.min(), a.max()
    if np.issubdtype(a.dtype, np.floating):
        return f"{lo:.3g}" if lo == hi else f"[{lo:.3g}, {hi:.3g}]"
    return f"{int(lo)}" if lo == hi else f"[{int(lo)}, {int(hi)}]"


OPS: dict[str, OpDef] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    """Class decorator: register one OpDef instance under ``cls.kind``."""
    if cls.role not in ROLES:
        raise ValueError(f"{cls.__name__}: role {cls.role!r} is not one of {ROLES}")
    OPS[cls.kind] = cls()
    return cls


def op_def(node_or_kind) -> OpDef:
    """The OpDef of a node (or of a kind name)."""
    kind = node_or_kind if isinstance(node_or_kind, str) else node_or_kind.kind
    try:
        return OPS[kind]
    except KeyError:
        raise SnnccError(f"unknown node kind {kind!r}; known: {', '.join(sorted(OPS))}") from None


def shape_of(node, in_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """A node's output shape for these input shapes (its op's shape rule)."""
    return tuple(int(d) for d in op_def(node).shape(node, in_shapes))


def role(node) -> str:
    """The role of a node: input, synapse, pool, reshape, add, norm or neuron."""
    return op_def(node).role
