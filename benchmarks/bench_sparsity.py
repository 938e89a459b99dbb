"""SpQuant-SNN's sparsity masks (section 4.3) on the shipped ternary-membrane example:
accuracy and measured operations with no mask, each mask alone and all three, at the
paper's settings and at one more; the C runtime's time per image with and without masks.

    python benchmarks/bench_sparsity.py [--images 1000] [--model examples/fashion_mnist/model_a.pt]

Method. Every row compiles the model with its trained options (``model_a.toml``) plus the
row's mask options (``apply_masks``: spatial levels calibrated on the first --calib train
images), then runs the numpy reference interpreter (the spec; c and onnx are bit-exact
with it) on the first --images test images:

* accuracy: argmax of the readout at the last step;
* measured operations per image, summed over the T steps and every layer
  (``snncc.reports.report.build_report``): ACs (binary event x fan-out) + MACs (non-binary
  input x fan-out) + neuron updates actually run (the spatial mask's skipped updates are
  not run); the reduction is dense-row / row;
* SpQuant-SNN Eq. 30 operations (dense and sparse, S_c and S_p measured).

C time: the emitted C99 harness (cc -O2, one process, one core, ``--output-only``) on the
same images, the best of --rounds interleaved rounds, wall and CPU time; the C output is
checked equal to the reference's (every step) for each timed build. Exit status 1 if the
issue's target (all three masks at the paper's settings: <= 0.5 point accuracy loss and
>= 2x fewer measured operations) is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples" / "fashion_mnist"
MODEL, MASKED, GATES, GATES_MORE = EX / "model_a.pt", EX / "model_s.pt", EX / "model_s_gates.npz", \
    EX / "model_s_gates_050.npz"
PAPER = {"neg_mask": True, "spatial_sparsity": 0.35, "channel_threshold": 0.47}
MORE = {"neg_mask": True, "spatial_sparsity": 0.5, "channel_threshold": 0.3}
#: (label, model key, mask options, timed in C)
POST = [("no mask", "a", {}, True), ("negative (Eq. 19-20)", "a", {"neg_mask": True}, False),
        ("spatial 0.35 (Eq. 21-22)", "a", {"spatial_sparsity": 0.35}, False),
        ("channel 0.47, identity gate (Eq. 23)", "a", {"channel_threshold": 0.47}, False),
        ("all three, paper (0.35, 0.47)", "a", PAPER, True),
        ("spatial 0.5", "a", {"spatial_sparsity": 0.5}, False),
        ("channel 0.3, identity gate", "a", {"channel_threshold": 0.3}, False),
        ("all three, more (0.5, 0.3)", "a", MORE, False)]


def trained_rows(gates: Path, more: Path) -> list:
    """The rows of the model fine-tuned with the masks (train_sparse.py): its trained gates."""
    g, m = {"channel_gates": str(gates)}, {"channel_gates": str(more)}
    return [("trained: no mask", "s", {}, False), ("trained: negative", "s", {"neg_mask": True}, False),
            ("trained: spatial 0.35", "s", {"spatial_sparsity": 0.35}, False),
            ("trained: channel, trained gate 0.47", "s", g, False),
            ("trained: all three, paper (0.35, 0.47)", "s", {"neg_mask": True, "spatial_sparsity": 0.35, **g}, True),
            ("trained: spatial 0.5", "s", {"spatial_sparsity": 0.5}, False),
            ("trained: channel, trained gate 0.5", "s", m, False),
            ("trained: all three, more (0.5, 0.5)", "s", {"neg_mask": True, "spatial_sparsity": 0.5, **m}, True)]


#: images per reference run: a run keeps every layer's spikes of its images (int64), which
#: for 10000 images at once took 22 GB
BATCH = 500


def reference_runs(g, x):
    """The reference's runs of x, BATCH images at a time (one at a time in memory)."""
    from snncc.reference import interpreter as R

    return (R.run(g, x[i:i + BATCH]) for i in range(0, len(x), BATCH))


def predictions(g, x) -> np.ndarray:
    """The reference's class predictions."""
    from snncc.reference import interpreter as R

    return np.concatenate([R.predict(g, r) for r in reference_runs(g, x)])


def measure(model: Path, base: dict, masks: dict, x, y, out: Path, calib: str) -> dict:
    from snncc.compiler import compile as do_compile
    from snncc.reports.report import build_report

    b = do_compile(str(model), (1, 1, 28, 28), target="c", out=str(out), config={**base, **masks,
                                                                                 "mask_calib": calib})
    g = b.graph
    correct = predictions(g, x) == y
    acc = float(correct.mean())
    rep = build_report(g, x, "test")
    o = rep["ops"]
    return {"accuracy": acc, "acs": o["acs_per_sample"], "macs": o["macs_per_sample"],
            "updates": o["neuron_updates_per_sample"], "spikes": o["spikes_per_sample"],
            "ops": o["acs_per_sample"] + o["macs_per_sample"] + o["neuron_updates_per_sample"],
            "eq30_dense": rep["eq30"]["dense_per_sample"], "eq30_sparse": rep["eq30"]["sparse_per_sample"],
            "levels": {n: op.spatial_level for n, op in g.items() if getattr(op, "spatial_level", -1) >= 0},
            "energy_45nm_int_uj": rep["energy"]["45nm_int"]["snn_uj_per_sample"], "build": str(out),
            "correct": correct}  # per image (not written to --json)


def time_c(builds: dict[str, Path], x: np.ndarray, rounds: int) -> dict[str, dict]:
    """Best-of-rounds wall and CPU seconds per image of each build's C harness (interleaved),
    after checking its output equals the reference's."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_c_speed import c_runner

    from snncc.builds import load_build
    from snncc.targets.c.runner import parse_output

    runs = {}
    for label, b in builds.items():
        g, _ = load_build(b)
        man = json.loads((b / "c" / "c_manifest.json").read_text())
        runs[label] = c_runner(b, x, man)
        _, data = runs[label](["--output-only"])
        got = parse_output(data, man, False, output_only=True)["output"]
        if not np.array_equal(got, np.concatenate([r["output"] for r in reference_runs(g, x)])):
            raise SystemExit(f"C output differs from the reference for {label}")
    best = {k: (float("inf"), float("inf")) for k in runs}
    for _ in range(rounds):
        for label, run in runs.items():
            (dt, dc), _ = run(["--output-only"])
            best[label] = (min(best[label][0], dt), min(best[label][1], dc))
    return {k: {"wall_ms_per_image": 1e3 * w / len(x), "cpu_ms_per_image": 1e3 * c / len(x)} for k, (w, c) in
            best.items()}


def table(res: dict, timing: dict) -> str:
    ref = res["no mask"]
    lines = ["| masks | accuracy | drop (points) | measured ops / image | reduction | Eq. 30 sparse / dense | "
             "C ms / image (wall, CPU) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, r in res.items():
        t = timing.get(label)
        lines.append(f"| {label} | {100 * r['accuracy']:.2f} % | {100 * (ref['accuracy'] - r['accuracy']):+.2f} | "
                     f"{r['ops'] / 1e6:.3f} M | {ref['ops'] / r['ops']:.2f}x | "
                     f"{r['eq30_sparse'] / 1e6:.3f} M / {r['eq30_dense'] / 1e6:.3f} M "
                     f"({r['eq30_dense'] / r['eq30_sparse']:.2f}x) | "
                     + (f"{t['wall_ms_per_image']:.3f}, {t['cpu_ms_per_image']:.3f} |" if t else "- |"))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3, help="C timing rounds (0: no C timing)")
    ap.add_argument("--calib", default="fashion-mnist:64")
    ap.add_argument("--model", default=str(MODEL), help="the trained model without masks (the baseline)")
    ap.add_argument("--masked-model", default=str(MASKED), help="the model fine-tuned with the masks (optional)")
    ap.add_argument("--gates", default=str(GATES), help="its trained channel gates at the paper's theta")
    ap.add_argument("--gates-more", default=str(GATES_MORE), help="the same gates at the other theta")
    ap.add_argument("--json", default=None, help="write the figures here")
    ap.add_argument("--val", type=int, default=0,
                    help="measure on the last N training images (train_sparse.py --val N's held-out split) "
                         "instead of the test images: the first --images of them; for choosing a recipe")
    ap.add_argument("--only", default="", help="only the rows whose label holds this text (and the baseline)")
    args = ap.parse_args(argv)
    import torch

    from snncc.data import load_test_spec

    torch.set_num_threads(1)
    models = {"a": Path(args.model), "s": Path(args.masked_model)}
    bases = {}
    for k, m in models.items():
        if m.is_file():
            base = tomllib.loads(m.with_suffix(".toml").read_text())["quantization"]
            bases[k] = {f: v for f, v in base.items() if f not in ("neg_mask", "spatial_sparsity",
                                                                    "channel_threshold", "channel_gates")}
    rows = POST + (trained_rows(Path(args.gates), Path(args.gates_more)) if "s" in bases else [])
    rows = [r for r in rows if r[0] == "no mask" or not args.only or args.only in r[0]]
    if args.val:  # the trainer's own val split (snncc.train.data.load_dataset)
        from snncc.errors import DatasetError
        from snncc.train.data import load_dataset
        try:
            d = load_dataset("fashion-mnist", val=args.val)
        except DatasetError as e:
            raise SystemExit(f"--val {args.val}: {e}")
        if not 0 < args.images <= args.val:
            raise SystemExit(f"--val {args.val} --images {args.images}: need 0 < images <= val")
        x, y = d["x_val"][:args.images], d["y_val"][:args.images]
    else:
        _, x, y = load_test_spec(f"fashion-mnist:{args.images}", (1, 28, 28))
    tmp = Path(tempfile.mkdtemp(prefix="snncc-sparsity-"))
    res, builds = {}, {}
    for i, (label, key, masks, timed) in enumerate(rows):
        t0 = time.perf_counter()
        res[label] = measure(models[key], bases[key], masks, x, y, tmp / f"b{i}", args.calib)
        if timed:
            builds[label] = Path(res[label]["build"])
        print(f"{label}: {res[label]['accuracy']:.4f}, {res[label]['ops']:.4g} ops "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    timing = time_c(builds, x, args.rounds) if args.rounds else {}  # --rounds 0: no C build timed
    print(f"\n{args.images} Fashion-MNIST {'val (held-out train)' if args.val else 'test'} images, load {os.getloadavg()}\n")
    print(table(res, timing))
    if args.json:
        rows_out = {k: {f: v for f, v in r.items() if f != "correct"} for k, r in res.items()}
        Path(args.json).write_text(json.dumps({"images": args.images, "rows": rows_out, "c_time": timing}, indent=1))
    paper = res.get("trained: all three, paper (0.35, 0.47)", res.get("all three, paper (0.35, 0.47)"))
    if paper is None:
        return 0
    drop = 100 * (res["no mask"]["accuracy"] - paper["accuracy"])
    cut = res["no mask"]["ops"] / paper["ops"]
    ok = drop <= 0.5 and cut >= 2.0
    # the drop's standard error, paired over the images (both rows see the same ones)
    se = 100 * float(np.std(res["no mask"]["correct"].astype(float) - paper["correct"], ddof=1)) / np.sqrt(len(y))
    print(f"\ntarget (all three at the paper's settings: drop <= 0.5 point, >= 2x fewer measured ops): "
          f"drop {drop:.2f} (standard error {se:.2f}, paired over {len(y)} images), {cut:.2f}x -> "
          f"{'met' if ok else 'MISSED'}" + (" on these images; the drop is not resolved to 0.5 point here "
                                            "(--images 10000)" if ok and drop + 2 * se > 0.5 else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
