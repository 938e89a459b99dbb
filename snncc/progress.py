"""What long commands show while they work: progress bars and log lines, one policy.

The CLI's ``--quiet`` hides bars and notes (results and errors stay), ``--verbose`` adds
what each compiler pass did and how long it took. Library callers get the same bars
(``progress=False`` turns a call's bar off) and snncc's messages through the ``snncc``
logger of :mod:`logging`."""
from __future__ import annotations

import logging

log = logging.getLogger("snncc")

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = bool(quiet)


def shown() -> bool:
    """Whether progress bars are on (off under the CLI's --quiet)."""
    return not _quiet


def bar(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it", progress: bool = True,
        **kw):
    """A tqdm bar on stderr, unless ``progress`` is off or the CLI runs with --quiet."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=_quiet or not progress, mininterval=0.5,
                dynamic_ncols=True, **kw)


class _Format(logging.Formatter):
    def __init__(self, cmd: str):
        super().__init__()
        self.cmd = cmd

    def format(self, record: logging.LogRecord) -> str:
        kind = {logging.DEBUG: "", logging.INFO: "note: "}.get(record.levelno, "warning: ")
        first, *rest = record.getMessage().rstrip("\n").split("\n")
        return "\n".join([f"snncc {self.cmd}: {kind}{first}"] + ["  " + r for r in rest])


def configure(cmd: str, quiet: bool = False, verbose: bool = False) -> logging.Handler:
    """Route snncc's log to stderr for one CLI command: notes by default, only warnings
    with ``quiet``, also debug lines with ``verbose``. Returns the handler (remove it when
    the command ends)."""
    import sys

    set_quiet(quiet)
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_Format(cmd))
    log.addHandler(h)
    log.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    return h
