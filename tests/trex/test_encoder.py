"""The encoder core end to end: its driver in Amaranth's simulator (with and without reuse, under
stalls), the cocotb regression under Verilator with a self-test, the sequencer's error for a bad
reuse source, ``snnforge run trex`` and its errors, and the configuration's checks."""

import random

import numpy as np
import pytest
from click.testing import CliRunner

from snnforge.cli import main
from snnforge.host import CommandList, MemoryImage
from snnforge.hw.trex.config import TrexConfig
from snnforge.hw.trex.encoder import EncoderCore
from snnforge.hw.trex.encoder_driver import TrexDriver, parse_reuse
from snnforge.params import SnnforgeError
from snnforge.sim.amaranth_host import simulate_driver
from snnforge.sim.runner import run_bench
from snnforge.sim.trex.encoder_bench import expected_counts, golden, random_params

SMALL = {"rows": 16, "cols": 32, "cols_per_adc": 4, "tokens": 4, "dim": 8, "heads": 2,
         "mlp": 16, "depth": 3, "dma_width": 64}
MEMORY = 1 << 18


def job_inputs(seed, B=1):
    cfg = TrexConfig(**SMALL)
    rng = random.Random(seed)
    x = np.array([rng.randint(-3000, 3000) for _ in range(B * 4 * 8)]).reshape(B, 4, 8)
    return cfg, {"tokens": x, "params": random_params(cfg, rng, 3)}


@pytest.mark.parametrize("options", [{"encoders": 3}, {"encoders": 3, "reuse": "1:0,2:0"},
                                     {"encoders": 3, "reuse": "1:0,2:1"}])
def test_core_through_its_driver_in_amaranth(options):
    cfg, inputs = job_inputs(1, B=2)
    job = TrexDriver.validate(cfg, inputs, options)

    async def script(driver):
        return await driver.run(job)

    got = simulate_driver(EncoderCore(cfg), TrexDriver, cfg, script, memory_size=MEMORY,
                          latency=3, memory_stall=0.2, stall=0.2)
    want = golden(cfg, job)
    for name in ("tokens", "outputs"):
        assert np.array_equal(got.outputs[name], want[name]), name
    counts = expected_counts(cfg, job)
    assert {k: got.counters[k] for k in counts} == counts
    # reuse skips the attention: no heads for the reusing encoders
    assert counts["attention_rows"] == 2 * (3 - len(parse_reuse(job.options["reuse"], 3))) * 2 * 4


def test_a_dim_not_a_power_of_two_divides_its_squares():
    """dim = 6: the LayerNorm's variance through the divider, blocks of 2 columns."""
    cfg = TrexConfig(**{**SMALL, "dim": 6, "heads": 3, "mlp": 12, "cols": 28})
    rng = random.Random(5)
    x = np.array([rng.randint(-3000, 3000) for _ in range(4 * 6)]).reshape(1, 4, 6)
    job = TrexDriver.validate(cfg, {"tokens": x, "params": random_params(cfg, rng, 3)},
                              {"reuse": "2:1"})

    async def script(driver):
        return await driver.run(job)

    got = simulate_driver(EncoderCore(cfg), TrexDriver, cfg, script, memory_size=MEMORY)
    want = golden(cfg, job)
    for name in ("tokens", "outputs"):
        assert np.array_equal(got.outputs[name], want[name]), name


def test_a_source_not_before_its_encoder_stops_with_an_error():
    cfg, _ = job_inputs(1)

    async def script(driver):
        host = driver.host
        # encoder 0 cannot reuse (no encoder before it)
        await host.write_many({"encoders": 2, "reuse": 0b01, "sources": 0})
        await host.write("control", run=1)
        for _ in range(20):
            status = await host.read_fields("status")
            if not status["busy"]:
                return status
        return status

    status = simulate_driver(EncoderCore(cfg), TrexDriver, cfg, script, memory_size=MEMORY)
    assert status == {"busy": 0, "error": 1}


def test_weights_without_a_run_stop_the_command_list():
    """Weight blocks no run takes (none started) end the list with an error, not a hang."""
    cfg, _ = job_inputs(1)

    async def script(driver):
        image = MemoryImage(MEMORY, align=64)
        cl = CommandList(driver.host.regmap)
        cl.load("weights", image.put("w", bytes(8 * cfg.block_beats)), cfg.block_beats, arg=1)
        cl.end()
        with pytest.raises(SnnforgeError, match=r"command 0 \(LOAD weights"):
            await driver.host.run_commands(image, cl)
        return True

    assert simulate_driver(EncoderCore(cfg), TrexDriver, cfg, script, memory_size=MEMORY)


def test_regression_under_verilator():
    result = run_bench("trex", SMALL, seed=2, testcase="regression", options={"cases": 1})
    assert result.ok, result.summary()
    assert result.stats["unit"] == "images" and result.stats["items"] > 0


def test_regression_catches_a_wrong_golden_model():
    result = run_bench("trex", SMALL, seed=2, testcase="regression",
                       options={"cases": 0, "golden_adc_bits": 2})
    assert not result.ok
    assert "first at" in result.failed[0][1]


def test_snnforge_run_trex(tmp_path):
    cfg, inputs = job_inputs(3, B=2)
    np.save(tmp_path / "x.npy", inputs["tokens"])
    np.savez(tmp_path / "p.npz", **inputs["params"])
    out = tmp_path / "out.npz"
    result = CliRunner().invoke(main, [
        "run", "trex", *[a for k, v in SMALL.items() if k not in ("tokens", "dim", "depth",
                                                                   "mlp")
                         for a in ("-p", f"{k}={v}")],
        "--in", f"tokens={tmp_path / 'x.npy'}", "--in", f"params={tmp_path / 'p.npz'}",
        "-O", "reuse=2:0", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "encoders: 2 images x 3 encoders (reuse 2:0)" in result.output
    job = TrexDriver.validate(cfg, inputs, {"reuse": "2:0"})
    with np.load(out) as got:
        want = golden(cfg, job)
        assert np.array_equal(got["tokens"], want["tokens"])
        assert np.array_equal(got["outputs"], want["outputs"])
        assert int(got["counter_reused"]) == 2


@pytest.mark.parametrize("change, options, message", [
    ({"tokens": np.zeros((1, 5, 8), dtype=np.int64)}, {}, r"tokens has shape \[1, 5, 8\]"),
    ({"tokens": np.full((1, 4, 8), 40000)}, {}, "tokens must lie within int16"),
    ({}, {"reuse": "2"}, "option reuse: '2' is not j:i"),
    ({}, {"reuse": "1:1"}, "need 0 <= i < j < 3"),
    ({}, {"reuse": "2:0,2:1"}, "each j once"),
    ({}, {"encoders": 4}, "out of range 1..3"),
    ("drop 1.fc1.w", {}, r"params lacks '1.fc1.w'"),
    ("big 0.q.w", {}, r"params\[0.q.w\] must lie within -127..127"),
])
def test_bad_jobs_name_the_array_or_option(change, options, message):
    cfg, inputs = job_inputs(1)
    if change == "drop 1.fc1.w":
        del inputs["params"]["1.fc1.w"]
    elif change == "big 0.q.w":
        inputs["params"]["0.q.w"] = inputs["params"]["0.q.w"] * 0 + 200
    else:
        inputs.update(change)
    with pytest.raises(SnnforgeError, match=message):
        TrexDriver.validate(cfg, inputs, options)


def test_snnforge_run_trex_bad_input_exits_2(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 8), dtype=np.int64))
    np.save(tmp_path / "p.npy", np.zeros(3))
    result = CliRunner().invoke(main, ["run", "trex", "--in", f"tokens={tmp_path / 'x.npy'}",
                                       "--in", f"params={tmp_path / 'p.npy'}", "-o",
                                       str(tmp_path / "o.npz")])
    assert result.exit_code == 2
    assert "params must be an archive of named arrays (.npz)" in result.output
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("change, message", [
    ({"heads": 3}, "heads=3 must divide dim=8"),
    ({"mlp": 32}, "must fit the tile's rows=16"),
    ({"in_bits": 6}, "in_bits must be at least 8"),
    ({"depth": 9}, "depth must be an integer in 1..8"),
])
def test_bad_configurations_name_the_parameter(change, message):
    with pytest.raises(ValueError, match=message):
        TrexConfig(**{**SMALL, **change})


@pytest.mark.slow
def test_default_encoder_core_regression_under_verilator():
    """The default configuration (the digits ViT's encoders on a 64 x 128 tile) with random
    and structured batches under every host-port pattern."""
    result = run_bench("trex", {}, seed=7, testcase="regression", options={"cases": 2})
    assert result.ok, result.summary()
