"""The ``snnforge`` command line.

Bad input (unknown generator or parameter, value out of range, malformed file, missing tool) ends
with exit status 2 and one line naming the problem and the valid choices. A regression or lint
that runs and fails ends with status 1.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from . import __version__, flows
from .boards import BOARDS, BoardError, board_design, build_board, get_board
from .demo import run_demo
from .deploy import deploy as run_deploy
from .generate import build_root, generate
from .params import SnnforgeError, parse_assignments
from .registry import generators, get_generator
from .results import measured_synthesis
from .sim.patterns import spec_text
from .sweep import plan_sweep, run_sweep
from .synth.flow import TARGETS

# Wide enough for the summary tables when the output is a log file rather than a terminal.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)


def _params_option(func):
    return click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
                        help="Generator parameter (repeatable).")(func)


def _design(name, params):
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
    for gen in generators().values():
        table = Table(title=f"[bold]{gen.name}[/bold] -- {gen.summary}", title_justify="left",
                      show_edge=False)
        for column in ("parameter", "default", "range", "meaning"):
            table.add_column(column)
        for p in gen.params:
            table.add_row(p.name, str(p.default), p.range_text, p.help)
        console.print(table)
        for preset, (values, what) in gen.presets.items():
            given = " ".join(f"{k}={v}" for k, v in values.items()) or "the defaults"
            console.print(f"  preset [bold]{preset}[/bold] (-p preset={preset}): {what}; {given}")
            params = gen.configure({"preset": preset}).values()
            for line in measured_synthesis(gen.name, params) or [
                    f"not synthesized yet (snnforge synth {gen.name} -p preset={preset})"]:
                console.print(f"    {line}", highlight=False)
        console.print()


@main.command()
@click.argument("name")
@_params_option
@click.option("-o", "--out", "outdir", default=None, type=click.Path(file_okay=False),
              help="Output directory (default build/gen/NAME).")
def gen(name, params, outdir):
    """Write NAME.v and its NAME.json manifest."""
    design = _design(name, params)
    vpath, jpath = design.write(outdir or build_root() / "gen" / name)
    manifest = design.manifest()
    console.print(f"wrote {vpath} and {jpath}")
    console.print(f"  ports: {len(manifest['ports'])}, sha256 {design.sha256[:16]}..., "
                  f"derived: {manifest['derived']}")


def _bench_options(name, options):
    """``-O`` values for ``name``'s bench: known names only; numbers as numbers, patterns
    checked."""
    valid = get_generator(name).sim_options
    chosen = parse_assignments(options, "-O")
    out = {}
    for key, text in chosen.items():
        if key not in valid:
            raise SnnforgeError(f"{name}: unknown bench option {key!r}; valid options: "
                                f"{', '.join(valid)}")
        if key in ("idle", "stall"):
            try:
                out[key] = spec_text(text)
            except ValueError as error:
                raise SnnforgeError(f"-O {key}: {error}") from None
        else:
            out[key] = _number(text)
    return out


@main.command()
@click.argument("name")
@_params_option
@click.option("--seed", default=1, show_default=True, help="Random seed of the stimulus.")
@click.option("--waves", is_flag=True, help="Write an FST waveform and print its path.")
@click.option("-O", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Bench option, e.g. n_random=5000, stall=periodic:1101 (repeatable).")
def sim(name, params, seed, waves, options):
    """Run NAME's cocotb regression under Verilator."""
    chosen = _bench_options(name, options)
    design = _design(name, params)
    result = flows.run_regression(console, name, seed=seed, waves=waves, options=chosen,
                                  design=design)
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


@main.command()
@click.argument("name")
@_params_option
def lint(name, params):
    """verilator --lint-only -Wall (documented waivers) on NAME's Verilog."""
    result = flows.run_lint(console, _design(name, params))
    sys.exit(0 if result.ok else 1)


@main.command()
@click.argument("name")
@_params_option
@click.option("--target", type=click.Choice(list(TARGETS)), default="ecp5-85k",
              show_default=True)
@click.option("--freq", default=100.0, show_default=True, help="Clock constraint in MHz.")
@click.option("--seed", default=1, show_default=True, help="nextpnr placement seed.")
@click.option("--no-place", is_flag=True, help="Synthesis only: cell counts, no place-and-route "
                                               "(for configurations larger than the device).")
def synth(name, params, target, freq, seed, no_place):
    """Synthesize and place-and-route NAME; prints and writes LUT4/FF/BRAM/DSP and Fmax."""
    result = flows.run_synth(console, _design(name, params), target, freq=freq, seed=seed,
                             place=not no_place)
    sys.exit(0 if "pnr_error" not in result else 1)


@main.command()
@click.option("-o", "--out", "outfile", default=None, type=click.Path(dir_okay=False),
              help="Report path (default build/report.md).")
def report(outfile):
    """Collect build/results/*.json into build/report.md with tables and plots."""
    path = flows.write_report(outfile)
    console.print(f"wrote {path}")


@main.command()
@click.option("--quick", is_flag=True, help="Skip place-and-route (synthesis cell counts only).")
def demo(quick):
    """The main job: every generator's demo configuration generated, regressed, linted and
    synthesized; one summary table."""
    ok = run_demo(console, place=not quick)
    sys.exit(0 if ok else 1)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--core", default=None, metavar="NAME",
              help="The core to deploy on (default: the first with a deployment flow).")
@_params_option
@click.option("--data", required=True, type=click.Path(dir_okay=False), metavar="X.npy",
              help="Binary spike trains [N, T, *input shape] (T = time steps).")
@click.option("--labels", type=click.Path(dir_okay=False), metavar="Y.npy",
              help="Integer classes [N]: accuracies of the RTL, the golden model and the float "
                   "graph.")
@click.option("--dt", default=1e-4, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Euler time step (s) the graph's neurons are discretised with (snnTorch's "
                   "exporter: 1e-4).")
@click.option("--compare-unmasked", is_flag=True,
              help="DT-SNN checkpoints: also run the network with every time step open.")
@click.option("-o", "--out", "outdir", required=True, type=click.Path(file_okay=False),
              metavar="DIR", help="Outputs, predictions, the mapped program and the report.")
def deploy(model, core, params, data, labels, dt, compare_unmasked, outdir):
    """Deploy a trained network on a core's RTL: a NIR graph (MODEL.nir) is mapped (int8
    weights, integer LIF registers), a DT-SNN checkpoint (MODEL.pt of `snnforge train dtsnn`)
    exported; DATA runs on the float model, the integer golden model and the RTL under
    Verilator; RTL == golden is checked; DIR gets the outputs and the report (prediction = the
    output neuron with most spikes)."""
    run_deploy(console, model, core=core, data=data, labels=labels, outdir=outdir,
               overrides=parse_assignments(params), dt=dt, compare_unmasked=compare_unmasked)


# -- sweep: a design-space sweep on dask.distributed -------------------------------------------

#: nextpnr is single-threaded: one worker per core, two on CI's two cores.
_SWEEP_WORKERS = min(2, os.cpu_count() or 1)


@main.command()
@click.argument("name")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=V1,V2,...",
              help="A parameter's values, comma-separated (repeatable): every combination is a "
                   "point; a single value fixes the parameter.")
@click.option("--target", type=click.Choice(list(TARGETS)), default="ecp5-85k",
              show_default=True)
@click.option("--layers", default=None, metavar="L1,L2,...",
              help="Also run these workload layers (the generator's sweep_layers) on each "
                   "point's RTL under Verilator for its cycles.")
@click.option("--no-place", is_flag=True, help="Synthesis only: Yosys LUT4 counts, no Fmax.")
@click.option("--freq", default=100.0, show_default=True, help="Clock constraint in MHz.")
@click.option("--seed", default=1, show_default=True, help="nextpnr placement seed.")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help=f"Workers of the local cluster (one point each at a time)  [default: "
                   f"{_SWEEP_WORKERS}]")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="A dask scheduler ([tcp://]HOST:PORT) instead of a local cluster; its workers "
                   "need snnforge and this build directory at the same path.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=3600.0,
              show_default=True, help="Seconds a point may take before it is recorded as "
                                      "timed out.")
@click.option("-o", "--out", "outdir", default=None, type=click.Path(file_okay=False),
              help="Where sweep.md, sweep.json and sweep.png go (default build/sweep/NAME).")
def sweep(name, params, target, layers, no_place, freq, seed, workers, scheduler, timeout,
          outdir):
    """Sweep NAME's parameters: every point generated, synthesized, placed (and run on layers)
    on a dask cluster, cached by design hash; a Pareto table of cells against time per layer
    (or 1/Fmax). A failed or timed-out point is recorded with its log; exit status 1 if no
    point succeeded."""
    if scheduler is not None and workers is not None:
        raise SnnforgeError("--workers sizes the local cluster; with --scheduler the "
                            "cluster's own workers run the points")
    plan = plan_sweep(name, params, target=target, layers=layers.split(",") if layers else (),
                      place=not no_place, freq_mhz=freq, seed=seed, timeout_s=timeout)
    summary = run_sweep(console, plan, outdir or build_root() / "sweep" / name,
                        workers=workers or _SWEEP_WORKERS, scheduler=scheduler)
    console.print(Path(summary["files"][0]).read_text(), markup=False)
    console.print("wrote " + ", ".join(summary["files"]))
    sys.exit(0 if any(p["status"] == "ok" for p in summary["points"]) else 1)


# -- board: a core on an FPGA board, bitstream and reports --------------------------------------

@main.command("board")
@click.argument("name")
@click.option("--board", "board_name", required=True, type=click.Choice(list(BOARDS)),
              help="The board.")
@_params_option
@click.option("--freq", type=click.FloatRange(min=1), default=None, metavar="MHZ",
              help="Core clock (the PLL's output) in MHz; default: the board's "
                   f"({', '.join(f'{b.name} {b.default_mhz:g}' for b in BOARDS.values())}).")
@click.option("--baud", type=click.IntRange(1), default=115200, show_default=True,
              help="UART baud rate (snnforge run --port ... --baud must match).")
@click.option("--seed", default=1, show_default=True, help="nextpnr placement seed.")
@click.option("-o", "--out", "outdir", required=True, type=click.Path(file_okay=False),
              metavar="DIR", help="Bitstream, timing.txt/.json, pins.txt and board.json.")
def board_cmd(name, board_name, params, freq, baud, seed, outdir):
    """Put NAME's core on an FPGA board: a UART bridge onto its host port, an AXI4 memory
    behind its master, a PLL to the core clock and status LEDs; Yosys, nextpnr and the packer
    (YoWASP) write the bitstream, the timing report and the pin report into DIR. The core is
    the board's preset or default configuration under -p. A build that does not fit the
    device or misses the clock exits with status 1."""
    spec = get_board(board_name)
    design = board_design(name, spec, parse_assignments(params))
    with console.status(f"{name} on {board_name} ...") as status:
        try:
            result = build_board(design, spec, outdir, freq_mhz=freq, baud=baud, seed=seed,
                                 progress=lambda text: status.update(text + " ..."))
        except BoardError as error:
            click.echo(f"snnforge: error: {error}", err=True)
            sys.exit(1)
    use = ", ".join(f"{bel} {used:,}/{avail:,}" for bel, (used, avail)
                    in result["utilization"].items() if bel in ("TRELLIS_COMB", "ICESTORM_LC",
                                                                 "DP16KD", "ICESTORM_RAM",
                                                                 "ICESTORM_SPRAM", "MULT18X18D"))
    console.print(f"{design.key} on {board_name}: clock {result['clock_mhz']:.3f} MHz, Fmax "
                  f"{result['fmax_mhz']:.2f} MHz; {use}; {baud} baud, interface "
                  f"{result['interface_id']}")
    console.print(f"  {result['bitstream']} ({result['bitstream_bytes']:,} bytes); "
                  f"{outdir}/timing.txt, pins.txt, board.json")


# -- run: one job on the generated RTL ---------------------------------------------------------

def _run_command(name) -> click.Command:
    """``snnforge run NAME``: the generic job flags plus the family's own."""
    gen = get_generator(name)
    driver = gen.driver

    def callback(params, inputs, options, outfile, port, baud, board, **flag_values):
        given = {k: v for k, v in flag_values.items() if v not in (None, False)}
        flag_inputs, flag_options, flag_params = driver.from_flags(given)
        files = parse_assignments(inputs, "--in")
        for key in files.keys() & flag_inputs.keys():
            raise SnnforgeError(f"input {key} is given twice (--in and --{key})")
        chosen = parse_assignments(options, "-O")
        flows.run_job(console, name, parse_assignments(params),
                      inputs={**files, **flag_inputs}, options={**chosen, **flag_options},
                      params=flag_params, outfile=outfile, port=port, baud=baud, board=board)

    spec = driver.job_spec(gen.configure())
    lines = [f"Run a job on {name}'s generated RTL under Verilator, or on a board (--port).",
             "", "\b",
             "Inputs (--in NAME=FILE.npy; an archive NAME=FILE.npz):"]
    lines += [f"  {a.name} {a.shape_text}: {a.help}" for a in spec.inputs]
    lines += ["Options (-O KEY=VALUE; ranges of the default configuration):"]
    lines += [f"  {o.name} ({o.range_text}, default {o.default if o.default != '' else 'none'}):"
              f" {o.help}" for o in spec.options]
    lines += ["Outputs (in OUT.npz, with counter_*):"]
    lines += [f"  {a.name} {a.shape_text}: {a.help}" for a in spec.outputs]
    command = click.Command(
        name, callback=callback, help="\n".join(lines),
        params=[
            click.Option(["-p", "--param", "params"], multiple=True, metavar="KEY=VALUE",
                         help="Generator parameter (repeatable)."),
            click.Option(["--in", "inputs"], multiple=True, metavar="NAME=FILE.npy",
                         help="An input array (.npy) or archive (.npz) of the job "
                              "(repeatable)."),
            click.Option(["-O", "--option", "options"], multiple=True, metavar="KEY=VALUE",
                         help="A job option (repeatable)."),
            click.Option(["-o", "--out", "outfile"], required=True, metavar="OUT.npz",
                         help="Outputs and counter_* values."),
            click.Option(["--port"], metavar="PORT",
                         help="Run on a board at this serial port (a bitstream of `snnforge "
                              "board`) instead of under Verilator."),
            click.Option(["--baud"], type=click.IntRange(1), default=115200, show_default=True,
                         help="With --port: the bitstream's baud rate."),
            click.Option(["--board"], type=click.Choice(list(BOARDS)),
                         help="The core configuration `snnforge board --board` builds (its "
                              "defaults under -p); with --port, the board's core."),
            *[click.Option([f"--{flag.name.replace('_', '-')}", flag.name],
                           is_flag=flag.is_flag,
                           metavar=flag.metavar, help=flag.help, default=None
                           if not flag.is_flag else False) for flag in driver.flags],
        ])
    return command


class _RunGroup(click.Group):
    def list_commands(self, ctx):
        return flows.runnable()

    def get_command(self, ctx, name):
        return _run_command(name) if name in flows.runnable() else None

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name is not None and name not in flows.runnable() and not name.startswith("-"):
            get_generator(name)      # an unknown generator names the valid ones
            raise SnnforgeError(f"snnforge run: {name!r} cannot run jobs; runnable generators: "
                                f"{', '.join(flows.runnable())}")
        return super().resolve_command(ctx, args)


@main.group(cls=_RunGroup)
def run():
    """Run a job (e.g. a layer) on NAME's generated RTL under Verilator.

    \b
    snnforge run NAME [-p KEY=VALUE ...] --in INPUT=FILE.npy ... [-O KEY=VALUE ...] -o OUT.npz
    NAME's own flags: snnforge run NAME --help.
    """


# -- train: a network trained with a family's layers, golden and on the RTL ---------------------

def _trainable() -> list[str]:
    return [name for name, gen in generators().items() if gen.trainer is not None]


def _train_command(name) -> click.Command:
    """``snnforge train NAME``: the family's training parameters as ``-O`` options."""
    gen = get_generator(name)
    module = importlib.import_module(gen.trainer)
    config = module.TRAIN_PARAMS

    def callback(on_rtl, options, float_epochs, outfile):
        values = config.resolve(parse_assignments(options, "-O"), f"snnforge train {name}")
        try:
            p = config(**values)
        except ValueError as error:
            raise SnnforgeError(f"snnforge train {name}: {error}") from None
        module.run_training(console, p, on_rtl=on_rtl, float_epochs=float_epochs,
                            outfile=outfile)

    lines = [(module.__doc__ or "").strip().split("\n\n")[0], "", "\b",
             "Training parameters (-O KEY=VALUE):"]
    lines += [f"  {o.name} ({o.range_text}, default {o.default}): {o.help}"
              for o in config.params()]
    return click.Command(name, callback=callback, help="\n".join(lines), params=[
        click.Option(["--on-rtl"], is_flag=True,
                     help="Also train with the layer computed by the generated RTL under "
                          "Verilator and check its weights equal the golden training's."),
        click.Option(["-O", "--option", "options"], multiple=True, metavar="KEY=VALUE",
                     help="A training parameter (repeatable)."),
        click.Option(["--float-epochs"], type=click.IntRange(0, 1000), default=30,
                     show_default=True, help="Epochs of the float training compared against "
                                             "(0: none)."),
        click.Option(["-o", "--out", "outfile"], metavar="OUT.json",
                     help="The summary (accuracies, equality, counters) as JSON."),
    ])


def _dtsnn_train_command() -> click.Command:
    """``snnforge train dtsnn``: the DT-SNN spiking ViT (golden side; deployed by ``snnforge
    deploy DIR/dtsnn.pt``)."""
    from .golden.dtsnn.model import ATTENTIONS

    def callback(outdir, **values):
        from .dtsnn import train as train_dtsnn
        train_dtsnn(console, outdir=outdir, **values)

    return click.Command("dtsnn", callback=callback, help=(
        "Train the DT-SNN spiking ViT on digits (dynamic time steps, SSA or STAtten attention) "
        "and write DIR/dtsnn.pt (checkpoint, for `snnforge deploy`), DIR/dtsnn_int.npz (its "
        "integer export) and DIR/report.json."), params=[
        click.Option(["--tmax"], type=click.IntRange(1, 16), default=4, show_default=True,
                     help="Largest number of time steps (T_max)."),
        click.Option(["--attention"], type=click.Choice(ATTENTIONS), default="ssa",
                     show_default=True, help="Spikformer SSA or STAtten's block-wise attention."),
        click.Option(["--chunk"], type=click.IntRange(1, 16), default=2, show_default=True,
                     help="STAtten: steps per block (must divide tmax)."),
        click.Option(["--epochs"], type=click.IntRange(1, 1000), default=30, show_default=True),
        click.Option(["--lam"], type=click.FloatRange(0, 1, max_open=True), default=2e-4,
                     show_default=True, help="Weight of the active-steps regulariser."),
        click.Option(["--fixed-t", "fixed_t"], type=click.IntRange(1, 16), default=None,
                     help="A fixed-T baseline: the first T steps open, no learned masks."),
        click.Option(["--sparsity"], type=click.FloatRange(0, 1, max_open=True), default=0.5,
                     show_default=True, help="Weight sparsity reached by magnitude pruning."),
        click.Option(["--seed"], type=int, default=0, show_default=True),
        click.Option(["-o", "--out", "outdir"], required=True, type=click.Path(file_okay=False),
                     metavar="DIR"),
    ])


class _TrainGroup(click.Group):
    def list_commands(self, ctx):
        return _trainable() + ["dtsnn"]

    def get_command(self, ctx, name):
        if name == "dtsnn":
            return _dtsnn_train_command()
        return _train_command(name) if name in _trainable() else None

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name is not None and name not in self.list_commands(ctx) and not name.startswith("-"):
            raise SnnforgeError(f"snnforge train: {name!r} has no training flow; trainable: "
                                f"{', '.join(self.list_commands(ctx))}")
        return super().resolve_command(ctx, args)


@main.group(cls=_TrainGroup)
def train():
    """Train a network whose layers are NAME's, by the fixed-point golden model and (--on-rtl)
    by the generated RTL under Verilator; weights compared bit for bit. Or (dtsnn) the DT-SNN
    spiking ViT, deployed with `snnforge deploy DIR/dtsnn.pt`.

    \b
    snnforge train NAME [--on-rtl] [-O KEY=VALUE ...] [--float-epochs N] [-o OUT.json]
    snnforge train dtsnn [--tmax 4] [--attention ssa|statten] [--epochs N] ... -o DIR
    NAME's training parameters: snnforge train NAME --help.
    """


if __name__ == "__main__":
    main()
