"""The DT-SNN spiking ViT's golden side (``golden.dtsnn``): the time-step mask's oracles of
``shared/papers/dtsnn.md``, the attention modes, training with masks, and the integer export."""

import asyncio

import numpy as np
import pytest
import torch

from snnforge.golden.common.digits import load_digits_split
from snnforge.golden.dtsnn.integer import (IntViT, attention_pairs, export, int_forward,
                                           reference_linear, reference_matmul)
from snnforge.golden.dtsnn.model import (GATED_LAYERS, SpikingViT, ViTShape, _Gate, lif,
                                         tokens, train_dtsnn)
from snnforge.hw.loas.config import LoASConfig
from snnforge.hw.loas.deploy import golden_segment
from snnforge.hw.loas.dtsnn import loas_ops
from snnforge.registry import generators


def test_shape_is_validated_naming_the_parameter():
    with pytest.raises(ValueError, match="chunk=3 must divide tmax=4"):
        ViTShape(attention="statten", chunk=3)
    with pytest.raises(ValueError, match="attention must be one of ssa, statten"):
        ViTShape(attention="softmax")
    with pytest.raises(ValueError, match="heads=5 must divide dim=32"):
        ViTShape(heads=5)
    with pytest.raises(ValueError, match="tmax must be a positive integer"):
        ViTShape(tmax=0)


def test_open_gates_change_nothing_and_a_closed_gate_only_silences_its_step():
    g = torch.Generator().manual_seed(0)
    currents = torch.randn(6, 50, generator=g) * 2
    ungated = lif(currents)
    assert torch.equal(lif(currents, gate=torch.ones(6)), ungated)
    gate = torch.tensor([1.0, 0, 1, 1, 0, 1])
    gated = lif(currents, gate=gate)
    # Policy integrate: the neuron runs on, only the masked steps' spikes are suppressed.
    assert torch.equal(gated, ungated * gate.view(6, 1))
    assert ungated[1].sum() > 0 and gated[1].sum() == 0


def test_gate_gradient_is_the_straight_through_closed_form():
    """dL/da[t] = sigmoid'(a[t]) * sum_neurons dL/dS_out[t] * S[t] (dtsnn.md), zero where the
    layer emits no spikes."""
    g = torch.Generator().manual_seed(1)
    currents = torch.randn(4, 30, generator=g) * 2
    a = torch.tensor([2.0, -1.0, 0.5, 3.0], requires_grad=True)
    upstream = torch.randn(4, 30, generator=g)
    (lif(currents, gate=_Gate.apply(a)) * upstream).sum().backward()
    spikes = lif(currents)
    s = torch.sigmoid(a.detach())
    want = s * (1 - s) * (upstream * spikes).sum(1)
    assert torch.allclose(a.grad, want)
    silent = lif(torch.full((4, 30), -5.0), gate=_Gate.apply(a.detach().requires_grad_()))
    assert silent.sum() == 0


@pytest.mark.parametrize("attention", ["ssa", "statten"])
def test_integer_attention_products_equal_the_float_attention(attention):
    """The attention's two integer matmuls (as spikes x small integers) give exactly the float
    model's attention currents (before its scale)."""
    shape = ViTShape(attention=attention)
    model = SpikingViT(shape)
    g = torch.Generator().manual_seed(2)
    q, k, v = ((torch.rand(4, 3, 16, 32, generator=g) < 0.3).float() for _ in range(3))
    from snnforge.golden.dtsnn.model import ATTENTION_SCALE
    want = model.attention(q, k, v) / ATTENTION_SCALE[attention]
    pairs, finish = attention_pairs(shape, *(t.numpy().astype(np.uint8) for t in (q, k, v)))
    second, assemble = finish(asyncio.run(reference_matmul(pairs)))
    got = assemble(asyncio.run(reference_matmul(second)))
    assert np.array_equal(got, want.round().numpy().astype(np.int64))
    assert got.max() > 0


def test_fixed_t_baseline_opens_the_first_steps():
    model, report = train_dtsnn(ViTShape(tmax=4), epochs=1, fixed_t=2)
    assert report["masks"] == [0b0011] * len(GATED_LAYERS(ViTShape()))
    assert report["t_eff"] == 2.0


@pytest.fixture(scope="module")
def trained():
    """A short STAtten training with the regulariser on (the full one: bench/dtsnn_bench.py)."""
    return train_dtsnn(ViTShape(attention="statten"), epochs=8, lam=2e-4, sparsity=0.5)


def test_training_learns_and_masks_steps(trained):
    model, report = trained
    assert report["test_accuracy"] > 0.5
    assert report["t_eff"] < 4                       # the regulariser closed some steps
    assert min(report["sparsity"]) > 0.45


def test_integer_export_tracks_the_float_model(trained):
    """The exported network (int8, integer LIF, masks) agrees with the float model's predictions
    on most of the test split (the documented tolerance: weight and leak rounding), and the
    core's golden model equals the plain integer reference."""
    model, report = trained
    net = export(model)
    assert net.sparsity() > 0.45 and all(np.abs(l.weights).max() <= 127
                                         for l in net.layers.values())
    _, _, x_test, y_test = load_digits_split()
    x = tokens(x_test, 4)
    with torch.no_grad():
        float_pred = model(x).sum(0).argmax(1).numpy()
    out = asyncio.run(int_forward(net, x.numpy(), reference_linear, reference_matmul))
    int_pred = out.sum(0).argmax(1)
    assert (int_pred == float_pred).mean() > 0.75       # ~0.93 after the full 30 epochs
    assert abs((int_pred == y_test.numpy()).mean() - report["test_accuracy"]) < 0.05
    cfg = LoASConfig(**{**generators()["loas"].demo_params, "T": 4})
    linear, matmul, counters = loas_ops(golden_segment(cfg), cfg)
    core = asyncio.run(int_forward(net, x[:, :16].numpy(), linear, matmul))
    assert np.array_equal(core, out[:, :16]) and counters["matches"] > 0


def test_masks_silence_steps_in_the_integer_model(trained, tmp_path):
    model, _ = trained
    net = export(model)
    net.save(tmp_path / "net.npz")
    back = IntViT.load(tmp_path / "net.npz")
    assert back.layers.keys() == net.layers.keys() and back.attn_masks == net.attn_masks
    x = tokens(load_digits_split()[2][:20], 4).numpy()
    closed = IntViT.load(tmp_path / "net.npz")
    closed.layers["head"].tmask = 0b0101
    out = asyncio.run(int_forward(closed, x, reference_linear, reference_matmul))
    assert out[[1, 3]].sum() == 0 and out[[0, 2]].sum() > 0
    open_net = net.with_masks_open()
    assert all(l.tmask == 15 for l in open_net.layers.values())


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["ssa", "statten"])
def test_full_training_reaches_its_accuracy_with_fewer_steps(attention):
    """The full training (30 epochs, bench/dtsnn_bench.py's setting): accurate, masks closing
    steps, and the integer export within its documented tolerance."""
    model, report = train_dtsnn(ViTShape(attention=attention), epochs=30, lam=2e-4)
    assert report["test_accuracy"] > 0.75 and report["t_eff"] < 3.5
    _, _, x_test, y_test = load_digits_split()
    x = tokens(x_test, 4)
    with torch.no_grad():
        float_pred = model(x).sum(0).argmax(1).numpy()
    out = asyncio.run(int_forward(export(model), x.numpy(), reference_linear, reference_matmul))
    assert (out.sum(0).argmax(1) == float_pred).mean() > 0.85
