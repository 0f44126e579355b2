"""The LoAS core end to end in Amaranth's simulator (tiny configurations, no Verilator build):
the host driver runs whole layers and every output is compared with the golden model."""

import asyncio
import re

import numpy as np
import pytest
import torch
from amaranth.back import rtlil
from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import memory
from amaranth.sim import Simulator

from snnforge.hw.loas.config import LoASConfig
from snnforge.hw.loas.core import LoASCore
from snnforge.hw.loas.pe import PE
from snnforge.host import CommandList, HostDriver
from snnforge.hw.loas.driver import LoASDriver, _even_out
from snnforge.params import SnnforgeError
from snnforge.sim.amaranth_axi import AxiMemory
from snnforge.sim.amaranth_host import AmaranthTransport
from snnforge.sim.loas.vectors import (LayerCase, expected_layer, expected_network,
                                       loas_cases, network_cases)

TINY = LoASConfig(pes=2, fiber=8, T=2, tile_n=3, group=2, k_max=32, n_max=12, v_max=256,
                  f_max=128, segment=4, adders=1, leak="none")


MEMORY = 1 << 18


def simulate(cfg, steps, *, seed=3, wrap=lambda transport: transport, stall="random:0.2",
             watch=None):
    """Run ``steps`` (async callables taking a LoASDriver) on a core in Amaranth's simulator,
    its memory an :class:`AxiMemory` with back-pressure on every channel; returns their results.
    ``wrap`` may interpose on the transport; ``watch(dut)`` may give a process to run beside."""
    dut = LoASCore(cfg)
    memory = AxiMemory(dut.m_axi, MEMORY, latency=3, stall=stall, seed=seed)
    results = []

    async def bench(ctx):
        transport = wrap(AmaranthTransport(ctx, dut, idle=0.2, stall=0.2, seed=seed,
                                           memory=memory))
        driver = LoASDriver(HostDriver(dut.regmap, transport), cfg, memory_size=MEMORY)
        for step in steps:
            results.append(await step(driver))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    memory.add_to(sim)
    sim.add_testbench(bench)
    if watch is not None:
        sim.add_process(watch(dut))
    sim.run()
    return results


def run_cases(cfg, cases, *, seed=3):
    def step(case):
        return lambda driver: driver.run_layer(
            case.spikes, case.weights, threshold=case.threshold, leak_amount=case.leak_amount,
            tmask=case.tmask, strong=case.strong, sequential=case.sequential)
    results = list(zip(cases, simulate(cfg, [step(case) for case in cases], seed=seed)))
    for case, got in results:
        want = expected_layer(cfg, case, got.k_block)
        assert np.array_equal(got.spikes, want["spikes"]), case.describe()
        assert np.array_equal(got.membrane, want["membrane"]), case.describe()
        assert got.counters["matches"] == want["matches"], case.describe()
        assert got.counters["saturations"] == want["saturations"], case.describe()
    return results


@pytest.mark.parametrize("cfg", [
    TINY,
    TINY.replace(acc_width=6, leak="shift", reset="soft"),          # saturating partial sums
    TINY.replace(T=1, tile_n=2, group=1, segment=8, match_fifo=2, group_fifo=2),
    TINY.replace(T=3, tile_n=4, group=3, masked="leak_only", leak="mul"),
    TINY.replace(group_ram="block", fiber_ram="block", word_ram="block", group_fifo=3),
], ids=["tiny", "saturating", "T1-minimal-fifos", "T3", "block-rams"])
def test_core_regression_suite(cfg):
    run_cases(cfg, loas_cases(cfg, "regression", seed=5))


def test_core_splits_columns_when_weights_overflow_the_buffers():
    cfg = TINY.replace(v_max=24, f_max=16)
    results = run_cases(cfg, loas_cases(cfg, "quick", seed=2))
    assert any(len({run["n0"] for run in got.runs}) > 1 for _, got in results)


def test_core_counters_and_cycles_come_from_the_rtl():
    (case, got), = run_cases(TINY, loas_cases(TINY, "quick", seed=4)[:1])
    c = got.counters
    # Compute cycles within the list's cycles; every byte moved is counted.
    assert 0 < c["cycles"] < c["total_cycles"]
    bpb = TINY.beat_bytes
    driver = LoASDriver(HostDriver(LoASCore(TINY).regmap, transport=None), TINY)
    T, M, K = case.spikes.shape
    outputs = sum(min(TINY.pes, M - run["m0"]) * sum(driver._output_beats(run["n_cols"]))
                  for run in got.runs)
    assert c["dma_write_bytes"] == outputs * bpb
    assert c["buffer_writes"] * bpb < c["dma_read_bytes"]      # plus the command list
    assert c["dma_read_bursts"] >= c["commands"] // 4
    assert c["weight_reads"] == c["word_reads"] == c["matches"]
    assert c["pe_busy"] >= c["matches"]
    assert c["fiber_reads"] == TINY.pes * c["rows_read"]
    assert c["lif_steps"] == len(got.runs) * TINY.pes * case.weights.shape[1] * TINY.T


class _Listed(Exception):
    pass


class _ListingHost(HostDriver):
    """Stops at the command list a driver hands over."""

    async def run_commands(self, image, commands):
        raise _Listed(commands)


def _command_list(cfg, x, w):
    driver = LoASDriver(_ListingHost(LoASCore(cfg).regmap, transport=None), cfg)
    with pytest.raises(_Listed) as listed:
        asyncio.run(driver.run_layer(x, w, threshold=20))
    return driver, listed.value.args[0]


def test_command_list_writes_a_register_only_when_it_changes():
    """Several row tiles and column blocks: between two runs of a column block only the banks
    change, and no register is written twice in a row with the same value."""
    rng = np.random.default_rng(2)
    x = torch.from_numpy((rng.random((TINY.T, 7, 16)) < 0.5).astype(np.int64))
    w = torch.from_numpy(rng.integers(-9, 9, (16, 12)))
    driver, cl = _command_list(TINY.replace(v_max=64, f_max=32), x, w)
    last = {}
    regs = {r.address: r for r in driver.host.regmap.registers}
    writes = [(regs[c[3]], c[4]) for c in cl.commands if c[0] == 1]
    for r, value in writes:
        if r.access != "pulse":
            assert last.get(r.name) != value, f"{r.name} written again with {value:#x}"
            last[r.name] = value
    starts = sum(r.name == "control" and value == r.encode(start=1) for r, value in writes)
    assert starts > 4 and sum(r.name == "n_cols" for r, _ in writes) < starts


def test_column_blocks_are_balanced_smaller_first():
    rng = np.random.default_rng(3)
    w = rng.integers(-9, 9, (16, 15)) * (rng.random((16, 15)) < 0.7)
    cfg = TINY.replace(v_max=80, f_max=64)          # two tiles of columns fit, three do not
    driver = LoASDriver(HostDriver(LoASCore(cfg).regmap, transport=None), cfg)
    _, _, blocks = driver.plan(w, False)
    tiles = [-(-n_cols // cfg.tile_n) for n_cols, _ in blocks]
    assert len(blocks) == 3 and sum(n for n, _ in blocks) == 15
    assert max(tiles) - min(tiles) <= 1 and tiles == sorted(tiles)


def _follow_case():
    """A layer of one weight block whose first run has masks to wait for and spikes out."""
    rng = np.random.default_rng(8)
    x = torch.from_numpy((rng.random((TINY.T, 2, 24)) < 0.6).astype(np.int64))
    w = torch.from_numpy(rng.integers(-40, 60, (24, 6)) * (rng.random((24, 6)) < 0.5))
    return x, w


def _expected(x, w, k_block, threshold):
    want = expected_layer(TINY, LayerCase("tiny", x, w, threshold=threshold, leak_amount=0),
                          k_block)
    return want["spikes"].numpy(), want["membrane"].numpy()


def test_first_run_follows_its_weight_masks():
    """The first run starts before its weight masks are loaded (flags.follow) and waits for
    each row: bit-exact, with waits counted; without following, no waits."""
    x, w = _follow_case()

    def layer(follow):
        async def step(driver):
            driver.follow = follow
            return await driver.run_layer(x, w, threshold=250)
        return step
    followed, loaded = simulate(TINY, [layer(True), layer(False)])
    for got in (followed, loaded):
        spikes, membrane = _expected(x, w, got.k_block, 250)
        assert np.array_equal(got.spikes, spikes) and got.spikes.any()
        assert np.array_equal(got.membrane, membrane)
    assert followed.counters["weight_waits"] > 0 and loaded.counters["weight_waits"] == 0


def test_a_run_that_does_not_follow_its_late_masks_goes_wrong(monkeypatch):
    """Self-test of the above: the same command list without the follow flag runs on a bank
    whose masks are not in yet, and its outputs differ from the golden model's."""
    write = CommandList.write

    def without_follow(self, name, value=None, **fields):
        fields.pop("follow", None)
        if name == "flags" and value is not None:
            value &= ~self.regmap["flags"].encode(follow=1)
        return write(self, name, value, **fields)
    monkeypatch.setattr(CommandList, "write", without_follow)
    x, w = _follow_case()
    got, = simulate(TINY, [lambda driver: driver.run_layer(x, w, threshold=250)])
    assert not np.array_equal(got.membrane, _expected(x, w, got.k_block, 250)[1])


def test_a_start_queued_while_a_run_computes_begins_it_as_that_one_ends():
    """Each run's start is written while the last run computes: it is queued (status.queued)
    and the run begins as soon as the last one ends -- the status never shows the core idle
    between them -- on the registers written for it, while the last run kept its own:
    bit-exact."""
    rng = np.random.default_rng(4)
    x = torch.from_numpy((rng.random((TINY.T, 8, 24)) < 0.7).astype(np.int64))
    w = torch.from_numpy(rng.integers(-40, 60, (24, 9)) * (rng.random((24, 9)) < 0.8))
    seen = {"queued": 0, "rises": 0}

    def watch(dut):
        status = dut.host.status.status

        async def process(ctx):
            busy = 0
            async for _, _, running, queued in ctx.tick().sample(status.running,
                                                                  status.queued):
                seen["queued"] += queued
                seen["rises"] += running & ~busy
                busy = running
        return process
    got, = simulate(TINY, [lambda driver: driver.run_layer(x, w, threshold=250)], watch=watch)
    spikes, membrane = _expected(x, w, got.k_block, 250)
    assert np.array_equal(got.spikes, spikes) and np.array_equal(got.membrane, membrane)
    assert len(got.runs) >= 4 and seen["queued"] > 0 and seen["rises"] < len(got.runs)


@pytest.mark.parametrize("busy, total, shares", [
    ([1081, 1081, 0], 3116, [678, 678, 1760]),      # A-L4's second weight block at 128 bits
    ([2632, 1081, 1081, 0], 3116, [0, 678, 678, 1760]),
    ([0], 5, [5]), ([5, 5], 0, [0, 0]), ([3, 1, 7], 4, [1, 3, 0]), ([4, 4], 3, [1, 2])])
def test_a_weight_block_is_shared_out_to_even_the_bus_work(busy, total, shares):
    assert _even_out(busy, total) == shares


def test_weight_pieces_load_once_in_shares_and_the_first_masks_after_the_start():
    """The command list of several row tiles and column blocks: the first run's masks load
    after its start, every weight byte is read once, and a later block loads in shares under
    more than one run."""
    rng = np.random.default_rng(2)
    x = torch.from_numpy((rng.random((TINY.T, 7, 16)) < 0.5).astype(np.int64))
    w = torch.from_numpy(rng.integers(-9, 9, (16, 12)))
    driver, cl = _command_list(TINY.replace(v_max=64, f_max=32), x, w)
    regs = {r.address: r for r in driver.host.regmap.registers}
    start = driver.host.regmap["control"].encode(start=1)
    slots, weight_reads = [[]], []
    for c in cl.commands:
        if c[0] == 1 and regs[c[3]].name == "control" and c[4] == start:
            slots.append([])
        elif c[0] == 3:
            target = c[6].split()[1].split("[")[0]
            slots[-1].append(target)
            if target.startswith("weight"):
                weight_reads.append(c[3])
    assert len(weight_reads) == len(set(weight_reads))
    assert "weight_masks" not in slots[0] and slots[1][0] == "weight_masks"
    assert sum("weight_masks" in slot for slot in slots[2:]) > 1


@pytest.mark.parametrize("cfg", [TINY, TINY.replace(T=4), TINY.replace(prefix_stages=1),
                                 TINY.replace(T=3, lif_ops_per_stage=2),
                                 TINY.replace(group_ram="block", fiber_ram="block",
                                              word_ram="block")],
                         ids=["tiny", "T4", "one-prefix-stage", "T3-two-ops", "block-rams"])
def test_run_cycles_as_documented(cfg):
    """LoASCore's documented latency: a run whose busiest PE has m matches over n_cols columns
    (one broadcast row per tile, nothing waiting) takes n_cols + m + run_overhead cycles."""
    core = LoASCore(cfg)
    cases = []
    for n_cols in (1, cfg.tile_n + 1):
        for m in (0, 3):
            x = torch.zeros(cfg.T, 1, cfg.fiber, dtype=torch.int64)
            w = torch.zeros(cfg.fiber, n_cols, dtype=torch.int64)
            x[:, 0, :m], w[:m, 0] = 1, 1
            cases.append((n_cols, m, x, w))
    def one_run(x, w):
        def step(driver):
            driver.PIPELINE_BLOCKS = 1            # the layer as one run
            driver.follow = False                 # with its operands loaded
            return driver.run_layer(x, w, threshold=1)
        return step
    results = simulate(cfg, [one_run(x, w) for _, _, x, w in cases])
    assert all(len(r.runs) == 1 for r in results)
    got = [r.counters["cycles"] for r in results]
    assert got == [n + m + core.run_overhead for n, m, _, _ in cases]
    pe = core.pes[0]
    assert core.run_overhead == (pe.inner_join.latency + pe.lif.latency + pe.group_latency
                                 + pe.filter_latency + pe.tppe.match_latency + 14)


@pytest.mark.parametrize("fiber_ram, word_ram, want", [
    ("distributed", "auto", {"a_fibers": "distributed", "a_words": None}),
    ("block", "block", {"a_fibers": "block", "a_words": "block"}),
    ("block", "distributed", {"a_fibers": "block", "a_words": "distributed"}),
])
def test_pe_buffers_are_marked_for_the_memory_asked(fiber_ram, word_ram, want):
    """fiber_ram / word_ram reach Yosys as each memory's ram_style ("auto": no attribute)."""
    text = rtlil.convert(PE(TINY.replace(fiber_ram=fiber_ram, word_ram=word_ram)))
    for name, style in want.items():
        found = re.search(r"((?:  attribute .*\n)*)  memory width \d+ size \d+ \\" + name
                          + "\n", text)
        assert found, name
        marked = re.search(r'ram_style "(\w+)"', found.group(1))
        assert (marked.group(1) if marked else None) == style, name


def test_banked_memories_waive_the_read_during_write_check():
    """Only the double-buffered spike-word, weight, membrane and entry buffers (written in one
    bank, read in the other) and the carried sums (read a column at a time, two cycles before
    that column's write) tell Yosys that no used read meets a write to its entry: no
    read-first emulation after their block RAMs."""
    marked = lambda text: set(re.findall(r"  attribute \\no_rw_check 1\n(?:  attribute .*\n)*"
                                         r"  memory width \d+ size \d+ \\(\w+)\n", text))
    assert marked(rtlil.convert(PE(TINY))) == {"a_words", "weights", "membrane", "psum"}
    assert {"entry_bank0", "entry_bank1"} <= marked(rtlil.convert(LoASCore(TINY)))
    assert "headers" not in marked(rtlil.convert(LoASCore(TINY)))


class _Poisoned(memory.Memory):
    """A memory whose synchronous reads return their row inverted when they meet a write to
    their entry in the same cycle (``always``: every read), as Yosys may make them under the
    read-during-write waiver; ``met`` rises with the first such read."""

    def __init__(self, *, always=False, **kw):
        super().__init__(**kw)
        self.always = always
        self.met = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = memory.Memory(shape=self.shape, depth=self.depth,
                                                   init=self.init, attrs=self.attrs)
        writes = []
        for port in self.write_ports:
            wp = inner.write_port(domain=port.domain,
                                  granularity=port.signature.granularity)
            m.d.comb += [wp.addr.eq(port.addr), wp.data.eq(port.data), wp.en.eq(port.en)]
            writes.append(port)
        for port in self.read_ports:
            rp = inner.read_port(domain=port.domain)
            m.d.comb += [rp.addr.eq(port.addr), rp.en.eq(port.en)]
            if port.domain == "comb":
                m.d.comb += Value.cast(port.data).eq(Value.cast(rp.data))
                continue
            meets = Cat(*[(w.en != 0) & (w.addr == port.addr) for w in writes]).any()
            poison = Signal()
            with m.If(port.en):
                m.d.sync += poison.eq(meets | self.always)
            m.d.comb += [Value.cast(port.data).eq(Value.cast(rp.data) ^ -poison)]
            m.d.sync += self.met.eq(self.met | (port.en & meets))
        return m


def _run_poisoned(monkeypatch, cfg, steps, *, always=False):
    """Runs ``steps`` with every ``banked_reads`` buffer :class:`_Poisoned`; returns their
    results and whether any read met a write."""
    from snnforge.hw.common import memory as memory_helpers
    from snnforge.hw.loas import core as core_module, pe as pe_module
    made = []

    def poisoned(*, banked_reads=False, **kw):
        if not banked_reads:
            return memory_helpers.buffer(**kw)
        made.append(_Poisoned(shape=kw["shape"], depth=max(2, kw["depth"]),
                              init=list(kw.get("init", ())), always=always))
        return made[-1]
    for module in (pe_module, core_module):
        monkeypatch.setattr(module, "buffer", poisoned)
    met = []

    def watch(dut):
        async def process(ctx):
            async for _, _, *flags in ctx.tick().sample(*[mem.met for mem in made]):
                if any(flags) and not met:
                    met.append(True)
        return process
    results = simulate(cfg, steps, watch=watch)
    assert made, "no banked buffer was built"
    return results, bool(met)


def _banked_steps(cfg):
    """Layers (K blocks, FTP and sequential), a run following its weight masks, a network."""
    x, w = _follow_case()

    async def follow(driver):
        driver.follow = True
        return await driver.run_layer(x, w, threshold=250)
    case = network_cases(cfg, seed=6)[0]
    cases = loas_cases(cfg, "quick", seed=4)
    steps = [*[lambda d, c=c: d.run_layer(c.spikes, c.weights, threshold=c.threshold,
                                          tmask=c.tmask, sequential=c.sequential)
               for c in cases],
             follow, lambda d: d.run_layers(case.spikes, case.settings())]

    def check(results):
        for c, got in zip(cases, results):
            want = expected_layer(cfg, c, got.k_block)
            assert np.array_equal(got.spikes, want["spikes"]), c.describe()
            assert np.array_equal(got.membrane, want["membrane"]), c.describe()
        got = results[len(cases)]
        assert np.array_equal(got.membrane, _expected(x, w, got.k_block, 250)[1]), "follow"
        got, want = results[-1], expected_network(cfg, case, results[-1].k_blocks)
        assert np.array_equal(got.spikes, want["spikes"]), "network"
        assert np.array_equal(got.membrane, want["membrane"]), "network"
    return steps, check


@pytest.mark.parametrize("cfg", [TINY, TINY.replace(fiber_ram="block", word_ram="block")],
                         ids=["tiny", "block-rams"])
def test_banked_buffers_never_use_a_read_that_meets_a_write(monkeypatch, cfg):
    """What the waiver above relies on: with every read of those buffers that meets a write to
    its entry returning garbage (Yosys may), layers, a run following its weight masks and a
    chained network stay bit-exact. Such reads happen (idle PEs, the broadcaster waiting)."""
    steps, check = _banked_steps(cfg)
    results, met = _run_poisoned(monkeypatch, cfg, steps)
    check(results)
    assert met


def test_the_poisoned_buffers_reach_the_outputs(monkeypatch):
    """Self-test of the above: garbage from every read of those buffers is seen."""
    steps, check = _banked_steps(TINY)
    results, _ = _run_poisoned(monkeypatch, TINY, steps, always=True)
    with pytest.raises(AssertionError):
        check(results)


@pytest.mark.parametrize("cfg", [TINY, TINY.replace(acc_width=6, T=3, tile_n=4),
                                 TINY.replace(fiber_ram="block", word_ram="block")],
                         ids=["tiny", "saturating-T3", "block-rams"])
def test_core_chains_layers_on_chip(cfg):
    """Networks: boundaries stay on chip where they fit (the PEs reload their spike rows from
    their own outputs); the last layer's spikes and membranes equal the golden network's."""
    cases = network_cases(cfg, seed=6)
    assert [case.chained for case in cases] == [[True, True], [True], [False]]
    results = simulate(cfg, [lambda d, c=case: d.run_layers(c.spikes, c.settings(),
                                                              strong=c.strong) for case in cases])
    for case, got in zip(cases, results):
        want = expected_network(cfg, case, got.k_blocks)
        assert got.chained == case.chained, case.describe()
        assert np.array_equal(got.spikes, want["spikes"]), case.describe()
        assert np.array_equal(got.membrane, want["membrane"]), case.describe()
        assert got.counters["matches"] == want["matches"], case.describe()
        assert got.counters["saturations"] == want["saturations"], case.describe()
        assert 0 < got.counters["cycles"] < got.counters["total_cycles"]


def test_chaining_keeps_hidden_spikes_on_chip():
    """Chained, the hidden layers' spikes never reach the memory: no output of theirs is stored
    and no spike row of theirs loaded; through the host every layer's are."""
    case = network_cases(TINY, seed=6)[0]
    listed = []
    original = HostDriver.run_commands

    async def recording(self, image, commands, **kw):
        listed.append([c[6].split()[:2] for c in commands.commands])
        return await original(self, image, commands, **kw)

    HostDriver.run_commands = recording
    try:
        chained, through_host = simulate(TINY, [
            lambda d: d.run_layers(case.spikes, case.settings(), chain=True),
            lambda d: d.run_layers(case.spikes, case.settings(), chain=False)])
    finally:
        HostDriver.run_commands = original
    assert chained.chained == [True, True] and through_host.chained == [False, False]
    assert np.array_equal(chained.spikes, through_host.spikes)
    assert np.array_equal(chained.membrane, through_host.membrane)
    assert chained.counters["matches"] == through_host.counters["matches"]
    T, M, K = case.spikes.shape
    tiles = -(-M // TINY.pes)
    chained_list, *host_lists = listed
    count = lambda lists, what: sum(c == what for cl in lists for c in cl)
    assert count([chained_list], ["LOAD", "spike_masks[0]"]) == tiles
    assert count([chained_list], ["STORE", "out_words[0]"]) == tiles
    assert len(host_lists) == 3          # one list per layer through the host
    assert count(host_lists, ["LOAD", "spike_masks[0]"]) == 3 * tiles
    assert count(host_lists, ["STORE", "out_words[0]"]) == 3 * tiles
    driver = LoASDriver(HostDriver(LoASCore(TINY).regmap, transport=None), TINY)
    last = sum(driver._output_beats(case.layers[-1][0].shape[1])) * TINY.beat_bytes
    assert chained.counters["dma_write_bytes"] == M * last


def test_run_layers_rejects_mismatched_layers():
    from snnforge.hw.loas.driver import LayerSettings
    driver = LoASDriver(HostDriver(LoASCore(TINY).regmap, transport=None), TINY)
    import asyncio
    layers = [LayerSettings(torch.zeros(4, 3, dtype=torch.int64), 1),
              LayerSettings(torch.zeros(5, 2, dtype=torch.int64), 1)]
    with pytest.raises(SnnforgeError, match="layer 1: weights have 5 rows but layer 0 has N=3"):
        asyncio.run(driver.run_layers(torch.zeros(2, 3, 4), layers))
    with pytest.raises(SnnforgeError, match="at least one layer"):
        asyncio.run(driver.run_layers(torch.zeros(2, 3, 4), []))


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


@pytest.mark.parametrize("target, beats, arg", [
    ("spike_masks", 3, 2 | (9 << 8)),          # rows x chunks needs 18 beats, not 3
    ("spike_masks", 2, 5 | (1 << 8)),          # more rows than PEs
    ("out_masks", 5, 2 | (3 << 8)),            # a store of 2 rows x 3 columns is 2 beats
    ("out_words", 1, 9 | (3 << 8)),            # more rows than PEs
])
def test_core_refuses_loads_and_stores_it_cannot_serve(target, beats, arg):
    """The core's targets check every LOAD and STORE: a wrong beat count or row count stops the
    list at that command with a target error; the next layer runs as if nothing happened."""
    from snnforge.host import CommandList, MemoryImage
    case = loas_cases(TINY, seed=2)[0]

    async def bad(driver):
        cl = CommandList(driver.host.regmap)
        image = MemoryImage(MEMORY)
        at = image.alloc("data", 64 * TINY.beat_bytes, align=4096)
        if target.startswith("out"):
            cl.store(target, at, beats, arg=arg)
        else:
            cl.load(target, at, beats, arg=arg)
        cl.end()
        with pytest.raises(SnnforgeError) as info:
            await driver.host.run_commands(image, cl)
        return str(info.value)

    async def good(driver):
        return await driver.run_layer(case.spikes, case.weights, threshold=case.threshold,
                                      leak_amount=case.leak_amount, tmask=case.tmask,
                                      strong=case.strong, sequential=case.sequential)

    message, got = simulate(TINY, [bad, good])
    assert "command list stopped at command 0" in message and "bad target" in message
    want = expected_layer(TINY, case, got.k_block)
    assert np.array_equal(got.spikes, want["spikes"]) and np.array_equal(got.membrane, want["membrane"])
