"""A board top under cocotb + Verilator: everything inside the pins, the PLL bypassed.

The simulated top is :func:`snnforge.boards.board_top` for the board -- the core's generated
Verilog, the UART, the serial bridge, the AXI4 memory (the board's size), the LEDs -- clocked
by the bench, with a small UART divisor and bridge timeout so that a layer's traffic takes
seconds. Its benches are in :mod:`snnforge.sim.boards.bench`.
"""

from __future__ import annotations

from amaranth.back import verilog

from ...boards import Board, board_top, interface_id
from ...generate import Design
from ..runner import BenchResult, build_model, run_model

__all__ = ["SIM_DIVISOR", "SIM_TIMEOUT_BITS", "board_sim_files", "simulate_board"]

#: Cycles per UART bit in simulation (a board has hundreds).
SIM_DIVISOR = 6
#: The bridge's timeout in simulation, in bit times.
SIM_TIMEOUT_BITS = 40


def board_sim_files(design: Design, board: Board, *, divisor: int = SIM_DIVISOR,
                    timeout_bits: int = SIM_TIMEOUT_BITS) -> tuple[str, dict]:
    """``(top module, {file: Verilog})`` of ``board``'s top around ``design``'s core, with
    its storage as block RAM (the SPRAM cells have no simulation model here)."""
    top = board_top(design, clock_hz=round(board.default_mhz * 1e6), divisor=divisor,
                    timeout=timeout_bits * divisor, memory_bytes=board.memory_bytes)
    name = f"{design.top}_board"
    text = verilog.convert(top, name=name, emit_src=False)
    wrapper = "\n".join([
        f"// {name} with only its pins visible to the bench (sim/boards/harness.py).",
        f"module {name}_sim (",
        "  input clk /*verilator public_flat_rw*/,",
        "  input rst /*verilator public_flat_rw*/,",
        "  input uart_rx /*verilator public_flat_rw*/,",
        "  output uart_tx /*verilator public_flat_rw*/,",
        "  output [3:0] leds /*verilator public_flat_rw*/",
        ");",
        f"  {name} board (.clk(clk), .rst(rst), .uart_rx(uart_rx), .uart_tx(uart_tx),"
        " .leds(leds));",
        "endmodule", ""])
    return f"{name}_sim", {f"{design.top}.v": design.verilog, f"{name}.v": text,
                           f"{name}_sim.v": wrapper}


def simulate_board(design: Design, board: Board, *, testcase=None, seed: int = 1,
                   options: dict | None = None) -> BenchResult:
    """Run :mod:`snnforge.sim.boards.bench` (or one ``testcase`` of it) on ``board``'s top
    around ``design``'s core."""
    top, files = board_sim_files(design, board)
    bdir = build_model(f"{design.top}_board", top, files)
    options = {**(options or {}), "board": board.name, "divisor": SIM_DIVISOR,
               "timeout": SIM_TIMEOUT_BITS * SIM_DIVISOR, "interface_id": interface_id(design),
               "memory_bytes": board.memory_bytes, "clock_hz": round(board.default_mhz * 1e6)}
    return run_model(bdir, top, "snnforge.sim.boards.bench", name=design.top, design=design,
                     seed=seed, options=options, testcase=testcase, tag="board")
