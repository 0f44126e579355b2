"""``make demo`` / ``snnforge demo``: every generator's demo configuration through the whole flow."""

from __future__ import annotations

import time

from rich.table import Table

from .generate import generate
from .generators import GENERATORS

__all__ = ["run_demo"]


def _changed(gen, params):
    defaults = {p.name: p.default for p in gen.params}
    text = ", ".join(f"{k}={v}" for k, v in params.items() if defaults.get(k) != v)
    return text or "defaults"


def run_demo(console, *, place: bool = True) -> bool:
    from .cli import run_lint, run_regression, run_synth
    from .report import write_report

    start = time.monotonic()
    rows, ok = [], True
    for gen in GENERATORS.values():
        if gen.demo_targets is None:
            continue
        design = generate(gen.name, gen.demo_params)
        console.rule(f"{gen.name} ({_changed(gen, design.params)})")
        sim = run_regression(gen.name, gen.demo_params, options=gen.demo_options, design=design)
        lint = run_lint(design)
        synth = {}
        for target in gen.demo_targets:
            synth[target] = run_synth(design, target, place=place)
        ok &= sim.ok and lint.ok and all("pnr_error" not in r for r in synth.values())
        rows.append((gen, design, sim, lint, synth))

    table = Table(title="snnforge demo summary", show_lines=False)
    for column in ("block", "params", "tests", "lint", "target", "LUT4", "FF", "BRAM", "DSP",
                   "Fmax MHz"):
        table.add_column(column, justify="right" if column in ("LUT4", "FF", "BRAM", "DSP",
                                                               "Fmax MHz") else "left")
    for gen, design, sim, lint, synth in rows:
        tests = f"{len(sim.passed)}/{len(sim.passed) + len(sim.failed)} passed"
        if sim.stats.get("neurons"):
            tests += f" ({sim.stats['neurons']} neurons)"
        elif sim.stats.get("layers"):
            tests += f" ({sim.stats['layers']} layers, {sim.stats['outputs']} outputs)"
        first = True
        for target, result in (synth.items() or [(None, None)]):
            cells = (result or {}).get("cells", {})
            fmax = (result or {}).get("fmax_mhz")
            table.add_row(gen.name if first else "", _changed(gen, design.params) if first else "",
                          tests if first else "", ("clean" if lint.ok else "ISSUES") if first else "",
                          target or "-", str(cells.get("lut4", "-")), str(cells.get("ff", "-")),
                          str(cells.get("bram", "-")), str(cells.get("dsp", "-")),
                          f"{fmax:.1f}" if fmax else "-")
            first = False
    console.print(table)
    console.print(f"report: {write_report()}  ({time.monotonic() - start:.0f} s)")
    return ok
