"""Parameters of the LoAS core, their validation, derived widths and the shared stream layouts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from amaranth import signed
from amaranth.lib import data

from ...golden.common.lif_params import LIFParams
from ...params import Config, inherit, param
from ..common.host_interface import HostInterfaceParams
from ..common.memory import RAM_STYLES
from ..common.prefix_sum import laggy_table_layout

__all__ = ["LoASConfig"]


def _is_pow2(v: int) -> bool:
    return v & (v - 1) == 0


def _floor_pow2(v: int) -> int:
    return 1 << (v.bit_length() - 1)


@dataclass(frozen=True)
class LoASConfig(Config):
    """Every structural parameter of a LoAS core (all validated at construction).

    Array and dataflow: ``pes`` TPPEs, each owning one spike row; weight fibers of ``fiber``
    positions broadcast ``group`` at a time; ``tile_n`` output columns stationary per PE.
    Buffers: ``k_max`` spike positions per row, ``n_max`` output columns, ``v_max`` nonzero
    weights, ``f_max`` weight fibers per run. Laggy prefix-sum: ``segment``-bit segments,
    ``adders`` adders. Queues: ``group_fifo`` broadcast rows (in ``group_ram``) and
    ``match_fifo`` matches (FIFO-mp/FIFO-B) per PE. ``acc_width`` is the width of the partial
    sums handed to the LIF and kept across K blocks (0: ``tppe_width``, exact for any run of up
    to ``k_max`` positions); sums beyond it saturate and are counted
    (``golden.loas.partial_sums``).
    :attr:`lif` is the neuron structure (``T`` and ``in_width`` follow from this config).
    """

    pes: int = param(16, "TPPEs (spike rows processed in parallel)", lo=1, hi=64)
    fiber: int = param(128, "fiber width W (positions per bitmask)", lo=8, hi=512,
                       check=lambda c, v: v % 8 == 0, what=lambda c: "a multiple of 8 in 8..512")
    T: int = param(4, "time steps packed per neuron word", lo=1, hi=16)
    tile_n: int = param(32, "output columns stationary per PE (accumulators per TPPE)", lo=1,
                        hi=256)
    group: int = param(4, "weight fibers broadcast per cycle", lo=1, hi=16)
    k_max: int = param(4608, "spike positions buffered per row (larger K: split into blocks)",
                       lo=1, hi=1 << 20)
    n_max: int = param(256, "output columns per run", lo=1, hi=1 << 16)
    v_max: int = param(8192, "nonzero weights buffered (multiple of 4)", lo=4, hi=1 << 20,
                       check=lambda c, v: v % 4 == 0,
                       what=lambda c: "a multiple of 4 in 4..1048576")
    f_max: int = param(4096, "weight fibers buffered", lo=1, hi=1 << 20)
    segment: int = param(8, "laggy prefix-sum segment width (a power of two dividing fiber)",
                         lo=1, hi=512,
                         check=lambda c, v: _is_pow2(v) and v <= c.fiber and c.fiber % v == 0,
                         what=lambda c: f"a power of two dividing fiber={c.fiber}")
    adders: int = param(4, "laggy prefix-sum adders (at most fiber / segment)", lo=1, hi=512,
                        check=lambda c, v: v <= max(1, c.fiber // c.segment),
                        what=lambda c: f"an integer in 1..{max(1, c.fiber // c.segment)}")
    group_fifo: int = param(16, "rows queued per PE (run-ahead depth)", lo=2, hi=1024)
    group_ram: str = param("distributed", "memory of the PE's row queue: LUT RAM, or block RAM "
                           "(two cycles more latency; frees the LUT RAM of wide rows)",
                           choices=RAM_STYLES)
    fiber_ram: str = param("distributed", "memory of the PE's spike fibers (masks and prefix-sum "
                           "tables): LUT RAM, or block RAM (two cycles more in the filter; its "
                           "reads end in registers)", choices=RAM_STYLES)
    word_ram: str = param("auto", "memory of the PE's packed spike words: synthesis's choice, "
                          "LUT RAM, or block RAM (one cycle more on the slow path; frees the LUT "
                          "RAM of wide rows)", choices=("auto", *RAM_STYLES))
    match_fifo: int = param(8, "FIFO-mp/FIFO-B depth per PE", lo=2, hi=1024)
    prefix_stages: int = param(2, "pipeline stages of the fast prefix-sum", lo=1, hi=2)
    acc_width: int = param(
        0, "partial-sum width handed to the LIF and carried across K blocks (0: derived, exact "
        "within one run of k_max positions; beyond it sums saturate, counted)", lo=0, hi=48,
        check=lambda c, v: v == 0 or v >= 2, what=lambda c: "0 (derived) or an integer in 2..48")
    mem_width: int = inherit(LIFParams, "mem_width", help="LIF membrane width")
    leak: str = inherit(LIFParams, "leak", help="LIF leak")
    leak_frac: int = inherit(LIFParams, "leak_frac",
                             help="fraction bits of the multiplicative leak")
    reset: str = inherit(LIFParams, "reset", help="LIF reset")
    saturate: bool = inherit(LIFParams, "saturate", help="saturating LIF membrane")
    masked: str = inherit(LIFParams, "masked", help="LIF policy for masked time steps")
    lif_ops_per_stage: int = param(1, "LIF operations per pipeline stage (at most 2 T)", lo=1,
                                   hi=64, check=lambda c, v: v <= 2 * c.T,
                                   what=lambda c: f"an integer in 1..{2 * c.T}")
    dma_width: int = inherit(HostInterfaceParams, "dma_width")
    max_burst: int = inherit(HostInterfaceParams, "max_burst")
    outstanding: int = inherit(HostInterfaceParams, "outstanding")
    counter_width: int = inherit(HostInterfaceParams, "counter_width")

    #: Width of the host port's data words.
    data_width: ClassVar[int] = 32

    def __post_init__(self):
        super().__post_init__()
        self.lif  # the neuron structure is valid too
        if self.dma_width % self.fiber and self.fiber % self.dma_width:
            raise ValueError(f"fiber={self.fiber} and dma_width={self.dma_width}: one must "
                             f"divide the other (fiber masks are packed into beats)")
        if self.header_bits > self.dma_width:
            raise ValueError(f"dma_width must hold one broadcast-row header of "
                             f"{self.header_bits} bits, not {self.dma_width}")

    # -- derived -------------------------------------------------------------------------------
    @property
    def chunks_max(self) -> int:
        return -(-self.k_max // self.fiber)

    @property
    def tiles_max(self) -> int:
        return -(-self.n_max // self.tile_n)

    @property
    def rows_max(self) -> int:
        """Broadcast rows (groups of up to ``group`` fibers) the fiber buffer holds."""
        return -(-self.f_max // self.group)

    @property
    def tppe_width(self) -> int:
        """Accumulator width at which every partial sum of one run is exact: |O| <= 128 * k_max.
        The pseudo and correction accumulators wrap at this width; their difference is exact."""
        return (128 * self.k_max).bit_length() + 1

    @property
    def out_width(self) -> int:
        """Width of the partial sums handed to the LIF (and kept across K blocks)."""
        return self.acc_width or self.tppe_width

    def k_block(self, sequential: bool = False) -> int:
        """Positions of a layer's K covered by one run: whole fibers that fit ``k_max`` (in
        sequential mode every fiber is expanded into T, so whole groups of T fibers)."""
        if sequential:
            fibers = self.k_max // (self.fiber * self.T)
            if fibers < 1:
                raise ValueError(f"sequential mode needs k_max >= fiber * T = "
                                 f"{self.fiber * self.T}; this core has k_max={self.k_max}")
            return fibers * self.fiber
        return (self.k_max // self.fiber) * self.fiber if self.k_max >= self.fiber else self.k_max

    # -- the memory formats (one beat = dma_width bits) --------------------------------------
    @property
    def beat_bytes(self) -> int:
        return self.dma_width // 8

    @property
    def word_lanes(self) -> int:
        """T-bit neuron words per beat (and per row of the word buffers): a power of two, so
        that a word's row and lane are bit fields of its index."""
        return _floor_pow2(self.dma_width // self.T)

    @property
    def value_lanes(self) -> int:
        """int8 weights per beat (and per row of the weight buffers)."""
        return self.dma_width // 8

    @property
    def mem_lanes(self) -> int:
        """Membranes per beat (and per row of the membrane buffers); a power of two."""
        return _floor_pow2(self.dma_width // self.mem_width)

    @property
    def header_bits(self) -> int:
        """Bits per broadcast-row header in memory: its layout rounded up to a power of two."""
        return max(8, 1 << (self.header_layout.size - 1).bit_length())

    @property
    def headers_per_beat(self) -> int:
        return self.dma_width // self.header_bits

    @property
    def lif(self) -> LIFParams:
        return LIFParams(T=self.T, in_width=self.out_width, mem_width=self.mem_width,
                         leak=self.leak, leak_frac=self.leak_frac, reset=self.reset,
                         saturate=self.saturate, masked=self.masked, threshold=0,
                         leak_shift=0, leak_mul=0)

    # -- layouts ------------------------------------------------------------------------------
    @property
    def table_layout(self):
        return laggy_table_layout(self.fiber, self.segment)

    @property
    def entry_layout(self):
        """One weight fiber: bitmask, column inside the tile, index of its first packed value."""
        return data.StructLayout({"mask": self.fiber, "n": range(max(2, self.tile_n)),
                                  "vbase": range(self.v_max)})

    @property
    def stored_entry_layout(self):
        """A weight fiber in its bank: bitmask and first value (its column is in the header)."""
        return data.StructLayout({"mask": self.fiber, "vbase": range(self.v_max)})

    @property
    def header_layout(self):
        """A broadcast row's header: its chunk, how many fibers, last row of a tile, and the
        column (inside the tile) of each fiber."""
        return data.StructLayout({"chunk": range(max(2, self.chunks_max)),
                                  "count": range(self.group + 1), "tile_last": 1,
                                  "n": data.ArrayLayout(range(max(2, self.tile_n)), self.group)})

    @property
    def a_fiber_layout(self):
        """A spike fiber as a PE keeps it: bitmask, laggy prefix table, packed index of word 0."""
        return data.StructLayout({"mask": self.fiber, "table": self.table_layout,
                                  "base": range(self.k_max + 1)})

    @property
    def bcast_layout(self):
        return data.StructLayout({
            "chunk": range(max(2, self.chunks_max)), "tile_last": 1, "valid": self.group,
            "entries": data.ArrayLayout(self.entry_layout, self.group)})

    @property
    def group_layout(self):
        """A broadcast row after a PE's filter: which entries intersect its spike fiber, and which
        of those intersections hold a single position; the index of its lowest hit
        (``first``) and whether the front end hands it over as one item (``whole``: one hit
        and no tile end, or no hit), found before it is queued."""
        return data.StructLayout({
            "tile_last": 1, "hits": self.group, "singles": self.group,
            "first": range(max(2, self.group)), "whole": 1,
            "entries": data.ArrayLayout(self.entry_layout, self.group),
            "a": self.a_fiber_layout})

    @property
    def pair_layout(self):
        """A (spike, weight) fiber pair, its intersection ``joint = a.mask & b.mask`` and whether
        that holds at most one position (``single``)."""
        return data.StructLayout({"marker": 1, "a": self.a_fiber_layout,
                                  "b": self.entry_layout, "joint": self.fiber, "single": 1})

    @property
    def match_layout(self):
        """FIFO-mp / FIFO-B entry: matched neuron's packed-word index and the matched weight."""
        return data.StructLayout({"marker": 1, "n": range(max(2, self.tile_n)),
                                  "a_addr": range(max(2, self.k_max)), "weight": signed(8)})

    @property
    def currents_layout(self):
        """What a PE's drain hands on per output column: O[t] for every t."""
        return data.StructLayout({"col": range(max(2, self.n_max)),
                                  "o": data.ArrayLayout(signed(self.tppe_width), self.T)})
