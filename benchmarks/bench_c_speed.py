"""Speed of the C target on the shipped Fashion-MNIST example, side by side with PyTorch
float eager and the numpy reference interpreter, on the same test images, one thread.

    python benchmarks/bench_c_speed.py [--images 1000] [--rounds 3] [--c-repeat 3]
                                       [--batches 1,16,64,256,1000]

Runtimes (every figure is milliseconds per image, T = 4 steps, the fastest of --rounds
rounds; the rounds interleave the runtimes so that other load on the machine affects all
of them alike; in each round each C build runs --c-repeat times back to back, since its
run over all images takes about 0.3 s, which one burst of other load can double, where
PyTorch's batch-1 run takes seconds and averages such bursts out):

* C: the emitted C99 harness (``snncc_model``, built as snncc builds it: cc -O2, with GCC
  also -fvect-cost-model=dynamic, -march=native, -DSNNCC_INPUT_CACHE: the image layer's
  sums computed once per image, not at each of the T steps; one process, one core) on all
  images, timed as the wall time of the process (start-up, reading the input file and
  writing the output included), once writing every layer's spikes (the default) and once
  with ``--output-only`` (only the network output is written, where the harness has it);
  and once built without the cache (``SNNCC_INPUT_CACHE=0``, the deployed build's memory,
  as on the Cortex-M4), ``--output-only``;
* PyTorch eager (float32, ``torch.set_num_threads(1)``, ``snncc.nn.run`` under
  ``torch.inference_mode``) at batch 1 and at each batch size of --batches; the best
  batch size is the one with the lowest time per image;
* the numpy reference interpreter (``snncc.reference.interpreter.run``) in batches of 500.

Each figure is given as wall time and as CPU time (the process's user + system time; for
C that of the harness process): on a shared machine the wall time also counts waiting
for a core, the CPU time does not.

The C results are checked for equality with the reference (every layer, every step) and
the machine load (``uptime``) is printed before and after.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NO_CACHE = "C without the input cache (--output-only)"
EXAMPLE = ROOT / "examples" / "fashion_mnist" / "model.pt"


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__() if Path("/proc/loadavg").is_file() else "?"


def c_runner(build: Path, x: np.ndarray, man: dict, cache: bool = True):
    """A function running the C harness on x (all images); returns (seconds, result).
    ``cache``: the host harness as snncc builds it (-DSNNCC_INPUT_CACHE: the image layer's
    sums once per image); else a copy built with SNNCC_INPUT_CACHE=0 (the deployed memory,
    as on the Cortex-M4: the image layer's synapses run at every step)."""
    import shutil
    import struct
    from unittest import mock

    from snncc.targets.c import runner

    cdir = build / "c"
    if not cache:
        shutil.copytree(cdir, build / "c_no_cache", dirs_exist_ok=True)
        cdir = build / "c_no_cache"
    binary = cdir / "snncc_model"
    with mock.patch.dict(os.environ, {"SNNCC_INPUT_CACHE": "1" if cache else "0"}):
        if runner._stale(binary, cdir):
            runner.build(cdir)
    n, t = x.shape[0], man["steps"]
    xs = np.broadcast_to(x[:, None], (n, t) + x.shape[1:])
    tmp = Path(tempfile.mkdtemp(prefix="snncc-bench-"))
    fin = tmp / "in.bin"
    fin.write_bytes(b"SNNI" + struct.pack("<III", n, t, int(np.prod(x.shape[1:]))) + xs.astype("<i4").tobytes())

    def run(extra=()):
        fout = tmp / "out.bin"
        c0, t0 = _child_cpu(), time.perf_counter()
        subprocess.run([str(binary), str(fin), str(fout), *extra], check=True)
        dt, dc = time.perf_counter() - t0, _child_cpu() - c0
        return (dt, dc), fout.read_bytes()
    return run


def _child_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--c-repeat", type=int, default=3,
                    help="runs of each C build per round (each about 0.3 s; PyTorch's take seconds)")
    ap.add_argument("--batches", default="1,16,64,256,1000")
    ap.add_argument("--build", default=None, help="an existing build of the example (default: compile one)")
    args = ap.parse_args(argv)
    import json

    import torch

    from snncc import nn as snn
    from snncc.builds import load_build
    from snncc.compiler import compile as do_compile
    from snncc.data import load_test_spec
    from snncc.frontends.safe_load import load_model
    from snncc.reference import interpreter as R
    from snncc.targets.c.runner import parse_output

    torch.set_num_threads(1)
    print(f"machine: {os.cpu_count()} cores; load average before: {load()}")
    _, x, _ = load_test_spec(f"fashion-mnist:{args.images}", (1, 28, 28))
    build = Path(args.build) if args.build else Path(tempfile.mkdtemp(prefix="snncc-bench-")) / "fm"
    if not args.build:
        do_compile(str(EXAMPLE), target=["c"], out=str(build), config={}, example_input=(1, 28, 28))
    g, _ = load_build(build)
    man = json.loads((build / "c" / "c_manifest.json").read_text())
    steps = man["steps"]
    model = load_model(EXAMPLE).eval()
    xf = torch.from_numpy(x.astype(np.float32) / 255.0)
    batches = [int(b) for b in args.batches.split(",")]
    crun = c_runner(build, x, man)
    crun_nc = c_runner(build, x, man, cache=False) if man.get("input_cache_bytes") else None
    has_output_only = "--output-only" in (build / "c" / "main.c").read_text()

    def torch_time(bs):
        c0, t0 = time.process_time(), time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(xf), bs):
                snn.run(model, xf[i:i + bs], steps=steps)
        return time.perf_counter() - t0, time.process_time() - c0

    def ref_time():
        c0, t0 = time.process_time(), time.perf_counter()
        out = [R.run(g, x[i:i + 500]) for i in range(0, len(x), 500)]
        return (time.perf_counter() - t0, time.process_time() - c0), out

    best: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def note(key, seconds):
        best[key] = min(best.get(key, float("inf")), seconds[0] * 1e3 / len(x))
        cpu[key] = min(cpu.get(key, float("inf")), seconds[1] * 1e3 / len(x))

    ref_out = None
    for r in range(args.rounds):
        for _ in range(args.c_repeat):  # C's runs take 0.3 s: one burst of other load spoils one
            dt, raw = crun()
            note("C (all layers' spikes written)", dt)
            if has_output_only:
                dt, raw_o = crun(("--output-only",))
                note("C (--output-only)", dt)
            if crun_nc is not None:
                dt, raw_nc = crun_nc(("--output-only",) if has_output_only else ())
                note(NO_CACHE, dt)
        for bs in batches:
            note(f"PyTorch eager batch {bs}", torch_time(bs))
        dt, ref_out = ref_time()
        note("reference (numpy, batch 500)", dt)
        print(f"round {r + 1}/{args.rounds} done; load {load()}", flush=True)
    ref = {k: np.concatenate([o[k] for o in ref_out]) for k in ref_out[0]}
    got = parse_output(raw, man, False)
    exact = sorted(got) == sorted(ref) and all(np.array_equal(got[k], ref[k]) for k in ref)
    if crun_nc is not None:  # the build without the cache writes the same bytes
        exact = exact and raw_nc == (raw_o if has_output_only else raw)
    torch_keys = [k for k in best if k.startswith("PyTorch")]
    best_batch = min(torch_keys, key=best.get)  # the best batch size, 1 included
    c_best = min(v for k, v in best.items() if k.startswith("C") and k != NO_CACHE)
    c_cpu = min(v for k, v in cpu.items() if k.startswith("C") and k != NO_CACHE)
    best_cpu = min(torch_keys, key=cpu.get)
    print(f"\nFashion-MNIST example, {len(x)} test images, T = {steps}, one thread; ms per image (best of "
          f"{args.rounds} interleaved rounds, C {args.c_repeat} runs per round), wall time and CPU time "
          f"(CPU time: not inflated by waiting for a core on a loaded machine)")
    print(f"  {'':40s} {'wall':>8}   {'':16} {'CPU':>8}")
    for k, v in best.items():
        print(f"  {k:40s} {v:8.3f}   C is {v / c_best:6.2f}x faster {cpu[k]:8.3f}   C is {cpu[k] / c_cpu:6.2f}x "
              f"faster")
    if "PyTorch eager batch 1" in best:
        print(f"\nC vs PyTorch eager batch 1: {best['PyTorch eager batch 1'] / c_best:.2f}x wall, "
              f"{cpu['PyTorch eager batch 1'] / c_cpu:.2f}x CPU (target >= 10x)")
    print(f"C vs PyTorch eager at its best batch: {best[best_batch] / c_best:.2f}x wall (batch "
          f"{best_batch.split()[-1]}), {cpu[best_cpu] / c_cpu:.2f}x CPU (batch {best_cpu.split()[-1]}) "
          f"(target >= 3x)")
    if NO_CACHE in best:
        print(f"(the targets' C is the host harness snncc builds, with -DSNNCC_INPUT_CACHE: "
              f"{man['input_cache_bytes'] / 1024:.1f} KiB more RAM than the deployed build; without it "
              f"{best[NO_CACHE]:.3f} ms: {best['PyTorch eager batch 1'] / best[NO_CACHE]:.2f}x batch 1, "
              f"{best[best_batch] / best[NO_CACHE]:.2f}x best batch, wall)")
    print(f"C output bit-exact with the reference on every layer and step: {exact}")
    print(f"load average after: {load()}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
