"""Lava target: one network per sample vs one network for the batch, and one process
per delay value vs one DelayDense per delayed layer (issue 16).

The network is a netx file as slayer writes one with learned per-neuron axonal delays:
a spike input of ``--inputs`` neurons, ``--layers`` dense + CUBA layers of ``--width``
neurons whose per-neuron delays take ``--delays`` distinct values, and a readout. The
netx import splits each delayed layer into one IntDense per delay value; the Lava
emitter used to make each of them a process (``--delays`` x ``--layers`` synapse
processes, each an OS process in Lava's CPU backend) and ran each sample in a network
of its own (compile + process start every time). It now merges each split layer into
one DelayDense with a delay matrix and runs the whole batch in one network. Every mode
is checked for equality with the reference interpreter.

    python benchmarks/bench_lava_batch.py [--samples 8] [--steps 40] [--delays 10]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def netx_file(path: Path, inputs: int, layers: int, width: int, delays: int, steps: int, seed: int = 0) -> Path:
    import h5py

    rng = np.random.default_rng(seed)

    def s(h, key, value):
        h.create_dataset(key, (1,), "S10", [value.encode("ascii")])

    with h5py.File(path, "w") as f:
        f.create_group("simulation").create_dataset("tSample", data=steps)
        L = f.create_group("layer")
        h = L.create_group("0")
        s(h, "type", "input")
        h.create_dataset("shape", data=np.array([inputs]))
        n_in = inputs
        for i in range(1, layers + 2):
            h = L.create_group(str(i))
            s(h, "type", "dense")
            out = width if i <= layers else 10
            h.create_dataset("shape", data=np.array([out]))
            h.create_dataset("weight", data=(rng.integers(-60, 100, (out, n_in)) * 2).astype(np.float32))
            if i <= layers:
                h.create_dataset("delay", data=(np.arange(out) % delays).astype(np.float32))
                s(h, "neuron/type", "CUBA")
                for k, v in (("vThMant", 300), ("iDecay", 1024), ("vDecay", 256), ("refDelay", 1)):
                    h.create_dataset(f"neuron/{k}", data=v)
            n_in = out
    return path


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--inputs", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--width", type=int, default=40)
    ap.add_argument("--delays", type=int, default=10)
    args = ap.parse_args(argv)

    from snncc.frontends.netx import load_netx
    from snncc.reference.interpreter import run
    from snncc.targets import lava
    from snncc.targets.lava import emitter

    with tempfile.TemporaryDirectory() as tmp:
        path = netx_file(Path(tmp) / "delays.net", args.inputs, args.layers, args.width, args.delays, args.steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = load_netx(path)
        x = (np.random.default_rng(1).random((args.samples, args.steps, args.inputs)) < 0.3).astype(np.int64)
        t_ref, ref = timed(lambda: run(g, x, probe_state=True))
        merge = emitter._delay_groups
        rows = []
        for name, merged, batch in (("one process per delay value, one network per sample", False, False),
                                    ("one DelayDense per layer, one network per sample", True, False),
                                    ("one DelayDense per layer, one network for the batch", True, True)):
            emitter._delay_groups = merge if merged else (lambda graph: ({}, set()))
            out = Path(tmp) / name.replace(" ", "_").replace(",", "")
            lava.emit(g, out)
            emitter._delay_groups = merge
            procs = (out / "network.py").read_text().count("Dense(")
            net = lava.load_network(out)
            dt, got = timed(lambda: net.run(x, probe_state=True, batch=batch))
            same = sorted(got) == sorted(ref) and all(np.array_equal(got[k], ref[k]) for k in ref)
            rows.append((name, procs, dt, same))
        print(f"{args.samples} samples x {args.steps} steps, {args.layers} delayed layers x {args.delays} delay "
              f"values (+ readout); reference interpreter {t_ref:.2f} s")
        for name, procs, dt, same in rows:
            print(f"  {name:<55} {procs:3d} synapse processes  {dt:7.1f} s  "
                  f"({rows[0][2] / dt:4.1f}x)  {'bit-exact' if same else 'MISMATCH'}")
        return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
