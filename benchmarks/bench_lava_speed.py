"""Time per simulated step of one network on three runtimes:

* Lava (lava-nc 0.10.0, Loihi2SimCfg fixed_pt: one OS process per Lava process);
* snncc's reference interpreter (numpy, ``snncc.reference.interpreter.run``), once
  with the image as a static input (the interpreter computes what depends only on it, the
  first synapse, once per run), once with the image given at every step (an input
  stream: everything recomputed per step), and once on its straightforward int64 path
  (``fast=False``: no float32 products, no int32 neurons);
* the C target (``snncc.targets.c``: emitted C99, compiled with -O2), if available.

The network is PilotNet-size (Bojarski et al. 2016: 5 conv + 4 dense, 66x200x3 input)
with random 8-bit integer weights, Loihi-native LIF neurons and Lava's one-step synapse
schedule. Per-step time is the slope between a short and a long run of the same
input (so Lava's compile + process spawn and the C binary's start-up are excluded and
reported separately), run back to back in each of --repeat rounds: the median round's
slope. Every result is checked for equality with the reference.

    python benchmarks/bench_lava_speed.py [--short 2] [--long 10] [--seed 0] [--repeat 5]
                                          [--reference-only]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from snncc.ir.graph import Graph
from snncc.ir.nodes import Flatten, IntConv, IntDense, IntInput, IntLIF
from snncc.ir.verify import verify
from snncc.passes.lava import LAVA_PASSES
from snncc.reference.interpreter import run

I64 = np.int64
CONVS = [(24, 5, 2), (36, 5, 2), (48, 5, 2), (64, 3, 1), (64, 3, 1)]  # out channels, kernel, stride
DENSES = [100, 50, 10, 1]


def pilotnet(seed: int = 0, steps: int = 10) -> Graph:
    """PilotNet layer sizes, random int8 weights; each threshold is about one standard
    deviation of its layer's input (for spikes at rate ~0.2), a multiple of 64 (vth << 6)."""
    rng = np.random.default_rng(seed)
    g = Graph()
    g.meta.update(name="pilotnet_random", steps=steps)
    cur = g.add("x", IntInput(shape=(3, 66, 200), bits=8))
    x_std, x_mean, c = 74.0, 127.5, 3
    for i, (o, k, s) in enumerate(CONVS):
        w = rng.integers(-127, 128, (o, c, k, k)).astype(I64)
        syn = g.add(f"conv{i + 1}", IntConv(weight=w, stride=(s, s)), [cur])
        fan = c * k * k
        std = np.sqrt(fan) * 73.0 * np.sqrt(x_std ** 2 + x_mean ** 2)
        thr = int(np.clip(std, 1, (1 << 17) - 1)) << 6
        cur = g.add(f"lif{i + 1}", IntLIF(threshold=np.array([thr], I64), dv=256), [syn])
        x_std, x_mean, c = 0.4, 0.2, o
    cur = g.add("flatten", Flatten(), [cur])
    n_in = g.shapes()[cur][0]
    for j, n in enumerate(DENSES):
        w = rng.integers(-127, 128, (n, n_in)).astype(I64)
        syn = g.add(f"fc{j + 1}", IntDense(weight=w), [cur])
        last = j == len(DENSES) - 1
        thr = int(np.sqrt(n_in * 0.2) * 73.0) << 6
        cur = g.add(f"fc{j + 1}_lif" if not last else "readout",
                    IntLIF(threshold=np.array([0 if last else thr], I64), dv=256 if not last else 0,
                           fires=not last), [syn])
        n_in = n
    g.outputs = [cur]
    verify(g, "int")
    for fn, _ in LAVA_PASSES:
        g, _ = fn(g)
    return g


def slope(fn, short: tuple, long: tuple, t1: int, t2: int, repeat: int, **kw):
    """Seconds per step, start-up seconds, the fastest round's seconds per step, and the
    long run's result of ``fn``:
    ``repeat`` rounds of a short run (``fn(*short, **kw)``, t1 steps) and a long one (t2
    steps) back to back, the slope of each round, and the median round (by slope). A
    round's two runs see the same load; taking the best short and the best long run from
    different rounds (as this bench did) gave slopes no run had, e.g. a static image
    slower per step than the same image streamed."""
    rounds, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*short, **kw)
        a = time.perf_counter() - t
        t = time.perf_counter()
        out = fn(*long, **kw)
        b = time.perf_counter() - t
        step = (b - a) / (t2 - t1)
        rounds.append((step, a - t1 * step))
    rounds.sort()
    step, start = rounds[(len(rounds) - 1) // 2]
    return step, start, rounds[0][0], out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", type=int, default=2, help="steps of the short run")
    ap.add_argument("--long", type=int, default=10, help="steps of the long run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5,
                    help="rounds of a short and a long run per runtime; the median round's slope")
    ap.add_argument("--reference-only", action="store_true",
                    help="time only the reference interpreter (no C build, no Lava: seconds, not minutes)")
    args = ap.parse_args(argv)
    t1, t2 = args.short, args.long
    g = pilotnet(args.seed, t2)
    x = np.random.default_rng(args.seed).integers(0, 256, (1, 3, 66, 200))
    n_neurons = sum(int(np.prod(s)) for n, s in g.shapes().items() if g.node(n).kind == "IntLIF")
    n_syn = sum(g.node(n).weight.size for n in g.of_kind("IntConv", "IntDense"))
    print(f"PilotNet-size integer SNN: {n_neurons} neurons, {n_syn} weights, input 3x66x200, "
          f"1 sample, steps {t1} and {t2}, {os.cpu_count()} CPU cores")

    rows, results = [], {}
    ref_step, start, ref_fast, ref2 = slope(lambda steps: run(g, x, steps=steps), (t1,), (t2,), t1, t2, args.repeat)
    results["reference"] = ref2
    rows.append(("snncc reference (numpy)", ref_step, start, ref_fast))
    print("spike counts per layer:", {k: int(v.sum()) for k, v in ref2.items() if k != "output"})
    # the same image given once per step (an (N, T, ...) array, not a static (N, ...) one):
    # the reference then recomputes the input's synapse at every step, as for a stream
    xs = [np.ascontiguousarray(np.broadcast_to(x[:, None], (1, t) + x.shape[1:])) for t in (t1, t2)]
    step, start, fast, results["reference, input per step"] = slope(run, (g, xs[0]), (g, xs[1]), t1, t2,
                                                                    args.repeat)
    rows.append(("snncc reference, input per step", step, start, fast))
    # the interpreter's straightforward int64 evaluation (no fast path), static image
    step, start, fast, results["reference, int64 path"] = slope(lambda steps: run(g, x, steps=steps, fast=False),
                                                                (t1,), (t2,), t1, t2, args.repeat)
    rows.append(("snncc reference, int64 path (fast=False)", step, start, fast))
    if not args.reference_only:
        with tempfile.TemporaryDirectory(prefix="snncc-bench-") as tmp:
            _time_c(g, x, t1, t2, args.repeat, Path(tmp) / "c", rows, results)
            _time_lava(g, x, t1, t2, args.repeat, Path(tmp) / "lava", rows, results)
    return _print_rows(rows, results, ref_step, rows[1][1], ref2)


def _time_c(g, x, t1, t2, repeat, cdir: Path, rows: list, results: dict) -> None:
    try:
        from snncc.targets import c as ctarget
    except ImportError as e:
        print(f"C target skipped: snncc.targets.c is not available ({e})")
        return
    try:
        ctarget.emit(g, cdir)
        ctarget.build(cdir)
        ctarget.simulate(cdir, x, steps=t1)  # warm the file cache
        step, start, fast, out = slope(lambda steps: ctarget.simulate(cdir, x, steps=steps), (t1,), (t2,), t1, t2,
                                       repeat)
        results["C"] = out
        rows.append(("C target (-O2, one core)", step, start, fast))
    except Exception as e:  # noqa: BLE001 - a benchmark reports and goes on
        print(f"C target skipped: {type(e).__name__}: {e}")


def _time_lava(g, x, t1, t2, repeat, ldir: Path, rows: list, results: dict) -> None:
    try:
        from snncc.targets import lava
    except ImportError as e:
        print(f"Lava skipped: {e}")
        return
    lava.emit(g, ldir)
    net = lava.load_network(ldir)
    step, start, fast, out = slope(lambda steps: net.run(x, steps=steps), (t1,), (t2,), t1, t2, repeat)
    results["Lava"] = out
    rows.append(("Lava 0.10.0 Loihi2SimCfg fixed_pt", step, start, fast))


def _print_rows(rows, results, ref_step, stream_step, ref2) -> int:
    print()
    print(f"{'runtime':42s} {'ms / step':>10s} {'start-up s':>11s} {'x reference':>12s} {'fastest round':>14s}")
    for name, step, start, fast in rows:
        print(f"{name:42s} {step * 1e3:10.2f} {start:11.2f} {step / ref_step:12.2f} {fast * 1e3:14.2f}")
    ok = all(sorted(r) == sorted(ref2) and all(np.array_equal(r[k], ref2[k]) for k in ref2)
             for r in results.values())
    print(f"\nall runtimes bit-exact with the reference on every layer: {ok}")
    if "Lava" in results and "C" in results:
        lava_step = [r for r in rows if r[0].startswith("Lava")][0][1]
        c_step = [r for r in rows if r[0].startswith("C")][0][1]
        print(f"Lava / C per step: {lava_step / c_step:.1f}x")
    if "Lava" in results:
        lava = [r for r in rows if r[0].startswith("Lava")][0]
        print(f"Lava / reference per step: {lava[1] / ref_step:.1f}x (static image), "
              f"{lava[1] / stream_step:.1f}x (input per step); fastest rounds: {lava[3] / rows[0][3]:.1f}x, "
              f"{lava[3] / rows[1][3]:.1f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
