"""Weight quantization: float synapses -> integer synapses with real-valued scales.

Every tensor has a *scale*: its real value per integer unit. Spikes have scale 1, the
input ``input_scale``, an AvgPool turned SumPool divides by the window size. A neuron sums
one or more *branches* (synapses, possibly followed by pooling/flatten, joined by residual
adds); all branches of a neuron share one scale sigma (per channel or per tensor), so the
neuron adds integers that mean the same thing. A branch that is not a synapse (spikes
added straight into a neuron's input, a residual shortcut) becomes an identity synapse
with integer weight round(scale_in / sigma).

Which integers a synapse gets is the quantizer's choice (``cfg.quantizer``, see
:mod:`snncc.passes.quantizers`): the scale is folded away, so every quantizer keeps the
compiled model integer-only. A synapse listed in ``graph.meta["weight_quant"]`` (written
by :mod:`snncc.passes.bwr`) keeps the scale and integers its learned rounding fixed."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import CompileConfig
from ..errors import SnnccError, UnsupportedLayerError
from ..ir.graph import Graph
from ..ir.nodes import IntConv, IntDense, SumPool
from . import quantizers as Q

PATH_OPS = ("AvgPool", "MaxPool", "Flatten")
#: graph.meta key of per-synapse scales fixed before quantization (by snncc.passes.bwr):
#: {synapse: {"scale": [sigma per output channel, or one], "weight_bits": int, ...}};
#: the synapse's float weights are then exactly w_int * sigma / input unit
WEIGHT_QUANT = "weight_quant"


def quantize_symmetric(w: np.ndarray, bits: int, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Uniform symmetric quantizer: delta = max|w| / (2^(b-1) - 1) per output channel
    (axis 0) or per tensor; returns (delta, qmax). Integer weights are round(w / delta)."""
    qmax = (1 << (bits - 1)) - 1
    flat = np.abs(w.reshape(w.shape[0], -1))
    m = flat.max(axis=1) if per_channel else np.full(w.shape[0], flat.max() if flat.size else 0.0)
    m = np.where(m > 0, m, 1e-12)
    return m / qmax, qmax


def _round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero (deterministic, platform independent)."""
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def bits_needed(a: np.ndarray) -> int:
    m = int(np.abs(a).max()) if a.size else 0
    return max(2, m.bit_length() + 1)


@dataclass
class Branch:
    leaf: str                      # a synapse, or a spike/pool tensor (identity branch)
    path: list[str] = field(default_factory=list)  # pool/flatten nodes after the leaf
    consumer: str = ""             # node whose input edge the branch arrives on
    factor: float = 1.0            # product of 1/(kh kw) of AvgPools on the path


def _is_current(g: Graph, name: str, memo: dict) -> bool:
    if name not in memo:
        op = g.node(name)
        if op.kind in ("Conv", "Dense"):
            memo[name] = True
        elif op.kind in PATH_OPS + ("Add",):
            memo[name] = any(_is_current(g, s, memo) for s in g.inputs(name))
        else:
            memo[name] = False
    return memo[name]


def _branches(g: Graph, name: str, consumer: str, memo: dict) -> list[Branch]:
    op = g.node(name)
    if op.kind in ("Conv", "Dense"):
        return [Branch(name, [], consumer)]
    if not _is_current(g, name, memo):
        return [Branch(name, [], consumer)]
    if op.kind == "Add":
        return [b for s in g.inputs(name) for b in _branches(g, s, name, memo)]
    (src,) = g.inputs(name)  # a pool or flatten on currents
    out = []
    for b in _branches(g, src, name, memo):
        if b.consumer == name:  # identity leaf right before this op: keep the op on its path
            b.consumer = consumer
        b.path.append(name)
        if op.kind == "AvgPool":
            if any(op.padding):
                raise UnsupportedLayerError(f"AvgPool2d at '{op.source}' pads synaptic currents; "
                                            "zero padding would shift the bias: use padding=0")
            b.factor /= op.kernel[0] * op.kernel[1]
        b.consumer = consumer
        out.append(b)
    return out


def _spike_scale(g: Graph, name: str, cache: dict, memo: dict) -> float:
    """Scale of a non-current tensor (input, spikes, pooled spikes, spike sums)."""
    if name in cache:
        return cache[name]
    op = g.node(name)
    if op.kind == "Input":
        s = float(op.scale)
    elif op.kind == "LIF":
        s = 1.0
    elif _is_current(g, name, memo):
        raise UnsupportedLayerError(
            f"'{op.source or name}' feeds synaptic currents into another synapse without a neuron "
            "in between; put a spiking neuron between two Conv2d/Linear layers")
    elif op.kind in ("MaxPool", "Flatten"):
        s = _spike_scale(g, g.inputs(name)[0], cache, memo)
    elif op.kind == "AvgPool":
        s = _spike_scale(g, g.inputs(name)[0], cache, memo) / (op.kernel[0] * op.kernel[1])
    elif op.kind == "Add":
        ss = {_spike_scale(g, x, cache, memo) for x in g.inputs(name)}
        if len(ss) != 1:
            raise UnsupportedLayerError(f"Add '{name}' sums tensors of different scales {sorted(ss)}")
        s = ss.pop()
    else:
        raise UnsupportedLayerError(f"cannot determine the scale of '{name}' ({op.kind})")
    cache[name] = s
    return s


def quantize_synapses(graph: Graph, cfg: CompileConfig) -> tuple[Graph, bool]:
    g = graph.copy()
    shapes = g.shapes()
    memo: dict = {}
    scale_cache: dict = {}
    inp = g.input_name
    outputs = set(g.outputs)
    done: set[str] = set()
    fixed = g.meta.get(WEIGHT_QUANT, {})
    for n in g.of_kind("LIF"):
        neuron = g.node(n)
        branches, syn, per_channel = _neuron_synapses(g, n, cfg, memo, done)
        channels = shapes[n][0]
        # 1. effective float weights on integer inputs and each branch's own scale
        effs = []
        sigma = np.zeros(channels if per_channel else 1)
        for b in syn:
            op = g.node(b.leaf)
            s_in = _spike_scale(g, g.inputs(b.leaf)[0], scale_cache, memo)
            w_eff = op.weight * s_in * b.factor
            first = _reads_input_only(g, b.leaf, inp)
            bits = cfg.bits_for(first=first, last=n in outputs)
            q = None
            if b.leaf in fixed:  # learned rounding (BWR): the scale is given, w_eff / sigma is integer
                delta = _fixed_scale(fixed[b.leaf], op, bits, per_channel)
                qmax = None
            elif cfg.quantizer == "uniform" and cfg.weight_clip == "max":
                delta, qmax = quantize_symmetric(w_eff, bits, per_channel)
            else:
                q = quantize_weights(cfg, w_eff, bits, per_channel, unit=s_in * b.factor)
                delta, qmax = q.scale, None
            effs.append((b, w_eff, bits, qmax, q))
            sigma = np.maximum(sigma, delta if per_channel else delta[:1])
        if not syn:
            sigma[:] = 1.0
        # 2. integer synapses on the shared scale
        bias = np.zeros(channels)
        for b, w_eff, bits, qmax, q in effs:
            op = g.node(b.leaf)
            sig_syn = _per_out(sigma, op.weight.shape[0])
            col = sig_syn.reshape((-1,) + (1,) * (w_eff.ndim - 1))
            if qmax is not None:
                w_int = np.clip(_round(w_eff / col), -qmax, qmax)
            elif q is not None:
                w_int, bits = Q.requantize(q, w_eff, sig_syn), q.storage_bits
            else:
                w_int = _round(w_eff / col)
                if np.abs(w_eff / col - w_int).max(initial=0.0) > 1e-6:
                    raise SnnccError(f"synapse '{op.source}': its weights are not on the grid its learned "
                                     "rounding (graph.meta['weight_quant']) fixed; were they changed after "
                                     "BWR, or do the synapses of one neuron mix learned and plain rounding?")
                bits = int(fixed[b.leaf].get("weight_bits", bits_needed(w_int)))
            real_scale = sig_syn / b.factor
            common = dict(source=op.source, weight=w_int, scale=real_scale, weight_bits=bits)
            if op.kind == "Conv":
                new = IntConv(stride=op.stride, padding=op.padding, dilation=op.dilation,
                              groups=op.groups, **common)
            else:
                new = IntDense(**common)
            g.set(b.leaf, new)
            bias += _through_path(g, op.bias, b.path, shapes)
        # 3. identity branches (residual shortcuts into this neuron)
        for b in branches:
            if b in syn or g.node(b.leaf).kind in ("IntConv", "IntDense"):
                continue
            end = b.path[-1] if b.path else b.leaf
            s_in = _spike_scale(g, end, scale_cache, memo)
            shp = shapes[end]
            sig = np.broadcast_to(sigma, (shp[0],)) if sigma.size > 1 else np.full(shp[0], sigma[0])
            w = _round(s_in / sig)
            name = g.unique(f"{n}.shortcut")
            bits = bits_needed(w)
            if len(shp) == 3:
                ident = IntConv(source=f"{neuron.source} (shortcut)", weight=w.reshape(-1, 1, 1, 1),
                                scale=sig.copy(), weight_bits=bits, groups=shp[0])
            else:
                ident = IntDense(source=f"{neuron.source} (shortcut)", weight=np.diag(w),
                                 scale=sig.copy(), weight_bits=bits)
            g.add(name, ident, [end])
            g.set_inputs(b.consumer, [name if s == end else s for s in g.inputs(b.consumer)])
        g.set(n, neuron.replace(bias=bias, scale=sigma.copy()))
    for name in g.of_kind("AvgPool"):
        op = g.node(name)
        g.set(name, SumPool(source=op.source, kernel=op.kernel, stride=op.stride, padding=op.padding))
    left = g.of_kind("Conv", "Dense")
    if left:
        raise UnsupportedLayerError(
            "these synapses feed no spiking neuron and cannot be quantized: "
            + ", ".join(f"'{g.node(x).source}'" for x in left))
    return g, True


def _fixed_scale(entry: dict, op, bits: int, per_channel: bool) -> np.ndarray:
    """The scale a learned rounding fixed for a synapse, checked against the config."""
    scale = np.asarray(entry["scale"], dtype=np.float64)
    if entry.get("bits", bits) != bits:
        raise SnnccError(f"synapse '{op.source}' was rounded by BWR for {entry['bits']}-bit weights but the "
                         f"configuration asks for {bits} bits; run BWR again with this configuration")
    if (scale.size > 1) != per_channel:
        raise SnnccError(f"synapse '{op.source}' was rounded by BWR with per-"
                         f"{'channel' if scale.size > 1 else 'tensor'} scales but the configuration asks for "
                         f"per-{'channel' if per_channel else 'tensor'}; run BWR again with this configuration")
    return scale


def quantize_weights(cfg: CompileConfig, w_eff: np.ndarray, bits: int, per_channel: bool,
                     unit: float = 1.0) -> Q.Quantized:
    """The configured quantizer (``cfg.quantizer`` and its options) on one synapse's
    effective weights; ``unit`` is the real value of one model weight unit in ``w_eff``."""
    return Q.quantize(cfg.quantizer, w_eff, bits, per_channel, clip=cfg.weight_clip,
                      gamma=cfg.rescaw_gamma, percentile=cfg.rescaw_percentile,
                      alpha=None if cfg.pot_alpha == "auto" else cfg.pot_alpha, unit=unit)


def _neuron_synapses(g: Graph, n: str, cfg: CompileConfig, memo: dict, done: set[str]):
    """The branches into neuron ``n``, its synapse branches, and whether its scale is
    per channel (firing neurons without a flatten on the way, when asked for)."""
    neuron = g.node(n)
    branches = _branches(g, g.inputs(n)[0], n, memo)
    syn = [b for b in branches if g.node(b.leaf).kind in ("Conv", "Dense")]
    for b in syn:
        if b.leaf in done or len(g.users(b.leaf)) != 1:
            raise UnsupportedLayerError(
                f"synapse '{g.node(b.leaf).source}' feeds more than one consumer; each "
                "Conv2d/Linear must feed exactly one neuron (directly or through pooling/add)")
        done.add(b.leaf)
    has_flatten = any(g.node(p).kind == "Flatten" for b in syn for p in b.path)
    per_channel = cfg.granularity == "channel" and neuron.fires and not has_flatten
    return branches, syn, per_channel


@dataclass
class SynapsePlan:
    """How quantize_synapses will treat one synapse: its neuron, effective weights on
    integer inputs (w_eff = weight * unit), code bits, and scale granularity."""

    name: str
    neuron: str
    unit: float          # real value of one model weight unit in w_eff (input scale x pool factor)
    bits: int
    per_channel: bool
    branch: Branch


def synapse_plan(graph: Graph, cfg: CompileConfig) -> dict[str, list[SynapsePlan]]:
    """Per neuron (in graph order), its synapses as quantize_synapses groups them; the
    graph must be float-level after fold_batchnorm and add_readout."""
    g = graph
    memo: dict = {}
    scale_cache: dict = {}
    done: set[str] = set()
    outputs = set(g.outputs)
    out: dict[str, list[SynapsePlan]] = {}
    for n in g.of_kind("LIF"):
        _, syn, per_channel = _neuron_synapses(g, n, cfg, memo, done)
        out[n] = [SynapsePlan(b.leaf, n, _spike_scale(g, g.inputs(b.leaf)[0], scale_cache, memo) * b.factor,
                              cfg.bits_for(first=_reads_input_only(g, b.leaf, g.input_name),
                                           last=n in outputs), per_channel, b)
                  for b in syn]
    return out


def _reads_input_only(g: Graph, syn: str, inp: str) -> bool:
    """True when the synapse reads the input through pooling/flatten only."""
    x = g.inputs(syn)[0]
    while x != inp and g.node(x).kind in PATH_OPS:
        x = g.inputs(x)[0]
    return x == inp


def _per_out(sigma: np.ndarray, out_channels: int) -> np.ndarray:
    return np.full(out_channels, sigma[0]) if sigma.size == 1 else sigma


def _through_path(g: Graph, bias: np.ndarray, path: list[str], shapes: dict) -> np.ndarray:
    """A per-channel bias after pooling (unchanged) and flatten (repeated per feature)."""
    for p in path:
        if g.node(p).kind == "Flatten":
            c, *hw = shapes[g.inputs(p)[0]]
            bias = np.repeat(bias, int(np.prod(hw)))
    return bias
