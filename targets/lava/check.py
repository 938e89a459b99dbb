"""What Loihi 2 (and the Lava simulation of it) can run: the checker, plus the exact
IR -> Lava parameter forms that the emitter uses (one place, so the check and the
emitted code cannot disagree).

``check(graph)`` lists every problem, each naming the layer, the value, the limit and the
fix. Problems come in three kinds:

* blocking: the Lava simulation cannot reproduce the IR exactly (e.g. a SumPool that
  could not be folded, Dense weights no 8-bit mantissa can hold): ``emit`` refuses;
* hardware: a Loihi 2 limit (``targets/hw/loihi2.toml``) that Lava's CPU model does
  not enforce (e.g. a 12-bit decay set to 4096): emitted, simulated exactly, flagged;
* simulation only: a neuron Loihi 2's LIF cannot express (subtract reset, ternary
  membrane, non-firing readout, per-channel threshold, ...): emitted as the custom
  ``SnnccLIF`` process (bit-exact CPU model), flagged "not a native Loihi 2 neuron".

``blockers(graph)`` is the first kind only; ``enforce(graph)`` raises
``BitWidthError`` listing all of them at once.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import BitWidthError
from ...ir.bounds import Bounds
from ...ir.graph import Graph
from ...ir.nodes import DECAY_ONE, IntLIF
from ...ops.neurons import masks_of
from ...ops import op_def, role

LIMITS = tomllib.loads((Path(__file__).resolve().parents[1] / "hw" / "loihi2.toml").read_text())
SYN = ("IntConv", "IntDense")
SPIKE_SOURCES = ("IntInput", "IntLIF")
NOT_NATIVE = "simulation only: not a native Loihi 2 neuron (emitted as the custom Lava process SnnccLIF)"


# --------------------------------------------------------------------- exact parameter forms
def dense_form(w: np.ndarray, weight_exp: int, hardware: bool = True):
    """Lava ``Dense`` arguments (weights, weight_exp, num_weight_bits) giving exactly
    a = (w x) << weight_exp, or None.

    Lava clips weights to 8 bits and, for mixed signs, drops the LSB: with w = m 2^j
    (smallest j that fits), mixed signs give weights 2m (m in [-128, 127]) with exponent
    weight_exp + j - 1 (flooring the whole accumulator by one more bit is exact, as 2m x
    is even); one sign gives m in [0, 255] or [-255, 0] with exponent weight_exp + j.
    ``hardware=False`` also accepts what only Lava's Python model runs exactly: mixed
    m in [-256, 255] with num_weight_bits=9 (no LSB dropped; not a Loihi 2 weight)."""
    w = np.asarray(w, np.int64)
    if not w.any():
        return np.zeros_like(w), 0, 8
    mixed = bool(w.min() < 0 < w.max())
    for nine in ((False,) if hardware else (False, True)):
        for j in range(0, 48):
            if (w % (1 << j)).any():
                break
            m = w >> j
            if mixed and not nine and m.min() >= -128 and m.max() <= 127:
                return 2 * m, weight_exp + j - 1, 8
            if mixed and nine and m.min() >= -256 and m.max() <= 255:
                return m, weight_exp + j, 9
            if not mixed and int(np.abs(m).max()) <= 255:
                return m, weight_exp + j, 8
    return None


def conv_weights(w: np.ndarray, weight_exp: int) -> np.ndarray | None:
    """Lava ``Conv`` applies no exponent: the effective weights w << weight_exp, or None
    (a negative exponent floors the accumulator, which Lava's Conv cannot do)."""
    return None if weight_exp < 0 else np.asarray(w, np.int64) << weight_exp


def conv_hw_ok(w_eff: np.ndarray) -> bool:
    bits = LIMITS["synapse"]["weight_bits"]
    if not w_eff.any():
        return True
    if w_eff.min() < 0 < w_eff.max():
        return -(1 << (bits - 1)) <= w_eff.min() and w_eff.max() <= (1 << (bits - 1)) - 1
    return int(np.abs(w_eff).max()) <= (1 << bits) - 1


def bias_form(bias: np.ndarray, mant_bits: int, max_exp: int):
    """bias = mant << exp per element with mant in mant_bits signed and 0 <= exp <= max_exp
    (smallest exp), or None."""
    bias = np.asarray(bias, np.int64)
    mant, exp = bias.copy(), np.zeros_like(bias)
    lim = 1 << (mant_bits - 1)
    for i, b in enumerate(bias.tolist()):
        for e in range(max_exp + 1):
            if b % (1 << e) == 0 and -lim <= (b >> e) <= lim - 1:
                mant[i], exp[i] = b >> e, e
                break
        else:
            return None
    return mant, exp


@dataclass
class LifForm:
    """Lava ``LIF`` arguments reproducing an IntLIF exactly (per-channel arrays)."""

    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    v_init: np.ndarray


def lif_form(op: IntLIF, a_bound: int | None = None, steps: int = 1) -> LifForm | None:
    """Standard Lava LIF (PyLifModelBitAcc) parameters computing exactly ``op``'s step, or
    None when only the custom SnnccLIF process can (see ``lif_hw_problems`` for what
    Loihi 2 itself accepts; Lava's Python model is wider than the chip: du = 0 or
    dv = 4096, wider bias mantissas and thresholds simulate exactly).

    ``a_bound`` (worst-case |a_in|) guards the int32 arithmetic of Lava's model: a << 6
    and u must stay below 2^31 (see ``_int32_safe``)."""
    n = LIMITS["neuron"]
    if not ((op.reset == "zero" or not op.fires) and op.state_quant == "none" and op.act_shift == n["act_shift"]
            and op.u_bits == n["state_bits"] and op.v_bits == n["state_bits"]
            and op.u_overflow == n["u_overflow"] and op.v_overflow == n["v_overflow"]) or op.u_bias.any():
        return None
    if op.fires:
        thr = np.unique(op.threshold)
        if thr.size != 1 or int(thr[0]) % (1 << n["vth_shift"]):
            return None
        vth = int(thr[0]) >> n["vth_shift"]
    else:  # never reached: (2^17 << 6) = 2^23 > the largest saturated v, 2^23 - 1 (netx does the same)
        vth = 1 << (n["state_bits"] - 1 - n["vth_shift"])
    bias = bias_form(op.bias, 16, 15)  # Lava's model stores bias_mant/bias_exp as int16
    if bias is None or np.abs(op.bias).max() >= 1 << 30:
        return None
    if a_bound is not None and not _int32_safe(a_bound, op.du, steps):
        return None
    return LifForm(du=op.du - 1, dv=op.dv, vth=vth, bias_mant=bias[0], bias_exp=bias[1],
                   v_init=np.asarray(op.v_init, np.int64))


def _int32_safe(a_bound: int, du: int, steps: int) -> bool:
    """Lava's LIF computes decay(u) + (a << 6) in int32. |u| <= 2^23 after each step while
    a << 6 <= 2^24 (one fold brings it back); beyond that u can grow by (a << 6) - 2^24
    per step when it does not decay fully (du < 4096)."""
    big = a_bound << 6
    if big >= 1 << 31:
        return False
    if du == DECAY_ONE or big <= 1 << 24:
        return (1 << 23) + big < 1 << 31
    return (1 << 23) + max(steps, 1) * (big - (1 << 24)) + big < 1 << 31


def lif_hw_problems(label: str, op: IntLIF) -> list[str]:
    """Loihi 2 limits of one neuron layer (the CUBA LIF of targets/hw/loihi2.toml)."""
    n = LIMITS["neuron"]
    out = []
    kinds = []
    if op.fires and op.reset != "zero":
        kinds.append(f"reset '{op.reset}' (Loihi 2's LIF resets v to 0)")
    if op.state_quant != "none":
        kinds.append(f"a {op.state_quant} membrane (state_quant)")
    if op.u_bias.any():
        kinds.append("a constant input current u_bias (synapse biases into a neuron with a current state; "
                     "Loihi 2's LIF adds its bias to v only)")
    if op.act_shift != n["act_shift"]:
        kinds.append(f"act_shift={op.act_shift} (Loihi 2 shifts a_in by {n['act_shift']})")
    for reg, bits, mode, want in (("u", op.u_bits, op.u_overflow, n["u_overflow"]),
                                  ("v", op.v_bits, op.v_overflow, n["v_overflow"])):
        if bits != n["state_bits"] or mode != want:
            kinds.append(f"a {bits}-bit {mode} {reg} (Loihi 2: {n['state_bits']}-bit {want})")
    thr = np.unique(op.threshold)
    if op.fires and thr.size > 1:
        kinds.append(f"{thr.size} different thresholds in one layer (Loihi 2's LIF has one vth per "
                     f"process; fix: recompile with --granularity tensor)")
    if not op.fires and not kinds:
        out.append(f"layer {label}: a non-firing readout (fires=False) needs vth >= 2^17 (v tops out at "
                   f"2^23 - 1 > 131071 << 6), beyond Loihi 2's {n['vth_bits']}-bit vth: simulation only "
                   f"(Lava's LIF model runs it with vth = 131072, as netx does); on the chip, read v of a LIF "
                   f"with vth = 131071, which fires only if v exceeds 8388544")
    for k in kinds:
        out.append(f"layer {label}: {k}: {NOT_NATIVE}")
    if op.fires:
        vmax = (1 << n["vth_bits"]) - 1
        for t in thr.tolist():
            if t % (1 << n["vth_shift"]):
                out.append(f"layer {label}: threshold {t} is not a multiple of {1 << n['vth_shift']}: Loihi 2 "
                           f"compares v > vth << {n['vth_shift']}; fix: keep act_shift={n['act_shift']} and "
                           f"quantize thresholds in a_in units (threshold = vth << 6)")
            elif not 0 <= t >> n["vth_shift"] <= vmax:
                out.append(f"layer {label}: threshold {t} needs vth={t >> n['vth_shift']}, outside the "
                           f"{n['vth_bits']}-bit unsigned mantissa [0, {vmax}]; fix: lower --weight-bits or "
                           f"rescale the layer")
    dmax = (1 << n["decay_bits"]) - 1
    if not 1 <= op.du <= dmax + 1:
        out.append(f"layer {label}: du={op.du} (no current decay) needs Lava du={op.du - 1}, outside the "
                   f"{n['decay_bits']}-bit [0, {dmax}] (Lava's du = IR du - 1); fix: give the current a "
                   f"decay (du >= 1) or use no current state (du = 4096)")
    if not 0 <= op.dv <= dmax:
        out.append(f"layer {label}: dv={op.dv} outside the {n['decay_bits']}-bit [0, {dmax}]; "
                   f"fix: use dv <= {dmax} (dv = {dmax} keeps 1/4096 of v each step instead of none)")
    if bias_form(op.bias, n["bias_mant_bits"], (1 << n["bias_exp_bits"]) - 1) is None:
        out.append(f"layer {label}: bias in [{int(op.bias.min())}, {int(op.bias.max())}] is not "
                   f"mant << exp with a {n['bias_mant_bits']}-bit mantissa and exp in "
                   f"[0, {(1 << n['bias_exp_bits']) - 1}]; fix: lower --weight-bits or drop the bias")
    return out


# ------------------------------------------------------------------------------- the check
def _label(graph: Graph, name: str) -> str:
    src = graph.node(name).source
    return f"'{name}'" + (f" ({src})" if src and src != name else "")


def _value_bounds(graph: Graph) -> dict[str, int]:
    """Worst-case |value| of every node (snncc.ir.bounds), plus for every synapse the
    worst-case |partial sum| in Lava's weight form (key 'name/acc'): Dense weights as
    stored (2w, exp - 1), Conv with a positive exponent folded into the weights; both by
    the synapse's own accumulator rule."""
    bounds = Bounds(graph)
    b = {k: v.mag for k, v in bounds.iv.items()}
    for name in graph.of_kind(*SYN):
        op = graph.node(name)
        if op.kind == "IntDense":
            form = dense_form(op.weight, op.weight_exp, hardware=False)
            if form is not None:
                b[f"{name}/acc"] = op_def(op).accumulator(op.replace(weight=form[0]), bounds.input_of(name)).mag
        else:
            b[f"{name}/acc"] = bounds.acc[name].mag << max(op.weight_exp, 0)
    return b


class _Findings:
    """The checker's walk: one check per IR kind (CHECKS) adds (kind, message) pairs."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.out: list[tuple[str, str]] = []
        self.shapes = graph.shapes()
        self.bounds = _value_bounds(graph)
        self.steps = int(graph.meta.get("steps", 1))

    def block(self, name, msg):
        self.out.append(("blocking", f"layer {_label(self.graph, name)}: {msg}"))

    def hw(self, name, msg):
        self.out.append(("hardware", f"layer {_label(self.graph, name)}: {msg}"))

    def spike_source(self, s: str) -> bool:
        op = self.graph.node(s)
        return op.kind in SPIKE_SOURCES or (role(op) == "reshape" and self.spike_source(self.graph.inputs(s)[0]))

    # ---- one check per IR kind
    def input(self, name, op):
        if len(op.shape) not in (1, 3):
            self.block(name, f"input shape {tuple(op.shape)}: the Lava target takes (C, H, W) or (N,) inputs")

    def sum_pool(self, name, op):
        self.block(name, "SumPool has no Loihi 2 process and could not be folded exactly into a neighbouring "
                         "synapse (fuse_sumpool needs a Conv/Dense right after it, or a Conv before it with "
                         "weight_exp >= 0, no out_bits and no pool padding); fix: put a Conv or Linear "
                         "right after the pooling layer")

    def max_pool(self, name, op):
        self.block(name, "MaxPool of graded values has no Loihi 2 process (only MaxPool of binary spikes "
                         "is lowered, to a spike OR); fix: pool after the spiking neuron")

    def add(self, name, op):
        g = self.graph
        ins, users = g.inputs(name), g.users(name)
        if not all(role(g.node(s)) == "synapse" for s in ins) or not users or \
                any(role(g.node(u)) != "neuron" for u in users) or name in g.outputs:
            self.block(name, "Add must sum synapse outputs into a neuron (Loihi 2 fan-in); run lava_fanin, "
                             "and do not read an Add except by a spiking neuron")

    def synapse(self, name, op):
        g = self.graph
        (src,) = g.inputs(name)
        users = g.users(name)
        if not self.spike_source(src) or (op.kind == "IntConv" and role(g.node(src)) == "reshape"):
            self.block(name, f"reads a {g.node(src).kind} ('{src}'): Loihi 2 synapses read spikes or the "
                             f"input (a synapse after a synapse needs a neuron between them)")
        if name in g.outputs or not users or any(role(g.node(u)) not in ("neuron", "add") for u in users):
            self.block(name, "a synapse output must go into a neuron (directly or through an Add)")
        _synapse_findings(g, name, op, self.bounds, LIMITS["synapse"], LIMITS["lava_sim"], self.block, self.hw)

    def flatten(self, name, op):
        src = self.graph.inputs(name)[0]
        if not self.spike_source(src):
            self.block(name, f"Flatten of a {self.graph.node(src).kind}: the Lava target flattens spikes "
                             f"or the input only")

    def neuron(self, name, op):
        g = self.graph
        src = g.inputs(name)[0]
        if role(g.node(src)) not in ("synapse", "add") and not self.spike_source(src):
            self.block(name, f"a neuron reads a {g.node(src).kind} ('{src}')")
        if len(self.shapes[name]) not in (1, 3):
            self.block(name, f"neuron shape {self.shapes[name]}: the Lava target takes (C, H, W) or (N,) layers")
        if op.presim:
            self.block(name, f"test-time neuron pruning (presim={op.presim}): Lava's LIF has no per-neuron output "
                             "mask and no restart at a given step; compile for c or onnx, or without --tnp")
        if masks_of(op):
            self.block(name, f"SpQuant-SNN sparsity masks ({masks_of(op)}): Lava's LIF has no input skip, no "
                             "per-neuron or per-channel output mask; compile for c or onnx, or without the masks")
        for msg in lif_hw_problems(_label(g, name), op):
            self.out.append(("simulation only" if "simulation only" in msg else "hardware", msg))
        if lif_form(op) is not None and lif_form(op, self.bounds[src], self.steps) is None:
            self.out.append(("simulation only", f"layer {_label(g, name)}: worst-case input a_in = "
                             f"{self.bounds[src]} could overflow the int32 arithmetic of Lava's LIF model "
                             f"(a_in << 6 plus a growing u), so snncc simulates it with SnnccLIF (int64); "
                             f"on Loihi 2 such inputs overflow the 24-bit u; fix: lower --weight-bits"))

    def outputs(self):
        g = self.graph
        for o in g.outputs:
            op = g.node(o)
            base = g.inputs(o)[0] if role(op) == "reshape" else o
            if g.node(base).kind != "IntLIF":
                self.block(o, f"the network output is a {op.kind}; the Lava target outputs a neuron layer "
                              f"(its spikes, or v of a non-firing readout)")


#: IR kind -> its check
CHECKS = {"IntInput": _Findings.input, "SumPool": _Findings.sum_pool, "MaxPool": _Findings.max_pool,
          "Add": _Findings.add, "IntConv": _Findings.synapse, "IntDense": _Findings.synapse,
          "Flatten": _Findings.flatten, "IntLIF": _Findings.neuron}


def findings(graph: Graph) -> list[tuple[str, str]]:
    """Every problem as (kind, message), kind in "blocking", "hardware", "simulation only"."""
    f = _Findings(graph)
    for name, op in graph.items():
        if op.level == "float":
            f.block(name, f"{op.kind} is a float-level node; the Lava target takes an integer graph "
                          f"(run the quantization passes first)")
        elif op.kind in CHECKS:
            CHECKS[op.kind](f, name, op)
    f.outputs()
    return f.out


def _synapse_findings(graph, name, op, bounds, syn_lim, sim, block, hw):
    k = op.kind
    w = op.weight
    delay_max = syn_lim["latency"] + syn_lim["max_extra_delay"]
    if op.delay < syn_lim["latency"]:
        block(name, f"delay {op.delay}: every Lava synapse takes {syn_lim['latency']} step; run the "
                    f"lava_schedule pass (--target lava does)")
    elif k == "IntConv" and op.delay != syn_lim["latency"]:
        block(name, f"delay {op.delay}: Lava's Conv has no programmable delay (only {syn_lim['latency']} "
                    f"step); only Dense synapses take extra delays (DelayDense)")
    elif op.delay > delay_max:
        hw(name, f"delay {op.delay} = {syn_lim['latency']} + {op.delay - syn_lim['latency']} exceeds Loihi 2's "
                 f"{syn_lim['max_extra_delay']} extra synaptic delay steps; fix: shorten the delay")
        if op.delay - syn_lim["latency"] > 63:
            block(name, f"delay {op.delay}: Lava's DelayDense accepts at most 63 extra steps")
    bound_in = bounds[graph.inputs(name)[0]]
    if k == "IntDense":
        form = dense_form(w, op.weight_exp, hardware=False)
        if form is None:
            block(name, f"weights span [{int(w.min())}, {int(w.max())}]: Loihi 2 Dense weights are an "
                        f"{syn_lim['weight_bits']}-bit mantissa (+ one shared exponent; mixed signs lose the "
                        f"LSB) and no shared power of two brings these into range; fix: recompile with "
                        f"--weight-bits {syn_lim['weight_bits']}")
        elif dense_form(w, op.weight_exp) is None:
            hw(name, f"weights span [{int(w.min())}, {int(w.max())}]: Loihi 2 Dense weights are an "
                     f"{syn_lim['weight_bits']}-bit mantissa (+ one shared exponent; mixed signs lose the LSB, "
                     f"so a 9-bit signed weight is simulated by Lava but not held by the chip); fix: "
                     f"recompile with --weight-bits {syn_lim['weight_bits']}")
        elif bounds.get(f"{name}/acc", 0) >= 1 << (sim["int_bits"] - 1):
            block(name, f"worst-case accumulator {bounds[f'{name}/acc']} overflows the int32 arithmetic "
                        f"of Lava's Dense; fix: lower --weight-bits or the input bits")
        if op.out_bits and bounds[name] >= 1 << (op.out_bits - 1):
            block(name, f"out_bits={op.out_bits} wraps the output, which Lava's Dense never does")
    else:
        w_eff = conv_weights(w, op.weight_exp)
        if w_eff is None:
            block(name, f"weight_exp={op.weight_exp}: Lava's Conv applies no weight exponent (lava-nc "
                        f"#803), so it cannot floor the accumulator; fix: keep conv weight_exp >= 0 "
                        f"(per-tensor quantization with --weight-bits {syn_lim['weight_bits']})")
        else:
            acc = bounds[f"{name}/acc"]
            if acc >= 1 << sim["conv_float_exact_bits"]:
                block(name, f"worst-case partial sum {acc} reaches 2^{sim['conv_float_exact_bits']}, where "
                            f"Lava's Conv (torch float32) stops being exact; fix: lower --weight-bits or "
                            f"the input bits")
            if not conv_hw_ok(w_eff):
                hw(name, f"weights{' << weight_exp' if op.weight_exp else ''} span [{int(w_eff.min())}, "
                         f"{int(w_eff.max())}], Loihi 2 Conv weights are {syn_lim['weight_bits']}-bit with "
                         f"no exponent (lava-nc #803); fix: recompile with --weight-bits "
                         f"{syn_lim['weight_bits']}")
        wrap = syn_lim["conv_out_bits"]
        if op.out_bits != wrap and bounds[name] >= 1 << (min(op.out_bits or wrap, wrap) - 1):
            block(name, f"out_bits={op.out_bits}: Lava's Conv wraps its output to {wrap} bits; run the "
                        f"lava_conv_wrap pass (--target lava does)")


def check(graph: Graph) -> list[str]:
    """Every Loihi 2 violation of ``graph`` (blocking, hardware and simulation-only)."""
    return [msg for _, msg in findings(graph)]


def blockers(graph: Graph) -> list[str]:
    """The problems that stop the Lava target from reproducing the graph exactly."""
    return [msg for kind, msg in findings(graph) if kind == "blocking"]


def enforce(graph: Graph, strict: bool = False) -> list[str]:
    """Raise ``BitWidthError`` listing every blocking problem (every problem if
    ``strict``); return the non-blocking ones (hardware limits, simulation-only neurons)."""
    f = findings(graph)
    bad = [m for kind, m in f if strict or kind == "blocking"]
    if bad:
        raise BitWidthError(bad, header="the Lava / Loihi 2 target cannot take this graph"
                            + (" (strict: hardware limits included)" if strict else ""))
    return [m for _, m in f]
