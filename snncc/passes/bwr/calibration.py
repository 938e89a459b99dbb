"""Calibration data for BWR: arrays, tensors or DataLoaders -> one numpy array."""
from __future__ import annotations

import numpy as np

from ...errors import SnnccError


def calibration_array(calib, max_samples: int | None = None) -> np.ndarray:
    """numpy array / torch tensor / DataLoader (yielding x or (x, y, ...)) -> numpy array."""
    import torch

    if isinstance(calib, np.ndarray):
        x = calib
    elif isinstance(calib, torch.Tensor):
        x = calib.detach().cpu().numpy()
    elif hasattr(calib, "__iter__"):
        parts, n = [], 0
        for item in calib:
            xb = item[0] if isinstance(item, (tuple, list)) else item
            xb = xb.detach().cpu().numpy() if isinstance(xb, torch.Tensor) else np.asarray(xb)
            parts.append(xb)
            n += len(xb)
            if max_samples is not None and n >= max_samples:
                break
        if not parts:
            raise SnnccError("the calibration DataLoader yielded no data")
        x = np.concatenate(parts, 0)
    else:
        raise SnnccError(f"calibration data must be a numpy array, a torch tensor or a DataLoader, "
                         f"got {type(calib).__name__}")
    if max_samples is not None:
        x = x[:max_samples]
    if len(x) == 0:
        raise SnnccError("no calibration samples")
    return x


def input_layout(g, x: np.ndarray) -> bool:
    """Whether calibration inputs ``x`` are static (N, *shape) rather than sequences
    (N, T, *shape) for the model ``g``; a clear error when they are neither."""
    shape = tuple(g.node(g.input_name).shape)
    if x.shape[1:] == shape:
        return True
    if x.ndim == len(shape) + 2 and x.shape[2:] == shape:
        return False
    raise SnnccError(f"calibration data have shape {x.shape}; the model takes (N, {', '.join(map(str, shape))}) "
                     f"or (N, T, {', '.join(map(str, shape))})")
