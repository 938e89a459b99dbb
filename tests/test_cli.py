"""CLI: the commands work end to end, bad input gives one clear message (exit 2)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from snncc import nn as snn
from snncc.cli import main


def run_cli(*args):
    return main([str(a) for a in args])


@pytest.fixture
def model_file(tmp_path, example_model):
    p = tmp_path / "model.pt"
    torch.save(example_model, p)
    return p


@pytest.fixture
def x_file(tmp_path, pixels):
    p = tmp_path / "x.npy"
    np.save(p, pixels[:3])
    return p


def test_compile_inspect_simulate_report(tmp_path, model_file, x_file, capsys):
    b = tmp_path / "b"
    assert run_cli("compile", model_file, "--input-shape", "1,28,28", "--target", "", "--out", b) == 0
    assert run_cli("inspect", b) == 0
    out = capsys.readouterr().out
    assert "8.shortcut" in out and "READOUT" in out
    assert run_cli("inspect", b, "--json") == 0
    rows = json.loads(capsys.readouterr().out)["layers"]
    assert rows[1]["op"] == "IntConv" and rows[1]["weight_bits"] == 8
    r = tmp_path / "r.npz"
    assert run_cli("simulate", b, "--input", x_file, "--out", r, "--probe", "state") == 0
    with np.load(r) as z:
        assert z["output"].shape == (3, 4, 10) and z["2"].shape == (3, 4, 16, 28, 28) and "2/v" in z.files
    assert "simulated 3 sample(s)" in capsys.readouterr().out
    assert run_cli("report", b, "--input", x_file, "--json") == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ops"]["samples"] == 3 and rep["model_size"]["weights_bits"] > 0
    assert "Davies" in rep["energy"]["loihi"]["source"]


@pytest.mark.parametrize("targets", ["c,onnx", "lava"])
def test_compile_is_deterministic(tmp_path, model_file, targets):
    for d in ("a", "b"):
        assert run_cli("compile", model_file, "--input-shape", "1,28,28", "--target", targets,
                       "--out", tmp_path / d) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_config_file_and_flags(tmp_path, model_file, capsys):
    cfg = tmp_path / "q.toml"
    cfg.write_text("[quantization]\nweight_bits = 4\ngranularity = 'tensor'\n")
    b = tmp_path / "b"
    assert run_cli("compile", model_file, "--input-shape", "1,28,28", "--target", "", "--out", b,
                   "--config", cfg, "--last-layer-bits", "8") == 0
    manifest = json.loads((b / "compile.json").read_text())
    assert manifest["config"]["weight_bits"] == 4 and manifest["config"]["last_layer_bits"] == 8


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.lif = snn.LIF()

    def forward(self, x):
        return self.lif(self.fc(x))


def make_custom():
    return Custom()


BAD = {
    "missing model": (lambda t: ["compile", t / "nope.pt"], "model file not found"),
    "garbage model": (lambda t: ["compile", _write(t / "g.pt", b"not a torch file")], "cannot load"),
    "unsafe class": (lambda t: ["compile", _save(t / "c.pt", Custom())], "--trust-pickle"),
    "state_dict without arch": (lambda t: ["compile", _save(t / "s.pt", Custom().state_dict())], "--arch"),
    "bad arch spec": (lambda t: ["compile", _save(t / "s2.pt", Custom().state_dict()), "--arch", "nocolon"],
                      "package.module:factory"),
    "arch mismatch": (lambda t: ["compile", _save(t / "s3.pt", {"w": torch.zeros(1)}), "--arch",
                                 "test_cli:make_custom"], "missing keys"),
    "unsupported layer": (lambda t: ["compile", _save(t / "u.pt", nn.Sequential(nn.Linear(3, 3), nn.ReLU()))],
                          "ReLU at '1'"),
    "conv without shape": (lambda t: ["compile", _save(t / "cv.pt", nn.Sequential(nn.Conv2d(1, 2, 3), snn.LIF()))],
                           "--input-shape"),
    "bad config value": (lambda t: ["compile", _save(t / "m.pt", nn.Sequential(nn.Linear(3, 3), snn.LIF())),
                                    "--weight-bits", "1", "--granularity", "row"], "weights take 2..16 bits"),
    "unknown config key": (lambda t: ["compile", _save(t / "m2.pt", nn.Sequential(nn.Linear(3, 3), snn.LIF())),
                                      "--config", _write(t / "k.toml", b"wieght_bits = 4\n")], "unknown configuration key"),
    "membrane too narrow": (lambda t: ["compile", _save(t / "m3.pt", nn.Sequential(nn.Linear(3, 3), snn.LIF(), nn.Linear(3, 2))),
                                       "--v-bits", "4", "--u-overflow", "saturate"], "beyond the 4-bit membrane"),
    "unknown target": (lambda t: ["compile", _save(t / "m4.pt", nn.Sequential(nn.Linear(3, 3), snn.LIF())),
                                  "--target", "fpga"], "unknown target 'fpga'"),
    "reset on a torch model": (lambda t: ["compile", _save(t / "m5.pt", nn.Sequential(nn.Linear(3, 3), snn.LIF())),
                                          "--reset-interval", "4"], "this model is not a netx file"),
    "reset offset alone": (lambda t: ["compile", _save(t / "m6.pt", nn.Sequential(nn.Linear(3, 3), snn.LIF())),
                                      "--reset-offset", "1"], "--reset-offset needs --reset-interval"),
    "latency_reset not a bool": (lambda t: ["compile", _save(t / "m7.pt", nn.Sequential(nn.Linear(3, 3), snn.LIF())),
                                            "--config", _write(t / "lr.toml", b"latency_reset = 1\n")],
                                 "latency_reset = 1: choose true or false"),
    "not a build dir": (lambda t: ["inspect", t], "not an snncc build directory"),
    "malformed model.json": (lambda t: ["inspect", _bad_build(t)], "not valid JSON"),
}


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def _save(p: Path, obj) -> Path:
    torch.save(obj, p)
    return p


def _bad_build(t: Path) -> Path:
    (t / "bb").mkdir()
    (t / "bb" / "model.json").write_text("{oops")
    (t / "bb" / "model.npz").write_bytes(b"")
    return t / "bb"


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_clear_error(case, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    make, expect = BAD[case]
    args = make(tmp_path)
    if args[0] == "compile" and "--out" not in args:
        args += ["--out", tmp_path / "out"]
    assert run_cli(*args) == 2
    err = capsys.readouterr().err
    assert expect in err, err
    assert "Traceback" not in err


@pytest.fixture
def small_build(tmp_path):
    p = _save(tmp_path / "m.pt", nn.Sequential(nn.Linear(3, 4), snn.LIF(), nn.Linear(4, 2)).eval())
    assert run_cli("compile", p, "--target", "", "--out", tmp_path / "b") == 0
    return tmp_path / "b"


@pytest.mark.parametrize("data,expect", [
    (np.zeros((2, 3), np.float32), "integer array"),
    (np.zeros((2, 5), np.int64), "expected (N, T, 3)"),
    (np.full((2, 3), 999), "takes integers in [0, 255]"),
])
def test_bad_simulation_input(small_build, tmp_path, capsys, data, expect):
    np.save(tmp_path / "x.npy", data)
    assert run_cli("simulate", small_build, "--input", tmp_path / "x.npy", "--out", tmp_path / "r.npz") == 2
    assert expect in capsys.readouterr().err


def test_missing_input_file_and_npz_key(small_build, tmp_path, capsys):
    assert run_cli("simulate", small_build, "--input", tmp_path / "none.npy") == 2
    assert "does not exist" in capsys.readouterr().err
    np.savez(tmp_path / "z.npz", y=np.zeros(3))
    assert run_cli("simulate", small_build, "--input", tmp_path / "z.npz") == 2
    assert "no array named 'x'" in capsys.readouterr().err


def test_trust_pickle_loads_custom_class_with_warning(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import test_cli

    p = _save(tmp_path / "c.pt", test_cli.Custom())
    assert run_cli("compile", p, "--trust-pickle", "--target", "", "--out", tmp_path / "b") == 0
    err = capsys.readouterr().err
    assert err.startswith("snncc compile: warning: --trust-pickle: unpickling") and "arbitrary code" in err


def test_arch_state_dict_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import test_cli

    p = _save(tmp_path / "s.pt", test_cli.Custom().state_dict())
    assert run_cli("compile", p, "--arch", "test_cli:make_custom", "--target", "", "--out", tmp_path / "b") == 0


def test_console_script_error_has_no_traceback(tmp_path):
    exe = Path(sys.executable).parent / "snncc"
    r = subprocess.run([str(exe), "compile", str(tmp_path / "missing.pt")], capture_output=True, text=True)
    assert r.returncode == 2 and "model file not found" in r.stderr and "Traceback" not in r.stderr


def test_bwr_from_the_cli(tmp_path, model_file, capsys):
    b = tmp_path / "b"
    assert run_cli("compile", model_file, "--input-shape", "1,28,28", "--target", "", "--out", b,
                   "--weight-bits", "2", "--bwr", "--calib", "fashion-mnist:32", "--bwr-iters", "5") == 0
    manifest = json.loads((b / "compile.json").read_text())
    assert manifest["bwr"]["iters"] == 5 and manifest["config"]["weight_bits"] == 2
    # the float model kept in the build is the trained one, not the learned-rounding one
    assert "BatchNorm" in (b / "float_model.json").read_text()


def test_simulate_streams_pieces_into_the_result_file(tmp_path, model_file, pixels):
    """simulate_to_file takes samples and steps in pieces (here a budget of a few KB, so
    one sample and one step at a time) and writes the same arrays as one reference run."""
    from snncc.builds import load_build, simulate_to_file
    from snncc.reference import interpreter as R

    b = tmp_path / "b"
    assert run_cli("compile", model_file, "--input-shape", "1,28,28", "--target", "c", "--out", b) == 0
    g, _ = load_build(b)
    x = pixels[:3]
    want = R.run(g, x, probe_state=True)
    for target in ("reference", "c"):
        out = tmp_path / f"{target}.npz"
        simulate_to_file(b, target, x, out, probe_state=True, budget=4096)
        with np.load(out) as z:
            assert sorted(z.files) == sorted(want)
            for k in want:
                np.testing.assert_array_equal(z[k], want[k], err_msg=f"{target}: {k}")
