"""An OBEX server for emulated devices: objects in memory, bytes in and bytes out, no socket and no thread.

:class:`irsock.obex.ObexServer` serves a folder on disk from a socket's thread; an emulated device runs inside
the engine and keeps what it is given in memory, so it answers requests here instead, with the same codec
(:mod:`irsock.obex.packets`), the same name rules (:func:`irsock.obex.safe_name`) and the same answers for the
same faults (0xCD for an object above the limit, 0xC6 for a SHA-256 mismatch, 0xC0 for a malformed request, 0xD1
for an unknown opcode, 0xD0 for a failure of our own). What a device offers is a :class:`ObjectServer`: an
inbox (:class:`MemoryInbox`, bounded in count and size) and, per CONNECT Target, a reader of named objects.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from irsock.obex import packets as P
from irsock.obex.names import name_for_type, numbered, safe_name
from irsock.obex.packets import ObexError

#: the largest packet an emulated device accepts (CONNECT response); clients split their PUTs to it
DEVICE_MTU = 0x2000
INBOX_OBJECTS = 64
INBOX_OBJECT_SIZE = 1 << 20

#: a reader of a service's objects: (name, type) -> the object, or None when there is no such object;
#: it may raise :class:`Refused` to answer with another code
Reader = Callable[[str, str], "bytes | None"]

_logger = logging.getLogger(__name__)


class Refused(Exception):
    """Answer the current request with ``code`` (and drop the operation under way)."""

    def __init__(self, code: int, description: str = "") -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass
class StoredObject:
    """An object a peer pushed into a device's inbox."""

    name: str  # what it is stored as (safe, unique in the inbox)
    offered_name: str  # the Name header as it came ("" without one)
    type: str  # the Type header ("" without one)
    data: bytes
    peer: int  # the pushing device's address
    verified: bool | None  # True: irsock's SHA-256 header matched; None: none was sent
    modified: float | None = None  # from the Time header


class MemoryInbox:
    """Pushed objects kept in memory: at most ``max_objects`` of at most ``max_size`` bytes each.

    A full inbox answers 0xE0 Database Full, as a phone with no memory left did; an object above the size
    limit 0xCD Request Entity Too Large (at once when its Length says so, else when the body passes it).
    """

    def __init__(self, max_objects: int = INBOX_OBJECTS, max_size: int = INBOX_OBJECT_SIZE) -> None:
        self.max_objects = max_objects
        self.max_size = max_size
        self.objects: list[StoredObject] = []

    def check_room(self, length: int | None) -> None:
        """Refuse a push before its body arrives if it cannot be kept."""
        if len(self.objects) >= self.max_objects:
            raise Refused(P.DATABASE_FULL, f"the inbox holds {self.max_objects} objects: memory full")
        if length is not None and length > self.max_size:
            raise Refused(P.ENTITY_TOO_LARGE, f"{length} bytes exceed the limit of {self.max_size} bytes")

    def store(self, offered: str, mime: str, data: bytes, peer: int, verified: bool | None,
              modified: float | None) -> StoredObject:
        self.check_room(len(data))
        base = safe_name(offered, name_for_type(mime.encode("ascii", "replace")))
        taken = {stored.name for stored in self.objects}
        name = next(numbered(base, n) for n in range(len(taken) + 1) if numbered(base, n) not in taken)
        stored = StoredObject(name, offered, mime, bytes(data), peer, verified, modified)
        self.objects.append(stored)
        return stored

    def get(self, name: str) -> StoredObject | None:
        return next((stored for stored in self.objects if stored.name == name), None)


class ObjectServer:
    """What one device serves over OBEX: its inbox, and for each CONNECT Target a reader of its objects.

    ``readers[b""]`` answers GETs of the inbox service (a CONNECT without Target), e.g. a phone's own
    business card; a Target not in ``readers`` is answered 0xD3 Service Unavailable. PUT goes to the inbox
    only; the other services are read-only (0xC3 Forbidden).
    """

    def __init__(self, inbox: MemoryInbox | None, readers: dict[bytes, Reader] | None = None, *,
                 mtu: int = DEVICE_MTU, verify: bool = True) -> None:
        self.inbox = inbox
        self.readers = dict(readers or {})
        self.mtu = mtu
        self.verify = verify  # honour irsock's SHA-256 header (other peers never send it)
        self._next_connection_id = 1

    def session(self, peer: int) -> ObjectSession:
        """A new session for one transport connection from ``peer``."""
        return ObjectSession(self, peer)

    def _connection_id(self) -> int:
        value = self._next_connection_id
        self._next_connection_id = value % 0xFFFFFFFE + 1
        return value


@dataclass
class _Upload:
    offered: str
    mime: str
    length: int | None
    digest: bytes | None
    modified: float | None
    data: bytearray = field(default_factory=bytearray)


class ObjectSession:
    """One OBEX session, sans-IO: :meth:`handle` takes a whole request packet and returns the response."""

    def __init__(self, server: ObjectServer, peer: int) -> None:
        self.server = server
        self.peer = peer
        self.service = b""  # the Target of the last CONNECT (b"": the inbox)
        self.peer_mtu = P.MIN_PACKET
        self.upload: _Upload | None = None
        self.download: bytes | None = None
        self.sent = 0  # bytes of ``download`` already answered
        self.stored: list[StoredObject] = []
        self.failures: list[str] = []  # what was refused, in words, for tests and traces (the last 16)

    def handle(self, raw: bytes) -> bytes:
        """The response to one request packet (every fault answered with its code, never raised)."""
        opcode = raw[0] if raw else 0
        try:
            packet = P.parse(raw)
        except ObexError as exc:
            self._end()
            return self._failure(opcode, P.BAD_REQUEST, str(exc))
        try:
            if opcode == P.CONNECT:
                return self._connect(packet)
            if opcode == P.DISCONNECT or opcode == P.ABORT:
                self._end()
                return P.build(P.SUCCESS)
            if opcode & 0x7F == P.PUT:
                return self._put(packet)
            if opcode & 0x7F == P.GET:
                return self._get(packet)
            return self._failure(opcode, P.NOT_IMPLEMENTED, f"opcode 0x{opcode:02X} is not supported")
        except Refused as refused:
            self._end()
            return self._failure(opcode, refused.code, refused.description)
        except Exception as exc:  # noqa: BLE001 - whatever a peer causes, the device answers and goes on
            _logger.debug("OBEX request 0x%02X from 0x%08x failed", opcode, self.peer, exc_info=True)
            self._end()
            return self._failure(opcode, P.INTERNAL_ERROR, f"the device failed: {type(exc).__name__}")

    def _end(self) -> None:
        self.upload = None
        self.download = None
        self.sent = 0

    def _failure(self, opcode: int, code: int, description: str) -> bytes:
        self.failures = self.failures[-15:] + [f"{P.response_text(code)}: {description}"]
        headers = [(P.H_DESCRIPTION, description)] if description else []
        connect = (P.OBEX_VERSION, 0, self.server.mtu) if opcode == P.CONNECT else None
        return P.build(code, headers, connect=connect)

    # --- CONNECT -------------------------------------------------------------------------------------------
    def _connect(self, packet: P.Packet) -> bytes:
        self._end()
        self.peer_mtu = max(P.MIN_PACKET, min(packet.max_packet or P.MIN_PACKET, P.MAX_PACKET))
        target = packet.get(P.H_TARGET)
        target = target if isinstance(target, bytes) else b""
        if target and target not in self.server.readers:
            raise Refused(P.SERVICE_UNAVAILABLE, "no such OBEX service here")
        self.service = target
        headers: list = [(P.H_WHO, target), (P.H_CONNECTION_ID, self.server._connection_id())] if target else []
        return P.build(P.SUCCESS, headers, connect=(P.OBEX_VERSION, 0, self.server.mtu))

    # --- PUT -------------------------------------------------------------------------------------------------
    def _put(self, packet: P.Packet) -> bytes:
        inbox = self.server.inbox
        if self.upload is None:
            has_body = any(k in (P.H_BODY, P.H_END_OF_BODY) for k, _v in packet.headers)
            if self.service or inbox is None:
                raise Refused(P.FORBIDDEN, "this service is read-only")
            if packet.final and not has_body:
                raise Refused(P.FORBIDDEN, "objects cannot be deleted here")
            self.upload = self._start(packet, inbox)
        upload = self.upload
        upload.data += packet.body()
        if inbox is not None and len(upload.data) > inbox.max_size:
            raise Refused(P.ENTITY_TOO_LARGE, f"the object exceeds the limit of {inbox.max_size} bytes")
        if upload.length is not None and len(upload.data) > upload.length:
            raise Refused(P.BAD_REQUEST, f"more body than the announced Length of {upload.length} bytes")
        if not packet.final:
            return P.build(P.CONTINUE)
        self.upload = None
        if upload.length is not None and len(upload.data) != upload.length:
            raise Refused(P.BAD_REQUEST, f"{len(upload.data)} bytes arrived, the Length header said {upload.length}")
        verified = None
        if upload.digest is not None and self.server.verify:
            if hashlib.sha256(upload.data).digest() != upload.digest:
                raise Refused(P.NOT_ACCEPTABLE, "the content does not match the sender's SHA-256: object refused")
            verified = True
        assert inbox is not None
        stored = inbox.store(upload.offered, upload.mime, upload.data, self.peer, verified, upload.modified)
        self.stored = self.stored[-(inbox.max_objects - 1):] + [stored]
        return P.build(P.SUCCESS, [] if verified is None else [(P.H_IRSOCK_VERIFIED, 1)])

    def _start(self, packet: P.Packet, inbox: MemoryInbox) -> _Upload:
        name = packet.get(P.H_NAME)
        length = packet.get(P.H_LENGTH)
        length = length if isinstance(length, int) else None
        inbox.check_room(length)
        digest = packet.get(P.H_IRSOCK_SHA256)
        if digest is not None and (not isinstance(digest, bytes) or len(digest) != 32):
            raise Refused(P.BAD_REQUEST, "the SHA-256 header must hold 32 bytes")
        return _Upload(name if isinstance(name, str) else "", _text(packet.get(P.H_TYPE)), length, digest,
                       P.parse_time(packet.get(P.H_TIME, packet.get(P.H_TIME_4))))

    # --- GET -------------------------------------------------------------------------------------------------
    def _get(self, packet: P.Packet) -> bytes:
        if self.download is None:
            name = packet.get(P.H_NAME)
            name = name if isinstance(name, str) else ""
            mime = _text(packet.get(P.H_TYPE))
            reader = self.server.readers.get(self.service)
            data = reader(name, mime) if reader is not None else None
            if data is None:
                if reader is None:
                    raise Refused(P.FORBIDDEN, "nothing can be fetched from this service")
                raise Refused(P.NOT_FOUND, f"no object {name!r}" if name else f"no object of type {mime!r}")
            self.download, self.sent = bytes(data), 0
            if not packet.final:  # the request's headers go on: answer, wait for the final GET
                return P.build(P.CONTINUE)
        room = self.peer_mtu - 3 - 3
        chunk = self.download[self.sent:self.sent + room]
        self.sent += len(chunk)
        if self.sent < len(self.download):
            return P.build(P.CONTINUE, [(P.H_BODY, chunk)])
        self._end()
        return P.build(P.SUCCESS, [(P.H_END_OF_BODY, chunk)])


def _text(value: object) -> str:
    """A Type header (null-terminated ASCII bytes) as text; "" when absent or not bytes."""
    return value.rstrip(b"\0").decode("ascii", "replace").strip() if isinstance(value, bytes) else ""
