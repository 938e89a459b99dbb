"""Train the ternary-membrane example with SpQuant-SNN's three sparsity masks in the
training loop (snncc.train.masks.SparsityMasks, a SpQuantTrainer hook): by default
fine-tune model_a.pt (quantized without masks); with --init model.pt the float model learns
its quantization and the masks together (the shipped model_s: run F3 of docs/sparsity.md,
--init model.pt --epochs 3, its command in metrics_s.json).

    python examples/fashion_mnist/train_sparse.py [--epochs 1] [--limit-train 6000]
        [--op-penalty 0] [--op-target 0] [--penalty 1.0] [--lr 2e-4] [--init model_a.pt]
        [--spatial-level per-step|fixed]

Options: --spatial / --theta the masks' settings in the loop (the paper's 0.35 / 0.47);
--spatial-level how the loop picks the spatial level: per-step (default, the paper's
kthvalue per sample and step) or fixed (one level per layer calibrated on the first 64
train images, as the compiled model; re-calibrated every 10 steps and at the epoch's end);
--penalty the gates' off-penalty (mean gate probability); --op-penalty / --op-target the
operation penalty (snncc.train.masks: op_penalty x max(0, share - op_target), share =
synaptic operations of the batch's spikes after the masks over their count if every
neuron fired at every step; 0 turns it off) and --op-count how it counts them (events:
a synapse's nonzero inputs x fan-out, as the report; spikes: each spike's fan-out over
the pooling windows on the way); --gain / --gate-init the gates' logit
gain and initial logit; --init the model to start from (model_a.pt, the default: the
unmasked ternary model; model.pt: the float model); --limit-train / --epochs the
training images and epochs (cosine lr schedule over them); --val N hold out the last N
training images (before --limit-train takes the first of the rest) and evaluate on them
instead of the test split, to choose a recipe without the test images; --distill ALPHA / --distill-temp T / --teacher distil from the unmasked
teacher (snncc.train.distill.Distillation: (1 - alpha) CE + alpha T^2 KL, the teacher
in the trainer's fake-quantized forward pass, default model_a.pt); --seed the seed of the
initial draws and the batch order (default 0); --out where the files go.

Writes model_s.pt (a plain snncc.nn model), model_s_gates.npz (the trained integer channel
gates at theta = 0.47), model_s_gates_050.npz (the same gates at theta = 0.5),
model_s.toml (compile options: model_a's plus neg_mask, spatial_sparsity = 0.35 and
channel_gates) and metrics_s.json (the command, the training time, the accuracy of the
trainer's masked forward pass on the test split).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from snncc.errors import SnnccError
from snncc.frontends.safe_load import load_model
from snncc.train import SpQuantTrainer
from snncc.train.distill import Distillation
from snncc.train.masks import SparsityMasks

HERE = Path(__file__).resolve().parent


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit-train", type=int, default=6000)
    p.add_argument("--limit-test", type=int, default=None)
    p.add_argument("--val", type=int, default=0,
                   help="hold out the last N training images as a validation split, evaluated instead of the test "
                        "split (0: none, the test split is evaluated)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--spatial", type=float, default=0.35)
    p.add_argument("--theta", type=float, default=0.47)
    p.add_argument("--spatial-level", choices=("per-step", "fixed"), default="per-step",
                   help="per-step: the paper's kthvalue per sample and step; fixed: the compiled model's "
                        "calibrated level per layer")
    p.add_argument("--penalty", type=float, default=1.0, help="weight of the gates' off-penalty")
    p.add_argument("--gain", type=float, default=500.0, help="gate logit gain (the gates' effective lr factor)")
    p.add_argument("--gate-init", type=float, default=1.0, help="the gates' initial logit (all channels on)")
    p.add_argument("--op-penalty", type=float, default=0.0, help="weight of the operation penalty (0: off)")
    p.add_argument("--op-target", type=float, default=0.0,
                   help="share of the operations below which the operation penalty is 0")
    p.add_argument("--op-count", choices=("spikes", "events"), default="spikes",
                   help="how the penalty counts operations: events (a synapse's nonzero inputs x fan-out, "
                        "a pooled window once: the report's measure) or spikes (each spike's fan-out over "
                        "the pooling windows)")
    p.add_argument("--distill", type=float, default=0.0,
                   help="weight alpha of distillation from --teacher: (1 - alpha) CE + alpha T^2 KL (0: off)")
    p.add_argument("--distill-temp", type=float, default=2.0, help="the distillation temperature T")
    p.add_argument("--teacher", type=Path, default=HERE / "model_a.pt",
                   help="the distillation teacher (unmasked, in the trainer's fake-quantized forward pass)")
    p.add_argument("--init", type=Path, default=HERE / "model_a.pt", help="the model to fine-tune")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0,
                   help="the seed of the initial draws and the batch order (run-to-run spread of a recipe)")
    p.add_argument("--out", type=Path, default=HERE)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    try:
        hook = SparsityMasks(neg_mask=True, spatial_sparsity=a.spatial, channel_threshold=a.theta,
                             gate_penalty=a.penalty, gate_gain=a.gain, gate_init=a.gate_init,
                             op_penalty=a.op_penalty, op_target=a.op_target, op_count=a.op_count,
                             spatial_level=a.spatial_level)
        hooks = [hook] + ([Distillation(load_model(a.teacher), a.distill, a.distill_temp)] if a.distill else [])
    except SnnccError as e:
        p.error(str(e))
    tr = SpQuantTrainer(load_model(a.init), "fashion-mnist", 4, quantizer="apot",
                        state_quant="ternary", hooks=hooks, limit_train=a.limit_train, limit_test=a.limit_test,
                        val=a.val, lr=a.lr, batch_size=128, checkpoint_dir=None, seed=a.seed)
    t0 = time.perf_counter()
    hist = tr.train(a.epochs)["history"]
    if hook.op_share is not None:
        hist[-1]["last_batch_op_share"] = hook.op_share
    seconds = time.perf_counter() - t0
    acc = tr.evaluate("val" if a.val else "test")
    tr.save(a.out / "model_s.pt")
    hook.save_gates(a.out / "model_s_gates.npz")
    hook.save_gates(a.out / "model_s_gates_050.npz", theta=0.5)
    toml = (a.out / "model_s.toml").read_text()
    for k, v in (("neg_mask", "true"), ("spatial_sparsity", str(a.spatial)), ("channel_threshold", "0.0"),
                 ("channel_gates", '"model_s_gates.npz"')):
        toml = "\n".join(f"{k} = {v}" if line.startswith(f"{k} = ") else line for line in toml.splitlines()) + "\n"
    (a.out / "model_s.toml").write_text(toml)
    out = {"command": "python examples/fashion_mnist/train_sparse.py " + " ".join(argv if argv is not None
                                                                                   else sys.argv[1:]),
           "epochs": a.epochs, "train_images": a.limit_train, "train_seconds": round(seconds, 1),
           "threads": a.threads, "init": a.init.name, "spatial": a.spatial, "spatial_level": a.spatial_level,
           **({"trained_spatial_levels": hook.levels} if hook.levels else {}), "theta": a.theta,
           "gate_penalty": a.penalty, "op_penalty": a.op_penalty, "op_target": a.op_target,
           "op_count": a.op_count, "lr": a.lr, **({"seed": a.seed} if a.seed else {}),
           **({"distill": a.distill, "distill_temp": a.distill_temp, "teacher": a.teacher.name} if a.distill else {}),
           "val": a.val, **({"val_accuracy": acc} if a.val else {"masked_fake_quant_accuracy": acc}),
           "history": hist,
           "note": ("accuracy of the trainer's forward pass: spatial level per sample and step (kthvalue); the "
                    "compiled model uses one calibrated level per layer (benchmarks/bench_sparsity.py measures it)"
                    if a.spatial_level == "per-step" else
                    "accuracy of the trainer's forward pass with the fixed spatial levels trained_spatial_levels, "
                    "calibrated on the first 64 train images as the compiled model's (mask_calib)")}
    (a.out / "metrics_s.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "history"}, indent=2))
    return out


if __name__ == "__main__":
    main()
