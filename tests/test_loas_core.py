"""The LoAS core end to end in Amaranth's simulator (tiny configurations, no Verilator build):
the host driver runs whole layers and every output is compared with the golden model."""

import pytest
import torch
from amaranth.sim import Simulator

from snnforge.hw.loas.config import LoASConfig
from snnforge.hw.loas.core import LoASCore
from snnforge.host import HostDriver
from snnforge.loas_driver import LoASDriver
from snnforge.params import SnnforgeError
from snnforge.sim.amaranth_host import AmaranthTransport
from snnforge.sim.loas_vectors import expected_layer, loas_cases

TINY = LoASConfig(pes=2, fiber=8, T=2, tile_n=3, group=2, k_max=32, n_max=12, v_max=256,
                  f_max=128, segment=4, adders=1, leak="none")


def run_cases(cfg, cases, *, seed=3):
    dut = LoASCore(cfg)
    results = []

    async def bench(ctx):
        host = HostDriver(dut.regmap, AmaranthTransport(ctx, dut, idle=0.2, stall=0.2, seed=seed))
        driver = LoASDriver(host, cfg)
        for case in cases:
            got = await driver.run_layer(case.spikes, case.weights, threshold=case.threshold,
                                         leak_amount=case.leak_amount, tmask=case.tmask,
                                         strong=case.strong, sequential=case.sequential)
            results.append((case, got))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for case, got in results:
        want = expected_layer(cfg, case, got.k_block)
        assert torch.equal(got.spikes, want["spikes"]), case.describe()
        assert torch.equal(got.membrane, want["membrane"]), case.describe()
        assert got.counters["matches"] == want["matches"], case.describe()
        assert got.counters["saturations"] == want["saturations"], case.describe()
    return results


@pytest.mark.parametrize("cfg", [
    TINY,
    TINY.replace(acc_width=6, leak="shift", reset="soft"),          # saturating partial sums
    TINY.replace(T=1, tile_n=2, group=1, segment=8, match_fifo=2, group_fifo=2),
    TINY.replace(T=3, tile_n=4, group=3, masked="leak_only", leak="mul"),
], ids=["tiny", "saturating", "T1-minimal-fifos", "T3"])
def test_core_regression_suite(cfg):
    run_cases(cfg, loas_cases(cfg, "regression", seed=5))


def test_core_splits_columns_when_weights_overflow_the_buffers():
    cfg = TINY.replace(v_max=24, f_max=16)
    results = run_cases(cfg, loas_cases(cfg, "quick", seed=2))
    assert any(len({run["n0"] for run in got.runs}) > 1 for _, got in results)


def test_core_counters_and_cycles_come_from_the_rtl():
    (case, got), = run_cases(TINY, loas_cases(TINY, "quick", seed=4)[:1])
    c = got.counters
    assert c["cycles"] == sum(run["cycles"] for run in got.runs) > 0
    assert c["weight_reads"] == c["word_reads"] == c["matches"]
    assert c["pe_busy"] >= c["matches"]
    assert c["fiber_reads"] == TINY.pes * c["rows_read"]
    assert c["lif_steps"] == len(got.runs) * TINY.pes * case.weights.shape[1] * TINY.T


@pytest.mark.parametrize("spikes, weights, message", [
    (torch.zeros(2, 3, 4), torch.zeros(5, 2), "K must match"),
    (torch.full((2, 3, 4), 2), torch.zeros(4, 2), "binary"),
    (torch.zeros(2, 3, 4), torch.full((4, 2), 200), "int8"),
    (torch.zeros(3, 3, 4), torch.zeros(4, 2), "T=2"),
    (torch.zeros(3, 4), torch.zeros(4, 2), "shape [T, M, K]"),
])
def test_driver_rejects_bad_layers(spikes, weights, message):
    dut = LoASCore(TINY)
    driver = LoASDriver(HostDriver(dut.regmap, transport=None), TINY)
    import asyncio
    with pytest.raises(SnnforgeError, match=message.replace("[", r"\[")):
        asyncio.run(driver.run_layer(spikes, weights, threshold=1))
