"""The Lava target reproduces the reference interpreter exactly (every key: spikes of
every layer, v, u, output), its network.py runs standalone, and the Loihi 2 checker
lists every violation.

Lava is slow (~0.7 s of compile + process spawn per sample), so each network is small,
runs 2 samples and few steps."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("lava", reason="the Lava target needs lava-nc")

from conformance import CASES, random_graph, random_input  # noqa: E402
from snncc.errors import BitWidthError  # noqa: E402
from snncc.ir.graph import Graph  # noqa: E402
from snncc.ir.nodes import (Add, Flatten, IntConv, IntDense, IntInput, IntLIF, MaxPool,  # noqa: E402
                            SumPool)
from snncc.ir.verify import verify  # noqa: E402
from snncc.passes.lava import LAVA_PASSES, lava_schedule  # noqa: E402
from snncc.reference.interpreter import run  # noqa: E402
from snncc.targets import get  # noqa: E402
from snncc.targets import lava  # noqa: E402

I64 = np.int64


def lower(g: Graph) -> Graph:
    for fn, _ in LAVA_PASSES:
        g, _ = fn(g)
        verify(g, "int", after=fn.__name__)
    return g


def assert_lava_exact(g: Graph, tmp_path, n=2, seed=0, probe_state=True):
    x = random_input(g, n, np.random.default_rng(seed))
    ref = run(g, x, probe_state=probe_state)
    lava.emit(g, tmp_path)
    got = lava.simulate(tmp_path, x, probe_state=probe_state)
    assert sorted(got) == sorted(ref)
    for k in ref:
        assert got[k].dtype == np.int64 and got[k].shape == ref[k].shape, k
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    return ref


def rw(rng, shape, bits=8):
    return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), shape).astype(I64)


def native(thr, **kw):
    """A Loihi-native IntLIF (threshold a multiple of 64)."""
    return IntLIF(threshold=np.array([thr << 6], I64), **kw)


def conv_net() -> Graph:
    """direct 8-bit pixels -> conv -> LIF -> grouped strided conv -> LIF -> flatten -> dense -> readout."""
    rng = np.random.default_rng(0)
    g = Graph()
    g.meta.update(name="conv_net", steps=4)
    x = g.add("x", IntInput(shape=(3, 8, 7), bits=8))
    c1 = g.add("conv1", IntConv(weight=rw(rng, (4, 3, 3, 3)), padding=(1, 1)), [x])
    l1 = g.add("lif1", native(4000, dv=300, bias=np.array([64, -640, 0, 128], I64)), [c1])
    c2 = g.add("conv2", IntConv(weight=rw(rng, (6, 2, 2, 3)), stride=(2, 1), padding=(0, 1), dilation=(1, 2),
                                groups=2), [l1])
    l2 = g.add("lif2", native(50, du=3000, dv=100), [c2])
    f = g.add("flat", Flatten(), [l2])
    d = g.add("fc", IntDense(weight=rw(rng, (5, g.shapes()["flat"][0]))), [f])
    g.outputs = [g.add("readout", IntLIF(fires=False, dv=0), [d])]
    return lower(g)


def dense_forms_net() -> Graph:
    """Every Lava Dense weight form side by side: mixed 8-bit (stored 2m, exp - 1), one
    sign (m, exp), inhibitory with -255, a shared power of two (w = m 2^j), a 9-bit
    mixed mantissa (simulation only), negative weight_exp (floor); a DelayDense."""
    rng = np.random.default_rng(1)
    g = Graph()
    g.meta.update(name="dense_forms", steps=5)
    x = g.add("x", IntInput(shape=(12,), bits=4))
    forms = {
        "mixed": dict(weight=rw(rng, (6, 12)), weight_exp=-2),
        "excit": dict(weight=rng.integers(0, 256, (6, 12)), weight_bits=9, weight_exp=-1),
        "inhib": dict(weight=np.where(rng.random((6, 12)) < .5, -255, -rng.integers(0, 255, (6, 12))),
                      weight_bits=9, weight_exp=-1),
        "pow2": dict(weight=rw(rng, (6, 12)) * 8, weight_bits=11, weight_exp=-3),
        "nine": dict(weight=rw(rng, (6, 12), 9), weight_bits=9, weight_exp=-2),
    }
    for name, kw in forms.items():
        kw["weight"] = np.asarray(kw["weight"], I64)
        d = g.add(f"fc_{name}", IntDense(**kw), [x])
        g.add(f"lif_{name}", native(20, du=2048, dv=64), [d])
    d = g.add("fc_delay", IntDense(weight=rw(rng, (3, 6)), delay=2), ["lif_mixed"])
    g.outputs = [g.add("out", native(1, dv=0), [d])]
    return lower(g)


def residual_net() -> Graph:
    """Residual fan-in: Add(conv(s), s) into one neuron (the skip becomes an identity
    synapse); MaxPool of spikes (lowered to a spike OR); SumPool before a conv (fused)."""
    rng = np.random.default_rng(2)
    g = Graph()
    g.meta.update(name="residual", steps=5)
    x = g.add("x", IntInput(shape=(2, 8, 8), encoding="spikes"))
    c0 = g.add("stem", IntConv(weight=rw(rng, (3, 2, 3, 3)), padding=(1, 1)), [x])
    l0 = g.add("stem_lif", native(1, dv=0), [c0])
    c1 = g.add("block.conv", IntConv(weight=rw(rng, (3, 3, 3, 3), 6), padding=(1, 1)), [l0])
    a = g.add("block.add", Add(), [c1, l0])
    l1 = g.add("block.lif", native(1, dv=200), [a])
    mp = g.add("pool", MaxPool(kernel=(2, 2), stride=(2, 2)), [l1])
    sp = g.add("sum", SumPool(kernel=(2, 2), stride=(2, 2)), [mp])
    c2 = g.add("head", IntConv(weight=rw(rng, (4, 3, 1, 1))), [sp])
    l2 = g.add("head_lif", native(1, dv=0), [c2])
    f = g.add("flat", Flatten(), [l2])
    d = g.add("fc", IntDense(weight=rw(rng, (3, 16))), [f])
    g.outputs = [g.add("out", IntLIF(fires=False), [d])]
    verify(g, "int")
    low = lower(g)
    assert not low.of_kind("MaxPool", "SumPool")
    return low


def custom_neurons_net() -> Graph:
    """Neurons Loihi 2's LIF cannot express, via the custom SnnccLIF process: subtract
    reset, ternary membrane, binary membrane with no reset, per-channel thresholds."""
    rng = np.random.default_rng(3)
    g = Graph()
    g.meta.update(name="custom", steps=5)
    x = g.add("x", IntInput(shape=(2, 5, 5), bits=8))
    c = g.add("conv", IntConv(weight=rw(rng, (3, 2, 3, 3), 5), padding=(1, 1)), [x])
    l1 = g.add("sub", IntLIF(threshold=np.array([9000, 12000, 15000], I64), reset="subtract",
                             reset_value=np.array([6000], I64), dv=100, act_shift=4, v_bits=16,
                             v_overflow="wrap"), [c])
    c2 = g.add("conv2", IntConv(weight=rw(rng, (2, 3, 3, 3), 5), padding=(1, 1)), [l1])
    l2 = g.add("tern", IntLIF(state_quant="ternary", state_level=np.array([300, 700], I64), dv=1024,
                              threshold=np.array([900], I64), reset="subtract", reset_value=np.array([500], I64),
                              act_shift=3, v_bits=16), [c2])
    f = g.add("flat", Flatten(), [l2])
    d = g.add("fc", IntDense(weight=rw(rng, (4, 50), 6), weight_bits=6), [f])
    l3 = g.add("bin", IntLIF(state_quant="binary", state_level=np.array([40], I64), threshold=np.array([30], I64),
                             act_shift=1, dv=300, reset="none"), [d])
    d2 = g.add("fc2", IntDense(weight=rw(rng, (3, 4), 5), weight_bits=5), [l3])
    g.outputs = [g.add("out", IntLIF(fires=False, du=1000, dv=7, act_shift=2, u_bits=16, u_overflow="saturate"),
                       [d2])]
    return lower(g)


NETS = {"conv": conv_net, "dense_forms": dense_forms_net, "residual": residual_net,
        "custom_neurons": custom_neurons_net}


@pytest.mark.parametrize("name", sorted(NETS))
def test_lava_equals_reference(name, tmp_path):
    g = NETS[name]()
    assert lava.blockers(g) == []
    ref = assert_lava_exact(g, tmp_path)
    assert any(ref[k].any() for k in ref if "/" not in k and k != "output"), "no layer ever spiked"


# conformance cases Lava can express once lowered (the others are refused by the checker)
LAVA_CASES = ["lava_cuba_lif", "periodic_reset", "ternary_membrane", "subtract_reset", "overflow_wrap_lava",
              "conv_groups_dilation", "delays", "current_decay_edges", "odd_names"]


@pytest.mark.parametrize("name", LAVA_CASES)
def test_lava_equals_reference_on_conformance_cases(name, tmp_path):
    g = CASES[name]()
    if name in ("lava_cuba_lif", "periodic_reset"):  # already on Lava's schedule
        g.meta["schedule"] = "lava"
    g = lower(g)
    assert lava.blockers(g) == []
    assert_lava_exact(g, tmp_path, seed=1)
    if name == "periodic_reset":  # native LIFReset where Lava's LIF fits, else SnnccLIF's own reset
        text = (tmp_path / "network.py").read_text()
        assert text.count("= LIFReset(") == 2 and "reset_interval=3, reset_offset=0" in text


def test_lava_equals_reference_on_random_graphs(tmp_path):
    done = 0
    for seed in range(200):
        g = lower(random_graph(np.random.default_rng(seed)))
        if lava.blockers(g):
            continue
        assert_lava_exact(g, tmp_path / str(seed), seed=seed, probe_state=done % 2 == 0)
        done += 1
        if done == 3:
            break
    assert done == 3


def test_emit_is_deterministic_and_registered(tmp_path):
    g = conv_net()
    assert get("lava") is lava
    a = lava.emit(g, tmp_path / "a")
    b = lava.emit(g, tmp_path / "b")
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    text = (tmp_path / "a" / "network.py").read_text()
    assert "Conv(" in text and "LIF(" in text and "Dense(" in text and "SnnccLIF(" not in text
    assert "vth=131072" in text  # the readout: a Lava LIF whose threshold v never reaches


def test_emit_refuses_what_lava_cannot_express(tmp_path):
    g = CASES["maxpool"]()  # MaxPool of signed synapse outputs
    with pytest.raises(BitWidthError, match="MaxPool of graded values"):
        lava.emit(lower(g), tmp_path)


def test_standalone_network_py_runs_without_snncc(tmp_path):
    """network.py needs only lava-nc + numpy: run it in a subprocess in which any import
    of snncc fails."""
    g = dense_forms_net()
    out = tmp_path / "net"
    lava.emit(g, out)
    x = random_input(g, 2, np.random.default_rng(7))
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import runpy, sys
        class NoSnncc:
            def find_spec(self, name, path=None, target=None):
                if name == "snncc" or name.startswith("snncc."):
                    raise ImportError("snncc must not be needed by network.py")
        sys.meta_path.insert(0, NoSnncc())
        sys.argv = ["network.py", "--input", {str(tmp_path / 'x.npy')!r}, "--out", {str(tmp_path / 'r.npz')!r},
                    "--probe-state"]
        runpy.run_path({str(out / 'network.py')!r}, run_name="__main__")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = run(g, x, probe_state=True)
    with np.load(tmp_path / "r.npz") as z:
        assert sorted(z.files) == sorted(ref)
        for k in ref:
            np.testing.assert_array_equal(z[k], ref[k], err_msg=k)


# ------------------------------------------------------------------------------ checker
def compliant() -> Graph:
    rng = np.random.default_rng(4)
    g = Graph()
    g.meta.update(name="compliant", steps=3)
    x = g.add("x", IntInput(shape=(1, 6, 6), bits=8))
    c = g.add("conv", IntConv(weight=rw(rng, (2, 1, 3, 3))), [x])
    l1 = g.add("lif", native(100, du=4000, dv=10, bias=np.array([4095 << 7, -64], I64)), [c])
    f = g.add("flat", Flatten(), [l1])
    d = g.add("fc", IntDense(weight=rw(rng, (3, 32)), weight_exp=2, delay=40), [f])
    g.outputs = [g.add("out", native(131071, dv=4095), [d])]
    g, _ = lava_schedule(g)  # 0 -> 1, 40 -> 41
    return g


def test_checker_passes_a_compliant_graph():
    g = compliant()
    assert lava.check(g) == []
    lava.enforce(g, strict=True)


def test_checker_lists_every_violation():
    rng = np.random.default_rng(5)
    g = Graph()
    g.meta.update(name="bad", steps=3)
    x = g.add("x", IntInput(shape=(1, 6, 6), bits=8))
    c = g.add("conv2", IntConv(weight=np.clip(rw(rng, (2, 1, 3, 3), 10), -300, 250), weight_bits=10, delay=1,
                               out_bits=24), [x])
    l1 = g.add("lif1", IntLIF(threshold=np.array([1000, 2000], I64), du=0, dv=4096, bias=np.array([8191 << 8], I64),
                              v_init=np.zeros(1, I64)), [c])
    f = g.add("flat", Flatten(), [l1])
    d = g.add("fc", IntDense(weight=rw(rng, (3, 32), 12), weight_bits=12, delay=70), [f])
    l2 = g.add("lif2", IntLIF(threshold=np.array([100], I64), reset="subtract"), [d])
    g.outputs = [l2]
    verify(g, "int")
    msgs = lava.check(g)
    text = "\n".join(msgs)
    for needle in ["layer 'conv2': weights span [-300, 250]", "--weight-bits 8",   # conv weights
                   "layer 'fc': weights span",                                     # dense mantissa
                   "2 different thresholds in one layer", "--granularity tensor",  # scalar vth
                   "threshold 1000 is not a multiple of 64",                        # vth << 6
                   "du=0", "dv=4096",                                                # 12-bit decays
                   "13-bit mantissa",                                                # bias
                   "delay 70",                                                       # delays
                   "reset 'subtract'", "simulation only: not a native Loihi 2 neuron"]:
        assert needle in text, (needle, text)
    with pytest.raises(BitWidthError) as e:
        lava.enforce(g, strict=True)
    assert len(e.value.violations) == len(msgs)
    with pytest.raises(BitWidthError) as e:  # without strict: only what Lava cannot simulate exactly
        lava.enforce(g)
    assert [v for v in e.value.violations if "layer 'fc': weights span" in v]
    assert not [v for v in e.value.violations if "simulation only" in v]


def test_shim_imports_lava_after_the_start_method_was_fixed():
    """Lava's runtime calls multiprocessing.set_start_method('fork') at import; the shim
    keeps that from failing in a process that already fixed the (same) method."""
    code = ("import multiprocessing as mp; mp.get_start_method(); import snncc.targets.lava._shim; "
            "from lava.magma.runtime.runtime import Runtime; print(mp.get_start_method())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "fork", proc.stderr[-2000:]
