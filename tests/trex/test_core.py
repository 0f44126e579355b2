"""The crossbar core end to end: its driver in Amaranth's simulator (bit-serial and spiking,
memory latency and back-pressure), its cocotb regression under Verilator with a self-test,
``snnforge run xbar`` and its errors."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snnforge.cli import main
from snnforge.golden.trex.xbar import NonIdeal, xbar_mvm, xbar_spiking
from snnforge.hw.trex.config import XbarConfig
from snnforge.hw.trex.core import XbarCore
from snnforge.hw.trex.driver import XbarDriver
from snnforge.params import SnnforgeError
from snnforge.sim.amaranth_host import simulate_driver
from snnforge.sim.runner import run_bench

#: A small tile: 16 rows, 16 columns (2 logical columns of 4-bit weights), 4 ADCs.
SMALL = {"rows": 16, "cols": 16, "w_bits": 4, "in_bits": 4, "cols_per_adc": 4, "adc_bits": 4,
         "T": 3, "dma_width": 64, "threshold": 20}
MEMORY = 1 << 16


def job(seed, B=5, R=13, n=2, spiking=False, T=3, in_bits=4):
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(-7, 8, (R, n), generator=g).numpy()
    if spiking:
        x = (torch.rand(T, B, R, generator=g) < 0.5).long().numpy()
    else:
        half = 1 << (in_bits - 1)
        x = torch.randint(-half, half, (B, R), generator=g).numpy()
    return {"x": x, "w": w}


def golden(cfg, inputs, options):
    o = {"in_bits": cfg.in_bits, "adc_bits": cfg.adc_bits, "adc_shift": cfg.shift, **options}
    if o.get("spiking"):
        lif = cfg.lif.replace(threshold=o.get("threshold", cfg.threshold))
        out = xbar_spiking(inputs["x"], inputs["w"], cfg.tile, lif, tmask=o.get("tmask"),
                           adc_bits=o["adc_bits"], adc_shift=o["adc_shift"])
        return {"y": out.y.numpy(), "spikes": out.spikes.numpy()}, out
    out = xbar_mvm(inputs["x"], inputs["w"], cfg.tile, in_bits=o["in_bits"],
                   adc_bits=o["adc_bits"], adc_shift=o["adc_shift"])
    return {"y": out.y.numpy()}, out


def run_in_amaranth(params, inputs, options, *, latency=2, stall=0.2):
    cfg = XbarConfig(**params)

    async def script(driver):
        return await driver.run(driver.validate(cfg, inputs, options))

    got = [simulate_driver(XbarCore(cfg), XbarDriver, cfg, script, memory_size=MEMORY,
                           latency=latency, memory_stall=stall, stall=stall)]
    want, out = golden(cfg, inputs, options)
    for name, value in want.items():
        assert np.array_equal(got[0].outputs[name], value), (name, got[0].outputs[name], value)
    return got[0], out


@pytest.mark.parametrize("options", [{}, {"in_bits": 3, "adc_bits": 2, "adc_shift": 1},
                                     {"adc_shift": 0}], ids=["default", "narrow", "exact"])
def test_core_through_its_driver_in_amaranth(options):
    inputs = job(1, in_bits=options.get("in_bits", 4))
    got, out = run_in_amaranth(SMALL, inputs, options)
    c = got.counters
    planes = options.get("in_bits", 4)
    assert c["vectors"] == 5 and c["reads"] == out.reads == 5 * planes
    assert c["conversions"] == out.conversions == 5 * planes * 16
    assert 5 * planes * 4 <= c["busy"] < c["total_cycles"]


def test_spiking_mode_through_its_driver_in_amaranth():
    inputs = job(2, B=4, spiking=True)
    options = {"spiking": True, "threshold": 6, "adc_shift": 0}
    got, out = run_in_amaranth(SMALL, inputs, options)
    assert got.outputs["spikes"].any() and not got.outputs["spikes"].all()
    c = got.counters
    assert c["vectors"] == 12 and c["reads"] == 12 and c["neurons"] == 4 * 2


@pytest.mark.parametrize("spiking", [False, True])
def test_a_wider_matrix_takes_one_load_of_the_tile_per_block_of_columns(spiking):
    inputs = job(6, B=3, n=5, spiking=spiking)           # 2 columns per load: 3 loads
    options = {"spiking": True, "threshold": 6} if spiking else {}
    got, out = run_in_amaranth(SMALL, inputs, options)
    assert got.outputs["y"].shape[-1] == 5 and got.facts["column_blocks"] == 3
    assert got.counters["reads"] == out.reads == 3 * (9 if spiking else 3 * 4)


def non_ideal_job(seed, n=3):
    inputs = job(seed, B=3, n=n)
    result = xbar_mvm(inputs["x"], inputs["w"], XbarConfig(**SMALL).tile,
                      analog=NonIdeal(sigma=0.2, r_wire=2.0, seed=seed))
    inputs["codes"] = np.stack([c.numpy() for c in result.codes])
    return inputs, result.y.numpy()


def test_outside_codes_drive_the_digital_back_end():
    """A core built with code_input takes the non-ideal front end's ADC codes: its results are
    the golden model's on those codes (not the ideal ones)."""
    cfg = XbarConfig(**SMALL, code_input=True)
    inputs, want = non_ideal_job(3)
    assert not np.array_equal(want, xbar_mvm(inputs["x"], inputs["w"], cfg.tile).y.numpy())

    async def script(driver):
        return await driver.run(driver.validate(cfg, inputs, {}))

    got = simulate_driver(XbarCore(cfg), XbarDriver, cfg, script, memory_size=MEMORY,
                          latency=3, memory_stall=0.2, stall=0.2)
    assert np.array_equal(got.outputs["y"], want)
    assert got.counters["vectors"] == 3 * 2


def test_regression_with_outside_codes_under_verilator():
    result = run_bench("xbar", {**SMALL, "code_input": True}, seed=5, testcase="regression",
                       options={"cases": 0})
    assert result.ok, result.summary()


def test_regression_under_verilator():
    result = run_bench("xbar", SMALL, seed=4, testcase="regression", options={"cases": 2})
    assert result.ok, result.summary()
    assert result.stats["unit"] == "matrix-vector products" and result.stats["items"] > 0


def test_regression_catches_a_wrong_golden_model():
    """A golden model with another ADC shift must fail, naming the case and the first element."""
    result = run_bench("xbar", SMALL, seed=4, testcase="regression",
                       options={"cases": 0, "golden_shift": 3})
    assert not result.ok
    message = result.failed[0][1]
    assert "y:" in message and "first at" in message and "expected" in message


def test_snnforge_run_xbar(tmp_path):
    """Bit-serial and spiking jobs from the command line: the golden model's outputs."""
    params = [a for k, v in SMALL.items() for a in ("-p", f"{k}={v}")]
    for spiking, options in ((False, {"adc_bits": 3}), (True, {"spiking": "true",
                                                               "threshold": 8})):
        inputs = job(5, B=3, spiking=spiking)
        args = []
        for name, value in inputs.items():
            np.save(tmp_path / f"{name}.npy", value)
            args += ["--in", f"{name}={tmp_path / f'{name}.npy'}"]
        flags = [a for k, v in options.items() for a in ("-O", f"{k}={v}")]
        out = tmp_path / "out.npz"
        result = CliRunner().invoke(main, ["run", "xbar", *params, *args, *flags, "-o",
                                           str(out)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "crossbar 13x2" in result.output and "simulated" in result.output
        want, work = golden(XbarConfig(**SMALL), inputs,
                            {"adc_bits": 3} if not spiking else {"spiking": True,
                                                                 "threshold": 8})
        with np.load(out) as got:
            for name, value in want.items():
                assert np.array_equal(got[name], value), name
            assert int(got["counter_reads"]) == work.reads


def test_outside_codes_need_a_code_input_core_and_their_shape():
    inputs, _ = non_ideal_job(1)
    with pytest.raises(SnnforgeError, match="built without code_input"):
        XbarDriver.validate(XbarConfig(**SMALL), inputs, {})
    inputs["codes"] = inputs["codes"][:, :2]
    with pytest.raises(SnnforgeError, match=r"codes has shape \[2, 2, 3, 16\]"):
        XbarDriver.validate(XbarConfig(**SMALL, code_input=True), inputs, {})


@pytest.mark.parametrize("change, options, message", [
    ({"w": np.zeros((17, 2), dtype=np.int64)}, {}, "a tile takes at most 16"),
    ({"w": np.full((13, 2), 8)}, {}, "w must lie within"),
    ({"x": np.full((5, 13), 8)}, {}, "x must lie within"),
    ({"x": np.full((5, 13), 4)}, {"in_bits": 3}, "x must lie within"),
    ({"x": np.zeros((5, 12), dtype=np.int64)}, {}, "w has 13 rows"),
    ({"x": np.zeros((3, 5, 13), dtype=np.int64)}, {}, "x must have shape"),
    ({"x": np.full((3, 5, 13), 2)}, {"spiking": True}, "x must be binary"),
    ({"x": np.zeros((4, 5, 13), dtype=np.int64)}, {"spiking": True}, "built for T=3"),
    ({}, {"adc_bits": 5}, "adc_bits=5 is out of range 1..4"),
    ({}, {"in_bits": 1}, "in_bits=1 is out of range 2..4"),
])
def test_bad_jobs_name_the_array_or_option(change, options, message):
    cfg = XbarConfig(**SMALL)
    with pytest.raises(SnnforgeError, match=message):
        XbarDriver.validate(cfg, {**job(1), **change}, options)


def test_bad_parameters_name_the_parameter():
    with pytest.raises(ValueError, match="cols_per_adc"):
        XbarConfig(cols=16, cols_per_adc=5)
    with pytest.raises(ValueError, match="w_bits"):
        XbarConfig(cols=4, w_bits=8)
    with pytest.raises(ValueError, match="32-bit result words"):
        XbarConfig(rows=1024, in_bits=16, adc_bits=12)


def test_run_xbar_bad_input_exits_2(tmp_path):
    np.save(tmp_path / "x.npy", job(2)["x"])
    result = CliRunner().invoke(main, ["run", "xbar", "--in", f"x={tmp_path / 'x.npy'}",
                                       "-o", str(tmp_path / "out.npz")])
    assert result.exit_code == 2 and "missing input w" in result.output
    assert not (tmp_path / "out.npz").exists()
