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


def test_channel_gate_sums_in_int64_whatever_the_membranes_dtype():
    """kernels.channel_gate on an int32 or float64 membrane (the fast neuron's own) whose
    channel sums pass 2^31: the same keep flags as Python integers give."""
    rng = np.random.default_rng(3)
    v = rng.integers(-(1 << 30), 1 << 30, (3, 4, 5, 5))
    v[0, 1] = (1 << 31) - 1  # 25 x (2^31 - 1): channel 1 of sample 0 sums far beyond int32
    w = rng.integers(-3, 4, (4, 4))
    lvl = rng.integers(-(1 << 33), 1 << 33, 4)
    p = [[sum(int(e) for e in v[n, j].ravel()) for j in range(4)] for n in range(3)]
    want = np.array([[sum(int(w[c, j]) * p[n][j] for j in range(4)) >= int(lvl[c]) for c in range(4)]
                     for n in range(3)])
    assert want.any() and not want.all()
    for dtype in (np.int64, np.int32, np.float64):
        np.testing.assert_array_equal(K.channel_gate(v.astype(dtype), w, lvl), want)
    # float64 membranes up to 2^53 (the fast neuron's limit): their channel sum p = 25 x
    # (2^50 + 1) is exact in int64; a float64 sum (p - 1) and a level of p + 1 both round
    # to the same float, which would keep channel 0
    big = np.zeros((1, 2, 5, 5))
    big[0, 1] = 2.0 ** 50 + 1
    p = 25 * (2 ** 50 + 1)
    keep = K.channel_gate(big, np.array([[0, 1], [0, -1]]), np.array([p + 1, -p]))
    np.testing.assert_array_equal(keep, [[False, True]])


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


# ---------------------------------------------------------------- the fast paths are the spec
def _conformance():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import conformance

    return conformance


def _same_as_int64(g, x, steps=None):
    """run(fast=True) == run(fast=False) on every array (probe_state: u and v too), for the
    input given per step and as a static image; returns the fast Simulation's neurons."""
    for xi in (x, x[:, 0]):
        fast = R.run(g, xi, steps=steps or x.shape[1], probe_state=True)
        slow = R.run(g, xi, steps=steps or x.shape[1], probe_state=True, fast=False)
        assert list(fast) == list(slow)
        for key in slow:
            assert fast[key].dtype == slow[key].dtype == I64, key
            assert np.array_equal(fast[key], slow[key]), key
    return R.Simulation(g, x.shape[0]).states


def _neuron_graph(x_bits, w, **lif):
    g = Graph()
    g.add("x", IntInput(shape=(w.shape[1],), bits=x_bits))
    g.add("fc", IntDense(weight=np.asarray(w, I64), weight_bits=16), ["x"])
    g.add("n", IntLIF(**lif), ["fc"])
    g.outputs = ["n"]
    return g


@pytest.mark.parametrize("mode", ["saturate", "wrap", "wrap_lava"])
@pytest.mark.parametrize("d", [0, 1, 256, 2048, 4095, 4096])
def test_fast_neuron_equals_int64_at_the_overflow_edges(mode, d):
    """Small registers (u 10 bits, v 9 bits) that every step overflows in both directions,
    every overflow mode, decays 0..4096 and every reset: the int32 neuron (the bounds
    allow it) gives the int64 neuron's spikes, u and v at every step."""
    from snncc.ir.bounds import Bounds

    rng = np.random.default_rng(d)
    w = np.array([[1000, -1000, 300, -7], [-1000, 1000, -300, 5], [999, 1, -1, 0]], I64)
    x = rng.integers(0, 4, (3, 12, 4))
    x[:, :3] = 3  # the largest input at first: |u| reaches its bound
    for reset, du in (("zero", 4096), ("subtract", d), ("none", max(d, 1))):
        g = _neuron_graph(2, w, du=du, dv=d, act_shift=2, u_bits=10, v_bits=9, u_overflow=mode, v_overflow=mode,
                          reset=reset, reset_value=np.array([37], I64), threshold=np.array([100, 50, 3], I64),
                          bias=np.array([-5, 0, 7], I64), u_bias=np.array([3], I64), v_init=np.array([-200], I64))
        st = _same_as_int64(g, x)["n"]
        u_b, v_b = Bounds(g).neuron("n")
        if v_b is None or (u_b is None and du != 4096):  # wrap_lava may grow without bound: int64
            assert mode == "wrap_lava" and type(st).__name__ == "NeuronState"
        else:
            # (a wrap_lava register's invariant may pass 2^31 / 4095: float64)
            assert st.dtype == np.int32 or (mode == "wrap_lava" and st.dtype == np.float64), reset
            assert not (st.u_fits or st.v_fits)


@pytest.mark.parametrize("mode", ["saturate", "wrap", "wrap_lava"])
@pytest.mark.parametrize("bits", [2, 8, 10, 24, 29])
def test_fast_overflow_equals_the_int64_kernel(mode, bits):
    """The in-place overflow of the int32 / float64 neurons against kernels.overflow, on
    values within Lava's one fold ([-3 2^(b-1) + 1, 3 2^(b-1)]: int32 wraps by shifts), on
    its two edges, and beyond it (int32 wrap_lava folds twice; wrap shifts any value):
    every value the fast paths may hold (|x| + 2^(b+1) < 2^31)."""
    from snncc.ops.neurons import _overflow_fast

    rng = np.random.default_rng(bits)
    m = 1 << (bits - 1)
    top = (1 << 31) - (2 << bits) - 1  # the largest |x| the fast paths may hold
    edges = np.array([1 - 3 * m, -m - 1, -m, -m + 1, m - 1, m, m + 1, 3 * m, 0, 1, -1], I64)
    spans = [s for s in (3 * m, 2 * m + 1, top) if s <= top]
    assert max(spans) > 3 * m  # values beyond one fold
    for span in spans:
        both = np.concatenate([edges[np.abs(edges) <= span], rng.integers(-span, span + 1, 4000)])
        for x in (both, both[both >= 0], both[both <= 0]):  # overflowing on both sides, above, below
            want = K.overflow(x, bits, mode)
            for dtype in (np.int32, np.float64):
                got = x.astype(dtype)
                _overflow_fast(got, bits, mode, np.empty(x.shape, bool), np.empty(x.shape, dtype))
                assert np.array_equal(got.astype(I64), want), (dtype, span)


def test_fast_neuron_takes_float64_beyond_int32_and_int64_beyond_2_to_53():
    """Registers of 40 bits: intermediates pass 2^31 (float64 runs); 60-bit registers pass
    2^53 (the int64 neuron runs); both equal the int64 path, wraps included."""
    w = np.array([[32767, -32768], [-32768, 32767]], I64)
    x = np.random.default_rng(0).integers(0, 256, (2, 10, 2))
    for bits, kind in ((40, np.float64), (60, None)):
        for mode in ("saturate", "wrap", "wrap_lava"):
            g = _neuron_graph(8, w, du=100, dv=3000, act_shift=14, u_bits=bits - 8, v_bits=bits, u_overflow=mode,
                              v_overflow=mode, threshold=np.array([1 << (bits - 3)], I64), reset="subtract",
                              reset_value=np.array([1 << (bits - 4)], I64))
            st = _same_as_int64(g, x)["n"]
            assert getattr(st, "dtype", None) == kind or (mode == "wrap_lava" and kind), (bits, mode)


def test_fast_paths_equal_int64_on_random_graphs_and_every_conformance_case():
    """Every conformance case, 40 random graphs (convs with padding, stride, groups and
    dilation, pools, residual adds, delays, out_bits wraps, negative weight_exp) and 20 with
    random sparsity masks (conformance.with_masks): the fast interpreter gives the int64
    interpreter's arrays, static or streamed, batch of 3."""
    conformance = _conformance()
    rng = np.random.default_rng(1)
    graphs = [f() for f in conformance.CASES.values()]
    graphs += [conformance.random_graph(np.random.default_rng(s)) for s in range(40)]
    graphs += [conformance.random_masked_graph(s) for s in range(20)]
    for g in graphs:
        x = conformance.random_input(g, 3, rng, steps=int(g.meta.get("steps", 1)) + 2)
        _same_as_int64(g, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [dict(), dict(stride=(2, 1), padding=(1, 2)), dict(dilation=(2, 1), padding=(2, 0)),
                                  dict(groups=3, stride=(2, 2)), dict(weight_exp=-3), dict(weight_exp=2)])
@pytest.mark.parametrize("split", [None, ("samples", 3), ("rows", 1), ("rows", 2)])
def test_conv_plan_equals_conv2d(dtype, case, split, monkeypatch):
    """ConvPlan (prepared weights, kept buffers, any input dtype) = conv2d, batch 1 and 4,
    for int64, bool and float32 inputs, also after many calls into its ring of buffers;
    in one chunk, in chunks of 3 whole samples (the last one shorter), and one sample at a
    time in bands of one or two output rows (the last band shorter)."""
    rng = np.random.default_rng(7)
    groups = case.get("groups", 1)
    w = rng.integers(-128, 128, (6, 6 // groups, 3, 2))
    for n in (1, 4):
        _, _, ho, wo = K.conv2d(np.zeros((n, 6, 9, 11), I64), w, **case).shape
        row = 6 * 3 * 2 * wo * np.dtype(dtype).itemsize  # the columns of one output row of one sample
        if split:  # COLS_BYTES holds 3 samples' columns, or 1 or 2 rows' of one sample
            monkeypatch.setattr(K, "COLS_BYTES", split[1] * row * (ho if split[0] == "samples" else 1))
        plan = K.ConvPlan(w, (6, 9, 11), n, dtype, ring=2, **{"stride": (1, 1), "padding": (0, 0), **case})
        per, rows = (min(n, split[1]), ho) if split and split[0] == "samples" else (1, split[1]) if split else (n, ho)
        assert plan.chunks == [(s, min(n, s + per), r, min(ho, r + rows)) for s in range(0, n, per)
                               for r in range(0, ho, rows)]
        prev = None
        for i in range(5):
            x = rng.integers(0, 2, (n, 6, 9, 11))
            want = K.conv2d(x, w, **case)
            got = plan((x, x.astype(bool), x.astype(np.float32))[i % 3])
            assert got.dtype == dtype and np.array_equal(got, want)
            if prev is not None:  # the ring of 2 kept the previous result
                assert np.array_equal(*prev)
            prev = got, want


def test_exact_float_reads_the_bounds():
    """float32 below 2^24, float64 below 2^53, None beyond or where out_bits may wrap."""
    from snncc.ir.bounds import Bounds
    from snncc.ops.synapses import exact_float

    def pick(x_bits, wmax, k, **kw):
        g = _neuron_graph(x_bits, np.full((1, k), wmax), **{})
        g.set("fc", g.node("fc").replace(**kw))
        return exact_float(Bounds(g), "fc", g.node("fc"))

    assert pick(8, 255, 258) is np.float32  # 255 * 255 * 258 < 2^24
    assert pick(8, 255, 259) is np.float64
    assert pick(8, 255, 259, out_bits=26) is np.float64  # 16.8 M fits 26 bits: no wrap
    assert pick(8, 255, 259, out_bits=25) is None  # 2^24 = 16.8 M may wrap: the int64 rule


def test_fast_neuron_with_zero_weights_and_a_wide_act_shift():
    """All-zero weights bound a by 0, but the scale 2^act_shift itself must fit the
    neuron's dtype: act_shift 40 takes float64, not int32."""
    g = _neuron_graph(8, np.zeros((2, 3), I64), act_shift=40, threshold=np.array([5], I64),
                      bias=np.array([7], I64))
    st = _same_as_int64(g, np.random.default_rng(0).integers(0, 256, (2, 4, 3)))["n"]
    assert st.dtype == np.float64


def test_the_reference_runs_under_its_blas_thread_limit(monkeypatch):
    """SNNCC_BLAS_THREADS (default 1) limits numpy's BLAS inside a run, and only there;
    0 leaves BLAS as it is; anything else that is not a whole number is a clear error."""
    from threadpoolctl import threadpool_info

    def blas_threads():  # numpy's own (torch's or scipy's BLAS, loaded by other tests, may differ)
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]}

    seen = []
    step = R.Simulation._step
    monkeypatch.setattr(R.Simulation, "_step", lambda self, *a: (seen.append(blas_threads()), step(self, *a))[1])
    g = Graph()
    x = g.add("x", IntInput(shape=(4,), encoding="direct", bits=8))
    g.outputs = [g.add("lif", IntLIF(threshold=np.array([10])), [g.add("fc", IntDense(weight=np.ones((3, 4), np.int64)), [x])])]
    g.meta["steps"] = 2
    outside = blas_threads()
    monkeypatch.delenv(R.BLAS_THREADS_ENV, raising=False)
    R.run(g, np.ones((1, 4), np.int64))
    assert seen == [{1}, {1}] and blas_threads() == outside
    seen.clear()
    monkeypatch.setenv(R.BLAS_THREADS_ENV, "0")
    R.run(g, np.ones((1, 4), np.int64))
    assert seen == [outside, outside]
    for bad in ("two", "-1", "1.5"):
        monkeypatch.setenv(R.BLAS_THREADS_ENV, bad)
        with pytest.raises(SnnccError, match="SNNCC_BLAS_THREADS.*whole number"):
            R.run(g, np.ones((1, 4), np.int64))


@pytest.mark.parametrize("wmax", [100, 1 << 20, 1 << 45])
def test_pools_and_adds_run_exactly_in_the_dtype_the_bounds_give(wmax):
    """A three-input Add of a conv's sums, a neuron's bool spikes and a delayed conv's
    output (int64 zeros at its first step), a MaxPool of its signed sums and a padded
    SumPool of spikes: their runners (float32, float64, or the int64 reference beyond
    2^53, as the bounds give) produce the int64 interpreter's arrays, static or streamed."""
    from snncc.ir.bounds import Bounds
    from snncc.ops import op_def

    rng = np.random.default_rng(3)
    bits = 50 if wmax > 1 << 20 else 22 if wmax > 100 else 8

    def conv(**kw):
        return IntConv(weight=rng.integers(-wmax, wmax + 1, (3, 3, 3, 3)), weight_bits=bits, padding=(1, 1), **kw)

    g = Graph()
    g.add("x", IntInput(shape=(3, 7, 7), bits=8))
    g.add("ca", conv(), ["x"])
    wide = dict(u_bits=62, v_bits=62)  # registers that hold the sums of the widest weights
    g.add("n1", IntLIF(threshold=np.array([wmax * 50], I64), **wide), ["ca"])
    g.add("cb", conv(delay=1), ["n1"])
    g.add("add", Add(), ["ca", "n1", "cb"])
    g.add("mp", MaxPool(kernel=(2, 2), stride=(1, 1)), ["add"])
    g.add("n2", IntLIF(threshold=np.array([wmax * 20], I64), **wide), ["mp"])
    g.add("sp", SumPool(kernel=(3, 3), stride=(2, 2), padding=(1, 1)), ["n2"])
    g.add("n3", IntLIF(threshold=np.array([2], I64)), ["sp"])
    g.add("flat", Flatten(), ["n3"])
    g.add("fc", IntDense(weight=rng.integers(-3, 4, (4, 27))), ["flat"])
    g.add("out", IntLIF(threshold=np.array([0], I64), fires=False), ["fc"])
    g.outputs = ["out"]
    x = rng.integers(0, 256, (2, 5, 3, 7, 7))
    _same_as_int64(g, x)
    b, shapes = Bounds(g), g.shapes()
    want = np.float32 if wmax == 100 else np.float64 if wmax == 1 << 20 else None
    for name in ("add", "mp"):
        fn = op_def(g.node(name)).runner(g.node(name), name, b, 2, [shapes[s] for s in g.inputs(name)])
        got = fn([np.zeros((2,) + shapes[s], I64) for s in g.inputs(name)]).dtype.type if fn else None
        assert got is want, name  # (a dtype == None is True for float64: numpy reads None as float64)
    fn = op_def(g.node("sp")).runner(g.node("sp"), "sp", b, 2, [shapes["n2"]])
    assert fn([np.zeros((2,) + shapes["n2"], bool)]).dtype == np.float32  # spikes: 9 at most


def test_the_reference_allocates_without_huge_pages_and_gives_numpy_its_setting_back(monkeypatch):
    """Inside a run (building the Simulation and advancing it) numpy's transparent huge
    pages are off (first touches stalled in memory compaction: 3x slower batches); after
    it numpy has its own setting again, also after an error inside the run."""
    state, seen = {"on": True}, []

    def fake(on):
        prev, state["on"] = state["on"], on
        return prev

    monkeypatch.setattr(R, "_madvise_hugepage", lambda: fake)
    g = _neuron_graph(8, np.ones((2, 3), I64), threshold=np.array([3], I64))
    real_step, real_runner = R.Simulation._step, R.Simulation._runner
    monkeypatch.setattr(R.Simulation, "_step", lambda self, *a: (seen.append(state["on"]), real_step(self, *a)))
    monkeypatch.setattr(R.Simulation, "_runner", lambda self, *a: (seen.append(state["on"]), real_runner(self, *a))[1])
    R.run(g, np.ones((1, 3, 3), I64))
    assert seen == [False] * 4 and state["on"] is True  # building the dense's runner, then 3 steps
    monkeypatch.setattr(R.Simulation, "_step", lambda self, *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        R.run(g, np.ones((1, 3, 3), I64))
    assert state["on"] is True


def test_numpy_has_the_huge_page_switch_the_reference_turns_off():
    """This numpy has the switch (a private function): without it the reference would run
    with numpy's huge pages again (the same results, 3x slower batches here)."""
    assert R._madvise_hugepage() is not None


def test_fast_neuron_with_masks_and_quantized_membranes_equals_int64():
    """SpQuant-SNN's masks (negative, spatial, channel gate) and ternary or binary membranes
    on the int32 / float64 neuron: 60 random layers (every reset, overflow mode and decay
    kind, registers small enough to overflow, periodic resets, non-firing layers) give the
    int64 neuron's spikes, u and v at every step, the same masks of the last step, the same
    masked counts (the report's) and the same input current."""
    from snncc.ops.neurons import FastNeuronState

    fast_layers = 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        c = int(rng.integers(1, 5))
        quant = str(rng.choice(["none", "ternary", "binary"]))
        bits = int(rng.integers(10, 20))
        lif = dict(threshold=rng.integers(1, 400, c), dv=int(rng.choice([0, 256, 2048, 4096])),
                   du=int(rng.choice([4096, 1000, 0])), reset=str(rng.choice(["zero", "subtract", "none"])),
                   reset_value=rng.integers(1, 300, c), u_bits=bits, v_bits=bits,
                   u_overflow=str(rng.choice(["saturate", "wrap", "wrap_lava"])),
                   v_overflow=str(rng.choice(["saturate", "wrap", "wrap_lava"])),
                   state_quant=quant, state_level=rng.integers(1, 300, c), neg_mask=bool(rng.integers(2)),
                   spatial_level=int(rng.choice([-1, 0, 40, 150])), fires=bool(rng.integers(4)),
                   v_init=rng.integers(-100, 100, c), reset_interval=int(rng.choice([0, 0, 3])))
        if rng.integers(2):
            lif.update(gate_weight=rng.integers(-3, 4, (c, c)), gate_level=rng.integers(-500, 500, c))
        if not lif["fires"]:  # a readout takes no mask (verify)
            lif.update(neg_mask=False, spatial_level=-1, gate_weight=np.zeros((0, 0), I64))
        if quant != "none":
            lif["du"] = 4096  # a quantized membrane has no current state (verify)
        g = Graph()
        g.meta.update(steps=7)
        g.add("x", IntInput(shape=(2, 5, 5), bits=8))
        g.add("conv", IntConv(weight=rng.integers(-3, 4, (c, 2, 3, 3)), padding=(1, 1)), ["x"])
        g.add("n", IntLIF(**{k: np.asarray(v, I64) if isinstance(v, np.ndarray) else v for k, v in lif.items()}),
              ["conv"])
        g.outputs = ["n"]
        x = rng.integers(0, 256, (3, 7, 2, 5, 5))
        _same_as_int64(g, x)
        sims = [R.Simulation(g, 3, fast=f) for f in (True, False)]
        for sim in sims:
            sim.advance(R.prepare_input(g, x))
        fast, slow = (sim.states["n"] for sim in sims)
        fast_layers += isinstance(fast, FastNeuronState)
        assert fast.masked_count == slow.masked_count, seed
        assert sorted(fast.masked) == sorted(slow.masked), seed
        for k in slow.masked:
            assert np.array_equal(fast.masked[k], slow.masked[k]), (seed, k)
        assert np.array_equal(fast.a, slow.a), seed
    assert fast_layers >= 50  # the fast neuron ran (not the int64 one through a missing bound)


def test_every_bounds_interval_holds_zero():
    """The invariant the float paths rest on (snncc.ir.bounds): every node's interval and
    every accumulator's holds 0, so a partial sum of products (exact_float) or of an Add's
    inputs lies in the whole sum's interval, and an Add's interval holds each input's
    (its runner's dtype reads that interval alone). Every conformance case and 40 random
    graphs."""
    from snncc.ir.bounds import Bounds

    conformance = _conformance()
    graphs = [f() for f in conformance.CASES.values()]
    graphs += [conformance.random_graph(np.random.default_rng(s)) for s in range(40)]
    for g in graphs:
        b = Bounds(g)
        for name, iv in [*b.iv.items(), *b.acc.items()]:
            assert iv.lo <= 0 <= iv.hi, (g.meta.get("name"), name, iv)
