"""The model as the trainer runs it: BatchNorm folded into the synapses, weights and
biases fake-quantized on the compiler's grid, neurons swapped for :class:`QuantLIF`,
all T time steps in one ``forward`` (one forward per backward, as DDP needs)."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .. import nn as snn
from ..errors import UnsupportedLayerError
from .fakequant import compiler_view, fake_quant_weight, round_half_away
from .neurons import QuantLIF

SYNAPSES = (nn.Conv2d, nn.Linear)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BatchNorm that follows a Conv2d/Linear in an
    nn.Sequential folded into it (replaced by nn.Identity), and every synapse given a
    bias (zeros where it had none): the compiler folds the same way, so the folded model
    compiles to the same integers. BatchNorm elsewhere is refused."""
    from ..passes.fold import fold_bn_weights

    m = copy.deepcopy(model)
    for seq in [s for s in m.modules() if isinstance(s, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            syn, bn = seq._modules[a], seq._modules[b]
            if isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)) and isinstance(syn, SYNAPSES):
                bias = syn.bias.detach().numpy() if syn.bias is not None else np.zeros(syn.weight.shape[0])
                w, bb = fold_bn_weights(syn.weight.detach().double().numpy(), bias.astype(np.float64),
                                        bn.running_mean.double().numpy(), bn.running_var.double().numpy(),
                                        bn.weight.detach().double().numpy(), bn.bias.detach().double().numpy(),
                                        bn.eps)
                syn.weight = nn.Parameter(torch.as_tensor(w, dtype=torch.float32))
                syn.bias = nn.Parameter(torch.as_tensor(bb, dtype=torch.float32))
                seq._modules[b] = nn.Identity()
    left = [n for n, x in m.named_modules() if isinstance(x, (nn.BatchNorm1d, nn.BatchNorm2d))]
    if left:
        raise UnsupportedLayerError("the trainer folds BatchNorm into the Conv2d/Linear before it in an "
                                    "nn.Sequential; these BatchNorm layers follow no synapse: " + ", ".join(left))
    for x in m.modules():
        if isinstance(x, SYNAPSES) and x.bias is None:
            x.bias = nn.Parameter(torch.zeros(x.weight.shape[0]))
    return m


def plain_copy(model: nn.Module) -> nn.Module:
    """A copy with every QuantLIF back to snncc.nn.LIF and no trainer state: what is saved
    (loads with the safe loader) and what the compiler traces."""
    m = copy.deepcopy(model)
    for x in m.modules():
        if isinstance(x, QuantLIF):
            x.__class__ = snn.LIF
        for k in ("_qat", "_vi", "_spq", "_spq_name"):
            x.__dict__.pop(k, None)
        x._forward_hooks.clear()  # the trainer's shortcut hooks
    snn.reset(m)
    return m


class QATNet(nn.Module):
    """``forward(x)`` -> (N, T, outputs): the model over T steps with fake quantization.

    ``opts``: the neuron options (gpw, sgs, sgs_smoothness). Call :meth:`refresh` to read
    the compiler's grids for the current weights."""

    def __init__(self, model: nn.Module, cfg, example_input, steps: int, opts: dict) -> None:
        super().__init__()
        self.model = model
        self.cfg, self.example_input, self.steps, self.opts = cfg, tuple(example_input), steps, opts
        for x in model.modules():
            if type(x) is snn.LIF:
                x.__class__ = QuantLIF
        self.view = None
        self._hooks = [r.register_forward_hook(self._shortcut_hook) for r in model.modules()
                       if isinstance(r, snn.Residual)]
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Read the compiler's grids for the current weights (see fakequant)."""
        self.view = view = compiler_view(plain_copy(self.model), self.example_input, self.cfg)
        dev = next(self.model.parameters()).device
        mods = dict(self.model.named_modules())
        self._syn = {k: (torch.as_tensor(s.step, dtype=torch.float32, device=dev),
                         torch.as_tensor(s.levels, dtype=torch.float32, device=dev))
                     for k, s in view.synapses.items()}
        self._sigma = {n: torch.as_tensor(g.sigma, dtype=torch.float32, device=dev) for n, g in view.neurons.items()}
        for n, g in view.neurons.items():
            m = mods.get(n)
            if isinstance(m, QuantLIF):
                m._qat = {"sigma": self._sigma[n].double(), "act_shift": g.act_shift, "dv": g.dv,
                          "beta": (4096 - g.dv) / 4096, "v_bits": g.v_bits, "v_overflow": g.v_overflow,
                          **self.opts}
        self._short = {}
        for n, c in view.shortcuts.items():
            body = view.groups[n][0] if view.groups.get(n) else None
            res = next((r for name, r in mods.items() if isinstance(r, snn.Residual) and body
                        and body.startswith(name + ".")), None)
            if res is not None:
                self._short[id(res)] = torch.as_tensor(c, dtype=torch.float32, device=dev)

    def _shortcut_hook(self, module, inputs, out):
        """A Residual's shortcut as the compiler makes it: spikes x round(1/sigma) sigma."""
        c = self._short.get(id(module))
        if c is None:
            return out
        x = inputs[0]
        return out + x * (c.reshape((-1,) + (1,) * (x.dim() - 2)) - 1)

    def quantized_params(self) -> dict:
        """Weights on the grid (straight-through) and biases rounded per neuron."""
        mods = dict(self.model.named_modules())
        out = {}
        for name, (step, levels) in self._syn.items():
            out[f"{name}.weight"] = fake_quant_weight(mods[name].weight, step, levels)
        for n, members in self.view.groups.items():
            if not members:
                continue
            total = sum(mods[s].bias for s in members)
            sig = self._sigma[n]
            fixed = round_half_away(total.detach() / sig) * sig
            first = members[0]
            out[f"{first}.bias"] = mods[first].bias + (fixed - total.detach())
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = self.quantized_params()
        snn.reset(self.model)
        xs = [x] * self.steps if x.dim() == len(self.example_input) + 1 else list(x.unbind(1))
        out = torch.stack([functional_call(self.model, params, (xt,)) for xt in xs], 1)
        snn.reset(self.model)
        return out

    def readout_units(self) -> torch.Tensor | None:
        """sigma of the readout (to snap logits to the integer readout's units)."""
        return self._sigma.get(self.view.readout) if self.view.readout else None
