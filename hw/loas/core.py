"""The LoAS dual-sparse SNN core behind the host interface: it fetches its own operands."""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import connect

from ..common.bits import lowest_one, onehot_index, popcount, sum_tree
from ..common.counters import PerfCounters
from ..common.host_interface import HostInterface, add_host_interface
from ..common.hostport import RegisterMap
from ..common.memory import buffer
from ..common.streams import Gearbox, SkidBuffer, StreamFIFO
from .config import LoASConfig
from .pe import PE

__all__ = ["LoASCore", "COUNTERS", "TARGETS", "RUN_REGISTERS", "BEGUN_BITS"]

#: The registers a run reads; each run takes them as it begins (a queued start).
RUN_REGISTERS = ("run_bank", "n_cols", "n_tiles", "n_rows", "active", "flags", "threshold",
                 "leak_amount", "tmask")
#: Bits of ``status.begun``.
BEGUN_BITS = 4
#: Rows the broadcaster holds between the weight memories and its decode (see ``elaborate``).
ROW_SLOTS = 3

#: Performance counters (name, description); read-only registers, ``counter_width`` bits.
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
    ("buffer_writes", "beats loaded from memory into the spike, header, fiber and weight "
                      "buffers"),
    ("saturations", "partial sums clamped to out_width"),
    ("lif_steps", "neuron-steps evaluated by the LIF arrays"),
    ("join_stalls", "PE-cycles a found match was held in the inner join (its accumulator bank "
                    "still draining, or FIFO-mp/FIFO-B full)"),
    ("lif_stalls", "PE-cycles a drained column waited for the LIF"),
    ("load_writes", "spike-word and spike-fiber buffer writes (loads and chaining)"),
    ("psum_reads", "carried partial-sum reads (K blocks after the first)"),
    ("psum_writes", "carried partial-sum writes (K blocks before the last)"),
    ("out_writes", "output-word, output-mask and membrane buffer writes"),
    ("weight_waits", "cycles a run waited, nothing broadcast, for a weight row still loading "
                     "(flags.follow)"),
)

#: The bulk targets of the command processor (name, direction, memory format).
TARGETS = (
    ("spike_masks", "load", "the row tile's fiber bitmasks, chunk by chunk and PE by PE within "
                            "a chunk (fiber bits each, packed); argument: rows | chunks << 8"),
    ("spike_words", "load", "each PE's packed T-bit words in rows of word_lanes, a PE's first "
                            "word at a new beat; argument: rows"),
    ("weight_headers", "load", "the broadcast-row headers {chunk, count, tile_last, n[group]}, "
                               "header_bits each, packed; argument bit 31: append"),
    ("weight_masks", "load", "the weight fibers' bitmasks in broadcast order; argument: rows | "
                             "append << 31 | more pieces follow << 30 (all headers first)"),
    ("weight_values", "load", "the packed int8 weights, in broadcast order; argument bit 31: "
                              "append"),
    ("out_masks", "store", "each PE's output fiber bitmasks, a PE's first at a new beat; "
                           "argument: rows | n_cols << 8"),
    ("out_words", "store", "each PE's output word rows (word_lanes words, a buffer row per "
                           "beat); argument: rows | n_cols << 8"),
    ("out_membranes", "store", "each PE's membrane rows (mem_lanes membranes per beat); "
                               "argument: rows | n_cols << 8"),
)


class LoASCore(wiring.Component):
    """LoAS-style dual-sparse core: ``pes`` TPPEs over FTP-packed spikes and bitmask-compressed
    weights, LIF over T, output compression, behind a :class:`~..common.host_interface.
    HostInterface` (stream and AXI4-Lite front ends, AXI4 master, command processor).

    A *run* computes one tile of a layer: up to ``pes`` spike rows against up to ``n_max`` weight
    columns over up to ``k_max`` positions. The host driver
    (:class:`snnforge.hw.loas.driver.LoASDriver`) tiles a whole layer into runs and writes one
    command list for it; the core then fetches everything itself:

    1. LOADs from memory (:data:`TARGETS`), in the chip's compressed formats, into the banks
       ``xfer_bank`` selects: the row tile's fiber masks and words into each PE (its laggy
       prefix-sum tabulates every fiber); the broadcast-row headers, weight-fiber masks and
       packed weights. Each buffer has two banks, so the next run's operands load while a run
       computes on the others (``run_bank``). A LOAD into a bank a run reads (but for the
       weight masks a run follows), or a STORE of the bank it writes, is undefined: the block
       RAMs do not order a read and a write of one entry in a cycle (that costs logic after
       their outputs).
    2. ``control.start``: the broadcaster streams the rows (one per cycle) to all PEs; each PE
       keeps the rows with work for it and runs ahead on its own row; columns are
       output-stationary per tile of ``tile_n``. Drained partial sums are added to the carried
       ones (``use_psum``) and either kept (K blocks still to come) or, with ``final``, passed
       through the LIF (threshold, leak, dynamic time-step mask registers) and compressed into
       the output bank ``run_bank.out``. With ``flags.follow`` a run starts before its weight
       masks are in (its headers and values are): the next weight-mask LOAD, into its bank,
       feeds it, each row broadcast as soon as its masks are written -- so the first run of a
       command list waits for its spikes, headers and values only, not for the whole block.
       A run takes its registers (:data:`RUN_REGISTERS`) as it begins: the next run's may be
       written and its start queued while it runs (``status.queued``), and it begins two
       cycles after this one ends.
    3. STOREs of the output masks, words and membranes of bank ``xfer_bank.out`` -- or chaining:
       ``control.chain`` reloads every PE's spike row from those outputs (through the PE's
       expander and compressor, all PEs in parallel, one position per cycle), and the next layer
       runs on them without the spikes leaving the chip.

    Throughput: one match per PE per cycle (``pes`` per cycle), one broadcast row of up to
    ``group`` weight fibers per cycle, one drained column per PE per cycle; loads, one beat per
    cycle after a LOAD's first, which waits a cycle more (fiber masks: one per cycle, a PE
    taking one per ``LaggyPrefixSum.latency``).
    Latency: a run whose busiest PE has ``m`` matches over ``n_cols`` columns takes ``n_cols + m
    + run_overhead`` cycles (:attr:`run_overhead` = ``InnerJoin.latency + LIFArray.latency +
    PE.group_latency + PE.filter_latency + TPPE.match_latency + 14``: the broadcast, PE filter,
    group FIFO, front-end, TPPE, drain, LIF input and output compressor registers) when nothing
    else limits it -- broadcast rows with no work for a PE, full queues, or a drain waiting for
    a bank add cycles, which the stall counters count.

    Register map and targets: :attr:`regmap` (also in the generator manifest).
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
            "start": (1, "start a run -- or, while one runs, queue the start: the run's "
                         "registers are taken as it begins (status.queued until then)"),
            "clear": (1, "clear the counters"),
            "chain": (1, "load every PE's spike row from its outputs in bank xfer_bank.out "
                         "(k_len <= n_max positions) into bank xfer_bank.spikes")})
        rm.add_register("status", access="ro", fields={
            "running": (1, "a run is busy or queued"),
            "loading": (1, "a spike row is still being tabulated or chained"),
            "queued": (1, "a start waits for the running run to end"),
            "begun": (BEGUN_BITS, "runs begun since control.clear, modulo 2**BEGUN_BITS (a "
                                  "queued start has begun once this counts it)")})
        for name, doc in (("run_bank", "the banks the run computes on and writes"),
                          ("xfer_bank", "the banks loads and chaining fill, and stores and "
                                        "chaining read")):
            rm.add_register(name, doc=doc, fields={
                "spikes": (1, "spike rows"), "weights": (1, "weights"), "out": (1, "outputs")})
        rm.add_register("k_len", (cfg.k_max).bit_length(), doc="positions of a chained load")
        rm.add_register("n_cols", (cfg.n_max).bit_length(), doc="output columns of the run")
        rm.add_register("n_tiles", (cfg.tiles_max).bit_length(),
                        doc="ceil(n_cols / tile_n): tiles, each closed by a tile_last row")
        rm.add_register("n_rows", (cfg.rows_max).bit_length(), doc="broadcast rows of the run")
        rm.add_register("active", (cfg.pes).bit_length(),
                        doc="PEs holding a spike row (the others only drain zeros)")
        rm.add_register("flags", fields={
            "strong": (1, "strong mode (LoAS-FT) when chaining"),
            "use_psum": (1, "add the carried partial sums"),
            "final": (1, "final K block: LIF and outputs"),
            "follow": (1, "the run's weight-fiber masks arrive while it runs (the next "
                          "weight-mask LOAD, into its bank): each row is broadcast once its "
                          "masks are in")})
        rm.add_register("threshold", lif.threshold_bits, reset=64, doc="LIF threshold")
        rm.add_register("leak_amount", lif.leak_amount_bits, doc=f"LIF {lif.leak_amount_doc}")
        rm.add_register("tmask", cfg.T, reset=(1 << cfg.T) - 1,
                        doc="dynamic time-step mask: bit t set = step t evaluated")
        for name, doc in COUNTERS:
            rm.add_register(name, cfg.counter_width, "ro", doc=doc)
        add_host_interface(rm, counter_width=cfg.counter_width)
        for name, direction, doc in TARGETS:
            rm.add_target(name, direction, doc=doc)
        self.regmap = rm.freeze()
        self.host = HostInterface(rm, data_width=cfg.dma_width, max_burst=cfg.max_burst,
                                  outstanding=cfg.outstanding)
        super().__init__({name: member for name, member in self.host.signature.members.items()
                          if name in ("cmd", "rsp", "s_axil", "m_axi", "irq")})

    @property
    def run_overhead(self) -> int:
        """The fixed cycles of a run (see the class docstring)."""
        pe = self.pes[0]
        return (pe.inner_join.latency + pe.lif.latency + pe.group_latency + pe.filter_latency
                + pe.tppe.match_latency + 14)

    @property
    def header_rows(self) -> int:
        """Rows of one bank of the header buffer (``headers_per_beat`` headers each)."""
        return -(-self.cfg.rows_max // self.cfg.headers_per_beat)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        P, G, W, dw = cfg.pes, cfg.group, cfg.fiber, cfg.dma_width
        m.submodules.host = host = self.host
        for name in ("cmd", "rsp", "s_axil", "m_axi"):
            connect(m, getattr(host, name), wiring.flipped(getattr(self, name)))
        m.d.comb += self.irq.eq(host.irq)
        control = host.regs.control
        clear, chain = control.clear, control.chain
        xfer = host.regs.xfer_bank
        # A run works on a copy of its registers taken as it begins, so that the next run's may
        # be written, and its start queued, while it runs: the next run then begins two cycles
        # after this one ends, not after the command processor has seen it end.
        fields = host.regs.shape()
        regs = Signal(data.StructLayout({name: fields[name].shape for name in RUN_REGISTERS}))
        queued = Signal()
        go = Signal()             # the registers are taken
        start = Signal()          # the run begins (PEs, broadcaster)
        run_bank = regs.run_bank
        pes = self.pes
        for i, pe in enumerate(pes):
            m.submodules[f"pe{i}"] = pe
        errors = []               # format errors of the targets (one cycle each)
        target_ids = {name: k for k, (name, _, _) in enumerate(TARGETS)}

        def banked(index, bank, depth):
            return Mux(bank, index + depth, index)

        # -- weight buffers: headers (rows of headers_per_beat) and the fiber banks ----------------
        H, hbits = cfg.headers_per_beat, cfg.header_bits
        h_lane_bits = (H - 1).bit_length()
        m.submodules.headers = headers = buffer(shape=H * hbits, depth=2 * self.header_rows)
        # The broadcaster reads the entry banks every cycle, but keeps a row only once its masks
        # are written (a cycle before, at the latest, when following their LOAD).
        banks = []
        for j in range(G):
            bank = buffer(shape=cfg.stored_entry_layout, depth=2 * cfg.rows_max,
                          banked_reads=True)
            m.submodules[f"entry_bank{j}"] = bank
            banks.append(bank)

        def header_of(row_data, lane):
            raw = row_data.word_select(lane, hbits) if H > 1 else row_data
            return data.View(cfg.header_layout, raw[:cfg.header_layout.size])

        # -- LOADs -----------------------------------------------------------------------------------
        ld = host.load
        beat = ld.payload
        tgt = beat.target
        accepted = ld.valid & ld.ready
        first = beat.first
        # The weight targets may take an array in pieces: argument bit 31 (append) continues
        # where the last LOAD stopped, bit 30 (more) says that more pieces follow.
        restart = first & ~beat.arg[31]
        more = beat.arg[30]
        load_beats = Signal()          # a beat entered a buffer this cycle (counter)
        # A LOAD's first beat waits one cycle at the head ("prime"), in which what its argument
        # sets up (expected counts, the first PE) goes into registers: no product or search on
        # the argument then lies on the path from a beat to the buffers or the error verdict.
        primed = Signal()
        prime = Signal()
        m.d.sync += primed.eq(Mux(accepted, 0, primed | prime))

        # Fiber masks (spikes and weights) leave the beats through one gearbox: its consumer is
        # the target of the LOAD whose beats are in it.
        m.submodules.mask_gear = gear = Gearbox(dw, W)
        mask_target = Signal(4)
        is_mask_load = (tgt == target_ids["spike_masks"]) | (tgt == target_ids["weight_masks"])
        with m.If(accepted & first & is_mask_load):
            m.d.sync += mask_target.eq(tgt)
        # A register slice after the gearbox: the consumers' ready (a PE's, or the weight-mask
        # bookkeeping's) would otherwise run through the gearbox into every LOAD target's state.
        # A LOAD's first mask beat waits until the slice is empty: `mask_target` then changes
        # under no mask of the previous LOAD.
        # Each mask's count of ones goes into the slice with it (for the PEs' word counts and the
        # weight fibers' first values): no popcount between the slice and an adder.
        # The count is made over two slices: bytes' counts into the first, their sum into the
        # second (one popcount of the whole mask behind the gearbox's lane multiplexer was a
        # critical path).
        spans = [(lo, min(lo + 8, W)) for lo in range(0, W, 8)]
        m.submodules.mask_pre = mask_pre = SkidBuffer(data.StructLayout({
            "mask": W, "parts": data.ArrayLayout(range(9), len(spans))}))
        gear_mask = Signal(W)
        m.d.comb += [gear_mask.eq(gear.o.payload),
                     mask_pre.i.valid.eq(gear.o.valid), gear.o.ready.eq(mask_pre.i.ready),
                     mask_pre.i.payload.mask.eq(gear_mask)]
        m.d.comb += [mask_pre.i.payload.parts[k].eq(popcount(gear_mask[lo:hi]))
                     for k, (lo, hi) in enumerate(spans)]
        m.submodules.mask_slice = mask_slice = SkidBuffer(data.StructLayout({
            "mask": W, "ones": range(W + 1)}))
        parts = [mask_pre.o.payload.parts[k] for k in range(len(spans))]
        m.d.comb += [mask_slice.i.valid.eq(mask_pre.o.valid),
                     mask_pre.o.ready.eq(mask_slice.i.ready),
                     mask_slice.i.payload.mask.eq(mask_pre.o.payload.mask),
                     mask_slice.i.payload.ones.eq(sum_tree(parts))]
        masks_out = mask_slice.o
        # Registered, so a mask leaving the slice does not run through the first beat's admission
        # into every LOAD target's state: it says "empty" a cycle late (nothing entered since),
        # never early.
        masks_empty = Signal()
        m.d.sync += masks_empty.eq(gear.empty & ~mask_pre.o.valid & mask_pre.i.ready
                                   & ~masks_out.valid & mask_slice.i.ready & ~gear.i.valid)
        # The gearbox sees a beat only when the target takes it: a first beat held back (its
        # prime cycle, `masks_empty`) must not enter it meanwhile (it would be taken again and
        # again, refilling the gearbox each time, and `masks_empty` would never come: a
        # livelock).
        mask_beat_go = ~first | (primed & masks_empty)
        m.d.comb += [gear.i.valid.eq(ld.valid & is_mask_load & mask_beat_go),
                     gear.i.payload.eq(beat.data), gear.clear.eq(0)]
        masks_per_beat_log = max(0, (dw // W - 1).bit_length()) if dw >= W else 0
        beats_per_mask_log = (W // dw - 1).bit_length() if W > dw else 0

        def beats_for(masks):
            if dw >= W:
                return (masks + (1 << masks_per_beat_log) - 1) >> masks_per_beat_log
            return masks << beats_per_mask_log

        # -- spike masks: mask i goes to PE i % rows, chunk i // rows ------------------------------
        sm_rows = Signal(8)
        sm_total = Signal(range(P * cfg.chunks_max + 1))
        sm_pe = Signal(range(max(2, P)))
        sm_chunk = Signal(range(max(2, cfg.chunks_max + 1)))
        sm_taken = Signal.like(sm_total)
        # Counts as wide as the largest valid LOAD (a wider one is refused by its arguments).
        sm_beats = Signal(range(beats_for(P * cfg.chunks_max) + 2))
        sm_expect = Signal.like(sm_beats)
        arg_rows, arg_chunks = beat.arg[:8], beat.arg[8:24]
        sm_bad_args = Signal()
        sm_count = Signal.like(sm_total)
        is_sm = tgt == target_ids["spike_masks"]
        with m.If(prime & is_sm):
            m.d.sync += [sm_beats.eq(0), sm_expect.eq(beats_for(arg_rows * arg_chunks)),
                         sm_count.eq(arg_rows * arg_chunks),
                         sm_bad_args.eq((arg_rows > P) | (arg_chunks > cfg.chunks_max))]
        with m.If(accepted & is_sm):
            m.d.sync += sm_beats.eq(sm_beats + 1)
        errors.append(accepted & is_sm & ((sm_beats >= sm_expect)
                                          | (beat.last & (sm_beats + 1 < sm_expect))
                                          | (first & sm_bad_args)))
        # Masks go to the PEs: a spike-mask LOAD whose masks have not all been taken (a flag,
        # updated with the count it stands for).
        to_pes = Signal()
        pe_ready = Array(pe.mask_in.ready for pe in pes)[sm_pe]
        for i, pe in enumerate(pes):
            m.d.comb += [pe.mask_in.valid.eq(masks_out.valid & to_pes & (sm_pe == i)),
                         pe.mask_in.payload.mask.eq(masks_out.payload.mask),
                         pe.mask_in.payload.ones.eq(masks_out.payload.ones),
                         pe.mask_in.payload.chunk.eq(sm_chunk),
                         pe.mask_in.payload.first.eq(sm_chunk == 0)]
        with m.If(masks_out.valid & to_pes & pe_ready):
            m.d.sync += [sm_taken.eq(sm_taken + 1), to_pes.eq(sm_taken + 1 < sm_total)]
            with m.If(sm_pe + 1 == sm_rows):
                m.d.sync += [sm_pe.eq(0), sm_chunk.eq(sm_chunk + 1)]
            with m.Else():
                m.d.sync += sm_pe.eq(sm_pe + 1)
        with m.If(accepted & first & is_mask_load):
            m.d.sync += to_pes.eq(is_sm & (sm_count != 0))
        with m.If(accepted & first & is_sm):
            m.d.sync += [sm_rows.eq(arg_rows), sm_total.eq(sm_count), sm_pe.eq(0),
                         sm_chunk.eq(0), sm_taken.eq(0)]

        # -- spike words: PE by PE, ceil(nnz / word_lanes) rows each -------------------------------
        lane_bits = (cfg.word_lanes - 1).bit_length()
        sw_rows = Signal(8)
        # At the prime cycle: the PEs that want words (the rows of the argument that hold some).
        need_arg = Cat(*[(pe.nnz != 0) & (beat.arg[:8] > i) for i, pe in enumerate(pes)])
        need = Cat(*[(pe.nnz != 0) & (sw_rows > i) for i, pe in enumerate(pes)])
        # Each PE's count of word rows, registered: it changes only while its masks load, and
        # spike words wait a cycle more than the masks (`masks_settled`) for it.
        word_rows = Array(Signal(range(pes[0].word_rows + 1), name=f"word_rows{i}")
                          for i in range(P))
        for i, pe in enumerate(pes):
            m.d.sync += word_rows[i].eq((pe.nnz + cfg.word_lanes - 1) >> lane_bits)
        masks_settled = Signal()
        m.d.sync += masks_settled.eq(~to_pes)
        sw_pe = Signal(range(max(2, P)))
        sw_row = Signal(range(pes[0].word_rows + 1))
        sw_done = Signal()
        is_sw = tgt == target_ids["spike_words"]
        with m.If(prime & is_sw):
            m.d.sync += [sw_rows.eq(beat.arg[:8]), sw_row.eq(0), sw_done.eq(~need_arg.any()),
                         sw_pe.eq(onehot_index(lowest_one(m, need_arg, "sw_first")))]
        later = Signal(P)             # PEs after this beat's that still want words
        m.d.comb += later.eq(need & Cat(C(0, 1), *[sw_pe < i for i in range(1, P)]))
        ends_pe = sw_row + 1 == word_rows[sw_pe]
        next_pe = onehot_index(lowest_one(m, later, "sw_next"))
        for i, pe in enumerate(pes):
            # Buffer writes leave registers (a cycle late: a LOAD's data is read by a later
            # command only), so the beat's decode does not run on into each PE.
            m.d.sync += [pe.words_wr_en.eq(accepted & is_sw & ~sw_done & (sw_pe == i)),
                         pe.words_wr_addr.eq(sw_row), pe.words_wr_data.eq(beat.data)]
        with m.If(accepted & is_sw):
            m.d.sync += sw_row.eq(sw_row + 1)
            with m.If(ends_pe):
                m.d.sync += [sw_row.eq(0), sw_pe.eq(next_pe), sw_done.eq(~later.any())]
        errors.append(accepted & is_sw & (sw_done | (beat.last & ~(ends_pe & ~later.any()))))

        # -- weight headers: a beat per header row ------------------------------------------------
        hd_row = Signal(range(self.header_rows + 1))
        is_hd = tgt == target_ids["weight_headers"]
        hd_wr = headers.write_port()
        row_h = Mux(restart, 0, hd_row)
        m.d.comb += [hd_wr.addr.eq(banked(row_h, xfer.weights, self.header_rows)),
                     hd_wr.data.eq(beat.data),
                     hd_wr.en.eq(accepted & is_hd & (row_h < self.header_rows))]
        with m.If(accepted & is_hd):
            m.d.sync += hd_row.eq(row_h + 1)
        errors.append(accepted & is_hd & (row_h >= self.header_rows))

        # -- weight masks: each header's count of fibers into banks 0.., vbase running ------------
        # The headers of the load bank are read one per cycle ahead into a small queue; each
        # block-RAM row lands in a register before its lane is picked (the read's clock-to-out
        # plus the lane multiplexer was a critical path).
        is_wm = tgt == target_ids["weight_masks"]
        wm_rows = Signal(range(cfg.rows_max + 1))
        hdr_next = Signal(range(cfg.rows_max + 1))
        # The queue shifts towards its head on a pop, so the head is a register (a read
        # multiplexer there was in front of the pop decision).
        queue = [Signal(range(G + 1), name=f"count{k}") for k in range(4)]
        q_level = Signal(range(5))
        hdr_rd = headers.read_port()
        reading, landed = Signal(), Signal()
        read_lane = Signal(max(1, h_lane_bits))
        landed_lane = Signal.like(read_lane)
        landed_row = Signal.like(hdr_rd.data)
        issue = (hdr_next < wm_rows) & (q_level + reading + landed < 4)
        # The bank is latched as the LOAD starts: its masks may still be on their way through
        # the gearbox when the next command changes xfer_bank.
        wm_bank = Signal()
        m.d.comb += [hdr_rd.addr.eq(banked(hdr_next >> h_lane_bits, wm_bank,
                                           self.header_rows)),
                     hdr_rd.en.eq(issue)]
        m.d.sync += [reading.eq(issue), landed.eq(reading), landed_lane.eq(read_lane),
                     landed_row.eq(hdr_rd.data)]
        with m.If(issue):
            m.d.sync += [hdr_next.eq(hdr_next + 1),
                         read_lane.eq(hdr_next[:h_lane_bits] if h_lane_bits else 0)]
        push = landed
        wm_row = Signal(range(cfg.rows_max + 1))
        wm_j = Signal(range(G + 1))
        vbase = Signal(range(cfg.v_max + 1))
        head = queue[0]
        have = q_level != 0
        wm_done = Signal()            # wm_row == wm_rows, kept as a flag (it gates `ready`)
        wm_mask = Signal(W)
        m.d.comb += wm_mask.eq(masks_out.payload.mask)
        to_banks = mask_target == target_ids["weight_masks"]
        empty_row = have & (head == 0)
        takes_mask = to_banks & masks_out.valid & have & (head != 0)
        pop = empty_row | (takes_mask & (wm_j + 1 == head))
        m.d.comb += masks_out.ready.eq(Mux(to_pes, pe_ready,
                                        Mux(to_banks & ~wm_done, takes_mask, 1)))
        for j, bank in enumerate(banks):
            wr = bank.write_port()
            m.d.comb += [wr.addr.eq(banked(wm_row, wm_bank, cfg.rows_max)),
                         wr.data.mask.eq(wm_mask), wr.data.vbase.eq(vbase),
                         wr.en.eq(takes_mask & (wm_j == j))]
        with m.If(takes_mask):
            m.d.sync += [vbase.eq(vbase + masks_out.payload.ones), wm_j.eq(wm_j + 1)]
        with m.If(pop):
            m.d.sync += [wm_row.eq(wm_row + 1), wm_j.eq(0), wm_done.eq(wm_row + 1 == wm_rows)]
            m.d.sync += [queue[k].eq(queue[k + 1]) for k in range(3)]
        with m.If(push):
            for k in range(4):
                with m.If(q_level - pop == k):
                    m.d.sync += queue[k].eq(header_of(landed_row, landed_lane).count)
        m.d.sync += q_level.eq(q_level + push - pop)
        last_in = Signal()           # the LOAD's last beat has entered the gearbox
        with m.If(accepted & is_wm):
            m.d.sync += last_in.eq(beat.last & ~more)
        with m.If(accepted & is_wm & restart):
            m.d.sync += [wm_bank.eq(xfer.weights),
                         wm_rows.eq(beat.arg[:16]), hdr_next.eq(0), q_level.eq(0), wm_row.eq(0),
                         wm_j.eq(0), vbase.eq(0), reading.eq(0), landed.eq(0),
                         wm_done.eq(beat.arg[:len(wm_rows)] == 0)]
        # Too many masks: one arrives when every row is done and more beats are to come; too
        # few: the last beat is in, the gearbox empty, and a row still wants a mask.
        errors.append((to_banks & masks_out.valid & wm_done & ~last_in)
                      | (to_banks & last_in & masks_empty & ~ld.valid & have & (head != 0)
                         & ~wm_done))

        # -- weight values: a beat per row, into every PE's replica -------------------------------
        is_wv = tgt == target_ids["weight_values"]
        wv_row = Signal(range(pes[0].value_rows + 1))
        row_v = Mux(restart, 0, wv_row)
        for pe in pes:
            m.d.sync += [pe.values_wr_en.eq(accepted & is_wv & (row_v < pe.value_rows)),
                         pe.values_wr_addr.eq(row_v), pe.values_wr_data.eq(beat.data)]
        with m.If(accepted & is_wv):
            m.d.sync += wv_row.eq(row_v + 1)
        errors.append(accepted & is_wv & (row_v >= pes[0].value_rows))

        # Spike words wait for the last spike mask to reach its PE (its word count), their
        # prime cycle too.
        words_wait = is_sw & (to_pes | ~masks_settled)
        m.d.comb += [prime.eq(ld.valid & first & ~primed & ~words_wait),
                     ld.ready.eq(Mux(is_mask_load, gear.i.ready & mask_beat_go,
                                     (~first | primed) & ~words_wait)),
                     load_beats.eq(accepted)]

        # -- STOREs: each PE's output rows, PE by PE -----------------------------------------------
        sreq = host.store_req
        kinds = {target_ids["out_masks"]: 0, target_ids["out_words"]: 1,
                 target_ids["out_membranes"]: 2}
        st_kind = Signal(2)
        st_rows = Signal(8)
        st_per = Signal(range(max(pes[0].out_rows, 2) + 1))       # buffer rows per PE
        st_pe = Signal(range(max(2, P + 1)))
        st_i = Signal.like(st_per)
        storing = Signal()
        req_rows, req_cols = sreq.payload.arg[:8], sreq.payload.arg[8:24]
        per_pe = Array([(req_cols + W - 1) >> (W - 1).bit_length(),
                        (req_cols + cfg.word_lanes - 1) >> lane_bits,
                        (req_cols + cfg.mem_lanes - 1) >> (cfg.mem_lanes - 1).bit_length(),
                        C(0)])
        kind_now = Signal(2)
        with m.Switch(sreq.payload.target):
            for t, k in kinds.items():
                with m.Case(t):
                    m.d.comb += kind_now.eq(k)
            with m.Default():
                m.d.comb += kind_now.eq(3)
        rows_of = Signal.like(st_per)
        m.d.comb += rows_of.eq(per_pe[kind_now])
        # A request is checked from registers over two cycles (its beat count is a product, then
        # a comparison): neither may share a path with the command processor's state.
        checking = Signal()
        verifying = Signal()
        st_beats = Signal.like(sreq.payload.beats)
        expect = Signal(32)
        m.d.comb += sreq.ready.eq(~storing & ~checking & ~verifying)
        good = (expect == st_beats) & (st_kind != 3) & (st_rows <= P)
        with m.If(sreq.valid & sreq.ready):
            m.d.sync += [st_kind.eq(kind_now), st_rows.eq(req_rows), st_per.eq(rows_of),
                         st_beats.eq(sreq.payload.beats), st_pe.eq(0), st_i.eq(0),
                         checking.eq(1)]
        # Only a request for at most P rows can be good, so the product takes the low bits of
        # its row count, as shifted adds: no multiplier block (slow through its inputs) on it.
        per_beats = Mux(st_kind == 0, beats_for(st_per), st_per)
        with m.If(checking):
            m.d.sync += [checking.eq(0), verifying.eq(1),
                         expect.eq(sum(Mux(st_rows[i], per_beats << i, 0)
                                       for i in range(P.bit_length())))]
        with m.If(verifying):
            m.d.sync += [verifying.eq(0), storing.eq(good & (st_rows != 0) & (st_per != 0))]
        errors.append(verifying & ~good)
        # Reads: a row per cycle while the staging FIFO has room for it and the two in flight
        # (a PE's data comes two cycles after its read).
        m.submodules.stage = stage = StreamFIFO(data.StructLayout({"data": max(W, dw),
                                                                   "end": 1}), 4)
        in_flight = Signal(2)
        read = storing & (st_pe < st_rows) & (stage.level + in_flight[0] + in_flight[1] < 4)
        read_pe = [Signal.like(st_pe, name=f"read_pe{k}") for k in range(2)]
        read_end = Signal(2)
        for i, pe in enumerate(pes):
            m.d.comb += [pe.rd_en.eq(read & (st_pe == i)), pe.rd_sel.eq(st_kind),
                         pe.rd_addr.eq(st_i)]
        m.d.sync += [in_flight.eq(Cat(read, in_flight[0])), read_pe[1].eq(read_pe[0]),
                     read_end[1].eq(read_end[0])]
        with m.If(read):
            m.d.sync += [read_pe[0].eq(st_pe), read_end[0].eq(st_i + 1 == st_per)]
            with m.If(st_i + 1 == st_per):
                m.d.sync += [st_i.eq(0), st_pe.eq(st_pe + 1)]
            with m.Else():
                m.d.sync += st_i.eq(st_i + 1)
        with m.If(storing & (st_pe == st_rows) & ~in_flight.any() & ~stage.o.valid):
            m.d.sync += storing.eq(0)
        m.d.comb += [stage.i.valid.eq(in_flight[1]),
                     stage.i.payload.data.eq(Array(pe.rd_data for pe in pes)[read_pe[1]]),
                     stage.i.payload.end.eq(read_end[1])]
        # Masks through a gearbox (a PE's last one flushes a partial beat); rows are beats.
        m.submodules.store_gear = sgear = Gearbox(W, dw)
        masks = st_kind == 0
        m.d.comb += [sgear.i.valid.eq(stage.o.valid & masks),
                     sgear.i.payload.eq(stage.o.payload.data[:W]),
                     sgear.flush.eq(stage.o.valid & stage.o.payload.end), sgear.clear.eq(0)]
        # The beats reach the host through a skid register (passing straight through while it
        # is empty: no cycle added): the host writer's ready, from the command processor's
        # state, no longer runs back through the gearbox into the staging FIFO's read.
        m.submodules.store_slice = store_slice = SkidBuffer(dw, registered=False)
        connect(m, store_slice.o, host.store)
        with m.If(masks):
            m.d.comb += [stage.o.ready.eq(sgear.i.ready), store_slice.i.valid.eq(sgear.o.valid),
                         store_slice.i.payload.eq(sgear.o.payload),
                         sgear.o.ready.eq(store_slice.i.ready)]
        with m.Else():
            m.d.comb += [store_slice.i.valid.eq(stage.o.valid),
                         store_slice.i.payload.eq(stage.o.payload.data[:dw]),
                         stage.o.ready.eq(store_slice.i.ready)]

        # Each check, then their OR, ends in a register (the command processor allows
        # VERDICT_CYCLES for the verdict).
        error_bits = Signal(len(errors))
        target_error = Signal()
        m.d.sync += [error_bits.eq(Cat(*errors)), target_error.eq(error_bits.any())]
        m.d.comb += host.target_error.eq(target_error)

        # -- run control and the broadcaster -------------------------------------------------------
        # Three stages: the header and entry memories' read (block RAM, slow clock-to-output),
        # their rows as read, in a buffer of ROW_SLOTS registers (`raw`), then the decoded row in
        # a register that drives every PE: the RAM's output delay, the header decode and the
        # broadcast fan-out lie on different paths. One row per cycle while the PEs take them.
        # The memories read every cycle (no enable) and a row read lands in a free slot
        # unconditionally: a row is issued only while the slots have room for it and the row
        # in flight, counted from registers, so no handshake from the PEs reaches the block
        # RAMs' enables across the chip. Three slots keep one row per cycle with that count a
        # cycle behind; rows then reach `bcast` in the cycles the PEs' ready allowed before.
        running = Signal()
        next_row = Signal(range(cfg.rows_max + 1))
        read_valid = Signal()                # the memories' outputs hold a row issued last cycle
        row_valid = Signal()                 # `bcast` holds a row for the PEs
        all_ready = Signal()                 # every PE has room for a row (see PE.row_ready)
        m.d.sync += all_ready.eq(Cat(*[pe.row_ready for pe in pes]).all())
        take = row_valid & all_ready
        held = Signal(range(ROW_SLOTS + 1))  # rows in the slots
        raw_valid = Signal()                 # held != 0, as a register (no comparison in `decode`)
        decode = raw_valid & (~row_valid | take)
        # Following a weight-mask LOAD (flags.follow): `ahead` counts the rows whose masks are
        # in and that are not read yet; `streamed` stops the count at the run's rows (a LOAD
        # into the other bank may follow while the run ends).
        # An issue leaves `ahead` a cycle later (`issued`), and whether rows are left is kept in
        # flags: no adder or comparison lies between the PEs' ready and the next issue.
        flags = regs.flags
        streamed = Signal(range(cfg.rows_max + 1))
        ahead = Signal(range(cfg.rows_max + 1))
        issued = Signal()
        in_row = Signal()
        m.d.comb += in_row.eq(~flags.follow | ((ahead != 0) & ~(issued & (ahead == 1))))
        rows_left = Signal()                 # next_row < n_rows
        row_last = Signal()                  # next_row + 1 == n_rows
        b_issue = running & rows_left & in_row & (held + read_valid < ROW_SLOTS)
        arrive = pop & (streamed != regs.n_rows)
        with m.If(start):
            m.d.sync += [streamed.eq(0), ahead.eq(0), issued.eq(0),
                         rows_left.eq(regs.n_rows != 0), row_last.eq(regs.n_rows == 1)]
        with m.Else():
            # `arrive`, from the mask LOAD's queue across the chip, picks a sum of registers
            # (the counter's enable, a multiplexer) instead of entering the carry chains.
            less = Signal.like(ahead)
            m.d.comb += less.eq(ahead - issued)
            m.d.sync += [ahead.eq(Mux(arrive, less + 1, less)), issued.eq(b_issue & flags.follow)]
            with m.If(arrive):
                m.d.sync += streamed.eq(streamed + 1)
            with m.If(b_issue):
                m.d.sync += [rows_left.eq(~row_last), row_last.eq(next_row + 2 == regs.n_rows)]
        bh_rd = headers.read_port()
        b_lane = Signal(max(1, h_lane_bits))
        m.d.comb += bh_rd.addr.eq(banked(next_row >> h_lane_bits, run_bank.weights,
                                         self.header_rows))
        with m.If(b_issue):
            m.d.sync += b_lane.eq(next_row[:h_lane_bits] if h_lane_bits else 0)
        bank_rds = []
        for bank in banks:
            rd = bank.read_port()
            m.d.comb += rd.addr.eq(banked(next_row, run_bank.weights, cfg.rows_max))
            bank_rds.append(rd)
        # The slots form a ring: `fill` (one-hot) names the slot the next row read lands in,
        # `head` the oldest; each slot's enable is a flip-flop ANDed with `read_valid`.
        slot_layout = data.StructLayout({
            "header": len(bh_rd.data), "lane": len(b_lane),
            "entries": data.ArrayLayout(cfg.stored_entry_layout, G)})
        slots = [Signal(slot_layout, name=f"raw{s}") for s in range(ROW_SLOTS)]
        fill = Signal(ROW_SLOTS, init=1)
        head = Signal(range(ROW_SLOTS))
        for s in range(ROW_SLOTS):
            with m.If(read_valid & fill[s]):
                m.d.sync += [slots[s].header.eq(bh_rd.data), slots[s].lane.eq(b_lane),
                             *[slots[s].entries[j].eq(rd.data) for j, rd in enumerate(bank_rds)]]
        with m.If(read_valid):
            m.d.sync += fill.eq(fill.rotate_left(1))
        with m.If(decode):
            m.d.sync += head.eq(Mux(head == ROW_SLOTS - 1, 0, head + 1))
        held_next = held + read_valid - decode
        m.d.sync += [held.eq(held_next), raw_valid.eq(held_next != 0)]
        raw = Signal(slot_layout)
        m.d.comb += raw.eq(Array(slots)[head])
        header = header_of(raw.header, raw.lane)
        bcast = Signal(cfg.bcast_layout)
        with m.If(decode):
            m.d.sync += [bcast.chunk.eq(header.chunk), bcast.tile_last.eq(header.tile_last),
                         bcast.valid.eq(Cat(*[header.count > j for j in range(G)]))]
            for j in range(G):
                m.d.sync += [bcast.entries[j].mask.eq(raw.entries[j].mask),
                             bcast.entries[j].vbase.eq(raw.entries[j].vbase),
                             bcast.entries[j].n.eq(header.n[j])]
        with m.If(b_issue):
            m.d.sync += next_row.eq(next_row + 1)
        m.d.sync += [read_valid.eq(b_issue), row_valid.eq(decode | (row_valid & ~take))]

        all_done = Cat(*[pe.done for pe in pes]).all()
        # Each PE's `active` from a register: the comparison sits in front of every PE's filter
        # and group FIFO otherwise. Only the filter reads it, on rows that reach it through the
        # broadcast's stages after a run starts, so the cycle it lags is never seen.
        active = Signal(len(pes))
        m.d.sync += active.eq(Cat(*[regs.active > i for i in range(len(pes))]))
        for i, pe in enumerate(pes):
            m.d.comb += [
                pe.row.eq(bcast), pe.row_take.eq(take),
                pe.start.eq(start), pe.active.eq(active[i]),
                pe.n_cols.eq(regs.n_cols), pe.n_tiles.eq(regs.n_tiles),
                pe.use_psum.eq(flags.use_psum), pe.final.eq(flags.final),
                pe.threshold.eq(regs.threshold), pe.leak_amount.eq(regs.leak_amount),
                pe.tmask.eq(regs.tmask),
                pe.chain.eq(chain), pe.k_len.eq(host.regs.k_len),
                pe.strong.eq(host.regs.flags.strong),
                pe.load_spikes.eq(xfer.spikes), pe.load_weights.eq(xfer.weights),
                pe.read_out.eq(xfer.out),
                pe.run_spikes.eq(run_bank.spikes), pe.run_weights.eq(run_bank.weights),
                pe.run_out.eq(run_bank.out),
            ]
        m.d.comb += go.eq((control.start | queued) & ~running & ~start)
        m.d.sync += [start.eq(go), queued.eq((queued | control.start) & ~go)]
        # A count, not the queued flag, tells the command list that a queued run has begun: a
        # WAIT on the flag right after the start would rely on the host port's read latency
        # outlasting the start pulse's way to the flag.
        begun = Signal(BEGUN_BITS)
        with m.If(clear):
            m.d.sync += begun.eq(0)
        with m.Elif(go):
            m.d.sync += begun.eq(begun + 1)
        with m.If(go):
            m.d.sync += [getattr(regs, name).eq(getattr(host.regs, name))
                         for name in RUN_REGISTERS]
        with m.If(start):
            m.d.sync += [running.eq(1), next_row.eq(0), read_valid.eq(0), raw_valid.eq(0),
                         held.eq(0), fill.eq(1), head.eq(0), row_valid.eq(0)]
        with m.Elif(running & ~rows_left & ~read_valid & ~raw_valid & ~row_valid
                    & all_done):
            m.d.sync += running.eq(0)
        loading = Cat(*[pe.load_busy for pe in pes]).any()
        m.d.comb += [host.status.status.running.eq(running | start | queued),
                     host.status.status.loading.eq(loading),
                     host.status.status.queued.eq(queued),
                     host.status.status.begun.eq(begun)]

        # -- counters ------------------------------------------------------------------------------
        sum_bits = (P * max(3, cfg.T)).bit_length()
        m.submodules.counters = counters = PerfCounters(
            {name: sum_bits for name, _ in COUNTERS}, width=cfg.counter_width)
        inc = counters.inc

        def total(field):
            return sum(getattr(pe.events, field) for pe in pes)

        m.d.comb += [
            counters.clear.eq(clear),
            inc.cycles.eq(running),
            inc.matches.eq(total("match")),
            inc.pe_busy.eq(total("busy")),
            inc.bcast_stalls.eq(row_valid & ~all_ready),
            inc.rows_read.eq(b_issue),
            inc.fiber_reads.eq(total("fiber_read")),
            inc.groups_kept.eq(total("pushed")),
            inc.weight_reads.eq(total("weight_read")),
            inc.word_reads.eq(total("word_read")),
            inc.buffer_writes.eq(load_beats),
            inc.saturations.eq(total("saturated")),
            inc.lif_steps.eq(total("lif_steps")),
            inc.join_stalls.eq(total("join_stall")),
            inc.lif_stalls.eq(total("lif_stall")),
            inc.load_writes.eq(total("load_writes")),
            inc.psum_reads.eq(total("psum_read")),
            inc.psum_writes.eq(total("psum_write")),
            inc.out_writes.eq(total("out_writes")),
            inc.weight_waits.eq(running & ~in_row & rows_left & ~read_valid
                                & ~raw_valid & ~row_valid),
        ]
        for name, _ in COUNTERS:
            m.d.comb += getattr(host.status, name).eq(getattr(counters.count, name))
        return m
