"""C99 emitter: an integer graph -> a standalone C project (model.c/.h, main.c, Makefile,
the runtime library) that reproduces ``snncc.reference.interpreter.run`` bit for bit.

``plan(graph)`` turns the graph into plain data, in four decisions (snncc_rt.h and
DEVELOPERS.md describe the runtime side):

1. **Fusion.** A synapse (no delay) whose only reader is a neuron layer, directly or
   through an Add whose only reader is that neuron, is computed inside the neuron
   layer, tile by tile: its result is never stored. Everything else that is read
   later is stored.
2. **Formats.** Every stored tensor gets the narrowest storage format that holds every
   value the one bounds analysis (``snncc.ir.bounds``) allows: bits for spikes,
   nibbles for small counts, 8/16/24/32/64 bits otherwise, ternary/binary membrane
   codes as bit planes. Tensors are channel-last; a dense synapse reading a (C, H, W)
   tensor gets its weight rows permuted to that storage order, so Flatten is free.
3. **Tiles and types.** Each layer with synapses runs in tiles of output rows (conv) or
   outputs (dense) whose accumulator fits the plan's budget (``lowering.scratch_budget``:
   a share of the model's state bytes, at least ``ACC_SCRATCH_MIN``), in the narrowest of
   int16/32/64 that holds every partial sum; a neuron layer of row-by-row event
   scatters uses a line buffer of kh rows instead (``lowering.ring_rows``); a neuron
   update runs in int32 where every intermediate provably fits, else int64.
4. **The arena.** Buffers that live only within a step (the input, stored
   intermediate results, all scratch) get offsets in one static arena (``arena.plan``);
   state, spikes, delay lines live in their own static arrays. A state buffer only the
   state probes read (u of a du = 4096 neuron on Lava's schedule: ``ops.probed_only_u``)
   is declared only under ``-DSNNCC_PROBE_STATE`` (the harness ``snncc_model_probe``),
   so the build a user deploys does not hold it; the sizes count it apart
   (``probe_state_bytes``).

The Jinja2 templates in ``templates/`` lay that data out; all behaviour lives in the
runtime (``runtime/src/snncc_rt.c``). Output is deterministic: graph order, sorted
JSON, no timestamps.
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
from ...ops.neurons import I32_MAX, SAFE, overflow_magnitude
from . import arena
from .cspell import _check, _rows, c_comment, c_ident, c_int, c_string, pack_weights, type_for
from .formats import CTYPE_BYTES, IO_DTYPES, IO_ENUMS, Format, elements, fmt_for, nbytes
from .lowering import ACC_SCRATCH_MIN, CACHE_MACRO, LOWER, PROBE_MACRO, scratch_budget

TEMPLATES = Path(__file__).resolve().parent / "templates"
BINARY = "snncc_model"
BINARY_ASAN = "snncc_model_asan"
#: the harness built with -DSNNCC_PROBE_STATE (a model with probe-only state: its u probes)
BINARY_PROBE = "snncc_model_probe"
BINARY_PROBE_ASAN = "snncc_model_probe_asan"
SOURCES = ("main.c", "model.c", "snncc_rt.c")
MANIFEST = "c_manifest.json"
#: the build each macro a buffer may be declared under names (model.c's comments)
BUILD_ONLY = {PROBE_MACRO: "state-probing", CACHE_MACRO: "input-cache"}

# scalar types, index = the runtime's SNN_I8 .. SNN_I64
CTYPES = ("int8_t", "int16_t", "int32_t", "int64_t")
ENUMS = ("SNN_I8", "SNN_I16", "SNN_I32", "SNN_I64")
NPTYPES = IO_DTYPES
KIND_ENUM = {"IntConv": "SNN_CONV", "IntDense": "SNN_DENSE", "SumPool": "SNN_SUMPOOL", "MaxPool": "SNN_MAXPOOL",
             "Flatten": "SNN_FLATTEN", "Add": "SNN_ADD", "IntLIF": "SNN_LIF"}
# ------------------------------------------------------------------- value bounds
class _CBounds:
    """The C target's reading of the one bounds analysis (``snncc.ir.bounds.Bounds``):
    per tensor its [lo, hi]; per synapse the interval of every partial sum of its
    accumulation (widened to hold each input value and weight, which the runtime casts
    to the accumulator type); per neuron the |u| and |v| it carries. Refuses values
    beyond exact int64 arithmetic."""

    def __init__(self, graph: Graph) -> None:
        b = Bounds(graph)
        self.iv = {n: (iv.lo, iv.hi) for n, iv in b.iv.items()}
        self.acc_iv: dict[str, tuple[int, int]] = {}
        self.state: dict[str, tuple[int | None, int | None]] = {}
        self.a_mag: dict[str, int] = {}
        for name, op in graph.items():
            if role(op) == "synapse":
                self._synapse(name, op, b.input_of(name), b.acc[name])
            if role(op) == "neuron":
                self.state[name] = b.neuron(name)
                self.a_mag[name] = b.input_of(name).mag
            lo, hi = self.iv[name]
            _check(max(-lo, hi) < 1 << 62, f"{name}: values may reach [{lo}, {hi}], beyond exact int64 arithmetic")

    def _synapse(self, name, op, x, acc) -> None:
        w = op.weight
        wmax = int(np.abs(w).max()) if w.size else 0
        self.acc_iv[name] = (min(acc.lo, x.lo, -wmax), max(acc.hi, x.hi, wmax))
        lo, hi = shift(acc.lo, op.weight_exp), shift(acc.hi, op.weight_exp)
        _check(max(-lo, hi) < 1 << 62, f"{name}: values may reach [{lo}, {hi}], beyond exact int64 arithmetic")


# ---------------------------------------------------------------------------- tensors
def _dims(shape: tuple) -> tuple[int, int, int]:
    if len(shape) == 1:
        return shape[0], 1, 1
    if len(shape) == 3:
        return tuple(shape)
    raise SnnccError(f"the C target supports tensors of shape (N,) or (C, H, W), got {shape}")


def _tensor(cname: str, shape: tuple, fmt: Format, buf: str, order: tuple | None,
            probed_only: bool = False) -> dict:
    """A tensor descriptor: ``buf`` names its buffer; ``order`` is the (C, H, W) shape whose
    channel-last order its elements are stored in (None: plain order); ``probed_only``: it
    exists only in the state-probing build."""
    c, h, w = _dims(shape)
    return {"cname": cname, "buf": buf, "fmt": fmt, "enum": fmt.enum, "c": c, "h": h, "w": w, "n": c * h * w,
            "bytes": nbytes(fmt, c * h * w), "shape": list(shape), "order": order, "probed_only": probed_only}


def _hwc(shape: tuple) -> tuple | None:
    """The (C, H, W) shape if channel-last storage differs from (C, H, W) order."""
    return tuple(shape) if len(shape) == 3 and shape[0] > 1 and shape[1] * shape[2] > 1 else None


class _Plan:
    """Walks the graph once: fusion groups, a tensor per stored node, a layer record per
    computing node (through the lowering table LOWER); then the arena, the probes and
    the sizes."""

    def __init__(self, graph: Graph) -> None:
        verify(graph, "int", after="(C target)")
        self.graph = graph
        self.shapes = graph.shapes()
        self.bounds = _CBounds(graph)
        self.cnames = {n: c_ident(i, n) for i, n in enumerate(graph.order())}
        self.tensors: dict[str, dict] = {}
        self.layers: list[dict] = []
        self.fused: dict[str, str] = {}      # synapse / add -> the neuron computing it
        self.groups: dict[str, dict] = {}    # neuron -> {"syn": [...], "in": [...]}
        self.buffers: dict[str, dict] = {}   # buffer name -> {"size", "arena", "first", "last", "ctype"}
        self.consts: dict[tuple, dict] = {}  # (ctype, values) -> array record (shared)
        self.structs: list[dict] = []        # C objects in declaration order
        self._fusion()
        self.acc_budget, self.lif_chunk = scratch_budget(self)  # bytes per tile, elements per neuron chunk

    # ---- 1. fusion
    def _sole(self, name: str) -> bool:
        return len(self.graph.users(name)) == 1 and name not in self.graph.outputs

    def _fusible(self, name: str, alone: bool) -> bool:
        op = self.graph.node(name)
        return (role(op) == "synapse" and op.delay == 0 and self._sole(name)
                and (alone or (op.weight_exp == 0 and op.out_bits == 0)))

    def _fusion(self) -> None:
        g = self.graph
        for name, op in g.items():
            if role(op) != "neuron":
                continue
            src = g.inputs(name)[0]
            if self._fusible(src, alone=True):
                group = {"syn": [src], "in": []}
            elif role(g.node(src)) == "add" and self._sole(src):
                syns = [s for s in g.inputs(src) if self._fusible(s, alone=False)]
                group = {"syn": syns, "in": [s for s in g.inputs(src) if s not in syns]}
                self.fused[src] = name
            else:
                group = {"syn": [], "in": [src]}
            kinds = {g.node(s).kind for s in group["syn"]}
            if len(kinds) > 1:  # conv and dense into one add: not possible with equal shapes
                group = {"syn": [], "in": [src]}
                self.fused.pop(src, None)
            for s in group["syn"]:
                self.fused[s] = name
            self.groups[name] = group

    # ---- buffers and tensors
    def buffer(self, name: str, size: int, ctype: str, persistent: bool, layer: int,
               only: str | None = None) -> str:
        """A buffer: static (``persistent``: it outlives a step) or in the arena, live from
        ``layer`` on; ``only``: static, declared only in a build defining that macro
        (PROBE_MACRO, CACHE_MACRO; None: every build). Returns a reference the struct
        fields and tensors resolve later."""
        count = elements(ctype, size)
        if persistent:  # a static array holds whole elements: what model.o holds, what the sizes count
            size = count * CTYPE_BYTES[ctype]
        self.buffers[name] = {"size": size, "ctype": ctype, "arena": not persistent, "first": layer,
                              "last": layer, "count": count, "only": only}
        return "@" + name

    def read(self, node: str, layer: int) -> None:
        """Layer ``layer`` reads the tensor of ``node``: its buffer lives until then."""
        b = self.buffers[self.tensors[node]["buf"]]
        b["last"] = max(b["last"], layer)

    def stored_as(self, name: str, cname: str, shape: tuple, fmt: Format, layer: int,
                  persistent: bool = True, probed_only: bool = False) -> dict:
        t = _tensor(cname + "_t", shape, fmt, cname, _hwc(shape), probed_only)
        self.buffer(cname, t["bytes"], fmt.ctype, persistent, layer, PROBE_MACRO if probed_only else None)
        return t

    def stored(self, name: str, lo_hi: tuple[int, int], layer: int) -> dict:
        """The tensor of node ``name`` in the narrowest format for its values, in the arena
        (the network output: live until the harness has read it after the step)."""
        t = self.stored_as(name, f"{self.cnames[name]}_buf", self.shapes[name], fmt_for(*lo_hi), layer, False)
        t["cname"] = f"{self.cnames[name]}_t"
        if name in self.graph.outputs:
            self.buffers[t["buf"]]["last"] = 1 << 30
        self.tensors[name] = t
        return t

    def scratch(self, L: dict, what: str, size: int) -> str:
        """A buffer live only while layer L runs."""
        return self.buffer(f"{L['cname']}_{what}", size, "int64_t", False, L["index"])

    def const(self, values, wide: bool) -> str | None:
        """A per-channel constant array (int32_t or int64_t), shared between layers."""
        if values is None:
            return None
        return self.typed_const(values, CTYPES.index("int64_t" if wide else "int32_t"))

    def typed_const(self, values, t: int) -> str:
        """A constant array of CTYPES[t] (the values fit it), shared between layers."""
        vals = tuple(int(v) for v in np.asarray(values).reshape(-1))
        key = (CTYPES[t], vals)
        if key not in self.consts:
            self.consts[key] = {"cname": f"snn_const_{len(self.consts)}", "ctype": CTYPES[t], "n": len(vals),
                                "rows": _rows([c_int(v) for v in vals], 12), "bytes": len(vals) << t}
        return self.consts[key]["cname"]

    def struct(self, ctype: str, cname: str, fields: list[tuple[str, object]], mutable: bool = False,
               only: str | None = None) -> str:
        """A struct; ``only``: a macro it is declared under (#ifdef)."""
        self.structs.append({"ctype": ctype, "cname": cname, "fields": [(k, str(v)) for k, v in fields],
                             "mutable": mutable, "only": only})
        return "&" + cname

    def address(self, ref: str) -> str:
        """The C address of a buffer reference ("@name"); other values unchanged."""
        if not ref.startswith("@"):
            return ref
        b = self.buffers[ref[1:]]
        return f"SNN_ARENA({b['offset']})" if b["arena"] else ref[1:]

    # ---- layers
    def layer(self, name: str, op, kind: str | None = None) -> dict:
        L = {"name": name, "comment": c_comment(name), "cstr": c_string(name), "cname": self.cnames[name],
             "kind": kind or op.kind, "enum": KIND_ENUM[kind or op.kind], "index": len(self.layers), "in": [],
             "syn": [], "p": "0", "tile": "0", "delay": None, "info": _describe(op), "out": None, "acc": None,
             "weights": [], "fused": [], "input_cache": False}
        self.layers.append(L)
        return L

    def data(self) -> dict:
        g = self.graph
        inp = g.node(g.input_name)
        _check(inp.encoding == "spikes" or 1 <= inp.bits <= 31, f"input bits must be 1..31, got {inp.bits}")
        for name, op in g.items():
            _check(all(d > 0 for d in self.shapes[name]), f"{name}: empty tensor of shape {self.shapes[name]}")
            if role(op) == "input":
                self.stored(name, self.bounds.iv[name], -1)
                continue
            if op.kind not in LOWER:
                raise SnnccError(f"{name}: the C target has no kernel for {op.kind}")
            if name in self.fused:
                continue  # computed inside its neuron layer
            LOWER[op.kind](self, name, op)
        _check(bool(self.layers), "the graph has no layer to compute")
        return self._finish()

    def _finish(self) -> dict:
        g = self.graph
        probes = _probes(self)
        bufs = [arena.Buffer(k, b["size"], b["first"], min(b["last"], len(self.layers))) for k, b in
                sorted(self.buffers.items()) if b["arena"]]
        offsets, arena_size = arena.plan(bufs)
        for k, off in offsets.items():
            self.buffers[k]["offset"] = off
        for s in self.structs:
            s["fields"] = [(k, self.address(v)) for k, v in s["fields"]]
        tensors = [self.tensors[n] for n in g.order() if n in self.tensors]
        tensors += [t for L in self.layers if L["kind"] == "IntLIF"
                    for t in (L["lif"]["u"], L["lif"]["v"], L["lif"].get("keep")) if t]
        for t in tensors:
            t["data"] = self.address("@" + t["buf"])
        inp = self.tensors[g.input_name]
        probed_only = sum(q["probed_only"] for q in probes)  # probes of state the deployed build lacks
        return {
            "graph_name": c_comment(g.meta.get("name", "model")),
            "input": inp | {"name": g.input_name, "comment": c_comment(g.input_name),
                            "encoding": g.node(g.input_name).encoding, "bits": int(g.node(g.input_name).bits)},
            "layers": self.layers, "probes": probes, "steps": int(g.meta.get("steps", 1)),
            "n_probes": "SNNCC_N_PROBES" if probed_only else str(len(probes)),
            "n_probes_deployed": len(probes) - probed_only,
            "probe_state_bytes": sum(b["size"] for b in self.buffers.values() if b["only"] == PROBE_MACRO),
            "input_cache_bytes": sum(b["size"] for b in self.buffers.values() if b["only"] == CACHE_MACRO),
            "build_only": BUILD_ONLY,
            "outputs": list(g.outputs), "arena_size": arena_size, "arena_count": max(1, (arena_size + 7) // 8),
            "statics": [dict(b, cname=k) for k, b in sorted(self.buffers.items()) if not b["arena"]],
            "tensors": tensors, "consts": sorted(self.consts.values(), key=lambda c: int(c["cname"][10:])),
            "structs": self.structs, "weights": [w for L in self.layers for w in L["weights"]],
            "sizes": _sizes(self, arena_size, bufs),
        }


def plan(graph: Graph) -> dict:
    """Everything the templates and the manifest need, as plain data."""
    return _Plan(graph).data()


def _describe(op) -> str:
    skip = {"weight", "scale", "source"}
    parts = [f"{k}={v}" for k, v in sorted(op.params().items()) if k not in skip]
    for k, a in sorted(op.arrays().items()):
        if k not in skip and (k != "u_bias" or a.any()):
            parts.append(f"{k}={a.tolist() if a.size <= 4 else f'<{a.size} values>'}")
    return c_comment(", ".join(parts))


# ---------------------------------------------------------------------------- probes
def _probes(p: _Plan) -> list[dict]:
    """The tensors a harness reads after each step, in the reference interpreter's order."""
    probes = []
    for L in p.layers:
        if L["kind"] == "IntLIF":
            lif = L["lif"]
            probes.append({"key": L["name"], "tensor": L["out"], "state": False, "io": 0, "level": "0"})
            probes.append({"key": L["name"] + "/v", "tensor": lif["v"], "state": True, **lif["v_io"]})
            if lif["u"] is not None:
                probes.append({"key": L["name"] + "/u", "tensor": lif["u"], "state": True, **lif["u_io"]})
    for o in p.graph.outputs:
        op = p.graph.node(o)
        L = next((L for L in p.layers if L["name"] == o), None)
        if isinstance(op, IntLIF) and not op.fires:
            probes.append({"key": "output", "tensor": L["lif"]["v"], "state": False, **L["lif"]["v_io"]})
        else:
            lo, hi = p.bounds.iv[o]
            probes.append({"key": "output", "tensor": p.tensors[o], "state": False, "io": type_for(lo, hi),
                           "level": "0"})
    for q in probes:
        q.update(cstr=c_string(q["key"]), comment=c_comment(q["key"]), io_enum=IO_ENUMS[q["io"]],
                 wide=int(q.get("wide", 0)), probed_only=q["tensor"]["probed_only"])
    return probes


def _sizes(p: _Plan, arena_size: int, bufs: list) -> dict:
    """Bytes of every kind of memory the emitted model.c declares (c_manifest.json), in the
    build a user deploys (without -DSNNCC_PROBE_STATE or -DSNNCC_INPUT_CACHE)."""
    st = {k: b for k, b in p.buffers.items() if not b["arena"] and b["only"] is None}
    state = sum(b["size"] for k, b in st.items() if k.endswith(("_u", "_v", "_keep", "_ring")))
    spikes = sum(b["size"] for k, b in st.items() if k.endswith("_s"))
    return {"weights_bits": sum(w["bits"] * w["count"] for L in p.layers for w in L["weights"]),
            "weights_bytes": sum(w["bytes"] for L in p.layers for w in L["weights"]),
            "constant_bytes": sum(c["bytes"] for c in p.consts.values()),
            "state_bytes": state, "spike_bytes": spikes,
            "other_static_bytes": sum(b["size"] for b in st.values()) - state - spikes,
            "arena_bytes": arena_size, "arena_peak_bytes": arena.peak(bufs),
            "scratch_bytes": sum(b["size"] for k, b in p.buffers.items() if b["arena"] and k.endswith(
                ("_acc", "_wbuf", "_tmp")))}


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
        "format": "snncc-c", "version": 2, "binary": BINARY, "steps": p["steps"], "outputs": p["outputs"],
        "input": {"name": inp["name"], "shape": inp["shape"], "encoding": inp["encoding"], "bits": inp["bits"],
                  "format": inp["fmt"].name},
        "probes": [{"key": q["key"], "shape": q["tensor"]["shape"], "dtype": NPTYPES[q["io"]], "state": q["state"],
                    "layout": "hwc" if q["tensor"]["order"] is not None else "chw",
                    "format": q["tensor"]["fmt"].name} for q in p["probes"]],
        "layers": [_layer_summary(L) for L in p["layers"]],
        **p["sizes"],
        # only where there is any (a manifest without it: one harness serves every mode)
        **({"probe_state_bytes": p["probe_state_bytes"]} if p["probe_state_bytes"] else {}),
        **({"input_cache_bytes": p["input_cache_bytes"]} if p["input_cache_bytes"] else {}),
    }


def _layer_summary(L: dict) -> dict:
    lif = L.get("lif")
    return {"name": L["name"], "cname": L["cname"], "kind": L["kind"], "out_format": L["out"]["fmt"].name,
            "fused": L["fused"], "acc": L["acc"], "tile_rows": L.get("rows"), "tile_cols": L.get("cols"),
            "tile_ring": L.get("ring"),
            "tile_bytes": L.get("tile_bytes"), "input_cache": L["input_cache"],
            "delay": L["delay"]["depth"] if L["delay"] else 0,
            "weight_bits": [w["bits"] for w in L["weights"]], "weights": sum(w["count"] for w in L["weights"]),
            "weights_bytes": sum(w["bytes"] for w in L["weights"]),
            "u_format": lif["u"]["fmt"].name if lif and lif["u"] else None,
            "v_format": lif["v"]["fmt"].name if lif else None,
            "update": ("int64" if lif["wide"] else "int32") if lif else None,
            # (u, v) overflow as lowered: saturate where the bounds prove none ever acts
            "overflow": lif["overflow"] if lif else None}


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
    for src in runtime.FILES:
        shutil.copyfile(runtime.ROOT / src, out / Path(src).name)
        written.append(out / Path(src).name)
    return sorted(written)


__all__ = ["emit", "plan", "manifest", "pack_weights", "type_for", "c_ident", "c_comment", "c_string", "c_int",
           "LOWER", "ACC_SCRATCH_MIN"]
