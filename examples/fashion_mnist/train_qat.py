"""Fine-tune the shipped float model (model.pt) with quantization-aware training.

    python examples/fashion_mnist/train_qat.py a   # ternary membrane + 4-bit APoT weights
    python examples/fashion_mnist/train_qat.py b   # QP-SNN: 4-bit ReScaW + 50 % SVS pruning + fine-tune

(the shipped models: see their metrics_<recipe>.json for the exact command line)

Writes model_<recipe>.pt (loads with snncc's safe loader), model_<recipe>.toml (its
compile options: ``snncc compile model_a.pt --config model_a.toml --input-shape 1,28,28``)
and metrics_<recipe>.json (accuracy of the compiled integer model on the full test split,
agreement with the fake-quantized model, training time).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from snncc.frontends.safe_load import load_model
from snncc.train import SpQuantTrainer, qpsnn

HERE = Path(__file__).resolve().parent
RECIPES = {
    "a": {"quantization_bits": 4, "quantizer": "apot", "state_quant": "ternary"},
    "b": {"quantization_bits": 4, "quantizer": "rescaw"},
}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", choices=sorted(RECIPES))
    p.add_argument("--epochs", type=int, default=2, help="epochs (b: of the QAT phase)")
    p.add_argument("--ft-epochs", type=int, default=2, help="b: epochs of fine-tuning after pruning")
    p.add_argument("--gamma", default="percentile", help="b: ReScaW gamma (mean | max | percentile)")
    p.add_argument("--ratio", type=float, default=0.5, help="b: fraction of channels pruned (SVS)")
    p.add_argument("--limit-train", type=int, default=12000)
    p.add_argument("--limit-test", type=int, default=None)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=HERE)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model = load_model(HERE / "model.pt")
    opts = dict(limit_train=a.limit_train, limit_test=a.limit_test, lr=a.lr, batch_size=128,
                checkpoint_dir=str(a.out / f".ckpt_{a.recipe}"))
    t0 = time.perf_counter()
    if a.recipe == "a":
        tr = SpQuantTrainer(model, "fashion-mnist", **RECIPES["a"], **opts)
        before = tr.evaluate()
        rec = {"post_training_accuracy": before, "history": tr.train(a.epochs)["history"]}
    else:
        ptq = SpQuantTrainer(model, "fashion-mnist", 4, quantizer="rescaw", rescaw_gamma=a.gamma,
                             **{**opts, "checkpoint_dir": None}).evaluate()
        tr, rec = qpsnn(model, "fashion-mnist", 4, qat_epochs=a.epochs, finetune_epochs=a.ft_epochs,
                        gamma=a.gamma, ratio=a.ratio, **opts)
        rec = {"post_training_accuracy": ptq, "gamma": a.gamma, "ratio": a.ratio, "ft_epochs": a.ft_epochs, **rec}
    train_s = time.perf_counter() - t0
    agree = tr.agreement()
    out = {"command": "python examples/fashion_mnist/train_qat.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "recipe": a.recipe, **RECIPES[a.recipe], "epochs": a.epochs, "train_images": a.limit_train,
           "train_seconds_incl_evals": round(train_s, 1), "threads": a.threads, **agree, **rec}
    tr.save(a.out / f"model_{a.recipe}.pt")
    (a.out / f"metrics_{a.recipe}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if not isinstance(v, (list, dict))}, indent=2))
    return out


if __name__ == "__main__":
    main()
