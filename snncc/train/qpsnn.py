"""QP-SNN Algorithm 1 in one call: ReScaW quantization-aware training, SVS structured
pruning (:func:`snncc.prune`), quantization-aware fine-tuning of the pruned model."""
from __future__ import annotations

import time

from ..errors import SnnccError
from .trainer import SpQuantTrainer

DEFAULTS = {"qat_epochs": 1, "finetune_epochs": 1, "criterion": "svs", "ratio": 0.5, "calib": 512,
            "gamma": "mean", "skip": ["first", "last"]}


def qpsnn(model, dataset, quantization_bits: int = 4, *, qat_epochs: int = 1, finetune_epochs: int = 1,
          criterion: str = "svs", ratio: float = 0.5, calib: int = 512, gamma: str = "mean",
          skip=("first", "last"), **options) -> tuple[SpQuantTrainer, dict]:
    """Algorithm 1: (1) ReScaW QAT (``gamma``: mean | max | percentile), (2) prune
    ``ratio`` of each layer's channels by ``criterion`` (svs | sca | l1 | random) on the
    first ``calib`` training images, (3) ReScaW QAT of the pruned model. ``options`` are
    SpQuantTrainer keywords. Returns (the fine-tuning trainer, a record of all three)."""
    from ..frontends.torch_prune import prune

    if options.get("quantizer", "rescaw") != "rescaw":
        raise SnnccError("QP-SNN's Algorithm 1 trains with the ReScaW quantizer (quantizer = 'rescaw')")
    options = {**options, "quantizer": "rescaw", "rescaw_gamma": gamma}
    t0 = time.perf_counter()
    first = SpQuantTrainer(model, dataset, quantization_bits, **options)
    record = {"qat": first.train(qat_epochs)["history"] if qat_epochs else [],
              "qat_accuracy": first.evaluate() if first.data["x_test"] is not None else None}
    x = first.data["x_train"][:calib]
    pruned, kept = prune(first.export(), criterion, ratio, calib_data=x, steps=first.tc.steps,
                         skip=tuple(skip), progress=False, return_record=True)
    record["prune"] = {"criterion": criterion, "ratio": ratio, "calib": int(len(x)),
                       "parameters_before": _params(model), "parameters_after": _params(pruned)}
    second = SpQuantTrainer(pruned, dataset, quantization_bits, **options)
    record["pruned_accuracy"] = second.evaluate() if second.data["x_test"] is not None else None
    record["finetune"] = second.train(finetune_epochs)["history"] if finetune_epochs else []
    record["seconds"] = round(time.perf_counter() - t0, 1)
    return second, record


def _params(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))
