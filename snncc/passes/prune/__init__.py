"""Structured channel pruning (QP-SNN, Algorithm 1 lines 15-25) on the float graph.

One implementation, two doors: the compile flow prunes the traced float graph before
quantization and BWR (``snncc compile --prune svs:0.5 --calib NAME:N``, or a ``[prune]``
table), and :func:`snncc.prune` returns a smaller PyTorch module of the same classes to
fine-tune. Both use :func:`plan` (channel groups, scores, kept channels) and differ only in
what they cut: graph nodes (``OpDef.take_out``/``take_in``) or torch modules
(``snncc.frontends.torch_prune``).

Per group of n channels with ratio r, ``ceil(r n)`` channels are removed: those first in
``argsort(score)`` (a stable sort: among equal scores the lower channel index goes first),
and the kept channels keep their order (Algorithm 1, lines 24-25). See
:mod:`.groups` for the dependency analysis and :mod:`.scores` for the criteria."""
from __future__ import annotations

import math

import numpy as np

from ...errors import SnnccError
from ...ir.graph import Graph
from ...ir.verify import verify
from ...ops import role
from .config import PruneConfig
from .groups import Group, channel_groups, expand
from .scores import CRITERIA, DATA_CRITERIA, group_scores, layer_scores

__all__ = ["PruneConfig", "plan", "apply_plan", "prune_graph", "channel_groups", "Group", "CRITERIA"]


def plan(g: Graph, cfg: PruneConfig, calib_x: np.ndarray | None = None, progress: bool = True) -> dict:
    """What to prune: ``{"groups": [...], "left_whole": [...], ...}``, each pruned group with
    its layers, channel count, kept channel indices and scores (JSON-ready: it goes into
    the build manifest). Every problem (unknown layers, ratios that leave no channel) is
    reported at once, before any data runs."""
    if any(g.node(n).level == "int" for n in g.order()):
        raise SnnccError("structured pruning works on the float model (before quantization)")
    if cfg.criterion in DATA_CRITERIA and calib_x is None:
        raise SnnccError(f"pruning by {cfg.criterion} needs calibration data: give --calib NAME:N "
                         "(or calib_data=), or choose the data-free criterion l1")
    if calib_x is not None:
        from ..bwr.calibration import calibration_array, input_layout

        calib_x = calibration_array(calib_x)
        input_layout(g, calib_x)
    groups = channel_groups(g)
    ratios, whole = _ratios(g, groups, cfg)
    chosen = [grp for grp in groups if grp.name in ratios]
    per_layer = layer_scores(g, chosen, cfg.criterion, calib_x, epsilon=cfg.epsilon, batch=cfg.batch_size,
                             progress=progress) if chosen and cfg.criterion != "random" else {}
    scores = group_scores(per_layer, chosen, cfg.criterion, cfg.seed)
    out = []
    for grp in chosen:
        if grp.name not in scores:
            whole.append({"layers": grp.layers(g), "why": "no spiking layer to score"})
            continue
        s = scores[grp.name]
        k = math.ceil(ratios[grp.name] * grp.channels)
        keep = np.sort(np.argsort(s, kind="stable")[k:])
        out.append({"layers": grp.layers(g), "nodes": list(grp.producers), "channels": grp.channels,
                    "kept": int(len(keep)), "ratio": ratios[grp.name], "keep": keep.tolist(),
                    "scores": [float(f"{v:.6g}") for v in s]})
    return {"criterion": cfg.criterion, "ratio": cfg.ratio, "epsilon": cfg.epsilon,
            "calib_samples": None if calib_x is None else int(len(calib_x)), "groups": out, "left_whole": whole}


def _ratios(g: Graph, groups: list[Group], cfg: PruneConfig) -> tuple[dict[str, float], list[dict]]:
    """The ratio of each group to prune, and the groups left whole (with why)."""
    names = {name: grp for grp in groups for name in grp.layers(g) + grp.producers}
    unknown = [f"{what} names layer '{k}', which is not a Conv/Dense layer of the model"
               for what, keys in (("ratios", cfg.ratios), ("skip", cfg.skip)) for k in keys
               if k not in names and k not in ("first", "last")]
    skipped = {names[k].name for k in cfg.skip if k in names} | _ends(g, groups, cfg.skip)
    ratios, whole, errs = {}, [], []
    for grp in groups:
        if not grp.producers:
            continue
        own = [cfg.ratios[n] for n in grp.layers(g) + grp.producers if n in cfg.ratios]
        r = own[0] if own else cfg.ratio
        why = "; ".join(grp.problems) or ("skipped (first/last layer or listed in skip)" if grp.name in skipped
                                          else "")
        if why:
            whole.append({"layers": grp.layers(g), "why": why})
            if own:
                errs.append(f"layer {'+'.join(grp.layers(g))} has a ratio but cannot be pruned: {why}")
            continue
        if math.ceil(r * grp.channels) >= grp.channels:
            errs.append(f"layer {'+'.join(grp.layers(g))}: ratio {r:g} removes all {grp.channels} channels "
                        f"(ceil(r n) = {math.ceil(r * grp.channels)}); use a ratio below {1 - 1 / grp.channels:.4g}")
        elif r > 0:
            ratios[grp.name] = r
    if unknown or errs:
        layers = sorted({name for grp in groups if grp.producers for name in grp.layers(g)})
        raise SnnccError("cannot prune as configured:\n" + "\n".join(f"  - {e}" for e in unknown + errs)
                         + f"\n  (the model's Conv/Dense layers: {', '.join(layers)})")
    return ratios, whole


def _ends(g: Graph, groups: list[Group], skip: list[str]) -> set[str]:
    """Names of the groups made by the layers that read the input ("first") and by the
    layer that makes the output ("last": its channels are the classes, never pruned; its
    input channels are, with the layer before it)."""
    of = {n: grp for grp in groups for n in grp.members}
    out = set()
    if "first" in skip:
        out |= {of[p].name for grp in groups for p in grp.producers
                if any(role(g.node(s)) == "input" for s in g.inputs(p))}
    if "last" in skip:
        out.add(of[g.outputs[0]].name)
    return out


def apply_plan(g: Graph, record: dict) -> Graph:
    """The float graph with the recorded channels removed (every producer, member and
    consumer of each pruned group), verified."""
    from ...ops import op_def

    groups = {grp.name: grp for grp in channel_groups(g)}
    out = g.copy()
    for rec in record["groups"]:
        grp = groups[rec["nodes"][0]]
        keep = np.asarray(rec["keep"], np.int64)
        for n, block in grp.members.items():
            op = out.node(n)
            out.set(n, op_def(op).take_out(op, expand(keep, block)))
        for n, block in grp.consumers.items():
            op = out.node(n)
            out.set(n, op_def(op).take_in(op, expand(keep, block)))
    verify(out, "float", after="prune")
    return out


def prune_graph(g: Graph, cfg: PruneConfig, calib_x: np.ndarray | None = None,
                progress: bool = True) -> tuple[Graph, dict]:
    """(the pruned float graph, the record of what was pruned)."""
    record = plan(g, cfg, calib_x, progress)
    return apply_plan(g, record), record
