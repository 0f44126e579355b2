"""What every cocotb bench shares: the clock/reset owner, the configuration built once, the
crossed idle/back-pressure patterns and the stream-contract checks of the simulated top."""

from __future__ import annotations

import functools

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from ..generate import silence_unelaborated
from ..host import HostDriver
from ..registry import get_generator
from .cocotb_streams import CocotbTransport
from .patterns import crossed, scheduled
from .runner import CHECK_FAULTS, bench_config, produced_streams, record_stats

#: (stall probability out of 256, read latency) of the simulated memory, crossed with the
#: host-port patterns by :meth:`TB.memory_settings`.
MEMORY_SETTINGS = ((0, 1), (96, 3), (24, 20), (160, 8))

__all__ = ["TB", "bench_test", "check_outputs"]


class TB:
    """Owns the clock and reset of a DUT and the bench configuration.

    ``tb.cfg`` is the generator's configuration, built once in this process from the run's
    parameters, and ``tb.component`` the Amaranth component built from it, so benches take
    payload layouts and register maps from the design itself.
    """

    def __init__(self, dut, period_ns: int = 10):
        self.dut = dut
        self.bench = bench_config()
        self.params = self.bench["params"]
        self.options = self.bench["options"]
        self.seed = self.bench["seed"]
        self.generator = get_generator(self.bench["generator"])
        self.cfg = self.generator.configure(self.params)
        self.component = self.generator.build(self.cfg)
        silence_unelaborated(self.component)   # built for its layouts only, never elaborated
        self.clk = dut.clk
        Clock(dut.clk, period_ns, unit="ns").start()

    def option(self, name, default):
        return self.options.get(name, default)

    @property
    def has_memory(self) -> bool:
        """The simulated top holds the memory of the core's AXI4 master."""
        return hasattr(self.component, "m_axi") and hasattr(self.dut, "bd_load")

    def transport(self, **kwargs) -> CocotbTransport:
        """The host-port transport, with the memory backdoor where there is a memory."""
        beat = self.component.m_axi.signature.bytes_per_beat if self.has_memory else None
        return CocotbTransport(self.dut, self.clk, self.component.cmd.payload.shape(),
                               seed=self.seed, memory_beat_bytes=beat, **kwargs)

    def host_driver(self):
        """The family's driver over the host-port transport (:meth:`transport`), and that
        transport."""
        transport = self.transport()
        driver = self.generator.driver(HostDriver(self.component.regmap, transport), self.cfg)
        return driver, transport

    def scheduled_jobs(self, transport, cases):
        """``(case, where)`` for every scheduled case (:meth:`schedule`), its host-port patterns
        and memory setting applied; ``where`` names them for a failure message."""
        for case, (idle, stall), (mem_stall, latency) in self.schedule(cases):
            transport.set_patterns(idle, stall)
            self.set_memory(mem_stall, latency)
            yield case, (f"(host port: idle {idle}, stall {stall}; memory: stall "
                         f"{mem_stall}/256, latency {latency})")

    def set_memory(self, stall: int, latency: int):
        """Back-pressure (probability ``stall``/256 per cycle on every channel) and read latency
        of the simulated memory."""
        self.dut.ram_stall.value, self.dut.ram_latency.value = stall, latency

    def schedule(self, cases):
        """``(case, (idle, stall), (memory stall, latency))``: every case, every host-port pattern
        pair and every memory setting at least once (the memory setting cycles along)."""
        pairs = scheduled(cases, self.patterns())
        memory = self.options.get("memory")
        settings = [tuple(memory)] if memory else list(MEMORY_SETTINGS)
        return [(case, pair, settings[k % len(settings)]) for k, (case, pair) in enumerate(pairs)]

    def patterns(self) -> list[tuple[str, str]]:
        """(idle, stall) pattern pairs to run the cases under: the default crossed set, or the
        user's ``idle``/``stall`` options on their side."""
        return crossed(self.options.get("idle"), self.options.get("stall"))

    def record(self, **stats):
        """Add to the run's statistics (``items`` and ``unit``: what the bench counted)."""
        record_stats(self.bench, **stats)

    async def reset(self, cycles: int = 2):
        if self.has_memory:
            self.set_memory(0, 1)
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.clk)

    def check_handshakes(self):
        """Fail, naming the stream, beat and cycle, if the core broke the stream contract on a
        stream it drives (checked by the simulated top on every cycle)."""
        problems = []
        for name in produced_streams(self.component):
            fault = int(getattr(self.dut, f"chk_{name}__fault").value)
            if fault:
                get = lambda field: int(getattr(self.dut, f"chk_{name}__{field}").value)
                payload = (f"payload {get('was'):#x} offered" if fault == 1 else
                           f"payload {get('was'):#x} offered, then {get('now'):#x}")
                problems.append(f"stream {name}: beat {get('beat')} at cycle {get('cycle')} after "
                                f"reset: {CHECK_FAULTS[fault]} ({payload} while ready was low)")
        if problems:
            raise AssertionError("stream contract broken:\n  " + "\n  ".join(problems))


def check_outputs(where: str, got: dict, want: dict):
    """Fail, naming ``where`` and for each differing array how many elements differ and the
    first (index, expected, got), unless every array of ``want`` equals ``got``'s."""
    problems = []
    for name, value in want.items():
        value, mine = np.asarray(value), np.asarray(got[name])
        if mine.shape != value.shape:
            problems.append(f"{name}: shape {list(mine.shape)}, expected {list(value.shape)}")
            continue
        if not np.array_equal(mine, value):
            bad = np.argwhere(mine != value)
            index = tuple(bad[0].tolist())
            problems.append(f"{name}: {len(bad)} of {value.size} differ; first at "
                            f"{list(index)}: expected {int(value[index])}, got "
                            f"{int(mine[index])}")
    if problems:
        raise AssertionError(where + "\n  " + "\n  ".join(problems))


def bench_test(func):
    """A cocotb test that gets a :class:`TB` instead of the DUT and, once the bench's own checks
    have passed, checks the stream contract of every stream the core drove."""
    @functools.wraps(func)
    async def test(dut):
        tb = TB(dut)
        await func(tb)
        tb.check_handshakes()
    return cocotb.test()(test)
