"""BWR's hyper-parameters (a ``[bwr]`` table in a TOML config uses the same names)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ...config import Spec, check, from_dict, read_toml
from ...errors import SnnccError

LOSSES = ("both", "membrane", "spikes")
BLOCKS = ("residual", "layer")
MODES = ("snn", "ann")

SPECS = {
    "enabled": Spec(bool, "learned block-wise rounding on (like --bwr)"),
    "mode": Spec(str, "reconstruct the spiking blocks over T steps (snn), or, for a converted ANN (--convert), "
                 "the ANN's blocks before conversion as SNNQ does (ann)", choices=MODES),
    "iters": Spec(int, "Adam steps per block", 0),
    "batch_size": Spec(int, "calibration samples per step", 1),
    "lr": Spec(float, "Adam's learning rate (default 20 / iters)", 0, lo_open=True, optional=True),
    "reg_weight": Spec(float, "lambda of the rounding regulariser", 0),
    "beta_start": Spec(float, "regulariser exponent at the start", 0, lo_open=True),
    "beta_end": Spec(float, "regulariser exponent at the end", 0, lo_open=True),
    "warmup": Spec(float, "fraction of iterations without the regulariser", 0, 0.999999),
    "qdrop": Spec(float, "probability of feeding a block the float input element", 0, 1),
    "loss": Spec(str, "reconstruction target", choices=LOSSES),
    "blocks": Spec(str, "block structure", choices=BLOCKS),
    "clip": Spec(str, "grid range of uniform/asymmetric weights", choices=("mse", "max", "config")),
    "slope": Spec(float, "arctan surrogate slope", 0, lo_open=True),
    "calib": Spec(str, "calibration data NAME:N"),
    "seed": Spec(int, "random seed", 0),
    "device": Spec(str, "where to fit", choices=("auto", "cpu", "cuda")),
    "eval_samples": Spec(int, "calibration samples for the reported block errors", 1),
    "fallback": Spec(bool, "keep round-to-nearest for a block where learning did worse"),
}


@dataclass
class BWRConfig:
    """BWR hyper-parameters; a TOML ``[bwr]`` table uses the same names
    (``enabled = true`` there turns BWR on like ``--bwr``)."""

    enabled: bool = False          # read by the compile driver, not by bwr()
    mode: str = "snn"              # snn: spiking blocks over T steps | ann: the converted ANN's blocks (SNNQ)
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
        check(self, SPECS, "BWR configuration")

    @classmethod
    def from_dict(cls, d: dict) -> "BWRConfig":
        return from_dict(cls, d, "[bwr] key(s)")

    @classmethod
    def from_toml(cls, path: str | Path) -> "BWRConfig":
        """The ``[bwr]`` table of a TOML file (defaults when it has none)."""
        table = read_toml(path).get("bwr", {})
        if not isinstance(table, dict):
            raise SnnccError(f"config file {path}: 'bwr' must be a table ([bwr])")
        return cls.from_dict(table)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
