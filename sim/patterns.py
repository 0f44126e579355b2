"""Idle and back-pressure patterns for stream drivers: one spelling for every bench and back end.

A pattern says, cycle by cycle, whether a source offers a beat (``valid``) or a sink accepts one
(``ready``): :meth:`Pattern.go` is True for "go". Specifications:

* ``none`` -- always go;
* ``random:P`` (or a bare number ``P``) -- hold back with probability ``P`` each cycle (seeded);
* ``periodic:1110`` -- the bits repeat, ``1`` = go (here: three cycles of four);
* ``burst:N:P`` -- with probability ``P`` a cycle starts a run of ``N`` cycles held back.

Regressions run several of them, idle patterns crossed with back-pressure patterns
(:func:`crossed`), rather than one probability per run.
"""

from __future__ import annotations

import itertools
import random

__all__ = ["Pattern", "IDLE_PATTERNS", "STALL_PATTERNS", "crossed", "scheduled", "spec_text"]

IDLE_PATTERNS = ("none", "random:0.3", "periodic:1110", "burst:8:0.05")
STALL_PATTERNS = ("none", "random:0.3", "periodic:1101", "burst:8:0.05")


class Pattern:
    """A seeded go/hold sequence (see the module docstring for the specifications)."""

    def __init__(self, spec="none", seed=0):
        self.spec = spec_text(spec)
        kind, *args = self.spec.split(":")
        self._rng = random.Random(seed)
        self._held = 0
        if kind == "none":
            self.go = lambda: True
        elif kind == "random":
            p = float(args[0])
            rng = self._rng.random
            self.go = (lambda: True) if p == 0 else (lambda: rng() >= p)
        elif kind == "periodic":
            self._bits = itertools.cycle([bit == "1" for bit in args[0]])
            self.go = lambda: next(self._bits)
        elif kind == "burst":
            self._length, self._p = int(args[0]), float(args[1])
            self.go = self._burst
        else:  # spec_text validated the kind
            raise AssertionError(kind)

    def _burst(self) -> bool:
        if self._held:
            self._held -= 1
            return False
        if self._rng.random() < self._p:
            self._held = self._length - 1
            return False
        return True

    @property
    def always(self) -> bool:
        """True if the pattern never holds back."""
        return self.spec in ("none", "random:0", "random:0.0")

    def __repr__(self):
        return f"Pattern({self.spec!r})"


def spec_text(spec) -> str:
    """The canonical text of a pattern specification; ``ValueError`` naming what is wrong."""
    if isinstance(spec, Pattern):
        return spec.spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        spec = f"random:{spec}"
    text = str(spec).strip()
    try:
        float(text)
        text = f"random:{text}"
    except ValueError:
        pass
    kind, *args = text.split(":")
    ok = False
    if kind == "none":
        ok = not args
    elif kind == "random" and len(args) == 1:
        ok = _number(args[0], 0.0, 1.0, strict_high=True)
    elif kind == "periodic" and len(args) == 1:
        ok = bool(args[0]) and set(args[0]) <= {"0", "1"} and "1" in args[0]
    elif kind == "burst" and len(args) == 2:
        ok = args[0].isdigit() and int(args[0]) >= 1 and _number(args[1], 0.0, 1.0,
                                                                  strict_high=True)
    if not ok:
        raise ValueError(f"pattern {spec!r} is not one of none, random:P (0 <= P < 1), "
                         "periodic:BITS (with a 1), burst:N:P")
    return text


def _number(text, lo, hi, *, strict_high=False) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return lo <= value < hi if strict_high else lo <= value <= hi


def crossed(idle=None, stall=None) -> list[tuple[str, str]]:
    """Pairs (idle pattern, stall pattern): every default idle pattern with every default stall
    pattern, or only the given one on a side where one is given."""
    idles = [spec_text(idle)] if idle is not None else list(IDLE_PATTERNS)
    stalls = [spec_text(stall)] if stall is not None else list(STALL_PATTERNS)
    return list(itertools.product(idles, stalls))


def scheduled(cases: list, pairs: list) -> list:
    """``(case, pair)`` for running every case and every pattern pair at least once: case ``k %
    len(cases)`` under pair ``k % len(pairs)``, ``k < max(len(cases), len(pairs))`` (cases repeat,
    first ones first, only where there are more pairs than cases)."""
    if not cases:
        return []
    return [(cases[k % len(cases)], pairs[k % len(pairs)])
            for k in range(max(len(cases), len(pairs)))]
