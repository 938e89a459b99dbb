"""Integer-level passes: fold neurons into integer constants, lower the membrane."""
from __future__ import annotations

import numpy as np

from ..config import CompileConfig
from ..errors import BitWidthError
from ..ir.bounds import Bounds
from ..ir.graph import Graph
from ..ir.nodes import DECAY_ONE, IntInput, IntLIF
from ..ir.ints import checked_round, round_half_away


def decay_constant(factor: float) -> int:
    """12-bit decay d with (4096 - d) / 4096 closest to ``factor``."""
    return int(np.clip(np.floor((1.0 - factor) * DECAY_ONE + 0.5), 0, DECAY_ONE))


def _per_channel(x: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64) / sigma
    return v if v.size > 1 and not np.all(v == v[0]) else v[:1]


def fold_neurons(graph: Graph, cfg: CompileConfig) -> tuple[Graph, bool]:
    """LIF (float) -> IntLIF with sigma = the real value of one integer input unit:

        threshold = round(theta / sigma) << act_shift     (Loihi: vth mantissa << 6)
        bias      = round(b / sigma) << act_shift         (Loihi: bias mantissa, exponent 6)
        reset_value, state_level likewise; v_init = round(v0 * 2^act_shift / sigma)
        threshold - 1 where the float neuron spikes at v >= theta (the integer model's test is >)
        dv = round((1 - beta) * 4096),  du = round((1 - alpha) * 4096)  (alpha = 0: du = 4096)
    """
    g = graph.copy()
    a = cfg.act_shift
    for name in g.of_kind("Input"):
        op = g.node(name)
        g.set(name, IntInput(source=op.source, shape=op.shape, encoding=op.encoding,
                             scale=op.scale, bits=1 if op.encoding == "spikes" else op.bits))
    errs: list[str] = []
    frac = fractional_constants(g, cfg)
    wide: list[str] = []
    for name in g.of_kind("LIF"):
        op = _fit_v(_int_neuron(g.node(name), name, cfg, errs, frac))
        wide += too_wide(op, op.source or name)
        g.set(name, op)
    if errs:
        raise BitWidthError(errs, header="neuron constants that no integer register holds")
    if wide:  # what lower_membrane would list, said before an IntLIF that cannot hold its constants exists
        raise BitWidthError(wide, header="neurons do not fit the declared membrane widths")
    return g, True


def fractional_constants(g: Graph, cfg: CompileConfig) -> bool:
    """Whether threshold, bias and reset value keep act_shift fractional bits
    (``cfg.neuron_constants``; auto: for a converted ANN, whose IF neurons count charge
    to the threshold exactly, so a threshold off by half a weight unit is a rate error)."""
    if cfg.neuron_constants == "auto":
        return bool(g.meta.get("converted"))
    return cfg.neuron_constants == "fractional"


def _int_neuron(op, name: str, cfg: CompileConfig, errs: list[str], frac: bool = False) -> IntLIF:
    """One LIF's integer form; every float -> int cast checked (problems into ``errs``).
    ``frac``: threshold, bias, reset value, level and u_bias with act_shift fractional
    bits (round(x 2^act_shift / sigma)) rather than whole units << act_shift."""
    a = cfg.act_shift
    sigma = op.scale.astype(np.float64)
    where = f"layer '{op.source or name}'"
    unit = f" (one unit = {float(sigma.min()):.3g}: the weights into this neuron are that small; check them)"

    def ints(f: str, x, fractional: bool = frac):
        """round(x / sigma) << act_shift (a multiple of 2^act_shift, as on Loihi), or with
        fractional bits round(x 2^act_shift / sigma)."""
        v = _per_channel(np.asarray(x, np.float64).reshape(-1), sigma)
        n = len(errs)
        got = checked_round(v * (1 << a) if fractional else v, f"{where}: {f}", errs, 62 - a)
        if len(errs) > n and "beyond" in errs[-1]:
            errs[-1] += unit
        return got if fractional else got << a

    thr = ints("threshold", op.threshold) if op.fires else np.zeros(1, np.int64)
    if op.fires and op.threshold_test == "ge":  # v >= T  <=>  v > T - 1 on integers
        thr = thr - 1
    return IntLIF(
        source=op.source, du=DECAY_ONE if not op.alpha else decay_constant(op.alpha),
        dv=decay_constant(op.beta), act_shift=a, threshold=thr, bias=ints("bias", op.bias), reset=op.reset,
        reset_value=ints("reset_value", op.reset_value) if op.reset == "subtract" else thr.copy(),
        v_init=ints("v_init", op.v_init, fractional=True), state_quant=op.state_quant,
        state_level=ints("state_level", op.state_level) if op.state_quant != "none" else np.ones(1, np.int64),
        u_bits=cfg.u_bits, u_overflow=cfg.u_overflow, v_bits=cfg.v_bits,
        v_overflow=cfg.v_overflow, fires=op.fires, scale=sigma / (1 << a), u_bias=ints("u_bias", op.u_bias),
        presim=int(op.presim), prune_level=_prune_level(op, sigma, a))


def _prune_level(op, sigma: np.ndarray, a: int) -> np.ndarray:
    """TNP's level on the integer membrane: floor(level 2^act_shift / sigma), so that for an
    integer v, v > it exactly when v's real value exceeds the float level."""
    if not op.presim:
        return np.zeros(1, np.int64)
    return np.floor(_per_channel(np.asarray(op.prune_level, np.float64).reshape(-1), sigma) * (1 << a)).astype(np.int64)


CONSTANTS = ("threshold", "bias", "reset_value", "state_level", "v_init", "u_bias", "prune_level")


def shift_constants(op: IntLIF, k: int) -> IntLIF:
    """Drop k fractional membrane bits: act_shift - k, every constant / 2^k (exact for the
    multiples of 2^act_shift), the real value of one unit x 2^k."""
    return op.replace(act_shift=op.act_shift - k, scale=op.scale * (1 << k),
                      **{f: round_half_away(getattr(op, f) / (1 << k)) for f in CONSTANTS})


def too_wide(op: IntLIF, src: str) -> list[str]:
    """The constants of a neuron that its v register cannot hold, with the fix."""
    vlim = (1 << (op.v_bits - 1)) - 1
    out = []
    for f in CONSTANTS:
        m = int(np.abs(getattr(op, f)).max())
        if m > vlim:
            out.append(f"layer '{src}': {f} reaches {m}, beyond the {op.v_bits}-bit membrane (max {vlim}); fix: "
                       f"raise --v-bits to {m.bit_length() + 1} or lower --weight-bits")
    return out


def _fit_v(op: IntLIF) -> IntLIF:
    """The fewest fractional bits dropped so that every constant fits the v register (a
    neuron's integer form must hold its own constants; lower_membrane then fits the input)."""
    vlim = (1 << (op.v_bits - 1)) - 1
    big = max(int(np.abs(getattr(op, f)).max()) for f in CONSTANTS)
    k = 0
    while k < op.act_shift and (big >> k) > vlim:
        k += 1
    return shift_constants(op, k) if k else op


def lower_membrane(graph: Graph, cfg: CompileConfig) -> tuple[Graph, bool]:
    """Fit every neuron into its declared u/v widths without silent overflow.

    Where the worst-case input current (a << act_shift) could overflow u, or the
    threshold or bias does not fit v, drop fractional membrane bits: lower act_shift by k
    and shift the constants right by k (exact for threshold, bias and reset value,
    which are multiples of 2^act_shift). What still does not fit is reported, all layers
    at once, with the fix."""
    g = graph.copy()
    bounds = Bounds(g)
    problems, changed = [], False
    fields = CONSTANTS
    for name in g.of_kind("IntLIF"):
        op = g.node(name)
        vlim = (1 << (op.v_bits - 1)) - 1
        ulim = (1 << (op.u_bits - 1)) - 1
        a = bounds.input_of(name).mag
        gain = DECAY_ONE / op.du if op.du else float("inf")  # steady state of u under decay

        def fits(k: int) -> bool:
            big = max(int(np.abs(getattr(op, f)).max()) for f in fields) >> k
            drive = (a << (op.act_shift - k)) + (int(np.abs(op.u_bias).max()) >> k)
            u_ok = op.u_overflow == "saturate" or drive * gain <= ulim
            return big <= vlim and u_ok

        k = 0
        while not fits(k) and k < op.act_shift:
            k += 1
        if k:
            op = shift_constants(op, k)
            g.set(name, op)
            changed = True
        src = op.source or name
        problems += too_wide(op, src)
        if op.fires and (op.threshold < 0).any():
            problems.append(f"layer '{src}': negative threshold {int(op.threshold.min())}")
        if op.u_overflow != "saturate" and ((a << op.act_shift) + int(np.abs(op.u_bias).max())) * gain > ulim:
            problems.append(f"layer '{src}': input current can reach {a} (x2^{op.act_shift} in u), "
                            f"beyond the {op.u_bits}-bit u register, so u could wrap; fix: raise "
                            f"--u-bits, use --u-overflow saturate, or lower --weight-bits")
    if problems:
        raise BitWidthError(problems, header="neurons do not fit the declared membrane widths")
    return g, changed


def set_schedule(graph: Graph, cfg: CompileConfig) -> tuple[Graph, bool]:
    """Synapse latency: "zero" keeps the delays (PyTorch order), "lava" gives every synapse
    one more step (Loihi 2: a synapse sends on step t what it computed on step t - 1)."""
    if cfg.schedule == "zero":
        return graph, False
    from .lava import lava_schedule

    return lava_schedule(graph, cfg)
