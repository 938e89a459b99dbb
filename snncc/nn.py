"""Trainable spiking neuron modules whose update order is the one snncc compiles.

Every module here is *single-step and stateful*: ``model(x_t)`` advances the network by
one time step, and :func:`reset` clears the state before a new sample. This is the
form torch.fx can trace (neurons are leaves) and the form the integer model runs in.

Float update of :class:`LIF` at step t (the same order as Loihi 2's CUBA neuron)::

    u = alpha * u + x              # synaptic current; only when alpha is set, else u = x
    v = beta * v + u               # membrane (bias arrives inside x from the synapse)
    s = v > threshold              # strict comparison, like Lava and snnTorch
    v = 0            if reset == "zero"     and s
    v = v - thr      if reset == "subtract" and s
    v = Q(v)         if state_quant is set  (SpQuant-SNN Eq. 7 / 19-20, stored state)

The backward pass uses an arctan surrogate for ds/dv.
"""
from __future__ import annotations

import math

import torch
from torch import nn

RESETS = ("zero", "subtract", "none")
STATE_QUANTS = (None, "ternary", "binary")


class _SpikeATan(torch.autograd.Function):
    """Heaviside forward (x > 0), arctan surrogate backward (Fang et al. 2021)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float, ge: bool = False) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.slope = slope
        return ((x >= 0) if ge else (x > 0)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        a = ctx.slope
        return grad * (a / 2) / (1 + (math.pi / 2 * a * x) ** 2), None, None


class _StateQuant(torch.autograd.Function):
    """Round the stored membrane to integer levels of size ``level`` (half away from zero),
    clipped to {-1, 0, 1} (ternary) or {0, 1} (binary); straight-through gradient inside
    the range."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, level: float, lo: int) -> torch.Tensor:  # type: ignore[override]
        q = (torch.sign(v) * torch.floor(torch.abs(v) / level + 0.5)).clamp(lo, 1)
        ctx.save_for_backward(v)
        ctx.bounds = (lo - 0.5) * level, 1.5 * level
        return q * level

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (v,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        return grad * ((v > lo) & (v < hi)).to(grad.dtype), None, None


class LIF(nn.Module):
    """Leaky integrate-and-fire neuron (single step, stateful).

    Args:
        beta: membrane decay factor in [0, 1] (1 = no leak, an IF neuron).
        threshold: firing threshold (> 0).
        reset: "zero" (hard), "subtract" (soft) or "none".
        alpha: synaptic current decay in [0, 1); ``None`` means no current state (u = x).
        v_init: membrane value at the start of every sample.
        learn_threshold: make the threshold a trainable parameter.
        state_quant: None, "ternary" or "binary": quantize the stored membrane to
            {-1, 0, 1} x level or {0, 1} x level after reset (SpQuant-SNN).
        state_level: size of one membrane level; defaults to the threshold.
        slope: steepness of the arctan surrogate gradient.
    """

    def __init__(self, beta: float = 0.5, threshold: float = 1.0, reset: str = "zero",
                 alpha: float | None = None, v_init: float = 0.0,
                 learn_threshold: bool = False, state_quant: str | None = None,
                 state_level: float | None = None, slope: float = 2.0) -> None:
        super().__init__()
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        if state_quant not in STATE_QUANTS:
            raise ValueError(f"state_quant must be one of {STATE_QUANTS}, got {state_quant!r}")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        if alpha is not None and not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must lie in [0, 1) or be None, got {alpha}")
        if threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        if state_quant is not None and alpha is not None:
            raise ValueError("a quantized membrane state needs alpha=None (no current state)")
        self.beta = float(beta)
        self.alpha = None if alpha is None else float(alpha)
        self.reset = reset
        self.v_init = float(v_init)
        self.state_quant = state_quant
        self.state_level = None if state_level is None else float(state_level)
        self.slope = float(slope)
        thr = torch.tensor(float(threshold))
        if learn_threshold:
            self.threshold = nn.Parameter(thr)
        else:
            self.register_buffer("threshold", thr)
        self.v: torch.Tensor | None = None
        self.u: torch.Tensor | None = None

    def reset_state(self) -> None:
        self.v = None
        self.u = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.v is None or self.v.shape != x.shape:
            self.v = torch.full_like(x, self.v_init)
            self.u = torch.zeros_like(x)
        if self.alpha is None:
            u = x
        else:
            u = self.alpha * self.u + x
            self.u = u
        v = self.beta * self.v + u
        s = _SpikeATan.apply(v - self.threshold, self.slope)
        if self.reset == "zero":
            v = v * (1.0 - s)
        elif self.reset == "subtract":
            v = v - s * self.threshold
        if self.state_quant is not None:
            # the threshold as a 0-d tensor, not float(): the same float32 arithmetic, and the
            # module still runs on the meta device (snncc infers input shapes there)
            level = self.state_level if self.state_level is not None else self.threshold.detach()
            v = _StateQuant.apply(v, level, -1 if self.state_quant == "ternary" else 0)
        self.v = v
        return s

    def extra_repr(self) -> str:
        return (f"beta={self.beta}, threshold={float(self.threshold):g}, reset={self.reset!r}, "
                f"alpha={self.alpha}, state_quant={self.state_quant!r}")


class IF(LIF):
    """Integrate-and-fire neuron: a :class:`LIF` without leak (beta = 1)."""

    def __init__(self, threshold: float = 1.0, reset: str = "subtract", **kw) -> None:
        super().__init__(beta=1.0, threshold=threshold, reset=reset, **kw)


def reset(model: nn.Module) -> None:
    """Clear the state of every stateful neuron in ``model`` (snncc's and snnTorch's)."""
    for m in model.modules():
        if isinstance(m, LIF):
            m.reset_state()
        elif hasattr(m, "reset_mem") and callable(m.reset_mem):  # snntorch neurons
            m.reset_mem()


def run(model: nn.Module, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
    """Run a single-step model over time and return outputs stacked as (N, T, ...).

    ``x`` is (N, T, ...) for a sequence, or (N, ...) with ``steps`` for a static input
    presented at every step (direct encoding).
    """
    reset(model)
    if steps is not None:
        xs = [x] * steps
    else:
        xs = list(x.unbind(1))
    out = [model(xt) for xt in xs]
    reset(model)
    return torch.stack(out, 1)


class Residual(nn.Sequential):
    """``body(x) + x``: a residual connection that torch.save/torch.load can handle
    without trusting pickles (it is one of snncc's allow-listed classes).

    Put it before a neuron to add the incoming spikes to that neuron's input current::

        nn.Sequential(..., LIF(), Residual(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)), LIF())
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x) + x


class _FloorSTE(torch.autograd.Function):
    """floor(x) forward, identity gradient (the straight-through estimator QCFS trains with)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad


class QCFS(nn.Module):
    """The quantization-clip-floor-shift activation of low-latency ANN-to-SNN conversion
    (Bu et al., ICLR 2022), an ANN layer::

        y = up * clamp(floor(x * levels / up + 1/2) / levels, 0, 1)

    ``up`` (lambda) is trained; ``levels`` (L) is the number of quantization steps. An IF
    neuron with threshold ``up`` and initial membrane ``up / 2`` reproduces it in rate
    (``snncc compile --convert``, docs/conversion.md). Attribute names follow the public
    QCFS code (``up``, ``t``), so models written with it convert as well.
    """

    def __init__(self, up: float = 8.0, levels: int = 4) -> None:
        super().__init__()
        if not up > 0:
            raise ValueError(f"up must be > 0, got {up}")
        if int(levels) < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        self.up = nn.Parameter(torch.tensor([float(up)]))
        self.t = int(levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _FloorSTE.apply(x * (self.t / self.up) + 0.5) / self.t
        return torch.clamp(y, 0.0, 1.0) * self.up

    def extra_repr(self) -> str:
        return f"up={float(self.up.detach()):g}, levels={self.t}"
