"""The emulated dive computer: a Uwatec Smart Com as libdivecomputer's Uwatec Smart driver talks to it.

The protocol facts (from libdivecomputer's public source, read for behaviour only; the reference notes in
the project's shared docs give file and line): the host finds the device by its nickname with
``IRLMP_ENUMDEVICES``, connects a TinyTP ``SOCK_STREAM`` straight to LSAP 1 (no IAS lookup), and sends
commands of one byte plus parameters; every answer is a fixed number of bytes, except the dive data:

====================================  ====================================================================
``1B``                                ``01`` (handshake 1)
``1C 10 27 00 00``                    ``01`` (handshake 2)
``10`` / ``11`` / ``13``              model / hardware version / software version (one byte each)
``14`` / ``1A``                       serial number / device clock, 4 bytes little-endian
``C6`` T(4, LE) ``10 27 00 00``       4 bytes LE: the length of the dives newer than timestamp T
``C4`` T(4, LE) ``10 27 00 00``       4 bytes LE: that length + 4, then the dives
====================================  ====================================================================

Dives lie back to back, oldest first; each starts ``A5 A5 5A 5A``, its length (header included, 4 bytes LE)
and its timestamp (half-second ticks since 2000-01-01 UTC, 4 bytes LE; also the host's fingerprint), then
the rest of a 100-byte Smart Com header and the profile. What is in the header and profile past those fields
is made up for the emulator (depth samples that look like a dive); nothing of a real log is copied.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

from irlap.station import Station
from irsock.stack import DeviceStack
from irsock.ttp import TtpConnected, TtpDisconnected, TtpReadable

DIVE_LSAP = 1
NICKNAME = "Aladin Smart Com"
MODEL = 0x14  # Smart Com
HARDWARE = 0x01
SOFTWARE = 0x22  # BCD 2.2
SERIAL = 0x00123456
HEADER_SIZE = 100  # Smart Com
MAGIC = bytes.fromhex("a5a55a5a")
EPOCH_2000 = 946684800  # 2000-01-01T00:00:00Z as a Unix time
HANDSHAKE_2 = bytes.fromhex("1c10270000")
DATA_SUFFIX = bytes.fromhex("10270000")
COMMAND_LENGTHS = {0x1B: 1, 0x1C: 5, 0x10: 1, 0x11: 1, 0x13: 1, 0x14: 1, 0x1A: 1, 0xC6: 9, 0xC4: 9}


def ticks(unix_time: float) -> int:
    """Half-second ticks since 2000-01-01 UTC: the device's clock and the dives' timestamps."""
    return int((unix_time - EPOCH_2000) * 2)


def make_dive(timestamp: int, minutes: int, max_depth_cm: int) -> bytes:
    """One made-up dive: header (magic, length, timestamp, max depth, duration) and a depth profile."""
    samples = [int(max_depth_cm * math.sin(math.pi * i / (minutes * 15))) for i in range(minutes * 15)]  # every 4 s
    profile = b"".join(struct.pack("<H", max(0, depth)) for depth in samples)
    length = HEADER_SIZE + len(profile)
    header = MAGIC + struct.pack("<II", length, timestamp) + struct.pack("<HH", max_depth_cm, minutes)
    return header.ljust(HEADER_SIZE, b"\x00") + profile


def stored_dives() -> list[bytes]:
    """The log the emulated computer holds, oldest first (the same in every run)."""
    start = ticks(1_767_225_600)  # 2026-01-01T00:00:00Z
    day = 2 * 86400
    return [make_dive(start + 10 * day, 42, 1830), make_dive(start + 11 * day, 55, 2410),
            make_dive(start + 40 * day, 37, 1220)]


def dive_timestamp(dive: bytes) -> int:
    return struct.unpack_from("<I", dive, 8)[0]


@dataclass
class SmartCom:
    """The command/answer side of the computer: bytes in, bytes out."""

    dives: list[bytes] = field(default_factory=stored_dives)
    clock: int = field(default_factory=lambda: dive_timestamp(stored_dives()[-1]) + 7200)  # 1 h after
    commands: list[bytes] = field(default_factory=list)
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> bytes:
        """Answer every whole command in ``data`` (with what came before); unknown bytes are dropped."""
        self._buffer += data
        out = bytearray()
        while self._buffer:
            need = COMMAND_LENGTHS.get(self._buffer[0])
            if need is None:
                del self._buffer[0]
                continue
            if len(self._buffer) < need:
                break
            command = bytes(self._buffer[:need])
            del self._buffer[:need]
            self.commands.append(command)
            out += self.answer(command)
        return bytes(out)

    def answer(self, command: bytes) -> bytes:
        code = command[0]
        if code == 0x1B:
            return b"\x01"
        if code == 0x1C:
            return b"\x01" if command == HANDSHAKE_2 else b"\x00"
        if code in (0x10, 0x11, 0x13):
            return bytes(({0x10: MODEL, 0x11: HARDWARE, 0x13: SOFTWARE}[code],))
        if code == 0x14:
            return struct.pack("<I", SERIAL)
        if code == 0x1A:
            return struct.pack("<I", self.clock)
        since = struct.unpack_from("<I", command, 1)[0]
        newer = b"".join(dive for dive in self.dives if dive_timestamp(dive) > since)
        if code == 0xC6:
            return struct.pack("<I", len(newer))
        return struct.pack("<I", len(newer) + 4) + newer  # 0xC4


class DiveComputer(DeviceStack):
    """The computer's stack: TinyTP listening on LSAP 1 (not in IAS), one :class:`SmartCom` per connection."""

    def __init__(self, station: Station) -> None:
        super().__init__(station)
        self.listen(DIVE_LSAP)
        self.sessions: dict[tuple[int, int], SmartCom] = {}

    def on_event(self, event: object, now: float) -> None:
        if isinstance(event, TtpConnected) and event.incoming:
            self.sessions[event.conn] = SmartCom()
        elif isinstance(event, TtpDisconnected):
            self.sessions.pop(event.conn, None)
        elif isinstance(event, TtpReadable) and event.conn in self.sessions:
            reply = self.sessions[event.conn].feed(self.recv(event.conn, None, now))
            connection = self.connections.get(event.conn)
            if reply and connection is not None and connection.open:
                self.send(event.conn, reply, now)


def dive_stack(station: Station) -> DiveComputer:
    return DiveComputer(station)
