"""The C target on an Arm Cortex-M4: the same model.c, main.c and snncc_rt.c, built with
``arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb`` for QEMU's mps2-an386 board (512 KB flash,
160 KB SRAM: board/cortex-m4/m4.ld) and run under ``qemu-system-arm`` with semihosting
for the input and output files (docs/c_runtime.md).

    available()                       None, or why the M4 path cannot run here
    build(out_dir)   -> Path          snncc_model.elf (the link fails if it does not fit;
                                      probe_state=True: snncc_model_probe.elf, -DSNNCC_PROBE_STATE)
    size(out_dir)    -> dict          flash / RAM bytes from arm-none-eabi-size
    simulate(out_dir, x, ...) -> dict the reference's result dict, like runner.simulate
    last_stats(out_dir) -> dict       instructions of this process's last run there (per inference, per step)

Instructions are counted by the emulator: under ``-icount shift=0`` every guest
instruction advances QEMU's virtual clock by exactly 1 ns, and the board's timer (CMSDK
APB timer 0 at 25 MHz) is read around every snncc_reset / snncc_set_input_range /
snncc_step call, so ticks x 40 are the instructions the model executed (the harness's
file I/O excluded), to within 40 instructions per timed call."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ...errors import SnnccError
from ...reference.interpreter import prepare_input
from .emitter import SOURCES
from .runner import PROBE_DEFINE, _input_graph, _manifest, _mode, parse_output, probe_build

ARCH = "cortex-m4"
ELF = "snncc_model.elf"
ELF_PROBE = "snncc_model_probe.elf"  # with the state only the state probes read (runner.probe_build)
ARM_CC = "arm-none-eabi-gcc"
ARM_SIZE = "arm-none-eabi-size"
QEMU = "qemu-system-arm"
BOARD = "mps2-an386"
INSTR_PER_TICK = 40  # 1 ns per instruction (-icount shift=0), 25 MHz timer: 40 ns per tick
FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
         "-ffunction-sections", "-fdata-sections", "-DSNNCC_BOARD")
LINK = ("-nostartfiles", "-T", "m4.ld", "--specs=rdimon.specs", "-Wl,--gc-sections")
BOARD_FILES = ("startup_m4.c", "m4.ld")
INSTALL_HINT = ("install it with `make toolchain-arm` (Debian packages gcc-arm-none-eabi "
                "libnewlib-arm-none-eabi qemu-system-arm)")
TIMEOUT_S = 3600


def available() -> str | None:
    """None when the M4 path can run here, else the reason it cannot."""
    missing = [t for t in (ARM_CC, ARM_SIZE, QEMU) if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not installed; {INSTALL_HINT}"
    return None


def _require() -> None:
    why = available()
    if why:
        raise SnnccError(f"--arch {ARCH} needs the Arm toolchain and QEMU: {why}")


def _sources(out: Path) -> list[Path]:
    return [out / f for f in SOURCES + ("model.h", "snncc_rt.h") + BOARD_FILES]


def build(out_dir: str | Path, probe_state: bool = False) -> Path:
    """Compile and link snncc_model.elf (``probe_state``: snncc_model_probe.elf, with
    PROBE_DEFINE) in ``out_dir``; returns its path."""
    _require()
    out = Path(out_dir)
    missing = [p.name for p in _sources(out) if not p.is_file()]
    if missing:
        raise SnnccError(f"{out} is not an emitted C project for {ARCH}: missing {', '.join(missing)} "
                         "(recompile the build)")
    name = ELF_PROBE if probe_state else ELF
    elf = out / name
    tmp = out / f".{name}.{os.getpid()}"
    defs = (PROBE_DEFINE,) if probe_state else ()
    cmd = [ARM_CC, *FLAGS, *defs, *LINK, "-o", tmp.name, *SOURCES, "startup_m4.c", "-lrdimon"]
    try:
        proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
        if proc.returncode != 0:
            shown = " ".join(cmd).replace(tmp.name, name)
            raise SnnccError(f"{ARCH} build failed in {out} (exit {proc.returncode}):\n  $ {shown}\n"
                             f"{proc.stderr.strip()}")
        os.replace(tmp, elf)
    finally:
        tmp.unlink(missing_ok=True)
    (out / (name + ".stamp")).write_text(_digest(out))
    return elf


def unfit(out_dir: str | Path, probe_state: bool = False) -> str | None:
    """Why the model cannot run on the part (its link says it does not fit flash or RAM),
    or None when it builds (the ELF is then built, as `simulate` would; ``probe_state``:
    the ELF that runs with state probes)."""
    try:
        _elf(Path(out_dir), probe_state)
    except SnnccError as e:
        lines = [ln.split("snncc: ", 1)[1] for ln in str(e).splitlines() if "snncc: the model does not fit" in ln]
        if not lines:
            raise
        over = [ln.strip().split(": ", 1)[-1] for ln in str(e).splitlines() if "overflowed by" in ln]
        return lines[0] + (f" ({'; '.join(over)})" if over else "")
    return None


def _digest(out: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in _sources(out):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _elf(out: Path, probe_state: bool = False) -> Path:
    """The ELF, rebuilt unless it was built from exactly these sources (``probe_state``:
    the one for state probes, where the model needs its own: runner.probe_build)."""
    probing = probe_state and probe_build(_manifest(out))
    name = ELF_PROBE if probing else ELF
    elf, stamp = out / name, out / (name + ".stamp")
    if not elf.is_file() or not stamp.is_file() or stamp.read_text() != _digest(out):
        build(out, probing)
    return elf


def size(out_dir: str | Path) -> dict[str, int]:
    """Sections of snncc_model.elf (``arm-none-eabi-size``, Berkeley format): flash =
    text + data (code, constants, the initial values of .data), RAM = data + bss (the
    stack and newlib's heap come on top: m4.ld keeps 12 KiB for them)."""
    _require()
    elf = _elf(Path(out_dir))
    line = subprocess.run([ARM_SIZE, str(elf)], check=True, capture_output=True, text=True).stdout.splitlines()[1]
    text, data, bss = (int(v) for v in line.split()[:3])
    return {"text": text, "data": data, "bss": bss, "flash": text + data, "ram": data + bss}


def simulate(out_dir: str | Path, x: np.ndarray, probe_state: bool = False, *, steps: int | None = None,
             output_only: bool = False) -> dict[str, np.ndarray]:
    """Run the model on the emulated Cortex-M4 on ``x``: the same result as the reference
    (and as runner.simulate). The run's instruction count is kept for last_stats (in
    memory: a run writes nothing into the build)."""
    _require()
    mode = _mode(probe_state, output_only)
    out = Path(out_dir)
    man = _manifest(out)
    elf = _elf(out, probe_state)
    x = prepare_input(_input_graph(man), x, steps)
    n, t = x.shape[:2]
    size_ = int(np.prod(man["input"]["shape"]))
    with tempfile.TemporaryDirectory(prefix="snncc-m4-") as tmp:
        (Path(tmp) / "in.bin").write_bytes(b"SNNI" + struct.pack("<III", n, t, size_) + x.astype("<i4").tobytes())
        args = [ELF, "in.bin", "out.bin"] + [[], ["--probe"], ["--output-only"]][mode]
        shutil.copyfile(elf, Path(tmp) / ELF)  # the probing ELF too runs under this name
        cmd = [QEMU, "-M", BOARD, "-nographic", "-monitor", "none", "-serial", "none", "-icount", "shift=0",
               "-semihosting-config", "enable=on,target=native," + ",".join(f"arg={a}" for a in args),
               "-kernel", ELF]
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise SnnccError(f"{ELF} on {QEMU} did not finish within {TIMEOUT_S} s") from None
        if proc.returncode != 0 or not (Path(tmp) / "out.bin").is_file():
            raise SnnccError(f"{ELF} on {QEMU} failed (exit {proc.returncode}):\n"
                             f"{(proc.stdout + proc.stderr).strip()}")
        data = (Path(tmp) / "out.bin").read_bytes()
    ticks = _ticks(proc.stdout + proc.stderr)
    if ticks is not None and n * t > 0:
        instr = ticks * INSTR_PER_TICK
        _STATS[str(out.resolve())] = {"samples": n, "steps": t, "instructions": instr, "per_inference": instr / n,
                                      "per_step": instr / (n * t), "mode": mode}
    return parse_output(data, man, probe_state, output_only)


def _ticks(text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith("snncc_model: samples") and " ticks " in line:
            return int(line.rsplit(" ", 1)[1])
    return None


_STATS: dict[str, dict] = {}


def last_stats(out_dir: str | Path) -> dict | None:
    """The instruction counts of the last run in ``out_dir`` by this process (None: none)."""
    st = _STATS.get(str(Path(out_dir).resolve()))
    return dict(st) if st else None


def profile(out_dir: str | Path, x: np.ndarray) -> dict:
    """Flash, RAM and instructions per inference (one sample of ``x``, every step, only
    the output written) on the emulated Cortex-M4."""
    sz = size(out_dir)
    simulate(out_dir, x[:1], output_only=True)
    st = last_stats(out_dir) or {}
    return {"arch": ARCH, "board": BOARD, **sz, "instructions_per_inference": st.get("per_inference"),
            "instructions_per_step": st.get("per_step"), "steps": st.get("steps")}
