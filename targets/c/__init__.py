"""The C target: a standalone C99 project (static buffers, packed weights, no floats,
no malloc) that reproduces the reference interpreter bit for bit.

    emit(graph, out_dir) -> list[Path]       # model.c/.h, main.c, Makefile, runtime, manifest
    simulate(out_dir, x, probe_state=False)  # build if needed, run, same dict as the reference
"""
from .emitter import emit
from .runner import build, simulate


def runs(out_dir):
    """The harness built from model.c, with and without state probes."""
    return [("snncc_model", lambda x: simulate(out_dir, x, probe_state=False), False),
            ("snncc_model --probe", lambda x: simulate(out_dir, x, probe_state=True), True)]

__all__ = ["emit", "simulate", "build"]
