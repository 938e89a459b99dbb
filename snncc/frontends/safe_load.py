"""Load whole pickled ``torch.nn.Module`` files without trusting the pickle.

``torch.save(model, path)`` pickles module *classes by name*. ``torch.load(path,
weights_only=True)`` refuses every global that is not allow-listed, so a model file can
be loaded safely when every class it names is one snncc can compile anyway. The
tensor-rebuilding helpers the pickle also references (``torch._utils._rebuild_tensor_v2``,
``torch._utils._rebuild_parameter``, ``collections.OrderedDict``, ``builtins.set``,
``torch.FloatStorage`` / ``LongStorage``) are on torch's own default allow-list, so
:func:`safe_globals` only lists module classes.

snnTorch neurons: ``snntorch.Leaky`` is listed so that its class name is accepted, but a
whole pickled ``Leaky`` also stores its surrogate function and a bound method, which the
pickle rebuilds through ``builtins.getattr`` (and, for the default ``atan()`` surrogate,
cannot be pickled at all). ``getattr`` is never allow-listed, so such files are refused;
save snnTorch models as a ``state_dict`` plus code instead.
"""
from __future__ import annotations

import os

from snncc.errors import ModelLoadError


def safe_globals() -> list[type]:
    """The classes a model file may name: torch's own ``torch.nn`` module classes (their
    constructors run no code from the file; unsupported ones are then reported by the
    frontend with their place in the model), snncc's neurons and its QCFS activation."""
    import inspect

    from torch import nn

    from snncc import nn as snn

    allowed: list[type] = sorted(
        (c for _, c in inspect.getmembers(nn, inspect.isclass)
         if issubclass(c, nn.Module) and c.__module__.startswith("torch.nn.modules")),
        key=lambda c: f"{c.__module__}.{c.__qualname__}")
    allowed += [snn.LIF, snn.IF, snn.Residual, snn.QCFS]
    try:
        import snntorch
    except Exception:  # not installed (or broken): its classes are simply not allowed
        pass
    else:
        allowed.append(snntorch.Leaky)
    return allowed


def load_model(path: str | os.PathLike, map_location: str = "cpu"):
    """``torch.load(path, weights_only=True)`` with :func:`safe_globals` allowed.

    Raises :class:`~snncc.errors.ModelLoadError` for a missing or unreadable file and for
    a file that names classes outside the allow-list (listing them).
    """
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelLoadError(f"model file not found: {path}")
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, ... here
        unsafe: list[str] = []
        try:
            allowed = {f"{c.__module__}.{c.__qualname__}" for c in safe_globals()}
            unsafe = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(path)
                      if g not in allowed]
        except Exception:
            pass
        if unsafe:
            raise ModelLoadError(
                f"{path} names classes or functions outside snncc's allow-list (torch.nn modules "
                f"and snncc.nn neurons): {', '.join(sorted(unsafe))}. Unpickling them would run "
                "code stored in the file, so snncc refuses by default. Safe fix: save "
                "model.state_dict() and compile it with --arch package.module:factory. If you "
                "created the file yourself and trust it: --trust-pickle") from None
        raise ModelLoadError(f"cannot load {path} as a torch model file "
                             f"({_reason(e)}); it must be written by torch.save") from None


def _reason(e: Exception) -> str:
    """The informative part of torch.load's long weights_only error message."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
        text = text.split("Check the documentation of torch.load", 1)[0]
    text = " ".join(text.split())
    return text[:300] or type(e).__name__
