"""Golden models of the TReX family (IMC crossbar tiles, attention reuse): the crossbar's and the
attention unit's parameters and memory formats (:mod:`.params`, no torch: the hardware reads
it), the tile's bit-exact digital twin with the optional analog non-ideal front end
(:mod:`.xbar`), the integer attention (:mod:`.attention`), the cost model (:mod:`.cost`), the
digits ViT with attention reuse (:mod:`.vit`) and its integer model (:mod:`.vit_int`).

Their public names are attributes of this package, imported on first use."""

from __future__ import annotations

import importlib

_MODULES = ("params", "xbar", "cost", "attention", "vit", "vit_int")


def __getattr__(name: str):
    for module_name in _MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({name for module_name in _MODULES for name in
                   getattr(importlib.import_module(f"{__name__}.{module_name}"), "__all__", ())})
