"""Golden models of the TT-SNN family (Lee et al., DATE 2024): tensor-train cores of a 3x3 conv
and the kernels they compose to (:mod:`.tt`), the float layer with BPTT written out
(:mod:`.model`), the fixed-point layer the hardware computes (:mod:`.fixed`, its parameters in
:mod:`.params`) and the parameter/MAC reduction of the paper's networks (:mod:`.report`).

Their public names are attributes of this package, imported on first use: the hardware reads
:mod:`.params` alone, without torch."""

from __future__ import annotations

import importlib

_MODULES = ("params", "tt", "model", "fixed", "report")


def __getattr__(name: str):
    for module_name in _MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({name for module_name in _MODULES for name in
                   getattr(importlib.import_module(f"{__name__}.{module_name}"), "__all__", ())})
