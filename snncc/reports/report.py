"""Memory, model size, synaptic operations and energy of a compiled integer model.

* model size (QP-SNN Eq. 16): M = sum P_q * B_q (every parameter of the integer model is
  integer: weights at their weight bits, neuron constants at the membrane width,
  decays at 12 bits);
* memory (SpQuant-SNN Eq. 28): M_t = w_p N_w + u_p N_f + u_s N_f, with u_p the stored
  membrane bits (v, plus u where a current is kept; ternary 2 bits, binary 1 bit) and
  u_s = 1 bit per spike;
* operations, measured by running the reference on given inputs: an AC (accumulate) for
  every binary input event times its fan-out, a MAC for every non-binary input value
  (pixels, pooled spike counts) times its fan-out; neuron updates and spikes per step.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.graph import Graph
from ..ir.nodes import IntLIF
from ..ops import op_def
from .energy import MODELS, energy_pj


def state_bits(op: IntLIF) -> int:
    return op_def(op).state_bits(op)


def static_rows(graph: Graph) -> list[dict]:
    """Per node: its parameters, their bits and size, neurons and state bits (``OpDef.report``)."""
    shapes = graph.shapes()
    rows = []
    for name, op in graph.items():
        row = {"layer": name, "op": op.kind, "shape": list(shapes[name]), "params": 0,
               "bits": None, "size_bits": 0, "neurons": 0, "state_bits": 0}
        row.update(op_def(op).report(op, shapes[name]))
        rows.append(row)
    return rows


def r_utilize(w: np.ndarray, bits: int) -> float:
    """QP-SNN Eq. 8: distinct integer values used / values available (2^b - 1 symmetric)."""
    return float(len(np.unique(w)) / ((1 << bits) - 1))


def measure_ops(graph: Graph, x: np.ndarray, chunk: int = 64, progress: bool = True) -> dict[str, dict]:
    """Per synapse: MACs and ACs per sample (summed over steps); per neuron layer: updates
    and spikes per sample. Runs the reference with the same schedule as the model, ``chunk``
    samples at a time; the values entering each synapse are re-derived from the recorded
    spikes (synapse outputs, i.e. currents, are not inputs of further synapses). A synapse
    counts ACs only if every value entering it, over all samples, is 0 or 1."""
    from ..progress import bar
    from ..reference.interpreter import prepare_input

    prepare_input(graph, x)  # a bad input is refused before any bar is drawn
    n = len(x)
    events: dict[str, float] = {}
    binary: dict[str, bool] = {}
    ops: dict[str, dict] = {}
    with bar(total=n, desc="report: operations", unit="sample", progress=progress) as pb:
        for i in range(0, n, chunk):
            _count_ops(graph, x[i:i + chunk], ops, events, binary)
            pb.update(min(chunk, n - i))
    for name, ev in events.items():
        ops[name]["acs" if binary[name] else "macs"] = ev / n
    for rec in ops.values():
        for k in ("spikes", "skipped_updates", "gated_channel_steps", "neg_masked"):
            if k in rec:
                rec[k] /= n
        if "skipped_updates" in rec:  # a skipped update is no update: the dense count minus the skipped
            rec["neuron_updates"] -= rec["skipped_updates"]
    return ops


def _kernel_area(graph: Graph, name: str) -> int:
    """k^l x k^l of SpQuant-SNN Eq. 30: the largest kernel area of the synapses feeding a
    neuron layer (through an Add too); 1 for dense synapses."""
    best = 1
    for s in graph.inputs(name):
        op = graph.node(s)
        if op_def(op).role == "synapse" and getattr(op, "weight", np.zeros(0)).ndim == 4:
            best = max(best, int(op.weight.shape[2] * op.weight.shape[3]))
        elif op_def(op).role == "add":
            best = max(best, _kernel_area(graph, s))
    return best


def eq30_rows(graph: Graph, rows: list[dict], steps: int) -> dict:
    """SpQuant-SNN Eq. 30 per spiking layer from the measured masks, beside the dense
    count (S_c = S_p = 0): 2 C (1 - S_c) W H k^2 + T B C (1 - S_c) W H (1 - S_p), B = 1
    (per sample). S_p = measured share of skipped neuron updates; S_c = measured share of
    switched-off channel-steps."""
    out, total_d, total_s = {}, 0.0, 0.0
    for r in rows:
        if r["op"] != "IntLIF" or "skipped_updates" not in r or not graph.node(r["layer"]).fires:
            continue
        c, area = r["shape"][0], int(np.prod(r["shape"][1:]))
        sp = r["skipped_updates"] / (c * area * steps)
        sc = r["gated_channel_steps"] / (c * steps)
        k2 = _kernel_area(graph, r["layer"])
        dense = 2 * c * area * k2 + steps * c * area
        sparse = 2 * c * (1 - sc) * area * k2 + steps * c * (1 - sc) * area * (1 - sp)
        r.update(spatial_sparsity=sp, channel_sparsity=sc, eq30_dense=dense, eq30_sparse=sparse)
        out[r["layer"]] = {"S_p": sp, "S_c": sc, "k2": k2, "dense": dense, "sparse": sparse}
        total_d, total_s = total_d + dense, total_s + sparse
    return {"layers": out, "dense_per_sample": total_d, "sparse_per_sample": total_s,
            "reduction": total_d / total_s if total_s else None,
            "method": "SpQuant-SNN Eq. 30 with B = 1, S_c and S_p measured with the reference interpreter "
                      "(S_p: skipped neuron updates / all; S_c: switched-off channel-steps / all)"}


def run_measuring_masks(graph: Graph, x: np.ndarray) -> tuple[dict, dict[str, dict[str, float]]]:
    """``interpreter.run``, also counting, per neuron layer, the updates the spatial mask
    skipped, the neurons the negative mask cleared and the channel-steps the channel gate
    switched off (summed over samples and steps: ``NeuronState.masked_count``). All steps
    in one ``advance``, so a static input's first synapse is computed once."""
    from ..reference import interpreter as R

    xs = R.prepare_input(graph, x)
    sim = R.Simulation(graph, xs.shape[0])
    res = sim.advance(xs)
    masked = {name: {k: float(st.masked_count.get(k, 0)) for k in ("spatial", "neg", "channel")}
              for name, st in sim.states.items()}
    return res, masked


def _count_ops(graph: Graph, x: np.ndarray, ops: dict, events: dict, binary: dict) -> None:
    """Add one chunk's counts: spikes and events summed (divided by N at the end)."""
    from ..reference import interpreter as R

    res, masked = run_measuring_masks(graph, x)
    n, t_steps = res["output"].shape[:2]
    shapes = graph.shapes()
    acts = {graph.input_name: R.prepare_input(graph, x)}
    for name, op in graph.items():
        d = op_def(op)
        if d.role == "neuron":
            acts[name] = res.get(name, np.zeros((n, t_steps) + shapes[name], np.int64))
            rec = ops.setdefault(name, {"neuron_updates": float(np.prod(acts[name].shape[2:]) * t_steps),
                                        "spikes": 0.0, "skipped_updates": 0.0, "gated_channel_steps": 0.0,
                                        "neg_masked": 0.0})
            rec["spikes"] += float(acts[name].sum())
            m = masked.get(name, {})
            rec["skipped_updates"] += m.get("spatial", 0.0)
            rec["gated_channel_steps"] += m.get("channel", 0.0)
            rec["neg_masked"] += m.get("neg", 0.0)
            continue
        ins = [acts.get(s) for s in graph.inputs(name)]
        if d.role == "input" or not ins or any(a is None for a in ins):
            acts.setdefault(name, None)
            continue
        flat = [a.reshape((n * t_steps,) + a.shape[2:]) for a in ins]
        if d.role == "synapse":
            nz = (flat[0] != 0).astype(np.int64)
            is_binary = bool(flat[0].size == 0 or (flat[0].min() >= 0 and flat[0].max() <= 1))
            ops.setdefault(name, {"acs": 0.0, "macs": 0.0, "dense_macs": float(d.dense_macs(op, ins[0].shape[2:]))})
            events[name] = events.get(name, 0.0) + float(d.events(op, nz))
            binary[name] = binary.get(name, True) and is_binary
            acts[name] = None  # currents are not inputs of further synapses
        elif d.role == "add":
            acts[name] = None
        else:
            out = d.reference(op, flat)
            acts[name] = out.reshape((n, t_steps) + out.shape[1:])


def build_report(graph: Graph, x: np.ndarray | None = None, input_desc: str = "") -> dict:
    rows = static_rows(graph)
    weights = sum(r["size_bits"] for r in rows if r["op"] in ("IntConv", "IntDense"))
    n_w = sum(r["params"] for r in rows if r["op"] in ("IntConv", "IntDense"))
    consts = sum(r["size_bits"] for r in rows if r["op"] == "IntLIF")
    n_f = sum(r["neurons"] for r in rows)
    membrane = sum(r["neurons"] * r["state_bits"] for r in rows)
    rep = {
        "model_size": {"weights_bits": weights, "neuron_constants_bits": consts,
                       "total_bytes": math.ceil((weights + consts) / 8),
                       "float32_bytes": 4 * (n_w + sum(r["params"] for r in rows if r["op"] == "IntLIF")),
                       "method": "QP-SNN Eq. 16: sum of parameters x bit width (all integer)"},
        "memory": {"weights_bits": weights, "membrane_bits": membrane, "spike_bits": n_f,
                   "total_bytes": math.ceil((weights + membrane + n_f) / 8),
                   "method": "SpQuant-SNN Eq. 28: w_p*N_w + u_p*N_f + u_s*N_f"},
        "layers": rows, "steps": int(graph.meta.get("steps", 1)),
    }
    if x is not None:
        ops = measure_ops(graph, x)
        for r in rows:
            r.update(ops.get(r["layer"], {}))
        macs = sum(r.get("macs", 0.0) for r in rows)
        acs = sum(r.get("acs", 0.0) for r in rows)
        upd = sum(r.get("neuron_updates", 0.0) for r in rows)
        spk = sum(r.get("spikes", 0.0) for r in rows)
        dense = sum(r.get("dense_macs", 0.0) for r in rows)
        rep["ops"] = {"samples": int(len(x)), "input": input_desc, "macs_per_sample": macs,
                      "acs_per_sample": acs, "sops_per_sample": macs + acs,
                      "neuron_updates_per_sample": upd, "spikes_per_sample": spk,
                      "ann_macs_per_sample": dense,
                      "method": "measured with the reference interpreter on the given inputs; "
                                "AC = binary event x fan-out, MAC = non-binary input x fan-out"}
        rep["energy"] = {k: {"title": m["title"], "source": m["source"],
                             "snn_uj_per_sample": energy_pj(k, macs, acs, upd, spk) / 1e6}
                         for k, m in MODELS.items()}
        rep["energy"]["45nm_fp32"]["ann_uj_per_sample"] = dense * MODELS["45nm_fp32"]["mac"] / 1e6
        rep["eq30"] = eq30 = eq30_rows(graph, rows, rep["steps"])
        eq30["energy_uj_per_sample"] = {k: {"dense": eq30["dense_per_sample"] * m["ac"] / 1e6,
                                            "sparse": eq30["sparse_per_sample"] * m["ac"] / 1e6}
                                        for k, m in MODELS.items() if "ac" in m}
    return rep


def format_report(rep: dict) -> str:
    lines = []
    has_ops = "ops" in rep
    hdr = f"{'layer':<16}{'op':<9}{'shape':<14}{'params':>9}{'bits':>5}{'size KB':>9}{'neurons':>9}{'state b':>8}"
    if has_ops:
        hdr += f"{'MACs/smp':>11}{'ACs/smp':>11}{'spikes/smp':>11}"
    lines += [hdr, "-" * len(hdr)]
    for r in rep["layers"]:
        if r["op"] in ("IntInput",):
            continue
        line = (f"{r['layer'][:15]:<16}{r['op']:<9}{'x'.join(map(str, r['shape'])):<14}{r['params']:>9}"
                f"{r['bits'] if r['bits'] is not None else '':>5}{r['size_bits'] / 8192:>9.2f}"
                f"{r['neurons'] or '':>9}{r['state_bits'] or '':>8}")
        if has_ops:
            line += (f"{_fmt(r.get('macs'))}{_fmt(r.get('acs'))}{_fmt(r.get('spikes'))}")
        lines.append(line)
    ms, mem = rep["model_size"], rep["memory"]
    lines += ["", f"model size (QP-SNN Eq. 16): {ms['total_bytes'] / 1024:.2f} KiB "
                  f"(weights {ms['weights_bits'] / 8192:.2f} KiB + neuron constants "
                  f"{ms['neuron_constants_bits'] / 8192:.2f} KiB; float32 model {ms['float32_bytes'] / 1024:.2f} KiB)",
              f"memory (SpQuant-SNN Eq. 28): {mem['total_bytes'] / 1024:.2f} KiB (weights "
              f"{mem['weights_bits'] / 8192:.2f} + membrane {mem['membrane_bits'] / 8192:.2f} + spikes "
              f"{mem['spike_bits'] / 8192:.2f} KiB)"]
    if has_ops:
        o = rep["ops"]
        lines += [f"operations per sample over T={rep['steps']} ({o['samples']} samples of {o['input']}): "
                  f"{o['macs_per_sample']:.4g} MACs, {o['acs_per_sample']:.4g} ACs, "
                  f"{o['spikes_per_sample']:.4g} spikes, {o['neuron_updates_per_sample']:.4g} neuron updates "
                  f"(an ANN of the same shape: {o['ann_macs_per_sample']:.4g} MACs)", "energy per sample:"]
        for k, e in rep["energy"].items():
            extra = f"   (ANN: {e['ann_uj_per_sample']:.3f} uJ)" if "ann_uj_per_sample" in e else ""
            lines.append(f"  {e['title']:<52} {e['snn_uj_per_sample']:.4f} uJ{extra}")
        lines.append("  sources: " + "; ".join(e["source"] for e in rep["energy"].values()))
        lines += _format_eq30(rep["eq30"])
    else:
        lines.append("operations and energy: not measured (give --input x.npy or --dataset NAME:N)")
    return "\n".join(lines)


def _format_eq30(eq: dict) -> list[str]:
    """The SpQuant-SNN Eq. 30 lines: per layer S_c, S_p, dense and sparse ops; totals, energy
    (one line where no layer masked anything: sparse = dense)."""
    if not any(r["S_c"] or r["S_p"] for r in eq["layers"].values()):
        return [f"SpQuant-SNN Eq. 30: no sparsity mask skipped anything (S_c = S_p = 0 in every layer): "
                f"{eq['dense_per_sample']:.4g} integer ops per sample, sparse = dense"]
    lines = ["SpQuant-SNN Eq. 30 operations per sample (integer ops; S_c, S_p measured):",
             f"  {'layer':<16}{'S_c':>7}{'S_p':>7}{'k^2':>5}{'dense':>12}{'sparse':>12}"]
    for name, r in eq["layers"].items():
        lines.append(f"  {name[:15]:<16}{r['S_c']:>7.3f}{r['S_p']:>7.3f}{r['k2']:>5}{r['dense']:>12.4g}"
                     f"{r['sparse']:>12.4g}")
    red = f"{eq['reduction']:.2f}x" if eq["reduction"] else "-"
    lines.append(f"  total {eq['dense_per_sample']:.4g} dense, {eq['sparse_per_sample']:.4g} sparse ({red} fewer); "
                 "energy at E_AC per op: " + ", ".join(f"{k} {e['sparse']:.4f} uJ (dense {e['dense']:.4f})"
                                                       for k, e in eq["energy_uj_per_sample"].items()))
    return lines


def _fmt(v) -> str:
    return f"{v:>11.4g}" if v is not None else f"{'':>11}"
