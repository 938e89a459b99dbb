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
    (cross-correlation, zero padding), like torch.nn.functional.conv2d.

    Computed as one exact matrix product per group: the input patches are gathered tap by
    tap (kH kW strided copies) into (C kH kW, N Ho Wo) columns, so the product lands in
    (O, N, Ho, Wo) order without a transposing copy of the columns."""
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    dt = _exact_dtype(_absmax(x), _absmax(w), cg * kh * kw)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xt = x.astype(dt).transpose(1, 0, 2, 3)  # C, N, H, W
    if ph or pw:
        xt = np.pad(xt, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (xt.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (xt.shape[3] - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((c, kh, kw, n, ho, wo), dt)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xt[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
    og = o // groups
    out = np.empty((o, n, ho, wo), np.int64)
    for g in range(groups):
        cm = cols[g * cg:(g + 1) * cg].reshape(cg * kh * kw, n * ho * wo)
        wm = w[g * og:(g + 1) * og].reshape(og, -1).astype(dt)
        out[g * og:(g + 1) * og] = (wm @ cm).reshape(og, n, ho, wo)
    return shift(np.ascontiguousarray(out.transpose(1, 0, 2, 3)), weight_exp)


def sum_pool(x, kernel, stride, padding):
    """y = sum over each window, zero padding."""
    return _windows(x, kernel, stride, padding).sum(axis=(-2, -1))


def max_pool(x, kernel, stride, padding):
    """y = max over each window (no padding allowed by the IR)."""
    return _windows(x, kernel, stride, padding).max(axis=(-2, -1))


def decay(x: np.ndarray, d: int, scratch: tuple | None = None) -> np.ndarray:
    """sign(x * (4096 - d)) * (|x * (4096 - d)| >> 12): rounds toward zero. The int64
    product wraps where |x| (4096 - d) >= 2^63 (registers beyond 50 bits): that wrap is
    part of the specification (docs/semantics.md), so d = 0 is not skipped.

    ``scratch``: two int64 arrays of x's shape to compute in (the result is the second),
    so that a neuron layer stepping many times does not allocate (and page in) fresh
    arrays at every step."""
    x = np.asarray(x, np.int64)
    p, r = scratch if scratch is not None else (np.empty(x.shape, np.int64), np.empty(x.shape, np.int64))
    if d == DECAY_ONE:
        r.fill(0)
        return r
    np.multiply(x, DECAY_ONE - d, out=p)
    np.abs(p, out=r)
    r >>= DECAY_SHIFT
    np.sign(p, out=p)
    r *= p
    return r


def overflow(x: np.ndarray, bits: int, mode: str, out: np.ndarray | None = None) -> np.ndarray:
    """Bring x into a ``bits``-bit register.

    saturate:  clip to [-(2^(b-1) - 1), 2^(b-1) - 1]   (symmetric, Loihi's v)
    wrap:      two's complement, into [-2^(b-1), 2^(b-1) - 1]
    wrap_lava: one fold as in Lava's LIF u: x - 2^b if x > 2^(b-1); x + 2^b if x <= -2^(b-1)

    Where every value is already in the register's symmetric range (one min and one max
    over x) each mode is the identity and x comes back as it is. ``out`` (x itself, a
    temporary of the caller's) takes a clipped result in place."""
    m = 1 << (bits - 1)
    if mode not in ("saturate", "wrap", "wrap_lava"):
        raise ValueError(f"unknown overflow mode {mode!r}")
    if x.size == 0 or (x.min() >= -(m - 1) and x.max() <= m - 1):
        return x
    if mode == "saturate":
        return np.clip(x, -(m - 1), m - 1, out=out)
    if mode == "wrap":
        return ((x + m) & ((1 << bits) - 1)) - m
    return np.where(x > m, x - 2 * m, np.where(x <= -m, x + 2 * m, x))


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
    p[n, j] the sum of channel j of v (N, C, ...) over its positions (True: kept). v holds
    integers in any dtype (the int32 / float64 neuron's own); the sums are int64."""
    p = v.reshape(v.shape[0], v.shape[1], -1).sum(-1, dtype=np.int64)
    z = (p[:, None, :] * weight[None]).sum(-1)
    return z >= level.reshape(1, -1)


COLS_BYTES = 2 << 20  # a ConvPlan gathers at most this much of its columns at a time (cache-sized)


class ConvPlan:
    """:func:`conv2d` of one layer for batches of ``n``, prepared once per run: the
    weights as (O, C kH kW) matrices in ``dtype``, the column buffer and ``ring`` output
    buffers kept between calls (each call writes the next, so a result stays valid while
    ``ring - 1`` later calls run: a delay line's). The caller proves ``dtype`` exact for
    every partial sum and every input value (snncc.ir.bounds); returns the same integers
    as conv2d, (n, O, Ho, Wo) in ``dtype``. The input may be of any integer, bool or
    float dtype holding integers (spikes as bool): one casting copy puts it in ``dtype``.

    The columns are gathered and multiplied in chunks of at most COLS_BYTES, so that they
    are still in cache when the matrix product reads them: as many whole samples as fit
    (a batch of small images in few products), or, where one sample's columns do not fit,
    one sample at a time in bands of output rows. (Rows across the whole batch, as this
    plan did before, made one-row chunks of many samples whose columns left the cache:
    PilotNet's second conv took 2.3 ms per sample at batch 64 against 0.8 ms at batch 1.)
    The order of the sums does not matter: every partial sum is an exact integer."""

    def __init__(self, w: np.ndarray, in_shape: tuple, n: int, dtype, stride=(1, 1), padding=(0, 0),
                 dilation=(1, 1), groups: int = 1, weight_exp: int = 0, ring: int = 1) -> None:
        o, cg, kh, kw = w.shape
        c, h, wd = in_shape
        (ph, pw), (dh, dw), (sh, sw) = padding, dilation, stride
        ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        self.n, self.o, self.ho, self.wo, self.weight_exp = n, o, ho, wo, weight_exp
        og = o // groups
        self.wm = [np.ascontiguousarray(w[g * og:(g + 1) * og].reshape(og, -1), dtype) for g in range(groups)]
        # the input in dtype, (C, N, H, W) with its zero border
        self.pad = (slice(None), slice(None), slice(ph, ph + h), slice(pw, pw + wd))
        self.xp = np.zeros((c, n, h + 2 * ph, wd + 2 * pw), dtype)
        row_bytes = c * kh * kw * wo * np.dtype(dtype).itemsize  # one output row of one sample
        per = max(1, min(n, COLS_BYTES // max(1, row_bytes * ho)))  # samples per chunk
        rows = ho if per > 1 else max(1, min(ho, COLS_BYTES // max(1, row_bytes)))
        self.chunks = [(s0, min(n, s0 + per), r0, min(ho, r0 + rows)) for s0 in range(0, n, per)
                       for r0 in range(0, ho, rows)]
        colbuf, partbuf = np.empty(c * kh * kw * per * rows * wo, dtype), np.empty(o * per * rows * wo, dtype)
        self.steps = []  # per chunk: (its samples and rows, the tap copies, the product's operands and result)
        for s0, s1, r0, r1 in self.chunks:
            m = (s1 - s0) * (r1 - r0) * wo
            cols = colbuf[:c * kh * kw * m].reshape(c, kh, kw, s1 - s0, r1 - r0, wo)
            taps = [(cols[:, i, j], (slice(None), slice(s0, s1), slice(i * dh + sh * r0, i * dh + sh * (r1 - 1) + 1, sh),
                                     slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))) for i in range(kh) for j in range(kw)]
            mats = [cols[g * cg:(g + 1) * cg].reshape(cg * kh * kw, -1) for g in range(groups)]  # views
            part = partbuf[:o * m].reshape(o, -1)
            self.steps.append((s0, s1, r0, r1, taps, mats, part))
        # results (N, O, Ho, Wo); with n = 1 the products write their rows in place
        self.out = [np.empty((n, o, ho, wo), dtype) for _ in range(ring)]
        self.k = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xt = x.transpose(1, 0, 2, 3)  # C, N, H, W (a view)
        if xt.dtype != self.xp.dtype or self.xp.shape != xt.shape:
            self.xp[self.pad] = xt
            xt = self.xp
        self.k = (self.k + 1) % len(self.out)
        out = self.out[self.k]
        og = self.o // len(self.wm)
        for s0, s1, r0, r1, taps, mats, part in self.steps:
            for dst, win in taps:
                dst[...] = xt[win]
            dest = out.reshape(self.o, -1)[:, r0 * self.wo:r1 * self.wo] if self.n == 1 else part  # a view
            for g, (wm, cm) in enumerate(zip(self.wm, mats)):
                np.matmul(wm, cm, out=dest[g * og:(g + 1) * og])
            if self.n > 1:
                out[s0:s1, :, r0:r1] = part.reshape(self.o, s1 - s0, r1 - r0, self.wo).transpose(1, 0, 2, 3)
        if self.weight_exp:
            _scale_floor(out, self.weight_exp)
        return out


class PoolPlan:
    """:func:`sum_pool` (``op`` "sum") or :func:`max_pool` ("max") of one layer for batches of
    ``n``, prepared once per run: the input cast once into a kept buffer in ``dtype`` (with
    its zero border), then one strided view per tap of the window added (or maxed) into a
    kept output: kH kW passes over the output instead of an int64 window array. The caller
    proves ``dtype`` exact for every input value and partial sum (snncc.ir.bounds); returns
    (n, C, Ho, Wo) in ``dtype``, rewritten by the next call."""

    def __init__(self, in_shape: tuple, n: int, kernel, stride, padding, dtype, op: str) -> None:
        c, h, w = in_shape
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        self.xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype)
        self.inner = (slice(None), slice(None), slice(ph, ph + h), slice(pw, pw + w))
        self.taps = [(slice(None), slice(None), slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw))
                     for i in range(kh) for j in range(kw)]
        self.out = np.empty((n, c, ho, wo), dtype)
        self.fn = {"sum": np.add, "max": np.maximum}[op]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.dtype != self.xp.dtype or x.shape != self.xp.shape:
            self.xp[self.inner] = x
            x = self.xp
        first, *rest = self.taps
        self.out[...] = x[first]
        for tap in rest:
            self.fn(self.out, x[tap], out=self.out)
        return self.out


def _scale_floor(acc: np.ndarray, exp: int) -> None:
    """shift(acc, exp) in place on a float array of integers: a power-of-two scaling is
    exact in floating point, and floor after it is the arithmetic right shift."""
    acc *= 2.0 ** exp
    if exp < 0:
        np.floor(acc, out=acc)


class DensePlan:
    """:func:`dense` of one layer prepared once per run: the transposed weights in
    ``dtype`` (the caller proves it exact, as for :class:`ConvPlan`). Returns (N, O) in
    ``dtype``, a fresh array per call."""

    def __init__(self, w: np.ndarray, dtype, weight_exp: int = 0) -> None:
        self.wt, self.dtype, self.weight_exp = np.ascontiguousarray(w.T, dtype), dtype, weight_exp

    def __call__(self, x: np.ndarray) -> np.ndarray:
        acc = x.reshape(x.shape[0], -1).astype(self.dtype) @ self.wt
        if self.weight_exp:
            _scale_floor(acc, self.weight_exp)
        return acc
