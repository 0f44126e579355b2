"""A core on a board: everything inside the pins, and the pins.

:class:`BoardTop` is the logic -- the core (its generated Verilog, instantiated by name), a
UART and the serial bridge onto its host port, an AXI4 memory behind its master, the status
LEDs -- clocked by ``sync``: simulated as it is (``uart_rx``/``uart_tx`` are the pins), and put
on a board by :class:`BoardPins` with a PLL (``hw/boards/pll.py``) and the board's resources.

The LEDs (:data:`LEDS`, in this order): a heartbeat (about 1 Hz: the clock runs), the link (a
frame is being received, executed or answered, stretched to be seen), the command list ended
(the core's ``irq``: done or stopped at an error) and a link error (an error response went
out, held for about half a second).
"""

from __future__ import annotations

from amaranth import *
from amaranth.hdl import Shape
from amaranth.lib import io, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from ..common.axi import AXI4LiteSignature, AXI4Signature
from ..common.axi_ram import AXI4RAM
from ..common.hostport import command_layout
from ..common.serial_bridge import SerialBridge
from ..common.uart import UARTRx, UARTTx

__all__ = ["CoreBlackbox", "BoardTop", "BoardPins", "LEDS"]

#: What each LED shows, in the order of ``BoardTop.leds``.
LEDS = ("heartbeat", "link", "done", "error")


class CoreBlackbox(wiring.Component):
    """A core behind the host interface (``cmd``/``rsp``, ``s_axil``, ``m_axi``, ``irq``), as an
    instance of its generated Verilog module ``module``.

    ``ports`` are the module's ports as the generator's manifest lists them (name, direction,
    width); they must be exactly those of the host interface for ``addr_width`` (the register
    map's), else ``ValueError`` names the first that differs.
    """

    def __init__(self, module: str, ports: list[dict], *, addr_width: int):
        by_name = {p["name"]: p for p in ports}
        if "m_axi__wdata" not in by_name:
            raise ValueError(f"{module} has no AXI4 master (m_axi): only cores behind the host "
                             f"interface go on a board")
        self._module = module
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_width, 32))),
            "rsp": Out(stream.Signature(32)),
            "s_axil": In(AXI4LiteSignature(addr_width=addr_width + 2)),
            "m_axi": Out(AXI4Signature(addr_width=32,
                                       data_width=by_name["m_axi__wdata"]["width"])),
            "irq": Out(1),
        })
        mine = {"clk": ("input", 1), "rst": ("input", 1)}
        for path, member, _ in self.signature.flatten(self):
            mine["__".join(map(str, path))] = ("input" if member.flow == In else "output",
                                               Shape.cast(member.shape).width)
        theirs = {p["name"]: (p["direction"], p["width"]) for p in ports}
        for name in sorted(mine.keys() | theirs.keys()):
            if mine.get(name) != theirs.get(name):
                raise ValueError(f"{module}: port {name} is {theirs.get(name) or 'missing'}, "
                                 f"the host interface's is {mine.get(name) or 'absent'}")

    @property
    def data_width(self) -> int:
        return self.m_axi.signature.data_width

    def elaborate(self, platform):
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for path, member, value in self.signature.flatten(self):
            prefix = "i_" if member.flow == In else "o_"
            ports[prefix + "__".join(map(str, path))] = value
        return Instance(self._module, **ports)


def _stretch(m: Module, pulse, cycles: int, name: str):
    """``pulse`` held high for ``cycles`` cycles after it ends."""
    left = Signal(range(cycles + 1), name=f"{name}_left")
    with m.If(pulse):
        m.d.sync += left.eq(cycles)
    with m.Elif(left != 0):
        m.d.sync += left.eq(left - 1)
    return pulse | (left != 0)


class BoardTop(wiring.Component):
    """The core with its serial link, memory and LEDs; everything a board has inside its pins.

    Parameters
    ----------
    core : CoreBlackbox
    clock_hz : int
        The ``sync`` clock (INFO reports it; the LED timings follow it).
    divisor : int
        Clock cycles per UART bit (``round(clock_hz / baud)``).
    timeout : int
        The bridge's idle timeout in cycles.
    memory_bytes : int
        The AXI4 memory's size.
    storage : str
        Its storage (``bram`` or ``spram``, :data:`~..common.axi_ram.STORAGES`).
    interface_id : int
        What INFO reports of the core (``snnforge.boards.interface_id``).
    max_words : int
        The bridge's frame buffer (words per frame, at most 256).

    Members
    -------
    uart_rx : In(1)        from the host (idles high)
    uart_tx : Out(1)       to the host
    leds : Out(4)          :data:`LEDS`, active high
    """

    def __init__(self, *, core: CoreBlackbox, clock_hz: int, divisor: int, timeout: int,
                 memory_bytes: int, storage: str = "bram", interface_id: int = 0,
                 max_words: int = 256):
        if not isinstance(clock_hz, int) or clock_hz < 1:
            raise ValueError(f"clock_hz must be a positive integer, not {clock_hz!r}")
        self.core = core
        self.clock_hz = clock_hz
        self.uart_rx_unit = UARTRx(divisor=divisor)
        self.uart_tx_unit = UARTTx(divisor=divisor)
        self.bridge = SerialBridge(addr_width=len(core.cmd.payload.addr), max_words=max_words,
                                   timeout=timeout, interface_id=interface_id,
                                   memory_bytes=memory_bytes, clock_hz=clock_hz)
        self.ram = AXI4RAM(data_width=core.data_width, size=memory_bytes, storage=storage)
        super().__init__({"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1),
                          "leds": Out(len(LEDS))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        m.submodules.uart_rx = rx = self.uart_rx_unit
        m.submodules.uart_tx = tx = self.uart_tx_unit
        m.submodules.bridge = bridge = self.bridge
        m.submodules.ram = ram = self.ram

        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx),
                     bridge.line_error.eq(rx.error | rx.overrun)]
        connect(m, rx.o, bridge.rx)
        connect(m, bridge.tx, tx.i)
        connect(m, bridge.cmd, core.cmd)
        connect(m, core.rsp, bridge.rsp)
        connect(m, core.m_axi, ram.axi)
        # The AXI4-Lite front end is not used on a board: no master, never a request.
        for name, member in core.s_axil.signature.members.items():
            if member.flow == In:
                m.d.comb += getattr(core.s_axil, name).eq(0)

        beat = Signal(max(1, (self.clock_hz // 2).bit_length()))
        m.d.sync += beat.eq(beat + 1)
        m.d.comb += self.leds.eq(Cat(
            beat[-1],
            _stretch(m, bridge.busy, self.clock_hz // 20, "link"),
            core.irq,
            _stretch(m, bridge.error, self.clock_hz // 2, "error")))
        return m


class BoardPins(Elaboratable):
    """:class:`BoardTop` on a board: the ``sync`` domain from ``clocking`` (a
    :class:`~.pll.Clocking`), the UART on the platform's ``uart`` resource 0 and the LEDs on
    its ``led`` resources ``leds`` (indices, in the order of :data:`LEDS`)."""

    def __init__(self, top: BoardTop, clocking, *, leds: tuple):
        if len(leds) != len(LEDS):
            raise ValueError(f"leds must name {len(LEDS)} LED indices ({', '.join(LEDS)}), "
                             f"not {leds!r}")
        self.top, self.clocking, self._leds = top, clocking, tuple(leds)

    def elaborate(self, platform):
        m = Module()
        m.submodules.clocking = clocking = self.clocking
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(clocking.clk), ResetSignal("sync").eq(clocking.rst)]
        m.submodules.board = top = self.top
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [top.uart_rx.eq(rx.i), tx.o.eq(top.uart_tx)]
        for bit, index in enumerate(self._leds):
            m.submodules[f"led{bit}"] = led = io.Buffer("o", platform.request("led", index,
                                                                              dir="-"))
            m.d.comb += led.o.eq(top.leds[bit])
        return m
