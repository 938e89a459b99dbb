"""Block-wise weight rounding (BWR): learned per-weight rounding, block by block.

SNNQ's BWR is BRECQ/AdaRound block reconstruction (docs/quantization.md). Every weight
w (in units of its neuron's shared integer scale sigma, x = w / sigma) may round to the
grid level just below (lo) or just above (hi) it; a continuous variable V per weight
chooses through the rectified sigmoid

    h(V) = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1),   gamma = -0.1, zeta = 1.1
    w_soft = sigma (lo + h(V) (hi - lo)),                    hard: h >= 0.5  <=>  V >= 0

V starts at h(V) = (x - lo) / (hi - lo) (round-to-nearest's soft equivalent) and Adam
minimises, per block,

    L = rec(block(W_soft; inputs), float block(W; float inputs))
        + lambda * sum (1 - |2 h(V) - 1|^beta)       (no regulariser in the warm-up)

with beta annealed from 20 to 2 after a warm-up of 20 % of the iterations, lambda = 0.01.

**Blocks** are neuron units: the synapses into one spiking neuron (Conv/Dense with
folded BatchNorm, pooling on the way, residual Adds, the identity shortcut) plus the
neuron; a residual body (the units between a shortcut's source neuron and the neuron the
shortcut enters) is one block (BRECQ's residual block). ``blocks="layer"`` keeps units
apart.

**Reconstruction target**: the float block's output over all T steps. ``loss="both"``
(default) = membrane + spikes: the summed-over-channels squared error of the
pre-reset membrane potential v_t (dense, informative gradient; each step's v carries
the neuron's own reset history) plus that of the spikes s_t through the arctan surrogate
of snncc.nn.LIF (what the next block actually sees). ``"membrane"`` or ``"spikes"``
alone are available; readouts (non-firing) always use the membrane.

**Inputs** are the quantized network's (earlier blocks already rounded) spikes;
QDrop (``qdrop`` = p) replaces each input element by the float network's with
probability p during training.

**How the result reaches the integer model**: the returned float graph has every
synapse's weights replaced by exactly ``w_int * sigma / unit`` and
``graph.meta["weight_quant"][synapse] = {"scale": sigma, "weight_bits": ...}``;
quantize_synapses then takes sigma as given and recovers w_int = round(w_eff / sigma)
exactly (w_eff / sigma is an integer up to a few ulps). The float graph itself is the
fake-quantized model (run_float on it is the float-domain accuracy of the rounding).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import CompileConfig, from_dict, read_toml
from ..errors import SnnccError
from ..ir.graph import Graph
from . import quantizers as Q
from .fold import add_readout, apply_state_quant, fold_batchnorm
from .quantize import PATH_OPS, WEIGHT_QUANT, SynapsePlan, synapse_plan

GAMMA, ZETA = -0.1, 1.1
LOSSES = ("both", "membrane", "spikes")
BLOCKS = ("residual", "layer")


@dataclass
class BWRConfig:
    """BWR hyper-parameters; a TOML ``[bwr]`` table uses the same names
    (``enabled = true`` there turns BWR on like ``--bwr``)."""

    enabled: bool = False          # read by the compile driver, not by bwr()
    iters: int = 2000              # per block (BRECQ/QDrop: 20000; 2000 fits 2 CPU cores)
    batch_size: int = 32
    lr: float | None = None        # Adam on V; None: 20 / iters (the recipe's 1e-3 x 20000)
    reg_weight: float = 0.1        # lambda (recipe: 0.01 with 20000 iterations, see docs)
    beta_start: float = 20.0
    beta_end: float = 2.0
    warmup: float = 0.2            # fraction of iterations without the regulariser
    qdrop: float = 0.5             # probability of using the float input element (0: off)
    loss: str = "both"             # membrane | spikes | both
    blocks: str = "residual"       # residual | layer
    clip: str = "mse"              # grid range of uniform/asymmetric (BRECQ's init): mse | max | config
    slope: float = 2.0             # arctan surrogate slope (snncc.nn.LIF's default)
    calib: str = "fashion-mnist:1024"  # calibration spec for the CLI (snncc.data.parse_spec)
    seed: int = 0
    device: str = "auto"           # auto (CUDA if available) | cpu | cuda
    eval_samples: int = 256        # calibration samples for the reported block errors
    fallback: bool = True          # keep round-to-nearest for a block where learning did worse

    def __post_init__(self) -> None:
        errs = []
        if self.lr is not None and self.lr <= 0:
            errs.append(f"lr = {self.lr}: must be > 0")
        if self.iters < 0:
            errs.append(f"iters = {self.iters}: must be >= 0")
        if self.batch_size < 1:
            errs.append(f"batch_size = {self.batch_size}: must be >= 1")
        if not 0.0 <= self.qdrop <= 1.0:
            errs.append(f"qdrop = {self.qdrop}: a probability in [0, 1]")
        if not 0.0 <= self.warmup < 1.0:
            errs.append(f"warmup = {self.warmup}: a fraction in [0, 1)")
        if self.loss not in LOSSES:
            errs.append(f"loss = {self.loss!r}: choose one of {', '.join(LOSSES)}")
        if self.blocks not in BLOCKS:
            errs.append(f"blocks = {self.blocks!r}: choose one of {', '.join(BLOCKS)}")
        if self.clip not in ("mse", "max", "config"):
            errs.append(f"clip = {self.clip!r}: choose mse, max or config")
        if self.device not in ("auto", "cpu", "cuda"):
            errs.append(f"device = {self.device!r}: choose auto, cpu or cuda")
        if errs:
            raise SnnccError("invalid BWR configuration:\n" + "\n".join(f"  - {e}" for e in errs))

    @classmethod
    def from_dict(cls, d: dict) -> "BWRConfig":
        return from_dict(cls, d, "[bwr] key(s)")

    @classmethod
    def from_toml(cls, path: str | Path) -> "BWRConfig":
        """The ``[bwr]`` table of a TOML file (defaults when it has none)."""
        return cls.from_dict(read_toml(path).get("bwr", {}))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------ calibration data
def calibration_array(calib, max_samples: int | None = None) -> np.ndarray:
    """numpy array / torch tensor / DataLoader (yielding x or (x, y, ...)) -> numpy array."""
    import torch

    if isinstance(calib, np.ndarray):
        x = calib
    elif isinstance(calib, torch.Tensor):
        x = calib.detach().cpu().numpy()
    elif hasattr(calib, "__iter__"):
        parts, n = [], 0
        for item in calib:
            xb = item[0] if isinstance(item, (tuple, list)) else item
            xb = xb.detach().cpu().numpy() if isinstance(xb, torch.Tensor) else np.asarray(xb)
            parts.append(xb)
            n += len(xb)
            if max_samples is not None and n >= max_samples:
                break
        if not parts:
            raise SnnccError("the calibration DataLoader yielded no data")
        x = np.concatenate(parts, 0)
    else:
        raise SnnccError(f"calibration data must be a numpy array, a torch tensor or a DataLoader, "
                         f"got {type(calib).__name__}")
    if max_samples is not None:
        x = x[:max_samples]
    if len(x) == 0:
        raise SnnccError("no calibration samples")
    return x


# ------------------------------------------------------------------------------ blocks
@dataclass
class Block:
    name: str
    neurons: list[str]        # LIF nodes in the block (graph order)
    nodes: list[str]          # every node evaluated in the block (graph order)
    inputs: list[str]         # boundary nodes read (LIF or Input)
    outputs: list[str]        # neurons whose output leaves the block (loss targets)
    synapses: list[SynapsePlan]


def _unit_nodes(g: Graph, n: str) -> set[str]:
    """Nodes feeding neuron n back to (not including) the previous neurons / input."""
    seen: set[str] = set()
    stack = list(g.inputs(n))
    while stack:
        x = stack.pop()
        if x in seen or g.node(x).kind in ("LIF", "Input"):
            continue
        seen.add(x)
        stack.extend(g.inputs(x))
    return seen | {n}


def _source_neuron(g: Graph, x: str) -> str:
    while g.node(x).kind in PATH_OPS:
        x = g.inputs(x)[0]
    return x


def find_blocks(g: Graph, plan: dict[str, list[SynapsePlan]], mode: str = "residual") -> list[Block]:
    """Blocks in graph order: one per neuron unit, residual bodies merged (mode "residual")."""
    from .quantize import _branches

    order = {n: i for i, n in enumerate(g.order())}
    units = {n: _unit_nodes(g, n) for n in g.of_kind("LIF")}
    root = {n: n for n in units}

    def find(n):
        while root[n] != n:
            n = root[n]
        return n

    if mode == "residual":
        memo: dict = {}
        for c in units:
            for br in _branches(g, g.inputs(c)[0], c, memo):
                if g.node(br.leaf).kind in ("Conv", "Dense"):
                    continue
                a = _source_neuron(g, br.leaf)
                if g.node(a).kind != "LIF":
                    continue
                for u in units:
                    if u not in (a, c) and _reaches(g, a, u) and _reaches(g, u, c):
                        root[find(u)] = find(c)
    groups: dict[str, list[str]] = {}
    for n in sorted(units, key=order.get):
        groups.setdefault(find(n), []).append(n)
    blocks = []
    for neurons in sorted(groups.values(), key=lambda ns: order[ns[-1]]):
        nodes = sorted(set().union(*(units[m] for m in neurons)), key=order.get)
        node_set = set(nodes)
        inputs = sorted({s for x in nodes for s in g.inputs(x) if s not in node_set}, key=order.get)
        outs = [m for m in neurons if m in g.outputs or any(u not in node_set for u in g.users(m))]
        syn = [p for m in neurons for p in plan.get(m, [])]
        blocks.append(Block(neurons[-1], neurons, nodes, inputs, outs or neurons[-1:], syn))
    return blocks


def _reaches(g: Graph, a: str, b: str) -> bool:
    import networkx as nx

    return a != b and nx.has_path(g.g, a, b)


# ------------------------------------------------------------------------ torch runtime
class _Runtime:
    """Evaluates float-graph nodes on (N, T, ...) tensors (static inputs: (N, ...))."""

    def __init__(self, g: Graph, steps: int, device, slope: float):
        import torch

        self.torch = torch
        self.g = g
        self.steps = steps
        self.device = device
        self.slope = slope
        self.const: dict = {}

    def t(self, key, arr):
        if key not in self.const:
            self.const[key] = self.torch.as_tensor(np.asarray(arr, np.float32), device=self.device)
        return self.const[key]

    def run(self, nodes: list[str], vals: dict, weights: dict | None = None, train: bool = False,
            want_v: tuple[str, ...] = ()) -> tuple[dict, dict]:
        """vals: name -> (tensor, static). Returns (vals, pre-reset membranes of want_v)."""
        import torch.nn.functional as F

        torch = self.torch
        weights = weights or {}
        vs = {}
        for n in nodes:
            op = self.g.node(n)
            ins = [vals[s] for s in self.g.inputs(n)]
            k = op.kind
            if k in ("Conv", "Dense", "AvgPool", "MaxPool", "Flatten"):
                x, st = ins[0]
                xx = x if st else x.flatten(0, 1)
                if k == "Conv":
                    w = weights.get(n, self.t((n, "w"), op.weight))
                    y = F.conv2d(xx, w, self.t((n, "b"), op.bias), op.stride, op.padding, op.dilation, op.groups)
                elif k == "Dense":
                    w = weights.get(n, self.t((n, "w"), op.weight))
                    y = F.linear(xx, w, self.t((n, "b"), op.bias))
                elif k == "AvgPool":
                    y = F.avg_pool2d(xx, op.kernel, op.stride, op.padding)
                elif k == "MaxPool":
                    y = F.max_pool2d(xx, op.kernel, op.stride)
                else:
                    y = xx.flatten(1)
                vals[n] = (y, True) if st else (y.reshape(x.shape[:2] + y.shape[1:]), False)
            elif k == "Add":
                if all(st for _, st in ins):
                    vals[n] = (sum(x for x, _ in ins[1:]) + ins[0][0], True)
                else:
                    xs = [x.unsqueeze(1).expand(-1, self.steps, *x.shape[1:]) if st else x for x, st in ins]
                    vals[n] = (sum(xs[1:], xs[0]), False)
            elif k == "LIF":
                s, v = self._lif(n, op, *ins[0], train)
                vals[n] = (s, False)
                if n in want_v:
                    vs[n] = v
            elif k == "Input":
                raise SnnccError("the input node is a block boundary, not a block node")
            else:
                raise SnnccError(f"BWR cannot evaluate {k} nodes")
        return vals, vs

    def _lif(self, n, op, x, static, train):
        from ..nn import _SpikeATan, _StateQuant

        torch = self.torch
        nd = x.dim() - (0 if static else 1)
        c = (1, -1) + (1,) * (nd - 2)
        thr = self.t((n, "thr"), op.threshold).reshape(c)
        bias = self.t((n, "bias"), op.bias).reshape(c)
        x0 = x if static else x[:, 0]
        v = torch.full_like(x0, op.v_init)
        u = torch.zeros_like(x0)
        spikes, vpre = [], []
        for t in range(self.steps if static else x.shape[1]):
            xt = x if static else x[:, t]
            u = op.alpha * u + xt if op.alpha else xt
            v = op.beta * v + u + bias
            vpre.append(v)
            if op.fires:
                s = _SpikeATan.apply(v - thr, self.slope) if train else (v > thr).to(v.dtype)
                if op.reset == "zero":
                    v = v * (1 - s)
                elif op.reset == "subtract":
                    v = v - s * self.t((n, "rv"), op.reset_value).reshape(c)
            else:
                s = torch.zeros_like(v)
            if op.state_quant != "none":
                lvl = float(np.asarray(op.state_level).ravel()[0])
                if np.asarray(op.state_level).size != 1:
                    raise SnnccError("BWR supports one membrane level per neuron layer")
                v = _StateQuant.apply(v, lvl, -1 if op.state_quant == "ternary" else 0)
            spikes.append(s)
        return torch.stack(spikes, 1), torch.stack(vpre, 1)


# ---------------------------------------------------------------------------- rounding
class _SoftSynapse:
    """Learned rounding of one synapse on its neuron's shared grid."""

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
        import torch

        w = w_int * (self.sigma[:, None] / self.plan.unit)
        return torch.tensor(w.reshape(self.shape), dtype=torch.float32, device=self.device)

    def reg(self, beta: float):
        h = self.h()[self._free]
        return (1 - (2 * h - 1).abs().pow(beta)).sum()


def _shared_grids(g: Graph, plan: dict, cfg: CompileConfig, clip: str) -> dict[str, tuple]:
    """Per synapse: (its quantizer result, the neuron's shared scale), as the compiler
    would build them (clip: BWR's grid range rule for uniform/asymmetric)."""
    out = {}
    qcfg = cfg if clip == "config" else dataclasses.replace(cfg, weight_clip=clip)
    from .quantize import quantize_weights

    for n, syns in plan.items():
        if not syns:
            continue
        qs = []
        for p in syns:
            w_eff = g.node(p.name).weight * p.unit
            qs.append(quantize_weights(qcfg, w_eff, p.bits, p.per_channel, unit=p.unit))
        per_channel = syns[0].per_channel
        sigma = np.zeros(qs[0].scale.shape[0] if per_channel else 1)
        for q in qs:
            sigma = np.maximum(sigma, q.scale if per_channel else q.scale[:1])
        for p, q in zip(syns, qs):
            out[p.name] = (q, sigma)
    return out


class _Adam:
    """Adam (torch's defaults: betas 0.9, 0.999, eps 1e-8), kept here so BWR does not pull
    in torch.optim's compile machinery (seconds of import time)."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        import torch

        self.params, self.lr, self.b1, self.b2, self.eps = list(params), lr, betas[0], betas[1], eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        import torch

        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        with torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v):
                if p.grad is None:
                    continue
                m.mul_(self.b1).add_(p.grad, alpha=1 - self.b1)
                v.mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
                p.addcdiv_(m, (v / c2).sqrt_().add_(self.eps), value=-self.lr / c1)


# -------------------------------------------------------------------------------- main
def bwr(float_graph: Graph, calib_x, config: CompileConfig | None = None, iters: int | None = None, *,
        bwr_config: BWRConfig | None = None, seed: int | None = None, progress: bool = True,
        device: str | None = None, input_units: str = "int", max_samples: int | None = None) -> Graph:
    """Learn the rounding of every synapse block by block; return the float graph (after
    fold_batchnorm, add_readout, apply_state_quant) whose weights are the learned
    quantized weights, with ``meta["weight_quant"]`` fixing their scales, ready for
    :func:`snncc.compiler.compile_graph`.

    ``calib_x``: calibration inputs (numpy array, torch tensor or DataLoader) in the
    integer input units of the reference interpreter (uint8 pixels, 0/1 events), static
    (N, *shape) or sequences (N, T, *shape); ``input_units="real"`` for inputs already
    multiplied by the input scale. Statistics land in ``meta["bwr"]``."""
    import torch
    from tqdm import tqdm

    cfg = config or CompileConfig()
    bc = bwr_config or BWRConfig()
    if iters is not None:
        bc = dataclasses.replace(bc, iters=iters)
    if seed is not None:
        bc = dataclasses.replace(bc, seed=seed)
    if device is not None:
        bc = dataclasses.replace(bc, device=device)
    dev = torch.device("cuda" if (bc.device == "cuda" or (bc.device == "auto" and torch.cuda.is_available()))
                       else "cpu")
    t_start = time.perf_counter()

    g = float_graph
    for fn in (fold_batchnorm, add_readout, apply_state_quant):
        g, _ = fn(g, cfg)
    g = g.copy()
    g.meta = dict(g.meta)
    plan = synapse_plan(g, cfg)
    blocks = find_blocks(g, plan, bc.blocks)
    grids = _shared_grids(g, plan, cfg, bc.clip)
    steps = int(cfg.steps)

    # calibration inputs, real valued
    inp = g.node(g.input_name)
    x = calibration_array(calib_x, max_samples)
    shape = tuple(inp.shape)
    if x.shape[1:] == shape:
        static = True
    elif x.ndim == len(shape) + 2 and x.shape[2:] == shape:
        static = False
    else:
        raise SnnccError(f"calibration data have shape {x.shape}; the model takes (N, {', '.join(map(str, shape))}) "
                         f"or (N, T, {', '.join(map(str, shape))})")
    xr = x.astype(np.float32) * (float(inp.scale) if input_units == "int" else 1.0)
    X = torch.as_tensor(xr, device=dev)
    N = len(X)
    rt = _Runtime(g, steps, dev, bc.slope)
    gen = torch.Generator(device="cpu").manual_seed(bc.seed)
    torch.manual_seed(bc.seed)

    boundary = {s for b in blocks for s in b.inputs if g.node(s).kind == "LIF"}
    chunk = 128

    def sources(cache: dict, idx, names) -> dict:
        vals = {}
        for s in names:
            if s == g.input_name:
                vals[s] = (X[idx], static)
            elif s in boundary:
                vals[s] = (cache[s][idx].to(torch.float32), False)
            else:
                raise SnnccError(f"BWR: block input '{s}' is neither the input nor a neuron")
        return vals

    # float network spikes at every block boundary
    fp: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        order = [n for n in g.order() if n != g.input_name]
        for i in range(0, N, chunk):
            idx = torch.arange(i, min(i + chunk, N))
            vals, _ = rt.run(order, {g.input_name: (X[idx], static)})
            for s in boundary:
                fp.setdefault(s, []).append(vals[s][0].to(torch.uint8))
    fp = {s: torch.cat(v, 0) for s, v in fp.items()}
    qc: dict[str, torch.Tensor] = {}

    def rec_loss(vq, vf, sq, sf, out_ops):
        loss = 0.0
        for n, op in out_ops:
            if bc.loss in ("membrane", "both") or not op.fires:
                loss = loss + (vq[n] - vf[n]).pow(2).sum(2).mean()
            if bc.loss in ("spikes", "both") and op.fires:
                loss = loss + (sq[n] - sf[n]).pow(2).sum(2).mean()
        return loss

    stats = []
    fixed: dict[str, dict] = {}
    for bi, blk in enumerate(blocks):
        t0 = time.perf_counter()
        out_ops = [(n, g.node(n)) for n in blk.outputs]
        soft = [_SoftSynapse(p, g.node(p.name).weight, grids[p.name][1], grids[p.name][0], dev)
                for p in blk.synapses]

        def forward(idx, weights, inputs_from, train=False, qdrop=False):
            vals = sources(inputs_from, idx, blk.inputs)
            if qdrop:
                fvals = sources(fp, idx, blk.inputs)
                for s in blk.inputs:
                    if s in boundary:
                        m = torch.rand(vals[s][0].shape, generator=gen).to(dev) < bc.qdrop
                        vals[s] = (torch.where(m, fvals[s][0], vals[s][0]), False)
            vals, vs = rt.run(blk.nodes, vals, weights, train, tuple(blk.outputs))
            return {n: vals[n][0] for n in blk.outputs}, vs

        # float targets for the whole calibration set
        tgt_s, tgt_v = {}, {}
        with torch.no_grad():
            for i in range(0, N, chunk):
                idx = torch.arange(i, min(i + chunk, N))
                s_, v_ = forward(idx, None, fp)
                for n in blk.outputs:
                    tgt_s.setdefault(n, []).append(s_[n].to(torch.uint8))  # spikes: 0/1
                    tgt_v.setdefault(n, []).append(v_[n])
        tgt_s = {n: torch.cat(v, 0) for n, v in tgt_s.items()}
        tgt_v = {n: torch.cat(v, 0) for n, v in tgt_v.items()}
        eval_idx = torch.arange(min(N, bc.eval_samples))

        def eval_loss(ints: list[np.ndarray]) -> float:
            with torch.no_grad():
                ws = {s.plan.name: s.weight_of(w) for s, w in zip(soft, ints)}
                s_, v_ = forward(eval_idx, ws, qc)
                return float(rec_loss(v_, {n: tgt_v[n][eval_idx] for n in v_}, s_,
                                      {n: tgt_s[n][eval_idx].float() for n in s_}, out_ops))

        rtn_err = eval_loss([s.rtn for s in soft]) if soft else 0.0
        if soft and bc.iters > 0:
            opt = _Adam([s.V for s in soft], lr=bc.lr if bc.lr is not None else 20.0 / bc.iters)
            warm = int(bc.warmup * bc.iters)
            bar = tqdm(range(bc.iters), desc=f"BWR {bi + 1}/{len(blocks)} {blk.name}", disable=not progress,
                       mininterval=1.0, leave=False)
            for it in bar:
                idx = torch.randint(0, N, (min(bc.batch_size, N),), generator=gen)
                ws = {s.plan.name: s.soft() for s in soft}
                s_, v_ = forward(idx, ws, qc, train=True, qdrop=bc.qdrop > 0)
                rec = rec_loss(v_, {n: tgt_v[n][idx.to(dev)] for n in v_}, s_,
                               {n: tgt_s[n][idx.to(dev)].float() for n in s_}, out_ops)
                if it < warm:
                    reg = torch.zeros((), device=dev)
                else:
                    rel = (it - warm) / max(1, bc.iters - warm)
                    beta = bc.beta_end + (bc.beta_start - bc.beta_end) * max(0.0, 1.0 - rel)
                    reg = bc.reg_weight * sum(s.reg(beta) for s in soft)
                loss = rec + reg
                opt.zero_grad()
                loss.backward()
                opt.step()
                if it % 50 == 0 or it == bc.iters - 1:
                    bar.set_postfix(rec=f"{rec.item():.4g}", round=f"{reg.item():.4g}", refresh=False)
            bar.close()
        ints = [s.hard_int() if bc.iters > 0 else s.rtn for s in soft]
        bwr_err = eval_loss(ints) if soft else 0.0
        kept = "bwr" if soft and bc.iters > 0 else "rtn"
        if bc.fallback and soft and bwr_err > rtn_err:
            ints, kept = [s.rtn for s in soft], "rtn"
        undecided = 0
        with torch.no_grad():
            for s in soft:
                h = s.h()[s._free]
                undecided += int(((h > 0.01) & (h < 0.99)).sum())
        # freeze: the quantized network's spikes of this block for later blocks
        with torch.no_grad():
            ws = {s.plan.name: s.weight_of(w) for s, w in zip(soft, ints)}
            for n in blk.outputs:
                if n in boundary:
                    qc[n] = torch.empty_like(fp[n])
            for i in range(0, N, chunk):
                idx = torch.arange(i, min(i + chunk, N))
                s_, _ = forward(idx, ws, qc)
                for n in blk.outputs:
                    if n in boundary:
                        qc[n][idx] = s_[n].to(torch.uint8)
        changed = 0
        for s, w_int in zip(soft, ints):
            p = s.plan
            w_new = (w_int * (s.sigma[:, None] / p.unit)).reshape(s.shape)
            op = g.node(p.name)
            g.set(p.name, op.replace(weight=w_new))
            sig = grids[p.name][1]
            fixed[p.name] = {"scale": [float(v) for v in np.asarray(sig).ravel()],
                             "weight_bits": int(s.q.storage_bits), "bits": int(p.bits),
                             "quantizer": cfg.quantizer, "method": "bwr"}
            changed += int((w_int != s.rtn).sum())
        nw = sum(s.x.size for s in soft)
        st = {"block": blk.name, "neurons": blk.neurons, "synapses": [s.plan.name for s in soft],
              "weights": int(nw), "rec_rtn": rtn_err, "rec_bwr": bwr_err, "kept": kept,
              "changed_vs_rtn": changed / nw if nw else 0.0, "undecided": undecided / nw if nw else 0.0,
              "seconds": round(time.perf_counter() - t0, 2)}
        stats.append(st)
        if progress:
            note = "" if kept == "bwr" else " (kept round-to-nearest)"
            print(f"BWR block {bi + 1}/{len(blocks)} {blk.name}: {nw} weights, reconstruction "
                  f"{rtn_err:.4g} (nearest) -> {bwr_err:.4g} (learned){note}, "
                  f"{100 * st['changed_vs_rtn']:.1f}% rounded differently, {st['seconds']:.1f} s", flush=True)
        del tgt_s, tgt_v
    meta_q = dict(g.meta.get(WEIGHT_QUANT, {}))
    meta_q.update(fixed)
    g.meta[WEIGHT_QUANT] = meta_q
    g.meta["bwr"] = {"config": bc.to_dict(), "calib_samples": int(N), "device": str(dev),
                     "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - t_start, 2),
                     "blocks": stats}
    return g


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB: Linux's VmHWM (reset by exec, unlike
    getrusage's ru_maxrss, which a child started by a big parent inherits), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    import sys

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


__all__ = ["BWRConfig", "bwr", "find_blocks", "calibration_array", "peak_rss_mb"]
