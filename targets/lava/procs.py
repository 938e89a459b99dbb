"""Small custom Lava processes used by snncc's generated ``network.py``.

The emitter copies this file next to ``network.py`` as ``snncc_lava_procs.py`` so that
the generated code needs only lava-nc and numpy. It defines:

* ``SnnccLIF``: the integer LIF of the snncc IR (``snncc.ir.nodes.IntLIF``) for neuron
  kinds Lava's ``LIF`` cannot express (subtract or no reset, ternary/binary membrane,
  non-firing readout, per-channel threshold, other shifts, widths or overflow modes).
  Its ``fixed_pt`` CPU model performs the IntLIF step exactly as snncc's reference
  interpreter (``snncc.ops.neurons.NeuronState.step``). SIMULATION ONLY: it is
  not a native Loihi 2 neuron.
* ``Recorder``: a sink that stores what it receives (spikes, or any graded vector) and,
  through RefPorts, the neuron state ``v`` / ``u`` after every step, and writes them to
  one ``.npz`` file at the last step. This avoids ``Var.get`` (which moves one element
  per message, ~44 us each).

Both follow Lava's ``LoihiProtocol``: ``run_spk`` once per step, RefPort reads in the
post-management phase, i.e. after every process finished step t.
"""
from __future__ import annotations

import os

import numpy as np

try:  # the import shim (must precede the lava imports): the copy beside network.py ...
    import snncc_lava_shim  # noqa: F401
except ImportError:  # ... or, imported from the snncc package itself, the original
    from . import _shim  # noqa: F401
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

DECAY_SHIFT = 12
DECAY_ONE = 1 << DECAY_SHIFT


# ------------------------------------------------------------------------ integer helpers
def decay(x: np.ndarray, d: int) -> np.ndarray:
    """sign(x * (4096 - d)) * (|x * (4096 - d)| >> 12): rounds toward zero."""
    p = x * (DECAY_ONE - d)
    return np.sign(p) * (np.abs(p) >> DECAY_SHIFT)


def overflow(x: np.ndarray, bits: int, mode: str) -> np.ndarray:
    m = 1 << (bits - 1)
    if mode == "saturate":
        return np.clip(x, -(m - 1), m - 1)
    if mode == "wrap":
        return ((x + m) & ((1 << bits) - 1)) - m
    if mode == "wrap_lava":
        return np.where(x > m, x - 2 * m, np.where(x <= -m, x + 2 * m, x))
    raise ValueError(f"unknown overflow mode {mode!r}")


def state_quant(v: np.ndarray, level: np.ndarray, kind: str) -> np.ndarray:
    if kind == "none":
        return v
    q = (2 * v >= level).astype(np.int64)
    if kind == "ternary":
        q = q - (2 * v <= -level).astype(np.int64)
    return q * level


# ------------------------------------------------------------------------------ SnnccLIF
class SnnccLIF(AbstractProcess):
    """snncc's integer LIF (simulation only; not a native Loihi 2 neuron).

    Array parameters (threshold, bias, reset_value, v_init, state_level) are given at
    full neuron shape; scalars as in ``snncc.ir.nodes.IntLIF`` (``du`` in IR form: the
    decay factor is (4096 - du) / 4096, so du = 4096 means no current state).
    ``reset_interval`` > 0: u = v = 0 before step t (0-based: Lava's time_step - 1) when
    t % reset_interval == reset_offset, as IntLIF (Lava's LIFReset counts from 1)."""

    def __init__(self, *, shape, threshold, bias, reset_value, v_init, state_level,
                 du: int, dv: int, act_shift: int, reset: str, state_quant: str,
                 u_bits: int, u_overflow: str, v_bits: int, v_overflow: str, fires: bool,
                 reset_interval: int = 0, reset_offset: int = 0, u_bias=0, name: str | None = None) -> None:
        super().__init__(shape=shape, du=int(du), dv=int(dv), act_shift=int(act_shift),
                         reset=reset, state_quant=state_quant, u_bits=int(u_bits),
                         u_overflow=u_overflow, v_bits=int(v_bits), v_overflow=v_overflow,
                         fires=bool(fires), reset_interval=int(reset_interval),
                         reset_offset=int(reset_offset), name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=np.zeros(shape, np.int64))
        self.v = Var(shape=shape, init=np.asarray(v_init, np.int64))
        self.threshold = Var(shape=shape, init=np.asarray(threshold, np.int64))
        self.bias = Var(shape=shape, init=np.asarray(bias, np.int64))
        self.reset_value = Var(shape=shape, init=np.asarray(reset_value, np.int64))
        self.state_level = Var(shape=shape, init=np.asarray(state_level, np.int64))
        self.u_bias = Var(shape=shape, init=np.broadcast_to(np.asarray(u_bias, np.int64), shape).copy())


@implements(proc=SnnccLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PySnnccLIFModelFixed(PyLoihiProcessModel):
    """Bit-accurate (int64) IntLIF step, the same arithmetic as snncc's reference."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    threshold: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    reset_value: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    state_level: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)
    u_bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=32)

    def run_spk(self) -> None:
        p = self.proc_params
        a = np.asarray(self.a_in.recv()).astype(np.int64)
        if p["reset_interval"] and (self.time_step - 1) % p["reset_interval"] == p["reset_offset"]:
            self.u[:] = 0
            self.v[:] = 0
        u = overflow(decay(self.u.astype(np.int64), p["du"]) + (a << p["act_shift"]) + self.u_bias,
                     p["u_bits"], p["u_overflow"])
        v = overflow(decay(self.v.astype(np.int64), p["dv"]) + u + self.bias,
                     p["v_bits"], p["v_overflow"])
        if p["fires"]:
            s = v > self.threshold
            if p["reset"] == "zero":
                v = np.where(s, 0, v)
            elif p["reset"] == "subtract":
                v = np.where(s, v - self.reset_value, v)
        else:
            s = np.zeros(v.shape, bool)
        self.u[:] = u
        self.v[:] = state_quant(v, self.state_level, p["state_quant"])
        self.s_out.send(s.astype(np.int32))


# ------------------------------------------------------------------------------ Recorder
class Recorder(AbstractProcess):
    """Records ``num_steps`` steps of an input vector (spikes) and, optionally, of the
    Vars connected to its RefPorts ``ref_v`` / ``ref_u``; at the last step writes
    ``path`` (an .npz with arrays ``s``, ``v``, ``u`` of shape (num_steps, *shape))."""

    def __init__(self, *, shape, num_steps: int, path: str, record_v: bool = False,
                 record_u: bool = False, name: str | None = None) -> None:
        super().__init__(shape=shape, num_steps=int(num_steps), path=str(path),
                         record_v=bool(record_v), record_u=bool(record_u), name=name)
        self.a_in = InPort(shape=shape)
        self.ref_v = RefPort(shape=shape)
        self.ref_u = RefPort(shape=shape)


@implements(proc=Recorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi", "floating_pt")
class PyRecorderModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=32)
    ref_v: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int64, precision=32)
    ref_u: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int64, precision=32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        n, shape = proc_params["num_steps"], tuple(proc_params["shape"])
        self.rec = {"s": np.zeros((n,) + shape, np.int64)}
        if proc_params["record_v"]:
            self.rec["v"] = np.zeros((n,) + shape, np.int64)
        if proc_params["record_u"]:
            self.rec["u"] = np.zeros((n,) + shape, np.int64)

    def run_spk(self) -> None:
        self.rec["s"][self.time_step - 1] = self.a_in.recv()

    def post_guard(self) -> bool:
        return True

    def run_post_mgmt(self) -> None:
        t = self.time_step - 1
        if "v" in self.rec:
            self.rec["v"][t] = np.asarray(self.ref_v.read())
        if "u" in self.rec:
            self.rec["u"][t] = np.asarray(self.ref_u.read())
        if self.time_step == self.proc_params["num_steps"]:
            tmp = self.proc_params["path"] + ".part.npz"
            np.savez(tmp, **self.rec)
            os.replace(tmp, self.proc_params["path"])
