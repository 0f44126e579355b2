"""The serial link to a board: the framing of the UART bridge (``hw/common/serial_bridge.py``),
and the host side that speaks it -- over pyserial on a board, over a simulated UART under cocotb.

Framing (version 1). Every frame starts with the sync byte ``0xA5``; multi-byte fields are
little-endian, except the checksum; the host sends one request and waits for its response.

Request::

    A5 | OP | SEQ | N-1 | ADDR (4 bytes) | N data words (4 bytes each; writes only) | CRC (2 bytes)

* ``OP``: ``W`` (0x57) writes the N words to host-port addresses ``ADDR .. ADDR+N-1``, ``R``
  (0x52) reads N words from them; ``w`` (0x77) and ``r`` (0x72) do the same at the one address
  ``ADDR`` (a stream window); ``I`` (0x49) asks for the bridge's :data:`INFO_FIELDS`
  (``N-1`` and ``ADDR`` 0). ``N`` is 1..``max_words`` (the bridge's frame buffer, in its INFO).
* ``SEQ``: the host numbers its frames. A write frame whose ``SEQ`` equals that of the frame
  executed last is a retry of it: the bridge answers OK and writes nothing again. The host
  therefore repeats a frame with the same ``SEQ`` whenever it has no valid answer, and opens
  a session with an INFO frame (which sets the bridge's last ``SEQ``). A repeated read frame
  is read again: the same words from registers and memory, the next ones from a stream
  window.
* ``CRC``: CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
  XOR) of every byte after the sync byte, sent high byte first -- so the CRC of everything
  after the sync byte, checksum included, is 0.

Response::

    A5 | STATUS | SEQ | data words (reads and INFO that succeed) | CRC (2 bytes)

``STATUS`` 0 is OK; the others (:data:`STATUS`) mean that the frame was dropped whole --
nothing of it was written, since a write frame's words are buffered until its checksum has
checked out -- a bad checksum, an unknown opcode, a frame cut short (the line stayed idle
for the bridge's ``timeout`` mid-frame), an address or count out of range, or a byte lost by
the UART (framing error or overrun). After an error the bridge ignores the line until it has
been idle for ``timeout``, then answers and looks for the next sync byte: a host that
receives an error response may send the next frame at once.

:class:`SerialLink` is the host side over any byte channel -- :class:`SerialTransport` is it
over pyserial, :class:`snnforge.sim.boards.uart.UARTChannel` over a cocotb-simulated UART --
and a :class:`~snnforge.host.Transport` for :class:`~snnforge.host.HostDriver`: it cuts each
command list into burst frames, numbers them, checks every response and repeats a frame
(same ``SEQ``) after an error response, a corrupted or missing response.
"""

from __future__ import annotations

import binascii
import random
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from .params import SnnforgeError

__all__ = ["SYNC", "OPS", "STATUS", "MAGIC", "VERSION", "INFO_FIELDS", "HEADER_BYTES",
           "WORD_BYTES", "MAX_WORDS", "crc16", "Request", "plan_frames", "encode_response",
           "LinkError", "Channel", "SerialLink", "SerialTransport"]

SYNC = 0xA5
#: Opcodes by name.
OPS = {"write": 0x57, "read": 0x52, "write_fixed": 0x77, "read_fixed": 0x72, "info": 0x49}
#: Response status codes and what they mean.
STATUS = {0: "ok", 1: "checksum mismatch", 2: "unknown opcode",
          3: "frame cut short (the line went idle mid-frame)",
          4: "address or word count out of range", 5: "a byte was lost on the line (framing "
          "error or overrun)"}
MAGIC = 0x464E4E53          # "SNNF", little-endian
VERSION = 1
#: The words of an INFO response, in order.
INFO_FIELDS = ("magic", "version", "max_words", "interface_id", "memory_bytes", "clock_hz")
HEADER_BYTES = 7            # OP, SEQ, N-1, ADDR
WORD_BYTES = 4
MAX_WORDS = 256             # N-1 is one byte


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (continuing from ``crc``)."""
    return binascii.crc_hqx(bytes(data), crc)


def _words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + WORD_BYTES], "little")
            for i in range(0, len(data), WORD_BYTES)]


def _pack(words) -> bytes:
    return b"".join(int(w).to_bytes(WORD_BYTES, "little") for w in words)


def _checked(body: bytes) -> bytes:
    return bytes([SYNC]) + body + crc16(body).to_bytes(2, "big")


@dataclass(frozen=True)
class Request:
    """One request frame: opcode (:data:`OPS`), word address, word count and, for writes, the
    words."""
    op: int
    addr: int
    count: int
    words: tuple = ()

    @property
    def writes(self) -> bool:
        return self.op in (OPS["write"], OPS["write_fixed"])

    @property
    def answer_words(self) -> int:
        """Data words of a successful response."""
        if self.op == OPS["info"]:
            return len(INFO_FIELDS)
        return 0 if self.writes else self.count

    def encode(self, seq: int) -> bytes:
        return _checked(bytes([self.op, seq & 0xFF, self.count - 1])
                        + self.addr.to_bytes(4, "little") + _pack(self.words))


def plan_frames(commands: Sequence[tuple], max_words: int) -> list[Request]:
    """Host-port commands ``(write, addr, data)`` as the fewest frames, in order: runs of
    writes (or reads) to consecutive addresses become ``W`` (``R``) frames, runs to one address
    ``w`` (``r``) frames, each of at most ``max_words`` words."""
    frames, i = [], 0
    while i < len(commands):
        write, addr, _ = commands[i]
        j, step = i + 1, None
        while j < len(commands) and j - i < max_words and commands[j][0] == write:
            gap = commands[j][1] - commands[j - 1][1]
            if gap not in (0, 1) or (step is not None and gap != step):
                break
            step = gap
            j += 1
        run = commands[i:j]
        name = ("write" if write else "read") + ("_fixed" if step == 0 else "")
        frames.append(Request(OPS[name], addr, len(run),
                              tuple(int(d) for _, _, d in run) if write else ()))
        i = j
    return frames


def encode_response(status: int, seq: int, words=()) -> bytes:
    """A response frame (what the bridge sends; the reference for tests)."""
    return _checked(bytes([status, seq & 0xFF]) + _pack(words))


class LinkError(SnnforgeError):
    """The board gave no valid answer (after the retries), or is not the expected design."""


class Channel(Protocol):
    """Bytes to and from the bridge. ``receive`` returns up to ``n`` bytes, fewer once nothing
    more arrives in time (the channel's timeout, long enough for ``n`` bytes plus the bridge's
    ``timeout``)."""

    async def send(self, data: bytes) -> None: ...

    async def receive(self, n: int) -> bytes: ...

    async def discard(self) -> None:
        """Drop whatever has arrived and not been received."""


@dataclass
class LinkStats:
    """What the link counted: frames sent (first tries), repeats, and why each repeat was
    needed (the bridge's status text, or the host's finding)."""
    frames: int = 0
    repeats: int = 0
    reasons: dict = field(default_factory=dict)

    def note(self, reason: str):
        self.repeats += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


class SerialLink:
    """The host side of the bridge's protocol over a :class:`Channel`; a
    :class:`~snnforge.host.Transport` (``transact``) once :meth:`hello` has read the bridge's
    INFO (``memory_size`` then says how much memory the board has for a job).

    Parameters
    ----------
    channel : Channel
    tries : int
        Attempts per frame before :class:`LinkError`.
    seed : int or None
        The first ``SEQ`` is drawn from it (None: at random).
    """

    def __init__(self, channel: Channel, *, tries: int = 8, seed: int | None = None):
        if not isinstance(tries, int) or tries < 1:
            raise ValueError(f"tries must be a positive integer, not {tries!r}")
        self.channel = channel
        self.tries = tries
        self.seq = random.Random(seed).randrange(256)
        self.info: dict | None = None
        self.stats = LinkStats()

    @property
    def memory_size(self) -> int:
        if self.info is None:
            raise RuntimeError("call hello() first")
        return self.info["memory_bytes"]

    async def hello(self) -> dict:
        """Read the bridge's INFO (:data:`INFO_FIELDS`) and check that it speaks this
        protocol."""
        words = await self.exchange(Request(OPS["info"], 0, 1))
        info = dict(zip(INFO_FIELDS, words))
        if info["magic"] != MAGIC or info["version"] != VERSION:
            raise LinkError(f"the board answers, but not as an snnforge bridge of version "
                            f"{VERSION} (magic {info['magic']:#x}, version {info['version']})")
        self.info = info
        return info

    async def transact(self, commands: Sequence[tuple]) -> list[int]:
        if self.info is None:
            await self.hello()
        data = []
        for frame in plan_frames(commands, self.info["max_words"]):
            data += await self.exchange(frame)
        return data

    async def exchange(self, request: Request) -> list[int]:
        """Send one frame until a valid answer comes back; its data words."""
        self.seq = (self.seq + 1) & 0xFF
        encoded = request.encode(self.seq)
        self.stats.frames += 1
        problem = None
        for attempt in range(self.tries):
            if attempt:
                self.stats.note(problem)
            await self.channel.send(encoded)
            problem, words = await self._answer(request)
            if problem is None:
                return words
            await self.channel.discard()
        raise LinkError(f"no valid answer from the board after {self.tries} tries of a "
                        f"{len(encoded)}-byte frame (last: {problem})")

    async def _answer(self, request: Request):
        """``(None, words)``, or ``(problem, None)`` if the answer is missing, corrupted or an
        error response. OK answers to other frames (a late one to an earlier try) are
        skipped."""
        while True:
            byte = await self.channel.receive(1)
            if not byte:
                return "no answer", None
            if byte[0] != SYNC:
                continue
            head = await self.channel.receive(2)
            if len(head) < 2:
                return "answer cut short", None
            status, seq = head
            words = request.answer_words if status == 0 else 0
            rest = await self.channel.receive(WORD_BYTES * words + 2)
            if len(rest) < WORD_BYTES * words + 2:
                return "answer cut short", None
            if crc16(head + rest) != 0:
                return "corrupted answer", None
            if status:
                # Whatever its SEQ (a frame may break before its SEQ is in): repeating is safe.
                return STATUS.get(status, f"status {status}"), None
            if seq == self.seq:
                return None, _words(rest[:-2])


class _PySerialChannel:
    """A :class:`Channel` over an open ``serial.Serial``."""

    def __init__(self, port, baud: int, bridge_timeout: float):
        self.port, self.baud, self.bridge_timeout = port, baud, bridge_timeout
        self.in_flight = 0          # bytes written that may still be on their way

    async def send(self, data: bytes):
        self.port.write(data)
        self.port.flush()
        self.in_flight += len(data)

    async def receive(self, n: int) -> bytes:
        # Ten bits a byte, twice over -- the request still in the adapter's buffer and the
        # answer --, plus the bridge's idle timeout and the USB latency.
        self.port.timeout = 20 * (n + self.in_flight) / self.baud + self.bridge_timeout + 0.2
        self.in_flight = 0
        return self.port.read(n)

    async def discard(self):
        self.port.reset_input_buffer()


class SerialTransport(SerialLink):
    """:class:`SerialLink` over a serial port (pyserial): ``snnforge run NAME --port PORT``.

    Parameters
    ----------
    port : str
        The device (``/dev/ttyUSB0``, ``COM3``) or a pyserial URL.
    baud : int
        The bitstream's baud rate (``snnforge board --baud``).
    bridge_timeout : float
        The bridge's idle timeout in seconds (what the board flow builds in).
    """

    def __init__(self, port: str, baud: int = 115200, *, bridge_timeout: float = 0.02,
                 tries: int = 8):
        import serial
        try:
            self.serial = serial.serial_for_url(port, baudrate=baud, timeout=1.0)
        except (serial.SerialException, ValueError) as error:
            raise SnnforgeError(f"--port {port}: cannot open it ({error})") from None
        super().__init__(_PySerialChannel(self.serial, baud, bridge_timeout), tries=tries)

    def close(self):
        self.serial.close()
