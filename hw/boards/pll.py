"""The boards' clocks: PLL settings for a target frequency, and the clock domain built on them.

* ECP5 ``EHXPLLL`` (the ULX3S's 25 MHz oscillator): ``f = fin / CLKI_DIV * CLKFB_DIV`` with the
  feedback from CLKOP, the phase detector at 3.125..400 MHz, the VCO (``f * CLKOP_DIV``) at
  400..800 MHz.
* iCE40 ``SB_PLL40_PAD`` (the iCEBreaker's 12 MHz oscillator on the PLL pad): simple feedback,
  ``f = fin / (DIVR + 1) * (DIVF + 1) / 2**DIVQ``, the phase detector at 10..133 MHz, the VCO at
  533..1066 MHz, the output at 16..275 MHz.

Each :class:`Clocking` gives the PLL output and a reset held until the PLL has locked and ``hold``
more cycles have passed (iCE40 block RAMs read as zeros for a few microseconds after
configuration), for its parent's ``sync`` domain.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import *
from amaranth.lib import io

__all__ = ["PLLSettings", "ecp5_pll", "ice40_pll", "Clocking", "ECP5Clocking",
           "ICE40Clocking", "FAMILIES"]

#: A PLL may miss the target frequency by this much (relative).
TOLERANCE = 0.01


@dataclass(frozen=True)
class PLLSettings:
    """What a PLL is set to: its parameters (the primitive's names) and the frequency they
    give."""
    family: str
    input_hz: float
    output_hz: float
    params: dict


def _best(family, input_hz, target_hz, candidates):
    if not candidates:
        raise ValueError(f"{family} PLL: no setting makes a clock from {input_hz / 1e6:g} MHz "
                         f"near {target_hz / 1e6:g} MHz")
    hz, params = min(candidates, key=lambda c: abs(c[0] - target_hz))
    if abs(hz - target_hz) > TOLERANCE * target_hz:
        raise ValueError(f"{family} PLL: {target_hz / 1e6:g} MHz cannot be made from "
                         f"{input_hz / 1e6:g} MHz within {TOLERANCE:.0%}; nearest "
                         f"{hz / 1e6:.4g} MHz")
    return PLLSettings(family, input_hz, hz, params)


def ecp5_pll(input_hz: float, target_hz: float) -> PLLSettings:
    """EHXPLLL dividers for ``target_hz`` (within 1 %; ``ValueError`` otherwise)."""
    candidates = []
    for clki in range(1, 129):
        pfd = input_hz / clki
        if not 3.125e6 <= pfd <= 400e6:
            continue
        for clkfb in range(1, 81):
            out = pfd * clkfb
            if out > 400e6:
                break
            fitting = [d for d in range(1, 129) if 400e6 <= out * d <= 800e6]
            if fitting:
                clkop = fitting[len(fitting) // 2]      # the VCO mid-range
                candidates.append((out, {"CLKI_DIV": clki, "CLKFB_DIV": clkfb,
                                         "CLKOP_DIV": clkop, "CLKOP_CPHASE": clkop - 1}))
    return _best("ECP5", input_hz, target_hz, candidates)


def ice40_pll(input_hz: float, target_hz: float) -> PLLSettings:
    """SB_PLL40 (simple feedback) dividers for ``target_hz`` (within 1 %)."""
    candidates = []
    for divr in range(16):
        pfd = input_hz / (divr + 1)
        if not 10e6 <= pfd <= 133e6:
            continue
        filter_range = next(k for k, top in enumerate((17e6, 26e6, 44e6, 66e6, 101e6, 1e12), 1)
                            if pfd < top)
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533e6 <= vco <= 1066e6:
                continue
            for divq in range(1, 7):
                out = vco / 2 ** divq
                if 16e6 <= out <= 275e6:
                    candidates.append((out, {"DIVR": divr, "DIVF": divf, "DIVQ": divq,
                                             "FILTER_RANGE": filter_range}))
    return _best("iCE40", input_hz, target_hz, candidates)


def _reset_after_lock(m: Module, clocking, clk, locked, hold: int):
    """``clocking.clk`` is ``clk``; ``clocking.rst`` holds until ``locked`` (synchronized) has
    been high for ``hold`` cycles."""
    m.domains.por = ClockDomain("por", reset_less=True, local=True)
    m.d.comb += [ClockSignal("por").eq(clk), clocking.clk.eq(clk)]
    meta, locked_q = Signal(), Signal()
    m.d.por += [meta.eq(locked), locked_q.eq(meta)]
    count = Signal(range(hold + 1))
    with m.If(~locked_q):
        m.d.por += count.eq(0)
    with m.Elif(count != hold):
        m.d.por += count.eq(count + 1)
    m.d.comb += clocking.rst.eq(count != hold)


class Clocking(Elaboratable):
    """A board's clock: ``clk`` from a PLL fed by the oscillator of clock resource
    ``resource``, ``rst`` high until the PLL has locked and ``hold`` cycles have passed (the
    parent makes its ``sync`` domain of them)."""

    def __init__(self, settings: PLLSettings, *, resource: str, hold: int = 4096):
        self.settings, self._resource, self._hold = settings, resource, hold
        self.clk, self.rst = Signal(), Signal(init=1)


class ECP5Clocking(Clocking):
    """:class:`Clocking` with an EHXPLLL."""

    def elaborate(self, platform):
        m = Module()
        p = self.settings.params
        m.submodules.clk_buf = buf = io.Buffer("i", platform.request(self._resource, dir="-"))
        clk, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
        m.submodules.pll = Instance(
            "EHXPLLL",
            # The loop filter settings nextpnr's ecppll writes for every configuration.
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=p["CLKI_DIV"], p_CLKFB_DIV=p["CLKFB_DIV"], p_CLKOP_DIV=p["CLKOP_DIV"],
            p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            i_CLKI=buf.i, i_CLKFB=clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk, o_LOCK=locked)
        _reset_after_lock(m, self, clk, locked, self._hold)
        return m


class ICE40Clocking(Clocking):
    """:class:`Clocking` with an SB_PLL40_PAD on the oscillator's pad."""

    def elaborate(self, platform):
        m = Module()
        p = self.settings.params
        pad = platform.request(self._resource, dir="-")
        clk, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
        m.submodules.pll = Instance(
            "SB_PLL40_PAD", p_FEEDBACK_PATH="SIMPLE", p_DIVR=p["DIVR"], p_DIVF=p["DIVF"],
            p_DIVQ=p["DIVQ"], p_FILTER_RANGE=p["FILTER_RANGE"],
            i_PACKAGEPIN=pad.io, i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=clk, o_LOCK=locked)
        _reset_after_lock(m, self, clk, locked, self._hold)
        return m


#: Per FPGA family: the PLL settings search and the clocking built on them.
FAMILIES = {"ecp5": (ecp5_pll, ECP5Clocking), "ice40": (ice40_pll, ICE40Clocking)}
