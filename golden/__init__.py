"""The golden models (installed as ``snnforge.golden``), one package a family."""

from __future__ import annotations

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package: str, modules: tuple[str, ...]):
    """``(__getattr__, __dir__)`` for a family package whose public names (each module's
    ``__all__``) are attributes of the package, imported on first use -- so that a module
    without torch can be read without importing the others."""
    def getattr_(name: str):
        for module_name in modules:
            module = importlib.import_module(f"{package}.{module_name}")
            if name in getattr(module, "__all__", ()):
                return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_():
        return sorted({name for module_name in modules for name in
                       getattr(importlib.import_module(f"{package}.{module_name}"), "__all__",
                               ())})
    return getattr_, dir_
