"""Result files under ``build/results``: one JSON per (kind, design, target), read by the report."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .generate import build_root, source_fingerprint

__all__ = ["save_result", "load_results", "results_dir", "measured_synthesis"]


def results_dir() -> Path:
    return build_root() / "results"


def save_result(kind: str, design, data: dict, *, suffix: str = "") -> Path:
    """Store ``data`` (plus design identity and a timestamp) as ``<kind>-<key>[-suffix].json``."""
    path = results_dir() / f"{kind}-{design.key}{('-' + suffix) if suffix else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"kind": kind, "generator": design.top, "params": design.params,
              "verilog_sha256": design.sha256, "source": source_fingerprint()[:16],
              "time": time.strftime("%Y-%m-%d %H:%M:%S"),
              **data}
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


def load_results() -> list[dict]:
    out = []
    for path in sorted(results_dir().glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "kind" in record:
            record["_path"] = str(path)
            out.append(record)
    return out


def measured_synthesis(generator: str, params: dict) -> list[str]:
    """One line per target on which a configuration was synthesized (its latest record):
    cells, share of the device's logic, Fmax, and when it was measured (flagged if the
    generator sources have changed since)."""
    latest = {}
    for record in load_results():
        if (record["kind"] == "synth" and record.get("generator") == generator
                and record.get("params") == params):
            target = record.get("target")
            if target not in latest or record["time"] > latest[target]["time"]:
                latest[target] = record
    lines = []
    for target, r in sorted(latest.items()):
        cells = ", ".join(f"{k.upper()} {v}" for k, v in r["cells"].items() if v)
        if "logic_cells" in r:
            used, available = r["logic_cells"]
            cells += f"; logic {used}/{available} ({used / available:.0%})"
        placed = "pnr_error" in r or "constraint_mhz" in r
        fmax = (f"Fmax {r['fmax_mhz']} MHz" if r.get("fmax_mhz")
                else "not placed" if placed else "synthesis only")
        stale = "" if r.get("source") == source_fingerprint()[:16] else ", older sources"
        lines.append(f"{target}: {cells}; {fmax} (measured {r['time']}{stale})")
    return lines
