"""cocotb benches of the LoAS core, driven through its host port by LoASDriver.

* ``regression``: the layers of ``sim.loas.vectors.loas_cases`` (option ``suite``), then (suite
  ``regression``) the networks of ``network_cases``, chained on chip where they can be; every
  output spike and membrane is compared with the golden model, and the match and saturation
  counters with their golden values. Each case runs under one (idle, stall) pair of the crossed
  patterns on the host-port streams (options ``idle``/``stall`` fix one side).
* ``axi_protocol``: the quick layers and a chained network with cocotbext-axi's AXI4-Lite
  master as the host and its AXI4 RAM as the memory, random pauses on every channel (built with
  the AXI ports outside the simulated top).
* ``deploy``: a network mapped by ``hw.loas.deploy`` (from NIR by ``snnforge deploy``, or the
  digits SNN of ``golden.loas.digits``) over a batch of samples.
* ``dtsnn``: the DT-SNN spiking ViT (``golden.dtsnn``) over a batch of images.

``snnforge run loas`` runs through the generic ``snnforge.sim.job`` testcase instead.
"""

from __future__ import annotations

import time

import numpy as np

from ...host import HostDriver
from ...golden.dtsnn.integer import IntViT, int_forward
from ...hw.loas.deploy import LoASProgram, forward, rtl_segment
from ...hw.loas.dtsnn import loas_ops
from ...hw.loas.driver import LoASDriver
from ..tb import bench_test
from .vectors import expected_layer, expected_network, loas_cases, network_cases


def _driver(tb):
    transport = tb.transport()
    return transport, LoASDriver(HostDriver(tb.component.regmap, transport), tb.cfg)


def _first_difference(name, got, want):
    bad = np.argwhere(got != want)
    index = tuple(bad[0].tolist())
    return (f"{name}: {len(bad)} of {want.size} differ; first at {list(index)}: "
            f"expected {int(want[index])}, got {int(got[index])}")


@bench_test
async def regression(tb):
    transport, driver = _driver(tb)
    cfg = tb.cfg
    await tb.reset()
    # Option golden_overrides mis-configures the golden model (LoASConfig fields): the bench
    # self-test checks that a disagreement fails with a readable report.
    golden_cfg = cfg.replace(**tb.option("golden_overrides", {}))
    suite = tb.option("suite", "regression")
    cases = loas_cases(cfg, suite, seed=tb.seed)
    if suite == "regression":
        cases += network_cases(cfg, seed=tb.seed)
    only = tb.option("cases", None)
    if isinstance(only, str):
        only = only.split(",")
    if only:
        cases = [c for c in cases if c.name in only]
    totals = {"layers": 0, "items": 0, "cycles": 0, "matches": 0}
    for case, (idle, stall), (mem_stall, latency) in tb.schedule(cases):
        transport.set_patterns(idle, stall)
        tb.set_memory(mem_stall, latency)
        start = time.monotonic()
        where = (f"{case.describe()} (host port: idle {idle}, stall {stall}; memory: stall "
                 f"{mem_stall}/256, latency {latency})")
        if hasattr(case, "layers"):
            got = await driver.run_layers(case.spikes, case.settings(), strong=case.strong)
            if got.chained != case.chained:
                raise AssertionError(f"{where}\n  boundaries kept on chip: expected "
                                     f"{case.chained}, got {got.chained}")
            _check(where, got, expected_network(golden_cfg, case, got.k_blocks))
            layers = len(case.layers)
        else:
            got = await driver.run_layer(case.spikes, case.weights, threshold=case.threshold,
                                         leak_amount=case.leak_amount, tmask=case.tmask,
                                         strong=case.strong, sequential=case.sequential)
            _check(where, got, expected_layer(golden_cfg, case, got.k_block))
            layers = 1
        tb.dut._log.info("%s: %d compute cycles, %d total, %d matches; %s; %.1f s", case.name,
                         got.cycles, got.counters["total_cycles"], got.counters["matches"],
                         where.split(" (")[-1], time.monotonic() - start)
        totals["layers"] += layers
        totals["items"] += got.spikes.size
        totals["cycles"] += got.cycles
        totals["matches"] += got.counters["matches"]
    tb.record(unit="output neurons", **totals)


def _check(where, got, want):
    """Every output spike and membrane, and the data-determined counters, against the golden
    model; raises with the case and the first difference of each."""
    problems = []
    want = {**want, "spikes": want["spikes"].numpy(), "membrane": want["membrane"].numpy()}
    if not np.array_equal(got.spikes, want["spikes"]):
        problems.append(_first_difference("output spikes [t, m, n]", got.spikes, want["spikes"]))
    if not np.array_equal(got.membrane, want["membrane"]):
        problems.append(_first_difference("membranes [m, n]", got.membrane, want["membrane"]))
    for counter in ("matches", "saturations"):
        if got.counters[counter] != want[counter]:
            problems.append(f"{counter} counter: expected {want[counter]}, "
                            f"got {got.counters[counter]}")
    if problems:
        raise AssertionError(where + "\n  " + "\n  ".join(problems))


@bench_test
async def axi_protocol(tb):
    from ..axi_models import AxiLiteTransport, attach_axi_models
    cfg = tb.cfg
    master, ram = attach_axi_models(tb.dut, tb.clk, memory_size=1 << 20,
                                    pause=tb.option("pause", 0.3), seed=tb.seed)
    driver = LoASDriver(HostDriver(tb.component.regmap, AxiLiteTransport(master, ram, tb.clk)),
                        cfg)
    await tb.reset(8)
    cases = loas_cases(cfg, "quick", seed=tb.seed)
    for case in cases:
        got = await driver.run_layer(case.spikes, case.weights, threshold=case.threshold,
                                     leak_amount=case.leak_amount, tmask=case.tmask,
                                     strong=case.strong, sequential=case.sequential)
        _check(f"{case.describe()} (cocotbext-axi)", got, expected_layer(cfg, case, got.k_block))
    net = network_cases(cfg, seed=tb.seed)[0]
    got = await driver.run_layers(net.spikes, net.settings())
    _check(f"{net.describe()} (cocotbext-axi)", got, expected_network(cfg, net, got.k_blocks))
    tb.record(layers=len(cases) + len(net.layers), items=got.spikes.size,
              unit="output neurons (last network layer)")


@bench_test
async def deploy(tb):
    """A mapped network (``hw.loas.deploy.LoASProgram``, ``options["program_file"]``) on the RTL
    over the samples of ``options["spikes_file"]`` (``.npy``, ``[T, S, *input shape]``): every
    segment through :meth:`LoASDriver.run_layers`. The outputs, the last layer's membranes and the
    counters go to ``options["out_file"]`` (``.npz``); the caller compares them with the golden
    model (``snnforge deploy`` and the tests)."""
    _, driver = _driver(tb)
    await tb.reset()
    program = LoASProgram.load(tb.option("program_file", None))
    spikes = np.load(tb.option("spikes_file", None), allow_pickle=False)
    start = time.monotonic()
    out, membrane, counters = await forward(program, spikes, rtl_segment(driver))
    np.savez(tb.option("out_file", None), spikes=out, membrane=membrane,
             wall_seconds=time.monotonic() - start,
             **{f"counter_{name}": np.int64(value) for name, value in counters.items()})
    tb.record(cycles=counters["cycles"], layers=len(program.layers), items=out.size,
              unit="output neurons")


@bench_test
async def dtsnn(tb):
    """The DT-SNN spiking ViT (``golden.dtsnn.integer.IntViT``, ``options["net_file"]``) on the
    RTL over the token inputs of ``options["tokens_file"]`` (``.npy``, ``[T, B, 16, 20]``):
    linear layers and attention products on the core (``hw.loas.dtsnn``). The output spikes and
    the counters go to ``options["out_file"]`` (``.npz``)."""
    _, driver = _driver(tb)
    await tb.reset()
    net = IntViT.load(tb.option("net_file", None))
    x = np.load(tb.option("tokens_file", None), allow_pickle=False)
    linear, matmul, counters = loas_ops(rtl_segment(driver), tb.cfg)
    start = time.monotonic()
    out = await int_forward(net, x, linear, matmul)
    np.savez(tb.option("out_file", None), spikes=out, wall_seconds=time.monotonic() - start,
             **{f"counter_{name}": np.int64(value) for name, value in counters.items()})
    tb.record(cycles=counters["cycles"], layers=counters["runs"], items=out.size,
              unit="output neurons")
