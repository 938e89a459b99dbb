"""The shipped Fashion-MNIST example: the training script runs, and model files load
with torch.load(weights_only=True) through snncc's allow-list."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import snncc.nn as snn
from snncc import data
from snncc.errors import ModelLoadError
from snncc.frontends.safe_load import load_model, safe_globals

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fashion_mnist"
have_fmnist = pytest.mark.skipif(
    not (Path(data.FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="dataset-fashion-mnist is not installed")


@have_fmnist
def test_train_script_tiny_run(tmp_path):
    out = tmp_path / "model.pt"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(
        [sys.executable, str(EXAMPLE / "train.py"), "--epochs", "1", "--batch-size", "64",
         "--limit-train", "64", "--limit-test", "64", "--steps", "2", "--threads", "1",
         "--no-progress", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["T"] == 2 and metrics["train_images"] == 64
    assert 0.0 <= metrics["float_test_accuracy"] <= 1.0
    assert metrics["params"] > 0 and metrics["torch"] == torch.__version__
    samples = np.load(tmp_path / "samples.npz")
    assert samples["x"].dtype == np.uint8 and samples["x"].shape == (16, 1, 28, 28)
    assert samples["y"].dtype == np.int64 and samples["y"].shape == (16,)

    model = load_model(out)  # weights_only=True with the allow-list
    assert not model.training
    assert all(m.v is None for m in model.modules() if isinstance(m, snn.LIF))
    x = torch.from_numpy(samples["x"]).float() / 255
    assert snn.run(model, x, steps=2).shape == (16, 2, 10)


def test_model_def_builds_and_round_trips(tmp_path):
    spec = importlib.util.spec_from_file_location("fashion_mnist_model_def", EXAMPLE / "model_def.py")
    model_def = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model_def)
    T = model_def.T
    model = model_def.build()
    x = torch.rand(3, 1, 28, 28)
    y = snn.run(model, x, steps=T)
    assert y.shape == (3, T, 10)
    snn.reset(model)
    model.eval()
    torch.save(model, tmp_path / "m.pt")
    with pytest.raises(Exception):  # not loadable without the allow-list
        torch.load(tmp_path / "m.pt", weights_only=True)
    with torch.serialization.safe_globals(safe_globals()):
        loaded = torch.load(tmp_path / "m.pt", weights_only=True)
    assert torch.equal(snn.run(model, x, steps=T), snn.run(loaded, x, steps=T))


class _UserModule(torch.nn.Module):
    """A class outside torch.nn / snncc.nn: its pickle must not be trusted."""

    def forward(self, x):
        return x


def test_load_model_rejects_unlisted_classes(tmp_path):
    path = tmp_path / "user.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2), _UserModule()), path)
    with pytest.raises(ModelLoadError, match="_UserModule"):
        load_model(path)
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(tmp_path / "junk.pt")


def test_safe_globals_contents():
    names = {c.__name__ for c in safe_globals()}
    assert {"Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "AvgPool2d", "MaxPool2d",
            "Flatten", "Dropout", "Sequential", "Identity", "LIF", "IF", "Residual"} <= names
    assert all(c.__module__.startswith(("torch.nn", "snncc.nn", "snntorch"))
               for c in safe_globals())


@pytest.mark.skipif(not (EXAMPLE / "model.pt").is_file(), reason="example not trained")
def test_shipped_model_loads_safely():
    model = load_model(EXAMPLE / "model.pt")
    samples = np.load(EXAMPLE / "samples.npz")
    x = torch.from_numpy(samples["x"]).float() / 255
    pred = snn.run(model, x, steps=4).mean(1).argmax(1).numpy()
    assert (pred == samples["y"]).mean() >= 0.75  # 16 images of a ~90 % model


@have_fmnist
def test_ann_train_script_tiny_run(tmp_path):
    """examples/fashion_mnist_ann/train.py (the ANN of SNNQ's flow): runs, writes a model
    that loads through the allow-list (QCFS included) and converts."""
    out = tmp_path / "model.pt"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "fashion_mnist_ann" / "train.py"), "--epochs", "1",
         "--batch-size", "64", "--limit-train", "64", "--limit-test", "64", "--threads", "1", "--no-progress",
         "--out", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["train_images"] == 64 and len(metrics["qcfs_up"]) == 3
    from snncc.conversion import convert

    g = convert(load_model(out), (1, 28, 28))
    assert len(g.meta["converted"]["neurons"]) == 3


@pytest.mark.slow  # a training run in a subprocess (~12 s): the fast suite's budget is 5 min
@have_fmnist
def test_train_sparse_script_tiny_run(tmp_path, capsys):
    """train_sparse.py from the float model (as model_s) with the operation penalty, a
    validation split and distillation: the options reach the hooks (the last batch's
    operation share is recorded, the val accuracy replaces the test one), and the files
    the benchmark reads are written."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(
        [sys.executable, str(EXAMPLE / "train_sparse.py"), "--limit-train", "128", "--limit-test", "32",
         "--op-penalty", "5", "--op-target", "0.01", "--gain", "20", "--val", "64", "--distill", "0.5",
         "--distill-temp", "3", "--init", str(EXAMPLE / "model.pt"), "--seed", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    m = json.loads((tmp_path / "metrics_s.json").read_text())
    assert m["op_penalty"] == 5.0 and m["op_target"] == 0.01 and m["train_images"] == 128
    assert m["init"] == "model.pt"  # the float model, as the shipped model_s (run F3)
    assert m["seed"] == 2 and "--seed 2" in m["command"]
    assert 0.0 < m["history"][-1]["last_batch_op_share"] < 1.0
    assert m["val"] == 64 and 0.0 <= m["val_accuracy"] <= 1.0 and "masked_fake_quant_accuracy" not in m
    assert (m["distill"], m["distill_temp"], m["teacher"]) == (0.5, 3.0, "model_a.pt")
    assert 'channel_gates = "model_s_gates.npz"' in (tmp_path / "model_s.toml").read_text()
    for f in ("model_s.pt", "model_s_gates.npz", "model_s_gates_050.npz"):
        assert (tmp_path / f).is_file()
    spec = importlib.util.spec_from_file_location("fashion_mnist_train_sparse", EXAMPLE / "train_sparse.py")
    script = importlib.util.module_from_spec(spec)  # the bad value in-process: no second interpreter start
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as bad:
        script.main(["--op-target", "1.5", "--out", str(tmp_path)])
    assert bad.value.code != 0 and "op_target = 1.5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        script.main(["--distill", "1.5", "--out", str(tmp_path)])
    assert bad.value.code != 0 and "distill alpha = 1.5" in capsys.readouterr().err
    seen = {}

    class Stop(Exception):
        pass

    def trainer(*args, **kwargs):  # what the script hands the trainer, without training
        seen.update(kwargs, torch_seed=torch.initial_seed())
        raise Stop

    script.SpQuantTrainer = trainer
    with pytest.raises(Stop):
        script.main(["--seed", "5", "--out", str(tmp_path)])
    assert seen.get("seed") == 5 and seen["torch_seed"] == 5  # the batch order and the initial draws
    torch.manual_seed(0)  # the global generator as the script's other calls above leave it
