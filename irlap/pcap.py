"""pcap files of IrDA traffic: LINKTYPE_LINUX_IRDA (144), the format Wireshark decodes IrLAP from.

Each record holds a 16-byte big-endian pseudo-header and then the bare IrLAP frame (from the address
byte; no BOF/EOF, escapes or FCS). The pseudo-header's first field is the record type: a frame in or
out, a log message (text), or a "missed frames" note. The protocol field must be 0x0017, or
Wireshark rejects the whole file ("invalid sll_protocol field").

Only classic pcap is written (every tool reads it, pcapng buys nothing for one link type); the reader
takes both byte orders, micro- and nanosecond timestamps, and LINKTYPE_LINUX_SLL (113) records that
carry IrDA (same 16-byte header). Everything wrong with a file is a :class:`TraceError` naming the
file, the record number and its offset, so the CLI can print one line instead of a traceback.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from irlap.errors import TraceError

LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_IRDA = 144
IRDA_PROTOCOL = 0x0017
ARPHRD_IRDA = 783
SNAPLEN = 65535
MAX_RECORD = 262144  # Wireshark's own limit; a larger caplen means a corrupt file, not a capture

# Packet types of the pseudo-header (Wireshark's wiretap names them IRDA_INCOMING etc.).
INCOMING = 0x0000
OUTGOING = 0x0004
LOG = 0x0100
MISSED = 0x0101

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_PCAPNG_MAGIC = 0x0A0D0D0A
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_PSEUDO = struct.Struct(">HHH8sH")
_MAX_SECONDS = 2**32  # the record header's seconds field is an unsigned 32-bit number

# LINKTYPE_LINUX_SLL packet types: 0-3 are received (to us, broadcast, multicast, to another host).
_SLL_OUTGOING = 4


class RecordKind(enum.IntEnum):
    """The pseudo-header's packet type (the same values as INCOMING, OUTGOING, LOG and MISSED)."""

    FRAME_IN = 0x0000
    FRAME_OUT = 0x0004
    LOG = 0x0100
    MISSED = 0x0101


@dataclass(frozen=True, slots=True)
class PcapRecord:
    """One capture record: ``data`` is the IrLAP frame, or the text of a log/missed record."""

    time: float
    kind: RecordKind
    data: bytes

    @property
    def is_frame(self) -> bool:
        return self.kind in (RecordKind.FRAME_IN, RecordKind.FRAME_OUT)

    @property
    def incoming(self) -> bool:
        return self.kind is RecordKind.FRAME_IN

    @property
    def outgoing(self) -> bool:
        return self.kind is RecordKind.FRAME_OUT

    @property
    def text(self) -> str:
        """The message of a log record; capture files come from anywhere, so bad UTF-8 is replaced."""
        return self.data.decode("utf-8", "replace")


def _timestamp(time: float) -> tuple[int, int]:
    """Seconds and microseconds; rounding up to a whole second carries instead of writing 1000000 us."""
    if not math.isfinite(time) or time < 0:
        raise ValueError(f"a record's time must be a finite number >= 0, not {time!r}")
    seconds = int(time)
    micros = round((time - seconds) * 1_000_000)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    if seconds >= _MAX_SECONDS:
        raise ValueError(f"a record's time must be below 2**32 seconds (year 2106), not {time!r}")
    return seconds, micros


class PcapWriter:
    """Writes a LINKTYPE_LINUX_IRDA capture to a path or an open binary stream.

    The global header is written at once, so even an empty capture is a valid file. Use as a context
    manager; a path is opened and closed by the writer, a stream is only flushed (its owner closes it).
    Records longer than the snaplen are cut, with their original length kept in the record header.
    """

    def __init__(self, target: str | Path | BinaryIO) -> None:
        if isinstance(target, (str, Path)):
            self._stream: BinaryIO = open(target, "wb")  # noqa: SIM115 - closed in close()
            self._owned = True
        else:
            self._stream = target
            self._owned = False
        self._stream.write(_GLOBAL.pack(_MAGIC_US, 2, 4, 0, 0, SNAPLEN, LINKTYPE_LINUX_IRDA))
        self.records = 0

    def write_record(self, record: PcapRecord) -> None:
        seconds, micros = _timestamp(record.time)
        kind = RecordKind(record.kind)
        data = _PSEUDO.pack(kind, ARPHRD_IRDA, 0, bytes(8), IRDA_PROTOCOL) + bytes(record.data)
        length = min(len(data), SNAPLEN)
        self._stream.write(_RECORD.pack(seconds, micros, length, len(data)) + data[:length])
        self.records += 1

    def write_frame(self, frame: bytes, *, outgoing: bool, time: float) -> None:
        """A bare IrLAP frame (address byte first, no FCS) sent (``outgoing``) or received."""
        kind = RecordKind.FRAME_OUT if outgoing else RecordKind.FRAME_IN
        self.write_record(PcapRecord(time, kind, bytes(frame)))

    def write_log(self, text: str, *, time: float) -> None:
        """A text note (speed change, port event...) that Wireshark shows as a "Log Message"."""
        self.write_record(PcapRecord(time, RecordKind.LOG, text.encode("utf-8")))

    def write_missed(self, count: int | str = 1, *, time: float) -> None:
        """Note that frames were lost (e.g. a buffer overflowed): ``count`` of them, or a text saying why.

        Wireshark shows only a fixed warning for these records; the text is for our own reader.
        """
        if isinstance(count, str):
            text = count
        elif count < 0:
            raise ValueError(f"a count of missed frames cannot be negative, not {count}")
        else:
            text = f"{count} frame{'s' if count != 1 else ''} missed"
        self.write_record(PcapRecord(time, RecordKind.MISSED, text.encode("utf-8")))

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        if self._owned:
            self._stream.close()
        else:
            self._stream.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_pcap_bytes(data: bytes, *, name: str = "capture") -> Iterator[PcapRecord]:
    """The records of a capture held in memory; ``name`` appears in error messages.

    The global header is checked at once (a wrong file fails before anything is printed); records are
    then decoded one at a time, so the good records before a damaged one are still delivered.
    """
    data = bytes(data)
    if len(data) >= 4 and int.from_bytes(data[:4], "little") == _PCAPNG_MAGIC:
        raise TraceError(_pcapng_message(name))
    if len(data) < _GLOBAL.size:
        raise TraceError(
            f"{name}: not a pcap file (only {len(data)} bytes, a pcap header needs {_GLOBAL.size})"
        )
    magic_le = int.from_bytes(data[:4], "little")
    magic_be = int.from_bytes(data[:4], "big")
    if magic_le in (_MAGIC_US, _MAGIC_NS):
        order, magic = "<", magic_le
    elif magic_be in (_MAGIC_US, _MAGIC_NS):
        order, magic = ">", magic_be
    else:
        raise TraceError(f"{name}: not a pcap file (magic number {data[:4].hex()})")
    scale = 1e-9 if magic == _MAGIC_NS else 1e-6
    _magic, _major, _minor, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(order + "IHHiIII", data)
    linktype &= 0x0FFFFFFF  # the upper bits may carry FCS-length flags
    if linktype not in (LINKTYPE_LINUX_IRDA, LINKTYPE_LINUX_SLL):
        raise TraceError(
            f"{name}: link type {linktype} is not IrDA (expected {LINKTYPE_LINUX_IRDA}, LINKTYPE_LINUX_IRDA, "
            f"or {LINKTYPE_LINUX_SLL}, LINKTYPE_LINUX_SLL)"
        )
    # snaplen 0 is written by some tools for "no limit"; Wireshark's ceiling applies in every case
    limit = min(snaplen, MAX_RECORD) if snaplen else MAX_RECORD
    return _records(data, order, scale, linktype, limit, name)


def _pcapng_message(name: str) -> str:
    return (
        f"{name}: is a pcapng file, which is not supported; convert it to classic pcap with: "
        f"editcap -F pcap {name} out.pcap"
    )


def _records(
    data: bytes, order: str, scale: float, linktype: int, limit: int, name: str
) -> Iterator[PcapRecord]:
    header = struct.Struct(order + "IIII")
    offset = _GLOBAL.size
    number = 0
    while offset < len(data):
        number += 1
        where = f"{name}: record {number} (offset {offset})"
        if offset + header.size > len(data):
            raise TraceError(
                f"{name}: record {number} is truncated (its header needs {header.size} bytes, "
                f"{len(data) - offset} left at offset {offset})"
            )
        seconds, fraction, caplen, _origlen = header.unpack_from(data, offset)
        if caplen > limit:
            raise TraceError(f"{where} claims {caplen} bytes, more than the limit of {limit}: corrupt file")
        body = data[offset + header.size : offset + header.size + caplen]
        if len(body) < caplen:
            raise TraceError(
                f"{name}: record {number} is truncated (expected {caplen} bytes, got {len(body)} "
                f"at offset {offset + header.size})"
            )
        if caplen < _PSEUDO.size:
            raise TraceError(f"{where} has {caplen} bytes, shorter than the 16-byte IrDA pseudo-header")
        kind_value, _arphrd, _alen, _addr, protocol = _PSEUDO.unpack_from(body)
        if linktype == LINKTYPE_LINUX_SLL:
            if protocol != IRDA_PROTOCOL:
                raise TraceError(f"{where} is not IrDA (protocol 0x{protocol:04x}, expected 0x0017)")
            if kind_value > _SLL_OUTGOING:
                raise TraceError(f"{where} has unknown packet type 0x{kind_value:04x}")
            kind = RecordKind.FRAME_OUT if kind_value == _SLL_OUTGOING else RecordKind.FRAME_IN
        else:
            try:
                kind = RecordKind(kind_value)
            except ValueError:
                raise TraceError(f"{where} has unknown packet type 0x{kind_value:04x}") from None
        yield PcapRecord(seconds + fraction * scale, kind, body[_PSEUDO.size :])
        offset += header.size + caplen


def read_pcap(source: str | Path | BinaryIO) -> Iterator[PcapRecord]:
    """The records of a capture file (a path, or a binary stream read from its current position).

    Every problem, including a missing or unreadable file, is a :class:`TraceError`.
    """
    if isinstance(source, (str, Path)):
        name = str(source)
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise TraceError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise TraceError(f"{name}: is a directory") from None
        except OSError as exc:
            raise TraceError(f"{name}: cannot read: {exc.strerror or exc}") from None
    else:
        name = str(getattr(source, "name", "capture"))
        try:
            data = source.read()
        except OSError as exc:
            raise TraceError(f"{name}: cannot read: {exc.strerror or exc}") from None
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TraceError(f"{name}: must be opened in binary mode")
    return read_pcap_bytes(data, name=name)
