"""NIR frontend: a NIR 1.0 graph (``.nir`` file or ``nir.NIRGraph``) -> snncc float IR.

NIR describes neurons in continuous time; snncc (like snnTorch, Lava and every digital
target) runs in discrete steps. The discretization (docs/nir.md) follows snnTorch's own
NIR export/import, so that a model exported by ``snntorch.export_to_nir`` comes back
as the same step-by-step network:

* forward Euler with ``dt = 1e-4`` (snnTorch's constant): for ``tau dv/dt = (v_leak - v)
  + R I``:  ``v <- (1 - dt/tau) v + (dt R / tau) I + (dt / tau) v_leak``, i.e.
  ``beta = 1 - dt/tau``, input gain ``g = R dt / tau`` (snnTorch writes ``R = tau / dt``
  so g = 1) and bias ``(dt / tau) v_leak``;
* CubaLIF: ``alpha = 1 - dt/tau_syn`` with input gain ``w_in dt / tau_syn`` on the
  current (snnTorch writes ``w_in = tau_syn / dt``), then the membrane as for LIF;
* ``discretization="exp"`` uses the exact zero-order hold instead: ``beta = exp(-dt/tau)``,
  gain ``R (1 - beta)`` (Norse/Rockpool-style exporters);
* IF and I have no time constant: ``v <- v + R I`` per step (gain R, no dt); a time
  constant of ``inf`` means the same (no leak, gain R).

An input gain other than 1 is folded into the synapse(s) feeding the neuron (their
weights and biases scaled per output channel), else into the membrane (threshold and
bias divided by the gain). A nonzero ``v_reset`` shifts the membrane (threshold - v_reset,
v_init = -v_reset, leak towards v_leak - v_reset). Edges into one node are summed (an
``Add`` node). ``SumPool2d`` becomes an ``AvgPool`` with the window size folded into the
next synapse's weights (or the previous one's).

NIR has no reset-mode field: neurons reset to ``v_reset`` (snncc reset "zero"). Where the
NIR file was written by snncc, per-node ``snncc.*`` metadata restores what NIR cannot
express (reset mode, membrane quantization, exact parameters); otherwise every
assumption is reported as a Python warning and listed in ``graph.meta["nir_warnings"]``.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from pathlib import Path

from dataclasses import dataclass, replace

import numpy as np

from ..errors import ModelLoadError, SnnccWarning, UnsupportedLayerError
from ..ir.graph import Graph
from ..ir.nodes import LIF, RESETS as NODE_RESETS, STATE_QUANTS, Add, AvgPool, Conv, Dense, Flatten, Input
from ..ir.verify import problems
from ..ops import shape_of

DT = 1e-4  # snnTorch's export/import time step
DISCRETIZATIONS = ("euler", "exp")
#: zero: v = v_reset (NIR's equations); subtract: snnTorch's Leaky (the threshold is taken
#: off one step late, undecayed: reset value threshold / beta); subtract-immediate: v -= threshold
#: on the spike step (Sinabs, Rockpool, SpikingJelly's soft reset); none: no reset
RESETS = ("zero", "subtract", "subtract-immediate", "none")
THRESHOLD_TESTS = ("gt", "ge")          # spike where v > threshold, or v >= threshold
V_INITS = ("zero", "leak", "reset")     # the membrane a sample starts from: 0, v_leak or v_reset


@dataclass(frozen=True)
class Conventions:
    """What a NIR file does not say and its producer decided (docs/nir.md)."""

    dt: float = DT
    discretization: str = "euler"
    reset: str | None = None          # None: the file's snncc metadata, else "zero" (with a warning)
    threshold_test: str = "gt"
    v_init: str = "zero"
    multi_spike: bool = False         # the producer emits several spikes per step (not expressible)


#: producer -> its conventions (measured against each producer's own simulation; docs/nir.md)
PRODUCERS = {
    "snntorch": Conventions(DT, "euler", "subtract", "gt", "zero"),
    "norse": Conventions(1e-3, "euler", "zero", "gt", "leak"),
    "sinabs": Conventions(1.0, "exp", "subtract-immediate", "ge", "zero", multi_spike=True),
    "rockpool": Conventions(1e-3, "exp", "subtract-immediate", "ge", "zero", multi_spike=True),
    "spikingjelly": Conventions(DT, "euler", "zero", "ge", "reset"),
}
SUPPORTED = ("Input, Output, Affine, Linear, Conv2d, AvgPool2d, SumPool2d, Flatten, "
             "LIF, CubaLIF, IF, LI, CubaLI, I")
_NEURONS = ("LIF", "CubaLIF", "IF", "LI", "CubaLI", "I")
_REL_TOL = 1e-6


class NirImportWarning(SnnccWarning):
    """An assumption made while reading a NIR graph (also in graph.meta["nir_warnings"])."""


# ------------------------------------------------------------------ small helpers
def _arr(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensors in graphs built in memory (snnTorch export)
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _pair(v, what: str, nid: str) -> tuple[int, int]:
    a = np.asarray(v).astype(np.int64).reshape(-1)
    if a.size == 1:
        return int(a[0]), int(a[0])
    if a.size == 2:
        return int(a[0]), int(a[1])
    raise UnsupportedLayerError(f"NIR node '{nid}': {what}={v!r} is not an int or an (h, w) pair")


def _meta(node) -> dict:
    md = getattr(node, "metadata", None) or {}
    out = {}
    for k, v in md.items():
        if isinstance(v, bytes):
            v = v.decode("utf8")
        out[str(k)] = v
    return out


def _real(v) -> np.ndarray:
    a = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"not a number ({_short(v)})")
    return a.astype(np.float64)


def _short(v) -> str:
    r = repr(v.decode() if isinstance(v, bytes) else v)
    return r if len(r) <= 40 else r[:37] + "..."


def _choice(allowed):
    def parse(v):
        v = v.decode() if isinstance(v, bytes) else v
        if v not in allowed:
            raise ValueError(f"{_short(v)} is not one of {', '.join(allowed)}")
        return v
    return parse


def _finite(v) -> np.ndarray:
    a = _real(v)
    if not np.all(np.isfinite(a)):
        raise ValueError("not finite (NaN or Inf)")
    return a


def _integer(v) -> int:
    a = _finite(v).reshape(-1)
    if a.size != 1 or a[0] != int(a[0]):
        raise ValueError(f"not an integer ({_short(v)})")
    return int(a[0])


#: the ``snncc.*`` metadata snncc's NIR export writes, and how each value is checked
_META_KEYS = {
    "rank": _integer, "steps": _integer, "bits": _integer, "scale": _finite, "beta": _finite, "alpha": _finite,
    "threshold": _finite, "bias": _finite, "reset_value": _finite, "state_level": _finite, "v_init": _finite,
    "fires": _choice((True, False, 0, 1)), "encoding": _choice(("direct", "spikes", "counts")),
    "reset": _choice(NODE_RESETS), "threshold_test": _choice(THRESHOLD_TESTS),
    "state_quant": _choice(STATE_QUANTS),
}
#: NIR fields that may be +inf (a time constant or resistance of inf: no leak)
_MAY_BE_INF = ("tau", "tau_mem", "tau_syn", "r")


def _check_node(nid: str, node) -> None:
    """Every numeric field of a NIR node is a finite real array (time constants may be
    +inf) and every ``snncc.*`` metadata value parses: all problems at once."""
    import dataclasses

    bad = []
    kind = type(node).__name__
    for f in dataclasses.fields(node) if dataclasses.is_dataclass(node) else ():
        v = getattr(node, f.name)
        if f.name == "metadata" or v is None or isinstance(v, dict):
            for port, dims in (v.items() if f.name.endswith("_type") and isinstance(v, dict) else ()):
                if dims is None:  # a shape NIR leaves open (pooling nodes)
                    continue
                try:
                    d = _finite(dims)
                    if d.ndim > 1 or np.any(d != np.round(d)) or np.any(d < 0):
                        raise ValueError(f"{_short(dims)} is not a list of sizes")
                except ValueError as e:
                    bad.append(f"{f.name}[{port!r}] (the shape): {e}")
            continue
        try:
            a = _real(v)
        except ValueError as e:
            bad.append(f"{f.name}: {e}")
            continue
        if np.any(np.isnan(a)) or (np.any(np.isinf(a)) and not (f.name in _MAY_BE_INF and np.all(a[np.isinf(a)] > 0))):
            bad.append(f"{f.name}: not finite (NaN or Inf at {int(np.sum(~np.isfinite(a)))} of {a.size} entries)")
    for k, v in _meta(node).items():
        parse = _META_KEYS.get(k[6:]) if k.startswith("snncc.") else None
        if parse is not None:
            try:
                parse(v)
            except ValueError as e:
                bad.append(f"metadata {k}: {e}")
    if bad:
        raise ModelLoadError(f"NIR node '{nid}' ({kind}) has invalid fields:\n" + "\n".join(f"  - {b}" for b in bad))


def _natural(s: str):
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t)


def _close(a, b) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    try:
        a, b = np.broadcast_arrays(a, b)
    except ValueError:
        return False
    return bool(np.all(np.isclose(a, b, rtol=_REL_TOL, atol=1e-12) | (np.isinf(a) & (a == b))))


def _per_channel(a, shape: tuple[int, ...], what: str, nid: str) -> np.ndarray:
    """An NIR per-neuron parameter -> snncc's (C,) or (1,) per-channel array."""
    a = _arr(a)
    try:
        full = np.broadcast_to(a, shape) if a.ndim else np.full(shape, float(a))
    except ValueError:
        raise UnsupportedLayerError(f"NIR node '{nid}': {what} has shape {a.shape}, which does not fit "
                                    f"the neuron shape {shape}") from None
    c = shape[0]
    flat = full.reshape(c, -1)
    if not np.all(flat == flat[:, :1]):
        raise UnsupportedLayerError(
            f"NIR node '{nid}': {what} varies within a channel; snncc keeps neuron constants per "
            "channel (axis 0) or per layer")
    per = flat[:, 0].copy()
    return per[:1] if np.all(per == per[0]) else per


def _scalar(a, what: str, nid: str) -> float:
    a = _arr(a).reshape(-1)
    if a.size == 0 or not np.all(a == a[0]):
        raise UnsupportedLayerError(
            f"NIR node '{nid}': {what} differs between neurons; snncc needs one {what} per layer "
            "(one decay constant per neuron layer)")
    return float(a[0])


# ------------------------------------------------------------------ discretization
def _decay(tau: float, dt: float, method: str, nid: str, what: str) -> tuple[float, float]:
    """(factor, 1 - factor) for a time constant; tau = inf: no leak (1, 0)."""
    if math.isinf(tau) and tau > 0:
        return 1.0, 0.0
    if not tau > 0:
        raise UnsupportedLayerError(f"NIR node '{nid}': {what}={tau} must be > 0")
    if method == "exp":
        f = math.exp(-dt / tau)
        return f, 1.0 - f
    k = dt / tau
    if k > 1.0:
        raise UnsupportedLayerError(
            f"NIR node '{nid}': {what}={tau} is shorter than the time step dt={dt}: forward Euler gives "
            f"a negative decay 1 - dt/tau = {1 - k:.3g}; pass a smaller dt or discretization='exp'")
    return 1.0 - k, k


def _neuron(nid: str, node, kind: str, shape, conv: Conventions, warn) -> tuple[LIF, np.ndarray]:
    """The float LIF of a NIR neuron and its per-channel input gain (to be folded)."""
    fires = kind in ("LIF", "CubaLIF", "IF")
    beta, alpha, leak_k, gain = _dynamics(nid, node, kind, shape, conv)
    v_leak = _per_channel(node.v_leak, shape, "v_leak", nid) if hasattr(node, "v_leak") else np.zeros(1)
    thr = _per_channel(node.v_threshold, shape, "v_threshold", nid) if fires else np.zeros(1)
    v_reset = (_per_channel(node.v_reset, shape, "v_reset", nid)
               if fires and getattr(node, "v_reset", None) is not None else np.zeros(1))
    v_init = {"zero": np.zeros(1), "leak": v_leak, "reset": v_reset}[conv.v_init]
    original_thr = thr
    if np.any(v_reset != 0):
        if v_reset.size != 1:
            raise UnsupportedLayerError(f"NIR node '{nid}': v_reset differs between channels; snncc "
                                        "resets to one value per layer")
        vr = float(v_reset[0])
        thr, v_leak, v_init = thr - vr, v_leak - vr, v_init - vr
        warn(f"NIR node '{nid}': v_reset={vr:g} is modelled by shifting the membrane by -v_reset "
             f"(threshold - v_reset, reset to 0); the membrane starts at {conv.v_init} (NIR has no initial "
             "state), in the shifted frame; a readout's v is shifted likewise")
    reset, reset_value = _reset(nid, fires, conv, beta, original_thr)
    v_init = float(v_init[0]) if np.all(v_init == v_init[0]) else v_init  # per channel where it varies
    lif = LIF(source=nid, beta=float(beta), alpha=float(alpha), threshold=thr, bias=v_leak * leak_k, reset=reset,
              reset_value=reset_value, v_init=v_init, state_quant="none", state_level=thr.copy(),
              fires=fires, threshold_test=conv.threshold_test if fires else "gt")
    return lif, gain


def _dynamics(nid: str, node, kind: str, shape, conv: Conventions):
    """(beta, alpha, leak fraction, per-channel input gain) from the time constants."""
    r = _per_channel(node.r, shape, "r", nid)
    alpha, syn_gain = 0.0, np.ones(1)
    if kind in ("IF", "I"):  # dv/dt = R I: v += dt R I per step
        beta, leak_k, mem_gain = 1.0, 0.0, r * conv.dt
    else:
        tau = _scalar(node.tau_mem if kind.startswith("Cuba") else node.tau, "tau", nid)
        beta, leak_k = _decay(tau, conv.dt, conv.discretization, nid, "tau_mem" if kind.startswith("Cuba") else "tau")
        mem_gain = r * leak_k if leak_k else _no_leak_gain(nid, r, tau, conv.dt)
    if kind.startswith("Cuba"):
        tau_syn = _scalar(node.tau_syn, "tau_syn", nid)
        alpha, syn_k = _decay(tau_syn, conv.dt, conv.discretization, nid, "tau_syn")
        if alpha == 1.0:
            raise UnsupportedLayerError(f"NIR node '{nid}': tau_syn=inf (a current that never decays) "
                                        "is not supported")
        syn_gain = _per_channel(node.w_in, shape, "w_in", nid) * syn_k
    return beta, alpha, leak_k, mem_gain * syn_gain


def _no_leak_gain(nid: str, r: np.ndarray, tau: float, dt: float) -> np.ndarray:
    """The input gain dt R / tau of a leaky neuron with tau = inf: 0 for a finite R (no
    dynamics at all: refused), and 1 where R is infinite too, as snnTorch writes a
    Leaky with beta = 1 (tau = dt / (1 - beta), R = tau / dt: dt R / tau = 1)."""
    if np.all(np.isinf(r)) and math.isinf(tau):
        return np.ones(1)
    raise UnsupportedLayerError(f"NIR node '{nid}': tau = {tau} with r = {r.tolist()} gives an input gain "
                                "dt r / tau of 0 (a neuron its input never moves); write an IF node, or r = "
                                "tau / dt for a gain of 1")


def _reset(nid: str, fires: bool, conv: Conventions, beta: float, thr: np.ndarray) -> tuple[str, np.ndarray]:
    """(snncc reset, reset value) of a neuron; ``thr`` in the file's frame (a subtraction
    does not depend on the frame)."""
    if not fires:
        return "none", thr.copy()
    reset = conv.reset or "zero"
    if reset == "subtract":  # snnTorch: thr taken off one step late and undecayed, = thr / beta now
        if beta == 0.0:
            raise UnsupportedLayerError(f"NIR node '{nid}': reset='subtract' (snnTorch's) with beta=0; use "
                                        "subtract-immediate or zero")
        return "subtract", thr / beta
    if reset == "subtract-immediate":
        return "subtract", thr.copy()
    return reset, thr.copy()


def _v_init(v):
    """A float LIF's v_init: one float, or a per-channel array where the values differ."""
    a = np.asarray(v, np.float64).reshape(-1)
    return float(a[0]) if np.all(a == a[0]) else a


def _apply_snncc_meta(nid: str, lif: LIF, md: dict, warn) -> LIF:
    """Restore the exact float LIF written by snncc's NIR export (metadata ``snncc.*``),
    after checking that the NIR parameters still agree with it."""
    want = {k[6:]: v for k, v in md.items() if k.startswith("snncc.")}
    if want.get("kind") != "LIF":
        return lif
    checks = [("beta", lif.beta), ("alpha", lif.alpha)]
    if lif.fires:
        checks.append(("threshold", lif.threshold))
    if lif.beta != 1.0:  # without a leak NIR has no v_leak: the bias lives in the metadata only
        checks.append(("bias", lif.bias))
    bad = [f for f, got in checks if f in want and not _close(got, want[f])]
    if bad:
        warn(f"NIR node '{nid}': its snncc metadata disagrees with its NIR parameters ({', '.join(bad)}); "
             "the NIR parameters are used and the snncc-only fields (reset mode, membrane quantization) "
             "are ignored")
        return lif
    arrays = {f: np.asarray(want[f], np.float64).reshape(-1)
              for f in ("threshold", "bias", "reset_value", "state_level") if f in want}
    return lif.replace(beta=float(want.get("beta", lif.beta)), alpha=float(want.get("alpha", lif.alpha)),
                       reset=str(want.get("reset", lif.reset)), v_init=_v_init(want.get("v_init", lif.v_init)),
                       state_quant=str(want.get("state_quant", lif.state_quant)),
                       fires=bool(want.get("fires", lif.fires)),
                       threshold_test=str(want.get("threshold_test", lif.threshold_test)), **arrays)


# ------------------------------------------------------------------ graph structure
def _read(path_or_graph):
    import nir

    if isinstance(path_or_graph, (str, Path)):
        path = Path(path_or_graph)
        if not path.is_file():
            raise ModelLoadError(f"NIR file not found: {path}")
        _check_file(path)
        try:
            return nir.read(path, type_check=False)
        except Exception as e:  # noqa: BLE001 - h5py/nir raise many kinds
            raise ModelLoadError(f"{path} cannot be read as a NIR graph: {type(e).__name__}: {e}") from None
    if isinstance(path_or_graph, nir.NIRGraph):
        return path_or_graph
    raise ModelLoadError(f"load_nir takes a .nir path or a nir.NIRGraph, got {type(path_or_graph).__name__}")


def _check_file(path: Path) -> None:
    """What nir.read would assert on or crash over, named: a node type NIR does not define,
    a field that is not a number, neuron parameters of different shapes."""
    import h5py
    import nir

    known = {n for n in dir(nir) if isinstance(getattr(nir, n), type) and issubclass(getattr(nir, n), nir.NIRNode)}
    bad = []

    def check(sub, name: str, t: str) -> None:
        shapes = {}
        for field, d in sub.items():
            if field in ("type", "metadata") or not isinstance(d, h5py.Dataset):
                continue
            if d.dtype.kind not in "biuf":
                bad.append(f"node '{name}' ({t}): field '{field}' is not a number ({_short(d[()])})")
            elif field not in ("input_type", "output_type"):
                shapes[field] = d.shape
        if t in _NEURONS and len(set(shapes.values())) > 1:
            bad.append(f"node '{name}' ({t}): its parameters have different shapes ("
                       + ", ".join(f"{k} {v}" for k, v in sorted(shapes.items())) + "); NIR needs one per neuron")

    def walk(group, where: str) -> None:
        for name, sub in group.items():
            if not (isinstance(sub, h5py.Group) and "type" in sub):
                continue
            t = sub["type"][()]
            t = t.decode() if isinstance(t, bytes) else str(t)
            if t not in known:
                bad.append(f"node '{where}{name}' has type {t!r}, which NIR does not define "
                           f"(NIR's types: {', '.join(sorted(known))})")
            elif t == "NIRGraph":
                if "nodes" in sub:
                    walk(sub["nodes"], f"{where}{name}.")
            else:
                check(sub, where + name, t)

    try:
        with h5py.File(path, "r") as f:
            if "node" not in f or "nodes" not in f["node"]:
                raise ModelLoadError(f"{path} cannot be read as a NIR graph: it is an HDF5 file without the "
                                     "node/nodes group NIR writes")
            walk(f["node"]["nodes"], "")
    except OSError as e:
        raise ModelLoadError(f"{path} cannot be read as a NIR graph: not an HDF5 file ({e})") from None
    if bad:
        raise ModelLoadError(f"{path} cannot be read as a NIR graph:\n" + "\n".join(f"  - {b}" for b in bad))


def _topo(nodes: dict, preds: dict[str, list[str]]) -> list[str]:
    def key(n):
        rank = _meta(nodes[n]).get("snncc.rank")
        return (0 if rank is not None else 1, int(rank) if rank is not None else 0, _natural(n))

    indeg = {n: len(preds[n]) for n in nodes}
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for n, ps in preds.items():
        for p in ps:
            succ[p].append(n)
    ready = sorted((n for n in nodes if indeg[n] == 0), key=key)
    order = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for s in succ[n]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
        ready.sort(key=key)
    if len(order) != len(nodes):
        raise UnsupportedLayerError(f"the NIR graph is recurrent: {_cycles(nodes, succ)}; snncc compiles "
                                    "feed-forward networks (residual adds are fine)")
    return order


def _cycles(nodes: dict, succ: dict[str, list[str]]) -> str:
    """The loops of a graph, each as the path around it (a -> b -> a), nodes off the loops left out."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((a, b) for a, bs in succ.items() for b in bs)
    loops = []
    for scc in sorted((sorted(c, key=_natural) for c in nx.strongly_connected_components(g)
                       if len(c) > 1 or any(n in succ[n] for n in c)), key=lambda c: _natural(c[0])):
        cyc = [a for a, _ in nx.find_cycle(g.subgraph(scc), source=scc[0])]
        loops.append(" -> ".join(cyc + [cyc[0]]))
    return ("a loop " if len(loops) == 1 else f"{len(loops)} loops ") + "; ".join(loops)


class _Import:
    """The state of one import: the snncc graph being built, NIR id -> snncc name, the
    shapes, and what is folded at the end (input gains, SumPool window sizes)."""

    def __init__(self, conv: Conventions, input_kw: dict) -> None:
        self.g = Graph()
        self.names: dict[str, str] = {}
        self.shapes: dict[str, tuple] = {}
        self.gains: list[tuple[str, np.ndarray]] = []   # (snncc LIF, per-channel input gain to fold)
        self.sumpools: list[tuple[str, float]] = []     # (snncc AvgPool made from a SumPool2d, window size)
        self.conv, self.input_kw = conv, input_kw
        self.notes: list[str] = []

    def warn(self, msg: str) -> None:
        if msg not in self.notes:
            self.notes.append(msg)

    def add(self, base: str, op, ins: list[str]) -> str:
        name = self.g.add(self.g.unique(base), op, ins)
        self.shapes[name] = shape_of(op, [self.shapes[s] for s in ins])
        return name


def _structure(ng) -> tuple[dict, dict[str, list[str]], list[str]]:
    """(nodes, predecessors, topological order) of a NIR graph, refusing unsupported
    nodes (all listed), dangling edges and graphs without exactly one input and output."""
    nodes = dict(ng.nodes)
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in ng.edges:
        a, b = str(a), str(b)
        for end in (a, b):
            if end not in nodes:
                raise ModelLoadError(f"NIR edge ({a!r}, {b!r}) names a node {end!r} that does not exist")
        preds[b].append(a)
    bad = []
    for nid, node in nodes.items():
        kind = type(node).__name__
        if kind in CONVERTERS:
            _check_node(nid, node)
        else:
            why = ("a nested graph (snnTorch writes recurrent layers this way); recurrence is not supported"
                   if kind == "NIRGraph" else "not supported")
            bad.append(f"node '{nid}' of type {kind}: {why}")
    if bad:
        raise UnsupportedLayerError(f"cannot import the NIR graph: {len(bad)} unsupported node(s):\n"
                                    + "\n".join(f"  - {b}" for b in bad) + f"\n(supported: {SUPPORTED})")
    inputs = [n for n, v in nodes.items() if type(v).__name__ == "Input"]
    outputs = [n for n, v in nodes.items() if type(v).__name__ == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise UnsupportedLayerError(f"snncc compiles NIR graphs with one Input and one Output node; this one "
                                    f"has inputs {sorted(inputs)} and outputs {sorted(outputs)}")
    return nodes, preds, _topo(nodes, preds)


def conventions(producer: str | None = None, **given) -> Conventions:
    """The conventions of a NIR import: the producer's (``PRODUCERS``; None: snnTorch's
    dt and discretization, reset from the file), then every given value (None: not given)."""
    if producer is not None and producer not in PRODUCERS:
        raise ModelLoadError(f"producer {producer!r}: choose one of {', '.join(PRODUCERS)}")
    conv = PRODUCERS[producer] if producer else Conventions()
    conv = replace(conv, **{k: v for k, v in given.items() if v is not None})
    for what, value, allowed in (("discretization", conv.discretization, DISCRETIZATIONS),
                                 ("reset", conv.reset, RESETS + (None,)),
                                 ("threshold_test", conv.threshold_test, THRESHOLD_TESTS),
                                 ("v_init", conv.v_init, V_INITS)):
        if value not in allowed:
            raise ModelLoadError(f"{what} must be one of {', '.join(a for a in allowed if a)}, got {value!r}")
    if not (isinstance(conv.dt, (int, float)) and math.isfinite(conv.dt) and conv.dt > 0):
        raise ModelLoadError(f"dt must be a finite number > 0 (seconds per step), got {conv.dt!r}")
    return conv


def load_nir(path_or_graph, *, dt: float | None = None, discretization: str | None = None, reset: str | None = None,
             input_encoding: str | None = None, input_scale: float | None = None,
             input_bits: int | None = None, producer: str | None = None, threshold_test: str | None = None,
             v_init: str | None = None) -> Graph:
    """Read a NIR graph into snncc's float IR (the graph the PyTorch frontend produces).

    NIR leaves open what its producer decided (docs/nir.md): ``producer`` (snntorch,
    norse, sinabs, rockpool, spikingjelly) sets all of it as measured against that
    producer's own simulation; each of ``dt``, ``discretization`` ("euler": beta = 1 -
    dt/tau like snnTorch; "exp": beta = exp(-dt/tau)), ``reset`` (RESETS, for firing
    neurons without snncc metadata), ``threshold_test`` ("gt": v > threshold, "ge": v >=)
    and ``v_init`` ("zero", "leak", "reset": where a sample starts) overrides it. Without
    a producer: dt 1e-4, Euler, ">", start at 0 and the reset the file's snncc metadata
    says, else "zero" with a warning. The input contract (``input_*``) defaults to the
    file's snncc metadata, else direct 8-bit pixels scaled by 1/255. Assumptions are warned
    about and listed in ``graph.meta["nir_warnings"]``."""
    conv = conventions(producer, dt=dt, discretization=discretization, reset=reset, threshold_test=threshold_test,
                       v_init=v_init)
    ng = _read(path_or_graph)
    nodes, preds, order = _structure(ng)
    imp = _Import(conv, {"encoding": input_encoding, "scale": input_scale, "bits": input_bits})
    _producer_notes(imp, nodes, order, producer)
    if conv.reset is None:
        plain = [n for n in order if type(nodes[n]).__name__ in ("LIF", "CubaLIF", "IF")
                 and "snncc.reset" not in _meta(nodes[n])]
        if plain:
            imp.warn("NIR neurons have no reset-mode field: LIF/CubaLIF/IF nodes "
                     f"{plain} are read as resetting to v_reset (snncc reset 'zero'). A model exported "
                     "from snnTorch's Leaky(reset_mechanism='subtract') (snnTorch's default) is written "
                     "the same way: pass --reset subtract (load_nir(reset='subtract')) or --producer snntorch "
                     "for such a file")
    for nid in order:
        _convert(imp, nid, nodes[nid], [imp.names[p] for p in preds[nid]])
    return _finish(imp, ng)


def _producer_notes(imp: _Import, nodes: dict, order: list[str], producer: str | None) -> None:
    """Say what cannot be reproduced, and when a graph looks like it comes from a producer
    whose conventions the file does not state."""
    if imp.conv.multi_spike:
        imp.warn(f"{producer} emits several spikes per step (floor(v / threshold)); snncc's neurons emit at "
                 "most one: identical while v stays below twice the threshold")
    if producer is not None or any("snncc.kind" in _meta(nodes[n]) for n in order):
        return
    kinds = {n: type(nodes[n]).__name__ for n in order}
    if_r1 = [n for n in order if kinds[n] == "IF" and np.allclose(_arr(nodes[n].r), 1.0)]
    if if_r1:
        imp.warn(f"IF nodes {if_r1} have r = 1, as Sinabs and Norse write their IAF neurons: Sinabs' IAF "
                 "subtracts the threshold, spikes when v >= threshold and can emit several spikes per step, "
                 "Norse's resets to v_reset; NIR says neither. They are read as NIR's equations say (reset "
                 "to v_reset, v > threshold, one spike): pass --producer sinabs or --producer norse")
    slow = [n for n in order if kinds[n] in ("LIF", "LI") and np.all(_arr(nodes[n].tau) >= 0.1)]
    if slow and imp.conv.dt < 1e-2:
        imp.warn(f"nodes {slow} have tau >= 0.1 while dt = {imp.conv.dt:g}: a decay of at least "
                 f"{1 - imp.conv.dt / 0.1:.4f} per step. Sinabs writes tau in time steps: for its files pass "
                 "--producer sinabs (dt = 1, exact exponential)")


def _convert(imp: _Import, nid: str, node, ins: list[str]) -> None:
    """One NIR node into the graph (its converter from CONVERTERS); edges into one node
    are summed by an Add first."""
    kind = type(node).__name__
    md = _meta(node)
    base, src = str(md.get("snncc.name", nid)), str(md.get("snncc.source", nid))
    if kind != "Input":
        if not ins:
            raise UnsupportedLayerError(f"NIR node '{nid}' ({kind}) has no input edge")
        if len(ins) > 1:
            in_shapes = {imp.shapes[s] for s in ins}
            if len(in_shapes) != 1:
                raise UnsupportedLayerError(f"NIR node '{nid}' ({kind}) sums inputs of different shapes "
                                            f"{sorted(in_shapes)}")
            abase = str(md.get("snncc.input_add", f"{base}.add"))
            ins = [imp.add(abase, Add(source=str(md.get("snncc.input_add_source", abase))), ins)]
    out = CONVERTERS[kind](imp, nid, node, kind, md, base, src, ins)
    if out is not None:
        imp.names[nid] = out


def _finish(imp: _Import, ng) -> Graph:
    """Fold input gains and SumPool windows, record the import's meta, verify, warn."""
    g = imp.g
    if not g.outputs:
        raise UnsupportedLayerError("the NIR Output node has no input edge")
    for name, gain in imp.gains:
        _fold_gain(g, name, gain, imp.warn)
    for name, k in imp.sumpools:
        _fold_sumpool(g, name, k)
    g.meta.update(nir_warnings=list(imp.notes), frontend="nir", nir_dt=imp.conv.dt,
                  nir_discretization=imp.conv.discretization)
    gmeta = {str(k): (v.decode() if isinstance(v, bytes) else v) for k, v in (ng.metadata or {}).items()}
    if "snncc.steps" in gmeta:
        try:
            steps = _integer(gmeta["snncc.steps"])
            if steps < 1:
                raise ValueError(f"{steps} is not >= 1")
        except ValueError as e:
            raise ModelLoadError(f"the NIR graph's metadata snncc.steps is invalid: {e}") from None
        g.meta["steps"] = steps
    errs = problems(g, "float")
    if errs:
        raise UnsupportedLayerError("the imported NIR graph is not a valid snncc network:\n"
                                    + "\n".join(f"  - {e}" for e in errs))
    for msg in imp.notes:
        warnings.warn(msg, NirImportWarning, stacklevel=3)
    return g


# ------------------------------------------------------------------ one converter per NIR node type
def _input(imp, nid, node, kind, md, base, src, ins):
    shape = tuple(int(d) for d in np.asarray(node.input_type["input"]).reshape(-1))
    if len(shape) in (2, 4) and shape[0] == 1:  # a batch dimension of 1 in the type
        imp.warn(f"NIR Input '{nid}' has type {shape}, with a batch dimension (as Norse's and Rockpool's "
                 f"exporters write it): read as {shape[1:]}")
        shape = shape[1:]
    if len(shape) not in (1, 3):
        raise UnsupportedLayerError(
            f"NIR Input '{nid}' has type {shape}: snncc takes (N,) or (C, H, W) inputs (one time step, no "
            "batch). Sinabs' exporter writes its sample's time steps as a first dimension: export with "
            "sample data of shape (batch * time, ...) (its *Squeeze layers), or edit the Input type")
    given = imp.input_kw
    enc = given["encoding"] or md.get("snncc.encoding") or "direct"
    scale = 1.0 if enc == "spikes" else float(given["scale"] or md.get("snncc.scale") or 1.0 / 255.0)
    bits = int(given["bits"] or md.get("snncc.bits") or 8)
    if given["encoding"] is None and "snncc.encoding" not in md:
        imp.warn("the NIR file does not say how its input is encoded: it is read as direct 8-bit "
                 "pixels scaled by 1/255 (pass input_encoding/input_scale/input_bits, or "
                 "--input-encoding/--input-scale, to change it)")
    return imp.add(base, Input(source=src, shape=shape, encoding=enc, scale=scale, bits=bits), [])


def _output(imp, nid, node, kind, md, base, src, ins):
    imp.g.outputs = [ins[0]]
    return None


def _affine(imp, nid, node, kind, md, base, src, ins):
    in_shape = imp.shapes[ins[0]]
    w = _arr(node.weight)
    if w.ndim != 2:
        raise UnsupportedLayerError(f"NIR node '{nid}' ({kind}): weight of shape {w.shape}; snncc "
                                    "takes 2-D (out, in) weights")
    if int(np.prod(in_shape)) != w.shape[1] or len(in_shape) != 1:
        raise UnsupportedLayerError(f"NIR node '{nid}' ({kind}) takes {w.shape[1]} inputs but reads "
                                    f"a tensor of shape {in_shape} (add a Flatten node)")
    b = _bias(node, w.shape[0], nid, kind) if kind == "Affine" else np.zeros(w.shape[0])
    return imp.add(base, Dense(source=src, weight=w, bias=b), ins)


def _bias(node, n_out: int, nid: str, kind: str) -> np.ndarray:
    b = _arr(node.bias).reshape(-1)
    if b.size not in (1, n_out):
        raise UnsupportedLayerError(f"NIR node '{nid}' ({kind}): bias has {b.size} entries for {n_out} "
                                    "outputs")
    return np.broadcast_to(b, (n_out,)).copy()


def _conv_padding(node, nid: str, w: np.ndarray, stride, dil) -> tuple[int, int]:
    pad = node.padding
    if not isinstance(pad, (bytes, str)):
        return _pair(pad, "padding", nid)
    pad = pad.decode() if isinstance(pad, bytes) else pad
    if pad == "valid":
        return (0, 0)
    if stride != (1, 1) or any((d * (k - 1)) % 2 for d, k in zip(dil, w.shape[2:])):  # "same"
        raise UnsupportedLayerError(f"NIR node '{nid}' (Conv2d): padding='same' needs stride 1 "
                                    "and an odd effective kernel (symmetric padding)")
    return tuple(d * (k - 1) // 2 for d, k in zip(dil, w.shape[2:]))


def _conv(imp, nid, node, kind, md, base, src, ins):
    in_shape = imp.shapes[ins[0]]
    w = _arr(node.weight)
    if w.ndim != 4 or len(in_shape) != 3:
        raise UnsupportedLayerError(f"NIR node '{nid}' (Conv2d): weight {w.shape} on input {in_shape}")
    stride = _pair(node.stride, "stride", nid)
    dil = _pair(node.dilation, "dilation", nid)
    groups = int(np.asarray(node.groups).reshape(-1)[0])
    pad = _conv_padding(node, nid, w, stride, dil)
    if in_shape[0] != w.shape[1] * groups:
        raise UnsupportedLayerError(f"NIR node '{nid}' (Conv2d): {w.shape[1]}x{groups} input channels "
                                    f"expected, the input has {in_shape[0]}")
    return imp.add(base, Conv(source=src, weight=w, bias=_bias(node, w.shape[0], nid, kind),
                              stride=stride, padding=pad, dilation=dil, groups=groups), ins)


def _pool(imp, nid, node, kind, md, base, src, ins):
    in_shape = imp.shapes[ins[0]]
    if len(in_shape) != 3:
        raise UnsupportedLayerError(f"NIR node '{nid}' ({kind}) reads a tensor of shape {in_shape}")
    k = _pair(node.kernel_size, "kernel_size", nid)
    s = _pair(node.stride, "stride", nid)
    p = _pair(node.padding, "padding", nid)
    name = imp.add(base, AvgPool(source=src, kernel=k, stride=s, padding=p), ins)
    if kind == "SumPool2d":
        imp.sumpools.append((name, float(k[0] * k[1])))
    return name


def _flatten(imp, nid, node, kind, md, base, src, ins):
    in_shape = imp.shapes[ins[0]]
    nd = len(in_shape)
    start, end = int(node.start_dim), int(node.end_dim)
    start, end = start % nd if start < 0 else start, end % nd if end < 0 else end
    if nd > 1 and not (start == 0 and end == nd - 1):
        raise UnsupportedLayerError(
            f"NIR node '{nid}' (Flatten start_dim={node.start_dim}, end_dim={node.end_dim}) on a "
            f"{in_shape} tensor: snncc flattens all dimensions (start_dim=0, end_dim=-1, batch excluded)")
    return imp.add(base, Flatten(source=src), ins) if nd > 1 else ins[0]


def _neuron_node(imp, nid, node, kind, md, base, src, ins):
    lif, gain = _neuron(nid, node, kind, imp.shapes[ins[0]], imp.conv, imp.warn)
    lif = _apply_snncc_meta(nid, lif.replace(source=src), md, imp.warn)
    name = imp.add(base, lif, ins)
    if not _close(gain, 1.0):
        imp.gains.append((name, gain))
    return name


#: NIR node type -> converter (imp, nid, node, kind, metadata, base name, source, inputs) -> snncc node
CONVERTERS = {"Input": _input, "Output": _output, "Affine": _affine, "Linear": _affine, "Conv2d": _conv,
              "AvgPool2d": _pool, "SumPool2d": _pool, "Flatten": _flatten,
              **{k: _neuron_node for k in _NEURONS}}


def _scale_rows(op, f: np.ndarray):
    f = np.broadcast_to(np.asarray(f, np.float64).reshape(-1), (op.weight.shape[0],))
    return op.replace(weight=op.weight * f.reshape((-1,) + (1,) * (op.weight.ndim - 1)), bias=op.bias * f)


def _fold_gain(g: Graph, name: str, gain: np.ndarray, warn) -> None:
    """Multiply the neuron's input by ``gain`` (per channel): scale the synapse rows that
    feed only it, else divide its membrane constants by the gain."""
    (src,) = g.inputs(name)
    syns = [src] if g.node(src).kind in ("Conv", "Dense") else (
        g.inputs(src) if g.node(src).kind == "Add" else [])
    ok = syns and all(g.node(s).kind in ("Conv", "Dense") and len(g.users(s)) == 1 for s in syns) \
        and (src in syns or len(g.users(src)) == 1)
    if ok:
        for s in syns:
            g.set(s, _scale_rows(g.node(s), gain))
        return
    op = g.node(name)
    if np.any(gain <= 0):
        raise UnsupportedLayerError(f"NIR neuron '{op.source}': a non-positive input gain {gain} that cannot "
                                    "be folded into a synapse")
    g.set(name, op.replace(threshold=op.threshold / gain, bias=op.bias / gain,
                           reset_value=op.reset_value / gain, state_level=op.state_level / gain,
                           v_init=_v_init(np.asarray(op.v_init, np.float64).reshape(-1) / gain)))
    warn(f"NIR neuron '{op.source}': its input gain (r dt / tau = {np.unique(gain)}) is folded into the "
         "membrane (threshold and bias divided by the gain): spikes are unchanged, a readout's v is in "
         "units of 1/gain")


def _fold_sumpool(g: Graph, name: str, k: float) -> None:
    """SumPool = k * AvgPool: scale the synapses after it (through Flatten/AvgPool), or the
    one synapse before it."""
    todo, syns = list(g.users(name)), []
    while todo:
        n = todo.pop()
        kind = g.node(n).kind
        if kind in ("Conv", "Dense"):
            syns.append(n)
        elif kind in ("Flatten", "AvgPool"):
            todo += g.users(n)
        else:
            syns = None
            break
    if syns and name not in g.outputs:
        for s in syns:
            op = g.node(s)
            g.set(s, op.replace(weight=op.weight * k))
        return
    (src,) = g.inputs(name)
    if g.node(src).kind in ("Conv", "Dense") and len(g.users(src)) == 1:
        g.set(src, _scale_rows(g.node(src), np.array([k])))
        return
    raise UnsupportedLayerError(f"NIR SumPool2d '{g.node(name).source}': snncc's float IR pools by averaging; "
                                "the window size must be folded into a Conv/Linear right before or after "
                                "it, and there is none")


def load(source, config, producer: str | None = None, reset: str | None = None, discretization: str | None = None,
         dt: float | None = None, threshold_test: str | None = None, v_init: str | None = None):
    """(float graph, manifest fields) of a ``.nir`` file or a ``nir.NIRGraph`` for
    :func:`snncc.compiler.compile`; the config's input encoding/scale/bits describe the
    input. The manifest records what NIR left open and how it was decided."""
    digest = None
    if isinstance(source, (str, Path)) and Path(source).is_file():
        digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    encoding, scale, bits = config.input_contract()
    kw = dict(producer=producer, reset=reset, discretization=discretization, dt=dt, threshold_test=threshold_test,
              v_init=v_init)
    conv = conventions(**kw)
    fg = load_nir(source, input_encoding=encoding, input_scale=scale, input_bits=bits, **kw)
    fg.meta["steps"] = config.steps
    notes = fg.meta.get("nir_warnings", [])
    settings = {"producer": producer or "not given", "dt": conv.dt, "discretization": conv.discretization,
                "reset": conv.reset or "zero, or the file's snncc metadata",
                "threshold_test": {"gt": "v > threshold", "ge": "v >= threshold"}[conv.threshold_test],
                "v_init": conv.v_init}
    return fg, {"frontend": "nir", "source_sha256": digest, "nir_warnings": notes, "warnings": notes,
                "frontend_settings": settings}
