"""Learned rounding of one synapse on its neuron's shared grid (AdaRound's rectified sigmoid)."""
from __future__ import annotations

import dataclasses

import numpy as np

from ...config import CompileConfig
from ...ir.graph import Graph
from .. import quantizers as Q
from ..quantize import SynapsePlan, quantize_weights, shared_scale

GAMMA, ZETA = -0.1, 1.1


class SoftSynapse:
    """Per weight, x = w / sigma rounds to the grid level below (lo) or above (hi) it as
    chosen by h(V) = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1); V starts at
    round-to-nearest's soft equivalent h = (x - lo) / (hi - lo)."""

    def __init__(self, plan: SynapsePlan, w: np.ndarray, sigma: np.ndarray, q: Q.Quantized, device):
        import torch

        self.plan = plan
        self.shape = w.shape
        self.sigma = np.broadcast_to(sigma, (w.shape[0],)).astype(np.float64)
        x = (w * plan.unit).reshape(w.shape[0], -1) / self.sigma[:, None]
        lo = np.empty(x.shape, np.int64)
        hi = np.empty(x.shape, np.int64)
        for c in range(x.shape[0]):
            lo[c], hi[c] = Q.neighbours(x[c], q.levels[c])
        step = (hi - lo).astype(np.float64)
        frac = np.where(step > 0, (x - lo) / np.where(step > 0, step, 1.0), 0.0)
        self.q = q
        self.lo, self.hi, self.x = lo, hi, x
        self.rtn = Q.nearest(x, q.levels)
        p = np.clip((frac - GAMMA) / (ZETA - GAMMA), 1e-6, 1 - 1e-6)
        self.V = torch.tensor(np.log(p / (1 - p)), dtype=torch.float32, device=device, requires_grad=True)
        unit = self.sigma[:, None] / plan.unit          # model weight per integer
        self._lo = torch.tensor(lo * unit, dtype=torch.float32, device=device)
        self._step = torch.tensor(step * unit, dtype=torch.float32, device=device)
        self._free = torch.tensor(step > 0, device=device)
        self.device = device

    def h(self):
        import torch

        return torch.clamp(torch.sigmoid(self.V) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)

    def soft(self):
        return (self._lo + self.h() * self._step).reshape(self.shape)

    def hard_int(self) -> np.ndarray:
        up = (self.V.detach().cpu().numpy() >= 0)
        return np.where(up, self.hi, self.lo)

    def weight_of(self, w_int: np.ndarray):
        """The model weights (float32 tensor) of integer weights on this synapse's grid."""
        import torch

        return torch.tensor(self.model_weight(w_int), dtype=torch.float32, device=self.device)

    def model_weight(self, w_int: np.ndarray) -> np.ndarray:
        return (w_int * (self.sigma[:, None] / self.plan.unit)).reshape(self.shape)

    def reg(self, beta: float):
        """The rounding regulariser sum (1 - |2 h - 1|^beta) over the weights that can move."""
        h = self.h()[self._free]
        return (1 - (2 * h - 1).abs().pow(beta)).sum()

    def undecided(self) -> int:
        """Weights whose h is not yet within 0.01 of 0 or 1."""
        h = self.h().detach()[self._free]
        return int(((h > 0.01) & (h < 0.99)).sum())


def shared_grids(g: Graph, plan: dict, cfg: CompileConfig, clip: str) -> dict[str, tuple]:
    """Per synapse: (its quantizer result, the neuron's shared scale), as the compiler
    would build them (clip: BWR's grid range rule for uniform/asymmetric)."""
    out = {}
    qcfg = cfg if clip == "config" else dataclasses.replace(cfg, weight_clip=clip)
    for n, syns in plan.items():
        if not syns:
            continue
        qs = [quantize_weights(qcfg, g.node(p.name).weight * p.unit, p.bits, p.per_channel, unit=p.unit)
              for p in syns]
        per_channel = syns[0].per_channel
        sigma = shared_scale([q.scale for q in qs], per_channel, qs[0].scale.shape[0])
        for p, q in zip(syns, qs):
            out[p.name] = (q, sigma)
    return out
