"""The C99 runtime library (include/, src/), the harness and the board support for the
Cortex-M4 path (board/cortex-m4/), shipped as package data for the C target."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent
#: what the C target copies into every build (relative to ROOT; flat in the build folder)
FILES = ("include/snncc_rt.h", "src/snncc_rt.c", "harness/main.c", "harness/Makefile",
         "board/cortex-m4/startup_m4.c", "board/cortex-m4/m4.ld")
