"""Synthesis smoke tests: a small LIF array through Yosys + nextpnr on ECP5 (out of context) and
the host-port core on iCE40 through the serialized I/O wrapper."""

from snnforge.generate import generate
from snnforge.synth.flow import DISTRIBUTED_HINT, synthesize, target_verilog


def test_ecp5_out_of_context_small_lif(tmp_path):
    design = generate("lif_array", {"T": 2, "in_width": 8, "mem_width": 10})
    result = synthesize(design, "ecp5-85k", tmp_path)
    assert "pnr_error" not in result, result.get("pnr_error")
    assert result["cells"]["lut4"] > 50 and result["cells"]["ff"] > 20
    assert result["fmax_mhz"] > 50
    assert (tmp_path / "synth.json").exists()


def test_ice40_wraps_a_core_with_too_many_ports(tmp_path):
    design = generate("lif_core", {"T": 2, "in_width": 8, "mem_width": 10, "fifo_depth": 4})
    result = synthesize(design, "ice40-up5k", tmp_path)
    assert result["serial_io_wrapper"] and result["port_bits"] > 39
    assert "pnr_error" not in result, result.get("pnr_error")
    assert result["cells"]["lut4"] > 100
    assert result["fmax_mhz"] > 10


def test_lut_ram_hint_only_where_the_device_has_lut_ram():
    # The LoAS PE asks for LUT RAM (its spike-fiber buffer feeds the next cycle's filter);
    # Yosys refuses that on the iCE40, which has none.
    verilog = generate("loas", {"pes": 1, "fiber": 16, "T": 2, "k_max": 64, "n_max": 8,
                                "v_max": 128, "f_max": 64, "adders": 1, "segment": 8}).verilog
    assert DISTRIBUTED_HINT in verilog
    assert DISTRIBUTED_HINT in target_verilog(verilog, "ecp5-85k")
    assert DISTRIBUTED_HINT not in target_verilog(verilog, "ice40-up5k")

