"""Boards: PLL settings, the board tops through Amaranth's platforms (pins, PLL), their lint,
the LoAS board top under cocotb driven through its UART pins (a real layer, bit-exact; damaged
frames; `snnforge run --port` over pyserial against the simulated board), the command line's
bad input; and (slow) the bitstreams."""

import dataclasses
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snnforge import boards as boards_module
from snnforge.boards import (BOARDS, baud_divisor, board_design, board_top, build_board,
                             interface_id)
from snnforge.cli import main
from snnforge.golden.loas import layer
from snnforge.hw.boards.pll import ecp5_pll, ice40_pll
from snnforge.hw.boards.top import LEDS, BoardPins, CoreBlackbox
from snnforge.lint import WAIVERS, lint_verilog
from snnforge.params import SnnforgeError
from snnforge.registry import generators
from snnforge.sim.boards.harness import board_sim_files, simulate_board

ULX3S, ICEBREAKER = BOARDS["ulx3s-85f"], BOARDS["icebreaker"]
# A small LoAS core for the default suite (a minute to build under Verilator with its board).
SMALL = {"pes": 2, "fiber": 16, "T": 4, "tile_n": 4, "k_max": 64, "n_max": 16, "v_max": 256,
         "f_max": 64, "adders": 1, "segment": 8, "dma_width": 64, "max_burst": 8,
         "outstanding": 2}
SMALL_ARGS = [arg for k, v in SMALL.items() for arg in ("-p", f"{k}={v}")]


def invoke(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def small():
    return board_design("loas", ULX3S, SMALL)


# -- clocks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [12.5e6, 25e6, 40e6, 50e6, 66.6e6, 100e6])
def test_ecp5_pll_settings_obey_the_primitive(target):
    s = ecp5_pll(25e6, target)
    p = s.params
    pfd = 25e6 / p["CLKI_DIV"]
    assert 3.125e6 <= pfd <= 400e6
    assert s.output_hz == pfd * p["CLKFB_DIV"]
    assert 400e6 <= s.output_hz * p["CLKOP_DIV"] <= 800e6
    assert abs(s.output_hz - target) <= 0.01 * target


@pytest.mark.parametrize("target", [16e6, 24e6, 30e6, 48e6])
def test_ice40_pll_settings_obey_the_primitive(target):
    s = ice40_pll(12e6, target)
    p = s.params
    pfd = 12e6 / (p["DIVR"] + 1)
    vco = pfd * (p["DIVF"] + 1)
    assert 10e6 <= pfd <= 133e6 and 533e6 <= vco <= 1066e6 and 1 <= p["DIVQ"] <= 6
    assert s.output_hz == vco / 2 ** p["DIVQ"] and abs(s.output_hz - target) <= 0.01 * target


def test_impossible_clocks_and_baud_rates_are_refused():
    with pytest.raises(ValueError, match="48 MHz cannot be made from 25 MHz within 1%"):
        ecp5_pll(25e6, 48e6)
    with pytest.raises(ValueError, match="iCE40 PLL: 5 MHz cannot be made"):
        ice40_pll(12e6, 5e6)
    assert baud_divisor(40e6, 115200) == 347
    with pytest.raises(SnnforgeError, match="--baud 12000000 is not within 2 %"):
        baud_divisor(40e6, 12_000_000)


# -- the configurations and the tops --------------------------------------------------------

def test_board_configurations_presets_and_overrides(monkeypatch):
    gen = generators()["loas"]
    for board in (ULX3S, ICEBREAKER):
        default = {"preset": board.target} if board.target in gen.presets else gen.demo_params
        assert board_design("loas", board).params == gen.configure(default).values()
    assert board_design("loas", ULX3S, {"pes": 2}).config.pes == 2
    # A preset named after the board's device is the default where the generator has one (else
    # its demo configuration); a -p preset=... replaces it, other -p values apply on top.
    presets = {"ecp5-85k": ({"pes": 3, "fiber": 32}, "board"), "small": ({"pes": 1}, "tiny")}
    monkeypatch.setattr(boards_module, "get_generator",
                        lambda name: dataclasses.replace(gen, presets=presets))
    monkeypatch.setattr(boards_module, "generate", lambda name, values: values)
    assert board_design("loas", ULX3S) == {"preset": "ecp5-85k"}
    assert board_design("loas", ULX3S, {"T": 2}) == {"preset": "ecp5-85k", "T": 2}
    assert board_design("loas", ULX3S, {"preset": "small"}) == {"preset": "small"}
    assert board_design("loas", ICEBREAKER) == gen.demo_params


def test_core_blackbox_checks_the_ports(small):
    ports = small.ports
    regmap = small.facts["regmap"]
    CoreBlackbox("loas", ports, addr_width=regmap["addr_width"])
    with pytest.raises(ValueError, match="port cmd__payload is .*the host interface's"):
        CoreBlackbox("loas", ports, addr_width=regmap["addr_width"] + 1)
    with pytest.raises(ValueError, match="no AXI4 master"):
        CoreBlackbox("lif_array", [p for p in ports if not p["name"].startswith("m_axi")],
                     addr_width=regmap["addr_width"])


@pytest.mark.parametrize("board", ["ulx3s-85f", "icebreaker"])
def test_board_top_on_the_platform_pins_and_pll(board, small):
    """The top through Amaranth's platform as `snnforge board` builds it (no tools run): the
    UART, the LEDs and the clock on the board's pins, the PLL with the settings for the
    default clock, the core's Verilog added."""
    spec = BOARDS[board]
    design = small if board == "ulx3s-85f" else board_design("lif_core", spec)
    search, clocking = boards_module.FAMILIES[spec.family]
    settings = search(spec.clock_hz, spec.default_mhz * 1e6)
    clock = round(settings.output_hz)
    top = board_top(design, clock_hz=clock, divisor=baud_divisor(clock, 115200), timeout=1000,
                    memory_bytes=spec.memory_bytes, storage=spec.storage)
    platform = boards_module._platform(spec)
    platform.add_file(f"{design.top}.v", design.verilog)
    plan = platform.prepare(BoardPins(top, clocking(settings, resource=spec.clock),
                                      leds=spec.leds), name="top")
    pins = {port: pin for port, pin, _ in platform.iter_port_constraints_bits()}
    expected = {"ulx3s-85f": {"uart_0__rx__io": "M1", "uart_0__tx__io": "L4",
                              "clk25_0__io": "G2", "led_0__io": "B2", "led_3__io": "D2"},
                "icebreaker": {"uart_0__rx__io": "6", "uart_0__tx__io": "9",
                               "clk12_0__io": "35", "led_0__io": "11", "led_1__io": "37"}}
    for port, pin in expected[board].items():
        assert pins[port] == pin, (port, pins)
    rtlil = plan.files["top.il"]
    primitive = {"ecp5": "EHXPLLL", "ice40": "SB_PLL40_PAD"}[spec.family]
    assert primitive in rtlil
    for name, value in settings.params.items():
        assert f"parameter \\{name} {value}" in rtlil, name
    assert ("SB_SPRAM256KA" in rtlil) == (spec.storage == "spram")
    assert f"{design.top}.v" in plan.files
    report = boards_module._pins(platform, spec)
    for function in LEDS:
        assert f"LED: {function}" in report


def test_board_top_verilog_is_lint_clean(small, tmp_path):
    top, files = board_sim_files(small, ULX3S)
    path = tmp_path / "board.v"
    path.write_text("\n".join(files.values()))
    result = lint_verilog(path, top)
    assert result.ok, result.summary()
    assert set(result.waived) <= set(WAIVERS)


# -- the board top under cocotb -----------------------------------------------------------------

def test_board_top_runs_layers_through_its_uart_and_survives_bad_frames(small):
    result = simulate_board(small, ULX3S)
    assert result.ok, result.summary()
    assert sorted(result.passed) == ["faults", "layer"]


def test_board_bench_can_fail(small):
    result = simulate_board(small, ULX3S, testcase="layer",
                            options={"golden_overrides": {"reset": "soft"}})
    assert not result.ok
    name, message = result.failed[0]
    assert name == "layer" and "random_multi_fiber: T=4" in message
    assert "differ; first at" in message


def test_snnforge_run_port_runs_the_job_on_the_simulated_board(small, tmp_path, monkeypatch):
    """`snnforge run loas --port` through pyserial (socket://) against the board top under
    cocotb: the same command a board takes, bit-exact; a board with another core is refused."""
    port_file = tmp_path / "port"
    results = []
    sim = threading.Thread(target=lambda: results.append(simulate_board(
        small, ULX3S, testcase="serve", options={"port_file": str(port_file),
                                                  "connections": 2})))
    sim.start()
    deadline = time.monotonic() + 600
    while not port_file.exists() and sim.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert port_file.exists(), results and results[0].summary()
    url = f"socket://127.0.0.1:{port_file.read_text()}"
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(4, 3, 40, generator=g) < 0.3).to(torch.uint8)
    w = torch.randint(-128, 128, (40, 10), generator=g) * (torch.rand(40, 10, generator=g) < 0.3)
    np.save(tmp_path / "s.npy", x.numpy())
    np.save(tmp_path / "w.npy", w.numpy())
    args = ["run", "loas", "--board", "ulx3s-85f", *SMALL_ARGS, "--spikes",
            str(tmp_path / "s.npy"), "--weights", str(tmp_path / "w.npy"), "--lif",
            "threshold=30", "--tmask", "0b1101", "--port", url, "--baud", "1200", "-o"]
    # A board whose core is another: refused, nothing written.
    with monkeypatch.context() as m:
        m.setattr("snnforge.flows.interface_id", lambda design: 0x12345678)
        refused = invoke(*args, str(tmp_path / "no.npz"))
    assert refused.exit_code == 2
    assert "runs core interface" in refused.stderr and "12345678" in refused.stderr
    assert not (tmp_path / "no.npz").exists()
    out = tmp_path / "out.npz"
    done = invoke(*args, str(out))
    sim.join(timeout=600)
    assert done.exit_code == 0, done.output
    assert "ran on the board at socket://" in done.output
    assert results and results[0].ok, results[0].summary()
    cfg = small.config
    spikes, membrane = layer(x, w, cfg.lif.replace(threshold=30, leak_shift=1), tmask=0b1101)
    data = np.load(out)
    assert np.array_equal(data["spikes"], spikes.numpy())
    assert np.array_equal(data["membrane"], membrane.numpy())
    assert int(data["counter_matches"]) > 0


# -- the command line ---------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["board", "loas", "--board", "de10"], "'de10' is not one of 'ulx3s-85f', 'icebreaker'"),
    (["board", "nope", "--board", "icebreaker"], "unknown generator 'nope'; valid generators"),
    (["board", "loas", "--board", "icebreaker", "-p", "pes=0"], "parameter pes=0 is out of "
                                                                "range 1..64"),
    (["board", "loas", "--board", "ulx3s-85f", "--freq", "48"], "--freq 48: ECP5 PLL: 48 MHz "
                                                                 "cannot be made"),
    (["board", "loas", "--board", "ulx3s-85f", "--baud", "9000000"], "--baud 9000000 is not "
                                                                      "within 2 %"),
    (["board", "lif_array", "--board", "ulx3s-85f"], "lif_array has no host port"),
    (["board", "loas", "--board", "icebreaker", "-p", "dma_width=128"], "data_width must be at "
                                                                         "most 64 bits on SPRAM"),
    (["run", "loas", "--spikes", "S", "--weights", "W", "--port", "/dev/nonexistent"],
     "--port /dev/nonexistent: cannot open it"),
    (["run", "loas", "--spikes", "S", "--weights", "W", "--port", "loop://"],
     "the board at loop:// does not answer at 115200 baud"),
])
def test_bad_board_input_exits_2_with_one_line(args, message, tmp_path):
    if args[0] == "run":       # real inputs, to get as far as the port
        np.save(tmp_path / "s.npy", np.zeros((4, 1, 8), dtype=np.uint8))
        np.save(tmp_path / "w.npy", np.ones((8, 2), dtype=np.int8))
        args = [str(tmp_path / "s.npy") if a == "S" else str(tmp_path / "w.npy") if a == "W"
                else a for a in args] + SMALL_ARGS
    result = invoke(*args, "-o", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


# -- bitstreams (slow) ----------------------------------------------------------------------------

@pytest.mark.slow
def test_demo_core_board_top_under_cocotb():
    design = board_design("loas", ULX3S)
    result = simulate_board(design, ULX3S, testcase="layer")
    assert result.ok, result.summary()


@pytest.mark.slow
def test_ulx3s_bitstream(tmp_path):
    result = invoke("board", "loas", "--board", "ulx3s-85f", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "board.json").read_text())
    bitstream = Path(info["bitstream"])
    assert bitstream.suffix == ".bit" and bitstream.stat().st_size == info["bitstream_bytes"]
    assert info["timing_met"] and info["fmax_mhz"] >= info["clock_mhz"]
    assert "M1" in (tmp_path / "pins.txt").read_text()
    assert "target clock 40.000 MHz (met)" in (tmp_path / "timing.txt").read_text()
    assert info["interface_id"] == f"{interface_id(board_design('loas', ULX3S)):08x}"


@pytest.mark.slow
def test_icebreaker_loas_does_not_fit_and_says_so(tmp_path):
    result = invoke("board", "loas", "--board", "icebreaker", "-o", str(tmp_path))
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not fit the ice40-up5k of the icebreaker: ICESTORM_LC" \
        in lines[0], lines
    assert (tmp_path / "top.tim").exists() and not list(tmp_path.glob("*.bin"))


@pytest.mark.slow
def test_icebreaker_bitstream_of_a_core_that_fits(tmp_path):
    design = board_design("lif_core", ICEBREAKER)
    result = build_board(design, ICEBREAKER, tmp_path)
    assert result["bitstream_bytes"] == (tmp_path / "lif_core-icebreaker.bin").stat().st_size
    assert result["utilization"]["ICESTORM_SPRAM"][0] == 4
