"""NIR networks on the LoAS core (``hw.loas.deploy``, ``snnforge deploy``): the mapping rules, the
integer golden model against the graph's float semantics, and the RTL against the golden model
-- for an snnTorch network through snnTorch's own exporter, and a conv network."""

import asyncio
import json

import nir
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from snnforge.cli import main
from snnforge.golden.nir import chain_from_graph, float_forward
from snnforge.golden.nir.digits import digits_spikes, export_nir, train_snntorch_digits
from snnforge.hw.loas import deploy as loas_deploy
from snnforge.hw.loas.config import LoASConfig
from snnforge.hw.loas.deploy import (LoASProgram, choose_leak, forward, golden_segment, map_chain,
                                     predictions)
from snnforge.params import SnnforgeError
from snnforge.registry import generators

DEMO = generators()["loas"].demo_params


def cfg_for(T):
    return lambda leak: LoASConfig(**{**DEMO, "T": T, "leak": leak, "reset": "hard"})


def full(shape, value):
    return np.full(shape, value, dtype=np.float64)


def lif(shape, tau=2e-4, r=2.0, threshold=1.0, **extra):
    return nir.LIF(tau=full(shape, tau), r=full(shape, r), v_leak=full(shape, 0.0),
                   v_threshold=np.broadcast_to(np.asarray(threshold, float), shape).copy(),
                   **{k: full(shape, v) for k, v in extra.items()})


def if_(shape, threshold):
    return nir.IF(r=full(shape, 1e4), v_threshold=np.broadcast_to(
        np.asarray(threshold, float), shape).copy())      # dt r = 1: v += I


def chain(*nodes, input_shape):
    named = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
    named.update({str(i): node for i, node in enumerate(nodes)})
    named["output"] = nir.Output(output_type={"output": np.array([1])})
    order = list(named)
    return chain_from_graph(nir.NIRGraph(nodes=named, edges=list(zip(order, order[1:])),
                                         type_check=False), 1e-4)


def run_golden(program, cfg, spikes):
    return asyncio.run(forward(program, spikes, golden_segment(cfg)))


def grid_weights(g, shape, c=0.01, density=0.5):
    """Weights ``[out, ...]`` on integer grids ``c[out] * [-127, 127]``, each output's extreme
    reached: the int8 mapping is exact where ``c`` is the output's threshold over one ``R``."""
    w = torch.randint(-127, 128, shape, generator=g).double()
    w *= (torch.rand(shape, generator=g) < density)
    w.view(shape[0], -1)[:, 0] = 127
    return w.numpy() * np.broadcast_to(c, (shape[0],)).reshape(-1, *[1] * (len(shape) - 1))


def test_leak_kind_follows_the_layers_betas():
    assert choose_leak([1.0, 1.0]) == "none"
    assert choose_leak([0.5, 0.75, 0.0]) == "shift"
    assert choose_leak([0.5, 0.9]) == "mul"
    shape, stages = chain(nir.Linear(weight=np.ones((3, 4))), lif(3, tau=1e-3),  # beta 0.9
                          input_shape=(4,))
    program, cfg = map_chain(shape, stages, cfg_for(2), T=2)
    assert cfg.leak == "mul" and program.layers[0].leak_amount == 230       # round(0.9 * 256)
    assert any("beta=0.9 rounded to 230/256" in note for note in program.approximations)


def test_integer_grid_network_is_exact_with_per_neuron_thresholds_and_a_folded_bias():
    """IF neurons, weights on an integer grid, a bias on the first layer (folded as an always-on
    input), thresholds per output neuron (folded into column scales): the integer golden model
    equals the float graph spike for spike, and the registers follow the documented rules."""
    g = torch.Generator().manual_seed(3)
    R = 80.5                                   # a threshold between grid points: no ties
    th1 = np.linspace(0.5, 2.0, 12)
    w1, w2 = grid_weights(g, (12, 20), th1 / R), grid_weights(g, (5, 12), 0.8 / R)
    bias = (torch.randint(-20, 21, (12,), generator=g).double()).numpy() * th1 / R
    shape, stages = chain(nir.Affine(weight=w1, bias=bias), if_(12, th1),
                          nir.Linear(weight=w2), if_(5, 0.8), input_shape=(20,))
    program, cfg = map_chain(shape, stages, cfg_for(8), T=8)
    first, second = program.layers
    assert cfg.leak == "none" and first.bias_input and first.weights.shape == (21, 12)
    assert np.abs(first.weights).max() == 127 and second.threshold == 80 + 1   # floor(R) + 1
    x = (torch.rand(8, 50, 20, generator=g) < 0.3).to(torch.uint8)
    want, _ = float_forward(stages, x)
    got, _, counters = run_golden(program, cfg, x.numpy())
    assert want.sum() > 50 and counters["matches"] > 0
    assert np.array_equal(got, want.numpy().astype(np.uint8))


def test_pooling_before_a_linear_layer_is_folded_exactly():
    g = torch.Generator().manual_seed(5)
    w = grid_weights(g, (6, 8), 1.5 / 60.5)
    shape, stages = chain(nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                        padding=np.array([0, 0])),
                          nir.Flatten(input_type=None, start_dim=0, end_dim=-1),
                          nir.Linear(weight=w), if_(6, 1.5), input_shape=(2, 4, 4))
    program, cfg = map_chain(shape, stages, cfg_for(4), T=4)
    assert program.layers[0].weights.shape == (32, 6)
    x = (torch.rand(4, 30, 2, 4, 4, generator=g) < 0.4).to(torch.uint8)
    want, _ = float_forward(stages, x)
    got, _, _ = run_golden(program, cfg, x.numpy())
    assert want.sum() > 20 and np.array_equal(got, want.numpy().astype(np.uint8))


def conv_chain(g):
    """Conv 3x3 (4 channels, same padding, per-channel thresholds) -> LIF -> sum pool 2x2 ->
    flatten -> Linear -> LIF, on 1 x 8 x 8 inputs."""
    conv = nir.Conv2d(input_shape=None, weight=grid_weights(g, (4, 1, 3, 3), density=0.8),
                      stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(4))
    th = np.broadcast_to(np.array([0.6, 0.9, 1.2, 1.5]).reshape(4, 1, 1), (4, 8, 8))
    return chain(conv, lif((4, 8, 8), threshold=th),
                 nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                               padding=np.array([0, 0])),
                 nir.Flatten(input_type=None, start_dim=0, end_dim=-1),
                 nir.Linear(weight=grid_weights(g, (10, 64))), lif(10, threshold=1.0),
                 input_shape=(1, 8, 8))


def test_conv_network_integer_model_tracks_the_float_graph():
    g = torch.Generator().manual_seed(7)
    shape, stages = conv_chain(g)
    program, cfg = map_chain(shape, stages, cfg_for(4), T=4)
    conv, dense = program.layers
    assert (conv.kind, conv.weights.shape, conv.positions) == ("conv", (9, 4), 64)
    assert dense.weights.shape == (256, 10) and program.segments() == [[0], [1]]   # pool folded
    x = (torch.rand(4, 20, 1, 8, 8, generator=g) < 0.5).to(torch.uint8)
    want, _ = float_forward(stages, x)
    got, membrane, _ = run_golden(program, cfg, x.numpy())
    assert got.shape == (4, 20, 10) and membrane.shape == (20, 10)
    # The leak floors: not exact, but close.
    assert want.sum() > 20 and (got != want.numpy()).mean() < 0.05


def test_conv_with_a_flatten_before_its_neurons():
    """Conv -> Flatten -> IF on an integer grid: the flattened neurons keep the channel-major
    order, and the integer model is exact."""
    g = torch.Generator().manual_seed(4)
    w = grid_weights(g, (3, 2, 3, 3), 1.0 / 40.5, density=0.7)
    shape, stages = chain(nir.Conv2d(input_shape=None, weight=w, stride=2, padding=1,
                                     dilation=1, groups=1, bias=np.zeros(3)),
                          nir.Flatten(input_type=None, start_dim=0, end_dim=-1),
                          if_(3 * 3 * 3, 1.0), input_shape=(2, 6, 6))
    program, cfg = map_chain(shape, stages, cfg_for(4), T=4)
    assert program.layers[0].positions == 9 and program.output_shape == (27,)
    x = (torch.rand(4, 10, 2, 6, 6, generator=g) < 0.5).to(torch.uint8)
    want, _ = float_forward(stages, x)
    got, _, _ = run_golden(program, cfg, x.numpy())
    assert want.sum() > 20 and np.array_equal(got, want.numpy().astype(np.uint8))


@pytest.mark.parametrize("nodes, input_shape, message", [
    ([nir.Linear(weight=np.ones((3, 4))), lif(3, v_reset=0.2)], (4,), "v_reset must be 0"),
    ([nir.Linear(weight=np.ones((3, 4))), nir.LIF(tau=full(3, 2e-4), r=full(3, 1), v_leak=full(
        3, 0.1), v_threshold=full(3, 1))], (4,), "v_leak must be 0"),
    ([nir.Linear(weight=np.ones((3, 4))), nir.CubaLIF(
        tau_syn=full(3, 5e-4), tau_mem=full(3, 2e-4), r=full(3, 1), v_leak=full(3, 0),
        v_threshold=full(3, 1))], (4,), "a synaptic current state (tau_syn > dt)"),
    ([nir.Linear(weight=np.ones((3, 4))), nir.LIF(tau=np.array([2e-4, 3e-4, 2e-4]), r=full(
        3, 1), v_leak=full(3, 0), v_threshold=full(3, 1))], (4,), "tau differs between neurons"),
    ([nir.Linear(weight=np.ones((3, 4))), lif(3, threshold=0.0)], (4,),
     "v_threshold must be positive"),
    ([nir.Linear(weight=np.ones((3, 4))), lif(3), nir.Affine(weight=np.ones((2, 3)),
                                                             bias=np.ones(2)), lif(2)], (4,),
     "node '2': a nonzero bias can only be folded in a layer fed by the network input"),
    ([nir.Linear(weight=np.ones((3, 4)))], (4,), "node '0' (Linear) feeds no neuron"),
    ([nir.Linear(weight=np.ones((3, 4))), lif(3), lif(3)], (4,),
     "node '2' (LIF) has no weight layer before it"),
    ([nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                    padding=np.array([0, 0])),
      nir.Conv2d(input_shape=None, weight=np.ones((2, 1, 3, 3)), stride=1, padding=1,
                 dilation=1, groups=1, bias=np.zeros(2)), lif((2, 2, 2))], (1, 4, 4),
     "node '0' (SumPool2d) before Conv2d '1': pooling folds only into a Linear/Affine layer"),
    ([nir.Conv2d(input_shape=None, weight=np.ones((2, 1, 3, 3)), stride=1, padding=1,
                 dilation=1, groups=1, bias=np.zeros(2)),
      nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                    padding=np.array([0, 0])), lif((2, 2, 2))], (1, 4, 4),
     "node '1' (SumPool2d) between weight node '0' and its neurons"),
])
def test_what_the_core_cannot_take_is_refused_naming_the_node(nodes, input_shape, message):
    shape, stages = chain(*nodes, input_shape=input_shape)
    with pytest.raises(SnnforgeError) as error:
        map_chain(shape, stages, cfg_for(4), T=4)
    assert message in str(error.value)


def test_program_files_round_trip(tmp_path):
    shape, stages = conv_chain(torch.Generator().manual_seed(2))
    program, _ = map_chain(shape, stages, cfg_for(4), T=4)
    program.save(tmp_path / "p.npz")
    back = LoASProgram.load(tmp_path / "p.npz")
    assert back.params == program.params and back.segments() == program.segments()
    for a, b in zip(program.layers, back.layers):
        assert a.info() == b.info() and np.array_equal(a.weights, b.weights)


# -- on the RTL ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def snntorch_digits(tmp_path_factory):
    """The snnTorch digits MLP, exported by snnTorch's ``export_to_nir``; the test split."""
    root = tmp_path_factory.mktemp("nir")
    net, report = train_snntorch_digits(T=4, epochs=20)
    export_nir(net, root / "digits.nir")
    x, y = digits_spikes(4)
    np.save(root / "x.npy", x)
    np.save(root / "y.npy", y)
    return root, report


def deploy(*args):
    return CliRunner().invoke(main, ["deploy", *map(str, args)])


def test_snntorch_network_deployed_on_the_rtl_predicts_as_the_golden_model(snntorch_digits):
    """snnTorch -> NIR -> LoAS on the RTL under Verilator over the whole digits test split: the
    RTL's outputs equal the integer golden model's (so do the predictions), and quantization
    moves few predictions off the float graph's."""
    root, report = snntorch_digits
    result = deploy(root / "digits.nir", "--data", root / "x.npy", "--labels", root / "y.npy",
                    "-o", root / "out")
    assert result.exit_code == 0, result.output
    assert "accuracy " in result.output and " % on the RTL" in result.output
    summary = json.loads((root / "out" / "report.json").read_text())
    r = summary["results"]
    assert r["rtl_equals_golden"] and summary["problems"] == []
    with np.load(root / "out" / "outputs.npz") as out:
        assert np.array_equal(out["predictions"], out["golden_predictions"])
        assert out["spikes"].shape == (450, 4, 10)
    assert r["accuracy_float"] == pytest.approx(report["test_accuracy"])
    assert r["agreement_rtl_float"] > 0.95 and r["accuracy_rtl"] > 0.7
    assert r["chained_boundaries"] == 1 and r["cycles"] > 0 and r["energy"] > 0
    assert [layer["K"] for layer in summary["layers"]] == [64, 64]
    assert "| 0+1 | dense | 64 x 64 |" in (root / "out" / "report.md").read_text()


def test_conv_network_on_the_rtl(tmp_path):
    """Conv (im2col on the host) -> pool folded into the Linear -> Linear, on the RTL: equal to
    the golden model (``deploy_nir`` checks every output; a difference exits 1)."""
    from snnforge.sim.loas.deploy_flow import deploy_nir
    from rich.console import Console
    g = torch.Generator().manual_seed(9)
    shape, stages = conv_chain(g)
    nodes = {"input": nir.Input(input_type={"input": np.array(shape)})}
    # The same graph as a file: the conv chain's nodes rebuilt from its stages.
    conv, neuron = stages[0].params, stages[1].params["neuron"]
    nodes.update({"conv": nir.Conv2d(input_shape=(8, 8), weight=conv["weight"], stride=1,
                                     padding=1, dilation=1, groups=1, bias=conv["bias"]),
                  "lif1": lif((4, 8, 8), threshold=neuron.threshold),
                  "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                        padding=np.array([0, 0])),
                  "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0,
                                      end_dim=-1),
                  "fc": nir.Linear(weight=stages[4].params["weight"]), "lif2": lif(10),
                  "output": nir.Output(output_type={"output": np.array([10])})})
    order = list(nodes)
    nir.write(tmp_path / "conv.nir", nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:])),
                                                  type_check=False))
    x = (torch.rand(12, 4, 1, 8, 8, generator=g) < 0.5).to(torch.uint8).numpy()
    report = deploy_nir(Console(quiet=True), tmp_path / "conv.nir", data=x,
                        outdir=tmp_path / "out")
    assert report["results"]["rtl_equals_golden"]
    assert [layer["kind"] for layer in report["layers"]] == ["conv", "dense"]
    assert report["results"]["matches"] > 0
    assert any("pooling pool folded" in note for note in report["approximations"])


def test_a_wrong_golden_model_makes_deploy_fail(snntorch_digits, monkeypatch, tmp_path):
    """The RTL-vs-golden check can fail: with the golden model's thresholds off by one, deploy
    exits 1 naming the first differing output."""
    root, _ = snntorch_digits
    right = loas_deploy.golden_segment

    def wrong(cfg):
        run = right(cfg)

        async def off_by_one(operand, layers):
            for layer in layers:
                layer.threshold += 1
            try:
                return await run(operand, layers)
            finally:
                for layer in layers:
                    layer.threshold -= 1
        return off_by_one
    monkeypatch.setattr(loas_deploy, "golden_segment", wrong)
    x = np.load(root / "x.npy")[:40]
    np.save(tmp_path / "x.npy", x)
    result = deploy(root / "digits.nir", "--data", tmp_path / "x.npy", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "the RTL differs from the golden model" in result.output
    assert "spikes:" in result.output and "first at" in result.output


@pytest.mark.parametrize("args, message", [
    (["--core", "xbar"], "--core 'xbar' has no deployment flow; cores: loas"),
    (["--core", "nosuch"], "unknown generator 'nosuch'"),
    (["--data", "{root}/y.npy"], "--data must have shape [N, T, 64]"),
    (["--labels", "{root}/x.npy"], "--labels must be 450 non-negative integer classes"),
    (["--dt", "0"], "Invalid value for '--dt'"),
    (["-p", "T=2"], "-p T=2 differs from the data's T=4"),
    (["-p", "reset=soft"], "-p reset must be hard"),
    (["-p", "pes=0"], "pes"),
    (["--compare-unmasked"], "--compare-unmasked applies to checkpoints with time-step masks"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(snntorch_digits, tmp_path, args,
                                                            message):
    root, _ = snntorch_digits
    given = [a.format(root=root) for a in args]
    base = ["--data", root / "x.npy"] if "--data" not in given else []
    result = deploy(root / "digits.nir", *base, *given, "-o", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_unsupported_graph_exits_2_naming_the_node(tmp_path):
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "fc": nir.Linear(weight=np.ones((3, 4))), "delay": nir.Delay(delay=np.ones(3)),
             "output": nir.Output(output_type={"output": np.array([3])})}
    order = list(nodes)
    nir.write(tmp_path / "g.nir", nir.NIRGraph(nodes=nodes, edges=list(zip(order, order[1:])),
                                               type_check=False))
    np.save(tmp_path / "x.npy", np.zeros((2, 4, 4), dtype=np.uint8))
    result = deploy(tmp_path / "g.nir", "--data", tmp_path / "x.npy", "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "node 'delay' has type Delay, which cannot be mapped" in result.output
    assert not (tmp_path / "out").exists()


def test_predictions_are_the_neuron_with_most_spikes():
    out = np.zeros((3, 2, 4), dtype=np.uint8)
    out[:, 0, 2] = 1
    out[0, 0, 1] = 1
    out[:2, 1, [1, 3]] = 1                      # a tie: the lower index
    assert predictions(out).tolist() == [2, 1]
