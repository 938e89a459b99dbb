"""Compile configuration: one dataclass, loadable from TOML (``--config quant.toml``).

Every field has a :class:`Spec` (type, range or choices, help). The same specs check a
TOML file, a dict given to :func:`snncc.compiler.compile` and the command line (whose
flags and help texts are made from them): a value of the wrong type or out of range is
one clear error, all such problems listed at once."""
from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import SnnccError


@dataclass(frozen=True)
class Spec:
    """What a config value may be: ``type`` (int, float, bool or str), an inclusive range
    [lo, hi] (``lo_open``: lo excluded), ``choices``, whether None is allowed."""

    type: type
    help: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple = ()
    optional: bool = False
    lo_open: bool = False
    why: str = ""                    # the range in words, for the message

    def problem(self, name: str, v) -> str | None:
        """Why ``v`` is not a valid value of field ``name``, or None."""
        if v is None:
            return None if self.optional else f"{name} = None: give a value"
        if self.type is bool:
            return None if isinstance(v, bool) else f"{name} = {v!r}: choose true or false"
        if self.type is int and (isinstance(v, bool) or not isinstance(v, int)):
            return f"{name} = {v!r}: must be an integer"
        if self.type is float and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            return f"{name} = {v!r}: must be a finite number"
        if self.type is str and not isinstance(v, str):
            return f"{name} = {v!r}: must be a string"
        if self.choices and v not in self.choices:
            return f"{name} = {v!r}: choose one of {', '.join(self.choices)}"
        low_bad = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
        if low_bad or (self.hi is not None and v > self.hi):
            return f"{name} = {v!r}: {self.why or self.range_text()}"
        return None

    def range_text(self) -> str:
        lo = "" if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo:g}"
        hi = "" if self.hi is None else f"<= {self.hi:g}"
        return "must be " + " and ".join(x for x in (lo, hi) if x)

    def parse(self, flag: str, text: str):
        """A command-line string as this spec's type (the value is then checked like any)."""
        try:
            if self.type is int:
                return int(text)
            if self.type is float:
                return float(text)
        except ValueError:
            raise SnnccError(f"{flag} {text!r}: not {'an integer' if self.type is int else 'a number'}") from None
        if self.type is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise SnnccError(f"{flag} {text!r}: choose true or false")
            return text.lower() in ("true", "1", "yes")
        return text

    def describe(self, default) -> str:
        parts = [self.help]
        if self.choices:
            parts.append(f"one of {', '.join(self.choices)}")
        elif self.lo is not None or self.hi is not None:
            parts.append(self.range_text().removeprefix("must be "))
        parts.append(f"default {default}")
        return "; ".join(parts)


def check(obj, specs: dict[str, Spec], what: str, extra: list[str] = ()) -> None:
    """Raise one SnnccError listing every field of ``obj`` its spec refuses, and the
    ``extra`` problems the caller found across fields."""
    errs = [p for name, spec in specs.items() if (p := spec.problem(name, getattr(obj, name))) is not None]
    errs += list(extra)
    if errs:
        raise SnnccError(f"invalid {what}:\n" + "\n".join(f"  - {e}" for e in errs))


YAML_SUFFIXES = (".yaml", ".yml")


def read_toml(path: str | Path) -> dict:
    """A config file as a dict, with a clear error when missing or malformed: TOML, or
    YAML (``.yaml``/``.yml``, the shape of SNNQ's exp/config.yaml) with the same tables
    and keys (one schema)."""
    text = _config_text(path)
    if Path(path).suffix.lower() in YAML_SUFFIXES:
        return _read_yaml(path, text)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SnnccError(f"config file {path} is not valid TOML: {e}") from None


def _config_text(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise SnnccError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise SnnccError(f"config file {path} is a directory") from None
    except UnicodeDecodeError:
        raise SnnccError(f"config file {path} is not a text (UTF-8) file") from None


def _read_yaml(path: str | Path, text: str) -> dict:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SnnccError(f"config file {path} is not valid YAML: {' '.join(str(e).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SnnccError(f"config file {path}: expected tables of keys and values, got a YAML {type(data).__name__}")
    return data


def from_dict(cls, d: dict, what: str):
    """``cls(**d)`` for a config dataclass, refusing unknown keys by name."""
    if not isinstance(d, dict):
        raise SnnccError(f"{what}: expected a table of keys and values, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise SnnccError(f"unknown {what}: {', '.join(map(str, unknown))}; known: {', '.join(sorted(names))}")
    return cls(**d)


_WB, _WBW = "bits of a weight code", "weights take 2..16 bits"

#: CompileConfig's fields: their type, range or choices and help (the CLI's flags come from here)
SPECS: dict[str, Spec] = {
    "steps": Spec(int, "time steps T per sample", 1, (1 << 31) - 1, why="need at least 1 time step (and < 2^31)"),
    "weight_bits": Spec(int, _WB, 2, 16, why=_WBW),
    "first_layer_bits": Spec(int, "weight bits of the synapses reading the input", 2, 16, optional=True, why=_WBW),
    "last_layer_bits": Spec(int, "weight bits of the synapses into the output", 2, 16, optional=True, why=_WBW),
    "granularity": Spec(str, "one weight scale per output channel or per tensor", choices=("channel", "tensor")),
    "quantizer": Spec(str, "weight quantizer (docs/quantization.md)",
                      choices=("uniform", "asymmetric", "ternary", "vanilla", "rescaw", "pot", "apot")),
    "input_encoding": Spec(str, "direct: graded values (pixels); spikes: 0/1 events; counts: binned event counts; "
                           "bias: signed values driving the input neurons' bias (netx files only)",
                           choices=("direct", "spikes", "counts", "bias")),
    "input_scale": Spec(float, "real value of one input unit (direct encoding)", 0, lo_open=True),
    "input_bits": Spec(int, "bits of a direct or counts input value", 1, 16),
    "act_shift": Spec(int, "fractional membrane bits: the input enters u as a << act_shift (Loihi: 6)", 0, 16),
    "v_bits": Spec(int, "membrane register bits", 4, 32),
    "v_overflow": Spec(str, "membrane overflow rule", choices=("saturate", "wrap", "wrap_lava")),
    "u_bits": Spec(int, "current register bits", 4, 32),
    "u_overflow": Spec(str, "current overflow rule", choices=("saturate", "wrap", "wrap_lava")),
    "state_quant": Spec(str, "SpQuant-SNN membrane: ternary {-1,0,1}·L or binary {0,1}·L",
                        choices=("none", "ternary", "binary")),
    "state_level": Spec(float, "L in float membrane units (default: the threshold)", 0, lo_open=True, optional=True),
    "schedule": Spec(str, "synapse latency: 0 (like PyTorch) or 1 step per synapse (Lava)", choices=("zero", "lava")),
    "latency_reset": Spec(bool, "Lava schedule: reset each neuron when the sample reaches it"),
    "weight_clip": Spec(str, "uniform/asymmetric range: max|w| or BRECQ's clipping search", choices=("max", "mse")),
    "rescaw_gamma": Spec(str, "QP-SNN ReScaW gamma: mean|W|, max|W| or a percentile",
                         choices=("mean", "max", "percentile")),
    "rescaw_percentile": Spec(float, "x of Psi_x = max(|P_(1-x)(W)|, |P_x(W)|)", 0.5, 1.0, lo_open=True),
    "pot_alpha": Spec(str, "PoT/APoT alpha (auto: pot pow2, apot mse)", choices=("auto", "pow2", "max", "mse")),
    "presim": Spec(int, "test-time neuron pruning (SNNQ's TNP): presimulation steps per sample before the T counted "
                   "steps, 0: off (docs/conversion.md)", 0, (1 << 20)),
    "tnp_eps": Spec(float, "TNP: a neuron whose membrane after the presimulation is <= tnp_eps x threshold is "
                    "silenced (SRP: 1e-3)", 0, 1),
    "neg_mask": Spec(bool, "SpQuant-SNN Eq. 19-20: a negative membrane is set to 0 and its spike disabled, in every "
                     "spiking layer (docs/semantics.md, Sparsity masks)"),
    "spatial_sparsity": Spec(float, "SpQuant-SNN Eq. 21-22: the share of neuron updates of each conv spiking layer "
                             "to skip (the paper: 0.35); the level |a| <= L is calibrated on mask_calib, 0: off",
                             0, 1, why="must lie in [0, 1) (1 would skip every neuron; 0: off)"),
    "channel_threshold": Spec(float, "SpQuant-SNN Eq. 23: softmax threshold of the channel gate on the membrane "
                              "prior (the paper: 0.47), 0: off", 0, 1,
                              why="must lie in (0, 1) (a softmax probability; 0: off)"),
    "channel_gates": Spec(str, "trained channel gates (snncc.train.masks.SparsityMasks.save_gates): an .npz with "
                          "NAME/weight (C, C) and NAME/level (C,) int64 per layer; '' : none"),
    "mask_calib": Spec(str, "calibration data NAME:N for spatial_sparsity's levels (the first N train samples)"),
    "neuron_constants": Spec(str, "threshold, bias and reset value in whole units << act_shift (Loihi's mantissas) "
                             "or with act_shift fractional bits; auto: fractional for converted ANNs",
                             choices=("auto", "whole", "fractional")),
}
CHOICES = {k: s.choices for k, s in SPECS.items() if s.choices}


@dataclass
class CompileConfig:
    """How a float model becomes an integer model. Every field is documented in
    docs/semantics.md and has a Spec in SPECS; the TOML file uses the same names (unknown
    keys are errors)."""

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
    presim: int = 0                  # TNP presimulation steps per sample (0: off); a run lasts presim + T steps
    tnp_eps: float = 1e-3            # TNP: silence neurons whose membrane after presim is <= eps x threshold
    neuron_constants: str = "auto"   # whole (<< act_shift) | fractional | auto (fractional for converted ANNs)
    # SpQuant-SNN's sparsity masks (section 4.3; snncc/passes/masks.py; docs/semantics.md)
    neg_mask: bool = False           # Eq. 19-20: negative membrane -> 0, its spike disabled
    spatial_sparsity: float = 0.0    # Eq. 21-22: share of conv-layer neuron updates skipped (calibrated level)
    channel_threshold: float = 0.0   # Eq. 23: channel gate softmax threshold theta (0: off)
    mask_calib: str = "fashion-mnist:64"  # calibration data for spatial_sparsity
    channel_gates: str = ""          # trained integer channel gates (.npz), instead of channel_threshold's identity gate

    def __post_init__(self) -> None:
        extra = [f"{k} = {getattr(self, k)!r}: {SPECS[k].why}" for k in ("spatial_sparsity", "channel_threshold")
                 if getattr(self, k) == 1]  # the ranges are open at 1
        if self.channel_gates and self.channel_threshold:
            extra.append(f"channel_gates = {self.channel_gates!r} and channel_threshold = {self.channel_threshold}: "
                         "give one (trained gates carry their threshold in their levels)")
        check(self, SPECS, "compile configuration", extra)
        if self.input_encoding == "counts" and self.input_scale not in (1.0 / 255.0, 1.0):
            raise SnnccError(f"invalid compile configuration:\n  - input_scale = {self.input_scale}: an event "
                             "count is worth 1 event (input_encoding 'counts'); for scaled values use "
                             "input_encoding 'direct'")

    @classmethod
    def from_dict(cls, d: dict) -> "CompileConfig":
        return from_dict(cls, d, "configuration key(s)")

    @classmethod
    def from_toml(cls, path: str | Path) -> "CompileConfig":
        return cls.from_dict(toml_table(path, "quantization"))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def input_contract(self) -> tuple[str, float, int]:
        """(IR encoding, real value of one input unit, bits): "counts" (binned event data:
        integers 0..2^bits - 1, one unit = one event) is a direct input of scale 1."""
        if self.input_encoding == "counts":
            return "direct", 1.0, self.input_bits
        if self.input_encoding == "bias":
            raise SnnccError("input_encoding 'bias' (signed values driving the input neurons' bias) is netx's "
                             "bias-driven input layer: it applies to netx (.net) files, whose input layer has a "
                             "neuron; for a PyTorch or NIR model use 'direct', 'spikes' or 'counts'")
        return self.input_encoding, self.input_scale, self.input_bits

    def bits_for(self, first: bool, last: bool) -> int:
        if first and self.first_layer_bits is not None:
            return self.first_layer_bits
        if last and self.last_layer_bits is not None:
            return self.last_layer_bits
        return self.weight_bits


#: the tables a config file may hold
TABLES = ("quantization", "bwr", "prune", "convert", "train", "qpsnn")


#: SNNQ's exp/config.yaml keys and where the same setting lives in snncc's schema
SNNQ_KEYS = {"w_qconfig": "[quantization] weight_bits (bit), quantizer", "recon": "[bwr] iters, batch_size, "
             "warmup (warm_up), reg_weight (weight), beta_start/beta_end (b_range)", "calibrate": "[bwr] calib = \"NAME:N\""}


def _snnq_hint(keys) -> str:
    known = [f"{k} -> {SNNQ_KEYS[k]}" for k in keys if k in SNNQ_KEYS]
    return ("\n  (an SNNQ config: snncc reads one schema, TOML or YAML; SNNQ's keys map to: " + "; ".join(known)
            + "; docs/conversion.md)") if known else ""


#: compile options that name a file: a relative name in a config file is read relative to
#: that file's folder (so an example's config works from any directory)
FILE_KEYS = ("channel_gates",)


def _files_relative_to(path: str | Path, table: dict) -> dict:
    base = Path(path).parent
    return {k: (os.path.relpath(base / v) if k in FILE_KEYS and isinstance(v, str) and v and not Path(v).is_absolute()
                else v) for k, v in table.items()}


def toml_table(path: str | Path, table: str) -> dict:
    """The compile options a TOML file sets: its ``[table]`` if present, else its top-level
    keys (other tables, e.g. ``[bwr]``, are read by their own config). Unknown tables, and
    top-level keys beside a ``[table]``, are refused by name."""
    data = read_toml(path)
    unknown = sorted(k for k, v in data.items() if isinstance(v, dict) and k not in TABLES)
    if unknown:
        raise SnnccError(f"config file {path}: unknown table(s) {', '.join(f'[{k}]' for k in unknown)}; "
                         f"known: {', '.join(f'[{t}]' for t in TABLES)}" + _snnq_hint(unknown))
    loose = sorted(k for k, v in data.items() if not isinstance(v, dict))
    if table in data:
        if not isinstance(data[table], dict):
            raise SnnccError(f"config file {path}: '{table}' must be a table ([{table}])")
        if loose:
            raise SnnccError(f"config file {path}: key(s) {', '.join(loose)} stand outside any table beside "
                             f"[{table}]; move them into [{table}]")
        return _files_relative_to(path, data[table])
    return _files_relative_to(path, {k: data[k] for k in loose})
