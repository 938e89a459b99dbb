"""Property: any small supported PyTorch SNN compiles to a valid integer model whose
reference run is deterministic and, at 8 bits, predicts like the float model on most
inputs."""
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from snncc import nn as snn
from snncc.compiler import compile_graph, trace
from snncc.config import CompileConfig
from snncc.ir.verify import problems
from snncc.reference import interpreter as R
from snncc.reference.float_sim import run_float

from conftest import randomize_bn


@st.composite
def models(draw):
    c1 = draw(st.integers(2, 6))
    c2 = draw(st.integers(2, 6))
    reset = draw(st.sampled_from(["zero", "subtract", "none"]))
    beta = draw(st.sampled_from([0.5, 0.9, 1.0]))
    pool = draw(st.sampled_from([nn.AvgPool2d(2), nn.MaxPool2d(2)]))
    residual = draw(st.booleans())
    layers = [nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), snn.LIF(beta=beta, threshold=0.5, reset=reset), pool,
              nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), snn.LIF(beta=beta, threshold=0.5, reset=reset)]
    if residual:
        layers += [snn.Residual(nn.Conv2d(c2, c2, 3, padding=1), nn.BatchNorm2d(c2)), snn.LIF(beta=beta, threshold=0.5)]
    layers += [nn.Flatten(), nn.Linear(c2 * 16, 5)]
    torch.manual_seed(draw(st.integers(0, 1000)))
    return randomize_bn(nn.Sequential(*layers), seed=draw(st.integers(0, 1000)))


@settings(max_examples=12, deadline=None)
@given(model=models(), bits=st.sampled_from([8, 4]), granularity=st.sampled_from(["channel", "tensor"]),
       state_quant=st.sampled_from(["none", "ternary"]))
def test_random_models_compile_and_run(model, bits, granularity, state_quant):
    cfg = CompileConfig(steps=3, weight_bits=bits, granularity=granularity, state_quant=state_quant)
    fg = trace(model, (1, 8, 8), cfg)
    g = compile_graph(fg, cfg)
    assert problems(g, "int") == []
    x = np.random.default_rng(0).integers(0, 256, (16, 1, 8, 8))
    a, b = R.run(g, x), R.run(g, x)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    if bits == 8 and state_quant == "none":
        want = run_float(fg, x, 3).sum(1).argmax(-1)
        assert (R.predict(g, a) == want).mean() >= 0.6
