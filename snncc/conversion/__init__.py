"""ANN -> SNN conversion: SNNQ's starting point, a pretrained ANN (docs/conversion.md).

    from snncc.conversion import convert, ConvertConfig
    g = convert(ann, (1, 28, 28), CompileConfig(steps=8), calib=images)   # a float SNN graph

or, the whole flow, ``snncc.compiler.compile(ann, (1, 28, 28), convert=True, calib=images,
conversion=ConvertConfig(...))`` / ``snncc compile ann.pt --convert --calib NAME:N``.

Every activation (ReLU, a clip to [0, c], QCFS; ``activations``) becomes an IF neuron
(no leak, subtract reset, spike at v >= theta, initial membrane v_init x theta, each
spike worth theta); its threshold theta is the activation's clip value where it has one
(QCFS's trained lambda: the value the ANN was trained to saturate at) and otherwise a
percentile of its positive activations on calibration data (``config``). BatchNorm is
folded by the flow's first pass; MaxPool2d after an activation moves before the neuron
(``convert``). The modules: ``activations`` (what converts), ``trace`` (the torch.fx
hook), ``convert`` (checks, max pools, thresholds), ``config`` (ConvertConfig)."""
from __future__ import annotations

from .activations import Act, classify
from .config import ConvertConfig
from .convert import convert

__all__ = ["convert", "ConvertConfig", "Act", "classify"]
