"""Generator parameters: declaration, parsing from the command line, validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SnnforgeError", "Param", "resolve_params"]


class SnnforgeError(ValueError):
    """A problem with what the user asked for (unknown name, bad value, missing tool).
    The CLI prints its message on one line and exits with status 2."""


@dataclass(frozen=True)
class Param:
    """One generator parameter: ``int`` (with an inclusive range), ``bool`` or a string choice."""

    name: str
    default: Any
    help: str
    lo: int | None = None
    hi: int | None = None
    choices: tuple[str, ...] | None = None

    @property
    def kind(self) -> str:
        if self.choices is not None:
            return "choice"
        return "bool" if isinstance(self.default, bool) else "int"

    @property
    def range_text(self) -> str:
        if self.choices is not None:
            return "|".join(self.choices)
        if self.kind == "bool":
            return "true|false"
        return f"{self.lo}..{self.hi}"

    def convert(self, value, generator: str):
        """Parse and range-check one value (strings from the CLI or Python values)."""
        where = f"{generator}: parameter {self.name}"
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
        try:
            number = int(str(value), 0) if not isinstance(value, int) else value
        except ValueError:
            raise SnnforgeError(f"{where}={value!r} is not an integer") from None
        if isinstance(number, bool) or not self.lo <= number <= self.hi:
            raise SnnforgeError(f"{where}={value} is out of range {self.lo}..{self.hi}")
        return number


def resolve_params(generator: str, declared: tuple[Param, ...], overrides: dict | None) -> dict:
    """Defaults updated with ``overrides``; every name and value checked."""
    by_name = {p.name: p for p in declared}
    values = {p.name: p.default for p in declared}
    for name, value in (overrides or {}).items():
        if name not in by_name:
            raise SnnforgeError(f"{generator}: unknown parameter {name!r}; valid parameters: "
                                f"{', '.join(by_name)}")
        values[name] = by_name[name].convert(value, generator)
    return values


def parse_assignments(items, what="-p") -> dict:
    """``["T=4", "leak=shift"]`` -> ``{"T": "4", "leak": "shift"}``."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SnnforgeError(f"{what} {item!r}: expected name=value")
        out[name.strip()] = value.strip()
    return out
