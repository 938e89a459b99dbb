"""The NIR target: the build's FLOAT network as a NIR 1.0 graph (``model.nir``) plus
``nir_metadata.json`` for what NIR cannot express.

    emit(graph, out_dir) -> [model.nir, nir_metadata.json]   # reads <build>/float_model.*
    to_nir(float_graph) -> (nir.NIRGraph, metadata, warnings)
    export_nir(float_graph, path)                           # without a build directory
    simulate(...)                                           # raises: NIR is not bit-exact

NIR is a continuous-time float interchange format, so this target exports the float
graph (as traced from PyTorch, BatchNorm folded) with the discretization snnTorch uses
(forward Euler, dt = 1e-4; see snncc.frontends.nir and docs/nir.md): a float LIF with
decay beta becomes ``tau = dt / (1 - beta)``, ``r = tau / dt`` (input gain 1),
``v_leak = bias / (1 - beta)``, ``v_reset = 0``. Everything NIR has no field for (reset
mode "subtract"/"none", membrane quantization, v_init, exact float parameters, the input
encoding and scale, the integer model's constants) goes into per-node ``snncc.*``
metadata inside the .nir file and into ``nir_metadata.json``; ``snncc.frontends.nir.load_nir``
reads it back exactly.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import nir  # noqa: F401  (a clear error from snncc.targets.get when the backend is missing)
import numpy as np

from ...errors import SnnccError, UnsupportedLayerError
from ...frontends.nir import DT
from ...ir.graph import Graph
from ...ops import role
from ...ops.neurons import masks_of

BIT_EXACT = False  # `snncc verify` skips targets that say so (NIR is a float format)
NEEDS_FLOAT = True  # the float graph is what NIR holds
MODEL = "model.nir"
METADATA = "nir_metadata.json"
FORMAT = "snncc-nir-metadata"


class NirExportWarning(UserWarning):
    """Something the NIR file alone does not say (it is in the snncc metadata)."""


def _full(a, shape) -> np.ndarray:
    """A per-channel (C,) or (1,) array broadcast to the neuron shape, float64."""
    a = np.asarray(a, np.float64).reshape(-1)
    a = a.reshape((-1,) + (1,) * (len(shape) - 1)) if a.size > 1 else a.reshape(())
    return np.ascontiguousarray(np.broadcast_to(a, shape), dtype=np.float64)


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()] if v.ndim else _jsonable(v.item())
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return v


def _neuron(op, shape, dt: float, nid: str, notes: list[str]):
    import nir

    ones = np.ones(shape)
    no_leak_r = ones / dt  # IF / I: dv/dt = R I, so R = 1 / dt makes v += x per step
    has_leak = op.beta < 1.0
    tau = np.full(shape, dt / (1.0 - op.beta)) if has_leak else np.full(shape, np.inf)
    r = tau / dt if has_leak else ones.copy()
    v_leak = _full(op.bias, shape) / (1.0 - op.beta) if has_leak else np.zeros(shape)
    if not has_leak and np.any(op.bias != 0):
        notes.append(f"layer '{nid}': a bias without leak (beta = 1) has no NIR field; it is in the snncc metadata")
    thr = _full(op.threshold, shape)
    if op.alpha:
        tau_syn = np.full(shape, dt / (1.0 - op.alpha))
        w_in = tau_syn / dt
        r = tau / dt  # no leak: tau_mem = inf and r = inf, snnTorch's tau / dt (an input gain of 1)
        if op.fires:
            return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau, r=r, v_leak=v_leak, v_threshold=thr,
                               v_reset=np.zeros(shape), w_in=w_in)
        return nir.CubaLI(tau_syn=tau_syn, tau_mem=tau, r=r, v_leak=v_leak, w_in=w_in)
    if op.fires:
        if has_leak:
            return nir.LIF(tau=tau, r=r, v_leak=v_leak, v_threshold=thr, v_reset=np.zeros(shape))
        return nir.IF(r=no_leak_r, v_threshold=thr, v_reset=np.zeros(shape))
    if has_leak:
        return nir.LI(tau=tau, r=r, v_leak=v_leak)
    return nir.I(r=no_leak_r)


def _lower_input(n, op, ins, shapes, dt, notes, md):
    import nir

    node = nir.Input(input_type=np.array(shapes[n]))
    md.update({"snncc.encoding": op.encoding, "snncc.scale": float(op.scale), "snncc.bits": int(op.bits)})
    return node


def _lower_dense(n, op, ins, shapes, dt, notes, md):
    import nir

    return nir.Affine(weight=np.asarray(op.weight, np.float64), bias=np.asarray(op.bias, np.float64))


def _lower_conv(n, op, ins, shapes, dt, notes, md):
    import nir

    if op.groups != 1:
        notes.append(f"layer '{n}': nir 1.0.8 infers a grouped Conv2d's input type as "
                     "C/groups channels, so the graph is written without NIR's type check "
                     "(read it with nir.read(path, type_check=False))")
    return nir.Conv2d(input_shape=tuple(shapes[ins[0]][1:]), weight=np.asarray(op.weight, np.float64),
                      stride=tuple(op.stride), padding=tuple(op.padding), dilation=tuple(op.dilation),
                      groups=int(op.groups), bias=np.asarray(op.bias, np.float64))


def _lower_avgpool(n, op, ins, shapes, dt, notes, md):
    import nir

    return nir.AvgPool2d(kernel_size=np.array(op.kernel), stride=np.array(op.stride), padding=np.array(op.padding))


def _lower_flatten(n, op, ins, shapes, dt, notes, md):
    import nir

    return nir.Flatten(input_type={"input": np.array(shapes[ins[0]])}, start_dim=0, end_dim=-1)


def _lower_lif(n, op, ins, shapes, dt, notes, md):
    node = _neuron(op, tuple(shapes[n]), dt, n, notes)
    md.update({"snncc.beta": float(op.beta), "snncc.alpha": float(op.alpha),
               "snncc.threshold": np.asarray(op.threshold, np.float64),
               "snncc.bias": np.asarray(op.bias, np.float64), "snncc.reset": op.reset,
               "snncc.reset_value": np.asarray(op.reset_value, np.float64),
               "snncc.v_init": (float(op.v_init) if np.ndim(op.v_init) == 0 else np.asarray(op.v_init, np.float64)),
               "snncc.state_quant": op.state_quant,
               "snncc.state_level": np.asarray(op.state_level, np.float64),
               "snncc.fires": bool(op.fires)})
    if op.fires and op.threshold_test != "gt":
        md["snncc.threshold_test"] = op.threshold_test
        notes.append(f"layer '{n}': it spikes at v >= threshold, which NIR cannot say (snncc metadata only)")
    if op.fires and op.reset != "zero":
        notes.append(f"layer '{n}': reset '{op.reset}' has no NIR field; the NIR node resets to "
                     "v_reset = 0 (snncc reads the true reset from the metadata)")
    if np.any(op.v_init):
        notes.append(f"layer '{n}': v_init = {np.round(op.v_init, 6).tolist()} has no NIR field (metadata only)")
    if op.state_quant != "none":
        notes.append(f"layer '{n}': the {op.state_quant} membrane quantization has no NIR field "
                     "(metadata only)")
    return node


#: float IR kind -> NIR node (an Add is not a node: NIR sums the edges into a node)
LOWER = {"Input": _lower_input, "Dense": _lower_dense, "Conv": _lower_conv, "AvgPool": _lower_avgpool,
         "Flatten": _lower_flatten, "LIF": _lower_lif}


def _node_ids(fg: Graph) -> dict[str, str]:
    """A NIR id per node: its name without '/' (which would nest HDF5 groups), unique, not 'output'."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for n in fg.order():
        base = n.replace("/", "_") or "node"
        nid, k = base, 1
        while nid in used or nid == "output":
            nid, k = f"{base}_{k}", k + 1
        used.add(nid)
        ids[n] = nid
    return ids


def _producers(fg: Graph, n: str) -> list[str]:
    """The nodes whose sum ``n`` is: an Add is expressed by NIR's summing edges."""
    if role(fg.node(n)) != "add":
        return [n]
    return [p for s in fg.inputs(n) for p in _producers(fg, s)]


def _prepare(float_graph: Graph) -> tuple[Graph, list[str]]:
    """The float graph with BatchNorm folded (NIR has none), refusing what NIR cannot hold."""
    from ...config import CompileConfig
    from ...passes.fold import fold_batchnorm

    fg = float_graph
    folded = fg.of_kind("BatchNorm")
    if folded:
        fg, _ = fold_batchnorm(fg, CompileConfig())
    bad = [f"'{n}' ({op.source or n}): NIR 1.0 has no max pooling" for n, op in fg.items() if op.kind == "MaxPool"]
    if bad:
        raise UnsupportedLayerError("cannot export to NIR: " + "; ".join(bad) + " (use AvgPool2d, or another target)")
    return fg, folded


def to_nir(float_graph: Graph, dt: float = DT, int_graph: Graph | None = None):
    """(nir.NIRGraph, metadata dict for nir_metadata.json, list of warnings)."""
    import nir

    from ..._version import __version__

    fg, folded = _prepare(float_graph)
    shapes = fg.shapes()
    notes: list[str] = []
    ids = _node_ids(fg)
    nodes, edges, layers = {}, [], {}
    for rank, (n, op) in enumerate(fg.items()):
        if role(op) == "add":
            continue
        if op.kind not in LOWER:
            raise UnsupportedLayerError(f"cannot export {op.kind} '{n}' to NIR")
        md = {"snncc.name": n, "snncc.source": op.source, "snncc.kind": op.kind, "snncc.rank": rank}
        ins = fg.inputs(n)
        node = LOWER[op.kind](n, op, ins, shapes, dt, notes, md)
        if ins and role(fg.node(ins[0])) == "add":
            md["snncc.input_add"] = ins[0]
            md["snncc.input_add_source"] = fg.node(ins[0]).source
        node.metadata = md
        nodes[ids[n]] = node
        srcs = [p for s in ins for p in _producers(fg, s)]
        if len(set(srcs)) != len(srcs):
            raise UnsupportedLayerError(f"cannot export '{n}' to NIR: it adds the same tensor twice "
                                        "(NIR sums edges, and an edge appears once)")
        edges += [(ids[p], ids[n]) for p in srcs]
        layers[ids[n]] = {k[6:]: _jsonable(v) for k, v in md.items()}
    (out,) = fg.outputs
    nodes["output"] = nir.Output(output_type=np.array(shapes[out]))
    nodes["output"].metadata = ({"snncc.input_add": out, "snncc.input_add_source": fg.node(out).source}
                                if role(fg.node(out)) == "add" else {})
    edges += [(ids[p], "output") for p in _producers(fg, out)]
    steps = int(fg.meta.get("steps", 1))
    gmeta = {"snncc.version": __version__, "snncc.dt": dt, "snncc.discretization": "euler", "snncc.steps": steps}
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=gmeta,
                         type_check=not any(op.kind == "Conv" and op.groups != 1 for _, op in fg.items()))
    inp = fg.node(fg.input_name)
    meta = {
        "format": FORMAT, "version": 1, "snncc": __version__, "nir_version": nir.version,
        "discretization": {"method": "euler", "dt": dt, "beta": "1 - dt / tau", "alpha": "1 - dt / tau_syn",
                           "r": "tau / dt (input gain r dt / tau = 1)", "w_in": "tau_syn / dt",
                           "v_leak": "bias / (1 - beta)", "no_leak": "beta = 1 -> IF / I (r = 1) or tau_mem = inf"},
        "input": {"node": ids[fg.input_name], "shape": list(inp.shape), "encoding": inp.encoding,
                  "scale": float(inp.scale), "bits": int(inp.bits)},
        "steps": steps, "folded_batchnorm": folded, "layers": layers, "warnings": notes,
    }
    if int_graph is not None:
        meta["integer_model"] = _integer_summary(int_graph)
    return graph, meta, notes


def _integer_summary(g: Graph) -> dict:
    """The integer model's constants (weights stay in model.npz)."""
    out = {}
    for n, op in g.items():
        rec = {"kind": op.kind, "source": op.source}
        for k, v in op.params().items():
            if k != "source":
                rec[k] = _jsonable(v)
        for k, v in op.arrays().items():
            if k == "weight":
                rec["weight_shape"] = list(v.shape)
            elif v.size <= 4096:
                rec[k] = _jsonable(v)
        out[n] = rec
    return out


def export_nir(float_graph: Graph, path: str | Path, dt: float = DT, int_graph: Graph | None = None) -> list[str]:
    """Write ``float_graph`` as a NIR file (and ``nir_metadata.json`` beside it); returns
    the warnings (also issued as NirExportWarning)."""
    import nir

    graph, meta, notes = to_nir(float_graph, dt, int_graph)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(path, graph)
    (path.parent / METADATA).write_text(json.dumps(meta, sort_keys=True, indent=1) + "\n")
    for msg in notes:
        warnings.warn(msg, NirExportWarning, stacklevel=2)
    return notes


def emit(graph: Graph, out_dir: str | Path, float_graph: Graph | None = None) -> list[Path]:
    """Write ``model.nir`` and ``nir_metadata.json`` into ``out_dir`` for the float graph
    ``float_graph`` (default: ``float_model.json`` of the build ``out_dir`` is in, i.e.
    ``<build>/nir/``) and its integer model ``graph``."""
    out = Path(out_dir)
    if float_graph is None:
        from ...builds import load_float_graph

        float_graph = load_float_graph(out.parent)
    _refuse_conversion(graph, float_graph)
    fg = float_graph.copy()
    fg.meta.setdefault("steps", graph.meta.get("steps", 1))
    export_nir(fg, out / MODEL, int_graph=graph)
    return [out / MODEL, out / METADATA]


def _refuse_conversion(graph: Graph, float_graph: Graph) -> None:
    """What NIR has no node for: graded spikes of a converted ANN, test-time pruning."""
    bad = [f"'{n}': spikes worth {op.spike_value:g} (a converted ANN's threshold); NIR's neurons emit unit "
           "spikes" for n, op in float_graph.items() if getattr(op, "spike_value", 1.0) != 1.0]
    bad += [f"'{n}': test-time neuron pruning (presim={op.presim})" for n, op in graph.items()
            if getattr(op, "presim", 0)]
    bad += [f"'{n}': SpQuant-SNN sparsity masks ({masks_of(op)})" for n, op in graph.items() if masks_of(op)]
    if bad:
        raise UnsupportedLayerError("the nir target cannot express this model:\n" + "\n".join(f"  - {b}" for b in bad)
                                    + "\n  (compile a converted ANN, a TNP or a masked model for c or onnx)")


def simulate(out_dir, x, probe_state: bool = False, **kw):
    """NIR is a float interchange format: there is no bit-exact NIR simulator."""
    raise SnnccError("NIR is a float interchange format, not a bit-exact target: simulate the reference "
                     "(snncc.reference.interpreter.run) or another target (c, onnx, lava); `snncc verify` "
                     "skips nir")
