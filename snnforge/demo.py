"""``make demo`` / ``snnforge demo``: every generator's demo configuration through the whole flow."""

from __future__ import annotations

import importlib.util
import time

from rich.table import Table

from . import flows
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
    ok &= _deploy_demo(console)
    console.print(f"report: {flows.write_report()}  ({time.monotonic() - start:.0f} s)")
    return ok


def _deploy_demo(console) -> bool:
    """``snnforge deploy`` on a third-party network -- the snnTorch digits MLP, exported by
    snnTorch's own NIR exporter, on the LoAS demo core's RTL over the digits test split -- and
    on the DT-SNN spiking ViT, with its time-step masks and without."""
    console.rule("deploy: an snnTorch network through NIR onto loas")
    missing = [m for m in ("snntorch", "nirtorch", "sklearn")
               if importlib.util.find_spec(m) is None]
    if missing:
        console.print(f"skipped: {', '.join(missing)} not installed (development dependencies: "
                      f"pip install 'snnforge[dev]')")
        return True
    import numpy as np
    from .golden.nir.digits import digits_spikes, export_nir, train_snntorch_digits
    from .deploy import run_deploy
    from .generate import build_root
    work = build_root() / "demo"
    work.mkdir(parents=True, exist_ok=True)
    with console.status("training the snnTorch digits MLP ..."):
        net, _ = train_snntorch_digits()
        export_nir(net, work / "digits.nir")
    x, y = digits_spikes(4)
    np.save(work / "digits_x.npy", x)
    np.save(work / "digits_y.npy", y)
    report = run_deploy(console, work / "digits.nir", data=work / "digits_x.npy",
                        labels=work / "digits_y.npy", outdir=work / "deploy")
    ok = report["results"]["rtl_equals_golden"]

    console.rule("deploy: the DT-SNN spiking ViT (STAtten) with dynamic time steps onto loas")
    from .dtsnn import deploy as deploy_dtsnn, token_data, train as train_dtsnn
    train_dtsnn(console, outdir=work / "dtsnn", attention="statten")
    x, y = token_data(4)
    np.save(work / "dtsnn_x.npy", x[:DTSNN_IMAGES])
    np.save(work / "dtsnn_y.npy", y[:DTSNN_IMAGES])
    report = deploy_dtsnn(console, work / "dtsnn" / "dtsnn.pt", data=work / "dtsnn_x.npy",
                          labels=work / "dtsnn_y.npy", outdir=work / "dtsnn_deploy",
                          compare_unmasked=True)
    return ok and report["results"]["rtl_equals_golden"]


#: Test images the demo runs the ViT on (each about 2 s of simulation, twice: with its masks and
#: with every step open).
DTSNN_IMAGES = 32
