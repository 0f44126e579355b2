"""Golden models of the TReX family (IMC crossbar tiles, attention reuse): the crossbar's and the
attention unit's parameters and memory formats (:mod:`.params`, no torch: the hardware reads
it), the tile's bit-exact digital twin with the optional analog non-ideal front end
(:mod:`.xbar`), the integer attention (:mod:`.attention`), the cost model (:mod:`.cost`), the
digits ViT with attention reuse (:mod:`.vit`) and its integer model (:mod:`.vit_int`).

Their public names are attributes of this package, imported on first use."""

from __future__ import annotations

from .. import lazy_exports

_MODULES = ("params", "xbar", "cost", "attention", "vit", "vit_int")

__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
