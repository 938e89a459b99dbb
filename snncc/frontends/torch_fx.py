"""PyTorch frontend: trace a single-step SNN with torch.fx into the float IR.

Neuron modules (snncc.nn.LIF/IF, snntorch.Leaky) are fx leaves. Supported modules:
Conv2d, Linear, BatchNorm1d/2d, AvgPool2d, MaxPool2d, Flatten, Dropout and Identity
(removed), residual ``+``, torch.flatten / Tensor.flatten / view(N, -1). Anything else is
reported, all at once, with its type and qualified name."""
from __future__ import annotations

import operator

import numpy as np
import torch
from torch import fx, nn

from .. import nn as snn
from ..errors import UnsupportedLayerError
from ..ir.graph import Graph
from ..ir.nodes import LIF, Add, AvgPool, BatchNorm, Conv, Dense, Flatten, Input, MaxPool

SUPPORTED = ("Conv2d, Linear, BatchNorm1d, BatchNorm2d, AvgPool2d, MaxPool2d, Flatten, Dropout, "
             "Identity, snncc.nn.LIF/IF, snntorch.Leaky, residual add (+), torch.flatten")


def _snntorch_leaky():
    try:
        import snntorch
    except ImportError:
        return None
    return snntorch.Leaky


def _is_neuron(m: nn.Module) -> bool:
    leaky = _snntorch_leaky()
    return isinstance(m, snn.LIF) or (leaky is not None and isinstance(m, leaky))


class _Tracer(fx.Tracer):
    def __init__(self, leaf=None) -> None:
        super().__init__()
        self.leaf = leaf  # more leaf modules (ANN conversion: activation modules such as QCFS)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return _is_neuron(m) or (self.leaf is not None and self.leaf(m)) or super().is_leaf_module(m, qualname)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy().copy()


class _Problems(list):
    def add(self, qualname: str, m: object, why: str) -> None:
        self.append(f"{type(m).__module__}.{type(m).__name__} at '{qualname}': {why}")


def _conv(name, m: nn.Conv2d, bad: _Problems):
    if isinstance(m.padding, str):
        bad.add(name, m, f"padding={m.padding!r} is not supported; use explicit integer padding")
        return None
    if m.padding_mode != "zeros":
        bad.add(name, m, f"padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
        return None
    bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels)
    return Conv(source=name, weight=_np(m.weight), bias=bias, stride=_pair(m.stride),
                padding=_pair(m.padding), dilation=_pair(m.dilation), groups=int(m.groups))


def _linear(name, m: nn.Linear, bad):
    bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_features)
    return Dense(source=name, weight=_np(m.weight), bias=bias)


def _batchnorm(name, m, bad):
    if m.running_mean is None:
        bad.add(name, m, "track_running_stats=False: there are no statistics to fold")
        return None
    c = m.num_features
    gamma = _np(m.weight) if m.weight is not None else np.ones(c)
    beta = _np(m.bias) if m.bias is not None else np.zeros(c)
    return BatchNorm(source=name, mean=_np(m.running_mean), var=_np(m.running_var),
                     gamma=gamma, beta=beta, eps=float(m.eps))


def _avgpool(name, m: nn.AvgPool2d, bad):
    k = _pair(m.kernel_size)
    s = _pair(m.stride if m.stride is not None else m.kernel_size)
    p = _pair(m.padding)
    if m.ceil_mode:
        bad.add(name, m, "ceil_mode=True is not supported")
    elif m.divisor_override is not None:
        bad.add(name, m, "divisor_override is not supported")
    elif any(p) and not m.count_include_pad:
        bad.add(name, m, "count_include_pad=False with padding is not supported")
    else:
        return AvgPool(source=name, kernel=k, stride=s, padding=p)
    return None


def _maxpool(name, m: nn.MaxPool2d, bad):
    k = _pair(m.kernel_size)
    s = _pair(m.stride if m.stride is not None else m.kernel_size)
    if any(_pair(m.padding)) or _pair(m.dilation) != (1, 1) or m.ceil_mode or m.return_indices:
        bad.add(name, m, "only MaxPool2d without padding, dilation, ceil_mode or return_indices is supported")
        return None
    return MaxPool(source=name, kernel=k, stride=s, padding=(0, 0))


def _flatten(name, m: nn.Flatten, bad):
    if m.start_dim != 1 or m.end_dim != -1:
        bad.add(name, m, "only Flatten(start_dim=1, end_dim=-1) is supported")
        return None
    return Flatten(source=name)


def _lif(name, m: snn.LIF, bad):
    thr = float(m.threshold)
    level = m.state_level if m.state_level is not None else thr
    return LIF(source=name, beta=m.beta, alpha=m.alpha or 0.0, threshold=np.array([thr]),
               reset=m.reset, reset_value=np.array([thr]), v_init=m.v_init,
               state_quant=m.state_quant or "none", state_level=np.array([float(level)]))


def _leaky(name, m, bad):
    """snntorch.Leaky (single step, init_hidden=True). Its state update is
    mem_t = beta*mem_{t-1} + x_t - r_{t-1}*thr (subtract) or beta*(1-r_{t-1})*mem_{t-1} + x_t
    (zero), r_{t-1} = mem_{t-1} > thr. Reset-to-zero is exactly snncc's hard reset.
    Delayed subtraction of thr equals subtracting thr/beta before the decay."""
    beta = m.beta.detach().flatten()
    thr = m.threshold.detach().flatten()
    problems = []
    if beta.numel() != 1 or thr.numel() != 1:
        problems.append("only scalar beta and threshold are supported")
    if not m.init_hidden:
        problems.append("use init_hidden=True (the module then holds its own membrane between steps)")
    if getattr(m, "inhibition", False):
        problems.append("inhibition=True is not supported")
    if getattr(m, "state_quant", False):
        problems.append("snntorch state_quant is not supported (use snncc's state_quant)")
    gsf = getattr(m, "graded_spikes_factor", 1.0)
    if float(torch.as_tensor(gsf)) != 1.0:
        problems.append("graded spikes are not supported")
    mech = m.reset_mechanism
    b = float(beta.clamp(0, 1)[0]) if beta.numel() == 1 else 0.0
    t = float(thr[0]) if thr.numel() == 1 else 1.0
    if mech == "subtract" and not getattr(m, "reset_delay", True):
        problems.append("reset_mechanism='subtract' with reset_delay=False is not supported")
    if mech == "subtract" and b == 0.0:
        problems.append("reset_mechanism='subtract' with beta=0 has no equivalent (use 'zero')")
    if problems:
        bad.add(name, m, "; ".join(problems))
        return None
    rv = t / b if mech == "subtract" else t
    return LIF(source=name, beta=b, alpha=0.0, threshold=np.array([t]),
               reset={"subtract": "subtract", "zero": "zero", "none": "none"}[mech],
               reset_value=np.array([rv]), v_init=0.0, state_quant="none",
               state_level=np.array([t]))


def _converters():
    conv = {nn.Conv2d: _conv, nn.Linear: _linear, nn.BatchNorm1d: _batchnorm,
            nn.BatchNorm2d: _batchnorm, nn.AvgPool2d: _avgpool, nn.MaxPool2d: _maxpool,
            nn.Flatten: _flatten, snn.LIF: _lif}
    leaky = _snntorch_leaky()
    if leaky is not None:
        conv[leaky] = _leaky
    return conv


PASS_THROUGH = (nn.Dropout, nn.Dropout2d, nn.Identity)


def _is_flatten_call(node: fx.Node) -> bool:
    if node.op == "call_function" and node.target is torch.flatten:
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        return start == 1 and len(node.args) <= 2
    if node.op == "call_method" and node.target == "flatten":
        return (node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)) == 1
    if node.op == "call_method" and node.target in ("view", "reshape"):
        rest = node.args[1:]
        return len(rest) == 2 and rest[1] == -1
    return False


def _module_node(node, m, g: Graph, env: dict, bad, convert: dict, pairs: dict, supported: str) -> None:
    """A call of a leaf module: its IR node (or nothing, for a pass-through), or a problem."""
    src = [env.get(a.name) for a in node.args if isinstance(a, fx.Node)]
    if isinstance(m, PASS_THROUGH):
        env[node.name] = src[0] if src else None
        return
    fn = next((convert[c] for c in type(m).__mro__ if c in convert), None)
    if fn is None:
        bad.add(node.target, m, f"unsupported layer type; supported: {supported}")
        return
    op = fn(node.target, m, bad)
    if op is not None and None not in src:
        env[node.name] = g.add(g.unique(node.target), op, src)
        if getattr(m, "output", False) is True and fn is _leaky:
            pairs[node.name] = node.target  # returns (spikes, membrane)


def _pair_item(node, env: dict, bad, pairs: dict) -> None:
    """``spk, mem = leaky(x)`` of an snntorch Leaky(output=True): its spikes are element 0."""
    if node.args[1] == 0:
        env[node.name] = env.get(node.args[0].name)
    elif node.users:  # an unused `spk, mem = lif(x)` is fine
        bad.append(f"the membrane of snntorch Leaky(output=True) at '{pairs[node.args[0].name]}' "
                   "(element 1 of what it returns) is used; snncc outputs what the model returns last: "
                   "a Leaky's spikes, or, for a model that ends with its Linear layer, that "
                   "layer's output accumulated over time (a non-firing readout's membrane)")


def from_torch(model: nn.Module, input_shape: tuple[int, ...], *, encoding: str = "direct",
               input_scale: float = 1.0 / 255.0, input_bits: int = 8, extra=None,
               supported: str = SUPPORTED) -> Graph:
    """Trace ``model`` (single-step, see snncc.nn) into a float-level Graph.

    ``input_shape`` excludes the batch: (C, H, W) or (N,). ``extra(node, module, g, env,
    bad)`` is tried first on every call node (ANN conversion's activations,
    :mod:`snncc.conversion.trace`): it returns the graph node now standing for the fx
    node, "" when it refused the node (the reason added to ``bad``), or None when the
    node is not its own (its ``is_leaf(module)``, if any, names more leaf modules);
    ``supported`` lists the layers in messages."""
    model = model.eval()
    try:
        traced = _Tracer(getattr(extra, "is_leaf", None)).trace(model)  # an fx.Graph
    except Exception as e:  # noqa: BLE001 - tracing errors are the user's model
        raise UnsupportedLayerError(
            f"torch.fx cannot trace {type(model).__name__}: {e}\n"
            "snncc traces a single time step: forward(x_t) -> output_t, with neuron modules "
            "holding their own state (snncc.nn.LIF or snntorch.Leaky(init_hidden=True)); "
            "loops over time and data-dependent control flow cannot be traced.") from None
    modules = dict(model.named_modules())
    convert = _converters()
    g = Graph()
    env: dict[str, str] = {}
    bad = _Problems()
    pairs: dict[str, str] = {}  # fx node -> module name, for snntorch Leaky(output=True)
    scale = 1.0 if encoding == "spikes" else input_scale
    for node in traced.nodes:
        if extra is not None and node.op.startswith("call_"):
            got = extra(node, modules.get(node.target) if node.op == "call_module" else None, g, env, bad)
            if got is not None:
                env.update({node.name: got} if got else {})
                continue
        if node.op == "placeholder":
            if env:
                bad.append(f"forward takes more than one input ('{node.name}'); snncc compiles one input tensor")
                continue
            env[node.name] = g.add("input", Input(source="input", shape=tuple(input_shape),
                                                  encoding=encoding, scale=scale, bits=input_bits))
        elif node.op == "call_module":
            _module_node(node, modules[node.target], g, env, bad, convert, pairs, supported)
        elif node.op == "call_function" and node.target is operator.getitem \
                and isinstance(node.args[0], fx.Node) and node.args[0].name in pairs:
            _pair_item(node, env, bad, pairs)
        elif node.op == "call_function" and node.target in (operator.add, torch.add) \
                and all(isinstance(a, fx.Node) for a in node.args) and not node.kwargs:
            src = [env.get(a.name) for a in node.args]
            if None not in src:
                env[node.name] = g.add(g.unique(node.name), Add(source=node.name), src)
        elif _is_flatten_call(node):
            src = env.get(node.args[0].name)
            if src is not None:
                env[node.name] = g.add(g.unique(node.name), Flatten(source=node.name), [src])
        elif (node.op == "call_method" and node.target == "size") or (node.op == "get_attr" and not node.users):
            continue  # shapes, and the parameters torch.fx lists for a leaf module
        elif node.op == "output":
            out = node.args[0]
            if not isinstance(out, fx.Node):
                bad.append("forward must return a single tensor (the output of one step)")
            elif env.get(out.name):
                g.outputs = [env[out.name]]  # an output=True Leaky: its spikes (element 0)
        else:
            what = getattr(node.target, "__name__", str(node.target))
            bad.append(f"operation {node.op} '{what}' (graph node '{node.name}', from "
                       f"{node.meta.get('stack_trace', '').strip().splitlines()[-1:] or 'forward'}) is not supported; "
                       f"supported: {supported}")
    if bad:
        raise UnsupportedLayerError(
            f"cannot compile {type(model).__name__}: {len(bad)} unsupported layer(s)/operation(s):\n"
            + "\n".join(f"  - {b}" for b in bad))
    return g
