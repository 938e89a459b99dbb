"""Build directories: write them atomically, read them only when they are whole, and run
a build on a target.

Layout (every file deterministic)::

    build/model.json, model.npz          the integer model (the specification)
    build/float_model.json, .npz         the float graph after tracing (and pruning; for eval, NIR)
    build/unpruned_float_model.json,.npz the float graph before structured pruning (report)
    build/compile.json                   config, targets, pass log, source digest, and the
                                         SHA-256 of every other file ("artifacts")
    build/<target>/                      one folder per emitted target

**Writing** (:func:`write`): everything goes into a hidden sibling directory first; only
when it is complete does it replace the previous build (one exchange of directories), so a compile that
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
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ArtifactError, SnnccError
from .ir import serialize
from .ir.graph import Graph
from .ops import records_u

MANIFEST = "compile.json"
#: the files of the build itself (besides the target folders)
OWN_FILES = ("model.json", "model.npz", "float_model.json", "float_model.npz", "unpruned_float_model.json",
             "unpruned_float_model.npz", MANIFEST)


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


def _owned(manifest: dict) -> set[str]:
    """The top-level names of a build that snncc wrote (its artifacts and target folders)."""
    try:
        return ({a.split("/")[0] for a in manifest.get("artifacts", {})} | set(manifest.get("targets", []))
                | set(OWN_FILES))
    except (AttributeError, TypeError):
        return set(OWN_FILES)


def user_files(build: str | Path, manifest: dict) -> list[str]:
    """What a user put into a build directory: snncc neither checks nor runs it."""
    own = _owned(manifest)
    return sorted(p.name + ("/" if p.is_dir() else "") for p in Path(build).iterdir()
                  if p.name not in own and not p.name.startswith("."))


def _carry_user_files(out: Path, tmp: Path) -> None:
    """Move what a user added to the old build (neither its artifacts nor its folders)."""
    if not (out / MANIFEST).is_file():
        return
    try:
        own = _owned(json.loads((out / MANIFEST).read_text()))
    except ValueError:
        own = set(OWN_FILES)
    for p in out.iterdir():
        if p.name not in own and not (tmp / p.name).exists():
            shutil.move(str(p), str(tmp / p.name))


def _replace(out: Path, tmp: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    if _exchange(tmp, out):  # readers see the old build or the new one, never neither
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux renameat2 RENAME_EXCHANGE); False where the
    system or file system cannot (then two renames leave a moment without ``b``)."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


# ----------------------------------------------------------------------------------- read
READ_TRIES = 5  # a build replaced while it is being read is read again (up to this often)


def _raw_manifest(path: Path) -> bytes | None:
    try:
        return (path / MANIFEST).read_bytes()
    except OSError:
        return None


def _consistent(path: str | Path, read: Callable[[Path], tuple]):
    """``read(path)`` again while a compile swapped the build in the middle of it (its
    compile.json changed): the result is always of one build, the old or the new."""
    path = Path(path)
    for attempt in range(READ_TRIES):
        raw = _raw_manifest(path)
        try:
            out = read(path)
        except ArtifactError:
            if attempt + 1 < READ_TRIES and _raw_manifest(path) != raw:
                continue
            raise
        if _raw_manifest(path) == raw:
            return out
    raise ArtifactError(f"{path} was replaced {READ_TRIES} times while it was being read; try again")


def read_manifest(path: str | Path) -> dict:
    """The manifest of a whole, unmodified build (every artifact present, with its
    checksum); refuses anything else with what is wrong and the fix."""
    return _consistent(path, _read_manifest)


def _read_manifest(path: Path) -> dict:
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
    def read(p: Path) -> tuple[Graph, dict]:
        manifest = _read_manifest(p)  # every checksum first, then the model
        return serialize.load(p), manifest

    return _consistent(path, read)


def load_float_graph(path: str | Path, stem: str = "float_model") -> Graph:
    """The build's float model (``stem`` "unpruned_float_model": the one before pruning)."""
    path = Path(path)
    jp, npz = path / f"{stem}.json", path / f"{stem}.npz"
    if not jp.is_file() or not npz.is_file():
        raise SnnccError(f"{path} has no float model ({stem}.json/.npz): it was imported from an integer "
                         "format (netx), or compiled by an older snncc" + (", or not pruned" if stem != "float_model"
                                                                            else ""))
    try:
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return serialize.from_dict(json.loads(jp.read_text()), arrays, stage="float")
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise ArtifactError(f"{path}'s float model cannot be read ({e}); recompile the build") from None


def target_dir(build: str | Path, manifest: dict, target: str) -> Path:
    """The folder of an emitted target; a target the manifest does not list does not exist."""
    from .targets import TARGETS

    if target not in TARGETS and target != "reference":
        raise SnnccError(f"unknown target {target!r} (targets: reference, {', '.join(TARGETS)})")
    if target not in manifest.get("targets", []):
        have = ", ".join(manifest.get("targets", [])) or "none"
        raise SnnccError(f"{build} has no {target} target (it was compiled for: {have}); compile with "
                         f"--target {target}")
    return Path(build) / target


def load_input(path: str | Path) -> np.ndarray:
    """An integer input batch from .npy, or the array ``x`` of an .npz."""
    p = Path(path)
    if p.is_dir():
        raise SnnccError(f"input file {p} is a directory, not a file")
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


RESULT_BUDGET = 256 << 20  # bytes of results held in memory at a time by simulate_to_file


def arch_note(build: str | Path, target: str, arch: str) -> str | None:
    """What the target says about its last run on ``arch`` (e.g. instructions counted)."""
    from .targets import spec

    if arch == "host" or target == "reference":
        return None
    _, manifest = load_build(build)
    fn = getattr(spec(target).module, "arch_note", None)
    return fn(target_dir(build, manifest, target), arch) if fn else None


def simulate_to_file(build: str | Path, target: str, x: np.ndarray, out: str | Path,
                     probe_state: bool = False, budget: int = RESULT_BUDGET, arch: str = "host",
                     progress: bool = True) -> dict[str, tuple]:
    """Run ``x`` on one target of a build and write the results to ``out`` (.npz), a piece
    at a time: samples in chunks, and for the reference also steps in chunks, each piece
    written into on-disk arrays, so memory stays near ``budget`` whatever N and T are
    (a bar counts the sample steps done). Returns {key: shape}. ``arch="cortex-m4"`` runs
    the C target on the emulated M4."""
    from .progress import bar
    from .reference import interpreter as R
    from .targets import spec

    g, manifest = load_build(build)
    if arch != "host" and (target == "reference" or arch not in spec(target).archs):
        have = "host" if target == "reference" else ", ".join(("host",) + spec(target).archs)
        raise SnnccError(f"--arch {arch}: target {target} runs on {have}")
    out = _result_path(build, manifest, out)
    xin = R.prepare_input(g, x)
    n, t = xin.shape[:2]
    per = _result_bytes(g, probe_state)  # bytes of results per sample and step
    if target == "reference":
        ns = max(1, min(n, 64))
        ts = max(1, min(t, budget // max(1, ns * per)))
    else:
        tdir = target_dir(build, manifest, target)
        ns, ts = max(1, min(n, budget // max(1, t * per))), t
    with _ResultWriter(out, n, t) as w, ExitStack() as stack:
        pb = None  # drawn after the first piece ran: a refused build prints only its error
        for i in range(0, n, ns):
            sim = R.Simulation(g, min(ns, n - i), probe_state) if target == "reference" else None
            for k in range(0, t, ts):
                piece = xin[i:i + ns, k:k + ts]
                if sim:
                    res = sim.advance(piece)
                else:
                    res = spec(target).simulate(tdir, np.ascontiguousarray(piece), probe_state=probe_state,
                                                arch=arch)
                w.put(i, k, res)
                if pb is None:
                    pb = stack.enter_context(bar(total=n * t, desc=f"simulate: {target}", unit="step",
                                                 progress=progress))
                pb.update(piece.shape[0] * piece.shape[1])
        return w.shapes


def _result_path(build, manifest: dict, out) -> Path:
    out = Path(out)
    if out.is_dir():
        raise SnnccError(f"--out {out} is a directory: give a file name, e.g. {out / 'result.npz'}")
    if not out.parent.is_dir():
        raise SnnccError(f"--out {out}: the directory {out.parent} does not exist")
    b = Path(build).resolve()
    if out.resolve().parent == b and out.name in OWN_FILES or any(
            out.resolve() == (b / a).resolve() for a in manifest.get("artifacts", {})):
        raise SnnccError(f"--out {out} would overwrite a file of the build {build}: write the results elsewhere")
    return out


def _result_bytes(g: Graph, probe_state: bool) -> int:
    shapes = g.shapes()
    total = 8 * int(np.prod(shapes[g.outputs[0]]))
    for name, op in g.items():
        if op.kind == "IntLIF":
            k = 1 + (1 + records_u(op, g.meta.get("schedule")) if probe_state else 0)
            total += 8 * k * int(np.prod(shapes[name]))
    return total


class _ResultWriter:
    """Arrays (N, T, ...) built piece by piece in on-disk .npy files, then zipped into one
    .npz (deterministic: sorted names, fixed dates), written under a temporary name and
    renamed into place."""

    def __init__(self, out: Path, n: int, t: int) -> None:
        import tempfile

        self.out, self.n, self.t = out, n, t
        self.dir = Path(tempfile.mkdtemp(prefix=".snncc-result-", dir=out.parent))
        self.arrays: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple] = {}

    def put(self, i: int, k: int, res: dict[str, np.ndarray]) -> None:
        for key, a in res.items():
            if key not in self.arrays:
                shape = (self.n, self.t) + a.shape[2:]
                path = self.dir / f"{len(self.arrays)}.npy"
                self.arrays[key] = np.lib.format.open_memmap(path, mode="w+", dtype=np.int64, shape=shape)
                self.shapes[key] = shape
            self.arrays[key][i:i + a.shape[0], k:k + a.shape[1]] = a

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        import zipfile

        try:
            if exc_type is None:
                tmp = self.out.with_name(f".{self.out.name}.part")
                with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                    for key in sorted(self.arrays):
                        m = self.arrays[key]
                        m.flush()
                        info = zipfile.ZipInfo(key + ".npy", date_time=serialize._ZIP_DATE)
                        info.compress_type = zipfile.ZIP_DEFLATED
                        info.external_attr = 0o644 << 16
                        with open(m.filename, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                os.replace(tmp, self.out)
        finally:
            self.arrays.clear()
            shutil.rmtree(self.dir, ignore_errors=True)
        return False


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
