"""``snnforge report``: build/results/*.json -> build/report.md (tables) + PNG plots."""

from __future__ import annotations

import os
from pathlib import Path

from .generate import build_root
from .results import load_results

__all__ = ["write_report", "counted"]


def _params_text(record, keys=None):
    params = record.get("params", {})
    return ", ".join(f"{k}={v}" for k, v in params.items() if keys is None or k in keys)


def counted(stats: dict) -> str:
    """What a bench counted (its ``items`` and ``unit``), as text: ``"2,000 neurons"``."""
    return f"{stats['items']:,} {stats.get('unit', 'items')}" if "items" in stats else ""


def _latest(records, key):
    """Newest record per key (results accumulate across runs)."""
    out = {}
    for record in sorted(records, key=lambda r: r.get("time", "")):
        out[key(record)] = record
    return list(out.values())


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _plot_synth(synth, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['generator']}\n{r['target']}" for r in synth]
    luts = [r["cells"].get("lut4", 0) for r in synth]
    ffs = [r["cells"].get("ff", 0) for r in synth]
    fmax = [r.get("fmax_mhz") or 0 for r in synth]
    fig, (a, b) = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(synth)), 4))
    xs = range(len(synth))
    a.bar([x - 0.2 for x in xs], luts, 0.4, label="LUT4")
    a.bar([x + 0.2 for x in xs], ffs, 0.4, label="FF")
    a.set_xticks(list(xs), labels, fontsize=7)
    a.set_yscale("log")
    a.set_title("resources")
    a.legend()
    b.bar(list(xs), fmax, color="tab:green")
    b.axhline(100, color="grey", linestyle="--", linewidth=1)
    b.set_xticks(list(xs), labels, fontsize=7)
    b.set_title("Fmax (MHz)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(outfile=None) -> Path:
    records = load_results()
    out = Path(outfile) if outfile else build_root() / "report.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    ident = lambda r: (r["generator"], r.get("verilog_sha256"))
    sims = _latest([r for r in records if r["kind"] == "sim"], ident)
    lints = _latest([r for r in records if r["kind"] == "lint"], ident)
    synth = _latest([r for r in records if r["kind"] == "synth"],
                    lambda r: (r["generator"], r.get("verilog_sha256"), r.get("target")))
    benches = _latest([r for r in records if r["kind"] == "bench"], lambda r: r.get("name"))

    parts = ["# snnforge report", "",
             "Every number below was measured by a command of this repository; each section names "
             "it. Results accumulate in `build/results/`; the newest run per design is shown.", ""]
    if sims:
        parts += ["## Regressions (`snnforge sim NAME`)", "", _table(
            ["block", "params", "passed", "failed", "checked", "sim seconds", "cycles/s"],
            [(r["generator"], _params_text(r), r["passed"], r["failed"],
              counted(r["stats"]), r["seconds"],
              f"{r['cycles_per_second']:,.0f}" if r.get("cycles_per_second") else "")
             for r in sims]), ""]
    if lints:
        parts += ["## Lint (`snnforge lint NAME`)", "", _table(
            ["block", "params", "result", "waived"],
            [(r["generator"], _params_text(r), "clean" if r["ok"] else f"{len(r['issues'])} issues",
              ", ".join(f"{k} x{v}" for k, v in sorted(r["waived"].items())))
             for r in lints]), ""]
    if synth:
        png = out.with_name("report_synth.png")
        _plot_synth(synth, png)
        parts += ["## Synthesis (`snnforge synth NAME --target T`)", "", _table(
            ["block", "params", "target", "LUT4", "LUTRAM", "FF", "BRAM", "DSP", "Fmax MHz",
             "wrapper"],
            [(r["generator"], _params_text(r), r["target"], r["cells"].get("lut4"),
              r["cells"].get("lutram"), r["cells"].get("ff"), r["cells"].get("bram"),
              r["cells"].get("dsp"), r.get("fmax_mhz", "n/a"),
              "serial I/O" if r.get("serial_io_wrapper") else "out-of-context"
              if r["target"].startswith("ecp5") else "-")
             for r in synth]), "", f"![synthesis]({png.name})", ""]
    for r in benches:
        parts += [f"## {r.get('title', r.get('name'))}", "", r.get("markdown", ""), ""]
        for image in r.get("images", []):
            parts += [f"![{Path(image).stem}]({os.path.relpath(image, out.parent)})", ""]
    out.write_text("\n".join(parts) + "\n")
    return out
