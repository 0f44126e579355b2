"""Result files under ``build/results``: one JSON per (kind, design, target), read by the report."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .generate import build_root

__all__ = ["save_result", "load_results", "results_dir"]


def results_dir() -> Path:
    return build_root() / "results"


def save_result(kind: str, design, data: dict, *, suffix: str = "") -> Path:
    """Store ``data`` (plus design identity and a timestamp) as ``<kind>-<key>[-suffix].json``."""
    path = results_dir() / f"{kind}-{design.key}{('-' + suffix) if suffix else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"kind": kind, "generator": design.top, "params": design.params,
              "verilog_sha256": design.sha256, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
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
