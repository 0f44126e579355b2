"""The LIF regression of record: cocotb + Verilator, every output beat against the golden model.

Four structures over T in {1, 2, 4, 8} with >= 2,500 neurons each (>= 10,000 in total): zeros,
max positive/negative currents, threshold +-1, all-zero/all-one/random masks, extreme register
values and random neurons, each case under a pair of the crossed idle (input) and back-pressure
(output) patterns -- every pair at least once (T=2 built without the membrane output: spike
words only). The simulated top checks the stream contract of the output on every cycle.
"""

import pytest

from snnforge.sim.runner import run_bench

CONFIGS = [
    {"T": 1, "leak": "none", "reset": "soft", "in_width": 8, "mem_width": 8, "threshold": 20},
    {"T": 2, "leak": "mul", "reset": "soft", "masked": "leak_only", "ops_per_stage": 2,
     "membrane": False},
    {"T": 4},
    {"T": 8, "leak": "shift", "leak_shift": 1, "saturate": False, "masked": "gate_reset",
     "in_width": 12, "mem_width": 14, "threshold": 300, "ops_per_stage": 3},
]


@pytest.mark.parametrize("params", CONFIGS, ids=lambda p: f"T{p['T']}")
def test_lif_array_regression(params):
    result = run_bench("lif_array", params, seed=11, options={"n_random": 2500})
    assert result.ok, result.summary()
    assert result.stats["items"] >= 2500 and result.stats["unit"] == "neurons"


def test_lif_core_regression_through_host_port():
    result = run_bench("lif_core", {"T": 4, "leak": "mul", "reset": "soft"}, seed=3,
                       options={"n_random": 300})
    assert result.ok, result.summary()


def test_bench_catches_a_wrong_golden_model():
    """A bench that cannot fail is a defect: with the golden model told the wrong reset rule,
    the regression must fail and say where."""
    result = run_bench("lif_array", {"T": 4}, seed=11, testcase="random_neurons",
                       options={"n_random": 200, "golden_params": {"reset": "soft"}})
    assert not result.ok
    message = result.failed[0][1]
    assert "first at beat" in message and "expected" in message and "got" in message


def test_snnforge_run_lif_core_through_its_dma(tmp_path):
    """``snnforge run lif_core``: the currents from memory, the results back, under Verilator;
    every neuron equals the golden model."""
    import numpy as np
    from click.testing import CliRunner

    from snnforge.cli import main
    from snnforge.golden.common.lif import LIFParams, lif_integer
    rng = np.random.default_rng(4)
    currents = rng.integers(-300, 300, size=(50, 4))
    np.save(tmp_path / "c.npy", currents)
    out = tmp_path / "out.npz"
    result = CliRunner().invoke(main, ["run", "lif_core", "-p", "fifo_depth=8", "--in",
                                       f"currents={tmp_path / 'c.npy'}", "-O", "threshold=90",
                                       "-O", "tmask=0b1101", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "end-to-end cycles" in result.output
    p = LIFParams(T=4, threshold=90)
    spikes, membrane, evaluated = lif_integer(currents, p, 0b1101)
    with np.load(out) as data:
        assert np.array_equal(data["spikes"], spikes.numpy())
        assert np.array_equal(data["membrane"], membrane.numpy())
        assert int(data["counter_evaluated"]) == evaluated
        assert int(data["counter_neurons"]) == 50
