"""C99 emitter: an integer graph -> a standalone C project (model.c/.h, main.c, Makefile,
the runtime library) that reproduces ``snncc.reference.interpreter.run`` bit for bit.

The work splits in two. ``plan(graph)`` turns the graph into plain data: one record per
layer with its C identifiers, buffers, packed weights and constants, and the element
type of every buffer, chosen from worst-case value bounds (``snncc.ir.bounds``) so that int8
holds spikes, wider types appear only where a value can need them, and every value the
reference can compute is stored exactly. The same bounds pick each convolution's
accumulator type (int16/32/64) and size the scratch buffers the runtime's event-driven
kernels share (see snncc_rt.h). The Jinja2 templates in ``templates/`` then lay that
data out; all behaviour lives in the runtime (``runtime/src/snncc_rt.c``).
Output is deterministic: graph order, sorted JSON, no timestamps.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

from ...errors import SnnccError
from ...ir.bounds import Bounds
from ...ir.graph import Graph
from ...ir.ints import shift
from ...ir.nodes import DECAY_ONE, OVERFLOWS, RESETS, STATE_QUANTS, IntLIF
from ...ir.verify import verify
from ...ops import role
from ...ops.neurons import I32_MAX, SAFE

TEMPLATES = Path(__file__).resolve().parent / "templates"
BINARY = "snncc_model"
BINARY_ASAN = "snncc_model_asan"
SOURCES = ("main.c", "model.c", "snncc_rt.c")
MANIFEST = "c_manifest.json"

# element types, index = the runtime's SNN_I8 .. SNN_I64
CTYPES = ("int8_t", "int16_t", "int32_t", "int64_t")
ENUMS = ("SNN_I8", "SNN_I16", "SNN_I32", "SNN_I64")
NPTYPES = ("<i1", "<i2", "<i4", "<i8")
KIND_ENUM = {"IntConv": "SNN_CONV", "IntDense": "SNN_DENSE", "SumPool": "SNN_SUMPOOL",
             "MaxPool": "SNN_MAXPOOL", "Flatten": "SNN_FLATTEN", "Add": "SNN_ADD", "IntLIF": "SNN_LIF"}
# RAM for a conv's accumulator (runtime: one band of output rows at a time); a bigger band
# scans fewer input rows twice and decodes weights fewer times, a smaller one saves RAM
ACC_SCRATCH_BUDGET = 8192


#: snn_lif_t's constant vectors, in the IntLIF fields' order
LIF_VECS = ("threshold", "bias", "reset_value", "v_init", "level")


# ------------------------------------------------------------------------ C spelling
def c_ident(index: int, name: str) -> str:
    """Deterministic, unique C identifier for the node at position ``index``."""
    return f"L{index:03d}_" + re.sub(r"[^0-9A-Za-z_]", "_", name)[:48]


def c_comment(text: str) -> str:
    """Text safe inside /* */: printable ASCII, no comment end, no trigraphs."""
    s = "".join(ch if " " <= ch <= "~" else "?" for ch in str(text))
    return s.replace("*/", "*_/").replace("??", "?_?")


def c_string(text: str) -> str:
    """A C string literal body for ``text`` (UTF-8; octal escapes; no trigraphs)."""
    out = []
    for b in str(text).encode("utf-8"):
        ch = chr(b)
        if ch in "\\\"?":
            out.append("\\" + ch)
        elif 32 <= b < 127:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


def c_int(v: int) -> str:
    v = int(v)
    return "(-9223372036854775807 - 1)" if v == -(1 << 63) else str(v)


def _rows(items: list[str], per_row: int) -> list[str]:
    return [", ".join(items[i:i + per_row]) for i in range(0, len(items), per_row)]


def type_for(lo: int, hi: int) -> int:
    """Index of the narrowest signed type holding [lo, hi]."""
    for t, bits in enumerate((8, 16, 32, 64)):
        if -(1 << (bits - 1)) <= lo and hi < (1 << (bits - 1)):
            return t
    raise SnnccError(f"values in [{lo}, {hi}] do not fit in 64 bits")


def pack_weights(w: np.ndarray, bits: int) -> bytes:
    """``bits``-bit two's complement, little-endian bit order (see snncc_rt.h)."""
    flat = np.ascontiguousarray(w, dtype=np.int64).reshape(-1)
    raw = (flat.view(np.uint64) & np.uint64((1 << bits) - 1)).astype("<u8")
    allbits = np.unpackbits(raw.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    return np.packbits(allbits[:, :bits].reshape(-1), bitorder="little").tobytes()


# ------------------------------------------------------------------- value bounds
class _CBounds:
    """The C target's reading of the one bounds analysis (``snncc.ir.bounds.Bounds``):
    per tensor its [lo, hi]; per synapse whether it needs an int64 accumulator, the range
    of every weight, input and partial sum (the accumulator type) and its input range;
    per neuron the |u| and |v| it carries. Refuses values beyond exact int64 arithmetic."""

    def __init__(self, graph: Graph) -> None:
        b = Bounds(graph)
        self.iv = {n: (iv.lo, iv.hi) for n, iv in b.iv.items()}
        self.acc64: dict[str, bool] = {}
        self.acc_iv: dict[str, tuple[int, int]] = {}
        self.syn_in: dict[str, tuple[int, int, int]] = {}
        self.state: dict[str, tuple[int | None, int | None]] = {}
        for name, op in graph.items():
            if role(op) == "synapse":
                self._synapse(name, op, b.input_of(name), b.acc[name])
            if role(op) == "neuron":
                self.state[name] = b.neuron(name)
            lo, hi = self.iv[name]
            _check(max(-lo, hi) < 1 << 62, f"{name}: values may reach [{lo}, {hi}], beyond exact int64 arithmetic")

    def _synapse(self, name, op, x, acc) -> None:
        w = op.weight
        wmax = int(np.abs(w).max()) if w.size else 0
        self.acc64[name] = max(-acc.lo, acc.hi) > I32_MAX or max(-x.lo, x.hi) > I32_MAX
        self.acc_iv[name] = (min(acc.lo, x.lo, -wmax), max(acc.hi, x.hi, wmax))
        self.syn_in[name] = (x.lo, x.hi, wmax)
        lo, hi = shift(acc.lo, op.weight_exp), shift(acc.hi, op.weight_exp)
        _check(max(-lo, hi) < 1 << 62, f"{name}: values may reach [{lo}, {hi}], beyond exact int64 arithmetic")


# ---------------------------------------------------------------------------- planning
def _dims(shape: tuple) -> tuple[int, int, int]:
    if len(shape) == 1:
        return shape[0], 1, 1
    if len(shape) == 3:
        return tuple(shape)
    raise SnnccError(f"the C target supports tensors of shape (N,) or (C, H, W), got {shape}")


def _tensor(cname: str, shape: tuple, t: int, buf: str | None = None) -> dict:
    c, h, w = _dims(shape)
    return {"cname": cname, "buf": buf or cname.removesuffix("_t") + "_buf", "own": buf is None, "ctype": CTYPES[t],
            "enum": ENUMS[t], "type": t, "c": c, "h": h, "w": w, "n": c * h * w, "shape": list(shape)}


def _vec(cname: str, a: np.ndarray) -> dict:
    vals = [int(v) for v in np.asarray(a).reshape(-1)]
    t = type_for(min(vals), max(vals))
    return {"cname": cname, "ctype": CTYPES[t], "enum": ENUMS[t], "n": len(vals),
            "rows": _rows([c_int(v) for v in vals], 16), "bytes": len(vals) << t}


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise SnnccError(msg)


class _Plan:
    """Walks the graph once: a tensor descriptor per node and a layer record per
    computing node (through the lowering table LOWER); then the probes, the scratch
    buffers and the sizes."""

    def __init__(self, graph: Graph) -> None:
        verify(graph, "int", after="(C target)")
        self.graph = graph
        self.shapes = graph.shapes()
        self.bounds = _CBounds(graph)
        self.cnames = {n: c_ident(i, n) for i, n in enumerate(graph.order())}
        self.tensors: dict[str, dict] = {}
        self.layers: list[dict] = []

    def layer(self, name: str, op) -> dict:
        """The common layer record; its output tensor aliases the input's buffer for Flatten."""
        c, ins = self.cnames[name], self.graph.inputs(name)
        t = 0 if role(op) == "neuron" else type_for(*self.bounds.iv[name])
        alias = self.tensors[ins[0]]["buf"] if role(op) == "reshape" else None
        if alias is not None:
            t = self.tensors[ins[0]]["type"]
        out = self.tensors[name] = _tensor(f"{c}_t", self.shapes[name], t, alias)
        return {"name": name, "comment": c_comment(name), "cstr": c_string(name), "cname": c,
                "kind": op.kind, "enum": KIND_ENUM[op.kind], "out": out,
                "inputs": [self.tensors[s]["cname"] for s in ins], "delay": None, "params": None,
                "weights": None, "lif": None, "info": _describe(op)}

    # ---- lowering, one method per IR kind
    def synapse(self, name: str, op, L: dict) -> None:
        b = self.bounds
        L.update(_synapse(name, op, L["cname"], self.tensors[self.graph.inputs(name)[0]], b.acc64[name],
                          b.acc_iv[name], b.syn_in[name], L["out"]))

    def pool(self, name: str, op, L: dict) -> None:
        _check(len(self.shapes[self.graph.inputs(name)[0]]) == 3, f"{name}: pooling needs a (C, H, W) input")
        vals = (*op.kernel, *op.stride, *op.padding)
        L["params"] = {"cname": f"{L['cname']}_p", "ctype": "snn_pool_t",
                       "fields": list(zip(("kh", "kw", "sh", "sw", "ph", "pw"), (str(int(v)) for v in vals)))}

    def lif(self, name: str, op, L: dict) -> None:
        L["lif"] = _lif(name, op, L["cname"], self.shapes[name], self.bounds.state[name])
        L["params"] = {"cname": f"{L['cname']}_p", "ctype": "snn_lif_t", "fields": L["lif"]["fields"]}

    def passthrough(self, name: str, op, L: dict) -> None:
        """Flatten (a view of its input's buffer) and Add (the runtime sums the inputs)."""

    def data(self) -> dict:
        g = self.graph
        inp = g.node(g.input_name)
        _check(inp.encoding == "spikes" or 1 <= inp.bits <= 31, f"input bits must be 1..31, got {inp.bits}")
        for name, op in g.items():
            _check(all(d > 0 for d in self.shapes[name]), f"{name}: empty tensor of shape {self.shapes[name]}")
            if role(op) == "input":
                self.tensors[name] = _tensor(f"{self.cnames[name]}_t", self.shapes[name],
                                             type_for(*self.bounds.iv[name]))
                continue
            if op.kind not in LOWER:
                raise SnnccError(f"{name}: the C target has no kernel for {op.kind}")
            L = self.layer(name, op)
            LOWER[op.kind](self, name, op, L)
            self.layers.append(L)
        _check(bool(self.layers), "the graph has no layer to compute")
        probes = _probes(g, self.layers, self.tensors)
        scratch = _scratch(self.layers)
        return {
            "graph_name": c_comment(g.meta.get("name", "model")),
            "input": self.tensors[g.input_name] | {"name": g.input_name, "comment": c_comment(g.input_name),
                                                   "encoding": inp.encoding, "bits": int(inp.bits)},
            "layers": self.layers, "probes": probes, "steps": int(g.meta.get("steps", 1)),
            "outputs": list(g.outputs), "scratch": scratch,
            "step_bytes": max(1, sum(q["tensor"]["n"] << q["tensor"]["type"] for q in probes)),
            "sizes": _sizes(self.layers, self.tensors, scratch),
        }


#: IR kind -> its layer record (the runtime's kernel is KIND_ENUM[kind])
LOWER = {"IntConv": _Plan.synapse, "IntDense": _Plan.synapse, "SumPool": _Plan.pool, "MaxPool": _Plan.pool,
         "IntLIF": _Plan.lif, "Flatten": _Plan.passthrough, "Add": _Plan.passthrough}


def plan(graph: Graph) -> dict:
    """Everything the templates and the manifest need, as plain data."""
    return _Plan(graph).data()


def _probes(graph: Graph, layers: list[dict], tensors: dict) -> list[dict]:
    """The tensors a harness reads after each step, in the reference interpreter's order."""
    probes = []
    for L in layers:
        if L["lif"] is not None:
            probes.append({"key": L["name"], "tensor": L["out"], "state": False})
            probes.append({"key": L["name"] + "/v", "tensor": L["lif"]["v"], "state": True})
            if L["lif"]["u"] is not None:
                probes.append({"key": L["name"] + "/u", "tensor": L["lif"]["u"], "state": True})
    for o in graph.outputs:
        op = graph.node(o)
        src = next((L for L in layers if L["name"] == o), None)
        t = src["lif"]["v"] if isinstance(op, IntLIF) and not op.fires else tensors[o]
        probes.append({"key": "output", "tensor": t, "state": False})
    for p in probes:
        p["cstr"] = c_string(p["key"])
        p["comment"] = c_comment(p["key"])
    return probes


def _sizes(layers: list[dict], tensors: dict, scratch: list[dict]) -> dict:
    """Bytes of weights, neuron state (and delay lines), activations, constants, scratch."""
    state_bytes = sum((t["n"] << t["type"]) for L in layers if L["lif"]
                      for t in (L["lif"]["u"], L["lif"]["v"], L["lif"]["keep"]) if t is not None)
    state_bytes += sum(L["delay"]["depth"] * (L["out"]["n"] << L["out"]["type"]) for L in layers if L["delay"])
    return {"weights_bits": sum(L["weights"]["count"] * L["weights"]["bits"] for L in layers if L["weights"]),
            "weights_bytes": sum(L["weights"]["bytes"] for L in layers if L["weights"]),
            "state_bytes": state_bytes,
            "activation_bytes": sum(t["n"] << t["type"] for t in tensors.values() if t["own"]),
            "constant_bytes": sum(v["bytes"] for L in layers if L["lif"] for v in L["lif"]["consts"]),
            "scratch_bytes": sum(b["bytes"] for b in scratch)}


SCRATCH_NZ = "snn_scratch_nz"


def _scratch_acc(t: int) -> str:
    return f"snn_scratch_acc_i{8 << t}"


def _scratch_w(t: int) -> str:
    return f"snn_scratch_w_i{8 << t}"


def _scratch(layers: list[dict]) -> list[dict]:
    """The static scratch buffers the synapse kernels share (one layer runs at a time):
    the nonzero positions of an input row (conv) or vector (dense), and per conv
    accumulator type the (H, W, O) sums and one input channel's decoded weights."""
    need: dict[str, tuple[int, int]] = {}  # cname -> (type, elements)

    def want(cname, t, n):
        need[cname] = (t, max(n, need.get(cname, (t, 0))[1]))

    for L in layers:
        if L["kind"] == "IntConv" and L["scratch"] is not None:
            s = L["scratch"]
            want(SCRATCH_NZ, 2, s["nz"])
            want(_scratch_acc(s["acc"]), s["acc"], s["acc_n"])
            want(_scratch_w(s["wt"]), s["wt"], s["w_n"])
        elif L["kind"] == "IntDense":
            want(SCRATCH_NZ, 2, L["scratch"]["nz"])
    return [{"cname": k, "ctype": CTYPES[t], "n": n, "bytes": n << t} for k, (t, n) in sorted(need.items())]


def _describe(op) -> str:
    skip = {"weight", "scale", "source"}
    parts = [f"{k}={v}" for k, v in sorted(op.params().items()) if k not in skip]
    for k, a in sorted(op.arrays().items()):
        if k not in skip and (k != "u_bias" or a.any()):
            parts.append(f"{k}={a.tolist() if a.size <= 4 else f'<{a.size} values>'}")
    return c_comment(", ".join(parts))


def _synapse(name: str, op, c: str, x: dict, acc64: bool, acc_iv: tuple[int, int], syn_in: tuple[int, int, int],
             y: dict) -> dict:
    bits = int(op.weight_bits)
    _check(1 <= bits <= 32, f"{name}: the C target packs weights of 1..32 bits, got {bits}")
    _check(-62 <= op.weight_exp <= 62, f"{name}: weight_exp {op.weight_exp} out of range")
    acc64 = acc64 or x["type"] == 3
    out_bits = int(op.out_bits)
    _check(0 <= out_bits <= 62, f"{name}: out_bits {out_bits} must be 0..62")
    weight = op.weight
    if op.kind == "IntConv":
        _check(len(x["shape"]) == 3, f"{name}: conv needs a (C, H, W) input")
        o, cg, kh, kw = op.weight.shape
        _check(cg * op.groups == x["c"] and o % op.groups == 0,
               f"{name}: weight {op.weight.shape} does not match {x['c']} input channels in {op.groups} groups")
        # packed input channel first, (C, kH, kW, O/groups): the runtime's scatter reads one run per channel
        weight = weight.reshape(op.groups, o // op.groups, cg, kh, kw).transpose(0, 2, 3, 4, 1)
    else:
        _check(op.weight.shape[1] == x["n"], f"{name}: weight {op.weight.shape} does not match {x['n']} inputs")
    packed = pack_weights(weight, bits)
    w = {"cname": f"{c}_w", "bits": bits, "count": int(op.weight.size), "bytes": len(packed),
         "rows": _rows([f"0x{b:02x}" for b in packed], 16)}
    if op.kind == "IntConv":
        acc = max(1, type_for(*acc_iv))  # int16 at least: holds every weight, input value and partial sum
        lo, hi, wmax = syn_in
        # the runtime has int16/int16, int32/int16 (a widening multiply-add) and int64/int64 kernels for
        # (sums, decoded weights): int32 sums need weights and inputs in int16, else they go int64
        if acc == 2 and type_for(min(lo, -wmax), max(hi, wmax)) > 1:
            acc = 3
        wt = 1 if acc <= 2 else 3
        geometry = zip(("kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "groups"),
                       (kh, kw, *op.stride, *op.padding, *op.dilation, op.groups))
        fields = [("w", w["cname"]), ("bits", bits), ("exp", op.weight_exp), ("acc", ENUMS[acc]),
                  ("wtype", ENUMS[wt]), ("out_bits", out_bits), *((k, int(v)) for k, v in geometry)]
        # the runtime's is_channel_scale(): a depthwise 1x1 conv is a per-channel scale, without scratch
        if (kh, kw, *op.stride, *op.padding) == (1, 1, 1, 1, 0, 0) and cg == 1 and o == op.groups:
            scratch = None
            fields += [("band", 0), ("acc_buf", 0), ("w_buf", 0), ("nz", 0)]
        else:  # output rows per accumulator band: within ACC_SCRATCH_BUDGET, at least one row
            row = y["w"] * y["c"]
            band = max(1, min(y["h"], ACC_SCRATCH_BUDGET // (row << acc)))
            scratch = {"acc": acc, "wt": wt, "acc_n": band * row, "w_n": kh * kw * (o // op.groups), "nz": x["w"]}
            fields += [("band", band), ("acc_buf", _scratch_acc(acc)), ("w_buf", _scratch_w(wt)), ("nz", SCRATCH_NZ)]
        params = {"cname": f"{c}_p", "ctype": "snn_conv_t", "fields": [(k, str(v)) for k, v in fields]}
        acc_name = CTYPES[acc].removesuffix("_t")
    else:
        fields = [("w", w["cname"]), ("bits", bits), ("exp", op.weight_exp), ("acc64", int(acc64)),
                  ("out_bits", out_bits), ("nz", SCRATCH_NZ)]
        params = {"cname": f"{c}_p", "ctype": "snn_dense_t", "fields": [(k, str(v)) for k, v in fields]}
        scratch = {"nz": x["n"]}
        acc_name = "int64" if acc64 else "int32"
    delay = {"depth": int(op.delay), "buf": f"{c}_ring", "cname": f"{c}_delay"} if op.delay > 0 else None
    return {"weights": w, "params": params, "delay": delay, "acc": acc_name, "scratch": scratch}


def _lif(name: str, op: IntLIF, c: str, shape: tuple, state: tuple) -> dict:
    _check(1 <= op.u_bits <= 62 and 1 <= op.v_bits <= 62, f"{name}: u_bits/v_bits must be 1..62")
    _check(0 <= op.act_shift <= 62, f"{name}: act_shift {op.act_shift} must be 0..62")
    u_b, v_b = state
    for f, b in (("u", u_b), ("v", v_b)):
        _check(b is None or b < SAFE, f"{name}: {f} may reach {b}, beyond exact int64 arithmetic")
    u = None if op.du == DECAY_ONE else _tensor(f"{c}_u", shape, 3 if u_b is None else type_for(-u_b, u_b))
    v = _tensor(f"{c}_v", shape, 3 if v_b is None else type_for(-v_b, v_b))
    consts = [_vec(f"{c}_{f}", getattr(op, f)) for f in ("threshold", "bias", "reset_value", "v_init", "state_level")]
    scal = (op.du, op.dv, op.act_shift, op.u_bits, OVERFLOWS.index(op.u_overflow), op.v_bits,
            OVERFLOWS.index(op.v_overflow), RESETS.index(op.reset), STATE_QUANTS.index(op.state_quant), int(op.fires))
    _check(0 <= op.reset_interval < 1 << 31, f"{name}: reset_interval {op.reset_interval} must be 0..2^31-1")
    fields = [*zip(("du", "dv", "act_shift", "u_bits", "u_ovf", "v_bits", "v_ovf", "reset", "quant", "fires"),
                   (str(int(x)) for x in scal)),
              *((f, f"{{ .data = {v['cname']}, .type = {v['enum']}, .n = {v['n']} }}")
                for f, v in zip(LIF_VECS, consts)),
              ("u", "&" + u["cname"] if u else "0"), ("v", "&" + v["cname"]),
              ("reset_interval", str(int(op.reset_interval))), ("reset_offset", str(int(op.reset_offset)))]
    if op.u_bias.any():  # omitted: a zero-initialized vector of n == 0, no constant current
        ub = _vec(f"{c}_u_bias", op.u_bias)
        consts.append(ub)
        fields.append(("u_bias", f"{{ .data = {ub['cname']}, .type = {ub['enum']}, .n = {ub['n']} }}"))
    keep = None
    if op.presim:  # TNP (omitted without: presim 0, no keep tensor)
        _check(0 < op.presim < 1 << 31, f"{name}: presim {op.presim} must be 1..2^31-1")
        pl = _vec(f"{c}_prune_level", op.prune_level)
        keep = _tensor(f"{c}_keep", shape, 0) if op.fires else None
        consts.append(pl)
        fields += [("presim", str(int(op.presim))),
                   ("prune_level", f"{{ .data = {pl['cname']}, .type = {pl['enum']}, .n = {pl['n']} }}"),
                   ("keep", "&" + keep["cname"] if keep else "0")]
    return {"u": u, "v": v, "keep": keep, "consts": consts, "fields": fields}


# ------------------------------------------------------------------------------ emit
def _env():
    import jinja2  # imported here: `import snncc` stays light

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                              autoescape=False)


def manifest(p: dict) -> dict:
    """The machine-readable summary written as c_manifest.json (read by runner.simulate)."""
    inp = p["input"]
    return {
        "format": "snncc-c", "version": 1, "binary": BINARY, "steps": p["steps"], "outputs": p["outputs"],
        "input": {"name": inp["name"], "shape": inp["shape"], "encoding": inp["encoding"], "bits": inp["bits"],
                  "dtype": CTYPES[inp["type"]]},
        "probes": [{"key": q["key"], "shape": q["tensor"]["shape"], "dtype": NPTYPES[q["tensor"]["type"]],
                    "state": q["state"]} for q in p["probes"]],
        "layers": [{"name": L["name"], "cname": L["cname"], "kind": L["kind"], "out_dtype": L["out"]["ctype"],
                    "acc": L.get("acc"), "delay": L["delay"]["depth"] if L["delay"] else 0,
                    "weight_bits": L["weights"]["bits"] if L["weights"] else None,
                    "weights": L["weights"]["count"] if L["weights"] else 0,
                    "weights_bytes": L["weights"]["bytes"] if L["weights"] else 0,
                    "u_dtype": L["lif"]["u"]["ctype"] if L["lif"] and L["lif"]["u"] else None,
                    "v_dtype": L["lif"]["v"]["ctype"] if L["lif"] else None} for L in p["layers"]],
        **p["sizes"],
    }


def emit(graph: Graph, out_dir: str | Path) -> list[Path]:
    """Write a standalone C99 project for ``graph`` into ``out_dir``; returns the files."""
    from ... import runtime

    p = plan(graph)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = _env()
    texts = {f: env.get_template(f + ".j2").render(**p) for f in ("model.h", "model.c")}
    texts[MANIFEST] = json.dumps(manifest(p), sort_keys=True, indent=1) + "\n"
    written = []
    for fname, text in sorted(texts.items()):
        (out / fname).write_text(text)
        written.append(out / fname)
    for src in (runtime.ROOT / "include" / "snncc_rt.h", runtime.ROOT / "src" / "snncc_rt.c",
                runtime.ROOT / "harness" / "main.c", runtime.ROOT / "harness" / "Makefile"):
        shutil.copyfile(src, out / src.name)
        written.append(out / src.name)
    return sorted(written)
