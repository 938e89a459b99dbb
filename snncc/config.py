"""Compile configuration: one dataclass, loadable from TOML (``--config quant.toml``)."""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import SnnccError

CHOICES = {
    "granularity": ("channel", "tensor"),
    "quantizer": ("uniform", "asymmetric", "ternary", "vanilla", "rescaw", "pot", "apot"),
    "input_encoding": ("direct", "spikes", "counts"),
    "v_overflow": ("saturate", "wrap", "wrap_lava"),
    "u_overflow": ("saturate", "wrap", "wrap_lava"),
    "state_quant": ("none", "ternary", "binary"),
    "schedule": ("zero", "lava"),
    "weight_clip": ("max", "mse"),
    "rescaw_gamma": ("mean", "max", "percentile"),
    "pot_alpha": ("auto", "pow2", "max", "mse"),
}


def read_toml(path: str | Path) -> dict:
    """A TOML config file as a dict, with a clear error when missing or malformed."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SnnccError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise SnnccError(f"config file {path} is not valid TOML: {e}") from None


def from_dict(cls, d: dict, what: str):
    """``cls(**d)`` for a config dataclass, refusing unknown keys by name."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise SnnccError(f"unknown {what}: {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**d)


@dataclass
class CompileConfig:
    """How a float model becomes an integer model. Every field is documented in
    docs/semantics.md; the TOML file uses the same names (unknown keys are errors)."""

    steps: int = 4                   # time steps T per sample
    weight_bits: int = 8             # 2..16, symmetric uniform weights
    first_layer_bits: int | None = None  # override for synapses reading the input
    last_layer_bits: int | None = None   # override for synapses feeding the output
    granularity: str = "channel"     # per output channel or per tensor weight scales
    quantizer: str = "uniform"
    input_encoding: str = "direct"   # uint8 pixels every step, binary events, or binned event counts
    input_scale: float = 1.0 / 255.0  # real value of one input unit (direct encoding)
    input_bits: int = 8              # bits of a direct or counts input value
    act_shift: int = 6               # synaptic input enters u as a << act_shift (Loihi: 6)
    v_bits: int = 24
    v_overflow: str = "saturate"
    u_bits: int = 24
    u_overflow: str = "wrap_lava"
    state_quant: str = "none"        # SpQuant-SNN membrane: ternary {-1,0,1}·L or binary {0,1}·L
    state_level: float | None = None  # L in float membrane units; default: the threshold
    schedule: str = "zero"           # synapse latency: 0 (like PyTorch) or 1 per synapse (Lava)
    latency_reset: bool = True       # Lava schedule: reset each neuron when the sample reaches it
    # weight quantizer options (snncc/passes/quantizers.py; docs/quantization.md)
    weight_clip: str = "max"         # uniform/asymmetric range: max|w| or BRECQ's lp-error clipping search
    rescaw_gamma: str = "mean"       # QP-SNN ReScaW gamma: mean|W|, max|W| or percentile Psi_x
    rescaw_percentile: float = 0.99  # x of Psi_x = max(|P_(1-x)(W)|, |P_x(W)|)
    pot_alpha: str = "auto"          # PoT/APoT alpha: pow2 (SpQuant Eq. 15), max, mse; auto: pot pow2, apot mse

    def __post_init__(self) -> None:
        errs = []
        for k, allowed in CHOICES.items():
            if getattr(self, k) not in allowed:
                errs.append(f"{k} = {getattr(self, k)!r}: choose one of {', '.join(allowed)}")
        for k in ("weight_bits", "first_layer_bits", "last_layer_bits"):
            b = getattr(self, k)
            if b is not None and not 2 <= b <= 16:
                errs.append(f"{k} = {b}: weights take 2..16 bits")
        if not isinstance(self.latency_reset, bool):
            errs.append(f"latency_reset = {self.latency_reset!r}: choose true or false")
        if self.steps < 1:
            errs.append(f"steps = {self.steps}: need at least 1 time step")
        if not 0 <= self.act_shift <= 16:
            errs.append(f"act_shift = {self.act_shift}: choose 0..16")
        for k in ("v_bits", "u_bits"):
            if not 4 <= getattr(self, k) <= 32:
                errs.append(f"{k} = {getattr(self, k)}: choose 4..32")
        if not (isinstance(self.input_scale, (int, float)) and 0 < self.input_scale < float("inf")):
            errs.append(f"input_scale = {self.input_scale!r}: must be a finite number > 0")
        elif self.input_encoding == "counts" and self.input_scale not in (1.0 / 255.0, 1.0):
            errs.append(f"input_scale = {self.input_scale}: an event count is worth 1 event (input_encoding "
                        f"'counts'); for scaled values use input_encoding 'direct'")
        if not (isinstance(self.input_bits, int) and 1 <= self.input_bits <= 16):
            errs.append(f"input_bits = {self.input_bits!r}: choose 1..16")
        if not 0.5 < self.rescaw_percentile <= 1.0:
            errs.append(f"rescaw_percentile = {self.rescaw_percentile}: choose a value in (0.5, 1]")
        if errs:
            raise SnnccError("invalid compile configuration:\n" + "\n".join(f"  - {e}" for e in errs))

    @classmethod
    def from_dict(cls, d: dict) -> "CompileConfig":
        return from_dict(cls, d, "configuration key(s)")

    @classmethod
    def from_toml(cls, path: str | Path) -> "CompileConfig":
        data = read_toml(path)
        if "quantization" in data:
            return cls.from_dict(data["quantization"])
        return cls.from_dict({k: v for k, v in data.items() if not isinstance(v, dict)})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def input_contract(self) -> tuple[str, float, int]:
        """(IR encoding, real value of one input unit, bits): "counts" (binned event data:
        integers 0..2^bits - 1, one unit = one event) is a direct input of scale 1."""
        if self.input_encoding == "counts":
            return "direct", 1.0, self.input_bits
        return self.input_encoding, self.input_scale, self.input_bits

    def bits_for(self, first: bool, last: bool) -> int:
        if first and self.first_layer_bits is not None:
            return self.first_layer_bits
        if last and self.last_layer_bits is not None:
            return self.last_layer_bits
        return self.weight_bits
