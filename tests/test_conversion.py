"""ANN -> SNN conversion (snncc.conversion): the graph evaluated as its ANN equals the torch
ANN, QCFS's IF equivalence, thresholds, max pooling, the seed papers' layouts compiled
bit-exactly, ANN-mode BWR, and every bad input as one clear error."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from snncc.compiler import compile as do_compile
from snncc.compiler import compile_graph
from snncc.config import CompileConfig
from snncc.conversion import ConvertConfig, convert
from snncc.errors import BitWidthError, SnnccError, UnsupportedLayerError
from snncc.nn import LIF, QCFS
from snncc.reference import interpreter as R
from snncc.reference.float_sim import FloatRuntime, run_float

from conftest import randomize_bn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _layouts():
    """examples/fashion_mnist_ann/layouts.py, loaded by path (the example folders both
    hold a model_def.py, so neither goes on sys.path here)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ann_layouts", ROOT / "examples" / "fashion_mnist_ann" / "layouts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

X = np.random.default_rng(0).integers(0, 256, (48, 1, 12, 12)).astype(np.uint8)


def small_ann(act=nn.ReLU, pool=nn.MaxPool2d):
    torch.manual_seed(0)
    return randomize_bn(nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), act(), pool(2),
        nn.Conv2d(6, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), QCFS(up=1.5, levels=4),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.1), nn.Linear(32, 5)))


def ann_output(g, x):
    """The graph evaluated as the ANN it stands for (FloatRuntime's ANN mode)."""
    rt = FloatRuntime(g, 1, ann=True)
    with torch.no_grad():
        vals, _ = rt.run([n for n in g.order() if n != g.input_name],
                         {g.input_name: (torch.as_tensor(x.astype(np.float32)) / 255, True)})
    return vals[g.outputs[0]][0][:, 0].numpy()


def torch_output(m, x):
    with torch.no_grad():
        return m(torch.as_tensor(x.astype(np.float32)) / 255).numpy()


def test_ann_mode_of_the_converted_graph_is_the_ann():
    """Clip activations (ReLU6) and QCFS keep their threshold, so the graph evaluated as an
    ANN is the torch ANN; the max pool moved before its neuron changes nothing."""
    m = small_ann(act=nn.ReLU6)
    g = convert(m, (1, 12, 12))
    assert g.inputs(g.of_kind("LIF")[0]) == g.of_kind("MaxPool")  # max pool before the first neuron
    np.testing.assert_allclose(ann_output(g, X), torch_output(m, X), atol=1e-5)
    info = g.meta["converted"]["neurons"]
    assert [v["rule"] for v in info.values()] == ["clip", "clip"] and info[g.of_kind("LIF")[0]]["threshold"] == 6.0


def test_relu_threshold_is_the_calibration_percentile():
    m = small_ann()
    g = convert(m, (1, 12, 12), calib=X, conversion=ConvertConfig(percentile=99.0))
    first = g.of_kind("LIF")[0]
    acts = torch.relu(torch.nn.functional.max_pool2d(m[1](m[0](torch.as_tensor(X.astype(np.float32)) / 255)), 2))
    pos = acts.detach().numpy().ravel()
    np.testing.assert_allclose(g.node(first).threshold[0], np.percentile(pos[pos > 0], 99.0), rtol=1e-5)
    op = g.node(first)
    assert op.spike_value == op.threshold[0] and op.v_init == pytest.approx(0.5 * op.threshold[0])
    assert op.reset == "subtract" and op.threshold_test == "ge" and op.beta == 1.0
    g_max = convert(m, (1, 12, 12), calib=X, conversion=ConvertConfig(threshold="max", v_init=0.25))
    assert g_max.node(first).threshold[0] == pytest.approx(pos.max(), rel=1e-5)
    assert g_max.node(first).v_init == pytest.approx(0.25 * pos.max(), rel=1e-5)


def test_qcfs_layer_is_exact_at_T_equal_L():
    """One QCFS layer with a constant input: the IF neuron (v0 = theta/2, subtract reset,
    spike at v >= theta) emits floor(x T / theta + 1/2) spikes in T = L steps, so the
    float SNN's mean readout equals the ANN's output."""
    torch.manual_seed(1)
    m = nn.Sequential(nn.Flatten(), nn.Linear(144, 20), QCFS(up=2.0, levels=8), nn.Linear(20, 4)).eval()
    g = convert(m, (1, 12, 12), CompileConfig(steps=8))
    out = run_float(g, X, steps=8).mean(1)
    np.testing.assert_allclose(out, torch_output(m, X), atol=1e-5)


def test_compiled_model_keeps_the_ann_predictions():
    m = small_ann()
    cfg = CompileConfig(steps=32)
    ig = compile_graph(convert(m, (1, 12, 12), cfg, calib=X), cfg)
    agree = (R.predict(ig, R.run(ig, X)) == torch_output(m, X).argmax(1)).mean()
    assert agree >= 0.9, agree


@pytest.mark.parametrize("layout", ["vgg16", "resnet18"])
def test_seed_layouts_compile_bit_exactly(layout, tmp_path):
    """SNNQ's VGG-16 and ResNet-18 layouts (width / 16), ReLU thresholds from calibration:
    TNP on: C and ONNX equal the reference."""
    from snncc.builds import simulate

    torch.manual_seed(0)
    lay = _layouts()
    m = randomize_bn(lay.vgg16(width=16) if layout == "vgg16" else lay.resnet18(width=16))
    x = np.random.default_rng(1).integers(0, 256, (16, 3, 32, 32)).astype(np.uint8)
    runs = [("onnx", 2)] + ([("c", 2)] if shutil.which("cc") else [])
    for t, presim in runs:
        out = tmp_path / f"b_{t}"
        b = do_compile(m, (3, 32, 32), target=[t], out=out, config={"steps": 3, "presim": presim},
                       convert=True, calib=x)
        ref = R.run(b.graph, x[:2], probe_state=True)
        got = simulate(out, t, x[:2], probe_state=True)
        assert sorted(got) == sorted(ref) and all(np.array_equal(ref[k], got[k]) for k in ref), t


@pytest.mark.slow  # ~11 s: two short reconstructions
def test_ann_mode_bwr(tmp_path):
    from snncc.passes.bwr import BWRConfig, bwr

    m = small_ann(act=nn.ReLU6)
    cfg = CompileConfig(weight_bits=2, steps=4)
    g = convert(m, (1, 12, 12), cfg)
    out = bwr(g, X, cfg, bwr_config=BWRConfig(mode="ann", iters=30, eval_samples=16), progress=False)
    assert out.meta["bwr"]["config"]["mode"] == "ann" and len(out.meta["weight_quant"]) == 3
    ig = compile_graph(out, cfg)
    assert all(np.abs(ig.node(n).weight).max() <= 1 for n in ig.of_kind("IntConv", "IntDense") if "shortcut" not in n)
    again = bwr(g, X, cfg, bwr_config=BWRConfig(mode="ann", iters=30, eval_samples=16), progress=False)
    assert all(np.array_equal(out.node(n).weight, again.node(n).weight) for n in out.meta["weight_quant"])


def test_ann_mode_bwr_refuses_an_snn(example_model):
    from snncc.compiler import trace
    from snncc.passes.bwr import BWRConfig, bwr

    cfg = CompileConfig()
    with pytest.raises(SnnccError, match="model is an SNN"):
        bwr(trace(example_model, (1, 28, 28), cfg), np.zeros((4, 1, 28, 28), np.uint8), cfg,
            bwr_config=BWRConfig(mode="ann", iters=1), progress=False)


# --------------------------------------------------------------------- bad inputs
BAD = {
    "negative": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(144, 8), nn.Linear(8, 3)),
                 "'1' feeds '2' with no activation between"),
    "leaky": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(144, 8), nn.LeakyReLU(), nn.Linear(8, 3)),
              "LeakyReLU at '2': LeakyReLU lets negative values through"),
    "hardtanh": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(144, 8), nn.Hardtanh(), nn.Linear(8, 3)),
                 "Hardtanh(-1, 1) lets negative values through"),
    "sigmoid": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(144, 8), nn.Sigmoid(), nn.Linear(8, 3)),
                "Sigmoid is not a clip"),
    "spiking": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(144, 8), LIF(), nn.Linear(8, 3)),
                "a spiking neuron: --convert takes an ANN"),
    "no-activation": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(144, 3)), "has no activation"),
}


class _Clamped(nn.Module):
    def __init__(self, lo):
        super().__init__()
        self.fc1, self.fc2, self.lo = nn.Linear(144, 8), nn.Linear(8, 3), lo

    def forward(self, x):
        return self.fc2(torch.clamp(self.fc1(torch.flatten(x, 1)), self.lo, 2.0))


@pytest.mark.parametrize("case", sorted(BAD))
def test_unconvertible_models_are_named(case):
    make, expect = BAD[case]
    with pytest.raises(UnsupportedLayerError) as e:
        convert(make().eval(), (1, 12, 12), calib=X)
    assert expect in str(e.value)


def test_clamp_bounds():
    assert convert(_Clamped(0.0).eval(), (1, 12, 12)).node("clamp").threshold[0] == 2.0
    with pytest.raises(UnsupportedLayerError, match="clamp lets negative values through"):
        convert(_Clamped(-1.0).eval(), (1, 12, 12))


def test_percentile_threshold_needs_calibration():
    with pytest.raises(SnnccError, match=r"'2' \(ReLU\).*give --calib NAME:N or --dataset NAME"):
        convert(small_ann(), (1, 12, 12))
    with pytest.raises(SnnccError, match="have no clip value"):
        convert(small_ann(), (1, 12, 12), calib=X, conversion=ConvertConfig(threshold="clip"))


def test_dead_layer_and_maxpool_after_a_residual_sum():
    m = nn.Sequential(nn.Flatten(), nn.Linear(144, 4), nn.ReLU(), nn.Linear(4, 3)).eval()
    with torch.no_grad():
        m[1].weight.fill_(-1.0)
        m[1].bias.fill_(-1.0)
    with pytest.raises(SnnccError, match="no positive activation of '2'"):
        convert(m, (1, 12, 12), calib=X)

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2, self.r1, self.r2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), \
                nn.ReLU6(), nn.ReLU6()
            self.pool, self.fc = nn.MaxPool2d(2), nn.Linear(4 * 36, 3)

        def forward(self, x):
            a = self.r1(self.c1(x))
            return self.fc(torch.flatten(self.pool(self.r2(self.c2(a) + a)), 1))

    with pytest.raises(UnsupportedLayerError, match="MaxPool2d at 'pool' follows the activation 'r2' of a Add"):
        convert(Res().eval(), (1, 12, 12))
    g = convert(Res().eval(), (1, 12, 12), conversion=ConvertConfig(maxpool="spikes"))
    assert g.inputs(g.of_kind("MaxPool")[0]) == ["r2"]


def test_threshold_beyond_the_membrane_is_listed():
    cfg = CompileConfig(v_bits=8, u_overflow="saturate")
    with pytest.raises(BitWidthError) as e:
        compile_graph(convert(small_ann(act=nn.ReLU6), (1, 12, 12), cfg), cfg)
    assert "8-bit membrane" in str(e.value) and len(e.value.violations) >= 2


def test_activation_in_an_snn_compile_points_to_convert(example_model):
    from snncc.compiler import trace

    m = nn.Sequential(nn.Flatten(), nn.Linear(144, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    with pytest.raises(UnsupportedLayerError, match="ReLU at '2': an ANN activation.*add --convert"):
        trace(m, (1, 12, 12), CompileConfig())


EXAMPLE_ANN = ROOT / "examples" / "fashion_mnist_ann" / "model.pt"


@pytest.mark.slow  # conversion with calibration, then verify: 10 s
def test_cli_compiles_the_shipped_ann_as_the_issue_writes_it(tmp_path):
    """`snncc compile ann.pt --convert --steps 8 --calib fashion-mnist:N` (the input shape
    from the calibration data), then `snncc verify`: c and onnx equal the reference."""
    from snncc.builds import load_build
    from snncc.cli import main

    out = tmp_path / "b"
    assert main(["compile", str(EXAMPLE_ANN), "--convert", "--steps", "8", "--calib", "fashion-mnist:64",
                 "--out", str(out), "--target", "c,onnx"]) == 0
    g, manifest = load_build(out)
    assert g.meta["steps"] == 8 and manifest["conversion"]["threshold"] == "auto"
    assert main(["verify", str(out)]) == 0


def test_cli_snnq_command_shape_with_a_yaml_config(tmp_path):
    """`--convert --bwr --tnp --dataset NAME --config exp/config.yaml`: one schema in YAML;
    ANN-mode BWR, TNP's presimulation in the build's steps (latency P + T)."""
    from snncc.builds import load_build
    from snncc.cli import main

    cfg = tmp_path / "config.yaml"
    cfg.write_text("quantization:\n  weight_bits: 2\n  steps: 4\nbwr:\n  mode: ann\n  iters: 4\n  batch_size: 8\n"
                   "  eval_samples: 8\n  calib: \"fashion-mnist:32\"\nconvert:\n  threshold: auto\n")
    out = tmp_path / "b"
    assert main(["compile", str(EXAMPLE_ANN), "--convert", "--bwr", "--tnp", "--dataset", "fashion-mnist",
                 "--config", str(cfg), "--out", str(out), "--target", "onnx"]) == 0
    g, manifest = load_build(out)
    assert manifest["bwr"]["mode"] == "ann" and manifest["bwr"]["run"]["calib_samples"] == 32
    assert g.meta["presim"] == 4 and g.meta["steps"] == 8
    assert all(op.presim == 4 for op in (g.node(n) for n in g.of_kind("IntLIF")))
    assert main(["verify", str(out)]) == 0


def test_converted_ann_runs_bit_exactly_on_lava(tmp_path):
    """Without TNP a converted ANN runs on the Lava target (subtract reset and v_init as
    its custom SnnccLIF process, simulation only): equal to the reference."""
    pytest.importorskip("lava", reason="the Lava target needs lava-nc")
    from snncc.builds import simulate

    b = do_compile(small_ann(act=nn.ReLU6, pool=nn.AvgPool2d), (1, 12, 12), target="lava", out=tmp_path / "b",
                   config={"steps": 3}, convert=True)
    ref = R.run(b.graph, X[:2], probe_state=True)
    got = simulate(tmp_path / "b", "lava", X[:2], probe_state=True)
    assert all(np.array_equal(ref[k], got[k]) for k in ref)


def test_an_snnq_config_is_refused_with_the_mapping(tmp_path, capsys):
    from snncc.cli import main

    cfg = tmp_path / "config.yaml"
    cfg.write_text("w_qconfig:\n  bit: 2\ncalibrate: 1024\nrecon:\n  iters: 20000\n")
    assert main(["compile", str(EXAMPLE_ANN), "--convert", "--config", str(cfg), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "unknown table(s) [recon], [w_qconfig]" in err and "w_qconfig -> [quantization] weight_bits" in err
