"""TT-SNN golden models: TT-SVD against tensorly, the exact-equivalence oracles of the three
pipelines, BPTT written out against torch.autograd, the ResNet-34 rank table."""

import pytest
import tensorly
import torch
import torch.nn.functional as F
from tensorly.decomposition import tensor_train

from snnforge.golden.ttsnn import (PAPER_CLAIMS, RESNET34_NCALTECH, NeuronParams, TTCores,
                                   composed_kernel, decompose, init_cores, layer_autograd,
                                   layer_backward, layer_forward, param_flop_report, reconstruct,
                                   tt_step)


def random_cores(cin, cout, r, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return TTCores(*(torch.randn(shape, generator=g, dtype=dtype)
                     for shape in ((r, cin), (r, r, 3), (r, r, 3), (cout, r))))


def spikes(shape, p=0.3, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).to(dtype)


@pytest.mark.parametrize("cin, cout, r", [(5, 7, 3), (4, 6, 2), (3, 8, 5)])
def test_tt_svd_matches_tensorly(cin, cout, r):
    w = torch.randn(cout, cin, 3, 3, generator=torch.Generator().manual_seed(3),
                    dtype=torch.float64)
    cores = decompose(w, r)
    assert (cores.g1.shape, cores.g2.shape, cores.g3.shape, cores.g4.shape) == (
        (r, cin), (r, r, 3), (r, r, 3), (cout, r))
    x = w.permute(1, 2, 3, 0).numpy()
    full = [1, *(min(r, d) for d in (cin, 3 * min(r, cin), cout)), 1]
    tl = tensorly.tt_to_tensor(tensor_train(x, rank=full))
    torch.testing.assert_close(reconstruct(cores).permute(1, 2, 3, 0),
                               torch.from_numpy(tl), rtol=1e-9, atol=1e-9)


def test_full_rank_reconstructs_and_rank_beyond_the_unfolding_is_zero_padded():
    w = torch.randn(6, 4, 3, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    cores = decompose(w, 40)            # more than any unfolding's rank
    torch.testing.assert_close(reconstruct(cores), w)
    assert cores.rank == 40 and cores.g1[4:].abs().max() == 0


def test_init_is_explicit():
    w = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    svd = init_cores(4, 6, 3, init="tt-svd", w=w)
    torch.testing.assert_close(reconstruct(svd), reconstruct(decompose(w, 3)))
    rnd = init_cores(4, 6, 3, init="random", generator=torch.Generator().manual_seed(0))
    assert rnd.g1.shape == (3, 4) and rnd.g1.abs().max() <= 0.5
    with pytest.raises(ValueError, match="init must be"):
        init_cores(4, 6, 3, init="kaiming")
    with pytest.raises(ValueError, match="needs the pretrained weight"):
        init_cores(4, 6, 3, init="tt-svd")
    with pytest.raises(ValueError, match="rank must be"):
        decompose(w, 0)
    with pytest.raises(ValueError, match=r"g2 must have shape \[3, 3, 3\]"):
        TTCores(torch.zeros(3, 4), torch.zeros(2, 3, 3), torch.zeros(3, 3, 3), torch.zeros(6, 3))


@pytest.mark.parametrize("mode", ["stt", "ptt"])
@pytest.mark.parametrize("hw", [(6, 6), (5, 7)])
def test_pipelines_equal_one_conv_with_the_composed_kernel(mode, hw):
    cores = random_cores(5, 7, 3)
    s = spikes((2, 5, *hw))
    y = tt_step(s, cores, mode)[0]
    kernel = composed_kernel(cores, mode)
    torch.testing.assert_close(y, F.conv2d(s, kernel, padding=1))
    if mode == "ptt":
        assert kernel[:, :, ::2, ::2].abs().max() == 0          # the corners exactly 0


def test_htt_late_steps_are_a_1x1_conv():
    cores = random_cores(5, 7, 3)
    s = spikes((2, 5, 6, 6))
    y = tt_step(s, cores, "htt", late=True)[0]
    torch.testing.assert_close(y, F.conv2d(s, composed_kernel(cores, "htt", late=True)))


def test_integer_cores_are_exact():
    # With integer cores, STT equals the integer 3x3 conv bit for bit (the RTL's oracle).
    cores = random_cores(4, 5, 2).map(lambda c: (c * 20).round().to(torch.int64))
    s = spikes((4, 5, 5), dtype=torch.int64)
    y = tt_step(s, cores, "stt")[0]
    kernel = composed_kernel(cores, "stt")
    want = F.conv2d(s[None].double(), kernel.double(), padding=1)[0]
    assert torch.equal(y, want.round().to(torch.int64))


@pytest.mark.parametrize("mode, T, htt_full", [("stt", 4, None), ("ptt", 3, None),
                                               ("htt", 4, 2), ("htt", 6, 3), ("stt", 1, None)])
def test_bptt_matches_autograd(mode, T, htt_full):
    neuron = NeuronParams(lam=0.25, theta=0.5, a=0.5)
    cores = random_cores(3, 4, 2, seed=7).map(lambda c: c * 0.6)
    s_in = spikes((T, 2, 3, 5, 4), p=0.5)
    grad_s = torch.randn(T, 2, 4, 5, 4, generator=torch.Generator().manual_seed(9),
                         dtype=torch.float64)

    leaves = cores.map(lambda c: c.clone().requires_grad_(True))
    x = s_in.clone().requires_grad_(True)
    y, u, s = layer_autograd(x, leaves, mode, htt_full=htt_full, neuron=neuron)
    (s * grad_s).sum().backward()

    y2, u2, s2, state = layer_forward(s_in, cores, mode, htt_full=htt_full, neuron=neuron)
    assert torch.equal(s2, s.detach()) and torch.allclose(u2, u.detach())
    grad_in, grads, _ = layer_backward(grad_s, state, cores, mode, htt_full=htt_full,
                                       neuron=neuron)
    torch.testing.assert_close(grad_in, x.grad)
    for name in ("g1", "g2", "g3", "g4"):
        torch.testing.assert_close(getattr(grads, name), getattr(leaves, name).grad)
    if mode == "htt":               # with every step full, HTT is PTT
        assert torch.equal(layer_forward(s_in, cores, "htt", htt_full=T, neuron=neuron)[0],
                           layer_forward(s_in, cores, "ptt", neuron=neuron)[0])


def test_bad_modes_and_htt_split_are_refused():
    cores = random_cores(3, 4, 2)
    s = spikes((4, 3, 4, 4))
    with pytest.raises(ValueError, match="mode must be one of stt, ptt, htt"):
        layer_forward(s, cores, "tt")
    with pytest.raises(ValueError, match="htt_full must be an integer in 1..T=4"):
        layer_forward(s, cores, "htt", htt_full=5)


def test_resnet34_rank_table_reductions():
    report = param_flop_report(*RESNET34_NCALTECH)
    total = report["total"]
    assert total["dense_params"] == 21_139_072 and total["tt_params"] == 2_499_684
    assert round(report["param_reduction"], 2) == 8.46
    assert round(report["mac_reduction"], 2) == 9.68
    assert round(total["dense_macs"] / 1e9, 3) == 2.593
    assert PAPER_CLAIMS == {"params": 7.98, "flops": 9.25}
    with pytest.raises(ValueError, match="one entry per shape"):
        param_flop_report(RESNET34_NCALTECH[0], (None,))
