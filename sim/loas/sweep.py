"""The LoAS workload layers of ``snnforge sweep loas --layers ...`` (the generator's
``sweep_layers``): each Table II layer (synthetic, seed 0) run on a swept core's RTL under
Verilator, its outputs checked against the golden model, its cycles from the core's counters."""

from __future__ import annotations

import torch

from ...golden.loas.workloads import TABLE_II, synthetic_layer
from ..runner import run_job
from .vectors import LayerCase, expected_layer

__all__ = ["LAYERS", "THRESHOLD", "run_layer"]

#: The layers a sweep may run.
LAYERS = tuple(TABLE_II)
THRESHOLD = 64


def run_layer(design, layer: str) -> dict:
    """``layer`` on ``design``'s RTL (``snnforge run``'s path); raises if the outputs differ from
    the golden model's. Returns the cycles end to end (the command list: loads, runs, stores)
    and of the runs (start to done; the first run's include its weight masks' LOAD, which it
    follows), the matches and the number of runs."""
    x, w = synthetic_layer(layer, T=design.config.T, seed=0)
    driver = design.generator.driver
    job = driver.validate(design.config, {"spikes": x.numpy(), "weights": w.numpy()},
                          {"threshold": THRESHOLD})
    result, bench, _ = run_job(design, job)
    if result is None:
        raise RuntimeError(f"{layer}: the run failed:\n{bench.summary()}")
    out, counters = result.outputs, result.counters
    want = expected_layer(design.config, LayerCase(
        layer, x, w, threshold=THRESHOLD, leak_amount=job.options["leak_amount"]),
        result.facts["k_block"])
    if not (torch.equal(torch.from_numpy(out["spikes"]), want["spikes"])
            and torch.equal(torch.from_numpy(out["membrane"]), want["membrane"])
            and counters["matches"] == want["matches"]):
        raise RuntimeError(f"{layer}: the RTL's outputs differ from the golden model")
    return {"cycles": counters["total_cycles"], "compute_cycles": counters["cycles"],
            "matches": counters["matches"], "runs": len(result.facts["runs"])}
