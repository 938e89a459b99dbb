"""The C target: a standalone C99 project (static buffers, packed weights, no floats,
no malloc) that reproduces the reference interpreter bit for bit, on the host and on an
emulated Arm Cortex-M4 (m4.py).

    emit(graph, out_dir) -> list[Path]       # model.c/.h, main.c, Makefile, runtime, board files, manifest
    simulate(out_dir, x, probe_state=False)  # build if needed, run, same dict as the reference
"""
from .emitter import emit
from .runner import build, simulate


def runs(out_dir):
    """The harness built from model.c, with and without state probes, and, where the Arm
    toolchain and QEMU are installed, the Cortex-M4 build under QEMU (with state probes)."""
    from . import m4

    arts = [("snncc_model", lambda x: simulate(out_dir, x, probe_state=False), False)]
    if not not_run(out_dir):
        arts.append(("snncc_model.elf (cortex-m4, qemu)", lambda x: m4.simulate(out_dir, x, probe_state=True), True))
    arts.append(("snncc_model --probe", lambda x: simulate(out_dir, x, probe_state=True), True))
    return arts


ARCHS = ("cortex-m4",)


def simulate_arch(out_dir, x, probe_state: bool = False, arch: str = "cortex-m4"):
    """simulate on an emulated machine (ARCHS): the Cortex-M4 under QEMU (m4.py)."""
    from . import m4

    return m4.simulate(out_dir, x, probe_state=probe_state)


def arch_note(out_dir, arch: str):
    from . import m4

    st = m4.last_stats(out_dir)
    return (f"{arch}: {st['per_inference']:,.0f} instructions per inference ({st['per_step']:,.0f} per step, "
            f"T = {st['steps']}; QEMU icount)") if st else None


def not_run(out_dir):
    """{artifact: why} for what `snncc verify` cannot run here: the M4 path without its
    tools, or a model that does not fit the part (its link says so)."""
    from . import m4

    why = m4.available() or m4.unfit(out_dir, probe_state=True)  # the artifact runs with state probes
    return {"snncc_model.elf (cortex-m4, qemu)": why} if why else {}


__all__ = ["emit", "simulate", "build"]


def report(out_dir, memory: dict, x=None):
    """The C target's part of `snncc report`: ({...} for --json, text lines).

    The bytes of the buffers model.c declares (c_manifest.json) beside SpQuant-SNN Eq. 28
    (``memory``: the report's "memory" entry); where the Arm toolchain and QEMU are
    installed, flash and RAM of the Cortex-M4 build (arm-none-eabi-size) and the
    instructions per inference counted by the emulator (the first sample of ``x``, else
    one random input)."""
    import json
    from pathlib import Path

    from . import m4
    from .emitter import MANIFEST

    man = json.loads((Path(out_dir) / MANIFEST).read_text())
    keys = ("weights_bytes", "constant_bytes", "state_bytes", "spike_bytes", "other_static_bytes", "arena_bytes")
    buf = {k: int(man.get(k, 0)) for k in keys}
    total = sum(buf.values())
    eq28 = int(memory["total_bytes"])
    rep = {"buffers": buf, "total_bytes": total, "eq28_bytes": eq28, "ratio_to_eq28": total / eq28 if eq28 else None}
    lines = [f"C target buffers: {total / 1024:.2f} KiB = {total / eq28:.3f} x Eq. 28 {eq28 / 1024:.2f} KiB "
             f"(weights {buf['weights_bytes'] / 1024:.2f}, neuron constants {buf['constant_bytes'] / 1024:.2f}, "
             f"state {buf['state_bytes'] / 1024:.2f}, spikes {buf['spike_bytes'] / 1024:.2f}, "
             f"other {buf['other_static_bytes'] / 1024:.2f}, arena {buf['arena_bytes'] / 1024:.2f} KiB)"]
    if man.get("probe_state_bytes"):  # not in the deployed build: only the harness for --probe state has it
        rep["probe_state_bytes"] = int(man["probe_state_bytes"])
        lines.append(f"  (the state-probing build, -DSNNCC_PROBE_STATE, adds {rep['probe_state_bytes'] / 1024:.2f} KiB "
                     "of state: u of the du = 4096 neurons, which only --probe state reads)")
    if man.get("input_cache_bytes"):  # the host harness's build only: the deployed one has none of it
        rep["input_cache_bytes"] = int(man["input_cache_bytes"])
        lines.append(f"  (the host harness, built with -DSNNCC_INPUT_CACHE, adds {rep['input_cache_bytes'] / 1024:.2f} KiB: "
                     "the sums of the layers reading the input, kept while it stays the same)")
    why = m4.available() or m4.unfit(out_dir)
    if why:
        rep["cortex_m4"] = {"not_run": why}
        lines.append(f"cortex-m4: not measured: {why}")
        return rep, lines
    if x is None:
        import numpy as np

        from ...ops import input_range
        from .runner import _input_graph

        g = _input_graph(man)
        inp = g.node(g.input_name)
        lo, hi = input_range(inp)
        x = np.random.default_rng(0).integers(lo, hi + 1, (1, int(man["steps"])) + tuple(inp.shape))
    prof = m4.profile(out_dir, x)
    rep["cortex_m4"] = prof
    ipi = prof["instructions_per_inference"]
    lines.append(f"cortex-m4 ({prof['board']}, arm-none-eabi-size): flash {prof['flash'] / 1024:.1f} KiB "
                 f"(text {prof['text']} + data {prof['data']} B), RAM {prof['ram'] / 1024:.1f} KiB "
                 f"(data {prof['data']} + bss {prof['bss']} B; stack and heap: 12 KiB more) of 512 / 160 KiB; "
                 + (f"{ipi:,.0f} instructions per inference (T = {prof['steps']}, QEMU icount)" if ipi else
                    "instructions not counted"))
    return rep, lines
