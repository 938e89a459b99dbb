"""snncc: compile trained PyTorch spiking networks to bit-exact integer models."""
from ._version import __version__  # noqa: F401


def compile(model, example_input=None, target=None, out="build", config=None, **kw):
    """Compile a trained PyTorch SNN; see :func:`snncc.compiler.compile`."""
    from .compiler import compile as _compile

    return _compile(model, example_input, target=target, out=out, config=config, **kw)


def prune(model, criterion="svs", ratio=0.5, calib_data=None, **kw):
    """Structured channel pruning of a PyTorch SNN -> a smaller module of the same classes
    (QP-SNN's SVS, SCA, L1); see :func:`snncc.frontends.torch_prune.prune`."""
    from .frontends.torch_prune import prune as _prune

    return _prune(model, criterion, ratio, calib_data, **kw)


def save(model, path, input_shape=None):
    """``torch.save(model, path)`` keeping ``input_shape`` (C, H, W) or (N,) in the model, so
    ``snncc compile path`` needs no ``--input-shape``; loads with snncc's safe loader."""
    from .frontends.pytorch import save as _save

    return _save(model, path, input_shape)
