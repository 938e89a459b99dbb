"""The static arena of the C target: offsets for buffers that live only part of a step.

Each buffer has a size and a lifetime, the interval [first, last] of layer indices of
one step in which it is written or read (the input: from before the first layer). Two
buffers may share bytes only if their lifetimes do not overlap. ``plan`` places the
buffers greedily, largest first, each at the lowest 8-byte-aligned offset where it
overlaps no placed buffer that is live at the same time (the classic offset-assignment
heuristic of inference runtimes); the result is deterministic (ties broken by name)."""
from __future__ import annotations

from dataclasses import dataclass

ALIGN = 8


@dataclass(frozen=True)
class Buffer:
    name: str
    size: int
    first: int
    last: int

    def overlaps(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan(buffers: list[Buffer]) -> tuple[dict[str, int], int]:
    """({name: offset}, arena size in bytes)."""
    placed: list[tuple[int, Buffer]] = []
    offsets: dict[str, int] = {}
    for b in sorted(buffers, key=lambda b: (-_align(b.size), b.first, b.name)):
        busy = sorted((off, off + _align(p.size)) for off, p in placed if p.overlaps(b))
        off = 0
        for lo, hi in busy:
            if off + _align(b.size) <= lo:
                break
            off = max(off, hi)
        offsets[b.name] = off
        placed.append((off, b))
    size = max((off + _align(b.size) for off, b in placed), default=0)
    return offsets, size


def peak(buffers: list[Buffer]) -> int:
    """The most bytes live at one time: no arena can be smaller (for reports and tests)."""
    points = sorted({b.first for b in buffers})
    return max((sum(_align(b.size) for b in buffers if b.first <= t <= b.last) for t in points), default=0)
