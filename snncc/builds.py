"""Build directories: write them atomically, read them only when they are whole, and run
a build on a target.

Layout (every file deterministic)::

    build/model.json, model.npz          the integer model (the specification)
    build/float_model.json, .npz         the float graph after tracing (for eval, NIR)
    build/compile.json                   config, targets, pass log, source digest, and the
                                         SHA-256 of every other file ("artifacts")
    build/<target>/                      one folder per emitted target

**Writing** (:func:`write`): everything goes into a hidden sibling directory first; only
when it is complete does it replace the previous build (two renames), so a compile that
fails, runs out of disk or is interrupted leaves the previous build as it was. A lock file
beside the build (``.<name>.lock``) keeps two compiles from writing one build at once.
Files a user put into a build directory (e.g. a ``result.npz``) are carried over.

**Reading** (:func:`load_build`): every artifact listed in compile.json must be there with
its checksum, before anything of the build is read or run; a target not in the manifest
does not exist. A build directory holds code (``lava/network.py`` is imported, the C
binary is run): check a build you did not make yourself with ``snncc verify`` first, or
recompile it from its model (README, "Security").
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ArtifactError, SnnccError
from .ir import serialize
from .ir.graph import Graph

MANIFEST = "compile.json"
#: the files of the build itself (besides the target folders)
OWN_FILES = ("model.json", "model.npz", "float_model.json", "float_model.npz", MANIFEST)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------- write
def write(out: str | Path, fill: Callable[[Path], dict]) -> Path:
    """Make the build ``out``: ``fill(directory)`` writes its files into a fresh directory
    and returns the manifest; the manifest gets every file's checksum and is written
    last; then the new build replaces the old one. Returns ``out``."""
    out = Path(out)
    _check_out(out)
    with _lock(out):
        tmp = out.parent / f".{out.name}.part-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            manifest = fill(tmp)
            manifest["artifacts"] = {f: sha256(tmp / f) for f in _files(tmp)}
            (tmp / MANIFEST).write_text(json.dumps(manifest, sort_keys=True, indent=1) + "\n")
            _carry_user_files(out, tmp)
            _replace(out, tmp)
        except OSError as e:
            raise SnnccError(f"cannot write the build {out}: {e.strerror or e}"
                             + (f" ({e.filename})" if getattr(e, "filename", None) else "")
                             + "; the previous build, if any, is unchanged") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SnnccError(f"--out {out} is a file, not a directory: give a build directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise SnnccError(f"--out {out} is a directory that holds other files and no snncc build (no {MANIFEST}); "
                         "give a new or empty directory, or an existing build to replace")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SnnccError(f"cannot create the directory {out.parent}: {e.strerror or e}") from None
    if not os.access(out.parent, os.W_OK):
        raise SnnccError(f"cannot write the build {out}: {out.parent} is not writable")


@contextmanager
def _lock(out: Path):
    """An exclusive lock on ``.<name>.lock`` beside the build (refused, not waited for)."""
    import fcntl

    path = out.parent / f".{out.name}.lock"
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as e:
        raise SnnccError(f"cannot lock the build {out}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SnnccError(f"another snncc compile is writing {out} right now; wait for it, or use another "
                             "--out") from None
        yield
    finally:
        os.close(fd)


def _carry_user_files(out: Path, tmp: Path) -> None:
    """Move what a user added to the old build (neither its artifacts nor its folders)."""
    if not (out / MANIFEST).is_file():
        return
    try:
        old = json.loads((out / MANIFEST).read_text())
        owned = {a.split("/")[0] for a in old.get("artifacts", {})} | set(old.get("targets", []))
    except (ValueError, AttributeError, TypeError):
        owned = set()
    for p in out.iterdir():
        if p.name not in owned and p.name not in OWN_FILES and not (tmp / p.name).exists():
            shutil.move(str(p), str(tmp / p.name))


def _replace(out: Path, tmp: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------- read
def read_manifest(path: str | Path) -> dict:
    """The manifest of a whole, unmodified build (every artifact present, with its
    checksum); refuses anything else with what is wrong and the fix."""
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"{path} is not an snncc build directory (it does not exist or is a file): "
                            f"run `snncc compile MODEL --out {path}` first")
    mpath = path / MANIFEST
    if not mpath.is_file():
        if (path / "model.json").is_file():
            serialize.load(path)  # a malformed model says so first
        raise ArtifactError(f"{path} is not an snncc build directory: {MANIFEST} is missing (run `snncc compile "
                            f"MODEL --out {path}` first)")
    try:
        manifest = json.loads(mpath.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{mpath} is not valid JSON ({e}): the build is damaged; recompile it") from None
    arts = manifest.get("artifacts") if isinstance(manifest, dict) else None
    if not isinstance(arts, dict) or not isinstance(manifest.get("targets", []), list):
        raise ArtifactError(f"{mpath} lists no artifact checksums: the build was made by an older snncc, or "
                            "compile.json was edited; recompile it")
    bad = []
    for rel, digest in sorted(arts.items()):
        f = path / rel
        if not f.is_file():
            bad.append(f"{rel} is missing")
        elif sha256(f) != digest:
            bad.append(f"{rel} differs from the file snncc wrote")
    if bad:
        raise ArtifactError(f"the build {path} is incomplete or was changed after it was compiled: "
                            + "; ".join(bad) + f". Recompile it (snncc compile MODEL --out {path})")
    return manifest


def load_build(path: str | Path) -> tuple[Graph, dict]:
    """The integer graph and compile manifest of a build directory (checked whole)."""
    manifest = read_manifest(path)
    return serialize.load(Path(path)), manifest


def load_float_graph(path: str | Path) -> Graph:
    path = Path(path)
    jp, npz = path / "float_model.json", path / "float_model.npz"
    if not jp.is_file() or not npz.is_file():
        raise SnnccError(f"{path} has no float model (float_model.json/.npz): it was imported from an integer "
                         "format (netx), or compiled by an older snncc")
    try:
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return serialize.from_dict(json.loads(jp.read_text()), arrays)
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise ArtifactError(f"{path}'s float model cannot be read ({e}); recompile the build") from None


def target_dir(build: str | Path, manifest: dict, target: str) -> Path:
    """The folder of an emitted target; a target the manifest does not list does not exist."""
    if target not in manifest.get("targets", []):
        have = ", ".join(manifest.get("targets", [])) or "none"
        raise SnnccError(f"{build} has no {target} target (it was compiled for: {have}); compile with "
                         f"--target {target}")
    return Path(build) / target


def load_input(path: str | Path) -> np.ndarray:
    """An integer input batch from .npy, or the array ``x`` of an .npz."""
    p = Path(path)
    if not p.is_file():
        raise SnnccError(f"input file {p} does not exist")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if "x" not in z.files:
                    raise SnnccError(f"{p} has no array named 'x' (found: {', '.join(z.files) or 'none'})")
                return z["x"]
        return np.load(p, allow_pickle=False)
    except SnnccError:
        raise
    except Exception as e:  # noqa: BLE001
        raise SnnccError(f"{p} is not a readable numpy file: {e}") from None


def simulate(build: str | Path, target: str, x: np.ndarray, probe_state: bool = False) -> dict:
    """Run ``x`` on one target of a build ("reference": the interpreter itself); returns
    what the reference interpreter returns."""
    from .reference import interpreter as R
    from .targets import spec

    g, manifest = load_build(build)
    if target == "reference":
        return R.run(g, x, probe_state=probe_state)
    tdir = target_dir(build, manifest, target)
    R.prepare_input(g, x)  # one input contract for every target
    return spec(target).simulate(tdir, x, probe_state=probe_state)
