"""Input shapes as the command line and the API give them (shared by the PyTorch door and
ANN conversion)."""
from __future__ import annotations

from ..errors import SnnccError


def input_shape(example_input) -> tuple[int, ...]:
    """(C, H, W) or (N,) from a tensor/array or a shape, with or without the batch axis."""
    try:
        shape = tuple(int(d) for d in getattr(example_input, "shape", example_input))
    except (TypeError, ValueError):
        raise SnnccError(f"input shape {example_input!r}: give integers like 1,28,28") from None
    shape = shape[1:] if len(shape) in (2, 4) else shape
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise SnnccError(f"--input-shape {','.join(map(str, shape))}: give (N,) or (C, H, W) with every size >= 1, "
                         "e.g. 1,28,28")
    return shape
