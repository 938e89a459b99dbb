"""BWR's hyper-parameters (a ``[bwr]`` table in a TOML config uses the same names)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ...config import from_dict, read_toml
from ...errors import SnnccError

LOSSES = ("both", "membrane", "spikes")
BLOCKS = ("residual", "layer")


@dataclass
class BWRConfig:
    """BWR hyper-parameters; a TOML ``[bwr]`` table uses the same names
    (``enabled = true`` there turns BWR on like ``--bwr``)."""

    enabled: bool = False          # read by the compile driver, not by bwr()
    iters: int = 2000              # per block (BRECQ/QDrop: 20000; 2000 fits 2 CPU cores)
    batch_size: int = 32
    lr: float | None = None        # Adam on V; None: 20 / iters (the recipe's 1e-3 x 20000)
    reg_weight: float = 0.1        # lambda (recipe: 0.01 with 20000 iterations, see docs)
    beta_start: float = 20.0
    beta_end: float = 2.0
    warmup: float = 0.2            # fraction of iterations without the regulariser
    qdrop: float = 0.5             # probability of using the float input element (0: off)
    loss: str = "both"             # membrane | spikes | both
    blocks: str = "residual"       # residual | layer
    clip: str = "mse"              # grid range of uniform/asymmetric (BRECQ's init): mse | max | config
    slope: float = 2.0             # arctan surrogate slope (snncc.nn.LIF's default)
    calib: str = "fashion-mnist:1024"  # calibration spec for the CLI (snncc.data.parse_spec)
    seed: int = 0
    device: str = "auto"           # auto (CUDA if available) | cpu | cuda
    eval_samples: int = 256        # calibration samples for the reported block errors
    fallback: bool = True          # keep round-to-nearest for a block where learning did worse

    def __post_init__(self) -> None:
        errs = []
        if self.lr is not None and self.lr <= 0:
            errs.append(f"lr = {self.lr}: must be > 0")
        if self.iters < 0:
            errs.append(f"iters = {self.iters}: must be >= 0")
        if self.batch_size < 1:
            errs.append(f"batch_size = {self.batch_size}: must be >= 1")
        if not 0.0 <= self.qdrop <= 1.0:
            errs.append(f"qdrop = {self.qdrop}: a probability in [0, 1]")
        if not 0.0 <= self.warmup < 1.0:
            errs.append(f"warmup = {self.warmup}: a fraction in [0, 1)")
        if self.loss not in LOSSES:
            errs.append(f"loss = {self.loss!r}: choose one of {', '.join(LOSSES)}")
        if self.blocks not in BLOCKS:
            errs.append(f"blocks = {self.blocks!r}: choose one of {', '.join(BLOCKS)}")
        if self.clip not in ("mse", "max", "config"):
            errs.append(f"clip = {self.clip!r}: choose mse, max or config")
        if self.device not in ("auto", "cpu", "cuda"):
            errs.append(f"device = {self.device!r}: choose auto, cpu or cuda")
        if errs:
            raise SnnccError("invalid BWR configuration:\n" + "\n".join(f"  - {e}" for e in errs))

    @classmethod
    def from_dict(cls, d: dict) -> "BWRConfig":
        return from_dict(cls, d, "[bwr] key(s)")

    @classmethod
    def from_toml(cls, path: str | Path) -> "BWRConfig":
        """The ``[bwr]`` table of a TOML file (defaults when it has none)."""
        return cls.from_dict(read_toml(path).get("bwr", {}))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
