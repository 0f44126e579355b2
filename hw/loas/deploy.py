"""A NIR chain (``golden.nir``) mapped onto LoAS layer programs, and run: on the integer golden
model or, through :class:`~.driver.LoASDriver`, on the RTL.

Mapping rules (each approximation is listed in :attr:`LoASProgram.approximations`):

* **Layers.** A layer is a weight node (``Linear``/``Affine``/``Conv2d``) and the neuron node
  after it; ``Flatten`` may stand anywhere (a reshape). Sum/average pooling before a
  ``Linear``/``Affine`` is folded into its weights (the composite linear map, computed in float
  before quantization); pooling elsewhere is refused. ``Conv2d`` is lowered with the golden
  ``im2col``: the layer's rows are the output pixels of every sample, ``K = C_in kh kw``.
* **Neurons.** NIR's Euler step ``v' = beta v + gain I`` (see ``golden.nir.graph``) becomes the
  core's integer LIF: the gain goes into the weights, the spike ``v > v_threshold`` becomes
  ``H >= threshold`` on the integer membrane exactly, the reset to ``v_reset = 0`` is the core's
  hard reset. ``beta`` must be one value per layer (the core has one leak register per layer);
  thresholds may differ per output neuron (column) -- they go into the column's scale. Refused:
  ``v_reset != 0``, ``v_leak != 0`` (a constant current), CubaLIF with a synaptic state
  (``tau_syn > dt``; ``tau_syn = dt`` is a LIF), thresholds <= 0, per-pixel parameters of a conv.
* **Leak.** The core's leak kind is chosen once for all layers: ``none`` if every ``beta`` is 1,
  ``shift`` if every ``beta`` is ``1 - 2**-k``, else ``mul`` with ``beta`` rounded to
  ``leak_frac`` bits. The integer leak floors (``V - (V >> k)``, ``(V beta) >> frac``).
* **Quantization.** Column ``n`` of a layer's float weights ``Wf = gain * W`` (threshold
  ``th_n``) is scaled by ``s_n = th_n / R`` with ``R = min_n th_n 127 / max|Wf[:, n]|`` (capped so
  that the threshold register holds it): the largest weight of the tightest column maps to 127,
  every column's threshold to ``R``; ``W_int = round(Wf / s_n)`` (int8) and the threshold register
  is ``floor(R) + 1``. The membranes are ``v / s_n``, saturating at the core's ``mem_width``.
* **Biases.** A layer fed by the network's input folds its bias as one more input position that
  fires at every step (the host appends it to the data); a nonzero bias deeper in the network
  is refused (hidden spikes have no always-on neuron).

Execution: consecutive dense layers run as one :meth:`LoASDriver.run_layers` network (chained on
chip where the driver can); a conv layer's operand, and a dense layer after a conv, are laid out
on the host (``im2col``, a transpose), so they start a new segment.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ...params import SnnforgeError
from .config import LoASConfig
from .driver import LayerSettings, LoASDriver

__all__ = ["DeployLayer", "LoASProgram", "map_chain", "choose_leak", "forward", "golden_segment",
           "rtl_segment", "predictions"]

#: Relative tolerance below which two float parameters count as equal (beta per layer, 2**-k).
_TOL = 1e-6


@dataclass
class DeployLayer:
    """One LoAS layer of a mapped network: its integer weights and registers, and the host-side
    layout of its operand (``kind`` dense or conv, the per-sample shapes in NIR order)."""
    name: str                   # the NIR nodes it maps, "weight node+neuron node"
    kind: str                   # "dense" or "conv"
    weights: np.ndarray         # int64 [K, N]
    threshold: int
    leak_amount: int
    tmask: int
    in_shape: tuple             # per sample, at the layer's input
    out_shape: tuple            # per sample, at its neurons' output
    conv: tuple = ()            # (kh, kw, sh, sw, ph, pw) of a conv layer
    bias_input: bool = False    # one always-on input position appended (a folded bias)
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))   # float per column
    beta: float = 1.0           # the float leak factor the integer one approximates

    @property
    def positions(self) -> int:
        """Rows of the operand per sample (output pixels of a conv, 1 for dense)."""
        if self.kind == "dense":
            return 1
        kh, kw, sh, sw, ph, pw = self.conv
        _, H, W = self.in_shape
        return ((H + 2 * ph - kh) // sh + 1) * ((W + 2 * pw - kw) // sw + 1)

    def operand(self, x: np.ndarray) -> np.ndarray:
        """Spikes ``[T, S, *in_shape]`` as this layer's operand ``[T, S * positions, K]``."""
        T, S = x.shape[:2]
        if self.kind == "dense":
            op = x.reshape(T, S, -1)
        else:
            from ...golden.loas import im2col
            import torch
            kh, kw, sh, sw, ph, pw = self.conv
            op = np.concatenate([im2col(torch.from_numpy(np.ascontiguousarray(x[:, s])),
                                        (kh, kw), (sh, sw), (ph, pw)).numpy()
                                 for s in range(S)], axis=1)
        if self.bias_input:
            op = np.concatenate([op, np.ones(op.shape[:2] + (1,), dtype=op.dtype)], axis=2)
        return op.astype(np.uint8)

    def unfold(self, y: np.ndarray, samples: int) -> np.ndarray:
        """The layer's output rows ``[..., S * positions, N]`` in NIR order
        ``[..., S, *out_shape]`` (a conv's pixels-by-channel rows become channel-major)."""
        lead = y.shape[:-2]
        y = y.reshape(*lead, samples, self.positions, y.shape[-1])
        return np.swapaxes(y, -1, -2).reshape(*lead, samples, *self.out_shape)

    def info(self) -> dict:
        K, N = self.weights.shape
        return {"name": self.name, "kind": self.kind, "in_shape": list(self.in_shape),
                "out_shape": list(self.out_shape), "K": K, "N": N,
                "rows_per_sample": self.positions,
                "weight_sparsity": float((self.weights == 0).mean()),
                "scale_min": float(self.scale.min()), "scale_max": float(self.scale.max()),
                "threshold": self.threshold, "leak_amount": self.leak_amount,
                "beta": self.beta, "tmask": self.tmask, "bias_input": self.bias_input}


@dataclass
class LoASProgram:
    """A network mapped onto LoAS: its layers, the core parameters it needs (``leak`` kind,
    ``T``), the input and output shapes, and the approximations the mapping made."""
    layers: list
    params: dict                # generator parameters the mapping fixes (T, leak, reset)
    input_shape: tuple
    output_shape: tuple
    approximations: list

    def segments(self) -> list[list[int]]:
        """Layer indexes run together: a dense layer joins the segment of a dense layer before
        it (its operand is that layer's output as it is)."""
        groups = []
        for i, layer in enumerate(self.layers):
            if i and layer.kind == "dense" and self.layers[i - 1].kind == "dense":
                groups[-1].append(i)
            else:
                groups.append([i])
        return groups

    def save(self, path) -> None:
        meta = {"params": self.params, "input_shape": list(self.input_shape),
                "output_shape": list(self.output_shape), "approximations": self.approximations,
                "layers": [{k: (list(v) if isinstance(v, tuple) else v)
                            for k, v in asdict(layer).items() if k not in ("weights", "scale")}
                           for layer in self.layers]}
        arrays = {f"w{i}": layer.weights for i, layer in enumerate(self.layers)}
        arrays.update({f"scale{i}": layer.scale for i, layer in enumerate(self.layers)})
        np.savez(path, meta=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path) -> "LoASProgram":
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            layers = [DeployLayer(**{**spec, "in_shape": tuple(spec["in_shape"]),
                                     "out_shape": tuple(spec["out_shape"]),
                                     "conv": tuple(spec["conv"]), "weights": data[f"w{i}"],
                                     "scale": data[f"scale{i}"]})
                      for i, spec in enumerate(meta["layers"])]
        return cls(layers, meta["params"], tuple(meta["input_shape"]),
                   tuple(meta["output_shape"]), meta["approximations"])


# -- mapping ---------------------------------------------------------------------------------


def choose_leak(betas: list[float]) -> str:
    """The core's leak kind for layers with these leak factors (see the module docstring)."""
    if all(abs(b - 1) < _TOL for b in betas):
        return "none"
    if all(_shift_of(b) is not None for b in betas):
        return "shift"
    return "mul"


def _shift_of(beta: float):
    """k with ``beta == 1 - 2**-k`` (k >= 0), or None."""
    if beta >= 1 - _TOL or beta < -_TOL:
        return None
    k = -math.log2(max(1 - beta, 1e-300))
    return round(k) if abs(k - round(k)) < 1e-6 else None


def _leak_register(cfg: LoASConfig, beta: float, name: str, notes: list) -> int:
    """The leak register value for ``beta`` on this core, noting where it is not exact."""
    lif = cfg.lif
    if lif.leak == "none":
        if abs(beta - 1) > _TOL:
            notes.append(f"{name}: leak beta={beta:.6g} ignored (core built with leak=none)")
        return 0
    if lif.leak == "shift":
        k = _shift_of(beta)
        if k is None or k > lif.leak_amount_max:
            best = min(range(lif.leak_amount_max + 1), key=lambda j: abs(1 - 2.0 ** -j - beta))
            notes.append(f"{name}: leak beta={beta:.6g} approximated by 1 - 2**-{best} = "
                         f"{1 - 2.0 ** -best:.6g} (leak shift)")
            return best
        return k
    scaled = beta * (1 << lif.leak_frac)
    amount = min(lif.leak_amount_max, max(0, int(round(scaled))))
    if abs(amount - scaled) > 1e-6:
        notes.append(f"{name}: leak beta={beta:.6g} rounded to {amount}/{1 << lif.leak_frac} = "
                     f"{amount / (1 << lif.leak_frac):.6g} (leak mul)")
    return amount


def _pool_fold(pre, in_shape):
    """The composite linear map of the reshapes and poolings ``pre`` on one sample, as a matrix
    ``[prod(in_shape), features]`` (float64)."""
    import torch
    from ...golden.nir.reference import apply_stage
    D = int(np.prod(in_shape))
    basis = torch.eye(D, dtype=torch.float64).reshape(D, *in_shape)
    for stage in pre:
        basis = apply_stage(stage, basis)
    return basis.reshape(D, -1).numpy()


def _columns(name, neuron, shape, kind, field_name):
    """A neuron parameter per output column: per neuron (dense) or per channel (conv; refused
    if it varies over a channel's pixels)."""
    a = getattr(neuron, field_name).reshape(shape)
    if kind == "conv":
        flat = a.reshape(shape[0], -1)
        if np.any(np.abs(flat - flat[:, :1]) > _TOL * np.maximum(1, np.abs(flat[:, :1]))):
            raise SnnforgeError(f"node {name!r}: {field_name} varies over the pixels of a channel;"
                                f" a conv layer's neurons share their channel's parameters")
        return flat[:, 0]
    return a.reshape(-1)


def map_chain(input_shape, stages, cfg_for, *, T: int):
    """Map a NIR chain onto LoAS layers.

    ``cfg_for(leak_kind)`` returns the :class:`LoASConfig` to map onto for the leak kind the
    chain needs (the caller builds it with the user's parameters). Returns ``(program, cfg)``.
    Raises :class:`SnnforgeError` naming the node for anything the core cannot take.
    """
    groups, pending, weight = [], [], None
    layer_in = tuple(input_shape)
    for stage in stages:
        if stage.is_weight:
            if weight is not None:
                raise SnnforgeError(f"node {stage.name!r} ({stage.op}) follows {weight.name!r} "
                                    f"without a neuron between them: each weight layer must feed "
                                    f"LIF/IF/CubaLIF neurons")
            if stage.op == "Conv2d" and any(s.op != "Flatten" for s in pending):
                bad = next(s for s in pending if s.op != "Flatten")
                raise SnnforgeError(f"node {bad.name!r} ({bad.op}) before Conv2d "
                                    f"{stage.name!r}: pooling folds only into a Linear/Affine "
                                    f"layer")
            weight = stage
        elif stage.is_neuron:
            if weight is None:
                raise SnnforgeError(f"node {stage.name!r} ({stage.op}) has no weight layer "
                                    f"before it: two neuron layers in a row cannot be mapped")
            groups.append((layer_in, pending, weight, stage))
            layer_in, pending, weight = stage.out_shape, [], None
        elif weight is None:
            pending.append(stage)
        elif stage.op != "Flatten":         # a Flatten between weights and neurons: a reshape
            raise SnnforgeError(f"node {stage.name!r} ({stage.op}) between weight node "
                                f"{weight.name!r} and its neurons: pooling folds only before a "
                                f"Linear/Affine layer")
    if weight is not None:
        raise SnnforgeError(f"node {weight.name!r} ({weight.op}) feeds no neuron: the core "
                            f"computes weight layers followed by LIF neurons")
    if any(s.op != "Flatten" for s in pending):
        bad = next(s for s in pending if s.op != "Flatten")
        raise SnnforgeError(f"node {bad.name!r} ({bad.op}) after the last neurons: the outputs "
                            f"must be spikes (only a Flatten may follow)")
    if not groups:
        raise SnnforgeError("the graph has no weight layer with neurons")

    neurons = [g[3] for g in groups]
    for n in neurons:
        nd = n.params["neuron"]
        where = f"node {n.name!r} ({n.op})"
        if np.any(np.abs(nd.alpha) > _TOL):
            raise SnnforgeError(f"{where}: a synaptic current state (tau_syn > dt) is needed, "
                                f"which the core's LIF does not have (tau_syn = dt makes it a LIF)")
        if np.any(np.abs(nd.v_reset) > _TOL):
            raise SnnforgeError(f"{where}: v_reset must be 0 (the core resets to 0), found "
                                f"{float(np.abs(nd.v_reset).max()):.6g}")
        if np.any(np.abs(nd.drive) > _TOL):
            raise SnnforgeError(f"{where}: v_leak must be 0 (a constant drive the core does not "
                                f"add)")
        if np.any(nd.threshold <= 0):
            raise SnnforgeError(f"{where}: v_threshold must be positive")
        if np.any(nd.beta < -_TOL) or np.any(nd.beta > 1 + _TOL):
            raise SnnforgeError(f"{where}: the leak factor 1 - dt/tau = "
                                f"{float(nd.beta.min()):.6g}..{float(nd.beta.max()):.6g} must lie "
                                f"in 0..1 (tau >= dt); try another --dt")
        if np.ptp(nd.beta) > _TOL:
            raise SnnforgeError(f"{where}: tau differs between neurons; the core has one leak "
                                f"register per layer")
    betas = [float(n.params["neuron"].beta.reshape(-1)[0]) for n in neurons]
    cfg = cfg_for(choose_leak(betas))
    lif = cfg.lif
    th_max = (1 << lif.threshold_bits) - 1
    notes = ["weights rounded to int8 per output column (scale s_n = threshold_n / R)",
             "the integer leak floors (rounds towards -inf)",
             f"membranes saturate at {lif.mem_width} bits, partial sums at {cfg.out_width} bits"]
    layers = []
    for index, ((layer_in, pre, w_stage, n_stage), beta) in enumerate(zip(groups, betas)):
        name = f"{w_stage.name}+{n_stage.name}"
        nd = n_stage.params["neuron"]
        kind = "conv" if w_stage.op == "Conv2d" else "dense"
        natural = w_stage.out_shape          # before any Flatten between weight and neurons
        gain = _columns(n_stage.name, nd, natural, kind, "gain") * \
            _columns(n_stage.name, nd, natural, kind, "syn_gain")
        th = _columns(n_stage.name, nd, natural, kind, "threshold")
        W = w_stage.params["weight"]
        if kind == "conv":
            Wf = W.reshape(W.shape[0], -1).T.copy()               # [C_in kh kw, C_out]
            conv = tuple(w_stage.params["kernel"]) + tuple(w_stage.params["stride"]) + \
                tuple(w_stage.params["padding"])
        else:
            Wf = W.T.copy()                                        # [features, N]
            if any(s.op != "Flatten" for s in pre):
                Wf = _pool_fold(pre, layer_in) @ Wf
                pools = ", ".join(s.name for s in pre if s.op != "Flatten")
                notes.append(f"{name}: pooling {pools} folded into the weights (exact before "
                             f"quantization)")
            conv = ()
        bias = w_stage.params["bias"]
        bias_input = bool(np.any(bias != 0))
        if bias_input:
            if index:
                raise SnnforgeError(f"node {w_stage.name!r}: a nonzero bias can only be folded in "
                                    f"a layer fed by the network input (as an always-on input); "
                                    f"train this layer without a bias")
            Wf = np.concatenate([Wf, bias.reshape(1, -1)], axis=0)
            notes.append(f"{name}: bias folded as an always-on input position")
        Wf = Wf * gain.reshape(1, -1)
        peak = np.abs(Wf).max(axis=0)
        ratios = th[peak > 0] * 127 / peak[peak > 0]
        R = min(float(ratios.min()) if ratios.size else float(th_max - 1), float(th_max - 1))
        scale = th / R
        q = np.clip(np.round(Wf / scale.reshape(1, -1)), -128, 127).astype(np.int64)
        if ratios.size and ratios.min() > th_max - 1:
            notes.append(f"{name}: weights small against the threshold: the largest maps to "
                         f"{int(np.abs(q).max())} (threshold register at its maximum)")
        if not np.any(q):
            notes.append(f"{name}: every weight rounds to 0")
        layers.append(DeployLayer(
            name=name, kind=kind, weights=q, threshold=int(math.floor(R)) + 1,
            leak_amount=_leak_register(cfg, beta, name, notes),
            tmask=(1 << T) - 1, in_shape=tuple(layer_in),
            out_shape=tuple(n_stage.out_shape), conv=conv, bias_input=bias_input,
            scale=scale, beta=beta))
    final = tuple(stages[-1].out_shape)
    params = {"T": T, "leak": lif.leak, "reset": "hard"}
    return LoASProgram(layers, params, tuple(input_shape), final, notes), cfg


# -- running ---------------------------------------------------------------------------------


async def forward(program: LoASProgram, spikes, run_segment):
    """Run ``program`` on ``spikes [T, S, *input shape]``; ``await run_segment(operand, layers)``
    runs one segment (see :meth:`LoASProgram.segments`) and returns ``(spikes [T, M, N],
    membrane [M, N], counters)`` (:func:`golden_segment`, :func:`rtl_segment`). Returns the
    output spikes ``[T, S, *output shape]``, the last layer's membranes ``[S, *its shape]`` and
    the counters summed over the segments."""
    x = np.asarray(spikes)
    S = x.shape[1]
    counters: dict = {}
    for seg in program.segments():
        layers = [program.layers[i] for i in seg]
        out, membrane, found = await run_segment(layers[0].operand(x), layers)
        for key, value in found.items():
            counters[key] = counters.get(key, 0) + int(value)
        x = layers[-1].unfold(np.asarray(out), S)
        membrane = layers[-1].unfold(np.asarray(membrane)[None], S)[0]
    T = x.shape[0]
    return x.reshape(T, S, *program.output_shape), membrane, counters


def golden_segment(cfg: LoASConfig):
    """The integer golden model of a segment on core ``cfg``: each layer's SpMSpM with the
    core's partial-sum width and K blocks (as the driver plans them), then the integer LIF.
    Its counters: ``matches``, ``saturations`` and ``sram_bytes``, the on-chip traffic of the
    LoAS paper's model (``golden.loas.baselines.loas_cycles``) that the energy model needs."""
    import torch
    from ...golden.loas import match_count, neurons, partial_sums
    from ...golden.loas.baselines import loas_cycles
    planner = LoASDriver(None, cfg, memory_size=LoASDriver.DEFAULT_MEMORY)

    async def run(operand, layers):
        x = torch.from_numpy(np.ascontiguousarray(operand)).to(torch.int64)
        matches = saturations = sram = 0
        for layer in layers:
            w = torch.from_numpy(layer.weights)
            O, sat = partial_sums(x, w, fiber=cfg.fiber, acc_width=cfg.out_width,
                                  k_block=planner.plan(layer.weights, False)[0])
            lif = cfg.lif.replace(threshold=layer.threshold).with_leak_amount(layer.leak_amount)
            spikes, membrane = neurons(O, lif, layer.tmask)
            matches += match_count(x, w)
            saturations += sat
            sram += loas_cycles(x, w, pes=cfg.pes, fiber=cfg.fiber,
                                tile_n=cfg.tile_n)["traffic"]["sram_bytes"]
            x = spikes.to(torch.int64)
        return (x.numpy().astype(np.uint8), membrane.numpy(),
                {"matches": matches, "saturations": saturations, "sram_bytes": sram})
    return run


def rtl_segment(driver: LoASDriver):
    """A segment on the RTL: one :meth:`LoASDriver.run_layers` network (an async callable)."""
    async def run(operand, layers):
        result = await driver.run_layers(operand, [
            LayerSettings(layer.weights, layer.threshold, layer.leak_amount, layer.tmask)
            for layer in layers])
        # Boundaries kept on chip: a fact of the driver's plan, reported beside the counters.
        return (result.spikes, result.membrane,
                {**result.counters, "chained_boundaries": sum(result.chained)})
    return run


def predictions(outputs) -> np.ndarray:
    """The class of every sample: the output neuron with most spikes over the steps (ties: the
    lower index). ``outputs [T, S, ...]``."""
    counts = np.asarray(outputs).reshape(outputs.shape[0], outputs.shape[1], -1).sum(0)
    return counts.argmax(1)
