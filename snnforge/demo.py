"""``make demo`` / ``snnforge demo``: every generator's demo configuration through the whole flow."""

from __future__ import annotations

import importlib
import time

from rich.table import Table

from . import flows
from .deploy import deployers
from .generate import generate
from .registry import generators

__all__ = ["run_demo"]


def _changed(gen, params):
    defaults = {p.name: p.default for p in gen.params}
    text = ", ".join(f"{k}={v}" for k, v in params.items() if defaults.get(k) != v)
    return text or "defaults"


def run_demo(console, *, place: bool = True) -> bool:
    start = time.monotonic()
    rows, ok = [], True
    for gen in generators().values():
        if gen.demo_targets is None:
            continue
        design = generate(gen.name, gen.demo_params)
        console.rule(f"{gen.name} ({_changed(gen, design.params)})")
        sim = flows.run_regression(console, gen.name, options=gen.demo_options, design=design)
        lint = flows.run_lint(console, design)
        synth = {target: flows.run_synth(console, design, target, place=place)
                 for target in gen.demo_targets}
        ok &= sim.ok and lint.ok and all("pnr_error" not in r for r in synth.values())
        rows.append((gen, design, sim, lint, synth))

    table = Table(title="snnforge demo summary", show_lines=False)
    numeric = ("LUT4", "FF", "BRAM", "DSP", "Fmax MHz")
    for column in ("block", "params", "tests", "lint", "target") + numeric:
        table.add_column(column, justify="right" if column in numeric else "left")
    for gen, design, sim, lint, synth in rows:
        tests = f"{len(sim.passed)}/{len(sim.passed) + len(sim.failed)} passed"
        if flows.counted(sim.stats):
            tests += f" ({flows.counted(sim.stats)})"
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
    for module in deployers().values():
        ok &= importlib.import_module(module).demo(console)
    console.print(f"report: {flows.write_report()}  ({time.monotonic() - start:.0f} s)")
    return ok
