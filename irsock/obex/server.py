"""OBEX server: an inbox that stores pushed files safely, and, when asked for, folder browsing inside it
(OBEX FTP).

Every name from the peer goes through :func:`safe_name`; every path is checked to lie inside the root.
A pushed file is written to a hidden temporary file and renamed to a fresh name only when the transfer
completed and its length (and irsock's SHA-256, when sent) matched; anything else removes it. By default
the peer can only push: listing, GET and delete are refused unless the owner turns them on.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import re
import secrets
import shutil
import stat as stat_module
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from irsock.obex import packets as P
from irsock.obex.names import inside, name_for_type, reserve_unique, safe_name
from irsock.obex.packets import ObexError

try:
    import fcntl
except ImportError:  # Windows: an open file cannot be removed there, which protects it as well
    fcntl = None  # type: ignore[assignment]

SERVER_MTU = 0xFFFF
TEMP_PREFIX = ".irsock-incoming-"
TEMP_SUFFIX = ".part"
#: our temporary files and nothing else: 16 hex digits (and the 8 characters of tempfile's names, which
#: receivers before irsock 0.x used); a peer cannot make such a name (safe_name drops leading dots)
TEMP_PATTERN = re.compile(r"\.irsock-incoming-(?:[0-9a-f]{16}|[a-z0-9_]{8})\.part")
#: a temporary file younger than this is left alone by the cleanup (it may be a second old, not yet locked)
STALE_GRACE_S = 5.0
LISTING_TYPE = "x-obex/folder-listing"
CLOSE_WAIT_S = 5.0

_logger = logging.getLogger(__name__)


@dataclass
class ReceivedFile:
    """A file the server stored."""

    name: str  # its final (safe, unique) name
    path: Path
    size: int
    peer: str
    verified: bool | None  # True: the sender's SHA-256 matched; None: the sender sent none
    relative: str = ""  # where it is inside the inbox ("sub/photo.jpg"), "/"-separated


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

    def describe(self) -> str:
        length = "" if self.length is None else f" of {self.length}"
        return f"{self.name} ({self.received}{length} bytes)"


class _Refused(Exception):
    """Answer the current request with ``code`` (and forget the operation under way)."""

    def __init__(self, code: int, description: str = "") -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class _PeerGone(Exception):
    """Sending an answer failed: the connection is gone, nothing more can be answered."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _create_temp(folder: Path) -> tuple[int, Path]:
    """A new temporary file in ``folder``, open and locked (flock) for as long as it is written.

    Created with mode 0666 so that the umask decides, as for any file a program writes (``obex_tcp``
    stores 0644 under umask 022); the lock tells :meth:`ObexServer.remove_stale_parts` of every receiver
    that the file is in use.
    """
    while True:
        path = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pass  # a file system without locks: the grace time still protects the file
        return fd, path


def _store_refusal(exc: OSError) -> _Refused:
    """The OBEX answer to a file-system error while storing: 'database full' for a full disk."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return _Refused(P.DATABASE_FULL if full else P.INTERNAL_ERROR, f"cannot store: {exc.strerror or exc}")


def sharing_words(browse: bool, allow_delete: bool) -> str:
    """What an inbox with these options lets a peer do, for the line a receiver prints when it starts."""
    offered = ["push"] + (["browse"] if browse else []) + (["delete"] if allow_delete else [])
    return "push only" if len(offered) == 1 else ", ".join(offered)


class ObexServer:
    """Serves OBEX sessions into ``root``; one :meth:`serve` call per accepted connection (from any thread).

    Pushes are always accepted (within ``max_size``); ``browse`` also offers folder listings and GET,
    ``allow_delete`` deletion. Both are off by default: an inbox should not hand out or remove the owner's
    files to whoever is in range. ``log`` gets one line per event worth knowing (a refusal, a download, a
    deletion, a new folder, a failed request); without it the lines go to the ``irsock.obex.server`` logger.
    """

    def __init__(self, root: str | Path, *, max_size: int | None = None,
                 on_file: Callable[[ReceivedFile], None] | None = None, browse: bool = False,
                 allow_delete: bool = False, log: Callable[[str], None] | None = None,
                 close_wait: float = CLOSE_WAIT_S) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ObexError(f"{self.root}: not a directory")
        self.max_size = max_size
        self.on_file = on_file
        self.browse = browse
        self.allow_delete = allow_delete
        self.close_wait = close_wait
        self._log = log or _logger.info
        self._next_connection_id = 1
        self._lock = threading.Lock()
        self._sessions: set[_Session] = set()

    @property
    def sharing(self) -> str:
        """What a peer may do here, in words: "push only", "push, browse", "push, browse, delete"."""
        return sharing_words(self.browse, self.allow_delete)

    def serve(self, sock: Any, peer: str = "") -> list[ReceivedFile]:
        """Serve one session until DISCONNECT or the end of the stream; the files stored during it.

        After answering DISCONNECT the server waits (up to ``close_wait`` seconds) for the client to hang
        up, so that closing our end cannot overtake the answer. Socket errors (a timeout, a reset) end the
        session after cleaning up and are raised; every other failure is answered 0xD0 and logged.
        """
        session = _Session(self, sock, peer)
        with self._lock:
            self._sessions.add(session)
        try:
            return session.run()
        finally:
            with self._lock:
                self._sessions.discard(session)

    def in_flight(self) -> list[str]:
        """The uploads under way right now, described ("a.bin (5000 of 90000 bytes) from 127.0.0.1:4000")."""
        with self._lock:
            sessions = list(self._sessions)
        return [f"{s.upload.describe()} from {s.peer}" for s in sessions if s.upload is not None]

    def cancel(self) -> list[str]:
        """End every session now (the receiver stops): unfinished files are removed; what was discarded.

        Safe from another thread than the sessions': each upload is dropped under its session's lock, and
        the connections are shut so that their threads wake up.
        """
        with self._lock:
            sessions = list(self._sessions)
        discarded = []
        for session in sessions:
            what = session.cancel()
            if what:
                discarded.append(what)
        return discarded

    def remove_stale_parts(self) -> list[Path]:
        """Remove the temporary files of receivers that were killed (SIGKILL, power loss) mid-transfer.

        Only our own names (:data:`TEMP_PATTERN`), only regular files, never one that a running receiver
        holds locked, and never one younger than :data:`STALE_GRACE_S`. Symbolic links are not followed.
        """
        removed = []
        now = time.time()
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
            for name in files:
                if TEMP_PATTERN.fullmatch(name) and self._remove_if_stale(Path(folder) / name, now):
                    removed.append(Path(folder) / name)
        return removed

    @staticmethod
    def _remove_if_stale(path: Path, now: float) -> bool:
        try:
            info = path.lstat()
            if not stat_module.S_ISREG(info.st_mode) or now - info.st_mtime < STALE_GRACE_S:
                return False
            if fcntl is None:
                path.unlink()  # Windows refuses to remove a file another receiver has open
                return True
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()
            return True
        except OSError:
            return False  # locked: a running receiver is writing it
        finally:
            os.close(fd)

    def log(self, text: str) -> None:
        try:
            self._log(text)
        except Exception:  # noqa: BLE001 - a broken log (closed stderr) must not break a transfer
            _logger.debug("log failed for %r", text, exc_info=True)


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
        self.download_what = ""  # for the log line once the download is complete
        self.subject = ""  # the request being answered, for log lines ("'photo.jpg'", "GET 'a.txt'")
        self.stored: list[ReceivedFile] = []
        self.lock = threading.Lock()  # held while a request is handled; cancel() takes it
        self.cancelled = False
        self.discarded = ""  # the unfinished upload _end_operations removed, described (for cancel)

    def run(self) -> list[ReceivedFile]:
        try:
            while True:
                try:
                    raw = P.read_packet(self.sock, SERVER_MTU)
                except ObexError:
                    return self.stored  # out of step or cut: nothing sensible can follow on this stream
                if raw is None or self.cancelled:
                    return self.stored
                with self.lock:
                    if self.cancelled:
                        return self.stored
                    going_on = self.handle(raw)
                if not going_on:
                    self._await_hangup()
                    return self.stored
        finally:
            with self.lock:
                if self.upload is not None and not self.cancelled:
                    self.server.log(f"discarded the unfinished {self._where(self.upload.folder, self.upload.name)}"
                                    f" ({self.upload.received} bytes) from {self.peer}: the session ended")
                self._end_operations()

    def cancel(self) -> str:
        """From another thread: end this session now; the unfinished upload it discarded, described.

        The connection is shut first (that wakes a thread blocked in recv or sendall), then the upload is
        removed under the session's lock (never in the middle of a write)."""
        self.cancelled = True
        try:
            self.sock.shutdown(2)  # SHUT_RDWR
        except (OSError, AttributeError, ValueError):
            pass
        with self.lock:
            # the session's own thread, woken by the shutdown, may have removed it already: either way
            # _end_operations recorded what it was
            self._end_operations()
            return self.discarded

    def _await_hangup(self) -> None:
        """After answering DISCONNECT: the client hangs up first (bounded), so our close cannot overtake
        the answer (over IrDA a close tears the link down)."""
        deadline = time.monotonic() + self.server.close_wait
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                self.sock.settimeout(remaining)
                if not self.sock.recv(4096):
                    return
        except (OSError, ValueError):
            return

    def reply(self, code: int, headers: list | tuple = (), *, connect: tuple[int, int, int] | None = None) -> None:
        try:
            self.sock.sendall(P.build(code, list(headers), connect=connect))
        except OSError as exc:
            raise _PeerGone(exc) from None

    def _end_operations(self) -> None:
        if self.upload is not None:
            self.discarded = f"{self.upload.describe()} from {self.peer}"
            self.upload.discard()
            self.upload = None
        if self.download is not None:
            self.download.close()
            self.download = None

    def _where(self, folder: Path, name: str = "") -> str:
        """``folder/name`` relative to the root, "/"-separated (a folder ends in "/")."""
        relative = folder.relative_to(self.server.root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        return prefix + name if name else (prefix or "/")

    def handle(self, raw: bytes) -> bool:
        """Answer one request; False once the session is over. Socket errors are raised."""
        try:
            return self._handle(raw)
        except _PeerGone as gone:
            raise gone.error from None

    def _handle(self, raw: bytes) -> bool:
        opcode = raw[0]
        self.subject = f"request 0x{opcode:02X}"
        reported: ReceivedFile | None = None
        try:
            packet = P.parse(raw)
        except ObexError as exc:
            self._end_operations()
            self.reply(P.BAD_REQUEST, [(P.H_DESCRIPTION, str(exc))])
            return True
        try:
            if opcode == P.CONNECT:
                self.subject = "CONNECT"
                self.on_connect(packet)
            elif opcode == P.DISCONNECT:
                self._end_operations()
                self.reply(P.SUCCESS)
                return False
            elif opcode & 0x7F == P.PUT:
                reported = self.on_put(packet)
            elif opcode & 0x7F == P.GET:
                self.on_get(packet)
            elif opcode == P.SETPATH:
                self.on_setpath(packet)
            elif opcode == P.ABORT:
                self._end_operations()
                self.reply(P.SUCCESS)
            else:
                self.reply(P.NOT_IMPLEMENTED, [(P.H_DESCRIPTION, f"opcode 0x{opcode:02X} is not supported")])
        except _PeerGone:
            raise
        except _Refused as refused:
            self._end_operations()
            detail = f" ({refused.description})" if refused.description else ""
            self.server.log(f"refused {self.subject} from {self.peer}: {P.response_text(refused.code)}{detail}")
            headers = [(P.H_DESCRIPTION, refused.description)] if refused.description else []
            self._answer_failure(opcode, refused.code, headers)
        except Exception as exc:  # noqa: BLE001 - whatever the peer or the disk causes, the receiver goes on
            self._end_operations()
            self.server.log(f"{self.subject} from {self.peer} failed: {type(exc).__name__}: {exc} "
                            f"(answered {P.response_text(P.INTERNAL_ERROR)})")
            _logger.debug("request 0x%02X from %s failed", opcode, self.peer, exc_info=True)
            self._answer_failure(opcode, P.INTERNAL_ERROR, [(P.H_DESCRIPTION, "the receiver failed on this request")])
        if reported is not None and self.server.on_file is not None:
            try:
                self.server.on_file(reported)
            except Exception as exc:  # noqa: BLE001 - the file is stored; a broken report must not end the session
                self.server.log(f"reporting {reported.relative} failed: {type(exc).__name__}: {exc}")
        return True

    def _answer_failure(self, opcode: int, code: int, headers: list) -> None:
        # a CONNECT response carries version, flags and packet size even when it refuses
        self.reply(code, headers, connect=(P.OBEX_VERSION, 0, SERVER_MTU) if opcode == P.CONNECT else None)

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
            with self.server._lock:
                self.connection_id = self.server._next_connection_id
                self.server._next_connection_id += 1
            headers = [(P.H_WHO, P.FBS_UUID), (P.H_CONNECTION_ID, self.connection_id)]
        self.reply(P.SUCCESS, headers, connect=(P.OBEX_VERSION, 0, SERVER_MTU))

    # --- PUT ------------------------------------------------------------------------------------------------
    def on_put(self, packet: P.Packet) -> ReceivedFile | None:
        final = packet.final
        has_body = any(k in (P.H_BODY, P.H_END_OF_BODY) for k, _v in packet.headers)
        if self.upload is None:
            name = packet.get(P.H_NAME)
            if final and not has_body:  # no object: a delete
                self.subject = f"delete {name!r}"
                self.delete(name)
                return None
            self.subject = repr(name) if isinstance(name, str) else "an object without a name"
            self.start_upload(packet, name)
        else:
            self.subject = repr(self.upload.offered_name) if self.upload.offered_name else "an object without a name"
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
            return None
        return self.finish_upload()

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
            fd, temp = _create_temp(self.cwd)
        except OSError as exc:
            raise _store_refusal(exc) from None
        modified = P.parse_time(packet.get(P.H_TIME, packet.get(P.H_TIME_4)))
        stored_name = safe_name(name, name_for_type(packet.get(P.H_TYPE)))
        self.upload = _Upload(name, stored_name, length, digest, temp, os.fdopen(fd, "wb"), self.cwd, modified)

    def finish_upload(self) -> ReceivedFile:
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
            upload.stream.flush()  # a full disk shows here
            if fcntl is None:
                upload.stream.close()  # Windows cannot rename an open file
            final = reserve_unique(upload.folder, upload.name)
            os.replace(upload.temp_path, final)  # still locked until here: no cleanup can take it
            upload.stream.close()
        except OSError as exc:
            if final is not None:
                final.unlink(missing_ok=True)  # the placeholder reserve_unique made, or the incomplete file
            raise _store_refusal(exc) from None
        self.upload = None
        if upload.modified is not None:
            try:
                os.utime(final, (upload.modified, upload.modified))
            except (OSError, OverflowError, ValueError):
                pass  # the file is what matters; its date is a courtesy
        received = ReceivedFile(final.name, final, upload.received, self.peer, verified,
                                self._where(upload.folder, final.name))
        self.stored.append(received)
        headers = [] if verified is None else [(P.H_IRSOCK_VERIFIED, 1)]
        self.reply(P.SUCCESS, headers)
        return received

    def delete(self, name: Any) -> None:
        if not self.server.allow_delete:
            raise _Refused(P.FORBIDDEN, "deleting is not allowed here")
        path = self._entry(name)
        folder = path.is_dir()
        try:
            if folder:
                path.rmdir()
            else:
                path.unlink()
        except OSError as exc:
            if path.is_dir() and any(path.iterdir()):
                raise _Refused(P.PRECONDITION_FAILED, "the folder is not empty") from None
            raise _Refused(P.FORBIDDEN, f"cannot delete: {exc.strerror or exc}") from None
        self.server.log(f"deleted {'folder ' if folder else ''}{self._where(self.cwd, path.name)}"
                        f"{'/' if folder else ''} for {self.peer}")
        self.reply(P.SUCCESS)

    # --- GET -------------------------------------------------------------------------------------------------
    def on_get(self, packet: P.Packet) -> None:
        if self.download is None:
            mime = packet.get(P.H_TYPE)
            mime = mime.rstrip(b"\0").decode("ascii", "replace") if isinstance(mime, bytes) else ""
            name = packet.get(P.H_NAME)
            listing = mime == LISTING_TYPE
            self.subject = f"listing {name!r}" if listing and name else "listing" if listing else f"GET {name!r}"
            if not self.server.browse:
                raise _Refused(P.FORBIDDEN, "this inbox only takes files")
            if listing:
                folder = self._folder(name)
                self.download = io.BytesIO(self.listing(folder).encode("utf-8"))
                self.download_what = f"the listing of {self._where(folder)}"
            elif isinstance(name, str) and name:
                path = self._entry(name)
                if not path.is_file():
                    raise _Refused(P.NOT_FOUND, "not a file")
                try:
                    self.download = path.open("rb")
                except OSError as exc:
                    raise _Refused(P.FORBIDDEN, f"cannot read: {exc.strerror or exc}") from None
                self.download_what = self._where(self.cwd, path.name)
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
            if not self.download_what.startswith("the listing"):
                self.server.log(f"sent {self.download_what} ({position} bytes) to {self.peer}")

    def listing(self, folder: Path) -> str:
        """``folder`` as x-obex/folder-listing XML.

        Only entries a client can address are listed: names that are valid UTF-8 and plain (what
        :func:`safe_name` keeps unchanged), no hidden files, no symbolic links, no temporary files. A name
        in another encoding (Latin-1 from an old system) is skipped: it could be neither sent in a Name
        header nor fetched.
        """
        lines = ['<?xml version="1.0"?>', '<!DOCTYPE folder-listing SYSTEM "obex-folder-listing.dtd">',
                 '<folder-listing version="1.0">']
        if folder != self.server.root:
            lines.append("  <parent-folder/>")
        entries = []
        for entry in folder.iterdir():
            try:
                entry.name.encode("utf-8")
            except UnicodeEncodeError:
                continue  # not UTF-8 on disk (surrogate escapes)
            if entry.name.startswith(TEMP_PREFIX) or safe_name(entry.name) != entry.name:
                continue
            try:
                info = entry.lstat()
            except OSError:
                continue  # gone meanwhile, or unreadable
            entries.append((entry.name, info))
        entries.sort(key=lambda e: (not stat_module.S_ISDIR(e[1].st_mode), e[0]))
        from xml.sax.saxutils import quoteattr  # here: it imports urllib.request, 5 ms of every irda start

        for name, info in entries:
            modified = datetime.fromtimestamp(info.st_mtime, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            if stat_module.S_ISDIR(info.st_mode):
                lines.append(f"  <folder name={quoteattr(name)} modified=\"{modified}\"/>")
            elif stat_module.S_ISREG(info.st_mode):
                lines.append(f"  <file name={quoteattr(name)} size=\"{info.st_size}\" modified=\"{modified}\"/>")
        lines.append("</folder-listing>")
        return "\n".join(lines) + "\n"

    def _folder(self, name: Any) -> Path:
        """The folder a listing request names: the current one, or a relative path of plain names below it."""
        if name is None or name == "":
            return self.cwd
        if not isinstance(name, str):
            raise _Refused(P.BAD_REQUEST, "the Name must be text")
        folder = self.cwd
        parts = name.removesuffix("/").split("/")
        if "" in parts:
            raise _Refused(P.FORBIDDEN, "a folder is named by plain names below the current one")
        for part in parts:
            folder = self._entry(part, folder=folder)
        if not folder.is_dir():
            raise _Refused(P.NOT_FOUND, f"{name!r} is not a folder")
        return folder

    # --- SETPATH --------------------------------------------------------------------------------------------------
    def on_setpath(self, packet: P.Packet) -> None:
        """Always offered, also to a push-only inbox: it is how a client pushes into a folder."""
        flags = packet.setpath_flags or 0
        name = packet.get(P.H_NAME)
        self.subject = f"SETPATH {'..' if flags & 0x01 else ''}{name!r}"
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
            self.server.log(f"created folder {self._where(path)} for {self.peer}")
        elif not path.is_dir():
            raise _Refused(P.NOT_FOUND, f"{name!r} is not a folder")
        self.cwd = path

    def _entry(self, name: Any, must_exist: bool = True, folder: Path | None = None) -> Path:
        """An entry of ``folder`` (the current one) named exactly ``name`` (a plain name, nothing else)."""
        if not isinstance(name, str) or not name or safe_name(name) != name or name.startswith(TEMP_PREFIX):
            raise _Refused(P.FORBIDDEN if isinstance(name, str) and name else P.BAD_REQUEST,
                           "names must be plain file names")
        path = (self.cwd if folder is None else folder) / name
        if not inside(self.server.root, path) or path.is_symlink():
            raise _Refused(P.FORBIDDEN, "outside the shared folder")
        if must_exist and not path.exists():
            raise _Refused(P.NOT_FOUND, f"no {name!r} here")
        return path
