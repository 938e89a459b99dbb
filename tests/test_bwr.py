"""Block-wise weight rounding: beats round-to-nearest on block reconstruction, is
deterministic with a seed, and the integer model uses exactly the learned integers."""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from snncc import nn as snn
from snncc.compiler import compile_graph, trace
from snncc.config import CompileConfig
from snncc.errors import SnnccError
from snncc.passes.bwr import BWRConfig, bwr, calibration_array, find_blocks
from snncc.passes.quantize import WEIGHT_QUANT, synapse_plan
from snncc.reference import interpreter as R

FAST = BWRConfig(iters=300, batch_size=16, eval_samples=64, device="cpu", fallback=False)


def _model():
    """Conv -> LIF -> pool -> Conv+BN -> LIF -> residual Conv+BN -> LIF -> Linear (readout)."""
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), snn.LIF(beta=0.5, threshold=0.5), nn.AvgPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), snn.LIF(beta=0.5, threshold=0.5),
        snn.Residual(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)),
        snn.LIF(beta=0.5, threshold=0.5),
        nn.Flatten(), nn.Linear(8 * 5 * 5, 5))
    with torch.no_grad():
        m[0].weight.mul_(3.0)
        for bn in (m[4], m[6][1]):
            bn.weight.uniform_(1.5, 2.5)
            bn.bias.uniform_(-0.1, 0.3)
    return m.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors: one thread avoids OpenMP spin-waiting on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def setup():
    cfg = CompileConfig(steps=2, weight_bits=2)
    fg = trace(_model(), (1, 10, 10), cfg)
    calib = np.random.default_rng(0).integers(0, 256, (64, 1, 10, 10)).astype(np.uint8)
    g = bwr(fg, calib, cfg, bwr_config=FAST, progress=False)
    return cfg, fg, calib, g


def test_blocks_cover_every_synapse_once(setup):
    cfg, fg, _, g = setup
    plan = synapse_plan(g, cfg)
    blocks = find_blocks(g, plan)
    syn = [p.name for b in blocks for p in b.synapses]
    assert sorted(syn) == sorted(g.of_kind("Conv", "Dense")) and len(set(syn)) == len(syn)
    assert [b.name for b in blocks][-1] == "readout"


def test_bwr_beats_round_to_nearest_reconstruction(setup):
    _, _, _, g = setup
    stats = g.meta["bwr"]["blocks"]
    rtn = sum(b["rec_rtn"] for b in stats)
    learned = sum(b["rec_bwr"] for b in stats)
    assert learned < 0.9 * rtn, stats
    assert sum(b["rec_bwr"] < b["rec_rtn"] for b in stats) >= len(stats) - 1, stats
    assert all(b["changed_vs_rtn"] > 0 for b in stats)


def test_integer_model_uses_exactly_the_learned_integers(setup):
    cfg, _, calib, g = setup
    gi = compile_graph(g, cfg)
    fixed = g.meta[WEIGHT_QUANT]
    plan = {p.name: p for ps in synapse_plan(g, cfg).values() for p in ps}
    for name, p in plan.items():
        op = gi.node(name)
        sigma = np.asarray(fixed[name]["scale"])
        # float weight = w_int * sigma / unit exactly (up to float rounding)
        w = g.node(name).weight * p.unit
        col = np.broadcast_to(sigma, (w.shape[0],)).reshape((-1,) + (1,) * (w.ndim - 1))
        np.testing.assert_allclose(op.weight * col, w, rtol=1e-12, atol=0)
        assert op.weight_bits == fixed[name]["weight_bits"]
        assert np.abs(op.weight).max() <= 1 and len(np.unique(op.weight)) <= 3  # 2-bit grid
    assert R.run(gi, calib[:4])["output"].shape == (4, 2, 5)


def test_bwr_is_deterministic_with_a_seed(setup):
    cfg, fg, calib, g = setup
    again = bwr(fg, torch.as_tensor(calib), cfg, bwr_config=FAST, progress=False)
    for name in g.of_kind("Conv", "Dense"):
        np.testing.assert_array_equal(g.node(name).weight, again.node(name).weight)
    assert [b["rec_bwr"] for b in g.meta["bwr"]["blocks"]] == \
        [b["rec_bwr"] for b in again.meta["bwr"]["blocks"]]
    other = bwr(fg, calib, cfg, bwr_config=dataclasses.replace(FAST, iters=30), seed=1, progress=False)
    assert any(not np.array_equal(g.node(n).weight, other.node(n).weight) for n in g.of_kind("Conv", "Dense"))


def test_calibration_inputs_and_config_errors(tmp_path):
    x = np.arange(12, dtype=np.uint8).reshape(6, 2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.as_tensor(x), torch.zeros(6)),
                                         batch_size=4)
    np.testing.assert_array_equal(calibration_array(loader), x)
    np.testing.assert_array_equal(calibration_array(loader, max_samples=4), x[:4])
    np.testing.assert_array_equal(calibration_array(torch.as_tensor(x)), x)
    with pytest.raises(SnnccError, match="loss"):
        BWRConfig(loss="kl")
    p = tmp_path / "q.toml"
    p.write_text("[quantization]\nweight_bits = 2\n[bwr]\niters = 7\nqdrop = 0.0\n")
    assert BWRConfig.from_toml(p).iters == 7 and CompileConfig.from_toml(p).weight_bits == 2
    p.write_text("[bwr]\niterations = 7\n")
    with pytest.raises(SnnccError, match="unknown"):
        BWRConfig.from_toml(p)
    cfg = CompileConfig(steps=2)
    fg = trace(_model(), (1, 10, 10), cfg)
    with pytest.raises(SnnccError, match="shape"):
        bwr(fg, np.zeros((4, 1, 9, 9), np.uint8), cfg, iters=1, progress=False)


def test_shipped_quant_toml_parses():
    from pathlib import Path

    p = Path(__file__).resolve().parents[1] / "examples" / "fashion_mnist" / "quant.toml"
    cfg, bc = CompileConfig.from_toml(p), BWRConfig.from_toml(p)
    assert cfg.weight_bits == 2 and cfg.first_layer_bits == 8 and cfg.quantizer == "uniform"
    assert bc.enabled and bc.iters == 2000 and bc.calib == "fashion-mnist:1024"


def test_learned_rounding_refuses_a_different_configuration(setup):
    cfg, _, _, g = setup
    with pytest.raises(SnnccError, match="for 2-bit weights but the configuration asks for 4"):
        compile_graph(g, dataclasses.replace(cfg, weight_bits=4))
    with pytest.raises(SnnccError, match="per-tensor"):
        compile_graph(g, dataclasses.replace(cfg, granularity="tensor"))
    moved = g.copy()
    op = moved.node("0")
    moved.set("0", op.replace(weight=op.weight * 1.01))
    with pytest.raises(SnnccError, match="not on the grid"):
        compile_graph(moved, cfg)
