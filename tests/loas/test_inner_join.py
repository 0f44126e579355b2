"""InnerJoin in Amaranth's simulator: every match of every fiber pair, in order, with the weight
offset (fast prefix-sum) and the spike-word index (laggy table), under FIFO back-pressure and
hold -- nothing lost, nothing repeated."""

import random

import pytest
from amaranth import *
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out, connect
from amaranth.sim import Simulator

from snnforge.golden.loas import prefix_popcount
from snnforge.hw.loas.config import LoASConfig
from snnforge.hw.loas.inner_join import InnerJoin
from snnforge.sim.payload import unpack


def table_of(mask, width, segment):
    return [prefix_popcount(mask, s * segment) for s in range(width // segment)]


def make_pairs(cfg, rng, count):
    W = cfg.fiber
    pairs, values = [], []
    for i in range(count):
        kind = i % 4
        a = rng.getrandbits(W) if kind else (1 << W) - 1
        b = rng.getrandbits(W) & rng.getrandbits(W) if kind != 2 else (1 << W) - 1
        if not a & b:
            b |= a & -a or 1
            a |= b & -b
        if i % 8 in (3, 7):
            # Joints of exactly two or three positions: the last two matches of a pair.
            keep = sorted(rng.sample([p for p in range(W) if a >> p & 1],
                                     min(bin(a).count("1"), 2 + (i % 8 == 7))))
            b = (b & ~a) | sum(1 << p for p in keep)
        vbase = len(values)
        values += [rng.randint(-128, 127) or 1 for _ in range(bin(b).count("1"))]
        pairs.append({"marker": 0, "a": {"mask": a, "table": table_of(a, W, cfg.segment),
                                        "base": rng.randrange(cfg.k_max - W)},
                      "b": {"mask": b, "n": rng.randrange(cfg.tile_n), "vbase": vbase},
                      "joint": a & b, "single": int(bin(a & b).count("1") == 1)})
        if i % 5 == 4:
            pairs.append({"marker": 1, "a": {"mask": 0, "table": [0] * (W // cfg.segment), "base": 0},
                          "b": {"mask": 0, "n": 0, "vbase": 0}, "joint": 0, "single": 1})
    return pairs, values


def expected_matches(pairs, values):
    out = []
    for pair in pairs:
        if pair["marker"]:
            out.append({"marker": 1})
            continue
        a, b = pair["a"], pair["b"]
        joined = a["mask"] & b["mask"]
        for p in range(joined.bit_length()):
            if (joined >> p) & 1:
                out.append({"marker": 0, "n": b["n"],
                            "a_addr": a["base"] + prefix_popcount(a["mask"], p),
                            "weight": values[b["vbase"] + prefix_popcount(b["mask"], p)]})
    return out


def join_top(cfg, values):
    """The inner join with its weight buffer holding ``values``."""
    lanes = cfg.value_lanes                 # the weight buffer's rows hold a beat of weights
    words = [sum((v & 0xFF) << (8 * k) for k, v in enumerate(values[i:i + lanes]))
             for i in range(0, len(values), lanes)]

    class Top(wiring.Component):
        def __init__(self):
            self.ij = InnerJoin(cfg)
            super().__init__({"pairs": In(stream.Signature(cfg.pair_layout)),
                              "matches": Out(stream.Signature(cfg.match_layout)),
                              "fast": Out(self.ij.fast.shape()), "hold_next": In(1)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.ij = ij = self.ij
            m.submodules.mem = mem = memory.Memory(shape=cfg.dma_width, depth=len(words) + 1,
                                                   init=words + [0])
            rd = mem.read_port()
            m.d.comb += [rd.addr.eq(ij.w_addr), rd.en.eq(ij.w_en), ij.w_data.eq(rd.data),
                         ij.hold_next.eq(self.hold_next), self.fast.eq(ij.fast)]
            connect(m, wiring.flipped(self.pairs), ij.pairs)
            connect(m, ij.matches, wiring.flipped(self.matches))
            return m

    return Top()


@pytest.mark.parametrize("fiber, stages, depth", [(16, 1, 2), (32, 2, 4), (128, 2, 8)])
def test_inner_join_all_matches_under_backpressure(fiber, stages, depth):
    cfg = LoASConfig(pes=1, fiber=fiber, T=4, tile_n=5, k_max=1024, v_max=4096, segment=8, adders=1,
                     prefix_stages=stages, match_fifo=depth)
    rng = random.Random(fiber)
    pairs, values = make_pairs(cfg, rng, 30)
    want = expected_matches(pairs, values)
    dut = join_top(cfg, values)
    pair_layout, match_layout = cfg.pair_layout, cfg.match_layout
    got, fast_events = [], []

    async def feed(ctx):
        for pair in pairs:
            ctx.set(dut.pairs.valid, 1)
            ctx.set(dut.pairs.payload, pair_layout.const(pair))
            await ctx.tick().until(dut.pairs.ready)
        ctx.set(dut.pairs.valid, 0)

    async def drain(ctx):
        prng = random.Random(7)
        while len(got) < len(want):
            ready = prng.random() < 0.5
            ctx.set(dut.matches.ready, ready)
            ctx.set(dut.hold_next, prng.random() < 0.2)
            _, _, valid, payload, fast = await ctx.tick().sample(
                dut.matches.valid, dut.matches.payload, dut.fast)
            if fast.valid:
                fast_events.append(0 if fast.marker else fast.weight)
            if ready and valid:
                item = unpack(match_layout, payload.as_bits())
                got.append({"marker": 1} if item["marker"] else item)
        # Nothing more comes out: no match repeated, none invented.
        ctx.set(dut.matches.ready, 1)
        ctx.set(dut.hold_next, 0)
        for _ in range(4 * (cfg.prefix_stages + 4) + cfg.match_fifo):
            _, _, valid, fast = await ctx.tick().sample(dut.matches.valid, dut.fast)
            assert not valid and not fast.valid, "an extra match after the expected ones"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(drain)
    sim.run()
    assert got == want
    # The fast path saw every match exactly once, in order (markers as 0).
    assert fast_events == [0 if w["marker"] else w["weight"] for w in want]


@pytest.mark.parametrize("fiber", [16, 32])
def test_inner_join_one_match_per_cycle(fiber):
    """Without back-pressure every match and marker is announced in the cycle after the one
    before: a pair's last match releases it at once (``single`` and the remaining count say so
    ahead), so the next pair's first match follows without a bubble."""
    cfg = LoASConfig(pes=1, fiber=fiber, T=4, tile_n=5, k_max=1024, v_max=4096, segment=8,
                     adders=1, match_fifo=4)
    pairs, values = make_pairs(cfg, random.Random(fiber + 1), 40)
    want = expected_matches(pairs, values)
    dut = join_top(cfg, values)
    cycles = []

    async def feed(ctx):
        for pair in pairs:
            ctx.set(dut.pairs.valid, 1)
            ctx.set(dut.pairs.payload, cfg.pair_layout.const(pair))
            await ctx.tick().until(dut.pairs.ready)
        ctx.set(dut.pairs.valid, 0)

    async def watch(ctx):
        ctx.set(dut.matches.ready, 1)
        for cycle in range(len(want) + 40):
            _, _, fast = await ctx.tick().sample(dut.fast)
            if fast.valid:
                cycles.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(watch)
    sim.run()
    assert len(cycles) == len(want)
    gaps = [(i, b - a) for i, (a, b) in enumerate(zip(cycles, cycles[1:])) if b - a != 1]
    assert not gaps, f"bubbles after items (index, gap): {gaps[:5]}"


@pytest.mark.parametrize("fiber, stages", [(16, 1), (32, 2), (128, 2)])
def test_inner_join_latency_as_documented(fiber, stages):
    """``latency`` = clock edges from a pair at the inputs (FIFO empty, no hold) to its first
    match announced on ``fast`` (and pushed into FIFO-mp/FIFO-B at that cycle's edge: at the
    FIFO's head, ``matches.valid``, one edge later)."""
    cfg = LoASConfig(pes=1, fiber=fiber, T=4, tile_n=5, k_max=1024, v_max=4096, segment=8,
                     adders=1, prefix_stages=stages, match_fifo=4)
    dut = InnerJoin(cfg)
    W = cfg.fiber
    pair = {"marker": 0, "a": {"mask": 1 << (W - 1), "table": table_of(1 << (W - 1), W, 8),
                               "base": 0},
            "b": {"mask": 1 << (W - 1), "n": 0, "vbase": 0}, "joint": 1 << (W - 1),
            "single": 1}
    seen = {}

    async def bench(ctx):
        ctx.set(dut.matches.ready, 0)
        ctx.set(dut.pairs.valid, 1)
        ctx.set(dut.pairs.payload, cfg.pair_layout.const(pair))
        for edges in range(1, 20):
            await ctx.tick()
            if ctx.get(dut.pairs.ready):
                ctx.set(dut.pairs.valid, 0)
            for name, signal in (("fast", dut.fast.valid), ("fifo", dut.matches.valid)):
                if ctx.get(signal) and name not in seen:
                    seen[name] = edges

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert dut.latency == 4 + stages
    assert seen == {"fast": dut.latency, "fifo": dut.latency + 1}
