"""System energy model of the LoAS paper (``shared/papers/loas.md`` section 9).

``E = cycles * c_time * P_leak + 2.9 * DRAM_bytes + 0.0681 * SRAM_bytes + E_op * ops``

with ``c_time = 1/800`` (µs, 800 MHz clock), ``P_leak`` in mW and ``E_op`` in pJ per effectual
operation. The authors' code mixes KB and x1024 conversions, so the terms do not share one unit:
use the result only to compare designs under the same model (ratios), never as joules.
"""

from __future__ import annotations

import math

__all__ = ["CLOCK_MHZ", "C_TIME", "DRAM_FACTOR", "DRAM_FACTOR_ANN", "SRAM_FACTOR", "SRAM_LEAK_MW",
           "DESIGNS", "energy"]

CLOCK_MHZ = 800.0
#: One clock period in µs (``c_time = 1/800`` in the authors' script).
C_TIME = 1.0 / CLOCK_MHZ
DRAM_FACTOR = 2.9
#: DRAM factor of the authors' ANN-vs-SNN comparison, for ``energy(..., dram_factor=...)``.
DRAM_FACTOR_ANN = 9.6
SRAM_FACTOR = 0.0681
#: Leakage of the 256 KB global SRAM: 16 banks x 7.78 mW.
SRAM_LEAK_MW = 124.48

#: design -> (P_leak in mW, E_op in pJ), loas.md section 9.
DESIGNS = {
    "loas": (0.5 + SRAM_LEAK_MW, 5.8),
    "sparten_s": (0.5 + SRAM_LEAK_MW, 6.15),
    "gospa_s": (31 + 148, 1.34 * 1.3),     # x1.3: the ID-generator overhead
    "gamma_s": (0.32 + 148, 4.98 * 6 / 8),
}


def energy(design: str, cycles, dram_bytes, sram_bytes, ops, *,
           dram_factor: float = DRAM_FACTOR) -> float:
    """Relative energy of one run: ``cycles*C_TIME*P_leak + dram_factor*dram_bytes
    + SRAM_FACTOR*sram_bytes + E_op*ops`` with ``(P_leak, E_op) = DESIGNS[design]``."""
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {', '.join(DESIGNS)}, not {design!r}")
    for name, v in (("cycles", cycles), ("dram_bytes", dram_bytes), ("sram_bytes", sram_bytes),
                    ("ops", ops), ("dram_factor", dram_factor)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite non-negative number, not {v!r}")
    p_leak, e_op = DESIGNS[design]
    return cycles * C_TIME * p_leak + dram_factor * dram_bytes + SRAM_FACTOR * sram_bytes + e_op * ops
