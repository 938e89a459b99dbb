"""Knowledge distillation (snncc.train.distill.Distillation) and the trainer's validation
split (``val``): the loss by formula, the teacher unmasked and exactly the trainer's
fake-quantized model, the pull towards the teacher, the bad values."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snncc.errors import SnnccError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import FAST, data, tiny  # noqa: E402

OPTS = dict(quantizer="apot", state_quant="ternary", **FAST)


def _trainer(hooks=(), student=None, **kw):
    from snncc.train import SpQuantTrainer

    return SpQuantTrainer(student if student is not None else tiny(), data(), 4, hooks=list(hooks), **OPTS, **kw)


def test_the_loss_is_the_weighted_ce_plus_the_tempered_kl():
    """(1 - alpha) CE + alpha T^2 KL(teacher || student) on the time-mean outputs, the
    teacher's logits from its own fake-quantized forward pass of the same batch."""
    from snncc.train.distill import Distillation

    hook = Distillation(tiny(seed=1), alpha=0.3, temperature=2.0)
    tr = _trainer([hook])
    x, y = tr._x(tr.data["x_train"][:16]), torch.as_tensor(tr.data["y_train"][:16])
    out = tr.net(x)  # with gradient: the hook keeps the batch
    t = hook.targets(x)
    s = out.mean(1)
    kl = (F.softmax(t / 2, 1) * (F.log_softmax(t / 2, 1) - F.log_softmax(s / 2, 1))).sum(1).mean().detach()
    want = 0.7 * F.cross_entropy(s, y).detach() + 0.3 * 4.0 * kl
    got = tr.loss(out, y).detach()
    assert float(kl) > 1e-3  # different teacher and student: the KL term is not trivially 0
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    assert hook._x is None  # the batch is used once
    assert float(tr.loss(out, y).detach()) == pytest.approx(float(F.cross_entropy(s, y).detach()), rel=1e-7)  # no batch kept: CE


def test_the_teacher_is_the_unmasked_fake_quantized_model():
    """With the sparsity masks on the student, the teacher's logits are exactly those of a
    trainer of the teacher model without hooks (its own grids, no mask), and no teacher
    neuron carries the masks."""
    from snncc.train.distill import Distillation
    from snncc.train.masks import SparsityMasks

    hook = Distillation(tiny(seed=1), alpha=0.5)
    tr = _trainer([SparsityMasks(neg_mask=True, spatial_sparsity=0.35, spatial_level="fixed",
                                 channel_threshold=0.47), hook])
    plain = _trainer(student=tiny(seed=1))
    x = tr._x(tr.data["x_test"])
    with torch.no_grad():
        want = plain.net(x).mean(1)
    assert torch.equal(hook.targets(x), want)
    assert all(getattr(m, "_spq", None) is None for m in hook.teacher.modules())
    assert sum(getattr(m, "_spq", None) is not None for m in tr.net.modules()) == 2


def test_distillation_pulls_the_student_towards_the_teacher():
    """Same seed, same data, three epochs: the student trained with alpha = 1 ends clearly
    nearer the teacher (KL on the test images) than the one trained with alpha = 0, whose
    weights are exactly those trained without the hook."""
    from snncc.train.distill import Distillation

    teacher = tiny(seed=1)

    def train(alpha):
        hooks = [Distillation(teacher, alpha=alpha, temperature=2.0)] if alpha is not None else []
        tr = _trainer(hooks, lr=0.01)
        tr.train(3)
        ref = Distillation(teacher, alpha=1.0)
        ref.setup(tr)
        x = tr._x(tr.data["x_test"])
        with torch.no_grad():
            s, t = tr.net(x).mean(1), ref.targets(x)
        kl = F.kl_div(F.log_softmax(s / 2, 1), F.log_softmax(t / 2, 1), log_target=True, reduction="batchmean")
        return tr, float(kl)

    plain, kl_plain = train(None)
    zero, kl_zero = train(0.0)
    _, kl_distilled = train(1.0)
    for a, b in zip(plain.net.parameters(), zero.net.parameters()):
        assert torch.equal(a, b)
    assert kl_zero == kl_plain and kl_distilled < 0.5 * kl_plain


@pytest.mark.parametrize("kw, words", [
    (dict(alpha=-0.1), "distill alpha = -0.1"), (dict(alpha=1.5), "distill alpha = 1.5"),
    (dict(alpha=float("nan")), "distill alpha = nan"), (dict(alpha=True), "distill alpha = True"),
    (dict(alpha=0.5, temperature=0), "distill temperature = 0"),
    (dict(alpha=0.5, temperature=float("inf")), "distill temperature = inf"),
    (dict(alpha=0.5, temperature=-2.0), "distill temperature = -2.0"),
])
def test_bad_distillation_values_are_clear_errors(kw, words):
    from snncc.train.distill import Distillation

    with pytest.raises(SnnccError, match=words.replace("(", r"\(")):
        Distillation(tiny(), **kw)


def test_bad_teachers_and_losses_are_clear_errors():
    from torch import nn

    from snncc.train.distill import Distillation

    with pytest.raises(SnnccError, match="teacher: need a torch.nn.Module, got str"):
        Distillation("model_a.pt", alpha=0.5)
    with pytest.raises(SnnccError, match="weighs the cross-entropy .* the trainer's loss is 'tet'"):
        _trainer([Distillation(tiny(), alpha=0.5)], loss="tet")
    small = tiny()
    small[-1] = nn.Linear(6 * 4 * 4, 12)
    with pytest.raises(SnnccError, match=r"teacher's output has shape \(12,\) per step; the student's \(10,\)"):
        _trainer([Distillation(small, alpha=0.5)])


def test_the_val_split_is_the_last_training_images_before_limit_train():
    from snncc.train.data import load_dataset

    xtr, ytr, xte, yte = data(40)
    d = load_dataset((xtr, ytr, xte, yte), limit_train=5, val=6)
    assert np.array_equal(d["x_val"], xtr[14:]) and np.array_equal(d["y_val"], ytr[14:])
    assert np.array_equal(d["x_train"], xtr[:5]) and np.array_equal(d["y_train"], ytr[:5])
    d = load_dataset((xtr, ytr, xte, yte), val=6)
    assert np.array_equal(d["x_train"], xtr[:14])
    d = load_dataset((xtr, ytr, xte, yte))
    assert d["x_val"] is None and np.array_equal(d["x_train"], xtr)
    with pytest.raises(SnnccError, match="val = 20: the training split has 20 images"):
        load_dataset((xtr, ytr, xte, yte), val=20)


def test_the_trainer_evaluates_the_val_split():
    tr = _trainer(val=8)
    x, y = data()[:2]
    assert len(tr.data["x_train"]) == 40 and np.array_equal(tr.data["x_val"], x[40:])
    assert tr.evaluate("val") == float((tr.predict(x[40:]) == y[40:]).mean())
    with pytest.raises(SnnccError, match="the dataset has no val split"):
        _trainer().evaluate("val")
    for bad in (-1, True, 2.5):
        with pytest.raises(SnnccError, match=f"val = {bad!r}: an integer >= 0"):
            _trainer(val=bad)
