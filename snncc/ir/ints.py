"""Integer helpers every stage shares: rounding, signed widths, arithmetic shifts.

One definition each (the compiler's rounding is half away from zero, deterministic on
every platform; a width is the two's-complement bits a set of integers needs)."""
from __future__ import annotations

import numpy as np


def round_half_away(x) -> np.ndarray:
    """Round half away from zero to int64 (deterministic, platform independent)."""
    x = np.asarray(x)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def checked_round(x, what: str, errs: list[str], bits: int = 62) -> np.ndarray:
    """round_half_away(x), where every value is finite and below 2^bits in magnitude;
    otherwise a problem naming ``what`` is appended to ``errs`` (and zeros returned, so
    that the caller can go on and report every problem at once)."""
    a = np.asarray(x, dtype=np.float64)
    if a.size and not np.all(np.isfinite(a)):
        errs.append(f"{what} is not finite (NaN or Inf)")
        return np.zeros(a.shape, np.int64)
    big = float(np.abs(a).max()) if a.size else 0.0
    if big >= 2.0 ** bits:
        errs.append(f"{what} reaches {big:.3g} integer units, beyond {bits} bits")
        return np.zeros(a.shape, np.int64)
    return round_half_away(a)


def signed_bits(a, minimum: int = 2) -> int:
    """The smallest two's-complement width (at least ``minimum``) holding every value of ``a``."""
    a = np.asarray(a)
    if a.size == 0:
        return minimum
    lo, hi = int(a.min()), int(a.max())
    b = minimum
    while lo < -(1 << (b - 1)) or hi > (1 << (b - 1)) - 1:
        b += 1
    return b


def fits_signed(a, bits: int) -> bool:
    """Every value of ``a`` lies in [-2^(bits-1), 2^(bits-1) - 1]."""
    a = np.asarray(a)
    lim = 1 << (bits - 1)
    return a.size == 0 or (int(a.min()) >= -lim and int(a.max()) <= lim - 1)


def shift(x, e: int):
    """x << e for e >= 0, the arithmetic (floor) x >> -e otherwise (arrays or Python ints)."""
    return x << e if e >= 0 else x >> (-e)
