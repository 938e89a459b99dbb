"""Lava emitter: an integer graph (after ``snncc.passes.lava.LAVA_PASSES``) -> a runnable
``network.py`` built from lava-nc processes, its ``params.npz``, and two files copied
beside it (``snncc_lava_procs.py``: custom processes; ``snncc_lava_shim.py``: the
Python 3.11 import shim).

Mapping (IR -> Lava; tensors (C, H, W) -> (W, H, C)):

* IntInput   -> ``RingBuffer`` source (graded: the synapses reading it get
                ``num_message_bits`` = input bits; binary spikes: 0);
* IntConv    -> ``Conv`` (weights (O, C, kH, kW) -> Lava (O, kW, kH, C), spatially
                flipped, because Lava flips back before torch's cross-correlation;
                w << weight_exp, since Lava's Conv applies no exponent);
* IntDense   -> ``Dense`` (``check.dense_form``: 8-bit mantissa, exponent adjusted),
                ``DelayDense`` when delay > 1 (Lava delay = IR delay - 1);
* Flatten    -> a (2, 1, 0)-transposed, flattened port (PyTorch's C-major order);
* Add        -> several synapses connected to one ``a_in`` (Lava sums them);
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

from ... import __version__
from ...ir.graph import Graph
from ...ir.serialize import write_npz

# the check module (the package itself exports a function named check)
C = importlib.import_module(f"{__package__}.check")
HERE = Path(__file__).resolve().parent
PROCS_FILE = "snncc_lava_procs.py"
SHIM_FILE = "snncc_lava_shim.py"


def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def _lava_shape(shape) -> tuple:
    return tuple(int(d) for d in (shape[::-1] if len(shape) == 3 else shape))


def _tup(v) -> str:
    return "(" + ", ".join(str(int(x)) for x in v) + ("," if len(v) == 1 else "") + ")"


_RESERVED = {"inp", "rec", "files", "neurons", "layer", "proc", "P", "x_lava", "num_steps", "rec_dir",
             "probe_state", "np", "os", "sys", "full", "build", "record", "run", "main", "Conv", "Dense",
             "DelayDense", "LIF", "LIFReset", "RingBuffer", "Recorder", "SnnccLIF", "RunSteps", "Loihi2SimCfg"}


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


def plan(graph: Graph) -> dict:
    """The template's data: processes, connections, parameters (Lava layouts)."""
    C.enforce(graph)
    shapes = graph.shapes()
    bounds = C._value_bounds(graph)
    steps = int(graph.meta.get("steps", 1))
    names = _Names()
    inp_name = graph.input_name
    inp = graph.node(inp_name)
    names.used[inp_name] = "inp"
    params: dict[str, np.ndarray] = {}
    procs, layers, table = [], [], []

    def port(src: str) -> str:
        """Python expression of the OutPort carrying ``src`` (spikes or input), in the
        layout of ``src``'s IR shape (flattened C-major for Flatten)."""
        op = graph.node(src)
        if op.kind == "Flatten":
            (s,) = graph.inputs(src)
            return flat(s)
        return f"{names(src)}.s_out"

    def flat(src: str) -> str:
        p = port(src)
        return f"{p}.transpose((2, 1, 0)).flatten()" if len(shapes[src]) == 3 else p

    def message_bits(src: str) -> int:
        while graph.node(src).kind == "Flatten":
            src = graph.inputs(src)[0]
        op = graph.node(src)
        return op.bits if op.kind == "IntInput" and op.encoding == "direct" else 0

    for name, op in graph.items():
        k = op.kind
        if k in ("IntInput", "Flatten", "Add"):
            continue
        var = names(name)
        ins = graph.inputs(name)
        label = _text(name + (f" ({op.source})" if op.source and op.source != name else ""))
        if k == "IntConv":
            (src,) = ins
            w = C.conv_weights(op.weight, op.weight_exp)
            params[f"{var}.weight"] = w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1).astype(np.int32)
            procs.append(dict(kind="conv", var=var, comment=f"{label}: IntConv {op.weight.shape}, delay 1",
                              input_shape=_tup(_lava_shape(shapes[src])), stride=_tup(op.stride[::-1]),
                              padding=_tup(op.padding[::-1]), dilation=_tup(op.dilation[::-1]),
                              groups=op.groups, message_bits=message_bits(src),
                              connect=[f"{port(src)}.connect({var}.s_in)"]))
            table.append(f"{_text(name)}: Conv {tuple(op.weight.shape)} stride {op.stride} pad {op.padding}")
        elif k == "IntDense":
            (src,) = ins
            w, e, nwb = C.dense_form(op.weight, op.weight_exp, hardware=False)
            params[f"{var}.weights"] = w.astype(np.int32)
            d = dict(var=var, weight_exp=e, weight_bits=nwb, message_bits=message_bits(src),
                     connect=[f"{flat(src)}.connect({var}.s_in)"])
            if op.delay == 1:
                procs.append(dict(kind="dense", comment=f"{label}: IntDense {op.weight.shape}, delay 1", **d))
            else:
                procs.append(dict(kind="delay_dense", delays=op.delay - 1,
                                  comment=f"{label}: IntDense {op.weight.shape}, delay {op.delay}", **d))
            table.append(f"{_text(name)}: Dense {tuple(op.weight.shape)} delay {op.delay}")
        elif k == "IntLIF":
            (src,) = ins
            shape = _lava_shape(shapes[name])
            form = C.lif_form(op, bounds[src], steps)
            src_op = graph.node(src)
            if src_op.kind == "Add":
                conn = [f"{names(s)}.a_out.connect({var}.a_in)" for s in graph.inputs(src)]
            elif src_op.kind in C.SYN:
                conn = [f"{names(src)}.a_out.connect({var}.a_in)"]
            else:
                conn = [f"{port(src)}.connect({var}.a_in)"]
            if form is not None:
                params[f"{var}.bias_mant"] = form.bias_mant.astype(np.int16)
                params[f"{var}.bias_exp"] = form.bias_exp.astype(np.int16)
                params[f"{var}.v_init"] = form.v_init.astype(np.int32)
                ri = op.reset_interval
                # Lava's LIFReset counts steps from 1: IR step t is its time_step t + 1
                procs.append(dict(kind="lif", var=var, shape=_tup(shape), du=form.du, dv=form.dv, vth=form.vth,
                                  reset_interval=ri, reset_offset=(op.reset_offset + 1) % ri if ri else 0,
                                  comment=f"{label}: Loihi 2 CUBA LIF" + (f", reset every {ri} steps" if ri else ""),
                                  connect=conn))
                table.append(f"{_text(name)}: {'LIFReset' if ri else 'LIF'} {shapes[name]} du={form.du} dv={form.dv} "
                             f"vth={form.vth}" + (f" reset_interval={ri}" if ri else ""))
            else:
                for f in ("threshold", "bias", "reset_value", "v_init", "state_level"):
                    params[f"{var}.{f}"] = np.asarray(getattr(op, f), np.int64)
                procs.append(dict(kind="snncc_lif", var=var, shape=_tup(shape), du=op.du, dv=op.dv,
                                  act_shift=op.act_shift, reset=op.reset, state_quant=op.state_quant,
                                  u_bits=op.u_bits, u_overflow=op.u_overflow, v_bits=op.v_bits,
                                  v_overflow=op.v_overflow, fires=bool(op.fires),
                                  reset_interval=op.reset_interval, reset_offset=op.reset_offset,
                                  comment=f"{label}: SnnccLIF (simulation only: not a native Loihi 2 neuron)",
                                  connect=conn))
                table.append(f"{_text(name)}: SnnccLIF {shapes[name]} (simulation only)")
            readout = name in graph.outputs and not op.fires or any(
                graph.node(o).kind == "Flatten" and graph.inputs(o)[0] == name and not op.fires
                for o in graph.outputs)
            layers.append(dict(name=name, var=var, shape=_tup(shapes[name]), lava_shape=_tup(shape),
                               has_u=op.du != C.DECAY_ONE, need_v=bool(readout)))
    outputs = []
    for o in graph.outputs:
        flat_out = graph.node(o).kind == "Flatten"
        base = graph.inputs(o)[0] if flat_out else o
        outputs.append(dict(layer=base, what="s" if graph.node(base).fires else "v", flat=flat_out))
    custom = sum(p["kind"] == "snncc_lif" for p in procs)
    lo, hi = (0, 1) if inp.encoding == "spikes" else (0, (1 << inp.bits) - 1)
    return dict(
        name=_text(str(graph.meta.get("name", "network"))), version=__version__, steps=steps,
        input_shape=_tup(inp.shape), input_dims=", ".join(str(d) for d in inp.shape),
        input_range=f"({lo}, {hi})",
        input_kind=(f"graded {inp.bits}-bit input values" if inp.encoding == "direct" else "binary input spikes"),
        custom_note=(f"{custom} SnnccLIF layer(s), simulation only" if custom else "only Recorder is used"),
        procs=procs, layers=layers, outputs=outputs, table=table, params=params)


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
    shutil.copyfile(HERE / "procs.py", out / PROCS_FILE)
    shutil.copyfile(HERE / "_shim.py", out / SHIM_FILE)
    return [out / "network.py", out / "params.npz", out / PROCS_FILE, out / SHIM_FILE]
