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
reported separately), run back to back in each of --repeat rounds (a fast runtime's
pair repeated for a second, its median pair): the median round's slope. Every runtime
runs in every round, one after another, so the ratio of Lava to the reference is also
taken round by round (both in the same stretch of the machine's load, which moves by tens
of percent within minutes) and its median printed. Every result is
checked for equality with the reference.

    python benchmarks/bench_lava_speed.py [--short 4] [--long 24] [--seed 0] [--repeat 5]
                                          [--reference-only]
"""
from __future__ import annotations

import argparse
import gc
import multiprocessing
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


def time_rounds(runtimes: list, t1: int, t2: int, repeat: int, window: float = 1.0) -> dict:
    """Each runtime's seconds per step in each of ``repeat`` rounds: in a round, every
    runtime in turn runs a short (t1 steps) and a long (t2 steps) run back to back, and
    its slope is (long - short) / (t2 - t1) (so start-up is excluded and given apart); a
    runtime whose pair takes less than ``window`` seconds repeats it until ``window`` has
    passed and gives the median pair (the reference's pair takes about 0.1 s, Lava's
    about 10: a single 0.1 s pair caught one moment of a machine whose speed moves by 2x
    within seconds). All runtimes run in every round, one after another (in reverse order
    every other round), so a round's figures see the same stretch of the machine's load:
    ratios between runtimes are taken round by round. ``runtimes``: (label, fn) with
    fn(steps) returning the run's result; returns {label: {"rounds": [(step, start)],
    "out": the last long run's result}}."""
    res = {label: {"rounds": [], "out": None} for label, _ in runtimes}
    for _, fn in runtimes:  # one untimed short run each: imports, caches, first-touch of memory
        fn(t1)
    for r in range(repeat):
        for label, fn in (runtimes if r % 2 == 0 else runtimes[::-1]):
            _settle()
            pairs, t0 = [], time.perf_counter()
            while not pairs or (time.perf_counter() - t0 < window and len(pairs) < 50):
                t = time.perf_counter()
                fn(t1)
                a = time.perf_counter() - t
                t = time.perf_counter()
                out = fn(t2)
                b = time.perf_counter() - t
                step = (b - a) / (t2 - t1)
                pairs.append((step, a - t1 * step))
            res[label]["rounds"].append(median(pairs))
            res[label]["out"] = out
        print(f"round {r + 1}/{repeat}: " + ", ".join(f"{label} {res[label]['rounds'][-1][0] * 1e3:.2f} ms"
                                                     for label, _ in runtimes), flush=True)
    return res


def _settle(limit: float = 10.0) -> None:
    """Wait until this process has no child processes left (Lava's runtime processes end
    after its run returns) and the interpreter's garbage is collected, so that no runtime
    is timed while the one before it is still winding down on the same cores."""
    gc.collect()
    t = time.perf_counter()
    while multiprocessing.active_children() and time.perf_counter() - t < limit:
        time.sleep(0.05)


def median(v: list):
    """The median of ``v`` (the lower middle of an even count: a figure some round had;
    tuples by their first element)."""
    return sorted(v)[(len(v) - 1) // 2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", type=int, default=4, help="steps of the short run")
    ap.add_argument("--long", type=int, default=24, help="steps of the long run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5,
                    help="rounds (each runtime's short and long run in every round); medians over rounds")
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
    # the same image given once per step (an (N, T, ...) array, not a static (N, ...) one):
    # the reference then recomputes the input's synapse at every step, as for a stream
    xs = {t: np.ascontiguousarray(np.broadcast_to(x[:, None], (1, t) + x.shape[1:])) for t in (t1, t2)}
    runtimes = [(REF, lambda steps: run(g, x, steps=steps)),
                (STREAM, lambda steps: run(g, xs[steps])),
                # the interpreter's straightforward int64 evaluation (no fast path), static image
                ("snncc reference, int64 path (fast=False)", lambda steps: run(g, x, steps=steps, fast=False))]
    with tempfile.TemporaryDirectory(prefix="snncc-bench-") as tmp:
        if not args.reference_only:
            runtimes += _c_runtime(g, x, Path(tmp) / "c") + _lava_runtime(g, x, Path(tmp) / "lava")
        res = time_rounds(runtimes, t1, t2, args.repeat)
    print("spike counts per layer:", {k: int(v.sum()) for k, v in res[REF]["out"].items() if k != "output"})
    return _print_rows(res)


REF, STREAM, LAVA = "snncc reference (numpy)", "snncc reference, input per step", "Lava 0.10.0 Loihi2SimCfg fixed_pt"


def _c_runtime(g, x, cdir: Path) -> list:
    """[("C target ...", fn)] with the C target emitted and built, or [] (said) where it
    cannot be."""
    try:
        from snncc.targets import c as ctarget
    except ImportError as e:
        print(f"C target skipped: snncc.targets.c is not available ({e})")
        return []
    try:
        ctarget.emit(g, cdir)
        ctarget.build(cdir)
    except Exception as e:  # noqa: BLE001 - a benchmark reports and goes on
        print(f"C target skipped: {type(e).__name__}: {e}")
        return []
    return [("C target (-O2, one core)", lambda steps: ctarget.simulate(cdir, x, steps=steps))]


def _lava_runtime(g, x, ldir: Path) -> list:
    """[(LAVA, fn)] with the Lava network emitted and loaded, or [] (said) without Lava."""
    try:
        from snncc.targets import lava
    except ImportError as e:
        print(f"Lava skipped: {e}")
        return []
    lava.emit(g, ldir)
    net = lava.load_network(ldir)
    return [(LAVA, lambda steps: net.run(x, steps=steps))]


def _print_rows(res: dict) -> int:
    """The table (median and fastest round per runtime, each against the reference's
    median), the exactness check and Lava's ratios to the reference taken round by round."""
    ref_step = median([r[0] for r in res[REF]["rounds"]])
    print(f"\n{'runtime':42s} {'ms / step':>10s} {'start-up s':>11s} {'x reference':>12s} {'fastest round':>14s}")
    for label, r in res.items():
        step, start = median(r["rounds"])
        print(f"{label:42s} {step * 1e3:10.2f} {start:11.2f} {step / ref_step:12.2f} "
              f"{min(r['rounds'])[0] * 1e3:14.2f}")
    ref2 = res[REF]["out"]
    ok = all(sorted(r["out"]) == sorted(ref2) and all(np.array_equal(r["out"][k], ref2[k]) for k in ref2)
             for r in res.values())
    print(f"\nall runtimes bit-exact with the reference on every layer: {ok}")
    if LAVA in res:
        for label in [k for k in res if k != LAVA]:
            ratios = [lv[0] / o[0] for lv, o in zip(res[LAVA]["rounds"], res[label]["rounds"])]
            print(f"Lava / {label}, per step, same round: median {median(ratios):.1f}x "
                  f"(rounds: {', '.join(f'{q:.0f}' for q in ratios)})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
