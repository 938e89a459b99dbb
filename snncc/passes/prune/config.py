"""Structured pruning's settings (a ``[prune]`` table in a TOML config uses the same names)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ...config import Spec, from_dict, read_toml
from ...errors import SnnccError
from .scores import CRITERIA

SPECS = {
    "enabled": Spec(bool, "structured pruning on (like --prune)"),
    "criterion": Spec(str, "channel importance (QP-SNN: svs; baseline sca; data-free l1; random control)",
                      choices=CRITERIA),
    "ratio": Spec(float, "fraction r of each group's channels removed: ceil(r n)", 0, 0.999999,
                  why="must lie in [0, 1): r = 1 would remove every channel"),
    "epsilon": Spec(float, "SVS: singular values above epsilon count (QP-SNN: 1e-6)", 0, lo_open=True),
    "calib": Spec(str, "calibration data NAME:N for svs/sca (the first N of the train split)"),
    "batch_size": Spec(int, "calibration samples per forward pass", 1),
    "seed": Spec(int, "seed of the random criterion", 0),
}


@dataclass
class PruneConfig:
    """What to prune and how (docs/pruning.md). ``ratios`` maps a layer (a Conv/Dense's
    module name) to its own ratio; ``skip`` lists layers left whole, with "first" (the
    channels the input layer makes) and "last" (the channels the output layer reads)."""

    enabled: bool = False
    criterion: str = "svs"
    ratio: float = 0.5
    ratios: dict = field(default_factory=dict)
    epsilon: float = 1e-6
    skip: list = field(default_factory=lambda: ["first", "last"])
    calib: str = "fashion-mnist:256"
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        errs = [p for name, spec in SPECS.items() if (p := spec.problem(name, getattr(self, name))) is not None]
        if not isinstance(self.ratios, dict):
            errs.append(f"ratios = {self.ratios!r}: must be a table of layer = ratio")
        else:
            errs += [p for k, v in self.ratios.items() if (p := SPECS["ratio"].problem(f"ratios.{k}", v))]
        if isinstance(self.skip, tuple):
            self.skip = list(self.skip)
        if not isinstance(self.skip, list) or not all(isinstance(s, str) for s in self.skip):
            errs.append(f"skip = {self.skip!r}: must be a list of layer names (and 'first', 'last')")
        if errs:
            raise SnnccError("invalid pruning configuration:\n" + "\n".join(f"  - {e}" for e in errs))

    @classmethod
    def from_dict(cls, d: dict) -> "PruneConfig":
        return from_dict(cls, d, "[prune] key(s)")

    @classmethod
    def from_toml(cls, path: str | Path) -> "PruneConfig":
        """The ``[prune]`` table of a TOML file (defaults when it has none)."""
        table = read_toml(path).get("prune", {})
        if not isinstance(table, dict):
            raise SnnccError(f"config file {path}: 'prune' must be a table ([prune])")
        return cls.from_dict(table)

    @classmethod
    def from_flag(cls, text: str, base: "PruneConfig | None" = None) -> "PruneConfig":
        """``--prune CRITERION[:RATIO]`` on top of ``base`` (the config file's table)."""
        crit, sep, ratio = text.partition(":")
        d = {**(base or cls()).to_dict(), "enabled": True, "criterion": crit.strip()}
        if sep:
            try:
                d["ratio"] = float(ratio)
            except ValueError:
                raise SnnccError(f"--prune {text!r}: write CRITERION:RATIO, e.g. svs:0.5") from None
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
