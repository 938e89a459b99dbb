"""The reference kernels against hand-computed values and torch."""
import numpy as np
import pytest
import torch

from snncc.errors import SnnccError
from snncc.ir.graph import Graph
from snncc.ir.nodes import Add, Flatten, IntConv, IntDense, IntInput, IntLIF, MaxPool, SumPool
from snncc.reference import interpreter as R
from snncc.reference import kernels as K

I64 = np.int64


def test_decay_rounds_toward_zero():
    x = np.array([100, -100, 7, -7, 0], I64)
    np.testing.assert_array_equal(K.decay(x, 2048), [50, -50, 3, -3, 0])
    np.testing.assert_array_equal(K.decay(x, 1), [99, -99, 6, -6, 0])   # Lava du=0: still decays
    np.testing.assert_array_equal(K.decay(x, 0), x)
    np.testing.assert_array_equal(K.decay(x, 4096), [0] * 5)


@pytest.mark.parametrize("mode,vals,want", [
    ("saturate", [127, 128, -127, -128, 300], [127, 127, -127, -127, 127]),
    ("wrap", [127, 128, -128, -129, 300], [127, -128, -128, 127, 44]),
    ("wrap_lava", [128, 129, -128, -127, 300], [128, -127, 128, -127, 44]),
])
def test_overflow_modes_at_the_edges(mode, vals, want):
    np.testing.assert_array_equal(K.overflow(np.array(vals, I64), 8, mode), want)


def test_state_quant_half_away_from_zero():
    v = np.array([-16, -15, -5, 0, 4, 5, 9, 30], I64)
    lvl = np.array([10], I64)
    np.testing.assert_array_equal(K.state_quant(v, lvl, "ternary"), [-10, -10, -10, 0, 0, 10, 10, 10])
    np.testing.assert_array_equal(K.state_quant(v, lvl, "binary"), [0, 0, 0, 0, 0, 10, 10, 10])


def test_weight_exp_floors_negative():
    x = np.array([[1, 1]], I64)
    w = np.array([[-3, 0]], I64)
    assert K.dense(x, w, -1)[0, 0] == -2  # floor(-3 / 2)
    assert K.dense(x, w, 2)[0, 0] == -12


def test_pools_match_torch():
    x = np.random.default_rng(0).integers(0, 2, (2, 3, 8, 8)).astype(I64)
    t = torch.tensor(x, dtype=torch.float64)
    np.testing.assert_array_equal(K.sum_pool(x, (2, 2), (2, 2), (1, 1)),
                                  torch.nn.functional.avg_pool2d(t, 2, 2, 1).numpy() * 4)
    np.testing.assert_array_equal(K.max_pool(x, (3, 3), (2, 2), (0, 0)),
                                  torch.nn.functional.max_pool2d(t, 3, 2).numpy())


def _lava_cuba_graph(du, dv, bias, vth, delay=1):
    g = Graph()
    g.add("in", IntInput(shape=(1,), encoding="spikes", bits=1))
    g.add("a", IntDense(weight=np.array([[10]], I64), weight_bits=8, delay=delay), ["in"])
    g.add("b", IntDense(weight=np.array([[1]], I64), weight_bits=8, delay=delay), ["in"])
    g.add("s", Add(), ["a", "b"])
    g.add("n", IntLIF(du=du, dv=dv, bias=np.array([bias], I64), threshold=np.array([vth << 6], I64)), ["s"])
    g.outputs = ["n"]
    g.meta["steps"] = 4
    return g


def test_lava_fan_in_and_one_step_latency():
    """FACTS.md s.2: weights 10 and 1 on the same spike into one LIF give u = 11 << 6 = 704,
    one step after the spike (du_lava=4095 -> du=4096: no current memory)."""
    g = _lava_cuba_graph(du=4096, dv=0, bias=0, vth=1000)
    x = np.array([[[1], [0], [0], [0]]])
    r = R.run(g, x, probe_state=True)
    assert "n/u" not in r  # du = 4096 keeps no current state
    np.testing.assert_array_equal(r["n/v"][0, :, 0], [0, 704, 704, 704])


def test_cuba_lif_step_by_hand():
    """du = 1024 (Lava du 1023), dv = 2048, bias 5, threshold 10 << 6: hand-computed trace."""
    g = _lava_cuba_graph(du=1024, dv=2048, bias=5, vth=10, delay=0)
    x = np.array([[[1], [1], [0], [0]]])
    r = R.run(g, x, probe_state=True)
    u, v, spikes = [], [], []
    uu = vv = 0
    for t in range(4):
        a = 11 * x[0, t, 0]
        uu = int(np.sign(uu * 3072) * (abs(uu * 3072) >> 12)) + (a << 6)
        vv = int(np.sign(vv * 2048) * (abs(vv * 2048) >> 12)) + uu + 5
        s = vv > 640
        vv = 0 if s else vv
        u.append(uu), v.append(vv), spikes.append(int(s))
    np.testing.assert_array_equal(r["n/u"][0, :, 0], u)
    np.testing.assert_array_equal(r["n/v"][0, :, 0], v)
    np.testing.assert_array_equal(r["n"][0, :, 0], spikes)
    assert spikes == [1, 1, 1, 1] and v == [0, 0, 0, 0] and u == [704, 1232, 924, 693]


def test_delay_lines_shift_by_their_delay():
    g = Graph()
    g.add("in", IntInput(shape=(1,), encoding="spikes", bits=1))
    g.add("d", IntDense(weight=np.array([[1]], I64), weight_bits=2, delay=2), ["in"])
    g.add("n", IntLIF(dv=4096, threshold=np.array([0], I64)), ["d"])
    g.outputs = ["n"]
    r = R.run(g, np.array([[[1], [0], [1], [0], [0]]]))
    np.testing.assert_array_equal(r["n"][0, :, 0], [0, 0, 1, 0, 1])


def test_input_contract_errors():
    g = _lava_cuba_graph(4096, 0, 0, 10)
    with pytest.raises(SnnccError, match="integer array"):
        R.run(g, np.zeros((1, 4, 1), np.float32))
    with pytest.raises(SnnccError, match=r"expected \(N, T, 1\)"):
        R.run(g, np.zeros((1, 4, 3), np.int64))
    with pytest.raises(SnnccError, match=r"takes integers in \[0, 1\]"):
        R.run(g, np.full((1, 4, 1), 2))


@pytest.mark.parametrize("name", ["delays", "residual_add", "sparsity_masks", None])
def test_a_static_input_gives_what_the_same_image_every_step_gives(name):
    """The interpreter computes a static input's stateless nodes once per run (a delayed
    synapse's line still starts with zeros): every array equals the run with the image
    given at every step (no shortcut), delays and random graphs included."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import conformance

    rng = np.random.default_rng(3)
    graphs = ([conformance.CASES[name]()] if name in conformance.CASES
              else [conformance.random_graph(np.random.default_rng(s)) for s in range(6)])
    for g in graphs:
        x = conformance.random_input(g, 2, rng)[:, 0]
        steps = int(g.meta.get("steps", 1)) + 2
        static = R.run(g, x, steps=steps, probe_state=True)
        per_step = R.run(g, np.ascontiguousarray(np.broadcast_to(x[:, None], (2, steps) + x.shape[1:])),
                         probe_state=True)
        assert sorted(static) == sorted(per_step)
        for key in static:
            assert np.array_equal(static[key], per_step[key]), key
