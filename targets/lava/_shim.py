"""The one import shim that lets lava-nc 0.10.0 run on Python 3.11.

Why: ``lava/magma/compiler/var_model.py`` declares dataclass fields whose default is an
*instance* of another dataclass (``x: ByteEncoder = ByteEncoder()``). Python 3.11
rejects such defaults ("mutable default ... is not allowed: use default_factory"),
so ``import lava.magma.compiler.compiler`` (and with it ``proc.run``) fails. It is the
only Python 3.11 incompatibility found (see shared/design/FACTS.md section 1).

What: while the three Lava modules that pull ``var_model`` in are imported, wrap
``dataclasses._get_field`` so that a default whose class is unhashable (which is how
Python detects a mutable default) becomes ``field(default_factory=lambda: default)``.
The factory returns the very same object, which is what Python 3.10 did with such a
default, so Lava's behaviour is unchanged.

Second (not a 3.11 issue): importing Lava's runtime calls
``multiprocessing.set_start_method('fork')``, which raises "context has already been
set" in a process that already fixed its start method (any earlier use of
multiprocessing's default context, e.g. another library or test). During the import,
that call is made a no-op when the method already is 'fork' (what Lava asks for); a
different method is reported as a clear error, never silently changed.

Both originals are restored right after the imports (also on error); nothing else is
patched.

Import this module before anything else from ``lava`` (every snncc Lava module does).
The emitter copies this file next to the generated ``network.py`` as
``snncc_lava_shim.py`` so that the generated code runs with lava-nc + numpy only.
"""
from __future__ import annotations

import dataclasses
import importlib
import multiprocessing

_MODULES = ("lava.magma.core.run_configs", "lava.magma.compiler.compiler",
            "lava.magma.runtime.runtime")


def _patched(orig):
    def _get_field(cls, a_name, a_type, *args, **kw):
        default = cls.__dict__.get(a_name, dataclasses.MISSING)
        if (default is not dataclasses.MISSING and not isinstance(default, dataclasses.Field)
                and type(default).__hash__ is None):
            setattr(cls, a_name, dataclasses.field(default_factory=lambda d=default: d))
        return orig(cls, a_name, a_type, *args, **kw)
    return _get_field


def _start_method(orig):
    def set_start_method(method, force=False):
        current = multiprocessing.get_start_method(allow_none=True)
        if current == method and not force:
            return
        if current is not None and not force:
            raise RuntimeError(f"lava-nc needs the '{method}' multiprocessing start method, but this process "
                               f"already uses '{current}'; import snncc.targets.lava before setting it")
        orig(method, force=force)
    return set_start_method


def _import_lava() -> None:
    orig_field, orig_start = dataclasses._get_field, multiprocessing.set_start_method
    dataclasses._get_field = _patched(orig_field)
    multiprocessing.set_start_method = _start_method(orig_start)
    try:
        for name in _MODULES:
            importlib.import_module(name)
    finally:
        dataclasses._get_field = orig_field
        multiprocessing.set_start_method = orig_start


_import_lava()
