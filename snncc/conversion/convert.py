"""ANN -> float SNN graph: trace, check, move max pools, choose thresholds (docs/conversion.md).

The result is an ordinary float graph of snncc (IF neurons = ``LIF`` with beta 1,
subtract reset, ``threshold_test`` ge, ``v_init`` = v_init x theta, ``spike_value`` =
theta), so the rest of the flow (BatchNorm folding, quantization, BWR, TNP, integer
passes, every target) is the one every SNN takes. ``graph.meta["converted"]`` records
how each neuron was made (its activation, QCFS levels, threshold and the rule that chose
it); the float runtime's ANN mode (``FloatRuntime(ann=True)``) evaluates the graph as the
ANN it stands for, which threshold calibration and BWR's ANN mode use."""
from __future__ import annotations

import numpy as np

from ..config import CompileConfig
from ..errors import SnnccError, UnsupportedLayerError
from ..ir.graph import Graph
from ..ops import role
from .activations import Act
from .config import ConvertConfig
from .trace import ANN_SUPPORTED, AnnHook, if_neuron

CHUNK = 256  # calibration images per forward pass


def convert(model, example_input, config: CompileConfig | None = None, *, calib=None,
            conversion: ConvertConfig | None = None) -> Graph:
    """The float SNN graph of an ANN ``model`` (a torch module) for inputs of shape
    ``example_input`` (a tensor or a shape). ``calib``: calibration images in integer
    input units (uint8 pixels; an array, tensor, DataLoader or a "NAME:N" dataset spec),
    needed where a threshold comes from a percentile."""
    from ..frontends.shapes import input_shape
    from ..frontends.torch_fx import from_torch
    from ..ir.verify import problems

    cfg = config or CompileConfig()
    cc = conversion or ConvertConfig()
    encoding, scale, bits = cfg.input_contract()
    shape = input_shape(example_input)
    hook = AnnHook()
    g = from_torch(model, shape, encoding=encoding, input_scale=scale, input_bits=bits, extra=hook,
                   supported=ANN_SUPPORTED)
    errs = problems(g, "float")
    if errs:
        raise SnnccError(f"the model does not take inputs of shape {shape} (--input-shape):\n"
                         + "\n".join(f"  - {e}" for e in errs))
    _check_activations_between_synapses(g)
    if not hook.acts:
        raise UnsupportedLayerError(f"--convert: {type(model).__name__} has no activation to turn into spiking "
                                    "neurons (ReLU, a clip or QCFS after each Conv2d/Linear but the last)")
    _move_maxpools(g, hook.acts, cc.maxpool)
    g.meta["converted"] = {"threshold": cc.threshold, "percentile": cc.percentile, "v_init": cc.v_init,
                           "maxpool": cc.maxpool,
                           "neurons": {n: {"activation": a.what, "kind": a.kind, "levels": a.levels,
                                           "source": g.node(n).source} for n, a in hook.acts.items()}}
    _set_thresholds(g, hook.acts, calib, cc)
    g.meta["steps"] = cfg.steps
    return g


def _check_activations_between_synapses(g: Graph) -> None:
    """Refuse a Conv2d/Linear whose output reaches another one without an activation: its
    values can be negative, and a spiking neuron passes only non-negative rates."""
    bad = []
    for s, op in g.items():
        if role(op) != "synapse":
            continue
        stack, seen = list(g.users(s)), set()
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            r = role(g.node(x))
            if r == "synapse":
                bad.append(f"'{op.source or s}' feeds '{g.node(x).source or x}' with no activation between: its "
                           "output can be negative, which spikes cannot carry; put a ReLU, a clip or QCFS between")
            elif r in ("norm", "pool", "reshape", "add"):
                stack.extend(g.users(x))
    if bad:
        raise UnsupportedLayerError("cannot convert: negative activations without a clip:\n"
                                    + "\n".join(f"  - {b}" for b in sorted(set(bad))))


def _move_maxpools(g: Graph, acts: dict[str, Act], mode: str) -> None:
    """MaxPool2d right after an activation (used only by it) moves before the neuron
    (``mode`` "current"): max and a monotone activation commute, so the ANN is unchanged,
    and the neuron integrates the largest input current of each window."""
    if mode != "current":
        return
    for m in g.of_kind("MaxPool"):
        (a,) = g.inputs(m)
        if a not in acts or len(g.users(a)) != 1:
            continue
        (src,) = g.inputs(a)
        if role(g.node(src)) not in ("synapse", "norm"):
            raise UnsupportedLayerError(
                f"MaxPool2d at '{g.node(m).source}' follows the activation '{g.node(a).source}' of a "
                f"{g.node(src).kind} ('{g.node(src).source or src}'), not of a Conv2d/Linear: it cannot move before "
                "the neuron; set maxpool = \"spikes\" in [convert] (a max of spikes) or use AvgPool2d")
        users = g.users(m)
        g.set_inputs(m, [src])
        g.set_inputs(a, [m])
        for u in users:
            g.set_inputs(u, [a if x == m else x for x in g.inputs(u)])
        g.outputs = [a if o == m else o for o in g.outputs]


def _set_thresholds(g: Graph, acts: dict[str, Act], calib, cc: ConvertConfig) -> None:
    """Each neuron's threshold theta (its clip, or a percentile/max of its activations on
    ``calib``), then its IF constants; the choice is recorded in meta["converted"]."""
    fixed = {n: a.clip for n, a in acts.items() if a.clip is not None and cc.threshold in ("auto", "clip")}
    need = [n for n in acts if n not in fixed]
    if cc.threshold == "clip" and need:
        raise SnnccError("threshold = \"clip\": these activations have no clip value: "
                         + ", ".join(f"'{g.node(n).source}' ({acts[n].what})" for n in need)
                         + "; use threshold = \"auto\" (a calibration percentile for them)")
    for n, a in acts.items():  # the ANN as it is, for calibration: unbounded ReLUs
        g.set(n, if_neuron(g.node(n).source, a.clip if a.clip is not None else float("inf"), 0.0))
    theta = dict(fixed)
    if need:
        theta.update(_calibrated(g, need, calib, cc, acts))
    info = g.meta["converted"]["neurons"]
    for n, t in theta.items():
        g.set(n, if_neuron(g.node(n).source, t, cc.v_init))
        rule = "clip" if n in fixed else ("max" if cc.threshold == "max" else f"percentile {cc.percentile:g}")
        info[n].update(threshold=float(t), rule=rule)


def _calibrated(g: Graph, need: list[str], calib, cc: ConvertConfig, acts: dict) -> dict[str, float]:
    """Percentile (or max) of each needed neuron's positive ANN activations on ``calib``."""
    if calib is None:
        what = ", ".join(f"'{g.node(n).source}' ({acts[n].what})" for n in need)
        raise SnnccError(f"thresholds of {what} come from {'the max' if cc.threshold == 'max' else 'a percentile'} "
                         "of the activations on calibration data: give --calib NAME:N or --dataset NAME "
                         "(compile(..., calib=images))")
    pos = _activations(g, need, calib)
    out, dead = {}, []
    for n in need:
        v = pos[n]
        if v.size == 0:
            dead.append(f"'{g.node(n).source}'")
            continue
        out[n] = float(v.max() if cc.threshold == "max" else np.percentile(v, cc.percentile))
    if dead:
        raise SnnccError(f"no positive activation of {', '.join(dead)} on the calibration images, so no "
                         "threshold can be calibrated: check the calibration data (the model's input images)")
    return out


def _activations(g: Graph, need: list[str], calib) -> dict[str, np.ndarray]:
    """The positive outputs of the ``need`` neurons, the graph evaluated as its ANN."""
    import torch

    from ..passes.bwr.calibration import calibration_array
    from ..reference.float_sim import FloatRuntime

    if isinstance(calib, str):  # NAME:N, the first N images of a dataset's train split
        from ..data import load_spec

        calib = load_spec(calib)[0]
    x = calibration_array(calib)
    inp = g.node(g.input_name)
    if x.shape[1:] != tuple(inp.shape):
        raise SnnccError(f"calibration data have shape {x.shape}; the model takes (N, {', '.join(map(str, inp.shape))})")
    rt = FloatRuntime(g, 1, ann=True)
    order = [n for n in g.order() if n != g.input_name]
    got: dict[str, list] = {n: [] for n in need}
    with torch.no_grad():
        for i in range(0, len(x), CHUNK):
            xb = torch.as_tensor(x[i:i + CHUNK].astype(np.float32)) * float(inp.scale)
            vals, _ = rt.run(order, {g.input_name: (xb, True)})
            for n in need:
                y = vals[n][0].numpy().ravel()
                got[n].append(y[y > 0])
    return {n: np.concatenate(v) for n, v in got.items()}
