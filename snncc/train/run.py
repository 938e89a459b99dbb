"""``snncc train``: files in, trained model + compile options + JSON summary out."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import SnnccError
from .config import load_toml


def train_from_files(model_path, dataset: str, out, *, config=None, resume: bool = False,
                     epochs: int | None = None, agreement: bool = False, arch=None,
                     trust_pickle: bool = False) -> dict:
    """Load ``model_path`` (safe loader), train with the TOML ``config`` on ``dataset``,
    save to ``out`` (+ ``out``.toml, ``out``.json). A ``[qpsnn]`` table runs QP-SNN's
    Algorithm 1 (keys of :func:`snncc.train.qpsnn.qpsnn`) instead of plain training."""
    from ..frontends.pytorch import load_torch_model
    from .qpsnn import DEFAULTS, qpsnn
    from .trainer import SpQuantTrainer

    tables = load_toml(config) if config else {"train": {}, "quantization": {}, "qpsnn": {}}
    out = Path(out)
    if out.suffix != ".pt":
        raise SnnccError(f"--out {out}: name the trained model file NAME.pt")
    model = load_torch_model(Path(model_path), trust_pickle=trust_pickle, arch=arch)
    train = dict(tables["train"])
    train.setdefault("checkpoint_dir", str(out.parent / f".{out.stem}.ckpt"))
    if epochs is not None:
        train["epochs"] = epochs
    quant = tables["quantization"]
    bits = quant.pop("weight_bits", 8)
    if tables["qpsnn"]:
        bad = sorted(set(tables["qpsnn"]) - set(DEFAULTS))
        if bad:
            raise SnnccError(f"unknown [qpsnn] key(s) {', '.join(bad)}; known: {', '.join(sorted(DEFAULTS))}")
        if resume:
            raise SnnccError("--resume continues plain training; a [qpsnn] run restarts its phases")
        trainer, record = qpsnn(model, dataset, bits, config=train, quant=quant, **tables["qpsnn"])
        summary = {**trainer.summary(), "qpsnn": record}
    else:
        trainer = SpQuantTrainer(model, dataset, bits, config=train, quant=quant)
        summary = trainer.train(resume=resume)
    summary["test_accuracy"] = trainer.evaluate() if trainer.data["x_test"] is not None else None
    if agreement:
        summary["agreement"] = trainer.agreement()
    trainer.save(out)
    if trainer.rank == 0:
        out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
