"""Weight quantizers as pure functions: float weights -> integer weights and scales.

Every quantizer returns a :class:`Quantized`: integer weights ``w_int`` (int64, the
weights' shape) and a real ``scale`` per output channel (axis 0; per-tensor quantizers
repeat one value) with ``w ~= scale[o] * w_int[o]``. The scale never reaches integer
arithmetic: :func:`snncc.passes.quantize.quantize_synapses` makes it the neuron's
integer unit sigma and :func:`snncc.passes.integerize.fold_neurons` divides threshold,
bias and reset by it, so the compiled model adds and compares integers only.

``levels`` (C, L) lists, sorted, the integers each output channel may take: the grid
the quantizer rounds onto. It is what :func:`requantize` (several synapses sharing one
neuron scale) and the learned rounding of :mod:`snncc.passes.bwr` (floor/ceil
neighbours on the grid) use. ``storage_bits`` is the two's-complement width the integer
weights need (the IR's ``weight_bits``); ``bits`` is the code width the user asked for.
They differ where a grid has no zero-centred b-bit form (see each quantizer).

===========  =====================================================================
name         grid (integers, per output channel) and scale
===========  =====================================================================
uniform      symmetric, {-q..q}, q = 2^(b-1) - 1; scale = max|w| / q ("max") or the
             clipping ratio that minimises sum |w - Q(w)|^2.4 ("mse", BRECQ)
asymmetric   {-z .. 2^b - 1 - z}: an affine grid whose zero point z is folded into
             the integers exactly (``w_int = q - z``); may need b + 1 storage bits
ternary      {-1, 0, 1} (TWN): threshold 0.7 mean|w|, scale = mean |w| above it
vanilla      QP-SNN Eq. 4-6: codes {0..s}, s = 2^b - 1, on clamp(w, -1, 1) (z = 1);
             integer weight 2 code - s (odd, in [-s, s]), scale = 1 / s
rescaw       QP-SNN Eq. 9-10: vanilla on w / gamma, gamma = mean|w| (default), max|w|
             or Psi_x = max(|P_(1-x)|, |P_x|); scale = gamma / s
pot          SpQuant-SNN Eq. 14-18: {0, +-1, +-2, +-4, .., +-2^(n-1)}, n = 2^(b-1) - 1
             exponents (at most 7: integers fit 8 bits, so b > 4 adds no level);
             alpha a power of two (Eq. 15), max|w|, or searched
apot         additive powers of two (APoT, Li et al. 2020): sums of ceil((b-1)/2)
             power-of-two terms, 2^b - 1 levels; alpha searched
===========  =====================================================================

Rounding is half away from zero everywhere (deterministic across platforms) except where
a paper's formula says otherwise (vanilla/rescaw round the non-negative code half up).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.ints import round_half_away, signed_bits

QUANTIZERS = ("uniform", "asymmetric", "ternary", "vanilla", "rescaw", "pot", "apot")
GAMMAS = ("mean", "max", "percentile")
CLIPS = ("max", "mse")
ALPHAS = ("pow2", "max", "mse")
POT_MAX_EXPONENTS = 7  # integer PoT weights 0, +-1..+-64 fit 8 bits (b >= 4 adds no levels)


@dataclass(frozen=True, eq=False)
class Quantized:
    """``w ~= scale[o] * w_int[o]``; ``levels[o]`` are the integers channel o may take."""

    w_int: np.ndarray      # int64, shape of w
    scale: np.ndarray      # float64, (out_channels,)
    levels: np.ndarray     # int64, (out_channels, L), sorted ascending
    bits: int              # code bits asked for
    storage_bits: int      # two's-complement bits the integer weights need

    def dequantize(self) -> np.ndarray:
        return self.w_int * _col(self.scale, self.w_int.ndim)


# ----------------------------------------------------------------------------- helpers
def _col(a: np.ndarray, ndim: int) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape((-1,) + (1,) * (ndim - 1))


def _rows(w: np.ndarray) -> np.ndarray:
    return np.asarray(w, dtype=np.float64).reshape(w.shape[0], -1)


def _per(values: np.ndarray, per_channel: bool, flat_all: np.ndarray, fn) -> np.ndarray:
    """A statistic per output channel, or one for the whole tensor repeated per channel."""
    if per_channel:
        return values
    return np.full(values.shape[0], fn(flat_all))


def _positive(m: np.ndarray) -> np.ndarray:
    return np.where(m > 0, m, 1e-12)


def nearest(x: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Per output channel, the level nearest to x (ties away from zero); x: (C, ...)."""
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(x.shape[0], -1)
    out = np.empty(flat.shape, np.int64)
    for c in range(flat.shape[0]):
        lv = levels[c] if levels.shape[0] > 1 else levels[0]
        lo, hi = neighbours(flat[c], lv)
        dlo, dhi = flat[c] - lo, hi - flat[c]
        up = (dhi < dlo) | ((dhi == dlo) & (np.abs(hi) > np.abs(lo)))
        out[c] = np.where(up, hi, lo)
    return out.reshape(x.shape)


def neighbours(x: np.ndarray, lv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest level <= x and smallest level >= x in the sorted 1-D ``lv`` (both the end
    level beyond the grid)."""
    i = np.searchsorted(lv, x, side="right")
    lo = lv[np.clip(i - 1, 0, len(lv) - 1)]
    j = np.searchsorted(lv, x, side="left")
    hi = lv[np.clip(j, 0, len(lv) - 1)]
    lo = np.where(x < lv[0], lv[0], lo)
    return lo.astype(np.int64), hi.astype(np.int64)


def _levels(one: np.ndarray, channels: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(one, np.int64), (channels, len(one))).copy()


def _err(w: np.ndarray, deq: np.ndarray, p: float = 2.4) -> np.ndarray:
    """Per-row lp error (BRECQ uses p = 2.4 to pick clipping ranges)."""
    return (np.abs(w - deq) ** p).sum(axis=1)


def _search_scale(w: np.ndarray, per_channel: bool, make, candidates: np.ndarray) -> np.ndarray:
    """Pick, per channel (or for the tensor), the candidate ratio r of ``make(r)`` -> scale
    with the smallest lp error; ``make(r)`` returns (scale (C,), dequantize(scale))."""
    rows = _rows(w)
    best = None
    best_err = None
    for r in candidates:
        scale, deq = make(r)
        e = _err(rows, _rows(deq))
        if not per_channel:
            e = np.full_like(e, e.sum())
        if best is None:
            best, best_err = scale.copy(), e
        else:
            take = e < best_err
            best = np.where(take, scale, best)
            best_err = np.where(take, e, best_err)
    return best


MSE_RATIOS = 1.0 - 0.01 * np.arange(80)  # BRECQ: clip max|w| by 1.00, 0.99, ..., 0.21


# ----------------------------------------------------------------------------- uniform
def uniform_scale(w: np.ndarray, bits: int, per_channel: bool = True, clip: str = "max") -> np.ndarray:
    """Scale of the symmetric grid {-q..q}; ``clip="max"`` is the compiler's historical
    rule (max|w| / q, per channel or tensor), ``"mse"`` BRECQ's clipping search."""
    q = (1 << (bits - 1)) - 1
    flat = np.abs(_rows(w))
    m = flat.max(axis=1) if per_channel else np.full(w.shape[0], flat.max() if flat.size else 0.0)
    m = _positive(m)
    if clip == "max":
        return m / q
    if clip != "mse":
        raise ValueError(f"clip must be one of {CLIPS}, got {clip!r}")

    def make(r):
        s = m * r / q
        return s, np.clip(round_half_away(w / _col(s, w.ndim)), -q, q) * _col(s, w.ndim)

    return _search_scale(w, per_channel, make, MSE_RATIOS)


def uniform(w: np.ndarray, bits: int, per_channel: bool = True, clip: str = "max") -> Quantized:
    """Symmetric uniform: w_int = clip(round(w / scale), -q, q), q = 2^(b-1) - 1."""
    q = (1 << (bits - 1)) - 1
    s = uniform_scale(w, bits, per_channel, clip)
    w_int = np.clip(round_half_away(w / _col(s, w.ndim)), -q, q)
    return Quantized(w_int, s, _levels(np.arange(-q, q + 1), w.shape[0]), bits, bits)


# -------------------------------------------------------------------------- asymmetric
def asymmetric(w: np.ndarray, bits: int, per_channel: bool = True, clip: str = "max") -> Quantized:
    """Affine uniform (min/max, or BRECQ's clipping search with ``clip="mse"``):

        scale = (max - min) / (2^b - 1),  z = round(-min / scale),
        code  = clip(round(w / scale) + z, 0, 2^b - 1),   w ~= scale * (code - z).

    Integer-only: the zero point is folded *exactly* into the integer weights,
    ``w_int = code - z`` (integers in [-z, 2^b - 1 - z]), so the synapse computes
    sum w_int x with no correction term. (Keeping the unsigned code and subtracting
    z * sum(x) afterwards would need a per-step spike-count accumulator: sum(x) depends on
    the input, so it cannot go into the constant bias.) The cost is storage: unless
    z = 2^(b-1) the range is not a b-bit two's-complement range and ``storage_bits`` is
    b + 1. The grid always contains 0 (min <= 0 <= max is enforced), so an exact zero
    weight stays zero."""
    n = (1 << bits) - 1
    rows = _rows(w)
    lo = np.minimum(rows.min(axis=1), 0.0)
    hi = np.maximum(rows.max(axis=1), 0.0)
    if not per_channel:
        lo, hi = np.full_like(lo, lo.min()), np.full_like(hi, hi.max())

    # clipping [lo, hi] by a ratio r scales the step but not the zero point:
    # z = round(-lo r / s) = round(-lo n / (hi - lo)) for every r
    z = np.clip(round_half_away(-lo * n / _positive(hi - lo)), 0, n)

    def quant(s):
        code = np.clip(round_half_away(w / _col(s, w.ndim)) + _col(z, w.ndim).astype(np.int64), 0, n)
        return code - _col(z, w.ndim).astype(np.int64)

    def make(r):
        s = _positive((hi - lo) * r / n)
        return s, quant(s) * _col(s, w.ndim)

    if clip == "mse":
        s = _search_scale(w, per_channel, make, MSE_RATIOS)
    elif clip == "max":
        s = make(1.0)[0]
    else:
        raise ValueError(f"clip must be one of {CLIPS}, got {clip!r}")
    w_int = quant(s)
    levels = np.arange(n + 1)[None, :] - z[:, None]
    return Quantized(w_int, s, levels.astype(np.int64), bits, signed_bits(levels))


# ----------------------------------------------------------------------------- ternary
def ternary(w: np.ndarray, bits: int = 2, per_channel: bool = True) -> Quantized:
    """Ternary weight networks (Li & Liu 2016): delta = 0.7 mean|w|, w_int = sign(w) where
    |w| > delta else 0, scale = mean of |w| over the kept weights. ``bits`` is ignored
    (always 2)."""
    a = np.abs(_rows(w))
    delta = 0.7 * (a.mean(axis=1) if per_channel else np.full(w.shape[0], a.mean()))
    keep = a > delta[:, None]
    if per_channel:
        cnt = keep.sum(axis=1)
        alpha = np.where(cnt > 0, (a * keep).sum(axis=1) / np.maximum(cnt, 1), 0.0)
    else:
        cnt = keep.sum()
        alpha = np.full(w.shape[0], (a * keep).sum() / cnt if cnt else 0.0)
    alpha = _positive(alpha)
    w_int = (np.sign(_rows(w)).astype(np.int64) * keep).reshape(w.shape)
    return Quantized(w_int, alpha, _levels(np.array([-1, 0, 1]), w.shape[0]), 2, 2)


# ----------------------------------------------------------------- QP-SNN (Eq. 4-6, 9-10)
def _qpsnn(w: np.ndarray, bits: int, gamma: np.ndarray) -> Quantized:
    """Eq. 10 with z = 1: code = round_half_up(s/2 (clamp(w/gamma, -1, 1) + 1)) in {0..s},
    w ~= gamma (2 code / s - 1) = (gamma / s) (2 code - s). The integer weight is the odd
    number 2 code - s in [-s, s] (scale gamma / s): exact, integer-only, no zero point left
    (the grid has no zero level: 2^b levels +-1, +-3, .., +-s). Storage b + 1 bits (the
    b-bit code plus the implied odd offset would need a spike-count term at run time)."""
    s = (1 << bits) - 1
    g = _col(gamma, w.ndim)
    x = np.clip(np.asarray(w, np.float64) / g, -1.0, 1.0)
    code = np.floor(s / 2 * (x + 1.0) + 0.5).astype(np.int64)  # half up (code >= 0)
    w_int = 2 * code - s
    levels = _levels(np.arange(-s, s + 1, 2), w.shape[0])
    return Quantized(w_int, np.asarray(gamma, np.float64) / s, levels, bits, bits + 1)


def vanilla(w: np.ndarray, bits: int, unit: float | np.ndarray = 1.0) -> Quantized:
    """QP-SNN vanilla uniform quantization (Eq. 4-6): weights are clamped to [-1, 1] in
    the model's own weight units; ``unit`` is the real value of one model weight unit in
    ``w`` (the compiler passes weights pre-multiplied by the input scale)."""
    return _qpsnn(w, bits, np.broadcast_to(np.asarray(unit, np.float64), (w.shape[0],)).copy())


def rescaw_gamma(w: np.ndarray, gamma: str = "mean", per_channel: bool = False,
                 percentile: float = 0.99) -> np.ndarray:
    """QP-SNN's scale coefficient gamma (Sec. 4.1): ``"max"`` max|W|, ``"percentile"``
    Psi_x = max(|P_(1-x)(W)|, |P_x(W)|) with x = ``percentile``, ``"mean"`` ||W||_1 / |W|
    (the default). One gamma per tensor (the paper) or per output channel."""
    rows = _rows(w)
    if gamma == "max":
        def f(a):
            return np.abs(a).max()
    elif gamma == "mean":
        def f(a):
            return np.abs(a).mean()
    elif gamma == "percentile":
        if not 0.5 < percentile <= 1.0:
            raise ValueError(f"percentile must lie in (0.5, 1], got {percentile}")

        def f(a):
            return max(abs(np.quantile(a, 1.0 - percentile)), abs(np.quantile(a, percentile)))
    else:
        raise ValueError(f"gamma must be one of {GAMMAS}, got {gamma!r}")
    g = np.array([f(r) for r in rows]) if per_channel else np.full(w.shape[0], f(rows))
    return _positive(g)


def rescaw(w: np.ndarray, bits: int, per_channel: bool = False, gamma: str = "mean",
           percentile: float = 0.99) -> Quantized:
    """QP-SNN ReScaW-based uniform quantization (Eq. 9-10)."""
    return _qpsnn(w, bits, rescaw_gamma(w, gamma, per_channel, percentile))


# --------------------------------------------------------------- SpQuant-SNN PoT, APoT
def pot_levels(bits: int) -> np.ndarray:
    """Non-negative integer magnitudes of the b-bit power-of-two grid: 0 and 2^0..2^(n-1),
XX
    0, 2^-k-1 scaled so its smallest non-zero level is the integer 1)."""
    n = min((1 << (bits - 1)) - 1, POT_MAX_EXPONENTS)
    return np.concatenate([[0], 1 << np.arange(n)]).astype(np.int64)


def apot_levels(bits: int) -> np.ndarray:
    """Non-negative integer magnitudes of b-bit APoT: m = b - 1 magnitude bits split
    into n = ceil(m / 2) additive terms of 2 bits (the last one 1 bit when m is odd);
    term i takes 0 or 2^-(i + 1 + j n), j = 0..2^(k_i) - 2; levels are all sums, scaled
    to integers. n = 1 is PoT (b = 2, 3); b = 4 gives {0,1,4,8,9,12,16,24}."""
    m = bits - 1
    n = (m + 1) // 2
    ks = [2] * (m // 2) + [1] * (m % 2)
    top = max(i + 1 + ((1 << k) - 2) * n for i, k in enumerate(ks))
    sums = {0}
    for i, k in enumerate(ks):
        term = [0] + [1 << (top - (i + 1 + j * n)) for j in range((1 << k) - 1)]
        sums = {a + t for a in sums for t in term}
    lv = np.array(sorted(sums), np.int64)
    g = np.gcd.reduce(lv[1:]) if len(lv) > 1 else 1
    return lv // g


def _signed(mag: np.ndarray) -> np.ndarray:
    return np.concatenate([-mag[:0:-1], mag])


def _grid_quantizer(w: np.ndarray, bits: int, mag: np.ndarray, per_channel: bool, alpha: str) -> Quantized:
    """Nearest level of alpha * levels / max(levels); alpha per channel or tensor."""
    lv = _signed(mag)
    top = float(mag.max())
    flat = np.abs(_rows(w))
    m = _positive(flat.max(axis=1) if per_channel else np.full(w.shape[0], flat.max()))
    levels = _levels(lv, w.shape[0])

    def make(a):
        s = a / top
        return s, nearest(w / _col(s, w.ndim), levels) * _col(s, w.ndim)

    if alpha == "max":
        a = m
    elif alpha == "mse":
        a = _search_scale(w, per_channel, lambda r: make(m * r), MSE_RATIOS) * top
    elif alpha == "pow2":  # Eq. 14-15: alpha a power of two chosen by the smallest error
        e0 = np.ceil(np.log2(m))
        a = _search_scale(w, per_channel, lambda d: make(2.0 ** (e0 + d)), np.array([0.0, -1.0, -2.0, 1.0])) * top
    else:
        raise ValueError(f"alpha must be one of {ALPHAS}, got {alpha!r}")
    s = a / top
    w_int = nearest(w / _col(s, w.ndim), levels)
    return Quantized(w_int, s, levels, bits, signed_bits(lv))


def pot(w: np.ndarray, bits: int, per_channel: bool = True, alpha: str = "pow2") -> Quantized:
    """SpQuant-SNN power-of-two weights (Eq. 14-18, after Przewlocka-Rus et al. 2022):
    w_q = alpha * sign(w) * 2^-k, nearest level (Eq. 18), alpha a power of two picked by
    the smallest weight error (Eq. 14-15; ``alpha="max"``/``"mse"`` relax it). Integer
    weights are 0 or +-2^j: a multiply is a shift."""
    return _grid_quantizer(w, bits, pot_levels(bits), per_channel, alpha)


def apot(w: np.ndarray, bits: int, per_channel: bool = True, alpha: str = "mse") -> Quantized:
    """Additive powers-of-two (APoT): integer weights are sums of at most
    ceil((b-1)/2) powers of two (shift-and-add), 2^b - 1 levels denser near zero."""
    return _grid_quantizer(w, bits, apot_levels(bits), per_channel, alpha)


# ----------------------------------------------------------------------------- dispatch
def quantize(name: str, w: np.ndarray, bits: int, per_channel: bool = True, *, clip: str = "max",
             gamma: str = "mean", percentile: float = 0.99, alpha: str | None = None,
             unit: float | np.ndarray = 1.0) -> Quantized:
    """Quantize ``w`` (output channels on axis 0) with quantizer ``name``."""
    w = np.asarray(w, dtype=np.float64)
    if name == "uniform":
        return uniform(w, bits, per_channel, clip)
    if name == "asymmetric":
        return asymmetric(w, bits, per_channel, clip)
    if name == "ternary":
        return ternary(w, 2, per_channel)
    if name == "vanilla":
        return vanilla(w, bits, unit)
    if name == "rescaw":
        return rescaw(w, bits, per_channel, gamma, percentile)
    if name == "pot":
        return pot(w, bits, per_channel, alpha or "pow2")
    if name == "apot":
        return apot(w, bits, per_channel, alpha or "mse")
    raise ValueError(f"unknown quantizer {name!r}; choose one of {', '.join(QUANTIZERS)}")


def requantize(q: Quantized, w: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Integers for ``w`` on ``q``'s grid with a (larger, shared) ``scale``: the nearest
    level of w / scale per channel. Channels whose scale is q's own keep q's integers
    exactly (so a neuron with one synapse is quantized by the quantizer's own formula)."""
    scale = np.broadcast_to(np.asarray(scale, np.float64), q.scale.shape)
    same = scale == q.scale
    if same.all():
        return q.w_int.copy()
    re = nearest(np.asarray(w, np.float64) / _col(scale, w.ndim), q.levels)
    return np.where(_col(same, w.ndim) > 0, q.w_int, re)


def n_levels(name: str, bits: int) -> int:
    """Available distinct integer values (N_total of Eq. 8) of a quantizer at ``bits``."""
    if name == "uniform":
        return (1 << bits) - 1
    if name in ("asymmetric", "vanilla", "rescaw"):
        return 1 << bits
    if name == "ternary":
        return 3
    if name == "pot":
        return 2 * (len(pot_levels(bits)) - 1) + 1
    if name == "apot":
        return 2 * (len(apot_levels(bits)) - 1) + 1
    raise ValueError(f"unknown quantizer {name!r}")


def r_utilize(w_int: np.ndarray, bits: int, quantizer: str = "uniform") -> float:
    """QP-SNN Eq. 8: R_utilize = N_actual / N_total, the distinct integer values the layer
    uses over the values its ``bits``-bit ``quantizer`` grid offers."""
    return float(len(np.unique(np.asarray(w_int))) / n_levels(quantizer, bits))


def r_utilize_estimate(w: np.ndarray, bits: int, gamma: float = 1.0, z: float = 1.0) -> float:
    """QP-SNN Sec. 4.1's analytic estimate for the vanilla grid on w / gamma: with
    a = max(|P_0.01|, |P_0.99|) of w / gamma (outliers removed), about (s a + 1)
    of the s + 1 codes are used, s = 2^b - 1 (a clipped to 1)."""
    s = (1 << bits) - 1
    x = np.asarray(w, np.float64).ravel() / gamma
    a = min(1.0, max(abs(np.quantile(x, 0.01)), abs(np.quantile(x, 0.99))))
    return float((s * a * z + 1) / (s + 1))
