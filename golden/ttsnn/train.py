"""Fixed-point training of the digits network, with the TT layer's forward, backward and SGD
update computed by a pluggable *layer* -- the fixed-point golden model (:class:`GoldenTTLayer`) or
the generated RTL (``snnforge.sim.ttsnn.train``). The loop is the same code for both, so the
trained weights are equal bit for bit exactly when every layer call returned the same integers.

Network (T steps, one digit per training step, batch 1): the thermometer-coded 8x8 image;
stem 3x3 conv 1 -> ``channels`` (float, as in :class:`.digits.DigitsTTNet`) + TT-SNN neuron
(float, surrogate gradient) -> spikes ``s1``; the **integer TT layer** ``channels -> channels``
at rank ``rank`` with its integer LIF (:mod:`.fixed`) -> spikes ``s2``; 2x2 average pool; FC
``channels * 16 -> 10`` (float); class scores averaged over T; cross-entropy.

The integer boundary, each rule explicit:

* forward: ``s1`` is 0/1, so it enters the layer exactly; the layer's spikes ``s2`` leave exactly.
* backward into the layer: ``gs = sat(round(dL/ds2 * 2**grad_frac), grad_width)`` (round half to
  even, torch's rounding of float32).
* the layer's integer BPTT gives ``grad_in`` and the four core gradients; the cores are updated
  by the layer's SGD, ``G = sat(G - round(dG / 2**lr_shift), w_width)`` (on chip on the RTL).
* back out: ``dL/ds1 = grad_in * 2**-in_frac`` (float32), then the stem's float backward.
* the float parameters (stem, FC) take plain SGD steps of rate ``lr_milli / 1000``.

The loop is ``async`` because the RTL layer awaits the simulator; :func:`train_golden` runs it on
the golden layer with :func:`asyncio.run`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ...params import Config, inherit, param
from ..common.digits import load_digits_split
from ..common.lif import saturate
from .digits import encode_images, neuron_spikes
from .fixed import fixed_backward, fixed_forward, sgd_update
from .model import NeuronParams
from .params import MODES, TTFixedParams
from .tt import TTCores

__all__ = ["TTTrainParams", "FixedDigitsNet", "GoldenTTLayer", "TrainResult", "train_fixed",
           "train_golden", "evaluate_fixed"]


@dataclass(frozen=True)
class TTTrainParams(Config):
    """The training run: data order, network shape, the layer's fixed-point registers, rates."""

    steps: int = param(200, "training steps (one digit each)", lo=1, hi=1_000_000)
    seed: int = param(0, "seed of the split, the initial weights and the data order",
                      lo=0, hi=2**31 - 1)
    mode: str = param("ptt", "TT pipeline: stt, ptt or htt", choices=MODES)
    T: int = param(4, "time steps", lo=1, hi=16)
    channels: int = param(8, "channels of the stem and of the TT layer", lo=1, hi=64)
    rank: int = param(4, "TT rank", lo=1, hi=16)
    init_range: int = param(24, "initial cores uniform in -init_range..init_range", lo=1,
                            hi=127)
    shift_o1: int = inherit(TTFixedParams, "shift_o1")
    shift_z2: int = inherit(TTFixedParams, "shift_z2", default=4)
    shift_z3: int = inherit(TTFixedParams, "shift_z3", default=4)
    shift_y: int = inherit(TTFixedParams, "shift_y", default=4)
    shift_b4: int = inherit(TTFixedParams, "shift_b4", default=4)
    shift_b3: int = inherit(TTFixedParams, "shift_b3", default=4)
    shift_b2: int = inherit(TTFixedParams, "shift_b2", default=4)
    shift_b1: int = inherit(TTFixedParams, "shift_b1", default=4)
    theta: int = param(32, "the layer's threshold theta", lo=0, hi=32766)
    beta: int = param(64, "the layer's leak beta / 256", lo=0, hi=255)
    surrogate: int = param(32, "the layer's surrogate half-width a", lo=0, hi=65535)
    grad_frac: int = param(12, "fraction bits of the output-spike gradients fed to the layer",
                           lo=0, hi=24)
    in_frac: int = param(12, "fraction bits of the layer's input gradients", lo=0, hi=40)
    lr_shift: int = param(16, "the cores' learning rate: a right shift of their gradients",
                          lo=0, hi=47)
    lr_milli: int = param(50, "the float parameters' SGD rate, in thousandths", lo=0,
                          hi=10_000)

    @property
    def fixed(self) -> TTFixedParams:
        return TTFixedParams(T=self.T, mode=self.mode, htt_full=-(-self.T // 2),
                             **{name: getattr(self, name) for name in (
                                 "shift_o1", "shift_z2", "shift_z3", "shift_y", "shift_b4",
                                 "shift_b3", "shift_b2", "shift_b1", "theta", "beta",
                                 "surrogate")})


class FixedDigitsNet(nn.Module):
    """The network of the module docstring: float ``stem`` and ``fc``, integer ``cores``."""

    def __init__(self, p: TTTrainParams):
        super().__init__()
        self.p = p
        torch.manual_seed(p.seed)
        self.stem = nn.Conv2d(1, p.channels, 3, padding=1, bias=False)
        self.fc = nn.Linear(p.channels * 16, 10)
        g = torch.Generator().manual_seed(p.seed)
        draw = lambda *shape: torch.randint(-p.init_range, p.init_range + 1, shape, generator=g)
        c, r = p.channels, p.rank
        self.cores = TTCores(draw(r, c), draw(r, r, 3), draw(r, r, 3), draw(c, r))

    def stem_spikes(self, x):
        """``x [T, B, 1, 8, 8]`` -> spikes ``[T, B, channels, 8, 8]`` (float 0/1, with grad)."""
        T, B = x.shape[:2]
        return neuron_spikes(self.stem(x.flatten(0, 1)).unflatten(0, (T, B)) * 2, NeuronParams())

    def head(self, s2):
        """Spikes ``[T, B, channels, 8, 8]`` -> class scores ``[B, 10]``."""
        T, B = s2.shape[:2]
        pooled = F.avg_pool2d(s2.flatten(0, 1), 2).flatten(1)
        return self.fc(pooled).unflatten(0, (T, B)).mean(0)


class GoldenTTLayer:
    """The TT layer as the fixed-point golden model computes it."""

    async def forward(self, spikes, cores: TTCores, p: TTFixedParams):
        """Spikes ``[T, Cin, H, W]`` (int64 0/1) -> output spikes ``[T, Cout, H, W]``."""
        self._fwd = fixed_forward(spikes, cores, p)
        return self._fwd.spikes

    async def backward(self, spikes, grad, cores: TTCores, p: TTFixedParams, lr_shift: int):
        """After :meth:`forward` of the same ``spikes``: ``(grad_in, updated cores)``."""
        grad_in, grads, _ = fixed_backward(grad, self._fwd, cores, p)
        return grad_in, sgd_update(cores, grads, lr_shift, p)


@dataclass
class TrainResult:
    net: FixedDigitsNet
    losses: list = field(default_factory=list)
    spike_rates: list = field(default_factory=list)   # s2's firing rate per step

    def weights(self) -> dict:
        """Every trained value by name: ``g1..g4`` (int64), ``stem``, ``fc_w``, ``fc_b``."""
        c = self.net.cores
        return {"g1": c.g1, "g2": c.g2, "g3": c.g3, "g4": c.g4,
                "stem": self.net.stem.weight.detach().clone(),
                "fc_w": self.net.fc.weight.detach().clone(),
                "fc_b": self.net.fc.bias.detach().clone()}


def _order(p: TTTrainParams, n: int):
    """Step ``i``'s training digit: a fresh permutation per epoch."""
    g = torch.Generator().manual_seed(p.seed + 1)
    while True:
        yield from torch.randperm(n, generator=g).tolist()


async def train_fixed(layer, p: TTTrainParams, *, progress=None) -> TrainResult:
    """``p.steps`` training steps with the TT layer computed by ``layer`` (see the module
    docstring); ``progress(step, loss)`` after each."""
    x_train, y_train, _, _ = load_digits_split(p.seed)
    data = encode_images(x_train, p.T)
    net = FixedDigitsNet(p)
    fixed = p.fixed
    lr = p.lr_milli / 1000
    result = TrainResult(net)
    order = _order(p, len(y_train))
    for step in range(p.steps):
        i = next(order)
        s1 = net.stem_spikes(data[:, i:i + 1])
        s_int = s1.detach()[:, 0].to(torch.int64)
        s2 = (await layer.forward(s_int, net.cores, fixed)).to(torch.float32)[:, None]
        s2.requires_grad_()
        loss = F.cross_entropy(net.head(s2), y_train[i:i + 1])
        net.zero_grad()
        loss.backward()
        gs = saturate(torch.round(s2.grad[:, 0] * 2.0 ** p.grad_frac).to(torch.int64),
                      fixed.grad_width)
        grad_in, net.cores = await layer.backward(s_int, gs, net.cores, fixed, p.lr_shift)
        s1.backward(grad_in.to(torch.float32)[:, None] * 2.0 ** -p.in_frac)
        with torch.no_grad():
            for w in net.parameters():
                w -= lr * w.grad
        result.losses.append(loss.item())
        result.spike_rates.append(float(s2.detach().mean()))
        if progress is not None:
            progress(step + 1, loss.item())
    return result


def train_golden(p: TTTrainParams, *, progress=None) -> TrainResult:
    """:func:`train_fixed` on the fixed-point golden layer."""
    return asyncio.run(train_fixed(GoldenTTLayer(), p, progress=progress))


def evaluate_fixed(net: FixedDigitsNet) -> float:
    """Test accuracy of the trained network on the held-out split, the TT layer fixed point."""
    p = net.p
    _, _, x_test, y_test = load_digits_split(p.seed)
    data = encode_images(x_test, p.T)
    correct = 0
    with torch.no_grad():
        s1 = net.stem_spikes(data).to(torch.int64)
        for i in range(len(y_test)):
            s2 = fixed_forward(s1[:, i], net.cores, p.fixed).spikes.to(torch.float32)
            correct += int(net.head(s2[:, None]).argmax(1).item() == y_test[i].item())
    return correct / len(y_test)
