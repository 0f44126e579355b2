"""Fast and laggy prefix-sum units: against the golden prefix_popcount and against each other."""

import random

import pytest
from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from snnforge.golden.loas import prefix_popcount
from snnforge.hw.common.prefix_sum import (FastPrefixSum, LaggyPrefixSum, laggy_lookup,
                                           laggy_table_layout)


def masks(width, n, seed):
    rng = random.Random(seed)
    full = (1 << width) - 1
    out = [0, full, 1, 1 << (width - 1), 0x5555_5555_5555_5555_5555_5555_5555_5555 & full]
    out += [rng.getrandbits(width) & rng.getrandbits(width) for _ in range(n)]   # sparse-ish
    out += [rng.getrandbits(width) for _ in range(n)]
    return out


@pytest.mark.parametrize("width, stages", [(8, 0), (32, 1), (128, 2), (128, 1)])
def test_fast_prefix_sum_matches_golden(width, stages):
    dut = FastPrefixSum(width, stages=stages)
    rng = random.Random(width)
    cases = [(mk, rng.randrange(width)) for mk in masks(width, 40, 1) for _ in range(3)]
    cases += [(masks(width, 1, 2)[-1], p) for p in range(width)]

    async def bench(ctx):
        ctx.set(dut.en, 1)
        pipeline = []
        for mask, pos in cases + [(0, 0)] * stages:
            ctx.set(dut.mask, mask)
            ctx.set(dut.pos, pos)
            pipeline.append((mask, pos))
            if stages == 0:
                assert ctx.get(dut.count) == prefix_popcount(mask, pos)
                continue
            await ctx.tick()
            if stages and len(pipeline) >= stages:
                m_, p_ = pipeline[-stages]   # a result appears `stages` edges after its inputs
                assert ctx.get(dut.count) == prefix_popcount(m_, p_), (hex(m_), p_)

    sim = Simulator(dut)
    if stages:
        sim.add_clock(1e-8)   # a combinational unit has no clock domain
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("width, segment, adders", [(128, 8, 16), (128, 8, 4), (128, 16, 1),
                                                    (32, 8, 3), (16, 4, 4), (8, 8, 1)])
def test_laggy_equals_fast_for_every_position(width, segment, adders):
    """The equivalence of the two units: for each mask, the laggy table + lookup gives the
    fast unit's count at every position."""
    laggy = LaggyPrefixSum(width, segment=segment, adders=adders)

    class Pair(wiring.Component):
        mask: In(width)
        pos: In(range(width))
        table: In(laggy_table_layout(width, segment))
        fast: Out(range(width + 1))
        slow: Out(range(width + 1))

        def elaborate(self, platform):
            m = Module()
            m.submodules.fast = fast = FastPrefixSum(width, stages=0)
            m.d.comb += [fast.mask.eq(self.mask), fast.pos.eq(self.pos), fast.en.eq(1),
                         self.fast.eq(fast.count),
                         self.slow.eq(laggy_lookup(m, self.mask, self.table, self.pos,
                                                   width=width, segment=segment))]
            return m

    top_pair = Pair()

    class Top(wiring.Component):
        def __init__(self):
            super().__init__({})

        def elaborate(self, platform):
            m = Module()
            m.submodules.laggy = laggy
            m.submodules.pair = top_pair
            return m

    dut = Top()

    async def bench(ctx):
        for mask in masks(width, 12, 3):
            ctx.set(laggy.i.payload, mask)
            ctx.set(laggy.i.valid, 1)
            await ctx.tick().until(laggy.i.ready)
            ctx.set(laggy.i.valid, 0)
            cycles = 0
            while not ctx.get(laggy.o.valid):
                await ctx.tick()
                cycles += 1
            assert cycles == laggy.latency
            table = ctx.get(laggy.o.payload)
            ctx.set(top_pair.mask, mask)
            ctx.set(top_pair.table, table)
            for pos in range(width):
                ctx.set(top_pair.pos, pos)
                assert ctx.get(top_pair.fast) == ctx.get(top_pair.slow) == prefix_popcount(mask, pos)
            ctx.set(laggy.o.ready, 1)
            await ctx.tick()
            ctx.set(laggy.o.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_prefix_units_validate():
    with pytest.raises(ValueError, match="stages"):
        FastPrefixSum(8, stages=3)
    with pytest.raises(ValueError, match="segment"):
        LaggyPrefixSum(128, segment=6)
    with pytest.raises(ValueError, match="adders"):
        LaggyPrefixSum(128, segment=8, adders=17)
    with pytest.raises(ValueError, match="width"):
        LaggyPrefixSum(20, segment=8)


@pytest.mark.parametrize("width, stages", [(8, 1), (32, 2), (128, 2), (128, 1)])
def test_fast_prefix_sum_latency_as_documented(width, stages):
    """``latency`` = clock edges from (mask, pos) at the inputs (``en`` high) to its count."""
    dut = FastPrefixSum(width, stages=stages)
    mask, pos = (1 << width) - 1, width - 1
    seen = []

    async def bench(ctx):
        ctx.set(dut.en, 1)
        ctx.set(dut.mask, mask)
        ctx.set(dut.pos, pos)
        for edges in range(1, 10):
            await ctx.tick()
            ctx.set(dut.mask, 0)             # only the first cycle's inputs have a nonzero count
            if ctx.get(dut.count) == width - 1:
                seen.append(edges)
                return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [dut.latency]


@pytest.mark.parametrize("width, segment, adders", [(128, 8, 4), (128, 8, 16), (32, 8, 3),
                                                    (16, 4, 1)])
def test_laggy_prefix_sum_latency_as_documented(width, segment, adders):
    """``latency`` = clock edges from the edge that accepts a mask on ``i`` to its table on
    ``o`` (``o.valid``), and the unit takes the next mask once that table has left."""
    dut = LaggyPrefixSum(width, segment=segment, adders=adders)
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, (1 << width) - 1)
        await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        for edges in range(1, 100):
            if ctx.get(dut.o.valid):
                seen.append(edges - 1)
                return
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert dut.latency == -(-width // segment // adders)
    assert seen == [dut.latency]
