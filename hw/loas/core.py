"""The LoAS dual-sparse SNN core behind the host port."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import connect

from ..common.counters import PerfCounters
from ..common.hostport import HostPort, RegisterMap, SramWindow, host_port_members
from ..common.memory import buffer, pow2
from ..common.streams import BeatToWords
from .config import LoASConfig
from .pe import PE

__all__ = ["LoASCore", "COUNTERS"]

#: Performance counters (name, description); all read-only 32-bit registers.
COUNTERS = (
    ("cycles", "cycles from start to done of the last run(s)"),
    ("matches", "effectual matches processed, summed over PEs"),
    ("pe_busy", "PE-cycles with work in an inner join"),
    ("bcast_stalls", "cycles a broadcast row waited for a full group FIFO"),
    ("rows_read", "weight-fiber rows read from the fiber buffer (broadcasts)"),
    ("fiber_reads", "spike-fiber buffer reads (per PE, one per broadcast row)"),
    ("groups_kept", "broadcast rows kept by a PE's filter"),
    ("weight_reads", "weight-buffer reads"),
    ("word_reads", "spike-word buffer reads"),
    ("buffer_writes", "host writes into the spike, weight and fiber buffers"),
    ("saturations", "partial sums clamped to out_width"),
    ("lif_steps", "neuron-steps evaluated by the LIF arrays"),
    ("join_stalls", "PE-cycles a found match was held in the inner join (its accumulator bank "
                    "still draining, or FIFO-mp/FIFO-B full)"),
    ("lif_stalls", "PE-cycles a drained column waited for the LIF"),
    ("load_writes", "spike-word and spike-fiber buffer writes by the load compressors"),
    ("psum_reads", "carried partial-sum reads (K blocks after the first)"),
    ("psum_writes", "carried partial-sum writes (K blocks before the last)"),
    ("out_writes", "output-word, output-mask and membrane buffer writes"),
)


class LoASCore(wiring.Component):
    """LoAS-style dual-sparse core: ``pes`` TPPEs over FTP-packed spikes and bitmask-compressed
    weights, LIF over T, output compression; everything reached through the host port.

    A *run* computes one tile of a layer: up to ``pes`` spike rows against up to ``n_max`` weight
    columns over up to ``k_max`` positions. The host driver
    (:class:`snnforge.hw.loas.driver.LoASDriver`) tiles whole layers into runs.

    1. Load: the host streams each row's dense T-bit words into window ``spikes`` (address = PE);
       per PE a compressor packs them (``strong`` flag: LoAS-FT) and the laggy prefix-sum tabulates
       every fiber. Weights: packed values into ``weights`` (replicated into every PE), fiber
       bitmasks into ``entries`` and the broadcast schedule into ``rows``.
    2. ``control.start``: the broadcaster streams the rows (one per cycle) to all PEs; each PE keeps
       the rows with work for it and runs ahead on its own row; columns are output-stationary per
       tile of ``tile_n``. Drained partial sums are added to the carried ones (``use_psum``) and
       either kept (K blocks still to come) or, with ``final``, passed through the LIF (threshold,
       leak, dynamic time-step mask registers) and compressed.
    3. The host reads ``out_mask``/``out_words`` (chip format) and ``membrane``, and the counters
       -- or chains: ``control.chain`` reloads every PE's spike row from its own outputs (through
       the PE's expander and compressor, all PEs in parallel, one position per cycle), and the
       next layer runs on them without the spikes leaving the chip.

    Throughput: one match per PE per cycle (``pes`` per cycle), one broadcast row of up to
    ``group`` weight fibers per cycle, one drained column per PE per cycle; loading, one position
    per PE per cycle. Latency: a run whose busiest PE has ``m`` matches over ``n_cols`` columns
    takes ``n_cols + m + run_overhead`` cycles (:attr:`run_overhead` = ``InnerJoin.latency +
    LIFArray.latency + 12``: the broadcast, PE filter, front-end, TPPE, drain and output
    compressor registers) when nothing else limits it -- broadcast rows with no work for a PE,
    full queues, or a drain waiting for a bank add cycles, which the stall counters count.

    Register map: :attr:`regmap` (also in the generator manifest).
    """

    def __init__(self, cfg: LoASConfig):
        if not isinstance(cfg, LoASConfig):
            raise TypeError(f"cfg must be a LoASConfig, not {cfg!r}")
        self.cfg = cfg
        lif = cfg.lif
        # Built here (elaborated by elaborate), so that their facts -- latencies, widths -- are
        # there for the manifest without converting the design.
        self.pes = [PE(cfg) for _ in range(cfg.pes)]
        rm = RegisterMap(data_width=cfg.data_width)
        rm.add_register("control", access="pulse", fields={
            "start": (1, "start a run"),
            "load": (1, "start loading spike rows from the `spikes` window"),
            "clear": (1, "clear the counters"),
            "chain": (1, "start loading spike rows from the outputs of the last run (each PE's "
                         "output row becomes its spike row, k_len <= n_max)")})
        rm.add_register("status", access="ro", fields={"running": (1, "a run is busy"),
                                                       "loading": (1, "loading is busy")})
        rm.add_register("k_len", (cfg.k_max).bit_length(),
                        doc="spike positions per row (chunks of the run: ceil(k_len / fiber))")
        rm.add_register("n_cols", (cfg.n_max).bit_length(), doc="output columns of the run")
        rm.add_register("n_tiles", (cfg.tiles_max).bit_length(),
                        doc="ceil(n_cols / tile_n): tiles, each closed by a tile_last row")
        rm.add_register("n_rows", (cfg.rows_max).bit_length(), doc="broadcast rows of the run")
        rm.add_register("active", (cfg.pes).bit_length(),
                        doc="PEs holding a spike row (the others only drain zeros)")
        rm.add_register("flags", fields={
            "strong": (1, "strong mode (LoAS-FT) when loading"),
            "use_psum": (1, "add the carried partial sums"),
            "final": (1, "final K block: LIF and outputs")})
        rm.add_register("threshold", lif.threshold_bits, reset=64, doc="LIF threshold")
        rm.add_register("leak_amount", lif.leak_amount_bits, doc=f"LIF {lif.leak_amount_doc}")
        rm.add_register("tmask", cfg.T, reset=(1 << cfg.T) - 1,
                        doc="dynamic time-step mask: bit t set = step t evaluated")
        for name, doc in COUNTERS:
            rm.add_register(name, 32, "ro", doc=doc)
        entries_per_row = pow2(cfg.group)
        rm.add_window("spikes", cfg.pes, 32, "wo",
                      doc=f"write to element i: {cfg.words_per_host_word} dense {cfg.T}-bit "
                          f"neuron words (position order, lowest bits first) for PE i's row")
        rm.add_window("weights", cfg.v_max // 4, 32, "wo",
                      doc="packed nonzero weights, 4 per word (int8, lowest byte first)")
        rm.add_window("entries", cfg.rows_max * entries_per_row, cfg.entry_layout.size, "wo",
                      block=entries_per_row,
                      doc=f"weight fibers, a block per broadcast row: element row * "
                          f"{entries_per_row} + j is entry j of the row: "
                          f"{{mask[{cfg.fiber}], n, vbase}}")
        rm.add_window("rows", cfg.rows_max, cfg.row_layout.size, "wo",
                      doc="broadcast rows: {chunk, count, tile_last}")
        n_span = pow2(cfg.n_max)
        c_span = pow2(-(-cfg.n_max // cfg.fiber))
        rm.add_window("out_mask", cfg.pes * c_span, cfg.fiber, "ro", block=c_span,
                      doc=f"output fiber bitmasks, a block per PE: element pe * {c_span} + c")
        rm.add_window("out_words", cfg.pes * n_span, cfg.T, "ro", block=n_span,
                      doc=f"packed output spike words, a block per PE: element pe * {n_span} + i")
        rm.add_window("membrane", cfg.pes * n_span, cfg.mem_width, "ro", block=n_span,
                      doc=f"final membranes, a block per PE: element pe * {n_span} + n")
        self.regmap = rm.freeze()
        super().__init__(host_port_members(rm))

    @property
    def run_overhead(self) -> int:
        """The fixed cycles of a run (see the class docstring)."""
        pe = self.pes[0]
        return pe.inner_join.latency + pe.lif.latency + 12

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        rm = self.regmap
        P, G = cfg.pes, cfg.group
        m.submodules.host = host = HostPort(rm)
        connect(m, wiring.flipped(self.cmd), host.cmd)
        connect(m, host.rsp, wiring.flipped(self.rsp))
        regs = host.regs
        control = regs.control
        start, load, clear, chain = control.start, control.load, control.clear, control.chain

        pes = self.pes
        for i, pe in enumerate(pes):
            m.submodules[f"pe{i}"] = pe

        # -- spikes: host words -> each PE's neuron stream -----------------------------------------
        m.submodules.win_spikes = win_spikes = SramWindow(rm["spikes"], 32)
        connect(m, host.spikes, win_spikes.bus)
        n_per_word = cfg.words_per_host_word
        splitters = []
        for i, pe in enumerate(pes):
            split = BeatToWords(n_per_word * cfg.T, cfg.T)
            m.submodules[f"split{i}"] = split
            splitters.append(split)
            connect(m, split.o, pe.neurons)
            m.d.comb += [split.i.payload.eq(win_spikes.w_data[:n_per_word * cfg.T]),
                         split.i.valid.eq(win_spikes.w_en & (win_spikes.addr == i))]
        # A write must not be lost: hold the host port until the addressed splitter is free.
        spikes_req = host.spikes.req
        free = Array(s.i.ready for s in splitters)[spikes_req.payload.addr]
        m.d.comb += win_spikes.bus.req.valid.eq(spikes_req.valid & (free | ~spikes_req.payload.write))
        m.d.comb += spikes_req.ready.eq(win_spikes.bus.req.ready & (free | ~spikes_req.payload.write))

        # -- weights (broadcast into every replica), fiber entries and rows ------------------------
        m.submodules.win_weights = win_w = SramWindow(rm["weights"], 32)
        connect(m, host.weights, win_w.bus)
        for pe in pes:
            m.d.comb += [pe.w_wr_addr.eq(win_w.addr), pe.w_wr_data.eq(win_w.w_data),
                         pe.w_wr_en.eq(win_w.w_en)]
        wpe_bits = (pow2(G) - 1).bit_length()
        m.submodules.win_entries = win_e = SramWindow(rm["entries"], 32)
        m.submodules.win_rows = win_r = SramWindow(rm["rows"], 32)
        connect(m, host.entries, win_e.bus)
        connect(m, host.rows, win_r.bus)
        m.submodules.row_mem = row_mem = buffer(shape=cfg.row_layout, depth=cfg.rows_max,
                                                       init=[])
        row_wr, row_rd = row_mem.write_port(), row_mem.read_port()
        m.d.comb += [row_wr.addr.eq(win_r.addr), row_wr.data.eq(win_r.w_data),
                     row_wr.en.eq(win_r.w_en)]
        banks = []
        for j in range(G):
            bank = buffer(shape=cfg.entry_layout, depth=cfg.rows_max, init=[])
            m.submodules[f"entry_bank{j}"] = bank
            wr, rd = bank.write_port(), bank.read_port()
            lane = win_e.addr[:wpe_bits] if wpe_bits else C(0, 1)
            m.d.comb += [wr.addr.eq(win_e.addr[wpe_bits:]), wr.data.eq(win_e.w_data),
                         wr.en.eq(win_e.w_en & (lane == j))]
            banks.append(rd)

        # -- run control and the broadcaster -------------------------------------------------------
        # Two stages: the row and entry memories' read (block RAM, slow clock-to-out), then a
        # register that drives every PE: the RAM's output delay and the broadcast fan-out lie on
        # different paths. One row per cycle while the PEs take them.
        running = Signal()
        next_row = Signal(range(cfg.rows_max + 1))
        read_valid = Signal()                # the memories' outputs hold an untaken row
        row_valid = Signal()                 # `bcast` holds a row for the PEs
        all_ready = Cat(*[pe.row_ready for pe in pes]).all()
        take = row_valid & all_ready
        move = read_valid & (~row_valid | take)
        issue = running & (next_row < regs.n_rows) & (~read_valid | move)
        m.d.comb += [row_rd.addr.eq(next_row), row_rd.en.eq(issue)]
        for rd in banks:
            m.d.comb += [rd.addr.eq(next_row), rd.en.eq(issue)]
        bcast = Signal(cfg.bcast_layout)
        with m.If(move):
            m.d.sync += [bcast.chunk.eq(row_rd.data.chunk),
                         bcast.tile_last.eq(row_rd.data.tile_last),
                         bcast.valid.eq(Cat(*[row_rd.data.count > j for j in range(G)]))]
            m.d.sync += [bcast.entries[j].eq(rd.data) for j, rd in enumerate(banks)]
        with m.If(issue):
            m.d.sync += next_row.eq(next_row + 1)
        m.d.sync += [read_valid.eq(issue | (read_valid & ~move)),
                     row_valid.eq(move | (row_valid & ~take))]

        flags = regs.flags
        all_done = Cat(*[pe.done for pe in pes]).all()
        for i, pe in enumerate(pes):
            m.d.comb += [
                pe.row.eq(bcast), pe.row_take.eq(take),
                pe.start.eq(start), pe.active.eq(regs.active > i),
                pe.n_cols.eq(regs.n_cols), pe.n_tiles.eq(regs.n_tiles),
                pe.use_psum.eq(flags.use_psum), pe.final.eq(flags.final),
                pe.threshold.eq(regs.threshold), pe.leak_amount.eq(regs.leak_amount),
                pe.tmask.eq(regs.tmask),
                pe.load_start.eq(load | chain), pe.chain.eq(chain), pe.k_len.eq(regs.k_len),
                pe.strong.eq(flags.strong),
            ]
        with m.If(start):
            m.d.sync += [running.eq(1), next_row.eq(0), read_valid.eq(0), row_valid.eq(0)]
        with m.Elif(running & (next_row == regs.n_rows) & ~read_valid & ~row_valid & all_done):
            m.d.sync += running.eq(0)
        loading = ~Cat(*[pe.load_done | (regs.active <= i) for i, pe in enumerate(pes)]).all()
        m.d.comb += [host.status.status.running.eq(running),
                     host.status.status.loading.eq(loading)]

        # -- output windows: PE select, then the PE's host read port -------------------------------
        for sel, name in enumerate(("out_mask", "out_words", "membrane")):
            span = rm[name].block
            win = SramWindow(rm[name], 32)
            m.submodules[f"win_{name}"] = win
            connect(m, getattr(host, name), win.bus)
            local_bits = (span - 1).bit_length()
            pe_index = win.addr[local_bits:]
            chosen = Signal(range(max(2, P)), name=f"{name}_pe")
            with m.If(win.r_en):
                m.d.sync += chosen.eq(pe_index)
            for i, pe in enumerate(pes):
                with m.If(win.r_en & (pe_index == i)):
                    m.d.comb += [pe.hr_sel.eq(sel), pe.hr_addr.eq(win.addr[:local_bits]),
                                 pe.hr_en.eq(1)]
            width = rm[name].element_width
            m.d.comb += win.r_data.eq(Array(pe.hr_data[:width] for pe in pes)[chosen])

        # -- counters ------------------------------------------------------------------------------
        sum_bits = (P * max(3, cfg.T)).bit_length()
        m.submodules.counters = counters = PerfCounters(
            {name: sum_bits for name, _ in COUNTERS})
        inc = counters.inc

        def total(field):
            return sum(getattr(pe.events, field) for pe in pes)

        m.d.comb += [
            counters.clear.eq(clear),
            inc.cycles.eq(running),
            inc.matches.eq(total("match")),
            inc.pe_busy.eq(total("busy")),
            inc.bcast_stalls.eq(row_valid & ~all_ready),
            inc.rows_read.eq(issue),
            inc.fiber_reads.eq(total("fiber_read")),
            inc.groups_kept.eq(total("pushed")),
            inc.weight_reads.eq(total("weight_read")),
            inc.word_reads.eq(total("word_read")),
            inc.buffer_writes.eq(win_spikes.w_en + win_w.w_en + win_e.w_en + win_r.w_en),
            inc.saturations.eq(total("saturated")),
            inc.lif_steps.eq(total("lif_steps")),
            inc.join_stalls.eq(total("join_stall")),
            inc.lif_stalls.eq(total("lif_stall")),
            inc.load_writes.eq(total("load_writes")),
            inc.psum_reads.eq(total("psum_read")),
            inc.psum_writes.eq(total("psum_write")),
            inc.out_writes.eq(total("out_writes")),
        ]
        for name, _ in COUNTERS:
            m.d.comb += getattr(host.status, name).eq(getattr(counters.count, name))
        return m
