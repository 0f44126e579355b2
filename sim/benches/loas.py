"""cocotb benches of the LoAS core, driven through its host port by LoASDriver.

* ``regression``: the layers of ``sim.loas_vectors.loas_cases`` (option ``suite``); every output
  spike and membrane is compared with the golden model, and the match and saturation counters
  with their golden values. Random idle cycles and back-pressure on the host-port streams
  (options ``idle``/``stall``, default 0.2).
* ``run_layer``: runs one layer from ``options["layer_file"]`` (``.pt`` with spikes, weights and
  LIF settings) and writes the result to ``options["out_file"]`` -- what ``snnforge run`` uses.
"""

from __future__ import annotations

import time

import cocotb
import torch

from ...generators import loas_config_from
from ...host import HostDriver
from ...loas_driver import LoASDriver
from ..cocotb_streams import CocotbTransport
from ..loas_vectors import expected_layer, loas_cases
from ..runner import record_stats
from .common import TB


def _driver(tb, dut):
    cfg = loas_config_from(tb.params)
    core = tb.component
    transport = CocotbTransport(dut, tb.clk, core.cmd.payload.shape(), idle=tb.option("idle", 0.2),
                                stall=tb.option("stall", 0.2), seed=tb.seed)
    return cfg, transport, LoASDriver(HostDriver(core.regmap, transport), cfg)


def _first_difference(name, got, want):
    bad = (got != want).nonzero()
    index = tuple(bad[0].tolist())
    return (f"{name}: {len(bad)} of {want.numel()} differ; first at {list(index)}: "
            f"expected {int(want[index])}, got {int(got[index])}")


@cocotb.test()
async def regression(dut):
    tb = TB(dut)
    cfg, transport, driver = _driver(tb, dut)
    await tb.reset()
    # Option golden_overrides mis-configures the golden model (LoASConfig fields): the bench
    # self-test checks that a disagreement fails with a readable report.
    golden_cfg = cfg.replace(**tb.option("golden_overrides", {}))
    cases = loas_cases(cfg, tb.option("suite", "regression"), seed=tb.seed)
    only = tb.option("cases", None)
    if only:
        cases = [c for c in cases if c.name in only]
    totals = {"layers": 0, "outputs": 0, "cycles": 0, "matches": 0}
    for case in cases:
        start = time.monotonic()
        got = await driver.run_layer(case.spikes, case.weights, threshold=case.threshold,
                                     leak_amount=case.leak_amount, tmask=case.tmask,
                                     strong=case.strong, sequential=case.sequential)
        want = expected_layer(golden_cfg, case, got.k_block)
        problems = []
        if not torch.equal(got.spikes, want["spikes"]):
            problems.append(_first_difference("output spikes [t, m, n]", got.spikes, want["spikes"]))
        if not torch.equal(got.membrane, want["membrane"]):
            problems.append(_first_difference("membranes [m, n]", got.membrane, want["membrane"]))
        for counter in ("matches", "saturations"):
            if got.counters[counter] != want[counter]:
                problems.append(f"{counter} counter: expected {want[counter]}, "
                                f"got {got.counters[counter]}")
        if problems:
            raise AssertionError(case.describe() + "\n  " + "\n  ".join(problems))
        dut._log.info("%s: %d cycles, %d matches, %d runs, %.1f s", case.name, got.cycles,
                      got.counters["matches"], len(got.runs), time.monotonic() - start)
        totals["layers"] += 1
        totals["outputs"] += want["spikes"].numel()
        totals["cycles"] += got.cycles
        totals["matches"] += got.counters["matches"]
    record_stats(tb.config, **totals)


@cocotb.test()
async def run_layer(dut):
    tb = TB(dut)
    cfg, transport, driver = _driver(tb, dut)
    await tb.reset()
    layer = torch.load(tb.option("layer_file", None), weights_only=True)
    start = time.monotonic()
    sim_start = transport.cycles
    result = await driver.run_layer(layer["spikes"], layer["weights"],
                                    threshold=int(layer["threshold"]),
                                    leak_amount=int(layer["leak_amount"]),
                                    tmask=int(layer["tmask"]), strong=bool(layer["strong"]),
                                    sequential=bool(layer["sequential"]))
    wall = time.monotonic() - start
    torch.save({"spikes": result.spikes, "membrane": result.membrane, "counters": result.counters,
                "k_block": result.k_block,
                "runs": result.runs, "wall_seconds": wall,
                "sim_cycles": transport.cycles - sim_start}, tb.option("out_file", None))
    record_stats(tb.config, cycles=result.cycles, sim_cycles=transport.cycles - sim_start,
                 wall_seconds=wall)


@cocotb.test()
async def digits(dut):
    """The digits SNN (``golden.digits``) on the RTL: both layers, the whole test split.
    ``options["net_file"]`` holds the trained network and the encoded test spikes; the outputs of
    both layers go to ``options["out_file"]`` (the pytest side compares them with the golden
    model and scores them)."""
    tb = TB(dut)
    cfg, transport, driver = _driver(tb, dut)
    await tb.reset()
    net = torch.load(tb.option("net_file", None), weights_only=True)
    start = time.monotonic()
    hidden = await driver.run_layer(net["spikes"], net["w1"], threshold=int(net["threshold1"]),
                                    leak_amount=int(net["leak1"]))
    output = await driver.run_layer(hidden.spikes, net["w2"], threshold=int(net["threshold2"]),
                                    leak_amount=int(net["leak2"]))
    torch.save({"hidden": hidden.spikes, "hidden_membrane": hidden.membrane,
                "spikes": output.spikes, "membrane": output.membrane,
                "cycles": [hidden.cycles, output.cycles],
                "matches": [hidden.counters["matches"], output.counters["matches"]],
                "wall_seconds": time.monotonic() - start}, tb.option("out_file", None))
    record_stats(tb.config, cycles=hidden.cycles + output.cycles, layers=2)
