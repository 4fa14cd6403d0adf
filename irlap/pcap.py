"""pcap files of IrDA traffic: LINKTYPE_LINUX_IRDA (144), the format Wireshark decodes IrLAP from.

Each record holds a 16-byte big-endian pseudo-header and then the bare IrLAP frame (from the address
byte; no BOF/EOF, escapes or FCS). The pseudo-header's first field is the record type: a frame in or
out, a log message (text), or a "missed frames" note. The protocol field must be 0x0017, or
Wireshark rejects the whole file.

Only classic pcap is written (every tool reads it); the reader takes both byte orders, micro- and
nanosecond timestamps, and LINKTYPE_LINUX_SLL (113) records that carry IrDA (same header).
"""

from __future__ import annotations

import enum
import io
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
MAX_RECORD = 262144  # larger records are corruption, not captures

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_PCAPNG_MAGIC = 0x0A0D0D0A
_GLOBAL = struct.Struct("<IHHiIII")
_PSEUDO = struct.Struct(">HHH8sH")


class RecordKind(enum.IntEnum):
    """The pseudo-header's packet type."""

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
        return self.data.decode("utf-8", "replace")


class PcapWriter:
    """Writes a LINKTYPE_LINUX_IRDA capture to a path or an open binary stream.

    Use as a context manager; a path is opened and closed by the writer, a stream is left open.
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
        if record.time < 0:
            raise ValueError("a record's time cannot be negative")
        seconds = int(record.time)
        micros = round((record.time - seconds) * 1_000_000)
        if micros >= 1_000_000:
            seconds, micros = seconds + 1, micros - 1_000_000
        data = _PSEUDO.pack(int(record.kind), ARPHRD_IRDA, 0, bytes(8), IRDA_PROTOCOL) + bytes(record.data)
        length = min(len(data), SNAPLEN)
        self._stream.write(struct.pack("<IIII", seconds, micros, length, len(data)) + data[:length])
        self.records += 1

    def write_frame(self, frame: bytes, *, outgoing: bool, time: float) -> None:
        kind = RecordKind.FRAME_OUT if outgoing else RecordKind.FRAME_IN
        self.write_record(PcapRecord(time, kind, bytes(frame)))

    def write_log(self, text: str, *, time: float) -> None:
        self.write_record(PcapRecord(time, RecordKind.LOG, text.encode("utf-8")))

    def write_missed(self, count: int, *, time: float) -> None:
        """Note that ``count`` frames were lost (e.g. the capture buffer overflowed)."""
        self.write_record(PcapRecord(time, RecordKind.MISSED, f"{count} frames missed".encode()))

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
    """The records of a capture held in memory; ``name`` appears in error messages."""
    if len(data) < _GLOBAL.size:
        if len(data) >= 4 and int.from_bytes(data[:4], "little") == _PCAPNG_MAGIC:
            raise TraceError(_pcapng_message(name))
        raise TraceError(f"{name}: not a pcap file (only {len(data)} bytes, a pcap header needs 24)")
    magic_le = int.from_bytes(data[:4], "little")
    magic_be = int.from_bytes(data[:4], "big")
    if magic_le in (_MAGIC_US, _MAGIC_NS):
        order, magic = "<", magic_le
    elif magic_be in (_MAGIC_US, _MAGIC_NS):
        order, magic = ">", magic_be
    elif magic_le == _PCAPNG_MAGIC:
        raise TraceError(_pcapng_message(name))
    else:
        raise TraceError(f"{name}: not a pcap file (magic number {data[:4].hex()})")
    scale = 1e-9 if magic == _MAGIC_NS else 1e-6
    _magic, _major, _minor, _zone, _sigfigs, _snaplen, linktype = struct.unpack_from(order + "IHHiIII", data)
    linktype &= 0x0FFFFFFF  # upper bits may carry FCS-length flags
    if linktype not in (LINKTYPE_LINUX_IRDA, LINKTYPE_LINUX_SLL):
        raise TraceError(
            f"{name}: link type {linktype} is not IrDA (expected {LINKTYPE_LINUX_IRDA}, LINKTYPE_LINUX_IRDA)"
        )
    return _records(data, order, scale, linktype, name)


def _pcapng_message(name: str) -> str:
    return f"{name}: is a pcapng file, which is not supported; convert it with: editcap -F pcap {name} out.pcap"


def _records(data: bytes, order: str, scale: float, linktype: int, name: str) -> Iterator[PcapRecord]:
    header = struct.Struct(order + "IIII")
    offset = _GLOBAL.size
    number = 0
    while offset < len(data):
        number += 1
        if offset + header.size > len(data):
            raise TraceError(
                f"{name}: record {number} is truncated (header needs {header.size} bytes, "
                f"{len(data) - offset} left at offset {offset})"
            )
        seconds, fraction, caplen, _origlen = header.unpack_from(data, offset)
        offset += header.size
        if caplen > MAX_RECORD:
            raise TraceError(f"{name}: record {number} claims {caplen} bytes at offset {offset}: corrupt file")
        body = data[offset : offset + caplen]
        if len(body) < caplen:
            raise TraceError(f"{name}: record {number} is truncated (expected {caplen} bytes, got {len(body)})")
        offset += caplen
        if caplen < _PSEUDO.size:
            raise TraceError(f"{name}: record {number} has {caplen} bytes, shorter than the 16-byte IrDA header")
        kind_value, _arphrd, _alen, _addr, protocol = _PSEUDO.unpack_from(body)
        if linktype == LINKTYPE_LINUX_SLL and protocol != IRDA_PROTOCOL:
            raise TraceError(f"{name}: record {number} is not IrDA (protocol 0x{protocol:04x})")
        try:
            kind = RecordKind(kind_value)
        except ValueError:
            raise TraceError(f"{name}: record {number} has unknown packet type 0x{kind_value:04x}") from None
        yield PcapRecord(seconds + fraction * scale, kind, bytes(body[_PSEUDO.size :]))


def read_pcap(source: str | Path | BinaryIO) -> Iterator[PcapRecord]:
    """The records of a capture file (a path or a binary stream). Errors are :class:`TraceError`."""
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
        name = getattr(source, "name", "capture")
        data = source.read() if not isinstance(source, io.BytesIO) else source.getvalue()
    return read_pcap_bytes(data, name=str(name))
