"""cocotb regression of LIFCore: the LIF array through the host port, driven by HostDriver.

Every result word is compared with golden.common.lif.lif_integer; the counters are checked
against the neurons sent. Options: ``n_random`` (default 300), ``idle``/``stall`` patterns on the
cmd/rsp streams (default: the crossed set, a pair per case).
"""

from __future__ import annotations

from ...host import HostDriver
from ..cocotb_streams import CocotbTransport, Scoreboard
from ..tb import bench_test
from ..patterns import scheduled
from .lif_vectors import expected_beats, lif_cases


def _neuron_words(currents, in_width, data_width, words):
    mask = (1 << in_width) - 1
    value = sum((c & mask) << (in_width * t) for t, c in enumerate(currents))
    return [(value >> (data_width * k)) & ((1 << data_width) - 1) for k in range(words)]


@bench_test
async def host_port_regression(tb):
    core = tb.component
    p = tb.cfg.lif
    regmap = core.regmap
    transport = CocotbTransport(tb.dut, tb.clk, core.cmd.payload.shape(), seed=tb.seed)
    host = HostDriver(regmap, transport)
    await tb.reset()
    dw = regmap.data_width
    total = 0
    cases = lif_cases(p, seed=tb.seed, n_random=tb.option("n_random", 300))
    for case, (idle, stall) in scheduled(cases, tb.patterns()):
        transport.set_patterns(idle, stall)
        await host.write_many({"threshold": case.threshold, "leak_amount": case.leak_amount,
                               "tmask": case.tmask, "control": {"clear": 1}})
        expected = [e["spikes"] | ((e.get("membrane", 0) & ((1 << p.mem_width) - 1)) << p.T)
                    for e in expected_beats(p, case, membrane=tb.cfg.membrane)]
        got = []
        # Push in batches that fit the FIFOs, then pop what came out.
        batch = max(1, core.fifo_depth // max(core.words_per_neuron, core.words_per_result))
        for start in range(0, len(case.currents), batch):
            words = []
            for currents in case.currents[start:start + batch]:
                words += _neuron_words(currents, p.in_width, dw, core.words_per_neuron)
            await host.write_window("currents", words)
            want = min(len(case.currents), start + batch) - len(got)
            raw = await host.read_window("results", want * core.words_per_result)
            for i in range(want):
                chunk = raw[i * core.words_per_result:(i + 1) * core.words_per_result]
                got.append(sum(w << (dw * k) for k, w in enumerate(chunk)))
        Scoreboard(f"{case.name} via host port (idle {idle}, stall {stall})").compare(
            expected, got, context=lambda i: f"currents={case.currents[i]}")
        counts = await host.read_many(["neurons", "evaluated", "in_level", "out_level"])
        want_counts = {"neurons": len(expected),
                       "evaluated": len(expected) * bin(case.tmask).count("1"),
                       "in_level": 0, "out_level": 0}
        assert counts == want_counts, f"{case.name}: counters {counts}, expected {want_counts}"
        total += len(expected)
    tb.record(items=total, unit="neurons", cycles=transport.cycles)
