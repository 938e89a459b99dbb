"""The PyTorch door: load a model file safely, trace it with torch.fx (``torch_fx``)."""
from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path

from ..errors import ModelLoadError, SnnccError
from ..ir.graph import Graph
from .shapes import input_shape  # noqa: F401 - part of this module's API


def load_torch_model(path: str | Path, trust_pickle: bool = False, arch: str | None = None):
    """Load ``path`` safely: a whole module saved with torch.save whose classes are all on
    snncc's allow-list, or (with ``arch="pkg.module:factory"``) a state_dict loaded into
    ``factory()``. ``trust_pickle=True`` unpickles anything: that runs whatever code the
    file carries, so it is only for files you made yourself."""
    from torch import nn

    path = Path(path)
    _check_file(path)
    if arch is not None:
        return _load_state_dict(path, arch, trust_pickle)
    obj = _load(path, trust_pickle)
    if isinstance(obj, dict):
        raise ModelLoadError(f"{path} holds a state_dict, not a module: pass --arch "
                             "package.module:factory naming a function that builds the model")
    if not isinstance(obj, nn.Module):
        raise ModelLoadError(f"{path} holds a {type(obj).__name__}, not a torch.nn.Module")
    return obj


def _check_file(path: Path) -> None:
    """A model file that exists and whose zip archive (torch.save's format) is intact:
    torch does not check the archive's CRCs, so a damaged file would load silently."""
    import zipfile

    if path.is_dir():
        raise ModelLoadError(f"{path} is a directory, not a model file")
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ModelLoadError(f"{path} is a corrupt torch file (its zip archive cannot be read: {e})") from None
        if bad is not None:
            raise ModelLoadError(f"{path} is corrupt: the CRC checksum of '{bad}' inside it does not match "
                                 "(a damaged or truncated copy); save or copy the model again")


def _load(path: Path, trust_pickle: bool):
    import torch

    from .safe_load import load_model

    if not trust_pickle:
        return load_model(path)
    warnings.warn(f"--trust-pickle: unpickling {path} can execute arbitrary code stored in the "
                  "file; only do this for files you created yourself", stacklevel=3)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise ModelLoadError(f"cannot load {path} as a torch model file ({type(e).__name__}: {e}); it must be "
                             "written by torch.save") from None


def _load_state_dict(path: Path, arch: str, trust_pickle: bool):
    from torch import nn

    factory = _factory(arch)
    try:
        model = factory()
    except Exception as e:  # noqa: BLE001 - the user's factory
        raise ModelLoadError(f"--arch {arch}: calling {arch}() raised {type(e).__name__}: {e}") from None
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"--arch {arch}: {arch}() returned a {type(model).__name__}, not a torch.nn.Module")
    sd = _load(path, trust_pickle)
    if isinstance(sd, nn.Module):
        sd = sd.state_dict()
    if not isinstance(sd, dict):
        raise ModelLoadError(f"{path} holds a {type(sd).__name__}, not a state_dict")
    try:
        res = model.load_state_dict(sd, strict=False)
    except (RuntimeError, TypeError) as e:
        raise ModelLoadError(f"the state_dict in {path} does not fit {arch}(): {e}") from None
    if res.missing_keys or res.unexpected_keys:
        raise ModelLoadError(
            f"the state_dict in {path} does not match {arch}(): missing keys "
            f"{res.missing_keys or 'none'}; unexpected keys {res.unexpected_keys or 'none'}")
    return model


def _factory(spec: str):
    mod, sep, fn = spec.partition(":")
    if not sep or not mod or not fn:
        raise ModelLoadError(f"--arch {spec!r} must look like package.module:factory")
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like `python -m`: modules beside you are found
    try:
        return getattr(importlib.import_module(mod), fn)
    except Exception as e:  # noqa: BLE001 - importing the user's module runs its code
        raise ModelLoadError(f"--arch {spec!r}: cannot import {fn} from {mod} ({type(e).__name__}: {e})") from None


#: the attribute snncc.save stores the input shape in (a tuple of ints: the safe loader reads it)
SHAPE_ATTR = "snncc_input_shape"


def save(model, path: str | Path, input_shape=None) -> Path:
    """``torch.save(model, path)`` with the input shape (C, H, W) or (N,) stored in the
    module (attribute ``snncc_input_shape``), so that ``snncc compile path`` needs no
    ``--input-shape``. The file loads with snncc's safe loader like any torch.save'd module."""
    import torch

    if input_shape is not None:
        setattr(model, SHAPE_ATTR, _shape_of(input_shape))
    path = Path(path)
    torch.save(model, path)
    return path


def _shape_of(example_input) -> tuple[int, ...]:
    return input_shape(example_input)  # save's argument hides the function's name


def guess_input_shape(model) -> tuple[int, ...]:
    """The input shape of a model without ``--input-shape``: the one snncc.save stored; for a
    model starting with a Linear its in_features; for one starting with a Conv2d the square
    image size that the rest of the model accepts, when exactly one size up to 512 does."""
    return _shape_and_how(model)[0]


def _shape_and_how(model) -> tuple[tuple[int, ...], str | None]:
    from torch import nn

    stored = getattr(model, SHAPE_ATTR, None)
    if stored is not None:
        return input_shape(stored), None
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return _square_shape(model, name, m), "inferred"
        if isinstance(m, nn.Linear):
            if m.in_features < 1:
                raise SnnccError(f"Linear at '{name}' has in_features=0: a layer with no inputs cannot be "
                                 "compiled")
            return (m.in_features,), None
    raise SnnccError("cannot infer the input shape: give --input-shape")


def _square_shape(model, name: str, conv) -> tuple[int, int, int]:
    """(C, S, S) for the one S in 1..512 at which one step of ``model`` runs (C: the first
    Conv2d's in_channels); an error naming the sizes when none or several do."""
    import copy

    import torch

    fits, at28 = [], ""
    with torch.no_grad():
        for s in range(1, 513):
            try:  # on the meta device: shapes only, no arithmetic
                copy.deepcopy(model).to("meta").eval()(torch.zeros(1, conv.in_channels, s, s, device="meta"))
            except Exception as e:  # noqa: BLE001 - any failure means this size does not fit
                at28 = f" (at 28x28: {type(e).__name__}: {e})" if s == 28 else at28
                continue
            fits.append(s)
            if len(fits) > 1:
                break
    if len(fits) == 1:
        return (conv.in_channels, fits[0], fits[0])
    what = (f"no square size up to 512 runs through it on the meta device{at28}" if not fits else
            f"square images of {fits[0]}x{fits[0]} and {fits[1]}x{fits[1]} (at least) both fit")
    raise SnnccError(f"the model starts with a Conv2d at '{name}' ({conv.in_channels} input channels) and {what}: "
                     f"give the input shape, e.g. --input-shape {conv.in_channels},28,28 (or save the model with "
                     "snncc.save(model, path, input_shape=...))")


def _check_channels(model, shape: tuple[int, ...]) -> None:
    """The input shape against the first layer: its channels (Conv2d) or features (Linear
    straight on the input)."""
    from torch import nn

    given = ",".join(map(str, shape))
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if len(shape) != 3 or shape[0] != m.in_channels:
                raise SnnccError(f"the model expects C={m.in_channels} input channels (Conv2d at '{name}'), "
                                 f"--input-shape gave {given}: give {m.in_channels},H,W")
            return
        if isinstance(m, (nn.Linear, nn.Flatten)):
            return


def trace(model, example_input, config) -> Graph:
    """The float graph of a single-step PyTorch SNN (see :mod:`snncc.frontends.torch_fx`);
    an ANN activation in it is refused with the way to convert (``convert=True``)."""
    from ..conversion.trace import activation_hint
    from ..ir.verify import problems
    from .torch_fx import from_torch

    encoding, scale, bits = config.input_contract()
    shape = input_shape(example_input)
    _check_channels(model, shape)
    g = from_torch(model, shape, encoding=encoding, input_scale=scale, input_bits=bits, extra=activation_hint)
    g.meta["steps"] = config.steps
    errs = problems(g, "float")
    if errs:
        raise SnnccError(f"the model does not take inputs of shape {shape} (--input-shape):\n"
                         + "\n".join(f"  - {e}" for e in errs))
    return g


def load(source, config, example_input=None, arch: str | None = None, trust_pickle: bool = False,
         convert: bool = False, calib=None, conversion=None):
    """(float graph, manifest fields) of a module or a model file; with ``convert`` the
    model is an ANN, converted into an SNN (:mod:`snncc.conversion`; ``calib``: its
    calibration images, ``conversion``: a ConvertConfig or a dict of its fields)."""
    manifest = {"source_sha256": None}
    model = source
    if isinstance(source, (str, Path)):
        path = Path(source)
        model = load_torch_model(path, trust_pickle=trust_pickle, arch=arch)
        manifest["source_sha256"] = _sha256(path)
    if example_input is None:
        example_input, how = _shape_and_how(model)
        if how:
            manifest["warnings"] = [f"input shape {','.join(map(str, example_input))} {how}: the only square "
                                    "image size the model accepts (give --input-shape to choose another)"]
    if not convert:
        if calib is not None or conversion is not None:
            raise SnnccError("calib= and conversion= are settings of ANN conversion: add convert=True (--convert)")
        return trace(model, example_input, config), manifest
    from ..conversion import ConvertConfig
    from ..conversion import convert as to_snn

    cc = ConvertConfig.from_dict(conversion) if isinstance(conversion, dict) else conversion or ConvertConfig()
    g = to_snn(model, example_input, config, calib=calib, conversion=cc)
    manifest["conversion"] = {k: v for k, v in cc.to_dict().items() if k not in ("enabled", "calib")}
    return g, manifest


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_module(obj) -> bool:
    nn = sys.modules.get("torch.nn")
    return nn is not None and isinstance(obj, nn.Module)
