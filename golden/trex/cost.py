"""Energy, delay and area of crossbar work: the constants in one table, with their source, and the
rules that turn the RTL's counters into energy, delay, area and EDAP.

Every constant is SpikeSim's (Moitra et al., TCAD 2023; repository
``Intelligent-Computing-Lab-Yale/SpikeSim``, ``ela_spikesim.py``: 65 nm, RRAM crossbars of 64 x
64, 4-bit ADCs shared by 8 columns; ``../shared/papers/trex.md`` section 3.1). How we scale them
to another tile is our choice, stated beside each rule:

* a crossbar read's energy and a crossbar's area scale with the cells (``rows * cols / 64^2``);
* an ADC conversion's energy and an ADC's area scale with its levels (``2^(bits - 4)``: a
  flash / multi-level sense amplifier, NeuroSim's ``levelOutput`` model), each conversion also
  pays the column multiplexer and the digital shift-and-add (SpikeSim's subtractor);
* each crossbar read fetches its input plane from the temporary buffer; each spiking neuron step
  pays SpikeSim's LIF energy;
* delay is the RTL's cycles at SpikeSim's 250 MHz (one conversion round per cycle: the clock is
  limited by the analog sensing, NeuroSim's assumption), area the tile's crossbar, ADCs, muxes,
  shift-and-add units and buffer;
* the digital attention unit (not in SpikeSim): Horowitz's 45 nm figures (ISSCC 2014,
  "Computing's energy problem": 8-bit multiply 0.2 pJ / 282 um^2, 8-bit add 0.03 pJ / 36 um^2)
  per multiply-accumulate and per softmax step (an add per token and pass, one per quotient
  bit); its area is its multipliers and adders. Another node than SpikeSim's: the attention's
  share is indicative, its counts exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from .params import XbarParams

__all__ = ["COSTS", "CLOCK_MHZ", "REFERENCE", "XbarCost", "xbar_cost", "tile_area",
           "attention_cost", "attention_area", "encoder_cost", "VECTOR_MULTIPLIERS"]

#: SpikeSim's reference array, ADC resolution and clock.
REFERENCE = {"rows": 64, "cols": 64, "adc_bits": 4}
CLOCK_MHZ = 250.0

#: name -> (energy in pJ per event, area in um^2 per unit, what the event / unit is).
COSTS = {
    "xbar": (1.76423, 26.2144, "one read of a 64x64 RRAM crossbar / one crossbar"),
    "adc": (2.03084, 693.633, "one 4-bit conversion / one ADC"),
    "mux": (0.094245, 45.9, "one column selection / one 8:1 column multiplexer"),
    "shift_add": (1.15e-6, 13411.41, "one shift-and-add of a code / one unit per ADC"),
    "buffer": (0.2, 484.644, "one input-plane fetch / the temporary buffer"),
    "neuron": (1.274 * 4, 0.0, "one LIF neuron step / (area not modelled)"),
    "mac": (0.2 + 0.03, 282.0 + 36.0, "one 8-bit multiply-accumulate / one multiplier and adder "
                                      "(Horowitz, 45 nm)"),
    "add": (0.03, 36.0, "one 8-bit add / one adder (Horowitz, 45 nm)"),
}


def _cells_scale(p: XbarParams) -> float:
    return p.rows * p.cols / (REFERENCE["rows"] * REFERENCE["cols"])


def _adc_scale(adc_bits: int) -> float:
    return 2.0 ** (adc_bits - REFERENCE["adc_bits"])


def tile_area(p: XbarParams) -> dict:
    """Area in um^2 of one tile, by part (at the tile's built ADC resolution)."""
    area = {"xbar": COSTS["xbar"][1] * _cells_scale(p),
            "adc": COSTS["adc"][1] * _adc_scale(p.adc_bits) * p.n_adc,
            "mux": COSTS["mux"][1] * p.n_adc,
            "shift_add": COSTS["shift_add"][1] * p.n_adc,
            "buffer": COSTS["buffer"][1]}
    area["total"] = sum(area.values())
    return area


@dataclass
class XbarCost:
    """Energy (pJ, by part), delay (ns), area (um^2) and their product EDAP (pJ ns mm^2)."""
    energy: dict
    delay_ns: float
    area: dict

    @property
    def energy_pj(self) -> float:
        return self.energy["total"]

    @property
    def edap(self) -> float:
        return self.energy_pj * self.delay_ns * self.area["total"] * 1e-6

    def as_dict(self) -> dict:
        return {"energy_pj": self.energy, "delay_ns": self.delay_ns, "area_um2": self.area,
                "edap_pj_ns_mm2": self.edap}


def xbar_cost(p: XbarParams, counters: dict, *, adc_bits: int | None = None,
              cycles: int | None = None, clock_mhz: float = CLOCK_MHZ) -> XbarCost:
    """The cost of the work in ``counters`` (the RTL's ``reads``, ``conversions`` and, spiking,
    ``neurons`` with ``neuron_steps`` = neurons x active steps), ADCs used at ``adc_bits``
    resolution, over ``cycles`` (default: the counters' ``busy``)."""
    adc_bits = p.adc_bits if adc_bits is None else adc_bits
    conv = counters["conversions"]
    energy = {"xbar": counters["reads"] * COSTS["xbar"][0] * _cells_scale(p),
              "adc": conv * COSTS["adc"][0] * _adc_scale(adc_bits),
              "mux": conv * COSTS["mux"][0],
              "shift_add": conv * COSTS["shift_add"][0],
              "buffer": counters["reads"] * COSTS["buffer"][0],
              "neuron": counters.get("neuron_steps", 0) * COSTS["neuron"][0]}
    energy["total"] = sum(energy.values())
    cycles = counters["busy"] if cycles is None else cycles
    return XbarCost(energy, cycles * 1e3 / clock_mhz, tile_area(p))


def attention_area(d_head: int) -> float:
    """The attention unit's area in um^2: ``2 d_head + 2`` multiply-accumulators (scores,
    weighted sums, the score scale and the probability) and the softmax's adders (three)."""
    return (2 * d_head + 2) * COSTS["mac"][1] + 3 * COSTS["add"][1]


def attention_cost(counters: dict, d_head: int, quotient_bits: int, *,
                   clock_mhz: float = CLOCK_MHZ) -> XbarCost:
    """The attention unit's work in ``counters`` (its ``rows``, ``macs`` and ``busy``): every
    multiply-accumulate, and per row two adds per token (the distance to the maximum, the sum)
    and one per quotient bit."""
    rows, macs = counters["rows"], counters["macs"]
    tokens = macs // (2 * d_head * rows) if rows else 0
    energy = {"mac": macs * COSTS["mac"][0],
              "softmax": rows * (2 * tokens + quotient_bits) * COSTS["add"][0]}
    energy["total"] = sum(energy.values())
    area = {"attention": attention_area(d_head)}
    area["total"] = area["attention"]
    return XbarCost(energy, counters["busy"] * 1e3 / clock_mhz, area)


#: The encoder core's vector unit: its multipliers (the matmul epilogue's requantization, the
#: LayerNorm's square, reciprocal product and gain, the residual's requantization).
VECTOR_MULTIPLIERS = 5


def encoder_cost(p: XbarParams, counters: dict, d_head: int, quotient_bits: int, *,
                 clock_mhz: float = CLOCK_MHZ) -> XbarCost:
    """The encoder core's work in ``counters`` (``golden``-side names of its RTL counters):
    crossbar reads and ADC conversions as :func:`xbar_cost`, attention rows and MACs as
    :func:`attention_cost`, each vector-unit element operation as one MAC and each activation
    buffer row access (reads and writes) as one buffer access. Delay: the core's busy cycles
    less its weight loading (TReX's tiles hold their weights). Area: one tile, the attention
    unit and the vector unit's multipliers."""
    cycles = counters["busy"] - counters["weight_cycles"]
    xc = xbar_cost(p, {"reads": counters["reads"], "conversions": counters["conversions"]},
                   cycles=cycles, clock_mhz=clock_mhz)
    ac = attention_cost({"rows": counters["attention_rows"], "macs": counters["attention_macs"],
                         "busy": 0}, d_head, quotient_bits)
    energy = {**{f"xbar_{k}": v for k, v in xc.energy.items() if k != "total"},
              "attention": ac.energy_pj,
              "vector": counters["vector_ops"] * COSTS["mac"][0],
              "buffers": (counters["buffer_reads"] + counters["buffer_writes"])
              * COSTS["buffer"][0]}
    energy["total"] = sum(energy.values())
    area = {"tile": xc.area["total"], "attention": ac.area["total"],
            "vector": VECTOR_MULTIPLIERS * COSTS["mac"][1]}
    area["total"] = sum(area.values())
    return XbarCost(energy, xc.delay_ns, area)
