"""`snncc inspect`: the integer model, layer by layer."""
from __future__ import annotations

from ..ir.graph import Graph
from ..ops import op_def


def inspect_rows(graph: Graph, manifest: dict | None = None) -> list[dict]:
    """One row per node: name, source, op, inputs, shape, and the op's own fields
    (``OpDef.inspect``); a layer whose output channels were pruned also has
    ``channels_kept``/``channels_original`` (from the build manifest)."""
    shapes = graph.shapes()
    pruned = {n: g for g in (manifest or {}).get("prune", {}).get("groups", []) for n in g["nodes"]}
    rows = []
    for name, op in graph.items():
        row = {"layer": name, "source": op.source, "op": op.kind, "inputs": graph.inputs(name),
               "shape": list(shapes[name])}
        row.update(op_def(op).inspect(op))
        if name in pruned:
            row.update(channels_kept=pruned[name]["kept"], channels_original=pruned[name]["channels"])
        rows.append(row)
    return rows


def format_inspect(rows: list[dict], graph: Graph, manifest: dict) -> str:
    cfg = manifest.get("config", {})
    lat = graph.meta.get("latency", 0)
    steps = f"T={graph.meta.get('input_steps', graph.meta.get('steps'))}" + (f" + {lat} steps latency" if lat else "")
    lines = [f"integer model: {len(rows)} nodes, {steps}, schedule "
             f"{graph.meta.get('schedule', 'zero')}, targets {', '.join(manifest.get('targets', [])) or '-'}"]
    if manifest.get("frontend_settings"):
        lines.append(f"frontend {manifest.get('frontend')}: " + ", ".join(
            f"{k}={v}" for k, v in manifest["frontend_settings"].items()))
    if cfg:
        lines.append(f"config: weight_bits={cfg.get('weight_bits')} granularity={cfg.get('granularity')} "
                     f"state_quant={cfg.get('state_quant')} v={cfg.get('v_bits')}b/{cfg.get('v_overflow')} "
                     f"u={cfg.get('u_bits')}b/{cfg.get('u_overflow')}")
    pr = manifest.get("prune")
    if pr:
        lines.append(f"pruned ({pr['criterion']}): " + (", ".join(
            f"{'+'.join(g['layers'])} kept {g['kept']}/{g['channels']} channels" for g in pr["groups"]) or "nothing"))
    hdr = f"{'layer':<14}{'op':<10}{'shape':<13}{'details'}"
    lines += [hdr, "-" * 100]
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        d = op_def(r["op"]).describe(r)
        if "channels_kept" in r:
            d += f"  [kept {r['channels_kept']}/{r['channels_original']} channels]"
        src = f"  <- {', '.join(r['inputs'])}" if r["inputs"] else ""
        lines.append(f"{r['layer'][:13]:<14}{r['op']:<10}{shape:<13}{d}{src}")
    return "\n".join(lines)
