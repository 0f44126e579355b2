"""Synthesis smoke tests: a small LIF array through Yosys + nextpnr on ECP5 (out of context) and
the host-port core on iCE40 through the serialized I/O wrapper. They check that the flow made a
complete, consistent result; Fmax figures are benchmark outputs, not asserted here."""

import json

import pytest

from snnforge.generate import generate
from pathlib import Path

from snnforge.synth.flow import (DISTRIBUTED_HINT, TARGETS, YOSYS_WORKAROUND, run_yosys,
                                 synthesize, target_verilog)
from snnforge.synth.paths import signal_of, worst_paths


def check_complete(result, target, outdir):
    spec = TARGETS[target]
    cells = result["cells_by_type"]
    assert cells, "Yosys reported no cells"
    # Every kind of the summary is the weighted sum of the cells Yosys reported.
    assert set(result["cells"]) == set(spec["cells"])
    for kind, table in spec["cells"].items():
        assert result["cells"][kind] == sum(cells.get(c, 0) * w for c, w in table.items()), kind
    assert result["cells"]["lut4"] > 0 and result["cells"]["ff"] > 0
    # nextpnr's packing: the logic cells are among the device's, and fit.
    assert "pnr_error" not in result, result.get("pnr_error")
    used, available = result["logic_cells"]
    assert result["device"][spec["logic_cells"]] == (used, available)
    assert 0 < used <= available
    # One clock, with its achieved frequency, and the constraint it was placed for.
    assert len(result["fmax_by_clock"]) == 1
    assert result["fmax_mhz"] == min(result["fmax_by_clock"].values()) > 0
    assert result["constraint_mhz"] == 100.0 and result["seed"] == 1
    assert json.loads((outdir / "synth.json").read_text()) == json.loads(json.dumps(result))
    # nextpnr's critical path, summarised: register to register, its delay the clock's period.
    # (nextpnr also lists the paths from and to the ports, as "<async>".)
    (path,) = [p for p in result["critical_paths"] if "<async>" not in p["clock"]]
    assert path["from"] and path["to"] and path["through"][0] == path["from"]
    assert path["logic_levels"] >= 1 and 0 <= path["routing_share"] <= 1
    assert abs(path["mhz"] - result["fmax_mhz"]) <= 0.05 * result["fmax_mhz"]


def test_ecp5_out_of_context_small_lif(tmp_path):
    design = generate("lif_array", {"T": 2, "in_width": 8, "mem_width": 10})
    result = synthesize(design, "ecp5-85k", tmp_path)
    assert not result["serial_io_wrapper"]
    check_complete(result, "ecp5-85k", tmp_path)
    # The unplaced estimate of the same netlist: latest endpoints first, each path named from
    # a register (or port) of the design.
    paths = worst_paths(json.loads((tmp_path / "netlist.json").read_text()), 10)
    assert paths and [p["ns"] for p in paths] == sorted((p["ns"] for p in paths), reverse=True)
    assert all(p["through"] and p["levels"] >= 0 and p["mhz"] > 0 for p in paths)


def test_signal_names_from_mapped_cells():
    assert signal_of("st_per_TRELLIS_FF_Q_1") == "st_per"
    assert signal_of("expect[13]") == "expect"
    assert signal_of("\\pe0.lif.stage0_LUT4_Z_D_CCU2C_S0[2]") == "pe0.lif.stage0"
    assert signal_of("$332_MULT18X18D_P9") == "$332_MULT18X18D_P9"


def test_yosys_abc9_workaround(tmp_path):
    """Yosys 0.70's ABC9 asserts on a wire named like a bit of another (Amaranth's ArrayLayout
    element names); the flow's workaround synthesizes the minimal reproducer."""
    repro = Path(__file__).parents[1] / "synth" / "yosys_bugs" / "abc9_bracket_names.v"
    (tmp_path / "repro.v").write_text(repro.read_text())
    run_yosys(f"read_verilog repro.v; {YOSYS_WORKAROUND} synth_ecp5 -top tiny; "
              "tee -q -o stat.json stat -json", tmp_path / "yosys.log")
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    assert cells.get("TRELLIS_FF") == 4


def test_ice40_wraps_a_core_with_too_many_ports(tmp_path):
    design = generate("lif_core", {"T": 2, "in_width": 8, "mem_width": 10, "fifo_depth": 4,
                                    "dma_width": 32, "max_burst": 4, "outstanding": 1})
    result = synthesize(design, "ice40-up5k", tmp_path)
    assert result["serial_io_wrapper"] and result["port_bits"] > TARGETS["ice40-up5k"]["pins"]
    assert result["port_bits"] == sum(p["width"] for p in design.manifest()["ports"])
    check_complete(result, "ice40-up5k", tmp_path)


def test_lut_ram_hint_only_where_the_device_has_lut_ram():
    # The LoAS PE asks for LUT RAM (its spike-fiber buffer feeds the next cycle's filter);
    # Yosys refuses that on the iCE40, which has none.
    verilog = generate("loas", {"pes": 1, "fiber": 16, "T": 2, "k_max": 64, "n_max": 8,
                                "v_max": 128, "f_max": 64, "adders": 1, "segment": 8}).verilog
    assert DISTRIBUTED_HINT in verilog
    assert DISTRIBUTED_HINT in target_verilog(verilog, "ecp5-85k")
    assert DISTRIBUTED_HINT not in target_verilog(verilog, "ice40-up5k")


def test_unknown_target_is_named():
    from snnforge.params import SnnforgeError
    with pytest.raises(SnnforgeError, match="valid targets: ecp5-85k, ice40-up5k"):
        synthesize(generate("lif_array", {"T": 1}), "xc7", "/nonexistent")
