"""Lava emitter: an integer graph (after ``snncc.passes.lava.LAVA_PASSES``) -> a runnable
``network.py`` built from lava-nc processes (the network's layout only), its
``params.npz``, and three static files copied beside it (``snncc_lava_runner.py``:
recording and running, from ``runner.py``; ``snncc_lava_procs.py``: custom processes;
``snncc_lava_shim.py``: the Python 3.11 import shim).

Mapping (IR -> Lava; tensors (C, H, W) -> (W, H, C)):

* IntInput   -> ``RingBuffer`` source (graded: the synapses reading it get
                ``num_message_bits`` = input bits; binary spikes: 0);
* IntConv    -> ``Conv`` (weights (O, C, kH, kW) -> Lava (O, kW, kH, C), spatially
                flipped, because Lava flips back before torch's cross-correlation;
                w << weight_exp, since Lava's Conv applies no exponent);
* IntDense   -> ``Dense`` (``check.dense_form``: 8-bit mantissa, exponent adjusted),
                ``DelayDense`` when delay > 1 (Lava delay = IR delay - 1);
* Flatten    -> a (2, 1, 0)-transposed, flattened port (PyTorch's C-major order);
* Add        -> several synapses connected to one ``a_in`` (Lava sums them); an Add of
                IntDense parts of one synapse split by delay (netx's per-neuron delays:
                same source, same exponent, each weight in one part) becomes ONE
                ``DelayDense`` with a per-weight delay matrix (one process, not one per
                delay value);
* IntLIF     -> ``LIF`` (``check.lif_form``; ``LIFReset`` with a periodic reset) or the
                custom ``SnnccLIF``;
* every IntLIF gets a ``Recorder`` (spikes; v and u when probed).
"""
from __future__ import annotations

import builtins
import importlib
import keyword
import re
import shutil
from pathlib import Path

import numpy as np

from ..._version import __version__
from ...ir.graph import Graph
from ...ops import input_range, records_u, role
from ...ir.serialize import write_npz

# the check module (the package itself exports a function named check)
C = importlib.import_module(f"{__package__}.check")
HERE = Path(__file__).resolve().parent
PROCS_FILE = "snncc_lava_procs.py"
SHIM_FILE = "snncc_lava_shim.py"
RUNNER_FILE = "snncc_lava_runner.py"


def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def _lava_shape(shape) -> tuple:
    return tuple(int(d) for d in (shape[::-1] if len(shape) == 3 else shape))


def _tup(v) -> str:
    return "(" + ", ".join(str(int(x)) for x in v) + ("," if len(v) == 1 else "") + ")"


_RESERVED = {"inp", "P", "x_lava", "np", "os", "sys", "full", "build", "run", "main", "Network", "NETWORK",
             "HERE", "INPUT_SHAPE", "INPUT_RANGE", "STEPS", "LAYERS", "OUTPUTS", "Conv", "Dense", "DelayDense",
             "LIF", "LIFReset", "RingBuffer", "SnnccLIF", "snncc_lava_shim"}


def _text(s: str) -> str:
    """A name made safe for a comment or docstring line (escapes, no quotes)."""
    return s.encode("unicode_escape").decode("ascii").replace('"', "'")


class _Names:
    """IR node name -> unique Python identifier (not a keyword, builtin or template name)."""

    def __init__(self) -> None:
        self.used: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name in self.used:
            return self.used[name]
        base = re.sub(r"\W", "_", name).strip("_") or "n"
        if base[0].isdigit() or keyword.iskeyword(base) or base in _RESERVED or hasattr(builtins, base):
            base = "l_" + base
        var, k = base, 1
        while var in self.used.values():
            var, k = f"{base}_{k}", k + 1
        self.used[name] = var
        return var


class _Plan:
    """The template's data for one graph: processes (one per synapse and neuron, through
    the lowering table LOWER), their connections as plain records, parameters in Lava
    layouts, the neuron layers and the outputs."""

    def __init__(self, graph: Graph) -> None:
        C.enforce(graph)
        self.graph = graph
        self.shapes = graph.shapes()
        self.bounds = C._value_bounds(graph)
        self.steps = int(graph.meta.get("steps", 1))
        self.names = _Names()
        self.names.used[graph.input_name] = "inp"
        self.params: dict[str, np.ndarray] = {}
        self.procs: list[dict] = []
        self.layers: list[dict] = []
        self.table: list[str] = []
        self.merged, self.folded = _delay_groups(graph)

    # ---- ports: what a synapse or neuron reads
    def port(self, src: str, dst_port: str, flatten: bool = False) -> dict:
        """A connection record from the OutPort carrying ``src`` (spikes or the input) in
        the layout of ``src``'s IR shape (flattened C-major through Flatten nodes)."""
        op = self.graph.node(src)
        if role(op) == "reshape":
            (s,) = self.graph.inputs(src)
            return self.port(s, dst_port, flatten=len(self.shapes[s]) == 3)
        return {"src": self.names(src), "src_port": "s_out", "flatten": flatten, "dst_port": dst_port}

    def message_bits(self, src: str) -> int:
        while role(self.graph.node(src)) == "reshape":
            src = self.graph.inputs(src)[0]
        op = self.graph.node(src)
        return op.bits if role(op) == "input" and op.encoding != "spikes" else 0

    def label(self, name: str, op) -> str:
        return _text(name + (f" ({op.source})" if op.source and op.source != name else ""))

    # ---- lowering, one method per IR kind
    def conv(self, name: str, op) -> None:
        var, (src,) = self.names(name), self.graph.inputs(name)
        w = C.conv_weights(op.weight, op.weight_exp)
        self.params[f"{var}.weight"] = w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1).astype(np.int32)
        self.procs.append(dict(kind="conv", var=var, comment=f"{self.label(name, op)}: IntConv {op.weight.shape}, "
                               f"delay 1", input_shape=_tup(_lava_shape(self.shapes[src])),
                               stride=_tup(op.stride[::-1]), padding=_tup(op.padding[::-1]),
                               dilation=_tup(op.dilation[::-1]), groups=op.groups,
                               message_bits=self.message_bits(src), connect=[self.port(src, "s_in")]))
        self.table.append(f"{_text(name)}: Conv {tuple(op.weight.shape)} stride {op.stride} pad {op.padding}")

    def dense(self, name: str, op) -> None:
        if name in self.folded:
            return  # one part of a synapse split by delay: in the DelayDense of its first part
        var, (src,) = self.names(name), self.graph.inputs(name)
        if name in self.merged:
            w, delays = self.merged[name]
            self.params[f"{var}.delays"] = delays
            w, e, nwb = C.dense_form(w, op.weight_exp, hardware=False)
            self.params[f"{var}.weights"] = w.astype(np.int32)
            conn = self.port(src, "s_in")
            conn["flatten"] = conn["flatten"] or len(self.shapes[src]) == 3
            self.procs.append(dict(kind="delay_dense", delays=f'P["{var}.delays"]', var=var, weight_exp=e,
                                   weight_bits=nwb, message_bits=self.message_bits(src), connect=[conn],
                                   comment=f"{self.label(name, op)} and the other parts of its synapse: "
                                           f"IntDense {w.shape}, per-weight delays 1 + {np.unique(delays).tolist()}"))
            self.table.append(f"{_text(name)}: DelayDense {tuple(w.shape)} delays {np.unique(delays).tolist()}")
            return
        w, e, nwb = C.dense_form(op.weight, op.weight_exp, hardware=False)
        self.params[f"{var}.weights"] = w.astype(np.int32)
        conn = self.port(src, "s_in")
        conn["flatten"] = conn["flatten"] or len(self.shapes[src]) == 3
        d = dict(var=var, weight_exp=e, weight_bits=nwb, message_bits=self.message_bits(src), connect=[conn])
        label = f"{self.label(name, op)}: IntDense {op.weight.shape}, delay {op.delay}"
        if op.delay == 1:
            self.procs.append(dict(kind="dense", comment=label, **d))
        else:
            self.procs.append(dict(kind="delay_dense", delays=op.delay - 1, comment=label, **d))
        self.table.append(f"{_text(name)}: Dense {tuple(op.weight.shape)} delay {op.delay}")

    def lif(self, name: str, op) -> None:
        g = self.graph
        var, (src,) = self.names(name), g.inputs(name)
        src_op = g.node(src)
        if role(src_op) == "add":
            conn = [{"src": self.names(s), "src_port": "a_out", "flatten": False, "dst_port": "a_in"}
                    for s in g.inputs(src) if s not in self.folded]
        elif role(src_op) == "synapse":
            conn = [{"src": self.names(src), "src_port": "a_out", "flatten": False, "dst_port": "a_in"}]
        else:
            conn = [self.port(src, "a_in")]
        form = C.lif_form(op, self.bounds[src], self.steps)
        shape = _lava_shape(self.shapes[name])
        if form is not None:
            self._native_lif(name, op, var, shape, form, conn)
        else:
            self._custom_lif(name, op, var, shape, conn)
        readout = not op.fires and (name in g.outputs or any(
            role(g.node(o)) == "reshape" and g.inputs(o)[0] == name for o in g.outputs))
        self.layers.append(dict(name=name, var=var, shape=_tup(self.shapes[name]), lava_shape=_tup(shape),
                                has_u=records_u(op, g.meta.get("schedule")), need_v=bool(readout)))

    def _native_lif(self, name, op, var, shape, form, conn) -> None:
        self.params[f"{var}.bias_mant"] = form.bias_mant.astype(np.int16)
        self.params[f"{var}.bias_exp"] = form.bias_exp.astype(np.int16)
        self.params[f"{var}.v_init"] = form.v_init.astype(np.int32)
        ri = op.reset_interval
        # Lava's LIFReset counts steps from 1: IR step t is its time_step t + 1
        self.procs.append(dict(kind="lif", var=var, shape=_tup(shape), du=form.du, dv=form.dv, vth=form.vth,
                               reset_interval=ri, reset_offset=(op.reset_offset + 1) % ri if ri else 0,
                               comment=f"{self.label(name, op)}: Loihi 2 CUBA LIF"
                                       + (f", reset every {ri} steps" if ri else ""), connect=conn))
        self.table.append(f"{_text(name)}: {'LIFReset' if ri else 'LIF'} {self.shapes[name]} du={form.du} "
                          f"dv={form.dv} vth={form.vth}" + (f" reset_interval={ri}" if ri else ""))

    def _custom_lif(self, name, op, var, shape, conn) -> None:
        for f in ("threshold", "bias", "reset_value", "v_init", "state_level") + (("u_bias",) if op.u_bias.any() else ()):
            self.params[f"{var}.{f}"] = np.asarray(getattr(op, f), np.int64)
        self.procs.append(dict(kind="snncc_lif", var=var, shape=_tup(shape), du=op.du, dv=op.dv,
                               act_shift=op.act_shift, reset=op.reset, state_quant=op.state_quant,
                               u_bits=op.u_bits, u_overflow=op.u_overflow, v_bits=op.v_bits,
                               v_overflow=op.v_overflow, fires=bool(op.fires),
                               reset_interval=op.reset_interval, reset_offset=op.reset_offset,
                               u_bias=bool(op.u_bias.any()),
                               comment=f"{self.label(name, op)}: SnnccLIF (simulation only: not a native "
                                       f"Loihi 2 neuron)", connect=conn))
        self.table.append(f"{_text(name)}: SnnccLIF {self.shapes[name]} (simulation only)")

    def data(self) -> dict:
        g = self.graph
        for name, op in g.items():
            lower = LOWER.get(op.kind)
            if lower is not None:
                lower(self, name, op)
        inp = g.node(g.input_name)
        outputs = []
        for o in g.outputs:
            flat_out = role(g.node(o)) == "reshape"
            base = g.inputs(o)[0] if flat_out else o
            outputs.append(dict(layer=base, what="s" if g.node(base).fires else "v", flat=flat_out))
        custom = sum(p["kind"] == "snncc_lif" for p in self.procs)
        lo, hi = input_range(inp)
        return dict(
            name=_text(str(g.meta.get("name", "network"))), version=__version__, steps=self.steps,
            input_shape=_tup(inp.shape), input_dims=", ".join(str(d) for d in inp.shape),
            input_range=f"({lo}, {hi})",
            input_kind=INPUT_KINDS[inp.encoding].format(bits=inp.bits),
            custom_note=(f"{custom} SnnccLIF layer(s), simulation only" if custom else "only Recorder is used"),
            procs=self.procs, layers=self.layers, outputs=outputs, table=self.table, params=self.params,
            resets=_tup(sorted({int(op.reset_interval) for _, op in g.items() if role(op) == "neuron"})))


def _delay_groups(graph: Graph) -> tuple[dict, set]:
    """Synapses split by delay (an Add of IntDense parts reading one source, with one
    weight exponent, each weight nonzero in at most one part, used only by the Add):
    {first part: (summed weights, per-weight extra delay)} and the other parts, which
    the first part's DelayDense replaces. Exact: each weight keeps its own delay."""
    merged, folded = {}, set()
    for name, op in graph.items():
        parts = graph.inputs(name)
        if role(op) != "add" or len(parts) < 2:
            continue
        ops = [graph.node(p) for p in parts]
        if any(o.kind != "IntDense" for o in ops) or len({graph.inputs(p)[0] for p in parts}) != 1 or \
                len({o.weight_exp for o in ops}) != 1 or len({o.weight.shape for o in ops}) != 1 or \
                any(len(graph.users(p)) != 1 for p in parts):
            continue
        if sum((o.weight != 0).astype(np.int64) for o in ops).max() > 1:
            continue
        w = sum(o.weight.astype(np.int64) for o in ops)
        if C.dense_form(w, ops[0].weight_exp, hardware=False) is None:
            continue
        merged[parts[0]] = (w, sum(np.where(o.weight != 0, o.delay - 1, 0) for o in ops).astype(np.int64))
        folded.update(parts[1:])
    return merged, folded


#: how the generated network's docstring names the input of each encoding
INPUT_KINDS = {"direct": "graded {bits}-bit input values", "spikes": "binary input spikes",
               "bias": "signed {bits}-bit bias drive of the input neurons (a_in, u = x << 6, no current memory)"}

#: IR kind -> its Lava process; the input, Flatten (a port reshape) and Add (fan-in into
#: one a_in) are connections, not processes
LOWER = {"IntConv": _Plan.conv, "IntDense": _Plan.dense, "IntLIF": _Plan.lif}


def plan(graph: Graph) -> dict:
    """The template's data: processes, connections, parameters (Lava layouts)."""
    return _Plan(graph).data()


def emit(graph: Graph, out_dir) -> list[Path]:
    """Write network.py, params.npz, snncc_lava_procs.py and snncc_lava_shim.py into
    ``out_dir``; raise ``BitWidthError`` (all problems at once) if the graph cannot be
    expressed exactly. Same graph -> byte-identical files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = plan(graph)
    params = data.pop("params")
    text = _env().get_template("network.py.j2").render(**data)
    (out / "network.py").write_text(text)
    write_npz(out / "params.npz", params)
    for src, dst in ((HERE / "procs.py", PROCS_FILE), (HERE / "_shim.py", SHIM_FILE), (HERE / "runner.py", RUNNER_FILE)):
        shutil.copyfile(src, out / dst)
    return [out / "network.py", out / "params.npz", out / PROCS_FILE, out / SHIM_FILE, out / RUNNER_FILE]
