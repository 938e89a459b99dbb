"""Train the shipped Fashion-MNIST ANN (model_def.py) on CPU, for SNNQ's conversion flow.

    python examples/fashion_mnist_ann/train.py              # writes model.pt and metrics.json
    python examples/fashion_mnist_ann/train.py --epochs 1 --limit-train 512 --out /tmp/ann.pt

Data: the full Fashion-MNIST train split (60k) via :mod:`snncc.data`, evaluation on the
full 10k test split. Inputs are ``uint8 pixels / 255`` (no mean/std normalization: the
compiler feeds integer pixels with an input scale of 1/255). Cross-entropy, Adam with a
per-iteration cosine schedule, light augmentation-free training; seeds fixed. The QCFS
clip values (``up``) train with the weights (straight-through floor), without weight
decay. The whole module is saved with ``torch.save`` (CPU, eval mode).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from model_def import LEVELS, build  # noqa: E402

from snncc import data  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "model.pt")
    p.add_argument("--metrics", type=Path, default=None, help="metrics JSON (default: metrics.json beside --out)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--limit-train", type=int, default=None, help="use only the first N train images")
    p.add_argument("--limit-test", type=int, default=None, help="use only the first N test images")
    p.add_argument("--no-progress", action="store_true", help="disable the tqdm progress bar")
    return p.parse_args(argv)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def to_float(x_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x_u8).float().div_(255.0)


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    return correct / len(x)


def _optimizer(model, lr: float, wd: float):
    clips = [p for n, p in model.named_parameters() if n.endswith(".up")]
    rest = [p for n, p in model.named_parameters() if not n.endswith(".up")]
    return torch.optim.Adam([{"params": rest, "weight_decay": wd}, {"params": clips, "weight_decay": 0.0}], lr=lr)


def _epoch(model, opt, sched, xtr, ytr, args, gen, label: str) -> dict:
    model.train()
    perm = torch.randperm(len(xtr), generator=gen)
    nb = math.ceil(len(xtr) / args.batch_size)
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(range(nb), desc=label, disable=args.no_progress, mininterval=2.0, file=sys.stdout)
    for b in bar:
        idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
        logits = model(xtr[idx])
        loss = F.cross_entropy(logits, ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += float(loss.detach()) * len(idx)
        correct += int((logits.argmax(1) == ytr[idx]).sum())
        seen += len(idx)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
    bar.close()
    return {"train_loss": loss_sum / seen, "train_accuracy": correct / seen}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    xtr_u8, ytr_np = data.load("fashion-mnist", "train")
    xte_u8, yte_np = data.load("fashion-mnist", "test")
    xtr_u8, ytr_np = xtr_u8[:args.limit_train], ytr_np[:args.limit_train]
    xte_u8, yte_np = xte_u8[:args.limit_test], yte_np[:args.limit_test]
    xtr, ytr, xte, yte = to_float(xtr_u8), torch.from_numpy(ytr_np), to_float(xte_u8), torch.from_numpy(yte_np)

    model = build()
    params = sum(p.numel() for p in model.parameters())
    opt = _optimizer(model, args.lr, args.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * math.ceil(len(xtr) / args.batch_size))
    gen = torch.Generator().manual_seed(args.seed)
    print(f"training {params} parameters on {len(xtr)} images, {args.epochs} epochs, "
          f"{torch.get_num_threads()} threads", flush=True)
    t0 = time.perf_counter()
    history = []
    for epoch in range(args.epochs):
        h = _epoch(model, opt, sched, xtr, ytr, args, gen, f"epoch {epoch + 1}/{args.epochs}")
        history.append({"epoch": epoch + 1, **h})
        print(f"epoch {epoch + 1}: loss {h['train_loss']:.4f}, train acc {h['train_accuracy']:.4f}, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    train_seconds = time.perf_counter() - t0
    test_acc = evaluate(model, xte, yte)
    print(f"ANN test accuracy ({len(xte)} images): {test_acc:.4f}", flush=True)

    model = model.cpu().eval()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model, args.out)
    clips = [round(float(m.up.detach()), 4) for m in model.modules() if hasattr(m, "up")]
    metrics = {"ann_test_accuracy": round(test_acc, 6), "test_images": len(xte), "epochs": args.epochs,
               "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
               "qcfs_levels": LEVELS, "qcfs_up": clips, "train_images": len(xtr),
               "train_seconds": round(train_seconds, 1), "threads": torch.get_num_threads(), "params": params,
               "torch": torch.__version__, "seed": args.seed, "history": history}
    path = args.metrics or args.out.parent / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes), {path}")
    return metrics


if __name__ == "__main__":
    main()
