"""The TReX family's generators: the crossbar tile (alone, and behind the host port), the
attention unit behind the host port, and the encoder core (tile, attention unit, vector unit and
reuse sequencer)."""

from __future__ import annotations

from ...generator import STREAM_OPTIONS, Generator
from .attn_core import AttnConfig, AttnCore
from .attn_driver import AttnDriver
from .config import TrexConfig, XbarConfig, XbarTileConfig
from .core import XbarCore
from .driver import XbarDriver
from .encoder import EncoderCore
from .encoder_driver import TrexDriver
from .xbar import CrossbarTile

__all__ = ["GENERATORS"]


def _describe(core: XbarCore) -> dict:
    cfg, tile = core.cfg, core.tile
    return {
        "logical_columns": cfg.n_out, "adcs": cfg.n_adc, "slices": cfg.slices,
        "adc_shift_at_reset": cfg.shift, "result_bits": tile.y_bits,
        "cycles_per_vector": tile.cycles_per_vector(cfg.in_bits),
        "cycles_per_spike_step": tile.cycles_per_vector(1),
        "tile_latency_cycles": f"cycles_per_vector + {tile.FIXED_LATENCY}",
        "throughput": "one vector per in_bits * cols_per_adc cycles (spiking: one step per "
                      "cols_per_adc), back to back",
        "lif_latency_cycles": core.lif.latency,
        "memory_format": {"input_bits": cfg.input_bits, "spike_bits": cfg.spike_bits,
                          "cell_chunks_per_round": tile.chunks},
    }


GENERATORS = (
    Generator(
        name="xbar_tile",
        summary="the crossbar tile alone: cell-memory writes, input vectors and results as "
                "streams, ADC settings as ports",
        config=XbarTileConfig,
        factory=lambda cfg: CrossbarTile(cfg.tile, chunk_width=cfg.chunk_width),
        describe=lambda tile: {"cycles_per_vector": tile.cycles_per_vector(tile.p.in_bits),
                               "latency_cycles": f"cycles_per_vector + {tile.FIXED_LATENCY}",
                               "logical_columns": tile.p.n_out, "result_bits": tile.y_bits},
        bench="snnforge.sim.trex.xbar_tile",
        testcase="regression",
        sim_options={"cases": "random cases (default 4)", **STREAM_OPTIONS},
        demo_params={"rows": 16, "cols": 16, "w_bits": 4, "in_bits": 4, "cols_per_adc": 4,
                     "adc_bits": 4, "chunk_width": 32},
        demo_targets=("ecp5-85k",),
    ),
    Generator(
        name="xbar",
        summary="IMC crossbar tile, bit-exact digital twin: bit-sliced differential weights, "
                "bit-serial or spike inputs, ADCs shared across columns, shift-and-add, the "
                "shared LIF in spiking mode, DMA",
        config=XbarConfig,
        factory=XbarCore,
        describe=_describe,
        bench="snnforge.sim.trex.bench",
        testcase="regression",
        sim_options={"cases": "random batches per mode (default 2)", **STREAM_OPTIONS},
        driver=XbarDriver,
        # A small tile that builds and runs in seconds; the default 128x128 tile is what
        # synthesis measures.
        demo_params={"rows": 16, "cols": 16, "w_bits": 4, "in_bits": 4, "cols_per_adc": 4,
                     "adc_bits": 4, "T": 3, "dma_width": 64},
        demo_options={"cases": 2},
        demo_targets=("ecp5-85k",),
    ),
)


def _describe_attn(core: AttnCore) -> dict:
    cfg, unit = core.cfg, core.unit
    return {
        "cycles_per_row": unit.cycles_per_row(cfg.max_tokens),
        "cycles_per_row_formula": f"3 * tokens + {unit.quotient_bits} + {unit.PIPE}",
        "multipliers": 2 * cfg.d_head + 2,
        "recip_bits": cfg.recip_bits,
        "memory_format": {"row_bits": cfg.row_bits, "kv_bits": cfg.kv_bits},
    }


GENERATORS += (
    Generator(
        name="attn",
        summary="attention unit: one head's integer self-attention (scores, base-2 softmax by "
                "table and reciprocal, weighted sum of the values) on a digital MAC array, DMA",
        config=AttnConfig,
        factory=AttnCore,
        describe=_describe_attn,
        bench="snnforge.sim.trex.attn_bench",
        testcase="regression",
        sim_options={"cases": "random heads (default 2)", **STREAM_OPTIONS},
        driver=AttnDriver,
        demo_params={"max_tokens": 6, "d_head": 4, "dma_width": 64},
        demo_options={"cases": 2},
        demo_targets=("ecp5-85k",),
    ),
)


def _describe_encoder(core: EncoderCore) -> dict:
    cfg = core.cfg
    return {
        "logical_columns": cfg.n_out, "weight_block_beats": cfg.block_beats,
        "cycles_per_vector": core.tile.cycles_per_vector(8),
        "attention_cycles_per_row": core.unit.cycles_per_row(cfg.tokens),
        "param_words_per_encoder": cfg.param_stride,
        "memory_format": {"x_row_bits": cfg.x_row_bits, "a_row_bits": cfg.a_row_bits},
    }


GENERATORS += (
    Generator(
        name="trex",
        summary="transformer encoders with TReX attention reuse: the crossbar tile for every "
                "matmul, the attention unit, a vector unit (LayerNorm, requantization, "
                "residual) and per-encoder reuse registers, DMA",
        config=TrexConfig,
        factory=EncoderCore,
        describe=_describe_encoder,
        bench="snnforge.sim.trex.encoder_bench",
        testcase="regression",
        sim_options={"cases": "random batches (default 1)", **STREAM_OPTIONS},
        driver=TrexDriver,
        demo_params={"rows": 16, "cols": 32, "cols_per_adc": 4, "tokens": 4, "dim": 8,
                     "heads": 2, "mlp": 16, "depth": 3, "dma_width": 64},
        demo_options={"cases": 1},
        demo_targets=("ecp5-85k",),
    ),
)
