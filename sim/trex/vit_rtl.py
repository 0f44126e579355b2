"""The digits ViT on the RTL, two ways: :func:`encoders_on_core` runs the whole encoder stack
on the ``trex`` encoder core; :class:`RtlOps`, the backend of ``golden.trex.vit_int.IntViT``
that runs every crossbar matmul on the ``xbar`` core and every batch of attention heads on the
``attn`` core under Verilator (``snnforge run``'s path), sums the units' counters.

The glue between the units (bias, requantization, LayerNorm, ReLU, residual, pooling) stays in
the integer model on the host; the RTL computes the crossbar matrix-vector products (ADC and
shift-and-add included) and the attention (scores, softmax, weighted sums). The job runner is
given (``snnforge.flows.run_job``): simulation code does not reach for the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from rich.console import Console

from ...golden.trex.params import AttentionParams, XbarParams

__all__ = ["RtlOps", "COUNTED", "encoders_on_core"]

#: The counters summed over the jobs: the tile's and the attention unit's.
COUNTED = {"xbar": ("reads", "conversions", "vectors", "busy", "total_cycles"),
           "attn": ("rows", "macs", "busy", "total_cycles")}


@dataclass
class RtlOps:
    """The RTL backend (module docstring): ``run_job`` runs one job (``snnforge.flows.run_job``'s
    signature), ``tile`` and ``attn`` give the cores' generator parameters (``dma_width``
    besides); ``adc_bits``/``adc_shift`` the tile's settings."""
    run_job: Callable
    tile: XbarParams
    attn: AttentionParams
    adc_bits: int | None = None
    adc_shift: int | None = None
    dma_width: int = 128
    console: Console = field(default_factory=lambda: Console(quiet=True))
    counts: dict = field(default_factory=lambda: {f"{unit}_{name}": 0 for unit, names in
                                                  COUNTED.items() for name in names})
    jobs: int = 0

    def _add(self, unit, counters):
        self.jobs += 1
        for name in COUNTED[unit]:
            self.counts[f"{unit}_{name}"] += int(counters[name])

    def matmul(self, x: torch.Tensor, w: torch.Tensor, in_bits: int = 8) -> torch.Tensor:
        options = {"in_bits": in_bits, "adc_bits": self.adc_bits or self.tile.adc_bits,
                   "adc_shift": self.tile.shift if self.adc_shift is None else self.adc_shift}
        done = self.run_job(self.console, "xbar",
                       {**self.tile.values(), "dma_width": self.dma_width},
                       inputs={"x": x.numpy(), "w": w.numpy()}, options=options)
        self._add("xbar", done.result.counters)
        return torch.from_numpy(np.asarray(done.result.outputs["y"], dtype=np.int64))

    def attention(self, q, k, v, score_mult: int, score_shift: int) -> torch.Tensor:
        params = {**self.attn.values(), "dma_width": self.dma_width}
        done = self.run_job(self.console, "attn", params,
                       inputs={"q": q.numpy(), "k": k.numpy(), "v": v.numpy()},
                       options={"score_mult": score_mult, "score_shift": score_shift,
                                "out_shift": self.attn.shift_out})
        self._add("attn", done.result.counters)
        return torch.from_numpy(np.asarray(done.result.outputs["out"], dtype=np.int64))


def encoders_on_core(run_job: Callable, model, images: torch.Tensor, ops, *, dma_width: int = 128,
                     adc_bits: int | None = None, adc_shift: int | None = None,
                     console: Console | None = None):
    """Logits of ``images`` with ``model``'s (an ``IntViT``) encoders on the ``trex`` core
    under Verilator: the patch embedding and the head (LayerNorm, pooling, classifier) on the
    host through ``ops``, the residual stream through every encoder (reuse as the model's) on
    the core in one job. Returns the logits and the job's outcome (counters, cycles)."""
    cfg, tile = model.cfg, model.tile
    reuse = ",".join(f"{j}:{i}" for j, i in sorted(model.sources.items()))
    options = {"reuse": reuse, "adc_bits": adc_bits or tile.adc_bits,
               "adc_shift": tile.shift if adc_shift is None else adc_shift}
    tokens = model.embed(images, ops)
    done = run_job(console or Console(quiet=True), "trex",
                   {**tile.values(), "heads": cfg.heads, "dma_width": dma_width,
                    "frac_bits": model.attn.frac_bits, "lut_bits": model.attn.lut_bits,
                    "prob_bits": model.attn.prob_bits},
                   inputs={"tokens": tokens.numpy(), "params": model.archive()},
                   options=options)
    x = torch.from_numpy(np.asarray(done.result.outputs["tokens"], dtype=np.int64))
    return model.head(x, ops), done
