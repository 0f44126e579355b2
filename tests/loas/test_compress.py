"""SpikeCompressor against golden.loas.pack_spikes (structured and random rows, strong mode), and
SpikeExpander, its inverse, against the dense rows."""

import random

import pytest
import torch
from amaranth import Module
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from snnforge.golden.loas import pack_spikes
from snnforge.hw.loas.compress import SpikeCompressor, SpikeExpander
from snnforge.sim.amaranth_sim import simulate_streams
from snnforge.sim.cocotb_streams import Scoreboard
from snnforge.sim.payload import unpack


def expected(words, T, fiber, strong):
    spikes = ((torch.tensor(words).view(1, -1) >> torch.arange(T).view(T, 1, 1)) & 1)
    packed = pack_spikes(spikes, strong=strong, fiber=fiber)
    exp_words = [{"addr": i, "word": int(w)} for i, w in enumerate(packed.packed[0])]
    exp_chunks = [{"index": c, "mask": packed.chunk_masks[0][c], "base": packed.chunk_base[0][c]}
                  for c in range(packed.n_chunks)]
    return exp_words, exp_chunks


ROWS = {
    "all_zero": lambda T, K, rng: [0] * K,
    "all_one": lambda T, K, rng: [(1 << T) - 1] * K,
    "single_spikes": lambda T, K, rng: [1 << rng.randrange(T) for _ in range(K)],
    "random": lambda T, K, rng: [rng.getrandbits(T) if rng.random() < 0.5 else 0 for _ in range(K)],
}


@pytest.mark.parametrize("T, fiber, K", [(4, 16, 40), (4, 16, 16), (2, 8, 5), (8, 32, 100),
                                         (1, 8, 19)])
@pytest.mark.parametrize("kind", list(ROWS))
@pytest.mark.parametrize("strong", [False, True])
@pytest.mark.parametrize("assembly", ["decode", "shift"])
def test_compressor_matches_pack_spikes(T, fiber, K, kind, strong, assembly):
    rng = random.Random(K * 7 + T)
    words = ROWS[kind](T, K, rng)
    exp_words, exp_chunks = expected(words, T, fiber, strong)
    dut = SpikeCompressor(T, fiber, max_length=128, mask_assembly=assembly)

    async def starter(ctx):
        ctx.set(dut.length, K)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)

    # Two padding beats after the row: accepted and dropped.
    out, _ = simulate_streams(dut, feeds={"i": words + [(1 << T) - 1] * 2},
                              drains={"words": len(exp_words), "chunks": len(exp_chunks)},
                              setup={"strong": int(strong)}, control=starter, seed=K, idle=0.3,
                              stall=0.4)
    wl, cl = dut.words.payload.shape(), dut.chunks.payload.shape()
    Scoreboard("words").compare(exp_words, [unpack(wl, x) for x in out["words"]])
    Scoreboard("chunks").compare(exp_chunks, [unpack(cl, x) for x in out["chunks"]])


def test_compressor_rows_back_to_back_and_done():
    T, fiber = 4, 8
    dut = SpikeCompressor(T, fiber, max_length=64)     # decode: chunks without padding cycles
    rows = [[5, 0, 0, 15, 1, 0, 0, 0, 2, 3], [0] * 3, [7] * 17]

    async def bench(ctx):
        ctx.set(dut.words.ready, 1)
        ctx.set(dut.chunks.ready, 1)
        for row in rows:
            exp_words, exp_chunks = expected(row, T, fiber, False)
            ctx.set(dut.length, len(row))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            got_w, got_c = [], []
            for word in row:
                ctx.set(dut.i.payload, word)
                ctx.set(dut.i.valid, 1)
                _, _, wv, wp, cv, cp = await ctx.tick().sample(
                    dut.words.valid, dut.words.payload, dut.chunks.valid, dut.chunks.payload)
                if wv:
                    got_w.append(unpack(dut.words.payload.shape(), wp.as_bits()))
                if cv:
                    got_c.append(unpack(dut.chunks.payload.shape(), cp.as_bits()))
            ctx.set(dut.i.valid, 0)
            _, _, wv, wp, cv, cp, done = await ctx.tick().sample(
                dut.words.valid, dut.words.payload, dut.chunks.valid, dut.chunks.payload, dut.done)
            if wv:
                got_w.append(unpack(dut.words.payload.shape(), wp.as_bits()))
            if cv:
                got_c.append(unpack(dut.chunks.payload.shape(), cp.as_bits()))
            assert ctx.get(dut.done)
            assert got_w == exp_words and got_c == exp_chunks
            assert ctx.get(dut.nonsilent) == len(exp_words)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


class _ExpanderOverBuffers(wiring.Component):
    """The expander reading a row that golden.loas.pack_spikes packed into two memories."""

    def __init__(self, T, fiber, max_length, masks, words):
        self.expander = SpikeExpander(T, fiber, max_length)
        self._mem = (masks, words, fiber, T, max_length)
        super().__init__({"start": In(1), "length": In(range(max_length + 1)),
                          "o": Out(stream.Signature(T)), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        masks, words, fiber, T, max_length = self._mem
        m.submodules.expander = ex = self.expander
        m.submodules.masks = mask_mem = memory.Memory(shape=fiber, depth=max(2, len(masks)),
                                                      init=masks)
        m.submodules.words = word_mem = memory.Memory(shape=T, depth=max_length, init=words)
        mask_rd, word_rd = mask_mem.read_port(domain="comb"), word_mem.read_port(domain="comb")
        m.d.comb += [mask_rd.addr.eq(ex.mask_addr), ex.mask_data.eq(mask_rd.data),
                     word_rd.addr.eq(ex.word_addr), ex.word_data.eq(word_rd.data),
                     ex.start.eq(self.start), ex.length.eq(self.length),
                     self.done.eq(ex.done)]
        wiring.connect(m, ex.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("T, fiber, K", [(4, 16, 40), (4, 16, 16), (2, 8, 5), (8, 32, 100),
                                         (1, 8, 19)])
@pytest.mark.parametrize("kind", list(ROWS))
def test_expander_inverts_pack_spikes(T, fiber, K, kind):
    rng = random.Random(K * 5 + T)
    words = ROWS[kind](T, K, rng)
    spikes = ((torch.tensor(words).view(1, -1) >> torch.arange(T).view(T, 1, 1)) & 1)
    packed = pack_spikes(spikes, fiber=fiber)
    dut = _ExpanderOverBuffers(T, fiber, 128, packed.chunk_masks[0],
                               [int(w) for w in packed.packed[0]])

    async def starter(ctx):
        ctx.set(dut.length, K)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)

    # A bound well above the 2.5 K cycles the stalls allow: an expander that stops short fails
    # in seconds instead of waiting out the default bound.
    out, _ = simulate_streams(dut, feeds={}, drains={"o": K}, seed=K, stall=0.4,
                              control=starter, max_cycles=20 * K + 100)
    Scoreboard("expanded words").compare(words, out["o"])


def test_expander_rows_back_to_back_and_done():
    T, fiber, K = 4, 8, 21
    rng = random.Random(9)
    words = [rng.getrandbits(T) if rng.random() < 0.4 else 0 for _ in range(K)]
    spikes = ((torch.tensor(words).view(1, -1) >> torch.arange(T).view(T, 1, 1)) & 1)
    packed = pack_spikes(spikes, fiber=fiber)
    dut = _ExpanderOverBuffers(T, fiber, 64, packed.chunk_masks[0],
                               [int(w) for w in packed.packed[0]])

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for length in (K, 0, 9, K):
            ctx.set(dut.length, length)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            got = []
            while not ctx.get(dut.done):
                _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
                if valid:
                    got.append(int(payload))
            assert got == words[:length]
            # Without a start, a longer length must not wake the expander up.
            ctx.set(dut.length, K)
            for _ in range(3):
                _, _, valid, done = await ctx.tick().sample(dut.o.valid, dut.done)
                assert not valid and done

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
