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
from ..ir.ints import round_half_away, signed_bits
from ..ir.nodes import IntConv, IntDense, SumPool
from ..ops import op_def, role
from . import quantizers as Q

#: graph.meta key of per-synapse scales fixed before quantization (by snncc.passes.bwr):
#: {synapse: {"scale": [sigma per output channel, or one], "weight_bits": int, ...}};
#: the synapse's float weights are then exactly w_int * sigma / input unit
WEIGHT_QUANT = "weight_quant"
#: roles of the nodes a synaptic current may pass on its way into a neuron
PATH_ROLES = ("pool", "reshape")


def quantize_symmetric(w: np.ndarray, bits: int, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Uniform symmetric quantizer: delta = max|w| / (2^(b-1) - 1) per output channel
    (axis 0) or per tensor; returns (delta, qmax). Integer weights are round(w / delta)."""
    qmax = (1 << (bits - 1)) - 1
    flat = np.abs(w.reshape(w.shape[0], -1))
    m = flat.max(axis=1) if per_channel else np.full(w.shape[0], flat.max() if flat.size else 0.0)
    m = np.where(m > 0, m, 1e-12)
    return m / qmax, qmax


def shared_scale(deltas: list[np.ndarray], per_channel: bool, channels: int) -> np.ndarray:
    """The one scale sigma all synapses into a neuron share: per channel (or one), the
    largest of their own scales, so that every synapse's integers still fit its grid; 1
    for a neuron without synapses."""
    sigma = np.zeros(channels if per_channel else 1)
    for delta in deltas:
        sigma = np.maximum(sigma, delta if per_channel else delta[:1])
    if not deltas:
        sigma[:] = 1.0
    return sigma


@dataclass
class Branch:
    leaf: str                      # a synapse, or a spike/pool tensor (identity branch)
    path: list[str] = field(default_factory=list)  # pool/flatten nodes after the leaf
    consumer: str = ""             # node whose input edge the branch arrives on
    factor: float = 1.0            # product of 1/(kh kw) of AvgPools on the path


def float_synapse(op) -> bool:
    """A float-level synapse (Conv/Dense), not yet quantized."""
    return op.level == "float" and role(op) == "synapse"


def _is_current(g: Graph, name: str, memo: dict) -> bool:
    if name not in memo:
        op = g.node(name)
        if float_synapse(op):
            memo[name] = True
        elif role(op) in PATH_ROLES + ("add",):
            memo[name] = any(_is_current(g, s, memo) for s in g.inputs(name))
        else:
            memo[name] = False
    return memo[name]


def branches(g: Graph, name: str, consumer: str, memo: dict) -> list[Branch]:
    """The branches summed into ``consumer`` through ``name``: synapses (with the pooling
    and flattening on their way) and identity branches (spikes or pooled spikes)."""
    op = g.node(name)
    if float_synapse(op) or not _is_current(g, name, memo):
        return [Branch(name, [], consumer)]
    if role(op) == "add":
        return [b for s in g.inputs(name) for b in branches(g, s, name, memo)]
    (src,) = g.inputs(name)  # a pool or flatten on currents
    if role(op) == "pool" and any(op.padding):
        raise UnsupportedLayerError(f"{op.kind} at '{op.source}' pads synaptic currents; "
                                    "zero padding would shift the bias: use padding=0")
    out = []
    for b in branches(g, src, name, memo):
        b.path.append(name)
        b.factor = op_def(op).scale(op, [b.factor], name)  # AvgPool: / (kh kw)
        b.consumer = consumer
        out.append(b)
    return out


def spike_scale(g: Graph, name: str, cache: dict, memo: dict) -> float:
    """Scale of a non-current tensor (input, spikes, pooled spikes, spike sums)."""
    if name not in cache:
        op = g.node(name)
        d = op_def(op)
        if d.role in ("input", "neuron"):
            cache[name] = d.scale(op, [], name)
        elif _is_current(g, name, memo):
            raise UnsupportedLayerError(
                f"'{op.source or name}' feeds synaptic currents into another synapse without a neuron "
                "in between; put a spiking neuron between two Conv2d/Linear layers")
        else:
            cache[name] = d.scale(op, [spike_scale(g, x, cache, memo) for x in g.inputs(name)], name)
    return cache[name]


def source_neuron(g: Graph, x: str) -> str:
    """The node a spike tensor comes from, through pooling and flattening."""
    while role(g.node(x)) in PATH_ROLES:
        x = g.inputs(x)[0]
    return x


@dataclass
class _Quant:
    """One synapse of a neuron: its branch, effective float weights, code bits and grid."""

    branch: Branch
    w_eff: np.ndarray
    bits: int
    delta: np.ndarray           # the synapse's own scale per output channel
    qmax: int | None            # plain symmetric rounding: clip to [-qmax, qmax]
    q: Q.Quantized | None       # another quantizer's grid (requantized on sigma)


def quantize_synapses(graph: Graph, cfg: CompileConfig) -> tuple[Graph, bool]:
    """Every synapse -> IntConv/IntDense on its neuron's shared scale sigma (the neuron
    keeps sigma as its scale and collects the synapse biases); residual shortcuts become
    identity synapses; AvgPool -> SumPool (see the module docstring)."""
    g = graph.copy()
    ctx = _Context(g, cfg)
    for n in g.of_kind("LIF"):
        _quantize_neuron(ctx, n)
    for name in g.of_kind("AvgPool"):
        op = g.node(name)
        g.set(name, SumPool(source=op.source, kernel=op.kernel, stride=op.stride, padding=op.padding))
    left = [n for n, op in g.items() if float_synapse(op)]
    if left:
        raise UnsupportedLayerError(
            "these synapses feed no spiking neuron and cannot be quantized: "
            + ", ".join(f"'{g.node(x).source}'" for x in left))
    return g, True


class _Context:
    def __init__(self, g: Graph, cfg: CompileConfig) -> None:
        self.g, self.cfg = g, cfg
        self.shapes = g.shapes()
        self.memo: dict = {}
        self.scales: dict = {}
        self.done: set[str] = set()
        self.fixed = g.meta.get(WEIGHT_QUANT, {})


def _quantize_neuron(ctx: _Context, n: str) -> None:
    g, cfg = ctx.g, ctx.cfg
    neuron = g.node(n)
    brs, syn, per_channel = _neuron_synapses(g, n, cfg, ctx.memo, ctx.done)
    quants = [_grid(ctx, b, n, per_channel) for b in syn]
    channels = ctx.shapes[n][0]
    sigma = _without_dead_channels(shared_scale([q.delta for q in quants], per_channel, channels), quants, neuron,
                                   per_channel, cfg.weight_bits)
    syn_bias = np.zeros(channels)
    for q in quants:
        syn_bias += _integer_synapse(ctx, q, sigma)
    for b in brs:
        if b not in syn and not g.node(b.leaf).level == "int":
            _identity_synapse(ctx, n, b, sigma)
    # the neuron's own bias stays; the synapse biases are input current: into v where u = x
    # (no current state), else into u, where they decay with the current like the float model
    own = np.broadcast_to(np.asarray(neuron.bias, np.float64), (channels,))
    if neuron.alpha:
        g.set(n, neuron.replace(bias=own.copy(), u_bias=syn_bias, scale=sigma.copy()))
    else:
        g.set(n, neuron.replace(bias=own + syn_bias, scale=sigma.copy()))


def _without_dead_channels(sigma: np.ndarray, quants: list, neuron, per_channel: bool, bits: int) -> np.ndarray:
    """A channel whose synapses all have zero weights gets no input, and its scale would be
    the quantizer's 1e-12 placeholder, which blows the neuron's constants up: give it the
    scale that puts its own constants (threshold, bias, reset value) on a ``bits``-bit
    grid instead (1 if they are all 0)."""
    live = np.zeros(sigma.size, bool)
    for q in quants:
        rows = np.abs(q.w_eff.reshape(q.w_eff.shape[0], -1)).max(axis=1) > 0 if q.w_eff.size else np.zeros(0, bool)
        live |= rows if per_channel else rows.any()
    if live.all() or not quants:
        return sigma
    per = [np.abs(np.asarray(getattr(neuron, f), np.float64)).reshape(-1) for f in ("threshold", "bias", "reset_value")]
    n = sigma.size
    consts = np.max([np.broadcast_to(a, (n,)) if a.size in (1, n) else np.full(n, a.max()) for a in per], axis=0)
    fallback = np.where(consts > 0, consts / ((1 << (bits - 1)) - 1), 1.0)
    return np.where(live, sigma, fallback)


def _grid(ctx: _Context, b: Branch, n: str, per_channel: bool) -> _Quant:
    """The synapse's effective weights on integer inputs and its own scale (delta)."""
    g, cfg = ctx.g, ctx.cfg
    op = g.node(b.leaf)
    s_in = spike_scale(g, g.inputs(b.leaf)[0], ctx.scales, ctx.memo)
    w_eff = op.weight * s_in * b.factor
    bits = cfg.bits_for(first=_reads_input_only(g, b.leaf, g.input_name), last=n in g.outputs)
    q = None
    if b.leaf in ctx.fixed:  # learned rounding (BWR): the scale is given, w_eff / sigma is integer
        delta, qmax = _fixed_scale(ctx.fixed[b.leaf], op, bits, per_channel), None
    elif cfg.quantizer == "uniform" and cfg.weight_clip == "max":
        delta, qmax = quantize_symmetric(w_eff, bits, per_channel)
    else:
        q = quantize_weights(cfg, w_eff, bits, per_channel, unit=s_in * b.factor)
        delta, qmax = q.scale, None
    return _Quant(b, w_eff, bits, delta, qmax, q)


def _integer_synapse(ctx: _Context, qt: _Quant, sigma: np.ndarray) -> np.ndarray:
    """Replace the synapse by its integer form on the shared scale; returns its bias as
    it arrives at the neuron (per channel, through pooling and flatten)."""
    g, b = ctx.g, qt.branch
    op = g.node(b.leaf)
    sig_syn = _per_out(sigma, op.weight.shape[0])
    col = sig_syn.reshape((-1,) + (1,) * (qt.w_eff.ndim - 1))
    bits = qt.bits
    if qt.qmax is not None:
        w_int = np.clip(round_half_away(qt.w_eff / col), -qt.qmax, qt.qmax)
    elif qt.q is not None:
        w_int, bits = Q.requantize(qt.q, qt.w_eff, sig_syn), qt.q.storage_bits
    else:
        w_int = round_half_away(qt.w_eff / col)
        if np.abs(qt.w_eff / col - w_int).max(initial=0.0) > 1e-6:
            raise SnnccError(f"synapse '{op.source}': its weights are not on the grid its learned "
                             "rounding (graph.meta['weight_quant']) fixed; were they changed after "
                             "BWR, or do the synapses of one neuron mix learned and plain rounding?")
        bits = int(ctx.fixed[b.leaf].get("weight_bits", signed_bits(w_int)))
    common = dict(source=op.source, weight=w_int, scale=sig_syn / b.factor, weight_bits=bits)
    if op.kind == "Conv":
        new = IntConv(stride=op.stride, padding=op.padding, dilation=op.dilation, groups=op.groups, **common)
    else:
        new = IntDense(**common)
    g.set(b.leaf, new)
    return _through_path(g, op.bias, b.path, ctx.shapes)


def _identity_synapse(ctx: _Context, n: str, b: Branch, sigma: np.ndarray) -> None:
    """A residual shortcut into neuron ``n``: an identity synapse with integer weight
    round(scale_in / sigma) per channel."""
    g = ctx.g
    neuron = g.node(n)
    end = b.path[-1] if b.path else b.leaf
    s_in = spike_scale(g, end, ctx.scales, ctx.memo)
    shp = ctx.shapes[end]
    sig = np.broadcast_to(sigma, (shp[0],)) if sigma.size > 1 else np.full(shp[0], sigma[0])
    w = round_half_away(s_in / sig)
    name = g.unique(f"{n}.shortcut")
    bits = signed_bits(w)
    if len(shp) == 3:
        ident = IntConv(source=f"{neuron.source} (shortcut)", weight=w.reshape(-1, 1, 1, 1),
                        scale=sig.copy(), weight_bits=bits, groups=shp[0])
    else:
        ident = IntDense(source=f"{neuron.source} (shortcut)", weight=np.diag(w), scale=sig.copy(), weight_bits=bits)
    g.add(name, ident, [end])
    g.set_inputs(b.consumer, [name if s == end else s for s in g.inputs(b.consumer)])


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
    brs = branches(g, g.inputs(n)[0], n, memo)
    syn = [b for b in brs if float_synapse(g.node(b.leaf))]
    for b in syn:
        if b.leaf in done or len(g.users(b.leaf)) != 1:
            raise UnsupportedLayerError(
                f"synapse '{g.node(b.leaf).source}' feeds more than one consumer; each "
                "Conv2d/Linear must feed exactly one neuron (directly or through pooling/add)")
        done.add(b.leaf)
    has_flatten = any(role(g.node(p)) == "reshape" for b in syn for p in b.path)
    per_channel = cfg.granularity == "channel" and neuron.fires and not has_flatten
    return brs, syn, per_channel


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
        out[n] = [SynapsePlan(b.leaf, n, spike_scale(g, g.inputs(b.leaf)[0], scale_cache, memo) * b.factor,
                              cfg.bits_for(first=_reads_input_only(g, b.leaf, g.input_name),
                                           last=n in outputs), per_channel, b)
                  for b in syn]
    return out


def _reads_input_only(g: Graph, syn: str, inp: str) -> bool:
    """True when the synapse reads the input through pooling/flatten only."""
    x = g.inputs(syn)[0]
    while x != inp and role(g.node(x)) in PATH_ROLES:
        x = g.inputs(x)[0]
    return x == inp


def _per_out(sigma: np.ndarray, out_channels: int) -> np.ndarray:
    return np.full(out_channels, sigma[0]) if sigma.size == 1 else sigma


def _through_path(g: Graph, bias: np.ndarray, path: list[str], shapes: dict) -> np.ndarray:
    """A per-channel bias after pooling (unchanged) and flatten (repeated per feature)."""
    for p in path:
        if role(g.node(p)) == "reshape":
            c, *hw = shapes[g.inputs(p)[0]]
            bias = np.repeat(bias, int(np.prod(hw)))
    return bias
