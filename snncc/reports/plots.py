"""`snncc report --plot DIR`: the report as pictures, PNGs plus one HTML page.

* ``spike_rates.png``: per neuron layer, the fraction of neurons that spike at each time
  step (mean over the samples; needs an input: --dataset or --input);
* ``weights.png``: per synapse, the histogram of its integer weight codes over the whole
  grid of its width (every level it could use, and how many it does: QP-SNN's r_utilize);
* ``memory_energy.png``: per layer, memory (weights, membrane, spikes: SpQuant-SNN Eq. 28)
  and, with an input, the energy per sample (Loihi constants);
* ``accuracy.png`` (with --dataset): accuracy of the float and the integer model after
  each time step (the prediction read at step t).

Everything plotted is computed here from the build (reference interpreter, float graph);
nothing is estimated. Matplotlib runs headless (Agg); the PNGs carry no time stamp.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from ..errors import SnnccError
from ..ir.graph import Graph
from ..ops import role
from .energy import MODELS, energy_pj

_PNG_META = {"Software": None}  # no version string, no date: same build, same bytes


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SnnccError("report --plot needs matplotlib (installed with snncc's lava extra: "
                         "pip install 'snncc[lava]' or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def spike_rates(graph: Graph, result: dict) -> dict[str, np.ndarray]:
    """Per firing neuron layer: fraction of its neurons spiking at each step (mean over samples)."""
    out = {}
    for name, op in graph.items():
        if role(op) == "neuron" and getattr(op, "fires", True) and name in result:
            s = np.asarray(result[name])
            out[name] = s.reshape(s.shape[0], s.shape[1], -1).mean(axis=(0, 2))
    return out


def accuracy_per_step(graph: Graph, result: dict, labels: np.ndarray, float_out: np.ndarray | None) -> dict:
    """Accuracy of the prediction read after each step: the integer model as
    ``interpreter.predict`` reads it (readout potential at t, or spike count up to t), the
    float model by its summed output up to t."""
    from ..ir.nodes import IntLIF

    out = result["output"].reshape(result["output"].shape[:2] + (-1,))
    op = graph.node(graph.outputs[0])
    readout = isinstance(op, IntLIF) and not op.fires
    pred = out.argmax(-1) if readout else np.cumsum(out, axis=1).argmax(-1)  # (N, T)
    acc = {"int": (pred == labels[:, None]).mean(0)}
    if float_out is not None:
        fo = float_out.reshape(float_out.shape[:2] + (-1,))
        acc["float"] = (np.cumsum(fo, axis=1).argmax(-1) == labels[:, None]).mean(0)
    return acc


def write_plots(build, graph: Graph, rep: dict, out_dir, x: np.ndarray | None = None,
                labels: np.ndarray | None = None, desc: str = "") -> list[Path]:
    """Write the PNGs and ``report.html`` into ``out_dir``; returns the files written."""
    from ..reference import interpreter as R

    plt = _pyplot()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SnnccError(f"--plot {out_dir}: exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []

    def save(fig, name: str) -> None:
        p = out_dir / name
        fig.tight_layout()
        fig.savefig(p, dpi=110, metadata=_PNG_META)
        plt.close(fig)
        files.append(p)

    result = R.run(graph, x) if x is not None else None
    if result is not None:
        save(_plot_rates(plt, spike_rates(graph, result), desc), "spike_rates.png")
    syn = [(n, op) for n, op in graph.items() if role(op) == "synapse" and hasattr(op, "weight_bits")]
    if syn:
        save(_plot_weights(plt, syn), "weights.png")
    layers = [r for r in rep["layers"] if r["size_bits"] or r["neurons"]]
    if layers:
        save(_plot_memory_energy(plt, rep, layers), "memory_energy.png")
    acc = None
    if result is not None and labels is not None:
        acc = accuracy_per_step(graph, result, np.asarray(labels), _float_output(build, graph, x))
        save(_plot_accuracy(plt, acc, desc), "accuracy.png")
    files.append(_page(out_dir / "report.html", build, rep, files, acc, desc))
    return files


def _float_output(build, graph: Graph, x: np.ndarray) -> np.ndarray | None:
    from ..builds import load_float_graph
    from ..reference.float_sim import run_float

    if not (Path(build) / "float_model.json").is_file():
        return None  # an integer import (netx) has no float model
    return run_float(load_float_graph(build), x, int(graph.meta.get("input_steps", graph.meta.get("steps", 1))))


def _plot_rates(plt, rates: dict, desc: str):
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in rates.items():
        ax.plot(np.arange(1, len(r) + 1), 100 * r, marker="o", label=name)
    ax.set_xlabel("time step")
    ax.set_ylabel("neurons spiking (%)")
    ax.set_title(f"spike rate per layer ({desc})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _plot_weights(plt, syn: list):
    cols = min(3, len(syn))
    nrow = -(-len(syn) // cols)
    fig, axes = plt.subplots(nrow, cols, figsize=(4 * cols, 2.8 * nrow), squeeze=False)
    for ax, (name, op) in zip(axes.flat, syn):
        w = np.asarray(op.weight).ravel()
        top = (1 << (op.weight_bits - 1)) - 1
        levels = np.arange(-top - 1, top + 1)
        counts = np.bincount(np.clip(w, -top - 1, top) + top + 1, minlength=len(levels))
        ax.bar(levels, counts, width=1.0, color="tab:blue")
        ax.set_title(f"{name}: {op.weight_bits}-bit, {int((counts > 0).sum())}/{2 * top + 1} levels used", fontsize=9)
        ax.set_xlim(-top - 1.5, top + 1.5)
        ax.set_yscale("log")
        ax.set_xlabel("weight code")
    for ax in list(axes.flat)[len(syn):]:
        ax.axis("off")
    return fig


def _plot_memory_energy(plt, rep: dict, layers: list[dict]):
    panels = 2 if "ops" in rep else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    names = [r["layer"] for r in layers]
    kib = 8 * 1024
    w = np.array([r["size_bits"] if r["op"] in ("IntConv", "IntDense") else 0 for r in layers]) / kib
    mem = np.array([r["neurons"] * r["state_bits"] for r in layers]) / kib
    spk = np.array([r["neurons"] for r in layers]) / kib
    ax = axes[0, 0]
    ax.bar(names, w, label="weights")
    ax.bar(names, mem, bottom=w, label="membrane")
    ax.bar(names, spk, bottom=w + mem, label="spikes")
    ax.set_ylabel("KiB")
    ax.set_title(f"memory per layer (Eq. 28 total {rep['memory']['total_bytes'] / 1024:.2f} KiB)")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", rotation=45)
    if panels == 2:
        e = [energy_pj("loihi", r.get("macs", 0.0), r.get("acs", 0.0), r.get("neuron_updates", 0.0),
                       r.get("spikes", 0.0)) / 1e6 for r in layers]
        ax = axes[0, 1]
        ax.bar(names, e, color="tab:orange")
        ax.set_ylabel("uJ per sample")
        ax.set_title(f"energy per layer, {MODELS['loihi']['title'].split(' (')[0]} constants")
        ax.tick_params(axis="x", rotation=45)
    return fig


def _plot_accuracy(plt, acc: dict, desc: str):
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, a in acc.items():
        ax.plot(np.arange(1, len(a) + 1), 100 * a, marker="o", label=f"{k} model")
    ax.set_xlabel("time step (prediction read after it)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"accuracy over time ({desc})")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def _page(page: Path, build, rep: dict, pngs: list[Path], acc: dict | None, desc: str) -> Path:
    body = [f"<h1>snncc report: {html.escape(str(build))}</h1>"]
    if acc is not None:
        body.append("<p>" + ", ".join(f"{k} model accuracy after the last step: {100 * a[-1]:.2f} %"
                                      for k, a in acc.items()) + f" ({html.escape(desc)})</p>")
    body += [f'<figure><img src="{p.name}" alt="{p.stem}"><figcaption>{p.stem.replace("_", " ")}</figcaption>'
             "</figure>" for p in pngs]
    body.append("<h2>The report (JSON)</h2><pre>" + html.escape(json.dumps(rep, indent=1, sort_keys=True))
                + "</pre>")
    page.write_text("<!doctype html>\n<html><head><meta charset='utf-8'><title>snncc report</title></head>"
                    "<body>\n" + "\n".join(body) + "\n</body></html>\n")
    return page
