"""The example family: an adder behind the host port (``example_acc``: generator, driver, bench)
and a stream source that may break the stream contract (``example_pulse``: the stream checks'
self-test)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from snnforge.driver import ArraySpec, Driver, Job, JobResult, JobSpec
from snnforge.generator import STREAM_OPTIONS, Generator
from snnforge.hw.common.hostport import HostPort, RegisterMap, StreamWindow, host_port_members
from snnforge.hw.common.streams import StreamFIFO
from snnforge.params import Config, Param, param


@dataclass(frozen=True)
class AccConfig(Config):
    width: int = param(8, "data width", lo=2, hi=32)
    depth: int = param(4, "result FIFO depth", lo=2, hi=64)


class Acc(wiring.Component):
    """``y = (x + offset) mod 2**width`` for every word pushed into window ``x``; results are
    popped from window ``y``. Latency two cycles; one word per cycle."""

    def __init__(self, cfg: AccConfig):
        self.cfg = cfg
        rm = RegisterMap()
        rm.add_register("offset", cfg.width, doc="added to every word")
        rm.add_register("count", 16, "ro", doc="words added")
        rm.add_window("x", 1, cfg.width, "wo", stream=True, doc="push operands")
        rm.add_window("y", 1, cfg.width, "ro", stream=True, doc="pop results")
        self.regmap = rm.freeze()
        super().__init__(host_port_members(rm))

    def elaborate(self, platform):
        m = Module()
        rm, w = self.regmap, self.cfg.width
        m.submodules.host = host = HostPort(rm)
        m.submodules.win_x = win_x = StreamWindow(rm["x"], rm.data_width)
        m.submodules.win_y = win_y = StreamWindow(rm["y"], rm.data_width)
        m.submodules.fifo = fifo = StreamFIFO(rm.data_width, self.cfg.depth)
        connect(m, wiring.flipped(self.cmd), host.cmd)
        connect(m, host.rsp, wiring.flipped(self.rsp))
        connect(m, host.x, win_x.bus)
        connect(m, host.y, win_y.bus)
        count = Signal(16)
        m.d.comb += [fifo.i.valid.eq(win_x.o.valid), win_x.o.ready.eq(fifo.i.ready),
                     fifo.i.payload.eq((win_x.o.payload[:w] + host.regs.offset)[:w]),
                     host.status.count.eq(count)]
        connect(m, fifo.o, win_y.i)
        with m.If(fifo.i.valid & fifo.i.ready):
            m.d.sync += count.eq(count + 1)
        return m


class AccDriver(Driver):
    """The job: add ``offset`` to every element of ``x``."""

    @classmethod
    def job_spec(cls, cfg):
        top = (1 << cfg.width) - 1
        return JobSpec(inputs=(ArraySpec("x", ("N",), "int", "operands", lo=0, hi=top),),
                       options=(Param("offset", 0, "added to every operand", 0, top),),
                       outputs=(ArraySpec("y", ("N",), "int", "sums"),))

    async def run(self, job: Job) -> JobResult:
        await self.host.write("offset", job.options["offset"])
        y = []
        for start in range(0, len(job.inputs["x"]), self.cfg.depth):
            chunk = job.inputs["x"][start:start + self.cfg.depth].tolist()
            await self.host.write_window("x", chunk)
            y += await self.host.read_window("y", len(chunk))
        counters = await self.host.read_many(["count"])
        return JobResult({"y": np.array(y, dtype=np.int64)}, counters)


@dataclass(frozen=True)
class PulseConfig(Config):
    width: int = param(8, "count width", lo=2, hi=32)


class Pulse(wiring.Component):
    """Counts on ``o``, one beat per cycle at most. Input ``mode``: 0 keeps the stream contract;
    1 lets ``valid`` fall every other cycle whether or not the beat was taken; 2 moves the count
    on every cycle (two broken producers)."""

    def __init__(self, cfg: PulseConfig):
        self.cfg = cfg
        super().__init__({"o": Out(stream.Signature(cfg.width)), "mode": In(2)})

    def elaborate(self, platform):
        m = Module()
        phase = Signal()
        m.d.sync += phase.eq(~phase)
        m.d.comb += self.o.valid.eq(Mux(self.mode == 1, phase, 1))
        with m.If((self.o.valid & self.o.ready) | (self.mode == 2)):
            m.d.sync += self.o.payload.eq(self.o.payload + 1)
        return m


GENERATORS = (
    Generator(name="example_acc", summary="an adder behind the host port (example family)",
              config=AccConfig, factory=Acc, describe=lambda acc: {"latency_cycles": 2},
              bench="example_family.bench", testcase="regression", sim_options=STREAM_OPTIONS,
              driver=AccDriver, demo_targets=None),
    Generator(name="example_pulse", summary="a counter stream (example family)",
              config=PulseConfig, factory=Pulse, bench="example_family.bench",
              testcase="pulse", sim_options={"mode": "hold, drop or change"},
              demo_targets=None),
)
