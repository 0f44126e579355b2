"""The LIF family's generators: the LIF array alone and behind the host port."""

from __future__ import annotations

from ...generator import STREAM_OPTIONS, Generator
from .lif import LIFArray, LIFArrayConfig
from .lif_core import LIFCore, LIFCoreConfig
from .lif_driver import LIFDriver

__all__ = ["GENERATORS"]

_OPTIONS = {"n_random": "random neurons besides the structured ones", **STREAM_OPTIONS}


GENERATORS = (
    Generator(
        name="lif_array",
        summary="LIF neurons, FTP style: one neuron (T currents) per beat in, T-bit spike word "
                "and membrane out, dynamic time-step mask",
        config=LIFArrayConfig,
        factory=lambda cfg: LIFArray(cfg.lif, ops_per_stage=cfg.ops_per_stage,
                                     membrane=cfg.membrane),
        describe=lambda lif: {"latency_cycles": lif.latency,
                              "throughput_neurons_per_cycle": lif.throughput},
        bench="snnforge.sim.common.lif_array",
        sim_options=_OPTIONS,
        demo_options={"n_random": 2000},
    ),
    Generator(
        name="lif_core",
        summary="LIF array behind the host port (stream windows, registers, performance "
                "counters)",
        config=LIFCoreConfig,
        factory=lambda cfg: LIFCore(cfg.lif, ops_per_stage=cfg.ops_per_stage,
                                    fifo_depth=cfg.fifo_depth, membrane=cfg.membrane,
                                    dma_width=cfg.dma_width, max_burst=cfg.max_burst,
                                    outstanding=cfg.outstanding),
        describe=lambda core: {"latency_cycles": core.latency,
                               "lif_latency_cycles": core.lif.latency,
                               "host_words_per_neuron": core.words_per_neuron,
                               "host_words_per_result": core.words_per_result,
                               "throughput_neurons_per_cycle": round(core.throughput, 4)},
        bench="snnforge.sim.common.lif_core",
        sim_options=_OPTIONS,
        driver=LIFDriver,
        # Small enough for the iCE40UP5K's 5,280 cells: the host interface (command processor,
        # DMA engines, AXI4-Lite, counters) alone takes about 2,650 LUT4s and 1,100 FFs here.
        demo_params={"T": 2, "in_width": 8, "mem_width": 10, "fifo_depth": 4,
                     "dma_width": 32, "max_burst": 4, "outstanding": 1},
        demo_options={"n_random": 300},
    ),
)
