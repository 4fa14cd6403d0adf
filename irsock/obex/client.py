"""OBEX client over any connected stream socket (TinyTP over infrared, TCP): push, get, browse."""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from irsock.obex import packets as P
from irsock.obex.names import guess_type
from irsock.obex.packets import ObexError, ObexResponseError

DEFAULT_MTU = 0xFFFF  # the largest packet we accept: big packets keep the per-packet turnarounds rare
SLICE = 4096  # bytes handed to the socket at a time, so progress moves smoothly inside one packet

_logger = logging.getLogger(__name__)


@dataclass
class PushResult:
    """What one PUT achieved."""

    name: str
    size: int
    seconds: float
    code: int  # the final response code
    verified: bool | None  # True: the receiver checked our SHA-256; None: it said nothing about it


def _body_progress(progress: Callable[[int, int], None], base: int, head: int, size: int) -> Callable[[int], None]:
    """Packet bytes sent -> file bytes sent (the packet's first ``head`` bytes are not file content)."""
    return lambda n: progress(min(size, base + max(0, n - head)), size)


class ObexClient:
    """One OBEX session on ``sock`` (anything with ``sendall``/``recv``), after :meth:`connect`."""

    def __init__(self, sock: Any, *, mtu: int = DEFAULT_MTU, target: bytes | None = None,
                 unit: int = 0) -> None:
        """``unit``: the transport's PDU size (IRLMP_SEND_PDU_LEN on IrDA), when known: the slices a packet is
        handed over in are whole units then, so that only a packet's last frame can be short (a 4096-byte slice
        over 2045-byte TinyTP PDUs left a 6-byte frame taking a slot of every other IrLAP window), and the PUT
        packets are whole units long (see :meth:`packet_limit`)."""
        if not P.MIN_PACKET <= mtu <= P.MAX_PACKET:
            raise ValueError(f"mtu must be {P.MIN_PACKET}..{P.MAX_PACKET}")
        self.sock = sock
        self.unit = unit
        self.slice = SLICE - SLICE % unit if 0 < unit <= SLICE else SLICE
        self.mtu = mtu
        self.target = target
        self.peer_mtu = P.MIN_PACKET
        self.connection_id: int | None = None
        self.who: bytes | None = None
        self.connected = False
        #: how the last DISCONNECT went: "ok", "no response: ...", "refused: 0xC3 Forbidden" (None before)
        self.disconnect_status: str | None = None

    # --- plumbing -----------------------------------------------------------------------------------
    def _send(self, data: bytes, progress: Callable[[int], None] | None = None) -> None:
        if progress is None:
            self.sock.sendall(data)
            return
        view, step = memoryview(data), self.slice
        for start in range(0, len(view), step):
            self.sock.sendall(view[start:start + step])
            progress(min(len(view), start + step))

    def _receive(self, opcode: int) -> P.Packet:
        raw = P.read_packet(self.sock, max(self.mtu, P.MAX_PACKET))
        if raw is None:
            raise P.ObexPeerClosed("the peer closed the connection instead of answering")
        try:
            return P.parse(raw, response_to=opcode)
        except ObexError:
            if opcode != P.CONNECT or raw[0] == P.SUCCESS:
                raise
            return P.parse(raw, response_to=P.PUT)  # a refusal some peers send without the CONNECT fields

    def _request(self, opcode: int, headers: list, **kwargs: Any) -> P.Packet:
        self._send(P.build(opcode, self._with_id(headers), **kwargs))
        return self._receive(opcode & 0x7F if opcode != P.CONNECT else P.CONNECT)

    def _with_id(self, headers: list) -> list:
        if self.connection_id is not None:
            return [(P.H_CONNECTION_ID, self.connection_id), *headers]
        return list(headers)

    def _check(self, response: P.Packet, what: str, ok: tuple[int, ...] = (P.SUCCESS,)) -> P.Packet:
        if response.code not in ok:
            description = response.get(P.H_DESCRIPTION, "")
            raise ObexResponseError(response.code, what, description if isinstance(description, str) else "")
        return response

    def packet_limit(self) -> int:
        """The length of the PUT packets we send: the peer's maximum, cut to whole transport units when known.

        A packet ends in a frame of its own: 65535 bytes over 2045-byte PDUs left a 95-byte frame at the end of
        every packet, which took a turn of its own at 4 Mbit/s and a whole turn at 9600 bit/s (one frame a turn).
        65440 bytes (32 PDUs) lose nothing."""
        unit = self.unit
        return self.peer_mtu - self.peer_mtu % unit if 0 < unit <= self.peer_mtu // 2 else self.peer_mtu

    # --- session ------------------------------------------------------------------------------------
    def connect(self) -> None:
        headers = [(P.H_TARGET, self.target)] if self.target else []
        self._send(P.build(P.CONNECT, headers, connect=(P.OBEX_VERSION, 0, self.mtu)))
        try:
            answer = self._receive(P.CONNECT)
        except ObexError as exc:
            raise ObexError(f"the peer does not answer CONNECT in OBEX ({exc}): is it an OBEX server?") from None
        response = self._check(answer, "CONNECT")
        if response.max_packet is None:
            raise ObexError("CONNECT response without a maximum packet length")
        self.peer_mtu = max(P.MIN_PACKET, min(response.max_packet, P.MAX_PACKET))
        cid = response.get(P.H_CONNECTION_ID)
        self.connection_id = cid if isinstance(cid, int) else None
        who = response.get(P.H_WHO)
        self.who = who if isinstance(who, bytes) else None
        if self.target and self.who not in (None, self.target):
            raise ObexError("the peer answered for another service (Who differs from our Target)")
        self.connected = True

    def disconnect(self) -> str | None:
        """End the session; how the peer answered (also in :attr:`disconnect_status`).

        Never raises: the files are delivered by then, and the session is over either way. But a peer that
        drops the link instead of answering is not silently passed: the status says so, and it is logged.
        """
        if not self.connected:
            return self.disconnect_status
        self.connected = False
        try:
            response = self._request(P.DISCONNECT, [])
        except (ObexError, OSError) as exc:
            self.disconnect_status = f"no response: {exc}"
        else:
            code = response.code
            self.disconnect_status = "ok" if code == P.SUCCESS else f"refused: {P.response_text(code)}"
        if self.disconnect_status != "ok":
            _logger.debug("OBEX DISCONNECT: %s", self.disconnect_status)
        return self.disconnect_status

    def abort(self) -> None:
        self._check(self._request(P.ABORT, []), "ABORT")

    def __enter__(self) -> ObexClient:
        if not self.connected:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # --- PUT --------------------------------------------------------------------------------------------
    def put_file(self, path: str | Path, *, name: str | None = None, mime_type: str | None = None,
                 progress: Callable[[int, int], None] | None = None, digest: bool = True) -> PushResult:
        """Push a file, streamed from disk in packet-sized pieces; only its base name is offered.

        The Type header is ``mime_type`` or guessed from the name (``.vcf`` is ``text/x-vcard``, which is
        what makes a phone file a contact instead of storing it).
        """
        path = Path(path)
        size = path.stat().st_size
        sha = None
        if digest:
            hasher = hashlib.sha256()
            with path.open("rb") as stream:
                while chunk := stream.read(1 << 20):
                    hasher.update(chunk)
            sha = hasher.digest()
        modified = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        offered = name or path.name
        with path.open("rb") as stream:
            return self.put_stream(offered, stream, size, mime_type=mime_type or guess_type(offered),
                                   time_text=modified, progress=progress, sha256=sha)

    def put_bytes(self, name: str, data: bytes, *, mime_type: str | None = None,
                  progress: Callable[[int, int], None] | None = None, digest: bool = True) -> PushResult:
        sha = hashlib.sha256(data).digest() if digest else None
        return self.put_stream(name, io.BytesIO(data), len(data), mime_type=mime_type, progress=progress, sha256=sha)

    def put_stream(self, name: str, stream: BinaryIO, size: int, *, mime_type: str | None = None,
                   time_text: str | None = None, progress: Callable[[int, int], None] | None = None,
                   sha256: bytes | None = None) -> PushResult:
        """PUT ``size`` bytes from ``stream``: headers first, then Body pieces, End-of-Body in the final packet."""
        started = time.monotonic()
        headers: list = [(P.H_NAME, name), (P.H_LENGTH, size)]
        if mime_type:
            headers.append((P.H_TYPE, mime_type.encode("ascii", "replace") + b"\0"))
        if time_text:
            headers.append((P.H_TIME, time_text.encode("ascii")))
        if sha256 is not None:
            headers.append((P.H_IRSOCK_SHA256, sha256))
        first = True
        sent = 0
        if progress:
            progress(0, size)
        while True:
            header_bytes = b"".join(P.encode_header(h, v) for h, v in (self._with_id(headers) if first else []))
            room = self.packet_limit() - 3 - len(header_bytes) - 3
            if room < 1:  # whole units leave no room beside the headers: the peer's own limit may
                room = self.peer_mtu - 3 - len(header_bytes) - 3
            if room < 1:
                raise ObexError(f"the peer's packets ({self.peer_mtu} bytes) cannot hold our headers")
            wanted = min(room, size - sent)
            chunk = stream.read(wanted)
            if len(chunk) < wanted:
                raise ObexError(f"the file shrank while it was sent ({sent + len(chunk)} of {size} bytes)")
            last = sent + len(chunk) >= size
            body_header = P.H_END_OF_BODY if last else P.H_BODY
            packet = P.build(P.PUT | (P.FINAL if last else 0), [], raw_headers=header_bytes
                             + P.encode_header(body_header, chunk))
            self._send(packet, None if progress is None else
                       _body_progress(progress, sent, len(packet) - len(chunk), size))
            sent += len(chunk)
            response = self._receive(P.PUT)
            if last:
                self._check(response, f"PUT {name!r}")
                verdict = response.get(P.H_IRSOCK_VERIFIED)
                return PushResult(name, size, time.monotonic() - started, response.code,
                                  True if verdict == 1 else (False if verdict == 0 else None))
            self._check(response, f"PUT {name!r}", (P.CONTINUE,))
            first = False

    def delete(self, name: str) -> None:
        """PUT-final with a Name and no body: the peer removes the object."""
        self._check(self._request(P.PUT | P.FINAL, [(P.H_NAME, name)]), f"delete {name!r}")

    # --- GET, SETPATH ----------------------------------------------------------------------------------
    def get(self, name: str | None = None, mime_type: str | None = None) -> bytes:
        out = io.BytesIO()
        self.get_to(out, name=name, mime_type=mime_type)
        return out.getvalue()

    def get_to(self, stream: BinaryIO, *, name: str | None = None, mime_type: str | None = None) -> int:
        """GET an object into ``stream``; the number of bytes written."""
        headers: list = []
        if name is not None:
            headers.append((P.H_NAME, name))
        if mime_type:
            headers.append((P.H_TYPE, mime_type.encode("ascii") + b"\0"))
        what = f"GET {name or mime_type!r}"
        response = self._request(P.GET | P.FINAL, headers)
        total = 0
        while True:
            self._check(response, what, (P.CONTINUE, P.SUCCESS))
            body = response.body()
            stream.write(body)
            total += len(body)
            if response.code == P.SUCCESS:
                return total
            self._send(P.build(P.GET | P.FINAL, []))
            response = self._receive(P.GET)

    def listing(self, folder: str | None = None) -> str:
        """The current folder (or ``folder`` below it, "a/b") as x-obex/folder-listing XML."""
        return self.get(folder, mime_type="x-obex/folder-listing").decode("utf-8", "replace")

    def setpath(self, name: str | None = None, *, up: bool = False, create: bool = True) -> None:
        """Into folder ``name``; ``up`` to the parent; neither: back to the root."""
        flags = (0x01 if up else 0) | (0 if create else 0x02)
        headers = [] if up and not name else [(P.H_NAME, name or "")]
        self._check(self._request(P.SETPATH, headers, setpath_flags=flags),
                    f"SETPATH {'..' if up else name or '/'!r}")
