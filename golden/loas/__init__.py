"""Golden models of the LoAS family: the value-level model of the core (:mod:`.core`, whose public
names are re-exported here), the authors'-simulator cycle and traffic models of LoAS and its
baselines (:mod:`.baselines`), the energy model (:mod:`.energy`), the Table II workloads
(:mod:`.workloads`) and the digits SNN (:mod:`.digits`)."""

from .core import *  # noqa: F401,F403
from .core import __all__  # noqa: F401
