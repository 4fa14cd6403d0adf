"""The stack daemon (``irda serve``): one port, its stack, and a Unix socket that other processes use it through.

Each client connection is served by a thread. Until it switches to data mode it carries requests (one line each,
:mod:`.protocol`); an AF_IRDA socket of this process stands behind it (``irsock.socket`` on the daemon's interface),
so everything a socket does (IAS, auto-connect, TinyTP, options) is the in-process provider's, unchanged. After
``connect`` or ``take`` two pumps copy bytes between the client's connection and that socket: the daemon reads the
client only as fast as the IrDA socket takes data (TinyTP credit), so a client's writes block as on a kernel socket.

Sessions: a client process's connections share one session (its token travels in ``hello``). A session owns its
sockets, its pending incoming connections, the IAS attributes and hint bits it set; when its last connection closes
they go, and nobody else notices. On a real port every session uses the one interface; on the built-in emulator each
session gets a station of its own on the daemon's medium, so that two programs find each other there.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import itertools
import logging
import os
import secrets
import socket as _socket
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irsock.daemon import protocol as W
from irsock.daemon import socket_name
from irsock.net import constants as C
from irsock.net.errors import NotOffered
from irsock.net.interface import Interface
from irsock.net.interface import attach as attach_interface
from irsock.net.values import IasQuery, IasSet

log = logging.getLogger("irsock.daemon")

BUILTIN_URL = "irsim://builtin"
MAX_CONNECTIONS = 1024  # client connections at once (a socket each, plus one per Python client process)
MAX_PENDING = 32  # incoming connections a listener holds that its client has not taken yet
PENDING_EXPIRY = 30.0  # seconds an announced incoming connection waits to be taken before it is closed
KEPT_ENDINGS = 64  # per session: why data connections ended, for ``error SID``
PUMP_CHUNK = 65536


class RequestError(Exception):
    """A request that fails: answered ``err ERRNO TEXT``, the connection goes on."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


def _option(name: str) -> tuple[int, int]:
    """(level, option) of a SOL_IRLMP option named as in af_irda.h: the Windows number, else Linux's."""
    number = getattr(C, name, None)
    if name.startswith("IRLMP_") and isinstance(number, int):
        return C.SOL_IRLMP, number
    for value, linux_name in C.LINUX_OPTIONS.items():
        if linux_name == name:
            return C.SOL_IRLMP_LINUX, value
    raise RequestError(errno.ENOPROTOOPT, f"no option {name}")


@dataclass
class Pending:
    """An incoming connection accepted from the stack, announced to the listener's client, not taken yet."""

    listener: int
    sock: Any
    device: int
    lsap: int
    since: float


@dataclass
class Session:
    """One client process's share of the daemon."""

    token: str
    pid: int
    iface: Interface | None = None
    own_iface: bool = False  # the built-in emulator: this session's station, closed with it
    nickname: str = "irsock"
    hints: int = 0
    clients: set = field(default_factory=set)
    sockets: dict[int, Any] = field(default_factory=dict)
    pending: dict[int, Pending] = field(default_factory=dict)
    ias: set[tuple[str, str]] = field(default_factory=set)
    endings: OrderedDict = field(default_factory=OrderedDict)  # sid -> (errno, text): why a data connection ended
    ended: bool = False


class StackDaemon:
    """``StackDaemon(port).start()`` serves ``port`` (None: the built-in emulator) on a Unix socket."""

    def __init__(self, port: str | None = None, *, dongle: str = "plain", nickname: str = "irsock",
                 hints: int = 0x0400, path: str | os.PathLike | None = None, group: str | None = None,
                 devices: str = "3", **interface_options: Any) -> None:
        from irsock.daemon import default_socket_path

        self.port = port
        self.dongle = dongle
        self.nickname = nickname
        self.hints = hints
        self.devices = devices
        self.interface_options = interface_options
        self.path = Path(path) if path is not None else default_socket_path(port)
        self.own_directory = path is None  # the default place: made (private) if missing; a given path's is not
        self.group = group
        self.iface: Interface | None = None  # the port's interface (None on the built-in emulator)
        self.port_failure: str | None = None  # why the port is down, until it is opened again
        self.reopened = 0  # how many times the port came back after a failure
        self.lock = threading.RLock()
        self.sessions: dict[str, Session] = {}
        self.clients: set[_Client] = set()
        self._ids = itertools.count(1)
        self._listener: _socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.stopping: str | None = None
        self.stopped = threading.Event()

    # --- life ---------------------------------------------------------------------------------------------
    @property
    def builtin(self) -> bool:
        return not self.port

    @property
    def builtin_url(self) -> str:
        return f"{BUILTIN_URL}?devices={self.devices}" if self.devices not in ("", "0") else BUILTIN_URL

    def start(self) -> StackDaemon:
        """Bring the port up (a real one) and listen; raises OSError when another daemon serves the path."""
        from irsock.daemon import live_socket

        if live_socket(self.path):
            raise OSError(errno.EADDRINUSE, f"a daemon already serves {self.path} (irda serve runs once per port)")
        gid = grp.getgrnam(self.group).gr_gid if self.group else None  # KeyError for no such group, before anything
        if self.own_directory:
            self._make_dir(gid)
        elif not self.path.parent.is_dir():
            raise OSError(errno.ENOENT, f"no directory {self.path.parent} for the socket")
        if not self.builtin:
            self.iface = attach_interface(self.port, dongle=self.dongle, nickname=self.nickname, hints=self.hints,
                                          **self.interface_options)
        listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # stale: nobody answered on it
        old_umask = os.umask(0o117 if self.group else 0o177)  # no window in which others could connect
        try:
            listener.bind(os.fspath(self.path))
        except OSError:
            listener.close()
            if self.iface is not None:
                self.iface.close()
            raise
        finally:
            os.umask(old_umask)
        if gid is not None:
            os.chown(self.path, -1, gid)
            os.chmod(self.path, 0o660)
        else:
            os.chmod(self.path, 0o600)
        listener.listen(128)
        self._listener = listener
        if not self.builtin:
            threading.Thread(target=self._watch_port, name=f"irsock daemon port {self.port}", daemon=True).start()
        self._thread = threading.Thread(target=self._accept_loop, name=f"irsock daemon {self.path.name}", daemon=True)
        self._thread.start()
        log.info("serving %s on %s", self.port or "the built-in emulator", self.path)
        return self

    def _watch_port(self, every: float = 0.5) -> None:
        """A port that failed (a dongle pulled out) is opened again once it is back: clients' sockets on the old one
        have failed with ENETDOWN and its reason; new sockets (of the same sessions too) use the new one."""
        while not self.stopped.wait(every):
            iface = self.iface
            if iface is None or self.stopping is not None or iface.runtime.running:
                continue
            if not self.port_failure:
                self.port_failure = iface.failure or iface.runtime.failure or "the port failed"
                log.warning("%s failed (%s): waiting for it to come back", self.port, self.port_failure)
            try:
                fresh = attach_interface(self.port, dongle=self.dongle, nickname=self.nickname, hints=self.hints,
                                         **self.interface_options)
            except Exception:  # noqa: BLE001 - not back yet (no such device, busy, the dongle not answering)
                continue
            with self.lock:
                if self.stopping is not None:
                    fresh.close()
                    return
                self.iface, self.port_failure, self.reopened = fresh, None, self.reopened + 1
            with contextlib.suppress(Exception):
                iface.close()
            self._apply_hints()
            log.warning("%s is back", self.port)

    def _make_dir(self, gid: int | None) -> None:
        """The default directory ($XDG_RUNTIME_DIR/irsock or /tmp/irsock-UID): ours, as private as the socket."""
        directory = self.path.parent
        mode = 0o750 if gid is not None else 0o700
        directory.mkdir(mode=mode, parents=True, exist_ok=True)
        info = directory.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o7777 != mode:
            os.chmod(directory, mode)
        if gid is not None:
            with contextlib.suppress(OSError):
                os.chown(directory, -1, gid)

    def describe(self) -> dict:
        """What ``irda serve --json`` prints once it serves."""
        address = self.iface.address if self.iface is not None else None
        return {"socket": os.fspath(self.path), "port": self.port or self.builtin_url, "pid": os.getpid(),
                "address": None if address is None else f"0x{address:08x}", "name": socket_name(self.port),
                "protocol": W.VERSION}

    def stop(self, reason: str = "the daemon stopped") -> None:
        """Every client connection ends (their sockets with it), the port is closed, the socket file removed."""
        with self.lock:
            if self.stopping is not None:
                return
            self.stopping = reason
            clients = list(self.clients)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            if self._listener is not None:
                self.path.unlink()
        for client in clients:
            client.abort(reason)
        for session in list(self.sessions.values()):
            self._end_session(session, wait=False)
        if self.iface is not None:
            self.iface.close()
        if self.builtin:
            from irlap.emulator.medium import drop_medium
            from irlap.emulator.virtual import stop_devices

            stop_devices("builtin")
            drop_medium("builtin")
        self.stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.stopped.wait(timeout)

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while self.stopping is None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            with self.lock:
                full = len(self.clients) >= MAX_CONNECTIONS
                client = None if full else _Client(self, conn)
                if client is not None:
                    self.clients.add(client)
            if client is None:
                with contextlib.suppress(OSError):
                    conn.sendall(W.err(errno.EMFILE, f"the daemon serves {MAX_CONNECTIONS} connections at most"))
                conn.close()
                continue
            client.start()

    # --- sessions ------------------------------------------------------------------------------------------
    def join(self, client: _Client, pid: int, token: str | None) -> Session:
        with self.lock:
            if token is None:
                session = Session(secrets.token_hex(8), pid, hints=0)
                self.sessions[session.token] = session
            else:
                session = self.sessions.get(token)
                if session is None or session.ended:
                    raise RequestError(errno.ENOENT, f"no session {token} (it ended with its last connection)")
            session.clients.add(client)
            return session

    def leave(self, client: _Client) -> None:
        with self.lock:
            self.clients.discard(client)
            session = client.session
            if session is None:
                return
            session.clients.discard(client)
            last = not session.clients
        if last:
            self._end_session(session)

    def _end_session(self, session: Session, wait: bool = True) -> None:
        """A client process is gone: its sockets close (gracefully), its attributes and hint bits go."""
        with self.lock:
            if session.ended:
                return
            session.ended = True
            self.sessions.pop(session.token, None)
            sockets = list(session.sockets.values())
            pending = [p.sock for p in session.pending.values()]
            session.sockets.clear()
            session.pending.clear()
        for sock in pending + sockets:
            with contextlib.suppress(OSError):
                sock.close()
        iface = session.iface if self.builtin else self.iface
        if iface is None or iface.closed:
            return
        if session.own_iface:
            # the session's own station on the built-in emulator: closing delivers what its sockets still hold
            threading.Thread(target=iface.close, name="irsock daemon session end", daemon=True).start()
            return
        for class_name, attribute in session.ias:
            with contextlib.suppress(Exception):
                iface.call(lambda stack, _now, c=class_name, a=attribute: stack.lmp.ias.remove(c, a), 2.0)
        self._apply_hints()

    def _apply_hints(self) -> None:
        """The port's station announces its own hint bits and those of every session (IRLMP_HINTS_SET)."""
        if self.iface is None or self.iface.closed:
            return
        with self.lock:
            hints = self.hints
            for session in self.sessions.values():
                hints |= session.hints
        with contextlib.suppress(OSError):
            self.iface.set_hints(hints)

    def interface_of(self, session: Session, nickname: str | None = None, hints: int | None = None) -> Interface:
        """The session's interface: the port's, or (built-in emulator) its own station, made now if need be."""
        with self.lock:
            if not self.builtin:
                if self.port_failure or (self.iface is not None and not self.iface.runtime.running):
                    raise RequestError(errno.ENETDOWN, f"{self.port} is down ({self.port_failure or 'it failed'}): "
                                                       "the daemon opens it again when it is back")
                return self.iface  # the port's: after a replug, the new one
            if session.iface is not None:
                return session.iface
            if self.stopping is not None:
                raise RequestError(errno.ENETDOWN, self.stopping)
            session.iface = attach_interface(self.builtin_url, nickname=nickname or session.nickname,
                                             hints=self.hints if hints is None else hints)
            session.own_iface = True
            return session.iface

    def new_id(self) -> int:
        return next(self._ids)


class _Client(threading.Thread):
    """One client connection: requests until data mode, then the pumps."""

    def __init__(self, daemon: StackDaemon, conn: _socket.socket) -> None:
        super().__init__(name="irsock daemon client", daemon=True)
        self.daemon_ = daemon
        self.conn = conn
        self.session: Session | None = None
        self.sid = 0  # the socket this connection is
        self.sock: Any = None
        self.write_lock = threading.Lock()
        self.closed = False
        self.holding = 0  # data mode: bytes read from the client, not yet taken by the IrDA socket
        self.taken = 0  # data mode: bytes read from the client in all
        self.data_mode = False

    # --- the connection --------------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        with self.write_lock:
            self.conn.sendall(data)

    def abort(self, reason: str) -> None:
        """The daemon stops: the connection ends at once, both ways; one still carrying messages hears why first
        (``bye REASON``: the client's next answer; data cannot carry it)."""
        self.closed = True
        if not self.data_mode:
            with contextlib.suppress(OSError):
                self.conn.settimeout(1.0)
                self.write(W.line("bye", W.quote(reason)))
        with contextlib.suppress(OSError):
            self.conn.shutdown(_socket.SHUT_RDWR)

    def run(self) -> None:
        try:
            self._requests()
        except Exception:  # noqa: BLE001 - a client must never take the daemon down
            log.exception("client connection failed")
        finally:
            self.closed = True
            with contextlib.suppress(OSError):
                self.conn.close()
            if self.sock is not None and self.session is not None:
                self._drop_socket()
            self.daemon_.leave(self)

    def _drop_socket(self) -> None:
        session = self.session
        with self.daemon_.lock:
            session.sockets.pop(self.sid, None)
            for pid in [k for k, p in session.pending.items() if p.listener == self.sid]:
                pending = session.pending.pop(pid)
                with contextlib.suppress(OSError):
                    pending.sock.close()
        with contextlib.suppress(OSError):
            self.sock.close()

    def _requests(self) -> None:
        while not self.closed:
            try:
                data = W.read_line(self.conn)
            except W.ProtocolError as exc:
                self.write(W.err(errno.EPROTO, str(exc)))
                return
            except OSError:
                return
            if data is None:
                return
            try:
                fields = W.split(data)
                answer, data_mode = self._handle(fields)
            except W.ProtocolError as exc:
                answer, data_mode = W.err(errno.EPROTO, str(exc)), False
            except RequestError as exc:
                answer, data_mode = W.err(exc.code, str(exc)), False
            except NotOffered as exc:  # IAS: no such class or attribute; Linux says EADDRNOTAVAIL (a last field)
                answer, data_mode = W.err(exc.errno or errno.ECONNREFUSED, exc.strerror or str(exc),
                                          errno.EADDRNOTAVAIL), False
            except OSError as exc:
                answer, data_mode = W.err(exc.errno or errno.EIO, exc.strerror or str(exc)), False
            except (ValueError, TypeError, IndexError) as exc:
                answer, data_mode = W.err(errno.EINVAL, f"{fields[0] if fields else 'request'}: {exc}"), False
            try:
                self.write(answer)
            except OSError:
                return
            if data_mode:
                self.data_mode = True
                self._pump()
                return

    # --- requests ------------------------------------------------------------------------------------------
    def _handle(self, fields: list[str]) -> tuple[bytes, bool]:
        verb, args = fields[0], fields[1:]
        if verb == "hello":
            return self._hello(args), False
        if self.session is None:
            raise RequestError(errno.EPROTO, "say hello first: hello 1 PID [SESSION]")
        handler = getattr(self, f"_do_{verb}", None)
        if handler is None:
            raise RequestError(errno.EOPNOTSUPP, f"no request {verb!r} in protocol version {W.VERSION}")
        return handler(args)

    def _hello(self, args: list[str]) -> bytes:
        if self.session is not None:
            raise RequestError(errno.EISCONN, "hello was said already")
        if not args or args[0] != str(W.VERSION):
            raise RequestError(errno.EPROTONOSUPPORT,
                               f"protocol version {args[0] if args else '?'}: this daemon speaks {W.VERSION}")
        pid = W.number(args[1]) if len(args) > 1 else 0
        self.session = self.daemon_.join(self, pid, args[2] if len(args) > 2 else None)
        iface = self.session.iface if self.daemon_.builtin else self.daemon_.iface
        address = f"0x{iface.address:08x}" if iface is not None else "0x00000000"
        nickname = iface.nickname if iface is not None else self.session.nickname
        return W.ok(W.VERSION, address, W.quote(nickname), self.session.token)

    def _iface(self) -> Interface:
        return self.daemon_.interface_of(self.session)

    def _socket_of(self, sid_field: str) -> Any:
        sid = W.number(sid_field)
        if sid == 0:
            if self.sock is None:
                raise RequestError(errno.ENOTSOCK, "this connection is not a socket (socket TYPE first)")
            return self.sock
        with self.daemon_.lock:
            sock = self.session.sockets.get(sid)
        if sock is None:
            raise RequestError(errno.EBADF, f"no socket {sid} in this session")
        return sock

    def _do_attach(self, args: list[str]) -> tuple[bytes, bool]:
        nickname, hints = W.unquote(args[0]), W.number(args[1])
        session, daemon = self.session, self.daemon_
        if daemon.builtin:
            session.nickname = nickname
            fresh = session.iface is None
            iface = daemon.interface_of(session, nickname, hints)
            if not fresh:
                iface.set_hints(hints)
        else:
            session.hints = hints
            daemon._apply_hints()
            iface = self._iface()
        return W.ok(f"0x{iface.address:08x}"), False

    def _do_station(self, _args: list[str]) -> tuple[bytes, bool]:
        iface = self._iface()
        return W.ok(f"0x{iface.address:08x}", W.quote(iface.nickname), f"0x{iface.hints:04x}"), False

    def _do_hints(self, args: list[str]) -> tuple[bytes, bool]:
        self._set_hints(W.number(args[0]))
        return W.ok(), False

    def _set_hints(self, hints: int) -> None:
        if self.daemon_.builtin:
            self._iface().set_hints(hints)
        else:
            self.session.hints = hints
            self.daemon_._apply_hints()

    def _do_socket(self, args: list[str]) -> tuple[bytes, bool]:
        if self.sock is not None:
            raise RequestError(errno.EISCONN, "this connection is a socket already")
        type_ = W.TYPES.get(args[0] if args else "")
        if type_ is None:
            raise RequestError(errno.ESOCKTNOSUPPORT, f"socket types: {', '.join(W.TYPES)}")
        iface = self._iface()
        self.sock = iface.socket(C.AF_IRDA, type_)
        self.sid = self.daemon_.new_id()
        with self.daemon_.lock:
            self.session.sockets[self.sid] = self.sock
        return W.ok(self.sid), False

    def _do_bind(self, args: list[str]) -> tuple[bytes, bool]:
        sock = self._socket_of("0")
        sock.bind((W.unquote(args[0]),))
        return W.ok(sock.lsap_sel), False

    def _do_listen(self, args: list[str]) -> tuple[bytes, bool]:
        sock = self._socket_of("0")
        backlog = max(1, min(W.number(args[0]) if args else 5, MAX_PENDING))
        sock.listen(backlog)
        threading.Thread(target=self._announce, args=(sock, backlog), name="irsock daemon listener",
                         daemon=True).start()
        return W.ok(), False

    def _announce(self, listener: Any, backlog: int) -> None:
        """Accept from the stack and tell the client ``incoming PENDING DEVICE LSAP``; at most ``backlog`` wait."""
        daemon, session = self.daemon_, self.session
        listener.settimeout(0.25)
        while not self.closed and not session.ended:
            self._expire_pending()
            with daemon.lock:
                waiting = sum(1 for p in session.pending.values() if p.listener == self.sid)
            if waiting >= backlog:
                time.sleep(0.05)  # the client takes them (or they expire); the stack holds the rest meanwhile
                continue
            try:
                child, (device, _name) = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            lsap = child.peer_lsap_sel or 0
            pid = daemon.new_id()
            with daemon.lock:
                if session.ended:
                    child.close()
                    return
                session.pending[pid] = Pending(self.sid, child, device, lsap, time.monotonic())
            try:
                self.write(W.line("incoming", pid, f"0x{device:08x}", lsap))
            except OSError:
                return

    def _expire_pending(self) -> None:
        now = time.monotonic()
        with self.daemon_.lock:
            old = [k for k, p in self.session.pending.items() if now - p.since > PENDING_EXPIRY]
            gone = [self.session.pending.pop(k).sock for k in old]
        for sock in gone:
            with contextlib.suppress(OSError):
                sock.close()

    def _do_take(self, args: list[str]) -> tuple[bytes, bool]:
        if self.sock is not None:
            raise RequestError(errno.EISCONN, "this connection is a socket already")
        pid = W.number(args[0])
        with self.daemon_.lock:
            pending = self.session.pending.pop(pid, None)
            if pending is None:
                raise RequestError(errno.ENOENT, f"no incoming connection {pid} (taken, or expired after "
                                                 f"{PENDING_EXPIRY:.0f} s)")
            self.sock, self.sid = pending.sock, self.daemon_.new_id()
            self.session.sockets[self.sid] = self.sock
        return W.ok(self.sid, f"0x{pending.device:08x}", pending.lsap), True

    def _do_connect(self, args: list[str]) -> tuple[bytes, bool]:
        sock = self._socket_of("0")
        device, service = W.number(args[0]), W.unquote(args[1])
        sock.connect((device, service))
        peer_device = sock.getpeername()[0]
        return W.ok(f"0x{peer_device:08x}", sock.peer_lsap_sel or 0), True

    def _do_getsockname(self, args: list[str]) -> tuple[bytes, bool]:
        address, name = self._socket_of(args[0] if args else "0").getsockname()
        return W.ok(f"0x{address:08x}", W.quote(name)), False

    def _do_getpeername(self, args: list[str]) -> tuple[bytes, bool]:
        device, name = self._socket_of(args[0] if args else "0").getpeername()
        return W.ok(f"0x{device:08x}", W.quote(name)), False

    def _do_close(self, args: list[str]) -> tuple[bytes, bool]:
        sid = W.number(args[0])
        with self.daemon_.lock:
            sock = self.session.sockets.pop(sid, None)
        if sock is None:
            raise RequestError(errno.EBADF, f"no socket {sid} in this session")
        sock.close()
        return W.ok(), False

    def _do_unsent(self, args: list[str]) -> tuple[bytes, bool]:
        """``ok TAKEN UNSENT``: how many bytes of socket SID's data the daemon has read from its client, and how many
        of those the peer has not acknowledged (in the pump and in the stack); the client knows what it sent."""
        sid = W.number(args[0])
        sock = self._socket_of(args[0])
        in_stack = sock.unsent()  # first: bytes the pump queues meanwhile are then missed, never counted twice
        with self.daemon_.lock:
            pumps = [c for c in self.session.clients if c.sid == sid]
        taken = sum(c.taken for c in pumps)
        return W.ok(taken, in_stack + sum(c.holding for c in pumps)), False

    def _do_error(self, args: list[str]) -> tuple[bytes, bool]:
        """Why the data connection of socket SID ended: ``ok 0`` (orderly) or ``ok ERRNO TEXT``."""
        sid = W.number(args[0])
        with self.daemon_.lock:
            code, text = self.session.endings.get(sid, (0, ""))
        return (W.ok(code, W.quote(text)) if code else W.ok(0)), False

    def _do_getsockopt(self, args: list[str]) -> tuple[bytes, bool]:
        sock, name, rest = self._socket_of(args[0]), args[1], args[2:]
        level, option = _option(name)
        if name == "IRLMP_ENUMDEVICES":
            devices = sock.getsockopt(level, option, W.unquote(rest[0])) if rest else sock.getsockopt(level, option)
            entries = [f"0x{d.address:08x},0x{d.hints1 << 8 | d.hints2:04x},{d.charset},{W.quote(d.name)}"
                       for d in devices]
            last = self._iface().last_round  # the round the getsockopt just ran
            round_flags = f"round:{int(bool(last and last.garbled))}:{int(bool(last and last.ended_early))}"
            return W.ok(len(entries), *entries, round_flags), False
        if name in ("IRLMP_IAS_QUERY", "IRLMP_IAS_GET"):
            if name == "IRLMP_IAS_QUERY":
                query = IasQuery(W.number(rest[0]), W.unquote(rest[1]), W.unquote(rest[2]))
            else:
                query = IasQuery(0, W.unquote(rest[0]), W.unquote(rest[1]))
            return W.ok(*_ias_fields(sock.getsockopt(level, option, query))), False
        if name == "IRLMP_WAITDEVICE":
            address = sock.getsockopt(level, option, W.number(rest[0]) if rest else 10000)
            return W.ok(f"0x{address:08x}"), False
        value = sock.getsockopt(level, option)
        if not isinstance(value, int):
            raise RequestError(errno.ENOPROTOOPT, f"{name} has no value to read here")
        return W.ok(value), False

    def _do_setsockopt(self, args: list[str]) -> tuple[bytes, bool]:
        sock, name, rest = self._socket_of(args[0]), args[1], args[2:]
        if name == "SO_LINGER":
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, (W.number(rest[0]), W.number(rest[1])))
            return W.ok(), False
        level, option = _option(name)
        if name == "IRLMP_HINTS_SET":
            self._set_hints(W.number(rest[0]))  # the session's share of the station's hint bits
            return W.ok(), False
        if name == "IRLMP_IAS_SET":
            class_name, attribute = W.unquote(rest[0]), W.unquote(rest[1])
            kind = rest[2]
            if kind == "int":
                value = IasSet(class_name, attribute, W.number(rest[3]))
            elif kind == "octets":
                value = IasSet(class_name, attribute, b"" if rest[3] == "-" else bytes.fromhex(rest[3]))
            elif kind == "string":
                value = IasSet(class_name, attribute, W.unquote_bytes(rest[4]).decode("latin-1"), W.number(rest[3]))
            else:
                raise RequestError(errno.EINVAL, f"IAS values are int, octets or string, not {kind!r}")
            sock.setsockopt(level, option, value)
            with self.daemon_.lock:
                self.session.ias.add((class_name, attribute))
            return W.ok(), False
        if name == "IRLMP_IAS_DEL":
            query = IasQuery(0, W.unquote(rest[0]), W.unquote(rest[1]))
            sock.setsockopt(level, option, query)
            with self.daemon_.lock:
                self.session.ias.discard((query.class_name, query.attribute))
            return W.ok(), False
        sock.setsockopt(level, option, W.number(rest[0]))
        return W.ok(), False

    # --- data mode -------------------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Copy bytes both ways until both directions ended; then the IrDA socket closes (gracefully)."""
        sock, sid = self.sock, self.sid
        sock.settimeout(None)
        down = threading.Thread(target=self._pump_down, args=(sock, sid), name="irsock daemon data", daemon=True)
        down.start()
        while True:
            try:
                data = self.conn.recv(PUMP_CHUNK)
            except OSError:
                data = b""  # the client's end is gone: as its close
            self.taken += len(data)
            if not data:
                with contextlib.suppress(OSError):
                    sock.shutdown(_socket.SHUT_WR)  # the client is done writing: the peer reads EOF after the data
                break
            try:
                view = memoryview(data)
                while view:  # blocks while the peer gives no credit: we stop reading, the client blocks
                    self.holding = len(view)
                    view = view[sock.send(view):]
                self.holding = 0
            except OSError as exc:
                self._ended(sid, exc)
                with contextlib.suppress(OSError):
                    self.conn.shutdown(_socket.SHUT_RDWR)
                break
        down.join()

    def _pump_down(self, sock: Any, sid: int) -> None:
        while True:
            try:
                data = sock.recv(PUMP_CHUNK)
            except OSError as exc:
                self._ended(sid, exc)  # a reset, a lost link: the client's EOF reads as this (error SID)
                with contextlib.suppress(OSError):
                    self.conn.shutdown(_socket.SHUT_RDWR)
                return
            if not data:
                with contextlib.suppress(OSError):
                    self.conn.shutdown(_socket.SHUT_WR)  # the peer's orderly close: EOF for the client
                return
            try:
                self.conn.sendall(data)
            except OSError:
                return  # the client is gone: its socket closes behind it

    def _ended(self, sid: int, exc: OSError) -> None:
        """Remember why the connection broke (``error SID``): the client's EOF then reads as this error."""
        code = exc.errno or errno.ECONNRESET
        text = exc.strerror or str(exc)
        with self.daemon_.lock:
            endings = self.session.endings
            endings[sid] = (code, text)
            while len(endings) > KEPT_ENDINGS:
                endings.popitem(last=False)


def _ias_fields(value: Any) -> list[str]:
    """An IAS value as answer fields: ``int N``, ``octets HEX`` (``-`` empty), ``string CHARSET TEXT``."""
    from irsock.lmp import pdu as P

    if value.kind == P.VALUE_INTEGER:
        return ["int", str(value.integer)]
    if value.kind == P.VALUE_OCTETS:
        return ["octets", value.octets.hex() or "-"]
    if value.kind == P.VALUE_STRING:
        return ["string", str(value.charset), W.quote(value.octets)]
    raise RequestError(errno.EADDRNOTAVAIL, "the attribute has no value")


__all__ = ["StackDaemon"]
