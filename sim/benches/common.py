"""Pieces every cocotb bench shares: the clock/reset owner and the rebuilt component."""

from __future__ import annotations

from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from ...generate import silence_unelaborated
from ...generators import get_generator
from ..runner import bench_config

__all__ = ["TB"]


class TB:
    """Owns the clock and reset of a DUT and the bench configuration.

    ``tb.component`` is the Amaranth component rebuilt from the same parameters, so benches take
    payload layouts and register maps from the design itself.
    """

    def __init__(self, dut, period_ns: int = 10):
        self.dut = dut
        self.config = bench_config()
        self.params = self.config["params"]
        self.options = self.config["options"]
        self.seed = self.config["seed"]
        self.component = get_generator(self.config["generator"]).build(self.params)
        silence_unelaborated(self.component)   # built for its layouts only, never elaborated
        self.clk = dut.clk
        Clock(dut.clk, period_ns, unit="ns").start()

    def option(self, name, default):
        return self.options.get(name, default)

    async def reset(self, cycles: int = 2):
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.clk)
