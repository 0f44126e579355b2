"""Declared parameters: one place per block for a parameter's default, range, meaning and check.

A block's parameters are the fields of a frozen dataclass deriving from :class:`Config`, each
declared with :func:`param`. The dataclass validates itself at construction (a ``ValueError``
naming the parameter), and everything else reads the declaration from it: the generator registry,
``snnforge list``, the CLI's ``-p key=value`` parsing, the manifest and the job options of a
driver.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["SnnforgeError", "Param", "param", "inherit", "Config", "parse_assignments"]


class SnnforgeError(ValueError):
    """A problem with what the user asked for (unknown name, bad value, missing tool).
    The CLI prints its message on one line and exits with status 2."""


@dataclass(frozen=True)
class Param:
    """One parameter: ``int`` (with an inclusive range), ``bool``, a string choice, or free
    ``text`` (a ``str`` default without choices: its owner parses it).

    ``lo``/``hi`` bound every value; ``check(config, value)`` adds a rule that depends on other
    parameters (declared before this one), and ``what(config)`` then describes the valid values
    in the error message (``"T must be an integer in 1..32, not 0"``).
    """

    name: str
    default: Any
    help: str
    lo: int | None = None
    hi: int | None = None
    choices: tuple[str, ...] | None = None
    check: Callable | None = None
    what: Callable | None = None
    range_text_override: str | None = None

    @property
    def kind(self) -> str:
        if self.choices is not None:
            return "choice"
        if isinstance(self.default, str):
            return "text"
        return "bool" if isinstance(self.default, bool) else "int"

    @property
    def range_text(self) -> str:
        if self.range_text_override:
            return self.range_text_override
        if self.choices is not None:
            return "|".join(self.choices)
        if self.kind == "bool":
            return "true|false"
        if self.kind == "text":
            return "text"
        return f"{self.lo}..{self.hi}"

    def describe(self, config=None) -> str:
        """The valid values, in words."""
        if self.what is not None and config is not None:
            return self.what(config)
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}"
        if self.kind == "bool":
            return "a bool"
        if self.kind == "text":
            return "text"
        return f"an integer in {self.lo}..{self.hi}"

    def validate(self, config, value) -> None:
        """Raise ``ValueError`` naming the parameter unless ``value`` is valid in ``config``."""
        if self.kind == "bool":
            ok = isinstance(value, bool)
        elif self.kind == "choice":
            ok = value in self.choices
        elif self.kind == "text":
            ok = isinstance(value, str)
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and self.lo <= value <= self.hi
        if ok and self.check is not None:
            ok = bool(self.check(config, value))
        if not ok:
            raise ValueError(f"{self.name} must be {self.describe(config)}, not {value!r}")

    def convert(self, value, where: str, *, noun: str = "parameter"):
        """Parse and range-check one value given as text (the CLI) or as a Python value."""
        where = f"{where}: {noun} {self.name}"
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise SnnforgeError(f"{where}={value!r} is not a bool (use true or false)")
        if self.kind == "choice":
            if value not in self.choices:
                raise SnnforgeError(f"{where}={value!r} is not one of {', '.join(self.choices)}")
            return value
        if self.kind == "text":
            return str(value)
        try:
            number = value if isinstance(value, int) else int(str(value), 0)
        except ValueError:
            raise SnnforgeError(f"{where}={value!r} is not an integer") from None
        if isinstance(number, bool) or not self.lo <= number <= self.hi:
            raise SnnforgeError(f"{where}={value} is out of range {self.lo}..{self.hi}")
        return number


def param(default, help: str, *, lo=None, hi=None, choices=None, check=None, what=None,
          range_text=None):
    """A dataclass field declaring one parameter of a :class:`Config` (see :class:`Param`)."""
    if choices is not None:
        choices = tuple(choices)
    elif not isinstance(default, bool) and (lo is None or hi is None):
        raise TypeError("an integer parameter needs lo and hi")
    return dataclasses.field(default=default, metadata={"param": Param(
        "", default, help, lo, hi, choices, check, what, range_text)})


def inherit(config_class, name: str, *, rename: str | None = None, **changes):
    """The field of parameter ``name`` of another :class:`Config`, optionally renamed or with
    some declaration fields changed (``default``, ``help`` ...): one definition of its range."""
    source = {f.name: f for f in dataclasses.fields(config_class)}[name].metadata["param"]
    declared = dataclasses.replace(source, name="", **changes)
    return dataclasses.field(default=declared.default, metadata={"param": declared})


class Config:
    """Base of the frozen dataclasses holding a block's parameters.

    Every field declared with :func:`param` is checked at construction, in declaration order;
    subclasses may add cross-parameter rules in ``__post_init__`` (calling ``super()`` first).
    """

    def __post_init__(self):
        for p in self.params():
            p.validate(self, getattr(self, p.name))

    @classmethod
    def params(cls) -> tuple[Param, ...]:
        """The declared parameters, named, in declaration order."""
        return tuple(dataclasses.replace(f.metadata["param"], name=f.name)
                     for f in dataclasses.fields(cls) if "param" in f.metadata)

    @classmethod
    def resolve(cls, overrides: dict | None, where: str) -> dict:
        """Defaults updated with ``overrides`` (text or Python values), each name and static
        range checked; raises :class:`SnnforgeError` naming the parameter."""
        declared = {p.name: p for p in cls.params()}
        values = {name: p.default for name, p in declared.items()}
        for name, value in (overrides or {}).items():
            if name not in declared:
                raise SnnforgeError(f"{where}: unknown parameter {name!r}; valid parameters: "
                                    f"{', '.join(declared)}")
            values[name] = declared[name].convert(value, where)
        return values

    def values(self) -> dict:
        """Every declared parameter's value, by name."""
        return {p.name: getattr(self, p.name) for p in self.params()}

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def parse_assignments(items, what="-p") -> dict:
    """``["T=4", "leak=shift"]`` -> ``{"T": "4", "leak": "shift"}``."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SnnforgeError(f"{what} {item!r}: expected name=value")
        out[name.strip()] = value.strip()
    return out
