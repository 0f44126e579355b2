"""The flows the command line and the demo both run: regression, lint, synthesis, a job on the
RTL, and the report. Each saves its result under ``build/results`` and prints a short summary on
the given rich console."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .boards import BRIDGE_TIMEOUT_S, board_design, get_board, interface_id
from .driver import Job, JobResult
from .generate import Design, build_root, generate
from .host import HostDriver
from .lint import LintResult, lint_verilog
from .params import SnnforgeError
from .registry import generators, get_generator
from .report import counted, write_report
from .results import save_result
from .serial_link import LinkError, SerialTransport
from .sim.job import write_result
from .sim.runner import BenchResult, run_bench
from .sim.runner import run_job as run_rtl_job
from .synth.flow import synthesize

__all__ = ["run_regression", "run_lint", "run_synth", "run_job", "JobOutcome", "counted",
           "write_report"]


def run_regression(console, name, overrides=None, *, seed=1, waves=False, options=None,
                   design: Design | None = None) -> BenchResult:
    """The generator's cocotb regression under Verilator."""
    design = design or generate(name, overrides)
    with console.status(f"{name}: Verilator build + cocotb regression ..."):
        start = time.monotonic()
        result = run_bench(name, seed=seed, waves=waves, options=options,
                           testcase=design.generator.testcase, design=design)
        wall = time.monotonic() - start
    rate = result.cycles_per_second
    save_result("sim", design, {"passed": len(result.passed), "failed": len(result.failed),
                                "seconds": round(result.seconds, 2), "wall_seconds": round(wall, 2),
                                "stats": result.stats, "cycles_per_second": rate, "seed": seed,
                                "options": options or {}})
    style = "green" if result.ok else "red"
    console.print(f"[{style}]{result.summary()}[/{style}]")
    if result.stats:
        console.print(f"  {result.stats}" + (f", {rate:,.0f} simulated cycles/s" if rate else ""))
    return result


def run_lint(console, design: Design) -> LintResult:
    """``verilator --lint-only -Wall`` with the documented waivers."""
    vpath, _ = design.write(build_root() / "gen" / design.key)
    with console.status(f"{design.top}: linting ..."):
        result = lint_verilog(vpath, design.top)
    save_result("lint", design, {"ok": result.ok, "issues": result.issues, "waived": result.waived})
    console.print(("[green]" if result.ok else "[red]") + result.summary())
    return result


def run_synth(console, design: Design, target, *, freq=100.0, seed=1, place=True) -> dict:
    """Yosys (+ nextpnr unless ``place`` is false) for ``target``."""
    outdir = build_root() / "synth" / f"{design.key}-{target}"
    with console.status(f"{design.top}: synthesis for {target} ...") as status:
        result = synthesize(design, target, outdir, freq_mhz=freq, seed=seed, place=place,
                            progress=lambda text: status.update(text + " ..."))
    save_result("synth", design, result, suffix=target)
    cells = result["cells"]
    line = ", ".join(f"{k.upper()} {v}" for k, v in cells.items() if k != "spram" or v)
    fmax = result.get("fmax_mhz")
    if "logic_cells" in result:
        used, available = result["logic_cells"]
        line += f", logic cells {used}/{available} ({used / available:.0%})"
    wrapper = " (serial I/O wrapper)" if result["serial_io_wrapper"] else ""
    console.print(f"{design.top} on {target}{wrapper}: {line}; Fmax "
                  f"{fmax if fmax is not None else 'n/a'} MHz"
                  + ("  [red]P&R failed[/red]" if "pnr_error" in result else ""))
    console.print(f"  {outdir / 'synth.json'}")
    return result


@dataclass
class JobOutcome:
    design: Design
    job: Job
    result: JobResult
    sim_cycles: int
    wall_seconds: float


def runnable() -> list[str]:
    return [name for name, gen in generators().items() if gen.driver is not None]


def _load_inputs(files: dict) -> dict:
    arrays = {}
    for name, path in files.items():
        if not isinstance(path, (str, Path)):
            arrays[name] = path
            continue
        path = Path(path)
        if not path.exists():
            raise SnnforgeError(f"input {name}: {path}: no such file")
        try:
            loaded = np.load(path, allow_pickle=False)
            if hasattr(loaded, "files"):            # an archive (.npz)
                with loaded:
                    loaded = {key: loaded[key] for key in loaded.files}
            arrays[name] = loaded
        except Exception as error:  # malformed file
            raise SnnforgeError(f"input {name}: {path}: not a readable .npy or .npz file "
                                f"({error})") from None
    return arrays


def run_job(console, name, overrides=None, *, inputs: dict, options=None, params=None,
            outfile=None, port=None, baud=115200, board=None) -> JobOutcome:
    """Run one job of generator ``name`` on its RTL under Verilator -- or, with ``port``, on a
    board at that serial port (``snnforge board``'s bitstream, ``baud`` its baud rate).

    ``inputs``: arrays or ``.npy`` files by input name; ``options``: the job's options (text or
    values); ``params``: generator parameters that come with the job (a family's flags), over
    the user's ``overrides``, which win over what the inputs imply (:meth:`Driver.params_for`);
    ``board`` (a board's name) starts from that board's configuration of the core, as
    ``snnforge board`` does. The configuration is built once here; the outputs go to
    ``outfile`` (``.npz``: each output and ``counter_<name>``), written whole or not at all.
    """
    gen = get_generator(name)
    if gen.driver is None:
        raise SnnforgeError(f"snnforge run: {name!r} cannot run jobs; runnable generators: "
                            f"{', '.join(runnable())}")
    # Names first: generating the core can take a minute, a typo should not.
    # (Options as far as the default configuration takes them: the job's own may take more.)
    default = gen.configure()
    values = gen.driver.option_values(default, {})
    for key, value in (options or {}).items():
        try:
            values[key] = gen.driver.option_values(default, {key: value})[key]
        except SnnforgeError:
            pass
    declared = gen.driver.input_specs(default, values)
    for key in inputs:
        if key not in [a.name for a in declared]:
            raise SnnforgeError(f"unknown input {key!r}; inputs: "
                                f"{', '.join(a.name for a in declared)}")
    for a in declared:
        if a.name not in inputs and not a.optional:
            raise SnnforgeError(f"missing input {a.name} {a.shape_text}: {a.help}")
    arrays = _load_inputs(inputs)
    implied = gen.driver.params_for(arrays)
    chosen = {**implied, **(overrides or {}), **(params or {})}
    if board is not None:
        design = board_design(name, get_board(board), chosen)
    else:
        design = generate(name, chosen)
    job = gen.driver.validate(design.config, arrays, options or {})
    if port is not None:
        return _run_on_board(console, gen, design, job, port, baud, outfile)

    with console.status(f"{name}: Verilator build (once per configuration) and run ..."):
        result, bench, result_file = run_rtl_job(design, job)
    if result is None:
        raise SystemExit(f"snnforge run failed:\n{bench.summary()}")
    counters = result.counters
    sim_cycles, wall = bench.stats["sim_cycles"], bench.stats["wall_seconds"]
    if outfile is not None:
        outfile = Path(outfile)
        outfile.parent.mkdir(parents=True, exist_ok=True)
        partial = outfile.with_name(outfile.name + ".partial")
        shutil.copyfile(result_file, partial)
        partial.replace(outfile)
    save_result("run", design, {"inputs": {k: list(v.shape) for k, v in job.arrays().items()},
                                "options": job.options, "counters": counters,
                                "facts": json.loads(json.dumps(result.facts, default=str)),
                                "sim_cycles": sim_cycles, "wall_seconds": wall})
    for line in gen.driver.report(design.config, job, result):
        console.print(line)
    if outfile is not None:
        console.print(f"  -> {outfile}")
    rate = sim_cycles / wall if wall else 0.0
    console.print(f"  simulated {sim_cycles:,} cycles (loading included) in {wall:.1f} s = "
                  f"{rate:,.0f} cycles/s")
    return JobOutcome(design, job, result, sim_cycles, wall)


def _run_on_board(console, gen, design: Design, job: Job, port, baud, outfile) -> JobOutcome:
    """The job on a board over its UART (:class:`~snnforge.serial_link.SerialTransport`), once
    its bridge has said it runs this very core (interface id)."""
    async def run():
        transport = SerialTransport(port, baud, bridge_timeout=BRIDGE_TIMEOUT_S)
        try:
            with console.status(f"{design.top}: connecting to the board at {port} ..."):
                try:
                    info = await transport.hello()
                except LinkError as error:
                    raise SnnforgeError(f"the board at {port} does not answer at {baud} baud "
                                        f"({error}): is a `snnforge board` bitstream of this "
                                        f"--baud loaded?") from None
            want = interface_id(design)
            if info["interface_id"] != want:
                raise SnnforgeError(
                    f"the board at {port} runs core interface {info['interface_id']:08x}, this "
                    f"configuration is {want:08x} ({design.key}): give the NAME, --board and -p "
                    f"the bitstream was built with")
            driver = gen.driver(HostDriver(design.facts["regmap"], transport), design.config)
            with console.status(f"{design.top}: running on the board at {port} ..."):
                start = time.monotonic()
                result = await driver.run(job)
            return result, time.monotonic() - start, transport.stats, info
        finally:
            transport.close()

    result, wall, stats, info = asyncio.run(run())
    if outfile is not None:
        outfile = Path(outfile)
        outfile.parent.mkdir(parents=True, exist_ok=True)
        partial = outfile.with_name(outfile.name + ".partial")
        with open(partial, "wb") as handle:
            write_result(handle, result)
        partial.replace(outfile)
    save_result("run", design, {"inputs": {k: list(v.shape) for k, v in job.arrays().items()},
                                "options": job.options, "counters": result.counters,
                                "facts": json.loads(json.dumps(result.facts, default=str)),
                                "board": {"port": port, "baud": baud, "frames": stats.frames,
                                          "repeats": stats.repeats,
                                          "clock_hz": info["clock_hz"]},
                                "wall_seconds": wall})
    for line in gen.driver.report(design.config, job, result):
        console.print(line)
    if outfile is not None:
        console.print(f"  -> {outfile}")
    console.print(f"  ran on the board at {port} ({info['clock_hz'] / 1e6:g} MHz) in {wall:.1f} s"
                  f": {stats.frames} frames at {baud} baud, {stats.repeats} repeated")
    return JobOutcome(design, job, result, 0, wall)
