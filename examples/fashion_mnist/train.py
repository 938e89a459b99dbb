"""Train the shipped Fashion-MNIST spiking CNN (model_def.py) on CPU.

    python examples/fashion_mnist/train.py                 # writes model.pt, metrics.json, samples.npz
    python examples/fashion_mnist/train.py --epochs 1 --limit-train 512 --out /tmp/m.pt

Data: the full Fashion-MNIST train split (60k) from the Debian package
``dataset-fashion-mnist`` via :mod:`snncc.data`; evaluation on the full 10k test split.
Inputs are ``uint8 pixels / 255`` (no mean/std normalization: the compiler feeds integer
pixels with an input scale of 1/255), presented at each of T steps. The loss is the
cross-entropy of the time-mean logits. Adam with a per-iteration cosine schedule.

The whole module is saved with ``snncc.save`` (``torch.save`` keeping the input shape
1x28x28 in the module; state cleared, CPU, eval mode); it loads with
``snncc.frontends.safe_load.load_model`` (``torch.load(weights_only=True)``).
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

from model_def import T as DEFAULT_T  # noqa: E402
from model_def import build  # noqa: E402

import snncc  # noqa: E402
import snncc.nn as snn  # noqa: E402
from snncc import data  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--steps", "-T", type=int, default=DEFAULT_T, help="time steps T")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "model.pt")
    p.add_argument("--metrics", type=Path, default=None,
                   help="metrics JSON (default: metrics.json beside --out)")
    p.add_argument("--samples", type=Path, default=None,
                   help="demo samples .npz (default: samples.npz beside --out)")
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
    """uint8 pixels -> float images in [0, 1] (exactly what the compiler assumes)."""
    return torch.from_numpy(x_u8).float().div_(255.0)


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int,
             batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = snn.run(model, x[i:i + batch_size], steps=steps).mean(1)
        correct += int((logits.argmax(1) == y[i:i + batch_size]).sum())
    return correct / len(x)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)

    xtr_u8, ytr_np = data.load("fashion-mnist", "train")
    xte_u8, yte_np = data.load("fashion-mnist", "test")
    if args.limit_train:
        xtr_u8, ytr_np = xtr_u8[:args.limit_train], ytr_np[:args.limit_train]
    if args.limit_test:
        xte_u8, yte_np = xte_u8[:args.limit_test], yte_np[:args.limit_test]
    xtr, ytr = to_float(xtr_u8), torch.from_numpy(ytr_np)
    xte, yte = to_float(xte_u8), torch.from_numpy(yte_np)

    model = build()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    batches_per_epoch = math.ceil(len(xtr) / args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * batches_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)

    print(f"training {params} parameters on {len(xtr)} images, T={args.steps}, "
          f"{args.epochs} epochs x {batches_per_epoch} batches, {torch.get_num_threads()} threads",
          flush=True)
    t0 = time.perf_counter()
    history = []
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(range(batches_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}",
                   disable=args.no_progress, mininterval=2.0, file=sys.stdout)
        for b in bar:
            idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
            xb, yb = xtr[idx], ytr[idx]
            logits = snn.run(model, xb, steps=args.steps).mean(1)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(yb)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}",
                            refresh=False)
        bar.close()
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / seen,
                        "train_accuracy": correct / seen})
        print(f"epoch {epoch + 1}: loss {loss_sum / seen:.4f}, train acc {correct / seen:.4f}, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    train_seconds = time.perf_counter() - t0

    test_acc = evaluate(model, xte, yte, args.steps)
    print(f"float test accuracy ({len(xte)} images, T={args.steps}): {test_acc:.4f}", flush=True)

    snn.reset(model)
    model = model.cpu().eval()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    snncc.save(model, args.out, input_shape=(1, 28, 28))

    metrics = {
        "float_test_accuracy": round(test_acc, 6),
        "test_images": len(xte),
        "epochs": args.epochs,
        "T": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "train_images": len(xtr),
        "train_seconds": round(train_seconds, 1),
        "threads": torch.get_num_threads(),
        "params": params,
        "torch": torch.__version__,
        "seed": args.seed,
        "history": history,
    }
    metrics_path = args.metrics or args.out.parent / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    samples_path = args.samples or args.out.parent / "samples.npz"
    np.savez(samples_path, x=xte_u8[:16].copy(), y=yte_np[:16].copy())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes), {metrics_path}, {samples_path}")
    return metrics


if __name__ == "__main__":
    main()
