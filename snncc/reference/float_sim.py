"""The float model in torch (float32: the precision models train in): one evaluator for
measuring a build's float accuracy, checking the frontends against PyTorch, and the
learned rounding (:mod:`snncc.passes.bwr`).

A feed-forward graph is evaluated layer by layer over all time steps at once: a value
is a pair (tensor, static), static meaning one (N, ...) tensor that holds at every step
(a static image and everything computed from it alone), else (N, T, ...). Stateless ops
fold time into the batch; neurons loop over time (``snncc.ops.neurons``). Each node's
float semantics is its op table entry (``OpDef.float``); the step order is the one of
snncc.nn.LIF and the integer reference."""
from __future__ import annotations

import numpy as np

from ..errors import SnnccError
from ..ir.graph import Graph
from ..ops import op_def


class FloatRuntime:
    """Evaluates float-graph nodes on (tensor, static) values.

    ``weights`` passed to :meth:`run` replace a synapse's weights (a tensor per node name,
    e.g. soft-rounded weights that carry gradients); ``train`` makes neurons spike through
    the arctan surrogate of slope ``slope``. With ``ann`` the graph of a converted ANN is
    evaluated as that ANN (each neuron its activation, one step; ``LIF.ann``), for
    threshold calibration and BWR's ANN mode."""

    def __init__(self, g: Graph, steps: int, device=None, slope: float = 2.0, ann: bool = False):
        import torch
        import torch.nn.functional as F

        self.torch, self.F = torch, F
        self.g = g
        self.steps = steps
        self.device = device
        self.slope = slope
        self.train = False
        self.ann = ann
        self._weights: dict = {}
        self._const: dict = {}

    def const(self, key, arr):
        """A float32 tensor of ``arr`` on the device, made once per key."""
        if key not in self._const:
            self._const[key] = self.torch.as_tensor(np.asarray(arr, np.float32), device=self.device)
        return self._const[key]

    def weight(self, name: str, arr):
        """The weights of synapse ``name``: an override given to :meth:`run`, else its own."""
        return self._weights[name] if name in self._weights else self.const((name, "w"), arr)

    def run(self, nodes: list[str], vals: dict, weights: dict | None = None, train: bool = False,
            want_v: tuple[str, ...] = ()) -> tuple[dict, dict]:
        """Evaluate ``nodes`` (in order) from ``vals`` (name -> (tensor, static)); returns
        (vals, pre-reset membranes of the neurons in ``want_v``, (N, T, ...))."""
        self._weights, self.train = weights or {}, train
        vs = {}
        try:
            for n in nodes:
                op = self.g.node(n)
                d = op_def(op)
                if d.role == "input":
                    raise SnnccError(f"the input node '{n}' is given, not evaluated")
                ins = [vals[s] for s in self.g.inputs(n)]
                if d.role == "neuron" and self.ann:  # the ANN's activation: output = "membrane"
                    y = d.ann(n, op, *ins[0], self)
                    vals[n] = vals[(n, "v")] = (y, False)
                    vs.update({n: y} if n in want_v else {})
                elif d.role == "neuron":
                    s, vpre, vpost = d.float_neuron(n, op, *ins[0], self, keep_post=not op.fires)
                    vals[n] = (s, False)
                    if n in want_v:
                        vs[n] = vpre
                    if vpost is not None:  # a readout's v is its output
                        vals[(n, "v")] = (vpost, False)
                else:
                    vals[n] = d.float(n, op, ins, self)
        finally:
            self._weights, self.train = {}, False
        return vals, vs


def float_batches(graph: Graph, x: np.ndarray, steps: int | None = None, batch: int = 256,
                  want_v: tuple[str, ...] = ()):
    """Evaluate the float model on ``x`` (the integer input as for the reference, scaled by
    the input node's ``scale``) a batch at a time, without gradients: yields (values,
    pre-reset membranes of ``want_v``, steps) per batch (values: name -> (tensor, static))."""
    import torch

    inp_name = graph.input_name
    inp = graph.node(inp_name)
    x = np.asarray(x)
    static = x.shape[1:] == tuple(inp.shape)
    steps = (steps or int(graph.meta.get("steps", 1))) if static else x.shape[1]
    rt = FloatRuntime(graph, steps)
    order = [n for n in graph.order() if n != inp_name]
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            xb = torch.as_tensor(x[i:i + batch].astype(np.float32)) * float(inp.scale)
            vals, vs = rt.run(order, {inp_name: (xb, static)}, want_v=want_v)
            yield vals, vs, steps


def run_float(graph: Graph, x: np.ndarray, steps: int | None = None, batch: int = 256) -> np.ndarray:
    """Output per step, (N, T, ...) float32 (the precision models are trained in): x is the
    integer input as for the reference, scaled by the input node's ``scale``. The output is
    the output node's value, or the membrane of a non-firing readout."""
    (o,) = graph.outputs
    op = graph.node(o)
    key = (o, "v") if op_def(op).role == "neuron" and not op.fires else o
    outs = []
    for vals, _, t in float_batches(graph, x, steps, batch):
        y, st = vals[key]
        if st:
            y = y.unsqueeze(1).expand(-1, t, *y.shape[1:])
        outs.append(y.numpy())
    return np.concatenate(outs, 0)
