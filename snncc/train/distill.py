"""Knowledge distillation from a teacher model, as a ``SpQuantTrainer`` hook.

``Distillation(teacher, alpha, temperature)`` makes the trainer's loss (cross-entropy,
``loss = "ce"``)

    (1 - alpha) CE(student, y) + alpha T^2 KL(softmax(teacher / T) || softmax(student / T))

(Hinton et al. 2015), with student and teacher the time-mean outputs (the logits the
cross-entropy reads). The teacher runs in the trainer's fake-quantized forward pass (the
compiled integer model it would deploy as: the same compile options, its own grids, no
sparsity masks: the masks hook only the student's neurons), in eval mode and without
gradient, on the same batch as the student. The hook sees the batch through a forward
pre-hook on the trainer's net (only training forwards, those with gradient); the loss it
adds is ``alpha (T^2 KL - CE)``, which turns the trainer's CE into the sum above.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class Distillation:
    """A trainer hook (``setup``, ``loss``)."""

    def __init__(self, teacher: nn.Module, alpha: float, temperature: float = 2.0) -> None:
        """``teacher``: a single-step snncc.nn model with the student's outputs (e.g. the
        model the student was fine-tuned from); ``alpha`` in [0, 1] the weight of the
        distillation term (0: plain CE); ``temperature`` > 0 softens both distributions."""
        from ..errors import SnnccError

        if not isinstance(teacher, nn.Module):
            raise SnnccError(f"distillation teacher: need a torch.nn.Module, got {type(teacher).__name__}")
        if isinstance(alpha, bool) or not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
            raise SnnccError(f"distill alpha = {alpha!r}: need a number in [0, 1] (the weight of the "
                             "distillation term; 0 turns it off)")
        if isinstance(temperature, bool) or not (isinstance(temperature, (int, float))
                                                 and math.isfinite(temperature) and temperature > 0):
            raise SnnccError(f"distill temperature = {temperature!r}: need a finite number > 0")
        self.model, self.alpha, self.temp = teacher, float(alpha), float(temperature)
        self.teacher: nn.Module | None = None
        self._x: torch.Tensor | None = None

    def setup(self, trainer) -> None:
        from ..errors import SnnccError
        from .net import QATNet, fold_batchnorm
        from .trainer import prepare_neurons

        if trainer.tc.loss != "ce":
            raise SnnccError(f"distillation weighs the cross-entropy (loss 'ce'); the trainer's loss is "
                             f"{trainer.tc.loss!r}")
        model = fold_batchnorm(self.model)
        prepare_neurons(model, trainer.tc)
        opts = {"gpw": trainer.tc.gpw, "sgs": trainer.tc.sgs, "sgs_smoothness": trainer.tc.sgs_smoothness}
        self.teacher = QATNet(model.to(trainer.device), trainer.qc, trainer.input_shape, trainer.tc.steps, opts)
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            probe = self.teacher(torch.zeros((1,) + tuple(trainer.input_shape), device=trainer.device))
            student = trainer.net(torch.zeros((1,) + tuple(trainer.input_shape), device=trainer.device))
        if probe.shape != student.shape:
            raise SnnccError(f"distillation teacher's output has shape {tuple(probe.shape[2:])} per step; the "
                             f"student's {tuple(student.shape[2:])}")
        trainer.net.register_forward_pre_hook(self._keep)

    def _keep(self, module, inputs) -> None:
        if torch.is_grad_enabled():
            self._x = inputs[0]

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's logits (time-mean output) for the batch ``x``."""
        with torch.no_grad():
            return self.teacher(x).mean(1)

    def loss(self, trainer, out: torch.Tensor, y: torch.Tensor):
        import torch.nn.functional as F

        x, self._x = self._x, None
        if not self.alpha or x is None:
            return 0.0
        s, t = out.mean(1), self.targets(x).to(out.dtype)
        kl = F.kl_div(F.log_softmax(s / self.temp, 1), F.log_softmax(t / self.temp, 1), log_target=True,
                      reduction="batchmean")
        return self.alpha * (self.temp ** 2 * kl - F.cross_entropy(s, y))
