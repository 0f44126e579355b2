"""A small, real workload: a two-layer SNN on scikit-learn's digits (8x8 images, shipped inside
the scikit-learn wheel), trained with surrogate gradients, pruned to >= 90 % weight sparsity and
quantized to int8, then evaluated bit-exactly with the integer golden models.

Network (T = 4 by default): thermometer encoding of the 64 pixels -> FC 64 x ``hidden`` + LIF
-> FC ``hidden`` x 10 + LIF whose threshold is out of reach (a leaky integrator); the class is the
output neuron with the highest final membrane. Both layers are plain LoAS layers (``golden.loas.layer``), so the RTL can run them.

Training uses :func:`golden.common.lif.lif_float` dynamics (``beta = 1 - 2**-k`` to match the integer
shift leak ``V - (V >> k)``) with a fast-sigmoid surrogate, fake int8 quantization of the weights
(straight-through) and magnitude pruning with a fixed mask during fine-tuning.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..common.digits import encode, load_digits_split
from ..common.lif import LIFParams
from ..common.prune import prune_step
from .core import layer

__all__ = ["DigitsSNN", "load_digits_split", "encode", "train_digits_snn", "predict"]


@dataclass
class DigitsSNN:
    """The trained network: int8 weights, integer LIF parameters of both layers (the output
    layer's threshold is the largest membrane value: a readout that only integrates)."""
    w1: torch.Tensor          # int64 [64, hidden]
    w2: torch.Tensor          # int64 [hidden, 10]
    lif1: LIFParams
    lif2: LIFParams

    @property
    def sparsity(self) -> tuple[float, float]:
        return (float((self.w1 == 0).float().mean()), float((self.w2 == 0).float().mean()))

    def hidden(self, spikes):
        """Golden hidden layer: spikes [T, N, 64] -> hidden spikes [T, N, hidden]."""
        return layer(spikes, self.w1, self.lif1)[0]

    def output(self, hidden_spikes):
        """Golden output layer: (spikes [T, N, 10], membranes [N, 10])."""
        return layer(hidden_spikes, self.w2, self.lif2)


def predict(out_spikes: torch.Tensor, membrane: torch.Tensor) -> torch.Tensor:
    """The class whose output neuron integrated the most (its final membrane; the output layer's
    threshold is out of reach, so it never fires); ties: the lower class."""
    return membrane.argmax(1)


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + 10 * x.abs()) ** 2      # fast-sigmoid surrogate


def _fake_int8(w, scale, mask):
    q = torch.clamp(torch.round(w / scale), -128, 127) * mask
    return w + (q * scale - w).detach()            # straight-through


def _forward(x, w1, w2, s1, s2, m1, m2, beta, beta2, th1):
    """Float network with the integer model's structure (currents in integer units); returns the
    output layer's membrane after the last step (it integrates and never fires)."""
    T = x.shape[0]
    q1, q2 = _fake_int8(w1, s1, m1) / s1, _fake_int8(w2, s2, m2) / s2
    v1 = torch.zeros(x.shape[1], w1.shape[1])
    v2 = torch.zeros(x.shape[1], w2.shape[1])
    for t in range(T):
        h1 = beta * v1 + x[t] @ q1
        s_h = _Spike.apply(h1 - th1)
        v1 = h1 * (1 - s_h)
        v2 = beta2 * v2 + s_h @ q2
    return v2


def train_digits_snn(*, T: int = 4, hidden: int = 256, sparsity: float = 0.9, epochs: int = 40,
                     seed: int = 0, leak_shift: int = 1, readout_leak_shift: int = 4,
                     threshold1: int = 32, lr: float = 0.005) -> tuple[DigitsSNN, dict]:
    """Train, prune (magnitude, per layer, to ``sparsity``) and quantize; deterministic for a
    seed. Returns the network and a report (golden float-free integer accuracy on train/test)."""
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    s_train = encode(x_train, T).float()
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(64, hidden, generator=g) * 0.3
    w2 = torch.randn(hidden, 10, generator=g) * 0.3
    w1.requires_grad_(True)
    w2.requires_grad_(True)
    m1, m2 = torch.ones_like(w1), torch.ones_like(w2)
    beta = 1.0 - 2.0 ** -leak_shift
    beta2 = 1.0 - 2.0 ** -readout_leak_shift
    opt = torch.optim.Adam([w1, w2], lr=lr)

    def scales():
        # int8 steps chosen so that the larger weights map near +-127.
        return (w1.detach().abs().max() / 127).clamp_min(1e-6), \
               (w2.detach().abs().max() / 127).clamp_min(1e-6)

    n = s_train.shape[1]
    for epoch in range(epochs):
        # The last epochs fine-tune with the final mask.
        prune_step((w1, w2), (m1, m2), epoch, epochs, sparsity)
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, 64):
            idx = perm[i:i + 64]
            s1, s2 = scales()
            # Currents in integer units: weight (int8) * spike; thresholds likewise.
            membrane = _forward(s_train[:, idx], w1, w2, s1, s2, m1, m2, beta, beta2, threshold1)
            loss = torch.nn.functional.cross_entropy(membrane / 64.0, y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                w1.mul_(m1)
                w2.mul_(m2)
    s1, s2 = scales()
    q1 = (torch.clamp(torch.round(w1.detach() / s1), -128, 127) * m1).to(torch.int64)
    q2 = (torch.clamp(torch.round(w2.detach() / s2), -128, 127) * m2).to(torch.int64)
    lif1 = LIFParams(T=T, in_width=16, mem_width=16, leak="shift", leak_shift=leak_shift,
                     threshold=threshold1, reset="hard")
    # Both layers use the shift leak (one LoAS build serves both; k is a register).
    lif2 = LIFParams(T=T, in_width=16, mem_width=16, leak="shift", leak_shift=readout_leak_shift,
                     threshold=(1 << 15) - 1, reset="hard")
    net = DigitsSNN(q1, q2, lif1, lif2)
    report = {"train_accuracy": _accuracy(net, x_train, y_train, T),
              "test_accuracy": _accuracy(net, x_test, y_test, T),
              "sparsity": net.sparsity, "hidden": hidden, "T": T}
    return net, report


def _accuracy(net: DigitsSNN, images, labels, T) -> float:
    spikes = encode(images, T)
    out, membrane = net.output(net.hidden(spikes))
    return float((predict(out, membrane) == labels).float().mean())
