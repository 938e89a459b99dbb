"""Channel importance: QP-SNN's SVS (Eq. 11-13), its SCA baseline (Eq. 7), the weight L1
norm, and a seeded random control.

Every criterion scores each channel of a group as the mean over the group's layers of
that layer's per-channel score divided by the layer's mean score (so each layer of a
residual group has an equal say whatever its scale; a layer whose scores are all 0 counts
as all-equal). The layers are the group's spiking neurons for ``svs`` and ``sca``, its
producers (weight rows) for ``l1``:

* ``svs``: per sample, the neuron's spike map averaged over the T steps (Eq. 11), as an
  H x W matrix per channel; its number of singular values above ``epsilon`` (Eq. 12-13),
  averaged over the calibration samples. A neuron of a Dense layer has a 1 x 1 "map"
  (score: the fraction of samples in which it spikes at all); after a Flatten, a 1 x (H*W)
  row.
* ``sca``: the L1 norm of the channel's pre-reset membrane potential (Eq. 7's U~),
  averaged over samples and time steps.
* ``l1``: the L1 norm of the channel's weights (data-free).
* ``random``: uniform random scores from ``seed`` (a control for the benchmarks).
"""
from __future__ import annotations

import numpy as np

from ...errors import SnnccError
from ...ir.graph import Graph
from .groups import Group

CRITERIA = ("svs", "sca", "l1", "random")
DATA_CRITERIA = ("svs", "sca")


def layer_scores(g: Graph, groups: list[Group], criterion: str, x: np.ndarray | None = None,
                 steps: int | None = None, epsilon: float = 1e-6, batch: int = 64,
                 progress: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """{group name: {layer: per-channel score}} for the prunable groups."""
    todo = [grp for grp in groups if grp.prunable]
    if criterion == "l1":
        return {grp.name: {p: _l1(g.node(p).weight) for p in grp.producers} for grp in todo}
    if criterion not in DATA_CRITERIA:
        raise SnnccError(f"unknown pruning criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    if x is None:
        raise SnnccError(f"the {criterion} criterion needs calibration data (--calib NAME:N, or calib_data=)")
    neurons = {n: grp for grp in todo for n in grp.neurons}
    sums = _activity(g, neurons, criterion, x, steps, epsilon, batch, progress)
    return {grp.name: {n: sums[n] / len(x) for n in grp.neurons} for grp in todo if grp.neurons}


def group_scores(per_layer: dict[str, dict[str, np.ndarray]], groups: list[Group], criterion: str,
                 seed: int = 0) -> dict[str, np.ndarray]:
    """One score per channel of each prunable group (the module docstring's rule)."""
    out = {}
    rng = np.random.default_rng(seed)
    for grp in groups:
        if not grp.prunable:
            continue
        if criterion == "random":
            out[grp.name] = rng.random(grp.channels)
            continue
        layers = per_layer.get(grp.name, {})
        if not layers:
            continue
        out[grp.name] = np.mean([_relative(s) for s in layers.values()], axis=0)
    return out


def _relative(s: np.ndarray) -> np.ndarray:
    m = float(np.mean(s))
    return s / m if m > 0 else np.ones_like(s, dtype=np.float64)


def _l1(w: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(w, np.float64)).reshape(w.shape[0], -1).sum(1)


def _activity(g: Graph, neurons: dict[str, Group], criterion: str, x: np.ndarray, steps, epsilon: float,
              batch: int, progress: bool) -> dict[str, np.ndarray]:
    """Per neuron layer, the per-channel criterion summed over the calibration samples."""
    from ...progress import bar as progress_bar

    from ...reference.float_sim import float_batches

    sums = {n: np.zeros(grp.channels) for n, grp in neurons.items()}
    want = tuple(neurons) if criterion == "sca" else ()
    bar = progress_bar(total=len(x), desc=f"prune: {criterion} scores", unit="sample", progress=progress)
    done = 0
    for vals, vs, _ in float_batches(g, x, steps, batch, want_v=want):
        nb = min(batch, len(x) - done)
        done += nb
        for n, grp in neurons.items():
            c = grp.channels
            if criterion == "svs":
                sums[n] += _svs(vals[n][0], c, epsilon)
            else:
                v = vs[n]
                sums[n] += v.abs().reshape(v.shape[0], v.shape[1], c, -1).sum(-1).mean(1).sum(0).double().numpy()
        bar.update(nb)
    bar.close()
    return sums


def _svs(spikes, channels: int, epsilon: float) -> np.ndarray:
    """Eq. 11-13 for one batch: (N, T, C, ...) spikes -> per channel, the number of
    singular values > epsilon of each sample's time-averaged map, summed over samples."""
    import torch

    n = spikes.shape[0]
    avg = spikes.double().mean(1)
    if avg.dim() == 4:                      # (N, C, H, W)
        mats = avg
    else:                                   # a flat layer: C channels of `block` positions
        mats = avg.reshape(n, channels, 1, -1)
    sv = torch.linalg.svdvals(mats)         # (N, C, min(h, w))
    return (sv > epsilon).sum(-1).sum(0).double().numpy()
