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
class Frontend:
    name: str
    what: str                         # "a PyTorch model", for messages
    short: str                        # "PyTorch model", as in "not a PyTorch model file"
    level: str                        # "float": goes through the passes; "int": emitted as is
    suffixes: tuple[str, ...]         # file suffixes (lower case); () for the fallback
    module: str                       # snncc.frontends.<module> with load(source, config, **options)
    options: dict[str, str] = field(default_factory=dict)   # option -> how the CLI spells it
    takes: Callable[[object], bool] | None = None           # an in-memory object of this frontend

    def load(self, source, config, **options):
        import importlib

        return importlib.import_module(f"{__name__}.{self.module}").load(source, config, **options)


def _is_nir_graph(obj) -> bool:
    import sys

    nir = sys.modules.get("nir")
    return nir is not None and isinstance(obj, nir.NIRGraph)


FRONTENDS = (
    Frontend("nir", "a NIR graph", "NIR", "float", (".nir",), "nir",
             {"reset": "--reset", "discretization": "--discretization", "dt": "--dt"}, _is_nir_graph),
    Frontend("netx", "a lava-dl netx network", "netx", "int", (".net", ".h5", ".hdf5"), "netx",
             {"netx_reset": "--reset-interval/--reset-offset"}),
    Frontend("pytorch", "a PyTorch model", "PyTorch model", "float", (), "pytorch",
             {"example_input": "--input-shape", "arch": "--arch", "trust_pickle": "--trust-pickle"}),
)


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
    """The options that are set (not None/False), refusing those ``frontend`` does not take."""
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    bad = [k for k in given if k not in frontend.options]
    for k in bad:
        owner = next((f for f in FRONTENDS if k in f.options), None)
        if owner is None:
            raise SnnccError(f"unknown compile option {k!r}")
        raise SnnccError(f"{owner.options[k]} applies to {owner.what}; this model is not a {owner.short} file "
                         f"(it is {frontend.what})")
    return given
