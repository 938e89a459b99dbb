"""Training options (``[train]`` in a TOML file) and their checks."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..config import CompileConfig, read_toml
from ..errors import SnnccError
from .fakequant import QAT_QUANTIZERS

LOSSES = ("ce", "tet")
STATE_QUANTS = ("none", "ternary", "binary")


@dataclass
class TrainConfig:
    """How to train (the integer semantics come from the CompileConfig beside it)."""

    epochs: int = 1
    steps: int = 4                  # time steps T (must equal the compile config's)
    batch_size: int = 128           # global batch (split over DDP processes)
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"     # cosine | constant learning rate
    seed: int = 0
    loss: str = "ce"                # ce: cross-entropy of the time-mean output; tet: TET (Deng et al. 2022)
    tet_lambda: float = 0.0         # TET's MSE regulariser weight (towards phi = 1)
    state_quant: str = "none"       # SpQuant-SNN membrane: none | ternary | binary
    learn_threshold: bool = False   # layer-wise learnable thresholds (SGP)
    gpw: bool = True                # Gradient Penalty Window on the threshold gradient (Eq. 24-27)
    sgs: bool = True                # Stacked Gradient Surrogation through the membrane quantizer
    sgs_smoothness: float = 4.0     # T of Eq. 11
    refresh_every: int = 50         # optimizer steps between reading the compiler's scales
    device: str = "auto"            # auto | cpu | cuda | cuda:N
    limit_train: int | None = None  # first N training images only
    limit_test: int | None = None
    val: int = 0                    # last N training images held out as the "val" split (before limit_train)
    progress: bool = True
    checkpoint_dir: str | None = None  # a checkpoint per epoch (and the resume point)

    def __post_init__(self) -> None:
        errs = []
        for f in ("epochs", "steps", "batch_size", "refresh_every"):
            if not isinstance(getattr(self, f), int) or getattr(self, f) < (0 if f == "epochs" else 1):
                errs.append(f"{f} = {getattr(self, f)!r}: an integer >= {0 if f == 'epochs' else 1}")
        if isinstance(self.val, bool) or not isinstance(self.val, int) or self.val < 0:
            errs.append(f"val = {self.val!r}: an integer >= 0 (the last N training images held out; 0: none)")
        if not self.lr > 0:
            errs.append(f"lr = {self.lr!r}: must be > 0")
        for f, choices in (("loss", LOSSES), ("state_quant", STATE_QUANTS), ("lr_schedule", ("cosine", "constant"))):
            if getattr(self, f) not in choices:
                errs.append(f"{f} = {getattr(self, f)!r}: one of {', '.join(choices)}")
        if not 0.0 <= self.tet_lambda <= 1.0:
            errs.append(f"tet_lambda = {self.tet_lambda}: in [0, 1]")
        if self.tet_lambda and self.loss != "tet":
            errs.append("tet_lambda is set but loss is not 'tet'")
        if errs:
            raise SnnccError("invalid training configuration:\n  - " + "\n  - ".join(errs))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise SnnccError(f"unknown training option(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_combination(tc: TrainConfig, qc: CompileConfig) -> None:
    """Options that contradict each other, all at once."""
    errs = []
    if qc.quantizer not in QAT_QUANTIZERS:
        errs.append(f"quantizer {qc.quantizer!r}: training supports {', '.join(QAT_QUANTIZERS)}")
    if qc.state_quant != "none":
        errs.append(f"[quantization] state_quant = {qc.state_quant!r} quantizes the membrane after training; "
                    "for training with it set [train] state_quant instead (the saved neurons carry it)")
    if qc.steps != tc.steps:
        errs.append(f"[train] steps = {tc.steps} but [quantization] steps = {qc.steps}: the trained and the "
                    "compiled model must run the same number of steps")
    if qc.input_encoding != "direct":
        errs.append(f"input_encoding {qc.input_encoding!r}: the trainer feeds images (direct encoding)")
    if qc.schedule != "zero":
        errs.append("schedule 'lava' adds synapse latency: train with schedule 'zero' (the Lava "
                    "target compiles the trained model with its own schedule)")
    if errs:
        raise SnnccError("contradicting training options:\n  - " + "\n  - ".join(errs))


def load_toml(path: str | Path) -> dict:
    """{"train": {...}, "quantization": {...}, "qpsnn": {...}} from a TOML file."""
    data = read_toml(path)
    bad = sorted(k for k in data if k not in ("train", "quantization", "qpsnn"))
    if bad:
        raise SnnccError(f"config file {path}: unknown table(s)/key(s) {', '.join(bad)}; "
                         "a training config has [train], [quantization] and [qpsnn]")
    return {k: dict(data.get(k, {})) for k in ("train", "quantization", "qpsnn")}


def write_compile_toml(path: Path, qc: CompileConfig) -> None:
    """The compile options the trained model was trained for (snncc compile --config)."""
    lines = ["# snncc compile MODEL --config THIS_FILE: the integer semantics the model was trained for",
             "[quantization]"]
    for k, v in qc.to_dict().items():
        if v is None or k == "state_quant":
            continue
        lines.append(f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v) if not isinstance(v, str) else chr(34) + v + chr(34)}")
    Path(path).write_text("\n".join(lines) + "\n")
