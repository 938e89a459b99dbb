"""The integer reference interpreter: the specification every target reproduces.

``run(graph, x)`` evaluates an integer graph over time, batch first, in int64 numpy,
with the exact semantics written in docs/semantics.md. Every step evaluates the nodes
in topological order; a synapse with ``delay = d`` delivers at step t what it computed
at step t - d (zero before), which expresses both the zero-latency schedule (d = 0,
like PyTorch) and Loihi's one-step-per-synapse schedule (d = 1)."""
from __future__ import annotations

import contextlib
import functools
import os
from collections import deque

import numpy as np

from ..errors import SnnccError
from ..ir.bounds import Bounds
from ..ir.graph import Graph
from ..ir.nodes import IntLIF
from ..ir.verify import verify
from ..ops import input_range, op_def, records_u


def prepare_input(graph: Graph, x: np.ndarray, steps: int | None = None) -> np.ndarray:
    """Check an integer input batch and return it as int64 (N, T, *shape); a static input
    (N, *shape) becomes a read-only view repeated over T (no copy per step)."""
    inp = graph.node(graph.input_name)
    shape = tuple(inp.shape)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer) and x.dtype != bool:
        raise SnnccError(f"input must be an integer array (uint8 pixels or 0/1 spikes), got dtype {x.dtype}")
    steps = int(steps or graph.meta.get("steps", 1))
    static = x.shape[1:] == shape
    if not static and not (x.ndim == len(shape) + 2 and x.shape[2:] == shape):
        raise SnnccError(f"input has shape {x.shape}; expected (N, T, {', '.join(map(str, shape))}) "
                         f"or (N, {', '.join(map(str, shape))}) for a static input repeated over T")
    if x.shape[0] == 0:
        raise SnnccError(f"the input holds no samples (shape {x.shape}): give at least one")
    if (steps if static else x.shape[1]) < 1:
        raise SnnccError(f"the input has 0 time steps (shape {x.shape}): give at least one time step")
    lo, hi = input_range(inp)
    if x.size and (x.min() < lo or x.max() > hi):
        hint = ("; binned event data (counts > 1 per bin): compile with --input-encoding counts"
                if inp.encoding == "spikes" and x.min() >= 0 else "")
        what = f"signed {inp.bits}-bit bias" if inp.encoding == "bias" else inp.encoding
        raise SnnccError(f"input values lie in [{x.min()}, {x.max()}] but the model's {what} "
                         f"input takes integers in [{lo}, {hi}]{hint}")
    x = x.astype(np.int64)
    return np.broadcast_to(x[:, None], (x.shape[0], steps) + shape) if static else x


#: ``SNNCC_BLAS_THREADS``: the BLAS threads the reference's products may use (default 1;
#: 0 leaves numpy's BLAS as it is, e.g. to OMP_NUM_THREADS). The products are many and
#: small (one per conv row band and step), so BLAS threads spin-wait for each other at
#: every call: on an idle 2-core machine two threads are about 13 % faster, but with the
#: cores busy with other work (a training job and a bench on 2 cores) they were 10-30x
#: slower (PilotNet, 48-112 against 3.5-4.6 ms per step), and a reference run beside a
#: training job, a test suite or another verify is the common case.
BLAS_THREADS_ENV = "SNNCC_BLAS_THREADS"


def blas_threads() -> int:
    """The BLAS thread limit the reference runs under (0: none), from SNNCC_BLAS_THREADS."""
    raw = os.environ.get(BLAS_THREADS_ENV, "1").strip()
    if not raw.isdigit():
        raise SnnccError(f"{BLAS_THREADS_ENV}={raw!r}: give a whole number of threads >= 1, or 0 to leave "
                         f"numpy's BLAS its own setting")
    return int(raw)


@functools.cache
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, built once (finding them takes ms)."""
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


def _blas_limit():
    """A context that limits numpy's BLAS to blas_threads() threads (nothing at 0)."""
    n = blas_threads()
    return contextlib.nullcontext() if n == 0 else _blas_controller().limit(limits=n, user_api="blas")


@functools.cache
def _madvise_hugepage():
    """numpy's switch for asking the kernel for transparent huge pages (None where this
    numpy has none)."""
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return __import__(mod, fromlist=["_set_madvise_hugepage"])._set_madvise_hugepage
        except (ImportError, AttributeError):
            continue
    return None


@contextlib.contextmanager
def _small_pages():
    """numpy's own setting back after the block; inside it, new arrays get no huge pages.

    numpy marks every array of 4 MiB and more for transparent huge pages (madvise), and
    with the kernel's usual ``defrag=madvise`` the first touch of such an array may stall
    in memory compaction. The interpreter writes its large arrays once (each run's int64
    results, the batch's buffers): on the 2-core development machine (a VM) the example's
    1000 test images in batches of 500, between PyTorch runs as bench_c_speed does, took
    6.6-7.1 ms per image with 2.0-4.4 s of system time, and 2.1-2.4 ms (0.3-0.4 s) without
    the huge pages."""
    fn = _madvise_hugepage()
    if fn is None:
        yield
        return
    prev = fn(False)
    try:
        yield
    finally:
        fn(prev)


class Simulation:
    """The state of a run (neurons, delay lines, the step t) for a batch of ``n`` samples:
    :meth:`advance` runs the next steps, so a long run can be taken in pieces.

    ``fast`` (the default): each node runs its op's prepared runner where it has one
    (``OpDef.runner``: weights converted once, buffers kept, float products the bounds
    prove exact) and each neuron the in-place int32 or float64 update where the bounds
    prove it exact (``IntLIFOp.state``); ``fast=False`` runs every op's int64 ``reference`` and the int64
    neuron: the same integers (tests/test_reference.py compares them)."""

    @_small_pages()  # the buffers a run keeps are allocated here
    def __init__(self, graph: Graph, n: int, probe_state: bool = False, fast: bool = True) -> None:
        verify(graph, "int", after="(reference input)")
        self.graph, self.probe_state, self.t = graph, probe_state, 0
        schedule = graph.meta.get("schedule")
        shapes = graph.shapes()
        self.order = graph.order()
        self.ops = {name: graph.node(name) for name in self.order}
        self.defs = {name: op_def(op) for name, op in self.ops.items()}
        self.inputs = {name: graph.inputs(name) for name in self.order}
        bounds = _bounds(graph) if fast else None
        self.states = {name: self.defs[name].state(op, (n,) + shapes[name], *_proof(bounds, name))
                       for name, op in self.ops.items() if isinstance(op, IntLIF)}
        self.fns = {name: self._runner(name, bounds, n, [shapes[s] for s in self.inputs[name]])
                    for name in self.order if self.inputs[name] and name not in self.states}
        self.has_u = {name for name in self.states if records_u(self.ops[name], schedule)}
        self.lines = {name: deque([np.zeros((n,) + shapes[name], np.int64)] * op.delay)
                      for name, op in self.ops.items() if getattr(op, "delay", 0) > 0}
        self.static = self._static_nodes()
        self.cache: dict[str, np.ndarray] | None = None

    def _runner(self, name: str, bounds, n: int, in_shapes: list[tuple]):
        """The function computing node ``name``: its op's runner, else its int64 reference."""
        op, d = self.ops[name], self.defs[name]
        fn = d.runner(op, name, bounds, n, in_shapes) if bounds is not None else None
        return fn or (lambda xs: d.reference(op, [x if x.dtype == np.int64 else x.astype(np.int64) for x in xs]))

    def _static_nodes(self) -> set[str]:
        """The nodes whose computed value is the same at every step of a static input (one
        image repeated over T): the input, and every stateless node (no neuron) fed only by
        such nodes. A delayed node's computation is static too, though not what it delivers
        (its line starts with zeros), so its consumers are not."""
        static: set[str] = set()
        for name in self.order:
            ins = self.inputs[name]
            if name not in self.states and all(s in static and s not in self.lines for s in ins):
                static.add(name)
        return static

    def advance(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the steps of ``x`` (n, k, ...) (int64, checked by :func:`prepare_input`);
        returns this piece of what :func:`run` returns, each (n, k, ...) int64."""
        rec: dict[str, np.ndarray] = {}
        # a static input (a broadcast view, stride 0 over time): compute its static nodes once
        self.cache = {} if x.shape[1] > 1 and x.strides[1] == 0 else None
        with _blas_limit(), _small_pages():
            for k in range(x.shape[1]):
                self._step(x[:, k], _Recorder(rec, k, x.shape[1]))
                self.t += 1
        return rec

    def _step(self, x_t: np.ndarray, rec: "_Recorder") -> None:
        vals: dict[str, np.ndarray] = {}
        for name in self.order:
            if not self.inputs[name]:  # the input node
                vals[name] = x_t
                continue
            ins = [vals[s] for s in self.inputs[name]]
            if name in self.states:
                st = self.states[name]
                vals[name] = st.step(ins[0], self.t)
                rec(name, vals[name])
                if self.probe_state:
                    rec(f"{name}/v", st.v)
                    if name in self.has_u:
                        rec(f"{name}/u", st.u)
                continue
            if self.cache is not None and name in self.static:
                if name not in self.cache:
                    self.cache[name] = self.fns[name](ins)
                out = self.cache[name]
            else:
                out = self.fns[name](ins)
            if name in self.lines:
                self.lines[name].append(out)
                out = self.lines[name].popleft()
            vals[name] = out
        for o in self.graph.outputs:
            op = self.ops[o]
            rec("output", self.states[o].v if isinstance(op, IntLIF) and not op.fires else vals[o])


class _Recorder:
    """Writes step ``k`` of each recorded value into its (n, steps, ...) int64 array of
    ``rec`` (allocated at its first value): no list of per-step arrays to stack."""

    def __init__(self, rec: dict[str, np.ndarray], k: int, steps: int) -> None:
        self.rec, self.k, self.steps = rec, k, steps

    def __call__(self, key: str, val: np.ndarray) -> None:
        arr = self.rec.get(key)
        if arr is None:
            arr = self.rec[key] = np.empty((val.shape[0], self.steps) + val.shape[1:], np.int64)
        arr[:, self.k] = val


def _bounds(graph: Graph):
    """The graph's :class:`Bounds` (the exactness proof of the fast paths), or None where
    they cannot be computed (then every op runs its int64 reference)."""
    try:
        return Bounds(graph)
    except SnnccError:
        return None


def _proof(bounds, name: str) -> tuple:
    """The extra arguments of ``IntLIFOp.state`` for neuron ``name``: the bounds, if they
    hold for it (Bounds.neuron raises where its input leaves exact int64)."""
    if bounds is None:
        return ()
    try:
        bounds.neuron(name)
    except SnnccError:
        return ()
    return bounds, name


def run(graph: Graph, x: np.ndarray, steps: int | None = None, probe_state: bool = False,
        fast: bool = True) -> dict[str, np.ndarray]:
    """Simulate ``graph`` on integer input ``x`` ((N, T, ...) or static (N, ...)).

    Returns a dict: for every neuron layer ``name`` its spikes (N, T, ...) as int64, with
    ``probe_state`` also ``name/v`` and ``name/u`` (state after each step; u of every
    neuron on Lava's schedule, else of those with a current state: ``ops.records_u``), and
    ``output``: the network output per step (a readout's v, or the output spikes).
    ``fast=False``: the straightforward int64 evaluation of every node (Simulation)."""
    verify(graph, "int", after="(reference input)")
    x = prepare_input(graph, x, steps)
    return Simulation(graph, x.shape[0], probe_state, fast).advance(x)


def predict(graph: Graph, result: dict[str, np.ndarray]) -> np.ndarray:
    """Class prediction from a run: argmax over classes of the final readout potential,
    or of the spike count when the output layer fires."""
    out = result["output"].reshape(result["output"].shape[:2] + (-1,))
    op = graph.node(graph.outputs[0])
    if isinstance(op, IntLIF) and not op.fires:
        return out[:, -1].argmax(axis=-1)
    return out.sum(1).argmax(-1)
