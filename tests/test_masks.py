"""SpQuant-SNN's sparsity masks (section 4.3): negative membrane (Eq. 19-20), spatial
(Eq. 21-22) and channel (Eq. 23) masks on IntLIF; networks computed by hand, every target
equal to the reference, the refusals and the bad values."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from snncc.errors import SnnccError
from snncc.ir.graph import Graph
from snncc.ir.nodes import IntDense, IntInput, IntLIF
from snncc.ir.verify import problems, verify
from snncc.reference import interpreter as R

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conformance  # noqa: E402

I64 = np.int64


def _net(weight, steps, **lif) -> Graph:
    g = Graph()
    g.meta["steps"] = steps
    x = g.add("x", IntInput(shape=(weight.shape[1],), bits=8))
    d = g.add("d", IntDense(weight=weight.astype(I64), weight_bits=4), [x])
    g.outputs = [g.add("lif", IntLIF(threshold=np.array([4], I64), act_shift=0, **lif), [d])]
    verify(g, "int")
    return g


def spatial_negative_graph(**masks) -> Graph:
    """a = (3, 1, -2, 0) every step into IF neurons (threshold 4, reset to zero, no leak).
    Spatial level 1 skips neurons 1 and 3 (|a| <= 1: state held at 0, no spike); the
    negative mask zeroes neuron 2's v = -2 after every step. Neuron 0: v = 3, 6 (spike,
    0), 3, 6 (spike), 3: spikes 0 1 0 1 0. Without masks neuron 1 reaches 5 > 4 at t = 4
    and neuron 2 goes -2, -4, ... -10."""
    return _net(np.diag([1, 1, -1, 2]), 5, **masks)


X4 = np.array([[3, 1, 2, 0]], I64)


def test_spatial_and_negative_masks_by_hand():
    r = R.run(spatial_negative_graph(spatial_level=1, neg_mask=True), X4, probe_state=True)
    assert r["lif"][0].T.tolist() == [[0, 1, 0, 1, 0], [0] * 5, [0] * 5, [0] * 5]
    assert r["lif/v"][0].T.tolist() == [[3, 0, 3, 0, 3], [0] * 5, [0] * 5, [0] * 5]
    plain = R.run(spatial_negative_graph(), X4, probe_state=True)
    assert plain["lif"][0, :, 1].tolist() == [0, 0, 0, 0, 1]
    assert plain["lif/v"][0, :, 2].tolist() == [-2, -4, -6, -8, -10]


def test_each_mask_alone_by_hand():
    sp = R.run(spatial_negative_graph(spatial_level=1), X4, probe_state=True)
    assert sp["lif/v"][0, :, 1].tolist() == [0] * 5 and sp["lif/v"][0, :, 2].tolist() == [-2, -4, -6, -8, -10]
    neg = R.run(spatial_negative_graph(neg_mask=True), X4, probe_state=True)
    assert neg["lif"][0, :, 1].tolist() == [0, 0, 0, 0, 1] and neg["lif/v"][0, :, 2].tolist() == [0] * 5


def test_spatial_mask_holds_a_negative_initial_state_then_the_negative_mask_clears_it():
    g = spatial_negative_graph(spatial_level=1, v_init=np.array([0, -3, 0, 0], I64))
    assert R.run(g, X4, probe_state=True)["lif/v"][0, :, 1].tolist() == [-3] * 5
    g = spatial_negative_graph(spatial_level=1, neg_mask=True, v_init=np.array([0, -3, 0, 0], I64))
    assert R.run(g, X4, probe_state=True)["lif/v"][0, :, 1].tolist() == [0] * 5


def gate_graph(level=(4, 4)) -> Graph:
    """a = (3, 2): neuron 0 stores 3, 0, 3, 0, 3, 0 (spikes at t = 1, 3, 5), neuron 1
    stores 2, 4, 0, 2, 4, 0 (spikes at t = 2, 5). The gate reads the membrane prior (the
    state before the step): p = (0, 0), (3, 2), (0, 4), (3, 0), (0, 2), (3, 4);
    z = [[1, 1], [0, 1]] p = (0, 0), (5, 2), (4, 4), (3, 0), (2, 2), (7, 4); with levels
    (4, 4) channel 0 is off at t = 0, 3, 4 (its spike at t = 3 is dropped), channel 1 off
    at t = 0, 1, 3, 4."""
    return _net(np.eye(2), 6, gate_weight=np.array([[1, 1], [0, 1]], I64), gate_level=np.array(level, I64))


def test_channel_gate_by_hand():
    r = R.run(gate_graph(), np.array([[3, 2]], I64))
    assert r["lif"][0].T.tolist() == [[0, 1, 0, 0, 0, 1], [0, 0, 1, 0, 0, 1]]
    r = R.run(gate_graph((5, 5)), np.array([[3, 2]], I64))
    assert r["lif"][0].T.tolist() == [[0, 1, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]]


@pytest.mark.parametrize("fields, words", [
    (dict(spatial_level=-2), "spatial_level=-2"),
    (dict(spatial_level=1.5), "spatial_level=1.5"),
    (dict(gate_weight=np.ones((3, 3), I64)), "expected (2, 2)"),
    (dict(gate_weight=np.ones((2, 2)), gate_level=np.zeros(1, I64)), "must be int64"),
    (dict(gate_weight=np.full((2, 2), 1 << 40, I64)), "beyond 2^62"),
])
def test_bad_mask_fields_are_named(fields, words):
    g = _net(np.eye(2), 3)
    g.set("lif", g.node("lif").replace(**fields))
    errs = problems(g, "int")
    assert any(words in e and "lif" in e for e in errs), errs


def test_a_readout_takes_no_mask():
    g = _net(np.eye(2), 3)
    g.set("lif", g.node("lif").replace(fires=False, neg_mask=True))
    with pytest.raises(SnnccError, match="readout .* takes no sparsity mask"):
        verify(g, "int")


def test_lava_netx_and_nir_refuse_by_name(tmp_path):
    from snncc.errors import BitWidthError, UnsupportedLayerError
    from snncc.targets.lava.check import blockers
    from snncc.targets.nir import _refuse_conversion

    g = gate_graph()
    assert any("sparsity masks (channel gate 2x2)" in b for b in blockers(g))
    with pytest.raises(UnsupportedLayerError, match=r"'lif': SpQuant-SNN sparsity masks \(negative, spatial"):
        _refuse_conversion(spatial_negative_graph(neg_mask=True, spatial_level=1), Graph())
    pytest.importorskip("h5py")
    from snncc.targets import netx

    with pytest.raises(BitWidthError, match="sparsity masks"):
        netx.emit(g, tmp_path)


def test_gate_level_is_the_softmax_threshold_in_integers():
    """keep <=> softmax((z, 0))_on >= theta <=> z >= ln(theta / (1 - theta)); the identity
    gate's z is the mean membrane prior in thresholds: sum(v) >= ceil(logit x HW x thr)."""
    from snncc.passes.masks import gate_level

    thr, hw = np.array([10, 7]), 4
    for theta in (0.3, 0.47, 0.5, 0.8):
        lv = gate_level(theta, hw, thr)
        for c in range(2):
            for total in range(-hw * thr[c], hw * thr[c] + 1):
                z = total / (hw * thr[c])
                soft = np.exp(z) / (np.exp(z) + 1.0)
                assert (total >= lv[c]) == (soft >= theta), (theta, c, total)


def test_compile_sets_the_masks_from_the_config(example_model):
    from snncc.compiler import compile_graph, trace
    from snncc.config import CompileConfig

    cfg = CompileConfig(neg_mask=True, channel_threshold=0.47, spatial_sparsity=0.35, mask_calib="fashion-mnist:8")
    g = compile_graph(trace(example_model, (1, 28, 28), cfg), cfg)
    shapes = g.shapes()
    lifs = {n: g.node(n) for n in g.of_kind("IntLIF")}
    assert all(op.neg_mask for op in lifs.values() if op.fires)
    conv = [n for n, op in lifs.items() if op.fires and len(shapes[n]) == 3]
    assert conv and all(lifs[n].spatial_level >= 0 and lifs[n].gate_weight.shape[0] == shapes[n][0] for n in conv)
    x = np.random.default_rng(0).integers(0, 256, (8, 1, 28, 28))
    sim = R.Simulation(g, 8)
    skipped = []
    for t in range(g.meta["steps"]):
        sim.advance(R.prepare_input(g, x)[:, t:t + 1])
        skipped.append(sim.states[conv[0]].masked["spatial"].mean())
    assert 0.0 < np.mean(skipped) < 1.0


@pytest.mark.parametrize("flags, words", [
    (["--spatial-sparsity", "1"], "spatial_sparsity = 1.0: must lie in [0, 1)"),
    (["--channel-threshold", "1.5"], "channel_threshold = 1.5: must lie in (0, 1)"),
    (["--neg-mask", "maybe"], "neg"),
])
def test_cli_bad_mask_values_are_one_clear_error(flags, words, tmp_path, capsys, example_model):
    import torch

    from snncc.cli import main

    torch.save(example_model, tmp_path / "m.pt")
    rc = main(["compile", str(tmp_path / "m.pt"), "--input-shape", "1,28,28", "--out", str(tmp_path / "b"),
               "--target", "c", *flags])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and "Traceback" not in err


def test_report_counts_the_measured_masks_and_eq30():
    """Spatial + negative network: 2 of 4 neurons skipped at each of 5 steps (10 of 20
    updates), neuron 2 cleared 5 times; Eq. 30 (C = 4, W H = 1, k^2 = 1, T = 5):
    dense 2*4 + 5*4 = 28, sparse 2*4 + 5*4*(1 - 0.5) = 18. Gate network: 7 of 12
    channel-steps off (S_c = 7/12): dense 2*2 + 6*2 = 16, sparse (2*2 + 6*2) * 5/12."""
    from snncc.reports.report import build_report, format_report

    rep = build_report(spatial_negative_graph(spatial_level=1, neg_mask=True), X4)
    row = next(r for r in rep["layers"] if r["layer"] == "lif")
    assert (row["skipped_updates"], row["neuron_updates"], row["neg_masked"]) == (10, 10, 5)
    assert rep["eq30"]["layers"]["lif"] == {"S_p": 0.5, "S_c": 0.0, "k2": 1, "dense": 28, "sparse": 18}
    assert "Eq. 30" in format_report(rep) and "1.56x fewer" in format_report(rep)
    eq = build_report(gate_graph(), np.array([[3, 2]], I64))["eq30"]["layers"]["lif"]
    assert eq["S_c"] == pytest.approx(7 / 12) and eq["dense"] == 16 and eq["sparse"] == pytest.approx(16 * 5 / 12)
    plain = build_report(spatial_negative_graph(), X4)
    assert plain["eq30"]["dense_per_sample"] == plain["eq30"]["sparse_per_sample"] == 28
    text = format_report(plain)  # no mask skipped anything: one line, not a table of zeros
    assert "no sparsity mask skipped anything" in text and "S_c, S_p measured" not in text


def test_training_with_the_masks_agrees_with_the_compiled_masked_model(tmp_path):
    """The trainer's forward pass runs the masks of the compiled model: with the negative
    mask and a learned channel gate (random point-wise weights, so that channels do
    switch off), the compiled model with the saved integer gates predicts exactly what the
    trainer predicts."""
    import torch

    from snncc.config import CompileConfig
    from snncc.passes.masks import apply_masks
    from snncc.train import SpQuantTrainer
    from snncc.train.masks import SparsityMasks
    from test_train import FAST, data, tiny

    torch.manual_seed(0)
    hook = SparsityMasks(neg_mask=True, channel_threshold=0.47, gate_penalty=0.5, gate_init=0.0)
    tr = SpQuantTrainer(tiny(), data(), 4, quantizer="apot", state_quant="ternary", hooks=[hook], **FAST)
    assert len(hook.gates) == 2 and len(hook.parameters()) == 4
    for g in hook.gates.values():
        torch.nn.init.normal_(g.weight, 0.0, 2.0)
    before = {k: g.bias.detach().clone() for k, g in hook.gates.items()}
    tr.train(1)
    assert any(not torch.equal(before[k], g.bias) for k, g in hook.gates.items())  # the penalty trains the gates
    path = hook.save_gates(tmp_path / "gates.npz")
    cfg = CompileConfig(**hook.compile_options(str(path)))
    g, _ = apply_masks(tr.net.view.int_graph, cfg)
    x = tr.data["x_test"]
    r = R.run(g, x)
    assert np.array_equal(R.predict(g, r), tr.predict(x))
    gated = [n for n, op in g.items() if getattr(op, "gate_weight", np.zeros(0)).size]
    assert len(gated) == 2
    masked = 0.0
    sim = R.Simulation(g, len(x))
    for t in range(g.meta["steps"]):
        sim.advance(R.prepare_input(g, x)[:, t:t + 1])
        masked += sum(sim.states[n].masked["channel"].sum() for n in gated)
    assert masked > 0  # some channels are off: the comparison above saw the gate act


def test_bad_gates_files_and_contradicting_options_are_clear_errors(tmp_path):
    from snncc.config import CompileConfig
    from snncc.ir.serialize import write_npz
    from snncc.passes.masks import apply_masks, calibrate_spatial

    with pytest.raises(SnnccError, match="give one"):
        CompileConfig(channel_gates="g.npz", channel_threshold=0.47)
    g = gate_graph()
    bad = tmp_path / "bad.npz"
    write_npz(bad, {"nope/weight": np.eye(2, dtype=I64), "nope/level": np.zeros(2, I64),
                    "lif/weight": np.eye(3, dtype=I64), "lif/level": np.zeros(3, I64)})
    with pytest.raises(SnnccError, match=r"(?s)'lif': need int64 lif/weight \(2, 2\).*'nope' is not a spiking"):
        apply_masks(g, CompileConfig(channel_gates=str(bad)))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(SnnccError, match="cannot read it"):
        apply_masks(g, CompileConfig(channel_gates=str(tmp_path / "junk.npz")))
    with pytest.raises(SnnccError, match="no spiking conv layer"):
        calibrate_spatial(g, np.array([[3, 2]], I64), 0.35)


def test_a_config_files_gates_path_is_read_relative_to_the_file(tmp_path, monkeypatch):
    """model_s.toml names its gates file beside it: compiling from any directory finds it."""
    import os

    from snncc.config import toml_table

    d = tmp_path / "cfg"
    d.mkdir()
    (d / "m.toml").write_text('[quantization]\nchannel_gates = "g.npz"\nmask_calib = "digits:8"\n')
    (d / "abs.toml").write_text(f'channel_gates = "{tmp_path / "x.npz"}"\n')
    monkeypatch.chdir(tmp_path)
    table = toml_table(d / "m.toml", "quantization")
    assert table == {"channel_gates": os.path.join("cfg", "g.npz"), "mask_calib": "digits:8"}
    assert toml_table(d / "abs.toml", "quantization") == {"channel_gates": str(tmp_path / "x.npz")}


def test_spike_costs_are_the_fan_out_of_the_next_synapses_by_hand():
    """tiny(): LIF '2' (6 x 8 x 8) -> SumPool 2x2 -> residual conv 6->6 3x3 pad 1 on 4 x 4
    (mean fan-out per input: 6 x 2.5 x 2.5 = 37.5; per row, the border inputs reach 2
    outputs, the inner 3) + the depthwise shortcut (1): (37.5 + 1) / 4 = 9.625 per spike;
    LIF '5' -> Flatten -> Linear 96 -> 10: 10 per spike."""
    import torch

    from snncc.train import SpQuantTrainer
    from snncc.train.masks import SparsityMasks, spike_costs
    from test_train import FAST, data, tiny

    hook = SparsityMasks(neg_mask=True, op_penalty=1.0)
    tr = SpQuantTrainer(tiny(), data(), 4, quantizer="apot", state_quant="ternary", hooks=[hook], **FAST)
    assert spike_costs(tr.net.view.int_graph) == {"2": 9.625, "5": 10.0} == hook.costs
    assert hook._full == 4 * (9.625 * 6 * 8 * 8 + 10.0 * 6 * 4 * 4)  # every neuron fires at every step


def test_training_with_the_spatial_mask_says_its_accuracy_is_not_the_deployed_one(caplog):
    """The trainer's spatial level is a per-step kthvalue, the compiled model's one
    calibrated level per layer: setting the hook up says so (a warning), without the
    spatial mask or with the fixed level (the compiled mask) it says nothing."""
    import logging

    from snncc.train import SpQuantTrainer
    from snncc.train.masks import SparsityMasks
    from test_train import FAST, data, tiny

    with caplog.at_level(logging.WARNING, logger="snncc"):
        SpQuantTrainer(tiny(), data(), 4, quantizer="apot", state_quant="ternary",
                       hooks=[SparsityMasks(neg_mask=True)], **FAST)
        assert "spatial mask" not in caplog.text
        SpQuantTrainer(tiny(), data(), 4, quantizer="apot", state_quant="ternary",  # the compiled mask: silent
                       hooks=[SparsityMasks(neg_mask=True, spatial_sparsity=0.35, spatial_level="fixed")], **FAST)
        assert "spatial mask" not in caplog.text
        SpQuantTrainer(tiny(), data(), 4, quantizer="apot", state_quant="ternary",
                       hooks=[SparsityMasks(neg_mask=True, spatial_sparsity=0.35)], **FAST)
    assert "spatial mask: training picks the level per sample and step" in caplog.text


def test_the_operation_penalty_cuts_spikes_and_its_target_switches_it_off():
    """Same seed, same data: with the operation penalty the compiled model fires clearly
    less than without; with a target above the share reached the penalty is 0 and the
    trained weights are exactly those trained without it. The penalized model's compiled
    masked graph still predicts exactly what the trainer predicts."""
    import torch

    from snncc.config import CompileConfig
    from snncc.passes.masks import apply_masks
    from snncc.train import SpQuantTrainer
    from snncc.train.masks import SparsityMasks
    from test_train import FAST, data, tiny

    def train(**kw):
        hook = SparsityMasks(neg_mask=True, **kw)
        tr = SpQuantTrainer(tiny(), data(), 4, quantizer="apot", state_quant="ternary", hooks=[hook], lr=0.01,
                            **FAST)
        tr.train(3)
        g, _ = apply_masks(tr.net.view.int_graph, CompileConfig(**hook.compile_options()))
        r = R.run(g, tr.data["x_test"])
        assert np.array_equal(R.predict(g, r), tr.predict(tr.data["x_test"]))
        return hook, tr, int(r["2"].sum() + r["5"].sum())

    _, plain, spikes = train()
    hook, _, fewer = train(op_penalty=20.0)
    assert 0 < hook.op_share < 1 and fewer < 0.85 * spikes
    hook, off, same = train(op_penalty=20.0, op_target=0.9)
    assert hook.op_share < 0.9 and same == spikes
    for a, b in zip(plain.net.parameters(), off.net.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kw, words", [
    (dict(op_penalty=-1.0), "op_penalty = -1.0: need a finite number >= 0"),
    (dict(op_penalty=float("nan")), "op_penalty = nan"),
    (dict(gate_penalty=-0.5), "gate_penalty = -0.5"),
    (dict(op_target=1.0), r"op_target = 1.0: need a share of the operations in \[0, 1\)"),
    (dict(op_target=-0.1), "op_target = -0.1"),
    (dict(gate_gain=0.0), "gate_gain = 0.0: need a finite number > 0"),
    (dict(op_count="ops"), "op_count = 'ops': need 'events' .* or 'spikes'"),
])
def test_bad_penalty_values_are_clear_errors(kw, words):
    from snncc.train.masks import SparsityMasks

    with pytest.raises(SnnccError, match=words):
        SparsityMasks(neg_mask=True, **kw)


def test_training_with_a_fixed_spatial_level_agrees_with_the_compiled_masked_model(tmp_path):
    """spatial_level="fixed": the trainer's levels are those ``calibrate_spatial`` finds on
    the same calibration images (the first train images), and with them (plus the negative
    mask and a learned channel gate) the compiled model predicts exactly what the trainer
    predicts, with the spatial mask skipping updates."""
    import torch

    from snncc.config import CompileConfig
    from snncc.passes.masks import apply_masks, calibrate_spatial
    from snncc.train import SpQuantTrainer
    from snncc.train.masks import SparsityMasks
    from test_train import FAST, data, tiny

    torch.manual_seed(0)
    hook = SparsityMasks(neg_mask=True, spatial_sparsity=0.35, channel_threshold=0.47, gate_penalty=0.5,
                         gate_init=0.0, spatial_level="fixed", spatial_every=2, calib_images=16)
    tr = SpQuantTrainer(tiny(), data(), 4, quantizer="apot", state_quant="ternary", hooks=[hook], **FAST)
    first = dict(hook.levels)
    assert sorted(first) == ["2", "5"] and all(v >= 0 for v in first.values())  # calibrated at setup
    for g in hook.gates.values():
        torch.nn.init.normal_(g.weight, 0.0, 2.0)
    tr.train(1)
    path = hook.save_gates(tmp_path / "gates.npz")
    g, _ = apply_masks(tr.net.view.int_graph, CompileConfig(neg_mask=True, channel_gates=str(path)))
    x0 = tr.data["x_train"][:16]
    calibrated = calibrate_spatial(g.copy(), x0.reshape((len(x0),) + tuple(g.node(g.input_name).shape)), 0.35)
    assert {n: calibrated.node(n).spatial_level for n in hook.levels} == hook.levels  # calibrated identically
    for n, level in hook.levels.items():  # the trainer's levels passed through
        g.set(n, g.node(n).replace(spatial_level=level))
    x = tr.data["x_test"]
    assert np.array_equal(R.predict(g, R.run(g, x)), tr.predict(x))
    sim, skipped = R.Simulation(g, len(x)), 0
    for t in range(g.meta["steps"]):
        sim.advance(R.prepare_input(g, x)[:, t:t + 1])
        skipped += sum(sim.states[n].masked["spatial"].sum() for n in hook.levels)
    assert skipped > 0  # the comparison saw the spatial mask act


@pytest.mark.parametrize("kw, words", [
    (dict(spatial_level="kth"), "spatial_level = 'kth': need 'per-step' .* or 'fixed'"),
    (dict(spatial_level="fixed", spatial_every=0), "spatial_every = 0: need an integer >= 1"),
    (dict(spatial_level="fixed", calib_images=2.5), "calib_images = 2.5: need an integer >= 1"),
])
def test_bad_spatial_level_options_are_clear_errors(kw, words):
    from snncc.train.masks import SparsityMasks

    with pytest.raises(SnnccError, match=words):
        SparsityMasks(neg_mask=True, spatial_sparsity=0.35, **kw)


def test_the_events_count_of_the_operation_penalty_is_the_reports_count():
    """op_count="events": the operations the penalty charges for a batch (all steps) are
    exactly the synaptic operations ``snncc report`` measures on the compiled masked model
    for the same images (each synapse fed by spikes: nonzero inputs x fan-out, so a pooled
    window once however many spikes it holds); "spikes" charges the pooled layer per spike
    (fan-out / 4) and counts differently. Both count every neuron firing alike."""
    import torch

    from snncc.config import CompileConfig
    from snncc.passes.masks import apply_masks
    from snncc.reports.report import measure_ops
    from snncc.train import SpQuantTrainer
    from snncc.train.masks import SparsityMasks, path_events
    from test_train import FAST, data, tiny

    s = torch.zeros(1, 1, 4, 4)  # 2x2 windows holding 0, 1, 2 and 4 spikes
    s[0, 0, 0, 2] = s[0, 0, 2, 0] = s[0, 0, 3, 1] = 1
    s[0, 0, 2:, 2:] = 1
    fan = torch.arange(1.0, 5.0, dtype=torch.float64).reshape(1, 2, 2)  # per pooled input: 1 2 / 3 4
    assert path_events(s, [((((2, 2), (2, 2), (0, 0)),), fan), ((), torch.ones(1, 4, 4))]).item() == 2 + 3 + 4 + 7

    charged = {}
    for count in ("events", "spikes"):
        torch.manual_seed(0)
        hook = SparsityMasks(neg_mask=True, spatial_sparsity=0.35, spatial_level="fixed", calib_images=16,
                             op_penalty=1.0, op_count=count)
        tr = SpQuantTrainer(tiny(), data(), 4, quantizer="apot", state_quant="ternary", hooks=[hook], **FAST)
        x = tr.data["x_test"]
        tr.net.eval()
        hook._ops = []
        with torch.enable_grad():
            tr.net(tr._x(x))
        charged[count] = float(torch.stack(hook._ops).sum().detach())
        full = hook._full
    g, _ = apply_masks(tr.net.view.int_graph, CompileConfig(neg_mask=True))
    for n, level in hook.levels.items():
        g.set(n, g.node(n).replace(spatial_level=level))
    ops = measure_ops(g, x, progress=False)
    fed_by_spikes = [n for n, r in ops.items() if "dense_macs" in r and g.inputs(n) != [g.input_name]]
    assert sorted(fed_by_spikes) == ["4.0", "5.shortcut", "7"]  # the residual conv, its shortcut, the linear
    measured = len(x) * sum(ops[n].get("acs", 0.0) + ops[n].get("macs", 0.0) for n in fed_by_spikes)
    assert measured > 0 and charged["events"] == pytest.approx(measured, rel=1e-12)
    assert charged["spikes"] != pytest.approx(measured, rel=1e-3)
    assert full == hook._full  # every neuron firing: the same count both ways


def test_fan_out_is_the_events_of_each_input_alone():
    """OpDef.fan_out of convs (strides, padding, dilation, groups) and dense layers: the
    events of each one-hot input, so that the events of any 0/1 input are its sum over
    the nonzero inputs (what the operation penalty's "events" count rests on)."""
    from snncc.ir.nodes import IntConv, IntDense
    from snncc.ops import op_def

    rng = np.random.default_rng(0)
    cases = [(IntConv(weight=np.ones((4, 3, 3, 3), np.int64), padding=(1, 1)), (3, 5, 6)),
             (IntConv(weight=np.ones((4, 1, 3, 2), np.int64), stride=(2, 1), padding=(1, 0), dilation=(1, 2),
                      groups=2), (2, 7, 6)),
             (IntConv(weight=np.ones((6, 1, 5, 5), np.int64), stride=(2, 2), groups=6), (6, 9, 8)),
             (IntDense(weight=np.ones((5, 12), np.int64)), (12,))]
    for node, shape in cases:
        d = op_def(node)
        fan = d.fan_out(node, shape)
        assert fan.shape == shape and fan.dtype == np.int64
        for i in range(fan.size):
            hot = np.zeros(fan.size, np.int64)
            hot[i] = 1
            assert d.events(node, hot.reshape((1,) + shape)) == fan.flat[i]
        nz = (rng.random((3,) + shape) < 0.3).astype(np.int64)
        assert d.events(node, nz) == int((nz * fan).sum())
