"""Parameters of the integer LIF neuron (:class:`LIFParams`), apart from the model itself.

They are what the hardware generators and drivers configure, so they import nothing heavy: the
golden model (:mod:`.lif`, with ``torch``) re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...params import Config, param

__all__ = ["LEAKS", "RESETS", "MASKED", "LIFParams", "signed_range"]

LEAKS = ("none", "shift", "mul")
RESETS = ("hard", "soft")
MASKED = ("integrate", "gate_reset", "leak_only")


def signed_range(width: int) -> tuple[int, int]:
    """Inclusive range of a ``width``-bit two's-complement value."""
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def _leak_shift_max(p) -> int:
    return (1 << p.shift_bits) - 1


@dataclass(frozen=True)
class LIFParams(Config):
    """Every knob of the integer LIF neuron, hardware structure and register values alike.

    Structure (generator parameters): ``T``, ``in_width``, ``mem_width``, ``leak``, ``leak_frac``,
    ``reset``, ``saturate``, ``masked``. Register values: ``threshold``, ``leak_shift``,
    ``leak_mul`` (the one a leak kind uses is its *leak amount*, :attr:`leak_amount`).
    """

    T: int = param(4, "time steps per neuron (all evaluated in one pass)", lo=1, hi=32)
    in_width: int = param(16, "input current width (signed)", lo=2, hi=32)
    mem_width: int = param(16, "membrane width (signed)", lo=2, hi=32)
    leak: str = param("shift", "leak: none, shift (V - (V >> k)) or mul ((V * beta) >> leak_frac)",
                      choices=LEAKS)
    leak_shift: int = param(
        2, "reset value of the leak shift register k (leak=shift)", lo=0, hi=31,
        check=lambda p, v: v <= _leak_shift_max(p),
        what=lambda p: f"an integer in 0..{_leak_shift_max(p)}")
    leak_frac: int = param(8, "fraction bits of the leak factor beta (leak=mul)", lo=1, hi=16)
    leak_mul: int = param(
        192, "reset value of the leak factor register beta (leak=mul)", lo=0, hi=65535,
        check=lambda p, v: v < (1 << p.leak_frac),
        what=lambda p: f"an integer in 0..{(1 << p.leak_frac) - 1}")
    threshold: int = param(
        64, "reset value of the threshold register", lo=0, hi=2**31 - 1,
        check=lambda p, v: v <= signed_range(p.mem_width)[1],
        what=lambda p: f"an integer in 0..{signed_range(p.mem_width)[1]}")
    reset: str = param("hard", "reset after a spike: hard (to 0) or soft (subtract threshold)",
                       choices=RESETS)
    saturate: bool = param(True, "saturating membrane arithmetic (else two's-complement wrap)")
    masked: str = param("integrate", "masked time step: integrate (output gated only), "
                        "gate_reset (no reset either) or leak_only (input ignored)",
                        choices=MASKED)

    @property
    def shift_bits(self) -> int:
        """Width of the ``leak_shift`` register: enough to shift a membrane fully away."""
        return max(1, (self.mem_width - 1).bit_length())

    @property
    def threshold_bits(self) -> int:
        return self.mem_width - 1

    # -- the leak amount: the one register value the leak kind uses ----------------------------
    @property
    def leak_amount(self) -> int:
        """The leak register's value: ``leak_shift`` (shift), ``leak_mul`` (mul), 0 (none)."""
        return {"none": 0, "shift": self.leak_shift, "mul": self.leak_mul}[self.leak]

    @property
    def leak_amount_bits(self) -> int:
        """Width of the leak register: the shift k, the fraction beta, or 1 (unused)."""
        return {"none": 1, "shift": self.shift_bits, "mul": self.leak_frac}[self.leak]

    @property
    def leak_amount_max(self) -> int:
        """Largest valid leak amount (0 for leak ``none``)."""
        return {"none": 0, "shift": _leak_shift_max(self),
                "mul": (1 << self.leak_frac) - 1}[self.leak]

    @property
    def leak_amount_doc(self) -> str:
        return {"none": "unused (leak none)", "shift": "leak shift k: V - (V >> k)",
                "mul": f"leak factor beta: (V * beta) >> {self.leak_frac}"}[self.leak]

    def with_leak_amount(self, amount: int) -> "LIFParams":
        """These parameters with the leak register set to ``amount`` (ignored for leak none)."""
        field = {"shift": "leak_shift", "mul": "leak_mul"}.get(self.leak)
        return self.replace(**({field: amount} if field else {}))
