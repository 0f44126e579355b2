"""Parameters of the LoAS core, their validation, derived widths and the shared stream layouts."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from amaranth import signed
from amaranth.lib import data

from ...golden.lif import LIFParams
from ..common.prefix_sum import laggy_table_layout

__all__ = ["LoASConfig", "buffer"]


def buffer(*, shape, depth, init=(), distributed=False):
    """An ``amaranth.lib.memory.Memory`` of at least two entries (a one-entry memory would get a
    zero-width address, which Verilog spells ``[-1:0]``). ``distributed`` asks synthesis for
    LUT RAM (Yosys ``ram_style``) where a block RAM's slow clock-to-out would sit on a
    critical path."""
    from amaranth.lib import memory
    attrs = {"ram_style": "distributed"} if distributed else None
    return memory.Memory(shape=shape, depth=max(2, depth), init=list(init), attrs=attrs)


@dataclass(frozen=True)
class LoASConfig:
    """Every structural parameter of a LoAS core (all validated at construction).

    Array and dataflow: ``pes`` TPPEs, each owning one spike row; weight fibers of ``fiber``
    positions broadcast ``group`` at a time; ``tile_n`` output columns stationary per PE.
    Buffers: ``k_max`` spike positions per row, ``n_max`` output columns, ``v_max`` nonzero
    weights, ``f_max`` weight fibers per run. Laggy prefix-sum: ``segment``-bit segments,
    ``adders`` adders. Queues: ``group_fifo`` broadcast rows and ``match_fifo`` matches
    (FIFO-mp/FIFO-B) per PE. ``acc_width`` is the width of the partial sums handed to the LIF
    and kept across K blocks (0: ``tppe_width``, exact for any run of up to ``k_max``
    positions); sums beyond it saturate and are counted (``golden.loas.partial_sums``).
    ``lif`` is the neuron structure (``T`` and ``in_width`` are overridden from this config).
    """

    pes: int = 16
    fiber: int = 128
    T: int = 4
    tile_n: int = 32
    group: int = 4
    k_max: int = 4608
    n_max: int = 256
    v_max: int = 8192
    f_max: int = 4096
    segment: int = 8
    adders: int = 4
    group_fifo: int = 16
    match_fifo: int = 8
    prefix_stages: int = 2
    acc_width: int = 0
    mem_width: int = 16
    leak: str = "shift"
    leak_frac: int = 8
    reset: str = "hard"
    saturate: bool = True
    masked: str = "integrate"
    lif_ops_per_stage: int = 1
    data_width: int = 32

    def __post_init__(self):
        def check(name, lo, hi, extra=None, what=None):
            value = getattr(self, name)
            ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
            if ok and extra is not None:
                ok = extra(value)
            if not ok:
                raise ValueError(f"{name} must be {what or f'an integer in {lo}..{hi}'}, "
                                 f"not {value!r}")
        check("pes", 1, 64)
        check("fiber", 8, 512, lambda v: v % 8 == 0, "a multiple of 8 in 8..512")
        check("T", 1, 16)
        check("tile_n", 1, 256)
        check("group", 1, 16)
        check("k_max", 1, 1 << 20)
        check("n_max", 1, 1 << 16)
        check("v_max", 4, 1 << 20, lambda v: v % 4 == 0, "a multiple of 4 in 4..1048576")
        check("f_max", 1, 1 << 20)
        check("segment", 1, self.fiber, lambda v: v & (v - 1) == 0 and self.fiber % v == 0,
              f"a power of two dividing fiber={self.fiber}")
        check("adders", 1, max(1, self.fiber // max(1, self.segment)))
        check("group_fifo", 2, 1024)
        check("match_fifo", 2, 1024)
        check("prefix_stages", 1, 2)
        check("acc_width", 0, 48)
        if self.acc_width and self.acc_width < 2:
            raise ValueError(f"acc_width must be 0 (derived) or >= 2, not {self.acc_width}")
        check("lif_ops_per_stage", 1, 2 * self.T)
        if self.data_width != 32:
            raise ValueError(f"data_width must be 32, not {self.data_width!r}")
        self.lif  # validates the neuron structure (mem_width, leak, reset, masked ...)

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

    @property
    def words_per_host_word(self) -> int:
        """Dense T-bit neuron words carried by one host data word."""
        return self.data_width // self.T

    @property
    def lif(self) -> LIFParams:
        return LIFParams(T=self.T, in_width=self.out_width, mem_width=self.mem_width,
                         leak=self.leak, leak_frac=self.leak_frac, reset=self.reset,
                         saturate=self.saturate, masked=self.masked, threshold=0,
                         leak_shift=0, leak_mul=0)

    def replace(self, **changes) -> "LoASConfig":
        return replace(self, **changes)

    @classmethod
    def names(cls):
        return [f.name for f in fields(cls)]

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
    def row_layout(self):
        """Descriptor of one broadcast row: its chunk, how many entries, last row of a tile."""
        return data.StructLayout({"chunk": range(max(2, self.chunks_max)),
                                  "count": range(self.group + 1), "tile_last": 1})

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
        """A broadcast row after a PE's filter: which entries intersect its spike fiber."""
        return data.StructLayout({
            "tile_last": 1, "hits": self.group,
            "entries": data.ArrayLayout(self.entry_layout, self.group),
            "a": self.a_fiber_layout})

    @property
    def pair_layout(self):
        """A (spike, weight) fiber pair and its intersection ``joint = a.mask & b.mask``."""
        return data.StructLayout({"marker": 1, "a": self.a_fiber_layout,
                                  "b": self.entry_layout, "joint": self.fiber})

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
