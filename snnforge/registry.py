"""The generator registry: every family's generators, found from one list of family modules.

A family registers its generators in its own folder: ``hw/<family>/generator.py`` defines
``GENERATORS``, a tuple of :class:`~snnforge.generator.Generator`. :data:`FAMILIES` lists those
modules -- adding a family adds one line there. Families kept outside this repository are named
in the environment variable ``SNNFORGE_FAMILIES`` (module names, comma-separated).
"""

from __future__ import annotations

import functools
import importlib
import os

from .generator import Generator
from .params import SnnforgeError

__all__ = ["FAMILIES", "FAMILIES_ENV", "generators", "get_generator"]

FAMILIES = (
    "snnforge.hw.common.generator",     # LIF neurons (lif_array, lif_core)
    "snnforge.hw.loas.generator",       # the LoAS dual-sparse core (loas)
    "snnforge.hw.ttsnn.generator",      # the TT-SNN conv layer (ttsnn)
    "snnforge.hw.trex.generator",       # the IMC crossbar tile (xbar)
)

FAMILIES_ENV = "SNNFORGE_FAMILIES"


@functools.cache
def generators() -> dict[str, Generator]:
    """Every registered generator by name, in family order."""
    extra = [name.strip() for name in os.environ.get(FAMILIES_ENV, "").split(",") if name.strip()]
    found: dict[str, Generator] = {}
    for module_name in (*FAMILIES, *extra):
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise SnnforgeError(f"family module {module_name!r} cannot be imported: {error}") \
                from None
        for gen in getattr(module, "GENERATORS", ()):
            if gen.name in found:
                raise SnnforgeError(f"generator {gen.name!r} is registered twice "
                                    f"(again by {module_name})")
            found[gen.name] = gen
    return found


def get_generator(name: str) -> Generator:
    table = generators()
    if name not in table:
        raise SnnforgeError(f"unknown generator {name!r}; valid generators: {', '.join(table)}")
    return table[name]
