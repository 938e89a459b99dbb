"""The C99 runtime library (include/, src/), shipped as package data for the C target."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent
