"""A catalogue of bad inputs: every CLI command, every reader, one clear error each.

DEVELOPERS.md, "Bad inputs that must give one clear error": each case runs
``snncc.cli.main(argv)`` in-process and must

* exit with status 2,
* print exactly one line ``snncc <command>: error: ...`` on stderr (continued only by
  indented lines, e.g. ``  - ...`` lists; argparse's ``usage:`` lines are allowed),
  naming the problem (the case's expected text, matched case-insensitively),
* print no traceback and let no exception escape,
* leave every build directory it reads or writes byte-for-byte unchanged (file names and
  SHA-256 of their contents).

A second group tampers with a compiled build: ``snncc verify`` must fail (1: mismatch,
2: refused) and name the file that is wrong; ``snncc simulate`` must refuse a tampered
or stale build with status 2.

Every assertion message starts with a tag ([traceback], [exit code], [message], [format],
[build changed]) saying which requirement failed first.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import struct
import sys
import traceback
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from snncc import nn as snn
from snncc.cli import main

HERE = Path(__file__).resolve().parent
HAS_NIR = importlib.util.find_spec("nir") is not None
HAS_H5PY = importlib.util.find_spec("h5py") is not None
HAS_LAVA = importlib.util.find_spec("lava") is not None


# ------------------------------------------------------------------------------ models
def tiny() -> nn.Module:
    """Linear(4->3) + LIF + Linear(3->2): the model of every build here."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), snn.LIF(), nn.Linear(3, 2)).eval()


def digits_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3), snn.LIF(), nn.Linear(3, 2)).eval()


def tiny_with(edit) -> nn.Module:
    m = tiny()
    with torch.no_grad():
        edit(m)
    return m


def bn_model(var: float, eps: float, mean: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, eps=eps), snn.LIF(), nn.Linear(3, 2)).eval()
    with torch.no_grad():
        m[1].running_var.fill_(var)
        m[1].running_mean.fill_(mean)
    return m


class Custom(nn.Module):
    """A class outside snncc's allow-list (pickled whole, it must be refused)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.lif = snn.LIF()

    def forward(self, x):
        return self.lif(self.fc(x))


class TwoInputs(Custom):
    def forward(self, x, y):
        return self.lif(self.fc(x) + self.fc(y))


class TimeLoop(Custom):
    def forward(self, x):
        out = 0
        for t in range(x.shape[0]):
            out = out + self.lif(self.fc(x[t]))
        return out


class DataDependent(Custom):
    def forward(self, x):
        h = self.fc(x)
        if h.sum() > 0:
            h = -h
        return self.lif(h)


class ReturnsTuple(Custom):
    def forward(self, x):
        h = self.fc(x)
        return self.lif(h), h


class Harmless:
    """Pickles as a call of os.getcwd: a global outside the allow-list (never unpickled)."""

    def __reduce__(self):
        return (os.getcwd, ())


def make_two_inputs():
    return TwoInputs()


def make_time_loop():
    return TimeLoop()


def make_data_dependent():
    return DataDependent()


def make_returns_tuple():
    return ReturnsTuple()


def factory_raises():
    raise RuntimeError("this factory is broken")


def factory_returns_int():
    return 42


# ------------------------------------------------------------------------------ running the CLI
def call(argv: list, capsys) -> tuple:
    """(exit code, stdout, stderr, traceback text or None) of ``snncc.cli.main(argv)``."""
    tb = None
    capsys.readouterr()  # what set-up printed is not the case's output
    with warnings.catch_warnings():  # warnings reach stderr as they do on the console
        warnings.simplefilter("default")
        warnings.showwarning = _show_on_stderr
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: BLE001 - an escaped exception is what the console shows as a traceback
            rc, tb = None, traceback.format_exc()
    out, err = capsys.readouterr()
    return rc, out, err, tb


def _show_on_stderr(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _alternatives(expect) -> tuple[list[str], bool]:
    """(texts, all required): a str, a tuple (any one of them) or a list (all of them)."""
    if isinstance(expect, str):
        return [expect], True
    return list(expect), isinstance(expect, list)


def error_message(cmd: str, err: str) -> tuple[str, list[str]]:
    """(the error line and its indented continuation, format problems) of stderr."""
    prefix = f"snncc {cmd}: error:"
    lines = err.splitlines()
    heads = [i for i, ln in enumerate(lines) if ln.startswith(prefix)]
    problems = []
    if len(heads) != 1:
        problems.append(f"{len(heads)} lines start with {prefix!r} (want exactly 1)")
    stray = [ln for ln in lines if ln.strip() and not ln.startswith((prefix, f"snncc {cmd}: warning:", " ", "\t",
                                                                      "usage: "))]
    if stray:
        problems.append(f"stderr lines that are neither the error line nor indented: {stray[:3]}")
    if not heads:
        return "", problems
    msg = [lines[heads[0]]]
    for ln in lines[heads[0] + 1:]:
        if not ln.startswith((" ", "\t")):
            break
        msg.append(ln)
    return "\n".join(msg), problems


def _tail(text: str, n: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


def verdict(argv: list, rc, out: str, err: str, tb, expect, ok_codes=(2,), where: str = "message",
            roots: dict | None = None) -> list[str]:
    """The problems of one run, most important first ([traceback] > [exit code] > [message] > [format]).
    The expected text is looked for with the temp folders (``roots``) shortened to their names."""
    cmd = str(argv[0])
    probs = []
    if tb or "Traceback" in out or "Traceback" in err:
        probs.append("[traceback] " + _tail(tb or (err + out), 4).replace("\n", " | "))
    if rc not in ok_codes:
        probs.append(f"[exit code] exit {rc}, want {' or '.join(map(str, ok_codes))}")
    msg, fmt = error_message(cmd, err)
    texts, need_all = _alternatives(expect)
    hay = out + "\n" + err if where == "output" else msg
    for name, p in (roots or {}).items():
        hay = hay.replace(str(p), name)
    hay = hay.lower()
    found = [t for t in texts if t.lower() in hay]
    if not (len(found) == len(texts) if need_all else found):
        probs.append(f"[message] {'all of' if need_all else 'one of'} {texts} missing")
    if rc == 2 and fmt:
        probs.append("[format] " + "; ".join(fmt))
    return probs


def log_run(argv, rc, out, err, tb, expect, probs, roots: dict) -> None:
    """With $SNNCC_BAD_INPUTS_LOG set: one JSON line per case (passing or not) appended to
    that file, for tools that summarize the catalogue."""
    log = os.environ.get("SNNCC_BAD_INPUTS_LOG")
    if not log:
        return
    rec = {"case": os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].rsplit(" ", 1)[0],
           "argv": [str(a) for a in argv], "exit": rc, "expect": _alternatives(expect)[0],
           "expect_all": _alternatives(expect)[1], "problems": probs,
           "stderr": err, "stdout": _tail(out, 5), "traceback": _tail(tb, 10) if tb else None}
    text = json.dumps(rec)
    for name, p in roots.items():
        text = text.replace(str(p), name)
    with open(log, "a") as f:
        f.write(text + "\n")


def report(argv, rc, out, err, tb, expect, probs, roots: dict) -> str:
    """The assertion message: tags, then what happened, with temp paths shortened."""
    text = "\n".join(probs) + (
        f"\n  command: snncc {' '.join(str(a) for a in argv)}\n  exit: {rc}\n  expected: {expect!r}\n"
        f"  stderr: {_tail(err, 8)!r}\n  stdout: {_tail(out, 3)!r}"
        + (f"\n  traceback: {_tail(tb, 8)!r}" if tb else ""))
    for name, p in roots.items():
        text = text.replace(str(p), name)
    return text


def snapshot(d: Path) -> dict[str, str]:
    """Every file and folder under ``d``: relative name -> SHA-256 of its contents ("<dir>")."""
    d = Path(d)
    if not d.exists():
        return {}
    if d.is_file():
        return {".": hashlib.sha256(d.read_bytes()).hexdigest()}
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
            for p in sorted(d.rglob("*"))}


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


# ------------------------------------------------------------------------------ files
def _write(p: Path, data: bytes) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def _save(p: Path, obj) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, p)
    return p


def _npy(p: Path, arr, allow_pickle: bool = False) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    np.save(p, arr, allow_pickle=allow_pickle)
    return p


def _flip(p: Path, offset: int | None = None) -> Path:
    data = bytearray(p.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    p.write_bytes(bytes(data))
    return p


def _zip_entry_offset(p: Path, suffix: str) -> int:
    """Offset of the first data byte of the zip entry whose name ends with ``suffix``."""
    with zipfile.ZipFile(p) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(suffix))
    raw = p.read_bytes()
    n, e = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + n + e


def _flip_entry(p: Path, suffix: str, at: int) -> Path:
    """Flip byte ``at`` of a zip entry's stored data (torch files store entries uncompressed)."""
    return _flip(p, _zip_entry_offset(p, suffix) + at)


def _h5edit(p: Path, fn) -> Path:
    import h5py

    with h5py.File(p, "a") as f:
        fn(f)
    return p


def _h5replace(f, key: str, data) -> None:
    parent, _, name = key.rpartition("/")
    del f[key]
    f[parent].create_dataset(name, data=data)


W1 = np.array([[0.5, -0.25, 0.75, 0.1], [-0.5, 0.3, 0.2, 0.6], [0.4, 0.4, -0.1, 0.2]])
W2 = np.array([[0.3, -0.6, 0.9], [-0.2, 0.5, 0.1]])


def nir_file(p: Path, edit=None) -> Path:
    """A valid NIR graph Input(4) -> Affine -> LIF -> Affine -> Output, after ``edit(nodes,
    edges, graph metadata)`` (which may change all three in place)."""
    if not HAS_NIR:
        pytest.skip("nir is not installed")
    import nir

    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "fc1": nir.Affine(weight=W1.copy(), bias=np.zeros(3)),
             "lif": nir.LIF(tau=np.full(3, 2e-4), r=np.full(3, 2.0), v_leak=np.zeros(3), v_threshold=np.ones(3)),
             "fc2": nir.Affine(weight=W2.copy(), bias=np.zeros(2)),
             "output": nir.Output(output_type={"output": np.array([2])})}
    edges = [("input", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "output")]
    meta: dict = {}
    if edit is not None:
        edit(nodes, edges, meta)
    p.parent.mkdir(parents=True, exist_ok=True)
    nir.write(p, nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False))
    return p


def _nir_set(node: str, **fields):
    def edit(nodes, edges, meta):
        for k, v in fields.items():
            setattr(nodes[node], k, v)
    return edit


def _nir_meta(node: str, md: dict):
    def edit(nodes, edges, meta):
        nodes[node].metadata = dict(md)
    return edit


def _s(h, key: str, value: str) -> None:
    h.create_dataset(key, (1,), "S10", [value.encode("ascii")])


def net_file(p: Path, edit=None) -> Path:
    """A valid lava-dl netx file: input (4,), dense 3x4 + CUBA neuron, dense 2x3 readout;
    ``edit(h5py.File)`` changes it before it is closed."""
    if not HAS_H5PY:
        pytest.skip("h5py is not installed")
    import h5py

    p.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(p, "w") as f:
        sim = f.create_group("simulation")
        sim.create_dataset("Ts", data=1)
        sim.create_dataset("tSample", data=3)
        L = f.create_group("layer")
        h = L.create_group("0")
        _s(h, "type", "input")
        h.create_dataset("shape", data=np.array([4]))
        h = L.create_group("1")
        _s(h, "type", "dense")
        h.create_dataset("shape", data=np.array([3]))
        h.create_dataset("weight", data=np.array([[10, -20, 30, 5], [-7, 12, 40, 0], [3, 3, -9, 25]], np.float32))
        _s(h, "neuron/type", "CUBA")
        for k, v in (("vThMant", 60), ("iDecay", 1024), ("vDecay", 128), ("refDelay", 1), ("gradedSpike", 0)):
            h.create_dataset(f"neuron/{k}", data=v)
        h = L.create_group("2")
        _s(h, "type", "dense")
        h.create_dataset("shape", data=np.array([2]))
        h.create_dataset("weight", data=np.array([[5, -5, 10], [-3, 8, 2]], np.float32))
        if edit is not None:
            edit(f)
    return p


# ------------------------------------------------------------------------------ fixtures
def _ok(*argv) -> None:
    rc = main([str(a) for a in argv])
    assert rc == 0, f"setup command failed: snncc {' '.join(map(str, argv))}"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Compiled once per module: ``build`` (tiny, c + onnx, T = 3, the C binary already
    built), ``dbuild`` (a digits-shaped model, no targets, for eval), a valid input."""
    root = tmp_path_factory.mktemp("bad_inputs")
    e = SimpleNamespace(root=root)
    e.model = _save(root / "tiny.pt", tiny())
    e.x = _npy(root / "x.npy", np.random.default_rng(0).integers(0, 256, (2, 4)).astype(np.uint8))
    e.build = root / "build"
    _ok("compile", e.model, "--target", "c,onnx", "--steps", "3", "--out", e.build)
    _ok("verify", e.build, "--input", e.x)  # builds c/snncc_model: later runs find it up to date
    e.dbuild = root / "dbuild"
    _ok("compile", _save(root / "digits.pt", digits_model()), "--input-shape", "1,8,8", "--target", "",
        "--steps", "2", "--out", e.dbuild)
    e.pristine = {}
    for b in (e.build, e.dbuild):  # a case that changes a shared build must not spoil the others
        e.pristine[b] = root / f"pristine_{b.name}"
        shutil.copytree(b, e.pristine[b], symlinks=True)
    return e


def _restore(env, build: Path) -> None:
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(env.pristine[build], build, symlinks=True)


class Ctx:
    """What a case's argv builder gets: temp folder, the module's builds, file makers."""

    def __init__(self, env, tmp: Path, monkeypatch) -> None:
        self.env, self.t, self.mp = env, tmp, monkeypatch
        self.watched: list[Path] = []
        self.n = 0

    def _name(self, stem: str) -> Path:
        self.n += 1
        return self.t / f"{self.n}_{stem}"

    def build(self) -> Path:
        """The shared build, to read only (watched)."""
        self.watched.append(self.env.build)
        return self.env.build

    def dbuild(self) -> Path:
        self.watched.append(self.env.dbuild)
        return self.env.dbuild

    def copy(self, edit=None, which: str = "build") -> Path:
        """A copy of a build, changed by ``edit(path)`` (watched from after the edit on)."""
        dst = self._name("copy")
        shutil.copytree(getattr(self.env, which), dst, symlinks=True)
        if edit is not None:
            edit(dst)
        self.watched.append(dst)
        return dst

    def model(self) -> Path:
        return self.env.model

    def x(self) -> Path:
        return self.env.x

    def file(self, name: str, data: bytes) -> Path:
        return _write(self._name(name), data)

    def pt(self, obj, name: str = "m.pt") -> Path:
        return _save(self._name(name), obj)

    def npy(self, arr, name: str = "x.npy", allow_pickle: bool = False) -> Path:
        return _npy(self._name(name), arr, allow_pickle)

    def npz(self, name: str = "x.npz", allow_pickle: bool = False, **arrays) -> Path:
        p = self._name(name)
        if allow_pickle:
            np.savez(p, **arrays)
        else:
            np.savez(p, **{k: np.asarray(v) for k, v in arrays.items()})
        return p

    def toml(self, text: str) -> Path:
        return _write(self._name("q.toml"), text.encode())

    def nir(self, edit=None, h5=None) -> Path:
        p = nir_file(self._name("m.nir"), edit)
        return _h5edit(p, h5) if h5 is not None else p

    def net(self, edit=None) -> Path:
        return net_file(self._name("m.net"), edit)

    def dir(self, name: str = "d") -> Path:
        p = self._name(name)
        p.mkdir()
        return p


# ------------------------------------------------------------------------------ build edits
def _rm(rel: str):
    def edit(b: Path):
        p = b / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return edit


def _put(rel: str, data: bytes):
    def edit(b: Path):
        _write(b / rel, data)
    return edit


def _json_edit(rel: str, fn):
    def edit(b: Path):
        doc = json.loads((b / rel).read_text())
        fn(doc)  # edits in place
        (b / rel).write_text(json.dumps(doc))
    return edit


def _node(doc: dict, name: str) -> dict:
    return next(n for n in doc["nodes"] if n["name"] == name)


def _npz_edit(fn, rel: str = "model.npz"):
    """Rewrite a build's .npz with ``fn(arrays)`` applied (a valid archive, other content)."""
    def edit(b: Path):
        from snncc.ir.serialize import write_npz

        with np.load(b / rel, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        fn(arrays)
        write_npz(b / rel, arrays)
    return edit


def _npz_object(b: Path) -> None:
    with np.load(b / "model.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["0/weight"] = np.array([object()], dtype=object)
    np.savez(b / "model.npz", **arrays)


def _flip_in(rel: str, suffix: str | None = None):
    def edit(b: Path):
        p = b / rel
        _flip(p, _zip_entry_offset(p, suffix) + 2 if suffix else None)
    return edit


def _truncate(rel: str):
    def edit(b: Path):
        p = b / rel
        p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    return edit


# ------------------------------------------------------------------------------ odd paths
def _readonly_parent(c: Ctx) -> list:
    ro = c.dir("readonly")
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root ignores permissions: make creating a folder there fail as it does for users
        real = os.mkdir

        def mkdir(path, mode=0o777, *a, **kw):
            if str(path).startswith(str(ro)):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, mode, *a, **kw)

        c.mp.setattr(os, "mkdir", mkdir)
    return ["compile", c.model(), "--out", ro / "b"]


def _fmnist_dir(c: Ctx, garbage: bool) -> Path:
    d = c.dir("fmnist")
    if garbage:
        for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                  "t10k-labels-idx1-ubyte.gz"):
            (d / f).write_bytes(b"this is not gzip data")
    c.mp.setenv("SNNCC_FASHION_MNIST_DIR", str(d / ("" if garbage else "nowhere")))
    return d


def _half_of(p: Path, c: Ctx, name: str) -> Path:
    data = p.read_bytes()
    return c.file(name, data[: len(data) // 2])


def _lif(attr: str, value):
    def edit(m):
        if attr == "threshold":
            m[1].threshold.fill_(value)
        else:
            setattr(m[1], attr, value)
    return edit


def _weight(layer: int, value, what: str = "weight"):
    def edit(m):
        getattr(m[layer], what).data.view(-1)[0] = value
    return edit



# ==============================================================================================
# The catalogue: id -> (argv builder, expected text). Expected: a str; a tuple (any one of
# them); a list (all of them). A compile case without --out gets a fresh --out folder.
# ==============================================================================================
PT = {
    "pt-missing-file": (lambda c: ["compile", c.t / "nope.pt"], "not found"),
    "pt-garbage-bytes": (lambda c: ["compile", c.file("g.pt", b"not a torch file at all")], "cannot load"),
    "pt-empty-file": (lambda c: ["compile", c.file("e.pt", b"")], "cannot load"),
    "pt-truncated": (lambda c: ["compile", _half_of(c.model(), c, "half.pt")], "cannot load"),
    "pt-zip-flipped-byte-in-pickle": (lambda c: ["compile", _flip_entry(c.pt(tiny()), "data.pkl", 40)],
                                      ("cannot load", "corrupt")),
    "pt-zip-flipped-byte-in-weights": (lambda c: ["compile", _flip_entry(c.pt(tiny()), "data/0", 2)],
                                       ("crc", "corrupt", "checksum")),
    "pt-is-a-directory": (lambda c: ["compile", c.dir("m.pt")], ("directory", "not a file")),
    "pt-holds-a-tensor": (lambda c: ["compile", c.pt(torch.zeros(3))], "not a torch.nn.Module"),
    "pt-holds-a-list": (lambda c: ["compile", c.pt([1, 2, 3])], "not a torch.nn.Module"),
    "pt-unsafe-class": (lambda c: ["compile", c.pt(Custom())], "--trust-pickle"),
    "pt-unsafe-global-function": (lambda c: ["compile", c.pt({"evil": Harmless()})], "allow-list"),
    "pt-state-dict-without-arch": (lambda c: ["compile", c.pt(tiny().state_dict())], "--arch"),
    "pt-arch-malformed": (lambda c: ["compile", c.pt(tiny().state_dict()), "--arch", "nocolon"],
                          "package.module:factory"),
    "pt-arch-missing-module": (lambda c: ["compile", c.pt(tiny().state_dict()), "--arch", "no_such_mod_xyz:f"],
                               "--arch"),
    "pt-arch-missing-factory": (lambda c: ["compile", c.pt(tiny().state_dict()), "--arch", "test_bad_inputs:nope"],
                                "--arch"),
    "pt-arch-factory-raises": (lambda c: ["compile", c.pt(tiny().state_dict()), "--arch",
                                          "test_bad_inputs:factory_raises"], "--arch"),
    "pt-arch-factory-returns-int": (lambda c: ["compile", c.pt(tiny().state_dict()), "--arch",
                                               "test_bad_inputs:factory_returns_int"], "--arch"),
    "pt-arch-missing-keys": (lambda c: ["compile", c.pt({"w": torch.zeros(1)}), "--arch", "test_bad_inputs:tiny"],
                             "missing keys"),
    "pt-arch-shape-mismatch": (lambda c: ["compile", c.pt({**tiny().state_dict(), "0.weight": torch.zeros(5, 4)}),
                                          "--arch", "test_bad_inputs:tiny"], "0.weight"),
    "pt-arch-non-tensor-values": (lambda c: ["compile", c.pt({k: "abc" for k in tiny().state_dict()}), "--arch",
                                             "test_bad_inputs:tiny"], "0.weight"),
    "pt-arch-holds-a-list": (lambda c: ["compile", c.pt([1, 2]), "--arch", "test_bad_inputs:tiny"],
                             "not a state_dict"),
    "pt-onnx-file-given": (lambda c: ["compile", c.build() / "onnx" / "model.onnx"], "cannot load"),
    "pt-trust-pickle-garbage": (lambda c: ["compile", c.file("g.pt", b"garbage garbage"), "--trust-pickle"],
                                ("cannot load", "corrupt")),
}

MODEL = {
    "model-inf-weight": (lambda c: ["compile", c.pt(tiny_with(_weight(0, float("inf"))))], "not finite"),
    "model-nan-weight": (lambda c: ["compile", c.pt(tiny_with(_weight(0, float("nan"))))], "not finite"),
    "model-nan-weight-last-layer": (lambda c: ["compile", c.pt(tiny_with(_weight(2, float("nan"))))], "not finite"),
    "model-inf-bias": (lambda c: ["compile", c.pt(tiny_with(_weight(0, float("-inf"), "bias")))], "not finite"),
    "model-nan-bias": (lambda c: ["compile", c.pt(tiny_with(_weight(2, float("nan"), "bias")))], "not finite"),
    "model-weights-1e-30": (lambda c: ["compile", c.pt(tiny_with(lambda m: m[0].weight.fill_(1e-30)))],
                            ("1e-30", "too small", "underflow", "threshold")),
    "lif-nan-threshold": (lambda c: ["compile", c.pt(tiny_with(_lif("threshold", float("nan"))))], "threshold"),
    "lif-negative-threshold": (lambda c: ["compile", c.pt(tiny_with(_lif("threshold", -1.0)))], "threshold"),
    "lif-zero-threshold": (lambda c: ["compile", c.pt(tiny_with(_lif("threshold", 0.0)))], "threshold"),
    "lif-inf-threshold": (lambda c: ["compile", c.pt(tiny_with(_lif("threshold", float("inf"))))], "threshold"),
    "lif-beta-above-1": (lambda c: ["compile", c.pt(tiny_with(_lif("beta", 1.5)))], "beta"),
    "lif-beta-negative": (lambda c: ["compile", c.pt(tiny_with(_lif("beta", -0.5)))], "beta"),
    "lif-beta-nan": (lambda c: ["compile", c.pt(tiny_with(_lif("beta", float("nan"))))], "beta"),
    "lif-alpha-1": (lambda c: ["compile", c.pt(tiny_with(_lif("alpha", 1.0)))], "alpha"),
    "lif-alpha-negative": (lambda c: ["compile", c.pt(tiny_with(_lif("alpha", -0.5)))], "alpha"),
    "lif-reset-unknown": (lambda c: ["compile", c.pt(tiny_with(_lif("reset", "bogus")))], "reset"),
    "lif-v-init-nan": (lambda c: ["compile", c.pt(tiny_with(_lif("v_init", float("nan"))))], ("not finite", "nan")),
    "bn-running-var-0-eps-0": (lambda c: ["compile", c.pt(bn_model(0.0, 0.0))], ("running_var", "eps")),
    "bn-negative-running-var": (lambda c: ["compile", c.pt(bn_model(-1.0, 1e-5))], "running_var"),
    "bn-nan-running-mean": (lambda c: ["compile", c.pt(bn_model(1.0, 1e-5, float("nan")))],
                            ("running_mean", "not finite")),
    "linear-0-out-features": (lambda c: ["compile", c.pt(nn.Sequential(nn.Linear(4, 0), snn.LIF(), nn.Linear(0, 2)))],
                              ("0 features", "empty", "out_features=0", "0 outputs", "0 neurons", "no neurons")),
    "linear-0-in-features": (lambda c: ["compile", c.pt(nn.Sequential(nn.Linear(0, 3), snn.LIF(), nn.Linear(3, 2)))],
                             ("0 features", "empty", "in_features=0", "0 inputs", "no inputs")),
    "unsupported-relu": (lambda c: ["compile", c.pt(nn.Sequential(nn.Linear(4, 3), nn.ReLU()))], "ReLU at '1'"),
    "unsupported-conv1d": (lambda c: ["compile", c.pt(nn.Sequential(nn.Conv1d(1, 2, 3), snn.LIF())),
                                      "--input-shape", "1,8"], "Conv1d"),
    "unsupported-nested-sigmoid": (lambda c: ["compile", c.pt(nn.Sequential(nn.Linear(4, 3), nn.Sequential(
        snn.LIF(), nn.Sigmoid())))], "Sigmoid at '1.1'"),
    "unsupported-two-layers-at-once": (lambda c: ["compile", c.pt(nn.Sequential(nn.Linear(4, 3), nn.ReLU(),
                                                                                nn.Linear(3, 2), nn.Tanh()))],
                                       ["ReLU", "Tanh"]),
    "unsupported-lstm": (lambda c: ["compile", c.pt(nn.Sequential(nn.LSTM(4, 3))), "--input-shape", "4"], "LSTM"),
    "forward-two-inputs": (lambda c: ["compile", c.pt(TwoInputs().state_dict()), "--arch",
                                      "test_bad_inputs:make_two_inputs"], "more than one input"),
    "forward-loop-over-time": (lambda c: ["compile", c.pt(TimeLoop().state_dict()), "--arch",
                                          "test_bad_inputs:make_time_loop"], "cannot trace"),
    "forward-data-dependent-if": (lambda c: ["compile", c.pt(DataDependent().state_dict()), "--arch",
                                             "test_bad_inputs:make_data_dependent"], "cannot trace"),
    "forward-returns-tuple": (lambda c: ["compile", c.pt(ReturnsTuple().state_dict()), "--arch",
                                         "test_bad_inputs:make_returns_tuple"], "single tensor"),
    "conv-without-input-shape": (lambda c: ["compile", c.pt(nn.Sequential(nn.Conv2d(1, 2, 3), snn.LIF()))],
                                 "--input-shape"),
    "conv-input-smaller-than-kernel": (lambda c: ["compile", c.pt(nn.Sequential(nn.Conv2d(1, 2, 3), snn.LIF())),
                                                  "--input-shape", "1,2,2"], ("kernel", "too small", "shape")),
    "input-shape-mismatch": (lambda c: ["compile", c.model(), "--input-shape", "5"], ("input shape", "input-shape")),
    "input-shape-zero": (lambda c: ["compile", c.model(), "--input-shape", "0"], "input-shape"),
    "input-shape-negative": (lambda c: ["compile", c.model(), "--input-shape", "-4"], "input-shape"),
    "input-shape-not-integers": (lambda c: ["compile", c.model(), "--input-shape", "a,b"], "--input-shape"),
    "input-shape-empty": (lambda c: ["compile", c.model(), "--input-shape", ""], "--input-shape"),
    "membrane-too-narrow": (lambda c: ["compile", c.model(), "--v-bits", "4", "--u-overflow", "saturate"],
                            "beyond the 4-bit membrane"),
}


def _flag(*flags):
    return lambda c: ["compile", c.model(), *flags]


FLAGS = {
    "flag-steps-0": (_flag("--steps", "0"), "steps"),
    "flag-steps-negative": (_flag("--steps", "-1"), "steps"),
    "flag-steps-not-a-number": (_flag("--steps", "abc"), "--steps"),
    "flag-steps-float": (_flag("--steps", "2.5"), "--steps"),
    "flag-weight-bits-1": (_flag("--weight-bits", "1"), "weight_bits"),
    "flag-weight-bits-17": (_flag("--weight-bits", "17"), "weight_bits"),
    "flag-weight-bits-0": (_flag("--weight-bits", "0"), "weight_bits"),
    "flag-weight-bits-float": (_flag("--weight-bits", "4.5"), "--weight-bits"),
    "flag-first-layer-bits-1": (_flag("--first-layer-bits", "1"), "first_layer_bits"),
    "flag-last-layer-bits-17": (_flag("--last-layer-bits", "17"), "last_layer_bits"),
    "flag-input-scale-0": (_flag("--input-scale", "0"), "input_scale"),
    "flag-input-scale-negative": (_flag("--input-scale", "-1"), "input_scale"),
    "flag-input-scale-inf": (_flag("--input-scale", "inf"), "input_scale"),
    "flag-input-scale-nan": (_flag("--input-scale", "nan"), "input_scale"),
    "flag-input-bits-0": (_flag("--input-bits", "0"), "input_bits"),
    "flag-input-bits-17": (_flag("--input-bits", "17"), "input_bits"),
    "flag-v-bits-3": (_flag("--v-bits", "3"), "v_bits"),
    "flag-v-bits-64": (_flag("--v-bits", "64"), "v_bits"),
    "flag-u-bits-3": (_flag("--u-bits", "3"), "u_bits"),
    "flag-u-bits-33": (_flag("--u-bits", "33"), "u_bits"),
    "flag-act-shift-negative": (_flag("--act-shift", "-1"), "act_shift"),
    "flag-act-shift-17": (_flag("--act-shift", "17"), "act_shift"),
    "flag-state-level-negative": (_flag("--state-quant", "ternary", "--state-level", "-1"), "state_level"),
    "flag-state-level-zero": (_flag("--state-quant", "ternary", "--state-level", "0"), "state_level"),
    "flag-state-level-nan": (_flag("--state-quant", "ternary", "--state-level", "nan"), "state_level"),
    "flag-granularity-unknown": (_flag("--granularity", "row"), "granularity"),
    "flag-v-overflow-unknown": (_flag("--v-overflow", "explode"), "v_overflow"),
    "flag-u-overflow-unknown": (_flag("--u-overflow", "explode"), "u_overflow"),
    "flag-schedule-unknown": (_flag("--schedule", "later"), "schedule"),
    "flag-quantizer-unknown": (_flag("--quantizer", "magic"), "quantizer"),
    "flag-input-encoding-unknown": (_flag("--input-encoding", "morse"), "input_encoding"),
    "flag-input-encoding-bias-on-pytorch": (_flag("--input-encoding", "bias"), "applies to netx"),
    "flag-state-quant-unknown": (_flag("--state-quant", "quaternary"), "state_quant"),
    "flag-rescaw-gamma-unknown": (_flag("--rescaw-gamma", "median"), "rescaw_gamma"),
    "flag-weight-clip-unknown": (_flag("--weight-clip", "min"), "weight_clip"),
    "flag-pot-alpha-unknown": (_flag("--pot-alpha", "pow3"), "pot_alpha"),
    "flag-all-problems-at-once": (_flag("--steps", "0", "--weight-bits", "1", "--v-bits", "3"),
                                  ["steps", "weight_bits", "v_bits"]),
    "flag-unknown-target": (_flag("--target", "fpga"), "unknown target 'fpga'"),
    "flag-reset-interval-on-pt": (_flag("--reset-interval", "4"), "not a netx file"),
    "flag-reset-offset-alone": (_flag("--reset-offset", "1"), "--reset-offset needs --reset-interval"),
    "flag-dt-on-pt": (_flag("--dt", "0.001"), "--dt"),
    "flag-producer-on-pt": (_flag("--producer", "snntorch"), "--producer"),
    "flag-bwr-iters-negative": (_flag("--bwr", "--calib", "digits:4", "--bwr-iters", "-1"), "iters"),
    "flag-calib-unknown-dataset": (_flag("--bwr", "--calib", "bad"), "unknown dataset"),
    "flag-calib-count-0": (_flag("--bwr", "--calib", "digits:0"), "positive"),
    "flag-calib-count-negative": (_flag("--bwr", "--calib", "digits:-3"), "positive"),
    "flag-calib-count-too-big": (_flag("--bwr", "--calib", "digits:99999"), "has only"),
    "flag-calib-shape-mismatch": (_flag("--bwr", "--calib", "digits:4", "--bwr-iters", "2"),
                                  ("shape", "the model takes")),
    "flag-bwr-iters-without-bwr": (_flag("--bwr-iters", "5"), "--bwr"),
    "flag-calib-without-bwr": (_flag("--calib", "digits:4"), "--bwr"),
    "flag-bwr-config-iters-string": (lambda c: ["compile", c.model(), "--bwr", "--calib", "digits:4", "--config",
                                                c.toml("[bwr]\niters = 'many'\n")], "iters"),
    "flag-bwr-config-unknown-key": (lambda c: ["compile", c.model(), "--bwr", "--calib", "digits:4", "--config",
                                               c.toml("[bwr]\nitres = 5\n")], "itres"),
}


def _cfg(text: str):
    return lambda c: ["compile", c.model(), "--config", c.toml(text)]


CONFIG = {
    "cfg-steps-string": (_cfg('[quantization]\nsteps = "4"\n'), "steps"),
    "cfg-steps-float": (_cfg("[quantization]\nsteps = 4.5\n"), "steps"),
    "cfg-steps-bool": (_cfg("[quantization]\nsteps = true\n"), "steps"),
    "cfg-steps-0": (_cfg("[quantization]\nsteps = 0\n"), "steps"),
    "cfg-weight-bits-float": (_cfg("[quantization]\nweight_bits = 4.5\n"), "weight_bits"),
    "cfg-weight-bits-string": (_cfg('[quantization]\nweight_bits = "8"\n'), "weight_bits"),
    "cfg-first-layer-bits-list": (_cfg("[quantization]\nfirst_layer_bits = [8]\n"), "first_layer_bits"),
    "cfg-v-bits-float": (_cfg("[quantization]\nv_bits = 24.0\n"), "v_bits"),
    "cfg-u-bits-string": (_cfg('[quantization]\nu_bits = "24"\n'), "u_bits"),
    "cfg-act-shift-string": (_cfg('[quantization]\nact_shift = "6"\n'), "act_shift"),
    "cfg-input-scale-string": (_cfg('[quantization]\ninput_scale = "0.1"\n'), "input_scale"),
    "cfg-input-scale-nan": (_cfg("[quantization]\ninput_scale = nan\n"), "input_scale"),
    "cfg-input-bits-float": (_cfg("[quantization]\ninput_bits = 8.0\n"), "input_bits"),
    "cfg-granularity-int": (_cfg("[quantization]\ngranularity = 5\n"), "granularity"),
    "cfg-u-overflow-unknown": (_cfg('[quantization]\nu_overflow = "explode"\n'), "u_overflow"),
    "cfg-latency-reset-int": (_cfg("[quantization]\nlatency_reset = 1\n"), "latency_reset"),
    "cfg-rescaw-percentile-string": (_cfg('[quantization]\nrescaw_percentile = "high"\n'), "rescaw_percentile"),
    "cfg-state-level-string": (_cfg('[quantization]\nstate_quant = "ternary"\nstate_level = "big"\n'),
                               "state_level"),
    "cfg-state-level-negative": (_cfg('[quantization]\nstate_quant = "ternary"\nstate_level = -1.0\n'),
                                 "state_level"),
    "cfg-unknown-key-top-level": (_cfg("wieght_bits = 4\n"), "unknown configuration key"),
    "cfg-unknown-key-in-table": (_cfg("[quantization]\nwieght_bits = 4\n"), "wieght_bits"),
    "cfg-invalid-toml": (_cfg("[quantization\nweight_bits = \n"), "not valid TOML"),
    "cfg-duplicate-key": (_cfg("[quantization]\nsteps = 2\nsteps = 3\n"), "not valid TOML"),
    "cfg-nested-table": (_cfg("[quantization]\nsteps = 2\n[quantization.extra]\nfoo = 1\n"), "extra"),
    "cfg-quantization-not-a-table": (_cfg("quantization = 5\n"), "quantization"),
    "cfg-unknown-table-typo": (_cfg("[quantisation]\nweight_bits = 4\n"), "quantisation"),
    "cfg-keys-beside-the-table": (_cfg("weight_bits = 4\n[quantization]\nsteps = 2\n"), "weight_bits"),
    "cfg-all-problems-at-once": (_cfg("[quantization]\nsteps = 0\nweight_bits = 1\nv_bits = 3\n"),
                                 ["steps", "weight_bits", "v_bits"]),
    "cfg-missing-file": (lambda c: ["compile", c.model(), "--config", c.t / "none.toml"], "does not exist"),
    "cfg-is-a-directory": (lambda c: ["compile", c.model(), "--config", c.dir("q.toml")], "config"),
    "cfg-binary-garbage": (lambda c: ["compile", c.model(), "--config", c.file("q.toml", b"\xff\xfe\x00\x81steps")],
                           "config"),
}

NIR = {
    "nir-missing-file": (lambda c: ["compile", c.t / "nope.nir"], "not found"),
    "nir-garbage-bytes": (lambda c: ["compile", c.file("g.nir", b"garbage, not hdf5")], "cannot be read"),
    "nir-empty-file": (lambda c: ["compile", c.file("e.nir", b"")], "cannot be read"),
    "nir-truncated": (lambda c: ["compile", _half_of(c.nir(), c, "half.nir")], "cannot be read"),
    "nir-hdf5-but-not-nir": (lambda c: ["compile", c.net(lambda f: None).rename(c.t / "not.nir")], "cannot be read"),
    "nir-unsupported-node-type": (lambda c: ["compile", c.nir(_nir_unsupported)], "Scale"),
    "nir-nested-graph": (lambda c: ["compile", c.nir(_nir_nested)], "nested graph"),
    "nir-unknown-type-name": (lambda c: ["compile", c.nir(h5=lambda f: _h5replace(f, "node/nodes/lif/type",
                                                                                  b"Bogus"))], "Bogus"),
    "nir-edge-to-missing-node": (lambda c: ["compile", c.nir(lambda n, e, m: e.append(("fc2", "ghost")))], "ghost"),
    "nir-missing-edge": (lambda c: ["compile", c.nir(lambda n, e, m: e.remove(("fc1", "lif")))], "no input edge"),
    "nir-output-without-edge": (lambda c: ["compile", c.nir(lambda n, e, m: e.remove(("fc2", "output")))],
                                "no input edge"),
    "nir-empty-graph": (lambda c: ["compile", c.nir(lambda n, e, m: (n.clear(), e.clear()))],
                        "one Input and one Output"),
    "nir-two-inputs": (lambda c: ["compile", c.nir(_nir_two_inputs)], "one Input"),
    "nir-recurrent": (lambda c: ["compile", c.nir(lambda n, e, m: e.append(("lif", "fc1")))], "recurrent"),
    "nir-nan-weight": (lambda c: ["compile", c.nir(_nir_set("fc1", weight=_with(W1, np.nan)))], "not finite"),
    "nir-inf-weight": (lambda c: ["compile", c.nir(_nir_set("fc2", weight=_with(W2, np.inf)))], "not finite"),
    "nir-nan-bias": (lambda c: ["compile", c.nir(_nir_set("fc1", bias=np.array([0.0, np.nan, 0.0])))], "not finite"),
    "nir-nan-tau": (lambda c: ["compile", c.nir(_nir_set("lif", tau=np.full(3, np.nan)))], ("not finite", "nan")),
    "nir-negative-tau": (lambda c: ["compile", c.nir(_nir_set("lif", tau=np.full(3, -1e-3)))], "tau"),
    "nir-tau-shorter-than-dt": (lambda c: ["compile", c.nir(_nir_set("lif", tau=np.full(3, 1e-5)))],
                                "shorter than the time step"),
    "nir-nan-threshold": (lambda c: ["compile", c.nir(_nir_set("lif", v_threshold=np.full(3, np.nan)))],
                          ("not finite", "nan")),
    "nir-inf-threshold": (lambda c: ["compile", c.nir(_nir_set("lif", v_threshold=np.full(3, np.inf)))],
                          "threshold"),
    "nir-negative-threshold": (lambda c: ["compile", c.nir(_nir_set("lif", v_threshold=np.full(3, -1.0)))],
                               "threshold"),
    "nir-nan-r": (lambda c: ["compile", c.nir(_nir_set("lif", r=np.full(3, np.nan)))], ("not finite", "nan")),
    "nir-weight-is-a-string": (lambda c: ["compile", c.nir(h5=lambda f: _h5replace(f, "node/nodes/fc1/weight",
                                                                                   b"abc"))], "weight"),
    "nir-weight-1d": (lambda c: ["compile", c.nir(_nir_set("fc1", weight=np.ones(12)))], "weight"),
    "nir-weight-wrong-input-count": (lambda c: ["compile", c.nir(_nir_set("fc1", weight=np.ones((3, 5))))],
                                     "takes 5 inputs"),
    "nir-bias-wrong-size": (lambda c: ["compile", c.nir(_nir_set("fc1", bias=np.zeros(5)))], "bias"),
    "nir-tau-is-a-string": (lambda c: ["compile", c.nir(h5=lambda f: _h5replace(f, "node/nodes/lif/tau",
                                                                                b"fast"))], "tau"),
    "nir-threshold-wrong-shape": (lambda c: ["compile", c.nir(_nir_set("lif", v_threshold=np.ones(7)))],
                                  ("v_threshold", "'lif'")),
    "nir-input-shape-is-a-string": (lambda c: ["compile", c.nir(h5=lambda f: _h5replace(
        f, "node/nodes/input/shape", b"four"))], ("input_type", "shape")),
    "nir-input-shape-2d": (lambda c: ["compile", c.nir(lambda n, e, m: setattr(
        n["input"], "input_type", {"input": np.array([4, 4])}))], "(N,) or (C, H, W)"),
    "nir-input-shape-zero": (lambda c: ["compile", c.nir(lambda n, e, m: setattr(
        n["input"], "input_type", {"input": np.array([0])}))], ("empty", "0 inputs", "takes 4 inputs")),
    "nir-meta-steps-not-a-number": (lambda c: ["compile", c.nir(lambda n, e, m: m.update({"snncc.steps": "abc"}))],
                                    "snncc.steps"),
    "nir-meta-rank-not-a-number": (lambda c: ["compile", c.nir(_nir_meta("lif", {"snncc.rank": "x"}))],
                                   "snncc.rank"),
    "nir-meta-threshold-not-a-number": (lambda c: ["compile", c.nir(_nir_meta(
        "lif", {"snncc.kind": "LIF", "snncc.threshold": "abc"}))], "threshold"),
    "nir-meta-reset-unknown": (lambda c: ["compile", c.nir(_nir_meta("lif", {"snncc.kind": "LIF",
                                                                             "snncc.reset": "bogus"}))], "reset"),
    "nir-meta-state-quant-unknown": (lambda c: ["compile", c.nir(_nir_meta(
        "lif", {"snncc.kind": "LIF", "snncc.state_quant": "bogus"}))], "state_quant"),
    "nir-meta-v-init-string": (lambda c: ["compile", c.nir(_nir_meta("lif", {"snncc.kind": "LIF",
                                                                             "snncc.v_init": "abc"}))], "v_init"),
    "nir-flag-dt-0": (lambda c: ["compile", c.nir(), "--dt", "0"], "dt"),
    "nir-flag-dt-nan": (lambda c: ["compile", c.nir(), "--dt", "nan"], "dt"),
    "nir-flag-dt-negative": (lambda c: ["compile", c.nir(), "--dt", "-1"], "dt"),
    "nir-flag-dt-not-a-number": (lambda c: ["compile", c.nir(), "--dt", "fast"], "--dt"),
    "nir-flag-producer-unknown": (lambda c: ["compile", c.nir(), "--producer", "brian"], "--producer"),
    "nir-flag-discretization-unknown": (lambda c: ["compile", c.nir(), "--discretization", "rk4"],
                                        "--discretization"),
    "nir-flag-arch": (lambda c: ["compile", c.nir(), "--arch", "test_bad_inputs:tiny"], "--arch"),
}


def _with(a: np.ndarray, value) -> np.ndarray:
    a = a.copy()
    a.flat[0] = value
    return a


def _nir_unsupported(nodes, edges, meta):
    import nir

    nodes["scale"] = nir.Scale(scale=np.full(3, 2.0))
    edges.remove(("fc1", "lif"))
    edges += [("fc1", "scale"), ("scale", "lif")]


def _nir_nested(nodes, edges, meta):
    import nir

    inner = {"i": nir.Input(input_type={"input": np.array([3])}),
             "o": nir.Output(output_type={"output": np.array([3])})}
    nodes["sub"] = nir.NIRGraph(nodes=inner, edges=[("i", "o")], type_check=False)
    edges.remove(("fc1", "lif"))
    edges += [("fc1", "sub"), ("sub", "lif")]


def _nir_two_inputs(nodes, edges, meta):
    import nir

    nodes["input2"] = nir.Input(input_type={"input": np.array([4])})
    edges.append(("input2", "fc1"))


def _net(edit):
    return lambda c: ["compile", c.net(edit)]


def _net_neuron(key: str, value):
    return lambda f: _h5replace(f, f"layer/1/neuron/{key}", value)


def _net_type(layer: str, value: str):
    def edit(f):
        del f[f"layer/{layer}/type"]
        _s(f[f"layer/{layer}"], "type", value)
    return edit


NETX = {
    "net-missing-file": (lambda c: ["compile", c.t / "nope.net"], "not found"),
    "net-garbage-bytes": (lambda c: ["compile", c.file("g.net", b"garbage, not hdf5")], "not an HDF5"),
    "net-truncated": (lambda c: ["compile", _half_of(c.net(), c, "half.net")], "not an HDF5"),
    "net-no-layer-group": (_net(lambda f: f.__delitem__("layer")), "no /layer group"),
    "net-empty-layer-group": (_net(lambda f: [f["layer"].__delitem__(k) for k in ("0", "1", "2")]), "0..n-1"),
    "net-layer-numbering-gap": (_net(lambda f: f["layer"].move("2", "5")), "0..n-1"),
    "net-missing-layer-type": (_net(lambda f: f["layer/1"].__delitem__("type")), "missing 'type'"),
    "net-unknown-layer-type": (_net(_net_type("1", "mystery")), "unknown layer type"),
    "net-pool-on-a-vector": (_net(_net_type("1", "pool")), "needs a (C, H, W) input"),
    "net-convT-layer": (_net(_net_type("1", "convT")), "'convT' layers are not supported: a transposed"),
    "net-unpool-layer": (_net(_net_type("1", "unpool")), "'unpool' layers are not supported"),
    "net-concat-layer": (_net(_net_type("1", "concat")), "'concat' layers are not supported"),
    "net-recurrent-dense": (_net(_net_type("1", "dense_rec")), "feed-forward"),
    "net-complex-dense": (_net(_net_type("1", "dense_comp")), "resonate-and-fire"),
    "net-average-not-last": (_net(lambda f: (_net_type("1", "average")(f), _h5replace(f, "layer/1/shape",
                                                                                       np.array([2])))),
                             "after the 'average' layer"),
    "net-average-uneven": (_net(lambda f: (_net_type("2", "average")(f), _h5replace(f, "layer/2/shape",
                                                                                     np.array([2])))),
                           "equal groups"),
    "net-bias-input-without-neuron": (lambda c: ["compile", c.net(), "--input-encoding", "bias"],
                                      "has no neuron"),
    "net-config-weight-bits": (lambda c: ["compile", c.net(), "--weight-bits", "4"], "weight_bits cannot apply"),
    "net-config-steps": (lambda c: ["compile", c.net(), "--steps", "9"], "tSample"),
    "net-dense-before-input": (_net(lambda f: (f["layer"].move("0", "9"), f["layer"].move("1", "0"),
                                               f["layer"].move("9", "1"))), ("before any input", "after the first")),
    "net-input-only": (_net(lambda f: [f["layer"].__delitem__(k) for k in ("1", "2")]), "no layer after its input"),
    "net-input-missing-shape": (_net(lambda f: f["layer/0"].__delitem__("shape")), "missing 'shape'"),
    "net-input-shape-zero": (_net(lambda f: _h5replace(f, "layer/0/shape", np.array([0]))), ("empty", "0 inputs")),
    "net-weight-missing": (_net(lambda f: f["layer/1"].__delitem__("weight")), "missing 'weight'"),
    "net-weight-strings": (_net(lambda f: _h5replace(f, "layer/1/weight", np.array([b"a", b"b"]))), "not numbers"),
    "net-weight-non-integer": (_net(lambda f: _h5replace(f, "layer/1/weight", np.full((3, 4), 0.5))), "non-integer"),
    "net-weight-nan": (_net(lambda f: _h5replace(f, "layer/1/weight", np.full((3, 4), np.nan))),
                       ("not finite", "nan", "non-integer")),
    "net-weight-3d": (_net(lambda f: _h5replace(f, "layer/1/weight", np.ones((3, 4, 2)))), "dense weight"),
    "net-weight-wrong-input-count": (_net(lambda f: _h5replace(f, "layer/1/weight", np.ones((3, 5)))),
                                     "does not read the 4 inputs"),
    "net-weight-beyond-int64": (_net(lambda f: _h5replace(f, "layer/1/weight", np.full((3, 4), 1e30))),
                                ("bits", "too large", "range")),
    "net-neuron-unknown-type": (_net(lambda f: (f["layer/1/neuron"].__delitem__("type"),
                                                _s(f["layer/1/neuron"], "type", "SDNN"))), "CUBA/LOIHI"),
    "net-neuron-missing-vth": (_net(lambda f: f["layer/1/neuron"].__delitem__("vThMant")), "missing 'vThMant'"),
    "net-neuron-decay-out-of-range": (_net(_net_neuron("iDecay", 5000)), "decays must lie in [0, 4096]"),
    "net-neuron-negative-vth": (_net(_net_neuron("vThMant", -5)), "negative"),
    "net-neuron-vth-string": (_net(_net_neuron("vThMant", b"high")), "vThMant"),
    "net-bias-bad-shape": (_net(lambda f: f["layer/1"].create_dataset("bias", data=np.ones(5))), "bias of shape"),
    "net-negative-delay": (_net(lambda f: f["layer/1"].create_dataset("delay", data=np.full(3, -1.0))),
                           "negative delay"),
    "net-meta-steps-0": (_net(lambda f: _h5replace(f, "simulation/tSample", 0)), "steps"),
    "net-meta-steps-negative": (_net(lambda f: _h5replace(f, "simulation/tSample", -2)), "steps"),
    "net-meta-steps-string": (_net(lambda f: _h5replace(f, "simulation/tSample", b"long")), "tSample"),
    "net-meta-json-steps-0": (_net(lambda f: f.attrs.__setitem__("snncc_meta_json", '{"steps": 0}')), "steps"),
    "net-meta-json-invalid": (_net(lambda f: f.attrs.__setitem__("snncc_meta_json", "{oops")), "snncc_meta_json"),
    "net-layer-json-invalid": (_net(lambda f: f["layer/1"].attrs.__setitem__("snncc_json", "{oops")), "snncc_json"),
    "net-flag-reset-interval-0": (lambda c: ["compile", c.net(), "--reset-interval", "0"], "reset_interval"),
    "net-flag-reset-interval-negative": (lambda c: ["compile", c.net(), "--reset-interval", "-3"], "reset_interval"),
    "net-flag-reset-offset-negative": (lambda c: ["compile", c.net(), "--reset-interval", "4", "--reset-offset", "-1"],
                                       "reset_offset"),
    "net-flag-input-shape": (lambda c: ["compile", c.net(), "--input-shape", "4"], "--input-shape"),
    "net-target-nir": (lambda c: ["compile", c.net(), "--target", "nir"], "nir"),
}


def _sim(make_x, *more):
    return lambda c: ["simulate", c.build(), "--input", make_x(c), "--out", c.t / "r.npz", *more]


INPUTS = {
    "in-float-dtype": (_sim(lambda c: c.npy(np.zeros((2, 4), np.float32))), "integer array"),
    "in-complex-dtype": (_sim(lambda c: c.npy(np.zeros((2, 4), np.complex64))), "integer array"),
    "in-wrong-shape": (_sim(lambda c: c.npy(np.zeros((2, 5), np.int64))), "expected (N, T, 4)"),
    "in-extra-dimension": (_sim(lambda c: c.npy(np.zeros((2, 3, 4, 1), np.int64))), "expected (N, T, 4)"),
    "in-scalar": (_sim(lambda c: c.npy(np.array(7))), "expected (N, T, 4)"),
    "in-above-255": (_sim(lambda c: c.npy(np.full((2, 4), 256))), "takes integers in [0, 255]"),
    "in-negative": (_sim(lambda c: c.npy(np.full((2, 4), -1))), "takes integers in [0, 255]"),
    "in-uint64-huge": (_sim(lambda c: c.npy(np.full((2, 4), 2 ** 64 - 1, np.uint64))), "takes integers in [0, 255]"),
    "in-empty-n0": (_sim(lambda c: c.npy(np.zeros((0, 4), np.uint8))), ("no samples", "0 samples", "empty")),
    "in-zero-time-steps": (_sim(lambda c: c.npy(np.zeros((2, 0, 4), np.uint8))), "time step"),
    "in-npz-without-x": (_sim(lambda c: c.npz(y=np.zeros((2, 4), np.uint8))), "no array named 'x'"),
    "in-npz-x-float": (_sim(lambda c: c.npz(x=np.zeros((2, 4)))), "integer array"),
    "in-npy-pickled-object-array": (_sim(lambda c: c.npy(np.array([{"a": 1}, None], dtype=object),
                                                         allow_pickle=True)), "object"),
    "in-npz-pickled-object-array": (_sim(lambda c: c.npz(allow_pickle=True, x=np.array([None, 1], dtype=object))),
                                    "object"),
    "in-npy-garbage-bytes": (_sim(lambda c: c.file("x.npy", b"\x93NUMPY garbage")), "not a readable numpy file"),
    "in-npz-garbage-bytes": (_sim(lambda c: c.file("x.npz", b"PK garbage")), "not a readable numpy file"),
    "in-npy-truncated": (_sim(lambda c: _half_of(c.npy(np.zeros((50, 4), np.uint8)), c, "half.npy")),
                         "not a readable numpy file"),
    "in-csv-file": (_sim(lambda c: c.file("x.csv", b"1,2,3,4\n")), "not a readable numpy file"),
    "in-missing-file": (_sim(lambda c: c.t / "none.npy"), "does not exist"),
    "in-directory": (_sim(lambda c: c.dir("x.npy")), ("directory", "not a file")),
    "in-verify-float": (lambda c: ["verify", c.build(), "--input", c.npy(np.zeros((2, 4)))], "integer array"),
    "in-verify-missing": (lambda c: ["verify", c.build(), "--input", c.t / "none.npy"], "does not exist"),
    "in-verify-empty-n0": (lambda c: ["verify", c.build(), "--input", c.npy(np.zeros((0, 4), np.uint8))],
                           ("no samples", "0 samples", "empty")),
    "in-report-float": (lambda c: ["report", c.build(), "--input", c.npy(np.zeros((2, 4)))], "integer array"),
    "in-report-out-of-range": (lambda c: ["report", c.build(), "--input", c.npy(np.full((2, 4), 300))],
                               "takes integers in [0, 255]"),
    "in-report-empty-n0": (lambda c: ["report", c.build(), "--input", c.npy(np.zeros((0, 4), np.uint8))],
                           ("no samples", "0 samples", "empty")),
    "in-report-garbage": (lambda c: ["report", c.build(), "--input", c.file("x.npy", b"garbage")],
                          "not a readable numpy file"),
    "in-report-wrong-shape": (lambda c: ["report", c.build(), "--input", c.npy(np.zeros((2, 9), np.uint8))],
                              "expected (N, T, 4)"),
}


def _on_copy(cmd: str, edit, *more, which: str = "build"):
    def make(c: Ctx):
        b = c.copy(edit, which)
        extra = list(more)
        if cmd == "simulate" and "--input" not in more:
            extra = ["--input", c.x(), "--out", c.t / "r.npz", *extra]
        return [cmd, b, *extra]
    return make


def _rehashed(edit):
    """``edit``, then compile.json's checksums brought up to date: a damaged build whose
    manifest agrees with it (written by a buggy or older snncc, or edited with care), so
    that the readers' own checks are what must catch the damage."""
    def both(b: Path):
        edit(b)
        mpath = b / "compile.json"
        doc = json.loads(mpath.read_text())
        arts = doc.get("artifacts") if isinstance(doc, dict) else None
        if isinstance(arts, dict):
            for f in list(arts):
                if (b / f).is_file():
                    arts[f] = hashlib.sha256((b / f).read_bytes()).hexdigest()
                else:
                    del arts[f]
            mpath.write_text(json.dumps(doc, sort_keys=True, indent=1) + "\n")
    return both


def _model_json(fn):
    return _json_edit("model.json", fn)


def _meta_steps(value):
    return _model_json(lambda d: d["meta"].__setitem__("steps", value))


BUILDS = {
    "build-inspect-missing-dir": (lambda c: ["inspect", c.t / "nobuild"], ("does not exist", "not an snncc build")),
    "build-inspect-a-file": (lambda c: ["inspect", c.file("b", b"x")], "not an snncc build directory"),
    "build-inspect-empty-dir": (lambda c: ["inspect", c.dir("b")], "not an snncc build directory"),
    "build-inspect-no-model-json": (_on_copy("inspect", _rm("model.json")), "model.json"),
    "build-inspect-no-model-npz": (_on_copy("inspect", _rm("model.npz")), "model.npz"),
    "build-inspect-model-json-invalid": (_on_copy("inspect", _put("model.json", b"{oops")), "model.json"),
    "build-inspect-model-json-empty": (_on_copy("inspect", _put("model.json", b"")), "model.json"),
    "build-inspect-model-json-a-list": (_on_copy("inspect", _put("model.json", b"[]")), "model.json"),
    "build-inspect-model-json-wrong-format": (_on_copy("inspect", _model_json(lambda d: d.update(format="onnx"))),
                                              ("not an snncc model", "model.json")),
    "build-inspect-model-json-version-99": (_on_copy("inspect", _model_json(lambda d: d.update(version=99))),
                                            ("version 99", "model.json")),
    "build-inspect-model-json-no-nodes": (_on_copy("inspect", _model_json(lambda d: d.pop("nodes"))), "model.json"),
    "build-inspect-model-json-unknown-kind": (_on_copy("inspect", _model_json(
        lambda d: _node(d, "1").update(kind="IntMagic"))), "model.json"),
    "build-inspect-model-json-unknown-field": (_on_copy("inspect", _model_json(
        lambda d: _node(d, "1")["params"].update(colour="blue"))), "model.json"),
    "build-inspect-model-json-field-wrong-type": (_on_copy("inspect", _model_json(
        lambda d: _node(d, "0")["params"].update(weight_bits="8"))), "model.json"),
    "build-inspect-model-json-unknown-input": (_on_copy("inspect", _model_json(
        lambda d: _node(d, "1").update(inputs=["ghost"]))), "model.json"),
    "build-inspect-model-json-no-outputs": (_on_copy("inspect", _model_json(lambda d: d.update(outputs=[]))),
                                            "model.json"),
    "build-inspect-model-json-v-bits-99": (_on_copy("inspect", _model_json(
        lambda d: _node(d, "1")["params"].update(v_bits=99))), "model.json"),
    "build-inspect-model-npz-garbage": (_on_copy("inspect", _put("model.npz", b"garbage")), "model.npz"),
    "build-inspect-model-npz-flipped-byte": (_on_copy("inspect", _flip_in("model.npz")), "model.npz"),
    "build-inspect-model-npz-truncated": (_on_copy("inspect", _truncate("model.npz")), "model.npz"),
    "build-inspect-model-npz-missing-array": (_on_copy("inspect", _npz_edit(lambda a: a.pop("0/weight"))),
                                              "model.npz"),
    "build-inspect-model-npz-object-array": (_on_copy("inspect", _npz_object), "model.npz"),
    "build-inspect-model-npz-float-weights": (_on_copy("inspect", _npz_edit(
        lambda a: a.__setitem__("0/weight", a["0/weight"].astype(np.float64) + 0.5))), "model.npz"),
    "build-inspect-model-npz-weights-beyond-8-bits": (_on_copy("inspect", _npz_edit(
        lambda a: a["0/weight"].__setitem__((0, 0), 1000))), "model.npz"),
    "build-inspect-model-npz-weight-wrong-shape": (_on_copy("inspect", _npz_edit(
        lambda a: a.__setitem__("0/weight", np.zeros((3, 7), np.int64)))), "model.npz"),
    "build-inspect-compile-json-invalid": (_on_copy("inspect", _put("compile.json", b"{oops")), "compile.json"),
    "build-inspect-compile-json-a-list": (_on_copy("inspect", _put("compile.json", b"[1, 2]")), "compile.json"),
    "build-simulate-meta-steps-0": (_on_copy("simulate", _meta_steps(0)), "model.json"),
    "build-simulate-meta-steps-negative": (_on_copy("simulate", _meta_steps(-2)), "model.json"),
    "build-simulate-meta-steps-string": (_on_copy("simulate", _meta_steps("3")), "model.json"),
    "build-simulate-c-manifest-invalid": (_on_copy("simulate", _put("c/c_manifest.json", b"{oops"), "--target", "c"),
                                          "c_manifest.json"),
    "build-simulate-c-folder-deleted": (_on_copy("simulate", _rm("c"), "--target", "c"), ("no c target", "c/")),
    "build-simulate-onnx-folder-deleted": (_on_copy("simulate", _rm("onnx"), "--target", "onnx"),
                                           ("no onnx target", "onnx/")),
    "build-simulate-missing": (lambda c: ["simulate", c.t / "nobuild", "--input", c.x(), "--out", c.t / "r.npz"],
                               ("does not exist", "not an snncc build")),
    "build-simulate-empty-dir": (lambda c: ["simulate", c.dir("b"), "--input", c.x(), "--out", c.t / "r.npz"],
                                 "not an snncc build directory"),
    "build-verify-missing": (lambda c: ["verify", c.t / "nobuild"], ("does not exist", "not an snncc build")),
    "build-verify-compile-json-invalid": (_on_copy("verify", _put("compile.json", b"{oops")), "compile.json"),
    "build-verify-compile-json-unknown-target": (_on_copy("verify", _json_edit(
        "compile.json", lambda d: d.update(targets=["fpga"]))), "fpga"),
    "build-verify-compile-json-targets-not-a-list": (_on_copy("verify", _json_edit(
        "compile.json", lambda d: d.update(targets=5))), "compile.json"),
    "build-verify-target-folder-deleted": (_on_copy("verify", _rm("onnx")), ("no onnx target", "onnx/")),
    "build-verify-no-targets": (lambda c: ["verify", c.dbuild()], "no emitted bit-exact targets"),
    "build-report-missing": (lambda c: ["report", c.t / "nobuild"], ("does not exist", "not an snncc build")),
    "build-report-compile-json-invalid": (_on_copy("report", _put("compile.json", b"{oops")), "compile.json"),
    "build-report-no-model-npz": (_on_copy("report", _rm("model.npz")), "model.npz"),
    "build-eval-missing": (lambda c: ["eval", c.t / "nobuild", "--dataset", "digits:2"],
                           ("does not exist", "not an snncc build")),
    "build-eval-float-model-json-invalid": (_on_copy("eval", _put("float_model.json", b"{oops"), "--dataset",
                                                     "digits:2", which="dbuild"), "float_model.json"),
    "build-eval-float-model-npz-garbage": (_on_copy("eval", _put("float_model.npz", b"garbage"), "--dataset",
                                                    "digits:2", which="dbuild"), "float_model.npz"),
    "build-eval-float-model-npz-missing": (_on_copy("eval", _rm("float_model.npz"), "--dataset", "digits:2",
                                                    which="dbuild"), "float_model.npz"),
    "build-eval-float-model-npz-flipped-byte": (_on_copy("eval", _flip_in("float_model.npz"), "--dataset",
                                                         "digits:2", which="dbuild"), "float_model.npz"),
}


def _existing_build_out(model_args, *flags):
    def make(c: Ctx):
        b = c.copy()
        return ["compile", *model_args(c), *flags, "--out", b]
    return make


OUT = {
    "out-is-a-regular-file": (lambda c: ["compile", c.model(), "--out", c.file("out", b"keep me")],
                              ("not a directory", "is a file", "exists")),
    "out-under-a-regular-file": (lambda c: ["compile", c.model(), "--out", c.file("out", b"keep me") / "b"],
                                 ("not a directory", "file exists")),
    "out-read-only-parent": (_readonly_parent, ("permission", "read-only", "not writable")),
    "out-existing-build-nan-model": (_existing_build_out(lambda c: [c.pt(tiny_with(_weight(0, float("nan"))))]),
                                     "not finite"),
    "out-existing-build-bad-config": (_existing_build_out(lambda c: [c.model()], "--steps", "0"), "steps"),
    "out-existing-build-unsupported-layer": (_existing_build_out(lambda c: [c.pt(nn.Sequential(
        nn.Linear(4, 3), nn.ReLU()))]), "ReLU"),
    "out-existing-build-membrane-too-narrow": (_existing_build_out(lambda c: [c.model()], "--v-bits", "4",
                                                                   "--u-overflow", "saturate"), "4-bit membrane"),
    "out-existing-build-netx-refuses": (_existing_build_out(lambda c: [c.model()], "--target", "c,netx",
                                                            "--state-quant", "ternary"), "netx"),
    "out-existing-build-garbage-model": (_existing_build_out(lambda c: [c.file("g.pt", b"garbage")]), "cannot load"),
    "out-simulate-out-is-a-directory": (lambda c: ["simulate", c.build(), "--input", c.x(), "--out", c.dir("r.npz")],
                                        "directory"),
    "out-simulate-out-parent-missing": (lambda c: ["simulate", c.build(), "--input", c.x(), "--out",
                                                   c.t / "no" / "such" / "r.npz"], ("does not exist", "directory")),
    "out-simulate-out-overwrites-the-build": (lambda c: (lambda b: ["simulate", b, "--input", c.x(), "--out",
                                                                    b / "model.npz"])(c.copy()),
                                              ("overwrite", "inside the build", "part of the build")),
}


def _ds(cmd: str, spec: str, which: str = "build"):
    return lambda c: [cmd, getattr(c, which)(), "--dataset", spec]


COMMANDS = {
    "simulate-unknown-target": (_sim(lambda c: c.x(), "--target", "fpga"), ("unknown target 'fpga'", "no fpga target")),
    "simulate-target-not-emitted": (_sim(lambda c: c.x(), "--target", "lava"), "no lava target"),
    "simulate-target-nir-not-emitted": (_sim(lambda c: c.x(), "--target", "nir"), "no nir target"),
    "simulate-probe-unknown": (_sim(lambda c: c.x(), "--probe", "everything"), "--probe"),
    "simulate-steps-100000": (_sim(lambda c: c.x(), "--steps", "100000"), "--steps"),
    "simulate-no-input-flag": (lambda c: ["simulate", c.build(), "--out", c.t / "r.npz"], "--input"),
    "verify-dataset-unknown": (_ds("verify", "imagenet:2"), "unknown dataset"),
    "verify-dataset-count-0": (_ds("verify", "digits:0"), "positive"),
    "verify-dataset-count-negative": (_ds("verify", "digits:-3"), "positive"),
    "verify-dataset-count-not-a-number": (_ds("verify", "digits:abc"), "bad sample count"),
    "verify-dataset-empty": (_ds("verify", ""), "empty dataset spec"),
    "verify-dataset-shape-mismatch": (_ds("verify", "digits:2"), "the model takes"),
    "verify-input-and-dataset": (lambda c: ["verify", c.build(), "--input", c.x(), "--dataset", "digits:2"],
                                 ("not both", "either", "one of")),
    "verify-unknown-target": (lambda c: ["verify", c.build(), "--target", "fpga"], "unknown target 'fpga'"),
    "verify-target-not-emitted": (lambda c: ["verify", c.build(), "--target", "lava"], "no lava target"),
    "report-dataset-unknown": (_ds("report", "imagenet"), "unknown dataset"),
    "report-dataset-count-0": (_ds("report", "digits:0"), "positive"),
    "report-dataset-shape-mismatch": (_ds("report", "digits:2"), "the model takes"),
    "report-input-and-dataset": (lambda c: ["report", c.build(), "--input", c.x(), "--dataset", "digits:2"],
                                 ("not both", "either", "one of")),
    "eval-dataset-unknown": (_ds("eval", "imagenet", "dbuild"), "unknown dataset"),
    "eval-dataset-count-0": (_ds("eval", "digits:0", "dbuild"), "positive"),
    "eval-dataset-count-negative": (_ds("eval", "digits:-3", "dbuild"), "positive"),
    "eval-dataset-count-beyond-test-split": (_ds("eval", "digits:1000", "dbuild"), "360"),
    "eval-dataset-shape-mismatch": (_ds("eval", "mnist5k:2", "dbuild"), "the model takes"),
    "eval-dataset-not-installed": (lambda c: (_fmnist_dir(c, False), ["eval", c.dbuild(), "--dataset",
                                                                      "fashion-mnist:2"])[1], "not found"),
    "eval-dataset-corrupt": (lambda c: (_fmnist_dir(c, True), ["eval", c.dbuild(), "--dataset",
                                                               "fashion-mnist:2"])[1], "not a readable gzip"),
    "eval-batch-0": (lambda c: ["eval", c.dbuild(), "--dataset", "digits:2", "--batch", "0"], "batch"),
    "eval-batch-negative": (lambda c: ["eval", c.dbuild(), "--dataset", "digits:2", "--batch", "-5"], "batch"),
    "eval-unknown-target": (lambda c: ["eval", c.dbuild(), "--dataset", "digits:2", "--target", "fpga"],
                            ("unknown target 'fpga'", "no fpga target")),
    "eval-target-not-emitted": (lambda c: ["eval", c.dbuild(), "--dataset", "digits:2", "--target", "c"],
                                "no c target"),
    "eval-no-dataset-flag": (lambda c: ["eval", c.dbuild()], "--dataset"),
    "inspect-unknown-flag": (lambda c: ["inspect", c.build(), "--yaml"], "--yaml"),
}

REHASHED = {  # the same damage, with checksums that agree: what the readers themselves catch
    "rehashed-inspect-model-json-invalid": (_on_copy("inspect", _rehashed(_put("model.json", b"{oops"))),
                                            "not valid JSON"),
    "rehashed-inspect-model-json-a-list": (_on_copy("inspect", _rehashed(_put("model.json", b"[]"))), "model.json"),
    "rehashed-inspect-model-json-wrong-format": (_on_copy("inspect", _rehashed(_model_json(
        lambda d: d.update(format="onnx")))), "not an snncc model"),
    "rehashed-inspect-model-json-version-99": (_on_copy("inspect", _rehashed(_model_json(
        lambda d: d.update(version=99)))), "version 99"),
    "rehashed-inspect-model-json-no-nodes": (_on_copy("inspect", _rehashed(_model_json(lambda d: d.pop("nodes")))),
                                             "model.json"),
    "rehashed-inspect-model-json-unknown-kind": (_on_copy("inspect", _rehashed(_model_json(
        lambda d: _node(d, "1").update(kind="IntMagic")))), "unknown kind"),
    "rehashed-inspect-model-json-unknown-field": (_on_copy("inspect", _rehashed(_model_json(
        lambda d: _node(d, "1")["params"].update(colour="blue")))), "unknown field"),
    "rehashed-inspect-model-json-field-wrong-type": (_on_copy("inspect", _rehashed(_model_json(
        lambda d: _node(d, "0")["params"].update(weight_bits="8")))), "weight_bits"),
    "rehashed-inspect-model-json-unknown-input": (_on_copy("inspect", _rehashed(_model_json(
        lambda d: _node(d, "1").update(inputs=["ghost"])))), "ghost"),
    "rehashed-inspect-model-json-no-outputs": (_on_copy("inspect", _rehashed(_model_json(
        lambda d: d.update(outputs=[])))), "output"),
    "rehashed-inspect-model-json-v-bits-99": (_on_copy("inspect", _rehashed(_model_json(
        lambda d: _node(d, "1")["params"].update(v_bits=99)))), "v_bits"),
    "rehashed-inspect-model-npz-garbage": (_on_copy("inspect", _rehashed(_put("model.npz", b"garbage"))),
                                           "model.npz"),
    "rehashed-inspect-model-npz-missing-array": (_on_copy("inspect", _rehashed(_npz_edit(
        lambda a: a.pop("0/weight")))), "missing from model.npz"),
    "rehashed-inspect-model-npz-object-array": (_on_copy("inspect", _rehashed(_npz_object)), "model.npz"),
    "rehashed-inspect-model-npz-float-weights": (_on_copy("inspect", _rehashed(_npz_edit(
        lambda a: a.__setitem__("0/weight", a["0/weight"].astype(np.float64) + 0.5)))), "int64"),
    "rehashed-inspect-model-npz-weights-beyond-8-bits": (_on_copy("inspect", _rehashed(_npz_edit(
        lambda a: a["0/weight"].__setitem__((0, 0), 1000)))), "8 bits"),
    "rehashed-inspect-model-npz-weight-wrong-shape": (_on_copy("inspect", _rehashed(_npz_edit(
        lambda a: a.__setitem__("0/weight", np.zeros((3, 7), np.int64))))), ("0/weight", "0: weight")),
    "rehashed-simulate-meta-steps-0": (_on_copy("simulate", _rehashed(_meta_steps(0))), "steps"),
    "rehashed-simulate-meta-steps-negative": (_on_copy("simulate", _rehashed(_meta_steps(-2))), "steps"),
    "rehashed-simulate-meta-steps-string": (_on_copy("simulate", _rehashed(_meta_steps("3"))), "steps"),
    "rehashed-simulate-c-manifest-invalid": (_on_copy("simulate", _rehashed(_put("c/c_manifest.json", b"{oops")),
                                                      "--target", "c"), "c_manifest.json"),
    "rehashed-simulate-onnx-model-garbage": (_on_copy("simulate", _rehashed(_put("onnx/model.onnx", b"garbage")),
                                                      "--target", "onnx"), "model.onnx"),
    "rehashed-simulate-c-model-c-garbage": (_on_copy("simulate", _rehashed(_put("c/model.c", b"not C")),
                                                     "--target", "c"), "model.c"),
    "rehashed-eval-float-model-json-invalid": (_on_copy("eval", _rehashed(_put("float_model.json", b"{oops")),
                                                        "--dataset", "digits:2", which="dbuild"),
                                               ("float_model.json", "float model")),
    "rehashed-eval-float-model-npz-garbage": (_on_copy("eval", _rehashed(_put("float_model.npz", b"garbage")),
                                                       "--dataset", "digits:2", which="dbuild"),
                                              ("float_model.npz", "float model")),
}

CASES = {**PT, **MODEL, **FLAGS, **CONFIG, **NIR, **NETX, **INPUTS, **BUILDS, **REHASHED, **OUT, **COMMANDS}


def _roots(env, tmp: Path) -> dict:
    return {"BUILD": env.build, "DBUILD": env.dbuild, "E": env.root, "T": tmp}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_clear_error(case, env, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    make, expect = CASES[case]
    c = Ctx(env, tmp_path, monkeypatch)
    argv = [str(a) for a in make(c)]
    if argv[0] == "compile" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    before = {d: snapshot(d) for d in c.watched}
    rc, out, err, tb = call(argv, capsys)
    probs = verdict(argv, rc, out, err, tb, expect, roots=_roots(env, tmp_path))
    for d, snap in before.items():
        diff = changed(snap, snapshot(d))
        if diff:
            probs.append(f"[build changed] {d.name}: {diff[:6]}")
            if d in env.pristine:
                _restore(env, d)
    log_run(argv, rc, out, err, tb, expect, probs, _roots(env, tmp_path))
    assert not probs, report(argv, rc, out, err, tb, expect, probs, _roots(env, tmp_path))


def test_the_unmodified_inputs_are_accepted(env, tmp_path, capsys):
    """The catalogue's starting points are valid: each failure above is its mutation's."""
    runs = [["compile", env.model, "--out", tmp_path / "a"],
            ["simulate", env.build, "--input", env.x, "--out", tmp_path / "r.npz", "--target", "c"],
            ["report", env.build, "--input", env.x], ["inspect", env.build],
            ["eval", env.dbuild, "--dataset", "digits:2"]]
    if HAS_NIR:
        runs.append(["compile", nir_file(tmp_path / "m.nir"), "--out", tmp_path / "n"])
    if HAS_H5PY:
        runs.append(["compile", net_file(tmp_path / "m.net"), "--out", tmp_path / "x"])
    for argv in runs:
        rc, out, err, tb = call(argv, capsys)
        assert rc == 0 and tb is None, f"snncc {' '.join(map(str, argv))}: exit {rc}\n{err}\n{tb}"


# ==============================================================================================
# Tampering with a compiled build: verify names the wrong file, simulate refuses.
# ==============================================================================================
def _onnx_initializer(rel: str, name: str = "2::weight_t"):
    """Change one weight of one initializer inside the Scan body of an emitted ONNX model."""
    def edit(b: Path):
        import onnx
        from onnx import numpy_helper

        m = onnx.load(b / rel)
        for node in m.graph.node:
            for attr in node.attribute:
                if attr.name == "body":
                    for i, init in enumerate(attr.g.initializer):
                        if init.name == name:
                            a = numpy_helper.to_array(init).copy()
                            a.flat[0] += 1
                            attr.g.initializer[i].CopyFrom(numpy_helper.from_array(a, name))
        onnx.save(m, b / rel)
    return edit


def _edit_model_c(b: Path) -> None:
    """One packed weight byte of layer 0 changed in c/model.c (still valid C)."""
    p = b / "c" / "model.c"
    text = p.read_text()
    i = text.index("L001_0_w[")
    j = text.index("0x", i)
    old = text[j:j + 4]
    new = "0x%02x" % (int(old, 16) ^ 0x10)
    p.write_text(text[:j] + new + text[j + 4:])


def _weight_changed(a: dict) -> None:
    a["0/weight"][0, 0] += 1


def _act_shift_changed(d: dict) -> None:
    _node(d, "1")["params"]["act_shift"] += 1


def _stale_onnx(b: Path) -> None:
    """A successful compile of another model into the build, for the c target only:
    onnx/ is left over from the old model."""
    m = _save(b.parent / f"{b.name}_other.pt", tiny_with(lambda m: m[0].weight.mul_(-1)))
    _ok("compile", m, "--target", "c", "--steps", "3", "--out", b)


def _unknown_target_folder(b: Path) -> None:
    _write(b / "fpga" / "bitstream.bin", b"\x00\x01")


TAMPER = {  # id -> (edit of a build copy, the file that must be named, simulate --target or None[, verify?])
    "model-npz-flipped-byte": (_flip_in("model.npz"), "model.npz", "c"),
    "model-npz-one-weight-changed": (_npz_edit(_weight_changed), "model.npz", "c"),
    "model-json-act-shift-changed": (_json_edit("model.json", _act_shift_changed), "model.json", "c"),
    "onnx-model-garbage": (_put("onnx/model.onnx", b"not an onnx model"), "model.onnx", "onnx"),
    "onnx-model-initializer-changed": (_onnx_initializer("onnx/model.onnx"), "model.onnx", "onnx"),
    "onnx-probe-initializer-changed": (_onnx_initializer("onnx/model_probe.onnx"), "model_probe.onnx", "onnx"),
    "c-model-c-weight-edited": (_edit_model_c, "model.c", "c"),
    "c-model-c-garbage": (_put("c/model.c", b"this is not C"), "model.c", "c"),
    "c-folder-deleted": (_rm("c"), ("no c target", "c/"), "c"),
    "onnx-folder-deleted": (_rm("onnx"), ("no onnx target", "onnx/"), "onnx"),
    "compile-json-deleted": (_rm("compile.json"), "compile.json", None),
    "stale-onnx-after-recompile": (_stale_onnx, "onnx", "onnx", False),  # the new build itself is fine
}

TAMPER_RUNS = [(f"{k}/verify", k, "verify") for k, v in TAMPER.items() if v[3:] != (False,)] + \
              [(f"{k}/simulate-{v[2]}", k, "simulate") for k, v in TAMPER.items() if v[2]]


def _tamper_argv(cmd: str, b: Path, target, x: Path, tmp: Path, probe: bool) -> list:
    if cmd == "verify":
        return ["verify", b, "--input", x]
    return ["simulate", b, "--target", target, "--input", x, "--out", tmp / "r.npz"] + (
        ["--probe", "state"] if probe else [])


def check_tampered(source: Path, edit, name, cmd: str, target: str, probe: bool, env, tmp_path, capsys) -> None:
    """Copy ``source``, tamper with the copy, run ``cmd`` on it: verify must exit 1 (a
    mismatch, reported on stdout) or 2 and name the file, simulate must exit 2 naming it;
    neither may change the copy."""
    b = tmp_path / "b"
    shutil.copytree(source, b, symlinks=True)
    edit(b)
    before = snapshot(b)
    argv = [str(a) for a in _tamper_argv(cmd, b, target, env.x, tmp_path, probe)]
    rc, out, err, tb = call(argv, capsys)
    roots = _roots(env, tmp_path)
    if cmd == "verify":
        probs = verdict(argv, rc, out, err, tb, name, ok_codes=(1, 2), where="output", roots=roots)
    else:
        probs = verdict(argv, rc, out, err, tb, name, roots=roots)
    diff = changed(before, snapshot(b))
    if diff:
        probs.append(f"[build changed] {diff[:6]}")
    log_run(argv, rc, out, err, tb, name, probs, roots)
    assert not probs, report(argv, rc, out, err, tb, name, probs, roots)


@pytest.mark.parametrize("run_id,case,cmd", TAMPER_RUNS, ids=[r[0] for r in TAMPER_RUNS])
def test_tampered_build_is_caught(run_id, case, cmd, env, tmp_path, capsys):
    edit, name, target = TAMPER[case][:3]
    check_tampered(env.build, edit, name, cmd, target, "probe" in case, env, tmp_path, capsys)


def test_a_folder_the_user_added_is_named_not_run(env, tmp_path, capsys):
    """A folder that is not in the manifest is not a target: verify names it as not part
    of the build, checks the rest, and leaves it alone."""
    b = tmp_path / "b"
    shutil.copytree(env.build, b, symlinks=True)
    _unknown_target_folder(b)
    before = snapshot(b)
    rc, out, err, tb = call(["verify", str(b), "--input", str(env.x)], capsys)
    assert rc == 0 and not tb, err
    assert "not part of the build (not checked, never run): fpga/" in out
    assert not changed(before, snapshot(b))
    rc, out, err, tb = call(["simulate", str(b), "--input", str(env.x), "--out", str(tmp_path / "r.npz"),
                             "--target", "fpga"], capsys)
    assert rc == 2 and "unknown target 'fpga'" in err


@pytest.fixture(scope="module")
def lava_build(env):
    if not HAS_LAVA:
        pytest.skip("lava is not installed")
    b = env.root / "lava_build"
    _ok("compile", env.model, "--target", "lava", "--steps", "3", "--out", b)
    return b


LAVA_TAMPER = {
    "lava-params-garbage": (_put("lava/params.npz", b"garbage"), "params.npz"),
    "lava-params-one-weight-changed": (_npz_edit(lambda a: a.__setitem__(
        sorted(a)[0], a[sorted(a)[0]] + 1), "lava/params.npz"), "params.npz"),
    "lava-network-py-garbage": (_put("lava/network.py", b"this is not python ("), "network.py"),
}

LAVA_RUNS = [(f"{k}/{cmd}", k, cmd) for k in LAVA_TAMPER for cmd in ("verify", "simulate")]


@pytest.mark.parametrize("run_id,case,cmd", LAVA_RUNS, ids=[r[0] for r in LAVA_RUNS])
def test_tampered_lava_build_is_caught(run_id, case, cmd, env, lava_build, tmp_path, capsys):
    edit, name = LAVA_TAMPER[case]
    check_tampered(lava_build, edit, name, cmd, "lava", False, env, tmp_path, capsys)
