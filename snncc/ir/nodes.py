"""Typed IR nodes, one small frozen dataclass per kind, named after the math.

Two levels share one graph type:

* float level, produced by the frontends: ``Input``, ``Conv``, ``Dense``, ``BatchNorm``,
  ``AvgPool``, ``MaxPool``, ``Flatten``, ``Add``, ``LIF``;
* integer level, produced by the passes: ``IntInput``, ``IntConv``, ``IntDense``,
  ``SumPool``, ``IntLIF`` (``MaxPool``, ``Flatten`` and ``Add`` are shared: they are exact
  on integers).

Array fields are numpy arrays; every other field is a plain scalar, string or tuple, so
a node serialises to JSON + arrays without custom code (see :mod:`snncc.ir.serialize`).
The registry ``KINDS`` maps a kind name to its class (no if/elif chains). What each
kind *does* (its shape rule, integer and float semantics, value bounds, invariants,
report rows) is its entry in the op table, :mod:`snncc.ops`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

KINDS: dict[str, type["Node"]] = {}

DECAY_ONE = 4096  # decays are 12-bit fixed point: factor = (4096 - d) / 4096


def _register(cls):
    KINDS[cls.__name__] = cls
    return cls


@dataclass(frozen=True, eq=False)
class Node:
    """Base node. ``level`` is "float", "int" or "any" (valid at both levels)."""

    level: ClassVar[str] = "any"
    source: str = ""  # qualified name of the module this node came from (for messages)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), np.ndarray)}

    def params(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not isinstance(getattr(self, f.name), np.ndarray)}

    def replace(self, **kw) -> "Node":
        return dataclasses.replace(self, **kw)


# ----------------------------------------------------------------------------- inputs
@_register
@dataclass(frozen=True, eq=False)
class Input(Node):
    """Network input, one sample per step, shape without batch: (C, H, W) or (N,).

    encoding "direct": integer pixels x_int presented at every step, real value
    x = scale * x_int; encoding "spikes": binary events (scale 1)."""

    level: ClassVar[str] = "float"
    shape: tuple = ()
    encoding: str = "direct"
    scale: float = 1.0 / 255.0
    bits: int = 8


@_register
@dataclass(frozen=True, eq=False)
class IntInput(Input):
    """Integer input: ``bits``-bit unsigned values (direct) or {0, 1} (spikes)."""

    level: ClassVar[str] = "int"


# --------------------------------------------------------------------------- synapses
@_register
@dataclass(frozen=True, eq=False)
class Conv(Node):
    """y = conv2d(x, W) + b  (cross-correlation, like torch). W: (O, C/groups, kH, kW)."""

    level: ClassVar[str] = "float"
    weight: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 1, 1)))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(1))
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1


@_register
@dataclass(frozen=True, eq=False)
class Dense(Node):
    """y = W x + b. W: (out, in)."""

    level: ClassVar[str] = "float"
    weight: np.ndarray = field(default_factory=lambda: np.zeros((1, 1)))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(1))


@_register
@dataclass(frozen=True, eq=False)
class IntConv(Node):
    """a = wrap_out_bits(conv2d(x_int, W_int) << weight_exp), delivered ``delay`` steps later.

    ``out_bits`` > 0 wraps a (two's complement) to that width, like Lava's Conv (24);
    0 leaves it unbounded.

    ``scale`` (per output channel) is the real value of one unit of ``a``: it is
    metadata for reports and for folding, never used in integer arithmetic."""

    level: ClassVar[str] = "int"
    weight: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 1, 1), np.int64))
    scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    weight_bits: int = 8
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    weight_exp: int = 0
    delay: int = 0
    out_bits: int = 0


@_register
@dataclass(frozen=True, eq=False)
class IntDense(Node):
    """a = wrap_out_bits((W_int x_int) << weight_exp), delivered ``delay`` steps later
    (``out_bits`` as in IntConv)."""

    level: ClassVar[str] = "int"
    weight: np.ndarray = field(default_factory=lambda: np.zeros((1, 1), np.int64))
    scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    weight_bits: int = 8
    weight_exp: int = 0
    delay: int = 0
    out_bits: int = 0


SYNAPSES = ("Conv", "Dense", "IntConv", "IntDense")


# ---------------------------------------------------------------------------- pooling
@dataclass(frozen=True, eq=False)
class _Pool(Node):
    kernel: tuple = (2, 2)
    stride: tuple = (2, 2)
    padding: tuple = (0, 0)


@_register
@dataclass(frozen=True, eq=False)
class AvgPool(_Pool):
    """y = mean over each window (zero padding counted, like torch's default)."""

    level: ClassVar[str] = "float"


@_register
@dataclass(frozen=True, eq=False)
class SumPool(_Pool):
    """y = sum over each window (zero padding). AvgPool's 1/(kH kW) moves into scales."""

    level: ClassVar[str] = "int"


@_register
@dataclass(frozen=True, eq=False)
class MaxPool(_Pool):
    """y = max over each window (no padding). On binary spikes this is a logical OR."""


@_register
@dataclass(frozen=True, eq=False)
class Flatten(Node):
    """(C, H, W) -> (C*H*W,) in C-major order, like torch.flatten(x, 1)."""


@_register
@dataclass(frozen=True, eq=False)
class Add(Node):
    """y = sum of the inputs (same shape). Residual connections and neuron fan-in."""


@_register
@dataclass(frozen=True, eq=False)
class BatchNorm(Node):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel (axis 0)."""

    level: ClassVar[str] = "float"
    mean: np.ndarray = field(default_factory=lambda: np.zeros(1))
    var: np.ndarray = field(default_factory=lambda: np.ones(1))
    gamma: np.ndarray = field(default_factory=lambda: np.ones(1))
    beta: np.ndarray = field(default_factory=lambda: np.zeros(1))
    eps: float = 1e-5


# ---------------------------------------------------------------------------- neurons
RESETS = ("zero", "subtract", "none")
THRESHOLD_TESTS = ("gt", "ge")
STATE_QUANTS = ("none", "ternary", "binary")
OVERFLOWS = ("saturate", "wrap", "wrap_lava")


@_register
@dataclass(frozen=True, eq=False)
class LIF(Node):
    """Float current-based LIF, one step (the order of Loihi 2's CUBA neuron)::

        u = alpha * u + x + u_bias   (alpha = 0: no current state, u = x + u_bias)
        v = beta * v + u + bias
        s = v > threshold            (only if fires; v >= threshold with threshold_test "ge")
        v = 0 | v - reset_value | v  (reset "zero" | "subtract" | "none", where s)
        v = Q(v)                     (state_quant "ternary"/"binary", SpQuant-SNN Eq. 7, 19-20)
        out = spike_value * s        (the real value one spike carries; 1 but for converted ANNs)

    Test-time neuron pruning (``presim`` = P > 0, SNNQ's TNP on ANN2SNN_SRP's rule): at
    step t = P, before integrating, ``keep = v > prune_level``, u = 0, v = v_init; from
    then on the output is ``out * keep`` (the neuron integrates, fires and resets as
    before; only its output is silenced). See docs/conversion.md.

    ``bias`` is per channel: the neuron's own (NIR's leak towards v_leak) plus, once
    quantized, the biases of the incoming synapses when there is no current state. With a
    current state (alpha > 0) the synapse biases are part of the input current and decay
    with it: quantization moves them into ``u_bias`` (0 in a traced float graph, where they
    are still on the synapses).
    A neuron with ``fires=False`` is a readout: its v is the network output.
    ``scale`` is set by quantization: the real value of one unit of integer input current."""

    level: ClassVar[str] = "float"
    beta: float = 1.0
    alpha: float = 0.0
    threshold: np.ndarray = field(default_factory=lambda: np.ones(1))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(1))
    reset: str = "zero"
    reset_value: np.ndarray = field(default_factory=lambda: np.ones(1))
    v_init: float | np.ndarray = 0.0  # one value, or per channel (a NIR neuron starting at its v_leak)
    state_quant: str = "none"
    state_level: np.ndarray = field(default_factory=lambda: np.ones(1))
    fires: bool = True
    scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    u_bias: np.ndarray = field(default_factory=lambda: np.zeros(1))
    threshold_test: str = "gt"   # "ge" for tools that spike at v >= threshold (NIR: SpikingJelly, Sinabs)
    spike_value: float = 1.0     # real value of one spike (ANN-to-SNN conversion: the threshold)
    presim: int = 0              # TNP presimulation steps P (0: no pruning)
    prune_level: np.ndarray = field(default_factory=lambda: np.zeros(1))  # TNP: keep where v > this at t = P


@_register
@dataclass(frozen=True, eq=False)
class IntLIF(Node):
    """Integer LIF; with the defaults it is exactly Lava's bit-accurate Loihi 2 CUBA LIF
    (``du`` here = Lava's du + 1). Per step t (0, 1, ... from the start of the run), with
    a the integer input::

        u = v = 0   if reset_interval > 0 and t % reset_interval == reset_offset
        decay(x, d) = sign(x * (4096 - d)) * (|x * (4096 - d)| >> 12)
        u = ovf_u(decay(u, du) + (a << act_shift) + u_bias)
        v = ovf_v(decay(v, dv) + u + bias)
        s = v > threshold                       (strict; only if fires)
        v = where(s, 0 | v - reset_value | v)   (reset "zero" | "subtract" | "none")
        q = round-half-away(v / L) clipped to [-1, 1] (ternary) or [0, 1] (binary);  v = q * L

    ``threshold``, ``bias``, ``reset_value``, ``v_init``, ``state_level`` (L) and ``u_bias``
    are int64 arrays of shape (1,) or (channels,) broadcast along the channel axis (axis 0
    of the neuron's shape). ``u_bias`` is a constant input current (the synapse biases of a
    neuron with a current state, which decay with u; 0 on Loihi 2's LIF). ``scale`` is the
    real value of one unit of v (metadata).

    The periodic reset (``reset_interval`` > 0, 0 <= ``reset_offset`` < ``reset_interval``)
    is Lava's ``LIFReset``: streamed samples of ``reset_interval`` steps each, the state
    cleared before each sample reaches the layer (lava-dl's netx staggers the offset by
    one step per layer). ``reset_interval`` = 0: never (each run starts from u = 0,
    v = v_init).

    Test-time neuron pruning (``presim`` = P > 0; SNNQ's TNP, ANN2SNN_SRP's residual
    membrane rule; docs/conversion.md)::

        at t == P, before integrating:  keep = v > prune_level;  u = 0;  v = v_init
        for t >= P:                     s = s & keep    (state updates as without pruning)

    (``prune_level`` per channel like the threshold; a neuron with TNP has no periodic
    reset.)

    SpQuant-SNN's sparsity masks (section 4.3; docs/semantics.md "Sparsity masks"), with
    u0, v0 the state before the step and a the input current (before act_shift)::

        spatial (spatial_level >= 0, Eq. 21-22): where |a| <= spatial_level the neuron is
            skipped: u, v = u0, v0 and s = 0
        negative (neg_mask, Eq. 19-20):  n = v < 0;  v = where(n, 0, v);  s = s & ~n
        channel (gate_weight (C, C) non-empty, Eq. 23):  p_c = sum over the positions of
            channel c of the membrane prior v0;  z = gate_weight @ p;
            s = s & (z_c >= gate_level_c) per channel

    applied in this order after the update, before the TNP mask (``spatial_level`` = -1,
    ``neg_mask`` False and an empty ``gate_weight``: no mask)."""

    level: ClassVar[str] = "int"
    du: int = DECAY_ONE
    dv: int = 0
    act_shift: int = 6
    threshold: np.ndarray = field(default_factory=lambda: np.ones(1, np.int64))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    reset: str = "zero"
    reset_value: np.ndarray = field(default_factory=lambda: np.ones(1, np.int64))
    v_init: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    state_quant: str = "none"
    state_level: np.ndarray = field(default_factory=lambda: np.ones(1, np.int64))
    u_bits: int = 24
    u_overflow: str = "wrap_lava"
    v_bits: int = 24
    v_overflow: str = "saturate"
    fires: bool = True
    scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    reset_interval: int = 0
    reset_offset: int = 0
    u_bias: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    presim: int = 0
    prune_level: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    neg_mask: bool = False       # SpQuant Eq. 19-20: negative membrane -> 0, its spike disabled
    spatial_level: int = -1      # SpQuant Eq. 21-22: skip neurons with |a| <= this (-1: off)
    gate_weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))  # Eq. 23 (C, C); empty: off
    gate_level: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # keep channel c: z_c >= this


NEURONS = ("LIF", "IntLIF")
