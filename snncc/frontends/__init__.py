"""The frontends: one table from what a user hands ``snncc compile`` to a loader.

Every loader returns ``(graph, manifest fields)``: a float graph (PyTorch, NIR) that then
goes through a target's pipeline, or an integer graph (netx, already a Loihi model) that
goes straight to the emitters. Frontend-specific options (``arch``, ``trust_pickle``,
``netx_reset``, ...) are keyword arguments of :func:`snncc.compiler.compile`; each
frontend lists the ones it takes, and any other is refused by name.

Adding a frontend: a module here with ``load(source, config, **options)``, and a
:class:`Frontend` row below (DEVELOPERS.md)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import SnnccError


@dataclass(frozen=True)
class Option:
    """A frontend option: a keyword of :func:`snncc.compiler.compile` and, where ``flag``
    is set, a ``snncc compile`` flag (the CLI adds every frontend's flags from this table)."""

    name: str
    flag: str | None = None
    help: str = ""
    type: Callable | None = str
    requires: str | None = None      # another option that must be given with this one
    choices: tuple = ()

    @property
    def spelled(self) -> str:
        return self.flag or f"{self.name}="


def shape_arg(s: str) -> tuple[int, ...]:
    """'1,28,28' -> (1, 28, 28)."""
    try:
        return tuple(int(d) for d in s.split(","))
    except ValueError:
        raise SnnccError(f"--input-shape {s!r}: give integers like 1,28,28") from None


@dataclass(frozen=True)
class Frontend:
    name: str
    what: str                         # "a PyTorch model", for messages
    short: str                        # "PyTorch model", as in "not a PyTorch model file"
    level: str                        # "float": goes through the passes; "int": emitted as is
    suffixes: tuple[str, ...]         # file suffixes (lower case); () for the fallback
    module: str                       # snncc.frontends.<module> with load(source, config, **options)
    options: tuple[Option, ...] = ()
    takes: Callable[[object], bool] | None = None           # an in-memory object of this frontend
    # load() also takes ``given``: the config fields the user set, so that an integer import
    # can honour or refuse each one (never ignore it)
    reads_given: bool = False

    def load(self, source, config, given=frozenset(), **options):
        import importlib

        if self.reads_given:
            options["given"] = frozenset(given)
        return importlib.import_module(f"{__name__}.{self.module}").load(source, config, **options)


def _is_nir_graph(obj) -> bool:
    import sys

    nir = sys.modules.get("nir")
    return nir is not None and isinstance(obj, nir.NIRGraph)


FRONTENDS = (
    Frontend("nir", "a NIR graph", "NIR", "float", (".nir",), "nir", (
        Option("producer", "--producer", "NIR files: the tool that wrote the file; sets dt, discretization, reset, "
               "threshold test and initial membrane as that tool simulates (docs/nir.md); the flags below "
               "override single ones", choices=("snntorch", "norse", "sinabs", "rockpool", "spikingjelly")),
        Option("reset", "--reset", "NIR files: the reset NIR has no field for: zero (v = v_reset, NIR's "
               "equations), subtract (snnTorch's Leaky: one step late, threshold / beta), subtract-immediate "
               "(v -= threshold on the spike step: Sinabs, Rockpool) or none (default: the file's snncc "
               "metadata, else zero, with a warning)", choices=("zero", "subtract", "subtract-immediate", "none")),
        Option("discretization", "--discretization", "NIR files: how time constants become per-step decays: euler "
               "(beta = 1 - dt/tau, snnTorch's export; default) or exp (beta = exp(-dt/tau), exact ODE solution)",
               choices=("euler", "exp")),
        Option("dt", "--dt", "NIR files: the time step in seconds (NIR does not store one; default 1e-4, "
               "snnTorch's)", float),
        Option("threshold_test", "--threshold-test", "NIR files: spike where v > threshold (gt, default) or "
               "v >= threshold (ge: Sinabs, Rockpool, SpikingJelly)", choices=("gt", "ge")),
        Option("v_init", "--v-init", "NIR files: the membrane each sample starts from: zero (default), leak "
               "(v_leak, Norse) or reset (v_reset, SpikingJelly)", choices=("zero", "leak", "reset"))),
        _is_nir_graph),
    Frontend("netx", "a lava-dl netx network", "netx", "int", (".net", ".h5", ".hdf5"), "netx", (
        Option("reset_interval", "--reset-interval", "netx files: reset every neuron (u = v = 0) every N steps, "
               "staggered one step per layer, as lava-dl's hdf5.Network(reset_interval=N) does", int),
        Option("reset_offset", "--reset-offset", "netx files: the reset phase (hdf5.Network's reset_offset, "
               "default 0); needs --reset-interval", int, requires="reset_interval")), reads_given=True),
    Frontend("pytorch", "a PyTorch model", "PyTorch model", "float", (), "pytorch", (
        Option("example_input", "--input-shape", "input shape without batch, e.g. 1,28,28", shape_arg),
        Option("arch", "--arch", "package.module:factory building the model for a state_dict file"),
        Option("trust_pickle", "--trust-pickle", "unpickle a model file with arbitrary classes: runs code "
               "from the file, only for files you made yourself", None),
        Option("convert", "--convert", "the model is an ANN (ReLU/clip/QCFS activations): convert it into an "
               "SNN of IF neurons ([convert] table, docs/conversion.md)", None),
        Option("calib", None, "conversion: calibration images for percentile thresholds (--calib / --dataset)",
               None, requires="convert"),
        Option("conversion", None, "conversion: a ConvertConfig (the [convert] table)", None, requires="convert"))),
)


def all_options() -> list[Option]:
    """Every frontend's options, each once."""
    return [o for f in FRONTENDS for o in f.options]


def find(source) -> Frontend:
    """The frontend of a path (by suffix; PyTorch for any other) or an in-memory object."""
    if isinstance(source, (str, Path)):
        suffix = Path(source).suffix.lower()
        return next(f for f in FRONTENDS if suffix in f.suffixes or not f.suffixes)
    for f in FRONTENDS:
        if f.takes is not None and f.takes(source):
            return f
    return FRONTENDS[-1]


def check_options(frontend: Frontend, options: dict) -> dict:
    """The options that are set (not None/False), refusing those ``frontend`` does not take
    and those given without the option they need."""
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    known = {o.name: o for o in all_options()}
    for k in given:
        o = known.get(k)
        if o is None:
            raise SnnccError(f"unknown compile option {k!r}")
        if o.requires and o.requires not in given:
            raise SnnccError(f"{o.spelled} needs {known[o.requires].spelled}")
        if o.choices and given[k] not in o.choices:
            raise SnnccError(f"{o.spelled} {given[k]!r}: choose one of {', '.join(o.choices)}")
    mine = {o.name for o in frontend.options}
    for k in given:
        if k not in mine:
            owner = next(f for f in FRONTENDS if k in {o.name for o in f.options})
            raise SnnccError(f"{known[k].spelled} applies to {owner.what}; this model is not a {owner.short} file "
                             f"(it is {frontend.what})")
    return given
