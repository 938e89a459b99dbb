"""Float simulation of a float-level graph (torch, float32: the precision models train in), used to measure the float
model's accuracy from a build directory and to check the frontend against PyTorch.
Same step order as snncc.nn.LIF and the integer reference."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph


def run_float(graph: Graph, x: np.ndarray, steps: int | None = None, batch: int = 256) -> np.ndarray:
    """Output per step, (N, T, ...) float32 (the precision models are trained in): x is the integer input as for the reference,
    scaled by the input node's ``scale``."""
    import torch
    import torch.nn.functional as F

    inp = graph.node(graph.input_name)
    steps = steps or int(graph.meta.get("steps", 1))
    x = np.asarray(x)
    static = x.shape[1:] == tuple(inp.shape)
    order = graph.order()
    ins = {n: graph.inputs(n) for n in order}
    outs = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            xb = torch.as_tensor(x[i:i + batch].astype(np.float32)) * float(inp.scale)
            state: dict[str, list] = {}
            per_t = []
            for t in range(steps if static else xb.shape[1]):
                vals = {}
                for n in order:
                    op = graph.node(n)
                    a = [vals[s] for s in ins[n]]
                    k = op.kind
                    if k == "Input":
                        vals[n] = xb if static else xb[:, t]
                    elif k == "Conv":
                        vals[n] = F.conv2d(a[0], torch.as_tensor(op.weight, dtype=torch.float32), torch.as_tensor(op.bias, dtype=torch.float32),
                                           op.stride, op.padding, op.dilation, op.groups)
                    elif k == "Dense":
                        vals[n] = F.linear(a[0], torch.as_tensor(op.weight, dtype=torch.float32), torch.as_tensor(op.bias, dtype=torch.float32))
                    elif k == "BatchNorm":
                        c = (1, -1) + (1,) * (a[0].dim() - 2)
                        s = torch.as_tensor(op.gamma / np.sqrt(op.var + op.eps), dtype=torch.float32).reshape(c)
                        vals[n] = (a[0] - torch.as_tensor(op.mean, dtype=torch.float32).reshape(c)) * s + torch.as_tensor(op.beta, dtype=torch.float32).reshape(c)
                    elif k == "AvgPool":
                        vals[n] = F.avg_pool2d(a[0], op.kernel, op.stride, op.padding)
                    elif k == "MaxPool":
                        vals[n] = F.max_pool2d(a[0], op.kernel, op.stride)
                    elif k == "Flatten":
                        vals[n] = a[0].flatten(1)
                    elif k == "Add":
                        vals[n] = sum(a[1:], a[0])
                    elif k == "LIF":
                        vals[n] = _lif_step(op, a[0], state.setdefault(n, [None, None]), torch)
                    else:
                        raise ValueError(f"float simulation has no rule for {k}")
                o = graph.outputs[0]
                op = graph.node(o)
                per_t.append(state[o][1] if op.kind == "LIF" and not op.fires else vals[o])
            outs.append(torch.stack(per_t, 1).numpy())
    return np.concatenate(outs, 0)


def _lif_step(op, x, st, torch):
    c = (1, -1) + (1,) * (x.dim() - 2)

    def ch(a):
        return torch.as_tensor(np.asarray(a, dtype=np.float32)).reshape(c)

    if st[1] is None:
        st[0] = torch.zeros_like(x)
        st[1] = torch.full_like(x, op.v_init)
    u = op.alpha * st[0] + x
    st[0] = u
    v = op.beta * st[1] + u + ch(op.bias)
    if op.fires:
        s = (v > ch(op.threshold)).to(v.dtype)
        if op.reset == "zero":
            v = v * (1 - s)
        elif op.reset == "subtract":
            v = v - s * ch(op.reset_value)
    else:
        s = torch.zeros_like(v)
    if op.state_quant != "none":
        lvl = ch(op.state_level)
        q = torch.sign(v) * torch.floor(torch.abs(v) / lvl + 0.5)
        v = q.clamp(-1 if op.state_quant == "ternary" else 0, 1) * lvl
    st[1] = v
    return s
