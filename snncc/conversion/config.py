"""Conversion settings: a ``[convert]`` table in a TOML or YAML config uses the same names."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..config import Spec, check, from_dict, read_toml
from ..errors import SnnccError

THRESHOLDS = ("auto", "clip", "percentile", "max")
MAXPOOLS = ("current", "spikes")

SPECS = {
    "enabled": Spec(bool, "convert the model, an ANN, into an SNN (like --convert)"),
    "threshold": Spec(str, "IF thresholds: the activation's clip value (QCFS lambda, ReLU6's 6, clamp's max), a "
                      "percentile or the max of its positive activations on calibration data; auto: the clip "
                      "where there is one, else the percentile", choices=THRESHOLDS),
    "percentile": Spec(float, "percentile of a layer's positive activations used as its threshold", 50, 100),
    "v_init": Spec(float, "initial membrane as a fraction of the threshold (0.5: QCFS's shift, SRP, SNNQ)", 0, 1,
                   why="must lie in [0, 1) (a fraction of the threshold)"),
    "maxpool": Spec(str, "MaxPool2d after an activation: current (moved before the neuron: max of the input "
                    "currents, exact for the ANN since the activation is monotone) or spikes (max of the spikes, "
                    "an OR)", choices=MAXPOOLS),
    "calib": Spec(str, "calibration data NAME:N for percentile thresholds (the first N of the train split)"),
}


@dataclass
class ConvertConfig:
    """How an ANN becomes an SNN (docs/conversion.md)."""

    enabled: bool = False            # read by the command line, not by convert()
    threshold: str = "auto"          # auto | clip | percentile | max
    percentile: float = 99.9         # of the positive activations (Rueckauer et al. 2017: 99.9 .. 99.999)
    v_init: float = 0.5              # initial membrane / threshold (Bu et al. 2022: 0.5 minimises the error)
    maxpool: str = "current"         # current | spikes
    calib: str = "fashion-mnist:1024"

    def __post_init__(self) -> None:
        check(self, SPECS, "conversion configuration")
        if self.v_init >= 1:
            raise SnnccError("invalid conversion configuration:\n  - v_init = "
                             f"{self.v_init!r}: must lie in [0, 1) (a fraction of the threshold)")

    @classmethod
    def from_dict(cls, d: dict) -> "ConvertConfig":
        return from_dict(cls, d, "[convert] key(s)")

    @classmethod
    def from_file(cls, path: str | Path) -> "ConvertConfig":
        """The ``[convert]`` table of a TOML or YAML config (defaults when it has none)."""
        table = read_toml(path).get("convert", {})
        if not isinstance(table, dict):
            raise SnnccError(f"config file {path}: 'convert' must be a table ([convert])")
        return cls.from_dict(table)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
