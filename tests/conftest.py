"""Shared pytest configuration.

Simulator builds go to ``build/`` of the repository (keyed by Verilog hash, reused across runs
and shared between xdist workers through a file lock).
"""

import os
from pathlib import Path

os.environ.setdefault("SNNFORGE_BUILD", str(Path(__file__).resolve().parent.parent / "build"))
