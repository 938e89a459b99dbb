"""The ONNX target reproduces the reference interpreter bit for bit (tests/conformance.py)
through onnxruntime, passes the ONNX checker's full check, writes deterministic bytes
and names its nodes after the IR layers."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from snncc.errors import ArtifactError, SnnccError  # noqa: E402
from snncc.ir import serialize  # noqa: E402
from snncc.ir.graph import Graph  # noqa: E402
from snncc.ir.nodes import IntConv, IntInput, IntLIF, MaxPool, SumPool  # noqa: E402
from snncc.reference import interpreter  # noqa: E402
from snncc.targets import get  # noqa: E402
from snncc.targets import onnx as otarget  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import conformance  # noqa: E402

RANDOM_SEEDS = range(40)


def _emit(graph: Graph, build_dir: Path, windows: str = "auto") -> Path:
    """A build directory as the compiler writes it: model.json/.npz + onnx/."""
    serialize.save(graph, build_dir)
    otarget.emit(graph, build_dir / "onnx", windows=windows)
    return build_dir / "onnx"


def compare(graph: Graph, out_dir: Path, x: np.ndarray, probe_state: bool = True, steps=None) -> dict:
    ref = interpreter.run(graph, x, probe_state=probe_state, steps=steps)
    got = otarget.simulate(out_dir, x, probe_state=probe_state, steps=steps)
    assert sorted(got) == sorted(ref)
    for key in ref:
        assert got[key].dtype == np.int64 and got[key].shape == ref[key].shape, key
        if not np.array_equal(got[key], ref[key]):
            diff = tuple(np.argwhere(got[key] != ref[key])[0])
            pytest.fail(f"{key}: first mismatch at {diff}: onnx {got[key][diff]} != reference {ref[key][diff]}")
    return got


def body_of(model) -> "onnx.GraphProto":
    (scan,) = [n for n in model.graph.node if n.op_type == "Scan"]
    return scan.attribute[0].g


# ------------------------------------------------------------------ conformance
@pytest.mark.parametrize("windows", ["auto", "int64"])
@pytest.mark.parametrize("name", sorted(conformance.CASES))
def test_named_case(name, windows, tmp_path):
    g = conformance.CASES[name]()
    out = _emit(g, tmp_path, windows)
    x = conformance.random_input(g, 3, np.random.default_rng(7))
    compare(g, out, x, probe_state=True)
    compare(g, out, x, probe_state=False)


def test_random_graphs(tmp_path):
    seen = Counter()
    for seed in RANDOM_SEEDS:
        g = conformance.random_graph(np.random.default_rng(seed))
        seen.update(conformance.features(g))
        windows = "int64" if seed % 4 == 3 else "auto"
        out = _emit(g, tmp_path / str(seed), windows)
        compare(g, out, conformance.random_input(g, 3, np.random.default_rng(seed)))
    for tag in ("IntConv", "SumPool", "MaxPool", "Add", "delay2", "out_bits", "quant_ternary", "quant_binary",
                "reset_subtract", "u_wrap_lava", "v_wrap", "v_saturate", "current_decay", "weight_exp-1", "groups"):
        assert seen[tag], f"random graphs never covered {tag}"


def test_random_masked_graphs(tmp_path):
    """Random graphs with random sparsity masks on their firing layers (conformance.with_masks:
    negative, spatial, channel gate with ties at its level): equal to the reference."""
    for seed in range(20):
        g = conformance.random_masked_graph(seed)
        out = _emit(g, tmp_path / str(seed), "int64" if seed % 4 == 3 else "auto")
        compare(g, out, conformance.random_input(g, 3, np.random.default_rng(seed + 2000)))


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_hypothesis_graphs(tmp_path_factory, data):
    g = conformance.random_graph(data.draw)
    out = _emit(g, tmp_path_factory.mktemp("hyp"))
    compare(g, out, conformance.random_input(g, 2, np.random.default_rng(0)))


# ------------------------------------------------------------------ exactness fallbacks
def _huge_graph() -> Graph:
    """16-bit weights on 8-bit pixels: conv sums beyond 2^24 (a float32 Conv would round),
    a max pool of values beyond 2^24 (float64 MaxPool), and after a shift by 2^30 a max
    pool and a sum pool beyond 2^53 (beyond float64: int64 only)."""
    c = conformance.Choices(np.random.default_rng(3))
    g = Graph()
    g.meta.update(name="huge", steps=3)
    x = g.add("x", IntInput(shape=(2, 6, 6), bits=8))
    w = conformance.weights(c, (3, 2, 3, 3), 16, density=1.0)
    cv = g.add("conv", IntConv(weight=w, weight_bits=16, padding=(1, 1)), [x])
    mid = g.add("pool_mid", MaxPool(kernel=(2, 2), stride=(2, 2)), [cv])
    g.add("lif_a", IntLIF(threshold=np.array([1 << 20], np.int64), act_shift=0, v_bits=40, u_bits=40), [mid])
    big = g.add("conv_big", IntConv(weight=w, weight_bits=16, padding=(1, 1), weight_exp=30), [x])
    mp = g.add("pool", MaxPool(kernel=(2, 2), stride=(2, 2)), [big])
    sp = g.add("sumpool", SumPool(kernel=(2, 2), stride=(1, 1)), [mp])
    g.outputs = [g.add("lif_b", IntLIF(fires=False, act_shift=0, v_bits=62, u_bits=62, v_overflow="wrap"), [sp])]
    return g


def test_exactness_fallbacks(tmp_path):
    g = _huge_graph()
    b, acc = otarget.value_bounds(g)
    assert acc["conv"] >= 1 << 24 and 1 << 24 <= b["pool_mid"] < 1 << 53
    assert b["pool"] >= 1 << 53 and acc["sumpool"] >= 1 << 53
    out = _emit(g, tmp_path)
    body = body_of(onnx.load(out / "model.onnx"))
    ops = Counter(n.op_type for n in body.node)
    assert ops["Conv"] == 0, "a float32 Conv where it is not exact"
    assert ops["Gather"] == 4 and ops["ReduceMax"] == 1 and ops["ReduceSum"] == 0
    (mp,) = [n for n in body.node if n.op_type == "MaxPool"]
    cast = next(m for m in body.node if mp.input[0] in m.output)
    assert cast.op_type == "Cast" and cast.attribute[0].i == onnx.TensorProto.DOUBLE
    rng = np.random.default_rng(0)
    x = np.concatenate([np.full((1, 3, 2, 6, 6), 255), rng.integers(0, 256, (3, 3, 2, 6, 6))]).astype(np.uint8)
    compare(g, out, x)


def test_float_ops_only_when_proven_exact(tmp_path):
    g = conformance.CASES["maxpool"]()
    out = _emit(g, tmp_path)
    body = body_of(onnx.load(out / "model.onnx"))
    ops = Counter(n.op_type for n in body.node)
    assert ops["Conv"] == 1 and ops["MaxPool"] == 2 and ops["Gather"] == 0
    for n in body.node:
        if n.op_type in ("Conv", "MaxPool"):
            src = n.input[0]
            cast = next(m for m in body.node if src in m.output)
            assert cast.op_type == "Cast"


# ------------------------------------------------------------------ the model file
def test_checker_opset_and_types(tmp_path):
    g = conformance.CASES["lava_cuba_lif"]()
    out = _emit(g, tmp_path)
    for fname in (otarget.MODEL, otarget.PROBE_MODEL):
        model = onnx.load(out / fname)
        onnx.checker.check_model(model, full_check=True)
        assert model.ir_version <= 13
        assert [(o.domain, o.version) for o in model.opset_import] == [("", otarget.emitter.OPSET)]
        body = body_of(model)
        # standard operators only, integer state: every state input of the body is int64
        assert all(n.domain == "" for n in body.node)
        for vi in body.input[:-1]:
            assert vi.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    names = {o.name for o in onnx.load(out / otarget.PROBE_MODEL).graph.output}
    assert names == {"lif1", "lif1/v", "lif1/u", "readout", "readout/v", "readout/u", "output"}
    # register widths are visible as explicit ops
    node_names = {n.name for n in body_of(onnx.load(out / otarget.MODEL)).node}
    assert {"lif1/u.wrap_lava24", "lif1/v.saturate24", "lif1/spike", "dense1/matmul"} <= node_names


def test_avoided_operators(tmp_path):
    """onnxruntime 1.31's int64 Sign (wrong beyond 2^31), ReduceSum (rounds beyond 2^53)
    and Max are never used; Where, MatMul with ones and ReduceMax stand in."""
    for name, build in conformance.CASES.items():
        for windows in ("auto", "int64"):
            model = otarget.build_model(build(), True, windows)
            used = {n.op_type for n in body_of(model).node} | {n.op_type for n in model.graph.node}
            assert not used & {"Sign", "ReduceSum", "Max", "Min"}, (name, used)


def test_deterministic_bytes(tmp_path):
    for name in ("residual_add", "odd_names", "delays"):
        g = conformance.CASES[name]()
        otarget.emit(g, tmp_path / "a" / name)
        otarget.emit(conformance.CASES[name](), tmp_path / "b" / name)
        for fname in (otarget.MODEL, otarget.PROBE_MODEL):
            assert (tmp_path / "a" / name / fname).read_bytes() == (tmp_path / "b" / name / fname).read_bytes()


def test_node_names_carry_layer_names(tmp_path):
    g = conformance.CASES["odd_names"]()
    out = _emit(g, tmp_path)
    model = onnx.load(out / otarget.MODEL)
    body = body_of(model)
    for layer, op in g.items():
        mine = [n for n in body.node if n.name.startswith(layer + "/")]
        assert mine, f"no ONNX node named after {layer!r}"
        assert all(f"'{layer}'" in n.doc_string and op.kind in n.doc_string for n in mine)
    x = conformance.random_input(g, 2, np.random.default_rng(0))
    compare(g, out, x)


def test_compiled_torch_model(example_model, pixels, tmp_path):
    """End to end: snncc.compile(..., target="onnx"), node doc_strings carry the torch
    module names, and the ONNX model matches the reference on real-size input."""
    from snncc import compiler

    b = compiler.compile(example_model, (1, 1, 28, 28), target="onnx", out=tmp_path)
    assert get("onnx") is otarget
    compare(b.graph, tmp_path / "onnx", pixels[:3])
    docs = " ".join(n.doc_string for n in body_of(onnx.load(tmp_path / "onnx" / otarget.MODEL)).node)
    for name, op in b.graph.items():
        if op.source and op.kind != "IntInput":
            assert f"source: {op.source}" in docs


def test_any_batch_and_steps(tmp_path):
    """Scan over time: one model runs any N and T; a static input repeats over meta steps."""
    g = conformance.CASES["delays"]()
    out = _emit(g, tmp_path)
    rng = np.random.default_rng(1)
    for n, t in ((1, 1), (5, 3), (2, 13)):
        compare(g, out, conformance.random_input(g, n, rng, steps=t))
    static = conformance.random_input(g, 4, rng, steps=1)[:, 0]
    got = compare(g, out, static, probe_state=False)
    assert got["output"].shape[1] == g.meta["steps"]
    compare(g, out, static, probe_state=False, steps=4)


def test_errors(tmp_path):
    g = conformance.CASES["binary_membrane"]()
    out = _emit(g, tmp_path)
    with pytest.raises(SnnccError, match="input values"):
        otarget.simulate(out, np.full((1, 8, 10), 2, np.int64))
    with pytest.raises(ArtifactError, match="model.onnx is missing"):
        otarget.simulate(tmp_path / "nothing", np.zeros((1, 8, 10), np.int64))
    with pytest.raises(SnnccError, match="windows"):
        otarget.emit(g, tmp_path / "x", windows="float")
