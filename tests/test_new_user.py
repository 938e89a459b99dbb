"""A new user's path (issue 15): the headline command verbatim, help, version, shapes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import snncc
import snncc.nn as snn
from snncc.cli import main
from snncc.passes.lava import loihi_bias

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fashion_mnist" / "model.pt"


def _cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.mark.slow  # the headline compile to lava and c, then verify: 17 s
def test_headline_command_verbatim(tmp_path, monkeypatch, capsys):
    """`snncc compile examples/fashion_mnist/model.pt --target lava`: no --input-shape (the
    example stores its shape), no hardware findings (biases on Loihi's grid), only the
    readout simulation-only; verify bit-exact."""
    monkeypatch.chdir(tmp_path)
    assert _cli("compile", EXAMPLE, "--target", "lava, c") == 0
    out, err = capsys.readouterr()
    assert "bias rounded onto Loihi 2's 13-bit mantissa" in err
    assert "[hardware]" not in out
    assert out.count("[simulation only]") == 1 and "layer 'readout'" in out
    np.save("x.npy", np.load(ROOT / "examples" / "fashion_mnist" / "samples.npz")["x"][:2])
    assert _cli("verify", "build", "--input", "x.npy", "--target", "c") == 0
    assert "ALL TARGETS BIT-EXACT" in capsys.readouterr().out


def test_loihi_bias_by_hand():
    """13-bit mantissa: [-4096, 4095]; the smallest exponent whose rounded mantissa fits."""
    from snncc.ir.graph import Graph
    from snncc.ir.nodes import IntLIF

    bias = np.array([5, 4095, -4096, 4096, 8193, -8195, 283008 + 33, 283008 + 100], np.int64)
    # 8193: 4096.5 rounds to 4097 (too wide), so exp 2: 2048.25 -> 2048 << 2; 283041 and
    # 283108 need exp 7: 2211.26 -> 2211 << 7 = 283008 and 2211.78 -> 2212 << 7 = 283136
    want = np.array([5, 4095, -4096, 4096, 8192, -8196, 283008, 283136], np.int64)
    g = Graph()
    g.add("n", IntLIF(bias=bias), [])
    out, note = loihi_bias(g)
    assert np.array_equal(out.node("n").bias, want)
    assert "largest change 33" in note
    same, note = loihi_bias(out)
    assert note is False and np.array_equal(same.node("n").bias, want)


def test_version_and_python_m():
    out = subprocess.run([sys.executable, "-m", "snncc", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"snncc {snncc.__version__}"


def _conv_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), snn.LIF(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(3 * 4 * 4, 2)).eval()


def test_save_keeps_the_input_shape(tmp_path, capsys):
    p = snncc.save(_conv_model(), tmp_path / "m.pt", input_shape=(2, 8, 8))
    assert _cli("compile", p, "--out", tmp_path / "b") == 0
    assert "(2 synapses" in capsys.readouterr().out
    b = snncc.compile(str(p), target="c", out=tmp_path / "b2")
    assert b.graph.node(b.graph.input_name).shape == (2, 8, 8)


def test_shape_errors_name_the_layer_and_the_fix(tmp_path, capsys):
    torch.save(_conv_model(), tmp_path / "m.pt")
    assert _cli("compile", tmp_path / "m.pt", "--out", tmp_path / "b", "--input-shape", "3,8,8") == 2
    assert "the model expects C=2 input channels (Conv2d at '0'), --input-shape gave 3,8,8" in capsys.readouterr().err
    # without a stored shape, 8x8 and 9x9 both fit (the pool floors): the error says so
    assert _cli("compile", tmp_path / "m.pt", "--out", tmp_path / "b") == 2
    err = capsys.readouterr().err
    assert "square images of 8x8 and 9x9" in err and "--input-shape 2,28,28" in err and "snncc.save" in err


def test_a_unique_square_shape_is_inferred_and_said(tmp_path, capsys):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 2, 3), snn.LIF(), nn.Flatten(), nn.Linear(2 * 4 * 4, 2)).eval()
    torch.save(m, tmp_path / "m.pt")
    assert _cli("compile", tmp_path / "m.pt", "--out", tmp_path / "b") == 0
    assert "input shape 1,6,6 inferred" in capsys.readouterr().err


def test_lava_network_py_reads_the_npz_input(tmp_path):
    """The I/O contract allows an .npz with array x; the standalone network.py takes it."""
    pytest.importorskip("lava")
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 3), snn.LIF(), nn.Linear(3, 2)).eval()
    snncc.compile(m, (4,), target="lava", out=tmp_path / "b", config={"steps": 2})
    x = np.random.default_rng(0).integers(0, 255, (2, 4), dtype=np.uint8)
    np.savez(tmp_path / "x.npz", x=x)
    r = subprocess.run([sys.executable, "network.py", "--input", str(tmp_path / "x.npz"), "--out",
                        str(tmp_path / "r.npz")], cwd=tmp_path / "b" / "lava", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    from snncc.builds import simulate

    with np.load(tmp_path / "r.npz") as z:
        assert np.array_equal(z["output"], simulate(tmp_path / "b", "reference", x)["output"])


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def _code_blocks(section: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, indentation removed."""
    import re
    import textwrap

    return [(lang, textwrap.dedent(code)) for lang, code in
            re.findall(r"^ *```(\w+)\n(.*?)^ *```", section, flags=re.S | re.M)]


@pytest.mark.slow  # ~11 s: two compiles, two verifies, an NIR export, each a fresh process
def test_readme_from_snntorch(tmp_path):
    """README 'From snnTorch', as a user runs it: write the python files it shows, run its
    shell lines in order in a fresh directory (snncc as a subprocess, the current directory
    importable as with python -m); every command exits 0 and verify says bit-exact."""
    pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    blocks = _code_blocks(_readme_section("From snnTorch"))
    assert [lang for lang, _ in blocks] == ["python", "python", "bash", "python", "bash"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    verified = 0
    for lang, code in blocks:
        if lang == "python":
            name = code.splitlines()[0].removeprefix("# ").strip()
            assert name.endswith(".py"), code
            (tmp_path / name).write_text(code)
            continue
        for line in filter(None, (ln.strip() for ln in code.splitlines())):
            argv = line.split()
            cmd = {"python": [sys.executable], "snncc": [sys.executable, "-m", "snncc"]}[argv[0]] + argv[1:]
            r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, (line, r.stdout[-2000:], r.stderr[-2000:])
            if argv[1] == "verify":
                assert "ALL TARGETS BIT-EXACT" in r.stdout, r.stdout
                verified += 1
    assert verified == 2


def test_snntorch_output_leaky(capsys):
    """The tutorials' last Leaky(output=True) returns (spikes, membrane): its spikes are the
    output, also through `spk, mem = lif(x)`; a forward returning the membrane is refused
    by name."""
    snt = pytest.importorskip("snntorch")
    from snncc.errors import UnsupportedLayerError
    from snncc.frontends.torch_fx import from_torch

    class Net(nn.Module):
        def __init__(self, which: int):
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.lif = snt.Leaky(beta=0.5, init_hidden=True, output=True)
            self.which = which

        def forward(self, x):
            spk, mem = self.lif(self.fc(x))
            return (spk, mem)[self.which]

    seq = nn.Sequential(nn.Linear(4, 3), snt.Leaky(beta=0.5, init_hidden=True, output=True))
    for model in (seq, Net(0)):
        g = from_torch(model, (4,))
        assert g.node(g.outputs[0]).kind == "LIF"
    with pytest.raises(UnsupportedLayerError, match=r"Leaky\(output=True\) at 'lif'.*element 1"):
        from_torch(Net(1), (4,))


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    """A small conv SNN on 28x28 pixels, emitted as ONNX (no C compiler needed)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 5, stride=3), snn.LIF(beta=0.5, threshold=0.5), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 10))
    out = tmp_path_factory.mktemp("small") / "build"
    snncc.compile(model, (1, 28, 28), target="onnx", out=out, config={"steps": 3})
    return out


def test_report_plot(small_build, tmp_path, capsys):
    """`report --plot DIR`: the four PNGs and one HTML page naming them; the plotted
    numbers are the reference's (spike rate per step, accuracy per step)."""
    from snncc.builds import load_build
    from snncc.reference import interpreter as R
    from snncc.reports.plots import accuracy_per_step, spike_rates

    d = tmp_path / "plots"
    assert _cli("report", small_build, "--dataset", "fashion-mnist:40", "--plot", d, "-q") == 0
    assert "plots: 4 PNG(s)" in capsys.readouterr().out
    names = sorted(p.name for p in d.iterdir())
    assert names == ["accuracy.png", "memory_energy.png", "report.html", "spike_rates.png", "weights.png"]
    for p in d.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (d / "report.html").read_text()
    assert all(f'src="{n}"' in page for n in names if n.endswith(".png"))
    # the numbers behind the pictures
    g, _ = load_build(small_build)
    from snncc.data import load_test_spec

    _, x, y = load_test_spec("fashion-mnist:40")
    res = R.run(g, x)
    rates = spike_rates(g, res)
    layer = next(iter(rates))
    s = res[layer].reshape(40, res[layer].shape[1], -1)
    assert np.array_equal(rates[layer], s.mean(axis=(0, 2)))
    acc = accuracy_per_step(g, res, y, None)["int"]
    assert acc[-1] == (R.predict(g, res) == y).mean()
    # a file where the directory should go is refused clearly
    (tmp_path / "f").write_text("x")
    assert _cli("report", small_build, "--plot", tmp_path / "f") == 2
    assert "is not a directory" in capsys.readouterr().err


def test_quiet_verbose_and_progress(small_build, tmp_path, capsys):
    """-v prints each compiler pass with its time; -q hides notes and bars; eval's bar
    counts samples (not one batch that sits at 0/1)."""
    model = EXAMPLE
    assert _cli("compile", model, "--target", "onnx", "--out", tmp_path / "b", "-v") == 0
    err = capsys.readouterr().err
    assert "snncc compile: pass fold_batchnorm: changed (" in err and " ms)" in err
    assert _cli("compile", model, "--target", "lava", "--out", tmp_path / "b", "-q") == 0
    assert "note:" not in capsys.readouterr().err
    assert _cli("compile", model, "--target", "lava", "--out", tmp_path / "b") == 0
    assert "snncc compile: note: " in capsys.readouterr().err
    assert _cli("eval", small_build, "--dataset", "fashion-mnist:40") == 0
    err = capsys.readouterr().err
    assert "40/40" in err and "sample" in err
    assert _cli("eval", small_build, "--dataset", "fashion-mnist:40", "--quiet") == 0
    assert capsys.readouterr().err == ""
    assert _cli("verify", small_build, "--dataset", "fashion-mnist:4") == 0
    assert "verify: onnx" in capsys.readouterr().err


def test_every_command_takes_quiet_and_verbose():
    """-q/-v come from one parent parser: a command added without it would crash main()."""
    import argparse

    from snncc.cli import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        dests = {a.dest for a in p._actions}
        assert {"quiet", "verbose"} <= dests, name


def test_shape_inferred_through_a_quantized_membrane():
    """A ternary-membrane LIF used float(threshold), which the meta device cannot run, so
    every model with one was told "no square size fits"; now its one size is found, and a
    forward that fails for another reason is named in the error."""
    from snncc.frontends.pytorch import guess_input_shape

    model = nn.Sequential(nn.Conv2d(1, 2, 3), snn.LIF(beta=0.5, state_quant="ternary"), nn.Flatten(),
                          nn.Linear(2 * 26 * 26, 10))
    assert guess_input_shape(model) == (1, 28, 28)
    for name in ("model_a.pt", "model_b.pt"):  # the shipped QAT models carry their shape
        from snncc.compiler import load_torch_model

        assert load_torch_model(ROOT / "examples" / "fashion_mnist" / name).snncc_input_shape == (1, 28, 28)
