"""Build directories: written whole or not at all, one writer at a time, readers never see
a half-written build (issue 10's concurrency and ENOSPC findings)."""
import errno
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from snncc import builds
from snncc.cli import main
from snncc.errors import SnnccError


def _cli(*args) -> int:
    if args[0] == "compile":
        args = (*args, "--input-shape", "1,28,28")
    return main([str(a) for a in args])


def _tree(d: Path) -> dict:
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture
def model_file(tmp_path, example_model):
    p = tmp_path / "model.pt"
    torch.save(example_model, p)
    return p


@pytest.mark.slow  # three compiles in parallel processes on 2 cores: 15 s
def test_two_compiles_into_one_out(tmp_path, model_file):
    """Two processes compile into the same --out at once: each either finishes or is refused
    with a clear message (never a traceback), and what is left is one whole build."""
    out = tmp_path / "b"
    cmd = [sys.executable, "-m", "snncc.cli", "compile", str(model_file), "--target", "c,onnx", "--out", str(out),
           "--input-shape", "1,28,28"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    assert any(rc == 0 for rc, _ in results), results
    for rc, err in results:
        assert "Traceback" not in err
        assert rc == 0 or (rc == 2 and "another snncc compile is writing" in err), err
    assert _cli("verify", out) == 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".b.part")]


@pytest.mark.slow  # two compiles: 9 s
def test_disk_full_leaves_the_previous_build(tmp_path, model_file, monkeypatch, capsys):
    """ENOSPC half way through writing: exit 2 with the reason, and the old build is
    byte for byte what it was (and still verifies)."""
    out = tmp_path / "b"
    assert _cli("compile", model_file, "--target", "c", "--out", out) == 0
    before = _tree(out)
    from snncc.ir import serialize

    real = serialize.write_npz
    calls = []

    def full(path, arrays):  # the float model is written, the integer one runs out of space
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, arrays)

    monkeypatch.setattr(serialize, "write_npz", full)
    capsys.readouterr()
    assert _cli("compile", model_file, "--target", "c", "--steps", "3", "--out", out) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "previous build, if any, is unchanged" in err
    monkeypatch.setattr(serialize, "write_npz", real)
    assert _tree(out) == before
    assert _cli("verify", out) == 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".b.part")]


def test_readers_see_the_old_or_the_new_build(tmp_path, model_file):
    """While a build is replaced again and again, every read of it finds a whole build:
    the old one or the new one (the directories are swapped in one step)."""
    out = tmp_path / "b"
    assert _cli("compile", model_file, "--target", "", "--out", out) == 0
    if not builds._exchange(tmp_path / "none-a", tmp_path / "none-b") and not _exchange_works(tmp_path):
        pytest.skip("this file system cannot swap directories in one step")
    stop, seen, bad = threading.Event(), set(), []

    def read():
        while not stop.is_set():
            try:
                g, man = builds.load_build(out)
                seen.add(g.meta["steps"])
            except SnnccError as e:
                bad.append(str(e))

    t = threading.Thread(target=read)
    t.start()
    try:
        for steps in (2, 3, 4, 5, 6, 2, 3):
            assert _cli("compile", model_file, "--target", "", "--steps", steps, "--out", out) == 0
    finally:
        stop.set()
        t.join()
    assert not bad, bad[:3]
    assert len(seen) > 1


def _exchange_works(tmp: Path) -> bool:
    a, b = tmp / "xa", tmp / "xb"
    a.mkdir(), b.mkdir()
    (a / "f").write_text("a")
    ok = builds._exchange(a, b)
    return ok and (b / "f").is_file()


def test_a_recompile_with_fewer_targets_drops_the_others(tmp_path, model_file, capsys):
    out = tmp_path / "b"
    assert _cli("compile", model_file, "--target", "c,onnx", "--out", out) == 0
    (out / "notes.txt").write_text("mine")
    assert _cli("compile", model_file, "--target", "c", "--out", out) == 0
    assert not (out / "onnx").exists() and (out / "notes.txt").read_text() == "mine"
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 1, 28, 28), np.uint8))
    capsys.readouterr()
    assert _cli("simulate", out, "--input", x, "--target", "onnx", "--out", tmp_path / "r.npz") == 2
    assert "has no onnx target (it was compiled for: c)" in capsys.readouterr().err
    man = json.loads((out / "compile.json").read_text())
    assert "notes.txt" not in man["artifacts"] and man["targets"] == ["c"]
