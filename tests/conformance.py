"""Conformance suite shared by every target (a helper module, not a test file).

Every target must reproduce ``snncc.reference.interpreter.run`` bit for bit on

* ``random_graph(source)``: random VALID integer graphs (``verify(g, "int")``) covering
  conv (groups, stride, padding, dilation), dense, sum/max pooling, flatten, residual
  Add of two synapses (one a wide identity synapse) into one IntLIF, 2..8-bit weights,
  weight_exp in {-1, 0, 1}, delays 0..2, out_bits wrapping, per-channel and scalar
  constants, zero/subtract/none resets, ternary/binary membranes, current decay,
  small registers with every overflow mode, periodic (LIFReset) resets, and a readout
  (usually fires=False).
  ``source`` is a numpy Generator, an int seed, or a hypothesis ``draw`` function
  (structure is drawn through hypothesis; array contents come from a drawn seed);
* ``with_masks(graph, seed)``: a random graph with SpQuant-SNN's sparsity masks drawn on
  its firing layers (for the targets that take masks: reference, c, onnx;
  ``random_masked_graph(seed)`` for ``random_graph``'s);
* ``random_input(graph, n, rng)``: a valid input batch (N, T, *input_shape);
* ``CASES``: named hand-written graphs, each for one feature or edge case.

Use::

    for name, build in CASES.items(): g = build(); x = random_input(g, 4, np.random.default_rng(0))
    g = random_graph(np.random.default_rng(seed))
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from snncc.ir.graph import Graph
from snncc.ir.nodes import (DECAY_ONE, OVERFLOWS, Add, Flatten, IntConv, IntDense, IntInput, IntLIF, MaxPool,
                            SumPool)
from snncc.ir.verify import verify
from snncc.reference.interpreter import Simulation, run

I64 = np.int64


# ------------------------------------------------------------------------ choices
class Choices:
    """One interface over a numpy Generator and a hypothesis ``draw``."""

    def __init__(self, source) -> None:
        self.draw = None
        if isinstance(source, np.random.Generator):
            self.rng = source
        elif isinstance(source, (int, np.integer)):
            self.rng = np.random.default_rng(int(source))
        elif callable(source):
            from hypothesis import strategies as st

            self.draw, self._st = source, st
            self.rng = np.random.default_rng(source(st.integers(0, 2**32 - 1)))
        else:
            raise TypeError(f"expected a numpy Generator, a seed or a hypothesis draw, got {source!r}")

    def int(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi] (inclusive)."""
        if self.draw is not None:
            return int(self.draw(self._st.integers(lo, hi)))
        return int(self.rng.integers(lo, hi + 1))

    def pick(self, seq):
        return seq[self.int(0, len(seq) - 1)]

    def coin(self, p: float = 0.5) -> bool:
        return self.int(0, 999) < int(p * 1000)

    def array(self, lo: int, hi: int, shape) -> np.ndarray:
        return self.rng.integers(lo, hi + 1, size=shape, dtype=I64)


def _conv_out(n, k, s, p, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


# ------------------------------------------------------------------------ pieces
def weights(c: Choices, shape, bits: int, density: float = 0.8) -> np.ndarray:
    w = c.array(-(1 << (bits - 1)), (1 << (bits - 1)) - 1, shape)
    return np.where(c.rng.random(shape) < density, w, 0).astype(I64)


def neuron(c: Choices, channels: int, fires: bool = True, drive: float | None = None, **over) -> IntLIF:
    """A random IntLIF for ``channels`` channels; ``drive`` (typical |input|) scales the
    threshold so that it spikes now and then; ``over`` pins fields."""
    quant = over.pop("state_quant", None) or c.pick(["none", "none", "none", "ternary", "binary"])
    du = DECAY_ONE if quant != "none" or c.coin(0.4) else c.pick([0, 1, c.int(1, DECAY_ONE - 1)])
    dv = c.pick([0, DECAY_ONE, c.int(1, DECAY_ONE - 1), c.int(1, 600)])
    v_bits = c.pick([c.int(8, 16), c.int(8, 16), 24])
    u_bits = c.pick([c.int(8, 16), 24])
    m = 1 << (v_bits - 1)
    shift = c.int(0, 6)
    top = m // 2 if drive is None else int(min(m // 2, max(2, 2 * drive * (1 << shift))))

    def vec(lo, hi):
        return c.array(lo, hi, channels if c.coin() else 1)

    kw = dict(du=du, dv=dv, act_shift=shift, threshold=vec(-(top // 8), top), bias=vec(-(top // 8), top // 8),
              reset=c.pick(["zero", "subtract", "none"]), reset_value=vec(0, top), v_init=vec(-(m // 4), m // 4),
              state_quant=quant, state_level=vec(1, top), u_bits=u_bits, u_overflow=c.pick(OVERFLOWS),
              v_bits=v_bits, v_overflow=c.pick(OVERFLOWS), fires=fires)
    if c.coin(0.25):  # Lava's LIFReset: u = v = 0 at t % interval == offset
        kw["reset_interval"] = c.int(1, 4)
        kw["reset_offset"] = c.int(0, kw["reset_interval"] - 1)
    # a constant input current u_bias on a third of the neurons with a current state, drawn from
    # its own generator so that every other draw of the suite stays what it was
    own = np.random.default_rng(int(np.abs(kw["threshold"]).sum() + 7 * np.abs(kw["bias"]).sum()) % (1 << 32))
    if du != DECAY_ONE and own.random() < 1 / 3:
        lim = max(1, top // 16)
        kw["u_bias"] = own.integers(-lim, lim + 1, channels if own.random() < 0.5 else 1).astype(I64)
    kw.update(over)
    return IntLIF(**kw)


def _synapse_kw(c: Choices) -> dict:
    return dict(weight_bits=c.int(2, 8), weight_exp=c.pick([-1, 0, 0, 1]), delay=c.pick([0, 0, 1, 2]),
                out_bits=c.int(6, 12) if c.coin(0.1) else 0)


def random_conv(c: Choices, shape, same: bool = False) -> IntConv:
    """A random IntConv reading (C, H, W); ``same``: output shape = input shape."""
    cin, h, w = shape
    cout = cin if same else c.int(1, 4)
    common = [g for g in range(1, 5) if cin % g == 0 and cout % g == 0]
    groups = c.pick(common)
    if same:
        k = c.pick([1, 3])
        stride, dil = (1, 1), (1, 1)
        pad = (k // 2, k // 2)
        kh = kw = k
    else:
        kh, kw = c.int(1, 3), c.int(1, 3)
        stride, dil = (c.int(1, 2), c.int(1, 2)), (c.int(1, 2), c.int(1, 2))
        pad = (c.int(0, 1), c.int(0, 2))
        if _conv_out(h, kh, stride[0], pad[0], dil[0]) < 1 or _conv_out(w, kw, stride[1], pad[1], dil[1]) < 1:
            kh = kw = 1
            dil = (1, 1)
    kwargs = _synapse_kw(c)
    return IntConv(weight=weights(c, (cout, cin // groups, kh, kw), kwargs["weight_bits"]), stride=stride,
                   padding=pad, dilation=dil, groups=groups, **kwargs)


def identity_synapse(c: Choices, shape) -> IntConv | IntDense:
    """k * identity with a wide weight (10..16 bits): the skip path of a residual."""
    bits = c.int(10, 16)
    k = c.int(1 << (bits - 2), (1 << (bits - 1)) - 1) * c.pick([1, -1])
    kw = dict(weight_bits=bits, weight_exp=c.pick([-1, 0]), delay=c.pick([0, 1]))
    if len(shape) == 1:
        return IntDense(weight=(k * np.eye(shape[0])).astype(I64), **kw)
    ch = shape[0]
    if c.coin():  # depthwise
        return IntConv(weight=np.full((ch, 1, 1, 1), k, I64), groups=ch, **kw)
    return IntConv(weight=(k * np.eye(ch)).astype(I64).reshape(ch, ch, 1, 1), **kw)


# ------------------------------------------------------------------------ random graphs
def random_graph(source, max_blocks: int = 3) -> Graph:
    """A random valid integer graph; see the module docstring."""
    c = Choices(source)
    g = Graph()
    g.meta.update(name="random", steps=c.int(2, 6))
    spatial = c.coin(0.7)
    shape = (c.int(1, 3), c.int(3, 8), c.int(3, 8)) if spatial else (c.int(2, 24),)
    enc = c.pick(["direct", "spikes"])
    cur = g.add("x", IntInput(shape=shape, encoding=enc, bits=c.int(1, 8) if enc == "direct" else 1, scale=1.0))
    shapes = {cur: shape}
    mag = {cur: 0.5 if enc == "spikes" else (1 << g.node(cur).bits) / 2}  # typical |value|, for thresholds

    def add(name, node, inputs):
        n = g.add(g.unique(name), node, inputs)
        shapes[n] = g.shapes()[n]
        m_in = sum(mag[i] for i in inputs)
        if node.kind in ("IntConv", "IntDense"):
            w = node.weight.reshape(node.weight.shape[0], -1)
            m_in *= float(np.abs(w).sum(1).mean()) / 2 * 2.0 ** node.weight_exp
        elif node.kind == "SumPool":
            m_in *= node.kernel[0] * node.kernel[1]
        elif node.kind == "IntLIF":
            m_in = 0.3
        mag[n] = m_in
        return n

    for b in range(c.int(1, max_blocks)):
        s = shapes[cur]
        spatial_kinds = ["conv", "conv_sumpool", "conv_maxpool", "residual", "flatten"]
        kind = c.pick(spatial_kinds if len(s) == 3 else ["dense", "residual"])
        if kind == "residual":
            if len(s) == 3:
                main = random_conv(c, s, same=True)
            else:
                kw = _synapse_kw(c)
                main = IntDense(weight=weights(c, (s[0], s[0]), kw["weight_bits"]), **kw)
            a = add(f"b{b}_main", main, [cur])
            skip = add(f"b{b}_skip", identity_synapse(c, s), [cur])
            ins = [add(f"b{b}_add", Add(), [a, skip])]
        elif kind == "dense":
            kw = _synapse_kw(c)
            ins = [add(f"b{b}_fc", IntDense(weight=weights(c, (c.int(2, 16), int(np.prod(s))), kw["weight_bits"]),
                                            **kw), [cur])]
        elif kind == "flatten":
            flat = add(f"b{b}_flat", Flatten(), [cur])
            kw = _synapse_kw(c)
            ins = [add(f"b{b}_fc", IntDense(weight=weights(c, (c.int(2, 16), shapes[flat][0]), kw["weight_bits"]),
                                            **kw), [flat])]
        else:
            ins = [add(f"b{b}_conv", random_conv(c, s), [cur])]
            h, w = shapes[ins[0]][1:]
            if kind == "conv_sumpool" and min(h, w) >= 2:
                k = c.int(1, 2)
                ins = [add(f"b{b}_sumpool", SumPool(kernel=(k, 2), stride=(c.int(1, 2), c.int(1, 2)),
                                                    padding=(c.int(0, k // 2), c.int(0, 1))), ins)]
        lif = add(f"b{b}_lif", neuron(c, shapes[ins[0]][0], drive=mag[ins[0]]), ins)
        cur = lif
        if kind == "conv_maxpool" and min(shapes[lif][1:]) >= 2:
            cur = add(f"b{b}_maxpool", MaxPool(kernel=(2, c.int(1, 2)), stride=(c.int(1, 2), c.int(1, 2))), [lif])
    if len(shapes[cur]) == 3:
        cur = add("flat", Flatten(), [cur])
    kw = _synapse_kw(c)
    fc = add("readout_fc", IntDense(weight=weights(c, (c.int(2, 6), shapes[cur][0]), kw["weight_bits"]), **kw), [cur])
    fires = c.coin(0.25)
    out = add("readout", neuron(c, shapes[fc][0], fires=fires, drive=mag[fc],
                                **({} if fires else {"state_quant": "none"})), [fc])
    g.outputs = [out]
    verify(g, "int", after="conformance.random_graph")
    return g


def with_masks(graph: Graph, seed: int) -> Graph:
    """A copy of ``graph`` with SpQuant-SNN's sparsity masks drawn on its firing IntLIFs (from
    their own generator, so the graph's other draws stay what they were): on four layers in
    five, the negative mask, a spatial level over four decades and a channel gate with
    weights in [-3, 3] and levels (per channel or one) around 0 within 1/64 of the largest
    sum of one channel's membranes, each with its own probability, so that the masks switch
    a share of the neurons and channels off (most graphs' results change with them); on
    half the gated layers each channel's level is one of the sums its gate reaches in a run
    (channels switch during the run; some sums sit exactly on the level: kept). Half the
    masked ternary or binary layers start at v = 0, so that C stores them as codes (as the
    shipped model_s), where a random initial membrane keeps them values."""
    rng = np.random.default_rng(seed)
    g = graph.copy()
    shapes = g.shapes()
    for name in g.order():
        op = g.node(name)
        if not isinstance(op, IntLIF) or not op.fires or rng.random() < 0.2:
            continue
        kw = {}
        if rng.random() < 0.5:
            kw["neg_mask"] = True
        if rng.random() < 0.6:
            kw["spatial_level"] = int(rng.choice([0, 1, 3, 10, 50, 300, 3000]))
        if rng.random() < 0.6:
            c, per = shapes[name][0], int(np.prod(shapes[name][1:]))
            lim = max(1, (per << (op.v_bits - 1)) // 64)
            kw["gate_weight"] = rng.integers(-3, 4, (c, c)).astype(I64)
            kw["gate_level"] = rng.integers(-lim, lim + 1, c if rng.random() < 0.5 else 1).astype(I64)
        if kw and op.state_quant != "none" and rng.random() < 0.5:
            kw["v_init"] = np.zeros(1, I64)  # a level: the C target stores the membrane as codes
        if kw:
            g.set(name, op.replace(**kw))
    # levels the gate's sums reach: on half the gated layers each channel's level is one of
    # its sums z_c = gate_weight @ (channel sums of the prior v) seen in a run of the graph so
    # far (3 samples; the first step's prior, the initial membrane, is every sample's), so
    # that channels switch on and off during a run and some sums sit exactly on the level
    # (keep is z_c >= level, not >)
    init = {n: st.v for n, st in Simulation(g, 1, fast=False).states.items()}
    res = run(g, random_input(g, 3, rng), probe_state=True)
    for name in g.order():
        op = g.node(name)
        if not (isinstance(op, IntLIF) and op.gate_weight.size) or rng.random() < 0.5:
            continue
        v = res[name + "/v"]
        prior = np.concatenate([np.broadcast_to(init[name][:, None], (v.shape[0], 1) + v.shape[2:]), v[:, :-1]], 1)
        z = prior.reshape(v.shape[0], v.shape[1], v.shape[2], -1).sum(-1) @ op.gate_weight.T  # (N, T, C)
        seen = z.reshape(-1, z.shape[-1])
        level = seen[rng.integers(0, seen.shape[0], seen.shape[1]), np.arange(seen.shape[1])]
        g.set(name, op.replace(gate_level=level.astype(I64)))
    verify(g, "int", after="conformance.with_masks")
    return g


def random_masked_graph(seed: int) -> Graph:
    """``with_masks`` on ``random_graph`` of the same seed."""
    return with_masks(random_graph(np.random.default_rng(seed)), seed)


def random_row_scan_graph(source) -> Graph | None:
    """A random neuron layer of the kind the C target gives a line buffer (spikes or a sum
    pool's counts -> a kh x kw conv of stride 1, any padding up to the kernel, sometimes a
    1x1 depthwise skip beside it -> a random IntLIF) before a dense readout; None where the
    drawn padding leaves no output."""
    c = source if isinstance(source, Choices) else Choices(source)
    cin, cout, h, w, kh, kw = c.int(1, 6), c.int(1, 12), c.int(5, 22), c.int(2, 10), c.int(1, 5), c.int(1, 5)
    ph, pw = c.int(0, kh), c.int(0, kw)
    g = Graph()
    g.meta.update(name="row_scan", steps=c.int(2, 5))
    counts = c.coin(0.3)
    x = g.add("x", IntInput(shape=(cin, 2 * h, 2 * w) if counts else (cin, h, w), encoding="spikes", bits=1))
    if counts:
        pre = g.add("pre", IntConv(weight=weights(c, (cin, cin, 3, 3), 5), weight_bits=5, padding=(1, 1)), [x])
        x = g.add("pool", SumPool(kernel=(2, 2), stride=(2, 2)), [g.add("lif0", neuron(c, cin, drive=20.0), [pre])])
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return None
    wb = c.pick([3, 6, 8, 12])
    syns = [g.add("c0", IntConv(weight=weights(c, (cout, cin, kh, kw), wb), weight_bits=wb, padding=(ph, pw)), [x])]
    if cout == cin and kh == 2 * ph + 1 and kw == 2 * pw + 1 and c.coin(0.4):  # same size: a depthwise skip
        syns.append(g.add("c1", IntConv(weight=weights(c, (cin, 1, 1, 1), 6), weight_bits=6, groups=cin), [x]))
    cur = syns[0] if len(syns) == 1 else g.add("add", Add(), syns)
    cur = g.add("flat", Flatten(), [g.add("lif", neuron(c, cout, drive=float(c.int(5, 200))), [cur])])
    fc = g.add("fc", IntDense(weight=weights(c, (3, g.shapes()[cur][0]), 5), weight_bits=5), [cur])
    g.outputs = [g.add("out", IntLIF(fires=False, act_shift=0, dv=100), [fc])]
    verify(g, "int", after="random_row_scan_graph")
    return g


def random_input(graph: Graph, n: int, rng: np.random.Generator, steps: int | None = None) -> np.ndarray:
    """A valid (N, T, *input_shape) int64 batch for ``graph``."""
    op = graph.node(graph.input_name)
    t = steps or int(graph.meta.get("steps", 1))
    shape = (n, t) + tuple(op.shape)
    if op.encoding == "spikes":
        return (rng.random(shape) < rng.uniform(0.1, 0.6)).astype(I64)
    return rng.integers(0, 1 << op.bits, size=shape, dtype=I64)


# ------------------------------------------------------------------------ named cases
def _chain(name: str, in_node: IntInput, layers: list[tuple[str, object]], steps: int = 5) -> Graph:
    g = Graph()
    g.meta.update(name=name, steps=steps)
    cur = g.add("x", in_node)
    for lname, node in layers:
        cur = g.add(lname, node, [cur])
    g.outputs = [cur]
    verify(g, "int", after=f"conformance case {name}")
    return g


def _rng():
    return Choices(np.random.default_rng(1234))


def case_lava_cuba_lif() -> Graph:
    """Lava's bit-accurate CUBA LIF: 24-bit wrap_lava u, saturating v, <<6, one-step synapses."""
    c = _rng()
    w1 = weights(c, (12, 20), 8) & ~1  # Lava drops the LSB of mixed-sign 8-bit weights
    lif = dict(du=410, dv=205, act_shift=6, u_bits=24, u_overflow="wrap_lava", v_bits=24, v_overflow="saturate")
    return _chain("lava_cuba_lif", IntInput(shape=(20,), encoding="spikes", bits=1), [
        ("dense1", IntDense(weight=w1, weight_bits=8, delay=1)),
        ("lif1", IntLIF(threshold=np.array([100 << 6], I64), **lif)),
        ("dense2", IntDense(weight=weights(c, (4, 12), 8), weight_bits=8, delay=1)),
        ("readout", IntLIF(fires=False, **lif)),
    ], steps=10)


def case_ternary_membrane() -> Graph:
    c = _rng()
    return _chain("ternary_membrane", IntInput(shape=(2, 5, 5), bits=8), [
        ("conv", IntConv(weight=weights(c, (3, 2, 3, 3), 4), weight_bits=4, padding=(1, 1))),
        ("lif", IntLIF(state_quant="ternary", state_level=np.array([300, 700, 1500], I64), dv=1024,
                       threshold=np.array([2000], I64), reset="subtract", reset_value=np.array([1000], I64),
                       act_shift=0, v_bits=16)),
        ("flat", Flatten()),
        ("fc", IntDense(weight=weights(c, (3, 75), 5), weight_bits=5)),
        ("out", IntLIF(fires=False, act_shift=2)),
    ])


def case_binary_membrane() -> Graph:
    c = _rng()
    return _chain("binary_membrane", IntInput(shape=(10,), encoding="spikes"), [
        ("fc", IntDense(weight=weights(c, (8, 10), 6), weight_bits=6)),
        ("lif", IntLIF(state_quant="binary", state_level=c.array(1, 64, 8), threshold=c.array(0, 40, 8),
                       act_shift=1, dv=300, reset="none")),
        ("fc2", IntDense(weight=weights(c, (3, 8), 3), weight_bits=3)),
        ("out", IntLIF(fires=False)),
    ], steps=8)


def case_subtract_reset() -> Graph:
    c = _rng()
    return _chain("subtract_reset", IntInput(shape=(12,), bits=4), [
        ("fc", IntDense(weight=weights(c, (6, 12), 8), weight_bits=8, weight_exp=-1)),
        ("lif", IntLIF(reset="subtract", threshold=c.array(-50, 400, 6), reset_value=c.array(0, 900, 6),
                       bias=c.array(-30, 30, 6), v_init=c.array(-100, 100, 6), act_shift=2, dv=100, du=3500,
                       u_bits=16, v_bits=16)),
        ("fc2", IntDense(weight=weights(c, (2, 6), 4), weight_bits=4)),
        ("out", IntLIF(fires=False, dv=50)),
    ], steps=7)


def case_residual_add() -> Graph:
    c = _rng()
    g = Graph()
    g.meta.update(name="residual_add", steps=6)
    x = g.add("x", IntInput(shape=(2, 4, 4), encoding="spikes"))
    c1 = g.add("stem", IntConv(weight=weights(c, (3, 2, 3, 3), 5), weight_bits=5, padding=(1, 1)), [x])
    l1 = g.add("stem_lif", IntLIF(threshold=np.array([20], I64), act_shift=3, v_bits=12), [c1])
    a = g.add("block.conv", IntConv(weight=weights(c, (3, 3, 3, 3), 4), weight_bits=4, padding=(1, 1), delay=1), [l1])
    s = g.add("block.skip", IntConv(weight=np.full((3, 1, 1, 1), 1500, I64), weight_bits=12, groups=3, delay=2), [l1])
    add = g.add("block.add", Add(), [a, s])
    l2 = g.add("block.lif", IntLIF(threshold=np.array([5000, 8000, 12000], I64), act_shift=1, reset="subtract",
                                   reset_value=np.array([6000], I64), v_bits=16, v_overflow="wrap"), [add])
    f = g.add("flat", Flatten(), [l2])
    fc = g.add("fc", IntDense(weight=weights(c, (4, 48), 6), weight_bits=6), [f])
    g.outputs = [g.add("out", IntLIF(fires=False), [fc])]
    verify(g, "int")
    return g


def _same_sign(c, shape, bits):
    """Weights of one random sign per row: drives that push neurons into overflow."""
    w = np.minimum(np.abs(weights(c, shape, bits, density=1.0)), (1 << (bits - 1)) - 1)
    return w * c.array(-1, 1, (shape[0], 1))


def _drive(c, n_in, n_out, bits=8):
    return IntDense(weight=_same_sign(c, (n_out, n_in), bits), weight_bits=bits)


def case_overflow_wrap() -> Graph:
    c = _rng()
    return _chain("overflow_wrap", IntInput(shape=(16,), bits=8), [
        ("fc", _drive(c, 16, 6)),
        ("lif", IntLIF(u_bits=9, u_overflow="wrap", v_bits=8, v_overflow="wrap", du=2000, dv=10, act_shift=0,
                       threshold=np.array([60], I64))),
        ("fc2", _drive(c, 6, 3)),
        ("out", IntLIF(fires=False, v_bits=10, v_overflow="wrap", act_shift=5)),
    ], steps=8)


def case_overflow_wrap_lava() -> Graph:
    """u input far beyond twice the register: the single fold leaves u growing."""
    c = _rng()
    return _chain("overflow_wrap_lava", IntInput(shape=(16,), bits=8), [
        ("fc", _drive(c, 16, 6)),
        ("lif", IntLIF(u_bits=8, u_overflow="wrap_lava", du=1, v_bits=10, v_overflow="wrap_lava", act_shift=4,
                       threshold=np.array([300], I64), reset="none")),
        ("fc2", _drive(c, 6, 3)),
        ("out", IntLIF(fires=False, v_bits=9, v_overflow="wrap_lava", act_shift=6, u_bits=8)),
    ], steps=8)


def case_overflow_saturate() -> Graph:
    c = _rng()
    return _chain("overflow_saturate", IntInput(shape=(16,), bits=8), [
        ("fc", _drive(c, 16, 6)),
        ("lif", IntLIF(u_bits=10, u_overflow="saturate", du=100, v_bits=6, v_overflow="saturate", act_shift=3,
                       threshold=c.array(-5, 20, 6), reset="subtract", reset_value=np.array([40], I64))),
        ("fc2", _drive(c, 6, 3)),
        ("out", IntLIF(fires=False, v_bits=8, v_overflow="saturate")),
    ], steps=8)


def case_conv_groups_dilation() -> Graph:
    c = _rng()
    return _chain("conv_groups_dilation", IntInput(shape=(4, 9, 8), bits=3), [
        ("conv", IntConv(weight=weights(c, (6, 2, 3, 2), 7), weight_bits=7, groups=2, stride=(2, 1),
                         padding=(2, 1), dilation=(2, 3), weight_exp=1)),
        ("lif", IntLIF(threshold=np.array([200], I64), act_shift=1, v_bits=14)),
        ("dw", IntConv(weight=weights(c, (6, 1, 2, 2), 3), weight_bits=3, groups=6, stride=(2, 2))),
        ("lif2", IntLIF(fires=False, act_shift=0)),
    ])


def case_sumpool_padding() -> Graph:
    c = _rng()
    return _chain("sumpool_padding", IntInput(shape=(2, 7, 7), bits=8), [
        ("conv", IntConv(weight=weights(c, (3, 2, 1, 1), 4), weight_bits=4)),
        ("pool", SumPool(kernel=(3, 3), stride=(2, 2), padding=(1, 1))),
        ("lif", IntLIF(threshold=np.array([500], I64), act_shift=0, reset="none", dv=2000)),
        ("pool2", SumPool(kernel=(2, 1), stride=(1, 2), padding=(0, 0))),
        ("flat", Flatten()),
        ("fc", IntDense(weight=weights(c, (2, 18), 2), weight_bits=2)),
        ("out", IntLIF(fires=False)),
    ])


def case_maxpool() -> Graph:
    """Max pooling of spikes and of signed synapse outputs (all-negative windows)."""
    c = _rng()
    g = Graph()
    g.meta.update(name="maxpool", steps=4)
    x = g.add("x", IntInput(shape=(2, 9, 9), bits=4))
    cv = g.add("conv", IntConv(weight=-np.abs(weights(c, (2, 2, 2, 2), 5)), weight_bits=5), [x])
    mp = g.add("pool_signed", MaxPool(kernel=(2, 2), stride=(1, 2)), [cv])
    lif = g.add("lif", IntLIF(threshold=np.array([-700], I64), act_shift=0, dv=1000), [mp])
    mp2 = g.add("pool_spikes", MaxPool(kernel=(3, 2), stride=(2, 1)), [lif])
    f = g.add("flat", Flatten(), [mp2])
    fc = g.add("fc", IntDense(weight=weights(c, (3, 18), 4), weight_bits=4), [f])
    g.outputs = [g.add("out", IntLIF(fires=False), [fc])]
    verify(g, "int")
    return g


def case_negative_weight_exp() -> Graph:
    """weight_exp < 0 floors negative accumulators (-3 >> 2 = -1, not 0)."""
    c = _rng()
    return _chain("negative_weight_exp", IntInput(shape=(3, 4, 4), bits=5), [
        ("conv", IntConv(weight=weights(c, (2, 3, 2, 2), 6), weight_bits=6, weight_exp=-3)),
        ("lif", IntLIF(threshold=np.array([3], I64), act_shift=0, v_bits=12, dv=4096, du=2048, reset="none")),
        ("flat", Flatten()),
        ("fc", IntDense(weight=weights(c, (3, 18), 8), weight_bits=8, weight_exp=-2)),
        ("out", IntLIF(fires=False, act_shift=0)),
    ])


def case_wide_accumulator() -> Graph:
    """Partial sums beyond int32: 16-bit weights x 255 x 600 inputs; 48-bit registers."""
    c = _rng()
    w = _same_sign(c, (4, 600), 16)
    return _chain("wide_accumulator", IntInput(shape=(600,), bits=8), [
        ("fc", IntDense(weight=w, weight_bits=16)),
        ("lif", IntLIF(fires=False, act_shift=0, u_bits=48, v_bits=48, v_overflow="wrap", dv=100)),
    ], steps=3)


def case_delays() -> Graph:
    c = _rng()
    return _chain("delays", IntInput(shape=(8,), encoding="spikes"), [
        ("d1", IntDense(weight=weights(c, (8, 8), 5), weight_bits=5, delay=1)),
        ("l1", IntLIF(threshold=np.array([10], I64), act_shift=1)),
        ("d2", IntDense(weight=weights(c, (5, 8), 5), weight_bits=5, delay=2)),
        ("l2", IntLIF(threshold=np.array([5], I64), act_shift=1)),
        ("d3", IntDense(weight=weights(c, (3, 5), 5), weight_bits=5, delay=2)),
        ("out", IntLIF(fires=False)),
    ], steps=9)


def case_out_bits_wrap() -> Graph:
    c = _rng()
    return _chain("out_bits_wrap", IntInput(shape=(10,), bits=8), [
        ("fc", IntDense(weight=weights(c, (5, 10), 8), weight_bits=8, out_bits=9, delay=1)),
        ("out", IntLIF(fires=False, act_shift=0)),
    ], steps=3)


def case_current_decay_edges() -> Graph:
    """du = 0 (u never decays), dv = 4096 (v forgets), negative bias and v_init."""
    c = _rng()
    return _chain("current_decay_edges", IntInput(shape=(6,), bits=2), [
        ("fc", IntDense(weight=weights(c, (4, 6), 4), weight_bits=4)),
        ("lif", IntLIF(du=0, dv=DECAY_ONE, act_shift=3, threshold=np.array([30], I64), bias=c.array(-9, 9, 4),
                       v_init=np.array([-50, 50, -7, 7], I64), u_bits=12, v_bits=12)),
        ("fc2", IntDense(weight=weights(c, (2, 4), 4), weight_bits=4)),
        ("out", IntLIF(fires=False, du=7, dv=1, v_init=np.array([-3], I64))),
    ], steps=6)


def case_cuba_u_bias() -> Graph:
    """A constant input current into neurons with a current state (the synapse biases of a
    CUBA layer), per channel and per layer, with current decay, both overflow folds."""
    c = _rng()
    return _chain("cuba_u_bias", IntInput(shape=(2, 5, 5), bits=6), [
        ("conv", IntConv(weight=weights(c, (3, 2, 3, 3), 6), weight_bits=6, padding=(1, 1))),
        ("lif1", IntLIF(threshold=np.array([400, 900, 1500], I64), du=1000, dv=300, act_shift=2,
                        u_bias=np.array([37, -20, 5], I64), bias=np.array([3], I64), u_bits=16, v_bits=16)),
        ("flat", Flatten()),
        ("fc", IntDense(weight=weights(c, (4, 75), 8), weight_bits=8)),
        ("out", IntLIF(fires=False, du=3500, dv=0, act_shift=0, u_bias=np.array([-11], I64), u_overflow="wrap",
                       v_bits=20, u_bits=12)),
    ], steps=7)


def case_readout_spiking() -> Graph:
    c = _rng()
    return _chain("readout_spiking", IntInput(shape=(1, 5, 5), encoding="spikes"), [
        ("conv", IntConv(weight=weights(c, (2, 1, 3, 3), 3), weight_bits=3)),
        ("flat", Flatten()),
        ("fc", IntDense(weight=weights(c, (3, 18), 6), weight_bits=6)),
        ("out", IntLIF(threshold=np.array([40], I64), act_shift=2, reset="subtract", reset_value=np.array([40], I64))),
    ])


def case_synapse_output() -> Graph:
    """The output is a synapse (no neuron at the end) and there is no IntLIF at all."""
    c = _rng()
    return _chain("synapse_output", IntInput(shape=(7,), bits=6), [
        ("fc", IntDense(weight=weights(c, (3, 7), 7), weight_bits=7, weight_exp=-1, delay=1)),
    ])


def case_odd_names() -> Graph:
    """Node names that are not C identifiers (comment ends, quotes, trigraphs, UTF-8)."""
    c = _rng()
    return _chain("odd_names", IntInput(shape=(4,), encoding="spikes"), [
        ("layer-1.fc *\\ \"q\" ??=", IntDense(weight=weights(c, (3, 4), 4), weight_bits=4)),
        ("neurons\\ü 1", IntLIF(threshold=np.array([1], I64), act_shift=0)),
        ("for", IntDense(weight=weights(c, (2, 3), 4), weight_bits=4)),
        ("int", IntLIF(fires=False)),
    ])


def case_periodic_reset() -> Graph:
    """Lava's LIFReset staggered one step per layer (netx's pattern) on Lava-native
    neurons, a subtract-reset neuron with its own phase, and a reset on step 0."""
    c = _rng()
    lava = dict(du=300, dv=100, act_shift=6, u_bits=24, u_overflow="wrap_lava", v_bits=24, v_overflow="saturate")
    return _chain("periodic_reset", IntInput(shape=(10,), encoding="spikes"), [
        ("fc1", IntDense(weight=weights(c, (8, 10), 8) & ~1, weight_bits=8, delay=1)),
        ("lif1", IntLIF(threshold=np.array([60 << 6], I64), reset_interval=4, reset_offset=1, **lava)),
        ("fc2", IntDense(weight=weights(c, (6, 8), 6), weight_bits=6, delay=1)),
        ("lif2", IntLIF(threshold=np.array([900], I64), reset="subtract", reset_value=np.array([700], I64),
                        act_shift=2, dv=50, du=2000, v_init=np.array([40], I64), reset_interval=3,
                        reset_offset=0)),
        ("fc3", IntDense(weight=weights(c, (3, 6), 8) & ~1, weight_bits=8, delay=1)),
        ("readout", IntLIF(fires=False, reset_interval=4, reset_offset=3, **lava)),
    ], steps=11)


def case_tnp() -> Graph:
    """Test-time neuron pruning (SNNQ's TNP): 3 presimulation steps, per-channel prune
    levels, a converted-ANN style IF layer (subtract reset, v_init), a current-state layer,
    and a readout that starts again at the end of the presimulation."""
    c = _rng()
    return _chain("tnp", IntInput(shape=(2, 6, 6), bits=8), [
        ("conv", IntConv(weight=weights(c, (4, 2, 3, 3), 4), weight_bits=4, padding=(1, 1))),
        ("if", IntLIF(reset="subtract", threshold=np.array([1500], I64), reset_value=np.array([1501], I64),
                      v_init=np.array([750], I64), act_shift=1, bias=c.array(-200, 100, 4), presim=3,
                      prune_level=np.array([0, 10, -5, 300], I64))),
        ("flat", Flatten()),
        ("fc", IntDense(weight=weights(c, (5, 144), 6), weight_bits=6)),
        ("lif", IntLIF(threshold=np.array([150], I64), du=1000, dv=200, act_shift=2, presim=3, reset="subtract",
                       prune_level=c.array(-50, 50, 5))),
        ("fc2", IntDense(weight=weights(c, (3, 5), 4), weight_bits=4)),
        ("readout", IntLIF(fires=False, presim=3, v_init=np.array([7], I64))),
    ], steps=9)


def case_sparsity_masks() -> Graph:
    """SpQuant-SNN's masks: a ternary conv layer with the negative mask, a spatial level and
    a random channel gate; a dense layer with a current state, a negative initial state, a
    wide register and all three masks (the gate over its neurons); a readout."""
    c = _rng()
    return _chain("sparsity_masks", IntInput(shape=(2, 6, 6), bits=8), [
        ("conv", IntConv(weight=weights(c, (4, 2, 3, 3), 4), weight_bits=4, padding=(1, 1))),
        ("lif", IntLIF(state_quant="ternary", state_level=np.array([300, 700, 1500, 900], I64), dv=1024,
                       threshold=np.array([1200], I64), reset="subtract", reset_value=np.array([1000], I64),
                       act_shift=0, v_bits=16, neg_mask=True, spatial_level=400,
                       gate_weight=c.array(-3, 3, 16).reshape(4, 4), gate_level=c.array(-2000, 2000, 4))),
        ("flat", Flatten()),
        ("fc", IntDense(weight=weights(c, (6, 144), 6), weight_bits=6)),
        ("lif2", IntLIF(threshold=np.array([90 << 20], I64), du=1000, dv=200, act_shift=20, reset="zero",
                        v_init=c.array(-(40 << 20), 40 << 20, 6), bias=c.array(-(5 << 20), 5 << 20, 6),
                        u_bits=40, v_bits=40, neg_mask=True, spatial_level=20,
                        gate_weight=c.array(-2, 3, 36).reshape(6, 6), gate_level=np.array([-(30 << 20)], I64))),
        ("fc2", IntDense(weight=weights(c, (3, 6), 4), weight_bits=4)),
        ("readout", IntLIF(fires=False)),
    ], steps=8)


CASES: dict[str, Callable[[], Graph]] = {
    "sparsity_masks": case_sparsity_masks,
    "tnp": case_tnp,
    "periodic_reset": case_periodic_reset,
    "lava_cuba_lif": case_lava_cuba_lif,
    "ternary_membrane": case_ternary_membrane,
    "binary_membrane": case_binary_membrane,
    "subtract_reset": case_subtract_reset,
    "residual_add": case_residual_add,
    "overflow_wrap": case_overflow_wrap,
    "overflow_wrap_lava": case_overflow_wrap_lava,
    "overflow_saturate": case_overflow_saturate,
    "conv_groups_dilation": case_conv_groups_dilation,
    "sumpool_padding": case_sumpool_padding,
    "maxpool": case_maxpool,
    "negative_weight_exp": case_negative_weight_exp,
    "wide_accumulator": case_wide_accumulator,
    "delays": case_delays,
    "out_bits_wrap": case_out_bits_wrap,
    "current_decay_edges": case_current_decay_edges,
    "readout_spiking": case_readout_spiking,
    "cuba_u_bias": case_cuba_u_bias,
    "synapse_output": case_synapse_output,
    "odd_names": case_odd_names,
}


def lava_probe_only_u() -> Graph:
    """``lava_cuba_lif`` on Lava's schedule (the Lava passes) with a du = 4096 layer, whose u
    is the step's current: recorded by the state probes, kept by nothing else (the C
    target declares it only in its state-probing build), before a readout with a current
    state (du = 410: u carried in every build). Not one of CASES (tools/snapshot_artifacts.py
    records those)."""
    import dataclasses

    from snncc.ir.nodes import DECAY_ONE
    from snncc.passes.lava import LAVA_PASSES

    g = case_lava_cuba_lif()
    g.set("lif1", dataclasses.replace(g.node("lif1"), du=DECAY_ONE))
    for fn, _ in LAVA_PASSES:
        g, _ = fn(g)
    assert g.meta["schedule"] == "lava"
    return g


def features(graph: Graph) -> set[str]:
    """Feature tags of a graph, to check what a set of random graphs covers."""
    tags = set()
    for name, op in graph.items():
        tags.add(op.kind)
        if op.kind in ("IntConv", "IntDense"):
            tags.add(f"delay{op.delay}")
            tags.add(f"weight_exp{op.weight_exp}")
            tags.add("wide_weights" if op.weight_bits > 8 else "narrow_weights")
            if op.out_bits:
                tags.add("out_bits")
            if op.kind == "IntConv":
                tags |= {t for t, on in (("groups", op.groups > 1), ("stride2", max(op.stride) > 1),
                                         ("dilation2", max(op.dilation) > 1), ("padding", max(op.padding) > 0)) if on}
        if op.kind == "SumPool" and max(op.padding) > 0:
            tags.add("sumpool_padding")
        if isinstance(op, IntLIF):
            tags |= {f"reset_{op.reset}", f"quant_{op.state_quant}", f"u_{op.u_overflow}", f"v_{op.v_overflow}",
                     "fires" if op.fires else "readout", "current_decay" if op.du != DECAY_ONE else "no_current"}
            if op.reset_interval:
                tags.add("periodic_reset")
            if op.presim:
                tags.add("tnp")
            if op.neg_mask or op.spatial_level >= 0 or op.gate_weight.size:
                tags.add("sparsity_masks")
            for f in ("threshold", "bias", "reset_value", "v_init", "state_level"):
                tags.add("per_channel" if getattr(op, f).size > 1 else "scalar")
            if op.u_bias.any():
                tags.add("u_bias")
    return tags
