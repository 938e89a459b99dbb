"""SpQuant-SNN's sparsity masks (section 4.3) on the integer model: sets the mask fields of
``IntLIF`` (equations in its docstring and docs/semantics.md, "Sparsity masks").

- ``neg_mask`` (Eq. 19-20) on every spiking layer;
- ``spatial_level`` (Eq. 21-22) on every spiking conv layer (shape (C, H, W)): the level
  L such that at least ``spatial_sparsity`` of the layer's updates on the calibration
  inputs have |a| <= L (the ratio's order statistic of |a|, layer after layer, each
  calibrated with the masks of the layers before it in place);
- the channel gate (Eq. 23) on every spiking conv layer: the untrained point-wise path
  (identity weights) of a two-way softmax (channel on: z, off: 0) on the mean membrane
  prior in thresholds, so that keep_c <=> softmax(z, 0)_on >= theta
  <=> mean(v0_c) / thr_c >= ln(theta / (1 - theta)) <=> sum(v0_c) >= ceil(ln(theta / (1 -
  theta)) H W thr_c), exact in integers (a trained gate_weight takes the same fields)."""
from __future__ import annotations

import math

import numpy as np

from ..config import CompileConfig
from ..errors import SnnccError
from ..ir.graph import Graph
from ..ir.nodes import IntLIF


def _masked_layers(g: Graph, conv_only: bool) -> list[str]:
    shapes = g.shapes()
    return [n for n, op in g.items() if isinstance(op, IntLIF) and op.fires and (len(shapes[n]) == 3 or not conv_only)]


def gate_level(theta: float, positions: int, threshold: np.ndarray) -> np.ndarray:
    """ceil(ln(theta / (1 - theta)) x positions x thr_c): the integer level of the identity
    gate at softmax threshold ``theta`` (float64, then ceil)."""
    logit = math.log(theta / (1.0 - theta))
    return np.ceil(logit * positions * np.asarray(threshold, np.float64)).astype(np.int64).reshape(-1)


def apply_masks(graph: Graph, cfg: CompileConfig) -> tuple[Graph, bool]:
    """Set the masks ``cfg`` asks for (neg_mask, channel_threshold, spatial_sparsity)."""
    if not (cfg.neg_mask or cfg.channel_threshold or cfg.spatial_sparsity or cfg.channel_gates):
        return graph, False
    g = graph.copy()
    shapes = g.shapes()
    for name in _masked_layers(g, conv_only=False) if cfg.neg_mask else []:
        g.set(name, g.node(name).replace(neg_mask=True))
    for name in _masked_layers(g, conv_only=True) if cfg.channel_threshold else []:
        op, (c, h, w) = g.node(name), shapes[name]
        thr = np.broadcast_to(op.threshold, (c,))
        g.set(name, op.replace(gate_weight=np.eye(c, dtype=np.int64),
                               gate_level=gate_level(cfg.channel_threshold, h * w, thr)))
    if cfg.channel_gates:
        g = load_gates(g, cfg.channel_gates)
    if cfg.spatial_sparsity:
        from ..data import load_spec

        x = load_spec(cfg.mask_calib)[0]
        g = calibrate_spatial(g, x.reshape((x.shape[0],) + tuple(g.node(g.input_name).shape)), cfg.spatial_sparsity)
    return g, True


def spatial_level_of(abs_a: np.ndarray, ratio: float) -> int:
    """The spatial mask's level from the |a| of a layer's calibration updates: the k-th
    smallest, k = ceil(ratio n) (at least 1), so that at least ``ratio`` of them are
    skipped (|a| <= level). The one rule for the compiler and the trainer's fixed level."""
    a = np.asarray(abs_a).ravel()
    k = max(1, math.ceil(ratio * a.size))
    return int(np.partition(a, k - 1)[k - 1])


def calibrate_spatial(g: Graph, x: np.ndarray, ratio: float) -> Graph:
    """Each spiking conv layer's ``spatial_level``: the k-th smallest |a| (k = ceil(ratio
    n) of the n updates on ``x``), so that at least ``ratio`` of them are skipped; the
    layers are calibrated in order, each with the levels before it in place."""
    from ..reference.interpreter import Simulation, prepare_input

    names = _masked_layers(g, conv_only=True)
    if not names:
        raise SnnccError("spatial_sparsity: the model has no spiking conv layer (shape C, H, W) to mask")
    xs = prepare_input(g, x)
    for name in names:
        sim = Simulation(g, xs.shape[0])
        seen = []
        for t in range(xs.shape[1]):
            sim.advance(xs[:, t:t + 1])
            seen.append(np.abs(sim.states[name].a).ravel())
        g.set(name, g.node(name).replace(spatial_level=spatial_level_of(np.concatenate(seen), ratio)))
    return g


def load_gates(g: Graph, path: str) -> Graph:
    """Set the trained channel gates of ``path`` (``NAME/weight`` (C, C), ``NAME/level``
    (C,), int64; snncc.train.masks.SparsityMasks.save_gates); every problem at once."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise SnnccError(f"channel_gates = {path!r}: cannot read it as an .npz ({e})") from None
    shapes, errs = g.shapes(), []
    for name in sorted({k.rsplit("/", 1)[0] for k in arrays}):
        w, lv = arrays.get(f"{name}/weight"), arrays.get(f"{name}/level")
        op = g.node(name) if name in g else None
        if not isinstance(op, IntLIF) or not op.fires:
            errs.append(f"'{name}' is not a spiking neuron layer of the model")
        elif w is None or lv is None or w.dtype != np.int64 or lv.dtype != np.int64 \
                or w.shape != (shapes[name][0],) * 2 or lv.shape != (shapes[name][0],):
            errs.append(f"'{name}': need int64 {name}/weight {(shapes[name][0],) * 2} and {name}/level "
                        f"({shapes[name][0]},)")
        else:
            g.set(name, op.replace(gate_weight=w, gate_level=lv))
    if errs:
        raise SnnccError(f"channel_gates = {path!r}:\n" + "\n".join(f"  - {e}" for e in errs))
    return g
