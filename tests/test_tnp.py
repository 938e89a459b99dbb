"""Test-time neuron pruning (SNNQ's TNP, ANN2SNN_SRP's residual-membrane rule): a network
computed by hand, every target equal to the reference, the float model, the refusals."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snncc.compiler import compile_graph
from snncc.config import CompileConfig
from snncc.errors import BitWidthError, SnnccError
from snncc.ir import serialize
from snncc.ir.graph import Graph
from snncc.ir.nodes import LIF, Dense, Input, IntDense, IntInput, IntLIF
from snncc.ir.verify import problems, verify
from snncc.reference import interpreter as R
from snncc.reference.float_sim import run_float

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conformance  # noqa: E402

I64 = np.int64


def hand_graph() -> Graph:
    """x = (3, 5) every step -> identity -> two IF neurons (threshold 4, i.e. spike at v > 4;
    subtract 5; v_init 2; prune levels (0, 2)) -> sum -> readout; presim = 2, T = 3.

    Neuron A (input 3): v = 2+3 = 5 spike (v 0); v = 3; at t = 2 keep = 3 > 0 and
    v = 2 again: 5 spike (0); 3; 6 spike (1). Spikes 1 0 1 0 1.
    Neuron B (input 5): 7 spike (2); 7 spike (2); at t = 2 keep = 2 > 2 = no: it goes on
    spiking inside (7 -> 2) but its output is 0. Spikes 1 1 0 0 0.
    Readout v (sum of spikes, restarted at t = 2): 2, 3, | 1, 1, 2."""
    g = Graph()
    g.meta["steps"] = 5
    x = g.add("x", IntInput(shape=(2,), bits=8))
    d1 = g.add("d1", IntDense(weight=np.eye(2, dtype=I64), weight_bits=2), [x])
    lif = dict(act_shift=0, reset="subtract", presim=2)
    n = g.add("if", IntLIF(threshold=np.array([4], I64), reset_value=np.array([5], I64), v_init=np.array([2], I64),
                           prune_level=np.array([0, 2], I64), **lif), [d1])
    d2 = g.add("d2", IntDense(weight=np.ones((1, 2), I64), weight_bits=2), [n])
    g.outputs = [g.add("readout", IntLIF(fires=False, act_shift=0, presim=2), [d2])]
    verify(g, "int")
    return g


X = np.array([[3, 5]], I64)


def test_hand_computed_network():
    r = R.run(hand_graph(), X, probe_state=True)
    assert r["if"][0].T.tolist() == [[1, 0, 1, 0, 1], [1, 1, 0, 0, 0]]
    assert r["if/v"][0].T.tolist() == [[0, 3, 0, 3, 1], [2, 2, 2, 2, 2]]
    assert r["output"][0, :, 0].tolist() == [2, 3, 1, 1, 2]


def test_without_pruning_the_same_network_counts_every_step():
    g = hand_graph()
    for n in ("if", "readout"):
        g.set(n, g.node(n).replace(presim=0))
    r = R.run(g, X)
    assert r["if"][0].T.tolist() == [[1, 0, 1, 0, 1], [1, 1, 1, 1, 1]]
    assert r["output"][0, :, 0].tolist() == [2, 3, 5, 6, 8]


def test_float_neuron_prunes_like_the_integer_one():
    """The same network at the float level (scale 1): run_float gives the readout's v."""
    g = Graph()
    g.meta["steps"] = 5
    x = g.add("x", Input(shape=(2,), scale=1.0))
    d1 = g.add("d1", Dense(weight=np.eye(2), bias=np.zeros(2)), [x])
    n = g.add("if", LIF(beta=1.0, threshold=np.array([4.0]), reset="subtract", reset_value=np.array([5.0]),
                        v_init=2.0, presim=2, prune_level=np.array([0.0, 2.0])), [d1])
    d2 = g.add("d2", Dense(weight=np.ones((1, 2)), bias=np.zeros(1)), [n])
    g.outputs = [g.add("readout", LIF(beta=1.0, threshold=np.zeros(1), reset="none", fires=False, presim=2), [d2])]
    assert run_float(g, X)[0, :, 0].tolist() == [2, 3, 1, 1, 2]


@pytest.mark.parametrize("case", ["hand", "conformance"])
def test_onnx_equals_reference(case, tmp_path):
    pytest.importorskip("onnxruntime")
    from snncc.targets import onnx as ox

    g = hand_graph() if case == "hand" else conformance.CASES["tnp"]()
    x = X if case == "hand" else conformance.random_input(g, 3, np.random.default_rng(7))
    serialize.save(g, tmp_path)  # the ONNX runner reads the build's model beside it
    ox.emit(g, tmp_path / "onnx")
    ref, got = R.run(g, x, probe_state=True), ox.simulate(tmp_path / "onnx", x, probe_state=True)
    assert sorted(ref) == sorted(got) and all(np.array_equal(ref[k], got[k]) for k in ref)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_c_equals_reference_on_the_hand_network(tmp_path):
    from snncc.targets import c as ct

    g = hand_graph()
    serialize.save(g, tmp_path)
    ct.emit(g, tmp_path / "c")
    ref, got = R.run(g, X, probe_state=True), ct.simulate(tmp_path / "c", X, probe_state=True)
    assert all(np.array_equal(ref[k], got[k]) for k in ref)


def test_apply_tnp_sets_every_neuron_and_the_latency(example_model):
    from snncc.compiler import trace

    cfg = CompileConfig(presim=3, steps=4)
    g = compile_graph(trace(example_model, (1, 28, 28), cfg), cfg)
    lifs = [g.node(n) for n in g.of_kind("IntLIF")]
    assert all(op.presim == 3 for op in lifs) and g.meta["steps"] == 7 and g.meta["presim"] == 3
    assert all(op.prune_level.max() < op.threshold.max() for op in lifs if op.fires)


def test_refusals(example_model):
    from snncc.compiler import trace

    cfg = CompileConfig(presim=2, schedule="lava")
    with pytest.raises(SnnccError, match="needs the zero-latency schedule"):
        compile_graph(trace(example_model, (1, 28, 28), cfg), cfg)
    g = hand_graph()
    g.set("if", g.node("if").replace(reset_interval=5))
    assert any("do not combine" in p for p in problems(g, "int"))
    g = hand_graph()
    g.set("if", g.node("if").replace(presim=-1))
    assert any("presim=-1" in p for p in problems(g, "int"))


def test_lava_and_netx_refuse_by_name(tmp_path):
    from snncc.targets.lava.check import blockers

    assert any("test-time neuron pruning" in b for b in blockers(hand_graph()))
    pytest.importorskip("h5py")
    from snncc.targets import netx

    with pytest.raises(BitWidthError, match="test-time neuron pruning"):
        netx.emit(hand_graph(), tmp_path)


def test_cli_tnp_flag_counts_presim_in_the_run(tmp_path, example_model):
    from snncc.builds import load_build
    from snncc.cli import main

    torch.save(example_model, tmp_path / "m.pt")
    assert main(["compile", str(tmp_path / "m.pt"), "--input-shape", "1,28,28", "--tnp", "--steps", "4",
                 "--out", str(tmp_path / "b"), "--target", "onnx"]) == 0
    g, manifest = load_build(tmp_path / "b")
    assert g.meta["steps"] == 8 and g.meta["presim"] == 4 and manifest["config"]["presim"] == 4
    assert main(["compile", str(tmp_path / "m.pt"), "--input-shape", "1,28,28", "--tnp", "--presim", "2",
                 "--out", str(tmp_path / "b2"), "--target", "onnx"]) == 0
    assert load_build(tmp_path / "b2")[0].meta["steps"] == 6


def test_nir_refuses_tnp_by_name():
    from snncc.errors import UnsupportedLayerError
    from snncc.targets.nir import _refuse_conversion

    with pytest.raises(UnsupportedLayerError, match=r"'if': test-time neuron pruning \(presim=2\)"):
        _refuse_conversion(hand_graph(), Graph())
