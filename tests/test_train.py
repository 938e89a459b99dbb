"""snncc.train: quantization-aware training whose forward pass is the compiled integer
model (agreement with the reference interpreter), SpQuant-SNN's gradients, QP-SNN's
Algorithm 1, checkpoints and resume, the CLI, clear errors, and DDP equal to one process."""
import json
import os
import socket

import numpy as np
import pytest
import torch
from torch import nn

import snncc
from snncc import nn as snn
from snncc.cli import main
from snncc.errors import SnnccError, UnsupportedLayerError
from snncc.frontends.safe_load import load_model
from snncc.train import SpQuantTrainer, TrainConfig, qpsnn
from snncc.train.fakequant import nearest_levels
from snncc.train.neurons import _SGSQuant, _Spike

from conftest import randomize_bn


def tiny(residual: bool = True, seed: int = 0) -> nn.Module:
    """8x8 gray images -> 10 classes: conv-BN-LIF, pool, [residual conv-BN]-LIF, linear."""
    torch.manual_seed(seed)
    body = [nn.Conv2d(1, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), snn.LIF(beta=0.5, threshold=0.5),
            nn.AvgPool2d(2)]
    if residual:
        body += [snn.Residual(nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6)), snn.LIF(beta=0.75, threshold=0.5)]
    body += [nn.Flatten(), nn.Linear(6 * 4 * 4, 10)]
    return randomize_bn(nn.Sequential(*body), seed)


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 1, 8, 8)).astype(np.uint8)
    y = (x.reshape(n, -1)[:, :10].argmax(1)).astype(np.int64)  # learnable labels
    return x[: n // 2], y[: n // 2], x[n // 2:], y[n // 2:]


FAST = dict(batch_size=16, progress=False, refresh_every=2)


@pytest.mark.parametrize("opts", [
    dict(quantization_bits=8),
    dict(quantization_bits=4, quantizer="apot", state_quant="ternary", learn_threshold=True, loss="tet"),
    dict(quantization_bits=3, quantizer="rescaw", rescaw_gamma="max", state_quant="binary"),
    dict(quantization_bits=4, quantizer="pot", granularity="tensor"),
    dict(quantization_bits=4, quantizer="uniform", weight_clip="mse", first_layer_bits=8),
])
def test_trained_model_agrees_with_the_compiled_integer_model(opts):
    tr = SpQuantTrainer(tiny(), data(), **opts, **FAST)
    tr.train(1)
    res = tr.agreement()
    assert res["agreement"] == 1.0, res
    # the weights the trainer rounds to are the compiler's integers
    for name, s in tr.net.view.synapses.items():
        w = dict(tr.net.model.named_modules())[name].weight.detach().double()
        step = torch.as_tensor(s.step).reshape((-1,) + (1,) * (w.dim() - 1))
        k = nearest_levels(w / step, torch.as_tensor(s.levels, dtype=torch.float64))
        assert np.array_equal(k.numpy().astype(np.int64), s.w_int), name


def test_saved_model_loads_safely_and_compiles_to_the_same_predictions(tmp_path):
    d = data()
    tr = SpQuantTrainer(tiny(), d, 4, quantizer="apot", state_quant="ternary", **FAST)
    tr.train(1)
    path = tr.save(tmp_path / "m.pt")
    model = load_model(path)  # weights_only=True with snncc's allow-list
    assert all(type(m) is not type(tr.net.model[2]) or type(m) is snn.LIF for m in model.modules())
    from snncc.config import CompileConfig, read_toml
    cfg = CompileConfig.from_dict(read_toml(path.with_suffix(".toml"))["quantization"])
    b = snncc.compile(model, example_input=(1, 8, 8), target="c", out=tmp_path / "b", config=cfg)
    from snncc.reference import interpreter as R
    assert np.array_equal(R.predict(b.graph, R.run(b.graph, d[2])), tr.predict(d[2]))
    assert _cli("compile", path, "--config", path.with_suffix(".toml"), "--input-shape", "1,8,8",
                "--out", tmp_path / "b2", "--target", "c") == 0


def _cli(*args) -> int:
    return main([str(a) for a in args])


def test_checkpoint_resume_equals_straight_run(tmp_path):
    d = data()
    a = SpQuantTrainer(tiny(), d, 4, checkpoint_dir=str(tmp_path / "a"), **FAST)
    a.train(2)
    b = SpQuantTrainer(tiny(), d, 4, checkpoint_dir=str(tmp_path / "b"), epochs=2, **FAST)
    b.train(1)  # stopped after one of the two planned epochs
    c = SpQuantTrainer(tiny(), d, 4, checkpoint_dir=str(tmp_path / "b"), epochs=2, **FAST)
    s = c.train(resume=True)
    assert s["epochs"] == 2 and len(s["history"]) == 2
    for (k, p), q in zip(a.net.model.state_dict().items(), c.net.model.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), k


def test_sgs_gradient_peaks_between_levels_and_gpw_trains_the_threshold():
    v = torch.linspace(-2, 2, 401, dtype=torch.float64, requires_grad=True)
    lvl = torch.ones_like(v)
    out = _SGSQuant.apply(v, lvl, torch.zeros_like(v), (-0.5, 0.5), 4.0)
    out.sum().backward()
    g = v.grad
    assert g[torch.argmin((v.detach() - 0.5).abs())] > g[torch.argmin(v.detach().abs())]
    # Eq. 12 at v = 1/2 (T = 4): T/4 from the level at +1/2, plus the tail of the one at -1/2
    sig = torch.sigmoid(torch.tensor(4.0, dtype=torch.float64))
    assert float(g[torch.argmin((v.detach() - 0.5).abs())]) == pytest.approx(float(1.0 + 4 * sig * (1 - sig)), rel=1e-6)
    assert g[0] < 0.02 and g[-1] < 0.02  # far from the midpoints: almost no gradient
    theta = torch.tensor(1.0, requires_grad=True)
    v2 = torch.tensor([0.5, 1.2, 2.0], requires_grad=True)
    _Spike.apply(v2, theta, v2.detach() > 1.0, 2.0, True).sum().backward()
    assert theta.grad < 0 and v2.grad[0] > 0  # only v >= theta contributes to dL/dtheta (Eq. 27)


def test_qpsnn_algorithm_1_prunes_and_fine_tunes():
    tr, rec = qpsnn(tiny(), data(), 4, qat_epochs=1, finetune_epochs=1, calib=16, **FAST)
    assert rec["prune"]["parameters_after"] < rec["prune"]["parameters_before"]
    assert tr.qc.quantizer == "rescaw" and tr.agreement()["agreement"] == 1.0


@pytest.mark.parametrize("kw,msg", [
    (dict(quantizer="ternary"), "training supports"),
    (dict(quantizer="asymmetric"), "training supports"),
    (dict(quant={"state_quant": "ternary"}), "set [train] state_quant"),
    (dict(steps=4, quant={"steps": 2}), "same number of steps"),
    (dict(schedule="lava"), "schedule 'lava'"),
    (dict(loss="mse"), "loss"),
    (dict(tet_lambda=0.1), "tet_lambda is set"),
    (dict(bogus=1), "unknown option"),
    (dict(batch_size=0), "batch_size"),
])
def test_contradicting_options_are_refused_before_training(kw, msg):
    with pytest.raises(SnnccError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        SpQuantTrainer(tiny(), data(), 8, **kw)


def test_unquantizable_models_and_bad_datasets_are_refused():
    with pytest.raises(SnnccError, match="shape"):
        SpQuantTrainer(tiny(), (np.zeros((8, 1, 9, 7), np.uint8), np.zeros(8, np.int64)), 8)
    with pytest.raises(SnnccError, match="10 outputs but the dataset has 12 classes"):
        SpQuantTrainer(tiny(), (np.zeros((8, 1, 8, 8), np.uint8), np.arange(8) + 4), 8)
    with pytest.raises(SnnccError, match="integer inputs"):
        SpQuantTrainer(tiny(), (np.zeros((8, 1, 8, 8), np.float32), np.zeros(8)), 8)
    spiking_out = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), snn.LIF())
    with pytest.raises(UnsupportedLayerError, match="ends in a neuron layer"):
        SpQuantTrainer(spiking_out, data(), 8, state_quant="ternary")
    with pytest.raises(UnsupportedLayerError, match="synaptic current"):
        SpQuantTrainer(nn.Sequential(nn.Flatten(), nn.Linear(64, 8), snn.LIF(alpha=0.5), nn.Linear(8, 10)),
                       data(), 8)
    with pytest.raises(UnsupportedLayerError, match="LayerNorm"):
        SpQuantTrainer(nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.LayerNorm(8), snn.LIF(), nn.Linear(8, 10)),
                       data(), 8)


def test_snntorch_leaky_with_hard_reset_trains_and_agrees():
    snntorch = pytest.importorskip("snntorch")
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 16),
                      snntorch.Leaky(beta=0.6, threshold=0.5, reset_mechanism="zero", init_hidden=True),
                      nn.Linear(16, 10))
    tr = SpQuantTrainer(m, data(), 4, quantizer="apot", **FAST)
    tr.train(1)
    assert tr.agreement()["agreement"] == 1.0
    soft = nn.Sequential(nn.Flatten(), nn.Linear(64, 16),
                         snntorch.Leaky(beta=0.6, threshold=0.5, init_hidden=True), nn.Linear(16, 10))
    with pytest.raises(UnsupportedLayerError, match="reset_mechanism 'subtract'"):
        SpQuantTrainer(soft, data(), 8)


def test_train_config_rejects_unknown_keys_and_values():
    with pytest.raises(SnnccError, match="unknown training option"):
        TrainConfig.from_dict({"epochz": 1})
    with pytest.raises(SnnccError, match="state_quant"):
        TrainConfig(state_quant="quaternary")


def test_cli_train_and_resume(tmp_path):
    model = tmp_path / "m.pt"
    torch.save(tiny(residual=False), model)
    cfg = tmp_path / "train.toml"
    cfg.write_text('[train]\nepochs = 1\nbatch_size = 64\nlimit_train = 128\nlimit_test = 64\nprogress = false\n'
                   '[quantization]\nweight_bits = 4\nquantizer = "apot"\n')
    out = tmp_path / "t.pt"
    assert _cli("train", model, "--config", cfg, "--dataset", "digits", "--out", out, "--agreement") == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["agreement"]["agreement"] == 1.0 and summary["epochs"] == 1
    assert _cli("train", model, "--config", cfg, "--dataset", "digits", "--out", out, "--resume",
                "--epochs", "2") == 0
    assert json.loads(out.with_suffix(".json").read_text())["epochs"] == 2
    load_model(out)
    assert _cli("train", model, "--dataset", "digits", "--out", tmp_path / "x.pt", "--resume") == 2  # nothing to resume
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlr = -1\n")
    assert _cli("train", model, "--config", bad, "--dataset", "digits", "--out", out) == 2


# ---------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        tr = SpQuantTrainer(tiny(), data(), 4, quantizer="apot", state_quant="ternary", **FAST)
        tr.train(2)
        if rank == 0:
            torch.save(tr.net.model.state_dict(), out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    out = str(tmp_path / "ddp.pt")
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    single = SpQuantTrainer(tiny(), data(), 4, quantizer="apot", state_quant="ternary", **FAST)
    single.train(2)
    for k, p in single.net.model.state_dict().items():
        assert torch.allclose(p, ddp[k], atol=1e-5, rtol=1e-4), k


# ------------------------------------------------------------- the shipped QAT models
EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "fashion_mnist")


@pytest.mark.parametrize("name,opts", [
    ("model_a", dict(quantizer="apot", state_quant="ternary")),
    ("model_b", dict(quantizer="rescaw", rescaw_gamma="percentile")),
])
def test_shipped_qat_models_load_safely_and_agree_with_their_compiled_model(name, opts):
    path = os.path.join(EXAMPLE, f"{name}.pt")
    if not os.path.isfile(path):
        pytest.skip("example not trained")
    from snncc.config import read_toml

    q = read_toml(os.path.join(EXAMPLE, f"{name}.toml"))["quantization"]
    assert q["quantizer"] == opts["quantizer"] and q["weight_bits"] == 4
    s = np.load(os.path.join(EXAMPLE, "samples.npz"))
    x, y = s["x"], s["y"]
    tr = SpQuantTrainer(load_model(path), (x, y, x, y), 4, progress=False, **opts)
    res = tr.agreement()
    assert res["agreement"] == 1.0 and res["integer_accuracy"] >= 0.75, res
