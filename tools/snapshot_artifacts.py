"""Emit every artifact snncc can write for a fixed set of models and record their SHA-256.

Used to prove that a refactoring changed no emitted byte (or to see exactly which
artifact changed and why): run it on the commit before and after, then diff::

    python tools/snapshot_artifacts.py /tmp/before      # on the old commit
    python tools/snapshot_artifacts.py /tmp/after       # on the new one
    diff /tmp/before/SHA256SUMS /tmp/after/SHA256SUMS

Models: the shipped Fashion-MNIST example (default pipeline to c+onnx+nir, 4-bit and
ternary variants, the Lava pipeline to lava+c+onnx, a short seeded BWR run), every
hand-written conformance case and 12 random conformance graphs emitted directly to c,
onnx, lava and netx. A target that refuses a graph records its error message instead
(refusals must not change either).
"""
from __future__ import annotations

import hashlib
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "examples" / "fashion_mnist"))

import numpy as np  # noqa: E402

EXAMPLE = ROOT / "examples" / "fashion_mnist" / "model.pt"
VARIANTS = {  # name -> (targets, config)
    "fm_default": (["c", "onnx"], {}),
    "fm_nir_refused": (["c", "nir"], {}),   # NIR has no max pooling: the whole compile is refused
    "fm_4bit": (["c", "onnx"], {"weight_bits": 4, "weight_clip": "mse"}),
    "fm_ternary": (["c", "onnx"], {"state_quant": "ternary"}),
    "fm_lava": (["lava", "c", "onnx"], {"first_layer_bits": 6, "granularity": "tensor"}),
}


def _record(out: Path, name: str, fn) -> None:
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    try:
        fn(d)
    except Exception as e:  # noqa: BLE001 - the refusal itself is part of the snapshot
        (d / "ERROR.txt").write_text(f"{type(e).__name__}: {e}\n")
        if not hasattr(e, "__module__") or not type(e).__module__.startswith("snncc"):
            (d / "TRACEBACK.txt").write_text(traceback.format_exc())


def _example(out: Path) -> None:
    import snncc

    for name, (targets, cfg) in VARIANTS.items():
        _record(out, name, lambda d, t=targets, c=cfg: snncc.compile(
            str(EXAMPLE), (1, 28, 28), target=t, out=d, config=dict(c)))

    def bwr(d):
        from snncc.data import load
        from snncc.passes.bwr import BWRConfig

        x = load("fashion-mnist", "train")[0][:64]
        snncc.compile(str(EXAMPLE), (1, 28, 28), target=["c"], out=d, config={"weight_bits": 2},
                      bwr=(x, BWRConfig(iters=30, batch_size=16, eval_samples=32)))
    _record(out, "fm_bwr", bwr)


def _graphs(out: Path) -> None:
    import conformance as CF

    from snncc.targets import get

    graphs = {f"case_{k}": f for k, f in CF.CASES.items()}
    for seed in range(12):
        graphs[f"random_{seed}"] = lambda s=seed: CF.random_graph(np.random.default_rng(s))
    for name, build in graphs.items():
        for t in ("c", "onnx", "lava", "netx"):
            _record(out, f"{name}/{t}", lambda d, b=build, t=t: get(t).emit(b(), d))
        for t in ("lava", "netx", "c"):  # after the Lava passes (what --target lava emits)
            _record(out, f"{name}/lava_passes_{t}", lambda d, b=build, t=t: get(t).emit(_lava(b()), d))


def _lava(g):
    from snncc.passes.lava import LAVA_PASSES

    for fn, _ in LAVA_PASSES:
        g, _ = fn(g)
    return g


def main(out: str) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    _example(out_dir)
    _graphs(out_dir)
    lines = []
    for p in sorted(out_dir.rglob("*")):
        if p.is_file() and p.name != "SHA256SUMS" and not p.name.endswith(".lock"):
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(out_dir)}")
    (out_dir / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    print(f"{len(lines)} files -> {out_dir / 'SHA256SUMS'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/snncc-artifacts")
