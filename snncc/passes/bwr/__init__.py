"""Block-wise weight rounding (BWR): learned per-weight rounding, block by block.

SNNQ's BWR is BRECQ/AdaRound block reconstruction (docs/quantization.md). Every weight
w (in units of its neuron's shared integer scale sigma, x = w / sigma) may round to the
grid level just below (lo) or just above (hi) it; a continuous variable V per weight
chooses through the rectified sigmoid

    h(V) = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1),   gamma = -0.1, zeta = 1.1
    w_soft = sigma (lo + h(V) (hi - lo)),                    hard: h >= 0.5  <=>  V >= 0

V starts at h(V) = (x - lo) / (hi - lo) (round-to-nearest's soft equivalent) and Adam
minimises, per block,

    L = rec(block(W_soft; inputs), float block(W; float inputs))
        + lambda * sum (1 - |2 h(V) - 1|^beta)       (no regulariser in the warm-up)

with beta annealed from 20 to 2 after a warm-up of 20 % of the iterations, lambda = 0.01.

**Blocks** are neuron units: the synapses into one spiking neuron (Conv/Dense with
folded BatchNorm, pooling on the way, residual Adds, the identity shortcut) plus the
neuron; a residual body (the units between a shortcut's source neuron and the neuron the
shortcut enters) is one block (BRECQ's residual block). ``blocks="layer"`` keeps units
apart.

**Reconstruction target**: the float block's output over all T steps. ``loss="both"``
(default) = membrane + spikes: the summed-over-channels squared error of the
pre-reset membrane potential v_t (dense, informative gradient; each step's v carries
the neuron's own reset history) plus that of the spikes s_t through the arctan surrogate
of snncc.nn.LIF (what the next block actually sees). ``"membrane"`` or ``"spikes"``
alone are available; readouts (non-firing) always use the membrane.

**Inputs** are the quantized network's (earlier blocks already rounded) spikes;
QDrop (``qdrop`` = p) replaces each input element by the float network's with
probability p during training.

**How the result reaches the integer model**: the returned float graph has every
synapse's weights replaced by exactly ``w_int * sigma / unit`` and
``graph.meta["weight_quant"][synapse] = {"scale": sigma, "weight_bits": ...}``;
quantize_synapses then takes sigma as given and recovers w_int = round(w_eff / sigma)
exactly (w_eff / sigma is an integer up to a few ulps). The float graph itself is the
fake-quantized model (run_float on it is the float-domain accuracy of the rounding).

The package: ``config`` (BWRConfig), ``calibration`` (calibration data), ``blocks``
(finding the blocks), ``rounding`` (one synapse's learned rounding and the shared
grids), ``reconstruct`` (the driver, which evaluates blocks with the project's one float
evaluator, :class:`snncc.reference.float_sim.FloatRuntime`, and fits with torch's Adam).
In a compile, BWR is a step of the flow (:mod:`snncc.flow`) between the pipeline's
float passes and its integer passes; its per-block statistics go into the build
manifest.
"""
from __future__ import annotations

from .blocks import Block, find_blocks
from .calibration import calibration_array
from .config import BLOCKS, LOSSES, BWRConfig
from .reconstruct import bwr
from .rounding import GAMMA, ZETA


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB: Linux's VmHWM (reset by exec, unlike
    getrusage's ru_maxrss, which a child started by a big parent inherits), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    import sys

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


__all__ = ["BWRConfig", "bwr", "find_blocks", "calibration_array", "peak_rss_mb", "Block", "BLOCKS", "LOSSES",
           "GAMMA", "ZETA"]
