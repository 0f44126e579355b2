"""The sequential divider and integer square root against Python's integers."""

import math
import random

import pytest
from amaranth.sim import Simulator

from snnforge.hw.common.arith import Divider, ISqrt


def _run(dut, cases, setup, result):
    got = []

    async def bench(ctx):
        for case in cases:
            setup(ctx, case)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 1
            while ctx.get(dut.busy):
                await ctx.tick()
                cycles += 1
            got.append((ctx.get(result), cycles))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_divider_quotients_and_cycles():
    rng = random.Random(0)
    cases = [(1 << 32, 1), (1 << 32, 3), ((1 << 33) - 1, 4095), (100, 7), (0, 5), (5, 0)] + \
        [(rng.randrange(1 << 33), rng.randrange(1, 4096)) for _ in range(40)]
    dut = Divider(33, 12)

    def setup(ctx, case):
        ctx.set(dut.num, case[0])
        ctx.set(dut.den, case[1])

    for (num, den), (q, cycles) in zip(cases, _run(dut, cases, setup, dut.quotient)):
        assert q == (num // den if den else (1 << 33) - 1), (num, den)
        assert cycles == 33 + 1


def test_isqrt_roots_and_cycles():
    rng = random.Random(1)
    cases = [0, 1, 2, 3, 4, 15, 16, 17, (1 << 21) - 1, 1 << 20] + \
        [rng.randrange(1 << 21) for _ in range(40)]
    dut = ISqrt(21)

    def setup(ctx, v):
        ctx.set(dut.value, v)

    for v, (root, cycles) in zip(cases, _run(dut, cases, setup, dut.root)):
        assert root == math.isqrt(v), v
        assert cycles == 11 + 1


@pytest.mark.parametrize("make, message", [(lambda: Divider(0, 4), "num_bits"),
                                           (lambda: Divider(8, "4"), "den_bits"),
                                           (lambda: ISqrt(-1), "value_bits")])
def test_bad_widths_name_the_parameter(make, message):
    with pytest.raises(ValueError, match=message):
        make()
