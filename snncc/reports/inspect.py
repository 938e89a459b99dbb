"""`snncc inspect`: the integer model, layer by layer."""
from __future__ import annotations

from ..ir.graph import Graph
from ..ops import op_def


def inspect_rows(graph: Graph) -> list[dict]:
    """One row per node: name, source, op, inputs, shape, and the op's own fields
    (``OpDef.inspect``)."""
    shapes = graph.shapes()
    rows = []
    for name, op in graph.items():
        row = {"layer": name, "source": op.source, "op": op.kind, "inputs": graph.inputs(name),
               "shape": list(shapes[name])}
        row.update(op_def(op).inspect(op))
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
    hdr = f"{'layer':<14}{'op':<10}{'shape':<13}{'details'}"
    lines += [hdr, "-" * 100]
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        d = op_def(r["op"]).describe(r)
        src = f"  <- {', '.join(r['inputs'])}" if r["inputs"] else ""
        lines.append(f"{r['layer'][:13]:<14}{r['op']:<10}{shape:<13}{d}{src}")
    return "\n".join(lines)
