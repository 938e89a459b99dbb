"""Integer kernels of the reference interpreter: pure numpy int64 functions.

Each is the specification of the matching C runtime kernel (runtime/src/snncc_rt.c)
and of the other targets. Batch first: x is (N, ...)."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

DECAY_SHIFT = 12
DECAY_ONE = 1 << DECAY_SHIFT  # == snncc.ir.nodes.DECAY_ONE (kernels import nothing from snncc)


def _exact_dtype(x_absmax: float, w_absmax: float, k: int):
    """The cheapest dtype in which a k-term dot product of such values is exact: float32
    when every partial sum stays below 2^24, float64 below 2^53, else int64."""
    bound = x_absmax * w_absmax * k
    return np.float32 if bound < 2.0**24 else np.float64 if bound < 2.0**53 else np.int64


def _absmax(a: np.ndarray) -> float:
    return float(max(-int(a.min()), int(a.max()))) if a.size else 0.0


def _matmul(a: np.ndarray, b: np.ndarray, dtype) -> np.ndarray:
    """Exact integer a @ b computed in ``dtype`` (see _exact_dtype)."""
    return (a.astype(dtype, copy=False) @ b.astype(dtype, copy=False)).astype(np.int64)


def shift(acc: np.ndarray, exp: int) -> np.ndarray:
    """acc << exp for exp >= 0, arithmetic (floor) acc >> -exp otherwise."""
    return acc << exp if exp >= 0 else acc >> (-exp)


def dense(x: np.ndarray, w: np.ndarray, weight_exp: int = 0) -> np.ndarray:
    """a[n, o] = (sum_i w[o, i] x[n, i]) << weight_exp."""
    x2 = x.reshape(x.shape[0], -1)
    dt = _exact_dtype(_absmax(x2), _absmax(w), w.shape[1])
    return shift(_matmul(x2, w.T, dt), weight_exp)


def _windows(x: np.ndarray, k: tuple, stride: tuple, padding: tuple, dilation=(1, 1), pad_value=0):
    ph, pw = padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    eh, ew = dilation[0] * (k[0] - 1) + 1, dilation[1] * (k[1] - 1) + 1
    win = sliding_window_view(x, (eh, ew), axis=(2, 3))  # N, C, Ho', Wo', eh, ew
    return win[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]


def conv2d(x: np.ndarray, w: np.ndarray, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
           groups: int = 1, weight_exp: int = 0) -> np.ndarray:
    """a[n, o, y, x] = (sum_{c,i,j} w[o, c, i, j] x[n, g*C/G + c, y*s + i*d - p, ...]) << weight_exp
    (cross-correlation, zero padding), like torch.nn.functional.conv2d."""
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    dt = _exact_dtype(_absmax(x), _absmax(w), cg * kh * kw)
    win = _windows(x.astype(dt, copy=False), (kh, kw), stride, padding, dilation)  # N, C, Ho, Wo, kh, kw
    ho, wo = win.shape[2:4]
    og = o // groups
    outs = []
    for g in range(groups):
        wg = win[:, g * cg:(g + 1) * cg]  # N, cg, Ho, Wo, kh, kw
        cols = wg.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, cg * kh * kw)
        wmat = w[g * og:(g + 1) * og].reshape(og, -1)
        outs.append(_matmul(cols, wmat.T, dt).reshape(n, ho, wo, og))
    out = np.concatenate(outs, axis=3).transpose(0, 3, 1, 2)
    return shift(np.ascontiguousarray(out), weight_exp)


def sum_pool(x, kernel, stride, padding):
    """y = sum over each window, zero padding."""
    return _windows(x, kernel, stride, padding).sum(axis=(-2, -1))


def max_pool(x, kernel, stride, padding):
    """y = max over each window (no padding allowed by the IR)."""
    return _windows(x, kernel, stride, padding).max(axis=(-2, -1))


def decay(x: np.ndarray, d: int) -> np.ndarray:
    """sign(x * (4096 - d)) * (|x * (4096 - d)| >> 12): rounds toward zero."""
    p = x * (DECAY_ONE - d)
    return np.sign(p) * (np.abs(p) >> DECAY_SHIFT)


def overflow(x: np.ndarray, bits: int, mode: str) -> np.ndarray:
    """Bring x into a ``bits``-bit register.

    saturate:  clip to [-(2^(b-1) - 1), 2^(b-1) - 1]   (symmetric, Loihi's v)
    wrap:      two's complement, into [-2^(b-1), 2^(b-1) - 1]
    wrap_lava: one fold as in Lava's LIF u: x - 2^b if x > 2^(b-1); x + 2^b if x <= -2^(b-1)"""
    m = 1 << (bits - 1)
    if mode == "saturate":
        return np.clip(x, -(m - 1), m - 1)
    if mode == "wrap":
        return ((x + m) & ((1 << bits) - 1)) - m
    if mode == "wrap_lava":
        return np.where(x > m, x - 2 * m, np.where(x <= -m, x + 2 * m, x))
    raise ValueError(f"unknown overflow mode {mode!r}")


def state_quant(v: np.ndarray, level: np.ndarray, kind: str) -> np.ndarray:
    """SpQuant-SNN membrane quantizer: q = round-half-away-from-zero(v / L), clipped to
    [-1, 1] (ternary, Eq. 7) or [0, 1] (binary, Eq. 19-20); returns q * L. Integer form:
    q = 1 if 2v >= L; q = -1 if 2v <= -L (ternary only); else 0."""
    if kind == "none":
        return v
    q = (2 * v >= level).astype(np.int64)
    if kind == "ternary":
        q = q - (2 * v <= -level).astype(np.int64)
    return q * level


def channel_gate(v: np.ndarray, weight: np.ndarray, level: np.ndarray) -> np.ndarray:
    """SpQuant-SNN Eq. 23 in integers: keep[n, c] = sum_j weight[c, j] p[n, j] >= level[c],
    p[n, j] the sum of channel j of v (N, C, ...) over its positions (True: kept)."""
    p = v.reshape(v.shape[0], v.shape[1], -1).sum(-1)
    z = (p[:, None, :] * weight[None]).sum(-1)
    return z >= level.reshape(1, -1)
