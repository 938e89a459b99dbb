"""Compare a target's simulation with the reference: every array, every time step, for
every runnable artifact of every emitted target."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import SnnccError


def verify_build(build, graph, manifest: dict, x: np.ndarray, wanted: list[str] | None = None,
                 progress: bool = True, budget: int | None = None):
    """({target: comparison with "artifacts": {artifact: comparison}}, skipped targets):
    every runnable artifact of each bit-exact target (``Target.runs``) against the
    reference; the target's result matches only if all of its artifacts do.

    The samples stream through in chunks (results of about ``budget`` bytes per run at a
    time, default ``builds.RESULT_BUDGET``): each chunk runs on the reference and every
    artifact, is compared and dropped, so memory stays bounded for long event streams;
    the bar counts samples."""
    from .builds import RESULT_BUDGET, _result_bytes, target_dir
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
    xin = R.prepare_input(graph, x)
    runs = {t: spec(t).runs(Path(dirs[t])) for t in targets}
    n, steps = xin.shape[:2]
    ns = max(1, min(n, (budget or RESULT_BUDGET) // max(1, steps * _result_bytes(graph, True))))
    acc = {t: {label: Comparison() for label, _, _ in runs[t]} for t in targets}
    with bar(total=n * (1 + sum(len(r) for r in runs.values())), desc="verify: reference", unit="sample",
             progress=progress) as pb:
        for i in range(0, n, ns):
            piece = np.ascontiguousarray(xin[i:i + ns])
            pb.set_description("verify: reference")
            ref = {True: R.run(graph, piece, probe_state=True)}
            ref[False] = {k: v for k, v in ref[True].items() if not k.endswith(("/v", "/u"))}
            pb.update(len(piece))
            for t in targets:
                for label, fn, probe in runs[t]:
                    pb.set_description(f"verify: {t} {label}")
                    acc[t][label].add(ref[probe], fn(piece), i)
                    pb.update(len(piece))
    results = {}
    for t in targets:
        arts = {label: c.result() for label, c in acc[t].items()}
        full = next(iter(reversed(arts.values())))  # the last run: the one with state probes
        results[t] = {**full, "match": all(a["match"] for a in arts.values()), "artifacts": arts}
        not_run = getattr(spec(t).module, "not_run", None)
        skipped_here = not_run(Path(dirs[t])) if not_run is not None else {}
        if skipped_here:
            results[t]["not_run"] = skipped_here
    return results, skipped


class Comparison:
    """A comparison with the reference built chunk by chunk of samples: per array the
    steps on which every sample so far is equal, and the first difference."""

    def __init__(self) -> None:
        self.eq: dict[str, np.ndarray] = {}
        self.first: dict[str, dict] = {}
        self.errors: dict[str, str] = {}
        self.missing: set[str] = set()
        self.extra: set[str] = set()

    def add(self, ref: dict[str, np.ndarray], got: dict[str, np.ndarray], offset: int = 0) -> None:
        """Compare one chunk (its first sample is sample ``offset`` of the whole input)."""
        self.missing |= set(ref) - set(got)
        self.extra |= set(got) - set(ref)
        for key in sorted(set(ref) & set(got)):
            r, g = ref[key], np.asarray(got[key])
            if g.shape != r.shape:
                self.errors.setdefault(key, f"shape {g.shape} != reference {r.shape}")
                self.eq[key] = np.zeros(r.shape[1], bool)
                continue
            eq = (g == r).reshape(r.shape[0], r.shape[1], -1).all(axis=(0, 2))
            self.eq[key] = eq & self.eq.get(key, True)
            if not eq.all() and key not in self.first:
                idx = tuple(int(i) for i in np.argwhere(g != r)[0])
                self.first[key] = {"index": [idx[0] + offset, *idx[1:]], "reference": int(r[idx]),
                                   "target": int(g[idx])}

    def result(self) -> dict:
        layers = {}
        for key in sorted(self.eq):
            eq = self.eq[key]
            rec = {"match": bool(eq.all()) and key not in self.errors, "steps": int(eq.size),
                   "steps_equal": int(eq.sum())}
            if key in self.errors:
                rec["error"] = self.errors[key]
            if key in self.first:
                rec["first_mismatch"] = self.first[key]
            layers[key] = rec
        return {"match": not self.missing and not self.extra and all(v["match"] for v in layers.values()),
                "layers": layers, "missing": sorted(self.missing), "extra": sorted(self.extra)}


def compare(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict:
    """Every array of ``got`` against the reference's: per array the steps equal on all
    samples and the first difference; arrays missing or extra."""
    c = Comparison()
    c.add(ref, got)
    return c.result()


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
