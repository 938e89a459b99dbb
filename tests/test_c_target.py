"""The C target reproduces the reference interpreter bit for bit (tests/conformance.py),
builds cleanly under -Werror and the sanitizers, emits deterministic files, and stores
weights packed."""
from __future__ import annotations

import ctypes
import filecmp
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snncc.errors import ArtifactError, SnnccError
from snncc.ir.graph import Graph
from snncc.ir.nodes import IntDense, IntInput, IntLIF
from snncc.reference import interpreter
from snncc.reference import kernels as K
from snncc.runtime import ROOT as RUNTIME
from snncc.targets import c as ctarget
from snncc.targets import get
from snncc.targets.c import emitter, runner

sys.path.insert(0, str(Path(__file__).parent))
import conformance  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="no C compiler")
RANDOM_SEEDS = range(30)


def _emit_and_build(graph: Graph, out_dir: Path) -> Path:
    ctarget.emit(graph, out_dir)
    ctarget.build(out_dir)
    return out_dir


def prebuild(graphs: dict, root: Path) -> dict:
    """Emit and compile many graphs concurrently (compilation dominates the test time)."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        futures = {k: pool.submit(_emit_and_build, g, root / str(k)) for k, g in graphs.items()}
        return {k: (graphs[k], f.result()) for k, f in futures.items()}


def compare(graph: Graph, out_dir: Path, x: np.ndarray, probe_state: bool = True, emit: bool = True,
            **kw) -> dict:
    """Emit (unless prebuilt), run both, and assert equal keys and bit-identical arrays."""
    if emit:
        ctarget.emit(graph, out_dir)
    ref = interpreter.run(graph, x, probe_state=probe_state, steps=kw.get("steps"))
    got = ctarget.simulate(out_dir, x, probe_state=probe_state, **kw)
    assert sorted(got) == sorted(ref)
    for key in ref:
        assert got[key].dtype == np.int64 and got[key].shape == ref[key].shape, key
        if not np.array_equal(got[key], ref[key]):
            diff = np.argwhere(got[key] != ref[key])[0]
            pytest.fail(f"{key}: first mismatch at {tuple(diff)}: C {got[key][tuple(diff)]} "
                        f"!= reference {ref[key][tuple(diff)]}")
    return got


# ------------------------------------------------------------------ conformance
@pytest.fixture(scope="module")
def named_builds(tmp_path_factory):
    return prebuild({name: build() for name, build in conformance.CASES.items()}, tmp_path_factory.mktemp("cases"))


@pytest.fixture(scope="module")
def random_builds(tmp_path_factory):
    graphs = {s: conformance.random_graph(np.random.default_rng(s)) for s in RANDOM_SEEDS}
    return prebuild(graphs, tmp_path_factory.mktemp("random"))


@pytest.mark.parametrize("name", sorted(conformance.CASES))
def test_named_case(name, named_builds):
    g, out = named_builds[name]
    compare(g, out, conformance.random_input(g, 3, np.random.default_rng(7)), emit=False)


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_graph(seed, random_builds):
    g, out = random_builds[seed]
    compare(g, out, conformance.random_input(g, 3, np.random.default_rng(seed + 1000)), emit=False)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_graph_hypothesis(data):
    g = conformance.random_graph(data.draw)
    x = conformance.random_input(g, 2, np.random.default_rng(data.draw(st.integers(0, 2**16))))
    with tempfile.TemporaryDirectory() as tmp:
        compare(g, Path(tmp) / "c", x)


def test_random_graphs_cover_the_features():
    tags = set().union(*(conformance.features(conformance.random_graph(np.random.default_rng(s)))
                         for s in RANDOM_SEEDS))
    want = {"IntConv", "IntDense", "SumPool", "MaxPool", "Flatten", "Add", "delay0", "delay1", "delay2",
            "weight_exp-1", "weight_exp0", "weight_exp1", "wide_weights", "narrow_weights", "out_bits", "groups",
            "stride2", "dilation2", "padding", "sumpool_padding", "reset_zero", "reset_subtract", "reset_none",
            "quant_none", "quant_ternary", "quant_binary", "u_saturate", "u_wrap", "u_wrap_lava", "v_saturate",
            "v_wrap", "v_wrap_lava", "fires", "readout", "current_decay", "no_current", "per_channel", "scalar"}
    assert want <= tags, sorted(want - tags)


def test_without_probes_static_input_and_steps(tmp_path):
    g = conformance.CASES["residual_add"]()
    x = conformance.random_input(g, 2, np.random.default_rng(3))[:, 0]  # (N, *shape): repeated over T
    got = compare(g, tmp_path / "c", x, probe_state=False, steps=9)
    assert not any("/" in k for k in got) and got["output"].shape[1] == 9


def test_target_registry_and_interface(tmp_path):
    assert get("c") is ctarget
    files = ctarget.emit(conformance.CASES["delays"](), tmp_path / "c")
    names = sorted(p.name for p in files)
    assert names == ["Makefile", "c_manifest.json", "main.c", "model.c", "model.h", "snncc_rt.c", "snncc_rt.h"]


def test_makefile_builds_standalone(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    ctarget.emit(conformance.CASES["delays"](), tmp_path / "c")
    subprocess.run(["make", "-s"], cwd=tmp_path / "c", check=True, capture_output=True)
    assert (tmp_path / "c" / emitter.BINARY).is_file()


# ------------------------------------------------------------------ sanitizers, build errors
def test_sanitized_build_runs(tmp_path):
    """ASan + UBSan (fatal), with -DSNNCC_CHECKED: every store checks its value fits."""
    for name, g in (("residual_add", conformance.CASES["residual_add"]()),
                    ("wrap_lava", conformance.CASES["overflow_wrap_lava"]()),
                    ("random", conformance.random_graph(np.random.default_rng(11)))):
        out = tmp_path / name
        ctarget.emit(g, out)
        binary = ctarget.build(out, extra_cflags=("-DSNNCC_CHECKED",), sanitize=True)
        assert binary.name == emitter.BINARY_ASAN
        x = conformance.random_input(g, 2, np.random.default_rng(5))
        got = ctarget.simulate(out, x, probe_state=True, sanitize=True)
        ref = interpreter.run(g, x, probe_state=True)
        assert sorted(got) == sorted(ref) and all(np.array_equal(got[k], ref[k]) for k in ref)


def test_missing_compiler_is_a_clear_error(tmp_path, monkeypatch):
    ctarget.emit(conformance.CASES["delays"](), tmp_path / "c")
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SnnccError, match="needs a C compiler"):
        ctarget.build(tmp_path / "c")


def test_compile_error_shows_compiler_stderr(tmp_path):
    out = tmp_path / "c"
    ctarget.emit(conformance.CASES["delays"](), out)
    with (out / "model.c").open("a") as f:
        f.write("#error boom from the test\n")
    with pytest.raises(SnnccError, match="boom from the test"):
        ctarget.build(out)


def test_bad_inputs(tmp_path):
    with pytest.raises(ArtifactError):
        ctarget.simulate(tmp_path / "nothing", np.zeros((1, 4), np.int64))
    g = conformance.CASES["delays"]()
    ctarget.emit(g, tmp_path / "c")
    with pytest.raises(SnnccError, match="integer"):
        ctarget.simulate(tmp_path / "c", np.zeros((1, 8)))
    with pytest.raises(SnnccError, match="input values"):
        ctarget.simulate(tmp_path / "c", np.full((1, 8), 2))


# ------------------------------------------------------------------ determinism, sizes, snapshot
def test_emit_is_deterministic(tmp_path):
    for name, g in (("odd", conformance.CASES["odd_names"]()),
                    ("rand", conformance.random_graph(np.random.default_rng(4)))):
        a, b = tmp_path / name / "a", tmp_path / name / "b"
        fa = [p.name for p in ctarget.emit(g, a)]
        fb = [p.name for p in ctarget.emit(g, b)]
        assert fa == fb
        match, mismatch, errors = filecmp.cmpfiles(a, b, fa, shallow=False)
        assert not mismatch and not errors


def _declared_weight_bytes(model_c: str) -> int:
    return sum(int(n) for n in re.findall(r"static const uint8_t \w+_w\[(\d+)\]", model_c))


def test_weights_are_packed(tmp_path):
    g = Graph()
    g.meta["steps"] = 2
    rng = np.random.default_rng(0)
    cur = g.add("x", IntInput(shape=(300,), encoding="spikes"))
    total_bits, n_layers = 0, 0
    for i, bits in enumerate((2, 3, 4, 5, 8, 13)):
        w = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (50 + i, 300 if i == 0 else 49 + i))
        cur = g.add(f"fc{i}", IntDense(weight=w, weight_bits=bits), [cur])
        cur = g.add(f"lif{i}", IntLIF(threshold=np.array([4], np.int64), act_shift=0), [cur])
        total_bits += bits * w.size
        n_layers += 1
    g.outputs = [cur]
    ctarget.emit(g, tmp_path / "c")
    man = emitter.manifest(emitter.plan(g))
    assert man["weights_bits"] == total_bits
    assert total_bits / 8 <= man["weights_bytes"] <= math.ceil(total_bits / 8) + n_layers
    assert _declared_weight_bytes((tmp_path / "c" / "model.c").read_text()) == man["weights_bytes"]
    compare(g, tmp_path / "c", (rng.random((2, 2, 300)) < 0.3).astype(np.int64))


def _tiny() -> Graph:
    g = Graph()
    g.meta.update(name="tiny", steps=3)
    g.add("in", IntInput(shape=(4,), encoding="spikes"))
    g.add("fc1", IntDense(weight=np.array([[1, -1, 2, -2], [0, 3, -4, 1]], np.int64), weight_bits=3), ["in"])
    g.add("lif1", IntLIF(threshold=np.array([1, 2], np.int64), du=2048, act_shift=0, v_bits=8), ["fc1"])
    g.outputs = ["lif1"]
    return g


def test_snapshot_of_a_tiny_model(tmp_path):
    ctarget.emit(_tiny(), tmp_path)
    text = (tmp_path / "model.c").read_text()
    for line in [
        '/* model.c - generated by snncc (C target) from graph "tiny"; do not edit.',
        '/* ==== input "in": spikes, shape [4] */',
        '/* ==== layer 0 "fc1": IntDense -> [2] int8_t, int32 accumulator',
        "/* 8 weights x 3 bits, packed: 3 bytes */",
        "static const uint8_t L001_fc1_w[3] = {",
        "    0xb9, 0x8c, 0x31,",
        "static const snn_dense_t L001_fc1_p = { L001_fc1_w, 3, 0, 0, 0 };",
        '/* ==== layer 1 "lif1": IntLIF -> [2] int8_t',
        "static const int8_t L002_lif1_threshold[2] = {",
        "static int8_t L002_lif1_u_buf[2];",
        "    2048, 0, 0, 24, 2, 8, 0, 0, 0, 1,",
        '    { SNN_DENSE, "fc1", &L001_fc1_t, L001_fc1_in, 1, &L001_fc1_p, 0 },',
        '    { SNN_LIF, "lif1", &L002_lif1_t, L002_lif1_in, 1, &L002_lif1_p, 0 },',
        '    { "lif1", &L002_lif1_t, 0 },',
        '    { "lif1/v", &L002_lif1_v, 1 },',
        '    { "lif1/u", &L002_lif1_u, 1 },',
        '    { "output", &L002_lif1_t, 0 },',
    ]:
        assert line + "\n" in text, line


def test_odd_names_are_sanitized(tmp_path):
    g = conformance.CASES["odd_names"]()
    ctarget.emit(g, tmp_path)
    text = (tmp_path / "model.c").read_text()
    assert "L001_layer_1_fc_____q______t" in text and "L004_int_t" in text and "L003_for_t" in text
    assert '"layer-1.fc *\\\\ \\"q\\" \\?\\?="' in text
    man = emitter.manifest(emitter.plan(g))
    assert [layer["name"] for layer in man["layers"]] == [n for n in g.order() if n != "x"]


def test_buffer_types_follow_value_bounds(tmp_path):
    man = emitter.manifest(emitter.plan(conformance.CASES["wide_accumulator"]()))
    fc, lif = man["layers"]
    assert fc["acc"] == "int64" and fc["out_dtype"] == "int64_t" and lif["v_dtype"] == "int64_t"
    man = emitter.manifest(emitter.plan(_tiny()))
    fc, lif = man["layers"]
    assert fc["acc"] == "int32" and fc["out_dtype"] == "int8_t" and lif["out_dtype"] == "int8_t"
    assert lif["v_dtype"] == "int8_t" and lif["u_dtype"] == "int8_t"  # 8-bit saturating v; |u| <= 2 |a| (du = 2048)
    assert man["input"]["dtype"] == "int8_t"
    lava = emitter.manifest(emitter.plan(conformance.CASES["overflow_wrap_lava"]()))
    assert lava["layers"][1]["u_dtype"] == "int64_t"  # growing wrap_lava state: no bound, widest type


# ------------------------------------------------------------------ unit kernels vs reference
@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    lib = tmp_path_factory.mktemp("rt") / "libsnncc_rt.so"
    subprocess.run([runner.find_compiler(), *runner.CFLAGS, "-shared", "-fPIC", "-o", str(lib),
                    str(RUNTIME / "src" / "snncc_rt.c"), "-I", str(RUNTIME / "include")], check=True)
    so = ctypes.CDLL(str(lib))
    i64, i32, u32 = ctypes.c_int64, ctypes.c_int32, ctypes.c_uint32
    for fn, args, res in (("snn_decay", (i64, i32), i64), ("snn_overflow", (i64, i32, i32), i64),
                          ("snn_shift", (i64, i32), i64), ("snn_quant", (i64, i64, i32), i64),
                          ("snn_wget", (ctypes.c_char_p, u32, u32), i32)):
        getattr(so, fn).argtypes, getattr(so, fn).restype = args, res
    return so


def test_unit_decay(rt):
    xs = [0, 1, -1, 2, -2, 4095, -4095, 4097, -4097, 12345, -12345, 2**40 + 7, -(2**40) - 7]
    for d in (0, 1, 7, 2048, 4095, 4096):
        ref = K.decay(np.array(xs, np.int64), d)
        assert [rt.snn_decay(x, d) for x in xs] == ref.tolist(), d


def test_unit_overflow_at_the_register_edges(rt):
    for bits in (1, 2, 5, 8, 24, 40):
        m = 1 << (bits - 1)
        xs = sorted({s * v for v in (0, 1, m - 1, m, m + 1, 2 * m - 1, 2 * m, 2 * m + 1, 3 * m, 5 * m + 3)
                     for s in (1, -1)})
        for mode, code in (("saturate", 0), ("wrap", 1), ("wrap_lava", 2)):
            ref = K.overflow(np.array(xs, np.int64), bits, mode)
            assert [rt.snn_overflow(x, bits, code) for x in xs] == ref.tolist(), (bits, mode)


def test_unit_shift_floors_negative_accumulators(rt):
    xs = list(range(-9, 10)) + [-(2**40) - 1, 2**40 + 1]
    for e in range(-4, 4):
        ref = K.shift(np.array(xs, np.int64), e)
        assert [rt.snn_shift(x, e) for x in xs] == ref.tolist(), e
    assert rt.snn_shift(-3, -2) == -1 and rt.snn_shift(-1, -1) == -1


def test_unit_state_quant(rt):
    vs = np.arange(-12, 13, dtype=np.int64)
    for level in (1, 2, 3, 5, 8):
        for kind, code in (("none", 0), ("ternary", 1), ("binary", 2)):
            ref = K.state_quant(vs, np.int64(level), kind)
            assert [rt.snn_quant(int(v), level, code) for v in vs] == ref.tolist(), (level, kind)


def test_unit_packed_weight_roundtrip(rt):
    rng = np.random.default_rng(0)
    for bits in range(1, 33):
        w = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), 37, dtype=np.int64)
        w[:2] = [-(1 << (bits - 1)), (1 << (bits - 1)) - 1]
        packed = emitter.pack_weights(w, bits)
        assert len(packed) == math.ceil(w.size * bits / 8)
        assert [rt.snn_wget(packed, i, bits) for i in range(w.size)] == w.tolist(), bits
    assert emitter.pack_weights(np.array([1, -1, 2, -2, 0, 3, -4, 1]), 3) == bytes([0xb9, 0x8c, 0x31])
