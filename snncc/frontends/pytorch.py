"""The PyTorch door: load a model file safely, trace it with torch.fx (``torch_fx``)."""
from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path

from ..errors import ModelLoadError, SnnccError
from ..ir.graph import Graph


def load_torch_model(path: str | Path, trust_pickle: bool = False, arch: str | None = None):
    """Load ``path`` safely: a whole module saved with torch.save whose classes are all on
    snncc's allow-list, or (with ``arch="pkg.module:factory"``) a state_dict loaded into
    ``factory()``. ``trust_pickle=True`` unpickles anything: that runs whatever code the
    file carries, so it is only for files you made yourself."""
    import torch
    from torch import nn

    from .safe_load import load_model

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


def input_shape(example_input) -> tuple[int, ...]:
    """(C, H, W) or (N,) from a tensor/array or a shape, with or without the batch axis."""
    shape = tuple(int(d) for d in getattr(example_input, "shape", example_input))
    return shape[1:] if len(shape) in (2, 4) else shape


def guess_input_shape(model) -> tuple[int, ...]:
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            raise SnnccError("the model starts with a Conv2d: give the input shape, e.g. "
                             "--input-shape 1,28,28")
        if isinstance(m, nn.Linear):
            return (m.in_features,)
    raise SnnccError("cannot infer the input shape: give --input-shape")


def trace(model, example_input, config) -> Graph:
    """The float graph of a single-step PyTorch SNN (see :mod:`snncc.frontends.torch_fx`)."""
    from .torch_fx import from_torch

    encoding, scale, bits = config.input_contract()
    g = from_torch(model, input_shape(example_input), encoding=encoding, input_scale=scale, input_bits=bits)
    g.meta["steps"] = config.steps
    return g


def load(source, config, example_input=None, arch: str | None = None, trust_pickle: bool = False):
    """(float graph, manifest fields) of a module or a model file."""
    manifest = {"source_sha256": None}
    model = source
    if isinstance(source, (str, Path)):
        path = Path(source)
        model = load_torch_model(path, trust_pickle=trust_pickle, arch=arch)
        manifest["source_sha256"] = _sha256(path)
    if example_input is None:
        example_input = guess_input_shape(model)
    return trace(model, example_input, config), manifest


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_module(obj) -> bool:
    nn = sys.modules.get("torch.nn")
    return nn is not None and isinstance(obj, nn.Module)
