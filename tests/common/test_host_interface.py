"""The host interface in Amaranth's simulator, on a small core of its own: a command list from
memory writes registers, loads beats into the core, waits for it, stores its beats back; the
counters count what moved; every kind of bad list stops with its error code and the failing
command's address, never a hang; the memory window and both front ends reach the same map."""


import pytest
from amaranth import *
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import connect
from amaranth.sim import Simulator

from snnforge.host import CommandList, HostDriver, MemoryImage
from snnforge.hw.common.hostport import RegisterMap
from snnforge.hw.common.host_interface import HostInterface, add_host_interface
from snnforge.params import SnnforgeError
from snnforge.sim.amaranth_axi import AxiMemory
from snnforge.sim.amaranth_host import AmaranthTransport


class Scratch(wiring.Component):
    """LOAD ``beats`` stores beats (target ``scratch``), STORE ``sums`` gives them back plus
    ``gain``; ``control.start`` counts ``gain`` cycles down (``status.running``). A LOAD with
    argument 0xBAD is refused (target error)."""

    def __init__(self, dw, counter_width=32):
        rm = RegisterMap()
        rm.add_register("gain", 16)
        rm.add_register("control", access="pulse", fields={"start": (1, "count down")})
        rm.add_register("status", access="ro", fields={"running": (1, "counting")})
        rm.add_target("scratch", "load", doc="beats kept in order")
        rm.add_target("sums", "store", doc="the kept beats plus gain")
        add_host_interface(rm, window_bits=8, counter_width=counter_width)
        self.regmap = rm.freeze()
        self.host = HostInterface(rm, data_width=dw, max_burst=8, outstanding=2, max_beats=256)
        members = {name: member for name, member in self.host.signature.members.items()
                   if name in ("cmd", "rsp", "s_axil", "m_axi", "irq")}
        super().__init__(members)
        self.dw = dw

    def elaborate(self, platform):
        m = Module()
        m.submodules.host = host = self.host
        for name in ("cmd", "rsp", "s_axil", "m_axi", "irq"):
            connect(m, getattr(host, name), wiring.flipped(getattr(self, name))) \
                if name != "irq" else m.d.comb.__iadd__(self.irq.eq(host.irq))
        m.submodules.mem = mem = memory.Memory(shape=self.dw, depth=64, init=[])
        wr, rd = mem.write_port(), mem.read_port(domain="comb")
        index = Signal(7)
        load = host.load
        m.d.comb += [load.ready.eq(1), wr.addr.eq(Mux(load.payload.first, 0, index)),
                     wr.data.eq(load.payload.data), wr.en.eq(load.valid & (load.payload.target == 0))]
        m.d.comb += host.target_error.eq(load.valid & (load.payload.arg == 0xBAD))
        with m.If(load.valid):
            m.d.sync += index.eq(Mux(load.payload.first, 1, index + 1))
        # STORE: beats from 0 on.
        left = Signal(16)
        out = Signal(7)
        m.d.comb += host.store_req.ready.eq(left == 0)
        with m.If(host.store_req.valid & host.store_req.ready):
            m.d.sync += [left.eq(host.store_req.payload.beats), out.eq(0)]
        m.d.comb += [rd.addr.eq(out), host.store.valid.eq(left != 0),
                     host.store.payload.eq(rd.data + host.regs.gain)]
        with m.If(host.store.valid & host.store.ready):
            m.d.sync += [left.eq(left - 1), out.eq(out + 1)]
        count = Signal(16)
        with m.If(host.regs.control.start):
            m.d.sync += count.eq(host.regs.gain)
        with m.Elif(count != 0):
            m.d.sync += count.eq(count - 1)
        m.d.comb += host.status.status.running.eq(count != 0)
        return m


def simulate(dut, job, *, stall="random:0.3", latency=3, size=1 << 16):
    ram = AxiMemory(dut.m_axi, size, latency=latency, stall=stall, seed=5)
    out = []

    async def bench(ctx):
        host = HostDriver(dut.regmap, AmaranthTransport(ctx, dut, memory=ram, idle=0.2,
                                                        stall=0.2, seed=3))
        out.append(await job(host, ram))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    ram.add_to(sim)
    sim.add_testbench(bench)
    sim.run()
    return out[0]


@pytest.mark.parametrize("dw, counter_width", [(32, 32), (128, 32), (256, 16)])
def test_command_list_loads_waits_and_stores(dw, counter_width):
    dut = Scratch(dw, counter_width)
    assert dut.regmap["total_cycles"].width == counter_width
    bpb = dw // 8
    beats = 13
    values = [(7 * k + 1) << (dw - 8) | k for k in range(beats)]

    async def job(host, ram):
        image = MemoryImage(1 << 16)
        src = image.put("data", b"".join(v.to_bytes(bpb, "little") for v in values), align=4096)
        dst = image.alloc("sums", beats * bpb)
        cl = CommandList(dut.regmap)
        cl.write("gain", 5)
        cl.load("scratch", src, beats)
        cl.write("control", start=1)
        cl.wait("status", running=0)
        cl.store("sums", dst, beats)
        cl.end()
        counters = await host.run_commands(image, cl)
        return counters, await host.read_memory(dst, beats * bpb), image

    counters, stored, image = simulate(dut, job)
    got = [int.from_bytes(stored[k * bpb:(k + 1) * bpb], "little") for k in range(beats)]
    assert got == [(v + 5) % (1 << dw) for v in values]
    assert counters["commands"] == 6
    assert counters["dma_write_bytes"] == beats * bpb
    # The data and the command list (fetched in groups of four 16-byte commands).
    fetched = counters["dma_read_bytes"] - beats * bpb
    assert fetched % 64 == 0 and 6 * 16 <= fetched <= 6 * 16 + 3 * 64
    assert counters["dma_write_bursts"] == -(-beats // 8)
    assert counters["total_cycles"] > 5


def test_counters_stop_at_their_width():
    dut = Scratch(32, counter_width=16)

    async def job(host, ram):
        cl = CommandList(dut.regmap)
        cl.write("gain", 0xFFFF)
        cl.write("control", start=1)
        cl.wait("status", running=0)
        cl.end()
        return await host.run_commands(MemoryImage(1 << 12), cl)

    counters = simulate(dut, job, stall="none", latency=1)
    assert counters["total_cycles"] == 0xFFFF      # more cycles than that: saturated, not wrapped
    assert counters["commands"] == 4


def test_posted_store_overlaps_loads_and_a_wait_orders_them():
    """A STORE's writes overlap the LOAD after it; a WAIT waits for them, so a LOAD after the
    WAIT reads back what the STORE wrote."""
    dut = Scratch(128)
    beats = 12

    async def job(host, ram):
        image = MemoryImage(1 << 16)
        src = image.put("data", b"".join(k.to_bytes(16, "little") for k in range(beats)),
                        align=4096)
        other = image.put("other", bytes(16 * beats), align=4096)
        first, second = image.alloc("first", beats * 16), image.alloc("second", beats * 16)
        cl = CommandList(dut.regmap)
        cl.write("gain", 5)
        cl.load("scratch", src, beats)
        cl.store("sums", first, beats)          # k + 5
        cl.load("scratch", other, 1)            # overlaps the store's writes (beat 0 is 0 either way)
        cl.wait("status", running=0)            # the store's writes are done after this
        cl.load("scratch", first, beats)
        cl.store("sums", second, beats)         # k + 10
        cl.end()
        counters = await host.run_commands(image, cl)
        return counters, [await host.read_memory(a, beats * 16) for a in (first, second)]

    counters, (first, second) = simulate(dut, job)
    words = lambda raw: [int.from_bytes(raw[k * 16:(k + 1) * 16], "little") for k in range(beats)]
    assert words(first) == [k + 5 for k in range(beats)]
    assert words(second) == [k + 10 for k in range(beats)]
    assert counters["commands"] == 8 and counters["dma_write_bytes"] == 2 * beats * 16


@pytest.mark.parametrize("case, code, index", [
    ("misaligned", 1, 1), ("beyond_limit", 2, 1), ("bus_error", 3, 1), ("opcode", 4, 1),
    ("target", 5, 1), ("format", 5, 1), ("timeout", 6, 3), ("no_end", 2, 2),
    ("store_bus_error", 3, 1)])
def test_bad_lists_stop_with_a_code(case, code, index):
    dut = Scratch(128)
    messages = {1: "misaligned address", 2: "beyond mem_limit", 3: "memory error",
                4: "unknown opcode", 5: "bad target", 6: "WAIT timed out"}

    async def job(host, ram):
        size = 1 << 16
        image = MemoryImage(size)
        src = image.put("data", bytes(64), align=4096)
        cl = CommandList(dut.regmap)
        cl.write("gain", 3)
        if case == "misaligned":
            cl.load("scratch", src + 4, 2)
        elif case == "beyond_limit":
            cl.load("scratch", size - 32, 4)
        elif case == "bus_error":
            image.size = 1 << 20         # the core is told of more memory than there is
            cl.load("scratch", size, 2)
        elif case == "opcode":
            cl.commands.append((9, 0, 0, 0, 0, 0, "BOGUS"))
        elif case == "target":
            cl.commands.append((3, 7, 0, src, 1, 0, "LOAD target 7"))
        elif case == "store_bus_error":
            # Posted: the LOAD after it runs, yet the error names the STORE.
            image.size = 1 << 20
            cl.store("sums", size, 2)
            cl.load("scratch", src, 2)
        elif case == "format":
            cl.load("scratch", src, 2, arg=0xBAD)
        elif case == "timeout":
            cl.write("gain", 1000)
            cl.write("control", start=1)
            cl.wait("status", running=0)
        if case == "no_end":
            cl.write("gain", 4)
            # The memory ends with the list: the processor runs out of commands.
            image.size = -(-image.top // 64) * 64 + 2 * 16
        else:
            cl.end()
        with pytest.raises(SnnforgeError) as info:
            await host.run_commands(image, cl, wait_limit=20)
        # The interface is free again: a good list runs after a bad one.
        good = CommandList(dut.regmap)
        good.write("gain", 2)
        good.end()
        counters = await host.run_commands(MemoryImage(1 << 16), good)
        return str(info.value), await host.read("gain"), counters["commands"]

    message, gain, commands = simulate(dut, job)
    assert f"command list stopped at command {index}" in message
    assert messages[code] in message
    assert gain == 2 and commands == 2


def test_memory_window_reaches_every_word_and_page():
    dut = Scratch(128)

    async def job(host, ram):
        transport = host.transport
        del transport.write_memory, transport.read_memory    # no backdoor: the window
        data = bytes(range(256)) * 9
        addr = (1 << 10) - 40                                # crosses a 1 KiB window page
        await host.write_memory(addr, data)
        back = await host.read_memory(addr, len(data))
        return data, back, ram.read(addr, len(data))

    data, back, stored = simulate(dut, job)
    assert back == data and stored == data


def test_command_list_names_its_registers_and_targets():
    cl = CommandList(Scratch(128).regmap)
    with pytest.raises(KeyError, match="no bulk target named 'nope'"):
        cl.load("nope", 0, 1)
    with pytest.raises(ValueError, match="'sums' is a store target"):
        cl.load("sums", 0, 1)
    with pytest.raises(KeyError, match="no field 'go'"):
        cl.write("control", go=1)
    with pytest.raises(SnnforgeError, match="region big .* does not fit the 1,024-byte memory"):
        MemoryImage(1024).alloc("big", 2000)
