"""The Winsock-style socket layer: ``irsock.socket(family, type, proto)`` for AF_IRDA and AF_INET alike.

A :class:`socket` has the interface of Python's ``socket.socket``. Its work is done by a *provider*
chosen from the catalog (:mod:`irsock.providers`): the base IrDA provider (TinyTP streams and
SEQPACKET, IrLMP datagrams, IrLPT/exclusive raw IrLMP), the base TCP/UDP provider (the OS's own
sockets), and layered providers stacked over a base one (trace, TLS).

IrDA sockets keep their state here and reach the stack only through ``Interface.call``; the
interface files the stack's events with the socket and wakes it. Every socket owns a local
socketpair whose read end is its ``fileno()``: a byte sits in it while data or a connection is
waiting, so ``select``, ``selectors`` and asyncio's ``add_reader`` work on IrDA sockets too.
"""

from __future__ import annotations

import errno
import io
import socket as _socket
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from irsock import constants as C
from irsock.errors import IrSockError
from irsock.interface import Interface, default_interface
from irsock.lmp import pdu as P
from irsock.lmp.stack import (
    ConnectionlessData,
    LmpConnectConfirm,
    LmpConnectIndication,
    LmpData,
    LmpDisconnected,
    LmpError,
)
from irsock.ttp import TtpConnected, TtpDisconnected, TtpError, TtpReadable

SEND_BUFFER = 8192  # bytes a stream socket queues in TinyTP before send() blocks
RAW_RECEIVE_LIMIT = 16384  # raw IrLMP sockets ask the peer to pause (RNR) above this
DGRAM_PID = 0x01
AUTO_DISCOVERY_ROUNDS = 3  # auto-connect (device 0) discovers until a round adds nobody, at most this often


# --- errors -----------------------------------------------------------------------------------------
def _error(cls: type[OSError], code: int, winerror: int, message: str) -> OSError:
    exc = cls(code, message)
    exc.winerror = winerror  # type: ignore[attr-defined]
    return exc


class _NotOffered(ConnectionRefusedError):
    """IAS answered "no such class" or "no such attribute": the device does not offer the service."""


def refused(message: str) -> OSError:
    return _error(ConnectionRefusedError, errno.ECONNREFUSED, C.WSAECONNREFUSED, message)


def timed_out(message: str) -> OSError:
    return _error(TimeoutError, errno.ETIMEDOUT, C.WSAETIMEDOUT, message)


def reset(message: str) -> OSError:
    return _error(ConnectionResetError, errno.ECONNRESET, C.WSAECONNRESET, message)


def unreachable(message: str) -> OSError:
    return _error(OSError, errno.EHOSTUNREACH, C.WSAEHOSTUNREACH, message)


def no_option(name: str) -> OSError:
    return _error(OSError, errno.ENOPROTOOPT, C.WSAENOPROTOOPT, f"option {name} is not supported by irsock")


def would_block() -> OSError:
    return _error(BlockingIOError, errno.EAGAIN, C.WSAEWOULDBLOCK, "the operation would block")


def not_connected() -> OSError:
    return _error(OSError, errno.ENOTCONN, C.WSAENOTCONN, "the socket is not connected")


def invalid(message: str) -> OSError:
    return _error(OSError, errno.EINVAL, C.WSAEINVAL, message)


def _no_flags(flags: int) -> None:
    """IrDA sockets have no MSG_PEEK/MSG_OOB/...: say so instead of ignoring the flags."""
    if flags:
        raise _error(OSError, errno.EOPNOTSUPP, 10045, f"flags 0x{flags:x} are not supported on AF_IRDA sockets")


# --- option values ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IrdaDevice:
    """An entry of IRLMP_ENUMDEVICES."""

    address: int
    name: str
    hints1: int
    hints2: int
    charset: int

    @property
    def hint_words(self) -> list[str]:
        from irlap.frames import hint_words

        return hint_words(bytes((self.hints1, self.hints2)))


@dataclass(frozen=True)
class IasSet:
    """IRLMP_IAS_SET: an attribute of ours (value: int, bytes (octets) or str (user string))."""

    class_name: str
    attribute: str
    value: int | bytes | str
    charset: int = 0


@dataclass(frozen=True)
class IasQuery:
    """IRLMP_IAS_QUERY input: which device, class and attribute."""

    device: int
    class_name: str
    attribute: str


def device_list_bytes(devices: list[IrdaDevice], buflen: int) -> bytes:
    """The Windows DEVICELIST: ULONG count, then 29-byte WINDOWS_IRDA_DEVICE_INFO entries."""
    room = max(0, (buflen - 4) // 29)
    chosen = devices[:room]
    out = struct.pack("<I", len(chosen))
    for device in chosen:
        name = device.name.encode("latin-1", "replace")[:21]
        out += struct.pack("<I", device.address) + name.ljust(22, b"\0") + bytes(
            (device.hints1, device.hints2, device.charset))
    return out[:buflen]


def _option_name(level: int, option: int) -> str:
    if level not in C.SOL_IRLMP_ALIASES:
        return f"level {level} option {option}"
    if level == C.SOL_IRLMP_LINUX and option in C.LINUX_OPTIONS:
        return C.LINUX_OPTIONS[option]
    return C.WINDOWS_OPTIONS.get(option) or C.LINUX_OPTIONS.get(option) or f"SOL_IRLMP option {option}"


def _linger(value: Any) -> tuple[int, int]:
    """SO_LINGER as ``struct linger`` bytes (``struct.pack("ii", onoff, seconds)``) or an (onoff, seconds) pair."""
    try:
        onoff, seconds = struct.unpack("ii", bytes(value)) if isinstance(value, bytes | bytearray) else value
        onoff, seconds = int(onoff), int(seconds)
    except (TypeError, ValueError, struct.error):
        raise invalid("SO_LINGER takes struct.pack('ii', onoff, seconds) or (onoff, seconds)") from None
    if seconds < 0:
        raise invalid("the SO_LINGER time cannot be negative")
    return (1 if onoff else 0, seconds)


# --- addresses -------------------------------------------------------------------------------------------
def parse_address(text: str) -> int | None:
    """A device address written as ``0x1234abcd``, ``1234abcd`` or decimal; None if it is not one."""
    try:
        value = int(text, 0)
    except ValueError:
        try:
            value = int(text, 16)
        except ValueError:
            return None
    return value if 0 < value < 0xFFFFFFFF else None


def _device(value: Any) -> int:
    if isinstance(value, bytes | bytearray) and len(value) == 4:
        return int.from_bytes(value, "little")
    if isinstance(value, str):
        address = parse_address(value)
        if address is None:
            raise invalid(f"{value!r} is not a device address")
        return address
    if isinstance(value, int):
        return value
    raise invalid(f"{value!r} is not a device address (an int, 4 bytes or '0x1234abcd')")


def _lsap_sel(service: str) -> int | None:
    if service.upper().startswith(C.LSAP_SEL_PREFIX):
        try:
            value = int(service[len(C.LSAP_SEL_PREFIX):])
        except ValueError:
            raise invalid(f"{service!r}: LSAP-SEL takes a decimal number") from None
        if not 0 < value <= P.LSAP_MAX:
            raise invalid(f"{service!r}: LSAP selectors are 1..111")
        return value
    return None


# --- the IrDA provider's socket ---------------------------------------------------------------------------
class IrdaSocketImpl:
    """AF_IRDA socket state; public methods are called by :class:`socket`."""

    def __init__(self, iface: Interface, type_: int, proto: int) -> None:
        if type_ not in (C.SOCK_STREAM, C.SOCK_SEQPACKET, C.SOCK_DGRAM):
            raise _error(OSError, errno.ESOCKTNOSUPPORT, 10044, f"AF_IRDA has no socket type {type_}")
        self.iface = iface
        self.type = type_
        self.proto = proto
        self.timeout: float | None = _socket.getdefaulttimeout()
        self.conn: tuple[int, int] | None = None
        self.peer: tuple[int, str] | None = None
        self.local_lsap: int | None = None
        self.name: str | None = None
        self.listening = False
        self.raw = False  # IRLMP_IRLPT_MODE / IRLMP_EXCLUSIVE_MODE: IrLMP without TinyTP
        self.max_sdu = 0xFFFFFFFF if type_ == C.SOCK_SEQPACKET else 0
        self.peer_max_sdu = 0
        self.pending: deque = deque()  # accepted connections: (conn, device)
        self.raw_rx: deque = deque()
        self.dgrams: deque = deque()
        self.connected = False
        self.eof = False
        self.error: str | None = None
        self.shut_rd = False
        self.shut_wr = False
        self.closed = False
        self.linger: tuple[int, int] = (0, 0)  # SO_LINGER (l_onoff, l_linger seconds)
        self._rsock, self._wsock = _socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._flagged = False

    # readability flag for select()
    def _update_flag(self) -> None:
        ready = bool(self.pending or self.raw_rx or self.dgrams or self.eof or self.error or self._has_data)
        if ready and not self._flagged:
            try:
                self._wsock.send(b"\x01")
                self._flagged = True
            except OSError:
                pass
        elif not ready and self._flagged:
            try:
                self._rsock.recv(16)
            except OSError:
                pass
            self._flagged = False

    _has_data = False

    def fileno(self) -> int:
        return self._rsock.fileno()

    def settimeout(self, value: float | None) -> None:
        self.timeout = value

    def gettimeout(self) -> float | None:
        return self.timeout

    # events, on the engine thread, under iface.cond
    def on_event(self, event: Any) -> None:
        match event:
            case TtpConnected(incoming=True) | LmpConnectIndication():
                conn = event.conn if isinstance(event, TtpConnected) else (event.local, event.remote)
                self.pending.append((conn, event.device))
            case TtpConnected():
                self.connected = True
                self.peer_max_sdu = event.peer_max_sdu
            case LmpConnectConfirm():
                self.connected = True
            case TtpReadable():
                self._has_data = True
            case LmpData():
                self.raw_rx.append(event.data)
            case ConnectionlessData():
                self.dgrams.append((event.data, event.pid))
            case TtpDisconnected() | LmpDisconnected():
                detail = getattr(event, "detail", "")
                words = event.reason.name.lower().replace("_", " ")
                if not self.connected:
                    self.error = f"refused: {words}" + (f" ({detail})" if detail else "")
                self.eof = True
                self.connected = False
                self.disconnect_reason = event.reason
                # an orderly close (ours or the peer's) is EOF after the data; anything else is a reset
                if event.reason != P.DisconnectReason.USER_REQUEST and self.error is None:
                    self.error = detail or f"the peer ended the connection: {words}"
        self._update_flag()

    def on_failure(self, message: str) -> None:
        self.error = message
        self.eof = True
        self._update_flag()

    # --- waiting -------------------------------------------------------------------------------
    def _wait(self, ready, what: str) -> None:
        """Wait (under the interface condition) until ``ready()``; honours timeout and non-blocking."""
        cond = self.iface.cond
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        with cond:
            while not ready():
                if self.timeout == 0:
                    raise would_block()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise timed_out(f"timed out {what}")
                cond.wait(0.05 if remaining is None else min(remaining, 0.05))

    def _call(self, fn):
        try:
            return self.iface.call(fn)
        except (LmpError, TtpError) as exc:
            raise invalid(str(exc)) from None
        except IrSockError as exc:
            if isinstance(exc, OSError):
                raise
            raise _error(OSError, errno.ENETDOWN, C.WSAENETDOWN, str(exc)) from None

    # --- naming -------------------------------------------------------------------------------------
    def bind(self, address: Any) -> None:
        if self.local_lsap is not None:
            raise invalid("the socket is already bound")
        if isinstance(address, str):
            address = (address,)
        if not isinstance(address, tuple) or not address:
            raise invalid("AF_IRDA bind takes ('ServiceName',) or (device, 'ServiceName')")
        service = str(address[-1])
        if self.type == C.SOCK_DGRAM:
            self.local_lsap = P.LSAP_CONNECTIONLESS
            self.name = service
            self.iface.register(("dgram", None), self)
            return
        if len(service.encode()) > 60:
            raise invalid("service names are at most 60 bytes")
        lsap = _lsap_sel(service)
        attribute = C.IRLMP_LSAP_ATTRIBUTE if self.raw else C.TINYTP_LSAP_ATTRIBUTE

        def do(stack, now):
            if self.raw:
                chosen = lsap if lsap is not None else stack.lmp.allocate_lsap()
                stack.lmp.listen(chosen, "raw")
            else:
                chosen = stack.listen(lsap, max_sdu_size=self.max_sdu)
            if lsap is None:
                stack.lmp.ias.set(service, attribute, P.IasValue.of_int(chosen))
            return chosen

        try:
            self.local_lsap = self._call(do)
        except OSError as exc:
            raise _error(OSError, errno.EADDRINUSE, C.WSAEADDRINUSE, f"cannot bind {service!r}: {exc}") from None
        self.name = service

    def listen(self, backlog: int = 5) -> None:
        if self.local_lsap is None:
            raise invalid("bind the socket to a service name before listen()")
        self.listening = True
        self.iface.register(("listen", self.local_lsap), self)

    def accept(self) -> tuple[IrdaSocketImpl, tuple[int, str]]:
        if not self.listening:
            raise invalid("accept() needs listen() first")
        self._wait(lambda: bool(self.pending) or self.error is not None, "waiting for a connection")
        with self.iface.cond:
            if not self.pending:
                raise reset(self.error or "the interface went down")
            conn, device = self.pending.popleft()
            child = IrdaSocketImpl(self.iface, self.type, self.proto)
            child.raw = self.raw
            child.timeout = self.timeout
            child.conn = conn
            child.local_lsap = conn[0]
            child.connected = True
            child.peer = (device, f"{C.LSAP_SEL_PREFIX}{conn[1]}")
            child.name = self.name
            self.iface.register(conn, child)
            self._update_flag()
        if self.raw:
            self._call(lambda stack, now: stack.lmp.confirm(conn[0], conn[1], now))
        else:
            child.peer_max_sdu = self._call(lambda stack, now: stack.connections[conn].tx_max_sdu
                                            if conn in stack.connections else 0)
            def flag(stack, now):
                # events that came before the child was registered: data, or the peer already gone
                with self.iface.cond:
                    connection = stack.connections.get(conn)
                    child._has_data = bool(stack.readable(conn)) if connection is not None else False
                    if connection is None or connection.ended:
                        child.eof = True
                        child.connected = False
                    child._update_flag()

            self._call(flag)
        return child, child.peer

    # --- connecting ---------------------------------------------------------------------------------
    def resolve(self, device: int, service: str) -> int:
        lsap = _lsap_sel(service)
        if lsap is not None:
            return lsap
        attribute = C.IRLMP_LSAP_ATTRIBUTE if self.raw else C.TINYTP_LSAP_ATTRIBUTE
        query = self._call(lambda stack, now: stack.ias_query(device, service, attribute, now, 8.0))
        self._wait(lambda: query in self.iface.ias_results or self.iface.failure is not None,
                   f"asking 0x{device:08x} for {service!r}")
        with self.iface.cond:
            result = self.iface.ias_results.pop(query, None)
        if result is None:
            raise _error(OSError, errno.ENETDOWN, C.WSAENETDOWN, self.iface.failure or "interface down")
        if result.status in (P.IAS_NO_SUCH_CLASS, P.IAS_NO_SUCH_ATTRIBUTE):
            raise _error(_NotOffered, errno.ECONNREFUSED, C.WSAECONNREFUSED,
                         f"0x{device:08x} offers no service {service!r} ({result.describe()})")
        if result.status is None:
            raise unreachable(f"0x{device:08x} did not answer the IAS query for {service!r}: {result.error}")
        if not result.ok or not result.values or result.values[0].kind != P.VALUE_INTEGER:
            raise refused(f"0x{device:08x} has no usable LSAP for {service!r} ({result.describe()})")
        return result.values[0].integer

    def connect(self, address: Any) -> None:
        if self.connected:
            raise _error(OSError, errno.EISCONN, C.WSAEISCONN, "the socket is already connected")
        if not isinstance(address, tuple) or len(address) != 2:
            raise invalid("AF_IRDA addresses are (device_address, 'ServiceName' or 'LSAP-SELn')")
        device, service = _device(address[0]), str(address[1])
        if self.type == C.SOCK_DGRAM:
            self.peer = (device, service)
            self.connected = True
            return
        if device in (0, 0xFFFFFFFF):
            device, remote = self._auto_device(service)
        else:
            remote = self.resolve(device, service)

        def do(stack, now):
            if self.raw:
                local = stack.lmp.allocate_lsap()
                try:
                    stack.lmp.connect(local, device, remote, now, owner="raw")
                except Exception:
                    stack.lmp.release_lsap(local)
                    raise
                return (local, remote)
            return stack.connect(device, remote, now, max_sdu_size=self.max_sdu)

        with self.iface.cond:
            self.error = None
            self.eof = False
        conn = self._call(do)
        self.conn = conn
        self.local_lsap = conn[0]
        self.iface.register(conn, self)
        try:
            self._wait(lambda: self.connected or self.error is not None or self.eof,
                       f"connecting to 0x{device:08x} {service!r}")
        except TimeoutError:
            self._call(lambda stack, now: stack.lmp.disconnect(conn[0], conn[1], now))
            raise
        if not self.connected:
            reason = getattr(self, "disconnect_reason", None)
            message = f"connection to 0x{device:08x} {service!r}: {self.error or 'refused'}"
            if reason in (P.DisconnectReason.LAP_CONNECT_FAILED, P.DisconnectReason.CLIENT_NOT_RESPONDING):
                raise timed_out(message + " (is the device in range?)")
            raise refused(message)
        self.peer = (device, service)

    def _auto_device(self, service: str) -> tuple[int, int]:
        """Linux auto-connect: (device, LSAP) of the one device in range that offers ``service``.

        A discovery round runs first. Only IAS's own answer "no such class/attribute" means a device does
        not offer the service; a lookup that fails otherwise leaves the question open and is reported (when
        two devices answered that they offer it, it is ENOTUNIQ whatever the others did)."""
        # two devices answering in the same slot garble each other and one round misses both: rounds go on
        # until one adds nobody to what was found (at most AUTO_DISCOVERY_ROUNDS)
        found: dict[int, Any] = {}
        for _round in range(AUTO_DISCOVERY_ROUNDS):
            new = {d.address: d for d in self.iface.discover() if d.address not in found}
            if found and not new:
                break
            found.update(new)
        devices = list(found.values())
        if not devices:
            raise _error(OSError, errno.ENETUNREACH, 10051,
                         f"no IrDA device in range ({AUTO_DISCOVERY_ROUNDS} discovery rounds found none)")
        offering: list[tuple[int, int]] = []
        failures: list[tuple[int, OSError]] = []
        for device in devices:
            try:
                offering.append((device.address, self.resolve(device.address, service)))
            except _NotOffered:
                continue
            except OSError as exc:
                failures.append((device.address, exc))
        if len(offering) > 1:
            raise _error(OSError, errno.ENOTUNIQ, C.WSAEINVAL,
                         f"{len(offering)} devices offer {service!r}: give the device address")
        if failures:
            address, exc = failures[0]
            raise _error(type(exc), exc.errno or errno.EIO, getattr(exc, "winerror", None) or C.WSAEHOSTUNREACH,
                         f"cannot tell which device offers {service!r}: asking 0x{address:08x} failed "
                         f"({exc.strerror or exc}); give the device address")
        if not offering:
            raise _error(OSError, errno.EADDRNOTAVAIL, C.WSAEADDRNOTAVAIL, f"no device in range offers {service!r}")
        return offering[0]

    # --- data ----------------------------------------------------------------------------------------
    def _check_send(self) -> tuple[int, int]:
        if self.shut_wr or self.closed:
            raise _error(BrokenPipeError, errno.EPIPE, C.WSAECONNABORTED, "the socket was shut down for writing")
        if self.error and (self.eof or not self.connected):
            raise reset(self.error)
        if self.conn is None or not self.connected:
            raise reset("the connection was closed by the peer") if self.eof else not_connected()
        return self.conn

    def send(self, data: bytes, flags: int = 0) -> int:
        _no_flags(flags)
        data = memoryview(bytes(data))
        if self.type == C.SOCK_DGRAM:
            return self.sendto(bytes(data), self.peer)
        conn = self._check_send()
        if self.raw:
            return self._send_raw(conn, bytes(data))
        if self.type == C.SOCK_SEQPACKET:
            if self.peer_max_sdu not in (0, 0xFFFFFFFF) and len(data) > self.peer_max_sdu:
                raise _error(OSError, errno.EMSGSIZE, 10040,
                             f"message of {len(data)} bytes above the peer's limit of {self.peer_max_sdu}")
            self._wait(lambda: self._room(conn) > 0 or self.eof, "sending")
            self._check_send()
            self._hand_over(conn, bytes(data))
            return len(data)
        self._wait(lambda: self._room(conn) > 0 or self.eof, "sending")
        self._check_send()
        room = self._room(conn)
        chunk = bytes(data[:room])
        self._hand_over(conn, chunk)
        return len(chunk)

    def _hand_over(self, conn, data: bytes, raw: bool = False) -> None:
        """Queue ``data`` in the stack; a connection that vanished meanwhile (link lost) is a reset."""
        def do(stack, now) -> bool:
            if raw:
                if conn not in stack.lmp.connections:
                    return False
                stack.lmp.send(conn[0], conn[1], data, now)
            else:
                if conn not in stack.connections:
                    return False
                stack.send(conn, data, now)
            return True

        if not self._call(do):
            raise reset(f"the connection broke: {self.error or 'the link was lost'}")

    def unsent(self) -> int:
        """Bytes given to send() that the peer has not yet acknowledged (TinyTP, IrLMP and IrLAP queues).

        The IrLAP part is the link's, shared by every connection on it. A progress display subtracts this
        from what it handed over, so that it shows what crossed the air, not what filled the buffers.
        """
        conn = self.conn
        if conn is None:
            return 0
        raw = self.raw
        try:
            return self._call(lambda stack, _now: stack.lmp.backlog(*conn)[1] if raw else stack.unsent(conn))
        except OSError:
            return 0

    def _room(self, conn) -> int:
        """Room in the send buffer (read without the engine lock: an estimate refreshed by events)."""
        stack = self.iface.runtime.stack
        connection = stack.connections.get(conn)
        if connection is None:
            return SEND_BUFFER
        return max(0, SEND_BUFFER - sum(len(p) for p, _m in list(connection.tx_segments)))

    def _send_raw(self, conn, data: bytes) -> int:
        room = self._call(lambda stack, now: stack.lmp.max_data())
        chunk = data[:room]
        self._wait(lambda: self._raw_room(conn) or self.eof, "sending")
        self._check_send()
        self._hand_over(conn, chunk, raw=True)
        return len(chunk)

    def _raw_room(self, conn) -> bool:
        lmp = self.iface.runtime.stack.lmp
        connection = lmp.connections.get(conn)
        return connection is None or len(connection.queue) < 8

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        _no_flags(flags)
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if self.type == C.SOCK_DGRAM:
            return self.recvfrom(bufsize)[0]
        if self.shut_rd:
            return b""
        if self.conn is None and not self.eof:
            raise not_connected()
        if self.raw:
            self._wait(lambda: bool(self.raw_rx) or self.eof, "receiving")
            with self.iface.cond:
                if not self.raw_rx:
                    return self._eof_or_error()
                data = self.raw_rx.popleft()
                if len(data) > bufsize:
                    self.raw_rx.appendleft(data[bufsize:])
                    data = data[:bufsize]
                self._update_flag()
            return data
        conn = self.conn
        self._wait(lambda: self._has_data or self.eof, "receiving")

        def take(stack, now):
            # on the engine thread, like the events that set the flag: no wake-up can be lost in between
            data = stack.recv(conn, None if self.type == C.SOCK_SEQPACKET else bufsize, now)
            with self.iface.cond:
                self._has_data = bool(stack.readable(conn)) if conn in stack.connections else False
                self._update_flag()
            return data

        data = self._call(take)
        if self.type == C.SOCK_SEQPACKET:
            data = data[:bufsize]
        if not data:
            return self._eof_or_error()
        return data

    def _eof_or_error(self) -> bytes:
        if self.error and "refused" not in self.error and getattr(self, "disconnect_reason", None) not in (
                None, P.DisconnectReason.USER_REQUEST):
            raise reset(f"the connection broke: {self.error}")
        return b""

    # --- datagrams ----------------------------------------------------------------------------------
    def sendto(self, data: bytes, *args: Any) -> int:
        """``sendto(data, address)`` or ``sendto(data, flags, address)``; IrLMP datagrams go to every peer."""
        _no_flags(args[0] if len(args) == 2 else 0)
        if len(data) > 2045:
            raise _error(OSError, errno.EMSGSIZE, 10040, "IrLMP datagrams carry at most 2045 bytes")
        self._call(lambda stack, now: stack.lmp.send_connectionless(DGRAM_PID, bytes(data), now))
        return len(data)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        _no_flags(flags)
        if self.local_lsap is None:
            self.bind(("",))
        self._wait(lambda: bool(self.dgrams) or self.error is not None, "receiving a datagram")
        with self.iface.cond:
            if not self.dgrams:
                raise reset(self.error or "interface down")
            data, pid = self.dgrams.popleft()
            self._update_flag()
        return data[:bufsize], (0, f"PID{pid}")

    # --- shutdown -------------------------------------------------------------------------------------
    def shutdown(self, how: int) -> None:
        """SHUT_WR sends what is queued, then IrLMP's Disconnect (the peer reads EOF after the last byte);
        IrLMP has no half-close, so the peer cannot send after it, but what it sent before stays readable."""
        if self.conn is None:
            raise not_connected()
        if how in (_socket.SHUT_RD, _socket.SHUT_RDWR):
            self.shut_rd = True
        if how in (_socket.SHUT_WR, _socket.SHUT_RDWR) and not self.shut_wr:
            self.shut_wr = True
            self._close_conn(keep_received=how == _socket.SHUT_WR)

    def _close_conn(self, *, keep_received: bool = False, abort: bool = False) -> None:
        conn = self.conn
        if conn is None or self.iface.closed:
            return
        try:
            if self.raw:
                self._call(lambda stack, now: stack.lmp.disconnect(
                    conn[0], conn[1], now, after_queued=not abort,
                    reason=P.DisconnectReason.UNSPECIFIED if abort else P.DisconnectReason.USER_REQUEST))
            elif abort:
                self._call(lambda stack, now: stack.abort(conn, now))
            else:
                self._call(lambda stack, now: stack.close(conn, now, keep_received=keep_received))
        except OSError:
            pass

    def _delivered(self, conn) -> bool:
        """Everything we sent on ``conn``, its Disconnect included, has been acknowledged by the link."""
        def check(stack, now) -> bool:
            # a closing connection keeps its Disconnect in IrLMP's queue until IrLAP has it: an empty backlog
            # (this connection's queue and the link's unacknowledged frames) means all of it was delivered
            return (self.raw or stack.closed(conn)) and not stack.lmp.backlog(*conn)[0]

        try:
            return self._call(check)
        except OSError:
            return True  # the interface is down: nothing more will be delivered

    def close(self) -> None:
        """A graceful close: queued data is delivered, then the peer reads EOF. The stack finishes it in the
        background (as TCP does), unless SO_LINGER is on: then close() waits up to the linger time, and a
        zero linger time aborts (queued data is discarded and the peer sees a reset)."""
        if self.closed:
            return
        linger_on, linger_time = self.linger
        abort = bool(linger_on) and linger_time == 0 and self.connected
        if abort:
            self._close_conn(abort=True)
        else:
            self._close_conn(keep_received=False)  # after shutdown(SHUT_WR) too: nobody reads any more
        if self.raw and self.conn is not None and not self.listening and self.name is None:
            lsap = self.conn[0]  # the LSAP connect() allocated: free once IrLMP's connection is gone
            try:
                self._call(lambda stack, now: stack.lmp.release_lsap(lsap))
            except OSError:
                pass
        if linger_on and linger_time > 0 and self.conn is not None and not self.iface.closed:
            deadline = time.monotonic() + linger_time
            conn = self.conn
            while time.monotonic() < deadline and not self._delivered(conn):
                with self.iface.cond:
                    self.iface.cond.wait(0.05)
        self.closed = True
        if self.conn is not None:
            self.iface.unregister(self.conn)
        if self.listening and self.local_lsap is not None:
            self.iface.unregister(("listen", self.local_lsap))
            lsap, name, raw = self.local_lsap, self.name, self.raw
            try:
                def release(stack, now):
                    stack.lmp.release_lsap(lsap)
                    stack.listening.pop(lsap, None)
                    if name and _lsap_sel(name) is None:
                        stack.lmp.ias.remove(name, C.IRLMP_LSAP_ATTRIBUTE if raw else C.TINYTP_LSAP_ATTRIBUTE)
                self._call(release)
            except (OSError, ValueError):
                pass
        if self.type == C.SOCK_DGRAM:
            self.iface.unregister(("dgram", None))
        self._rsock.close()
        self._wsock.close()

    # --- names and options ----------------------------------------------------------------------------
    def getsockname(self) -> tuple[int, str]:
        return (self.iface.address, self.name or (f"{C.LSAP_SEL_PREFIX}{self.local_lsap}" if self.local_lsap else ""))

    def getpeername(self) -> tuple[int, str]:
        if self.peer is None:
            raise not_connected()
        return self.peer

    def getsockopt(self, level: int, option: int, arg: Any = None) -> Any:
        if (level, option) == (_socket.SOL_SOCKET, _socket.SO_LINGER):
            packed = struct.pack("ii", *self.linger)
            return packed[:arg] if isinstance(arg, int) else struct.unpack("ii", packed)[0]
        name = _option_name(level, option)
        if level not in C.SOL_IRLMP_ALIASES:
            raise no_option(name)
        if name == "IRLMP_ENUMDEVICES":
            devices = self.enum_devices()
            return device_list_bytes(devices, arg) if isinstance(arg, int) else devices
        if name == "IRLMP_IAS_QUERY":
            if not isinstance(arg, IasQuery):
                raise invalid("IRLMP_IAS_QUERY takes an irsock.IasQuery(device, class_name, attribute)")
            return self.ias_query(arg)
        if name == "IRLMP_SEND_PDU_LEN":
            return self._call(lambda stack, now: stack.lmp.max_data() - (0 if self.raw else 1))
        if name == "IRLMP_MAX_SDU_SIZE":
            return self.peer_max_sdu if self.connected else self.max_sdu
        if name == "IRLMP_WAITDEVICE":
            return self.wait_device(arg if isinstance(arg, int | float) else 10000)
        if name in ("IRLMP_IRLPT_MODE", "IRLMP_EXCLUSIVE_MODE"):
            return int(self.raw)
        raise no_option(name)

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        if (level, option) == (_socket.SOL_SOCKET, _socket.SO_LINGER):
            self.linger = _linger(value)
            return
        name = _option_name(level, option)
        if level not in C.SOL_IRLMP_ALIASES:
            raise no_option(name)
        if name == "IRLMP_IAS_SET":
            if not isinstance(value, IasSet):
                raise invalid("IRLMP_IAS_SET takes an irsock.IasSet(class_name, attribute, value)")
            if isinstance(value.value, int):
                ias_value = P.IasValue.of_int(value.value)
            elif isinstance(value.value, bytes):
                ias_value = P.IasValue.of_octets(value.value)
            else:
                ias_value = P.IasValue.of_string(value.value, value.charset)
            self._call(lambda stack, now: stack.lmp.ias.set(value.class_name, value.attribute, ias_value))
            return
        if name == "IRLMP_HINTS_SET":
            hints = int.from_bytes(value, "big") if isinstance(value, bytes) else int(value)
            station = self.iface.runtime.station

            def set_hints(stack, now):
                from irlap.frames import DiscoveryInfo

                station.info = DiscoveryInfo.make(station.info.nickname, hints=hints | 0x8000 if hints > 0xFF
                                                  else hints)
            self._call(set_hints)
            return
        if name in ("IRLMP_IRLPT_MODE", "IRLMP_EXCLUSIVE_MODE"):
            if self.connected or self.local_lsap is not None:
                raise invalid(f"{name} must be set before bind() or connect()")
            self.raw = bool(value)
            return
        if name == "IRLMP_MAX_SDU_SIZE":
            if self.type != C.SOCK_SEQPACKET or self.connected:
                raise invalid("IRLMP_MAX_SDU_SIZE is set on a SOCK_SEQPACKET socket before connect/bind")
            self.max_sdu = int(value)
            return
        raise no_option(name)

    def enum_devices(self) -> list[IrdaDevice]:
        devices = self.iface.discover()
        out = []
        for device in devices:
            hints = device.hints.ljust(2, b"\0")
            charset = device.info.charset if device.info else 0
            out.append(IrdaDevice(device.address, device.nickname, hints[0], hints[1] if hints[0] & 0x80 else 0,
                                  charset))
        return out

    def ias_query(self, query: IasQuery) -> P.IasValue:
        device = _device(query.device)
        ident = self._call(lambda stack, now: stack.ias_query(device, query.class_name, query.attribute, now, 8.0))
        self._wait(lambda: ident in self.iface.ias_results or self.iface.failure is not None, "querying IAS")
        with self.iface.cond:
            result = self.iface.ias_results.pop(ident, None)
        if result is None or result.status is None:
            raise unreachable(f"0x{device:08x} did not answer the IAS query: {result.error if result else 'down'}")
        if not result.ok:
            raise refused(f"IAS of 0x{device:08x}: {result.describe()}")
        return result.values[0]

    def wait_device(self, timeout_ms: float) -> int:
        deadline = time.monotonic() + timeout_ms / 1000
        with self.iface.cond:
            self.iface.new_devices.clear()
        while time.monotonic() < deadline:
            self.iface.discover(timeout=min(3.0, max(0.1, deadline - time.monotonic())))
            with self.iface.cond:
                if self.iface.new_devices:
                    return self.iface.new_devices.popleft()
        raise timed_out("no new device appeared (IRLMP_WAITDEVICE)")


# --- the public socket --------------------------------------------------------------------------------------
class socket:  # noqa: N801 - the name of the API it mirrors
    """``irsock.socket(family, type, proto=0, interface=None)``: the interface of ``socket.socket``."""

    def __init__(self, family: int = C.AF_IRDA, type: int = C.SOCK_STREAM, proto: int = 0,  # noqa: A002
                 interface: Interface | None = None, *, provider: str | tuple[str, ...] | None = None,
                 _impl: Any = None, **provider_options: Any) -> None:
        from irsock import providers

        self.family = family
        self.type = type
        self.proto = proto
        self._impl = _impl if _impl is not None else providers.open_socket(family, type, proto, interface, provider,
                                                                         **provider_options)
        self._makefile_refs = 0

    # delegation ---------------------------------------------------------------------------------
    def fileno(self) -> int:
        return self._impl.fileno()

    def bind(self, address: Any) -> None:
        self._impl.bind(address)

    def listen(self, backlog: int = 5) -> None:
        self._impl.listen(backlog)

    def accept(self) -> tuple[socket, Any]:
        child, address = self._impl.accept()
        return socket(self.family, self.type, self.proto, _impl=child), address

    def connect(self, address: Any) -> None:
        self._impl.connect(address)

    def connect_ex(self, address: Any) -> int:
        try:
            self.connect(address)
        except OSError as exc:
            return exc.errno or errno.EIO
        return 0

    def send(self, data: bytes, flags: int = 0) -> int:
        return self._impl.send(data, flags) if flags else self._impl.send(data)

    def sendall(self, data: bytes, flags: int = 0) -> None:
        view = memoryview(bytes(data))
        while view:
            sent = self.send(view, flags)
            view = view[sent:]

    def sendto(self, data: bytes, *args: Any) -> int:
        return self._impl.sendto(data, *args)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self._impl.recv(bufsize, flags) if flags else self._impl.recv(bufsize)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        return self._impl.recvfrom(bufsize, flags) if flags else self._impl.recvfrom(bufsize)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view))
        view[: len(data)] = data
        return len(data)

    def unsent(self) -> int:
        """Bytes sent but not yet acknowledged by the peer (0 where the provider cannot tell)."""
        method = getattr(self._impl, "unsent", None)
        return method() if callable(method) else 0

    def shutdown(self, how: int) -> None:
        self._impl.shutdown(how)

    def close(self) -> None:
        self._impl.close()

    def detach(self) -> int:
        raise invalid("irsock sockets cannot be detached")

    def settimeout(self, value: float | None) -> None:
        if value is not None and value < 0:
            raise ValueError("Timeout value out of range")
        self._impl.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._impl.gettimeout()

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    def getblocking(self) -> bool:
        return self.gettimeout() != 0.0

    def getsockopt(self, level: int, option: int, arg: Any = None) -> Any:
        if arg is None:
            return self._impl.getsockopt(level, option)
        return self._impl.getsockopt(level, option, arg)

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        self._impl.setsockopt(level, option, value)

    def getsockname(self) -> Any:
        return self._impl.getsockname()

    @property
    def lsap_sel(self) -> int | None:
        """The IrLMP LSAP an AF_IRDA socket is bound to (to register it under more IAS classes); else None."""
        return getattr(self._impl, "local_lsap", None)

    def getpeername(self) -> Any:
        return self._impl.getpeername()

    def makefile(self, mode: str = "r", buffering: int | None = None, *, encoding: str | None = None,
                 errors: str | None = None, newline: str | None = None):
        """A file object over the socket, as ``socket.socket.makefile`` gives."""
        raw = _SocketIO(self, mode.replace("b", "").replace("t", ""))
        binary = "b" in mode
        if buffering is None:
            buffering = -1
        if buffering == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw
        size = io.DEFAULT_BUFFER_SIZE if buffering < 0 else buffering
        reading, writing = "r" in mode, "w" in mode
        if reading and writing:
            buffer: Any = io.BufferedRWPair(raw, raw, size)
        elif reading:
            buffer = io.BufferedReader(raw, size)
        else:
            buffer = io.BufferedWriter(raw, size)
        if binary:
            return buffer
        return io.TextIOWrapper(buffer, encoding, errors, newline)

    def __enter__(self) -> socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<irsock.socket family={self.family} type={self.type} impl={type(self._impl).__name__}>"


class _SocketIO(io.RawIOBase):
    def __init__(self, sock: socket, mode: str) -> None:
        super().__init__()
        self._sock = sock
        self._mode = mode

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)

    def write(self, data: Any) -> int:
        return self._sock.send(data)

    def readable(self) -> bool:
        return "r" in self._mode

    def writable(self) -> bool:
        return "w" in self._mode

    def fileno(self) -> int:
        return self._sock.fileno()


# the IrDA provider's factory (registered in irsock.providers)
def irda_provider(family: int, type_: int, proto: int, interface: Interface | None) -> IrdaSocketImpl:
    iface = interface or default_interface()
    return IrdaSocketImpl(iface, type_, proto)


__all__ = ["socket", "IrdaDevice", "IasSet", "IasQuery", "irda_provider", "device_list_bytes"]
