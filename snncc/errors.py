"""User-facing errors. The CLI prints these as one clear message (no traceback)."""
from __future__ import annotations


class SnnccError(Exception):
    """Base class of every error snncc reports to a user."""


class UnsupportedLayerError(SnnccError):
    """A module or operation the frontend cannot compile."""


class ModelLoadError(SnnccError):
    """A model file that cannot be loaded (missing, malformed, or unsafe)."""


class IRVerificationError(SnnccError):
    """An IR invariant broke; names the pass that broke it and the passes before it."""


class BitWidthError(SnnccError):
    """Values that do not fit the declared or target bit widths; lists all of them."""

    def __init__(self, violations: list[str], header: str = "values do not fit their bit widths") -> None:
        self.violations = list(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations)
        super().__init__(f"{header} ({len(self.violations)} problem(s)):\n{lines}")


class ModelValueError(SnnccError):
    """Parameters whose values cannot be compiled (not finite, out of range, degenerate)."""


class ArtifactError(SnnccError):
    """A build directory or input file that is malformed or incomplete."""


class DatasetError(SnnccError):
    """A dataset that cannot be found or parsed."""


class SnnccWarning(UserWarning):
    """An assumption snncc made that the user should know about (the CLI prints these as
    notes; they are also recorded in the build manifest)."""
