"""The ``snnforge`` command line.

Bad input (unknown generator or parameter, value out of range, malformed file, missing tool) ends
with exit status 2 and one line naming the problem and the valid choices. A regression or lint
that runs and fails ends with status 1.
"""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console
from rich.table import Table

from . import __version__
from .params import SnnforgeError, parse_assignments

# Wide enough for the summary tables when the output is a log file rather than a terminal.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)


def _params_option(func):
    return click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
                        help="Generator parameter (repeatable).")(func)


def _design(name, params):
    from .generate import generate
    with console.status(f"generating {name} ..."):
        return generate(name, parse_assignments(params))


def _fail(message):
    click.echo(f"snnforge: error: {message}", err=True)
    sys.exit(2)


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SnnforgeError as error:
            _fail(error)

    def main(self, *args, standalone_mode=True, **kwargs):
        # Usage errors (unknown subcommand or option, a bad choice) get the same one line and
        # exit status 2 as every other bad input, instead of click's usage block.
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as error:
            message = error.format_message()
            if "No such command" in message:
                message += f" Commands: {', '.join(self.list_commands(None))}."
            _fail(message)
        except click.ClickException as error:
            _fail(error.format_message())
        except click.Abort:
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="snnforge")
def main():
    """snnforge: spiking-neural-network accelerator RTL generators, bit-exact against PyTorch
    golden models, simulated with cocotb + Verilator, synthesized with Yosys + nextpnr."""


@main.command("list")
def list_cmd():
    """List generators with their parameters, defaults and ranges."""
    from .generators import GENERATORS
    for gen in GENERATORS.values():
        table = Table(title=f"[bold]{gen.name}[/bold] -- {gen.summary}", title_justify="left",
                      show_edge=False)
        for column in ("parameter", "default", "range", "meaning"):
            table.add_column(column)
        for p in gen.params:
            table.add_row(p.name, str(p.default), p.range_text, p.help)
        console.print(table)
        console.print()


@main.command()
@click.argument("name")
@_params_option
@click.option("-o", "--out", "outdir", default=None, type=click.Path(file_okay=False),
              help="Output directory (default build/gen/NAME).")
def gen(name, params, outdir):
    """Write NAME.v and its NAME.json manifest."""
    from .generate import build_root
    design = _design(name, params)
    vpath, jpath = design.write(outdir or build_root() / "gen" / name)
    manifest = design.manifest()
    console.print(f"wrote {vpath} and {jpath}")
    console.print(f"  ports: {len(manifest['ports'])}, sha256 {design.sha256[:16]}..., "
                  f"derived: {manifest['derived']}")


@main.command()
@click.argument("name")
@_params_option
@click.option("--seed", default=1, show_default=True, help="Random seed of the stimulus.")
@click.option("--waves", is_flag=True, help="Write an FST waveform and print its path.")
@click.option("-O", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Bench option, e.g. n_random=5000, stall=0.5 (repeatable).")
def sim(name, params, seed, waves, options):
    """Run NAME's cocotb regression under Verilator."""
    from .generators import get_generator
    valid = get_generator(name).sim_options
    chosen = parse_assignments(options, "-O")
    for key in chosen:
        if key not in valid:
            raise SnnforgeError(f"{name}: unknown bench option {key!r}; valid options: "
                                f"{', '.join(valid)}")
    result = run_regression(name, parse_assignments(params), seed=seed, waves=waves,
                            options={k: _number(v) for k, v in chosen.items()})
    if result.waves:
        console.print(f"waveform: {result.waves}")
    sys.exit(0 if result.ok else 1)


def _number(text):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def run_regression(name, overrides, *, seed=1, waves=False, options=None, design=None):
    from .generate import generate
    from .results import save_result
    from .sim.runner import run_bench
    design = design or generate(name, overrides)
    with console.status(f"{name}: Verilator build + cocotb regression ..."):
        start = time.monotonic()
        result = run_bench(name, overrides, seed=seed, waves=waves, options=options,
                           testcase=design.generator.testcase)
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


@main.command()
@click.argument("name")
@_params_option
def lint(name, params):
    """verilator --lint-only -Wall (documented waivers) on NAME's Verilog."""
    result = run_lint(_design(name, params))
    sys.exit(0 if result.ok else 1)


def run_lint(design):
    from .generate import build_root
    from .lint import lint_verilog
    from .results import save_result
    vpath, _ = design.write(build_root() / "gen" / design.key)
    with console.status(f"{design.top}: linting ..."):
        result = lint_verilog(vpath, design.top)
    save_result("lint", design, {"ok": result.ok, "issues": result.issues, "waived": result.waived})
    console.print(("[green]" if result.ok else "[red]") + result.summary())
    return result


@main.command()
@click.argument("name")
@_params_option
@click.option("--target", type=click.Choice(["ecp5-85k", "ice40-up5k"]), default="ecp5-85k",
              show_default=True)
@click.option("--freq", default=100.0, show_default=True, help="Clock constraint in MHz.")
@click.option("--seed", default=1, show_default=True, help="nextpnr placement seed.")
def synth(name, params, target, freq, seed):
    """Synthesize and place-and-route NAME; prints and writes LUT4/FF/BRAM/DSP and Fmax."""
    result = run_synth(_design(name, params), target, freq=freq, seed=seed)
    sys.exit(0 if "pnr_error" not in result else 1)


def run_synth(design, target, *, freq=100.0, seed=1, place=True):
    from .generate import build_root
    from .results import save_result
    from .synth.flow import synthesize
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
    console.print(f"{design.top} on {target}{' (serial I/O wrapper)' if result['serial_io_wrapper'] else ''}: "
                  f"{line}; Fmax {fmax if fmax is not None else 'n/a'} MHz"
                  + ("  [red]P&R failed[/red]" if "pnr_error" in result else ""))
    console.print(f"  {outdir / 'synth.json'}")
    return result


@main.command()
@click.option("-o", "--out", "outfile", default=None, type=click.Path(dir_okay=False),
              help="Report path (default build/report.md).")
def report(outfile):
    """Collect build/results/*.json into build/report.md with tables and plots."""
    from .report import write_report
    path = write_report(outfile)
    console.print(f"wrote {path}")


@main.command()
@click.option("--quick", is_flag=True, help="Skip place-and-route (synthesis cell counts only).")
def demo(quick):
    """The main job: every generator's demo configuration generated, regressed, linted and
    synthesized; one summary table."""
    from .demo import run_demo
    ok = run_demo(console, place=not quick)
    sys.exit(0 if ok else 1)


@main.command()
@click.argument("name")
@_params_option
@click.option("--spikes", required=True, metavar="S.npy", help="Input spikes [T, M, K], 0/1.")
@click.option("--weights", required=True, metavar="W.npy", help="Weights [K, N] within int8.")
@click.option("--lif", default="", metavar="SPEC",
              help="LIF settings, e.g. threshold=64,leak=shift:2,reset=hard.")
@click.option("--tmask", default=None, help="Dynamic time-step mask (bit t = step t).")
@click.option("--strong", is_flag=True, help="LoAS-FT strong mode: single-spike neurons silent.")
@click.option("--sequential", is_flag=True,
              help="Process time steps one after another (SparTen-S-like baseline).")
@click.option("-o", "--out", "outfile", required=True, metavar="OUT.npz",
              help="Output: spikes [T, M, N], membrane [M, N], counter_* values.")
def run(name, params, spikes, weights, lif, tmask, strong, sequential, outfile):
    """Run a layer on NAME's generated RTL under Verilator (the LoAS core)."""
    from .runlayer import run_layer_cli
    run_layer_cli(console, name, parse_assignments(params), spikes=spikes, weights=weights,
                  lif=lif, tmask=tmask, strong=strong, sequential=sequential, outfile=outfile)


if __name__ == "__main__":
    main()
