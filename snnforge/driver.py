"""The driver interface every family implements beside the host port: a *job* in, outputs out.

A family's :class:`Driver` is its host software. It declares its job (:meth:`Driver.job_spec`):
named input arrays with their dimensions and value kind, options with their ranges (both from the
core's configuration), and named outputs; it validates a job with a clear error naming the array
or option (:meth:`Driver.validate`), and runs it over any transport of the host port
(:meth:`Driver.run`), returning the outputs plus the core's counters. ``snnforge run NAME --in
NAME=FILE.npy ... -O key=value ... -o OUT.npz`` is generic over it; a family may add friendly
flags (:attr:`Driver.flags`, turned into inputs, options and generator parameters by
:meth:`Driver.from_flags`).

Arrays are numpy arrays from the command line to the simulator and back (``.npz`` between
processes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .host import HostDriver
from .params import Param, SnnforgeError

__all__ = ["ArraySpec", "JobSpec", "Job", "JobResult", "Flag", "Driver"]


@dataclass(frozen=True)
class ArraySpec:
    """One named array of a job: its dimensions (names, so the rank is ``len(dims)``) and its
    values -- ``"binary"`` (0/1) or ``"int"`` (integers in ``lo..hi``; float arrays are taken
    if every value is integral) -- or an ``"archive"``: named integer arrays (a ``.npz``; no
    dims, the driver's :meth:`Driver.check` states what it must hold)."""

    name: str
    dims: tuple[str, ...]
    kind: str
    help: str
    lo: int | None = None
    hi: int | None = None
    optional: bool = False

    @property
    def shape_text(self) -> str:
        return "(.npz)" if self.kind == "archive" else "[" + ", ".join(self.dims) + "]"

    def validate(self, value) -> np.ndarray:
        """The array as int64 (binary: uint8; archive: a dict of int64 arrays); raises
        :class:`SnnforgeError` naming it."""
        if self.kind == "archive":
            if not hasattr(value, "keys"):
                raise SnnforgeError(f"{self.name} must be an archive of named arrays (.npz), "
                                    f"not {type(value).__name__}")
            return {key: ArraySpec(f"{self.name}[{key}]", tuple(f"d{k}" for k in range(
                np.ndim(value[key]))), "int", self.help, -(1 << 62), 1 << 62).validate(value[key])
                    for key in value.keys()}
        a = np.asarray(value)
        if a.ndim != len(self.dims):
            raise SnnforgeError(f"{self.name} must have shape {self.shape_text}, not "
                                f"{list(a.shape)}")
        if a.dtype == bool:
            a = a.astype(np.uint8)
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            raise SnnforgeError(f"{self.name} must hold numbers, not {a.dtype}")
        if np.issubdtype(a.dtype, np.floating) and a.size and not np.all(a == np.round(a)):
            raise SnnforgeError(f"{self.name} must hold integers, found {a[a != np.round(a)][0]}")
        a = a.astype(np.int64)
        if self.kind == "binary":
            if a.size and not np.all((a == 0) | (a == 1)):
                raise SnnforgeError(f"{self.name} must be binary (0/1), found "
                                    f"{a[(a != 0) & (a != 1)][0]}")
            return a.astype(np.uint8)
        if a.size and (a.min() < self.lo or a.max() > self.hi):
            raise SnnforgeError(f"{self.name} must lie within {self.range_name} "
                                f"({self.lo}..{self.hi}), found {a.min()}..{a.max()}")
        return a

    @property
    def range_name(self) -> str:
        for bits in (8, 16, 32):
            if (self.lo, self.hi) == (-(1 << (bits - 1)), (1 << (bits - 1)) - 1):
                return f"int{bits}"
        return "the range"


@dataclass(frozen=True)
class JobSpec:
    """What a driver's job takes and gives."""
    inputs: tuple[ArraySpec, ...]
    options: tuple[Param, ...]
    outputs: tuple[ArraySpec, ...]

    def option(self, name) -> Param:
        for p in self.options:
            if p.name == name:
                return p
        raise KeyError(name)


@dataclass
class Job:
    """Validated inputs (numpy arrays by name; an archive a dict of them) and options (Python
    values by name)."""
    inputs: dict[str, np.ndarray]
    options: dict[str, Any]

    #: Between an archive's name and its arrays' in :meth:`arrays`.
    SEP = "::"

    def arrays(self) -> dict[str, np.ndarray]:
        """The inputs as flat arrays (an archive's as ``name::key``), for one ``.npz``."""
        out = {}
        for name, value in self.inputs.items():
            if isinstance(value, dict):
                out.update({f"{name}{self.SEP}{key}": a for key, a in value.items()})
            else:
                out[name] = value
        return out

    @classmethod
    def from_arrays(cls, arrays: dict, options: dict) -> "Job":
        """The job of :meth:`arrays`' flat arrays."""
        inputs = {}
        for key, value in arrays.items():
            name, sep, sub = key.partition(cls.SEP)
            if sep:
                inputs.setdefault(name, {})[sub] = value
            else:
                inputs[name] = value
        return cls(inputs, options)


@dataclass
class JobResult:
    """Outputs by name, the core's counters, and facts about the run (JSON-able)."""
    outputs: dict[str, np.ndarray]
    counters: dict[str, int]
    facts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Flag:
    """A family's friendly ``snnforge run`` flag (``--NAME``), mapped by
    :meth:`Driver.from_flags`."""
    name: str
    help: str
    metavar: str | None = None
    is_flag: bool = False


class Driver:
    """Base of a family's host software for one generator (see the module docstring).

    Subclasses set :attr:`flags` and implement :meth:`job_spec`, :meth:`run` and, where the job
    has rules across arrays or options, :meth:`check`.
    """

    flags: tuple[Flag, ...] = ()

    def __init__(self, host: HostDriver, cfg):
        self.host = host
        self.cfg = cfg

    # -- the job ------------------------------------------------------------------------------
    @classmethod
    def job_spec(cls, cfg) -> JobSpec:
        raise NotImplementedError

    @classmethod
    def params_for(cls, inputs: dict) -> dict:
        """Generator parameters a job implies (e.g. the number of time steps of its inputs);
        the user's ``-p`` values take precedence."""
        return {}

    @classmethod
    def from_flags(cls, values: dict) -> tuple[dict, dict, dict]:
        """The family's flags (``{flag name: value}``, unset flags omitted) as
        ``(inputs: {name: file}, options: {name: text}, generator parameters)``."""
        return {}, {}, {}

    @classmethod
    def validate(cls, cfg, inputs: dict, options: dict) -> Job:
        """Check every input array against its spec and every option against its range (text
        or Python values); then :meth:`check` the job's cross rules. Raises
        :class:`SnnforgeError` naming the array or option."""
        values = cls.option_values(cfg, options)
        specs = cls.input_specs(cfg, values)
        known = [a.name for a in specs]
        for name in inputs:
            if name not in known:
                raise SnnforgeError(f"unknown input {name!r}; inputs: {', '.join(known)}")
        arrays = {}
        for a in specs:
            if a.name in inputs:
                arrays[a.name] = a.validate(inputs[a.name])
            elif not a.optional:
                raise SnnforgeError(f"missing input {a.name} {a.shape_text}: {a.help}")
        job = Job(arrays, values)
        cls.check(cfg, job)
        return job

    @classmethod
    def option_values(cls, cfg, options: dict) -> dict:
        """Every option of a job: the given ones converted (text or Python values) and checked,
        the defaults for the rest. Raises :class:`SnnforgeError` naming the option."""
        declared = {p.name: p for p in cls.job_spec(cfg).options}
        values = {name: p.default for name, p in declared.items()}
        for name, value in options.items():
            if name not in declared:
                raise SnnforgeError(f"unknown option {name!r}; options: "
                                    f"{', '.join(declared) or 'none'}")
            values[name] = declared[name].convert(value, "job", noun="option")
        return values

    @classmethod
    def input_specs(cls, cfg, options: dict) -> tuple[ArraySpec, ...]:
        """The input arrays of a job with these (converted) options: the job spec's, unless an
        option changes an array's shape or values (e.g. a mode taking another input form)."""
        return cls.job_spec(cfg).inputs

    @classmethod
    def check(cls, cfg, job: Job) -> None:
        """Rules across arrays and options (raise :class:`SnnforgeError`)."""

    async def run(self, job: Job) -> JobResult:
        raise NotImplementedError

    @classmethod
    def report(cls, cfg, job: Job, result: JobResult) -> list[str]:
        """Lines ``snnforge run`` prints about a finished job."""
        shapes = ", ".join(f"{n} {list(a.shape)}" for n, a in result.outputs.items())
        return [f"outputs: {shapes}"]
