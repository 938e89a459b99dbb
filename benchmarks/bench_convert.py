"""SNNQ's flow on the shipped ANN: converted SNN accuracy of the COMPILED integer model.

Model: examples/fashion_mnist_ann/model.pt (a small VGG-style CNN with QCFS activations,
trained by train.py). Every SNN figure is the reference interpreter
(snncc.reference.interpreter.run + predict) on the compiled integer graph, on the full
10k Fashion-MNIST test split unless --ntest says otherwise; the ANN figure is the torch
ANN on the same images.

    python benchmarks/bench_convert.py                                 # the default plan
    python benchmarks/bench_convert.py --bits 8 --steps 2,4,8 --methods rtn
    python benchmarks/bench_convert.py --bits 2 --methods bwr-ann --tnp 4:4,2:6
    python benchmarks/bench_convert.py --table                         # print the table

Methods (weights; thresholds from the QCFS clips, v_init = theta / 2, subtract reset):

  rtn      uniform symmetric round-to-nearest (the compiler's default quantizer)
  bwr-ann  BWR in SNNQ's ANN mode: block reconstruction on the ANN before conversion
  bwr-snn  BWR in snncc's SNN mode: spiking blocks reconstructed over T_fit steps

TNP rows (``--tnp P:T``): P presimulation steps, then T counted steps; the latency is
P + T. A BWR fit is made once per (method, bits) at T_fit = --bwr-steps and reused for
every T (cached under --cache). Rows merge into benchmarks/results/convert.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from _results import record

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "convert.json"
MODEL = ROOT / "examples" / "fashion_mnist_ann" / "model.pt"


def ann_accuracy(model, x, y) -> float:
    import torch

    with torch.no_grad():
        out = torch.cat([model(torch.as_tensor(x[i:i + 1000].astype(np.float32)) / 255)
                         for i in range(0, len(x), 1000)])
    return float((out.argmax(1).numpy() == y).mean())


def int_accuracy(g, x, y, batch: int = 500) -> float:
    from snncc.reference import interpreter as R

    ok = 0
    for i in range(0, len(x), batch):
        ok += int((R.predict(g, R.run(g, x[i:i + batch])) == y[i:i + batch]).sum())
    return ok / len(x)


def converted(model):
    from snncc.config import CompileConfig
    from snncc.conversion import convert

    return convert(model, (1, 28, 28), CompileConfig())


def bwr_graph(fg, method: str, bits: int, args) -> tuple:
    """The float graph after BWR (cached), and its fit statistics."""
    from snncc import data
    from snncc.compiler import load_float_graph
    from snncc.config import CompileConfig
    from snncc.ir import serialize
    from snncc.passes.bwr import BWRConfig, bwr

    d = Path(args.cache) / f"{method}_b{bits}_T{args.bwr_steps}_it{args.iters}"
    if not (d / "bwr.json").is_file():
        cfg = CompileConfig(steps=args.bwr_steps, weight_bits=bits)
        xc, _ = data.load_spec(args.calib)
        t0 = time.perf_counter()
        g = bwr(fg, xc, cfg, bwr_config=BWRConfig(mode=method.split("-")[1], iters=args.iters, calib=args.calib),
                progress=not args.quiet)
        sec = time.perf_counter() - t0
        d.mkdir(parents=True, exist_ok=True)
        doc, arr = serialize.to_dict(g)
        (d / "float_model.json").write_text(serialize.dump_json(doc))
        serialize.write_npz(d / "float_model.npz", arr)
        (d / "bwr.json").write_text(json.dumps({"seconds": round(sec, 1), "iters": args.iters,
                                                "fit_steps": args.bwr_steps}, indent=1))
    return load_float_graph(d), json.loads((d / "bwr.json").read_text())


def key(r: dict) -> tuple:
    return (r["method"], r["bits"], r["presim"], r["steps"], r["test_images"])


def load_results() -> dict:
    if RESULTS.is_file():
        return json.loads(RESULTS.read_text())
    return {"meta": {}, "ann": {}, "results": []}


def table(res: dict) -> str:
    """Markdown: one row per (method, bits, presim), one column per latency P + T."""
    rows: dict = {}
    lats = sorted({r["presim"] + r["steps"] for r in res["results"]})
    for r in res["results"]:
        rows.setdefault((r["method"], -r["bits"], r["presim"], r["test_images"]), {})[r["presim"] + r["steps"]] = r
    ann = res.get("ann", {})
    out = [f"ANN (torch, float): {100 * v:.2f} % on {k} test images" for k, v in sorted(ann.items())]
    out += ["", "| method | weight bits | TNP presim P | " + " | ".join(f"P+T={t}" for t in lats) + " | test images | ANN on them |",
            "|---|---|---|" + "---|" * len(lats) + "---|---|"]
    for (method, nb, p, n), cells in sorted(rows.items(), key=lambda kv: (kv[0][0] != "rtn", kv[0])):
        vals = [f"{100 * cells[t]['int_accuracy']:.2f}" if t in cells else "-" for t in lats]
        out.append(f"| {method} | {-nb} | {p or '-'} | " + " | ".join(vals) + f" | {n} | "
                   + (f"{100 * ann[str(n)]:.2f} |" if str(n) in ann else "- |"))
    return "\n".join(out)


def plan(args) -> list[tuple]:
    """(method, bits, presim, steps) rows to measure, in the order given."""
    rows = []
    for bits in [int(b) for b in args.bits.split(",")]:
        for method in args.methods.split(","):
            rows += [(method, bits, 0, int(t)) for t in args.steps.split(",") if t]
            for pt in filter(None, args.tnp.split(",")):
                p, t = (int(v) for v in pt.split(":"))
                rows.append((method, bits, p, t))
    return rows


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bits", default="8,4,2")
    p.add_argument("--methods", default="rtn")
    p.add_argument("--steps", default="2,4,8,16,32", help="T without TNP (comma list; empty: none)")
    p.add_argument("--tnp", default="", help="TNP rows P:T (comma list), latency P + T")
    p.add_argument("--ntest", type=int, default=10000)
    p.add_argument("--iters", type=int, default=1000, help="BWR iterations per block")
    p.add_argument("--bwr-steps", type=int, default=8, help="T of the SNN-mode BWR fit")
    p.add_argument("--calib", default="fashion-mnist:1024")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default="/tmp/snncc_bench_convert")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--table", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse(argv)
    if args.table:
        print(table(load_results()))
        return
    import torch

    from snncc import data
    from snncc.compiler import compile_graph, load_torch_model
    from snncc.config import CompileConfig

    torch.set_num_threads(args.threads)
    x, y = data.load("fashion-mnist", "test")
    x, y = x[:args.ntest], y[:args.ntest]
    res = load_results()
    res["meta"] = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs", "threads": args.threads,
                   "torch": torch.__version__, "numpy": np.__version__, "calibration": args.calib,
                   "bwr_iters": args.iters, "bwr_fit_steps": args.bwr_steps, "model": str(MODEL.relative_to(ROOT)),
                   "evaluation": "reference interpreter on the compiled integer graph"}
    model = load_torch_model(MODEL)
    res["ann"][str(len(x))] = ann_accuracy(model, x, y)
    print(f"ANN: {100 * res['ann'][str(len(x))]:.2f} % ({len(x)} images)", flush=True)
    fg = converted(model)
    index = {key(r): i for i, r in enumerate(res["results"])}
    for method, bits, presim, steps in plan(args):
        row = {"method": method, "bits": bits, "presim": presim, "steps": steps, "test_images": len(x)}
        t0 = time.perf_counter()
        g_in = fg
        if method != "rtn":
            g_in, st = bwr_graph(fg, method, bits, args)
            row.update(bwr_seconds=st["seconds"], bwr_iters=st["iters"], bwr_fit_steps=st["fit_steps"])
        g = compile_graph(g_in, CompileConfig(steps=steps, weight_bits=bits, presim=presim))
        row["int_accuracy"] = int_accuracy(g, x, y)
        row["eval_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{method:8s} {bits}-bit P={presim} T={steps}: {100 * row['int_accuracy']:.2f} % "
              f"({row['eval_seconds']:.0f} s)", flush=True)
        record(res, index, row, key, RESULTS)
    print(table(res))


if __name__ == "__main__":
    main()
