"""How the C target spells things: identifiers, comments, string literals, integers,
packed weights (shared by the emitter and its lowerings)."""
from __future__ import annotations

import re

import numpy as np

from ...errors import SnnccError
from .formats import io_type


def c_ident(index: int, name: str) -> str:
    """Deterministic, unique C identifier for the node at position ``index``."""
    return f"L{index:03d}_" + re.sub(r"[^0-9A-Za-z_]", "_", name)[:48]


def c_comment(text: str) -> str:
    """Text safe inside /* */: printable ASCII, no comment end, no trigraphs."""
    s = "".join(ch if " " <= ch <= "~" else "?" for ch in str(text))
    return s.replace("*/", "*_/").replace("??", "?_?")


def c_string(text: str) -> str:
    """A C string literal body for ``text`` (UTF-8; octal escapes; no trigraphs)."""
    out = []
    for b in str(text).encode("utf-8"):
        ch = chr(b)
        if ch in "\\\"?":
            out.append("\\" + ch)
        elif 32 <= b < 127:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


def c_int(v: int) -> str:
    v = int(v)
    return "(-9223372036854775807 - 1)" if v == -(1 << 63) else str(v)


def _rows(items: list[str], per_row: int) -> list[str]:
    return [", ".join(items[i:i + per_row]) for i in range(0, len(items), per_row)]


def type_for(lo: int, hi: int) -> int:
    """Index of the narrowest signed type holding [lo, hi]."""
    try:
        return io_type(lo, hi)
    except ValueError:
        raise SnnccError(f"values in [{lo}, {hi}] do not fit in 64 bits") from None


def pack_weights(w: np.ndarray, bits: int) -> bytes:
    """``bits``-bit two's complement, little-endian bit order (see snncc_rt.h)."""
    flat = np.ascontiguousarray(w, dtype=np.int64).reshape(-1)
    raw = (flat.view(np.uint64) & np.uint64((1 << bits) - 1)).astype("<u8")
    allbits = np.unpackbits(raw.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    return np.packbits(allbits[:, :bits].reshape(-1), bitorder="little").tobytes()


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise SnnccError(msg)


