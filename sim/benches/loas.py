"""cocotb benches of the LoAS core, driven through its host port by LoASDriver.

* ``regression``: the layers of ``sim.loas_vectors.loas_cases`` (option ``suite``), then (suite
  ``regression``) the networks of ``network_cases``, chained on chip where they can be; every
  output spike and membrane is compared with the golden model, and the match and saturation
  counters with their golden values. Random idle cycles and back-pressure on the host-port
  streams (options ``idle``/``stall``, default 0.2).
* ``run_layer``: runs one layer from ``options["layer_file"]`` (``.pt`` with spikes, weights and
  LIF settings) and writes the result to ``options["out_file"]`` -- what ``snnforge run`` uses.
"""

from __future__ import annotations

import time

import cocotb
import torch

from ...generators import loas_config_from
from ...host import HostDriver
from ...loas_driver import LayerSettings, LoASDriver
from ..cocotb_streams import CocotbTransport
from ..loas_vectors import expected_layer, expected_network, loas_cases, network_cases
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
    if isinstance(only, str):
        only = only.split(",")
    if only:
        cases = [c for c in cases if c.name in only]
    totals = {"layers": 0, "outputs": 0, "cycles": 0, "matches": 0}
    for case in cases:
        start = time.monotonic()
        got = await driver.run_layer(case.spikes, case.weights, threshold=case.threshold,
                                     leak_amount=case.leak_amount, tmask=case.tmask,
                                     strong=case.strong, sequential=case.sequential)
        _check(case, got, expected_layer(golden_cfg, case, got.k_block))
        dut._log.info("%s: %d cycles, %d matches, %d runs, %.1f s", case.name, got.cycles,
                      got.counters["matches"], len(got.runs), time.monotonic() - start)
        _count(totals, got, 1)
    networks = network_cases(cfg, seed=tb.seed) if tb.option("suite", "regression") == \
        "regression" else []
    for case in networks:
        if only and case.name not in only:
            continue
        start = time.monotonic()
        got = await driver.run_layers(case.spikes, case.settings(), strong=case.strong)
        if got.chained != case.chained:
            raise AssertionError(f"{case.describe()}\n  boundaries kept on chip: expected "
                                 f"{case.chained}, got {got.chained}")
        _check(case, got, expected_network(golden_cfg, case, got.k_blocks))
        dut._log.info("%s: %s cycles per layer, %d matches, chained %s, %.1f s", case.name,
                      got.layer_cycles, got.counters["matches"], got.chained,
                      time.monotonic() - start)
        _count(totals, got, len(case.layers))
    record_stats(tb.config, **totals)


def _check(case, got, want):
    """Every output spike and membrane, and the data-determined counters, against the golden
    model; raises with the case and the first difference of each."""
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


def _count(totals, got, layers):
    totals["layers"] += layers
    totals["outputs"] += got.spikes.numel()
    totals["cycles"] += got.cycles
    totals["matches"] += got.counters["matches"]


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
    """The digits SNN (``golden.digits``) on the RTL: both layers, the whole test split, the hidden
    spikes chained on chip. ``options["net_file"]`` holds the trained network and the encoded test
    spikes; the output layer's spikes and membranes go to ``options["out_file"]`` (the pytest side
    compares them with the golden model and scores them)."""
    tb = TB(dut)
    cfg, transport, driver = _driver(tb, dut)
    await tb.reset()
    net = torch.load(tb.option("net_file", None), weights_only=True)
    start = time.monotonic()
    layers = [LayerSettings(net["w1"], int(net["threshold1"]), int(net["leak1"])),
              LayerSettings(net["w2"], int(net["threshold2"]), int(net["leak2"]))]
    output = await driver.run_layers(net["spikes"], layers, chain=bool(net.get("chain", True)))
    torch.save({"spikes": output.spikes, "membrane": output.membrane,
                "cycles": output.layer_cycles, "chained": output.chained,
                "matches": output.counters["matches"],
                "wall_seconds": time.monotonic() - start}, tb.option("out_file", None))
    record_stats(tb.config, cycles=output.cycles, layers=2)
