"""The LoAS regression of record: cocotb + Verilator, whole layers through the host port, every
output spike and membrane against the golden model, the match and saturation counters too.

Default suite: a 4-PE core with 32-wide fibers for T in {1, 2, 4, 8} (T=2 with saturating
partial sums; T=1, 2 on smaller buffers and 8-column tiles), the full layer set of
``sim.loas.vectors.loas_cases`` each (shapes off the tile grid, K below/over a fiber and over
the buffer, densities 0..100 %, silent rows, zero columns, extreme weights, FTP and
sequential, strong on/off) and the networks, each case under a pair of the crossed host-port
idle/back-pressure patterns (every pair at least once); and the digits SNN on the T=4 build. ``-m slow``: the default configuration (16 PEs, W=128).
"""

import numpy as np
import pytest
import torch

from snnforge.golden.loas.digits import encode, load_digits_split, predict, train_digits_snn
from snnforge.hw.loas.deploy import DeployLayer, LoASProgram
from snnforge.registry import generators
from snnforge.sim.runner import run_bench

# The demo's 4-PE core (W=32): its T=4 build is shared with the CLI and bench tests.
MEDIUM = generators()["loas"].demo_params

# The other step counts on smaller buffers and tiles (the layer set grows with the buffers: its
# "K over the buffer" layers span two of them): quicker to build and run, and off the preset's
# tile size.
SMALL_BUFFERS = {"k_max": 512, "v_max": 2048, "f_max": 1024, "tile_n": 8}

CONFIGS = [
    {**MEDIUM, **SMALL_BUFFERS, "T": 1, "reset": "soft"},
    {**MEDIUM, **SMALL_BUFFERS, "T": 2, "acc_width": 10, "leak": "mul", "masked": "leak_only"},
    {**MEDIUM, "T": 4},
    {**MEDIUM, "T": 8, "k_max": 768, "masked": "gate_reset", "group_fifo": 4, "match_fifo": 2,
     "group_ram": "block", "fiber_ram": "block", "word_ram": "block"},
]


@pytest.mark.parametrize("params", CONFIGS, ids=lambda p: f"T{p['T']}")
def test_loas_regression(params):
    result = run_bench("loas", params, seed=7, testcase="regression",
                       options={"suite": "regression"})
    assert result.ok, result.summary()
    assert result.stats["layers"] >= 9 and result.stats["unit"] == "output neurons"


def test_loas_regression_catches_a_wrong_golden_model():
    """The bench must fail, naming the layer and the first differing output, if the RTL and the
    golden model disagree: here the core is built with soft reset, the golden model assumes hard."""
    params = {**MEDIUM, "T": 4}
    result = run_bench("loas", params, seed=7, testcase="regression",
                       options={"suite": "quick", "golden_overrides": {"reset": "soft"}})
    assert not result.ok
    message = result.failed[0][1]
    assert "first at" in message and "expected" in message and "random_multi_fiber" in message


def test_digits_snn_on_the_rtl(tmp_path):
    """A 90 %-pruned two-layer SNN trained on scikit-learn's digits: both layers run on the RTL
    over the whole test split, the hidden layer chained on chip; the RTL's outputs, hence
    predictions, equal the golden model's."""
    net, report = train_digits_snn(T=4)
    assert min(net.sparsity) >= 0.9
    _, _, x_test, y_test = load_digits_split()
    spikes = encode(x_test, 4)
    hidden = net.w1.shape[1]
    layers = [DeployLayer("hidden", "dense", net.w1.numpy(), net.lif1.threshold,
                          net.lif1.leak_shift, 15, (64,), (hidden,), scale=np.ones(hidden)),
              DeployLayer("output", "dense", net.w2.numpy(), net.lif2.threshold,
                          net.lif2.leak_shift, 15, (hidden,), (10,), scale=np.ones(10))]
    LoASProgram(layers, {"T": 4, "leak": "shift"}, (64,), (10,), []).save(tmp_path / "net.npz")
    np.save(tmp_path / "spikes.npy", spikes.numpy())
    result = run_bench("loas", {**MEDIUM, "T": 4}, seed=3, testcase="deploy",
                       options={"program_file": str(tmp_path / "net.npz"),
                                "spikes_file": str(tmp_path / "spikes.npy"),
                                "out_file": str(tmp_path / "out.npz")})
    assert result.ok, result.summary()
    with np.load(tmp_path / "out.npz") as data:
        rtl = {k: torch.from_numpy(v) for k, v in data.items()}
    assert int(rtl["counter_chained_boundaries"]) == 1     # the hidden spikes never left the core
    out, membrane = net.output(net.hidden(spikes))
    assert torch.equal(rtl["spikes"], out) and torch.equal(rtl["membrane"], membrane)
    rtl_pred, gold_pred = predict(rtl["spikes"], rtl["membrane"]), predict(out, membrane)
    assert torch.equal(rtl_pred, gold_pred)
    accuracy = float((rtl_pred == y_test).float().mean())
    assert accuracy == pytest.approx(report["test_accuracy"])
    assert accuracy > 0.7, accuracy
    print(f"digits SNN on the RTL: test accuracy {accuracy:.3f} over {len(y_test)} images, "
          f"weight sparsity {net.sparsity}, cycles {int(rtl['counter_cycles'])}")


@pytest.mark.slow
def test_loas_default_configuration_regression():
    result = run_bench("loas", {}, seed=7, testcase="regression",
                       options={"suite": "regression"})
    assert result.ok, result.summary()


def test_axi_interfaces_against_cocotbext_axi():
    """The AXI4-Lite slave and the AXI4 master against cocotbext-axi's models (an AXI4-Lite
    master as the host, an AXI4 RAM as the memory), random pauses on every channel: layers and a
    chained network, bit-exact."""
    params = {"pes": 2, "fiber": 16, "T": 2, "tile_n": 4, "group": 2, "k_max": 64, "n_max": 16,
              "v_max": 256, "f_max": 128, "segment": 8, "adders": 1, "max_burst": 4}
    result = run_bench("loas", params, seed=5, testcase="axi_protocol", external_axi=True)
    assert result.ok, result.summary()
    assert result.stats["layers"] >= 5
