"""The boards snnforge puts cores on: what each is -- its Amaranth platform in amaranth-boards,
FPGA family, oscillator, memory for the core, LEDs. The flow that builds them is
:mod:`snnforge.boards` (``snnforge board``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Board", "BOARDS"]


@dataclass(frozen=True)
class Board:
    """One board: its Amaranth platform, FPGA family, clock, memory and LEDs."""
    name: str
    summary: str
    platform: str             # "module:Class" in amaranth_boards
    family: str               # hw.boards.pll.FAMILIES
    target: str               # the device as `snnforge synth --target` names it
    clock: str                # the oscillator's resource
    clock_hz: float
    default_mhz: float
    storage: str              # hw.common.axi_ram.STORAGES
    memory_bytes: int
    leds: tuple               # LED resource indices for hw.boards.top.LEDS, in order
    bitstream: str            # what the packer writes
    extra_resources: str | None = None    # a platform attribute with more resources to add


BOARDS = {
    "ulx3s-85f": Board(
        "ulx3s-85f", "Radiona ULX3S, LFE5U-85F (ECP5), 25 MHz, FTDI UART, 8 LEDs",
        "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", "ecp5-85k", "clk25", 25e6, 40.0,
        # 128 KiB of block RAM (64 of the 208 DP16KD at a 128-bit bus); the board's SDRAM
        # would need a controller.
        "bram", 1 << 17, (0, 1, 2, 3), "top.bit"),
    "icebreaker": Board(
        "icebreaker", "1BitSquared iCEBreaker, iCE40UP5K, 12 MHz, FTDI UART, LEDs on the "
        "board and its break-off PMOD", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40",
        "ice40-up5k", "clk12", 12e6, 16.0, "spram", 1 << 17, (1, 2, 3, 0), "top.bin",
        extra_resources="break_off_pmod"),
}
