"""Compare a target's simulation with the reference: every array, every time step, for
every runnable artifact of every emitted target."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import SnnccError


def verify_build(build, graph, manifest: dict, x: np.ndarray, wanted: list[str] | None = None,
                 progress: bool = True):
    """({target: comparison with "artifacts": {artifact: comparison}}, skipped targets):
    every runnable artifact of each bit-exact target (``Target.runs``) against the
    reference; the target's result matches only if all of its artifacts do."""
    from .builds import target_dir
    from .progress import bar
    from .reference import interpreter as R
    from .targets import spec

    wanted = wanted or manifest.get("targets", [])
    targets = [t for t in wanted if spec(t).bit_exact]
    skipped = sorted(set(wanted) - set(targets))
    if not targets:
        raise SnnccError(f"{build} has no emitted bit-exact targets to verify"
                         + (f" (skipped float interchange formats: {', '.join(skipped)})" if skipped else ""))
    dirs = {t: target_dir(build, manifest, t) for t in targets}
    R.prepare_input(graph, x)
    runs = {t: spec(t).runs(Path(dirs[t])) for t in targets}
    with bar(total=1 + sum(len(r) for r in runs.values()), desc="verify: reference", unit="run",
             progress=progress) as pb:
        ref = {True: R.run(graph, x, probe_state=True)}
        ref[False] = {k: v for k, v in ref[True].items() if not k.endswith(("/v", "/u"))}
        pb.update()
        results = {}
        for t in targets:
            arts = {}
            for label, fn, probe in runs[t]:
                pb.set_description(f"verify: {t} {label}")
                arts[label] = compare(ref[probe], fn(x))
                pb.update()
            full = next(iter(reversed(arts.values())))  # the last run: the one with state probes
            results[t] = {**full, "match": all(a["match"] for a in arts.values()), "artifacts": arts}
            not_run = getattr(spec(t).module, "not_run", None)
            skipped_here = not_run(Path(dirs[t])) if not_run is not None else {}
            if skipped_here:
                results[t]["not_run"] = skipped_here
    return results, skipped


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
        for label, a in r.get("artifacts", {}).items():
            if not a["match"] and label != next(iter(reversed(r["artifacts"]))):
                lines.append(f"  {t}: {label} differs from the reference")
        for k, rec in r["layers"].items():
            if not rec["match"]:
                fm = rec.get("first_mismatch", {})
                lines.append(f"  {t}: '{k}' first differs at (sample, step, ...) {fm.get('index')}: "
                             f"reference {fm.get('reference')}, {t} {fm.get('target')}" if fm else f"  {t}: '{k}': {rec.get('error')}")
        if r["extra"]:
            lines.append(f"  {t}: arrays the reference does not produce: {', '.join(r['extra'])}")
    ok = all(r["match"] for r in results.values())
    checked = "; ".join(f"{t}: {', '.join(r.get('artifacts', {t: 0}))}" for t, r in results.items())
    lines.append(f"checked: {checked}")
    lines.append("ALL TARGETS BIT-EXACT" if ok else "MISMATCH: targets differ from the reference")
    return "\n".join(lines)
