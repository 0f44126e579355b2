"""Golden models of the TT-SNN family (Lee et al., DATE 2024): tensor-train cores of a 3x3 conv
and the kernels they compose to (:mod:`.tt`), the float layer with BPTT written out
(:mod:`.model`), the fixed-point layer the hardware computes (:mod:`.fixed`, its parameters in
:mod:`.params`) and the parameter/MAC reduction of the paper's networks (:mod:`.report`).

Their public names are attributes of this package, imported on first use: the hardware reads
:mod:`.params` alone, without torch."""

from __future__ import annotations

from .. import lazy_exports

_MODULES = ("params", "tt", "model", "fixed", "report")

__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
