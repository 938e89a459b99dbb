"""snncc: compile trained PyTorch spiking networks to bit-exact integer models."""
from ._version import __version__  # noqa: F401


def compile(model, example_input=None, target=None, out="build", config=None, **kw):
    """Compile a trained PyTorch SNN; see :func:`snncc.compiler.compile`."""
    from .compiler import compile as _compile

    return _compile(model, example_input, target=target, out=out, config=config, **kw)
