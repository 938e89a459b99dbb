"""Runs an snncc-generated Lava network (copied beside ``network.py`` as
``snncc_lava_runner.py``; needs only lava-nc and numpy).

``network.py`` holds the network's layout (its processes and connections, built by
``build(P, x_lava)``) and its constants; this module holds what every network does:
record every neuron layer, run the samples under ``Loihi2SimCfg(select_tag="fixed_pt")``
(each sample starts from the reset state), convert Lava's (W, H, C) layout back to
snncc's (C, H, W), and return exactly what snncc's reference interpreter returns.
Tensors are (W, H, C) inside Lava.

A batch runs in ONE Lava network (one compile, one set of OS processes): the input
source holds every sample back to back, the network runs T steps per sample, and
between samples the host sets every state Var (LIF u and v, the synapses' output
buffers a_buff / a_buf) back to its initial value, so each sample starts from the
reset state exactly as a fresh network would. The schedule allows it when every
periodic reset (LIFReset, counted from the run's first step) divides T; otherwise
each sample gets its own network (the old way, ~1.5 s of compile and process start
each).
"""
import argparse
import os
import shutil
import sys
import tempfile

import numpy as np

import snncc_lava_shim  # noqa: F401  (must precede every other lava import)
from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from snncc_lava_procs import Recorder  # noqa: E402


def _read_input(path: str) -> np.ndarray:
    """The I/O contract's input: an .npy array, or an .npz with the array under "x"."""
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z.files:
                raise SystemExit(f"{path}: an .npz input must hold the array 'x' (it has {', '.join(z.files) or 'none'})")
            return z["x"]
    return np.load(path, allow_pickle=False)


def full(a, shape):
    """A per-channel (C,) or scalar (1,) array broadcast to a layer's Lava shape."""
    return np.ascontiguousarray(np.broadcast_to(a, shape))


def _to_ir(a, shape):
    """(T, W, H, C) -> (T, C, H, W); 1-D layers are unchanged."""
    return a.transpose(0, 3, 2, 1) if len(shape) == 3 else a


class Network:
    """One generated network: ``build(P, x_lava) -> (input process, {layer: neuron process})``,
    the input contract, the neuron layers {name: (IR shape, has u, v is an output)} and
    the outputs [(layer, "s" | "v", flattened)]."""

    def __init__(self, build, here, input_shape, input_range, steps, layers, outputs, doc="", resets=()):
        self.build, self.here = build, here
        self.input_shape, self.input_range, self.steps = tuple(input_shape), input_range, steps
        self.layers, self.outputs, self.doc = layers, outputs, doc
        self.resets = tuple(int(r) for r in resets if r)

    def load_params(self):
        with np.load(os.path.join(self.here, "params.npz"), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def record(self, neurons, num_steps, rec_dir, probe_state):
        """A Recorder per neuron layer: its spikes, and v (u) through RefPorts when probed or
        when v is the output; each writes one .npz at the last step."""
        files = {}
        for i, (layer, proc) in enumerate(neurons.items()):
            _, has_u, need_v = self.layers[layer]
            rec = Recorder(shape=proc.s_out.shape, num_steps=num_steps, path=os.path.join(rec_dir, f"{i}.npz"),
                           record_v=need_v or probe_state, record_u=has_u and probe_state)
            proc.s_out.connect(rec.a_in)
            if need_v or probe_state:
                rec.ref_v.connect_var(proc.v)
            if has_u and probe_state:
                rec.ref_u.connect_var(proc.u)
            files[layer] = rec.proc_params["path"]
        return files

    def batchable(self, steps):
        """Whether samples of ``steps`` steps can share one network: every periodic reset
        (counted from the network's first step) must fall on the same step of each sample."""
        return all(steps % r == 0 for r in self.resets)

    def run_one(self, P, x, probe_state=False, samples=None):
        """Simulate the samples x (N, T, *input_shape) in one network, each from the reset
        state (``samples``: the iterable over sample indices, e.g. a progress bar); return
        per layer a dict with "s" (and "v", "u") of shape (N, T, *shape)."""
        n, num_steps = x.shape[:2]
        x = x.reshape((n * num_steps,) + x.shape[2:])  # the samples back to back
        x_lava = x.transpose(tuple(range(x.ndim - 1, 0, -1)) + (0,)) if len(self.input_shape) == 3 else x.T
        rec_dir = tempfile.mkdtemp(prefix="snncc_lava_")
        try:
            inp, neurons, synapses = self.build(P, x_lava)
            files = self.record(neurons, n * num_steps, rec_dir, probe_state)
            state = [var for proc in list(neurons.values()) + list(synapses)
                     for var in (getattr(proc, k, None) for k in ("u", "v", "a_buff", "a_buf")) if var is not None]
            try:
                for k in (range(n) if samples is None else samples):
                    if k:  # the next sample starts from the reset state
                        for var in state:
                            var.set(np.broadcast_to(np.asarray(var.init), var.shape).copy())
                    inp.run(condition=RunSteps(num_steps=num_steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            finally:
                inp.stop()
            out = {}
            for layer, path in files.items():
                shape = self.layers[layer][0]
                with np.load(path) as z:
                    out[layer] = {k: _to_ir(z[k], shape).astype(np.int64).reshape((n, num_steps) + tuple(shape))
                                  for k in z.files}
            return out
        finally:
            shutil.rmtree(rec_dir, ignore_errors=True)

    def _input(self, x, steps):
        x = np.asarray(x)
        if not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
            raise ValueError(f"input must be integers, got dtype {x.dtype}")
        if x.shape[1:] == self.input_shape:
            x = np.repeat(x[:, None], steps or self.steps, axis=1)
        elif x.shape[2:] != self.input_shape:
            raise ValueError(f"input has shape {x.shape}; expected (N, T, *{self.input_shape}) "
                             f"or (N, *{self.input_shape})")
        x = x.astype(np.int64)
        lo, hi = self.input_range
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(f"input values lie in [{x.min()}, {x.max()}], expected {self.input_range}")
        return x

    def run(self, x, probe_state=False, steps=None, progress=False, batch=True):
        """Simulate a batch: x (N, T, *input_shape) or static (N, *input_shape) repeated
        over ``steps`` (default: the model's). Every sample starts from the reset state:
        one Lava network for the whole batch where the schedule allows (``batchable``;
        ``batch=False``: one per sample). ``progress``: a bar over samples where tqdm is
        installed. Returns the same dict as snncc's reference interpreter."""
        x = self._input(x, steps)
        P = self.load_params()
        samples = range(x.shape[0])
        if progress:
            try:
                from tqdm import tqdm
                samples = tqdm(samples, desc="lava", unit="sample", mininterval=0.5, leave=False)
            except ImportError:  # the standalone network runs with lava-nc and numpy alone
                pass
        if batch and self.batchable(x.shape[1]):
            per = self.run_one(P, x, probe_state, samples)
        else:
            parts = [self.run_one(P, x[i:i + 1], probe_state) for i in samples]
            per = {layer: {k: np.concatenate([p[layer][k] for p in parts]) for k in parts[0][layer]}
                   for layer in parts[0]}
        res = {}
        for layer, (_, has_u, _) in self.layers.items():
            res[layer] = per[layer]["s"]
            if probe_state:
                res[layer + "/v"] = per[layer]["v"]
                if has_u:
                    res[layer + "/u"] = per[layer]["u"]
        steps_out = []
        for t in range(x.shape[1]):
            for layer, what, flat in self.outputs:
                val = per[layer][what][:, t]
                steps_out.append(val.reshape(val.shape[0], -1) if flat else val)
        res["output"] = np.stack(steps_out, axis=1)
        return res

    def main(self, argv=None):
        ap = argparse.ArgumentParser(description=self.doc)
        ap.add_argument("--input", required=True, help=".npy with integer input (N, T, ...) or (N, ...), "
                        "or an .npz holding it as array x")
        ap.add_argument("--out", required=True, help=".npz to write the results to")
        ap.add_argument("--probe-state", action="store_true", help="also record v and u of every layer")
        ap.add_argument("--steps", type=int, default=None, help=f"steps for a static input (default {self.steps})")
        args = ap.parse_args(argv)
        res = self.run(_read_input(args.input), probe_state=args.probe_state, steps=args.steps,
                       progress=sys.stderr.isatty())
        np.savez(args.out, **res)
        print(f"wrote {args.out}: " + ", ".join(f"{k} {v.shape}" for k, v in res.items()))
