"""Frontend: the traced float graph computes what the PyTorch model computes."""
import numpy as np
import pytest
import torch
from torch import nn

from snncc import nn as snn
from snncc.config import CompileConfig
from snncc.compiler import trace
from snncc.errors import UnsupportedLayerError
from snncc.reference.float_sim import run_float

from conftest import randomize_bn


def torch_run(model, x_uint8, steps=4):
    with torch.no_grad():
        return snn.run(model, torch.tensor(x_uint8 / 255.0, dtype=torch.float32), steps=steps).numpy()


def graph_run(model, x_uint8, steps=4):
    g = trace(model, x_uint8.shape[1:], CompileConfig(steps=steps))
    return run_float(g, x_uint8, steps)


def test_example_architecture_traces_to_same_outputs(example_model, pixels):
    g = trace(example_model, (1, 1, 28, 28), CompileConfig())
    kinds = [op.kind for _, op in g.items()]
    assert kinds == ["Input", "Conv", "BatchNorm", "LIF", "AvgPool", "Conv", "BatchNorm", "LIF",
                     "Conv", "BatchNorm", "Add", "LIF", "MaxPool", "Flatten", "Dense"]
    np.testing.assert_allclose(graph_run(example_model, pixels), torch_run(example_model, pixels), atol=1e-4)


NEURONS = {
    "lif_zero": lambda: snn.LIF(beta=0.7, threshold=0.6, reset="zero"),
    "if_subtract": lambda: snn.IF(threshold=0.5),
    "lif_none_reset": lambda: snn.LIF(beta=0.9, threshold=0.4, reset="none"),
    "cuba_current": lambda: snn.LIF(beta=0.8, alpha=0.5, threshold=0.5),
    "ternary": lambda: snn.LIF(beta=0.5, threshold=0.5, state_quant="ternary"),
    "binary": lambda: snn.LIF(beta=0.5, threshold=0.5, state_quant="binary", state_level=0.3),
    "v_init": lambda: snn.LIF(beta=0.5, threshold=0.5, v_init=0.25),
}


@pytest.mark.parametrize("kind", sorted(NEURONS))
def test_neuron_kinds_trace_exactly(kind):
    torch.manual_seed(1)
    model = randomize_bn(nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.BatchNorm1d(16), NEURONS[kind](),
                                       nn.Linear(16, 5)))
    x = np.random.default_rng(1).integers(0, 256, (8, 20)).astype(np.uint8)
    np.testing.assert_allclose(graph_run(model, x, 6), torch_run(model, x, 6), atol=1e-4)


@pytest.mark.parametrize("mech", ["subtract", "zero", "none"])
def test_snntorch_leaky_matches(mech):
    snntorch = pytest.importorskip("snntorch")
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(12, 10), snntorch.Leaky(beta=0.8, threshold=0.5, init_hidden=True,
                                                              reset_mechanism=mech), nn.Linear(10, 4)).eval()
    x = np.random.default_rng(2).integers(0, 256, (16, 12)).astype(np.uint8)
    np.testing.assert_allclose(graph_run(model, x, 8), torch_run(model, x, 8), atol=1e-4)


def test_unsupported_layers_are_all_named():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 4), nn.Sigmoid()))
    with pytest.raises(UnsupportedLayerError) as e:
        trace(model, (4,), CompileConfig())
    msg = str(e.value)
    assert "2 unsupported" in msg
    assert "torch.nn.modules.activation.ReLU at '1'" in msg
    assert "torch.nn.modules.activation.Sigmoid at '2.1'" in msg
    assert "supported:" in msg


def test_untraceable_forward_explains_single_step():
    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            if x.sum() > 0:
                return self.fc(x)
            return x

    with pytest.raises(UnsupportedLayerError, match="single time step"):
        trace(Loop(), (3,), CompileConfig())


def test_snntorch_unsupported_options_explained():
    snntorch = pytest.importorskip("snntorch")
    model = nn.Sequential(nn.Linear(3, 3), snntorch.Leaky(beta=0.5, init_hidden=False))
    with pytest.raises(UnsupportedLayerError, match="init_hidden=True"):
        trace(model, (3,), CompileConfig())


def test_bad_conv_options_named():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding="same"), snn.LIF())
    with pytest.raises(UnsupportedLayerError, match=r"Conv2d at '0'.*padding='same'"):
        trace(model, (1, 8, 8), CompileConfig())
