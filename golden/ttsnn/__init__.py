"""Golden models of the TT-SNN family (Lee et al., DATE 2024): tensor-train cores of a 3x3 conv
and the kernels they compose to (:mod:`.tt`), the float layer with BPTT written out
(:mod:`.model`), and the parameter/MAC reduction of the paper's networks (:mod:`.report`)."""

from .fixed import TTFixedParams, fixed_backward, fixed_forward, sgd_update  # noqa: F401
from .model import *  # noqa: F401,F403
from .report import *  # noqa: F401,F403
from .tt import *  # noqa: F401,F403
