"""Neurons: LIF (float) and IntLIF (integer; Lava's bit-accurate CUBA LIF generalised).

The equations are in the node docstrings (``snncc.ir.nodes``) and docs/semantics.md.
``IntLIF.state`` is the reference neuron; ``LIF.float_neuron`` runs the float neuron
over time (with the arctan surrogate gradient when training)."""
from __future__ import annotations

import numpy as np

from ..errors import SnnccError
from ..ir.ints import fits_signed
from ..ir.nodes import DECAY_ONE, OVERFLOWS, RESETS, STATE_QUANTS, THRESHOLD_TESTS
from ..reference import kernels as K
from ..reference.kernels import DECAY_SHIFT
from .base import Interval, OpDef, _label, not_finite, register, take_channels, value_range

# the signed limits a state bound is tried against (registers and C storage types)
I32_MAX = (1 << 31) - 1
SAFE = 1 << 50  # below this every int64 intermediate of a step (decay product, sums) is exact
TYPE_LIMITS = (127, 32767, I32_MAX, SAFE - 1)


def _chan(a: np.ndarray, ndim: int) -> np.ndarray:
    """Broadcast a per-channel (C,) or (1,) array along axis 1 of an (N, C, ...) tensor."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


def _chan_mask(m: np.ndarray, ndim: int) -> np.ndarray:
    """A per-sample, per-channel (N, C) mask broadcast over the positions of (N, C, ...)."""
    return m.reshape(m.shape + (1,) * (ndim - 2))


def _count_masked(state) -> None:
    """Add the masks of the step just run (``state.masked``) to ``state.masked_count``
    (what the report reads), for either neuron state."""
    for k, m in state.masked.items():
        state.masked_count[k] = state.masked_count.get(k, 0) + int(m.sum())


class NeuronState:
    """u, v of one IntLIF layer for a batch: the reference neuron (docs/semantics.md)."""

    def __init__(self, op, shape: tuple[int, ...]) -> None:
        self.op = op
        nd = len(shape)
        self.v = np.broadcast_to(_chan(op.v_init, nd), shape).astype(np.int64).copy()
        self.u = np.zeros(shape, np.int64)
        self.thr, self.bias = _chan(op.threshold, nd), _chan(op.bias, nd)
        self.rv, self.level = _chan(op.reset_value, nd), _chan(op.state_level, nd)
        self.u_bias = _chan(op.u_bias, nd)
        self.keep: np.ndarray | None = None  # TNP: the neurons left firing after the presimulation
        self.masked: dict[str, np.ndarray] = {}  # the sparsity masks of the last step (True: masked)
        self.masked_count: dict[str, int] = {}  # their True entries summed over every step so far
        self._work: tuple[np.ndarray, np.ndarray] | None = None  # temporaries of a step

    def _scratch(self) -> tuple[np.ndarray, np.ndarray]:
        """Two int64 arrays of the state's shape for temporaries (kept between steps)."""
        if self._work is None or self._work[0].shape != self.v.shape:
            self._work = (np.empty(self.v.shape, np.int64), np.empty(self.v.shape, np.int64))
        return self._work

    def step(self, a: np.ndarray, t: int) -> np.ndarray:
        """Step ``t`` (0-based) with input current ``a`` (integers of any dtype: a synapse's
        runner may give float32); returns the spikes."""
        op = self.op
        a = a if a.dtype == np.int64 else a.astype(np.int64)
        if op.reset_interval and t % op.reset_interval == op.reset_offset:  # Lava's LIFReset
            self.u = np.zeros_like(self.u)
            self.v = np.zeros_like(self.v)
        if op.presim and t == op.presim:  # TNP: prune by the residual membrane, start again
            self.keep = self.v > _chan(op.prune_level, self.v.ndim)
            self.u = np.zeros_like(self.u)
            self.v = np.broadcast_to(_chan(op.v_init, self.v.ndim), self.v.shape).astype(np.int64)
        u0, v0 = self.u, self.v  # the previous state: never written in place below
        self.a = a  # the step's input current (read by the spatial mask's calibration and the report)
        gate = K.channel_gate(v0, op.gate_weight, op.gate_level) if op.gate_weight.size else None  # on the prior
        scratch = self._scratch()
        u = a << op.act_shift
        if op.du != DECAY_ONE:
            u += K.decay(self.u, op.du, scratch)
        if op.u_bias.any():
            u += self.u_bias
        self.u = K.overflow(u, op.u_bits, op.u_overflow, out=u)
        v = K.decay(self.v, op.dv, scratch)  # a temporary: v below is a fresh array
        v += self.u
        if op.bias.any():
            v += self.bias
        v = K.overflow(v, op.v_bits, op.v_overflow, out=v)
        if op.fires:
            s = v > self.thr
            if op.reset == "zero":
                v = np.where(s, 0, v)
            elif op.reset == "subtract":
                v = np.where(s, v - self.rv, v)
            else:
                v = v.copy()
        else:
            s = np.zeros(v.shape, bool)
            v = v.copy()
        self.v = K.state_quant(v, self.level, op.state_quant)
        s = self._masks(a, u0, v0, s, gate)
        if self.keep is not None:
            s = s & self.keep
        return s.astype(np.int64)

    def _masks(self, a, u0, v0, s, gate) -> np.ndarray:
        """SpQuant-SNN's masks after the update (IntLIF docstring, docs/semantics.md):
        spatial (skipped neurons keep u0, v0 and do not fire), negative, and the channel
        gate ``gate`` (N, C) computed on the membrane prior v0."""
        op = self.op
        self.masked = {}
        if op.spatial_level >= 0:
            skip = np.abs(a) <= op.spatial_level
            self.u, self.v = np.where(skip, u0, self.u), np.where(skip, v0, self.v)
            s = s & ~skip
            self.masked["spatial"] = skip
        if op.neg_mask:
            neg = self.v < 0
            self.v = np.where(neg, 0, self.v)
            s = s & ~neg
            self.masked["neg"] = neg
        if gate is not None:
            off = ~gate  # (N, C)
            s = s & ~_chan_mask(off, s.ndim)
            self.masked["channel"] = off
        _count_masked(self)
        return s


FLOAT_EXACT = 1 << 53  # every integer of magnitude below this is a float64
INT32_EXACT = 1 << 31


class FastNeuronState:
    """The reference neuron (:class:`NeuronState`) computed in place in int32 or float64,
    for a layer without TNP whose every intermediate value the bounds prove below 2^31 or
    2^53 (:func:`fast_dtype`): then each operation gives the same integers. A decay by d
    multiplies by (4096 - d) / 4096 = p / 2^q (p odd) and rounds toward zero: in float64
    the product is exact and trunc rounds; in int32 x p is shifted right by q after adding
    2^q - 1 to negative values. An overflow the bounds do not rule out is checked by one
    min and max per step. A quantized membrane compares v with ceil(L / 2) (2v >= L
    without computing 2v, which may leave int32); the masks follow NeuronState._masks in
    its order, on copies of the prior state, and count what they mask the same way; the
    channel gate's sums of the prior membrane are int64 (they leave the bounds).
    Spikes come back as a bool array rewritten at the next step; ``v``, ``u`` and ``a``
    read as int64 like NeuronState's."""

    def __init__(self, op, shape: tuple[int, ...], fits: tuple[bool, bool], dtype) -> None:
        self.op, nd, self.dtype = op, len(shape), dtype
        self._v = np.broadcast_to(_chan(op.v_init, nd), shape).astype(dtype)
        self._u, self._tmp = np.zeros(shape, dtype), np.empty(shape, dtype)
        self._s, self._m, self._a = np.zeros(shape, bool), np.empty(shape, bool), None
        self.u_fits, self.v_fits = fits  # no overflow possible (bounds)
        self.thr, self.rv = _chan(op.threshold, nd).astype(dtype), _chan(op.reset_value, nd).astype(dtype)
        self.bias = _chan(op.bias, nd).astype(dtype) if op.bias.any() else None
        self.u_bias = _chan(op.u_bias, nd).astype(dtype) if op.u_bias.any() else None
        self.a_scale = dtype(1 << op.act_shift)
        self.keep, self.masked, self.masked_count = None, {}, {}
        if op.state_quant != "none":  # q = 1 where 2v >= L, i.e. v >= ceil(L / 2); -1 where v <= -ceil(L / 2)
            self.level = _chan(op.state_level, nd).astype(dtype)
            self.half = _chan((op.state_level + 1) // 2, nd).astype(dtype)
            self._q = np.empty(shape, bool)
        if op.spatial_level >= 0:  # the prior state, restored where the input is small
            self._u0, self._v0 = np.empty(shape, dtype), np.empty(shape, dtype)

    v = property(lambda self: self._v.astype(np.int64), doc="the membrane (int64)")
    u = property(lambda self: self._u.astype(np.int64), doc="the current (int64)")
    a = property(lambda self: np.asarray(self._a).astype(np.int64), doc="the step's input current (int64)")

    def step(self, a: np.ndarray, t: int) -> np.ndarray:
        """NeuronState.step's update, on the state in place."""
        op, u, v, tmp = self.op, self._u, self._v, self._tmp
        if op.reset_interval and t % op.reset_interval == op.reset_offset:
            u.fill(0)
            v.fill(0)
        self._a = a
        if op.spatial_level >= 0:
            np.copyto(self._u0, u)
            np.copyto(self._v0, v)
        gate = K.channel_gate(v, op.gate_weight, op.gate_level) if op.gate_weight.size else None
        if op.du == DECAY_ONE:
            np.multiply(a, self.a_scale, out=u, dtype=self.dtype, casting="unsafe")  # exact integers
        else:
            _decay_fast(u, op.du, tmp)
            u += np.multiply(a, self.a_scale, out=tmp, dtype=self.dtype, casting="unsafe")
        if self.u_bias is not None:
            u += self.u_bias
        if not self.u_fits:
            _overflow_fast(u, op.u_bits, op.u_overflow, self._m, tmp)
        _decay_fast(v, op.dv, tmp)
        v += u
        if self.bias is not None:
            v += self.bias
        if not self.v_fits:
            _overflow_fast(v, op.v_bits, op.v_overflow, self._m, tmp)
        if op.fires:
            np.greater(v, self.thr, out=self._s)
            if op.reset == "zero":  # v x (not fired): masked ufuncs and copies are slow in numpy
                np.logical_not(self._s, out=self._m)
                np.multiply(v, self._m, out=v)
            elif op.reset == "subtract":
                tmp[...] = self._s  # 1 where it fired
                tmp *= self.rv
                v -= tmp
        if op.state_quant != "none":
            self._quantize(v, tmp)
        if op.spatial_level >= 0 or op.neg_mask or gate is not None:
            self._masks(a, gate)
        return self._s

    def _quantize(self, v: np.ndarray, tmp: np.ndarray) -> None:
        """kernels.state_quant in place: v = L (v >= ceil(L/2)), -L (ternary, v <= -ceil(L/2)), else 0."""
        q = self._q
        if self.op.state_quant == "ternary":
            np.less_equal(v, -self.half, out=q)
            np.multiply(q, self.level, out=tmp, casting="unsafe")
        np.greater_equal(v, self.half, out=q)
        np.multiply(q, self.level, out=v, casting="unsafe")
        if self.op.state_quant == "ternary":
            v -= tmp

    def _masks(self, a: np.ndarray, gate) -> None:
        """NeuronState._masks on the state in place (the same masks, order and counts)."""
        op, s = self.op, self._s
        self.masked = {}
        if op.spatial_level >= 0:
            skip = np.abs(a) <= op.spatial_level
            np.copyto(self._u, self._u0, where=skip)
            np.copyto(self._v, self._v0, where=skip)
            s &= ~skip
            self.masked["spatial"] = skip
        if op.neg_mask:
            neg = self._v < 0
            np.maximum(self._v, 0, out=self._v)
            s &= ~neg
            self.masked["neg"] = neg
        if gate is not None:
            off = ~gate
            s &= ~_chan_mask(off, s.ndim)
            self.masked["channel"] = off
        _count_masked(self)


def _decay_fast(x: np.ndarray, d: int, tmp: np.ndarray) -> None:
    """kernels.decay in place (see FastNeuronState), ``tmp`` a temporary of x's shape."""
    if d == DECAY_ONE:
        x.fill(0)
        return
    p, q = _decay_factor(d)
    if x.dtype.kind == "f":
        if q:
            x *= p / (1 << q)
            np.trunc(x, out=x)
        return
    if p != 1:
        x *= p
    if q:
        np.right_shift(x, 31, out=tmp)  # -1 where negative: add 2^q - 1 there, then floor
        tmp &= (1 << q) - 1
        x += tmp
        x >>= q


def _decay_factor(d: int) -> tuple[int, int]:
    """(p, q) with (4096 - d) / 4096 = p / 2^q in lowest terms."""
    p, q = DECAY_ONE - d, DECAY_SHIFT
    while p % 2 == 0 and q:
        p, q = p // 2, q - 1
    return p, q


def _overflow_fast(x: np.ndarray, bits: int, mode: str, mask: np.ndarray, tmp: np.ndarray) -> None:
    """kernels.overflow in place on int32 or float64 integers (the bounds keep every
    value and x +- 2^b exact); ``mask`` (bool) and ``tmp`` temporaries of x's shape.
    Nothing where one min and max show every value in range.

    In int32 the two wraps are shifts: two's complement into b bits is the low b bits
    sign-extended, (x << (32 - b)) >> (32 - b) (the left shift on the unsigned view, where
    it is defined modulo 2^32); Lava's one fold is that wrap of x - 1, plus 1, wherever
    every value lies within one fold ([-3 2^(b-1) + 1, 3 2^(b-1)], seen by the same min
    and max), and two masked folds otherwise."""
    m = 1 << (bits - 1)
    lo, hi = x.min(initial=0), x.max(initial=0)
    if lo >= -(m - 1) and hi <= m - 1:
        return
    if mode == "saturate":  # clip to +-(2^(b-1) - 1): one pass in int32, one per side in float64
        if x.dtype == np.int32 or (hi > m - 1 and lo < -(m - 1)):
            np.clip(x, -(m - 1), m - 1, out=x)
        elif hi > m - 1:
            np.minimum(x, m - 1, out=x)
        else:
            np.maximum(x, -(m - 1), out=x)
    elif x.dtype == np.int32 and (mode == "wrap" or (lo >= 1 - 3 * m and hi <= 3 * m)):
        k, lava = 32 - bits, mode == "wrap_lava"
        xu = x.view(np.uint32)
        if lava:
            x -= 1  # no overflow: |x| <= 3 2^(b-1) < 2^31
        xu <<= k
        x >>= k
        if lava:
            x += 1
    elif mode == "wrap_lava":  # one fold: x - 2^b where x > 2^(b-1), x + 2^b where x <= -2^(b-1)
        for far, fold, cmp, edge in ((hi > m, -2 * m, np.greater, m), (lo <= -m, 2 * m, np.less_equal, -m)):
            if far:
                tmp[...] = cmp(x, edge, out=mask)
                tmp *= fold
                x += tmp
    else:  # wrap in float64, two's complement: x - 2^b floor((x + 2^(b-1)) / 2^b)
        np.add(x, float(m), out=tmp)
        tmp *= 1.0 / (2 * m)
        np.floor(tmp, out=tmp)
        tmp *= float(2 * m)
        x -= tmp


def fast_dtype(op, a_mag: int, u_state: int | None, v_state: int | None):
    """How :class:`FastNeuronState` computes this IntLIF exactly, given the bound of |a|
    and the state bounds of :func:`state_bounds` (Bounds.neuron): (dtype, (u fits, v
    fits)) with dtype int32 or float64, whichever holds every intermediate value, and the
    flags of :func:`overflow_free` (the per-step check is skipped); None where the
    int64 NeuronState runs (TNP, no state bound, or an intermediate at 2^53 or beyond)."""
    if op.presim or v_state is None or (u_state is None and op.du != DECAY_ONE):
        return None
    _, u_pre, _, v_pre = update_magnitudes(op, a_mag, (u_state, v_state))
    rv = int(np.abs(op.reset_value).max())
    fits = overflow_free(op, a_mag, (u_state, v_state))  # u_pre and v_pre against the registers
    # an overflow that may happen computes x +- 2^(b-1) and x +- 2^b: room for 2^(b+1) more
    big = max((u_state or 0) * _decay_factor(op.du)[0], v_state * _decay_factor(op.dv)[0], a_mag << op.act_shift,
              u_pre + (0 if fits[0] else 2 << op.u_bits), v_pre + (0 if fits[1] else 2 << op.v_bits),
              overflow_magnitude(v_pre, op.v_bits, op.v_overflow) + rv, int(np.abs(op.threshold).max()),
              int(np.abs(op.v_init).max()), 1 << op.act_shift,
              int(np.abs(op.state_level).max()) if op.state_quant != "none" else 0)
    for dtype, limit in ((np.int32, INT32_EXACT), (np.float64, FLOAT_EXACT)):
        if big < limit:
            return dtype, fits
    return None


# ----------------------------------------------------------------------- state bounds
def records_u(op, schedule: str | None) -> bool:
    """Whether a neuron's u is part of its state (recorded by ``probe_state``, kept by
    every target): always on Lava's schedule (Loihi's LIF has a u register, which holds
    the step's input current when du = 4096, so results line up with a Lava probe); on
    the zero-latency schedule only with a current state (du != 4096: a du = 4096 neuron
    keeps no u there, which saves the C target that memory)."""
    return op.du != DECAY_ONE or schedule == "lava"


def probed_only_u(op, schedule: str | None) -> bool:
    """Whether a neuron's u is recorded (``records_u``) but carries nothing between steps
    (du = 4096 on Lava's schedule: u is the step's current, decay(u, 4096) = 0), so a
    target needs it only in a build that probes state (the C target keeps it under
    -DSNNCC_PROBE_STATE)."""
    return op.du == DECAY_ONE and records_u(op, schedule)


def overflow_magnitude(p: int, bits: int, mode: str) -> int:
    """Largest |overflow(x)| over |x| <= p (kernels.overflow)."""
    m = 1 << (bits - 1)
    if p <= m - 1:
        return p
    if mode == "saturate":
        return m - 1
    if mode == "wrap":
        return m
    return p if p <= m else max(m, p - 2 * m)  # wrap_lava: one fold


def _decay_mag(b: int, d: int) -> int:
    return (b * (DECAY_ONE - d)) >> 12


def _invariant(g, floor: int, candidates) -> int | None:
    """Smallest candidate B >= floor with g(B) <= B: since g is monotone, |state| <= B
    holds at every step by induction. None if no candidate is invariant (the state may
    grow with time, e.g. wrap_lava with inputs above twice the register range)."""
    for b in sorted({int(c) for c in candidates if c >= floor}):
        if g(b) <= b:
            return b
    return None


def state_bounds(op, a_mag: int) -> tuple[int | None, int | None]:
    """Bounds of |u| (None: no current state, or no bound found) and |v| carried between
    steps of one IntLIF whose input current is at most ``a_mag`` in magnitude. Raises
    where a << act_shift leaves the exactly representable int64 range."""
    amp = (a_mag << op.act_shift) + int(np.abs(op.u_bias).max())
    if amp >= SAFE:
        raise SnnccError(f"IntLIF input reaches {amp} after act_shift: beyond exact int64 range")
    m_u, m_v = 1 << (op.u_bits - 1), 1 << (op.v_bits - 1)

    def g_u(b):
        return overflow_magnitude(_decay_mag(b, op.du) + amp, op.u_bits, op.u_overflow)

    if op.du == DECAY_ONE:
        u_bound, u_state = g_u(0), None
    else:
        cands = (m_u - 1, m_u) + TYPE_LIMITS + ((-(-amp * DECAY_ONE // op.du),) if op.du else ())
        u_bound = u_state = _invariant(g_u, 0, cands)
    if u_bound is None:
        return None, None
    bias, rv, level, vinit = (int(np.abs(getattr(op, f)).max()) for f in ("bias", "reset_value", "state_level",
                                                                             "v_init"))
    sub = rv if op.fires and op.reset == "subtract" else 0

    def g_v(b):
        p = overflow_magnitude(_decay_mag(b, op.dv) + u_bound + bias, op.v_bits, op.v_overflow)
        return level if op.state_quant != "none" else p + sub

    k = u_bound + bias + sub
    cands = (m_v - 1, m_v, m_v + sub, level, vinit) + TYPE_LIMITS + ((-(-k * DECAY_ONE // op.dv),) if op.dv else ())
    return u_state, _invariant(g_v, vinit, cands)


def update_magnitudes(op, a_mag: int, state: tuple[int | None, int | None]) -> tuple | None:
    """(amp, u_pre, u_post, v_pre): bounds of |a << act_shift + u_bias|, of u before and
    after its overflow and of v before its overflow, in one step of an IntLIF whose input
    current is at most ``a_mag`` and whose carried state obeys ``state`` (the bounds of
    :func:`state_bounds`); v_pre None without a bound of v; None where u has none (a
    current state without an invariant)."""
    u_state, v_state = state
    if op.du != DECAY_ONE and u_state is None:
        return None
    amp = (a_mag << op.act_shift) + int(np.abs(op.u_bias).max())
    u_pre = _decay_mag(u_state or 0, op.du) + amp
    u_post = overflow_magnitude(u_pre, op.u_bits, op.u_overflow)
    v_pre = None if v_state is None else _decay_mag(v_state, op.dv) + u_post + int(np.abs(op.bias).max())
    return amp, u_pre, u_post, v_pre


def overflow_free(op, a_mag: int, state: tuple[int | None, int | None]) -> tuple[bool, bool]:
    """(u, v): whether u's and v's overflow provably never changes a value of one IntLIF
    whose input current is at most ``a_mag`` and whose carried state obeys ``state`` (the
    bounds of :func:`state_bounds`): every value reaching it lies within
    [-(2^(bits-1) - 1), 2^(bits-1) - 1], where saturate, wrap and wrap_lava all return
    their input. A target may then lower the overflow as whichever mode costs least."""
    mags = update_magnitudes(op, a_mag, state)
    if mags is None:
        return False, False
    _, u_pre, _, v_pre = mags
    return u_pre <= (1 << (op.u_bits - 1)) - 1, v_pre is not None and v_pre <= (1 << (op.v_bits - 1)) - 1


def _tnp_problems(name: str, op, shape) -> list[str]:
    """Test-time neuron pruning fields: presim an integer >= 0, prune_level per channel,
    no periodic reset beside it."""
    p = op.presim
    if not isinstance(p, (int, np.integer)) or isinstance(p, bool) or p < 0:
        return [f"{name}: presim={p!r}: the TNP presimulation steps must be an integer >= 0 (0: no pruning)"]
    pl = np.asarray(op.prune_level)
    errs = [] if pl.ndim == 1 and pl.shape[0] in (1, shape[0]) else [
        f"{name}: prune_level has shape {pl.shape}, expected (1,) or ({shape[0]},)"]
    if p and getattr(op, "reset_interval", 0):
        errs.append(f"{name}: test-time neuron pruning (presim={p}) and a periodic reset (reset_interval="
                    f"{op.reset_interval}) do not combine: a streamed sample has no presimulation")
    return errs


def mask_label(op) -> str:
    """The sparsity masks of an IntLIF in words ('' for none)."""
    parts = (["negative"] if op.neg_mask else []) + (
        [f"spatial |a|<={op.spatial_level}"] if op.spatial_level >= 0 else []) + (
        [f"channel gate {op.gate_weight.shape[0]}x{op.gate_weight.shape[1]}"] if op.gate_weight.size else [])
    return ", ".join(parts)


def masks_of(op) -> str:
    """The sparsity masks of any node in words ('' for none, and for every non-IntLIF)."""
    return mask_label(op) if getattr(op, "kind", "") == "IntLIF" else ""


def mask_problems(name: str, op, shape) -> list[str]:
    """SpQuant-SNN's sparsity mask fields (IntLIF docstring): types, shapes, no mask on a
    readout, and the channel gate's sums exact in int64 (|z| < 2^62)."""
    errs = []
    if not isinstance(op.neg_mask, (bool, np.bool_)):
        errs.append(f"{name}: neg_mask={op.neg_mask!r} must be true or false")
    sl = op.spatial_level
    if not isinstance(sl, (int, np.integer)) or isinstance(sl, bool) or sl < -1:
        errs.append(f"{name}: spatial_level={sl!r} must be an integer >= 0 (|a| <= it is skipped) or -1 (off)")
    g, lv, c = np.asarray(op.gate_weight), np.asarray(op.gate_level), shape[0]
    if g.dtype != np.int64 or lv.dtype != np.int64:
        errs.append(f"{name}: gate_weight and gate_level must be int64, got {g.dtype} and {lv.dtype}")
    if g.size and (g.shape != (c, c) or lv.ndim != 1 or lv.shape[0] not in (1, c)):
        errs.append(f"{name}: channel gate weight {g.shape} / level {lv.shape}: expected ({c}, {c}) and (1,) or ({c},)")
    elif g.size and g.dtype == np.int64:
        per = int(np.prod(shape[1:], dtype=np.int64)) << (op.v_bits - 1)
        if int(np.abs(g).sum(1).max()) * per >= 1 << 62:
            errs.append(f"{name}: channel gate sums may reach {int(np.abs(g).sum(1).max()) * per}: beyond 2^62 "
                        "(int64 exactness); use smaller gate weights or fewer membrane bits")
    if not op.fires and (op.neg_mask or sl >= 0 or g.size):
        errs.append(f"{name}: a readout (no firing) takes no sparsity mask: its membrane is the network output")
    return errs


# --------------------------------------------------------------------------- the ops
@register
class LIFOp(OpDef):
    kind = "LIF"
    role = "neuron"

    def channel_flow(self, node):
        return "follow"

    def take_out(self, node, keep):
        return take_channels(node, keep, ("threshold", "bias", "reset_value", "v_init", "state_level", "scale",
                                          "u_bias"))

    def check(self, name, node, shape):
        errs = [f"{name}: unknown reset {node.reset!r}"] if node.reset not in RESETS else []
        if node.threshold_test not in THRESHOLD_TESTS:
            errs.append(f"{name}: threshold_test {node.threshold_test!r}: choose gt (v > threshold) or ge (v >=)")
        return errs + _tnp_problems(name, node, shape)

    def validate(self, name, node):
        errs = not_finite(name, node, ("threshold", "bias", "reset_value", "v_init", "state_level", "u_bias"))
        for f, lo, hi, hi_open in (("beta", 0.0, 1.0, False), ("alpha", 0.0, 1.0, True)):
            v = getattr(node, f)
            if not (np.isfinite(v) and lo <= v and (v < hi if hi_open else v <= hi)):
                errs.append(f"{_label(name, node)}: {f} = {v} outside [{lo:g}, {hi:g}{')' if hi_open else ']'} (a decay "
                            f"factor per step)")
        thr = np.asarray(node.threshold, np.float64)
        if node.fires and np.all(np.isfinite(thr)) and np.any(thr <= 0):
            errs.append(f"{_label(name, node)}: threshold {thr.min():g} must be > 0 (a neuron at rest, or driven "
                        "by a negative bias, would fire at every step); in a NIR graph: v_threshold > v_reset")
        if node.state_quant != "none" and np.any(np.asarray(node.state_level) <= 0):
            errs.append(f"{_label(name, node)}: state_level must be > 0 for a {node.state_quant} membrane")
        if not (np.isfinite(node.spike_value) and node.spike_value > 0):
            errs.append(f"{_label(name, node)}: spike_value = {node.spike_value} must be a number > 0 (the real value "
                        "of one spike)")
        return errs + not_finite(name, node, ("prune_level",))

    def scale(self, node, in_scales, name):
        return float(node.spike_value)  # one spike is worth spike_value (1, or a converted ANN's threshold)

    def float(self, name, node, xs, rt):
        s, _, _ = self.float_neuron(name, node, *xs[0], rt)
        return s, False

    def ann(self, name, op, x, static, rt):
        """The activation a converted neuron stands for, on its one-step input (N, 1, ...):
        clamp(x, 0, theta), or QCFS theta clamp(floor(x L / theta + 1/2) / L, 0, 1) with
        L = meta["converted"] levels (straight-through floor); a readout passes x."""
        from ..nn import _FloorSTE

        x = x.unsqueeze(1) if static else x
        c = (1, 1, -1) + (1,) * (x.dim() - 3)
        x = x + rt.const((name, "bias"), op.bias).reshape(c)
        if not op.fires:
            return x
        info = rt.g.meta.get("converted", {}).get("neurons", {}).get(name)
        if info is None:
            raise SnnccError(f"neuron '{name}' ({op.source}) is a spiking neuron of the model, not a converted ANN "
                             "activation: an ANN-mode evaluation (BWR mode \"ann\") needs a model compiled with "
                             "--convert")
        thr = float(np.asarray(op.threshold).reshape(-1)[0])
        if info["levels"]:
            q = _FloorSTE.apply(x * (info["levels"] / thr) + 0.5) / info["levels"]
            return rt.torch.clamp(q, 0.0, 1.0) * thr
        return rt.torch.clamp(x, min=0.0, max=thr)

    def float_neuron(self, name, op, x, static, rt, keep_post: bool = False):
        """Run the neuron over time: (spikes, v before the reset, v after the step or None
        unless ``keep_post``), each (N, T, ...). With ``rt.train`` the spike is the arctan
        surrogate's."""
        from ..nn import _SpikeATan, _StateQuant

        torch = rt.torch
        x0 = x if static else x[:, 0]
        c = (1, -1) + (1,) * (x0.dim() - 2)
        thr = rt.const((name, "thr"), op.threshold).reshape(c)
        bias = rt.const((name, "bias"), op.bias).reshape(c)
        u_bias = rt.const((name, "u_bias"), op.u_bias).reshape(c) if op.u_bias.any() else None
        v0 = rt.const((name, "v_init"), np.asarray(op.v_init, np.float64).reshape(-1)).reshape(c)
        v, u, keep = torch.zeros_like(x0) + v0, torch.zeros_like(x0), None
        spikes, vpre, vpost = [], [], []
        for t in range(rt.steps if static else x.shape[1]):
            xt = x if static else x[:, t]
            if op.presim and t == op.presim:  # TNP: prune by the residual membrane, start again
                keep = (v > rt.const((name, "prune"), op.prune_level).reshape(c)).to(v.dtype)
                v, u = torch.zeros_like(x0) + v0, torch.zeros_like(x0)
            u = op.alpha * u + xt if op.alpha else xt
            if u_bias is not None:
                u = u + u_bias
            v = op.beta * v + u + bias
            vpre.append(v)
            if op.fires:
                ge = op.threshold_test == "ge"
                s = _SpikeATan.apply(v - thr, rt.slope, ge) if rt.train else ((v >= thr) if ge else (v > thr)).to(v.dtype)
                if op.reset == "zero":
                    v = v * (1 - s)
                elif op.reset == "subtract":
                    v = v - s * rt.const((name, "rv"), op.reset_value).reshape(c)
            else:
                s = torch.zeros_like(v)
            if op.state_quant != "none":
                lvl = rt.const((name, "level"), op.state_level).reshape(c)
                v = _StateQuant.apply(v, lvl, -1 if op.state_quant == "ternary" else 0)
            if keep is not None:
                s = s * keep
            spikes.append(s if op.spike_value == 1.0 else s * op.spike_value)
            if keep_post:
                vpost.append(v)
        return torch.stack(spikes, 1), torch.stack(vpre, 1), torch.stack(vpost, 1) if keep_post else None


@register
class IntLIFOp(OpDef):
    kind = "IntLIF"
    role = "neuron"

    def state(self, op, shape: tuple[int, ...], bounds=None, name: str = "") -> NeuronState | FastNeuronState:
        """The reference neuron for a batch of ``shape``: with ``bounds`` (the graph's
        :class:`snncc.ir.bounds.Bounds`) the int32 or float64 one where they prove it exact."""
        how = None
        if bounds is not None:
            u_state, v_state = bounds.neuron(name)
            how = fast_dtype(op, bounds.input_of(name).mag, u_state, v_state)
        return NeuronState(op, shape) if how is None else FastNeuronState(op, shape, how[1], how[0])

    def interval(self, node, ins):
        return Interval(0, 1)

    def check(self, name, op, shape):
        errs = []
        if op.reset not in RESETS:
            errs.append(f"{name}: unknown reset {op.reset!r}")
        if op.state_quant not in STATE_QUANTS:
            errs.append(f"{name}: unknown state_quant {op.state_quant!r}")
        for f in ("u_overflow", "v_overflow"):
            if getattr(op, f) not in OVERFLOWS:
                errs.append(f"{name}: unknown {f} {getattr(op, f)!r}")
        for f in ("u_bits", "v_bits"):
            if not 2 <= getattr(op, f) <= 64:
                errs.append(f"{name}: {f}={getattr(op, f)} outside [2, 64] (state is held in 64-bit integers)")
        for f in ("du", "dv"):
            d = getattr(op, f)
            if not 0 <= d <= DECAY_ONE:
                errs.append(f"{name}: {f}={d} outside [0, {DECAY_ONE}]")
        if op.state_quant != "none" and op.du != DECAY_ONE:
            errs.append(f"{name}: a quantized membrane needs du={DECAY_ONE} (no current state)")
        for f in ("threshold", "bias", "reset_value", "v_init", "state_level", "u_bias"):
            a = getattr(op, f)
            if a.dtype != np.int64:
                errs.append(f"{name}: {f} must be int64, got {a.dtype}")
            if a.ndim != 1 or a.shape[0] not in (1, shape[0]):
                errs.append(f"{name}: {f} has shape {a.shape}, expected (1,) or ({shape[0]},)")
        if op.state_quant != "none" and (op.state_level <= 0).any():
            errs.append(f"{name}: state_level must be > 0")
        if not fits_signed(op.v_init, op.v_bits):
            errs.append(f"{name}: v_init does not fit v_bits={op.v_bits}")
        ri, ro = op.reset_interval, op.reset_offset
        if not all(isinstance(x, (int, np.integer)) for x in (ri, ro)) or ri < 0 or not (0 <= ro < max(ri, 1)):
            errs.append(f"{name}: reset_interval={ri!r}, reset_offset={ro!r}: need integers with reset_interval >= 0 "
                        f"(0: no periodic reset) and 0 <= reset_offset < reset_interval (0 when there is none)")
        if op.prune_level.dtype != np.int64:
            errs.append(f"{name}: prune_level must be int64, got {op.prune_level.dtype}")
        return errs + _tnp_problems(name, op, shape) + mask_problems(name, op, shape)

    def state_bits(self, op) -> int:
        """Bits of state per neuron (SpQuant-SNN Eq. 28's u_p): v (ternary 2, binary 1),
        plus u where a current is kept."""
        v = {"ternary": 2, "binary": 1}.get(op.state_quant, op.v_bits)
        return v + (op.u_bits if op.du != DECAY_ONE else 0) + (1 if op.presim and op.fires else 0)  # TNP's keep bit

    def report(self, op, shape):
        n = int(np.prod(shape))
        consts = sum(getattr(op, f).size for f in ("threshold", "bias", "reset_value", "v_init"))
        consts += op.state_level.size if op.state_quant != "none" else 0
        consts += op.u_bias.size if op.u_bias.any() else 0
        consts += op.prune_level.size if op.presim else 0
        consts += op.gate_weight.size + op.gate_level.size if op.gate_weight.size else 0
        return {"params": int(consts), "bits": op.v_bits, "size_bits": int(consts) * op.v_bits + 2 * 12,
                "neurons": n, "state_bits": self.state_bits(op)}

    def inspect(self, op):
        return {"du": op.du, "dv": op.dv, "act_shift": op.act_shift, "threshold": value_range(op.threshold),
                "bias": value_range(op.bias), "reset": op.reset, "reset_value": value_range(op.reset_value),
                "v_init": value_range(op.v_init), "state_quant": op.state_quant,
                "state_level": value_range(op.state_level) if op.state_quant != "none" else "-",
                "u_bits": op.u_bits, "u_overflow": op.u_overflow, "v_bits": op.v_bits,
                "v_overflow": op.v_overflow, "fires": op.fires, "scale": value_range(op.scale),
                "reset_interval": op.reset_interval, "reset_offset": op.reset_offset,
                "u_bias": value_range(op.u_bias), "presim": op.presim,
                "prune_level": value_range(op.prune_level) if op.presim else "-",
                "masks": mask_label(op)}

    def describe(self, r):
        return (f"thr {r['threshold']} bias {r['bias']}" + (f" u_bias {r['u_bias']}" if r["u_bias"] != "0" else "")
                + f" reset {r['reset']}"
                + (f"({r['reset_value']})" if r["reset"] == "subtract" else "")
                + f" du {r['du']} dv {r['dv']} shift {r['act_shift']} v {r['v_bits']}b/{r['v_overflow']}"
                + (f" u {r['u_bits']}b/{r['u_overflow']}" if r["du"] != 4096 else "")
                + (f" state {r['state_quant']} L={r['state_level']}" if r["state_quant"] != "none" else "")
                + (f" u=v=0 at t%{r['reset_interval']}=={r['reset_offset']}" if r["reset_interval"] else "")
                + (f" TNP: keep v>{r['prune_level']} at t={r['presim']}" if r.get("presim") else "")
                + (f" masks: {r['masks']}" if r.get("masks") else "")
                + ("" if r["fires"] else " READOUT (no firing; v is the output)"))
