"""Energy constants used by the SNN literature, each with its source (FACTS.md s. 6).

All figures in picojoules per operation."""
from __future__ import annotations

MODELS = {
    "45nm_fp32": {
        "title": "45 nm, FP32 (Horowitz 2014; SNN papers' E_MAC/E_AC)",
        "source": "M. Horowitz, 'Computing's energy problem', ISSCC 2014: FP32 add 0.9 pJ, mult 3.7 pJ",
        "mac": 4.6, "ac": 0.9,
    },
    "45nm_int": {
        "title": "45 nm, integer (Horowitz 2014)",
        "source": "Horowitz, ISSCC 2014: INT8 mult 0.2 pJ, INT32 add 0.1 pJ (accumulate in 32 bit)",
        "mac": 0.2 + 0.1, "ac": 0.1,
    },
    "7nm_int8": {
        "title": "7 nm, INT8 (BitNet, Wang et al. 2023, Table 2)",
        "source": "Wang et al., 'BitNet', 2023, Table 2 (7 nm): INT8 add 0.007 pJ, mult 0.07 pJ",
        "mac": 0.07 + 0.007, "ac": 0.007,
    },
    "loihi": {
        "title": "Loihi (Davies et al. 2018, Table 2)",
        "source": "Davies et al., 'Loihi', IEEE Micro 2018, Table 2: 23.6 pJ per synaptic spike op "
                  "(min), 52 pJ per inactive / 81 pJ per active neuron update. No published "
                  "per-op figure exists for Loihi 2.",
        "sop": 23.6, "neuron_inactive": 52.0, "neuron_active": 81.0,
    },
}


def energy_pj(model: str, macs: float, acs: float, neuron_updates: float = 0.0, spikes: float = 0.0) -> float:
    m = MODELS[model]
    if model == "loihi":
        return (macs + acs) * m["sop"] + (neuron_updates - spikes) * m["neuron_inactive"] \
            + spikes * m["neuron_active"]
    return macs * m["mac"] + acs * m["ac"]
