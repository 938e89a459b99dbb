"""Accuracy of COMPILED integer models under low-bit weights: round-to-nearest vs ReScaW vs BWR.

Every figure is the reference interpreter's prediction (snncc.reference.interpreter.run
+ predict on the compiled integer graph) on the full 10k Fashion-MNIST test split; the
float figure is the float graph (snncc.reference.float_sim) on the same images.

    python benchmarks/bench_quant.py                          # all models, bits, methods, T=4
    python benchmarks/bench_quant.py --models example --bits 2 --methods rtn,bwr
    python benchmarks/bench_quant.py --steps 2 --bits 4,2     # another time-step count

Methods (weights only; neurons, thresholds and membranes as the compiler makes them):

  rtn       uniform symmetric, scale max|w| / (2^(b-1) - 1), round to nearest (the default compiler)
  rtn-mse   the same grid with BRECQ's clipping search (lp error, p = 2.4): isolates the scale
  rescaw    QP-SNN ReScaW (gamma = mean|W|, the paper's default; per output channel), round to nearest
  rescaw-max  ReScaW with gamma = max|W| (no clipping; 2^b odd levels, no zero)
  bwr       learned rounding (snncc.passes.bwr) on the rtn-mse grid, 1024 calibration images

Models: ``example`` = examples/fashion_mnist/model.pt (the shipped CNN with a residual
block); ``vgg`` = a 4-conv VGG-style SNN (soft reset, beta 0.8) trained here for a few
epochs on 2 CPU cores and cached (``--cache``). Results merge into
benchmarks/results/quant.json (one row per model, T, bits, method, layer-bits setting).
BWR fits run in a child process each, so their time and peak memory are their own.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _results import record

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "quant.json"
EXAMPLE = ROOT / "examples" / "fashion_mnist" / "model.pt"

METHODS = {
    "rtn": dict(quantizer="uniform", weight_clip="max"),
    "rtn-mse": dict(quantizer="uniform", weight_clip="mse"),
    "rescaw": dict(quantizer="rescaw", rescaw_gamma="mean"),
    "rescaw-max": dict(quantizer="rescaw", rescaw_gamma="max"),
    "bwr": dict(quantizer="uniform"),
}


# ----------------------------------------------------------------------------- models
def build_vgg():
    """VGG-style SNN for 1x28x28: 2 x (conv-BN-LIF) at 28x28, maxpool, 2 x (conv-BN-LIF)
    at 14x14, avgpool, linear readout. Soft reset, beta 0.8."""
    from torch import nn

    from snncc.nn import LIF

    def lif():
        return LIF(beta=0.8, threshold=1.0, reset="subtract")

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), lif(),
        nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), lif(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), lif(),
        nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), lif(),
        nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def train_vgg(path: Path, epochs: int, steps: int = 4, seed: int = 0) -> dict:
    """Adam 2e-3, cosine schedule, batch 128, CE on time-mean logits (like train.py)."""
    import torch
    import torch.nn.functional as F

    import snncc.nn as snn
    from snncc import data

    torch.manual_seed(seed)
    xtr, ytr = data.load("fashion-mnist", "train")
    x = torch.from_numpy(xtr).float().div_(255.0)
    y = torch.from_numpy(ytr)
    model = build_vgg()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
    nb = math.ceil(len(x) / 128)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * nb)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        tot, ok = 0.0, 0
        for b in range(nb):
            idx = perm[b * 128:(b + 1) * 128]
            logits = snn.run(model, x[idx], steps=steps).mean(1)
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
            ok += int((logits.argmax(1) == y[idx]).sum())
        print(f"vgg epoch {ep + 1}/{epochs}: loss {tot / len(x):.4f} train acc {ok / len(x):.4f} "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    snn.reset(model)
    model = model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model, path)
    info = {"epochs": epochs, "train_seconds": round(time.perf_counter() - t0, 1),
            "threads": torch.get_num_threads(), "seed": seed}
    path.with_suffix(".json").write_text(json.dumps(info, indent=1))
    return info


def model_path(name: str, cache: Path) -> Path:
    if name == "example":
        return EXAMPLE
    if name == "vgg":
        return cache / "vgg_fmnist.pt"
    raise SystemExit(f"unknown model {name!r}")


def load_model(name: str, cache: Path, vgg_epochs: int):
    from snncc.compiler import load_torch_model

    p = model_path(name, cache)
    if not p.is_file():
        if name != "vgg":
            raise SystemExit(f"{p} does not exist: train it with examples/fashion_mnist/train.py")
        print(f"training the VGG-style SNN ({vgg_epochs} epochs) into {p}", flush=True)
        train_vgg(p, vgg_epochs)
    return load_torch_model(p)


# ------------------------------------------------------------------------- evaluation
def int_accuracy(g, x, y, batch: int = 500) -> float:
    from snncc.reference import interpreter as R

    ok = 0
    for i in range(0, len(x), batch):
        ok += int((R.predict(g, R.run(g, x[i:i + batch])) == y[i:i + batch]).sum())
    return ok / len(x)


def float_accuracy(fg, x, y, steps: int, batch: int = 500) -> float:
    from snncc.reference.float_sim import run_float

    ok = 0
    for i in range(0, len(x), batch):
        out = run_float(fg, x[i:i + batch], steps)
        ok += int((out.sum(1).reshape(len(out), -1).argmax(-1) == y[i:i + batch]).sum())
    return ok / len(x)


def make_cfg(method: str, bits: int, steps: int, first_last: int | None):
    from snncc.config import CompileConfig

    return CompileConfig(steps=steps, weight_bits=bits, first_layer_bits=first_last,
                         last_layer_bits=first_last, **METHODS[method])


def fit_bwr(args) -> None:
    """Child process: BWR on one (model, T, bits); writes the float graph + stats."""
    import torch

    from snncc import data
    from snncc.compiler import trace
    from snncc.ir import serialize
    from snncc.passes.bwr import BWRConfig, bwr, peak_rss_mb

    torch.set_num_threads(args.threads)
    out = Path(args.fit_bwr)
    model = load_model(args.models, Path(args.cache), args.vgg_epochs)
    fl = args.first_last_bits
    cfg = make_cfg("bwr", int(args.bits), args.steps, fl)
    fg = trace(model, (1, 28, 28), cfg)
    rss0 = peak_rss_mb()
    xc, _ = data.load_spec(args.calib)
    t0 = time.perf_counter()
    g = bwr(fg, xc, cfg, bwr_config=BWRConfig(iters=args.iters, calib=args.calib), progress=not args.quiet)
    sec = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    doc, arr = serialize.to_dict(g)
    (out / "float_model.json").write_text(serialize.dump_json(doc))
    serialize.write_npz(out / "float_model.npz", arr)
    (out / "bwr.json").write_text(json.dumps({"seconds": round(sec, 1), "peak_rss_mib": round(peak_rss_mb(), 1),
                                              "rss_before_mib": round(rss0, 1),
                                              "threads": torch.get_num_threads(), "blocks": g.meta["bwr"]["blocks"]},
                                             indent=1))


def bwr_graph(model: str, bits: int, args):
    from snncc.compiler import load_float_graph

    fl = args.first_last_bits
    d = Path(args.cache) / f"bwr_{model}_T{args.steps}_b{bits}_fl{fl or 0}_it{args.iters}"
    if not (d / "bwr.json").is_file():
        cmd = [sys.executable, __file__, "--fit-bwr", str(d), "--models", model, "--bits", str(bits),
               "--steps", str(args.steps), "--iters", str(args.iters), "--calib", args.calib,
               "--threads", str(args.threads), "--cache", args.cache, "--vgg-epochs", str(args.vgg_epochs)]
        if fl:
            cmd += ["--first-last-bits", str(fl)]
        if args.quiet:
            cmd.append("--quiet")
        subprocess.run(cmd, check=True)
    return load_float_graph(d), json.loads((d / "bwr.json").read_text())


# ------------------------------------------------------------------------------ table
def load_results() -> dict:
    if RESULTS.is_file():
        return json.loads(RESULTS.read_text())
    return {"meta": {}, "float": {}, "results": []}


def key(r: dict) -> tuple:
    return (r["model"], r["steps"], r["bits"], r["method"], r.get("first_last_bits"), r.get("bwr_iters"))


def label(r: dict) -> str:
    return r["method"] if r.get("bwr_iters") in (None, 2000) else f"{r['method']} ({r['bwr_iters']} it)"


def table(res: dict) -> str:
    rows = sorted(res["results"], key=lambda r: (r["model"], r["steps"], r.get("first_last_bits") or 0,
                                                 -r["bits"], list(METHODS).index(r["method"]),
                                                 r.get("bwr_iters") or 0))
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["model"], r["steps"], r.get("first_last_bits")), {}).setdefault(r["bits"], {})[label(r)] = r
    lines = []
    for (model, steps, fl), by_bits in groups.items():
        f = res["float"].get(f"{model}/T{steps}")
        lines.append(f"\n{model}, T={steps}, " + (f"first/last layer {fl} bits" if fl else "all layers quantized")
                     + (f", float {100 * f:.2f}%" if f is not None else ""))
        meths = sorted({m: r for v in by_bits.values() for m, r in v.items()}.items(),
                       key=lambda mr: (list(METHODS).index(mr[1]["method"]), mr[1].get("bwr_iters") or 0))
        meths = [m for m, _ in meths]
        lines.append("| bits | " + " | ".join(meths) + " |")
        lines.append("|---:|" + "---:|" * len(meths))
        for bits, ms in sorted(by_bits.items(), reverse=True):
            cells = []
            for m in meths:
                r = ms.get(m)
                cells.append("" if r is None else f"{100 * r['int_accuracy']:.2f} ({100 * (r['int_accuracy'] - f):+.2f})"
                             if f is not None else f"{100 * r['int_accuracy']:.2f}")
            lines.append(f"| {bits} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    global RESULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="example,vgg")
    p.add_argument("--bits", default="8,4,3,2")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--first-last-bits", type=int, default=None,
                   help="keep the first and last synapses at this width (default: all layers at --bits)")
    p.add_argument("--ntest", type=int, default=10000)
    p.add_argument("--iters", type=int, default=2000, help="BWR iterations per block")
    p.add_argument("--calib", default="fashion-mnist:1024")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", default="/tmp/snncc_bench", help="trained VGG and BWR fits")
    p.add_argument("--vgg-epochs", type=int, default=3)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--results", default=str(RESULTS), help="results JSON (merged)")
    p.add_argument("--table", action="store_true", help="print the table of quant.json and exit")
    p.add_argument("--fit-bwr", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    RESULTS = Path(args.results)
    if args.table:
        print(table(load_results()))
        return
    if args.fit_bwr:
        fit_bwr(args)
        return

    import torch

    from snncc import data
    from snncc.compiler import compile_graph, trace

    torch.set_num_threads(args.threads)
    x, y = data.load("fashion-mnist", "test")
    x, y = x[:args.ntest], y[:args.ntest]
    res = load_results()
    res["meta"] = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs", "threads": args.threads,
                   "torch": torch.__version__, "numpy": np.__version__, "test_images": len(x),
                   "calibration": args.calib, "bwr_iters": args.iters,
                   "evaluation": "reference interpreter on the compiled integer graph"}
    index = {key(r): i for i, r in enumerate(res["results"])}
    for model_name in args.models.split(","):
        model = load_model(model_name, Path(args.cache), args.vgg_epochs)
        fkey = f"{model_name}/T{args.steps}"
        cfg0 = make_cfg("rtn", 8, args.steps, None)
        fg = trace(model, (1, 28, 28), cfg0)
        if fkey not in res["float"] or len(x) != 10000:
            t0 = time.perf_counter()
            res["float"][fkey] = float_accuracy(fg, x, y, args.steps)
            print(f"{fkey}: float {100 * res['float'][fkey]:.2f}% ({time.perf_counter() - t0:.0f} s)", flush=True)
        for bits in [int(b) for b in args.bits.split(",")]:
            for method in args.methods.split(","):
                cfg = make_cfg(method, bits, args.steps, args.first_last_bits)
                row = {"model": model_name, "steps": args.steps, "bits": bits, "method": method,
                       "first_last_bits": args.first_last_bits, "test_images": len(x)}
                t0 = time.perf_counter()
                if method == "bwr":
                    g_in, st = bwr_graph(model_name, bits, args)
                    row.update(bwr_seconds=st["seconds"], bwr_peak_rss_mib=st["peak_rss_mib"],
                               bwr_threads=st["threads"], bwr_iters=args.iters,
                               bwr_blocks=[{k: b[k] for k in ("block", "weights", "rec_rtn", "rec_bwr", "kept",
                                                               "changed_vs_rtn")} for b in st["blocks"]])
                else:
                    g_in = fg
                g = compile_graph(g_in, cfg)
                row["int_accuracy"] = int_accuracy(g, x, y)
                row["float_accuracy"] = res["float"][fkey]
                row["eval_seconds"] = round(time.perf_counter() - t0, 1)
                print(f"{model_name} T={args.steps} {bits}-bit {method:8s}: {100 * row['int_accuracy']:.2f}% "
                      f"(float {100 * row['float_accuracy']:.2f}%, {row['eval_seconds']:.0f} s)", flush=True)
                record(res, index, row, key, RESULTS)
    print(table(res))


if __name__ == "__main__":
    main()
