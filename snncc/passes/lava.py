"""Integer-level passes for the Lava / Loihi 2 target.

Loihi 2 (and Lava) has neuron processes (LIF) and synapse processes (Dense, Conv) and
nothing else: no pooling, no adder, no zero-latency synapse. These passes rewrite what
it lacks into what it has, each one EXACT on integers (the reference interpreter gives
identical results before and after, on every input), so that every target stays
bit-exact with the reference of the rewritten graph:

* ``fuse_sumpool``   SumPool + synapse -> one synapse (expanded Dense weights, or a
                     Conv with a composed kernel and the product of the strides);
* ``lower_maxpool``  MaxPool of binary spikes -> spike OR: a fixed depthwise sum
                     synapse into a stateless IntLIF that fires when the sum is > 0;
* ``lava_fanin``     Add -> neuron fan-in: every Add input becomes a synapse (Lava sums
                     all synapses connected to one ``a_in``), a synapse reading an Add of
                     spikes is distributed over the Add's inputs;
* ``lava_conv_wrap`` IntConv.out_bits = 24 (Lava's Conv wraps its output to 24 bits);
* ``lava_schedule``  one step of latency per synapse (delay += 1), the Lava timing.

``latency_reset`` (run by both pipelines after the schedule) then clears each neuron
when a sample's first input reaches it, so that the latency steps leave no trace.

The first three are exact at any schedule and must run BEFORE ``lava_schedule`` (they
create synapses with delay 0, which ``lava_schedule`` then shifts like every other
synapse). ``lava_conv_wrap`` and ``lava_schedule`` are not rewrites but the target's
semantics: after them the reference interpreter IS the Lava simulation, step for step.
``LAVA_PASSES`` is that order.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph
from ..ir.ints import signed_bits
from ..ops import role, shape_of
from ..ir.nodes import DECAY_ONE, Add, Flatten, IntConv, IntDense, IntLIF

SYN = ("IntConv", "IntDense")
I64 = np.int64


def _binary(graph: Graph, name: str) -> bool:
    """Is ``name`` a tensor of binary spikes (0/1): a firing neuron's, spike input, or one
    of those flattened?"""
    op = graph.node(name)
    r = role(op)
    if r == "reshape":
        return _binary(graph, graph.inputs(name)[0])
    return (r == "neuron" and op.fires) or (r == "input" and op.encoding == "spikes")


# ------------------------------------------------------------------------- fuse_sumpool
def _expand_dense(pool, dense: IntDense, in_shape) -> IntDense:
    """Dense W after SumPool P: W' = W P, W'[o, c, h, w] = sum of W[o, c, Y, X] over the
    pooling windows (Y, X) that contain (h, w). Exact for any padding (padded positions
    hold zeros and get no weight)."""
    c, h, w = in_shape
    (kh, kw), (sh, sw), (ph, pw) = pool.kernel, pool.stride, pool.padding
    ho, wo = shape_of(pool, [in_shape])[1:]
    wt = dense.weight.reshape(dense.weight.shape[0], c, ho, wo)
    out = np.zeros((wt.shape[0], c, h + 2 * ph, w + 2 * pw), I64)
    for a in range(kh):
        for b in range(kw):
            out[:, :, a:a + (ho - 1) * sh + 1:sh, b:b + (wo - 1) * sw + 1:sw] += wt
    out = out[:, :, ph:ph + h, pw:pw + w].reshape(wt.shape[0], -1)
    return dense.replace(weight=out, weight_bits=max(dense.weight_bits, signed_bits(out)))


def _pool_then_conv(pool, conv: IntConv, in_shape) -> IntConv | None:
    """conv(sumpool(x)) as one conv on x, or None where that is not exact.

    With pool (k_p, s_p, p_p) and conv (k_c, s_c, p_c, d_c), per axis, the pooled value
    y[Y] = sum_a x[Y s_p + a - p_p] read by the conv at Y = i s_c + m d_c - p_c gives
    x[i s_c s_p + m d_c s_p + a - (p_c s_p + p_p)]: a conv with stride s_c s_p, padding
    p_c s_p + p_p, dilation 1 and kernel K[m d_c s_p + a] += W[m]. Output sizes agree
    (nested floors). The conv's zero padding of y (Y outside [0, H_y)) must read only
    zero padding of x: k_p <= s_p + p_p (left) and H_y s_p - p_p >= H (right); this is
    checked only on axes where p_c > 0."""
    _, hs, ws = in_shape
    hy, wy = shape_of(pool, [in_shape])[1:]
    for ax, n, ny in ((0, hs, hy), (1, ws, wy)):
        kp, sp, pp = pool.kernel[ax], pool.stride[ax], pool.padding[ax]
        if conv.padding[ax] and not (kp <= sp + pp and ny * sp - pp >= n):
            return None
    o, cg, kh, kw = conv.weight.shape
    (pkh, pkw), (psh, psw) = pool.kernel, pool.stride
    dh, dw = conv.dilation
    kernel = np.zeros((o, cg, (kh - 1) * dh * psh + pkh, (kw - 1) * dw * psw + pkw), I64)
    for m in range(kh):
        for n in range(kw):
            r, s = m * dh * psh, n * dw * psw
            kernel[:, :, r:r + pkh, s:s + pkw] += conv.weight[:, :, m:m + 1, n:n + 1]
    return conv.replace(weight=kernel, weight_bits=max(conv.weight_bits, signed_bits(kernel)),
                        stride=(conv.stride[0] * psh, conv.stride[1] * psw), dilation=(1, 1),
                        padding=(conv.padding[0] * psh + pool.padding[0],
                                 conv.padding[1] * psw + pool.padding[1]))


def _conv_then_pool(conv: IntConv, pool) -> IntConv | None:
    """sumpool(conv(x)) as one conv on x, or None where that is not exact.

    z[i] = sum_m W[m] x[i s_c + m d_c - p_c]; y[Y] = sum_a z[Y s_p + a] (pool padding 0,
    so every z index read is inside z) = sum x[Y s_p s_c + a s_c + m d_c - p_c]: a conv
    with stride s_p s_c, padding p_c, dilation 1 and K[a s_c + m d_c] += W[m]. Linear only
    if the conv's output is not shifted down (weight_exp >= 0: flooring does not commute
    with the sum) nor wrapped (out_bits == 0)."""
    if any(pool.padding) or conv.weight_exp < 0 or conv.out_bits:
        return None
    o, cg, kh, kw = conv.weight.shape
    (pkh, pkw), (psh, psw) = pool.kernel, pool.stride
    (sh, sw), (dh, dw) = conv.stride, conv.dilation
    kernel = np.zeros((o, cg, (pkh - 1) * sh + (kh - 1) * dh + 1, (pkw - 1) * sw + (kw - 1) * dw + 1), I64)
    for a in range(pkh):
        for b in range(pkw):
            r, s = a * sh, b * sw
            kernel[:, :, r:r + (kh - 1) * dh + 1:dh, s:s + (kw - 1) * dw + 1:dw] += conv.weight
    return conv.replace(weight=kernel, weight_bits=max(conv.weight_bits, signed_bits(kernel)),
                        stride=(sh * psh, sw * psw), dilation=(1, 1))


#: synapse kind -> that synapse with a SumPool before it folded in (or None: not exact)
POOL_INTO = {"IntConv": _pool_then_conv, "IntDense": _expand_dense}


def _pool_into(g: Graph, pool, u: str, in_shape):
    """Reader ``u`` of a SumPool with the pool folded in (a dict per dense reader behind a
    Flatten), or None where that is not exact."""
    op = g.node(u)
    if op.kind in POOL_INTO:
        return POOL_INTO[op.kind](pool, op, in_shape)
    dense_after_flatten = role(op) == "reshape" and u not in g.outputs and g.users(u) and all(
        g.node(d).kind == "IntDense" for d in g.users(u))
    return {d: _expand_dense(pool, g.node(d), in_shape) for d in g.users(u)} if dense_after_flatten else None


def _fuse_one(g: Graph, name: str) -> bool:
    pool, (src,) = g.node(name), g.inputs(name)
    shapes = g.shapes()
    if name in g.outputs:
        return False
    users = g.users(name)
    # (a) synapse -> SumPool: fold the pool into the synapse before it
    if g.node(src).kind == "IntConv" and g.users(src) == [name] and src not in g.outputs:
        new = _conv_then_pool(g.node(src), pool)
        if new is not None:
            g.set(src, new)
            g.remove(name)
            return True
    # (b) SumPool -> synapses (possibly through Flatten): fold the pool into each of them
    plan: dict[str, object] = {}
    for u in users:
        new = _pool_into(g, pool, u, shapes[src])
        if new is None:
            return False
        plan[u] = new
    if not plan:
        return False
    for u, new in plan.items():
        if isinstance(new, dict):
            for d, nd in new.items():
                g.set(d, nd)
        else:
            g.set(u, new)
        g.set_inputs(u, [src if s == name else s for s in g.inputs(u)])
    g.erase(name)
    return True


def fuse_sumpool(graph: Graph, cfg=None) -> tuple[Graph, bool]:
    """Fold every SumPool into the synapse before it (conv -> pool) or into every synapse
    after it (pool -> conv / dense / flatten -> dense), where that is exact (see the
    helpers' docstrings); what cannot be folded is left for the Lava checker to report."""
    g = graph.copy()
    changed = False
    progress = True
    while progress:
        progress = False
        for name in g.of_kind("SumPool"):
            if _fuse_one(g, name):
                changed = progress = True
                break
    return g, changed


# ------------------------------------------------------------------------ lower_maxpool
def spike_or_neuron(channels: int = 1) -> IntLIF:
    """A stateless IntLIF that fires iff its input a > 0, for a >= 0 (Lava-native:
    du = 4096, dv = 0, threshold 0, bias 0, hard reset). u = a << 6 and v = v_prev + u with
    v_prev = 0 always: after a spike v is reset to 0, without one a = 0 keeps v at 0."""
    return IntLIF(du=DECAY_ONE, dv=0, act_shift=6, threshold=np.zeros(1, I64), bias=np.zeros(1, I64),
                  reset="zero", reset_value=np.zeros(1, I64), v_init=np.zeros(1, I64),
                  scale=np.ones(1))


def lower_maxpool(graph: Graph, cfg=None) -> tuple[Graph, bool]:
    """MaxPool of binary spikes = logical OR over the window = [window sum > 0]:
    a depthwise all-ones IntConv (the pool's kernel/stride/padding, delay 0) into
    ``spike_or_neuron``. Exact at zero latency; ``lava_schedule`` (run afterwards) gives
    the new synapse its one step like every other synapse. MaxPool of graded values
    (e.g. of synapse outputs) is left for the checker to report."""
    g = graph.copy()
    changed = False
    shapes = g.shapes()
    for name in g.of_kind("MaxPool"):
        (src,) = g.inputs(name)
        if not _binary(g, src) or len(shapes[src]) != 3:
            continue
        mp, ch = g.node(name), shapes[src][0]
        syn = g.add(g.unique(f"{name}.or_sum"), IntConv(
            source=mp.source, weight=np.ones((ch, 1) + tuple(mp.kernel), I64), scale=np.ones(ch),
            weight_bits=2, stride=mp.stride, padding=mp.padding, groups=ch), [src])
        lif = g.add(g.unique(f"{name}.or"), spike_or_neuron().replace(source=mp.source), [syn])
        g.replace_uses(name, lif)
        g.erase(name)
        changed = True
    return g, changed


# --------------------------------------------------------------------------- lava_fanin
def identity_synapse(shape: tuple[int, ...]):
    """a = x exactly: depthwise 1x1 IntConv of ones (C, H, W) or an identity IntDense (N,)."""
    if len(shape) == 3:
        return IntConv(weight=np.ones((shape[0], 1, 1, 1), I64), groups=shape[0], weight_bits=2,
                       scale=np.ones(shape[0]))
    return IntDense(weight=np.eye(int(np.prod(shape)), dtype=I64), weight_bits=2,
                    scale=np.ones(int(np.prod(shape))))


def _flatten_adds(g: Graph) -> bool:
    changed = False
    for name in g.of_kind("Add"):
        if name not in g:
            continue
        ins = g.inputs(name)
        new = []
        for s in ins:
            if g.node(s).kind == "Add" and g.users(s) == [name] and s not in g.outputs:
                new += g.inputs(s)
            else:
                new.append(s)
        if new != ins:
            for s in ins:
                if s not in new and g.node(s).kind == "Add":
                    g.erase(s)
            g.set_inputs(name, new)
            changed = True
    return changed


def _distribute(g: Graph) -> bool:
    """synapse(Add(x1..xn)) -> Add(synapse(x1)..synapse(xn)) for Adds of non-synapse
    values (spikes, input): exact when the synapse output is not floored (weight_exp >= 0)
    nor wrapped (out_bits == 0). A Flatten between Add and synapse is pushed into the
    branches."""
    shapes = g.shapes()
    for name in g.of_kind(*SYN):
        op = g.node(name)
        (src,) = g.inputs(name)
        flat = g.node(src).kind == "Flatten"
        add = g.inputs(src)[0] if flat else src
        if g.node(add).kind != "Add" or op.weight_exp < 0 or op.out_bits:
            continue
        if any(g.node(s).kind in SYN for s in g.inputs(add)):
            continue
        branches = []
        for i, s in enumerate(g.inputs(add)):
            if flat and len(shapes[s]) != 1:
                s = g.add(g.unique(f"{src}.{i}"), Flatten(source=g.node(src).source), [s])
            branches.append(g.add(g.unique(f"{name}.{i}"), op, [s]))
        new_add = g.add(g.unique(f"{name}.sum"), Add(source=op.source), branches)
        g.replace_uses(name, new_add)
        g.erase(name)
        for dead in (src, add):
            if dead in g and not g.users(dead) and dead not in g.outputs:
                g.erase(dead)
        return True
    return False


def lava_fanin(graph: Graph, cfg=None) -> tuple[Graph, bool]:
    """Make every Add a neuron fan-in of synapses (what Lava expresses by connecting
    several Dense/Conv ``a_out`` to one ``a_in``, which sums them): nested Adds are
    flattened, synapses reading an Add of spikes are distributed over it, and an Add
    input that is not a synapse (a skip connection of spikes or input values) gets an
    identity synapse (weight 1, delay 0: a = x exactly). Adds that feed anything but a
    neuron are left for the checker to report."""
    g = graph.copy()
    changed = _flatten_adds(g)
    while _distribute(g):
        changed = True
    shapes = g.shapes()
    for name in g.of_kind("Add"):
        if not g.users(name) or any(g.node(u).kind != "IntLIF" for u in g.users(name)):
            continue
        ins = g.inputs(name)
        new = []
        for i, s in enumerate(ins):
            if g.node(s).kind in SYN:
                new.append(s)
            else:
                new.append(g.add(g.unique(f"{name}.in{i}"), identity_synapse(shapes[s]), [s]))
        if new != ins:
            g.set_inputs(name, new)
            changed = True
    return g, changed


# ---------------------------------------------------------------- lava_conv_wrap / schedule
def lava_conv_wrap(graph: Graph, cfg=None) -> tuple[Graph, bool]:
    """Lava's Conv wraps its output to 24-bit two's complement (``signed_clamp``): set
    IntConv.out_bits = 24 where it is 0 (unbounded). This changes nothing unless a conv
    output leaves [-2^23, 2^23), and then it makes the reference do what Lava does."""
    g = graph.copy()
    changed = False
    for name in g.of_kind("IntConv"):
        if g.node(name).out_bits == 0:
            g.set(name, g.node(name).replace(out_bits=24))
            changed = True
    return g, changed


def lava_schedule(graph: Graph, cfg=None) -> tuple[Graph, bool]:
    """Lava timing: every synapse sends on step t what it computed on step t - 1, so
    each synapse gets one more step of delay (0 -> 1; an explicit delay d -> d + 1).
    Marks ``graph.meta["schedule"] = "lava"`` and does nothing on a graph so marked
    (e.g. one imported from a netx file, whose delays already count Lava's step)."""
    if graph.meta.get("schedule") == "lava":
        return graph, False
    g = graph.copy()
    for name in g.of_kind(*SYN):
        g.set(name, g.node(name).replace(delay=g.node(name).delay + 1))
    g.meta["schedule"] = "lava"
    return g, True


def latency_reset(graph: Graph, cfg=None) -> tuple[Graph, bool]:
    """Under the Lava schedule a neuron whose input arrives d >= 1 steps after the sample
    starts (d: the shortest sum of synapse delays from the input) would integrate its
    bias, and the spikes upstream biases cause, during those d steps, which the
    zero-latency (PyTorch) model never does. This pass gives every such neuron Lava's
    periodic reset with interval T + latency (one sample) and offset d: u = v = 0 just
    before the first input of each sample reaches it (a no-op where nothing moved the
    neuron before; resetting every layer keeps the pattern netx can express). In a chain
    network every layer then computes exactly the zero-latency values, d steps later.

    Skipped: zero-latency graphs, ``cfg.latency_reset = False``, neurons that already
    have a periodic reset, and neurons with v_init != 0 (the reset would clear it).
    Samples then last T + latency steps; a longer input is a stream of such samples."""
    if graph.meta.get("schedule") != "lava" or cfg is None or not cfg.latency_reset:
        return graph, False
    g = graph.copy()
    interval = cfg.steps + g.latency()
    arrive: dict[str, int] = {}  # first step the sample's input can reach the node's output
    changed = False
    for n, op in g.items():
        ins = g.inputs(n)
        arrive[n] = (min(arrive[s] for s in ins) if ins else 0) + int(getattr(op, "delay", 0))
        if isinstance(op, IntLIF) and arrive[n] >= 1 and not op.reset_interval and not op.v_init.any():
            g.set(n, op.replace(reset_interval=interval, reset_offset=arrive[n] % interval))
            changed = True
    return g, changed


def _loihi_neuron_limits() -> dict:
    import tomllib
    from importlib import resources

    return tomllib.loads((resources.files("snncc.targets") / "hw" / "loihi2.toml").read_text())["neuron"]


def loihi_bias(graph: Graph, cfg=None) -> tuple[Graph, bool | str]:
    """Round every neuron bias onto Loihi 2's grid, mant << exp with a 13-bit signed
    mantissa and exp in [0, 7] (``targets/hw/loihi2.toml``): per neuron the smallest exp
    whose mantissa holds round(bias / 2^exp), half away from zero. A bias already on the
    grid is unchanged; one that is not would make the layer simulation-only. The change is
    at most 2^(exp-1) in v units (exp 6: 32 of a bias of about 2^18, 1e-4 relative) and is
    reported in the build's notes; the rounded model is the specification every target
    reproduces. Not exact, so not one of the rewrites above: a choice of the Loihi flow."""
    from ..ir.ints import round_half_away

    lim = _loihi_neuron_limits()
    half, max_exp = 1 << (lim["bias_mant_bits"] - 1), (1 << lim["bias_exp_bits"]) - 1
    g, notes = graph.copy(), []
    for name in g.order():
        op = g.node(name)
        if not isinstance(op, IntLIF) or not op.bias.any():
            continue
        b = op.bias.astype(I64)
        new, done = b.copy(), np.zeros(b.shape, bool)
        for e in range(max_exp + 1):
            m = round_half_away(b / float(1 << e))
            ok = ~done & (m >= -half) & (m <= half - 1)
            new[ok], done = m[ok] << e, done | ok
        if np.array_equal(new, b):
            continue
        d = int(np.abs(new - b).max())
        g.set(name, op.replace(bias=new.reshape(op.bias.shape)))
        notes.append(f"layer '{name}': bias rounded onto Loihi 2's 13-bit mantissa << exp grid "
                     f"(largest change {d}, bias up to {int(np.abs(b).max())})")
    return g, "; ".join(notes) if notes else False


# (pass, IR stage of its output), in the order the Lava target needs them
LAVA_PASSES = [
    (fuse_sumpool, "int"),
    (lower_maxpool, "int"),
    (lava_fanin, "int"),
    (lava_conv_wrap, "int"),
    (lava_schedule, "int"),
    (loihi_bias, "int"),
]
