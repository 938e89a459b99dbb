"""The neuron the trainer runs in place of :class:`snncc.nn.LIF`: the integer neuron of
the compiled model in the forward pass, SpQuant-SNN's gradients in the backward pass.

Forward (exactly :class:`snncc.reference.interpreter`'s IntLIF step, in units of
sigma / 2^act_shift held in float64)::

    x_int = round(x / sigma)                       # the synapses' integer sum + bias
    v     = overflow(trunc(v (4096 - dv) / 4096) + x_int << a)
    s     = v > round(theta / sigma) << a
    reset (zero / subtract), then ternary/binary state quantization (round half away)

Backward (the float LIF, v = beta v + x): ds/dv through the arctan surrogate of
snncc.nn; ds/dtheta through SpQuant-SNN's Separate Gradient Path with the sigmoid
Gradient Penalty Window (Eq. 24-27); dQ(v)/dv through Stacked Gradient Surrogation
(Eq. 11-13): the sum of sigmoid derivatives centred between the quantization levels.
"""
from __future__ import annotations

import math

import torch

from ..nn import LIF
from .fakequant import round_half_away

DECAY_ONE = 4096


class _Spike(torch.autograd.Function):
    """s = the integer model's spikes; gradients from the float membrane ``v`` against
    the (quantized) threshold ``theta`` (SGP: ds/dtheta = -surrogate * sigmoid(v - theta)
    on neurons with v >= theta, summed to theta's shape; without GPW: -surrogate)."""

    @staticmethod
    def forward(ctx, v, theta, fired, slope: float, gpw: bool):  # type: ignore[override]
        ctx.save_for_backward(v, theta)
        ctx.slope, ctx.gpw = slope, gpw
        return fired.to(v.dtype)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        v, theta = ctx.saved_tensors
        d = v - theta
        a = ctx.slope
        surr = (a / 2) / (1 + (math.pi / 2 * a * d) ** 2)
        gv = g * surr
        gt = None
        if ctx.needs_input_grad[1]:
            if ctx.gpw:
                gt = -(g * surr * torch.sigmoid(d) * (d >= 0).to(g.dtype))
            else:
                gt = -gv
            gt = gt.sum_to_size(theta.shape)
        return gv, gt, None, None, None


class _SGSQuant(torch.autograd.Function):
    """State quantization: forward the integer model's quantized membrane ``vq``; backward
    SGS (Eq. 11-12): dQ/dv = sum_k T sig(T(v/L - s_k)) (1 - sig(T(v/L - s_k))),
    s_k the midpoints between levels (ternary: -1/2, 1/2; binary: 1/2)."""

    @staticmethod
    def forward(ctx, v, level, vq, shifts: tuple, smooth: float):  # type: ignore[override]
        ctx.save_for_backward(v, level)
        ctx.shifts, ctx.smooth = shifts, smooth
        return vq

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        v, level = ctx.saved_tensors
        x = v / level
        t = ctx.smooth
        d = sum(t * torch.sigmoid(t * (x - s)) * (1 - torch.sigmoid(t * (x - s))) for s in ctx.shifts)
        return g * d, None, None, None, None


class QuantLIF(LIF):
    """A :class:`snncc.nn.LIF` while the trainer holds it (the class is swapped back
    before saving). ``self._qat`` holds the compiler's view of the layer (NeuronGrid as
    tensors) and the training options; without it the float LIF runs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = getattr(self, "_qat", None)
        if q is None:
            return super().forward(x)
        shape = (-1,) + (1,) * (x.dim() - 2) if q["sigma"].numel() > 1 else ()
        sigma = q["sigma"].reshape(shape) if shape else q["sigma"].reshape(())
        unit = sigma / (1 << q["act_shift"])
        if self.v is None or self.v.shape != x.shape:
            self.v = torch.zeros_like(x)
            self._vi = torch.zeros(x.shape, dtype=torch.float64, device=x.device)
        theta_steps = round_half_away(self.threshold.detach() / sigma)
        theta_q = self.threshold + (theta_steps * sigma - self.threshold).detach()
        thr_i = (theta_steps * (1 << q["act_shift"])).double()
        v_f = q["beta"] * self.v + x
        with torch.no_grad():
            xi = round_half_away(x.double() / sigma)
            vi = torch.trunc(self._vi * (DECAY_ONE - q["dv"]) / DECAY_ONE)
            vi = _overflow(vi + xi * (1 << q["act_shift"]), q)
            fired = vi > thr_i
        v = v_f + ((vi * unit).to(v_f.dtype) - v_f).detach()
        s = _Spike.apply(v, theta_q, fired, self.slope, q["gpw"])
        if self.reset == "zero":
            v = v * (1.0 - s)
            vi = vi * (~fired)
        elif self.reset == "subtract":
            v = v - s * theta_q
            vi = vi - fired * thr_i
        if self.state_quant is not None:
            v, vi = self._state_quant(v, vi, theta_q, thr_i, unit, q)
        if getattr(self, "_spq", None) is not None:  # SpQuant-SNN's sparsity masks (snncc.train.masks)
            v, vi, s = self._spq.apply(self, xi, (self.v, self._vi), (v, vi), s, thr_i)
        self.v, self._vi = v, vi
        return s

    def reset_state(self) -> None:
        super().reset_state()
        self._vi = None

    def _state_quant(self, v, vi, level, level_i, unit, q):
        """Integer state quantization (q = 1 if 2v >= L, -1 if 2v <= -L for ternary)."""
        with torch.no_grad():
            k = (2 * vi >= level_i).double()
            if self.state_quant == "ternary":
                k = k - (2 * vi <= -level_i).double()
            vi = k * level_i
            vq = (vi * unit).to(v.dtype)
        shifts = (-0.5, 0.5) if self.state_quant == "ternary" else (0.5,)
        if q["sgs"]:
            return _SGSQuant.apply(v, level.detach().expand_as(v), vq, shifts, q["sgs_smoothness"]), vi
        return v + (vq - v).detach(), vi


def _overflow(vi: torch.Tensor, q: dict) -> torch.Tensor:
    m = 1 << (q["v_bits"] - 1)
    if q["v_overflow"] == "saturate":
        return vi.clamp(-(m - 1), m - 1)
    if q["v_overflow"] == "wrap":
        return torch.remainder(vi + m, 2 * m) - m
    return torch.where(vi > m, vi - 2 * m, torch.where(vi <= -m, vi + 2 * m, vi))
