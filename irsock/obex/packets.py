"""OBEX packets and headers (IrOBEX 1.2 / 1.5): the byte layout and nothing else.

A packet is ``opcode-or-response (1) | length (2, big endian, the whole packet) | [fixed fields] | headers``.
CONNECT (and its response) carry version, flags and the largest packet the sender can receive; SETPATH
carries flags and a constants byte. A header's id says its encoding in the two high bits: 0x00 a
null-terminated UTF-16BE text with a 2-byte length, 0x40 a byte sequence with a 2-byte length, 0x80 one
byte, 0xC0 four bytes. That is what lets a receiver skip headers it does not know.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone

from irsock.errors import IrSockError

OBEX_VERSION = 0x10  # 1.0, what every IrOBEX peer sends
MIN_PACKET = 255  # the smallest maximum packet length a peer may state
MAX_PACKET = 0xFFFF

# opcodes (the final bit 0x80 is part of CONNECT, DISCONNECT, SETPATH and ABORT)
CONNECT = 0x80
DISCONNECT = 0x81
PUT = 0x02
GET = 0x03
SETPATH = 0x85
ABORT = 0xFF
FINAL = 0x80

# response codes (always with the final bit)
CONTINUE = 0x90
SUCCESS = 0xA0
CREATED = 0xA1
BAD_REQUEST = 0xC0
UNAUTHORIZED = 0xC1
FORBIDDEN = 0xC3
NOT_FOUND = 0xC4
METHOD_NOT_ALLOWED = 0xC5
NOT_ACCEPTABLE = 0xC6
REQUEST_TIMEOUT = 0xC8
CONFLICT = 0xC9
LENGTH_REQUIRED = 0xCB
PRECONDITION_FAILED = 0xCC
ENTITY_TOO_LARGE = 0xCD
UNSUPPORTED_MEDIA_TYPE = 0xCF
INTERNAL_ERROR = 0xD0
NOT_IMPLEMENTED = 0xD1
SERVICE_UNAVAILABLE = 0xD3
DATABASE_FULL = 0xE0

RESPONSE_TEXT = {
    CONTINUE: "Continue", SUCCESS: "Success", CREATED: "Created", BAD_REQUEST: "Bad Request",
    UNAUTHORIZED: "Unauthorized", FORBIDDEN: "Forbidden", NOT_FOUND: "Not Found",
    METHOD_NOT_ALLOWED: "Method Not Allowed", NOT_ACCEPTABLE: "Not Acceptable", REQUEST_TIMEOUT: "Request Timeout",
    CONFLICT: "Conflict", LENGTH_REQUIRED: "Length Required", PRECONDITION_FAILED: "Precondition Failed",
    ENTITY_TOO_LARGE: "Request Entity Too Large", UNSUPPORTED_MEDIA_TYPE: "Unsupported Media Type",
    INTERNAL_ERROR: "Internal Server Error", NOT_IMPLEMENTED: "Not Implemented",
    SERVICE_UNAVAILABLE: "Service Unavailable", DATABASE_FULL: "Database Full",
}

# header ids
H_COUNT = 0xC0
H_NAME = 0x01
H_TYPE = 0x42
H_LENGTH = 0xC3
H_TIME = 0x44  # ISO 8601 text: YYYYMMDDTHHMMSS[Z]
H_TIME_4 = 0xC4  # older form: seconds since 1970-01-01 UTC
H_DESCRIPTION = 0x05
H_TARGET = 0x46
H_BODY = 0x48
H_END_OF_BODY = 0x49
H_WHO = 0x4A
H_CONNECTION_ID = 0xCB
H_APP_PARAMETERS = 0x4C
H_CREATOR = 0xCF
#: irsock's integrity headers, in the user-defined range (0x30-0x3F in each encoding class):
#: the SHA-256 of the whole object (byte sequence, in the first PUT packet) and the receiver's verdict
#: (one byte in the final response: 1 = the content matched)
H_IRSOCK_SHA256 = 0x71
H_IRSOCK_VERIFIED = 0xB1

HEADER_NAMES = {
    H_COUNT: "Count", H_NAME: "Name", H_TYPE: "Type", H_LENGTH: "Length", H_TIME: "Time", H_TIME_4: "Time (4 bytes)",
    H_DESCRIPTION: "Description", H_TARGET: "Target", H_BODY: "Body", H_END_OF_BODY: "End-of-Body",
    H_WHO: "Who", H_CONNECTION_ID: "Connection-Id", H_APP_PARAMETERS: "App-Parameters", H_CREATOR: "Creator",
    H_IRSOCK_SHA256: "irsock-SHA-256", H_IRSOCK_VERIFIED: "irsock-verified",
}

#: Target of the folder browsing service (OBEX FTP)
FBS_UUID = bytes.fromhex("F9EC7BC4953C11D2984E525400DC9E09")


class ObexError(IrSockError):
    """A malformed packet, a protocol violation, or a peer that went away mid-operation."""


class ObexPeerClosed(ObexError):
    """The peer ended the connection (end of stream) where a packet was due: it closed the session."""


class ObexResponseError(ObexError):
    """The peer answered with a failure code."""

    def __init__(self, code: int, what: str, description: str = "") -> None:
        self.code = code
        text = f"{what}: the peer answered 0x{code:02X} {RESPONSE_TEXT.get(code & 0xFF | 0x80, 'unknown code')}"
        super().__init__(text + (f" ({description})" if description else ""))


def response_text(code: int) -> str:
    return f"0x{code:02X} {RESPONSE_TEXT.get(code | 0x80, 'unknown code')}"


# --- headers ------------------------------------------------------------------------------------------
def encode_header(hid: int, value: str | bytes | int) -> bytes:
    kind = hid & 0xC0
    if kind == 0x00:
        assert isinstance(value, str)
        text = value.encode("utf-16-be") + b"\0\0" if value else b""
        return struct.pack(">BH", hid, 3 + len(text)) + text
    if kind == 0x40:
        data = bytes(value)  # type: ignore[arg-type]
        if len(data) + 3 > MAX_PACKET:
            raise ObexError(f"header 0x{hid:02X} of {len(data)} bytes does not fit a packet")
        return struct.pack(">BH", hid, 3 + len(data)) + data
    if kind == 0x80:
        return struct.pack(">BB", hid, int(value) & 0xFF)  # type: ignore[arg-type]
    return struct.pack(">BI", hid, int(value) & 0xFFFFFFFF)  # type: ignore[arg-type]


def decode_headers(data: bytes | memoryview) -> list[tuple[int, str | bytes | int]]:
    """Every header in ``data`` in order; unicode headers become ``str`` (empty for a bare header)."""
    view = memoryview(data)
    out: list[tuple[int, str | bytes | int]] = []
    pos = 0
    while pos < len(view):
        hid = view[pos]
        kind = hid & 0xC0
        if kind == 0x80:
            if pos + 2 > len(view):
                raise ObexError(f"header 0x{hid:02X} is cut short")
            out.append((hid, view[pos + 1]))
            pos += 2
            continue
        if kind == 0xC0:
            if pos + 5 > len(view):
                raise ObexError(f"header 0x{hid:02X} is cut short")
            out.append((hid, struct.unpack_from(">I", view, pos + 1)[0]))
            pos += 5
            continue
        if pos + 3 > len(view):
            raise ObexError(f"header 0x{hid:02X} is cut short")
        length = struct.unpack_from(">H", view, pos + 1)[0]
        if length < 3 or pos + length > len(view):
            raise ObexError(f"header 0x{hid:02X} states {length} bytes, the packet holds {len(view) - pos}")
        body = bytes(view[pos + 3:pos + length])
        if kind == 0x00:
            if len(body) % 2:
                raise ObexError(f"unicode header 0x{hid:02X} has an odd length")
            try:
                text = body.decode("utf-16-be")
            except UnicodeDecodeError:
                raise ObexError(f"unicode header 0x{hid:02X} is not valid UTF-16") from None
            out.append((hid, text[:-1] if text.endswith("\0") else text))
        else:
            out.append((hid, body))
        pos += length
    return out


# --- packets ------------------------------------------------------------------------------------------
@dataclass
class Packet:
    """A request (``code`` = opcode) or a response (``code`` = response code) with its headers."""

    code: int
    headers: list[tuple[int, str | bytes | int]] = field(default_factory=list)
    # CONNECT and its response
    version: int | None = None
    flags: int | None = None
    max_packet: int | None = None
    # SETPATH
    setpath_flags: int | None = None

    def get(self, hid: int, default=None):
        for key, value in self.headers:
            if key == hid:
                return value
        return default

    def body(self) -> bytes:
        return b"".join(v for k, v in self.headers if k in (H_BODY, H_END_OF_BODY))  # type: ignore[misc]

    @property
    def has_end_of_body(self) -> bool:
        return any(k == H_END_OF_BODY for k, _v in self.headers)

    @property
    def final(self) -> bool:
        return bool(self.code & FINAL)


def build(code: int, headers: list[tuple[int, str | bytes | int]] | tuple = (), *, connect: tuple[int, int, int] | None
          = None, setpath_flags: int | None = None, raw_headers: bytes = b"") -> bytes:
    """The bytes of a packet; ``connect`` = (version, flags, max packet) for CONNECT and its response."""
    fixed = b""
    if connect is not None:
        fixed = struct.pack(">BBH", *connect)
    elif setpath_flags is not None:
        fixed = struct.pack(">BB", setpath_flags, 0)
    body = fixed + b"".join(encode_header(h, v) for h, v in headers) + raw_headers
    if len(body) + 3 > MAX_PACKET:
        raise ObexError(f"packet of {len(body) + 3} bytes exceeds the OBEX maximum of {MAX_PACKET}")
    return struct.pack(">BH", code, len(body) + 3) + body


def parse(data: bytes, *, request_to: int | None = None, response_to: int | None = None) -> Packet:
    """A packet; ``response_to`` the opcode it answers (CONNECT responses have fixed fields)."""
    if len(data) < 3:
        raise ObexError("packet shorter than its 3-byte header")
    code, length = struct.unpack_from(">BH", data)
    if length != len(data):
        raise ObexError(f"packet states {length} bytes, {len(data)} arrived")
    pos = 3
    packet = Packet(code)
    if code == CONNECT and response_to is None or response_to == CONNECT:
        if len(data) < 7:
            raise ObexError("CONNECT packet without version, flags and maximum packet length")
        packet.version, packet.flags, packet.max_packet = struct.unpack_from(">BBH", data, 3)
        pos = 7
    elif code == SETPATH and response_to is None:
        if len(data) < 5:
            raise ObexError("SETPATH packet without flags and constants")
        packet.setpath_flags = data[3]
        pos = 5
    packet.headers = decode_headers(memoryview(data)[pos:])
    return packet


def read_packet(sock, limit: int = MAX_PACKET) -> bytes | None:
    """One whole packet from a stream socket; None at a clean end of stream before a packet began."""
    head = _read_exactly(sock, 3, allow_eof=True)
    if head is None:
        return None
    length = struct.unpack_from(">H", head, 1)[0]
    if length < 3:
        raise ObexError(f"packet length {length} is below the 3-byte header: the stream is out of step")
    if length > limit:
        raise ObexError(f"packet of {length} bytes exceeds the {limit} bytes announced")
    rest = _read_exactly(sock, length - 3)
    return head + rest  # type: ignore[operator]


def _read_exactly(sock, count: int, allow_eof: bool = False) -> bytes | None:
    chunks = []
    got = 0
    while got < count:
        data = sock.recv(count - got)
        if not data:
            if allow_eof and got == 0:
                return None
            raise ObexPeerClosed(f"the peer closed the connection in the middle of a packet ({got} of {count} bytes)")
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


class PacketReader:
    """Whole packets out of a byte stream, without I/O: for a server that gets its bytes from elsewhere
    (an emulated device inside the engine). It holds at most one packet: :meth:`wanted` says how many more
    bytes complete it, so the caller reads no further than that and the peer's data waits below.
    """

    def __init__(self, limit: int = MAX_PACKET) -> None:
        self.limit = limit
        self._buffer = bytearray()

    def wanted(self) -> int:
        """Bytes still missing from the packet under way (3 for the header when none has begun)."""
        if len(self._buffer) < 3:
            return 3 - len(self._buffer)
        return struct.unpack_from(">H", self._buffer, 1)[0] - len(self._buffer)

    def feed(self, data: bytes) -> bytes | None:
        """Add at most :meth:`wanted` bytes; the packet once whole. An impossible length raises ObexError
        (the stream is out of step and nothing sensible can follow)."""
        if len(data) > self.wanted():
            raise ObexError(f"{len(data)} bytes offered where the packet under way needs {self.wanted()}")
        self._buffer += data
        if len(self._buffer) >= 3:
            length = struct.unpack_from(">H", self._buffer, 1)[0]
            if length < 3:
                raise ObexError(f"packet length {length} is below the 3-byte header: the stream is out of step")
            if length > self.limit:
                raise ObexError(f"packet of {length} bytes exceeds the {self.limit} bytes announced")
            if len(self._buffer) == length:
                packet, self._buffer = bytes(self._buffer), bytearray()
                return packet
        return None

    @property
    def pending(self) -> int:
        """Bytes of an unfinished packet held (0 between packets)."""
        return len(self._buffer)


def parse_time(value: object) -> float | None:
    """A Time header (ISO 8601 bytes, UTC with ``Z`` or local without; or the 4-byte form) as a POSIX time.

    None for anything unreadable: a wrong time must never cost the file.
    """
    if isinstance(value, int):
        return float(value)
    if not isinstance(value, bytes):
        return None
    text = value.rstrip(b"\0").decode("ascii", "replace").strip()
    utc = text.endswith("Z")
    try:
        moment = datetime.strptime(text.rstrip("Z"), "%Y%m%dT%H%M%S")
    except ValueError:
        return None
    if utc:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):
        return None
