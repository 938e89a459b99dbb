"""Accuracy of a build on a test split: the float graph and the integer model."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import SnnccError


def evaluate(build: str | Path, dataset: str, target: str = "reference", batch: int = 500,
             progress: bool = True) -> dict:
    from .builds import load_build, load_float_graph, target_dir
    from .data import load_test_spec
    from .reference import interpreter as R
    from .reference.float_sim import run_float

    g, manifest = load_build(build)
    if target != "reference":
        target_dir(build, manifest, target)  # refused before any work
    if not isinstance(batch, int) or batch < 1:
        raise SnnccError(f"batch must be an integer >= 1, got {batch!r}")
    fg = load_float_graph(build) if (Path(build) / "float_model.json").is_file() else None
    name, x, y = load_test_spec(dataset, g.node(g.input_name).shape)
    steps = int(g.meta.get("steps", 1))
    float_steps = int(g.meta.get("input_steps", steps))  # the float model has no latency
    f_ok = i_ok = 0
    sim = None
    if target != "reference":
        from .builds import simulate as sim
    from .progress import bar as progress_bar

    batch = min(batch, max(16, -(-len(x) // 20)))  # at least ~20 updates of the bar
    bar = progress_bar(total=len(x), desc=f"eval {name} ({target})", unit="sample", progress=progress)
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        if fg is not None:
            fo = run_float(fg, xb, float_steps)
            f_ok += int((fo.sum(1).reshape(len(xb), -1).argmax(-1) == yb).sum())
        res = R.run(g, xb) if sim is None else sim(build, target, xb)
        i_ok += int((R.predict(g, res) == yb).sum())
        bar.update(len(xb))
        bar.set_postfix(float=f"{f_ok / min(i + batch, len(x)):.4f}", int=f"{i_ok / min(i + batch, len(x)):.4f}")
    bar.close()
    n = len(x)
    return {"dataset": name, "samples": n, "steps": float_steps, "latency": steps - float_steps, "target": target,
            "float_accuracy": f_ok / n if fg is not None else None, "int_accuracy": i_ok / n}
