"""The compile driver: model -> float IR -> passes -> integer IR -> target artifacts.

Build directory layout (all files deterministic)::

    build/model.json, model.npz          the integer model (the specification)
    build/float_model.json, .npz         the float graph after tracing (for eval, NIR)
    build/compile.json                   config, targets, pass log, source digest
    build/<target>/                      one folder per emitted target
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .config import CompileConfig
from .errors import ModelLoadError, SnnccError
from .ir import serialize
from .ir.graph import Graph
from .passes.pipeline import PIPELINES, run_pipeline


@dataclass
class Build:
    """A compiled model on disk."""

    path: Path
    graph: Graph            # integer graph
    float_graph: Graph | None  # traced float graph (None for netx imports)
    config: CompileConfig
    targets: list[str]


def load_torch_model(path: str | Path, trust_pickle: bool = False, arch: str | None = None):
    """Load ``path`` safely: a whole module saved with torch.save whose classes are all on
    snncc's allow-list, or (with ``arch="pkg.module:factory"``) a state_dict loaded into
    ``factory()``. ``trust_pickle=True`` unpickles anything: that runs whatever code the
    file carries, so it is only for files you made yourself."""
    import torch
    from torch import nn

    from .frontends.safe_load import load_model

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    if arch is not None:
        model = _factory(arch)()
        sd = load_model(path) if not trust_pickle else torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(sd, nn.Module):
            sd = sd.state_dict()
        if not isinstance(sd, dict):
            raise ModelLoadError(f"{path} holds a {type(sd).__name__}, not a state_dict")
        res = model.load_state_dict(sd, strict=False)
        if res.missing_keys or res.unexpected_keys:
            raise ModelLoadError(
                f"the state_dict in {path} does not match {arch}(): missing keys "
                f"{res.missing_keys or 'none'}; unexpected keys {res.unexpected_keys or 'none'}")
        return model
    if trust_pickle:
        warnings.warn(f"--trust-pickle: unpickling {path} can execute arbitrary code stored in the "
                      "file; only do this for files you created yourself", stacklevel=2)
        obj = torch.load(path, map_location="cpu", weights_only=False)
    else:
        obj = load_model(path)
    if isinstance(obj, dict):
        raise ModelLoadError(f"{path} holds a state_dict, not a module: pass --arch "
                             "package.module:factory naming a function that builds the model")
    if not isinstance(obj, nn.Module):
        raise ModelLoadError(f"{path} holds a {type(obj).__name__}, not a torch.nn.Module")
    return obj


def _factory(spec: str):
    mod, sep, fn = spec.partition(":")
    if not sep or not mod or not fn:
        raise ModelLoadError(f"--arch {spec!r} must look like package.module:factory")
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise ModelLoadError(f"--arch {spec!r}: {e}") from None


def _input_shape(example_input) -> tuple[int, ...]:
    """(C, H, W) or (N,) from a tensor/array or a shape, with or without the batch axis."""
    shape = tuple(int(d) for d in getattr(example_input, "shape", example_input))
    return shape[1:] if len(shape) in (2, 4) else shape


def trace(model, example_input, config: CompileConfig) -> Graph:
    from .frontends.torch_fx import from_torch

    g = from_torch(model, _input_shape(example_input), encoding=config.input_encoding,
                   input_scale=config.input_scale, input_bits=config.input_bits)
    g.meta["steps"] = config.steps
    return g


def compile_graph(float_graph: Graph, config: CompileConfig, pipeline: str = "default",
                  log: list[str] | None = None) -> Graph:
    g = run_pipeline(float_graph, config, PIPELINES[pipeline], log)
    # With synapse delays the output lags the input by `latency` steps: a run lasts
    # T + latency steps so that the output integrates T steps of input.
    lat = g.latency()
    g.meta = {"steps": config.steps + lat, "input_steps": config.steps, "latency": lat,
              "snncc": __version__, "schedule": config.schedule}
    return g


def compile(model, example_input=None, target: str | list[str] = "c", out: str | Path = "build",
            config: CompileConfig | dict | None = None, *, trust_pickle: bool = False,
            arch: str | None = None, bwr: tuple | None = None,
            netx_reset: tuple[int, int] | None = None) -> Build:
    """Compile a PyTorch SNN (module or path to a model file) into ``out``.

    ``example_input``: a tensor or a shape (with or without batch); required for modules,
    inferred from the first Conv2d/Linear for files when omitted. ``netx_reset``
    (reset_interval, reset_offset): for netx files, the periodic reset lava-dl's
    ``hdf5.Network`` would be given (see ``snncc.frontends.netx``)."""
    from .targets import get as get_target

    if isinstance(config, dict):
        config = CompileConfig.from_dict(config)
    config = config or CompileConfig()
    if isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".nir":
        if arch or trust_pickle:
            raise SnnccError("--arch and --trust-pickle apply to PyTorch model files, not to .nir files")
        from .frontends.nir import compile_nir

        return compile_nir(model, target, out, config)
    targets = [target] if isinstance(target, str) else list(target)
    is_netx = isinstance(model, (str, Path)) and Path(model).suffix.lower() in (".net", ".h5", ".hdf5")
    if netx_reset is not None and not is_netx:
        raise SnnccError("--reset-interval/--reset-offset set the periodic reset of a netx import (lava-dl's "
                         "hdf5.Network arguments); this model is not a netx file")
    if is_netx:
        return _compile_netx(Path(model), targets, Path(out), config, netx_reset)
    for t in targets:
        get_target(t)  # fail early on unknown targets or missing backends
    digest = None
    if isinstance(model, (str, Path)):
        path = Path(model)
        model = load_torch_model(path, trust_pickle=trust_pickle, arch=arch)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if example_input is None:
        example_input = guess_input_shape(model)
    fg = trace(model, example_input, config)
    extra = {"source_sha256": digest}
    if bwr is not None:  # (calibration inputs, BWRConfig): learned rounding before the passes
        from .passes.bwr import bwr as run_bwr

        calib_x, bc = bwr
        extra["bwr"] = bc.to_dict()
        return compile_float_graph(run_bwr(fg, calib_x, config, bwr_config=bc), targets, out, config,
                                   extra, float_graph=fg)
    return compile_float_graph(fg, targets, out, config, extra)


def compile_float_graph(fg: Graph, targets: list[str], out: str | Path, config: CompileConfig,
                        manifest_extra: dict | None = None, float_graph: Graph | None = None) -> Build:
    """Passes, then the build directory: integer model, float model (``float_graph``, the
    model as trained, when ``fg`` already carries learned rounding), targets, manifest.
    Shared by every frontend that produces a float graph (PyTorch, NIR)."""
    float_graph = float_graph or fg
    from .targets import get as get_target

    if "lava" in targets and config.schedule != "lava":
        config = dataclasses.replace(config, schedule="lava")  # Loihi's synapses take one step
    log: list[str] = []
    pipeline = "lava" if "lava" in targets else "default"
    g = compile_graph(fg, config, pipeline, log)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    serialize.save(g, out)
    fdoc, farr = serialize.to_dict(float_graph)
    (out / "float_model.json").write_text(serialize.dump_json(fdoc))
    serialize.write_npz(out / "float_model.npz", farr)
    for t in targets:
        get_target(t).emit(g, out / t)
    manifest = {"snncc": __version__, "config": config.to_dict(), "targets": targets,
                "pipeline": pipeline, "passes": log, **(manifest_extra or {})}
    (out / "compile.json").write_text(json.dumps(manifest, sort_keys=True, indent=1) + "\n")
    return Build(out, g, float_graph, config, targets)


def _compile_netx(path: Path, targets: list[str], out: Path, config: CompileConfig,
                  reset: tuple[int, int] | None = None) -> Build:
    """A netx file already is an integer model with Lava's schedule: load, verify, emit.
    There is no float model, so `snncc eval` reports only the integer accuracy."""
    from .frontends.netx import load_netx
    from .ir.verify import verify
    from .targets import get as get_target

    g = load_netx(path, reset_interval=reset[0] if reset else None, reset_offset=reset[1] if reset else 0)
    verify(g, "int", after="netx import")
    out.mkdir(parents=True, exist_ok=True)
    serialize.save(g, out)
    for t in targets:
        get_target(t).emit(g, out / t)
    manifest = {"snncc": __version__, "config": None, "targets": targets, "pipeline": "netx import",
                "passes": [], "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "netx_reset": list(reset) if reset else None}
    (out / "compile.json").write_text(json.dumps(manifest, sort_keys=True, indent=1) + "\n")
    return Build(out, g, None, config, targets)


def guess_input_shape(model) -> tuple[int, ...]:
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            raise SnnccError("the model starts with a Conv2d: give the input shape, e.g. "
                             "--input-shape 1,28,28")
        if isinstance(m, nn.Linear):
            return (m.in_features,)
    raise SnnccError("cannot infer the input shape: give --input-shape")


def load_build(path: str | Path) -> tuple[Graph, dict]:
    """The integer graph and compile manifest of a build directory."""
    path = Path(path)
    g = serialize.load(path)
    mpath = path / "compile.json"
    manifest = json.loads(mpath.read_text()) if mpath.is_file() else {"targets": []}
    return g, manifest


def load_float_graph(path: str | Path) -> Graph:
    path = Path(path)
    jp, npz = path / "float_model.json", path / "float_model.npz"
    if not jp.is_file():
        raise SnnccError(f"{path} has no float_model.json (compiled by an older snncc?)")
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return serialize.from_dict(json.loads(jp.read_text()), arrays)
