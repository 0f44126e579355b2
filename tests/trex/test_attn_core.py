"""The attention core end to end: its driver in Amaranth's simulator, its cocotb regression under
Verilator with a self-test, ``snnforge run attn`` and its errors."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snnforge.cli import main
from snnforge.golden.trex.attention import attention_head
from snnforge.hw.trex.attn_core import AttnConfig, AttnCore
from snnforge.hw.trex.attn_driver import AttnDriver
from snnforge.params import SnnforgeError
from snnforge.sim.amaranth_host import simulate_driver
from snnforge.sim.runner import run_bench

SMALL = {"max_tokens": 6, "d_head": 4, "dma_width": 64}
MEMORY = 1 << 16


def heads(seed, H=2, N=5, d=4):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randint(-128, 128, (H, N, d), generator=g).numpy() for n in "qkv"}


def golden(cfg, inputs, options):
    return np.stack([attention_head(*(inputs[n][h] for n in "qkv"), cfg, **options)[0].numpy()
                     for h in range(len(inputs["q"]))])


OPTIONS = {"score_mult": 300, "score_shift": 8, "out_shift": 8}


def test_core_through_its_driver_in_amaranth():
    cfg = AttnConfig(**SMALL)
    inputs = heads(1)

    async def script(driver):
        return await driver.run(driver.validate(cfg, inputs, OPTIONS))

    got = [simulate_driver(AttnCore(cfg), AttnDriver, cfg, script, memory_size=MEMORY,
                           latency=3, memory_stall=0.2, stall=0.2)]
    assert np.array_equal(got[0].outputs["out"], golden(cfg, inputs, OPTIONS))
    assert got[0].counters["rows"] == 10 and got[0].counters["macs"] == 2 * 5 * 5 * 8


def test_regression_under_verilator():
    result = run_bench("attn", SMALL, seed=2, testcase="regression", options={"cases": 2})
    assert result.ok, result.summary()
    assert result.stats["unit"] == "attention rows" and result.stats["items"] > 0


def test_regression_catches_a_wrong_golden_model():
    result = run_bench("attn", SMALL, seed=2, testcase="regression",
                       options={"cases": 0, "golden_out_shift": 5})
    assert not result.ok
    assert "out:" in result.failed[0][1] and "first at" in result.failed[0][1]


def test_snnforge_run_attn(tmp_path):
    inputs = heads(3, H=3, N=6)
    args = []
    for name, value in inputs.items():
        np.save(tmp_path / f"{name}.npy", value)
        args += ["--in", f"{name}={tmp_path / f'{name}.npy'}"]
    flags = [a for k, v in OPTIONS.items() for a in ("-O", f"{k}={v}")]
    out = tmp_path / "out.npz"
    result = CliRunner().invoke(main, ["run", "attn", "-p", "dma_width=64", *args, *flags,
                                       "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "attention: 3 heads of 6 tokens" in result.output
    with np.load(out) as got:
        assert np.array_equal(got["out"], golden(AttnConfig(**SMALL), inputs, OPTIONS))


@pytest.mark.parametrize("change, message", [
    ({"k": np.zeros((2, 4, 4), dtype=np.int64)}, "k has shape"),
    ({"q": np.full((2, 5, 4), 128)}, "q must lie within int8"),
    ({n: np.zeros((1, 7, 4), dtype=np.int64) for n in "qkv"}, "1..6 tokens"),
    ({n: np.zeros((1, 5, 3), dtype=np.int64) for n in "qkv"}, "d_head=4"),
])
def test_bad_jobs_name_the_array(change, message):
    with pytest.raises(SnnforgeError, match=message):
        AttnDriver.validate(AttnConfig(**SMALL), {**heads(1), **change}, {})
