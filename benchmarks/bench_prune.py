"""Structured pruning after training (QP-SNN's criteria, no fine-tune) on the shipped example.

For each criterion x ratio x weight width the example is compiled with pruning in the flow
(``snncc.compile(..., prune=(calibration, PruneConfig))``: trace, prune the float graph,
quantize round-to-nearest) and measured:

  accuracy   float: the pruned float graph (snncc.reference.float_sim); int: the compiled
             integer model run on the C target (bit-exact with the reference interpreter:
             checked here on the first --check images of every build), full 10k test split
  params     weights of the Conv/Dense layers of the integer model
  size       QP-SNN Eq. 16 (parameters x bits, weights and neuron constants), KiB
  memory     SpQuant-SNN Eq. 28 (weights + membranes + spikes), KiB
  MACs/ACs   counted by the reference interpreter on the first --ops-samples test images
  energy     the report's per-sample energy (docs/report.md constants), uJ

Ratio 0 is the unpruned model. Stability: QP-SNN argues (Sec. 4.2, Fig. 3) that SCA's
scores depend on the inputs and SVS's do not; for each criterion the scores of every pruned
group (here every group but the output layer's classes, so the first layer's too) are
computed on --subsets disjoint calibration sets of --calib-n training images each,
and every pair of sets is compared by Spearman's rank correlation of the channel scores and
by the overlap (Jaccard index) of the channels kept at ratio 0.5.

    python benchmarks/bench_prune.py                      # the full table (about an hour on 2 cores)
    python benchmarks/bench_prune.py --criteria svs --ratios 0.5 --bits 8 --n 1000
    python benchmarks/bench_prune.py --stability-only

Results go to benchmarks/results/prune.json (merged, one row per criterion, ratio, bits).
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "prune.json"
EXAMPLE = ROOT / "examples" / "fashion_mnist" / "model.pt"


def compile_pruned(model, crit: str, ratio: float, bits: int, steps: int, xc, out: Path, seed: int):
    import snncc
    from snncc.passes.prune import PruneConfig

    prune = None if ratio == 0 else (xc, PruneConfig(enabled=True, criterion=crit, ratio=ratio, seed=seed))
    t0 = time.perf_counter()
    b = snncc.compile(model, (1, 28, 28), target="c", out=out, prune=prune,
                      config={"steps": steps, "weight_bits": bits})
    return b, time.perf_counter() - t0


def accuracy(build: Path, g, x, y, check: int, batch: int = 1000) -> float:
    """Integer accuracy on the C target; the first ``check`` images also on the reference."""
    from snncc.builds import simulate
    from snncc.reference import interpreter as R

    ref = R.run(g, x[:check])
    c = simulate(build, "c", x[:check])
    for k in ref:
        if not np.array_equal(ref[k], c[k]):
            raise SystemExit(f"{build}: C target differs from the reference in {k!r}: not bit-exact")
    ok = 0
    for i in range(0, len(x), batch):
        ok += int((R.predict(g, simulate(build, "c", x[i:i + batch])) == y[i:i + batch]).sum())
    return ok / len(x)


def float_accuracy(build: Path, x, y, steps: int, batch: int = 500) -> float:
    from snncc.builds import load_float_graph
    from snncc.reference.float_sim import run_float

    fg = load_float_graph(build)
    ok = 0
    for i in range(0, len(x), batch):
        out = run_float(fg, x[i:i + batch], steps)
        ok += int((out.sum(1).reshape(len(out), -1).argmax(-1) == y[i:i + batch]).sum())
    return ok / len(x)


def figures(g, x_ops) -> dict:
    from snncc.reports.pruning import pruning_section
    from snncc.reports.report import build_report

    rep = build_report(g, x_ops, "test")
    f = pruning_section({"criterion": "", "groups": []}, rep, rep)["after"]
    return {"params": f["params"], "model_size_kib": round(f["model_size_bytes"] / 1024, 2),
            "memory_kib": round(f["memory_bytes"] / 1024, 2), "macs": round(f["macs_per_sample"]),
            "acs": round(f["acs_per_sample"]),
            "energy_uj": {k: round(v, 4) for k, v in f["energy_uj_per_sample"].items()}}


def table(args, model, xc, x, y, save=None) -> list[dict]:
    """One row per (criterion, ratio) x bits; ``save(row)`` after each (results merge)."""
    from snncc.builds import load_build

    rows, floats = [], {}
    cases = [("none", 0.0)] + [(c, r) for c in args.criteria for r in args.ratios]
    with tempfile.TemporaryDirectory() as tmp:
        for (crit, ratio), bits in itertools.product(cases, args.bits):
            out = Path(tmp) / f"{crit}_{ratio}_{bits}"
            b, sec = compile_pruned(model, crit, ratio, bits, args.steps, xc, out, args.seed)
            if (crit, ratio) not in floats:
                floats[crit, ratio] = float_accuracy(out, x, y, args.steps)
            t0 = time.perf_counter()
            acc = accuracy(out, b.graph, x, y, args.check)
            kept = [f"{'+'.join(g['layers'])} {g['kept']}/{g['channels']}"
                    for g in (load_build(out)[1].get("prune") or {}).get("groups", [])]
            row = {"criterion": crit, "ratio": ratio, "bits": bits, "steps": args.steps,
                   "float_accuracy": round(floats[crit, ratio], 4), "int_accuracy": round(acc, 4),
                   **figures(b.graph, x[:args.ops_samples]), "kept": kept,
                   "compile_seconds": round(sec, 1), "eval_seconds": round(time.perf_counter() - t0, 1),
                   "test_samples": len(x)}
            rows.append(row)
            if save is not None:
                save(row)
            print(f"{crit:>6} r={ratio:<4} {bits}b  float {row['float_accuracy']:.4f}  int {acc:.4f}  "
                  f"params {row['params']:>6}  size {row['model_size_kib']:>6} KiB  ACs {row['acs']:>9}  "
                  f"loihi {row['energy_uj'].get('loihi', float('nan')):.4f} uJ", flush=True)
    return rows


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(float)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def stability(args, model) -> dict:
    """Per criterion: scores of every pruned group on disjoint calibration sets, compared pairwise."""
    from snncc import data
    from snncc.config import CompileConfig
    from snncc.frontends.pytorch import trace
    from snncc.passes.prune import PruneConfig, plan

    xtr, _ = data.load("fashion-mnist", "train")
    n = args.calib_n
    sets = [xtr[i * n:(i + 1) * n] for i in range(args.subsets)]
    g = trace(model, (1, 28, 28), CompileConfig(steps=args.steps))
    out = {}
    for crit in ("svs", "sca", "l1", "random"):
        plans = [plan(g, PruneConfig(enabled=True, criterion=crit, ratio=0.5, seed=i, skip=["last"]), s, progress=False)
                 for i, s in enumerate(sets)]
        rho, jac = [], []
        for p, q in itertools.combinations(plans, 2):
            for gp, gq in zip(p["groups"], q["groups"]):
                rho.append(spearman(np.asarray(gp["scores"]), np.asarray(gq["scores"])))
                a, b = set(gp["keep"]), set(gq["keep"])
                jac.append(len(a & b) / len(a | b))
        out[crit] = {"spearman_mean": round(float(np.nanmean(rho)), 4), "spearman_min": round(float(np.nanmin(rho)), 4),
                     "kept_jaccard_mean": round(float(np.mean(jac)), 4), "kept_jaccard_min": round(float(np.min(jac)), 4),
                     "pairs": len(rho)}
        print(f"stability {crit:>6}: Spearman mean {out[crit]['spearman_mean']:.3f} (min {out[crit]['spearman_min']:.3f})"
              f"  kept-set Jaccard mean {out[crit]['kept_jaccard_mean']:.3f} (min {out[crit]['kept_jaccard_min']:.3f})"
              f"  over {len(rho)} group-pairs", flush=True)
    return {"subsets": args.subsets, "samples_per_subset": n, "steps": args.steps, "criteria": out,
            "note": "random uses a different seed per subset: its figures are the chance level"}


def merge(rows: list[dict], stab: dict | None, args) -> None:
    doc = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    old = {(r["criterion"], r["ratio"], r["bits"], r["steps"]): r for r in doc.get("rows", [])}
    old.update({(r["criterion"], r["ratio"], r["bits"], r["steps"]): r for r in rows})
    doc["rows"] = sorted(old.values(), key=lambda r: (r["steps"], r["bits"], r["criterion"] != "none",
                                                       r["criterion"], r["ratio"]))
    if stab is not None:
        doc["stability"] = stab
    doc["machine"] = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()}
    doc["method"] = __doc__.split("\n\n")[1].strip()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {RESULTS}")


def markdown(doc: dict) -> str:
    """The results as two markdown tables (rows, stability)."""
    head = ("| criterion | ratio | weights | float acc. | integer acc. | params | size (KiB, Eq. 16) | "
            "memory (KiB, Eq. 28) | ACs / sample | Loihi energy (uJ) | channels kept |\n" + "|---" * 11 + "|")
    lines = [head]
    order = {"none": 0, "svs": 1, "sca": 2, "l1": 3, "random": 4}
    for r in sorted(doc.get("rows", []), key=lambda r: (-r["bits"], order.get(r["criterion"], 9), r["ratio"])):
        lines.append(f"| {r['criterion']} | {r['ratio']:g} | {r['bits']}-bit | {100 * r['float_accuracy']:.2f} % | "
                     f"{100 * r['int_accuracy']:.2f} % | {r['params']} | {r['model_size_kib']} | {r['memory_kib']} | "
                     f"{r['acs']} | {r['energy_uj']['loihi']:.2f} | {'; '.join(r['kept']) or 'all'} |")
    st = doc.get("stability", {})
    lines += ["", "| criterion | Spearman of scores, mean (min) | Jaccard of kept sets at r = 0.5, mean (min) |",
              "|---|---|---|"]
    for c, v in st.get("criteria", {}).items():
        lines.append(f"| {c} | {v['spearman_mean']:.3f} ({v['spearman_min']:.3f}) | "
                     f"{v['kept_jaccard_mean']:.3f} ({v['kept_jaccard_min']:.3f}) |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--criteria", default="l1,sca,svs,random", type=lambda s: s.split(","))
    ap.add_argument("--ratios", default="0.25,0.5,0.75", type=lambda s: [float(v) for v in s.split(",")])
    ap.add_argument("--bits", default="8,4", type=lambda s: [int(v) for v in s.split(",")])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--calib", default="fashion-mnist:256", help="calibration data of svs/sca (train split)")
    ap.add_argument("--n", type=int, default=10000, help="test images (default: the full split)")
    ap.add_argument("--check", type=int, default=100, help="images checked C == reference per build")
    ap.add_argument("--ops-samples", type=int, default=1000, help="test images the operation counts use")
    ap.add_argument("--subsets", type=int, default=4, help="disjoint calibration sets for stability")
    ap.add_argument("--calib-n", type=int, default=256, help="images per stability calibration set")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random criterion")
    ap.add_argument("--stability-only", action="store_true")
    ap.add_argument("--no-stability", action="store_true")
    ap.add_argument("--table", action="store_true", help="print the results file as markdown tables and stop")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown(json.loads(RESULTS.read_text())))
        return

    import torch

    from snncc import data
    from snncc.compiler import load_torch_model

    torch.set_num_threads(1)
    model = load_torch_model(EXAMPLE)
    stab = None if args.no_stability else stability(args, model)
    merge([], stab, args)
    if not args.stability_only:
        xc, _ = data.load_spec(args.calib)
        x, y = data.load("fashion-mnist", "test")
        table(args, model, xc, x[:args.n], y[:args.n], save=lambda row: merge([row], None, args))


if __name__ == "__main__":
    main()
