"""A third-party network for the NIR path: an snnTorch MLP trained on scikit-learn's digits and
exported with snnTorch's own ``export_to_nir``.

Network: thermometer-coded pixels (``golden.common.digits.encode``) -> ``Linear(64, hidden)`` ->
``Leaky`` -> ``Linear(hidden, 10)`` -> ``Leaky``; the class is the output neuron with most spikes.
The ``Leaky`` layers reset to zero (``reset_mechanism="zero"``: what the exported NIR ``LIF``'s
``v_reset = 0`` says) and carry one ``beta`` and threshold *per neuron*: with scalars, snnTorch
1.0.0's exporter writes ``LIF`` nodes with an empty type and ``nir`` 1.0.8's type inference (run
inside ``export_to_nir``) fails ("type mismatch: 1.output: [[32]] -> 2.input: []"); per-neuron
tensors give the nodes their shape, so the exporter runs unchanged. Weights are magnitude-pruned
gradually (LoAS thrives on sparse weights), then fine-tuned with the mask fixed. snnTorch and
nirtorch are development dependencies.
"""

from __future__ import annotations

import torch

from ..common.digits import encode, load_digits_split
from ..common.prune import prune_step

__all__ = ["build_net", "train_snntorch_digits", "export_nir", "digits_spikes", "run_snntorch"]


def build_net(hidden: int = 64, beta: float = 0.5):
    """The snnTorch network (float, untrained)."""
    import snntorch as snn
    from snntorch import surrogate

    def leaky(n, output=False):
        return snn.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n),
                         reset_mechanism="zero", init_hidden=True, output=output,
                         spike_grad=surrogate.fast_sigmoid(slope=10))
    return torch.nn.Sequential(torch.nn.Linear(64, hidden, bias=False), leaky(hidden),
                               torch.nn.Linear(hidden, 10, bias=False), leaky(10, output=True))


def run_snntorch(net, spikes: torch.Tensor) -> torch.Tensor:
    """snnTorch's own forward pass: ``spikes [T, N, 64]`` -> output spikes ``[T, N, 10]``."""
    from snntorch import utils
    utils.reset(net)
    out = []
    for t in range(spikes.shape[0]):
        spk, _ = net(spikes[t].float())
        out.append(spk)
    return torch.stack(out)


def digits_spikes(T: int, split: str = "test", seed: int = 0):
    """``(spikes [N, T, 64] uint8, labels [N] int64)`` of the digits split: the ``--data`` and
    ``--labels`` layout of ``snnforge deploy``."""
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    images, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
    return encode(images, T).permute(1, 0, 2).contiguous().numpy(), labels.numpy()


def train_snntorch_digits(*, T: int = 4, hidden: int = 64, epochs: int = 30,
                          sparsity: float = 0.8, seed: int = 0, lr: float = 5e-3):
    """Train with surrogate gradients (cross entropy on spike counts), prune each weight layer
    gradually to ``sparsity`` by magnitude, fine-tune the last epochs with the mask fixed.
    Deterministic for a seed. Returns ``(net, report)`` with the float test accuracy."""
    torch.manual_seed(seed)
    net = build_net(hidden)
    x, y = digits_spikes(T, "train", seed)
    x = torch.from_numpy(x).permute(1, 0, 2).float()
    y = torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    masks = [torch.ones_like(m.weight) for m in linears]
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        prune_step([m.weight for m in linears], masks, epoch, epochs, sparsity)
        perm = torch.randperm(x.shape[1], generator=g)
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            counts = run_snntorch(net, x[:, idx]).sum(0)
            loss = torch.nn.functional.cross_entropy(counts * 2.0, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for m, mask in zip(linears, masks):
                    m.weight.mul_(mask)
    xt, yt = digits_spikes(T, "test", seed)
    with torch.no_grad():
        out = run_snntorch(net, torch.from_numpy(xt).permute(1, 0, 2))
    accuracy = float((out.sum(0).argmax(1).numpy() == yt).mean())
    return net, {"test_accuracy": accuracy, "T": T, "hidden": hidden,
                 "sparsity": [float((m.weight == 0).float().mean()) for m in linears]}


def export_nir(net, path) -> None:
    """snnTorch's ``export_to_nir``, written with ``nir.write``."""
    import nir
    from snntorch.export_nir import export_to_nir
    nir.write(str(path), export_to_nir(net, torch.zeros(64)))

