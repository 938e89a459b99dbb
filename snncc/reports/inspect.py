"""`snncc inspect`: the integer model, layer by layer."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph


def _rng(a: np.ndarray) -> str:
    a = np.asarray(a)
    if a.size == 0:
        return "-"
    lo, hi = a.min(), a.max()
    if np.issubdtype(a.dtype, np.floating):
        return f"{lo:.3g}" if lo == hi else f"[{lo:.3g}, {hi:.3g}]"
    return f"{int(lo)}" if lo == hi else f"[{int(lo)}, {int(hi)}]"


def inspect_rows(graph: Graph) -> list[dict]:
    shapes = graph.shapes()
    rows = []
    for name, op in graph.items():
        row = {"layer": name, "source": op.source, "op": op.kind, "inputs": graph.inputs(name),
               "shape": list(shapes[name])}
        if op.kind in ("IntConv", "IntDense"):
            row.update(weight_shape=list(op.weight.shape), weight_bits=op.weight_bits,
                       weight=_rng(op.weight), weight_exp=op.weight_exp, delay=op.delay,
                       scale=_rng(op.scale), out_bits=op.out_bits)
            if op.kind == "IntConv":
                row.update(stride=list(op.stride), padding=list(op.padding), groups=op.groups)
        elif op.kind == "IntLIF":
            row.update(du=op.du, dv=op.dv, act_shift=op.act_shift, threshold=_rng(op.threshold),
                       bias=_rng(op.bias), reset=op.reset, reset_value=_rng(op.reset_value),
                       v_init=_rng(op.v_init), state_quant=op.state_quant,
                       state_level=_rng(op.state_level) if op.state_quant != "none" else "-",
                       u_bits=op.u_bits, u_overflow=op.u_overflow, v_bits=op.v_bits,
                       v_overflow=op.v_overflow, fires=op.fires, scale=_rng(op.scale),
                       reset_interval=op.reset_interval, reset_offset=op.reset_offset)
        elif op.kind in ("SumPool", "MaxPool"):
            row.update(kernel=list(op.kernel), stride=list(op.stride), padding=list(op.padding))
        elif op.kind == "IntInput":
            row.update(encoding=op.encoding, bits=op.bits, scale=f"{op.scale:.6g}")
        rows.append(row)
    return rows


def format_inspect(rows: list[dict], graph: Graph, manifest: dict) -> str:
    cfg = manifest.get("config", {})
    lat = graph.meta.get("latency", 0)
    steps = f"T={graph.meta.get('input_steps', graph.meta.get('steps'))}" + (f" + {lat} steps latency" if lat else "")
    lines = [f"integer model: {len(rows)} nodes, {steps}, schedule "
             f"{graph.meta.get('schedule', 'zero')}, targets {', '.join(manifest.get('targets', [])) or '-'}"]
    if cfg:
        lines.append(f"config: weight_bits={cfg.get('weight_bits')} granularity={cfg.get('granularity')} "
                     f"state_quant={cfg.get('state_quant')} v={cfg.get('v_bits')}b/{cfg.get('v_overflow')} "
                     f"u={cfg.get('u_bits')}b/{cfg.get('u_overflow')}")
    hdr = f"{'layer':<14}{'op':<10}{'shape':<13}{'details'}"
    lines += [hdr, "-" * 100]
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        if r["op"] in ("IntConv", "IntDense"):
            d = (f"W{tuple(r['weight_shape'])} {r['weight_bits']}b in {r['weight']}  exp {r['weight_exp']}  "
                 f"delay {r['delay']}  scale {r['scale']}")
            if r["op"] == "IntConv":
                d += f"  stride {tuple(r['stride'])} pad {tuple(r['padding'])}" + (f" groups {r['groups']}" if r["groups"] > 1 else "")
        elif r["op"] == "IntLIF":
            d = (f"thr {r['threshold']} bias {r['bias']} reset {r['reset']}"
                 + (f"({r['reset_value']})" if r["reset"] == "subtract" else "")
                 + f" du {r['du']} dv {r['dv']} shift {r['act_shift']} v {r['v_bits']}b/{r['v_overflow']}"
                 + (f" u {r['u_bits']}b/{r['u_overflow']}" if r["du"] != 4096 else "")
                 + (f" state {r['state_quant']} L={r['state_level']}" if r["state_quant"] != "none" else "")
                 + (f" u=v=0 at t%{r['reset_interval']}=={r['reset_offset']}" if r["reset_interval"] else "")
                 + ("" if r["fires"] else " READOUT (no firing; v is the output)"))
        elif r["op"] in ("SumPool", "MaxPool"):
            d = f"kernel {tuple(r['kernel'])} stride {tuple(r['stride'])}"
        elif r["op"] == "IntInput":
            d = f"{r['encoding']} {r['bits']}-bit, real value = {r['scale']} x int"
        else:
            d = ""
        src = f"  <- {', '.join(r['inputs'])}" if r["inputs"] else ""
        lines.append(f"{r['layer'][:13]:<14}{r['op']:<10}{shape:<13}{d}{src}")
    return "\n".join(lines)
