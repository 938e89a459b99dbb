"""Compare a target's simulation with the reference: every array, every time step."""
from __future__ import annotations

import numpy as np


def compare(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict:
    layers = {}
    for key in sorted(ref):
        r = ref[key]
        if key not in got:
            continue
        g = np.asarray(got[key])
        if g.shape != r.shape:
            layers[key] = {"match": False, "steps": int(r.shape[1]), "steps_equal": 0,
                           "error": f"shape {g.shape} != reference {r.shape}"}
            continue
        eq = (g == r).reshape(r.shape[0], r.shape[1], -1).all(axis=(0, 2))
        rec = {"match": bool(eq.all()), "steps": int(r.shape[1]), "steps_equal": int(eq.sum())}
        if not eq.all():
            idx = tuple(int(i) for i in np.argwhere(g != r)[0])
            rec["first_mismatch"] = {"index": list(idx), "reference": int(r[idx]), "target": int(g[idx])}
        layers[key] = rec
    missing = sorted(set(ref) - set(got))
    extra = sorted(set(got) - set(ref))
    return {"match": not missing and not extra and all(v["match"] for v in layers.values()),
            "layers": layers, "missing": missing, "extra": extra}


def format_comparison(results: dict[str, dict], desc: str) -> str:
    lines = [f"verify on {desc}", f"{'array':<24}" + "".join(f"{t:>18}" for t in results)]
    keys = sorted({k for r in results.values() for k in r["layers"]} | {k for r in results.values() for k in r["missing"]})
    for k in keys:
        cells = []
        for r in results.values():
            rec = r["layers"].get(k)
            if rec is None:
                cells.append(f"{'MISSING':>18}")
            else:
                mark = "ok" if rec["match"] else "MISMATCH"
                cells.append(f"{mark + ' ' + str(rec['steps_equal']) + '/' + str(rec['steps']):>18}")
        lines.append(f"{k[:23]:<24}" + "".join(cells))
    for t, r in results.items():
        for k, rec in r["layers"].items():
            if not rec["match"]:
                fm = rec.get("first_mismatch", {})
                lines.append(f"  {t}: '{k}' first differs at (sample, step, ...) {fm.get('index')}: "
                             f"reference {fm.get('reference')}, {t} {fm.get('target')}" if fm else f"  {t}: '{k}': {rec.get('error')}")
        if r["extra"]:
            lines.append(f"  {t}: arrays the reference does not produce: {', '.join(r['extra'])}")
    ok = all(r["match"] for r in results.values())
    lines.append("ALL TARGETS BIT-EXACT" if ok else "MISMATCH: targets differ from the reference")
    return "\n".join(lines)
