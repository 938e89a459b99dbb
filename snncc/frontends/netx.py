"""netx frontend: a lava-dl network-exchange HDF5 file (``*.net``) -> integer IR.

The file already holds an integer Loihi model, so this frontend produces the integer
graph directly, with the meaning lava-dl 0.6.0's ``netx.hdf5.Network`` gives it:

* ``/layer/{0..n-1}``, applied in order. ``input`` (shape (C, H, W) or (N,); with a
  ``neuron`` group the input values go straight into that neuron's a_in, no synapse;
  with the ``bias`` input encoding they are the signed bias mantissas of those neurons,
  as lava-dl's image examples set ``net.in_layer.neuron.bias_mant``: the neuron gets
  du = 4096, so u = x << 6 is exactly the bias Lava adds to v),
  ``conv`` (``weight`` (O, C, kH, kW[, 1]), ``stride``/``padding``/``dilation`` in
  (y, x), ``groups``; PyTorch cross-correlation), ``flatten`` (C-major, like PyTorch)
  and ``dense`` (``weight`` (out, in), optional ``delay``) layers; slayer's ``pool``
  (one (kH, kW) kernel summing every channel's windows: a depthwise IntConv) and
  ``average`` (the mean of equal groups of neurons, the last layer: a Dense of 0/1 group
  weights into netx's default readout) blocks, which netx itself cannot load;
* neurons ``CUBA``/``LOIHI``: Lava LIF with vth = vThMant, du = iDecay - 1, dv = vDecay,
  bias_exp = 6, i.e. IntLIF(du=iDecay, dv=vDecay, threshold=vThMant << 6,
  bias=bias << 6), act_shift 6, 24-bit wrap_lava u, saturating v, hard reset. A dense
  layer without ``neuron`` is netx's default non-leaky integrator (iDecay 0, vDecay
  4096, vThMant 2^17). A threshold with vThMant >= 2^17 is never reached (v saturates
  at 2^23 - 1), so that layer becomes a non-firing readout (fires=False);
* every synapse is a Lava Dense/Conv: one step of latency (delay 1); a dense layer's
  ``delay`` (per output neuron, per input, or scalar, clamped to 62 as netx does) adds
  to it: uniform -> IntDense.delay = 1 + d; otherwise the layer is split into one
  IntDense per distinct delay holding only the rows (columns) with that delay, summed
  by an Add into the neuron (exact: every weight lands in exactly one part);
* conv weights are used as stored and wrap to 24 bits (IntConv.out_bits = 24); dense
  weights as stored (netx's optimize_weight_bits represents them exactly).

* ``reset_interval``/``reset_offset`` are arguments of netx's ``hdf5.Network``, not part
  of the file: given, every neuron becomes netx's ``LIFReset`` with the stagger netx
  applies, the k-th neuron layer (0-based, in file order) resetting u = v = 0 on the
  steps t (0-based) with t % reset_interval == (reset_offset + k) % reset_interval
  (IntLIF.reset_interval/reset_offset). Files written by snncc record the reset they
  were exported with, and it is restored when no reset is given.

Not in the IR, refused with ModelLoadError naming the layer and why (``UNSUPPORTED``):
concat, convT, unpool, recurrent/complex dense, SDNN and resonate-and-fire neurons, and
conv/pool delays (netx ignores them). netx does not apply an input layer's
``weight``/``bias`` transform, and neither does snncc (it records it in the meta and
warns). docs/netx.md has the whole table.

Files written by ``snncc.targets.netx.emit`` also carry ``snncc_*`` attributes (node
names, scales, weight widths, fields netx cannot express such as a readout's unused
threshold), which netx ignores; with them, graph -> netx -> graph is the identity.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError
from ..ir.graph import Graph
from ..ir.ints import signed_bits
from ..ir.nodes import DECAY_ONE, Add, Flatten, IntConv, IntDense, IntInput, IntLIF
from ..ir.verify import problems
from ..ops import shape_of

I64 = np.int64
#: the smallest vThMant that never fires: vThMant << 6 >= 2^23 > the largest saturated v
NEVER_FIRES = 1 << 17
#: the vThMant slayer (and snncc's netx export) writes for a non-firing readout
READOUT_VTH = (1 << 18) - 1
NETX_MAX_DELAY = 62
#: the signed bits of Loihi 2's bias mantissa: the default width of a bias-driven input
BIAS_BITS = 13
#: default bits of each input encoding a netx file may be read with
ENCODING_BITS = {"spikes": 1, "direct": 8, "counts": 8, "bias": BIAS_BITS}
#: the layer types netx writes that have no IR form, and why
UNSUPPORTED = {
    "convT": "a transposed convolution (upsampling) has no IR op",
    "unpool": "unpooling (upsampling) has no IR op",
    "concat": "concatenation joins branches, and the file does not say which layers it joins; snncc reads a chain",
    "dense_rec": "a recurrent dense layer feeds a layer back to itself; the IR is a feed-forward graph",
    "dense_comp": "a complex dense layer drives resonate-and-fire neurons, which the IR has no neuron for",
}


class _Layer:
    """Checked access to one /layer/i group."""

    def __init__(self, grp, idx: int, path: Path) -> None:
        self.g, self.i, self.path = grp, idx, path

    def err(self, msg: str) -> ModelLoadError:
        return ModelLoadError(f"{self.path}: layer {self.i}: {msg}")

    def has(self, key: str) -> bool:
        return key in self.g

    def str(self, key: str) -> str:
        if key not in self.g:
            raise self.err(f"missing '{key}'")
        v = self.g[key][()]
        v = v.reshape(-1)[0] if isinstance(v, np.ndarray) and v.size else v
        return v.decode("ascii") if isinstance(v, bytes) else str(v)

    def arr(self, key: str, grp=None) -> np.ndarray:
        g = self.g if grp is None else grp
        if key not in g:
            raise self.err(f"missing '{key}'")
        a = np.asarray(g[key][()])
        if a.dtype.kind not in "iuf b":
            raise self.err(f"'{key}' holds {a.dtype}, not numbers")
        if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
            raise self.err(f"'{key}' holds non-integer values; netx stores integer mantissas")
        if a.dtype.kind in "uf" and a.size and np.max(np.abs(a)) >= 2.0 ** 63:
            raise self.err(f"'{key}' holds values beyond the 64-bit integer range (largest magnitude "
                           f"{np.max(np.abs(a)):.4g})")
        return a.astype(I64)

    def pair(self, key: str, default: int) -> tuple:
        if key not in self.g:
            return (default, default)
        a = self.arr(key).reshape(-1)
        if a.size == 1:
            return (int(a[0]), int(a[0]))
        if a.size != 2:
            raise self.err(f"'{key}' must hold 1 or 2 values (y, x), has {a.size}")
        return (int(a[0]), int(a[1]))

    def attr(self, key: str, default=None):
        v = self.g.attrs.get(key, default)
        return _json_attr(v, f"{self.path}: layer {self.i}: attribute {key}") if key.endswith("_json") else v


def _json_attr(v, where: str):
    """A JSON object stored in an HDF5 attribute (snncc's own additions to a netx file)."""
    if v is None:
        return None
    try:
        d = json.loads(v.decode() if isinstance(v, bytes) else str(v))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{where} is not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise ModelLoadError(f"{where} must be a JSON object, got {type(d).__name__}")
    return d


def _steps(v, where: str) -> int:
    a = np.asarray(v.decode() if isinstance(v, bytes) else v)
    try:
        n = int(a.reshape(-1)[0]) if a.dtype.kind in "iu" and a.size == 1 else None
    except (TypeError, ValueError):
        n = None
    if n is None or n < 1:
        raise ModelLoadError(f"{where} must be a whole number of time steps >= 1, got {_show(v)}")
    return n


def _show(v) -> str:
    r = repr(v.decode() if isinstance(v, bytes) else v.tolist() if isinstance(v, np.ndarray) else v)
    return r if len(r) <= 40 else r[:37] + "..."


def _neuron(L: _Layer, shape: tuple, bias: np.ndarray | None, meta: dict) -> IntLIF:
    if L.has("neuron"):
        ng = L.g["neuron"]
        ntype = L.str("neuron/type") if "type" in ng else "?"
        if ntype not in ("CUBA", "LOIHI"):
            raise L.err(f"neuron type {ntype!r}: only CUBA/LOIHI (Lava LIF) neurons have an IR form "
                        f"(SDNN, RF and others are not supported)")
        vth, idecay, vdecay = (int(L.arr(k, ng).reshape(-1)[0]) for k in ("vThMant", "iDecay", "vDecay"))
        ref = int(L.arr("refDelay", ng).reshape(-1)[0]) if "refDelay" in ng else 1
        if ref > 1:
            warnings.warn(f"{L.path}: layer {L.i}: refDelay={ref} is ignored (netx's LIF has no refractory "
                          f"period); snncc does the same")
    else:  # netx's default: a non-leaky integrator that never fires
        vth, idecay, vdecay = NEVER_FIRES, 0, 4096
    if not 0 <= idecay <= 4096 or not 0 <= vdecay <= 4096:
        raise L.err(f"iDecay={idecay}, vDecay={vdecay}: decays must lie in [0, 4096]")
    if vth < 0:
        raise L.err(f"vThMant={vth} is negative")
    ch = shape[0]
    if bias is None:
        b = np.zeros(1, I64)
    elif len(shape) == 3 and bias.ndim == 3 and bias.shape == shape[::-1]:  # per neuron, (W, H, C)
        per = bias.transpose(2, 1, 0).reshape(ch, -1)
        if not (per == per[:, :1]).all():
            raise L.err("bias varies inside a channel; the IR holds one bias per channel")
        b = per[:, 0]
    elif bias.size in (1, ch):
        b = bias.reshape(-1)
    else:
        raise L.err(f"bias of shape {bias.shape} fits neither 1 value, {ch} channels nor the layer "
                    f"(W, H, C) = {shape[::-1]}")
    fires = vth < NEVER_FIRES
    thr = np.array([vth << 6], I64) if fires else np.zeros(1, I64)
    kw = dict(du=idecay, dv=vdecay, act_shift=6, threshold=thr, bias=(b << 6).astype(I64), reset="zero",
              reset_value=thr.copy(), v_init=np.zeros(1, I64), u_bits=24, u_overflow="wrap_lava", v_bits=24,
              v_overflow="saturate", fires=fires, scale=np.ones(1))
    # snncc's metadata may restore the array form of a field (e.g. a per-channel array of
    # equal thresholds) but never its meaning: a stored value that matters must agree
    for k, matters in (("threshold", fires), ("bias", True), ("reset_value", False), ("state_level", False),
                       ("scale", False)):
        if f"snncc_{k}" in meta:
            stored = np.asarray(meta[f"snncc_{k}"], np.float64 if k == "scale" else I64).reshape(-1)
            if matters and not (stored.size in (1, ch) and np.array_equal(
                    np.broadcast_to(kw[k], (ch,)), np.broadcast_to(stored, (ch,)))):
                raise L.err(f"snncc metadata gives {k} {stored.tolist()}, which contradicts the netx data "
                            f"{kw[k].tolist()}")
            kw[k] = stored
    if not fires and meta.get("snncc_reset") in ("zero", "subtract", "none"):  # a readout never resets
        kw["reset"] = meta["snncc_reset"]
    return IntLIF(source=meta.get("snncc_source", ""), **kw)


def _delays(L: _Layer, out_n: int, in_n: int) -> np.ndarray:
    """Extra delay of every weight (out, in), as netx expands a dense layer's 'delay'."""
    d = L.arr("delay")
    if (d < 0).any():
        raise L.err(f"negative delay {int(d.min())}")
    if d.max(initial=0) > NETX_MAX_DELAY:
        warnings.warn(f"{L.path}: layer {L.i}: delays up to {int(d.max())} are clamped to {NETX_MAX_DELAY} "
                      f"(as netx does)")
        d = np.minimum(d, NETX_MAX_DELAY)
    if d.size == 1:
        return np.full((out_n, in_n), int(d.reshape(-1)[0]), I64)
    d = d.reshape(-1)
    if d.size == out_n:
        return np.repeat(d[:, None], in_n, axis=1)
    if d.size == in_n:
        return np.repeat(d[None, :], out_n, axis=0)
    raise L.err(f"delay of {d.size} values fits neither the {out_n} outputs nor the {in_n} inputs")


def load_netx(path, input_encoding: str | None = None, input_bits: int | None = None,
              reset_interval: int | None = None, reset_offset: int = 0, input_scale: float | None = None) -> Graph:
    """Read a netx HDF5 file into an integer graph with Lava's schedule (see the module
    docstring). ``input_encoding`` ("spikes", "direct", "counts" or "bias"), ``input_bits``
    and ``input_scale`` describe the input (netx files do not; default: what snncc
    wrote, else binary spikes; bits: 1, 8, 8, 13). ``reset_interval``/``reset_offset``
    are those of netx's ``hdf5.Network`` (None: the reset recorded by snncc's export,
    else none)."""
    for k, v, lo in (("reset_interval", reset_interval, 1), ("reset_offset", reset_offset, 0)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo):
            raise ModelLoadError(f"{k}={v!r}: must be an integer >= {lo} (as netx's hdf5.Network requires)")
    if input_encoding is not None and input_encoding not in ENCODING_BITS:
        raise ModelLoadError(f"input_encoding={input_encoding!r}: a netx input takes "
                             f"{', '.join(ENCODING_BITS)}")
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is an optional dependency
        raise ModelLoadError(f"reading netx files needs h5py (pip install h5py): {e}") from None
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"netx file not found: {p}")
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise ModelLoadError(f"{p} is not an HDF5 (netx) file: {e}") from None
    with f:
        g = _load(f, p, input_encoding, input_bits, input_scale)
        if reset_interval is None and "snncc_netx_reset" in f.attrs:
            rec = _json_attr(f.attrs["snncc_netx_reset"], f"{p}: attribute snncc_netx_reset")
            try:
                reset_interval, reset_offset = int(rec["reset_interval"]), int(rec["reset_offset"])
            except (KeyError, TypeError, ValueError):
                raise ModelLoadError(f"{p}: attribute snncc_netx_reset must hold integers reset_interval and "
                                     f"reset_offset, got {rec}") from None
    if reset_interval is not None:
        _periodic_reset(g, int(reset_interval), int(reset_offset))
    return g


#: the compile options a netx import reads (the file holds the integer model itself)
READS = ("input_encoding", "input_bits", "input_scale")


def load(source, config, reset_interval: int | None = None, reset_offset: int | None = None,
         given=frozenset()):
    """(integer graph, manifest fields) of a netx file for :func:`snncc.compiler.compile`;
    ``reset_interval``/``reset_offset`` as given to lava-dl's hdf5.Network. Of the
    config, the input fields the user set (``given``) describe the input; a set field
    a netx import cannot honour is refused."""
    import hashlib

    unused = sorted(set(given) - set(READS) - {"steps"})
    if unused:
        raise ModelLoadError(f"{source}: a netx file holds an integer model, so the compile option(s) "
                             f"{', '.join(unused)} cannot apply to it; of the compile options a netx import "
                             f"reads only {', '.join(READS)}")
    if "steps" in given:
        raise ModelLoadError(f"{source}: a netx import runs the steps its file records (/simulation/tSample); "
                             f"give a longer input instead of steps={config.steps}")
    kw = {k: getattr(config, k) for k in READS if k in given}
    g = load_netx(source, reset_interval=reset_interval, reset_offset=reset_offset or 0, **kw)
    reset = [reset_interval, reset_offset or 0] if reset_interval is not None else None
    inp = g.node(g.input_name)
    return g, {"pipeline": "netx import", "source_sha256": hashlib.sha256(Path(source).read_bytes()).hexdigest(),
               "netx_reset": reset, "netx_input": {"encoding": inp.encoding, "bits": int(inp.bits),
                                                   "given": bool(kw)}}


def _periodic_reset(g: Graph, interval: int, offset: int) -> None:
    """netx's LIFReset: neuron layer k (file order = topological order of the chain)
    resets at t % interval == (offset + k) % interval (lava-dl hdf5.Network gives it the
    1-based offset offset + 1 + k, and Lava counts steps from 1)."""
    for k, name in enumerate(g.of_kind("IntLIF")):
        g.set(name, g.node(name).replace(reset_interval=interval, reset_offset=(offset + k) % interval))


def _load(f, p: Path, *inputs) -> Graph:
    if "layer" not in f:
        raise ModelLoadError(f"{p}: no /layer group: not a netx network file")
    layers = f["layer"]
    keys = sorted(layers.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if not keys or any(not k.isdigit() for k in keys) or [int(k) for k in keys] != list(range(len(keys))):
        raise ModelLoadError(f"{p}: /layer must hold groups 0..n-1, found {list(layers.keys())}")
    g = Graph()
    meta = _json_attr(f.attrs.get("snncc_meta_json"), f"{p}: attribute snncc_meta_json") or {}
    meta["schedule"] = "lava"
    if "steps" in meta:
        meta["steps"] = _steps(meta["steps"], f"{p}: snncc_meta_json's steps")
    elif "simulation" in f and "tSample" in f["simulation"]:
        meta["steps"] = _steps(f["simulation"]["tSample"][()], f"{p}: /simulation/tSample")
    g.meta = meta
    st = _Reader(g, p, *inputs)
    for i in range(len(keys)):
        L = _Layer(layers[str(i)], i, p)
        kind = L.str("type")
        if kind in UNSUPPORTED:
            raise L.err(f"'{kind}' layers are not supported: {UNSUPPORTED[kind]} (snncc reads "
                        f"{', '.join(sorted(LAYERS))})")
        if kind not in LAYERS:
            raise L.err(f"unknown layer type {kind!r} (snncc reads {', '.join(sorted(LAYERS))}; refuses "
                        f"{', '.join(sorted(UNSUPPORTED))})")
        if kind != "input" and st.cur is None:
            raise L.err(f"'{kind}' layer before any input layer (netx needs the input shape)")
        if st.closed:
            raise L.err(f"a '{kind}' layer after the 'average' layer (an average is the network's graded "
                        f"output, not spikes another layer could read)")
        LAYERS[kind](st, L, L.attr("snncc_json") or {})
    if st.cur is None or g.node(st.cur).kind == "IntInput":
        raise ModelLoadError(f"{p}: the network has no layer after its input")
    g.outputs = [st.cur]
    errs = problems(g, "int")
    if errs:
        raise ModelLoadError(f"{p}: the imported network is not a valid integer graph:\n"
                             + "\n".join(f"  - {e}" for e in errs))
    return g


class _Reader:
    """The graph being read: the last node (``cur``) and its shape."""

    def __init__(self, g: Graph, path: Path, input_encoding, input_bits, input_scale=None) -> None:
        self.g, self.path = g, path
        self.input_encoding, self.input_bits, self.input_scale = input_encoding, input_bits, input_scale
        self.cur: str | None = None
        self.shape: tuple | None = None
        self.closed = False  # after an 'average' layer

    def neuron(self, L: _Layer, m: dict, src: str, shape: tuple, bias, **over) -> None:
        nm = m.get("neuron", {})
        node = _neuron(L, tuple(shape), bias, nm)
        self.cur = self.g.add(nm.get("name", f"layer{L.i}.neuron"), node.replace(**over) if over else node, [src])
        self.shape = tuple(shape)


def _input_layer(st: _Reader, L: _Layer, m: dict) -> None:
    """The input: spikes or graded values into the input neuron's a_in (or the first
    synapse), or (encoding "bias") signed values that set the input neuron's bias."""
    if st.cur is not None:
        raise L.err("an input layer after the first layer")
    shape = tuple(int(d) for d in L.arr("shape").reshape(-1))
    enc = st.input_encoding or m.get("encoding", "spikes")
    bits = st.input_bits or (m.get("bits") if enc == m.get("encoding") else None) or ENCODING_BITS[enc]
    scale = st.input_scale or float(m.get("scale", 1.0))
    if enc == "counts":  # binned event counts: graded values worth one event each
        enc, scale = "direct", 1.0
    if enc == "bias" and not L.has("neuron"):
        raise L.err("input encoding 'bias' sets the bias of the input layer's neurons, and this input layer "
                    "has no neuron: use --input-encoding spikes or direct")
    transform = {k: int(L.arr(k).reshape(-1)[0]) for k in ("weight", "bias") if L.has(k)}
    if transform and transform != {"weight": 64, "bias": 0}:
        st.g.meta["netx_input_transform"] = transform
        warnings.warn(f"{st.path}: layer 0: the input transform {transform} is not applied (netx does not apply "
                      f"it either): give the input values it produces (lava-dl's examples compute the input "
                      f"neurons' bias mantissas from an image with it)")
    st.cur = st.g.add(m.get("input_name", "input"), IntInput(
        source=m.get("input_source", ""), shape=shape, encoding=enc, bits=int(bits), scale=float(scale)))
    st.shape = shape
    if enc == "bias":
        warnings.warn(f"{st.path}: layer 0: the bias drive x << 6 enters the input neurons through u (du = "
                      f"4096), so v and the spikes are netx's; a state probe's u of this layer holds x << 6 where "
                      f"lava-dl's bias-driven neuron keeps u = 0 (docs/netx.md)")
    if L.has("neuron"):  # netx's input neuron has no a_in: with a bias drive its u stays 0, and the
        # IR carries the bias x << 6 in u instead (du = 4096: no current memory), so v and s are netx's
        st.neuron(L, m, st.cur, shape, None, **({"du": DECAY_ONE} if enc == "bias" else {}))


def _flatten_layer(st: _Reader, L: _Layer, m: dict) -> None:
    st.cur = st.g.add(m.get("name") or f"layer{L.i}.flatten", Flatten(source=m.get("source", "")), [st.cur])
    st.shape = (int(np.prod(st.shape)),)


def _synapse_meta(m: dict) -> tuple[dict, int, np.ndarray | None]:
    sm = m.get("synapse", {})
    return sm, int(sm.get("weight_exp", 0)), (np.asarray(sm["scale"], np.float64) if "scale" in sm else None)


def _conv_layer(st: _Reader, L: _Layer, m: dict) -> None:
    w, shape = L.arr("weight"), st.shape
    sm, wexp, scale = _synapse_meta(m)
    if w.ndim == 5 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.ndim != 4 or len(shape) != 3:
        raise L.err(f"conv weight {w.shape} on input {shape}: need (O, C, kH, kW) weights on a "
                    f"(C, H, W) input")
    groups = int(L.arr("groups").reshape(-1)[0]) if L.has("groups") else 1
    if groups < 1 or shape[0] != w.shape[1] * groups or w.shape[0] % groups:
        raise L.err(f"conv weight {w.shape} with groups={groups} does not fit {shape[0]} input channels")
    if L.has("delay") and L.arr("delay").any():
        raise L.err("conv layer delays: netx ignores them (its Conv block has no delay), so snncc "
                    "does not guess their meaning")
    syn = IntConv(source=sm.get("source", ""), weight=w >> wexp if wexp > 0 else w,
                  scale=scale if scale is not None else np.ones(w.shape[0]),
                  weight_bits=int(sm.get("weight_bits", signed_bits(w))), stride=L.pair("stride", 1),
                  padding=L.pair("padding", 0), dilation=L.pair("dilation", 1), groups=groups,
                  weight_exp=wexp, delay=1, out_bits=int(sm.get("out_bits", 24)))
    _synapse_into_neuron(st, L, m, syn, "conv")


def _dense_layer(st: _Reader, L: _Layer, m: dict) -> None:
    """A dense layer; with several delays, one IntDense per delay value summed by an Add."""
    w, shape, name = L.arr("weight"), st.shape, m.get("name")
    sm, wexp, scale = _synapse_meta(m)
    n_in = int(np.prod(shape))
    if w.ndim == 1 and L.has("shape"):
        w = w.reshape(int(np.prod(L.arr("shape"))), -1)
    if w.ndim != 2 or w.shape[1] != n_in:
        raise L.err(f"dense weight {w.shape} does not read the {n_in} inputs of {shape}")
    delays = _delays(L, *w.shape) if L.has("delay") else np.zeros(w.shape, I64)
    syn_names = []
    for d in np.unique(delays).tolist():
        part = np.where(delays == d, w, 0)
        nm = name or f"layer{L.i}.dense"
        if len(np.unique(delays)) > 1:
            nm = f"{nm}.delay{d}"
        syn_names.append(st.g.add(nm, IntDense(
            source=sm.get("source", ""), weight=part >> wexp if wexp > 0 else part,
            scale=scale if scale is not None else np.ones(w.shape[0]),
            weight_bits=int(sm.get("weight_bits", signed_bits(part))), weight_exp=wexp,
            delay=1 + int(d), out_bits=0), [st.cur]))
    src = syn_names[0] if len(syn_names) == 1 else st.g.add(f"{name or f'layer{L.i}'}.fanin", Add(), syn_names)
    st.neuron(L, m, src, (w.shape[0],), L.arr("bias") if L.has("bias") else None)


def _pool_layer(st: _Reader, L: _Layer, m: dict) -> None:
    """slayer's pool block: every channel's windows summed with one (kH, kW) kernel
    (a 1 -> 1 channel conv applied to each channel), then a neuron: a depthwise IntConv
    (groups = C) with that kernel in every channel, Lava's Conv semantics (24-bit wrap)."""
    shape = st.shape
    if len(shape) != 3:
        raise L.err(f"pool on input {shape}: needs a (C, H, W) input")
    k = L.pair("kernelSize", 1) if L.has("kernelSize") else None
    w = L.arr("weight")
    if k is None:
        if w.ndim < 2:
            raise L.err("a pool layer needs 'kernelSize' (or a (kH, kW) weight)")
        k = tuple(int(d) for d in w.shape[-2:])
    if w.size == 1:
        w = np.full(k, int(w.reshape(-1)[0]), I64)
    elif w.size == k[0] * k[1]:
        w = w.reshape(k)
    else:
        raise L.err(f"pool weight of shape {w.shape} fits neither one value nor the {k} kernel")
    if L.has("delay") and L.arr("delay").any():
        raise L.err("pool layer delays: netx has no pool block to say what they mean, so snncc does not guess")
    c = shape[0]
    _, wexp, _ = _synapse_meta(m)
    syn = IntConv(source=m.get("synapse", {}).get("source", ""), weight=np.ascontiguousarray(
        np.broadcast_to(w, (c, 1) + k)), scale=np.ones(c), weight_bits=signed_bits(w), stride=L.pair("stride", 0)
        if L.has("stride") else k, padding=L.pair("padding", 0), dilation=L.pair("dilation", 1), groups=c,
        weight_exp=0, delay=1, out_bits=24)
    if wexp:
        raise L.err(f"pool weight_exp {wexp}: a pool's kernel is stored as plain integers")
    _synapse_into_neuron(st, L, m, syn, "pool")


def _synapse_into_neuron(st: _Reader, L: _Layer, m: dict, syn, what: str) -> None:
    try:
        out_shape = shape_of(syn, [st.shape])
    except Exception as e:  # noqa: BLE001
        raise L.err(f"{what} does not fit input {st.shape}: {e}") from None
    if L.has("shape") and tuple(L.arr("shape").reshape(-1)) != tuple(out_shape):
        raise L.err(f"declared shape {tuple(L.arr('shape').reshape(-1))} != computed {out_shape}")
    if min(out_shape) < 1:
        raise L.err(f"{what} output shape {out_shape} is empty")
    src = st.g.add(m.get("name") or f"layer{L.i}.{what}", syn, [st.cur])
    st.neuron(L, m, src, out_shape, L.arr("bias") if L.has("bias") else None)


def _average_layer(st: _Reader, L: _Layer, m: dict) -> None:
    """slayer's average block: output k = the mean of the k-th of ``shape[0]`` equal,
    consecutive (C-major) groups of the input neurons. On Lava's schedule: a Dense of 0/1
    group weights (one step of latency) into netx's default readout (the non-leaky
    integrator, v = the group's spike count so far << 6; real value v / (64 g) = the
    mean)."""
    n_out = int(L.arr("shape").reshape(-1)[0]) if L.has("shape") else 0
    n_in = int(np.prod(st.shape))
    if n_out < 1 or n_in % n_out:
        raise L.err(f"average into {n_out} outputs: the {n_in} inputs of {st.shape} must split into equal groups")
    grp = n_in // n_out
    w = (np.arange(n_in)[None, :] // grp == np.arange(n_out)[:, None]).astype(I64)
    src = st.g.add(m.get("name") or f"layer{L.i}.average", IntDense(
        source=m.get("synapse", {}).get("source", ""), weight=w, scale=np.ones(n_out), weight_bits=2, delay=1,
        out_bits=0), [st.cur])
    nm = m.get("neuron", {})
    node = _neuron(L, (n_out,), None, {k: v for k, v in nm.items() if k != "snncc_scale"})
    st.cur = st.g.add(nm.get("name", f"layer{L.i}.neuron"), node.replace(scale=np.array([1.0 / (64 * grp)])), [src])
    st.shape, st.closed = (n_out,), True


#: netx layer type -> reader
LAYERS = {"input": _input_layer, "flatten": _flatten_layer, "conv": _conv_layer, "dense": _dense_layer,
          "pool": _pool_layer, "average": _average_layer}
