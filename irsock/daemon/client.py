"""The Python side of the daemon: an interface whose sockets live in ``irda serve`` (:mod:`.server`).

``irsock.attach("unix:PATH")`` (or ``irsock.attach(port)`` while a daemon serves that port) returns a
:class:`DaemonInterface`; ``irsock.socket(AF_IRDA, ..., interface=it)`` (or ``it.socket(...)``) then makes a
:class:`DaemonSocket`, the implementation object behind :class:`irsock.socket`. Each socket is one connection to the
daemon: requests (bind, connect, options) until it is connected, then the socket's bytes themselves, so its
``fileno()`` is a real Unix socket that ``select``, ``selectors`` and asyncio use directly, and ``send``/``recv`` cost
one system call.

The interface keeps a control connection: its session lasts while the process holds it (or any socket). When the
daemon goes away every call fails with ENETDOWN and says so.
"""

from __future__ import annotations

import errno
import os
import socket as _socket
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from irsock.daemon import protocol as W
from irsock.net import constants as C
from irsock.net.errors import IrSockNetDown, invalid, no_flags, not_connected, os_error, reset, timed_out
from irsock.net.values import IasQuery, IasSet, IrdaDevice, bound_service, device_address, option_name

_WINERROR = {
    errno.EAGAIN: C.WSAEWOULDBLOCK, errno.ENOTSOCK: C.WSAENOTSOCK, errno.EADDRINUSE: C.WSAEADDRINUSE,
    errno.EADDRNOTAVAIL: C.WSAEADDRNOTAVAIL, errno.ENETDOWN: C.WSAENETDOWN, errno.ECONNABORTED: C.WSAECONNABORTED,
    errno.ECONNRESET: C.WSAECONNRESET, errno.ENOTCONN: C.WSAENOTCONN, errno.ETIMEDOUT: C.WSAETIMEDOUT,
    errno.ECONNREFUSED: C.WSAECONNREFUSED, errno.EHOSTUNREACH: C.WSAEHOSTUNREACH,
    errno.ENOPROTOOPT: C.WSAENOPROTOOPT, errno.EINVAL: C.WSAEINVAL, errno.EISCONN: C.WSAEISCONN,
}


@dataclass(frozen=True)
class RoundInfo:
    """What the daemon said of the latest discovery round (``Interface.last_round``'s fields that callers read)."""

    garbled: bool
    ended_early: bool


class DaemonInterface:
    """An IrDA interface served by a daemon: the API of :class:`irsock.Interface` that programs use."""

    def __init__(self, path: str | os.PathLike, *, nickname: str | None = None, hints: int | None = None) -> None:
        self.path = os.fspath(path)
        self.port = f"unix:{self.path}"
        self.failure: str | None = None
        self.closed = False
        self.last_round: RoundInfo | None = None
        self._lock = threading.Lock()
        self._control, answer = self.connect()
        self.session = answer[4]
        self._address = W.number(answer[2])
        self.nickname = W.unquote(answer[3])
        if nickname is not None or hints is not None:
            # the built-in emulator makes the session's station with these; a port's station adds the hint bits
            self.request("attach", W.quote(nickname or self.nickname), f"0x{0x0400 if hints is None else hints:04x}")
            station = self.request("station")
            self._address, self.nickname = W.number(station[1]), W.unquote(station[2])

    # --- connections ----------------------------------------------------------------------------------------
    def _down(self, why: str) -> IrSockNetDown:
        self.failure = self.failure or f"the irsock daemon at {self.path} went away ({why})"
        return IrSockNetDown(self.failure)

    def connect(self, session: str | None = None) -> tuple[_socket.socket, list[str]]:
        """A new connection to the daemon, past ``hello`` (in this interface's session once it has one)."""
        if self.closed:
            raise IrSockNetDown("the IrDA interface is closed (irsock.attach() brings one up)")
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
        except OSError as exc:
            conn.close()
            raise IrSockNetDown(f"no irsock daemon at {self.path} ({exc.strerror or exc}): start one with irda serve"
                                ) from None
        fields = [str(W.VERSION), str(os.getpid())] + ([session] if session else [])
        try:
            answer = exchange(conn, W.line("hello", *fields))
        except OSError:
            conn.close()
            raise
        if answer[1] != str(W.VERSION):
            conn.close()
            raise IrSockNetDown(f"the daemon at {self.path} speaks protocol {answer[1]}, irsock {W.VERSION}")
        return conn, answer

    def request(self, *fields: object) -> list[str]:
        """One request on the control connection; its ``ok`` fields, or the daemon's error as an OSError."""
        if self.failure is not None:
            raise IrSockNetDown(self.failure)
        with self._lock:
            try:
                return exchange(self._control, W.line(*fields))
            except IrSockNetDown as exc:
                raise self._down(exc.strerror or str(exc)) from None

    # --- what Interface offers ----------------------------------------------------------------------------
    @property
    def address(self) -> int:
        if not self._address:  # the built-in emulator makes the session's station at its first socket
            self._address = W.number(self.request("station")[1])
        return self._address

    @property
    def hints(self) -> int:
        return W.number(self.request("station")[3])

    def set_hints(self, hints: int) -> None:
        self.request("hints", f"0x{hints:04x}")

    def link_params(self) -> None:
        """The link's QoS is the daemon's business: not known here."""
        return None

    def socket(self, family: int, type: int = 1, proto: int = 0, **options: Any):  # noqa: A002 - the API's names
        from irsock.net.sockets import socket

        return socket(family, type, proto, interface=self, **options)

    def make_endpoint(self, type_: int, proto: int) -> DaemonSocket:
        """The AF_IRDA provider's implementation object for a socket on this interface."""
        return DaemonSocket(self, type_, proto)

    def discover(self, slots: int = 6, timeout: float = 3.0, **_options: Any) -> list[IrdaDevice]:
        """One discovery round in the daemon; the devices it knows afterwards."""
        with self.socket(C.AF_IRDA, C.SOCK_STREAM) as sock:
            return sock.getsockopt(C.SOL_IRLMP, C.IRLMP_ENUMDEVICES)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        from irsock.net.interface import forget

        forget(self)
        try:
            self._control.close()
        except OSError:
            pass

    def __enter__(self) -> DaemonInterface:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<irsock.DaemonInterface {self.path} session {self.session}>"


def exchange(conn: _socket.socket, request: bytes, incoming: deque | None = None) -> list[str]:
    """Send ``request`` and read its answer; ``incoming`` lines that come first are kept in ``incoming``."""
    try:
        try:
            conn.sendall(request)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise IrSockNetDown(_farewell(conn) or exc.strerror or str(exc)) from None
        while True:
            data = W.read_line(conn)
            if data is None:
                raise IrSockNetDown("it closed the connection")
            fields = W.split(data)
            if fields[0] == "incoming" and incoming is not None:
                incoming.append(fields)
                continue
            break
    except W.ProtocolError as exc:
        raise IrSockNetDown(f"it broke the protocol: {exc}") from None
    except TimeoutError:
        raise
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise IrSockNetDown(exc.strerror or str(exc)) from None
    if fields[0] == "bye":  # the daemon stops, and says why
        raise IrSockNetDown(W.unquote(fields[1]) if len(fields) > 1 else "it stopped")
    if fields[0] == "ok":
        return fields
    if fields[0] == "err":
        exc = W.error_of(fields)
        exc.winerror = _WINERROR.get(exc.errno, 0)  # type: ignore[attr-defined]
        raise exc
    raise IrSockNetDown(f"it answered {fields[0]!r}")


def _farewell(conn: _socket.socket) -> str | None:
    """What a daemon that stopped said last (``bye REASON``), if it is still in the connection."""
    try:
        conn.settimeout(0.5)
        data = W.read_line(conn)
        fields = W.split(data) if data else []
    except (OSError, W.ProtocolError):
        return None
    return W.unquote(fields[1]) if len(fields) > 1 and fields[0] == "bye" else None


_TYPE_NAMES = {C.SOCK_STREAM: "stream", C.SOCK_SEQPACKET: "seqpacket", C.SOCK_DGRAM: "dgram"}


class DaemonSocket:
    """An AF_IRDA socket in the daemon: one connection to it, requests until connected, then the data itself."""

    def __init__(self, iface: DaemonInterface, type_: int, proto: int, *, _conn: _socket.socket | None = None,
                 _sid: int = 0) -> None:
        if type_ != C.SOCK_STREAM and _conn is None:
            raise os_error(OSError, errno.ESOCKTNOSUPPORT, 10044,
                           "sockets through the irsock daemon are SOCK_STREAM (protocol version 1)")
        self.iface = iface
        self.type = type_
        self.proto = proto
        self.timeout: float | None = _socket.getdefaulttimeout()
        self.incoming: deque[list[str]] = deque()
        self.connected = _conn is not None
        self.listening = False
        self.local_lsap: int | None = None
        self.peer: tuple[int, str] | None = None
        self.shut_rd = False
        self.closed = False
        self.linger = (0, 0)
        self.sent = 0  # bytes handed to the daemon (for unsent())
        self.name: str | None = None
        if _conn is not None:
            self.conn, self.sid = _conn, _sid
        else:
            self.conn, _answer = iface.connect(iface.session)
            try:
                self.sid = W.number(self._request("socket", _TYPE_NAMES[type_])[1])
            except OSError:
                self.conn.close()
                raise

    # --- requests --------------------------------------------------------------------------------------------
    def _request(self, *fields: object) -> list[str]:
        """A request on this socket's own connection (before it is connected), waiting as long as it takes."""
        self.conn.settimeout(None)
        try:
            return exchange(self.conn, W.line(*fields), self.incoming)
        except IrSockNetDown as exc:
            raise self.iface._down(exc.strerror or str(exc)) from None

    def _option_request(self, *fields: object) -> list[str]:
        """Options: on our connection while it carries requests, on the interface's once it carries data."""
        if self.connected:
            return self.iface.request(fields[0], self.sid, *fields[2:])
        return self._request(*fields)

    # --- the socket API ---------------------------------------------------------------------------------------
    def fileno(self) -> int:
        return self.conn.fileno()

    def settimeout(self, value: float | None) -> None:
        self.timeout = value
        if self.connected:
            self.conn.settimeout(value)

    def gettimeout(self) -> float | None:
        return self.timeout

    def bind(self, address: Any) -> None:
        if self.local_lsap is not None:
            raise invalid("the socket is already bound")
        service = bound_service(address)
        self.local_lsap = W.number(self._request("bind", W.quote(service))[1])
        self.name = service

    def listen(self, backlog: int = 5) -> None:
        if self.local_lsap is None:
            raise invalid("bind the socket to a service name before listen()")
        self._request("listen", backlog)
        self.listening = True

    def accept(self) -> tuple[DaemonSocket, tuple[int, str]]:
        if not self.listening:
            raise invalid("accept() needs listen() first")
        while not self.incoming:
            self.conn.settimeout(self.timeout)
            try:
                data = W.read_line(self.conn)
            except TimeoutError:
                raise timed_out("timed out waiting for a connection") from None
            except BlockingIOError:
                raise os_error(BlockingIOError, errno.EAGAIN, C.WSAEWOULDBLOCK, "no connection is waiting") from None
            except (W.ProtocolError, OSError) as exc:
                raise self.iface._down(str(exc)) from None
            finally:
                self.conn.settimeout(None)
            if data is None:
                raise self.iface._down("it closed the connection")
            fields = W.split(data)
            if fields[0] == "incoming":
                self.incoming.append(fields)
        fields = self.incoming.popleft()
        conn, _answer = self.iface.connect(self.iface.session)
        try:
            answer = exchange(conn, W.line("take", fields[1]))
        except OSError:
            conn.close()
            raise
        child = DaemonSocket(self.iface, self.type, self.proto, _conn=conn, _sid=W.number(answer[1]))
        child.timeout = self.timeout
        conn.settimeout(self.timeout)
        child.name = self.name
        child.peer = (W.number(answer[2]), f"{C.LSAP_SEL_PREFIX}{answer[3]}")
        child.local_lsap = self.local_lsap
        return child, child.peer

    def connect(self, address: Any) -> None:
        if self.connected:
            raise os_error(OSError, errno.EISCONN, C.WSAEISCONN, "the socket is already connected")
        if not isinstance(address, tuple) or len(address) != 2:
            raise invalid("AF_IRDA addresses are (device_address, 'ServiceName' or 'LSAP-SELn')")
        device, service = device_address(address[0]), str(address[1])
        answer = self._request("connect", f"0x{device:08x}", W.quote(service))
        self.peer = (W.number(answer[1]), service)
        self.connected = True
        self.conn.settimeout(self.timeout)

    def send(self, data: bytes, flags: int = 0) -> int:
        no_flags(flags)
        if not self.connected:
            raise not_connected()
        try:
            count = self.conn.send(data)
        except (BrokenPipeError, ConnectionResetError):
            raise self._why_ended() from None
        self.sent += count
        return count

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        no_flags(flags)
        if self.shut_rd:
            return b""
        if not self.connected:
            raise not_connected()
        try:
            data = self.conn.recv(bufsize)
        except ConnectionResetError:
            raise self._why_ended() from None
        if not data and bufsize:
            error = self._ending()
            if error is not None:
                raise error
        return data

    def _ending(self) -> OSError | None:
        """Why the daemon ended our data connection: None for the peer's orderly close."""
        try:
            answer = self.iface.request("error", self.sid)
        except OSError as exc:
            return exc  # the daemon is gone: ENETDOWN, with the reason
        code = W.number(answer[1])
        if not code:
            return None
        text = W.unquote(answer[2]) if len(answer) > 2 else ""
        if code == errno.ECONNRESET:
            return reset(text)
        exc = OSError(code, text)
        exc.winerror = _WINERROR.get(code, 0)  # type: ignore[attr-defined]
        return exc

    def _why_ended(self) -> OSError:
        return self._ending() or reset("the connection was closed by the peer")

    def shutdown(self, how: int) -> None:
        if not self.connected:
            raise not_connected()
        if how in (_socket.SHUT_RD, _socket.SHUT_RDWR):
            self.shut_rd = True
        if how in (_socket.SHUT_WR, _socket.SHUT_RDWR):
            try:
                self.conn.shutdown(_socket.SHUT_WR)  # the daemon shuts the IrDA socket down after the data
            except OSError:
                pass

    def close(self) -> None:
        """Closing the connection closes the socket in the daemon, gracefully (the data sent is delivered), unless
        SO_LINGER is on with a zero time: then the daemon aborts it first (queued data dropped, the peer sees a
        reset)."""
        if self.closed:
            return
        self.closed = True
        if self.connected and self.linger == (1, 0):
            try:
                self.iface.request("close", self.sid)
            except OSError:
                pass
        self.conn.close()

    def unsent(self) -> int:
        """Bytes given to send() that the peer has not acknowledged: still on the way to the daemon, in its pump
        and in its stack (an estimate for progress displays: it may read up to 8 kB high while the daemon hands
        data to its stack)."""
        if not self.connected or self.closed:
            return 0
        try:
            answer = self.iface.request("unsent", self.sid)
        except OSError:
            return 0
        # the daemon reads its pump and its stack one after the other: bytes the pump queues in between count twice
        # (up to one send buffer); never more than what was sent
        return min(self.sent, self.sent - W.number(answer[1]) + W.number(answer[2]))

    def getsockname(self) -> tuple[int, str]:
        answer = self._option_request("getsockname", 0)
        return W.number(answer[1]), W.unquote(answer[2])

    def getpeername(self) -> tuple[int, str]:
        if self.peer is None:
            raise not_connected()
        return self.peer

    def getsockopt(self, level: int, option: int, arg: Any = None) -> Any:
        name = self._option_name(level, option)
        if name == "IRLMP_ENUMDEVICES":
            answer = self._option_request("getsockopt", 0, name, *([W.quote(str(arg))] if isinstance(arg, str)
                                                                   else []))
            devices = _devices(answer, self.iface)
            if isinstance(arg, int):
                from irsock.net.values import device_list_bytes

                return device_list_bytes(devices, arg)
            return devices
        if name in ("IRLMP_IAS_QUERY", "IRLMP_IAS_GET"):
            if not isinstance(arg, IasQuery):
                raise invalid(f"{name} takes an irsock.IasQuery(device, class_name, attribute)")
            where = [f"0x{device_address(arg.device):08x}"] if name == "IRLMP_IAS_QUERY" else []
            answer = self._option_request("getsockopt", 0, name, *where, W.quote(arg.class_name),
                                          W.quote(arg.attribute))
            return _ias_value(answer[1:])
        if name == "IRLMP_WAITDEVICE":
            wait = int(arg) if isinstance(arg, int | float) else 10000
            return W.number(self._option_request("getsockopt", 0, name, wait)[1])
        return W.number(self._option_request("getsockopt", 0, name)[1])

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        if (level, option) == (_socket.SOL_SOCKET, _socket.SO_LINGER):
            from irsock.net.values import linger

            onoff, seconds = linger(value)
            self._option_request("setsockopt", 0, "SO_LINGER", onoff, seconds)
            self.linger = (onoff, seconds)
            return
        name = self._option_name(level, option)
        if name == "IRLMP_IAS_SET":
            if not isinstance(value, IasSet):
                raise invalid("IRLMP_IAS_SET takes an irsock.IasSet(class_name, attribute, value)")
            if isinstance(value.value, int):
                fields: list[object] = ["int", value.value]
            elif isinstance(value.value, bytes):
                fields = ["octets", value.value.hex() or "-"]
            else:
                fields = ["string", value.charset, W.quote(value.value.encode("latin-1", "replace"))]
            self._option_request("setsockopt", 0, name, W.quote(value.class_name), W.quote(value.attribute), *fields)
            return
        if name == "IRLMP_IAS_DEL":
            self._option_request("setsockopt", 0, name, W.quote(value.class_name), W.quote(value.attribute))
            return
        if isinstance(value, bytes):
            value = int.from_bytes(value, "big")
        self._option_request("setsockopt", 0, name, int(value))

    @staticmethod
    def _option_name(level: int, option: int) -> str:
        if level not in C.SOL_IRLMP_ALIASES:
            raise os_error(OSError, errno.ENOPROTOOPT, C.WSAENOPROTOOPT,
                           f"option {option_name(level, option)} is not supported by irsock")
        return option_name(level, option)


def _devices(answer: list[str], iface: DaemonInterface) -> list[IrdaDevice]:
    count = W.number(answer[1])
    devices = []
    for entry in answer[2:2 + count]:
        address, hints, charset, name = entry.split(",", 3)
        value = W.number(hints)
        devices.append(IrdaDevice(W.number(address), W.unquote(name), value >> 8, value & 0xFF, W.number(charset)))
    for extra in answer[2 + count:]:
        if extra.startswith("round:"):
            _, garbled, early = extra.split(":")
            iface.last_round = RoundInfo(garbled == "1", early == "1")
    return devices


def _ias_value(fields: list[str]) -> Any:
    from irsock.lmp import pdu as P

    kind = fields[0]
    if kind == "int":
        return P.IasValue.of_int(W.number(fields[1]))
    if kind == "octets":
        return P.IasValue.of_octets(b"" if fields[1] == "-" else bytes.fromhex(fields[1]))
    if kind == "string":
        return P.IasValue.of_string(W.unquote_bytes(fields[2]), W.number(fields[1]))
    raise IrSockNetDown(f"the daemon answered an IAS value of kind {kind!r}")


def attach_daemon(port: str, *, nickname: str | None = None, hints: int | None = None) -> DaemonInterface | None:
    """A daemon interface for ``port``: ``unix:PATH`` always, any other port when a daemon serves it; else None."""
    from irsock.daemon import default_socket_path
    from irsock.net.interface import remember

    if port.startswith("unix:"):
        iface = DaemonInterface(port[len("unix:"):], nickname=nickname, hints=hints)
    else:
        path = default_socket_path(port)
        if not path.exists():
            return None
        try:
            iface = DaemonInterface(path, nickname=nickname, hints=hints)
        except IrSockNetDown:
            return None  # a stale socket file: nobody serves the port, open it here
    remember(iface)
    return iface


__all__ = ["DaemonInterface", "DaemonSocket", "attach_daemon"]
