"""The fixed-point TT layer: exact integer oracles at shifts 0, agreement with the float BPTT,
the neuron and its carry rule, rounding/saturation, parameter and input errors; the dense
baseline's backward against torch's conv gradients."""

import pytest
import torch
import torch.nn.functional as F

from snnforge.golden.ttsnn import NeuronParams, TTCores, composed_kernel, layer_backward
from snnforge.golden.ttsnn.fixed import (TTFixedParams, fit, fixed_backward,
                                         fixed_dense_backward, fixed_dense_forward,
                                         fixed_forward, round_shift, sgd_step, sgd_update)
from snnforge.golden.ttsnn.model import LayerState


def int_cores(cin, cout, r, seed=0, lo=-128, hi=127):
    g = torch.Generator().manual_seed(seed)
    return TTCores(*(torch.randint(lo, hi + 1, shape, generator=g)
                     for shape in ((r, cin), (r, r, 3), (r, r, 3), (cout, r))))


def spikes(T, cin, h, w, p=0.4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, cin, h, w, generator=g) < p).to(torch.int64)


WIDE = dict(act_width=32, y_width=32, mem_width=32, grad_width=32, wgrad_width=48)


@pytest.mark.parametrize("mode", ["stt", "ptt", "htt"])
@pytest.mark.parametrize("cin, cout, r, h, w", [(3, 4, 1, 5, 5), (2, 5, 4, 4, 7)])
def test_forward_at_shifts_zero_is_one_integer_conv(mode, cin, cout, r, h, w):
    T = 4
    p = TTFixedParams(T=T, mode=mode, htt_full=2, **WIDE)
    cores = int_cores(cin, cout, r)
    s = spikes(T, cin, h, w)
    fwd = fixed_forward(s, cores, p)
    c = cores.map(lambda x: x.double())
    for t in range(T):
        late = mode == "htt" and t >= 2
        kernel = composed_kernel(c, "htt" if late else ("stt" if mode == "stt" else "ptt"),
                                 late=late)
        if mode != "stt" and not late:
            kernel = kernel * 2                  # PTT sums the branches (1/2 folded into G4)
        want = F.conv2d(s[t][None].double(), kernel, padding=0 if late else 1)[0]
        assert torch.equal(fwd.y[t], want.round().to(torch.int64)), t


def test_neuron_is_the_shared_lif_with_a_traced_membrane():
    p = TTFixedParams(T=3, mode="stt", beta=64, theta=5, **WIDE)
    cores = TTCores(torch.tensor([[1]]), torch.tensor([[[0, 1, 0]]]),
                    torch.tensor([[[0, 1, 0]]]), torch.tensor([[4]]))
    s = torch.tensor([1, 1, 0]).view(3, 1, 1, 1)
    fwd = fixed_forward(s, cores, p)
    # y = 4, 4, 0: H0 = 4; H1 = (4 * 64 >> 8) + 4 = 5 (not > 5); H2 = (5 * 64 >> 8) = 1.
    assert fwd.y.flatten().tolist() == [4, 4, 0]
    assert fwd.membrane.flatten().tolist() == [4, 5, 1]
    assert fwd.spikes.flatten().tolist() == [0, 0, 0]
    fwd = fixed_forward(s, cores, p.replace(theta=4))
    # H1 = 5 > 4 fires; the hard reset: H2 = 0 + 0.
    assert fwd.membrane.flatten().tolist() == [4, 5, 0]
    assert fwd.spikes.flatten().tolist() == [0, 1, 0]


def test_carry_rule_of_the_membrane_gradient():
    p = TTFixedParams(T=2, mode="stt", beta=64, theta=4, surrogate=10, **WIDE)
    cores = TTCores(torch.tensor([[1]]), torch.tensor([[[0, 1, 0]]]),
                    torch.tensor([[[0, 1, 0]]]), torch.tensor([[2]]))
    fwd = fixed_forward(torch.tensor([1, 1]).view(2, 1, 1, 1), cores, p)
    assert fwd.membrane.flatten().tolist() == [2, 2]       # 2, (2 * 64 >> 8) + 2
    _, _, du = fixed_backward(torch.tensor([3, -7]).view(2, 1, 1, 1), fwd, cores, p)
    # du1 = -7; du0 = 3 + ((-7 * 64) >> 8) = 3 - 2 (floor) = 1
    assert du.flatten().tolist() == [1, -7]


@pytest.mark.parametrize("mode", ["stt", "ptt", "htt"])
def test_backward_at_shifts_zero_equals_the_float_bptt(mode):
    # beta = 0: the membrane carries nothing over, so the integer and float neurons agree; the
    # TT part of the backward is then exact in both.
    T, cin, cout, r, h, w = 4, 3, 4, 2, 5, 6
    p = TTFixedParams(T=T, mode=mode, htt_full=2, beta=0, theta=40, surrogate=400, **WIDE)
    cores = int_cores(cin, cout, r, seed=3, lo=-9, hi=9)
    s = spikes(T, cin, h, w, seed=4)
    fwd = fixed_forward(s, cores, p)
    assert 0 < fwd.spikes.sum() < fwd.spikes.numel()
    g = torch.randint(-50, 51, (T, cout, h, w), generator=torch.Generator().manual_seed(5))
    grad_in, grads, _ = fixed_backward(g, fwd, cores, p)

    scale = 1.0 if mode == "stt" else 0.5          # float PTT averages, the integer sums
    late = [mode == "htt" and t >= 2 for t in range(T)]
    mid = [(fwd.a1[t] if late[t] else fwd.a3[t] * scale).double() for t in range(T)]
    state = LayerState(s.double(), list(fwd.a1.double()), list(fwd.a2.double()), mid,
                       fwd.membrane.double(), fwd.spikes.double())
    f_in, f_grads, _ = layer_backward(g.double(), state, cores.map(lambda x: x.double()), mode,
                                      htt_full=2, neuron=NeuronParams(lam=0.0, theta=40, a=400))
    if mode == "stt":
        assert torch.equal(grad_in.double(), f_in)
        for k in ("g1", "g2", "g3", "g4"):
            assert torch.equal(getattr(grads, k).double(), getattr(f_grads, k)), k
    else:
        # Early steps: every float gradient is half the integer one; late HTT steps equal.
        early = torch.tensor([not x for x in late]).view(-1, 1, 1, 1).double()
        f_scaled = f_in * (early * 2 + (1 - early))
        assert torch.equal(grad_in.double(), f_scaled)
        if mode == "ptt":
            for k in ("g1", "g2", "g3", "g4"):
                assert torch.equal(getattr(grads, k).double(), 2 * getattr(f_grads, k)), k


def test_rounding_saturation_and_update():
    x = torch.tensor([-6, -5, -3, -1, 0, 1, 3, 5, 6])
    assert round_shift(x, 1).tolist() == [-3, -2, -1, 0, 0, 1, 2, 3, 3]     # half up
    assert round_shift(x, 0).tolist() == x.tolist()
    assert fit(torch.tensor([1000, -1000]), 2, 8).tolist() == [127, -128]
    p = TTFixedParams()
    cores = int_cores(2, 2, 1, lo=-3, hi=3)
    grads = cores.map(lambda c: c * 0 + 1000)
    new = sgd_update(cores, grads, 2, p)
    assert torch.equal(new.g1, (cores.g1 - 250).clamp(-128, 127))
    with pytest.raises(ValueError, match="lr_shift"):
        sgd_update(cores, grads, -1, p)


def test_saturation_of_the_activations_and_currents():
    p = TTFixedParams(T=1, mode="stt", act_width=8, y_width=10, mem_width=12)
    cores = TTCores(torch.full((1, 4), 127), torch.full((1, 1, 3), 127),
                    torch.full((1, 1, 3), 127), torch.full((1, 1), 127))
    fwd = fixed_forward(torch.ones(1, 4, 3, 3, dtype=torch.int64), cores, p)
    assert fwd.a1.max() == 127 and fwd.a3.max() == 127 and fwd.y.max() == 511


def test_bad_inputs_are_named():
    p = TTFixedParams(T=2)
    cores = int_cores(3, 4, 2)
    with pytest.raises(ValueError, match=r"spikes must have shape \[T=2"):
        fixed_forward(torch.zeros(3, 3, 4, 4, dtype=torch.int64), cores, p)
    with pytest.raises(ValueError, match="spikes must be 0 or 1"):
        fixed_forward(torch.full((2, 3, 4, 4), 2), cores, p)
    with pytest.raises(ValueError, match="G1 takes Cin=3"):
        fixed_forward(torch.zeros(2, 5, 4, 4, dtype=torch.int64), cores, p)
    with pytest.raises(ValueError, match=r"g2 must be integers in -128..127"):
        fixed_forward(torch.zeros(2, 3, 4, 4, dtype=torch.int64),
                      TTCores(cores.g1, cores.g2 * 10, cores.g3, cores.g4), p)
    with pytest.raises(ValueError, match="htt_full"):
        TTFixedParams(T=2, mode="htt", htt_full=3)
    fwd = fixed_forward(torch.zeros(2, 3, 4, 4, dtype=torch.int64), cores, p)
    with pytest.raises(ValueError, match="grad must have shape"):
        fixed_backward(torch.zeros(2, 4, 4, 5, dtype=torch.int64), fwd, cores, p)


def test_dense_backward_is_torchs_conv_gradient():
    """At shift 0 and wide widths the dense baseline's input gradient is the transposed 3x3
    conv of ``du`` and its weight gradient the correlation with the input spikes, summed over
    steps: ``torch.nn.grad``'s conv2d_input / conv2d_weight exactly; a shifted grad_in is their
    fit; the update is sgd_step's rule."""
    T, cin, cout, h, w = 3, 3, 4, 5, 6
    p = TTFixedParams(T=T, theta=4, surrogate=40, shift_y=3, **WIDE)
    g = torch.Generator().manual_seed(3)
    kernel = torch.randint(-128, 128, (cout, cin, 3, 3), generator=g)
    s = spikes(T, cin, h, w)
    fwd = fixed_dense_forward(s, kernel, p)
    gs = torch.randint(-300, 301, (T, cout, h, w), generator=g)
    grad_in, dw, du = fixed_dense_backward(gs, fwd, kernel, p)
    assert 0 < (du == 0).sum() < du.numel()
    want_in = torch.nn.grad.conv2d_input(s.shape, kernel.double(), du.double(), padding=1)
    want_w = torch.nn.grad.conv2d_weight(s.double(), kernel.shape, du.double(), padding=1)
    assert torch.equal(grad_in, want_in.long()) and torch.equal(dw, want_w.long())
    shifted, _, _ = fixed_dense_backward(gs, fwd, kernel, p.replace(shift_b1=3))
    assert torch.equal(shifted, fit(want_in.long(), 3, p.grad_width))
    assert torch.equal(sgd_step(kernel, dw, 4, p),
                       (kernel - round_shift(dw, 4)).clamp(-128, 127))
    with pytest.raises(ValueError, match=r"w must have shape \[Cout, Cin=3"):
        fixed_dense_backward(gs, fwd, kernel[:, :2], p)
    with pytest.raises(ValueError, match="lr_shift"):
        sgd_step(kernel, dw, 48, p)
