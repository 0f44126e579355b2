"""NIR (the neuromorphic intermediate representation, the ``nir`` package) on the golden side: a
graph read into a feed-forward chain with its shapes (:mod:`.graph`) and the float reference of
its semantics (:mod:`.reference`). A core's mapping of the chain lives with the core
(``golden.loas.deploy``)."""

from .graph import SUPPORTED, Neuron, Stage, chain_from_graph, read_chain
from .reference import float_forward

__all__ = ["SUPPORTED", "Neuron", "Stage", "chain_from_graph", "read_chain", "float_forward"]
