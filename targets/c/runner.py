"""Build and run an emitted C project (see emitter.py and templates/main.c.j2).

``simulate`` returns exactly what ``snncc.reference.interpreter.run`` returns. It talks
to the harness through two little-endian binary files documented in main.c:
input "SNNI" + (N, T, size) + int32 values; output "SNNO" + header + the probes of every
step, each in its buffer's width, described by c_manifest.json."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ...errors import ArtifactError, SnnccError
from ...ir.graph import Graph
from ...ir.nodes import IntInput
from ...reference.interpreter import prepare_input
from .emitter import BINARY, BINARY_ASAN, BINARY_PROBE, BINARY_PROBE_ASAN, MANIFEST, SOURCES
from .lowering import CACHE_MACRO, PROBE_MACRO

CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
# GCC only: the vectorizer's full cost model (-O2 uses the "very cheap" one): 1.4x faster on
# the example for 1.4x the compile time (-O3: 1.65x faster, 4x the compile time)
GCC_CFLAGS = ("-fvect-cost-model=dynamic",)
# the host build is for this machine: its vector instructions (AVX2 on x86 instead of SSE2:
# 32-bit multiplies in the neuron update, 16 int16 lanes in the synapse runs). Set
# SNNCC_NATIVE=0 for a binary that runs on any CPU of the architecture.
NATIVE = ("-march=native",)
_is_gcc: dict[str, bool] = {}
_native: dict[str, str | None] = {}


def compiler_flags(cc: str) -> tuple[str, ...]:
    """CFLAGS, plus GCC_CFLAGS when ``cc`` is GCC (clang rejects them under -Werror), plus
    NATIVE where the compiler takes it (and SNNCC_NATIVE is not 0)."""
    if cc not in _is_gcc:
        try:
            out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        _is_gcc[cc] = "Free Software Foundation" in out and "clang" not in out.lower()
    native = NATIVE if native_target(cc) is not None else ()
    return CFLAGS + (GCC_CFLAGS if _is_gcc[cc] else ()) + native


def native_target(cc: str) -> str | None:
    """What -march=native means to ``cc`` on this machine (the options its driver passes
    on: the CPU and every instruction set on or off), or None where it is refused or
    SNNCC_NATIVE=0. Part of the runtime object's cache key: a cache shared between
    machines never hands one CPU's object to another."""
    if os.environ.get("SNNCC_NATIVE", "1") == "0":
        return None
    if cc not in _native:
        try:
            proc = subprocess.run([cc, *NATIVE, "-E", "-v", "-x", "c", "-"], input="", capture_output=True,
                                  text=True, timeout=30)
            lines = [ln.strip() for ln in proc.stderr.splitlines() if "cc1" in ln or "-target-cpu" in ln]
            _native[cc] = " ".join(lines) if proc.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            _native[cc] = None
    return _native[cc]
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g")
_OUT_HEADER = struct.Struct("<4sIIIII")
#: declares the state only the state probes read (model.c; the runtime never reads it)
PROBE_DEFINE = "-D" + PROBE_MACRO
#: keeps the sums of the layers reading the model input between steps (model.c; c_manifest.json
#: "input_cache_bytes" of RAM): a static image's first synapses run once per sample. The host
#: harness has it unless SNNCC_INPUT_CACHE=0; the Cortex-M4 build (the deployed memory) has not.
CACHE_DEFINE = "-D" + CACHE_MACRO


def input_cache() -> bool:
    """Whether host builds define CACHE_DEFINE (SNNCC_INPUT_CACHE is not 0)."""
    return os.environ.get("SNNCC_INPUT_CACHE", "1") != "0"


def binary_name(sanitize: bool = False, probe_state: bool = False) -> str:
    """The harness's file name: snncc_model[_probe][_asan]."""
    return ((BINARY_PROBE_ASAN if sanitize else BINARY_PROBE) if probe_state else
            (BINARY_ASAN if sanitize else BINARY))


def probe_build(man: dict) -> bool:
    """Whether state probes need their own harness (``PROBE_DEFINE``): the model declares
    some state only for them (c_manifest.json ``probe_state_bytes``)."""
    return bool(man.get("probe_state_bytes"))


def find_compiler() -> str:
    """$CC if set, else the system ``cc`` (gcc, clang as fallbacks)."""
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        path = shutil.which(cand) if cand else None
        if path:
            return path
    raise SnnccError("the C target needs a C compiler, but none was found (looked for $CC, cc, gcc, clang); "
                     "install one, e.g. `apt-get install gcc`, or set CC")


def build(out_dir: str | Path, extra_cflags=(), sanitize: bool = False, probe_state: bool = False) -> Path:
    """Compile the project in ``out_dir``; returns the binary (``snncc_model``, or
    ``snncc_model_asan`` with AddressSanitizer + UBSan when ``sanitize``; with
    ``probe_state`` the harness with ``PROBE_DEFINE``, ``snncc_model_probe[_asan]``)."""
    out = Path(out_dir)
    missing = [f for f in SOURCES + ("model.h", "snncc_rt.h") if not (out / f).is_file()]
    if missing:
        raise ArtifactError(f"{out} is not an emitted C project: missing {', '.join(missing)}")
    binary = out / binary_name(sanitize, probe_state)
    tmp = binary.with_name(f".{binary.name}.{os.getpid()}")  # a failed compile leaves the folder as it was
    cc = find_compiler()
    flags = (*compiler_flags(cc), *(SANITIZE if sanitize else ()), *extra_cflags)
    runtime = _runtime_object(cc, flags, out)  # the same object with and without PROBE_DEFINE
    sources = [f for f in SOURCES if f != RUNTIME_SOURCE] + [str(runtime)] if runtime else list(SOURCES)
    defines = (*((PROBE_DEFINE,) if probe_state else ()), *((CACHE_DEFINE,) if input_cache() else ()))
    cmd = [cc, *flags, *defines, "-o", tmp.name, *sources]
    srcs = [out / f for f in SOURCES + ("model.h", "snncc_rt.h")]
    before = _digest(srcs)
    try:
        proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
        if proc.returncode != 0:
            shown = " ".join(cmd).replace(tmp.name, binary.name)
            raise SnnccError(f"C compilation failed in {out} (exit {proc.returncode}):\n  $ {shown}\n"
                             f"{proc.stderr.strip()}")
        _stamp(binary).unlink(missing_ok=True)
        os.replace(tmp, binary)
    finally:
        tmp.unlink(missing_ok=True)
    if _digest(srcs) == before:  # the sources did not change while compiling
        _stamp(binary).write_text(json.dumps({"sources": before, "binary": _digest([binary]),
                                              "cpu": native_target(cc), "input_cache": input_cache()},
                                             sort_keys=True))
    return binary


RUNTIME_SOURCE = "snncc_rt.c"


def cache_dir() -> Path:
    """Where compiled runtime objects are kept: $SNNCC_CACHE_DIR, else
    $XDG_CACHE_HOME/snncc (~/.cache/snncc)."""
    root = os.environ.get("SNNCC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "snncc")
    return Path(root) / "c-runtime"


def _runtime_object(cc: str, flags: tuple, out: Path) -> Path | None:
    """The runtime (snncc_rt.c, the same file in every build, 90 % of a build's compile
    time) compiled once: an object file cached under the digest of its source and header,
    the compiler (path, size, mtime) and the flags, so a build compiles only model.c and
    main.c. None where the cache cannot be written or the runtime does not compile here
    (the build then compiles it with the rest, and shows any error)."""
    import hashlib

    try:
        st = os.stat(cc)
        native = native_target(cc) if any(f in NATIVE for f in flags) else None
        key = hashlib.sha256(json.dumps([cc, st.st_size, st.st_mtime_ns, list(flags), native]).encode() + b"\0"
                             + (out / RUNTIME_SOURCE).read_bytes() + b"\0" + (out / "snncc_rt.h").read_bytes())
        obj = cache_dir() / f"{key.hexdigest()[:40]}.o"
        if obj.is_file():
            return obj
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_name(f".{obj.name}.{os.getpid()}.o")
        proc = subprocess.run([cc, *flags, "-c", "-o", str(tmp), RUNTIME_SOURCE], cwd=out, capture_output=True)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            return None
        os.replace(tmp, obj)  # atomic: a concurrent build sees no object or a whole one
        return obj
    except OSError:
        return None


def _manifest(out: Path) -> dict:
    path = out / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{out} is not an emitted C project: {MANIFEST} is missing (run emit first)")
    try:
        man = json.loads(path.read_text())
    except ValueError as e:
        raise ArtifactError(f"{path} is not valid JSON ({e}); recompile the build") from None
    if not isinstance(man, dict):
        raise ArtifactError(f"{path} must hold a JSON object; recompile the build")
    return man


def _digest(paths) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + (p.read_bytes() if p.is_file() else b"<missing>") + b"\0")
    return h.hexdigest()


def _stamp(binary: Path) -> Path:
    return binary.with_name(binary.name + ".stamp")


def _stale(binary: Path, out: Path) -> bool:
    """A binary is used only if its stamp says it was built from exactly these sources,
    for this machine's instructions (``native_target``: a build folder copied to another
    CPU, or SNNCC_NATIVE switched, rebuilds), with SNNCC_INPUT_CACHE as it is now, and it is
    the very file that build produced
    (an mtime can lie; a copied-in binary has no matching stamp)."""
    if not binary.is_file() or not _stamp(binary).is_file():
        return True
    try:
        stamp = json.loads(_stamp(binary).read_text())
    except ValueError:
        return True
    srcs = [out / f for f in SOURCES + ("model.h", "snncc_rt.h")]
    return stamp != {"sources": _digest(srcs), "binary": _digest([binary]), "cpu": native_target(find_compiler()),
                     "input_cache": input_cache()}


def _input_graph(man: dict) -> Graph:
    """A one-node graph carrying the model's input contract, for ``prepare_input``."""
    g = Graph()
    i = man["input"]
    g.add(i["name"], IntInput(shape=tuple(i["shape"]), encoding=i["encoding"], bits=i["bits"]))
    g.meta["steps"] = man["steps"]
    return g


def simulate(out_dir: str | Path, x: np.ndarray, probe_state: bool = False, *, steps: int | None = None,
             sanitize: bool = False, output_only: bool = False) -> dict[str, np.ndarray]:
    """Run the compiled model on ``x`` ((N, T, ...) or static (N, ...)); builds first if
    the binary is missing or older than its sources. Same result as the reference
    (``output_only``: only its "output" entry, the harness skips every other probe).
    State probes of a model with probe-only state (``probe_build``) run the harness
    built with ``PROBE_DEFINE``; everything else runs the build a user deploys."""
    mode = _mode(probe_state, output_only)
    out = Path(out_dir)
    man = _manifest(out)
    probing = probe_state and probe_build(man)
    binary = out / binary_name(sanitize, probing)
    if _stale(binary, out):
        build(out, sanitize=sanitize, probe_state=probing)
    x = prepare_input(_input_graph(man), x, steps)
    n, t = x.shape[:2]
    size = int(np.prod(man["input"]["shape"]))
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="print_stacktrace=1")
    with tempfile.TemporaryDirectory(prefix="snncc-c-") as tmp:
        fin, fout = Path(tmp) / "input.bin", Path(tmp) / "output.bin"
        fin.write_bytes(b"SNNI" + struct.pack("<III", n, t, size) + x.astype("<i4").tobytes())
        cmd = [str(binary), str(fin), str(fout)] + [[], ["--probe"], ["--output-only"]][mode]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SnnccError(f"{binary.name} failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
        data = fout.read_bytes()
    return parse_output(data, man, probe_state, output_only)


def _mode(probe_state: bool, output_only: bool) -> int:
    """The harness's output mode (main.c): 0 spikes and outputs, 1 also states, 2 outputs only."""
    if probe_state and output_only:
        raise SnnccError("probe_state and output_only exclude each other")
    return 2 if output_only else int(probe_state)


def _selected(p: dict, mode: int) -> bool:
    return p["key"] == "output" if mode == 2 else (mode == 1 or not p["state"])


def _probe_array(rec: np.ndarray, p: dict, n: int, t: int) -> np.ndarray:
    """A probe's values as the reference's (N, T, *shape) int64 array: channel-last
    ("hwc") probes are stored (H, W, C) and transposed back to (C, H, W)."""
    shape = tuple(p["shape"])
    if p.get("layout") == "hwc":
        c, h, w = shape
        return rec.reshape((n, t, h, w, c)).transpose(0, 1, 4, 2, 3).astype(np.int64)
    return rec.reshape((n, t) + shape).astype(np.int64)


def parse_output(data: bytes, man: dict, probe_state: bool, output_only: bool = False) -> dict[str, np.ndarray]:
    """Decode an "SNNO" file (version 2, main.c) into the reference's result dict."""
    if len(data) < _OUT_HEADER.size:
        raise ArtifactError("C model output is truncated")
    mode = _mode(probe_state, output_only)
    magic, version, n, t, flag, step_bytes = _OUT_HEADER.unpack_from(data)
    probes = [p for p in man["probes"] if _selected(p, mode)]
    dt = np.dtype([(f"p{i}", p["dtype"], (int(np.prod(p["shape"])),)) for i, p in enumerate(probes)])
    if magic != b"SNNO" or version != 2 or flag != mode or step_bytes != dt.itemsize \
            or len(data) != _OUT_HEADER.size + n * t * step_bytes:
        raise ArtifactError("C model output does not match its manifest (stale build?)")
    if t == 0:
        return {}  # the reference records nothing without steps
    rec = np.frombuffer(data, dtype=dt, offset=_OUT_HEADER.size, count=n * t)
    groups: dict[str, list[np.ndarray]] = {}
    for i, p in enumerate(probes):  # same append order per step as interpreter.run
        groups.setdefault(p["key"], []).append(_probe_array(rec[f"p{i}"], p, n, t))
    res = {}
    for key, arrs in groups.items():
        if len(arrs) == 1:
            res[key] = arrs[0]
        else:  # a key recorded k times per step (several outputs): interleaved like the reference
            res[key] = np.stack(arrs, axis=2).reshape((n, t * len(arrs)) + arrs[0].shape[2:])
    return res
