"""The C target's lowering table: one function per IR kind, turning a node into runtime
records (snncc_rt.h) on the emitter's plan (``emitter._Plan``: ``layer``, ``stored``,
``read``, ``scratch``, ``const``, ``struct``, ``buffer``).

A synapse reaches this table only when it is stored (the emitter fuses the others into
their neuron layer, see ``lif``); Flatten becomes a view of its input where the order of
its elements does not matter, else a copy into (C, H, W) order."""
from __future__ import annotations

import numpy as np

from ...ir.nodes import DECAY_ONE, OVERFLOWS, RESETS, STATE_QUANTS
from ...ops import role
from ...ops.neurons import overflow_free, overflow_magnitude, probed_only_u, records_u
from .cspell import _check, _rows, c_int, pack_weights, type_for
from .formats import FORMATS, IO_ENUMS, fmt_for, io_type, nbytes

#: the macros a build defines to declare what only it needs (model.c #ifdef): the state
#: only the state probes read, and the host harness's kept sums of the layers reading the
#: input (runner.PROBE_DEFINE, runner.CACHE_DEFINE)
PROBE_MACRO, CACHE_MACRO = "SNNCC_PROBE_STATE", "SNNCC_INPUT_CACHE"

#: scratch of a layer (a tile's accumulator, a neuron chunk's temporaries) may take up to
#: 1/SCRATCH_SHARE of the bytes of the model's neuron state, within these bounds: a bigger
#: tile rescans fewer input rows and a longer chunk runs longer vector loops (the example's
#: instructions per image x0.55), a model with little state (a ternary membrane) keeps the
#: minimum, so scratch never dominates what Eq. 28 counts (scratch_budget)
SCRATCH_SHARE = 16
#: bytes of a tile's accumulator (a conv row over it is split into parts of columns)
ACC_SCRATCH_MIN, ACC_SCRATCH_MAX = 512, 8192
#: elements per chunk of the neuron update (its arena scratch: 4 chunks of int32/int64)
LIF_CHUNK_MIN, LIF_CHUNK_MAX = 16, 256
#: int64 values of scratch for stored synapse results, pools and adds (per array):
#: the runtime's SNN_TMP (snncc_rt.h)
TMP_VALUES = 32
#: the int32 neuron update needs every intermediate below this (so 2v and v + rv fit too)
I32_SAFE = 1 << 30


# ------------------------------------------------------------------------- synapses
def storage_index(order: tuple | None, n: int) -> np.ndarray:
    """For each storage position, the (C, H, W)-order index of the element stored there."""
    if order is None:
        return np.arange(n)
    c, h, w = order
    return np.arange(n).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def _packed(op, x: dict) -> np.ndarray:
    """Weights in the runtime's order: conv (C, kH, kW reversed, O/groups), dense (I, O)
    with I in the storage order of the input."""
    if op.kind == "IntConv":
        o, cg, kh, kw = op.weight.shape
        _check(len(x["shape"]) == 3 and cg * op.groups == x["c"] and o % op.groups == 0,
               f"weight {op.weight.shape} does not match the input {x['shape']} in {op.groups} groups")
        w = op.weight.reshape(op.groups, o // op.groups, cg, kh, kw)[..., ::-1]
        return w.transpose(0, 2, 3, 4, 1)
    _check(op.weight.shape[1] == x["n"], f"weight {op.weight.shape} does not match {x['n']} inputs")
    return op.weight[:, storage_index(x["order"], x["n"])].T


def syn(p, name: str, op, L: dict) -> str:
    """The snn_syn_t of synapse ``name`` (its packed weights go into L); returns its address."""
    bits = int(op.weight_bits)
    _check(1 <= bits <= 32, f"{name}: the C target packs weights of 1..32 bits, got {bits}")
    _check(-62 <= op.weight_exp <= 62, f"{name}: weight_exp {op.weight_exp} out of range")
    _check(0 <= op.out_bits <= 62, f"{name}: out_bits {op.out_bits} must be 0..62")
    x = p.graph.inputs(name)[0]
    p.read(x, L["index"])
    xt = p.tensors[x]
    try:
        packed = pack_weights(_packed(op, xt), bits)
    except Exception as e:  # noqa: BLE001 - shape mismatches become one clear message
        raise type(e)(f"{name}: {e}") from None
    cname = p.cnames[name]
    L["weights"].append({"cname": f"{cname}_w", "bits": bits, "count": int(op.weight.size), "bytes": len(packed),
                         "rows": _rows([f"0x{b:02x}" for b in packed], 16), "layer": name})
    conv = op.kind == "IntConv"
    geo = (*op.weight.shape[2:], *op.stride, *op.padding, *op.dilation, op.groups) if conv else (1,) * 9
    fields = [("w", f"{cname}_w"), ("x", "&" + xt["cname"]), ("conv", int(conv)), ("bits", bits),
              ("exp", int(op.weight_exp)), ("out_bits", int(op.out_bits)),
              *zip(("kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "groups"), (int(v) for v in geo))]
    return p.struct("snn_syn_t", f"{cname}_syn", fields)


def tile(p, L: dict, syns: list[str], out: dict, tmp: bool) -> str:
    """The snn_tile_t of a layer computing ``syns`` into ``out``: the accumulator type that
    holds every partial sum of them all, rows per tile within the plan's accumulator budget."""
    ivs = [p.bounds.acc_iv[s] for s in syns]
    acc = max(1, type_for(sum(lo for lo, _ in ivs), sum(hi for _, hi in ivs)))
    ops = [p.graph.node(s) for s in syns]
    conv = ops[0].kind == "IntConv"
    per_row, total = (out["w"] * out["c"], out["h"]) if conv else (1, out["n"])
    budget = p.acc_budget
    rows = max(1, min(total, budget // (per_row << acc)))
    ring = 0 if tmp or rows >= total else ring_rows(p, syns)
    if ring and ring * per_row << acc <= budget:  # a line buffer: each input row scanned once
        rows = ring
    else:
        ring = 0
    cols = 0
    if conv and per_row << acc > budget and out["w"] > 1:  # one row is over: part of a row
        cols = max(1, min(out["w"] - 1, budget // (out["c"] << acc)))
        per_row = cols * out["c"]
    run = max(op.weight.shape[3] * op.weight.shape[0] // op.groups if conv else rows for op in ops)
    wbuf = any(op.weight_bits != 8 for op in ops)
    L.update(acc=("int16", "int32", "int64")[acc - 1], rows=rows, cols=cols, ring=ring,
             tile_bytes=rows * per_row << acc)
    fields = [("acc", p.scratch(L, "acc", rows * per_row << acc)),
              ("wbuf", p.scratch(L, "wbuf", run << acc) if wbuf else "0"),
              ("tmp", p.scratch(L, "tmp", 8 * TMP_VALUES) if tmp else "0"),
              ("type", ("SNN_I16", "SNN_I32", "SNN_I64")[acc - 1]), ("rows", rows), ("cols", cols), ("ring", ring),
              ("cache", input_cache(p, L, syns, out, acc) if conv or not wbuf else "0")]
    return p.struct("snn_tile_t", f"{L['cname']}_tile", fields)


def input_cache(p, L: dict, syns: list[str], out: dict, acc: int) -> str:
    """The tile's ``cache`` field: for a layer (neuron or stored synapse) whose synapses all
    read the model input, its whole-layer sums and the input bytes they come from (snncc_rt.h
    snn_cache_t), declared only in a build with -DSNNCC_INPUT_CACHE (the host harness;
    their bytes are c_manifest.json "input_cache_bytes", apart from the deployed sizes),
    so that a static input's synapses run once per sample. "0" for any other layer. (A
    dense layer decoding non-8-bit weights is left out by the caller: its weight buffer
    holds one tile's run of outputs, not the whole layer's.)"""
    src = p.graph.input_name
    if any(p.graph.inputs(s) != [src] for s in syns):
        return "0"
    cname, ctype = L["cname"], ("int16_t", "int32_t", "int64_t")[acc - 1]
    fields = [("acc", p.buffer(f"{cname}_cache_acc", out["n"] << acc, ctype, True, L["index"], only=CACHE_MACRO)),
              ("in", p.buffer(f"{cname}_cache_in", p.tensors[src]["bytes"], "uint8_t", True, L["index"],
                              only=CACHE_MACRO))]
    L["input_cache"] = True
    return f"SNN_IF_CACHED({p.struct('snn_cache_t', f'{cname}_cache', fields, mutable=True, only=CACHE_MACRO)})"


#: input formats a line buffer takes: events the scatter visits (a graded input in a plain
#: array goes through the gather, output by output, which re-reads nothing)
RING_INPUTS = ("U1", "U4", "S4", "T2")


def ring_rows(p, syns: list[str]) -> int:
    """The rows of a line buffer (the runtime's lif_ring) for a neuron layer computing the
    conv synapses ``syns``, or 0 where one cannot serve: every synapse scans its input row
    by row with stride and dilation 1 along y, as a run of kw taps (one group, stride and
    dilation 1 along x, kh <= 16) or at the input's own pixel (1x1, stride 1, no padding),
    from an input of events (RING_INPUTS). The rows: the tallest kernel."""
    kh = []
    for s in syns:
        op = p.graph.node(s)
        if op.kind != "IntConv" or op.stride[0] != 1 or op.dilation[0] != 1:
            return 0
        o, cg, h, w = op.weight.shape
        span = op.stride[1] == 1 and op.dilation[1] == 1 and op.groups == 1 and h <= 16
        point = h == w == 1 and op.stride == (1, 1) and tuple(op.padding) == (0, 0)
        if not (span or point) or p.tensors[p.graph.inputs(s)[0]]["fmt"].name not in RING_INPUTS:
            return 0
        kh.append(h)
    return max(kh)


def synapse(p, name: str, op) -> None:
    """A stored synapse: its own layer, writing its result (delayed through a ring)."""
    L = p.layer(name, op)
    L["syn"] = [syn(p, name, op, L)]
    L["out"] = out = p.stored(name, p.bounds.iv[name], L["index"])
    L["tile"] = tile(p, L, [name], out, tmp=True)
    if op.delay > 0:
        ring = p.buffer(f"{L['cname']}_ring", op.delay * out["bytes"], "int64_t", True, L["index"])
        L["delay"] = {"depth": int(op.delay), "cname": f"{L['cname']}_delay"}
        p.struct("snn_delay_t", L["delay"]["cname"], [("ring", ring), ("depth", int(op.delay)), ("head", 0)],
                 mutable=True)


# ---------------------------------------------------------------------- pools, shapes
def pool(p, name: str, op) -> None:
    x = p.graph.inputs(name)[0]
    _check(len(p.shapes[x]) == 3, f"{name}: pooling needs a (C, H, W) input")
    L = p.layer(name, op)
    p.read(x, L["index"])
    L["in"] = [p.tensors[x]["cname"]]
    L["out"] = p.stored(name, p.bounds.iv[name], L["index"])
    tmp = p.scratch(L, "tmp", 16 * min(p.shapes[x][0], TMP_VALUES))
    vals = (*op.kernel, *op.stride, *op.padding)
    L["p"] = p.struct("snn_pool_t", f"{L['cname']}_p",
                      [*zip(("kh", "kw", "sh", "sw", "ph", "pw"), (int(v) for v in vals)), ("tmp", tmp)])


def flatten(p, name: str, op) -> None:
    """A view of the input's buffer where the storage order is the (C, H, W) order, or
    where only dense synapses read it (their weights follow the storage order)."""
    x = p.graph.inputs(name)[0]
    xt = p.tensors[x]
    users = [p.graph.node(u).kind for u in p.graph.users(name)]
    if xt["order"] is None or (all(k == "IntDense" for k in users) and name not in p.graph.outputs):
        p.tensors[name] = dict(xt, cname=f"{p.cnames[name]}_t", shape=list(p.shapes[name]), c=xt["n"], h=1, w=1)
        return
    L = p.layer(name, op)
    p.read(x, L["index"])
    L["in"] = [xt["cname"]]
    L["out"] = p.stored(name, p.bounds.iv[name], L["index"])


def add(p, name: str, op) -> None:
    """A stored Add (the neuron layers compute the others)."""
    L = p.layer(name, op)
    for s in p.graph.inputs(name):
        p.read(s, L["index"])
    L["in"] = [p.tensors[s]["cname"] for s in p.graph.inputs(name)]
    L["out"] = p.stored(name, p.bounds.iv[name], L["index"])
    L["tile"] = p.struct("snn_tile_t", f"{L['cname']}_tile",
                         [("acc", "0"), ("wbuf", "0"), ("tmp", p.scratch(L, "tmp", 16 * TMP_VALUES)),
                          ("type", "SNN_I64"), ("rows", 0), ("cols", 0), ("ring", 0)])


# ---------------------------------------------------------------------------- neurons
def _mag(a) -> int:
    return int(np.abs(a).max()) if np.asarray(a).size else 0


def wide_update(op, a_mag: int, state: tuple) -> bool:
    """False where every intermediate of the neuron update provably lies below 2^30 in
    magnitude (the runtime's int32 path is then exact), else True (int64)."""
    u_state, v_state = state
    if v_state is None or (op.du != DECAY_ONE and u_state is None):
        return True
    if max(op.u_bits, op.v_bits, op.act_shift) > 30:
        return True
    amp = (a_mag << op.act_shift) + _mag(op.u_bias)
    u_pre = (u_state or 0) + amp
    u_post = overflow_magnitude(u_pre, op.u_bits, op.u_overflow)
    v_pre = v_state + u_post + _mag(op.bias)
    need = (a_mag, amp, u_pre, v_pre + _mag(op.reset_value), _mag(op.threshold), _mag(op.state_level),
            _mag(op.v_init))
    return max(need) >= I32_SAFE


def lowered_overflows(op, a_mag: int, state: tuple) -> tuple[int, int]:
    """The runtime's (u_ovf, v_ovf) codes: an overflow the bounds prove never changes a value
    (``overflow_free``) is lowered as saturate, which every mode equals there and which
    costs least (a min and a max; wrap_lava's fold is two compares and two selects), and
    which lets the runtime's one-pass update (lif_fused32) take the layer."""
    free = overflow_free(op, a_mag, state)
    return tuple(OVERFLOWS.index("saturate" if f else mode) for f, mode in zip(free, (op.u_overflow, op.v_overflow)))


def _coded(op, channels: int) -> bool:
    """A quantized membrane whose initial value is a level too: stored as codes."""
    if op.state_quant == "none":
        return False
    v0 = np.broadcast_to(op.v_init, (channels,))
    lvl = np.broadcast_to(op.state_level, (channels,))
    ok = (v0 == 0) | (v0 == lvl) | ((v0 == -lvl) if op.state_quant == "ternary" else False)
    return bool(ok.all())


def _state(p, L: dict, what: str, fmt, bound_io: tuple, probed_only: bool = False) -> tuple[dict, dict]:
    shape = p.shapes[L["name"]]
    t = p.stored_as(L["name"], f"{L['cname']}_{what}", shape, fmt, L["index"], probed_only=probed_only)
    return t, {"io": type_for(*bound_io)}


def _state_formats(p, name: str, op) -> tuple:
    """(v format, v probe interval, u format or None, u probe interval) of a neuron layer:
    a quantized membrane as codes (T2/U1), else the narrowest format of its proven bound."""
    u_b, v_b = p.bounds.state[name]
    if _coded(op, p.shapes[name][0]):
        lmax = _mag(op.state_level)
        v_fmt, v_iv = FORMATS["T2" if op.state_quant == "ternary" else "U1"], (-lmax, lmax)
    else:
        v_fmt = FORMATS["S64"] if v_b is None else fmt_for(-v_b, v_b)
        v_iv = (-(1 << 62), 1 << 62) if v_b is None else (-v_b, v_b)
    if not records_u(op, p.graph.meta.get("schedule")):  # on Lava's schedule also du = 4096: u = the input current
        return v_fmt, v_iv, None, None
    if op.du == DECAY_ONE:
        u_b = 1 << (op.u_bits - 1)  # no carried state: u is the step's current, inside the u register
    u_fmt = FORMATS["S64"] if u_b is None else fmt_for(-u_b, u_b)
    return v_fmt, v_iv, u_fmt, (-(1 << 62), 1 << 62) if u_b is None else (-u_b, u_b)


def lif_states(p, name: str, op, L: dict, wide: bool) -> dict:
    """The u and v tensors of a neuron layer (state formats) and their probes' types; a u
    that only the probes need (``ops.probed_only_u``) is declared for the state-probing
    build alone (``-DSNNCC_PROBE_STATE``)."""
    _check(1 <= op.u_bits <= 62 and 1 <= op.v_bits <= 62, f"{name}: u_bits/v_bits must be 1..62")
    ch = p.shapes[name][0]
    v_fmt, v_iv, u_fmt, u_iv = _state_formats(p, name, op)
    v, v_io = _state(p, L, "v", v_fmt, v_iv)
    if v_fmt.name in ("T2", "U1"):
        v_io.update(level=p.const(np.broadcast_to(op.state_level, (ch,)), wide), wide=int(wide))
    else:
        v_io["level"] = "0"
    u = u_io = None
    if u_fmt is not None:
        u, u_io = _state(p, L, "u", u_fmt, u_iv, probed_only_u(op, p.graph.meta.get("schedule")))
        u_io["level"] = "0"
    return {"u": u, "v": v, "v_io": v_io, "u_io": u_io, "wide": wide}


def scratch_budget(p) -> tuple[int, int]:
    """(accumulator bytes per tile, elements per neuron chunk) for the model of plan ``p``:
    1/SCRATCH_SHARE of its neuron state bytes (v and u in their storage formats, as
    deployed: without a u only the state probes read) within
    [ACC_SCRATCH_MIN, ACC_SCRATCH_MAX], and the largest power of two of chunk elements whose
    int32 temporaries (4 arrays: 16 bytes per element) take at most half of that, within
    [LIF_CHUNK_MIN, LIF_CHUNK_MAX]. The same graph always gets the same sizes."""
    state = 0
    for name, op in p.graph.items():
        if role(op) == "neuron":
            n = int(np.prod(p.shapes[name]))
            v_fmt, _, u_fmt, _ = _state_formats(p, name, op)
            deployed_u = u_fmt is not None and not probed_only_u(op, p.graph.meta.get("schedule"))
            state += nbytes(v_fmt, n) + (nbytes(u_fmt, n) if deployed_u else 0)
    acc = min(ACC_SCRATCH_MAX, max(ACC_SCRATCH_MIN, state // SCRATCH_SHARE))
    chunk = LIF_CHUNK_MIN
    while chunk * 2 <= LIF_CHUNK_MAX and 16 * chunk * 2 <= acc // 2:
        chunk *= 2
    return acc, chunk


def _consts(p, op, ch: int, wide: bool) -> list[tuple[str, str]]:
    """The per-channel constant arrays (absent ones NULL: the runtime needs no zeros)."""
    def vec(a, needed=True):
        return p.const(np.broadcast_to(a, (ch,)), wide) if needed else None

    have = {"thr": vec(op.threshold, op.fires), "bias": vec(op.bias),
            "rv": vec(op.reset_value, op.fires and op.reset == "subtract"),
            "level": vec(op.state_level, op.state_quant != "none"),
            "u_bias": vec(op.u_bias, bool(op.u_bias.any())), "v_init": vec(op.v_init, bool(op.v_init.any()))}
    return [(k, v or "0") for k, v in have.items()]


def lif(p, name: str, op) -> None:
    """A neuron layer, computing its fused synapses tile by tile (see snncc_rt.h)."""
    _check(0 <= op.act_shift <= 62, f"{name}: act_shift {op.act_shift} must be 0..62")
    _check(0 <= op.reset_interval < 1 << 31, f"{name}: reset_interval {op.reset_interval} must be 0..2^31-1")
    L = p.layer(name, op)
    group = p.groups[name]
    for s in group["in"]:
        p.read(s, L["index"])
    L["in"] = [p.tensors[s]["cname"] for s in group["in"]]
    L["syn"] = [syn(p, s, p.graph.node(s), L) for s in group["syn"]]
    L["fused"] = list(group["syn"]) + [a for a, n in p.fused.items() if n == name and a not in group["syn"]]
    L["out"] = out = p.tensors[name] = p.stored_as(name, f"{L['cname']}_s", p.shapes[name], FORMATS["U1"],
                                                    L["index"])
    wide = wide_update(op, p.bounds.a_mag[name], p.bounds.state[name])
    L["lif"] = lif_states(p, name, op, L, wide)
    if group["syn"]:
        L["tile"] = tile(p, L, group["syn"], out, tmp=False)
    u_ovf, v_ovf = lowered_overflows(op, p.bounds.a_mag[name], p.bounds.state[name])
    L["lif"]["overflow"] = [OVERFLOWS[u_ovf], OVERFLOWS[v_ovf]]
    scal = (op.du, op.dv, op.act_shift, op.u_bits, u_ovf, op.v_bits, v_ovf, RESETS.index(op.reset),
            STATE_QUANTS.index(op.state_quant), int(op.fires), int(wide))
    lf = L["lif"]
    _check(0 <= op.presim < 1 << 31, f"{name}: presim {op.presim} must be 0..2^31-1")
    lf["keep"] = (p.stored_as(name, f"{L['cname']}_keep", p.shapes[name], FORMATS["U1"], L["index"])
                  if op.presim and op.fires else None)  # TNP's kept neurons (state: outlives a step)
    tnp = [("presim", int(op.presim)),
           ("prune_level", p.const(np.broadcast_to(op.prune_level, (p.shapes[name][0],)), wide) if op.presim else "0"),
           ("keep", "&" + lf["keep"]["cname"] if lf["keep"] else "0")]
    fields = [*zip(("du", "dv", "act_shift", "u_bits", "u_ovf", "v_bits", "v_ovf", "reset", "quant", "fires",
                    "wide"), (int(x) for x in scal)),
              *_consts(p, op, p.shapes[name][0], wide),
              ("u", _u_field(lf["u"])), ("v", "&" + lf["v"]["cname"]),
              ("reset_interval", int(op.reset_interval)), ("reset_offset", int(op.reset_offset)),
              ("chunk", p.lif_chunk), ("tmp", p.scratch(L, "tmp", 4 * p.lif_chunk * (8 if wide else 4))), *tnp,
              *_masks(p, name, op, L)]
    L["p"] = p.struct("snn_lif_t", f"{L['cname']}_p", fields)


def _u_field(u: dict | None) -> str:
    """snn_lif_t.u: NULL without u; a u only the probes need is there only in the
    state-probing build (model.c's SNN_IF_PROBED: NULL without -DSNNCC_PROBE_STATE)."""
    if u is None:
        return "0"
    return f"SNN_IF_PROBED(&{u['cname']})" if u["probed_only"] else "&" + u["cname"]


def _masks(p, name: str, op, L) -> list[tuple[str, object]]:
    """SpQuant-SNN's sparsity masks (snncc_rt.c, "sparsity masks"): the negative mask, the
    spatial level (with a chunk's saved state in scratch) and the channel gate (weights in
    the narrowest of int8..int64 that holds them, int64 levels; scratch for the
    per-channel sums and the kept channels)."""
    ch = p.shapes[name][0]
    _check(-1 <= op.spatial_level < 1 << 62, f"{name}: spatial_level {op.spatial_level} must be -1..2^62-1")
    gate = op.gate_weight.size > 0
    g_type = io_type(int(op.gate_weight.min(initial=0)), int(op.gate_weight.max(initial=0)))
    return [("neg_mask", int(op.neg_mask)), ("spatial_level", c_int(int(op.spatial_level))),
            ("spatial_tmp", p.scratch(L, "spatial", 3 * 8 * p.lif_chunk) if op.spatial_level >= 0 else "0"),
            ("gate_w", p.typed_const(op.gate_weight, g_type) if gate else "0"), ("gate_type", IO_ENUMS[g_type]),
            ("gate_level", p.const(np.broadcast_to(op.gate_level, (ch,)), True) if gate else "0"),
            ("gate_tmp", p.scratch(L, "gate", 3 * 8 * ch) if gate else "0")]


#: IR kind -> its lowering (the runtime's kernel is emitter.KIND_ENUM[kind])
LOWER = {"IntConv": synapse, "IntDense": synapse, "SumPool": pool, "MaxPool": pool, "IntLIF": lif,
         "Flatten": flatten, "Add": add}

__all__ = ["LOWER", "c_int", "nbytes"]
