"""Memory of the C target's model.o against SpQuant-SNN Eq. 28, for the example builds.

    python benchmarks/bench_c_memory.py [--builds default,w4,ternary] [--keep DIR]

For each build of the shipped Fashion-MNIST SNN (default: 8-bit weights; w4:
``--weight-bits 4``; ternary: ``--state-quant ternary``) it compiles ``model.c`` alone to
an object file (``cc -std=c99 -O2 -c``; with arm-none-eabi-gcc installed also
``-mcpu=cortex-m4 -mthumb``), reads the section sizes with ``size -A`` and prints flash +
RAM = .rodata* + .data* + .bss* beside the Eq. 28 total of ``snncc report`` (weights +
membrane + spikes) and their ratio. The issue's target is a ratio <= 1.15; the exit
status is 1 when a build misses it.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fashion_mnist" / "model.pt"
BUILDS = {"default": {}, "w4": {"weight_bits": 4}, "ternary": {"state_quant": "ternary"}}
TARGET = 1.15


def sections(obj: Path, size_tool: str) -> dict[str, int]:
    """Bytes per section kind of an object file (``size -A``)."""
    out = subprocess.run([size_tool, "-A", str(obj)], check=True, capture_output=True, text=True).stdout
    got = {"rodata": 0, "data": 0, "bss": 0}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            name = parts[0]
            for kind in ("rodata", "bss", "data"):  # .data.rel.ro counts as data (relocated constants)
                if name.startswith("." + kind):
                    got[kind] += int(parts[1])
                    break
    return got


def measure(cdir: Path, cc: list[str], size_tool: str, tag: str) -> dict[str, int]:
    obj = cdir / f"model.{tag}.o"
    subprocess.run([*cc, "-std=c99", "-O2", "-c", "model.c", "-o", obj.name], cwd=cdir, check=True)
    return sections(obj, size_tool)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", default=",".join(BUILDS))
    ap.add_argument("--keep", default=None, help="compile the builds into DIR (default: a temporary folder)")
    args = ap.parse_args(argv)
    from snncc.builds import load_build
    from snncc.compiler import compile as do_compile
    from snncc.reports.report import build_report

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="snncc-mem-"))
    arm = shutil.which("arm-none-eabi-gcc")
    ok = True
    print(f"{'build':<9}{'arch':<12}{'.rodata':>9}{'.data':>8}{'.bss':>8}{'total':>9}{'Eq. 28':>9}{'ratio':>7}")
    for name in args.builds.split(","):
        out = root / name
        do_compile(str(EXAMPLE), target=["c"], out=str(out), config=dict(BUILDS[name]), example_input=(1, 28, 28))
        g, _ = load_build(out)
        eq28 = build_report(g)["memory"]["total_bytes"]
        rows = [("x86-64", ["cc"], "size")]
        if arm:
            rows.append(("cortex-m4", [arm, "-mcpu=cortex-m4", "-mthumb"], "arm-none-eabi-size"))
        for arch, cc, size_tool in rows:
            s = measure(out / "c", cc, size_tool, arch)
            total = sum(s.values())
            ratio = total / eq28
            ok &= ratio <= TARGET
            print(f"{name:<9}{arch:<12}{s['rodata']:>9}{s['data']:>8}{s['bss']:>8}{total:>9}{eq28:>9}{ratio:>7.3f}")
    if not arm:
        print("cortex-m4: arm-none-eabi-gcc is not installed (make toolchain-arm installs it)")
    print(f"target: total <= {TARGET} x Eq. 28 for every build: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
