"""Register-to-register logic paths of a synthesized ECP5 netlist, without placing it.

nextpnr reports one critical path per clock and takes minutes on a whole core; timing closure
needs the next twenty paths after a change, in seconds. :func:`worst_paths` estimates every
endpoint's arrival time on Yosys's ``synth_ecp5`` JSON netlist with the ECP5 speed-grade-6
delays nextpnr reports (a LUT level ~0.24 ns, a carry step 0.07 ns, a sysDSP multiplier 3.9 ns)
plus a flat routing delay per general net -- on the placed LoAS cores routing is 60-70 % of a
path, so the flat estimate ranks paths well (on the LoAS core its worst path came out 6-21 %
below nextpnr's) but its MHz are a guide, not a result.

    python -m snnforge.synth.paths build/synth/<design>/netlist.json [-n 20]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from functools import lru_cache
from pathlib import Path

__all__ = ["worst_paths", "signal_of"]

_CELL_SUFFIX = re.compile(r"(_(TRELLIS|SB|CCU2C|LUT4|PFUMX|L6MUX21|MULT18X18D|DP16KD|ICESTORM|"
                          r"DPR16X4)[A-Za-z0-9_]*)?(\[\d+\])?(\$.*)?$")


def signal_of(name: str) -> str:
    """The source signal a nextpnr cell or net name was derived from (``st_per_TRELLIS_FF_Q_1``
    -> ``st_per``; ``expect[13]`` -> ``expect``): mapped cells carry the net they drive, then
    the mapping's suffixes. Yosys's anonymous names (``$332...``) stay as they are."""
    name = name.lstrip("\\")
    return name if name.startswith("$") else _CELL_SUFFIX.sub("", name) or name


ROUTE_NS = 0.9          # a general-routing hop (no carry-chain or PFU-internal net)
#: clock to output (ns); a DP16KD without its output register as nextpnr's speed-6 model has it
CLK_TO_Q_NS = {"TRELLIS_FF": 0.52, "DP16KD": 5.83, "MULT18X18D": 0.6, "TRELLIS_DPR16X4": 0.52}
#: (cell type, output port) -> delay from any input (ns); carries: (type, "CIN->COUT").
LOGIC_NS = {"LUT4": 0.24, "PFUMX": 0.25, "L6MUX21": 0.25, "CCU2C": 0.45, "CCU2C.CIN": 0.07,
            "TRELLIS_DPR16X4": 0.6, "MULT18X18D": 3.9, "ALU54B": 2.5}
#: inputs that end a path (sampled at a clock edge)
ENDPOINTS = {"TRELLIS_FF": ("DI", "CE", "LSR"), "DP16KD": None, "TRELLIS_DPR16X4": ("DI", "WAD",
                                                                                   "WRE")}
#: ports of PFU-internal or dedicated nets: no general routing in front of them
DEDICATED = {("CCU2C", "CIN"), ("PFUMX", "ALUT"), ("PFUMX", "BLUT"), ("L6MUX21", "D0"),
             ("L6MUX21", "D1")}


def _top(netlist: dict) -> dict:
    for module in netlist["modules"].values():
        if int(str(module.get("attributes", {}).get("top", 0)), 2 if
               isinstance(module.get("attributes", {}).get("top"), str) else 10):
            return module
    raise ValueError("the netlist has no top module")


def worst_paths(netlist: dict, count: int = 20) -> list[dict]:
    """The ``count`` latest-arriving endpoints: ``{"ns", "mhz", "levels", "to", "through"}``,
    ``through`` naming the signals on the path (from its register to the endpoint)."""
    module = _top(netlist)
    names = {}
    for name, net in module["netnames"].items():
        if net.get("hide_name"):
            continue
        for i, bit in enumerate(net["bits"]):
            if isinstance(bit, int):
                label = name.lstrip("\\") + (f"[{i}]" if len(net["bits"]) > 1 else "")
                if bit not in names or len(label) < len(names[bit]):
                    names[bit] = label
    driver = {}
    cells = module["cells"]
    for cname, cell in cells.items():
        for port, direction in cell.get("port_directions", {}).items():
            if direction == "output":
                for bit in cell["connections"][port]:
                    if isinstance(bit, int):
                        driver[bit] = (cname, port)

    sys.setrecursionlimit(1_000_000)

    @lru_cache(maxsize=None)
    def arrival(bit) -> tuple[float, int, tuple]:
        """(ns, logic levels, path bits) at the output driving ``bit``."""
        if bit not in driver:
            return 0.0, 0, (bit,)          # a port, or a constant: launched by a register
        cname, port = driver[bit]
        cell = cells[cname]
        kind = cell["type"]
        if kind in CLK_TO_Q_NS and (kind != "MULT18X18D" or _registered(cell)) and \
                kind not in ("TRELLIS_DPR16X4",):
            return CLK_TO_Q_NS[kind], 0, (bit,)
        best = (0.0, 0, ())
        for iport, direction in cell["port_directions"].items():
            if direction != "input" or iport in ("CLK", "WCK"):
                continue
            if kind == "TRELLIS_DPR16X4" and iport not in ("RAD0", "RAD1", "RAD2", "RAD3"):
                continue
            for ibit in cell["connections"][iport]:
                if not isinstance(ibit, int):
                    continue
                ns, levels, path = arrival(ibit)
                if kind == "CCU2C" and iport == "CIN":
                    step = LOGIC_NS["CCU2C.CIN"]
                else:
                    step = LOGIC_NS.get(kind, 0.3)
                    levels += 1
                ns += step + (0.0 if (kind, iport) in DEDICATED else ROUTE_NS)
                if ns > best[0]:
                    best = (ns, levels, path + (bit,))
        return best

    ends = []
    for cname, cell in cells.items():
        kind = cell["type"]
        if kind not in ENDPOINTS:
            continue
        ports = ENDPOINTS[kind] or [p for p, d in cell["port_directions"].items()
                                    if d == "input" and not p.startswith("CLK")]
        worst = None
        for port in ports:
            for bit in cell["connections"].get(port, []):
                if isinstance(bit, int):
                    ns, levels, path = arrival(bit)
                    ns += ROUTE_NS
                    if worst is None or ns > worst[0]:
                        worst = (ns, levels, path)
        if worst:
            ends.append((worst, cname))
    ends.sort(key=lambda e: -e[0][0])
    out, seen = [], set()
    for (ns, levels, path), cname in ends:
        through = []
        for bit in path:
            label = signal_of(names.get(bit, "$"))
            if not label.startswith("$") and (not through or through[-1] != label):
                through.append(label)
        key = tuple(through)
        if key in seen:
            continue
        seen.add(key)
        out.append({"ns": round(ns, 2), "mhz": round(1000 / ns, 1), "levels": levels,
                    "to": cname.lstrip("\\"), "through": through})
        if len(out) == count:
            break
    return out


def _registered(cell) -> bool:
    return any(v not in ("NONE", "BYPASS") for k, v in cell.get("parameters", {}).items()
               if k.startswith("REG_OUTPUT"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("netlist", type=Path)
    ap.add_argument("-n", type=int, default=20, help="paths to list")
    args = ap.parse_args(argv)
    for p in worst_paths(json.loads(args.netlist.read_text()), args.n):
        print(f"{p['ns']:6.2f} ns {p['mhz']:6.1f} MHz {p['levels']:3d} levels  "
              + " -> ".join(p["through"]))


if __name__ == "__main__":
    main()
