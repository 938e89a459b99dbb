"""Lava lowering passes: run -> transform -> pattern gone -> run -> identical results.

Every pass in snncc/passes/lava.py that claims exactness is checked with the reference
interpreter on random inputs (every neuron's spikes, v and u, and the output)."""
import itertools

import numpy as np
import pytest

from conformance import CASES, random_graph, random_input
from snncc.ir.graph import Graph
from snncc.ir.nodes import Add, Flatten, IntConv, IntDense, IntInput, IntLIF, MaxPool, SumPool
from snncc.ir.verify import verify
from snncc.passes.lava import (LAVA_PASSES, fuse_sumpool, lava_conv_wrap, lava_fanin, lava_schedule,
                               lower_maxpool)
from snncc.reference.interpreter import run

I64 = np.int64


def same(g0, g1, n=3, seed=0, steps=None):
    """Reference results of g0 and g1 agree on every key of g0 (g1 may add layers)."""
    verify(g1, "int")
    x = random_input(g0, n, np.random.default_rng(seed), steps)
    a, b = run(g0, x, probe_state=True), run(g1, x, probe_state=True)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def lif(**kw):
    kw.setdefault("threshold", np.array([40], I64))
    kw.setdefault("act_shift", 0)
    kw.setdefault("dv", 500)
    return IntLIF(**kw)


def chain(shape, layers, enc="spikes", bits=1, steps=4):
    g = Graph()
    g.meta.update(steps=steps)
    cur = g.add("x", IntInput(shape=shape, encoding=enc, bits=bits))
    for name, node in layers:
        cur = g.add(name, node, [cur])
    g.outputs = [cur]
    verify(g, "int")
    return g


def rand_w(rng, shape, bits=5):
    return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), shape).astype(I64)


# ------------------------------------------------------------------------- fuse_sumpool
POOLS = [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((2, 1), (1, 2), (0, 0)), ((3, 2), (3, 2), (1, 0)),
         ((1, 1), (1, 1), (0, 0))]
CONVS = [((3, 3), (1, 1), (1, 1), (1, 1)), ((2, 3), (2, 1), (0, 1), (1, 2)), ((1, 1), (1, 1), (0, 0), (1, 1)),
         ((3, 1), (1, 2), (2, 0), (2, 1))]


@pytest.mark.parametrize("pool,conv", list(itertools.product(POOLS, CONVS)))
def test_sumpool_then_conv_fuses_exactly_or_is_left(pool, conv):
    rng = np.random.default_rng(1)
    (k, s, p), (kc, sc, pc, dc) = pool, conv
    g = chain((2, 9, 8), [("l0", lif(threshold=np.array([0], I64))),
                          ("pool", SumPool(kernel=k, stride=s, padding=p)),
                          ("conv", IntConv(weight=rand_w(rng, (4, 1, *kc)), groups=2, stride=sc, padding=pc,
                                           dilation=dc, weight_bits=5)),
                          ("l1", lif())])
    g2, changed = fuse_sumpool(g)
    if changed:
        assert not g2.of_kind("SumPool")
        same(g, g2)
    else:  # only refused where the conv's padding would read beyond the pooled windows
        assert any(pc)


@pytest.mark.parametrize("pool", POOLS)
def test_conv_then_sumpool_fuses_exactly(pool):
    rng = np.random.default_rng(2)
    k, s, p = pool
    for conv in CONVS:
        kc, sc, pc, dc = conv
        g = chain((2, 11, 10), [("conv", IntConv(weight=rand_w(rng, (3, 2, *kc)), stride=sc, padding=pc,
                                                 dilation=dc, weight_bits=5, weight_exp=1)),
                                ("pool", SumPool(kernel=k, stride=s, padding=p)),
                                ("l1", lif(threshold=np.array([300], I64)))], enc="direct", bits=3)
        g2, changed = fuse_sumpool(g)
        assert changed == (p == (0, 0)), (pool, conv)
        if changed:
            assert not g2.of_kind("SumPool")
            same(g, g2)


@pytest.mark.parametrize("pool", POOLS)
def test_sumpool_then_dense_expands_weights(pool):
    rng = np.random.default_rng(3)
    k, s, p = pool
    for flat in (True, False):
        mid = [("flat", Flatten())] if flat else []
        g = chain((3, 7, 6), [("l0", lif(threshold=np.array([0], I64))),
                              ("pool", SumPool(kernel=k, stride=s, padding=p))] + mid)
        n_in = int(np.prod(g.shapes()[g.outputs[0]]))
        cur = g.outputs[0]
        d = g.add("fc", IntDense(weight=rand_w(rng, (5, n_in)), weight_bits=5, weight_exp=-1), [cur])
        g.outputs = [g.add("out", lif(fires=False), [d])]
        g2, changed = fuse_sumpool(g)
        assert changed and not g2.of_kind("SumPool")
        same(g, g2)


def test_sumpool_feeding_output_is_left_alone():
    g = chain((1, 4, 4), [("l0", lif()), ("pool", SumPool())])
    assert fuse_sumpool(g) == (g, False) or not fuse_sumpool(g)[1]


# ------------------------------------------------------------------------ lower_maxpool
@pytest.mark.parametrize("k,s,p", [((2, 2), (2, 2), (0, 0)), ((3, 2), (2, 1), (0, 0)), ((2, 2), (1, 1), (0, 0))])
def test_maxpool_of_spikes_becomes_spike_or(k, s, p):
    rng = np.random.default_rng(4)
    g = chain((2, 8, 7), [("c0", IntConv(weight=rand_w(rng, (3, 2, 3, 3)), padding=(1, 1), weight_bits=5)),
                          ("l0", lif(threshold=np.array([3], I64))),
                          ("mp", MaxPool(kernel=k, stride=s, padding=p)),
                          ("flat", Flatten())], enc="direct", bits=2)
    n_in = g.shapes()["flat"][0]
    d = g.add("fc", IntDense(weight=rand_w(rng, (4, n_in)), weight_bits=5), ["flat"])
    g.outputs = [g.add("out", lif(fires=False), [d])]
    g2, changed = lower_maxpool(g)
    assert changed and not g2.of_kind("MaxPool")
    or_lif = [n for n in g2.of_kind("IntLIF") if n not in g.g]
    assert len(or_lif) == 1
    from snncc.targets.lava.check import lif_form
    assert lif_form(g2.node(or_lif[0])) is not None  # a native Lava LIF
    same(g, g2, seed=1)
    # on the input spikes too
    g3 = chain((2, 6, 6), [("mp", MaxPool(kernel=k, stride=s, padding=p)), ("flat", Flatten())])
    d = g3.add("fc", IntDense(weight=rand_w(rng, (3, g3.shapes()["flat"][0])), weight_bits=5), ["flat"])
    g3.outputs = [g3.add("out", lif(fires=False), [d])]
    g4, changed = lower_maxpool(g3)
    assert changed
    same(g3, g4)


def test_maxpool_of_graded_values_is_left_alone():
    g = CASES["maxpool"]()
    g2, _ = lower_maxpool(g)
    assert "pool_signed" in g2 and "pool_spikes" not in g2
    same(g, g2)


# --------------------------------------------------------------------------- lava_fanin
def test_fanin_adds_identity_synapse_for_spike_skip():
    rng = np.random.default_rng(5)
    g = Graph()
    g.meta.update(steps=5)
    x = g.add("x", IntInput(shape=(2, 5, 5), encoding="spikes"))
    l0 = g.add("l0", lif(threshold=np.array([0], I64)), [x])
    c = g.add("conv", IntConv(weight=rand_w(rng, (2, 2, 3, 3)), padding=(1, 1), weight_bits=5), [l0])
    a = g.add("add", Add(), [c, l0])
    l1 = g.add("l1", lif(threshold=np.array([5], I64)), [a])
    f = g.add("flat", Flatten(), [l1])
    a2 = g.add("add2", Add(), [f, g.add("f0", Flatten(), [l0])])  # an Add of spikes read by a synapse
    d = g.add("fc", IntDense(weight=rand_w(rng, (3, 50)), weight_bits=5), [a2])
    g.outputs = [g.add("out", lif(fires=False), [d])]
    verify(g, "int")
    g2, changed = lava_fanin(g)
    assert changed
    for name in g2.of_kind("Add"):
        assert all(g2.node(s).kind in ("IntConv", "IntDense") for s in g2.inputs(name))
        assert all(g2.node(u).kind == "IntLIF" for u in g2.users(name))
    same(g, g2, seed=2)


def test_fanin_flattens_nested_adds():
    rng = np.random.default_rng(6)
    g = Graph()
    g.meta.update(steps=4)
    x = g.add("x", IntInput(shape=(6,), encoding="spikes"))
    ds = [g.add(f"d{i}", IntDense(weight=rand_w(rng, (4, 6)), weight_bits=5), [x]) for i in range(3)]
    inner = g.add("inner", Add(), ds[:2])
    outer = g.add("outer", Add(), [inner, ds[2]])
    g.outputs = [g.add("out", lif(fires=False), [outer])]
    g2, changed = lava_fanin(g)
    assert changed and "inner" not in g2 and g2.inputs("outer") == ds
    same(g, g2)


# ----------------------------------------------------------------- schedule / conv wrap
def test_lava_schedule_adds_one_step_once():
    g = CASES["residual_add"]()
    before = {n: g.node(n).delay for n in g.of_kind("IntConv", "IntDense")}
    g2, changed = lava_schedule(g)
    assert changed and g2.meta["schedule"] == "lava"
    assert {n: g2.node(n).delay for n in before} == {n: d + 1 for n, d in before.items()}
    assert lava_schedule(g2) == (g2, False)


def test_lava_conv_wrap_sets_24_bits():
    g = CASES["conv_groups_dilation"]()
    g2, changed = lava_conv_wrap(g)
    assert changed and all(g2.node(n).out_bits == 24 for n in g2.of_kind("IntConv"))
    same(g, g2)  # no conv output of this case leaves 24 bits


# ------------------------------------------------------------- the whole lowering, broadly
@pytest.mark.parametrize("seed", range(40))
def test_lowering_passes_are_exact_on_random_graphs(seed):
    g = random_graph(np.random.default_rng(seed))
    g2 = g
    for fn, _ in LAVA_PASSES[:3]:  # the rewrites; conv_wrap and schedule change semantics
        g2, _ = fn(g2)
        verify(g2, "int", after=fn.__name__)
    same(g, g2, n=2, seed=seed)


@pytest.mark.parametrize("name", sorted(CASES))
def test_lowering_passes_are_exact_on_cases(name):
    g = CASES[name]()
    g2 = g
    for fn, _ in LAVA_PASSES[:3]:
        g2, _ = fn(g2)
    same(g, g2, n=2)


# ------------------------------------------------------------------------ latency_reset
def _biased_chain(v_init=0):
    """Input -> conv -> LIF (with bias) -> maxpool -> dense -> LIF -> dense -> readout,
    every neuron biased so that, without the reset, it moves before its input arrives."""
    rng = np.random.default_rng(7)
    return chain((2, 6, 6), [
        ("conv", IntConv(weight=rand_w(rng, (3, 2, 3, 3)), padding=(1, 1))),
        ("lif1", lif(bias=np.array([9, -4, 15], I64), v_init=np.array([v_init], I64))),
        ("pool", MaxPool(kernel=(2, 2), stride=(2, 2))),
        ("flat", Flatten()),
        ("fc", IntDense(weight=rand_w(rng, (5, 27)))),
        ("lif2", lif(bias=np.array([6], I64), du=3000)),
        ("fc2", IntDense(weight=rand_w(rng, (3, 5)))),
        ("out", IntLIF(fires=False, act_shift=0, bias=np.array([2, -3, 1], I64))),
    ], steps=6)


def _lava(g, **cfg):
    from snncc.config import CompileConfig
    from snncc.passes.lava import latency_reset

    for fn, _ in LAVA_PASSES:
        g, _ = fn(g)
    return latency_reset(g, CompileConfig(steps=6, **cfg))


def test_latency_reset_makes_the_lava_model_the_zero_latency_model_shifted():
    g0 = _biased_chain()
    x = random_input(g0, 4, np.random.default_rng(1))
    g, changed = _lava(g0)
    verify(g, "int")
    assert changed
    lat = g.latency()
    depth = {"lif1": 1, "lif2": 3, "out": 4}  # the lowered max pool adds a synapse + spike-OR neuron
    for n, d in depth.items():
        assert (g.node(n).reset_interval, g.node(n).reset_offset) == (6 + lat, d)
    xs = np.concatenate([x, np.repeat(x[:, -1:], lat, axis=1)], axis=1)  # T + latency steps
    z, r = run(g0, x, probe_state=True), run(g, xs, probe_state=True)
    for n, d in depth.items():
        for k in (n, f"{n}/v"):
            np.testing.assert_array_equal(r[k][:, d:d + 6], z[k], err_msg=k)
    plain, _ = _lava(g0, latency_reset=False)
    assert all(plain.node(n).reset_interval == 0 for n in plain.of_kind("IntLIF"))
    p = run(plain, xs, probe_state=True)
    assert not np.array_equal(p["out/v"][:, 4:10], z["out/v"])  # without it the biases leak in


def test_latency_reset_skips_zero_latency_v_init_and_existing_resets():
    from snncc.config import CompileConfig
    from snncc.passes.lava import latency_reset

    g0 = _biased_chain(v_init=5)
    assert latency_reset(g0, CompileConfig(steps=6)) == (g0, False)  # zero latency: nothing to do
    g, _ = _lava(g0)
    assert g.node("lif1").reset_interval == 0  # a reset would clear its v_init
    assert g.node("lif2").reset_interval > 0
    g2, changed = latency_reset(g, CompileConfig(steps=6))
    assert not changed  # already reset: left as it is
