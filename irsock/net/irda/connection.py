"""Connected AF_IRDA sockets: SOCK_STREAM and SOCK_SEQPACKET over TinyTP, or raw IrLMP (IrLPT, exclusive).

What differs between TinyTP and raw IrLMP is in :mod:`irsock.net.irda.paths`; finding the peer's LSAP
in :mod:`irsock.net.irda.resolve`. A listening socket's ``accept`` returns a new one of this class.
"""

from __future__ import annotations

import errno
import socket as _socket
import time
from collections import deque
from typing import Any

from irsock.ircomm import IrCommChannel
from irsock.lmp import pdu as P
from irsock.lmp.stack import LmpConnectIndication, LmpData, LmpError
from irsock.net import constants as C
from irsock.net.errors import (
    WSAEMSGSIZE,
    invalid,
    no_flags,
    not_connected,
    os_error,
    refused,
    reset,
    timed_out,
)
from irsock.net.irda import ninewire
from irsock.net.irda.endpoint import IrdaEndpoint
from irsock.net.irda.paths import path_of, release
from irsock.net.irda.resolve import auto_device, resolve
from irsock.net.values import bound_service, device_address, lsap_sel
from irsock.ttp import TtpConnected, TtpReadable


class IrdaConnection(IrdaEndpoint):
    """A connection-oriented AF_IRDA socket: bind/listen/accept, connect, send/recv, shutdown, close."""

    def __init__(self, iface: Any, type_: int, proto: int) -> None:
        super().__init__(iface, type_, proto)
        self.pending: deque = deque()  # incoming connections not yet accepted: (conn, device)
        self.raw_rx: deque = deque()  # raw IrLMP data not yet read
        self.has_data = False  # TinyTP holds data for us (set by events, cleared by recv)
        self.shut_rd = False
        self.shut_wr = False
        self.ircomm: IrCommChannel | None = None  # IRLMP_9WIRE_MODE: cooked IrCOMM's control channel
        self.ircomm_rx = bytearray()  # IrCOMM user data taken from a frame and not yet read
        self.bound = False  # bind() took an LSAP (and an IAS entry) that close() gives back

    @property
    def path(self):
        return path_of(self.raw)

    def ready(self) -> bool:
        return bool(self.pending or self.raw_rx or self.has_data or self.ircomm_rx) or super().ready()

    def on_data_event(self, event: Any) -> None:
        match event:
            case TtpConnected(incoming=True) | LmpConnectIndication():
                conn = event.conn if isinstance(event, TtpConnected) else (event.local, event.remote)
                self.pending.append((conn, event.device))
            case TtpReadable():
                self.has_data = True
            case LmpData():
                self.raw_rx.append(event.data)

    # --- naming ------------------------------------------------------------------------------------------
    def bind(self, address: Any) -> None:
        if self.local_lsap is not None:
            raise invalid("the socket is already bound")
        service = bound_service(address)
        if len(service.encode()) > 60:
            raise invalid("service names are at most 60 bytes")
        lsap, path, max_sdu = lsap_sel(service), self.path, self.max_sdu

        def do(stack, now):
            # one socket per LSAP, and per IAS class and attribute: a second one would never see its connections
            if lsap is not None and lsap in stack.lmp.listeners:
                raise LmpError(f"LSAP-SEL{lsap} is bound by another socket")
            if lsap is None and service and stack.lmp.ias.get(service.encode(), path.attribute.encode())[0] == \
                    P.IAS_SUCCESS:
                raise LmpError(f"{service!r} is registered in IAS by another socket")
            chosen = path.listen(stack, lsap, max_sdu)
            if lsap is None and service:  # an empty name: any free LSAP, no IAS entry (Linux, OpenOBEX's servers)
                path.register(stack, service, chosen)
            return chosen

        try:
            self.local_lsap = self._call(do)
        except OSError as exc:
            raise os_error(OSError, errno.EADDRINUSE, C.WSAEADDRINUSE, f"cannot bind {service!r}: {exc}") from None
        self.name = service
        self.bound = True

    def listen(self, backlog: int = 5) -> None:
        if self.local_lsap is None:
            raise invalid("bind the socket to a service name before listen()")
        self.listening = True
        self.iface.register(("listen", self.local_lsap), self)

    def accept(self) -> tuple[IrdaConnection, tuple[int, str]]:
        if not self.listening:
            raise invalid("accept() needs listen() first")
        self._wait(lambda: bool(self.pending) or self.error is not None, "waiting for a connection")
        with self.iface.cond:
            if not self.pending:
                raise reset(self.error or "the interface went down")
            conn, device = self.pending.popleft()
            child = self._child(conn, device)
            self._update_flag()
        if self.raw:
            self._call(lambda stack, now: stack.lmp.confirm(conn[0], conn[1], now))
        else:
            self._call(lambda stack, now: child._settle(stack))
        return child, child.peer

    def _child(self, conn: tuple[int, int], device: int) -> IrdaConnection:
        """The socket accept() returns for ``conn``, registered so that its events reach it."""
        child = IrdaConnection(self.iface, self.type, self.proto)
        child.raw, child.timeout, child.name = self.raw, self.timeout, self.name
        if self.ircomm is not None:  # we answer: the DCE
            child.ircomm = IrCommChannel(dte=False, services=self.ircomm.services)
        child.conn, child.local_lsap, child.connected = conn, conn[0], True
        child.peer = (device, f"{C.LSAP_SEL_PREFIX}{conn[1]}")
        self.iface.register(conn, child)
        return child

    def _settle(self, stack: Any) -> None:
        """On the engine thread: what happened before this accepted socket was registered (data, the end)."""
        connection = stack.connections.get(self.conn)
        with self.iface.cond:
            self.peer_max_sdu = connection.tx_max_sdu if connection is not None else 0
            self.has_data = bool(stack.readable(self.conn)) if connection is not None else False
            if connection is None or connection.ended:
                self.eof, self.connected = True, False
            self._update_flag()

    # --- connecting --------------------------------------------------------------------------------------
    def connect(self, address: Any) -> None:
        if self.connected:
            raise os_error(OSError, errno.EISCONN, C.WSAEISCONN, "the socket is already connected")
        if not isinstance(address, tuple) or len(address) != 2:
            raise invalid("AF_IRDA addresses are (device_address, 'ServiceName' or 'LSAP-SELn')")
        device, service = device_address(address[0]), str(address[1])
        if device in (0, 0xFFFFFFFF):
            device, remote = auto_device(self, service)
        else:
            remote = resolve(self, device, service)
        path, max_sdu = self.path, self.max_sdu
        with self.iface.cond:
            self.error = None
            self.eof = False

        def start(stack, now):
            conn = path.connect(stack, device, remote, now, max_sdu)
            # registered on the engine thread, in the same turn: the peer's confirm may be the very next
            # frame, and an event for a connection nobody registered yet would be dropped
            self.iface.register(conn, self)
            return conn

        conn = self._call(start)
        self.conn = conn
        self.local_lsap = conn[0]
        try:
            self._wait(lambda: self.connected or self.error is not None or self.eof,
                       f"connecting to 0x{device:08x} {service!r}")
        except TimeoutError:
            self._call(lambda stack, now: stack.lmp.disconnect(conn[0], conn[1], now))
            raise
        if not self.connected:
            message = f"connection to 0x{device:08x} {service!r}: {self.error or 'refused'}"
            if self.disconnect_reason in (P.DisconnectReason.LAP_CONNECT_FAILED,
                                          P.DisconnectReason.CLIENT_NOT_RESPONDING):
                raise timed_out(message + " (is the device in range?)")
            raise refused(message)
        self.peer = (device, service)
        if self.ircomm is not None:  # the DTE speaks first: the service types it takes, its settings and lines
            hello = ninewire.frame(b"", self.ircomm.hello())
            self._call(lambda stack, now: path.send(stack, conn, hello, now))

    # --- data --------------------------------------------------------------------------------------------
    def _check_send(self) -> tuple[int, int]:
        if self.shut_wr or self.closed:
            raise os_error(BrokenPipeError, errno.EPIPE, C.WSAECONNABORTED, "the socket was shut down for writing")
        if self.error and (self.eof or not self.connected):
            raise reset(self.error)
        if self.conn is None or not self.connected:
            raise reset("the connection was closed by the peer") if self.eof else not_connected()
        return self.conn

    def _room(self, conn: tuple[int, int]) -> int:
        path = self.path
        return self.iface.peek(lambda stack: path.room(stack, conn))

    def send(self, data: bytes, flags: int = 0) -> int:
        """Queue what fits (all of it for SEQPACKET, one IrLMP PDU for raw IrLMP); waits for room."""
        no_flags(flags)
        data = bytes(data)
        conn = self._check_send()
        if self.type == C.SOCK_SEQPACKET and not self.raw and self.peer_max_sdu not in (0, 0xFFFFFFFF) \
                and len(data) > self.peer_max_sdu:
            raise os_error(OSError, errno.EMSGSIZE, WSAEMSGSIZE,
                           f"message of {len(data)} bytes above the peer's limit of {self.peer_max_sdu}")
        self._wait(lambda: self._room(conn) > 0 or self.eof, "sending")
        self._check_send()
        chunk = data if self.type == C.SOCK_SEQPACKET and not self.raw else data[:self._room(conn)]
        path = self.path
        if self.ircomm is not None:  # one cooked frame per TinyTP PDU, without control (clen 0)
            chunk = chunk[:self.iface.peek(ninewire.data_room)]
            framed = ninewire.frame(chunk)
            if not self._call(lambda stack, now: path.send(stack, conn, framed, now)):
                raise reset(f"the connection broke: {self.error or 'the link was lost'}")
            return len(chunk)
        if not self._call(lambda stack, now: path.send(stack, conn, chunk, now)):
            raise reset(f"the connection broke: {self.error or 'the link was lost'}")
        return len(chunk)

    def ircomm_set(self, **changes: Any) -> None:
        """IRLMP_9WIRE_MODE: change our port settings (``data_rate``, ``data_format``, ``flow_control``,
        ``xon_xoff``) or lines (``dtr``/``rts`` for the DTE, ``cts``/``dsr``/``ri``/``cd`` for the DCE) and tell the
        peer in a control-only frame; nothing is sent when nothing changed."""
        channel = self.ircomm
        if channel is None:
            raise invalid("ircomm_set needs an IRLMP_9WIRE_MODE socket")
        lines = {"dtr", "rts"} if channel.dte else {"cts", "dsr", "ri", "cd"}
        if unknown := set(changes) - lines - set(vars(channel.settings)):
            raise invalid(f"no IrCOMM setting or {'DTE' if channel.dte else 'DCE'} line {sorted(unknown)[0]!r}")
        conn = self._check_send()
        path = self.path

        def apply(stack, now):  # on the engine thread, where the channel also takes the peer's parameters
            settings = {k: v for k, v in changes.items() if k not in lines}
            line_changes = {k: bool(v) for k, v in changes.items() if k in lines}
            params = channel.set_settings(**settings) if settings else b""
            if line_changes:
                params += (channel.set_dte_lines if channel.dte else channel.set_dce_lines)(**line_changes)
            return not params or path.send(stack, conn, ninewire.frame(b"", params), now)

        if not self._call(apply):
            raise reset(f"the connection broke: {self.error or 'the link was lost'}")

    def unsent(self) -> int:
        """Bytes given to send() that the peer has not yet acknowledged (TinyTP, IrLMP and IrLAP queues).

        The IrLAP part is the link's, shared by every connection on it. A progress display subtracts this
        from what it handed over, so that it shows what crossed the air, not what filled the buffers.
        """
        conn, path = self.conn, self.path
        return 0 if conn is None else self._call_quietly(lambda stack, _now: path.unsent(stack, conn), 0)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        no_flags(flags)
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if self.shut_rd:
            return b""
        if self.conn is None and not self.eof:
            raise not_connected()
        if self.ircomm is not None:
            return self._recv_ircomm(bufsize)
        return self._recv_raw(bufsize) if self.raw else self._recv_ttp(bufsize)

    def _recv_ircomm(self, bufsize: int) -> bytes:
        """User data of cooked IrCOMM frames; their control parts are applied (and answered) on the way."""
        conn, channel, buffer = self.conn, self.ircomm, self.ircomm_rx
        if bufsize == 0:
            return b""

        def take(stack, now):
            data = ninewire.read(stack, conn, channel, buffer, bufsize, now)
            with self.iface.cond:
                self.has_data = bool(stack.readable(conn)) if conn in stack.connections else False
                self._update_flag()
            return data

        while True:  # a frame may carry control only: wait on until there is data or the end
            self._wait(lambda: self.has_data or bool(buffer) or self.eof, "receiving")
            data = self._call(take)
            if data:
                return data
            if self.eof and not self.has_data and not buffer:
                return self._eof_or_error()

    def _recv_raw(self, bufsize: int) -> bytes:
        self._wait(lambda: bool(self.raw_rx) or self.eof, "receiving")
        with self.iface.cond:
            if not self.raw_rx:
                return self._eof_or_error()
            data = self.raw_rx.popleft()
            if len(data) > bufsize:
                self.raw_rx.appendleft(data[bufsize:])
                data = data[:bufsize]
            self._update_flag()
        conn, count = self.conn, len(data)  # IrLMP holds the link while we are behind: say what we took
        self._call_quietly(lambda stack, now: stack.lmp.consumed(conn[0], conn[1], count, now))
        return data

    def _recv_ttp(self, bufsize: int) -> bytes:
        conn, whole = self.conn, self.type == C.SOCK_SEQPACKET
        self._wait(lambda: self.has_data or self.eof, "receiving")

        def take(stack, now):
            # on the engine thread, like the events that set the flag: no wake-up can be lost in between
            data = stack.recv(conn, None if whole else bufsize, now)
            with self.iface.cond:
                self.has_data = bool(stack.readable(conn)) if conn in stack.connections else False
                self._update_flag()
            return data

        data = self._call(take)
        if whole:
            data = data[:bufsize]
        return data or self._eof_or_error()

    def _eof_or_error(self) -> bytes:
        if self.error and "refused" not in self.error and self.disconnect_reason not in (
                None, P.DisconnectReason.USER_REQUEST):
            raise reset(f"the connection broke: {self.error}")
        return b""

    # --- the end -----------------------------------------------------------------------------------------
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
        conn, path = self.conn, self.path
        if conn is not None and not self.iface.closed:
            self._call_quietly(lambda stack, now: path.close(stack, conn, now, abort=abort,
                                                             keep_received=keep_received))

    def _delivered(self, conn: tuple[int, int]) -> bool:
        """Everything we sent on ``conn``, its Disconnect included, has been acknowledged by the link."""
        path = self.path  # an interface that is down delivers nothing more: done
        return self._call_quietly(lambda stack, _now: path.delivered(stack, conn), True)

    def close(self) -> None:
        """A graceful close: queued data is delivered, then the peer reads EOF. The stack finishes it in the
        background (as TCP does), unless SO_LINGER is on: then close() waits up to the linger time, and a
        zero linger time aborts (queued data is discarded and the peer sees a reset)."""
        if self.closed:
            return
        linger_on, linger_time = self.linger
        # after shutdown(SHUT_WR) too: nobody reads any more
        self._close_conn(abort=bool(linger_on) and linger_time == 0 and self.connected)
        if self.raw and self.conn is not None and not self.listening and self.name is None:
            lsap = self.conn[0]  # the LSAP connect() allocated: free once IrLMP's connection is gone
            self._call_quietly(lambda stack, _now: release(stack, lsap))
        if linger_on and linger_time > 0 and self.conn is not None and not self.iface.closed:
            deadline, conn = time.monotonic() + linger_time, self.conn
            while time.monotonic() < deadline and not self._delivered(conn):
                with self.iface.cond:
                    self.iface.cond.wait(0.05)
        self.closed = True
        if self.conn is not None:
            self.iface.unregister(self.conn)
        if self.bound and self.local_lsap is not None:  # bound, listening or not: its LSAP and IAS entry go
            if self.listening:
                self.iface.unregister(("listen", self.local_lsap))
            lsap, attribute = self.local_lsap, self.path.attribute
            service = self.name if self.name and lsap_sel(self.name) is None else None
            self._call_quietly(lambda stack, _now: release(stack, lsap, service, attribute))
        self._close_endpoint()
