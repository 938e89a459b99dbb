"""The C target reproduces the reference interpreter bit for bit (tests/conformance.py),
builds cleanly under -Werror and the sanitizers, emits deterministic files, and stores
weights packed."""
from __future__ import annotations

import ctypes
import dataclasses
import filecmp
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snncc.errors import ArtifactError, SnnccError
from snncc.ir.graph import Graph
from snncc.ir.nodes import DECAY_ONE, Add, Flatten, IntConv, IntDense, IntInput, IntLIF, MaxPool, SumPool
from snncc.reference import interpreter
from snncc.reference import kernels as K
from snncc.runtime import ROOT as RUNTIME
from snncc.targets import c as ctarget
from snncc.targets import get
from snncc.targets.c import emitter, runner
from snncc.targets.c.formats import FORMATS, nbytes

sys.path.insert(0, str(Path(__file__).parent))
import conformance  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="no C compiler")
RANDOM_SEEDS = range(30)  # the coverage test draws all; the fast suite compiles the first 12
FAST_SEEDS = range(12)
MASKED_SEEDS = range(40)  # random graphs with random masks: the fast suite compiles the first 12
FAST_MASKED = range(12)


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
    graphs = {s: conformance.random_graph(np.random.default_rng(s)) for s in FAST_SEEDS}
    return prebuild(graphs, tmp_path_factory.mktemp("random"))


@pytest.mark.parametrize("name", sorted(conformance.CASES))
def test_named_case(name, named_builds):
    g, out = named_builds[name]
    compare(g, out, conformance.random_input(g, 3, np.random.default_rng(7)), emit=False)


@pytest.mark.parametrize("seed", FAST_SEEDS)
def test_random_graph(seed, random_builds):
    g, out = random_builds[seed]
    compare(g, out, conformance.random_input(g, 3, np.random.default_rng(seed + 1000)), emit=False)


@pytest.mark.slow
@pytest.mark.parametrize("seed", sorted(set(RANDOM_SEEDS) - set(FAST_SEEDS)))
def test_random_graph_more(seed, tmp_path):
    g = conformance.random_graph(np.random.default_rng(seed))
    compare(g, tmp_path / "c", conformance.random_input(g, 3, np.random.default_rng(seed + 1000)))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_graph_hypothesis(data):
    """Random graphs drawn by hypothesis (6 here; the slow suite draws 40 more)."""
    _hypothesis_case(data)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_graph_hypothesis_more(data):
    _hypothesis_case(data)


def _hypothesis_case(data):
    g = conformance.random_graph(data.draw)
    x = conformance.random_input(g, 2, np.random.default_rng(data.draw(st.integers(0, 2**16))))
    with tempfile.TemporaryDirectory() as tmp:
        compare(g, Path(tmp) / "c", x)


@pytest.fixture(scope="module")
def masked_builds(tmp_path_factory):
    graphs = {s: conformance.random_masked_graph(s) for s in FAST_MASKED}
    return prebuild(graphs, tmp_path_factory.mktemp("masked"))


@pytest.mark.parametrize("seed", FAST_MASKED)
def test_random_masked_graph(seed, masked_builds):
    """Random graphs with random sparsity masks (negative, spatial, channel gate) on their
    firing layers: every spike, potential and current equal to the reference's."""
    g, out = masked_builds[seed]
    compare(g, out, conformance.random_input(g, 3, np.random.default_rng(seed + 2000)), probe_state=True)


@pytest.mark.slow
@pytest.mark.parametrize("seed", sorted(set(MASKED_SEEDS) - set(FAST_MASKED)))
def test_random_masked_graph_more(seed, tmp_path):
    g = conformance.random_masked_graph(seed)
    compare(g, tmp_path / "c", conformance.random_input(g, 3, np.random.default_rng(seed + 2000)), probe_state=True)


def test_random_masks_change_the_results():
    """The masked random graphs are not the unmasked ones in disguise: on most of them the
    masks change the reference's result, every mask is drawn on some layer, and some
    masked ternary/binary layers start at v = 0 (C stores them as codes)."""
    changed, tags = 0, set()
    for seed in MASKED_SEEDS:
        g0 = conformance.random_graph(np.random.default_rng(seed))
        g = conformance.with_masks(g0, seed)
        x = conformance.random_input(g, 3, np.random.default_rng(seed + 2000))
        a, b = interpreter.run(g0, x, probe_state=True), interpreter.run(g, x, probe_state=True)
        changed += any(not np.array_equal(a[k], b[k]) for k in a)
        for name in g.order():
            op = g.node(name)
            if isinstance(op, IntLIF):
                on = {"neg": op.neg_mask, "spatial": op.spatial_level >= 0, "gate": op.gate_weight.size > 0}
                on["coded"] = any(on.values()) and op.state_quant != "none" and not op.v_init.any()
                tags |= {t for t, v in on.items() if v}
    assert changed >= 0.6 * len(MASKED_SEEDS), changed
    assert tags == {"neg", "spatial", "gate", "coded"}  # coded: a masked membrane C stores as codes


def test_random_graphs_cover_the_features():
    tags = set().union(*(conformance.features(conformance.random_graph(np.random.default_rng(s)))
                         for s in RANDOM_SEEDS))
    want = {"IntConv", "IntDense", "SumPool", "MaxPool", "Flatten", "Add", "delay0", "delay1", "delay2",
            "weight_exp-1", "weight_exp0", "weight_exp1", "wide_weights", "narrow_weights", "out_bits", "groups",
            "stride2", "dilation2", "padding", "sumpool_padding", "reset_zero", "reset_subtract", "reset_none",
            "quant_none", "quant_ternary", "quant_binary", "u_saturate", "u_wrap", "u_wrap_lava", "v_saturate",
            "v_wrap", "v_wrap_lava", "fires", "readout", "current_decay", "no_current", "per_channel", "scalar",
            "periodic_reset"}
    assert want <= tags, sorted(want - tags)


def test_without_probes_static_input_and_steps(tmp_path):
    g = conformance.CASES["residual_add"]()
    x = conformance.random_input(g, 2, np.random.default_rng(3))[:, 0]  # (N, *shape): repeated over T
    got = compare(g, tmp_path / "c", x, probe_state=False, steps=9)
    assert not any("/" in k for k in got) and got["output"].shape[1] == 9


def _cache_pattern(g: Graph, rng) -> np.ndarray:
    """Inputs whose steps repeat and change in every order the input cache meets: the
    first step all zeros (a hit on the cache's initial zeros), a a b b (misses, hits), a
    return to a, and each later sample starting with the one before's last step (a hit
    across snncc_reset)."""
    a = conformance.random_input(g, 3, rng, steps=1)[:, 0]
    a[2] = 0
    x = a[[2, 2, 0, 0, 1, 0]][None].repeat(3, axis=0)
    x[1] = a[[0, 0, 2, 2, 1, 1]]
    x[2] = a[[1, 0, 0, 2, 2, 0]]
    return x


def _cached_layers(out: Path) -> list[str]:
    man = json.loads((out / emitter.MANIFEST).read_text())
    return [L["name"] for L in man["layers"] if L["input_cache"]]


def test_input_cache_hits_and_misses(named_builds, kernel_builds):
    """The host harness keeps the sums of the layers reading the input (-DSNNCC_INPUT_CACHE,
    snncc_rt.c cache_view) and reuses them while the input's bytes stay the same: every
    case with such a layer, on inputs that repeat, change and come back, is the reference
    bit for bit (a cache that missed a change, or that kept sums across a changed input,
    fails here: the random inputs of the other tests change at every step)."""
    cases = {**{f"case:{k}": v for k, v in named_builds.items()}, **{f"kernel:{k}": v for k, v in kernel_builds.items()}}
    cached = {k: v for k, v in cases.items() if _cached_layers(v[1])}
    assert len(cached) >= 10, sorted(cached)
    for k, (g, out) in sorted(cached.items()):
        compare(g, out, _cache_pattern(g, np.random.default_rng(zlib.crc32(k.encode()))), emit=False, steps=6)


def test_input_cache_is_a_build_choice(tmp_path, monkeypatch):
    """model.c declares the cache only under -DSNNCC_INPUT_CACHE: the deployed model.o
    (without it, as the Cortex-M4 build) holds exactly the bytes the manifest's sizes say,
    the define adds exactly input_cache_bytes (the layer's sums and the input copy), and
    both builds (SNNCC_INPUT_CACHE=1 / 0) are the reference bit for bit."""
    g = conformance.CASES["sparsity_masks"]()
    out = tmp_path / "c"
    ctarget.emit(g, out)
    man = json.loads((out / emitter.MANIFEST).read_text())
    (L,) = [L for L in man["layers"] if L["input_cache"]]
    acc_bytes = {"int16": 2, "int32": 4, "int64": 8}[L["acc"]]
    n_out = int(np.prod(g.shapes()[L["name"]]))
    in_bytes = nbytes(FORMATS[man["input"]["format"]], int(np.prod(g.node("x").shape)))
    assert man["input_cache_bytes"] == n_out * acc_bytes + in_bytes > 0
    if shutil.which("nm"):  # the deployed model.o holds what the sizes say; the cache adds its bytes
        deployed, cached = _bss_symbols(out / "model.c"), _bss_symbols(out / "model.c", runner.CACHE_DEFINE)
        assert sum(deployed.values()) - deployed.pop("snn_arena") - deployed.pop("snncc_steps") == (
            man["state_bytes"] + man["spike_bytes"] + man["other_static_bytes"])
        added = {k: v for k, v in cached.items() if k not in deployed}
        assert sorted(added) == sorted(["snn_arena", "snncc_steps", f"{L['cname']}_cache_acc", f"{L['cname']}_cache_in"])
        assert sum(added.values()) - added["snn_arena"] - added["snncc_steps"] == man["input_cache_bytes"]
    x = _cache_pattern(g, np.random.default_rng(1))
    for flag in ("1", "0"):
        monkeypatch.setenv("SNNCC_INPUT_CACHE", flag)
        binary = ctarget.build(out)
        assert not runner._stale(binary, out)
        compare(g, out, x, emit=False, steps=6)
    monkeypatch.setenv("SNNCC_INPUT_CACHE", "1")
    assert runner._stale(binary, out)  # built without it: a build with it is another binary


def test_target_registry_and_interface(tmp_path):
    assert get("c") is ctarget
    files = ctarget.emit(conformance.CASES["delays"](), tmp_path / "c")
    names = sorted(p.name for p in files)
    assert names == ["Makefile", "c_manifest.json", "m4.ld", "main.c", "model.c", "model.h", "snncc_rt.c",
                     "snncc_rt.h", "startup_m4.c"]


def test_makefile_builds_standalone(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    ctarget.emit(conformance.CASES["delays"](), tmp_path / "c")
    subprocess.run(["make", "-s"], cwd=tmp_path / "c", check=True, capture_output=True)
    assert (tmp_path / "c" / emitter.BINARY).is_file()


def test_makefile_builds_the_state_probing_harness(tmp_path):
    """`make probe` builds snncc_model_probe (-DSNNCC_PROBE_STATE), which records every state
    probe of a model with probe-only state bit-exactly."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    g = conformance.lava_probe_only_u()
    out = tmp_path / "c"
    ctarget.emit(g, out)
    subprocess.run(["make", "-s", "probe"], cwd=out, check=True, capture_output=True)
    x = conformance.random_input(g, 2, np.random.default_rng(4))
    fin, fout = tmp_path / "in.bin", tmp_path / "out.bin"
    fin.write_bytes(b"SNNI" + np.array(x.shape[:2] + (x[0, 0].size,), "<u4").tobytes() + x.astype("<i4").tobytes())
    subprocess.run([str(out / emitter.BINARY_PROBE), str(fin), str(fout), "--probe"], check=True)
    got = runner.parse_output(fout.read_bytes(), json.loads((out / emitter.MANIFEST).read_text()), True)
    ref = interpreter.run(g, x, probe_state=True)
    assert sorted(got) == sorted(ref) and all(np.array_equal(got[k], ref[k]) for k in ref)


# ------------------------------------------------------------------ sanitizers, build errors
@pytest.mark.slow  # AddressSanitizer + UBSan builds: 20 s each on 2 cores (make test-slow)
def test_sanitized_build_runs(tmp_path):
    """ASan + UBSan (fatal), with -DSNNCC_CHECKED: every store checks its value fits."""
    for name, g in (("residual_add", conformance.CASES["residual_add"]()),
                    ("wrap_lava", conformance.CASES["overflow_wrap_lava"]()),
                    ("masks", conformance.CASES["sparsity_masks"]()),
                    ("random", conformance.random_graph(np.random.default_rng(11)))):
        out = tmp_path / name
        ctarget.emit(g, out)
        binary = ctarget.build(out, extra_cflags=("-DSNNCC_CHECKED",), sanitize=True)
        assert binary.name == emitter.BINARY_ASAN
        x = conformance.random_input(g, 2, np.random.default_rng(5))
        got = ctarget.simulate(out, x, probe_state=True, sanitize=True)
        ref = interpreter.run(g, x, probe_state=True)
        assert sorted(got) == sorted(ref) and all(np.array_equal(got[k], ref[k]) for k in ref)


@pytest.mark.slow  # two AddressSanitizer + UBSan builds
def test_sanitized_lava_schedule_with_and_without_state_probes(tmp_path):
    """ASan + UBSan + -DSNNCC_CHECKED on both harnesses of a model with probe-only state:
    the deployed one (no u for the du = 4096 layer) and snncc_model_probe_asan."""
    g = conformance.lava_probe_only_u()
    out = tmp_path / "c"
    ctarget.emit(g, out)
    x = conformance.random_input(g, 2, np.random.default_rng(6))
    for probe_state in (False, True):
        binary = ctarget.build(out, extra_cflags=("-DSNNCC_CHECKED",), sanitize=True, probe_state=probe_state)
        assert binary.name == (emitter.BINARY_PROBE_ASAN if probe_state else emitter.BINARY_ASAN)
        got = ctarget.simulate(out, x, probe_state=probe_state, sanitize=True)
        ref = interpreter.run(g, x, probe_state=probe_state)
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
        '/* "fc1": 8 weights x 3 bits, packed: 3 bytes */',
        "static const uint8_t L001_fc1_w[3] = {",
        "    0xc1, 0x27, 0x3a,",  # (I, O) order: the weights one input event adds are adjacent
        "static uint32_t L002_lif1_s[1]; /* 4 bytes */",  # spikes: bits
        "static int8_t L002_lif1_u[2]; /* 2 bytes */",  # |u| <= 2 |a| (du = 2048)
        "static int8_t L002_lif1_v[2]; /* 2 bytes */",  # 8-bit saturating v
        "static const snn_tensor_t L000_in_t = { .data = SNN_ARENA(256), .fmt = SNN_U1, .c = 4, .h = 1, .w = 1, "
        ".n = 4, .bytes = 4 };",
        '/* layer 0 "lif1": IntLIF (computes fc1), int16 accumulator, 2-row tiles',
        '    { .kind = SNN_LIF, .name = "lif1", .out = &L002_lif1_s_t, .in = 0, .n_in = 0, .syn = L002_lif1_syns, '
        '.n_syn = 1, .p = &L002_lif1_p, .tile = &L002_lif1_tile, .delay = 0 },',
        '    { .key = "lif1", .t = &L002_lif1_s_t, .level = 0, .wide = 0, .io = SNN_I8, .state = 0 },',
        '    { .key = "lif1/v", .t = &L002_lif1_v_t, .level = 0, .wide = 0, .io = SNN_I8, .state = 1 },',
        '    { .key = "lif1/u", .t = &L002_lif1_u_t, .level = 0, .wide = 0, .io = SNN_I8, .state = 1 },',
        '    { .key = "output", .t = &L002_lif1_s_t, .level = 0, .wide = 0, .io = SNN_I8, .state = 0 },',
    ]:
        assert line + "\n" in text, line
    assert re.search(r"static const snn_lif_t L002_lif1_p = \{ \.du = 2048, \.dv = 0, \.act_shift = 0, \.u_bits = 24, "
                     r"\.u_ovf = 0, \.v_bits = 8, \.v_ovf = 0, \.reset = 0, \.quant = 0, \.fires = 1, \.wide = 0, ", text)
    # u's wrap_lava (the IR's) cannot act: |u| <= 2 |a| is far below 2^23, so it is lowered as
    # saturate (the cheapest mode; all three are the identity there)


def _edge_neuron(u_overflow="wrap_lava", v_overflow="wrap_lava", u_bias=0, bias=0) -> Graph:
    """x in 0..255 -> dense (weight 1) -> an IntLIF with 9-bit u (|u| < 256 fits) and 10-bit v
    (|v| < 512), du = dv = 4096 (no memory): u = x + u_bias, v = u + bias, no firing."""
    g = Graph()
    g.meta.update(name="edge", steps=2)
    g.add("in", IntInput(shape=(1,), bits=8))
    g.add("fc", IntDense(weight=np.array([[1]], np.int64), weight_bits=2), ["in"])
    g.add("lif", IntLIF(threshold=np.array([0], np.int64), fires=False, du=4096, dv=4096, act_shift=0, u_bits=9,
                        v_bits=10, u_overflow=u_overflow, v_overflow=v_overflow, u_bias=np.array([u_bias], np.int64),
                        bias=np.array([bias], np.int64)), ["fc"])
    g.outputs = ["lif"]
    return g


@pytest.mark.parametrize("u_bias, bias, free", [(0, 256, (True, True)), (1, 255, (False, True)),
                                                (0, 257, (True, False))])
def test_overflow_proven_free_at_its_edge(tmp_path, u_bias, bias, free):
    """overflow_free at the edge of the register: where it says an overflow never acts, every
    mode gives the reference's exact result on every input (so a target may lower it as
    saturate); one step past the edge it says no, and the modes really differ there."""
    from snncc.ir.bounds import Bounds
    from snncc.ops.neurons import overflow_free
    from snncc.reference.interpreter import run

    g = _edge_neuron(u_bias=u_bias, bias=bias)
    b = Bounds(g)
    assert overflow_free(g.node("lif"), b.input_of("lif").mag, b.neuron("lif")) == free
    x = np.arange(256, dtype=np.int64).reshape(256, 1)
    outs = {}
    for u_mode in ("saturate", "wrap", "wrap_lava"):
        for v_mode in ("saturate", "wrap", "wrap_lava"):
            r = run(_edge_neuron(u_mode, v_mode, u_bias, bias), x, probe_state=True)
            outs[u_mode, v_mode] = r["lif/v"]
    for (u_mode, v_mode), v in outs.items():
        same = np.array_equal(v, outs["wrap_lava", "wrap_lava"])
        assert same == ((free[0] or u_mode == "wrap_lava") and (free[1] or v_mode == "wrap_lava")), (u_mode, v_mode)
    man = emitter.manifest(emitter.plan(g))
    assert man["layers"][0]["overflow"] == ["saturate" if f else "wrap_lava" for f in free]
    ctarget.emit(g, tmp_path)  # and the C build, with its lowered modes, is the reference
    c = runner.simulate(tmp_path, x, probe_state=True)
    assert np.array_equal(c["lif/v"], outs["wrap_lava", "wrap_lava"])


def test_odd_names_are_sanitized(tmp_path):
    g = conformance.CASES["odd_names"]()
    ctarget.emit(g, tmp_path)
    text = (tmp_path / "model.c").read_text()
    assert "L001_layer_1_fc_____q______syn" in text and "L004_int_s_t" in text and "L003_for_syn" in text
    assert '/* "layer-1.fc *\\ \"q\" ??=": 12 weights x 4 bits' in text  # comments cannot be closed early
    assert '.name = "neurons\\\\\\303\\274 1"' in text
    man = emitter.manifest(emitter.plan(g))
    assert [layer["name"] for layer in man["layers"]] == ["neurons\\\u00fc 1", "int"]
    assert man["layers"][0]["fused"] == ["layer-1.fc *\\ \"q\" ??="]


def test_buffer_types_follow_value_bounds(tmp_path):
    man = emitter.manifest(emitter.plan(conformance.CASES["wide_accumulator"]()))
    assert man["layers"][-1]["acc"] == "int64" and man["layers"][-1]["v_format"] == "S64"
    man = emitter.manifest(emitter.plan(_tiny()))
    (lif,) = man["layers"]
    assert lif["fused"] == ["fc1"] and lif["acc"] == "int16" and lif["out_format"] == "U1"
    assert lif["v_format"] == "S8" and lif["u_format"] == "S8" and lif["update"] == "int32"
    assert lif["overflow"] == ["saturate", "saturate"]
    assert man["input"]["format"] == "U1"
    lava = emitter.manifest(emitter.plan(conformance.CASES["overflow_wrap_lava"]()))
    assert any(layer["u_format"] == "S64" for layer in lava["layers"])  # growing wrap_lava state: no bound
    for quant, fmt in (("ternary", "T2"), ("binary", "U1")):
        g = _tiny()
        g.set("lif1", dataclasses.replace(g.node("lif1"), state_quant=quant, state_level=np.array([3], np.int64),
                                          du=DECAY_ONE))
        (lif,) = emitter.manifest(emitter.plan(g))["layers"]
        assert lif["v_format"] == fmt and lif["u_format"] is None  # membrane codes, bit-packed


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


# ------------------------------------------------------------------ runtime kernel paths
# The runtime picks a code path per layer: conv scatter with int16 / int32 (int16 weights)
# / int64 sums (int32 sums with wide weights or inputs go int64), the contiguous multi-tap
# run (stride 1, one group) or tap by tap (borders, strides, dilation, groups), the spike
# add or the multiply-add, in one or several bands of output rows; the per-channel scale
# of a depthwise 1x1 conv; dense gathers per accumulator and input type, with 8-bit
# weights read in place or decoded; LIF per overflow mode pair in chunks whose channel
# runs cross chunk ends; pools with and without bounds checks, on int8 and wider inputs.
# Each graph below pins one of them (test_kernel_path checks the choice where it shows).
def _g(name: str, shape: tuple, enc: str = "spikes", bits: int = 1, steps: int = 3) -> tuple[Graph, str]:
    g = Graph()
    g.meta.update(name=name, steps=steps)
    return g, g.add("x", IntInput(shape=shape, encoding=enc, bits=bits, scale=1.0))


def _w(rng, shape, bits: int, density: float = 0.85) -> np.ndarray:
    w = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=shape, dtype=np.int64)
    w.reshape(-1)[:2] = [-(1 << (bits - 1)), (1 << (bits - 1)) - 1]  # both extremes
    return np.where(rng.random(shape) < density, w, 0)


def _conv_case(name, shape, enc, bits, o, k, wbits=8, pre_bits=None, **kw) -> Graph:
    """x -> [conv with pre_bits weights: a wide input] -> conv: the output is the conv."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    g, cur = _g(name, shape, enc, bits)
    cin = shape[0]
    if pre_bits:
        cur = g.add("pre", IntConv(weight=_w(rng, (cin, cin, 1, 1), pre_bits), weight_bits=pre_bits), [cur])
    groups = kw.get("groups", 1)
    w = _w(rng, (o, cin // groups, *k), wbits)
    cur = g.add("conv", IntConv(weight=w, weight_bits=wbits, **kw), [cur])
    g.outputs = [cur]
    return g


def _dense_case(name, n_in, enc, bits, o, wbits=8, pre_bits=None, **kw) -> Graph:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    g, cur = _g(name, (n_in,), enc, bits)
    if pre_bits:
        cur = g.add("pre", IntDense(weight=_w(rng, (n_in, n_in), pre_bits, 0.3), weight_bits=pre_bits), [cur])
    cur = g.add("fc", IntDense(weight=_w(rng, (o, n_in), wbits), weight_bits=wbits, **kw), [cur])
    g.outputs = [cur]
    return g


def _lif_case(u_ovf: str, v_ovf: str, shape: tuple, du: int, reset: str, quant: str = "none",
              masks: bool = False) -> Graph:
    """Spikes -> conv/dense -> IntLIF with small registers that overflow -> readout.
    ``masks``: SpQuant-SNN's three (negative, spatial with a constant current u_bias in the
    compared |a|, a random channel gate), on chunks whose channel runs cross chunk ends."""
    name = f"lif_{u_ovf}_{v_ovf}_{'x'.join(map(str, shape))}_{du}_{reset}_{quant}{'_masks' * masks}"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    g, cur = _g(name, shape, steps=6)
    if len(shape) == 3:
        syn = IntConv(weight=_w(rng, (3, shape[0], 3, 3), 7), weight_bits=7, padding=(1, 1))
        ch = 3
    else:
        syn = IntDense(weight=_w(rng, (150, shape[0]), 7), weight_bits=7)
        ch = 150
    cur = g.add("syn", syn, [cur])

    def vec(lo, hi):  # per channel or one scalar
        return rng.integers(lo, hi, ch if rng.random() < 0.5 else 1, dtype=np.int64)

    lif = IntLIF(du=du if quant == "none" else DECAY_ONE, dv=int(rng.choice([0, 300, 2048])), act_shift=2,
                 threshold=vec(-20, 200), bias=vec(-30, 30), reset=reset, reset_value=vec(0, 300),
                 v_init=vec(-100, 100), state_quant=quant, state_level=vec(1, 200), u_bits=9, u_overflow=u_ovf,
                 v_bits=10, v_overflow=v_ovf)
    if masks:
        lif = dataclasses.replace(lif, neg_mask=True, spatial_level=40, u_bias=vec(-60, 60),
                                  gate_weight=rng.integers(-3, 4, (ch, ch), dtype=np.int64),
                                  gate_level=rng.integers(-400, 400, ch, dtype=np.int64))
    return _readout_after(g, g.add("lif", lif, [cur]), rng)


def _readout_after(g: Graph, cur: str, rng) -> Graph:
    """[flatten] -> dense (4 outputs) -> a readout IntLIF: the graph's output."""
    cur = g.add("flat", Flatten(), [cur]) if len(g.shapes()[cur]) == 3 else cur
    n = int(np.prod(g.shapes()[cur]))
    cur = g.add("fc", IntDense(weight=_w(rng, (4, n), 5), weight_bits=5), [cur])
    g.outputs = [g.add("out", IntLIF(fires=False, act_shift=0, dv=100), [cur])]
    return g


def _one_pass_case(name: str, shape: tuple, out: int, wbits: int, v_bits: int, dv: int, reset: str) -> Graph:
    """Spikes -> conv (3x3) or dense -> the runtime's one-pass neuron update (lif_fusable: no
    stored u, u's wrap_lava proven never to act, a saturating v in S16 / S24 / S32 that does
    saturate: a third of the channels cannot fire) -> readout. ``out`` channels: a power of
    two below the chunk lays the constants out over it, others run per channel."""
    from snncc.ir.bounds import Bounds

    rng = np.random.default_rng(zlib.crc32(name.encode()))
    g, cur = _g(name, shape, steps=6)
    cin = shape[0]
    syn = (IntConv(weight=_w(rng, (out, cin, 3, 3), wbits), weight_bits=wbits, padding=(1, 1)) if len(shape) == 3
           else IntDense(weight=_w(rng, (out, cin), wbits), weight_bits=wbits))
    cur = g.add("syn", syn, [cur])
    top = (1 << (v_bits - 1)) - 1
    thr = rng.integers(top // 8, top // 2, out, dtype=np.int64)
    thr[::3] = top  # never fires: v climbs to the register's end and saturates
    a_mag = Bounds(g).iv["syn"].mag  # typical currents (1/8 of the worst) shifted to the register's end
    lif = IntLIF(du=DECAY_ONE, dv=dv, act_shift=max(0, top.bit_length() - a_mag.bit_length() + 3), threshold=thr,
                 bias=rng.integers(-30, 30, out, dtype=np.int64), reset=reset,
                 reset_value=rng.integers(0, top // 4, out, dtype=np.int64), u_bits=30, u_overflow="wrap_lava",
                 v_bits=v_bits, v_overflow="saturate")
    return _readout_after(g, g.add("lif", lif, [cur]), rng)


def _ring_case(name: str, shape: tuple, out: int, convs: list[tuple], wbits: int = 6, counts: bool = False,
               stride: tuple = (1, 1), **lif) -> Graph:
    """Events -> one or two convs ((kh, kw), padding, groups) summed into an IntLIF whose tile
    is a line buffer (the runtime's lif_ring: the output is taller than one band of the
    minimum scratch, a ring of kh rows fits it) -> readout. ``counts``: the input is a sum
    pool's 4-bit spike counts (a first conv and LIF at twice the size)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    cin, h, w = shape
    g, x = _g(name, (cin, 2 * h, 2 * w) if counts else shape, steps=5)
    if counts:
        pre = g.add("pre", IntConv(weight=_w(rng, (cin, cin, 3, 3), 5), weight_bits=5, padding=(1, 1)), [x])
        lif0 = g.add("lif0", IntLIF(threshold=np.array([8], np.int64), act_shift=0), [pre])
        x = g.add("pool", SumPool(kernel=(2, 2), stride=(2, 2)), [lif0])
    syns = [g.add(f"c{i}", IntConv(weight=_w(rng, (out, cin // gr, *k), wbits), weight_bits=wbits, padding=pad,
                                   groups=gr, stride=stride), [x]) for i, (k, pad, gr) in enumerate(convs)]
    cur = syns[0] if len(syns) == 1 else g.add("add", Add(), syns)
    kw = dict(threshold=rng.integers(20, 120, out, dtype=np.int64), act_shift=1, dv=1024)
    return _readout_after(g, g.add("lif", IntLIF(**{**kw, **lif}), [cur]), rng)


def _pool_case(name, kind, enc, bits, wbits, pool_kw, pre_bits=None) -> Graph:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    g, cur = _g(name, (2, 9, 8), enc, bits)
    if pre_bits:  # a wide (int32 / int64) tensor to pool
        cur = g.add("pre", IntConv(weight=_w(rng, (2, 2, 1, 1), pre_bits), weight_bits=pre_bits), [cur])
    cur = g.add("conv", IntConv(weight=_w(rng, (3, 2, 2, 2), wbits), weight_bits=wbits), [cur])
    cur = g.add("pool", (SumPool if kind == "sum" else MaxPool)(**pool_kw), [cur])
    g.outputs = [cur]
    return g


def _add_case() -> Graph:
    """A four-input Add of tensors of four widths, 3 * 9 * 10 = 270 values (chunks of 64)."""
    rng = np.random.default_rng(5)
    g, x = _g("add4", (3, 9, 10), "direct", 8)
    a = g.add("a", IntConv(weight=_w(rng, (3, 3, 1, 1), 3), weight_bits=3), [x])
    b = g.add("b", IntConv(weight=_w(rng, (3, 3, 3, 3), 12), weight_bits=12, padding=(1, 1)), [x])
    d = g.add("d", IntConv(weight=_w(rng, (3, 1, 1, 1), 30), weight_bits=30, groups=3), [x])  # int64
    s = g.add("s", IntConv(weight=_w(rng, (3, 3, 1, 1), 2), weight_bits=2), [x])
    ls = g.add("ls", IntLIF(threshold=np.array([1], np.int64), act_shift=0), [s])
    g.outputs = [g.add("add", Add(), [a, b, ls, d])]
    return g


def _wide_lif_case() -> Graph:
    """Neuron constants beyond int32 (int64 constant vectors) on 40-bit registers."""
    rng = np.random.default_rng(6)
    g, x = _g("wide_lif", (2, 4, 5), "direct", 8, steps=5)
    cur = g.add("conv", IntConv(weight=_w(rng, (3, 2, 3, 3), 26), weight_bits=26, padding=(1, 1)), [x])
    lif = IntLIF(du=1000, dv=50, act_shift=1, threshold=np.array([3, 5, 8], np.int64) << 33,
                 bias=np.array([-(1 << 34)], np.int64), reset="subtract", reset_value=np.array([1 << 35], np.int64),
                 v_init=np.array([1 << 33, -(1 << 33), 7], np.int64), u_bits=40, v_bits=40, u_overflow="wrap",
                 v_overflow="saturate")
    g.outputs = [g.add("lif", lif, [cur])]
    return g


KERNEL_CASES = {
    # conv: accumulator / weight scratch types, spike adds and multiply-adds
    "conv_spikes_span": lambda: _conv_case("conv_spikes_span", (3, 9, 10), "spikes", 1, 16, (3, 3), padding=(1, 1)),
    "conv_pixels_w16": lambda: _conv_case("conv_pixels_w16", (2, 8, 7), "direct", 8, 9, (3, 3), padding=(1, 1)),
    "conv_mixed_values": lambda: _conv_case("conv_mixed_values", (2, 7, 9), "direct", 2, 12, (2, 3), padding=(0, 1)),
    "conv_w32": lambda: _conv_case("conv_w32", (1, 6, 6), "direct", 8, 5, (1, 1), wbits=18),
    "conv_acc64": lambda: _conv_case("conv_acc64", (2, 6, 5), "direct", 8, 3, (3, 3), wbits=32, padding=(1, 1)),
    "conv_acc64_i64_input": lambda: _conv_case("conv_acc64_i64_input", (2, 5, 5), "direct", 8, 3, (2, 2), wbits=4,
                                               pre_bits=30),
    "conv_i32_input": lambda: _conv_case("conv_i32_input", (2, 6, 6), "direct", 8, 4, (3, 3), wbits=3, pre_bits=14,
                                         padding=(1, 1)),
    # conv geometry: tap by tap (strides, dilation, groups, borders) and the contiguous run
    "conv_strided_dilated_groups": lambda: _conv_case("conv_strided_dilated_groups", (4, 11, 9), "spikes", 1, 6,
                                                      (3, 2), stride=(2, 3), dilation=(2, 1), padding=(2, 1), groups=2),
    "conv_padding_beyond_kernel": lambda: _conv_case("conv_padding_beyond_kernel", (2, 5, 4), "direct", 3, 10, (2, 2),
                                                     padding=(3, 4), stride=(1, 2)),
    "conv_5x5_o24": lambda: _conv_case("conv_5x5_o24", (2, 8, 9), "direct", 3, 24, (5, 5), wbits=5, padding=(2, 2)),
    "conv_kernel_wider_than_input": lambda: _conv_case("conv_kernel_wider_than_input", (1, 3, 3), "spikes", 1, 17,
                                                       (3, 5), padding=(1, 2)),
    "conv_depthwise_3x3": lambda: _conv_case("conv_depthwise_3x3", (5, 7, 6), "spikes", 1, 5, (3, 3), wbits=6,
                                             padding=(1, 1), groups=5),
    "conv_pointwise": lambda: _conv_case("conv_pointwise", (3, 5, 6), "direct", 4, 13, (1, 1), wbits=13),
    "conv_channel_scale": lambda: _conv_case("conv_channel_scale", (4, 6, 5), "direct", 6, 4, (1, 1), wbits=11,
                                             groups=4),
    "conv_channel_scale_exp_wrap": lambda: _conv_case("conv_channel_scale_exp_wrap", (3, 4, 5), "spikes", 1, 3, (1, 1),
                                                      wbits=9, groups=3, weight_exp=-2, out_bits=6),
    "conv_exp_wrap": lambda: _conv_case("conv_exp_wrap", (2, 6, 6), "direct", 8, 8, (3, 3), wbits=7, padding=(1, 1),
                                        weight_exp=-3, out_bits=9),
    # outputs beyond the accumulator budget: several bands of output rows, the last one short
    "conv_bands_span": lambda: _conv_case("conv_bands_span", (2, 26, 24), "direct", 8, 16, (3, 3), padding=(1, 1)),
    "conv_bands_strided": lambda: _conv_case("conv_bands_strided", (3, 32, 20), "spikes", 1, 40, (3, 2),
                                             stride=(2, 1), dilation=(2, 2), padding=(2, 1)),
    "conv_cols_c1_strided": lambda: _conv_case("conv_cols_c1_strided", (1, 7, 45), "direct", 8, 20, (3, 3),
                                               padding=(1, 1), stride=(1, 2)),
    "conv_exp_up_delay": lambda: _conv_case("conv_exp_up_delay", (2, 6, 6), "spikes", 1, 8, (3, 3), wbits=2,
                                            weight_exp=2, delay=2),
    # dense: (accumulator, input type), 8-bit weights in place or decoded, spikes or values
    "dense_spikes_w8": lambda: _dense_case("dense_spikes_w8", 130, "spikes", 1, 70),
    "dense_spikes_w3": lambda: _dense_case("dense_spikes_w3", 37, "spikes", 1, 9, wbits=3),
    "dense_i16_w8": lambda: _dense_case("dense_i16_w8", 40, "direct", 12, 7),
    "dense_i16_w5": lambda: _dense_case("dense_i16_w5", 40, "direct", 12, 7, wbits=5, weight_exp=-1, out_bits=12),
    "dense_i32_acc64": lambda: _dense_case("dense_i32_acc64", 50, "direct", 20, 6, wbits=16),
    "dense_i32_acc32": lambda: _dense_case("dense_i32_acc32", 20, "direct", 8, 6, wbits=4, pre_bits=12),
    "dense_i64_acc64": lambda: _dense_case("dense_i64_acc64", 24, "direct", 8, 5, wbits=6, pre_bits=30),
    # pools: checked and unchecked windows, input widths
    "sumpool_border_i32": lambda: _pool_case("sumpool_border_i32", "sum", "direct", 8, 8,
                                             dict(kernel=(3, 2), stride=(1, 2), padding=(1, 1))),
    "sumpool_i64": lambda: _pool_case("sumpool_i64", "sum", "direct", 8, 8,
                                      dict(kernel=(2, 3), stride=(2, 1), padding=(0, 1)), pre_bits=30),
    "sumpool_i8_inside": lambda: _pool_case("sumpool_i8_inside", "sum", "spikes", 1, 2,
                                            dict(kernel=(2, 2), stride=(2, 2))),
    "maxpool_i16": lambda: _pool_case("maxpool_i16", "max", "direct", 4, 6, dict(kernel=(2, 3), stride=(2, 1))),
    "maxpool_i32": lambda: _pool_case("maxpool_i32", "max", "direct", 8, 12, dict(kernel=(3, 3), stride=(1, 1))),
    "add4": _add_case,
    "lif_wide_constants": _wide_lif_case,
    "conv_channel_scale_w8": lambda: _conv_case("conv_channel_scale_w8", (2, 3, 7), "direct", 5, 2, (1, 1),
                                                groups=2),
    "dense_spikes_acc64": lambda: _dense_case("dense_spikes_acc64", 40, "spikes", 1, 5, wbits=32),
    # the image layer's AVX2 path (conv_image32: 8-bit pixels, <= 4 channels per group, blocks
    # of 16 outputs, two taps per multiply-add): two groups of 32 outputs with stride 2, an odd
    # tap count (5x5) with two border columns and rows, dilation, an image smaller than its kernel
    "conv_image_g2_o32_s2": lambda: _conv_case("conv_image_g2_o32_s2", (4, 11, 13), "direct", 8, 64, (3, 3),
                                               stride=(2, 2), padding=(1, 1), groups=2),
    "conv_image_5x5": lambda: _conv_case("conv_image_5x5", (1, 12, 12), "direct", 8, 16, (5, 5), padding=(2, 2)),
    "conv_image_dilated": lambda: _conv_case("conv_image_dilated", (3, 10, 9), "direct", 8, 16, (3, 3),
                                             dilation=(2, 1), padding=(2, 1)),
    "conv_image_tiny": lambda: _conv_case("conv_image_tiny", (1, 2, 3), "direct", 8, 16, (3, 3), padding=(1, 1)),
    # spikes into an int16 tile of at most 16 outputs (the runtime's dense_few16: fixed-width
    # adds of 16 weights): a readout of 10, and 260 outputs whose last tile holds 4 (from 256)
    "dense_few_o10": lambda: _dense_case("dense_few_o10", 63, "spikes", 1, 10),
    "dense_few_tail_o260": lambda: _dense_case("dense_few_tail_o260", 45, "spikes", 1, 260),
    # the gather path (a graded input in a plain array, 8-bit weights): signed 16-bit
    # inputs with strides, dilation, groups and padding; PilotNet's 5x5 stride-2 first
    # layer with its outputs in a block of 16 and one of 8
    "conv_gather_signed_groups": lambda: _conv_case("conv_gather_signed_groups", (4, 11, 9), "direct", 8, 12, (3, 3),
                                                    pre_bits=4, stride=(2, 1), dilation=(1, 2), padding=(2, 1),
                                                    groups=2),
    "conv_gather_o24_stride2": lambda: _conv_case("conv_gather_o24_stride2", (3, 12, 13), "direct", 8, 24, (5, 5),
                                                  stride=(2, 2)),
    "maxpool_i64": lambda: _pool_case("maxpool_i64", "max", "direct", 8, 8, dict(kernel=(2, 2), stride=(2, 2)),
                                      pre_bits=30),
}
OVERFLOW_PAIRS = [(u, v) for u in ("saturate", "wrap", "wrap_lava") for v in ("saturate", "wrap", "wrap_lava")]
for _i, (_u, _v) in enumerate(OVERFLOW_PAIRS):  # hw = 99 (> one chunk), 15 (runs cross chunk ends), 1 (dense)
    _shape = ((2, 9, 11), (3, 3, 5), (40,))[_i % 3]
    _reset = ("zero", "subtract", "none")[_i // 3]
    KERNEL_CASES[f"lif_{_u}_{_v}"] = (lambda u=_u, v=_v, s=_shape, r=_reset, d=(2000, DECAY_ONE, 0)[_i % 3]:
                                      _lif_case(u, v, s, d, r))
KERNEL_CASES["lif_ternary_hw99"] = lambda: _lif_case("wrap", "saturate", (2, 9, 11), DECAY_ONE, "subtract", "ternary")
KERNEL_CASES["lif_binary_dense"] = lambda: _lif_case("saturate", "wrap", (40,), DECAY_ONE, "zero", "binary")
# the masks in the chunked update (lif_chunk32's SNN_MASKS): a ternary code, a current state
KERNEL_CASES["lif_masks_ternary_c3"] = lambda: _lif_case("wrap", "saturate", (2, 9, 11), DECAY_ONE, "subtract",
                                                         "ternary", masks=True)
KERNEL_CASES["lif_masks_dense_u"] = lambda: _lif_case("saturate", "wrap", (40,), 1000, "zero", masks=True)


def _masks_wide_case() -> Graph:
    """The masks in lif_chunk64 (40-bit registers), 150 neurons: runs of channels cross the
    chunks (the gate's sums of the membrane prior and its keep flags by channel)."""
    rng = np.random.default_rng(17)
    g, x = _g("lif_masks_wide", (40,), steps=6)
    syn = g.add("syn", IntDense(weight=_w(rng, (150, 40), 7), weight_bits=7), [x])
    lif = IntLIF(threshold=rng.integers(40 << 20, 120 << 20, 150), du=1000, dv=200, act_shift=20, reset="zero",
                 v_init=rng.integers(-(40 << 20), 40 << 20, 150), bias=rng.integers(-(5 << 20), 5 << 20, 150),
                 u_bias=rng.integers(-(30 << 20), 30 << 20, 150), u_bits=40, v_bits=40, neg_mask=True,
                 spatial_level=40, gate_weight=rng.integers(-3, 4, (150, 150)),
                 gate_level=rng.integers(-(3000 << 20), 3000 << 20, 150))
    return _readout_after(g, g.add("lif", lif, [syn]), rng)


KERNEL_CASES["lif_masks_wide"] = _masks_wide_case
# the one-pass neuron update: v formats S16 / S24 / S32, int16 / int32 tiles (wide weights),
# shift / multiply decay, constants laid out over the chunk (8 or 4 channels) or per run
ONE_PASS = {"lif_one_pass_s16_c8": ((3, 9, 11), 8, 7, 12, 2048, "zero"),
            "lif_one_pass_s24_c3_i32": ((4, 7, 9), 3, 15, 20, 300, "subtract"),
            "lif_one_pass_s32_c4_i32": ((2, 8, 8), 4, 14, 26, 2048, "zero"),
            "lif_one_pass_s16_dense": ((60,), 40, 6, 14, 700, "none")}
for _k, _a in ONE_PASS.items():
    KERNEL_CASES[_k] = lambda k=_k, a=_a: _one_pass_case(k, *a)
# the line buffer (tile_ring, the rows of the tallest kernel): 3x3 and 5x5 kernels, padding
# 0, 1 and beyond the kernel, int16 and int32 tiles, a residual's 1x1 depthwise conv beside a
# 3x3 one, a sum pool's counts, neurons of the one-pass, the current-state and the masked paths
RING = {"ring_3x3": ((3, 12, 8), 4, [((3, 3), (1, 1), 1)], {}, 3),
        "ring_5x5_wide_u": ((4, 30, 9), 4, [((5, 5), (0, 0), 1)], dict(wbits=14, du=1000), 5),
        "ring_residual": ((4, 12, 8), 4, [((3, 3), (1, 1), 1), ((1, 1), (0, 0), 4)], {}, 3),
        "ring_counts_spatial": ((4, 12, 8), 4, [((3, 3), (1, 1), 1)], dict(counts=True, spatial_level=2), 3),
        "ring_pad_beyond": ((3, 11, 8), 4, [((3, 2), (2, 1), 1)], dict(reset="subtract"), 3)}
for _k, (_s, _o, _c, _kw, _r) in RING.items():
    KERNEL_CASES[_k] = lambda k=_k, s=_s, o=_o, c=_c, kw=_kw: _ring_case(k, s, o, c, **kw)


#: the kernel cases the fast suite compiles (every accumulator type, each layer kind, the
#: packed-state neurons); the slow suite runs all 50
FAST_KERNELS = {"add4", "conv_gather_signed_groups", "conv_gather_o24_stride2", "conv_depthwise_3x3",
                "conv_strided_dilated_groups", "conv_bands_span", "dense_spikes_w3",
                "lif_ternary_hw99", "lif_binary_dense", "lif_wrap_lava_wrap_lava", "maxpool_i16", "sumpool_i8_inside",
                "lif_masks_ternary_c3", "lif_masks_dense_u", "lif_masks_wide",
                *ONE_PASS, *RING}


@pytest.fixture(scope="module")
def kernel_builds(tmp_path_factory):
    fast = FAST_KERNELS | set(KERNEL_ACC)
    return prebuild({k: f() for k, f in KERNEL_CASES.items() if k in fast}, tmp_path_factory.mktemp("kernels"))


# the accumulator type the bounds give each case's last synapse (int16 / int32 / int64 paths)
KERNEL_ACC = {"conv_spikes_span": "int16", "conv_pixels_w16": "int32", "conv_acc64": "int64", "conv_w32": "int32",
              "conv_acc64_i64_input": "int64", "conv_i32_input": "int32", "dense_i64_acc64": "int64",
              "dense_i32_acc32": "int32", "dense_spikes_acc64": "int64", "dense_spikes_w8": "int16",
              "lif_wide_constants": "int64", "dense_few_o10": "int16", "dense_few_tail_o260": "int16",
              "conv_image_g2_o32_s2": "int32", "conv_image_5x5": "int32", "conv_image_dilated": "int32",
              "conv_image_tiny": "int32"}


@pytest.mark.parametrize("name", sorted(FAST_KERNELS | set(KERNEL_ACC)))
def test_kernel_path(name, kernel_builds):
    _kernel_case(name, *kernel_builds[name])


@pytest.mark.parametrize("name", ["conv_image_5x5", "conv_image_g2_o32_s2"])
def test_image_layer_portable_path(name, tmp_path):
    """The image layer built with -DSNNCC_PORTABLE runs the portable tap-major gather (what
    every target without AVX2 runs) where the cases above run conv_image32 on an AVX2 host:
    both are the reference bit for bit."""
    g = KERNEL_CASES[name]()
    out = tmp_path / "c"
    ctarget.emit(g, out)
    ctarget.build(out, extra_cflags=("-DSNNCC_PORTABLE",))
    _kernel_case(name, g, out)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(KERNEL_CASES) - FAST_KERNELS - set(KERNEL_ACC)))
def test_kernel_path_more(name, tmp_path):
    g = KERNEL_CASES[name]()
    _kernel_case(name, g, _emit_and_build(g, tmp_path / "c"))


def _kernel_case(name: str, g, out) -> None:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = conformance.random_input(g, 3, rng)
    if g.node("x").encoding == "direct":  # every value, zeros (skipped) and ones (the add path) included
        hi = (1 << g.node("x").bits) - 1
        x.reshape(-1)[:4] = [0, 1, hi, hi - 1]
        x[0, 0] = 0
    if name.startswith("dense_few"):  # the last input row (its 16-wide read would pass the weights' end)
        x[..., -1] = 1
    compare(g, out, x, emit=False)
    man = json.loads((out / emitter.MANIFEST).read_text())
    last = [layer for layer in man["layers"] if layer["acc"]][-1]
    if name in KERNEL_ACC:
        assert last["acc"] == KERNEL_ACC[name]
    budget = emitter._Plan(g).acc_budget
    assert budget == emitter.ACC_SCRATCH_MIN  # kernel cases are small: the least scratch
    for layer in man["layers"]:  # no tile over the budget unless one output (column) alone is
        if layer["acc"]:
            assert layer["tile_bytes"] <= budget or layer["tile_rows"] == 1
    if name.startswith(("conv_bands", "conv_cols")):  # parts of a row: one row is over the budget
        (o, h, w) = g.shapes()["conv"]
        assert last["tile_rows"] == 1 and 1 <= last["tile_cols"] < w
    if name.startswith("dense_few"):  # the runtime's dense_few16 conditions: 8-bit weights, int16 tiles <= 16
        assert last["weight_bits"] == [8] and last["tile_rows"] <= 256 and g.shapes()["fc"][0] % last["tile_rows"] <= 16
    if name == "lif_wide_constants":
        assert last["update"] == "int64" and "static const int64_t snn_const_" in (out / "model.c").read_text()
    if name == "lif_masks_wide":  # the masks in lif_chunk64
        assert [layer["update"] for layer in man["layers"] if layer["name"] == "lif"] == ["int64"]
    if name in RING:
        assert [layer["tile_ring"] for layer in man["layers"] if layer["name"] == "lif"] == [RING[name][-1]]
    if name in ONE_PASS:  # what lif_fusable asks of the layer, as the manifest shows it
        lif = man["layers"][0]
        assert (lif["update"], lif["overflow"], lif["u_format"], lif["out_format"]) == \
            ("int32", ["saturate", "saturate"], None, "U1")
        v_bits, wbits = ONE_PASS[name][3], ONE_PASS[name][2]
        assert lif["v_format"] == ("S16" if v_bits <= 16 else "S24" if v_bits <= 24 else "S32")
        assert lif["acc"] == ("int32" if wbits > 8 else "int16")


def test_kernel_cases_cover_the_paths():
    """The conv geometry of the cases reaches both the contiguous run and the tap-by-tap path."""
    span = tap = 0
    for g in (f() for f in KERNEL_CASES.values()):
        for lname, op in g.items():
            if op.kind == "IntConv" and lname == "conv":
                o, cg, kh, kw = op.weight.shape
                if kh == kw == 1 and cg == 1 and op.groups == o:  # the per-channel scale
                    continue
                if op.stride[1] == 1 and op.dilation[1] == 1 and op.groups == 1:
                    span += 1
                else:
                    tap += 1
    assert span >= 5 and tap >= 2


def test_conv_weights_are_packed_input_channel_first(tmp_path):
    """Conv weights sit in flash as (groups, C/groups, kH, kW reversed, O/groups): the
    outputs one input event reaches through one kernel row are one contiguous run."""
    w = np.arange(2 * 4 * 1 * 2, dtype=np.int64).reshape(4, 2, 1, 2) - 8  # (O=4, C/g=2, 1, 2), groups=2 -> C=4
    g, x = _g("pack", (4, 3, 3))
    g.outputs = [g.add("conv", IntConv(weight=w, weight_bits=8, groups=2), [x])]
    ctarget.emit(g, tmp_path)
    text = (tmp_path / "model.c").read_text()
    body = re.search(r"static const uint8_t L001_conv_w\[16\] = \{(.*?)\};", text, re.S).group(1)
    got = [int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", body)]
    og = 2
    want = [int(w[grp * og + o, c, i, j]) & 0xff for grp in range(2) for c in range(2) for i in range(1)
            for j in reversed(range(2)) for o in range(og)]
    assert got == want
    compare(g, tmp_path, (np.random.default_rng(0).random((2, 3, 4, 3, 3)) < 0.5).astype(np.int64))


def test_arena_shares_bytes_only_between_disjoint_lifetimes():
    from snncc.targets.c import arena

    bufs = [arena.Buffer("a", 100, 0, 1), arena.Buffer("b", 50, 1, 2), arena.Buffer("c", 100, 2, 3),
            arena.Buffer("d", 8, -1, 0), arena.Buffer("e", 30, 3, 3)]
    offsets, size = arena.plan(bufs)
    for x in bufs:
        assert offsets[x.name] % arena.ALIGN == 0
        for y in bufs:
            if x is not y and x.overlaps(y):  # live together: disjoint bytes
                assert offsets[x.name] + x.size <= offsets[y.name] or offsets[y.name] + y.size <= offsets[x.name]
    assert arena.peak(bufs) <= size < sum(arena._align(x.size) for x in bufs)
    assert offsets["a"] == offsets["c"]  # a dies before c is born: the same bytes
    assert arena.plan(list(reversed(bufs))) == (offsets, size)  # deterministic


def test_memory_is_declared_and_reported(tmp_path):
    """model.c declares exactly the bytes c_manifest.json reports: one arena for what lives
    within a step, static arrays for state and spikes, bit-packed where the values allow."""
    g = conformance.CASES["residual_add"]()
    ctarget.emit(g, tmp_path)
    text = (tmp_path / "model.c").read_text()
    man = json.loads((tmp_path / emitter.MANIFEST).read_text())
    (count,) = re.findall(r"^static int64_t snn_arena\[(\d+)\];", text, re.M)
    assert int(count) * 8 >= man["arena_bytes"] >= man["arena_peak_bytes"] > 0
    statics = {m[0]: int(m[1]) for m in re.findall(r"^static \w+ (\w+)\[\d+\]; /\* (\d+) bytes \*/", text, re.M)}
    assert sum(statics.values()) == man["state_bytes"] + man["spike_bytes"] + man["other_static_bytes"]
    assert sum(v for k, v in statics.items() if k.endswith("_s")) == man["spike_bytes"]
    for layer in man["layers"]:
        if layer["kind"] == "IntLIF":
            assert layer["out_format"] == "U1"
    rep = emitter.plan(g)
    for t in rep["tensors"]:
        assert t["bytes"] == emitter.nbytes(t["fmt"], t["n"])


def _bss_symbols(model_c: Path, *flags: str) -> dict[str, int]:
    """model.c compiled alone (as benchmarks/bench_c_memory.py does): its zero-initialized
    objects (``nm -S``: bss symbols) and their sizes."""
    obj = model_c.with_name(f"model{len(flags)}.o")
    subprocess.run([runner.find_compiler(), *runner.CFLAGS, *flags, "-c", model_c.name, "-o", obj.name],
                   cwd=model_c.parent, check=True)
    out = subprocess.run(["nm", "-S", obj.name], cwd=model_c.parent, check=True, capture_output=True, text=True)
    return {f[3]: int(f[1], 16) for f in (ln.split() for ln in out.stdout.splitlines())
            if len(f) == 4 and f[2] in "bB"}


@pytest.mark.skipif(shutil.which("nm") is None, reason="nm (binutils) is not installed")
def test_lava_schedule_declares_u_of_du_4096_only_in_the_probing_build(tmp_path):
    """On Lava's schedule u of a du = 4096 neuron is only for the state probes: the
    deployed model.o holds no buffer for it (the manifest's state_bytes says what model.o
    holds, probe_state_bytes what -DSNNCC_PROBE_STATE adds), a readout's carried u stays,
    --probe state still records every u bit-exactly (snncc_model_probe), and the deployed
    harness refuses --probe instead of writing fewer probes."""
    g = conformance.lava_probe_only_u()
    out = tmp_path / "c"
    ctarget.emit(g, out)
    man = json.loads((out / emitter.MANIFEST).read_text())
    lif1_u, readout_u = "L002_lif1_u", "L004_readout_u"
    deployed, probing = _bss_symbols(out / "model.c"), _bss_symbols(out / "model.c", "-DSNNCC_PROBE_STATE")
    assert lif1_u not in deployed and readout_u in deployed
    assert sum(deployed.values()) - deployed.pop("snn_arena") - deployed.pop("snncc_steps") == (
        man["state_bytes"] + man["spike_bytes"] + man["other_static_bytes"])
    assert {k: v for k, v in probing.items() if k not in deployed} == {
        "snn_arena": probing["snn_arena"], "snncc_steps": 8, lif1_u: man["probe_state_bytes"]}
    assert man["probe_state_bytes"] == 4 * 12  # 12 neurons of a 24-bit register (S32)
    x = conformance.random_input(g, 2, np.random.default_rng(3))
    for probe_state in (False, True):
        ref = interpreter.run(g, x, probe_state=probe_state)
        got = ctarget.simulate(out, x, probe_state=probe_state)
        assert sorted(got) == sorted(ref) and all(np.array_equal(got[k], ref[k]) for k in ref)
    assert {"lif1/u", "readout/u"} <= set(ref)
    assert (out / emitter.BINARY).is_file() and (out / emitter.BINARY_PROBE).is_file()
    proc = subprocess.run([str(out / emitter.BINARY), "in", "out", "--probe"], capture_output=True, text=True)
    assert proc.returncode == 2 and "make probe (-DSNNCC_PROBE_STATE)" in proc.stderr


def test_zero_latency_probes_run_the_deployed_harness(tmp_path):
    """Without probe-only state (every zero-latency build: du = 4096 keeps no u there) the
    manifest has no probe_state_bytes and one harness serves every mode."""
    g = conformance.CASES["residual_add"]()
    ctarget.emit(g, tmp_path)
    text = (tmp_path / "model.c").read_text() + (tmp_path / "model.h").read_text()
    assert "SNNCC_PROBE_STATE" not in text
    assert "probe_state_bytes" not in json.loads((tmp_path / emitter.MANIFEST).read_text())
    compare(g, tmp_path, conformance.random_input(g, 2, np.random.default_rng(0)), emit=False)
    assert not (tmp_path / emitter.BINARY_PROBE).exists()


class _Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("fmt", ctypes.c_uint8), ("c", ctypes.c_int32), ("h", ctypes.c_int32),
                ("w", ctypes.c_int32), ("n", ctypes.c_int32), ("bytes", ctypes.c_int32)]


class _Probe(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("t", ctypes.POINTER(_Tensor)), ("level", ctypes.c_void_p),
                ("wide", ctypes.c_uint8), ("io", ctypes.c_uint8), ("state", ctypes.c_uint8)]


def test_unit_formats_roundtrip_and_probe_output(rt):
    """snn_st / snn_ld in every storage format at its edges, and snn_write_probe (the
    harness's output: little-endian, the probe's width, codes times their level)."""
    from snncc.targets.c.formats import FORMATS, ORDER

    rt.snn_ld.argtypes, rt.snn_ld.restype = (ctypes.POINTER(_Tensor), ctypes.c_int32), ctypes.c_int64
    rt.snn_st.argtypes, rt.snn_st.restype = (ctypes.POINTER(_Tensor), ctypes.c_int32, ctypes.c_int64), None
    rt.snn_write_probe.argtypes = (ctypes.POINTER(_Probe), ctypes.c_int32, ctypes.c_int32, ctypes.c_char_p)
    rt.snn_write_probe.restype = ctypes.c_int32
    for code, name in enumerate(ORDER):
        f = FORMATS[name]
        vals = [f.lo, f.hi, 0, f.hi, f.lo] * 15  # 75 values: bit planes over several words
        vals[7] = (f.lo + f.hi) // 2
        n = len(vals)
        buf = ctypes.create_string_buffer(emitter.nbytes(f, n) + 8)
        ten = _Tensor(ctypes.cast(buf, ctypes.c_void_p), code, n, 1, 1, n, emitter.nbytes(f, n))
        for i, v in enumerate(vals):
            rt.snn_st(ctypes.byref(ten), i, v)
        assert [rt.snn_ld(ctypes.byref(ten), i) for i in range(n)] == vals, name
        io = 3 if f.bits > 32 else 2
        level = (ctypes.c_int32 * n)(*([3] * n))
        for lvl in ((None, 1), (ctypes.cast(level, ctypes.c_void_p), 3)) if name == "T2" else ((None, 1),):
            probe = _Probe(b"k", ctypes.pointer(ten), lvl[0], 0, io, 0)
            out = ctypes.create_string_buffer(8 * n)
            got = rt.snn_write_probe(ctypes.byref(probe), 0, n, out)
            assert got == n << io
            assert out.raw[:got] == (np.array(vals, np.int64) * lvl[1]).astype("<i8" if io == 3 else "<i4").tobytes()


SANITIZED_KERNEL_CASES = ("conv_bands_span", "conv_bands_strided", "conv_padding_beyond_kernel",
                          "conv_acc64_i64_input", "lif_saturate_wrap", "lif_one_pass_s16_c8", "lif_one_pass_s32_c4_i32",
                          "ring_residual", "ring_5x5_wide_u", "ring_counts_spatial", "dense_few_o10",
                          "dense_few_tail_o260", "conv_image_g2_o32_s2", "conv_image_5x5", "lif_masks_ternary_c3",
                          "lif_masks_dense_u", "lif_masks_wide")


@pytest.mark.slow
def test_sanitized_kernel_paths(tmp_path):
    """ASan + UBSan (fatal) + -DSNNCC_CHECKED over the scatter borders, strides, wide types, chunks."""
    def one(name):
        g = KERNEL_CASES[name]()
        out = tmp_path / name
        ctarget.emit(g, out)
        ctarget.build(out, extra_cflags=("-DSNNCC_CHECKED",), sanitize=True)
        x = conformance.random_input(g, 2, np.random.default_rng(zlib.crc32(name.encode())))
        if name.startswith("dense_few"):  # the last input row: its weights end the array
            x[..., -1] = 1
        got = ctarget.simulate(out, x, probe_state=True, sanitize=True)
        ref = interpreter.run(g, x, probe_state=True)
        return sorted(got) == sorted(ref) and all(np.array_equal(got[k], ref[k]) for k in ref)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        results = dict(zip(SANITIZED_KERNEL_CASES, pool.map(one, SANITIZED_KERNEL_CASES)))
    assert all(results.values()), [k for k, ok in results.items() if not ok]


def _big_layer(channels: int, size: int, v_bits: int, dv: int) -> Graph:
    """spikes (8, size, size) -> 3x3 conv -> channels LIF neurons of v_bits (no current state)"""
    c = conformance.Choices(np.random.default_rng(channels * 1000 + size))
    conv = IntConv(weight=conformance.weights(c, (channels, 8, 3, 3), 8), padding=(1, 1), weight_bits=8)
    lif = IntLIF(threshold=c.array(100, 2000, channels), bias=c.array(-50, 50, channels), du=DECAY_ONE, dv=dv,
                 act_shift=2, u_bits=v_bits, v_bits=v_bits, v_overflow="saturate", reset="subtract",
                 reset_value=c.array(100, 2000, channels))
    return conformance._chain(f"big{channels}", IntInput(shape=(8, size, size), encoding="spikes"),
                              [("conv", conv), ("lif", lif)], steps=3)


@pytest.mark.parametrize("channels, size, v_bits, dv", [(48, 40, 24, 2048), (32, 30, 16, 1000), (4, 6, 12, 2048)])
def test_scratch_grows_with_the_state_and_stays_exact(channels, size, v_bits, dv, tmp_path):
    """Tiles and neuron chunks take up to 1/16 of the neuron state bytes (at least the
    minimum, at most the maximum): a big layer gets multi-row tiles and long chunks, a
    small one the least scratch, and every size is bit-exact (decay by a shift where
    4096 - dv is a power of two, by the product otherwise)."""
    from snncc.targets.c import lowering

    g = _big_layer(channels, size, v_bits, dv)
    p = emitter._Plan(g)
    state = p.data()["sizes"]["state_bytes"]  # the membranes in their formats (no u, no delays)
    assert p.acc_budget == min(lowering.ACC_SCRATCH_MAX, max(lowering.ACC_SCRATCH_MIN, state // 16))
    assert lowering.LIF_CHUNK_MIN <= p.lif_chunk <= lowering.LIF_CHUNK_MAX
    assert p.lif_chunk & (p.lif_chunk - 1) == 0 and (p.lif_chunk == lowering.LIF_CHUNK_MIN
                                                     or 16 * p.lif_chunk <= p.acc_budget // 2)
    if channels == 4:
        assert (p.acc_budget, p.lif_chunk) == (lowering.ACC_SCRATCH_MIN, lowering.LIF_CHUNK_MIN)
    else:
        assert p.lif_chunk >= 64 and p.acc_budget > lowering.ACC_SCRATCH_MIN
    assert emitter._Plan(g).acc_budget == p.acc_budget  # the same graph, the same sizes
    ctarget.emit(g, tmp_path)
    man = json.loads((tmp_path / emitter.MANIFEST).read_text())
    layer = [L for L in man["layers"] if L["acc"]][0]
    assert layer["tile_bytes"] <= p.acc_budget or layer["tile_rows"] == 1
    compare(g, tmp_path, conformance.random_input(g, 2, np.random.default_rng(size)), emit=False)


@pytest.mark.slow  # compiles the example three times (~1.5 min on 2 cores)
def test_example_memory_is_within_115_percent_of_eq28(tmp_path):
    """Issue 14's memory target, benchmarks/bench_c_memory.py: model.o flash + RAM <= 1.15 x
    SpQuant-SNN Eq. 28 for the default, 4-bit and ternary builds of the shipped example."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_c_memory.py"
    spec = importlib.util.spec_from_file_location("bench_c_memory", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--keep", str(tmp_path)]) == 0


def test_the_host_build_uses_this_machines_instructions_unless_told_not_to(monkeypatch):
    """-march=native where the compiler takes it, with what it expands to in the runtime
    object's cache key; SNNCC_NATIVE=0 gives a binary for any CPU of the architecture."""
    cc = runner.find_compiler()
    monkeypatch.setattr(runner, "_native", {})
    expanded = runner.native_target(cc)
    if expanded is None:
        pytest.skip(f"{cc} refuses -march=native here")
    assert "-march=native" in runner.compiler_flags(cc) and expanded  # the driver's options, not the word
    monkeypatch.setenv("SNNCC_NATIVE", "0")
    assert runner.native_target(cc) is None and "-march=native" not in runner.compiler_flags(cc)


def test_a_binary_for_another_cpu_is_rebuilt(tmp_path, monkeypatch):
    """The stamp records what -march=native meant: the same folder is stale once
    SNNCC_NATIVE changes (or on another CPU), not run with another machine's instructions."""
    monkeypatch.setattr(runner, "_native", {})
    if runner.native_target(runner.find_compiler()) is None:
        pytest.skip("the compiler refuses -march=native here: every build is for any CPU")
    out = tmp_path / "c"
    ctarget.emit(_tiny(), out)
    binary = runner.build(out)
    assert not runner._stale(binary, out)
    monkeypatch.setenv("SNNCC_NATIVE", "0")
    assert runner._stale(binary, out)


@pytest.mark.slow  # compiles the runtime twice without the cache: 13 s
def test_the_runtime_is_compiled_once_and_cached(tmp_path, monkeypatch):
    """snncc_rt.c is the same in every build: its object is cached by content, compiler and
    flags; a build from the cache is the same binary; a runtime that does not compile is
    not cached and its error is shown."""
    monkeypatch.setenv("SNNCC_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "c"
    ctarget.emit(_tiny(), out)
    first = runner.build(out).read_bytes()
    objs = sorted((tmp_path / "cache" / "c-runtime").glob("*.o"))
    assert len(objs) == 1
    assert runner.build(out).read_bytes() == first
    runner.build(out, extra_cflags=("-O0",))  # other flags: another object (-O0: quick to compile)
    assert len(list((tmp_path / "cache" / "c-runtime").glob("*.o"))) == 2
    x = np.random.default_rng(0).integers(0, 2, (2, 3, 4))
    compare(_tiny(), out, x, emit=False)
    (out / "snncc_rt.c").write_text((out / "snncc_rt.c").read_text() + "\n#error a broken runtime\n")
    with pytest.raises(SnnccError, match="a broken runtime"):
        runner.build(out)
    assert len(list((tmp_path / "cache" / "c-runtime").glob("*.o"))) == 2


@pytest.mark.parametrize("level", [(1 << 31) - 1, 1 << 29, 1 << 40])
def test_spatial_level_beyond_the_int32_update(tmp_path, level):
    """A spatial level whose level << act_shift does not fit the layer's int32 update (no
    u_bias: the runtime compares the int32 current itself): the bound is clamped to int32
    (every current inside it is skipped, INT32_MIN included), never wrapped; the build is
    the reference bit for bit (a wrapped bound on either side fails this)."""
    g = KERNEL_CASES["lif_masks_dense_u"]()
    g.set("lif", dataclasses.replace(g.node("lif"), spatial_level=level, u_bias=np.zeros(1, np.int64)))
    out = tmp_path / "c"
    ctarget.emit(g, out)
    man = json.loads((out / emitter.MANIFEST).read_text())
    assert [layer["update"] for layer in man["layers"] if layer["name"] == "lif"] == ["int32"]
    compare(g, out, conformance.random_input(g, 3, np.random.default_rng(level % 1000)), emit=False)


@pytest.mark.parametrize("scale, ctype", [(1, "SNN_I8"), (100, "SNN_I16"), (100000, "SNN_I32")])
def test_gate_weights_in_their_narrowest_type(tmp_path, scale, ctype):
    """The channel gate's weights are stored in the narrowest type that holds them (the
    sums stay int64); scaling the weights and levels together keeps every decision, and
    each width's build is the reference bit for bit."""
    g = conformance.CASES["sparsity_masks"]()
    for name, op in list(g.items()):
        if isinstance(op, IntLIF) and op.gate_weight.size:
            g.set(name, dataclasses.replace(op, gate_weight=op.gate_weight * scale, gate_level=op.gate_level * scale))
    x = conformance.random_input(g, 3, np.random.default_rng(scale))
    ctarget.emit(g, tmp_path)
    text = (tmp_path / "model.c").read_text()
    assert re.findall(r"\.gate_w = snn_const_\d+, \.gate_type = (SNN_I\d+)", text) == [ctype] * 2
    compare(g, tmp_path, x, emit=False)
    if scale > 1:  # the same spikes as the unscaled gates
        ref = interpreter.run(conformance.CASES["sparsity_masks"](), x)
        assert np.array_equal(interpreter.run(g, x)["output"], ref["output"])


@pytest.mark.slow
def test_random_line_buffer_layers(tmp_path, monkeypatch):
    """Random row-scanned layers (conformance.random_row_scan_graph: kernels up to 5x5, any
    padding, spikes or counts, a depthwise skip, random neurons) with the scratch budget
    lowered so that most get a line buffer: every one is the reference bit for bit."""
    from snncc.targets.c import lowering

    monkeypatch.setattr(lowering, "ACC_SCRATCH_MIN", 256)
    rings = 0
    for seed in range(120):
        g = conformance.random_row_scan_graph(np.random.default_rng(seed))
        if g is None:
            continue
        man = emitter.manifest(emitter.plan(g))
        rings += any(layer["tile_ring"] for layer in man["layers"] if layer["name"] == "lif")
        x = conformance.random_input(g, 2, np.random.default_rng(seed))
        compare(g, tmp_path / str(seed), x)
    assert rings >= 40


def test_a_line_buffer_the_synapses_do_not_allow_runs_in_bands(tmp_path):
    """A layer table that says ring for a layer whose conv has stride 2 along y (which
    lowering.ring_rows never gives one: model.c edited here) still computes the reference:
    the runtime's ring_ok sends it to the bands of the same tile instead of a wrong line
    buffer."""
    g = _ring_case("ring_strided", (3, 24, 8), 4, [((3, 3), (1, 1), 1)], stride=(2, 1))
    ctarget.emit(g, tmp_path)
    text = (tmp_path / "model.c").read_text()
    tile = re.search(r"(static const snn_tile_t L\d+_lif_tile = \{[^}]*\.rows = (\d+), \.cols = 0, \.ring = )0", text)
    assert tile is not None
    (tmp_path / "model.c").write_text(text.replace(tile.group(0), tile.group(1) + tile.group(2)))
    compare(g, tmp_path, conformance.random_input(g, 2, np.random.default_rng(3)), emit=False)
