"""The BWR driver: fit the learned rounding of every block in turn (see the package docstring)."""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from ...config import CompileConfig
from ...errors import SnnccError
from ...ir.graph import Graph
from ...ops import role
from ...reference.float_sim import FloatRuntime
from ..quantize import WEIGHT_QUANT, synapse_plan
from .blocks import Block, find_blocks
from .calibration import calibration_array, input_layout
from .config import BWRConfig
from .rounding import SoftSynapse, shared_grids

CHUNK = 128  # calibration samples per no-grad forward pass


def bwr(float_graph: Graph, calib_x, config: CompileConfig | None = None, iters: int | None = None, *,
        bwr_config: BWRConfig | None = None, seed: int | None = None, progress: bool = True,
        device: str | None = None, input_units: str = "int", max_samples: int | None = None,
        prefix: list | None = None) -> Graph:
    """Learn the rounding of every synapse block by block; return the float graph (after
    the pipeline's float passes) whose weights are the learned quantized weights, with
    ``meta["weight_quant"]`` fixing their scales, ready for the integer passes.

    ``calib_x``: calibration inputs (numpy array, torch tensor or DataLoader) in the
    integer input units of the reference interpreter (uint8 pixels, 0/1 events), static
    (N, *shape) or sequences (N, T, *shape); ``input_units="real"`` for inputs already
    multiplied by the input scale. ``prefix``: the float passes to run first (default:
    the default pipeline's; ``[]`` when the graph has been through them). Statistics
    land in ``meta["bwr"]``."""
    import torch

    cfg = config or CompileConfig()
    bc = _settings(bwr_config, iters=iters, seed=seed, device=device)
    dev = torch.device("cuda" if (bc.device == "cuda" or (bc.device == "auto" and torch.cuda.is_available()))
                       else "cpu")
    t_start = time.perf_counter()
    job = _Job(_prefixed(float_graph, cfg, prefix), cfg, bc, dev, calib_x, input_units, max_samples)
    stats, fixed = [], {}
    for bi, blk in enumerate(job.blocks):
        st = job.fit(blk, f"{bi + 1}/{len(job.blocks)}", fixed, progress)
        stats.append(st)
    g = job.g
    g.meta[WEIGHT_QUANT] = {**g.meta.get(WEIGHT_QUANT, {}), **fixed}
    g.meta["bwr"] = {"config": bc.to_dict(), "calib_samples": int(job.N), "device": str(dev),
                     "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - t_start, 2),
                     "blocks": stats}
    return g


def _settings(bc: BWRConfig | None, **over) -> BWRConfig:
    bc = bc or BWRConfig()
    return dataclasses.replace(bc, **{k: v for k, v in over.items() if v is not None})


def _prefixed(g: Graph, cfg: CompileConfig, prefix) -> Graph:
    """The graph after the pipeline's float passes (fold BatchNorm, readout, membrane)."""
    from ..pipeline import DEFAULT, float_prefix, run_pipeline

    passes = float_prefix(DEFAULT) if prefix is None else prefix
    g = run_pipeline(g, cfg, passes) if passes else g.copy()
    g.meta = dict(g.meta)
    return g


class _Job:
    """The calibration set, the float and quantized block boundaries, and the blocks."""

    def __init__(self, g: Graph, cfg: CompileConfig, bc: BWRConfig, dev, calib_x, input_units, max_samples):
        import torch

        self.g, self.cfg, self.bc, self.dev = g, cfg, bc, dev
        self.ann = bc.mode == "ann"
        if self.ann and not g.meta.get("converted"):
            raise SnnccError("BWR mode \"ann\" reconstructs the blocks of the ANN a model was converted from; this "
                             "model is an SNN (compile the ANN with --convert, or use mode \"snn\")")
        plan = synapse_plan(g, cfg)
        self.blocks = find_blocks(g, plan, bc.blocks)
        self.grids = shared_grids(g, plan, cfg, bc.clip)
        self.X, self.static = _calibration(g, calib_x, input_units, max_samples, dev)
        if self.ann and not self.static:
            raise SnnccError("BWR mode \"ann\" takes static calibration images (N, ...), not sequences")
        self.N = len(self.X)
        steps = 1 if self.ann else int(cfg.steps) + int(cfg.presim)  # TNP's presimulation runs too
        self.rt = FloatRuntime(g, steps, dev, bc.slope, ann=self.ann)
        self.gen = torch.Generator(device="cpu").manual_seed(bc.seed)
        torch.manual_seed(bc.seed)
        self.boundary = {s for b in self.blocks for s in b.inputs if role(g.node(s)) == "neuron"}
        self.fp = self._float_boundaries()   # the float network's spikes at every boundary
        self.qc: dict = {}                   # the quantized network's (blocks rounded so far)

    def chunks(self):
        import torch

        for i in range(0, self.N, CHUNK):
            yield torch.arange(i, min(i + CHUNK, self.N))

    def _float_boundaries(self) -> dict:
        import torch

        g = self.g
        fp: dict = {}
        with torch.no_grad():
            order = [n for n in g.order() if n != g.input_name]
            for idx in self.chunks():
                vals, _ = self.rt.run(order, {g.input_name: (self.X[idx], self.static)})
                for s in self.boundary:
                    fp.setdefault(s, []).append(self.pack(s, vals[s][0]))
        return {s: torch.cat(v, 0) for s, v in fp.items()}

    def pack(self, n: str, t):
        """A neuron's output as cached: spikes as uint8 0/1 (a converted neuron's are worth
        its spike_value), an ANN activation as float."""
        import torch

        if self.ann:
            return t.float()
        sv = float(self.g.node(n).spike_value)
        return (t if sv == 1.0 else t / sv).round().to(torch.uint8)

    def unpack(self, n: str, t):
        sv = 1.0 if self.ann else float(self.g.node(n).spike_value)
        t = t.to(self.X.dtype)
        return t if sv == 1.0 else t * sv

    def sources(self, cache: dict, idx, names) -> dict:
        vals = {}
        for s in names:
            if s == self.g.input_name:
                vals[s] = (self.X[idx], self.static)
            elif s in self.boundary:
                vals[s] = (self.unpack(s, cache[s][idx]), False)
            else:
                raise SnnccError(f"BWR: block input '{s}' is neither the input nor a neuron")
        return vals

    def forward(self, blk: Block, idx, weights, inputs_from, train=False, qdrop=False):
        """The block's outputs: spikes and pre-reset membranes of its output neurons."""
        import torch

        vals = self.sources(inputs_from, idx, blk.inputs)
        if qdrop:  # QDrop: each boundary element comes from the float network with probability p
            fvals = self.sources(self.fp, idx, blk.inputs)
            for s in blk.inputs:
                if s in self.boundary:
                    m = torch.rand(vals[s][0].shape, generator=self.gen).to(self.dev) < self.bc.qdrop
                    vals[s] = (torch.where(m, fvals[s][0], vals[s][0]), False)
        vals, vs = self.rt.run(blk.nodes, vals, weights, train, tuple(blk.outputs))
        return {n: vals[n][0] for n in blk.outputs}, vs

    def rec_loss(self, blk: Block, vq, vf, sq, sf):
        """Block reconstruction error: the membrane and/or surrogate-spike squared error
        (summed over channels, averaged over samples and steps) of every output neuron."""
        loss = 0.0
        for n in blk.outputs:  # ANN mode: the "membrane" is the activation, BRECQ's block output
            fires = self.g.node(n).fires
            if self.bc.loss in ("membrane", "both") or not fires or self.ann:
                loss = loss + (vq[n] - vf[n]).pow(2).sum(2).mean()
            if self.bc.loss in ("spikes", "both") and fires and not self.ann:
                loss = loss + (sq[n] - sf[n]).pow(2).sum(2).mean()
        return loss

    def fit(self, blk: Block, label: str, fixed: dict, progress: bool) -> dict:
        """Learn the block's rounding, keep the better of it and round-to-nearest, freeze
        the block's quantized spikes for later blocks and write the weights into the graph."""
        t0 = time.perf_counter()
        soft = [SoftSynapse(p, self.g.node(p.name).weight, self.grids[p.name][1], self.grids[p.name][0], self.dev)
                for p in blk.synapses]
        tgt = self._targets(blk)
        rtn_err = self._eval(blk, soft, [s.rtn for s in soft], tgt) if soft else 0.0
        learn = bool(soft) and self.bc.iters > 0
        if learn:
            self._optimize(blk, soft, tgt, label, progress)
        ints = [s.hard_int() if self.bc.iters > 0 else s.rtn for s in soft]
        bwr_err = self._eval(blk, soft, ints, tgt) if soft else 0.0
        kept = "bwr" if learn else "rtn"
        if self.bc.fallback and soft and bwr_err > rtn_err:
            ints, kept = [s.rtn for s in soft], "rtn"
        undecided = sum(s.undecided() for s in soft)
        self._freeze(blk, soft, ints)
        nw = sum(s.x.size for s in soft)
        changed = sum(int((w != s.rtn).sum()) for s, w in zip(soft, ints))
        for s, w_int in zip(soft, ints):
            self._write(s, w_int, fixed)
        st = {"block": blk.name, "neurons": blk.neurons, "synapses": [s.plan.name for s in soft],
              "weights": int(nw), "rec_rtn": rtn_err, "rec_bwr": bwr_err, "kept": kept,
              "changed_vs_rtn": changed / nw if nw else 0.0, "undecided": undecided / nw if nw else 0.0,
              "seconds": round(time.perf_counter() - t0, 2)}
        if progress:
            note = "" if kept == "bwr" else " (kept round-to-nearest)"
            print(f"BWR block {label} {blk.name}: {nw} weights, reconstruction "
                  f"{rtn_err:.4g} (nearest) -> {bwr_err:.4g} (learned){note}, "
                  f"{100 * st['changed_vs_rtn']:.1f}% rounded differently, {st['seconds']:.1f} s", flush=True)
        return st

    def _targets(self, blk: Block) -> tuple[dict, dict]:
        """The float block's spikes and membranes on the whole calibration set."""
        import torch

        tgt_s, tgt_v = {}, {}
        with torch.no_grad():
            for idx in self.chunks():
                s_, v_ = self.forward(blk, idx, None, self.fp)
                for n in blk.outputs:
                    tgt_s.setdefault(n, []).append(self.pack(n, s_[n]))  # spikes: 0/1 (ANN: float)
                    tgt_v.setdefault(n, []).append(v_[n])
        return ({n: torch.cat(v, 0) for n, v in tgt_s.items()}, {n: torch.cat(v, 0) for n, v in tgt_v.items()})

    def _eval(self, blk: Block, soft: list[SoftSynapse], ints: list[np.ndarray], tgt) -> float:
        import torch

        tgt_s, tgt_v = tgt
        idx = torch.arange(min(self.N, self.bc.eval_samples))
        with torch.no_grad():
            ws = {s.plan.name: s.weight_of(w) for s, w in zip(soft, ints)}
            s_, v_ = self.forward(blk, idx, ws, self.qc)
            return float(self.rec_loss(blk, v_, {n: tgt_v[n][idx] for n in v_}, s_,
                                       {n: self.unpack(n, tgt_s[n][idx]) for n in s_}))

    def _optimize(self, blk: Block, soft: list[SoftSynapse], tgt, label: str, progress: bool) -> None:
        """Adam on the rounding variables: reconstruction + the annealed regulariser."""
        import torch

        from ...progress import bar as progress_bar

        bc, (tgt_s, tgt_v) = self.bc, tgt
        opt = torch.optim.Adam([s.V for s in soft], lr=bc.lr if bc.lr is not None else 20.0 / bc.iters)
        warm = int(bc.warmup * bc.iters)
        bar = progress_bar(range(bc.iters), desc=f"BWR {label} {blk.name}", progress=progress, leave=False)
        for it in bar:
            idx = torch.randint(0, self.N, (min(bc.batch_size, self.N),), generator=self.gen)
            s_, v_ = self.forward(blk, idx, {s.plan.name: s.soft() for s in soft}, self.qc, train=True,
                                  qdrop=bc.qdrop > 0)
            di = idx.to(self.dev)
            rec = self.rec_loss(blk, v_, {n: tgt_v[n][di] for n in v_}, s_, {n: self.unpack(n, tgt_s[n][di]) for n in s_})
            if it < warm:
                reg = torch.zeros((), device=self.dev)
            else:
                rel = (it - warm) / max(1, bc.iters - warm)
                beta = bc.beta_end + (bc.beta_start - bc.beta_end) * max(0.0, 1.0 - rel)
                reg = bc.reg_weight * sum(s.reg(beta) for s in soft)
            opt.zero_grad()
            (rec + reg).backward()
            opt.step()
            if it % 50 == 0 or it == bc.iters - 1:
                bar.set_postfix(rec=f"{rec.item():.4g}", round=f"{reg.item():.4g}", refresh=False)
        bar.close()

    def _freeze(self, blk: Block, soft: list[SoftSynapse], ints: list[np.ndarray]) -> None:
        """The quantized network's spikes of this block, for the blocks after it."""
        import torch

        with torch.no_grad():
            ws = {s.plan.name: s.weight_of(w) for s, w in zip(soft, ints)}
            for n in blk.outputs:
                if n in self.boundary:
                    self.qc[n] = torch.empty_like(self.fp[n])
            for idx in self.chunks():
                s_, _ = self.forward(blk, idx, ws, self.qc)
                for n in blk.outputs:
                    if n in self.boundary:
                        self.qc[n][idx] = self.pack(n, s_[n])

    def _write(self, s: SoftSynapse, w_int: np.ndarray, fixed: dict) -> None:
        """The learned integers into the float graph, and the scale that recovers them."""
        p = s.plan
        self.g.set(p.name, self.g.node(p.name).replace(weight=s.model_weight(w_int)))
        fixed[p.name] = {"scale": [float(v) for v in np.asarray(self.grids[p.name][1]).ravel()],
                         "weight_bits": int(s.q.storage_bits), "bits": int(p.bits),
                         "quantizer": self.cfg.quantizer, "method": "bwr"}


def _calibration(g: Graph, calib_x, input_units: str, max_samples, dev):
    """The calibration inputs as a real-valued tensor on the device, and whether static."""
    import torch

    inp = g.node(g.input_name)
    x = calibration_array(calib_x, max_samples)
    static = input_layout(g, x)
    xr = x.astype(np.float32) * (float(inp.scale) if input_units == "int" else 1.0)
    return torch.as_tensor(xr, device=dev), static
