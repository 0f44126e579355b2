"""Parameters and MACs of a network whose 3x3 convs are TT-decomposed, against the dense network.

:data:`RESNET34_NCALTECH` is the real rank table of TT-SNN's ResNet-34 on N-Caltech101 (T = 6,
48x48, 2 polarities; from the authors' simulator workload files): the stem conv and the FC stay
dense, each of the 32 block convs has its own rank. A TT conv has ``r (Cin + Cout) + 6 r^2``
weights and as many MACs per output position; a dense 3x3 ``9 Cin Cout``. Every conv is counted at
its output map (the TT convs run at stride 1 and a max-pool follows where the map halves).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConvShape", "RESNET34_NCALTECH", "PAPER_CLAIMS", "tt_params", "param_flop_report",
           "SATA_OP_ENERGY", "SATA_UNITS", "ANN_MAC", "op_energy"]


@dataclass(frozen=True)
class ConvShape:
    """One conv layer: channels, output map side, kernel (3: a 3x3, 1: 1x1 or FC)."""

    cin: int
    cout: int
    side: int
    kernel: int = 3
    name: str = ""

    @property
    def dense_params(self) -> int:
        return self.kernel ** 2 * self.cin * self.cout

    @property
    def positions(self) -> int:
        return self.side ** 2


def tt_params(cin: int, cout: int, r: int) -> int:
    """Weights of one TT conv: G1 ``r Cin``, G2 and G3 ``3 r^2`` each, G4 ``r Cout``."""
    return r * (cin + cout) + 6 * r * r


def _resnet34_ncaltech():
    ranks = ((64, 48, (24, 23, 22, 17, 16, 12)),
             (128, 24, (22, 31, 25, 25, 24, 21, 20, 19)),
             (256, 12, (48, 79, 64, 69, 63, 69, 60, 65, 63, 63, 62, 58)),
             (512, 6, (121, 170, 173, 147, 161, 108)))
    shapes, tt = [ConvShape(2, 64, 48, name="stem")], [None]
    cin = 64
    for stage, (ch, side, rs) in enumerate(ranks, start=1):
        for j, r in enumerate(rs):
            shapes.append(ConvShape(cin, ch, side, name=f"stage{stage}.conv{j}"))
            tt.append(r)
            cin = ch
    shapes.append(ConvShape(512, 101, 1, kernel=1, name="fc"))
    tt.append(None)
    return tuple(shapes), tuple(tt)


#: (shapes, ranks): ``None`` where a layer stays dense.
RESNET34_NCALTECH = _resnet34_ncaltech()
#: The paper's abstract for that network.
PAPER_CLAIMS = {"params": 7.98, "flops": 9.25}


def param_flop_report(shapes, ranks) -> dict:
    """Totals and reductions of the dense and TT networks: parameters, MACs per time step (TT
    modes STT/PTT, and HTT's late steps without G2/G3), per layer and in all."""
    if len(shapes) != len(ranks):
        raise ValueError(f"ranks must give one entry per shape ({len(shapes)}), not {len(ranks)}")
    rows = []
    for shape, r in zip(shapes, ranks):
        if r is not None and (shape.kernel != 3 or not isinstance(r, int) or r < 1):
            raise ValueError(f"{shape.name or shape}: a rank needs a 3x3 conv and r >= 1")
        dense = shape.dense_params
        tt = dense if r is None else tt_params(shape.cin, shape.cout, r)
        late = dense if r is None else r * (shape.cin + shape.cout)
        rows.append({"name": shape.name, "cin": shape.cin, "cout": shape.cout, "side": shape.side,
                     "rank": r, "dense_params": dense, "tt_params": tt,
                     "dense_macs": dense * shape.positions, "tt_macs": tt * shape.positions,
                     "htt_late_macs": late * shape.positions})
    total = {k: sum(row[k] for row in rows) for k in ("dense_params", "tt_params", "dense_macs",
                                                      "tt_macs", "htt_late_macs")}
    return {"layers": rows, "total": total,
            "param_reduction": total["dense_params"] / total["tt_params"],
            "mac_reduction": total["dense_macs"] / total["tt_macs"]}


#: SATA's per-operation energies, 16-bit, relative units (``RuokaiYin/SATA_Sim`` d447058,
#: ``training_energy_cal/energy_configs.py``; ``shared/papers/ttsnn.md`` section 7).
SATA_OP_ENERGY = {"mul": 0.239, "acc": 0.0389, "add": 0.00967, "and": 0.000794, "comp": 0.00309,
                  "mux": 0.00172, "reg": 0.0301, "shift": 0.00605}
#: The units SATA composes from them: a spike x weight accumulate (AND + ACC), a multi-bit
#: multiply-accumulate, a LIF update (add, compare, 2 mux, 3 registers, a shift), the partial
#: gradient unit of BPTT (1 mul, 2 add, 1 mux, 2 shift) and a weight update (add, shift).
SATA_UNITS = {
    "ac": ("and", "acc"), "mac": ("mul", "acc"),
    "lif": ("add", "comp", "mux", "mux", "reg", "reg", "reg", "shift"),
    "pgu": ("mul", "add", "add", "mux", "shift", "shift"), "update": ("add", "shift")}
#: SATA normalises its results to one ANN MAC (mul + acc).
ANN_MAC = SATA_OP_ENERGY["mul"] + SATA_OP_ENERGY["acc"]


def op_energy(ops: dict) -> float:
    """Computation energy of ``{unit: count}`` (units of :data:`SATA_UNITS`) in SATA's units
    (one ANN MAC = :data:`ANN_MAC`); memory energy is not modelled."""
    unknown = set(ops) - set(SATA_UNITS)
    if unknown:
        raise ValueError(f"unknown operation units {sorted(unknown)}; known: "
                         f"{', '.join(SATA_UNITS)}")
    return sum(n * sum(SATA_OP_ENERGY[op] for op in SATA_UNITS[unit]) for unit, n in ops.items())
