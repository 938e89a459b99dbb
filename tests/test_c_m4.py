"""The C target on an Arm Cortex-M4 (snncc.targets.c.m4): the same model.c, cross-built
with arm-none-eabi-gcc and run on QEMU's mps2-an386 board, is bit-exact with the
reference. Skipped, with the reason, where the toolchain or QEMU is missing
(`make toolchain-arm` installs them; `make test` does so first)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from snncc.errors import SnnccError
from snncc.reference import interpreter
from snncc.targets import c as ctarget
from snncc.targets.c import m4

sys.path.insert(0, str(Path(__file__).parent))
import conformance  # noqa: E402

WHY = m4.available()
needs_m4 = pytest.mark.skipif(WHY is not None, reason=f"Cortex-M4 path not available: {WHY}")
FAST_CASES = ("ternary_membrane", "wide_accumulator", "residual_add")
ROOT = Path(__file__).resolve().parents[1]


def _check(name: str, root: Path) -> str | None:
    """None if the M4 run of conformance case ``name`` equals the reference, else why not."""
    g = conformance.CASES[name]()
    out = root / name
    ctarget.emit(g, out)
    x = conformance.random_input(g, 2, np.random.default_rng(zlib.crc32(name.encode())))
    ref = interpreter.run(g, x, probe_state=True)
    got = m4.simulate(out, x, probe_state=True)
    if sorted(got) != sorted(ref):
        return f"{name}: keys {sorted(got)} != {sorted(ref)}"
    bad = [k for k in ref if not np.array_equal(got[k], ref[k])]
    return f"{name}: {bad} differ" if bad else None


def _run_cases(names, root: Path) -> None:
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        errors = [e for e in pool.map(lambda n: _check(n, root), names) if e]
    assert not errors, errors


@needs_m4
@pytest.mark.slow  # three cross builds under QEMU (~15 s): the fast suite's budget is 5 min
def test_m4_is_bit_exact_on_representative_cases(tmp_path):
    """Ternary codes in bit planes, 64-bit accumulators on a 32-bit core, a residual add."""
    _run_cases(FAST_CASES, tmp_path)
    st = m4.last_stats(tmp_path / FAST_CASES[0])
    assert st["instructions"] > 0 and st["per_inference"] == st["instructions"] / st["samples"]


@needs_m4
@pytest.mark.slow  # 21 cross builds (~5 s each on 2 cores)
def test_m4_is_bit_exact_on_the_conformance_suite(tmp_path):
    _run_cases(sorted(conformance.CASES), tmp_path)


@needs_m4
@pytest.mark.slow  # compiles the shipped example (~30 s)
def test_example_fits_the_part_and_verifies(tmp_path):
    """The shipped 8-bit example fits 512 KB flash / 160 KB RAM, `verify` runs the M4 build
    and `report` gives its flash, RAM and instructions per inference."""
    from snncc.builds import load_build
    from snncc.compiler import compile as do_compile
    from snncc.reports.report import build_report
    from snncc.verify import verify_build

    out = tmp_path / "b"
    do_compile(str(ROOT / "examples" / "fashion_mnist" / "model.pt"), target=["c"], out=str(out),
               example_input=(1, 28, 28))
    g, man = load_build(out)
    x = np.load(ROOT / "examples" / "fashion_mnist" / "samples.npz")["x"][:2]
    res, _ = verify_build(out, g, man, x)
    assert res["c"]["match"] and "snncc_model.elf (cortex-m4, qemu)" in res["c"]["artifacts"]
    rep, lines = ctarget.report(out / "c", build_report(g)["memory"], x)
    p = rep["cortex_m4"]
    assert p["flash"] <= 512 * 1024 and p["ram"] + 12 * 1024 <= 160 * 1024
    assert p["instructions_per_inference"] > 0 and "instructions per inference" in lines[-1]
    from snncc.cli import main

    np.savez(tmp_path / "x.npz", x=x)
    assert main(["simulate", str(out), "--target", "c", "--arch", "cortex-m4", "--input", str(tmp_path / "x.npz"),
                 "--out", str(tmp_path / "r.npz")]) == 0
    got = np.load(tmp_path / "r.npz")
    assert np.array_equal(got["output"], interpreter.run(g, x)["output"])
    assert main(["simulate", str(out), "--target", "reference", "--arch", "cortex-m4", "--input",
                 str(tmp_path / "x.npz"), "--out", str(tmp_path / "r2.npz")]) == 2


@needs_m4
@pytest.mark.slow  # two cross builds (~12 s); the host's test_c_target checks the same declarations
def test_m4_deploys_without_probe_only_state_and_probes_with_it(tmp_path):
    """On Lava's schedule u of a du = 4096 layer is only for the state probes: the M4 build
    that `report` measures (snncc_model.elf) has no RAM for it, the one that runs with state
    probes (snncc_model_probe.elf) has and records it bit-exactly."""
    g = conformance.lava_probe_only_u()
    ctarget.emit(g, tmp_path)
    man = json.loads((tmp_path / "c_manifest.json").read_text())
    x = conformance.random_input(g, 2, np.random.default_rng(7))
    for probe_state in (False, True):
        ref = interpreter.run(g, x, probe_state=probe_state)
        got = m4.simulate(tmp_path, x, probe_state=probe_state)
        assert sorted(got) == sorted(ref) and all(np.array_equal(got[k], ref[k]) for k in ref)
    assert (tmp_path / m4.ELF).is_file() and (tmp_path / m4.ELF_PROBE).is_file()
    deployed = m4.size(tmp_path)
    out = subprocess.run([m4.ARM_SIZE, str(tmp_path / m4.ELF_PROBE)], check=True, capture_output=True, text=True)
    probing_bss = int(out.stdout.splitlines()[1].split()[2])
    assert probing_bss - deployed["bss"] >= man["probe_state_bytes"] > 0


def test_missing_toolchain_is_a_clear_message(tmp_path, monkeypatch):
    """Without the tools: simulate says what is missing and how to install it, and
    verify lists the M4 run as not run, with the reason (it still checks the host)."""
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    why = m4.available()
    assert why and "arm-none-eabi-gcc" in why and "qemu-system-arm" in why and "make toolchain-arm" in why
    with pytest.raises(SnnccError, match="make toolchain-arm"):
        m4.simulate(tmp_path, np.zeros((1, 1, 1), np.int64))
    assert ctarget.not_run(tmp_path) == {"snncc_model.elf (cortex-m4, qemu)": why}
    assert [a[0] for a in ctarget.runs(tmp_path)] == ["snncc_model", "snncc_model --probe"]


@pytest.mark.slow  # ~7 s: a 60000 x 64 dense layer, compiled twice
@needs_m4
def test_a_model_too_big_for_the_part_is_not_run_with_the_reason(tmp_path):
    """A model whose state does not fit the M4's 160 KB of RAM: verify checks the host
    harness and lists the M4 run as not run, with the linker's figure."""
    from snncc.ir.graph import Graph
    from snncc.ir.nodes import IntDense, IntInput, IntLIF

    g = Graph()
    g.meta.update(name="big", steps=2)
    x = g.add("x", IntInput(shape=(64,), bits=1, encoding="spikes"))
    d = g.add("fc", IntDense(weight=np.ones((60000, 64), np.int64), weight_bits=2), [x])
    g.outputs = [g.add("lif", IntLIF(threshold=np.array([64], np.int64)), [d])]
    ctarget.emit(g, tmp_path)
    why = ctarget.not_run(tmp_path)["snncc_model.elf (cortex-m4, qemu)"]
    assert "does not fit" in why and "overflowed by" in why
    assert [a[0] for a in ctarget.runs(tmp_path)] == ["snncc_model", "snncc_model --probe"]
