"""SpQuant-SNN's sparsity masks in training (section 4.3), as a ``SpQuantTrainer`` hook.

``SparsityMasks(neg_mask, spatial_sparsity, channel_threshold, gate_penalty)`` runs the
masks of the compiled model (docs/semantics.md, "Sparsity masks") inside every
:class:`snncc.train.neurons.QuantLIF` on the integer membrane, in the reference order
(spatial, negative, channel gate), with the paper's gradient treatment: a mask multiplies
(Eq. 20, 22), so no gradient flows through a masked spike or membrane; a skipped neuron
keeps its prior state, and the gradient flows to it.

* spatial (Eq. 21-22), ``spatial_level="per-step"`` (default): per sample and step the
  layer's k-th smallest |a| (k = ceil(ratio x C H W), ``torch.kthvalue`` as in the paper)
  is the level; the compiled model fixes one level per layer instead (``apply_masks``
  calibrates it on ``mask_calib``), so the trainer's accuracy is not the deployed one.
  ``spatial_level="fixed"``: the mask the compiled model runs. One integer level per
  spiking conv layer, |a| <= level skipped (a the layer's integer input, the units of the
  compiled ``IntLIF``), calibrated as ``calibrate_spatial`` does: the k-th smallest |a|
  (k = ceil(ratio n)) of the n updates of all T steps on the first ``calib_images`` train
  images (the first 64 are ``mask_calib``'s default, so the final levels are the compiled
  model's), layer after layer with the levels before it in place, in eval mode without
  gradient. The levels are frozen within a step and re-calibrated at setup, every
  ``spatial_every`` optimizer steps (the weights drift between) and at the end of each
  epoch after re-reading the compiler's scales (``net.refresh``: the units of a change
  there), so that the trained model, its evaluation and the compiled model share the
  levels (:attr:`SparsityMasks.levels`). A fixed calibration set, not the training batch:
  the level then follows the weights, not the batch's noise, and equals the deployed one;
* channel gate (Eq. 23): a learned point-wise path W (C, C), b (C,) on the mean membrane
  prior in thresholds, two-way softmax (on: W m + b, off: 0) thresholded at theta. The
  forward pass uses the exact integer gate of the compiled model (weights rounded to
  integers G = round(2^16 W / thr_j), level = ceil(H W 2^16 (ln(theta / (1 - theta)) - b)));
  the backward pass the sigmoid of the float logit (straight-through), plus a penalty
  ``gate_penalty`` x mean(sigmoid) that pushes channels off. :meth:`save_gates` writes the
  integers for the compiler (``channel_gates = "FILE.npz"``).

Operation penalty (``op_penalty``, ``op_target``): the masks cut operations only where
spikes disappear, and a spike costs what its next synapse does with it. The loss gets
``op_penalty x max(0, share - op_target)``, with ``share`` the batch's synaptic operations
(summed over layers and steps) over their count if every neuron fired at every step,
counted from the compiled graph's paths (:func:`spike_paths`: the synapses a layer's
spikes reach, through poolings and reshapes) in one of two ways (``op_count``):

* ``"events"`` (the report's count, ``snncc report`` and bench_sparsity.py's measured
  operations): a synapse's input costs its own fan-out where it is nonzero, so a pooled
  window costs the fan-out once, whether one spike or four are in it. Through a pooling
  the count is min(1, spikes in the window) (a sum pool of spikes, or a max pool: an OR),
  whose gradient is the marginal cost: a lone spike is charged the whole fan-out, a spike
  beside others in its window nothing.
* ``"spikes"``: each spike costs the fan-out divided by the window of every pooling on
  the way (:func:`spike_costs`), exact without pooling and an underestimate of a lone
  spike's cost (by the window) where there is one (the runs of docs/sparsity.md up to V).

The gradient reaches the neurons through the spike surrogate and the channel gates
through their straight-through sigmoid.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

GATE_BITS = 16  # fractional bits of the integer gate weights


def spike_paths(graph) -> dict[str, list[tuple[tuple, np.ndarray]]]:
    """Per spiking IntLIF of a compiled graph: a (pools, fan) pair for every synapse its
    spikes reach through poolings and reshapes, with ``pools`` the (kernel, stride,
    padding) of each pooling on the way and ``fan`` the synapse's fan-out of each of its
    inputs (``OpDef.fan_out``, in the shape of the synapse's input). Adds and neurons end a
    path (they carry currents and states, not spikes)."""
    from ..ops import op_def

    shapes = graph.shapes()

    def reach(name: str, pools: tuple) -> list:
        out = []
        for u in graph.users(name):
            node = graph.node(u)
            d = op_def(node)
            if d.role == "synapse":
                out.append((pools, d.fan_out(node, shapes[name])))
            elif d.role == "pool":
                out += reach(u, pools + ((tuple(node.kernel), tuple(node.stride), tuple(node.padding)),))
            elif d.role == "reshape":
                out += reach(u, pools)
        return out

    return {n: reach(n, ()) for n, op in graph.items() if op.kind == "IntLIF" and op.fires}


def spike_costs(graph) -> dict[str, float]:
    """Per spiking IntLIF of a compiled graph: what one of its spikes costs by
    ``op_count="spikes"``: the mean fan-out of every synapse its spikes reach
    (:func:`spike_paths`), divided by the window of each pooling on the way."""
    return _costs(spike_paths(graph))


def _costs(paths: dict[str, list]) -> dict[str, float]:
    """:func:`spike_costs` from the layers' :func:`spike_paths`."""
    return {n: sum(float(fan.mean()) / math.prod(k[0] * k[1] for k, _, _ in pools) for pools, fan in ps)
            for n, ps in paths.items()}


def path_events(s: torch.Tensor, paths: list[tuple[tuple, torch.Tensor]]) -> torch.Tensor:
    """``op_count="events"``: the synaptic operations of the spikes s (N, ...) of one step
    along ``paths`` (:func:`spike_paths`, the fan-outs as tensors): each synapse's nonzero
    inputs x their fan-out, a pooled input nonzero where any spike of its window is
    (min(1, the window's sum))."""
    total = s.new_zeros((), dtype=torch.float64)
    for pools, fan in paths:
        t = s
        for k, st, pad in pools:
            t = torch.clamp(torch.nn.functional.avg_pool2d(t, k, st, pad, count_include_pad=True) * (k[0] * k[1]),
                            max=1.0)
        total = total + (t.reshape((t.shape[0],) + fan.shape) * fan).sum()
    return total


class SparsityMasks:
    """A trainer hook (``setup``, ``parameters``, ``loss``, ``compile_options``)."""

    def __init__(self, neg_mask: bool = True, spatial_sparsity: float = 0.0, channel_threshold: float = 0.0,
                 gate_penalty: float = 0.0, gate_init: float = 2.0, gate_gain: float = 1.0,
                 op_penalty: float = 0.0, op_target: float = 0.0, spatial_level: str = "per-step",
                 spatial_every: int = 10, calib_images: int = 64, op_count: str = "spikes") -> None:
        """``spatial_level``: "per-step" (the paper's kthvalue per sample and step) or
        "fixed" (one calibrated level per layer, the compiled model's; module docstring),
        re-calibrated every ``spatial_every`` steps on the first ``calib_images`` train
        images. ``gate_gain`` k: the gate's logit is k (W' m + b') with the trained W', b' (an
        effective learning rate k times the trainer's for the gates under Adam).
        ``op_penalty`` (>= 0) and ``op_target`` (in [0, 1)): the operation penalty (module
        docstring); 0 turns it off; ``op_count`` how it counts ("events" or "spikes")."""
        from ..config import CompileConfig
        from ..errors import SnnccError

        CompileConfig(neg_mask=neg_mask, spatial_sparsity=spatial_sparsity, channel_threshold=channel_threshold)
        for k, v in (("gate_penalty", gate_penalty), ("op_penalty", op_penalty)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise SnnccError(f"{k} = {v!r}: need a finite number >= 0 (0 turns it off)")
        if not (isinstance(op_target, (int, float)) and 0 <= op_target < 1):
            raise SnnccError(f"op_target = {op_target!r}: need a share of the operations in [0, 1) "
                             "(0: penalize every operation)")
        if not (isinstance(gate_gain, (int, float)) and math.isfinite(gate_gain) and gate_gain > 0):
            raise SnnccError(f"gate_gain = {gate_gain!r}: need a finite number > 0")
        if op_count not in ("events", "spikes"):
            raise SnnccError(f"op_count = {op_count!r}: need 'events' (a synapse's nonzero inputs x fan-out, "
                             "the report's count) or 'spikes' (each spike's fan-out over the pooling windows)")
        if spatial_level not in ("per-step", "fixed"):
            raise SnnccError(f"spatial_level = {spatial_level!r}: need 'per-step' (the paper's kthvalue per sample "
                             "and step) or 'fixed' (one calibrated level per layer, as the compiled model)")
        for k, v in (("spatial_every", spatial_every), ("calib_images", calib_images)):
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise SnnccError(f"{k} = {v!r}: need an integer >= 1")
        self.mode, self.every, self.calib_images = spatial_level, spatial_every, calib_images
        self.levels: dict[str, int] = {}  # spatial_level="fixed": the frozen level per spiking conv layer
        self._calibrating: str | None = None
        self._seen: list[torch.Tensor] = []
        self.neg, self.ratio, self.theta = bool(neg_mask), float(spatial_sparsity), float(channel_threshold)
        self.penalty, self.gate_init, self.gain = float(gate_penalty), float(gate_init), float(gate_gain)
        self.op_penalty, self.op_target, self.op_count = float(op_penalty), float(op_target), op_count
        self.costs: dict[str, float] = {}
        self.paths: dict[str, list] = {}
        self._ops: list[torch.Tensor] = []
        self._full = 0.0
        self.op_share: float | None = None  # the last training batch's share (see the module docstring)
        self.gates = nn.ModuleDict()
        self.soft: list[torch.Tensor] = []
        self.thr: dict[str, torch.Tensor] = {}
        self.hw: dict[str, int] = {}

    def setup(self, trainer) -> None:
        from ..progress import log
        from .neurons import QuantLIF

        self.trainer = trainer
        if self.ratio > 0 and self.mode == "per-step":  # said, not silent: the trainer's accuracy is not the deployed model's
            log.warning("spatial mask: training picks the level per sample and step (the paper's kthvalue); "
                        "the compiled model uses one calibrated level per layer, so its accuracy can differ "
                        "from the trainer's: measure the compiled model (snncc eval, bench_sparsity.py)")
        mods = {n: m for n, m in trainer.net.model.named_modules() if isinstance(m, QuantLIF)}
        shapes, handles = {}, []
        for n, m in mods.items():
            m._spq, m._spq_name = None, n
            handles.append(m.register_forward_hook(
                lambda mod, i, o, n=n: shapes.setdefault(n, tuple(i[0].shape[1:])) and None))
        with torch.no_grad():
            trainer.net(torch.zeros((1,) + tuple(trainer.input_shape), device=trainer.device))
        for h in handles:
            h.remove()
        for n, m in mods.items():
            m._spq = self
            if self.theta and len(shapes[n]) == 3:
                c = shapes[n][0]
                g = nn.Linear(c, c).to(trainer.device).double()
                nn.init.zeros_(g.weight)
                nn.init.constant_(g.bias, self.gate_init / self.gain)
                self.gates[n.replace(".", "_")] = g
        self.names = {n.replace(".", "_"): n for n in mods}
        self.conv = [n for n in mods if len(shapes[n]) == 3]
        self.conv_c = {n: shapes[n][0] for n in self.conv}
        self._biases: dict[str, torch.Tensor] = {}
        self._bias_view = None
        if self.ratio and self.mode == "fixed":
            from ..errors import SnnccError
            if not self.conv:
                raise SnnccError("spatial_sparsity: the model has no spiking conv layer (shape C, H, W) to mask")
            self.calibrate(trainer)
        if self.op_penalty:
            paths = spike_paths(trainer.net.view.int_graph)
            costs = _costs(paths)
            self.costs = {n: costs.get(n, 0.0) for n in mods}
            self.paths = {n: [(pools, torch.as_tensor(fan, dtype=torch.float64, device=trainer.device))
                              for pools, fan in paths.get(n, [])] for n in mods}
            self._full = trainer.tc.steps * sum(  # every neuron firing at every step
                self._op_cost(n, torch.ones((1,) + shapes[n], dtype=torch.float64, device=trainer.device)).item()
                for n in mods)
            if not self._full:
                from ..errors import SnnccError
                raise SnnccError("op_penalty: no spike of this model reaches a synapse; nothing to penalize")

    @torch.no_grad()
    def calibrate(self, trainer) -> dict[str, int]:
        """spatial_level="fixed": each spiking conv layer's level on the first
        ``calib_images`` train images, as ``snncc.passes.masks.calibrate_spatial``
        (``spatial_level_of``: the same rule)."""
        from ..passes.masks import spatial_level_of

        x = trainer._x(trainer.data["x_train"][:self.calib_images])
        was = trainer.net.training
        trainer.net.eval()
        try:
            for name in self.conv:  # in order: the levels before it in place
                self.levels.pop(name, None)
                self._calibrating, self._seen = name, []
                trainer.net(x)
                self.levels[name] = spatial_level_of(torch.cat(self._seen).cpu().numpy(), self.ratio)
        finally:
            self._calibrating, self._seen = None, []
            trainer.net.train(was)
        return dict(self.levels)

    def _bias(self, name: str) -> torch.Tensor:
        """The layer's integer bias in input units (C, 1, 1): the trainer's integer input
        is the compiled a (the synapse's output) plus it; read from the compiler's view of
        the current scales (``net.refresh`` replaces the view)."""
        view = self.trainer.net.view
        if view is not self._bias_view:  # the object, not its id (an id can be reused)
            self._bias_view, self._biases = view, {}
        if name not in self._biases:
            op = view.int_graph.node(name)
            b = np.broadcast_to(np.asarray(op.bias, np.int64), (self.conv_c[name],))
            if np.any(b % (1 << op.act_shift)):
                from ..errors import SnnccError
                raise SnnccError(f"spatial_level='fixed': the bias of '{name}' is not a multiple of 2^act_shift")
            self._biases[name] = torch.as_tensor(b >> op.act_shift, dtype=torch.float64,
                                                device=self.trainer.device).reshape(-1, 1, 1)
        return self._biases[name]

    def after_step(self, trainer) -> None:
        if not (self.ratio and self.mode == "fixed"):
            return
        per = math.ceil(len(trainer.data["x_train"]) / trainer.tc.batch_size)
        if trainer.step % per == 0:  # the epoch's last step: the scales the epoch ends with
            trainer.net.refresh()
            self.calibrate(trainer)
        elif trainer.step % self.every == 0:
            self.calibrate(trainer)

    def parameters(self):
        return list(self.gates.parameters())

    def loss(self, trainer, out, y):
        soft, self.soft = self.soft, []
        ops, self._ops = self._ops, []
        loss = 0.0
        if soft and self.penalty:
            loss = self.penalty * torch.stack([s.mean() for s in soft]).mean().to(out.dtype)
        if ops and self.op_penalty:
            share = torch.stack(ops).sum() / (out.shape[0] * self._full)
            self.op_share = float(share.detach())
            loss = loss + self.op_penalty * torch.clamp(share - self.op_target, min=0.0).to(out.dtype)
        return loss

    def compile_options(self, gates_file: str | None = None) -> dict:
        return {"neg_mask": self.neg, "spatial_sparsity": self.ratio,
                **({"channel_gates": gates_file} if gates_file else {"channel_threshold": self.theta})}

    # ---- inside QuantLIF.forward
    def apply(self, mod, xi, prior, new, s, thr_i):
        """(v, vi, s) after the masks; ``xi`` the integer input, ``prior`` (v, vi) before
        the step, ``new`` (v, vi) after it, ``thr_i`` the integer threshold."""
        (v0, vi0), (v, vi) = prior, new
        conv = xi.dim() == 4
        if self.ratio and conv and self.mode == "fixed":
            a = (xi - self._bias(mod._spq_name)).abs()  # the compiled a: the synapse's output, without the bias
            if mod._spq_name == self._calibrating:
                self._seen.append(a.flatten())
            level = self.levels.get(mod._spq_name)
            if level is not None:  # None: a layer after the one being calibrated (its output is not used)
                skip = a <= level
                v, vi = torch.where(skip, v0, v), torch.where(skip, vi0, vi)
                s = s * (~skip).to(s.dtype)
        elif self.ratio and conv:
            a = xi.abs().flatten(1)
            k = max(1, math.ceil(self.ratio * a.shape[1]))
            level = a.kthvalue(k, dim=1).values.reshape(-1, 1, 1, 1)
            skip = xi.abs() <= level
            v, vi = torch.where(skip, v0, v), torch.where(skip, vi0, vi)
            s = s * (~skip).to(s.dtype)
        if self.neg:
            neg = vi < 0
            v, vi = v * (~neg).to(v.dtype), torch.where(neg, torch.zeros_like(vi), vi)
            s = s * (~neg).to(s.dtype)
        key = mod._spq_name.replace(".", "_")
        if key in self.gates:
            s = s * self._gate(key, vi0, thr_i).to(s.dtype)
        if self.op_penalty and torch.is_grad_enabled() and self.costs.get(mod._spq_name):
            self._ops.append(self._op_cost(mod._spq_name, s))
        return v, vi, s

    def _op_cost(self, name: str, s: torch.Tensor) -> torch.Tensor:
        """The synaptic operations of layer ``name``'s spikes s of one step (``op_count``)."""
        if self.op_count == "events":
            return path_events(s, self.paths[name])
        return s.sum() * self.costs[name]

    def _gate(self, key: str, vi0: torch.Tensor, thr_i: torch.Tensor) -> torch.Tensor:
        """The integer gate's hard decision with the float sigmoid's gradient, (N, C, 1, 1)."""
        g = self.gates[key]
        c, hw = vi0.shape[1], vi0.shape[2] * vi0.shape[3]
        thr = thr_i.reshape(-1).expand(c).double()
        self.thr[key], self.hw[key] = thr.detach(), hw
        scale = float(1 << GATE_BITS)
        wf = self.gain * g.weight * scale / thr[None, :]
        wq = wf + (torch.round(wf) - wf).detach()
        lf = hw * scale * (math.log(self.theta / (1 - self.theta)) - self.gain * g.bias)
        lq = lf + (torch.ceil(lf) - lf).detach()
        p = vi0.double().sum((2, 3))
        z = p @ wq.T
        hard = (z >= lq).double()
        soft = torch.sigmoid((z - lq) / (hw * scale))
        if torch.is_grad_enabled():
            self.soft.append(soft)
        return (hard + soft - soft.detach()).reshape(vi0.shape[0], c, 1, 1)

    def save_gates(self, path: str | Path, theta: float | None = None) -> Path:
        """The integer gates (``NAME/weight``, ``NAME/level``) for ``channel_gates``, at the
        trained threshold or at ``theta``."""
        from ..ir.serialize import write_npz

        arrays = {}
        scale, theta = float(1 << GATE_BITS), self.theta if theta is None else float(theta)
        for key, g in self.gates.items():
            thr = self.thr[key].cpu()
            w = torch.round(self.gain * g.weight.detach().cpu() * scale / thr[None, :]).numpy().astype(np.int64)
            c = w.shape[0]
            b = self.gain * g.bias.detach().cpu().numpy()
            lv = np.ceil(self.hw[key] * scale * (math.log(theta / (1 - theta)) - b))
            arrays[f"{self.names[key]}/weight"], arrays[f"{self.names[key]}/level"] = w, lv.astype(np.int64)
            assert lv.shape == (c,)
        write_npz(Path(path), arrays)
        return Path(path)
