"""OBEX server: an inbox that stores pushed files safely, and folder browsing inside it (OBEX FTP).

Every name from the peer goes through :func:`safe_name`; every path is checked to lie inside the root.
A pushed file is written to a hidden temporary file and renamed to a fresh name only when the transfer
completed and its length (and irsock's SHA-256, when sent) matched; anything else removes it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import quoteattr

from irsock.obex import packets as P
from irsock.obex.names import inside, name_for_type, reserve_unique, safe_name
from irsock.obex.packets import ObexError

SERVER_MTU = 0xFFFF
TEMP_PREFIX = ".irsock-incoming-"
TEMP_SUFFIX = ".part"
LISTING_TYPE = "x-obex/folder-listing"


@dataclass
class ReceivedFile:
    """A file the server stored."""

    name: str  # its final (safe, unique) name
    path: Path
    size: int
    peer: str
    verified: bool | None  # True: the sender's SHA-256 matched; None: the sender sent none


@dataclass
class _Upload:
    offered_name: str
    name: str
    length: int | None
    digest: bytes | None
    temp_path: Path
    stream: BinaryIO
    folder: Path
    modified: float | None = None  # from the Time header, applied to the stored file
    received: int = 0

    def __post_init__(self) -> None:
        self.hasher = hashlib.sha256()

    def discard(self) -> None:
        try:
            self.stream.close()
        finally:
            self.temp_path.unlink(missing_ok=True)


class _Refused(Exception):
    """Answer the current request with ``code`` (and forget the operation under way)."""

    def __init__(self, code: int, description: str = "") -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _store_refusal(exc: OSError) -> _Refused:
    """The OBEX answer to a file-system error while storing: 'database full' for a full disk."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return _Refused(P.DATABASE_FULL if full else P.INTERNAL_ERROR, f"cannot store: {exc.strerror or exc}")


class ObexServer:
    """Serves OBEX sessions into ``root``; one :meth:`serve` call per accepted connection."""

    def __init__(self, root: str | Path, *, max_size: int | None = None,
                 on_file: Callable[[ReceivedFile], None] | None = None, browse: bool = True) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ObexError(f"{self.root}: not a directory")
        self.max_size = max_size
        self.on_file = on_file
        self.browse = browse
        self._next_connection_id = 1

    def serve(self, sock: Any, peer: str = "") -> list[ReceivedFile]:
        """Serve one session until DISCONNECT or the end of the stream; the files stored during it.

        Socket errors (a timeout, a reset) end the session after cleaning up and are raised.
        """
        return _Session(self, sock, peer).run()


class _Session:
    def __init__(self, server: ObexServer, sock: Any, peer: str) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.cwd = server.root
        self.peer_mtu = P.MIN_PACKET
        self.connection_id: int | None = None
        self.upload: _Upload | None = None
        self.download: BinaryIO | None = None
        self.stored: list[ReceivedFile] = []

    def run(self) -> list[ReceivedFile]:
        try:
            while True:
                try:
                    raw = P.read_packet(self.sock, SERVER_MTU)
                except ObexError:
                    return self.stored  # out of step or cut: nothing sensible can follow on this stream
                if raw is None:
                    return self.stored
                if not self.handle(raw):
                    return self.stored
        finally:
            self._end_operations()

    def reply(self, code: int, headers: list | tuple = (), *, connect: tuple[int, int, int] | None = None) -> None:
        self.sock.sendall(P.build(code, list(headers), connect=connect))

    def _end_operations(self) -> None:
        if self.upload is not None:
            self.upload.discard()
            self.upload = None
        if self.download is not None:
            self.download.close()
            self.download = None

    def handle(self, raw: bytes) -> bool:
        """Answer one request; False once the session is over."""
        opcode = raw[0]
        try:
            packet = P.parse(raw)
        except ObexError as exc:
            self._end_operations()
            self.reply(P.BAD_REQUEST, [(P.H_DESCRIPTION, str(exc))])
            return True
        try:
            if opcode == P.CONNECT:
                self.on_connect(packet)
            elif opcode == P.DISCONNECT:
                self._end_operations()
                self.reply(P.SUCCESS)
                return False
            elif opcode & 0x7F == P.PUT:
                self.on_put(packet)
            elif opcode & 0x7F == P.GET:
                self.on_get(packet)
            elif opcode == P.SETPATH:
                self.on_setpath(packet)
            elif opcode == P.ABORT:
                self._end_operations()
                self.reply(P.SUCCESS)
            else:
                self.reply(P.NOT_IMPLEMENTED, [(P.H_DESCRIPTION, f"opcode 0x{opcode:02X} is not supported")])
        except _Refused as refused:
            self._end_operations()
            headers = [(P.H_DESCRIPTION, refused.description)] if refused.description else []
            # a CONNECT response carries version, flags and packet size even when it refuses
            self.reply(refused.code, headers, connect=(P.OBEX_VERSION, 0, SERVER_MTU) if opcode == P.CONNECT else None)
        return True

    # --- CONNECT -------------------------------------------------------------------------------------
    def on_connect(self, packet: P.Packet) -> None:
        self._end_operations()
        self.peer_mtu = max(P.MIN_PACKET, min(packet.max_packet or P.MIN_PACKET, P.MAX_PACKET))
        self.cwd = self.server.root
        headers: list = []
        target = packet.get(P.H_TARGET)
        if target is not None:
            if target != P.FBS_UUID:
                raise _Refused(P.SERVICE_UNAVAILABLE, "no such OBEX service (only folder browsing and push)")
            self.connection_id = self.server._next_connection_id
            self.server._next_connection_id += 1
            headers = [(P.H_WHO, P.FBS_UUID), (P.H_CONNECTION_ID, self.connection_id)]
        self.reply(P.SUCCESS, headers, connect=(P.OBEX_VERSION, 0, SERVER_MTU))

    # --- PUT ------------------------------------------------------------------------------------------------
    def on_put(self, packet: P.Packet) -> None:
        final = packet.final
        has_body = any(k in (P.H_BODY, P.H_END_OF_BODY) for k, _v in packet.headers)
        if self.upload is None:
            name = packet.get(P.H_NAME)
            if final and not has_body:  # no object: a delete
                self.delete(name)
                return
            self.start_upload(packet, name)
        upload = self.upload
        assert upload is not None
        body = packet.body()
        upload.received += len(body)
        limit = self.server.max_size
        if limit is not None and upload.received > limit:
            raise _Refused(P.ENTITY_TOO_LARGE, f"the file exceeds the receiver's limit of {limit} bytes")
        if upload.length is not None and upload.received > upload.length:
            raise _Refused(P.BAD_REQUEST, f"more body than the announced Length of {upload.length} bytes")
        try:
            upload.stream.write(body)
        except OSError as exc:
            raise _store_refusal(exc) from None
        upload.hasher.update(body)
        if not final:
            self.reply(P.CONTINUE)
            return
        self.finish_upload()

    def start_upload(self, packet: P.Packet, name: Any) -> None:
        if not isinstance(name, str):
            name = ""
        length = packet.get(P.H_LENGTH)
        length = length if isinstance(length, int) else None
        limit = self.server.max_size
        if limit is not None and length is not None and length > limit:
            raise _Refused(P.ENTITY_TOO_LARGE, f"{length} bytes exceed the receiver's limit of {limit} bytes")
        if length is not None:
            try:
                free = shutil.disk_usage(self.cwd).free
            except OSError:
                free = None
            if free is not None and length > free:
                raise _Refused(P.DATABASE_FULL, f"{length} bytes do not fit: {free} bytes free on the receiver")
        digest = packet.get(P.H_IRSOCK_SHA256)
        if digest is not None and (not isinstance(digest, bytes) or len(digest) != 32):
            raise _Refused(P.BAD_REQUEST, "the SHA-256 header must hold 32 bytes")
        try:
            fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=self.cwd)
        except OSError as exc:
            raise _store_refusal(exc) from None
        modified = P.parse_time(packet.get(P.H_TIME, packet.get(P.H_TIME_4)))
        stored_name = safe_name(name, name_for_type(packet.get(P.H_TYPE)))
        self.upload = _Upload(name, stored_name, length, digest, Path(temp), os.fdopen(fd, "wb"), self.cwd, modified)

    def finish_upload(self) -> None:
        upload = self.upload
        assert upload is not None
        if upload.length is not None and upload.received != upload.length:
            raise _Refused(P.BAD_REQUEST, f"{upload.received} bytes arrived, the Length header said {upload.length}")
        verified = None
        if upload.digest is not None:
            if upload.hasher.digest() != upload.digest:
                raise _Refused(P.NOT_ACCEPTABLE, "the content does not match the sender's SHA-256: file refused")
            verified = True
        final = None
        try:
            upload.stream.close()  # flushes: a full disk shows here
            final = reserve_unique(upload.folder, upload.name)
            os.replace(upload.temp_path, final)
        except OSError as exc:
            if final is not None:
                final.unlink(missing_ok=True)  # the empty placeholder reserve_unique made
            raise _store_refusal(exc) from None
        self.upload = None
        if upload.modified is not None:
            try:
                os.utime(final, (upload.modified, upload.modified))
            except (OSError, OverflowError, ValueError):
                pass  # the file is what matters; its date is a courtesy
        received = ReceivedFile(final.name, final, upload.received, self.peer, verified)
        self.stored.append(received)
        headers = [] if verified is None else [(P.H_IRSOCK_VERIFIED, 1)]
        self.reply(P.SUCCESS, headers)
        if self.server.on_file is not None:
            self.server.on_file(received)

    def delete(self, name: Any) -> None:
        if not self.server.browse:
            raise _Refused(P.FORBIDDEN, "deleting is not allowed")
        path = self._entry(name)
        try:
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
        except OSError as exc:
            if path.is_dir() and any(path.iterdir()):
                raise _Refused(P.PRECONDITION_FAILED, "the folder is not empty") from None
            raise _Refused(P.FORBIDDEN, f"cannot delete: {exc.strerror or exc}") from None
        self.reply(P.SUCCESS)

    # --- GET -------------------------------------------------------------------------------------------------
    def on_get(self, packet: P.Packet) -> None:
        if self.download is None:
            if not self.server.browse:
                raise _Refused(P.FORBIDDEN, "this inbox only takes files")
            mime = packet.get(P.H_TYPE)
            mime = mime.rstrip(b"\0").decode("ascii", "replace") if isinstance(mime, bytes) else ""
            name = packet.get(P.H_NAME)
            if mime == LISTING_TYPE:
                self.download = io.BytesIO(self.listing().encode("utf-8"))
            elif isinstance(name, str) and name:
                path = self._entry(name)
                if not path.is_file():
                    raise _Refused(P.NOT_FOUND, "not a file")
                try:
                    self.download = path.open("rb")
                except OSError as exc:
                    raise _Refused(P.FORBIDDEN, f"cannot read: {exc.strerror or exc}") from None
            else:
                raise _Refused(P.BAD_REQUEST, "GET needs a Name or the folder-listing Type")
            if not packet.final:  # the request's headers go on: answer, wait for the final GET
                self.reply(P.CONTINUE)
                return
        room = self.peer_mtu - 3 - 3
        chunk = self.download.read(room)
        position = self.download.tell()
        more = bool(self.download.read(1))
        self.download.seek(position)
        if more:
            self.reply(P.CONTINUE, [(P.H_BODY, chunk)])
        else:
            self.download.close()
            self.download = None
            self.reply(P.SUCCESS, [(P.H_END_OF_BODY, chunk)])

    def listing(self) -> str:
        lines = ['<?xml version="1.0"?>', '<!DOCTYPE folder-listing SYSTEM "obex-folder-listing.dtd">',
                 '<folder-listing version="1.0">']
        if self.cwd != self.server.root:
            lines.append("  <parent-folder/>")
        for entry in sorted(self.cwd.iterdir(), key=lambda p: (not p.is_dir(), p.name)):
            if entry.name.startswith(TEMP_PREFIX) or entry.is_symlink():
                continue
            stat = entry.stat()
            modified = datetime.fromtimestamp(stat.st_mtime, UTC).strftime("%Y%m%dT%H%M%SZ")
            if entry.is_dir():
                lines.append(f"  <folder name={quoteattr(entry.name)} modified=\"{modified}\"/>")
            elif entry.is_file():
                lines.append(f"  <file name={quoteattr(entry.name)} size=\"{stat.st_size}\" "
                             f"modified=\"{modified}\"/>")
        lines.append("</folder-listing>")
        return "\n".join(lines) + "\n"

    # --- SETPATH --------------------------------------------------------------------------------------------------
    def on_setpath(self, packet: P.Packet) -> None:
        if not self.server.browse:
            raise _Refused(P.FORBIDDEN, "folders are not offered")
        flags = packet.setpath_flags or 0
        name = packet.get(P.H_NAME)
        if flags & 0x01:
            if self.cwd == self.server.root:
                raise _Refused(P.NOT_FOUND, "already at the root")
            self.cwd = self.cwd.parent
            if isinstance(name, str) and name:
                self._enter(name, create=not flags & 0x02)
        elif not name:
            self.cwd = self.server.root
        else:
            self._enter(name, create=not flags & 0x02)
        self.reply(P.SUCCESS)

    def _enter(self, name: str, create: bool) -> None:
        path = self._entry(name, must_exist=False)
        if not path.exists():
            if not create:
                raise _Refused(P.NOT_FOUND, f"no folder {name!r}")
            try:
                path.mkdir()
            except OSError as exc:
                raise _store_refusal(exc) from None
        elif not path.is_dir():
            raise _Refused(P.NOT_FOUND, f"{name!r} is not a folder")
        self.cwd = path

    def _entry(self, name: Any, must_exist: bool = True) -> Path:
        """An entry of the current folder named exactly ``name`` (a plain name, nothing else)."""
        if not isinstance(name, str) or not name or safe_name(name) != name or name.startswith(TEMP_PREFIX):
            raise _Refused(P.FORBIDDEN if isinstance(name, str) and name else P.BAD_REQUEST,
                           "names must be plain file names")
        path = self.cwd / name
        if not inside(self.server.root, path) or path.is_symlink():
            raise _Refused(P.FORBIDDEN, "outside the shared folder")
        if must_exist and not path.exists():
            raise _Refused(P.NOT_FOUND, f"no {name!r} here")
        return path
