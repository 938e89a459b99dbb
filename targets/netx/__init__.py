"""The netx target: a lava-dl network-exchange HDF5 file (``network.net``).

    emit(graph, out_dir) -> [out_dir/network.net]
    simulate(out_dir, x, probe_state=False)

netx (lava-dl 0.6.0, ``lava.lib.dl.netx.hdf5.Network``) expresses a chain of layers:
an input (optionally with a neuron on it), conv and dense synapses each followed by a
CUBA LIF neuron, and flatten. The graph must be that chain, on Lava's schedule (the
target declares the Loihi 2 pipeline, ``snncc.passes.pipeline.LAVA``, as the lava target
does), with neurons Lava's LIF
computes exactly (``snncc.targets.lava.check.lif_form``) whose bias is a multiple of 64
(netx fixes bias_exp = 6) and v starts at 0; a non-firing readout is written as a
CUBA neuron whose threshold is never reached (vThMant = 2^18 - 1, as slayer does).
A periodic reset (IntLIF.reset_interval) must be netx's: one interval for every neuron,
offsets staggered one step per layer; the file records it (``snncc_netx_reset``, and a
``snncc_note`` saying which ``hdf5.Network(reset_interval=..., reset_offset=...)`` to
use), since netx takes it as an argument rather than from the file.
Everything else is reported, all at once, in one ``BitWidthError``.

lava-dl (netx) cannot be installed beside torch 2.13, so ``simulate`` re-imports the
written file with snncc's netx frontend (``snncc.frontends.netx.load_netx``) and runs
that graph on the Lava target (``out_dir/lava``): the file, not the graph it came from,
is what gets simulated.

The file also carries ``snncc_*`` attributes (names, scales, widths) that netx ignores;
with them ``load_netx(emit(graph))`` gives back ``graph`` exactly.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import BitWidthError
from ...frontends.netx import READOUT_VTH
from ...ir.graph import Graph
from ...ops import role
from ...ops.neurons import masks_of
from ...passes.pipeline import LAVA, LAVA_CONFIG_DEFAULTS, LAVA_CONFIG_FORCED

FILE = "network.net"
PIPELINE = LAVA                         # the Loihi 2 flow, as for --target lava
CONFIG_FORCED = LAVA_CONFIG_FORCED
CONFIG_DEFAULTS = LAVA_CONFIG_DEFAULTS


def _neuron_problems(graph: Graph, name: str) -> list[str]:
    from ..lava.check import lif_form

    op = graph.node(name)
    errs = []
    if lif_form(op) is None:
        errs.append(f"layer '{name}': not a Lava LIF (netx neurons are CUBA LIF: hard reset, act_shift 6, "
                    f"24-bit wrap_lava u and saturating v, one threshold that is a multiple of 64, no constant "
                    f"input current u_bias)")
    if (op.bias % 64).any():
        errs.append(f"layer '{name}': bias {op.bias.tolist()} is not a multiple of 64 (netx's bias_exp is 6)")
    if op.v_init.any():
        errs.append(f"layer '{name}': v_init {op.v_init.tolist()} != 0 (netx neurons start at 0)")
    if op.fires and op.threshold.size and int(op.threshold.max()) >> 6 >= 1 << 17:
        errs.append(f"layer '{name}': threshold {int(op.threshold.max())} is never reached; make it a "
                    f"readout (fires=False)")
    return errs


def _chain(graph: Graph) -> tuple[list[tuple], list[str]]:
    """The graph as netx layers [(kind, nodes...)], and every problem found."""
    errs: list[str] = []
    if len(graph.outputs) != 1:
        errs.append(f"netx has one output layer, the graph has {len(graph.outputs)}")
    inp = graph.input_name
    cur, layers = inp, []

    def single_user(n):
        us = graph.users(n)
        split = _delay_split(graph, n)
        if split is not None:  # one dense layer split by delay: written back as one with its delays
            return split
        if len(us) > 1:
            errs.append(f"'{n}' feeds {len(us)} nodes {us}: netx layers form a chain (no branches, no fan-in)")
            return None
        return us[0] if us else None

    nxt = single_user(cur)
    neuron0 = None
    if isinstance(nxt, str) and role(graph.node(nxt)) == "neuron":
        neuron0, cur = nxt, nxt
        errs += _neuron_problems(graph, nxt)
        if graph.node(nxt).bias.any():
            errs.append(f"layer '{nxt}': a neuron on the input takes no bias in netx (it ignores it)")
        if graph.node(inp).encoding == "bias" and graph.node(nxt).du != 4096:
            errs.append(f"layer '{nxt}': a bias-driven input neuron carries its bias in u with du = 4096 (no "
                        f"current memory), this one has du = {graph.node(nxt).du}")
        nxt = single_user(cur)
    layers.append(("input", inp, neuron0))
    while nxt is not None:
        if isinstance(nxt, tuple):  # (dense parts, their Add)
            parts, add = nxt
            neuron = single_user(add)
            if not isinstance(neuron, str) or role(graph.node(neuron)) != "neuron":
                errs.append(f"'{add}' is not followed by a neuron")
                break
            errs += [e for p in parts for e in _synapse_problems(graph, p)] + _neuron_problems(graph, neuron)
            layers.append(("dense", parts, neuron))
            cur, nxt = neuron, single_user(neuron)
            continue
        op = graph.node(nxt)
        if role(op) == "reshape":
            layers.append(("flatten", nxt))
            cur = nxt
        elif role(op) == "synapse":
            neuron = single_user(nxt)
            if neuron is None or role(graph.node(neuron)) != "neuron":
                errs.append(f"synapse '{nxt}' is not followed by a neuron")
                break
            if len(graph.inputs(neuron)) != 1:
                errs.append(f"neuron '{neuron}' has fan-in")
            errs += _synapse_problems(graph, nxt)
            errs += _neuron_problems(graph, neuron)
            layers.append(("conv" if op.kind == "IntConv" else "dense", nxt, neuron))
            cur = neuron
        else:
            errs.append(f"'{nxt}' is a {op.kind}: netx expresses input, conv, dense, flatten and CUBA "
                        f"neurons only (run the Lava passes to fold pooling and fan-in)")
            break
        nxt = single_user(cur)
    if graph.outputs and graph.outputs[0] != cur and not errs:
        errs.append(f"the output '{graph.outputs[0]}' is not the end of the chain ('{cur}')")
    if len(layers) < 2 and neuron0 is None:
        errs.append("no layer after the input")
    return layers, errs


def _delay_split(graph: Graph, n: str) -> tuple | None:
    """(parts, Add) where the users of ``n`` are one dense layer split by delay (as the
    netx import writes per-neuron delays: IntDense parts with one exponent and shape, each
    weight in one part, summed by one Add) and netx can store its delays (one per output
    or one per input); else None."""
    parts = graph.users(n)
    if len(parts) < 2 or any(graph.node(p).kind != "IntDense" or len(graph.users(p)) != 1 for p in parts):
        return None
    (add,) = {graph.users(p)[0] for p in parts} if len({graph.users(p)[0] for p in parts}) == 1 else (None,)
    ops = [graph.node(p) for p in parts]
    if add is None or sorted(graph.inputs(add)) != sorted(parts) or len({o.weight_exp for o in ops}) != 1 \
            or len({o.weight.shape for o in ops}) != 1 or sum((o.weight != 0).astype(int) for o in ops).max() > 1:
        return None
    return (tuple(parts), add) if _delay_vector(graph, parts) is not None else None


def _delay_vector(graph: Graph, parts) -> np.ndarray | None:
    """The netx 'delay' of dense parts split by delay: one extra delay per output (or,
    where the outputs differ in number from the inputs, per input), or None."""
    ops = [graph.node(p) for p in parts]
    out_n, in_n = ops[0].weight.shape
    for axis, size in ((1, out_n), (0, in_n)):
        vec = np.full(size, -1, np.int64)
        for o in ops:
            hit = (o.weight != 0).any(axis=axis)
            if ((vec[hit] != -1) & (vec[hit] != o.delay - 1)).any():
                break
            vec[hit] = o.delay - 1
        else:
            if axis == 0 and out_n == in_n:
                return None  # netx would read a vector of this length as one delay per output
            return np.maximum(vec, 0)
    return None


def _reset_form(graph: Graph, layers: list[tuple]) -> tuple[dict | None, list[str]]:
    """The (reset_interval, reset_offset) of netx's ``hdf5.Network`` that gives every
    neuron its periodic reset, or problems: netx applies one interval to every neuron
    layer, layer k resetting at offset + k (``snncc.frontends.netx``)."""
    neurons = [nodes[-1] for kind, *nodes in layers if kind != "flatten" and nodes[-1] is not None]
    ops = [graph.node(n) for n in neurons]
    intervals = {op.reset_interval for op in ops}
    if intervals == {0} or not ops:
        return None, []
    if len(intervals) > 1:
        each = ", ".join(f"{n}: {op.reset_interval}" for n, op in zip(neurons, ops))
        return None, [f"periodic resets differ between layers ({each}); netx applies one reset_interval to "
                      f"every layer"]
    (ri,) = intervals
    off = ops[0].reset_offset
    bad = [f"{n}: {op.reset_offset} (netx: {(off + k) % ri})" for k, (n, op) in enumerate(zip(neurons, ops))
           if op.reset_offset != (off + k) % ri]
    if bad:
        return None, [f"reset offsets do not follow netx's one-step-per-layer stagger: {', '.join(bad)}"]
    return {"reset_interval": ri, "reset_offset": off}, []


def _synapse_problems(graph: Graph, name: str) -> list[str]:
    op = graph.node(name)
    errs = []
    if op.weight_exp < 0:
        errs.append(f"synapse '{name}': weight_exp {op.weight_exp} < 0 (netx weights are integers, it cannot "
                    f"floor)")
    if op.kind == "IntConv":
        if op.delay != 1:
            errs.append(f"synapse '{name}': conv delay {op.delay}; netx convs take Lava's 1 step only")
        if op.out_bits not in (0, 24):
            errs.append(f"synapse '{name}': out_bits {op.out_bits}; netx convs wrap to 24 bits")
    else:
        if op.delay < 1 or op.delay - 1 > 62:
            errs.append(f"synapse '{name}': delay {op.delay}; netx dense layers take 1 + 0..62 steps "
                        f"(run lava_schedule first)")
        if op.out_bits:
            errs.append(f"synapse '{name}': out_bits {op.out_bits}; netx dense layers never wrap")
    w = op.weight.astype(np.int64) << max(op.weight_exp, 0)
    if w.size and int(np.abs(w).max()) >= 1 << 24:
        errs.append(f"synapse '{name}': weights reach {int(np.abs(w).max())}, beyond float32's exact integers")
    return errs


def _str(h, key: str, value: str) -> None:
    h.create_dataset(key, (1,), "S10", [value.encode("ascii")], track_times=False)


def _num(h, key: str, value) -> None:
    h.create_dataset(key, data=np.asarray(value, np.float32), track_times=False)


def _neuron(h, op, meta: dict) -> None:
    _str(h, "neuron/type", "CUBA")
    vth = int(op.threshold[0]) >> 6 if op.fires else READOUT_VTH
    for k, v in (("vThMant", vth), ("iDecay", op.du), ("vDecay", op.dv), ("refDelay", 1), ("gradedSpike", 0)):
        _num(h, f"neuron/{k}", v)
    meta.update(snncc_source=op.source, snncc_reset=op.reset, snncc_threshold=op.threshold.tolist(),
                snncc_bias=op.bias.tolist(), snncc_reset_value=op.reset_value.tolist(),
                snncc_state_level=op.state_level.tolist(), snncc_scale=op.scale.tolist())


def _syn_meta(op) -> dict:
    return dict(source=op.source, weight_bits=op.weight_bits, weight_exp=op.weight_exp,
                scale=np.asarray(op.scale, np.float64).tolist(), out_bits=op.out_bits)


def _write_input(h, graph: Graph, shapes: dict, nodes: list, meta: dict) -> None:
    inp, neuron = nodes
    op = graph.node(inp)
    _num(h, "shape", op.shape)
    meta.update(input_name=inp, input_source=op.source, encoding=op.encoding, bits=op.bits, scale=op.scale)
    if neuron is not None:
        meta["neuron"] = {"name": neuron}
        _neuron(h, graph.node(neuron), meta["neuron"])


def _write_flatten(h, graph: Graph, shapes: dict, nodes: list, meta: dict) -> None:
    (flat,) = nodes
    _num(h, "shape", shapes[flat])
    meta.update(name=flat, source=graph.node(flat).source)


def _write_synapse(h, graph: Graph, shapes: dict, nodes: list, meta: dict) -> None:
    syn, neuron = nodes
    delay = None
    if isinstance(syn, tuple):  # parts split by delay: one dense layer with its delay vector
        delay = _delay_vector(graph, syn)
        parts, syn = syn, syn[0]
        op = graph.node(syn).replace(weight=sum(graph.node(p).weight.astype(np.int64) for p in parts), delay=1)
        meta["name"] = syn.rsplit(".delay", 1)[0]
    else:
        op = graph.node(syn)
    w = op.weight.astype(np.int64) << op.weight_exp
    _num(h, "shape", shapes[neuron])
    if op.kind == "IntConv":
        _num(h, "inChannels", op.weight.shape[1] * op.groups)
        _num(h, "outChannels", op.weight.shape[0])
        _num(h, "kernelSize", op.weight.shape[2:])
        _num(h, "stride", op.stride)
        _num(h, "padding", op.padding)
        _num(h, "dilation", op.dilation)
        _num(h, "groups", op.groups)
    else:
        _num(h, "inFeatures", w.shape[1])
        _num(h, "outFeatures", w.shape[0])
        if op.delay > 1 or delay is not None:
            _num(h, "delay", delay if delay is not None else np.full(w.shape[0], op.delay - 1))
    _num(h, "weight", w)
    nop = graph.node(neuron)
    if nop.bias.any():
        _num(h, "bias", np.broadcast_to(nop.bias >> 6, (shapes[neuron][0],)))
    meta.setdefault("name", syn)
    meta.update(synapse=_syn_meta(op), neuron={"name": neuron})
    _neuron(h, nop, meta["neuron"])


#: netx layer type -> what it writes into its /layer/i group
WRITERS = {"input": _write_input, "flatten": _write_flatten, "conv": _write_synapse, "dense": _write_synapse}


def emit(graph: Graph, out_dir) -> list[Path]:
    """Write ``out_dir/network.net`` (deterministic: no timestamps) or raise
    ``BitWidthError`` listing everything netx cannot express."""
    import h5py

    layers, errs = _chain(graph)
    errs += [f"layer '{n}': test-time neuron pruning (presim={op.presim}) has no netx form (a CUBA neuron has no "
             "output mask): compile without --tnp" for n, op in graph.items() if getattr(op, "presim", 0)]
    errs += [f"layer '{n}': SpQuant-SNN sparsity masks ({masks_of(op)}) have no netx form (a CUBA neuron has no "
             "input skip or output mask): compile for c or onnx, or without the masks"
             for n, op in graph.items() if masks_of(op)]
    reset, reset_errs = _reset_form(graph, layers) if not errs else (None, [])
    errs += reset_errs
    if errs:
        raise BitWidthError(errs, header="the netx target cannot express this graph")
    shapes = graph.shapes()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILE
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["snncc_meta_json"] = json.dumps(graph.meta, sort_keys=True)
        if reset is not None:  # an argument of netx's hdf5.Network, not part of the format
            f.attrs["snncc_netx_reset"] = json.dumps(reset, sort_keys=True)
            f.attrs["snncc_note"] = (f"load with lava.lib.dl.netx.hdf5.Network(net_config=..., reset_interval="
                                     f"{reset['reset_interval']}, reset_offset={reset['reset_offset']})")
        sim = f.create_group("simulation")
        _num(sim, "Ts", 1)
        _num(sim, "tSample", int(graph.meta.get("steps", 1)))
        grp = f.create_group("layer")
        for i, (kind, *nodes) in enumerate(layers):
            h = grp.create_group(str(i))
            _str(h, "type", kind)
            meta: dict = {}
            WRITERS[kind](h, graph, shapes, nodes, meta)
            h.attrs["snncc_json"] = json.dumps(meta, sort_keys=True)
    return [path]


def simulate(out_dir, x: np.ndarray, probe_state: bool = False) -> dict[str, np.ndarray]:
    """Re-import ``out_dir/network.net`` with snncc's netx frontend and run it on the Lava
    target (netx itself, in lava-dl, cannot be installed here)."""
    from ...frontends.netx import load_netx
    from .. import lava

    graph = load_netx(Path(out_dir) / FILE)
    lava.emit(graph, Path(out_dir) / "lava")
    return lava.simulate(Path(out_dir) / "lava", x, probe_state=probe_state)


__all__ = ["emit", "simulate"]
