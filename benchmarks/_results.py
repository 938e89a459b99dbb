"""The result file of a benchmark: rows keyed by their settings, written after every row
so that an interrupted run keeps what it measured."""
from __future__ import annotations

import json
from pathlib import Path


def record(res: dict, index: dict, row: dict, key, path: Path) -> None:
    """Put ``row`` into ``res["results"]`` (replacing the row with the same ``key(row)``,
    whose position ``index`` keeps) and write ``res`` to ``path``."""
    k = key(row)
    if k in index:
        res["results"][index[k]] = row
    else:
        index[k] = len(res["results"])
        res["results"].append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1) + "\n")
