"""The LoAS family's generator: the dual-sparse core behind the host port."""

from __future__ import annotations

from ...generator import STREAM_OPTIONS, Generator
from .config import LoASConfig
from .core import LoASCore
from .driver import LoASDriver

__all__ = ["GENERATORS"]


def _describe(core: LoASCore) -> dict:
    cfg, pe = core.cfg, core.pes[0]
    return {
        "tppe_width": cfg.tppe_width, "out_width": cfg.out_width,
        "inner_join_latency_cycles": pe.inner_join.latency,
        "laggy_prefix_latency_cycles": pe.laggy.latency,
        "lif_latency_cycles": pe.lif.latency,
        "throughput": "one match per PE per cycle; one broadcast row (up to group weight "
                      "fibers) per cycle; one LIF neuron per PE per cycle",
        "chunks_max": cfg.chunks_max, "rows_max": cfg.rows_max,
        "run_overhead_cycles": core.run_overhead,
        "memory_format": {"beat_bytes": cfg.beat_bytes, "word_lanes": cfg.word_lanes,
                          "value_lanes": cfg.value_lanes, "mem_lanes": cfg.mem_lanes,
                          "header_bits": cfg.header_bits,
                          "header_fields": [name for name, _ in cfg.header_layout]},
    }


#: The demo's core: four PEs on 32-wide fibers with the paper's buffers and tiles (a Table II
#: layer's whole K in one run: each run's fixed cycles count little), rows queued 32 deep, each
#: PE's spike fibers and words in block RAM (registered reads).
DEMO = {"pes": 4, "fiber": 32, "adders": 2, "group_fifo": 32, "fiber_ram": "block",
        "word_ram": "block"}

#: Named configurations (``-p preset=NAME``); their measured cells and Fmax: ``snnforge list``
#: after ``bench/loas_presets_bench.py``.
PRESETS = {
    "ecp5-85k": (DEMO, "for the ECP5-85k (ULX3S): placed whole, out of context"),
    "ice40-up5k": ({"pes": 1, "fiber": 16, "T": 2, "tile_n": 2, "group": 1, "k_max": 64,
                    "n_max": 8, "v_max": 128, "f_max": 64, "group_fifo": 2, "match_fifo": 2,
                    "adders": 1, "segment": 8, "dma_width": 32, "max_burst": 8,
                    "outstanding": 2, "counter_width": 24},
                   "the smallest core, for the iCE40UP5K (iCEBreaker)"),
    "paper": ({}, "the paper's 16 PEs x 128-wide fibers: the ASIC-scale reference (larger "
                  "than any of our FPGAs: cell counts only)"),
}

GENERATORS = (
    Generator(
        name="loas",
        summary="LoAS dual-sparse SNN core: FTP-packed spikes x bitmask weights, inner join with "
                "fast and laggy prefix-sums, TPPE array, LIF, output compression, host port",
        config=LoASConfig,
        factory=LoASCore,
        describe=_describe,
        bench="snnforge.sim.loas.bench",
        testcase="regression",
        sim_options={"suite": "layer set: regression (default; with networks) or quick",
                     "cases": "comma-separated names of the layers/networks to run (default all)",
                     **STREAM_OPTIONS},
        driver=LoASDriver,
        deployer="snnforge.sim.loas.deploy_flow",
        # The demo builds the ecp5-85k preset's core (a minute to build under Verilator; the
        # test suite shares the build); bench/loas_bench.py measures the paper-scale default.
        presets=PRESETS,
        sweep_layers="snnforge.sim.loas.sweep",
        demo_params=DEMO,
        demo_options={"suite": "regression"},
        demo_targets=("ecp5-85k",),
    ),
)
