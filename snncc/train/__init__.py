"""Quantization-aware training on snncc's integer semantics (docs/training.md).

    from snncc.train import SpQuantTrainer
    trainer = SpQuantTrainer(model, "fashion-mnist", quantization_bits=4, quantizer="apot",
                             state_quant="ternary")
    trainer.train(epochs=2)
    accuracy = trainer.evaluate()      # the compiled integer model's accuracy
"""
from .config import TrainConfig
from .qpsnn import qpsnn
from .trainer import SpQuantTrainer

__all__ = ["SpQuantTrainer", "TrainConfig", "qpsnn"]
