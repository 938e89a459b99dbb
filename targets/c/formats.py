"""Storage formats of the C runtime's buffers (runtime/include/snncc_rt.h).

A tensor is stored in the narrowest format that holds every value it can take: spikes
and other 0/1 tensors as bits, small counts as nibbles, then 8, 16, 24 (two planes), 32
and 64 bits; a ternary membrane as two bit planes of codes. ``fmt_for`` picks it from a
value interval, ``nbytes`` gives the buffer size, ``ctype`` the C element type a static
buffer of it is declared with (its alignment)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    name: str            # runtime enum: SNN_<name>
    lo: int
    hi: int
    bits: int            # storage bits per element (Eq. 28's unit)
    ctype: str           # element type of a static buffer of this format

    @property
    def enum(self) -> str:
        return f"SNN_{self.name}"


FORMATS = {f.name: f for f in (
    Format("U1", 0, 1, 1, "uint32_t"),
    Format("U4", 0, 15, 4, "uint8_t"),
    Format("S4", -8, 7, 4, "uint8_t"),
    Format("U8", 0, 255, 8, "uint8_t"),
    Format("S8", -128, 127, 8, "int8_t"),
    Format("U16", 0, 65535, 16, "uint16_t"),
    Format("S16", -32768, 32767, 16, "int16_t"),
    Format("S24", -(1 << 23), (1 << 23) - 1, 24, "uint16_t"),
    Format("S32", -(1 << 31), (1 << 31) - 1, 32, "int32_t"),
    Format("S64", -(1 << 63), (1 << 63) - 1, 64, "int64_t"),
    Format("T2", -1, 1, 2, "uint32_t"),
)}
#: the runtime's enum order (snncc_rt.h)
ORDER = ("U1", "U4", "S4", "U8", "S8", "U16", "S16", "S24", "S32", "S64", "T2")
#: candidates for a value interval, narrowest first (T2 only for ternary membrane codes)
_VALUE_FORMATS = ("U1", "U4", "S4", "U8", "S8", "U16", "S16", "S24", "S32", "S64")

#: probe output types (SNN_I8 .. SNN_I64) and their numpy dtypes
IO_ENUMS = ("SNN_I8", "SNN_I16", "SNN_I32", "SNN_I64")
IO_DTYPES = ("<i1", "<i2", "<i4", "<i8")


def fmt_for(lo: int, hi: int) -> Format:
    """The narrowest format holding every value in [lo, hi]."""
    for name in _VALUE_FORMATS:
        f = FORMATS[name]
        if f.lo <= lo and hi <= f.hi:
            return f
    raise ValueError(f"values in [{lo}, {hi}] do not fit in 64 bits")


def nbytes(fmt: Format, n: int) -> int:
    """Bytes of a buffer of n elements (bit planes are whole 32-bit words)."""
    if fmt.name == "U1":
        return 4 * ((n + 31) // 32)
    if fmt.name == "T2":
        return 8 * ((n + 31) // 32)
    return (n * fmt.bits + 7) // 8


def io_type(lo: int, hi: int) -> int:
    """Index of the narrowest of int8/16/32/64 holding [lo, hi] (probe output)."""
    for t, bits in enumerate((8, 16, 32, 64)):
        if -(1 << (bits - 1)) <= lo and hi < (1 << (bits - 1)):
            return t
    raise ValueError(f"values in [{lo}, {hi}] do not fit in 64 bits")


#: bytes of each C element type a buffer is declared with
CTYPE_BYTES = {"uint8_t": 1, "int8_t": 1, "uint16_t": 2, "int16_t": 2, "uint32_t": 4, "int32_t": 4, "int64_t": 8}


def elements(ctype: str, size: int) -> int:
    """Elements of ``ctype`` a buffer of ``size`` bytes is declared with (at least one)."""
    return max(1, (size + CTYPE_BYTES[ctype] - 1) // CTYPE_BYTES[ctype])
