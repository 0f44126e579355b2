"""A NIR graph (the ``nir`` package) read into the feed-forward chain snnforge maps onto a core.

:func:`read_chain` walks a graph from its ``Input`` to its ``Output`` and returns the nodes in order
as :class:`Stage` s with their per-sample shapes, worked out here from the node parameters: the
graph is read with ``nir.read(..., type_check=False)``, so graphs whose exporter left a node's type
empty (snnTorch 1.0's ``Leaky`` with a scalar ``beta``) still read, the neuron's size taken from
the layer before it.

Supported nodes: ``Input``, ``Output``, ``Linear``, ``Affine``, ``Conv2d`` (dilation 1, one group),
``Flatten``, ``SumPool2d``/``AvgPool2d`` (no padding), ``LIF``, ``IF`` and ``CubaLIF``. Anything
else -- another node type, a subgraph (snnTorch's ``RLeaky``/``RSynaptic`` export recurrent
subgraphs), a branch, a recurrent edge, a shape that does not line up -- raises
:class:`~snnforge.params.SnnforgeError` naming the node and what would be needed.

Neurons are discretised with forward Euler at a step ``dt`` (NIR graphs are continuous-time and
do not carry one; snnTorch's exporter writes its constants for ``dt = 1e-4``):

* ``LIF``:     ``v += dt/tau * (v_leak - v + r I)``
* ``IF``:      ``v += dt * r I``
* ``CubaLIF``: ``i += dt/tau_syn * (w_in x - i)``, then ``v += dt/tau_mem * (v_leak - v + r i)``

then ``z = v > v_threshold`` and ``v = v_reset`` where ``z`` (NIR's definitions, and snnTorch's
order: a step's input, then its spike and reset). :class:`Neuron` holds them per neuron as
``v' = beta v + gain I + drive`` with a synaptic decay ``alpha`` (0: no synaptic state).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...params import SnnforgeError

__all__ = ["Stage", "Neuron", "read_chain", "chain_from_graph", "SUPPORTED"]

SUPPORTED = ("Input", "Output", "Linear", "Affine", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d",
             "LIF", "IF", "CubaLIF")


@dataclass(frozen=True)
class Neuron:
    """A neuron node's per-neuron dynamics at step ``dt`` (arrays of the neuron count):
    ``i' = alpha i + syn_gain x`` (CubaLIF's synapse; alpha 0 and syn_gain 1 otherwise),
    ``v' = beta v + gain i' + drive``, spike ``v' > threshold``, then ``v' = v_reset``."""
    kind: str
    beta: np.ndarray
    gain: np.ndarray
    drive: np.ndarray
    threshold: np.ndarray
    v_reset: np.ndarray
    alpha: np.ndarray
    syn_gain: np.ndarray


@dataclass(frozen=True)
class Stage:
    """One node of the chain: its name and type, the per-sample shapes it maps between, and its
    parameters (``weight``/``bias`` of a linear or conv node as float64 arrays, ``stride``,
    ``padding`` and ``kernel`` of a conv or pool, ``neuron`` of a neuron node)."""
    name: str
    op: str
    in_shape: tuple
    out_shape: tuple
    params: dict

    @property
    def is_neuron(self) -> bool:
        return self.op in ("LIF", "IF", "CubaLIF")

    @property
    def is_weight(self) -> bool:
        return self.op in ("Linear", "Affine", "Conv2d")


def _array(node_name, field, value, dtype=np.float64):
    try:
        a = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise SnnforgeError(f"node {node_name!r}: {field} is not numeric") from None
    if not np.all(np.isfinite(a)):
        raise SnnforgeError(f"node {node_name!r}: {field} holds non-finite values")
    return a


def _pair(node_name, field, value):
    a = np.asarray(value).astype(np.int64).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.size != 2:
        raise SnnforgeError(f"node {node_name!r}: {field} must be one or two integers, not "
                            f"{np.asarray(value).tolist()}")
    return int(a[0]), int(a[1])


def _neuron(name, node, n_shape, dt) -> Neuron:
    """The neuron's dynamics at step ``dt``, every parameter broadcast to ``n_shape`` (a scalar
    parameter -- snnTorch's scalar beta -- applies to every neuron)."""
    op = type(node).__name__

    def get(field, default=None):
        value = getattr(node, field, None)
        if value is None:
            if default is None:
                raise SnnforgeError(f"node {name!r} ({op}): {field} is missing")
            value = default
        a = _array(name, field, value)
        try:
            return np.broadcast_to(a, n_shape).astype(np.float64)
        except ValueError:
            raise SnnforgeError(f"node {name!r} ({op}): {field} has shape {list(a.shape)}, "
                                f"which does not fit the {list(n_shape)} neurons the layer "
                                f"before it feeds") from None

    zero, one = np.zeros(n_shape), np.ones(n_shape)
    threshold, v_reset = get("v_threshold"), get("v_reset", 0.0)
    if op == "IF":
        r = get("r")
        return Neuron(op, one, dt * r, zero, threshold, v_reset, zero, one)
    if op == "LIF":
        tau, r, v_leak = get("tau"), get("r"), get("v_leak", 0.0)
        if np.any(tau <= 0):
            raise SnnforgeError(f"node {name!r} (LIF): tau must be positive")
        k = dt / tau
        return Neuron(op, 1 - k, k * r, k * v_leak, threshold, v_reset, zero, one)
    tau_syn, tau_mem = get("tau_syn"), get("tau_mem")
    r, v_leak, w_in = get("r"), get("v_leak", 0.0), get("w_in", 1.0)
    if np.any(tau_syn <= 0) or np.any(tau_mem <= 0):
        raise SnnforgeError(f"node {name!r} (CubaLIF): tau_syn and tau_mem must be positive")
    ks, km = dt / tau_syn, dt / tau_mem
    return Neuron(op, 1 - km, km * r, km * v_leak, threshold, v_reset, 1 - ks, ks * w_in)


def _conv_out(name, size, kernel, stride, padding):
    out = (size + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise SnnforgeError(f"node {name!r}: kernel {kernel} does not fit the input size {size} "
                            f"(padding {padding})")
    return out


def _stage(name, node, shape, dt) -> Stage:
    """The stage of ``node`` fed samples of ``shape``; raises naming the node when the shapes
    do not line up or the node cannot be mapped."""
    op = type(node).__name__
    if op in ("Linear", "Affine"):
        w = _array(name, "weight", node.weight)
        if w.ndim != 2:
            raise SnnforgeError(f"node {name!r} ({op}): weight must be [out, in], not "
                                f"{list(w.shape)}")
        if len(shape) != 1 or shape[0] != w.shape[1]:
            raise SnnforgeError(f"node {name!r} ({op}): takes {w.shape[1]} inputs but is fed "
                                f"shape {list(shape)}" + (" (a Flatten before it is needed)"
                                                          if len(shape) > 1 else ""))
        bias = (_array(name, "bias", node.bias).reshape(-1) if op == "Affine"
                else np.zeros(w.shape[0]))
        if bias.shape != (w.shape[0],):
            raise SnnforgeError(f"node {name!r} (Affine): bias must have {w.shape[0]} entries")
        return Stage(name, op, shape, (w.shape[0],), {"weight": w, "bias": bias})
    if op == "Conv2d":
        w = _array(name, "weight", node.weight)
        if w.ndim != 4:
            raise SnnforgeError(f"node {name!r} (Conv2d): weight must be [C_out, C_in, kh, kw]")
        if int(node.groups) != 1 or _pair(name, "dilation", node.dilation) != (1, 1):
            raise SnnforgeError(f"node {name!r} (Conv2d): groups {node.groups} / dilation "
                                f"{np.asarray(node.dilation).tolist()}: the lowering (im2col) "
                                f"takes one group and dilation 1")
        if len(shape) != 3 or shape[0] != w.shape[1]:
            raise SnnforgeError(f"node {name!r} (Conv2d): takes [{w.shape[1]}, H, W] inputs but "
                                f"is fed shape {list(shape)}")
        kernel = (w.shape[2], w.shape[3])
        stride = _pair(name, "stride", node.stride)
        if isinstance(node.padding, str):
            if node.padding == "valid":
                padding = (0, 0)
            elif stride == (1, 1) and kernel[0] % 2 and kernel[1] % 2:
                padding = (kernel[0] // 2, kernel[1] // 2)
            else:
                raise SnnforgeError(f"node {name!r} (Conv2d): padding 'same' needs stride 1 and "
                                    f"odd kernels (symmetric padding)")
        else:
            padding = _pair(name, "padding", node.padding)
        out = (w.shape[0],) + tuple(_conv_out(name, shape[1 + d], kernel[d], stride[d],
                                              padding[d]) for d in range(2))
        bias = (np.zeros(w.shape[0]) if getattr(node, "bias", None) is None
                else _array(name, "bias", node.bias).reshape(-1))
        return Stage(name, op, shape, out, {"weight": w, "bias": bias, "kernel": kernel,
                                            "stride": stride, "padding": padding})
    if op == "Flatten":
        start, end = int(node.start_dim), int(node.end_dim)
        dims = len(shape)
        start, end = start + dims if start < 0 else start, end + dims if end < 0 else end
        if not 0 <= start <= end < dims:
            raise SnnforgeError(f"node {name!r} (Flatten): dims {node.start_dim}..{node.end_dim} "
                                f"do not fit shape {list(shape)}")
        out = shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:]
        return Stage(name, op, shape, out, {})
    if op in ("SumPool2d", "AvgPool2d"):
        kernel = _pair(name, "kernel_size", node.kernel_size)
        stride = _pair(name, "stride", node.stride)
        if _pair(name, "padding", node.padding) != (0, 0):
            raise SnnforgeError(f"node {name!r} ({op}): padding is not supported (pad 0)")
        if len(shape) != 3:
            raise SnnforgeError(f"node {name!r} ({op}): takes [C, H, W], is fed {list(shape)}")
        out = (shape[0],) + tuple(_conv_out(name, shape[1 + d], kernel[d], stride[d], 0)
                                  for d in range(2))
        return Stage(name, op, shape, out, {"kernel": kernel, "stride": stride})
    if op in ("LIF", "IF", "CubaLIF"):
        return Stage(name, op, shape, shape, {"neuron": _neuron(name, node, shape, dt)})
    if op == "NIRGraph":
        raise SnnforgeError(f"node {name!r} is a subgraph (a recurrent layer such as snnTorch's "
                            f"RLeaky/RSynaptic exports one): recurrent connections cannot be mapped"
                            f" onto a feed-forward core")
    raise SnnforgeError(f"node {name!r} has type {op}, which cannot be mapped; supported: "
                        f"{', '.join(SUPPORTED)}")


def _input_shape(name, node) -> tuple:
    types = getattr(node, "input_type", None) or getattr(node, "output_type", None) or {}
    shape = next(iter(types.values()), None) if types else None
    if shape is None or np.asarray(shape).size == 0:
        raise SnnforgeError(f"input node {name!r} has no shape (input_type)")
    shape = tuple(int(s) for s in np.asarray(shape).reshape(-1))
    if any(s < 1 for s in shape):
        raise SnnforgeError(f"input node {name!r}: shape {list(shape)} must be positive")
    return shape


def chain_from_graph(graph, dt: float) -> tuple[tuple, list[Stage]]:
    """``(input shape, stages)`` of a ``nir.NIRGraph``: the nodes from its Input to its Output in
    order (both excluded)."""
    if not (isinstance(dt, float) and np.isfinite(dt) and dt > 0):
        raise SnnforgeError(f"dt must be a positive number of seconds, not {dt!r}")
    nodes, edges = dict(graph.nodes), list(graph.edges)
    kinds = {name: type(node).__name__ for name, node in nodes.items()}
    inputs = [n for n, k in kinds.items() if k == "Input"]
    outputs = [n for n, k in kinds.items() if k == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise SnnforgeError(f"the graph must have one Input and one Output node, not "
                            f"{len(inputs)} and {len(outputs)}")
    succ: dict[str, list] = {name: [] for name in nodes}
    pred: dict[str, list] = {name: [] for name in nodes}
    for src, dst in edges:
        src, dst = src.split(".")[0], dst.split(".")[0]      # "node.port" names a port
        if src not in nodes or dst not in nodes:
            raise SnnforgeError(f"edge {src!r} -> {dst!r} names a node the graph does not have")
        succ[src].append(dst)
        pred[dst].append(src)
    input_shape = shape = _input_shape(inputs[0], nodes[inputs[0]])
    stages, seen, name = [], {inputs[0]}, inputs[0]
    while True:
        if len(succ[name]) != 1:
            raise SnnforgeError(f"node {name!r} feeds {len(succ[name])} nodes "
                                f"({', '.join(succ[name]) or 'none'}): only a chain from Input to "
                                f"Output can be mapped")
        name = succ[name][0]
        if name in seen:
            raise SnnforgeError(f"node {name!r} is reached twice: a recurrent edge; only "
                                f"feed-forward chains can be mapped")
        if len(pred[name]) != 1:
            raise SnnforgeError(f"node {name!r} has {len(pred[name])} inputs "
                                f"({', '.join(pred[name])}): only a chain can be mapped")
        seen.add(name)
        if name == outputs[0]:
            break
        stage = _stage(name, nodes[name], shape, dt)
        stages.append(stage)
        shape = stage.out_shape
    unreached = sorted(set(nodes) - seen)
    if unreached:
        raise SnnforgeError(f"node(s) {', '.join(unreached)} are not on the path from Input to "
                            f"Output")
    if not stages:
        raise SnnforgeError("the graph has no nodes between its Input and Output")
    return input_shape, stages


def read_chain(path, dt: float = 1e-4) -> tuple[tuple, list[Stage]]:
    """Read a ``.nir`` file and return ``(input shape, stages)`` (see :func:`chain_from_graph`)."""
    import nir
    path = Path(path)
    if not path.is_file():
        raise SnnforgeError(f"{path}: no such NIR file")
    try:
        graph = nir.read(path, type_check=False)
    except Exception as error:   # h5py and nir raise many types for a malformed file
        raise SnnforgeError(f"{path}: not a readable NIR graph ({type(error).__name__}: "
                            f"{error})") from None
    return chain_from_graph(graph, float(dt))
