"""``snncc.prune``: structured pruning of a PyTorch SNN, returning a smaller module of the
same classes (to fine-tune, then compile).

The decision (channel groups, scores, kept channels) is the compiler's
(:func:`snncc.passes.prune.plan` on the traced float graph); this module only cuts the
torch modules the graph nodes came from (``node.source`` is the module's qualified name):
each pruned group's producers and members lose output channels, its consumers input
channels, with the same index arrays the graph pass uses."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..errors import SnnccError


def _cut(m: nn.Module, name: str, idx: torch.Tensor, dim: int) -> None:
    """Keep entries ``idx`` of parameter or buffer ``name`` along ``dim``."""
    t = getattr(m, name, None)
    if t is None or t.dim() <= dim:
        return
    new = t.detach().index_select(dim, idx).clone()
    if isinstance(t, nn.Parameter):
        setattr(m, name, nn.Parameter(new, requires_grad=t.requires_grad))
    else:
        m._buffers[name] = new


def _conv_out(m: nn.Conv2d, idx):
    depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
    _cut(m, "weight", idx, 0)
    _cut(m, "bias", idx, 0)
    m.out_channels = len(idx)
    if depthwise:
        m.in_channels = m.groups = len(idx)


def _conv_in(m: nn.Conv2d, idx):
    _cut(m, "weight", idx, 1)
    m.in_channels = len(idx)


def _linear_out(m: nn.Linear, idx):
    _cut(m, "weight", idx, 0)
    _cut(m, "bias", idx, 0)
    m.out_features = len(idx)


def _linear_in(m: nn.Linear, idx):
    _cut(m, "weight", idx, 1)
    m.in_features = len(idx)


def _bn_out(m, idx):
    for name in ("weight", "bias", "running_mean", "running_var"):
        _cut(m, name, idx, 0)
    m.num_features = len(idx)


def _per_neuron_out(m, idx):
    """Neurons keep one threshold/beta per layer in snncc.nn and snnTorch (per-neuron
    tensors, where a model has them, are cut); their state is cleared."""
    for name in ("threshold", "beta"):
        t = getattr(m, name, None)
        if isinstance(t, torch.Tensor) and t.dim() >= 1 and t.shape[0] > 1:
            _cut(m, name, idx, 0)
    for reset in ("reset_state", "reset_mem"):
        if callable(getattr(m, reset, None)):
            getattr(m, reset)()


def _surgery() -> dict:
    """torch module class -> (cut its output channels, cut its input channels or None)."""
    from .. import nn as snn
    from .torch_fx import _snntorch_leaky

    table = {nn.Conv2d: (_conv_out, _conv_in), nn.Linear: (_linear_out, _linear_in),
             nn.BatchNorm1d: (_bn_out, None), nn.BatchNorm2d: (_bn_out, None), snn.LIF: (_per_neuron_out, None)}
    leaky = _snntorch_leaky()
    if leaky is not None:
        table[leaky] = (_per_neuron_out, None)
    return table


def _module(model: nn.Module, g, node: str):
    src = g.node(node).source
    try:
        return model.get_submodule(src) if src else None
    except AttributeError:
        return None


def cut_modules(model: nn.Module, g, record: dict) -> nn.Module:
    """A copy of ``model`` with the channels ``record`` (from :func:`plan` on ``g``, the
    model's traced graph) removes cut out of its modules."""
    from ..ops import role
    from ..passes.prune import channel_groups, expand

    out = copy.deepcopy(model)
    table = _surgery()
    groups = {grp.name: grp for grp in channel_groups(g)}
    for rec in record["groups"]:
        grp = groups[rec["nodes"][0]]
        keep = np.asarray(rec["keep"], np.int64)
        for side, nodes in ((0, grp.members), (1, grp.consumers)):
            for n, block in nodes.items():
                m = _module(out, g, n)
                fns = next((f for cls, f in table.items() if isinstance(m, cls)), None) if m is not None else None
                if fns is None or fns[side] is None:
                    if side == 1 or role(g.node(n)) in ("synapse", "norm"):
                        raise SnnccError(f"cannot cut the module behind layer '{g.node(n).source or n}' "
                                         f"({type(m).__name__ if m is not None else 'a function call'})")
                    continue
                fns[side](m, torch.as_tensor(expand(keep, block)))
    return out


def prune(model: nn.Module, criterion: str = "svs", ratio: float = 0.5, calib_data=None, *,
          example_input=None, ratios: dict | None = None, skip=("first", "last"), epsilon: float = 1e-6,
          steps: int = 4, seed: int = 0, batch_size: int = 64, progress: bool = True,
          return_record: bool = False):
    """Structured channel pruning of a single-step PyTorch SNN (QP-SNN; docs/pruning.md).

    ``criterion``: "svs" (QP-SNN Eq. 11-13), "sca" (Eq. 7), "l1" or "random";
    ``ratio``: the fraction r of each prunable layer's channels removed (``ceil(r n)``),
    ``ratios`` per layer (module name -> r), ``skip`` layers left whole ("first": the layer
    reading the input, "last": the output layer). ``calib_data``: integer inputs as for
    ``snncc compile`` (uint8 pixels (N, C, H, W) or spikes), a tensor or a DataLoader;
    needed by svs and sca. ``steps``: time steps of the calibration runs.
    Returns a pruned deep copy of ``model`` (and the record of what was kept, with
    ``return_record``)."""
    from ..config import CompileConfig
    from ..passes.bwr.calibration import calibration_array
    from ..passes.prune import PruneConfig, plan
    from .pytorch import guess_input_shape, trace

    cfg = PruneConfig(enabled=True, criterion=criterion, ratio=ratio, ratios=dict(ratios or {}),
                      skip=list(skip), epsilon=epsilon, seed=seed, batch_size=batch_size)
    x = calibration_array(calib_data) if calib_data is not None else None
    shape = example_input if example_input is not None else (x.shape[1:] if x is not None else None)
    if shape is None:
        shape = guess_input_shape(model)
    g = trace(model, shape, CompileConfig(steps=steps))
    record = plan(g, cfg, x, progress)
    pruned = cut_modules(model, g, record)
    return (pruned, record) if return_record else pruned
