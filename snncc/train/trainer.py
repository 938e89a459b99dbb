"""SpQuantTrainer: quantization-aware training on the compiler's integer semantics."""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import nn as snn
from ..config import CompileConfig
from ..errors import SnnccError, UnsupportedLayerError
from .config import TrainConfig, check_combination, write_compile_toml
from .data import fit_shape, load_dataset
from .net import QATNet, fold_batchnorm, plain_copy

COMPILE_KEYS = {f for f in CompileConfig.__dataclass_fields__}
TRAIN_KEYS = {f for f in TrainConfig.__dataclass_fields__}


def split_options(quantization_bits: int, options: dict, config=None, quant=None) -> tuple:
    """(TrainConfig, CompileConfig) from keyword options (each name belongs to one)."""
    bad = sorted(set(options) - COMPILE_KEYS - TRAIN_KEYS)
    if bad:
        raise SnnccError(f"unknown option(s) {', '.join(bad)}; training options: {', '.join(sorted(TRAIN_KEYS))}; "
                         f"compile options: {', '.join(sorted(COMPILE_KEYS))}")
    tc = config.to_dict() if isinstance(config, TrainConfig) else dict(config or {})
    qc = quant.to_dict() if isinstance(quant, CompileConfig) else dict(quant or {})
    qc.setdefault("weight_bits", quantization_bits)
    for k, v in options.items():
        if k == "steps":  # both configs (an explicit quant steps that differs is reported below)
            tc[k] = v
            qc.setdefault(k, v)
        elif k in TRAIN_KEYS:
            tc[k] = v
        else:
            qc[k] = v
    if "steps" in tc and "steps" not in qc:
        qc["steps"] = tc["steps"]
    if "steps" in qc and "steps" not in tc:
        tc["steps"] = qc["steps"]
    return TrainConfig.from_dict(tc), CompileConfig.from_dict(qc)


def distributed() -> tuple[int, int]:
    """(rank, world size): torch.distributed if initialised, or initialised here from
    torchrun's environment (WORLD_SIZE > 1); else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def leaky_to_lif(model: nn.Module) -> None:
    """Replace every snntorch.Leaky(reset_mechanism='zero', init_hidden=True) with the
    snncc.nn.LIF the compiler reads it as (same beta and threshold, hard reset: the
    compiler's frontend maps both to the same integer neuron). Other Leaky stay (refused)."""
    for parent in list(model.modules()):
        for k, m in list(parent._modules.items()):
            if type(m).__name__ == "Leaky" and m.reset_mechanism == "zero" and m.init_hidden \
                    and m.beta.numel() == 1 and m.threshold.numel() == 1:
                parent._modules[k] = snn.LIF(beta=float(m.beta.clamp(0, 1)), threshold=float(m.threshold),
                                             reset="zero")


def prepare_neurons(model: nn.Module, tc: TrainConfig) -> None:
    """Put the training options on the neurons; refuse what the trainer cannot run."""
    leaky_to_lif(model)
    errs = []
    mods = list(model.named_modules())
    for name, m in mods:
        if isinstance(m, snn.LIF):
            if m.alpha is not None:
                errs.append(f"'{name}': LIF with a synaptic current (alpha) is not supported by the trainer yet")
            if m.v_init != 0.0:
                errs.append(f"'{name}': v_init = {m.v_init}; the trainer needs v_init = 0")
            if m.state_level is not None and tc.state_quant != "none":
                errs.append(f"'{name}': state_level is set; the trainer uses the threshold as the level")
        elif type(m).__name__ == "Leaky":
            errs.append(f"'{name}': snntorch.Leaky with reset_mechanism {m.reset_mechanism!r} is compiled by "
                        "snncc but trained only with reset_mechanism 'zero' (snncc's hard reset); convert it "
                        "to snncc.nn.LIF (beta, threshold, reset) or use reset_mechanism='zero'")
    last = [m for _, m in mods if len(m._modules) == 0 and not isinstance(m, (nn.Dropout, nn.Identity))]
    if tc.state_quant != "none" and last and isinstance(last[-1], snn.LIF):
        errs.append("the model ends in a neuron layer, whose output is the readout; a "
                    f"{tc.state_quant} membrane there leaves the readout no membrane to read: end the model "
                    "with a Linear (the compiler adds an integrating readout) or use state_quant 'none'")
    if errs:
        raise UnsupportedLayerError("the trainer cannot quantize this model:\n  - " + "\n  - ".join(errs))
    for m in model.modules():
        if isinstance(m, snn.LIF):
            m.state_quant = None if tc.state_quant == "none" else tc.state_quant
            if tc.learn_threshold and not isinstance(m.threshold, nn.Parameter):
                thr = m.threshold.detach().clone()
                del m.threshold
                m.threshold = nn.Parameter(thr)


class SpQuantTrainer:
    """Quantization-aware training whose forward pass is the compiled integer model.

    ``model``: a single-step snncc.nn model (float, e.g. the shipped example); ``dataset``:
    a dataset name or arrays (see :func:`snncc.train.data.load_dataset`);
    ``quantization_bits``: weight bits; other keywords are TrainConfig or CompileConfig
    fields (``quantizer="apot"``, ``state_quant="ternary"``, ``epochs=3``, ...).
    ``hooks``: objects with optional methods ``setup(trainer)``, ``parameters()``,
    ``loss(trainer, out, y)``, ``after_step(trainer)``, ``export(model)`` (how SpQuant's
    sparsity masks plug in)."""

    def __init__(self, model: nn.Module, dataset, quantization_bits: int = 8, *, config=None, quant=None,
                 hooks=(), **options) -> None:
        self.tc, self.qc = split_options(quantization_bits, options, config, quant)
        check_combination(self.tc, self.qc)
        self.rank, self.world = distributed()
        if self.tc.batch_size % self.world:
            raise SnnccError(f"batch_size {self.tc.batch_size} does not split over {self.world} processes")
        torch.manual_seed(self.tc.seed)
        self.data = load_dataset(dataset, self.tc.limit_train, self.tc.limit_test, self.tc.val)
        model = fold_batchnorm(model)
        self.input_shape = fit_shape(self.data, model)
        prepare_neurons(model, self.tc)
        self.device = self._device()
        opts = {"gpw": self.tc.gpw, "sgs": self.tc.sgs, "sgs_smoothness": self.tc.sgs_smoothness}
        self.net = QATNet(model.to(self.device), self.qc, self.input_shape, self.tc.steps, opts)
        self.hooks = list(hooks)
        for h in self.hooks:
            getattr(h, "setup", lambda t: None)(self)
        self.engine = self.net
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.engine = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        params = list(self.net.parameters()) + [p for h in self.hooks for p in getattr(h, "parameters", list)()]
        self.opt = torch.optim.Adam(params, lr=self.tc.lr, weight_decay=self.tc.weight_decay)
        self.epoch, self.step, self.history, self.seconds = 0, 0, [], 0.0
        self.sched = None

    def _device(self) -> torch.device:
        d = self.tc.device
        if d == "auto":
            d = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
        if d.startswith("cuda") and not torch.cuda.is_available():
            raise SnnccError(f"device {d!r} asked for but CUDA is not available")
        return torch.device(d)

    def _x(self, xb: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(xb.astype(np.float32) * np.float32(self.qc.input_scale), device=self.device)

    def _schedule(self, epochs: int) -> None:
        per = math.ceil(len(self.data["x_train"]) / self.tc.batch_size)
        total = self._total = max(1, per * epochs)
        if self.tc.lr_schedule == "cosine":
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=total)
        else:
            self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: 1.0)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """ce: cross-entropy of the time-mean output; tet: TET's per-step cross-entropy
        (+ lambda MSE(output, 1))."""
        if self.tc.loss == "ce":
            loss = F.cross_entropy(out.mean(1), y)
        else:
            t = out.shape[1]
            ce = sum(F.cross_entropy(out[:, i], y) for i in range(t)) / t
            lam = self.tc.tet_lambda
            loss = (1 - lam) * ce + (lam * F.mse_loss(out, torch.ones_like(out)) if lam else 0.0)
        for h in self.hooks:
            if hasattr(h, "loss"):
                loss = loss + h.loss(self, out, y)
        return loss

    def train(self, epochs: int | None = None, resume: bool = False) -> dict:
        """Train ``epochs`` (default: the config's) epochs; ``resume`` continues from the
        checkpoint in ``checkpoint_dir``. Returns the summary (also written as JSON)."""
        epochs = self.tc.epochs if epochs is None else epochs
        self._schedule(max(epochs, self.tc.epochs))  # the schedule spans the configured epochs
        if resume:
            self.load_checkpoint()
            if hasattr(self.sched, "T_max"):  # resumed for more epochs than planned: stretch the cosine
                self.sched.T_max = max(self.sched.T_max, self._total)
        while self.epoch < epochs:
            t0 = time.perf_counter()
            self.history.append(self._epoch(epochs))
            self.seconds += time.perf_counter() - t0
            self.epoch += 1
            self.save_checkpoint()
        return self.summary()

    def _batches(self):
        from torch.utils.data.distributed import DistributedSampler

        n = len(self.data["x_train"])
        sampler = DistributedSampler(range(n), num_replicas=self.world, rank=self.rank, shuffle=True,
                                     seed=self.tc.seed, drop_last=False)
        sampler.set_epoch(self.epoch)
        idx = np.fromiter(iter(sampler), dtype=np.int64)
        b = self.tc.batch_size // self.world
        return [idx[i:i + b] for i in range(0, len(idx), b)]

    def _epoch(self, epochs: int) -> dict:
        from tqdm import tqdm

        self.engine.train()
        batches = self._batches()
        bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{epochs}", disable=not self.tc.progress or self.rank,
                   mininterval=2.0, file=sys.stdout)
        loss_sum, correct, seen = 0.0, 0, 0
        for idx in bar:
            x, y = self._x(self.data["x_train"][idx]), torch.as_tensor(self.data["y_train"][idx], device=self.device)
            out = self.engine(x)
            loss = self.loss(out, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            self.step += 1
            for h in self.hooks:
                getattr(h, "after_step", lambda t: None)(self)
            if self.step % self.tc.refresh_every == 0:
                self.net.refresh()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((out.detach().mean(1).argmax(1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
        bar.close()
        self.net.refresh()
        return {"epoch": self.epoch + 1, "train_loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1), "lr": self.opt.param_groups[0]["lr"]}

    @torch.no_grad()
    def predict(self, x: np.ndarray, batch: int = 500) -> np.ndarray:
        """The fake-quantized model's class predictions on integer inputs ``x`` (argmax of
        the integer readout: the summed output in units of the readout's sigma)."""
        self.net.refresh()
        self.net.eval()
        sig = self.net.readout_units()
        preds = []
        for i in range(0, len(x), batch):
            out = self.net(self._x(x[i:i + batch]))
            if sig is not None:
                score = torch.round(out.double().sum(1) / sig.double())
            else:
                score = out.sum(1)
            preds.append(score.reshape(len(score), -1).argmax(1).cpu().numpy())
        self.net.train()
        return np.concatenate(preds) if preds else np.zeros(0, np.int64)

    def evaluate(self, split: str = "test") -> float:
        """Accuracy of the fake-quantized (= compiled integer) model on a split ("test",
        "train", or "val": the held-out last ``val`` training images)."""
        x, y = self.data.get(f"x_{split}"), self.data.get(f"y_{split}")
        if x is None:
            raise SnnccError(f"the dataset has no {split} split")
        return float((self.predict(x) == y).mean())

    def agreement(self, split: str = "test", batch: int = 500) -> dict:
        """Compile the current model (the compiler's passes, the reference interpreter) and
        compare its predictions with the fake-quantized model's on ``split``."""
        from ..reference import interpreter as R

        x, y = self.data[f"x_{split}"], self.data[f"y_{split}"]
        fq = self.predict(x)
        g = self.net.view.int_graph
        ints = np.concatenate([R.predict(g, R.run(g, x[i:i + batch])) for i in range(0, len(x), batch)])
        return {"samples": int(len(x)), "agreement": float((fq == ints).mean()),
                "fake_quant_accuracy": float((fq == y).mean()), "integer_accuracy": float((ints == y).mean())}

    def export(self) -> nn.Module:
        """The trained model as plain snncc.nn / torch.nn modules (CPU, eval mode)."""
        m = plain_copy(self.net.model).cpu().eval()
        for h in self.hooks:
            if hasattr(h, "export"):
                m = h.export(m)
        return m

    def save(self, path: str | Path) -> Path:
        """``snncc.save`` the exported model with its input shape (loads with snncc's safe
        loader, compiles without --input-shape) and write the compile options beside it
        (PATH.toml: ``snncc compile PATH --config PATH.toml``)."""
        from ..frontends.pytorch import save as save_model

        path = Path(path)
        if self.rank == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_model(self.export(), path, input_shape=tuple(self.input_shape))
            write_compile_toml(path.with_suffix(".toml"), self.qc)
        return path

    def save_checkpoint(self) -> None:
        if self.rank or not self.tc.checkpoint_dir:
            return
        d = Path(self.tc.checkpoint_dir)
        d.mkdir(parents=True, exist_ok=True)
        state = {"model": self.net.model.state_dict(), "opt": self.opt.state_dict(),
                 "sched": self.sched.state_dict(), "epoch": self.epoch, "step": self.step,
                 "history": json.dumps(self.history), "seconds": self.seconds,
                 "rng": torch.get_rng_state(), "train": json.dumps(self.tc.to_dict()),
                 "quantization": json.dumps(self.qc.to_dict())}
        tmp = d / "checkpoint.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, d / "checkpoint.pt")

    def load_checkpoint(self) -> None:
        if not self.tc.checkpoint_dir or not (Path(self.tc.checkpoint_dir) / "checkpoint.pt").is_file():
            raise SnnccError(f"nothing to resume: no checkpoint.pt in checkpoint_dir {self.tc.checkpoint_dir!r}")
        st = torch.load(Path(self.tc.checkpoint_dir) / "checkpoint.pt", map_location=self.device, weights_only=True)
        if json.loads(st["quantization"]) != self.qc.to_dict():
            raise SnnccError("the checkpoint was trained with other quantization options; resume with the same config")
        self.net.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["opt"])
        self.sched.load_state_dict(st["sched"])
        self.epoch, self.step, self.seconds = int(st["epoch"]), int(st["step"]), float(st["seconds"])
        self.history = json.loads(st["history"])
        torch.set_rng_state(st["rng"])
        self.net.refresh()

    def summary(self, path: str | Path | None = None) -> dict:
        s = {"epochs": self.epoch, "steps": self.step, "train_seconds": round(self.seconds, 1),
             "world_size": self.world, "device": str(self.device), "history": self.history,
             "train": self.tc.to_dict(), "quantization": self.qc.to_dict()}
        if path is not None and self.rank == 0:
            Path(path).write_text(json.dumps(s, indent=2) + "\n")
        return s
