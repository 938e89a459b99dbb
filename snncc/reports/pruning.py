"""The report's pruning section: the build's model beside the same model before
structured pruning, both measured on the same inputs.

"Before" is the unpruned float model the build keeps (``unpruned_float_model.*``),
compiled again here with the build's configuration and pipeline, round to nearest (no
BWR), so that the comparison shows what pruning removed: parameters, model size (QP-SNN
Eq. 16), memory (SpQuant-SNN Eq. 28), operations and energy measured with the reference
interpreter."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph


def unpruned_integer_graph(build, manifest: dict) -> Graph:
    """The build's model without pruning, compiled like the build (without BWR)."""
    from ..builds import load_float_graph
    from ..compiler import choose_pipeline, compile_graph, resolve_config
    from ..targets import spec

    fg = load_float_graph(build, "unpruned_float_model")
    targets = [spec(t) for t in manifest.get("targets", [])]
    cfg = resolve_config(manifest["config"], targets)
    pipeline, _ = choose_pipeline(targets)
    return compile_graph(fg, cfg, pipeline, [])


def pruning_section(record: dict, before: dict, after: dict) -> dict:
    """Before/after figures of two reports (``build_report``) and the pruned layers."""
    def figures(rep: dict) -> dict:
        rows = rep["layers"]
        out = {"params": int(sum(r["params"] for r in rows if r["op"] in ("IntConv", "IntDense"))),
               "neurons": int(sum(r["neurons"] for r in rows)),
               "model_size_bytes": rep["model_size"]["total_bytes"], "memory_bytes": rep["memory"]["total_bytes"]}
        if "ops" in rep:
            o = rep["ops"]
            out.update(macs_per_sample=o["macs_per_sample"], acs_per_sample=o["acs_per_sample"],
                       spikes_per_sample=o["spikes_per_sample"],
                       energy_uj_per_sample={k: e["snn_uj_per_sample"] for k, e in rep["energy"].items()})
        return out

    layers = [{"layers": g["layers"], "channels": g["channels"], "kept": g["kept"]} for g in record["groups"]]
    return {"criterion": record["criterion"], "calib_samples": record.get("calib_samples"), "layers": layers,
            "left_whole": record.get("left_whole", []), "before": figures(before), "after": figures(after),
            "method": "before: the unpruned float model compiled with the same configuration, round to "
                      "nearest; both measured on the same inputs"}


def format_pruning(sec: dict) -> str:
    b, a = sec["before"], sec["after"]
    lines = [f"structured pruning ({sec['criterion']}"
             + (f", {sec['calib_samples']} calibration samples" if sec["calib_samples"] else "") + "): "
             + ", ".join(f"{'+'.join(g['layers'])} {g['kept']}/{g['channels']} channels" for g in sec["layers"])]
    rows = [("parameters", "params", "{:.0f}"), ("neurons", "neurons", "{:.0f}"),
            ("model size (Eq. 16) KiB", "model_size_bytes", "{:.2f}"), ("memory (Eq. 28) KiB", "memory_bytes", "{:.2f}"),
            ("MACs per sample", "macs_per_sample", "{:.4g}"), ("ACs per sample", "acs_per_sample", "{:.4g}"),
            ("spikes per sample", "spikes_per_sample", "{:.4g}")]
    lines.append(f"  {'':<26}{'before':>12}{'after':>12}{'after/before':>14}")
    for title, key, fmt in rows:
        if key not in b:
            continue
        div = 1024 if key.endswith("bytes") else 1
        lines.append(f"  {title:<26}{fmt.format(b[key] / div):>12}{fmt.format(a[key] / div):>12}"
                     f"{_ratio(a[key], b[key]):>14}")
    for k, e in b.get("energy_uj_per_sample", {}).items():
        ea = a["energy_uj_per_sample"][k]
        lines.append(f"  {'energy uJ ' + k:<26}{e:>12.4f}{ea:>12.4f}{_ratio(ea, e):>14}")
    lines.append(f"  ({sec['method']})")
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "-"


def prune_report(build, manifest: dict, after_rep: dict, x: np.ndarray | None, desc: str) -> dict | None:
    """The pruning section of a build's report (None if the build was not pruned)."""
    from .report import build_report

    record = manifest.get("prune")
    if not record:
        return None
    before = build_report(unpruned_integer_graph(build, manifest), x, desc)
    return pruning_section(record, before, after_rep)
