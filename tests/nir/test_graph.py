"""Reading NIR graphs (``golden.nir``): the chain and its shapes, the float reference of NIR's
semantics against snnTorch's own neurons, and a clear error naming the node for every graph the
mapping cannot take."""

import nir
import numpy as np
import pytest
import torch

from snnforge.golden.nir import chain_from_graph, float_forward, read_chain
from snnforge.golden.nir.digits import build_net, export_nir, run_snntorch
from snnforge.params import SnnforgeError


def lif(n, tau=2e-4, r=2.0, threshold=1.0, **extra):
    full = lambda v: np.full(n, v, dtype=np.float32)
    return nir.LIF(tau=full(tau), r=full(r), v_leak=full(0.0), v_threshold=full(threshold),
                   **{k: full(v) for k, v in extra.items()})


def graph(*nodes, input_shape=(6,), edges=None):
    named = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
    named.update({str(i): node for i, node in enumerate(nodes)})
    named["output"] = nir.Output(output_type={"output": np.array([1])})
    order = list(named)
    return nir.NIRGraph(nodes=named, edges=edges or list(zip(order, order[1:])),
                        type_check=False)


def test_snntorch_export_reads_back_and_the_float_reference_is_snntorchs_network(tmp_path):
    """snnTorch's own exporter (per-neuron beta, reset to zero) -> nir.write -> read_chain: the
    chain's float reference reproduces snnTorch's forward pass spike for spike."""
    torch.manual_seed(1)
    net = build_net(hidden=24)
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3)          # enough drive that both layers fire
    export_nir(net, tmp_path / "net.nir")
    shape, stages = read_chain(tmp_path / "net.nir")
    assert shape == (64,)
    assert [(s.op, s.in_shape, s.out_shape) for s in stages] == [
        ("Linear", (64,), (24,)), ("LIF", (24,), (24,)), ("Linear", (24,), (10,)),
        ("LIF", (10,), (10,))]
    spikes = (torch.rand(6, 40, 64) < 0.3).to(torch.float32)
    want = run_snntorch(net, spikes).detach()
    got, _ = float_forward(stages, spikes)
    assert want.sum() > 20
    assert torch.equal(got.float(), want)


def test_scalar_neuron_parameters_take_the_size_of_the_layer_before():
    """Graphs whose LIF parameters are scalars (no type: snnTorch's scalar beta) still read."""
    g = graph(nir.Linear(weight=np.ones((5, 6))),
              nir.LIF(tau=np.array(2e-4), r=np.array(2.0), v_leak=np.array(0.0),
                      v_threshold=np.array(1.0)))
    _, stages = chain_from_graph(g, 1e-4)
    neuron = stages[1].params["neuron"]
    assert stages[1].out_shape == (5,) and neuron.beta.shape == (5,)
    assert np.allclose(neuron.beta, 0.5) and np.allclose(neuron.gain, 1.0)


def test_euler_dynamics_of_each_neuron_kind():
    """One neuron of each kind, a current of 1 each step, hand-computed traces."""
    x = torch.ones(4, 1, 1)
    w = nir.Linear(weight=np.ones((1, 1)))
    one = np.ones(1)
    cases = {
        # v += dt/tau (r I - v): 0.5, 0.75, 0.875 > 0.8 -> spike at step 2
        "LIF": (lif(1, tau=2e-4, r=1.0, threshold=0.8), [0, 0, 1, 0]),
        # v += dt r I = 0.5 per step: 0.5, 1.0, 1.5 > 1.2 -> spike, reset, 0.5
        "IF": (nir.IF(r=5000 * one, v_threshold=1.2 * one), [0, 0, 1, 0]),
        # synapse i: 0.5, 0.75, 0.875, ...; v += i (dt = tau_mem / 2, r = 2): 0.5, 1.0, 1.375
        "CubaLIF": (nir.CubaLIF(tau_syn=2e-4 * one, tau_mem=2e-4 * one, r=2 * one,
                                v_leak=0 * one, v_threshold=1.2 * one), [0, 0, 1, 0]),
    }
    for kind, (node, want) in cases.items():
        _, stages = chain_from_graph(graph(w, node, input_shape=(1,)), 1e-4)
        got, _ = float_forward(stages, x)
        assert got.reshape(-1).tolist() == want, kind


def test_conv_flatten_and_pooling_shapes():
    g = graph(nir.Conv2d(input_shape=None, weight=np.ones((3, 2, 3, 3)), stride=1,
                         padding="same", dilation=1, groups=1, bias=np.zeros(3)),
              lif((3, 6, 6)),
              nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                            padding=np.array([0, 0])),
              nir.Flatten(input_type=None, start_dim=0, end_dim=-1),
              nir.Linear(weight=np.ones((4, 27))), lif(4), input_shape=(2, 6, 6))
    shape, stages = chain_from_graph(g, 1e-4)
    assert shape == (2, 6, 6)
    assert [s.out_shape for s in stages] == [(3, 6, 6), (3, 6, 6), (3, 3, 3), (27,), (4,), (4,)]
    assert stages[0].params["padding"] == (1, 1)


@pytest.mark.parametrize("build, message", [
    (lambda: graph(nir.Linear(weight=np.ones((4, 6))), nir.Scale(scale=np.ones(4))),
     "node '1' has type Scale, which cannot be mapped; supported: Input"),
    (lambda: graph(nir.Linear(weight=np.ones((4, 5))), lif(4)),
     "node '0' (Linear): takes 5 inputs but is fed shape [6]"),
    (lambda: graph(nir.Linear(weight=np.ones((6, 6))), lif(6),
                   edges=[("input", "0"), ("0", "1"), ("0", "output"), ("1", "output")]),
     "node '0' feeds 2 nodes (1, output): only a chain"),
    (lambda: graph(nir.Linear(weight=np.ones((4, 6))), nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([4])}),
               "output": nir.Output(output_type={"output": np.array([4])})},
        edges=[("input", "output")], type_check=False)),
     "node '1' is a subgraph"),
    (lambda: graph(nir.Conv2d(input_shape=None, weight=np.ones((3, 1, 3, 3)), stride=1,
                              padding=0, dilation=2, groups=1, bias=np.zeros(3)),
                   input_shape=(1, 8, 8)),
     "dilation"),
    (lambda: graph(nir.Linear(weight=np.ones((4, 6))), lif(5)),
     "node '1' (LIF): v_threshold has shape [5], which does not fit the [4] neurons"),
])
def test_graphs_that_cannot_be_mapped_name_the_node(build, message):
    with pytest.raises(SnnforgeError) as error:
        chain_from_graph(build(), 1e-4)
    assert message in str(error.value)


def test_a_recurrent_edge_is_refused():
    g = graph(nir.Linear(weight=np.ones((6, 6))), lif(6), nir.Linear(weight=np.ones((6, 6))),
              edges=[("input", "0"), ("0", "1"), ("1", "2"), ("2", "1"), ("1", "output")])
    with pytest.raises(SnnforgeError, match="node '1' has 2 inputs"):
        chain_from_graph(g, 1e-4)


def test_unreadable_files_and_bad_dt(tmp_path):
    with pytest.raises(SnnforgeError, match="no such NIR file"):
        read_chain(tmp_path / "missing.nir")
    (tmp_path / "bad.nir").write_text("not hdf5")
    with pytest.raises(SnnforgeError, match="not a readable NIR graph"):
        read_chain(tmp_path / "bad.nir")
    with pytest.raises(SnnforgeError, match="dt must be a positive"):
        chain_from_graph(graph(nir.Linear(weight=np.ones((6, 6))), lif(6)), -1.0)
