"""Structured pruning (QP-SNN's SVS, SCA; L1; random): the dependency analysis, the
criteria on hand-computed tensors, removal equal to masking, every target exact on
pruned builds, the API and the CLI, and bad input."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import snncc
from snncc import nn as snn
from snncc.cli import main
from snncc.compiler import compile_graph, trace
from snncc.config import CompileConfig
from snncc.errors import SnnccError
from snncc.ir.graph import Graph
from snncc.ir.nodes import LIF, Dense, Input
from snncc.passes.prune import PruneConfig, apply_plan, channel_groups, plan, prune_graph
from snncc.passes.prune.groups import expand
from snncc.passes.prune.scores import _svs, layer_scores
from snncc.reference import interpreter as R
from snncc.reference.float_sim import run_float

from conftest import randomize_bn


def _cli(*args) -> int:
    return main([str(a) for a in args])


# ------------------------------------------------------------------ random networks
@st.composite
def models(draw):
    """Conv/BN/LIF stacks with pools, an optional residual block and depthwise conv, a
    Flatten, an optional hidden Dense layer, and a linear readout."""
    c1, c2, h = draw(st.integers(4, 7)), draw(st.integers(4, 7)), draw(st.integers(4, 8))
    layers = [nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), snn.LIF(beta=0.9, threshold=0.4),
              draw(st.sampled_from([nn.AvgPool2d(2), nn.MaxPool2d(2)])),
              nn.Conv2d(c1, c2, 3, padding=1, bias=draw(st.booleans())), nn.BatchNorm2d(c2),
              snn.LIF(beta=0.9, threshold=0.4, reset=draw(st.sampled_from(["zero", "subtract"])))]
    if draw(st.booleans()):
        layers += [snn.Residual(nn.Conv2d(c2, c2, 3, padding=1), nn.BatchNorm2d(c2)), snn.LIF(beta=0.9, threshold=0.4)]
    if draw(st.booleans()):
        layers += [nn.Conv2d(c2, c2, 3, padding=1, groups=c2), snn.LIF(beta=0.9, threshold=0.4)]
    layers += [nn.Flatten()]
    if draw(st.booleans()):
        layers += [nn.Linear(c2 * 16, h), snn.LIF(beta=0.9, threshold=0.4), nn.Linear(h, 5)]
    else:
        layers += [nn.Linear(c2 * 16, 5)]
    torch.manual_seed(draw(st.integers(0, 10_000)))
    model = randomize_bn(nn.Sequential(*layers), seed=draw(st.integers(0, 1000)))
    for m in model.modules():  # weights large enough that the neurons spike
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.data *= 3
    return model


def _masked(model: nn.Module, g: Graph, record: dict) -> nn.Module:
    """The model with the pruned channels' inputs to every consumer set to zero."""
    import copy

    out = copy.deepcopy(model)
    groups = {grp.name: grp for grp in channel_groups(g)}
    for rec in record["groups"]:
        grp = groups[rec["nodes"][0]]
        gone = np.setdiff1d(np.arange(rec["channels"]), rec["keep"])
        for n, block in grp.consumers.items():
            m = out.get_submodule(g.node(n).source)
            m.weight.data[:, torch.as_tensor(expand(gone, block))] = 0.0
    return out


@settings(max_examples=10, deadline=None)
@given(model=models(), ratio=st.sampled_from([0.25, 0.5, 0.7]), seed=st.integers(0, 99),
       skip=st.sampled_from([["first", "last"], ["last"], []]))
def test_removal_equals_masking(model, ratio, seed, skip):
    """A physically smaller model computes what the full model computes with the removed
    channels masked out: the same float outputs, and at the integer level (per-channel
    scales) the same output of the reference interpreter, every step."""
    x = np.random.default_rng(seed).integers(0, 256, (6, 1, 8, 8), dtype=np.uint8)
    pruned, record = snncc.prune(model, "random", ratio, x, skip=skip, seed=seed, return_record=True,
                                 progress=False)
    g = trace(model, (1, 8, 8), CompileConfig())
    masked = _masked(model, g, record)
    gp, gm = trace(pruned, (1, 8, 8), CompileConfig()), trace(masked, (1, 8, 8), CompileConfig())
    assert apply_plan(g, record).shapes() == gp.shapes()
    np.testing.assert_allclose(run_float(gp, x), run_float(gm, x), rtol=0, atol=1e-4)
    cfg = CompileConfig(granularity="channel", steps=3)
    ip, im = compile_graph(gp, cfg), compile_graph(gm, cfg)
    assert np.array_equal(R.run(ip, x)["output"], R.run(im, x)["output"])
    sizes = {n: int(np.prod(s)) for n, s in gp.shapes().items()}
    assert sum(sizes.values()) <= sum(int(np.prod(s)) for s in g.shapes().values())


def test_groups_of_a_residual_network(example_model):
    g = trace(example_model, (1, 28, 28), CompileConfig())
    groups = {grp.name: grp for grp in channel_groups(g)}
    res = groups["4"]  # conv 4 and the residual block's conv 7.0 add into one channel space
    assert res.producers == ["4", "7.0"] and res.channels == 32 and res.prunable
    assert res.consumers == {"7.0": 1, "12": 49}  # the block reads it; the readout through Flatten (7x7)
    assert groups["12"].problems == ["holds the network output"]
    assert groups["input"].problems == ["is the network input"]
    assert list(expand(np.array([0, 2]), 3)) == [0, 1, 2, 6, 7, 8]


# ------------------------------------------------------------------ criteria, by hand
def test_svs_counts_singular_values_above_epsilon():
    s = torch.zeros(1, 2, 3, 2, 2)           # N=1, T=2, C=3, 2x2 maps
    s[0, :, 0] = torch.eye(2)                 # channel 0: identity every step -> rank 2
    s[0, 0, 1] = torch.tensor([[1., 1.], [1., 1.]])  # channel 1: all-ones once -> rank 1
    # channel 2 never spikes -> rank 0
    assert _svs(s, 3, 1e-6).tolist() == [2.0, 1.0, 0.0]
    flat = torch.tensor([[[1., 0.], [0., 0.]]])  # a Dense layer: N=1, T=2, 2 neurons: spikes or not
    assert _svs(flat, 2, 1e-6).tolist() == [1.0, 0.0]


def _tiny_dense() -> Graph:
    g = Graph()
    g.add("input", Input(source="input", shape=(2,), encoding="direct", scale=1.0, bits=8))
    g.add("d1", Dense(source="d1", weight=np.array([[1.0, 0.0], [0.0, -2.0], [3.0, 1.0]]), bias=np.zeros(3)), ["input"])
    g.add("n1", LIF(source="n1", beta=0.0, threshold=np.array([100.0]), reset_value=np.array([100.0])), ["d1"])
    g.add("d2", Dense(source="d2", weight=np.ones((2, 3)), bias=np.zeros(2)), ["n1"])
    g.add("out", LIF(source="out", beta=1.0, fires=False), ["d2"])
    g.outputs = ["out"]
    g.meta["steps"] = 2
    return g


def test_sca_and_l1_by_hand():
    """beta = 0, no spikes: the pre-reset membrane is W x at every step, so SCA (Eq. 7) is
    the mean |W x| over samples and steps; L1 is the row sums of |W|."""
    g = _tiny_dense()
    groups = channel_groups(g)
    x = np.array([[2, 1], [4, 3]], np.uint8)
    sca = layer_scores(g, groups, "sca", x, progress=False)["d1"]["n1"]
    assert np.allclose(sca, [(2 + 4) / 2, (2 + 6) / 2, (7 + 15) / 2])
    assert layer_scores(g, groups, "l1")["d1"]["d1"].tolist() == [1.0, 2.0, 4.0]
    rec = plan(g, PruneConfig(criterion="l1", ratio=0.3, skip=[]), None, progress=False)
    assert rec["groups"][0]["keep"] == [1, 2]  # ceil(0.3 * 3) = 1 removed: the smallest L1
    rec = plan(g, PruneConfig(criterion="sca", ratio=0.5, skip=[]), x, progress=False)
    assert rec["groups"][0]["keep"] == [2] and math.ceil(0.5 * 3) == 2


def test_ties_are_broken_by_channel_index():
    g = _tiny_dense()
    g.set("d1", g.node("d1").replace(weight=np.ones((3, 2))))
    rec = plan(g, PruneConfig(criterion="l1", ratio=0.5, skip=[]), None, progress=False)
    assert rec["groups"][0]["keep"] == [2]  # equal scores: the lower indices go first


# ------------------------------------------------------------------ builds
@pytest.fixture(scope="module")
def pruned_build(tmp_path_factory):
    from model_def import build

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("pruned") / "b"
    p = out.parent / "model.pt"
    torch.save(randomize_bn(build()), p)
    targets = "c,onnx" + (",lava" if _has_lava() else "")
    assert _cli("compile", p, "--input-shape", "1,28,28", "--prune", "svs:0.5", "--calib", "digits:4",
                "--target", targets, "--steps", "2", "--out", out) != 0  # digits are 8x8: a clear error
    assert _cli("compile", p, "--input-shape", "1,28,28", "--prune", "svs:0.5", "--calib", "fashion-mnist:32",
                "--target", targets, "--steps", "2", "--out", out) == 0
    return out


def _has_lava() -> bool:
    try:
        from snncc.targets import spec

        spec("lava")
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.slow  # verify on every target (Lava and the Cortex-M4 included): 28 s; test_netx_and_nir_emit_the_smaller_model verifies a pruned build in the fast suite
def test_pruned_build_is_exact_on_every_target_and_reported(pruned_build, pixels, tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, pixels[:3])
    capsys.readouterr()
    assert _cli("verify", pruned_build, "--input", x) == 0
    assert "ALL TARGETS BIT-EXACT" in capsys.readouterr().out
    assert _cli("inspect", pruned_build) == 0
    assert "pruned (svs): 4+7.0 kept 16/32 channels" in capsys.readouterr().out
    assert _cli("report", pruned_build, "--input", x) == 0
    out = capsys.readouterr().out
    assert "structured pruning (svs, 32 calibration samples): 4+7.0 16/32 channels" in out
    assert "parameters" in out and "energy uJ loihi" in out


def test_netx_and_nir_emit_the_smaller_model(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), snn.LIF(threshold=0.3),
                          nn.Conv2d(4, 6, 3, padding=1, bias=False), snn.LIF(threshold=0.3), nn.Flatten(),
                          nn.Linear(6 * 64, 3, bias=False))
    x = np.random.default_rng(0).integers(0, 2, (4, 1, 8, 8), dtype=np.uint8)
    b = snncc.compile(model, (1, 8, 8), target=["netx", "c", "nir"], out=tmp_path / "b",  # netx: the Lava flow
                      config={"steps": 2, "input_encoding": "spikes"},
                      prune=(None, PruneConfig(enabled=True, criterion="l1", ratio=0.5)))
    assert b.graph.shapes()["2"][0] == 3
    import nir

    ng = nir.read(tmp_path / "b" / "nir" / "model.nir")
    assert sorted(tuple(np.asarray(n.weight).shape) for n in ng.nodes.values() if type(n).__name__ == "Conv2d") == [
        (3, 4, 3, 3), (4, 1, 3, 3)]  # the first layer is left whole by default; the second keeps 3 of 6
    np.save(tmp_path / "x.npy", x)
    assert _cli("verify", tmp_path / "b", "--input", tmp_path / "x.npy") == 0


def test_config_table_and_api(tmp_path, example_model, pixels):
    p = tmp_path / "model.pt"
    torch.save(example_model, p)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[prune]\nenabled = true\ncriterion = "l1"\nratio = 0.25\nskip = []\n[prune.ratios]\n"0" = 0.5\n')
    assert _cli("compile", p, "--input-shape", "1,28,28", "--config", cfg, "--target", "", "--out", tmp_path / "b") == 0
    import json

    rec = json.loads((tmp_path / "b" / "compile.json").read_text())["prune"]
    assert [(g["layers"], g["kept"], g["channels"]) for g in rec["groups"]] == [(["0"], 8, 16), (["4", "7.0"], 24, 32)]
    small = snncc.prune(example_model, "l1", 0.25, skip=[], ratios={"0": 0.5}, example_input=(1, 28, 28),
                        progress=False)
    assert small[0].out_channels == 8 and small[4].in_channels == 8 and small[12].in_features == 24 * 49
    loss = small(torch.as_tensor(pixels[:2], dtype=torch.float32) / 255).sum()
    loss.backward()  # still a trainable module
    assert small[4].weight.grad is not None


@pytest.mark.parametrize("args,expect", [
    (["--prune", "magic:0.5"], "criterion = 'magic': choose one of svs, sca, l1, random"),
    (["--prune", "svs:1.0"], "ratio = 1.0: must lie in [0, 1)"),
    (["--prune", "svs:-0.1"], "ratio = -0.1: must lie in [0, 1)"),
    (["--prune", "svs:half"], "write CRITERION:RATIO"),
    (["--prune", "l1:0.99"], "ratio 0.99 removes all 32 channels"),
    (["--calib", "digits:4"], "none of them is on: add --bwr, --prune or --convert"),
])
def test_bad_pruning_input(args, expect, tmp_path, example_model, capsys):
    p = tmp_path / "model.pt"
    torch.save(example_model, p)
    assert _cli("compile", p, "--input-shape", "1,28,28", *args, "--target", "", "--out", tmp_path / "b") == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err


def test_bad_layers_are_all_listed(example_model):
    with pytest.raises(SnnccError) as e:
        snncc.prune(example_model, "l1", 0.5, ratios={"nope": 0.5, "12": 0.5}, skip=["ghost"],
                    example_input=(1, 28, 28), progress=False)
    msg = str(e.value)
    assert "ratios names layer 'nope'" in msg and "skip names layer 'ghost'" in msg
    assert "layer 12 has a ratio but cannot be pruned: holds the network output" in msg
    with pytest.raises(SnnccError, match="needs calibration data"):
        snncc.prune(example_model, "svs", 0.5, example_input=(1, 28, 28), progress=False)
