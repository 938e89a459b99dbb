"""The compile flow, the same for every frontend and target::

    source --frontend--> float graph --float passes--> [BWR] --integer passes--> integer graph
           (netx: an integer graph already)                                        |
                                                  build directory <--emitters------+

The frontend comes from :mod:`snncc.frontends` (by file suffix or object type), the pass
list and the config adjustments from the targets (:func:`snncc.targets.spec`): this
module names neither a frontend nor a target. Build directory layout:
:mod:`snncc.builds`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ._version import __version__
from . import builds
from .builds import MANIFEST, load_build, load_float_graph  # noqa: F401 - part of the API
from .config import CompileConfig
from .errors import SnnccError
from .frontends import check_options, find
from .frontends.pytorch import guess_input_shape, load_torch_model, trace  # noqa: F401 - part of the API
from .ir import serialize
from .ir.graph import Graph
from .ir.verify import verify
from .passes.pipeline import DEFAULT, float_prefix, run_pipeline


@dataclass
class Build:
    """A compiled model on disk."""

    path: Path
    graph: Graph            # integer graph
    float_graph: Graph | None  # traced float graph (None for integer imports: netx)
    config: CompileConfig
    targets: list[str]
    notes: list[str] = dataclasses.field(default_factory=list)  # the frontend's assumptions


def compile(model, example_input=None, target: str | list[str] | None = None, out: str | Path = "build",
            config: CompileConfig | dict | None = None, *, bwr: tuple | None = None, prune: tuple | None = None,
            **options) -> Build:
    """Compile a model (a PyTorch module or model file, a NIR graph or ``.nir`` file, a
    netx ``.net`` file) into ``out``, for ``target`` (a name or a list; default: the
    default targets, ``snncc.targets.DEFAULT_TARGETS``).

    ``example_input``: a tensor or a shape (with or without batch) for PyTorch models;
    inferred from the first Linear when omitted. ``config``: a CompileConfig, or a dict of
    its fields (then the targets' suggested values fill the fields it does not set).
    ``bwr``: (calibration inputs, BWRConfig) for learned rounding. ``prune``: (calibration
    inputs or None, PruneConfig) for structured channel pruning of the float model first
    (``snncc.passes.prune``; the unpruned float model stays in the build for the report).
    Frontend options
    (``arch``, ``trust_pickle``, netx's ``reset_interval``/``reset_offset``, NIR's
    ``reset``/``discretization``/``dt``; ``snncc.frontends.FRONTENDS``)
    are refused by name where the model's frontend does not take them."""
    targets = _targets(target)
    frontend = find(model)
    opts = check_options(frontend, {"example_input": example_input, **options})
    cfg = resolve_config(config, targets)
    pipeline, pipeline_name = choose_pipeline(targets)
    graph, manifest = frontend.load(model, cfg, given=given_fields(config), **opts)
    if frontend.level == "int":
        floats = [t.name for t in targets if t.needs_float]
        if floats:
            raise SnnccError(f"the {', '.join(floats)} target needs a float model, and a {frontend.name} file "
                             "holds an integer one: compile the trained float model (.pt or .nir) for it")
        if prune is not None or bwr is not None:
            raise SnnccError(f"pruning and BWR work on float models; a {frontend.name} file holds an integer one")
        verify(graph, "int", after=f"{frontend.name} import")
        return write_build(out, graph, None, targets, cfg, {**manifest, "config": None, "passes": []})
    unpruned = None
    if prune is not None:
        from .passes.prune import prune_graph

        unpruned = graph
        graph, manifest["prune"] = prune_graph(graph, prune[1], prune[0])
    log: list[str] = []
    g = compile_graph(graph, cfg, pipeline, log, bwr=bwr, manifest=manifest)
    return write_build(out, g, graph, targets, cfg, {**manifest, "config": cfg.to_dict(),
                                                     "pipeline": pipeline_name, "passes": log}, unpruned)


def _targets(target: str | list[str] | None) -> list:
    from .targets import DEFAULT_TARGETS, spec

    names = DEFAULT_TARGETS if target is None else [target] if isinstance(target, str) else list(target)
    return [spec(t) for t in names]  # fails early on unknown targets or missing backends


def given_fields(config: CompileConfig | dict | None) -> frozenset:
    """The config fields the user set: a dict's keys; of a CompileConfig instance, the
    fields that differ from the defaults."""
    if isinstance(config, CompileConfig):
        default = CompileConfig().to_dict()
        return frozenset(k for k, v in config.to_dict().items() if default[k] != v)
    return frozenset(config or {})


def resolve_config(config: CompileConfig | dict | None, targets: list) -> CompileConfig:
    """The config of a compile: a CompileConfig as given; a dict (its keys are what the
    user set) completed with the targets' suggested values; then every target's required
    values (a dict that sets one differently is refused)."""
    given = isinstance(config, CompileConfig)
    base = config.to_dict() if given else dict(config or {})
    explicit = set(base) if given else set(config or {})  # an instance sets every field
    suggested: dict = {}
    for t in targets:
        for k, v in t.config_defaults.items():
            if k not in explicit:
                if suggested.get(k, v) != v:
                    raise SnnccError(f"targets disagree on {k}: {suggested[k]!r} vs {v!r} ({t.name}); "
                                     f"set {k} explicitly")
                suggested[k] = base[k] = v
    for t in targets:
        for k, v in t.config_forced.items():
            if k in explicit and not given and base[k] != v:
                raise SnnccError(f"the {t.name} target needs {k} = {v!r}, but the configuration sets {base[k]!r}")
            base[k] = v
    if given:
        return config if base == config.to_dict() else dataclasses.replace(config, **base)
    return CompileConfig.from_dict(base)


def choose_pipeline(targets: list) -> tuple[list, str]:
    """The pass list the targets need: the one some target declares (all that declare
    one must agree), else the default."""
    declared = {}
    for t in targets:
        if t.pipeline is not None:
            declared.setdefault(id(t.pipeline), (t.pipeline, t.name))
    if len(declared) > 1:
        names = ", ".join(name for _, name in declared.values())
        raise SnnccError(f"the targets {names} need different pass pipelines; compile them into separate builds")
    return next(iter(declared.values())) if declared else (DEFAULT, "default")


def compile_graph(float_graph: Graph, config: CompileConfig, pipeline: list | None = None,
                  log: list[str] | None = None, *, bwr: tuple | None = None, manifest: dict | None = None) -> Graph:
    """A float graph through a pipeline (default: DEFAULT), with BWR (``bwr`` = (calibration
    inputs, BWRConfig)) between its float passes and the rest; BWR's statistics go into
    ``manifest["bwr"]``. The result's meta: steps (T + synapse latency), schedule."""
    passes = DEFAULT if pipeline is None else pipeline
    prefix = float_prefix(passes)
    history: list[str] = []
    g = run_pipeline(float_graph, config, prefix, log, history)
    if bwr is not None:
        g = _bwr_step(g, config, bwr, manifest if manifest is not None else {})
    notes: list[str] = []
    g = run_pipeline(g, config, passes[len(prefix):], log, history, notes)
    if notes and manifest is not None:
        manifest["warnings"] = list(manifest.get("warnings", [])) + notes
    # With synapse delays the output lags the input by `latency` steps: a run lasts
    # T + latency steps so that the output integrates T steps of input.
    lat = g.latency()
    g.meta = {"steps": config.presim + config.steps + lat, "input_steps": config.steps, "latency": lat,
              "snncc": __version__, "schedule": config.schedule}
    if config.presim:  # TNP: the presimulation steps come first, and count in every latency
        g.meta["presim"] = config.presim
    return g


def _bwr_step(g: Graph, config: CompileConfig, bwr: tuple, manifest: dict) -> Graph:
    """Learned rounding (SNNQ's BWR) on the graph after the float passes."""
    from .passes.bwr import bwr as run_bwr

    calib_x, bc = bwr
    g = run_bwr(g, calib_x, config, bwr_config=bc, prefix=[])
    stats = g.meta["bwr"]
    blocks = [{k: v for k, v in b.items() if k != "seconds"} for b in stats["blocks"]]  # no timings:
    manifest["bwr"] = {**bc.to_dict(), "run": {"calib_samples": stats["calib_samples"],  # builds are
                                               "device": stats["device"], "blocks": blocks}}  # reproducible
    return g


def write_build(out: str | Path, graph: Graph, float_graph: Graph | None, targets: list, config: CompileConfig,
                manifest: dict, unpruned: Graph | None = None) -> Build:
    """The build directory (written atomically, see :mod:`snncc.builds`): integer model,
    float model (and the float model before pruning), every target, the manifest with
    every file's checksum."""
    names = [t.name for t in targets]

    def fill(d: Path) -> dict:
        serialize.save(graph, d)
        for stem, fg in (("float_model", float_graph), ("unpruned_float_model", unpruned)):
            if fg is not None:
                fdoc, farr = serialize.to_dict(fg)
                (d / f"{stem}.json").write_text(serialize.dump_json(fdoc))
                serialize.write_npz(d / f"{stem}.npz", farr)
        for t in targets:
            t.emit(graph, d / t.name, float_graph=float_graph)
        return {"snncc": __version__, "targets": names, **manifest}

    path = builds.write(out, fill)
    return Build(path, graph, float_graph, config, names, list(manifest.get("warnings", [])))


def compile_nir(path, target=None, out="build", config=None, **load_kw) -> Build:
    """Compile a ``.nir`` file (``load_kw``: the NIR frontend's ``reset``, ``discretization``, ``dt``)."""
    return compile(path, target=target, out=out, config=config, **load_kw)
