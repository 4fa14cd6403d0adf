"""What every AF_IRDA socket has, whatever its type: the select() flag, waiting, calling the engine, names.

A socket keeps its state on the application side and reaches the stack only through
``Interface.call`` (run on the engine thread); the interface files the stack's events here
(:meth:`IrdaEndpoint.on_event`, on the engine thread, under ``iface.cond``) and wakes the waiters.
Every socket owns a local socketpair whose read end is its ``fileno()``: a byte sits in it while data
or a connection is waiting, so ``select``, ``selectors`` and asyncio's ``add_reader`` work on it too.
"""

from __future__ import annotations

import errno
import socket as _socket
import time
from collections.abc import Callable
from typing import Any

from irsock.errors import IrSockError
from irsock.lmp import pdu as P
from irsock.lmp.stack import IasResult, LmpConnectConfirm, LmpDisconnected, LmpError
from irsock.net import constants as C
from irsock.net.errors import (
    WSAESOCKTNOSUPPORT,
    invalid,
    net_down,
    no_option,
    not_connected,
    os_error,
    timed_out,
    would_block,
)
from irsock.net.interface import Interface
from irsock.net.irda import options
from irsock.net.values import option_name
from irsock.ttp import TtpConnected, TtpDisconnected, TtpError, TtpWritable

#: The longest a blocked call sleeps before it looks again by itself. The stack wakes it on every event that
#: can change its answer (data, room to send, the end), so this only bounds the cost of a missed wake-up.
WAIT_SLICE = 0.05


class IrdaEndpoint:
    """AF_IRDA socket state shared by every type; the public methods are called by :class:`irsock.socket`."""

    def __init__(self, iface: Interface, type_: int, proto: int) -> None:
        if type_ not in (C.SOCK_STREAM, C.SOCK_SEQPACKET, C.SOCK_DGRAM):
            raise os_error(OSError, errno.ESOCKTNOSUPPORT, WSAESOCKTNOSUPPORT, f"AF_IRDA has no socket type {type_}")
        self.iface = iface
        self.type = type_
        self.proto = proto
        self.timeout: float | None = _socket.getdefaulttimeout()
        self.conn: tuple[int, int] | None = None
        self.peer: tuple[int, str] | None = None
        self.local_lsap: int | None = None
        self.name: str | None = None
        self.listening = False
        self.raw = ""  # IrLMP without TinyTP: paths.RAW_IRLPT (IRLMP_IRLPT_MODE) or RAW_EXCLUSIVE (EXCLUSIVE_MODE)
        self.hint_mask = 0  # IRLMP_HINT_MASK_SET: ENUMDEVICES keeps devices with one of these hint bits (0: all)
        self.sharp = False  # IRLMP_SHARP_MODE: a link the peer drops under an open connection is its orderly close
        self.max_sdu = 0xFFFFFFFF if type_ == C.SOCK_SEQPACKET else 0
        self.peer_max_sdu = 0
        self.connected = False
        self.eof = False
        self.error: str | None = None
        self.disconnect_reason: P.DisconnectReason | None = None
        self.closed = False
        self.linger: tuple[int, int] = (0, 0)  # SO_LINGER (l_onoff, l_linger seconds)
        self._rsock, self._wsock = _socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._flagged = False
        #: called on the engine thread when room to send may have appeared or the connection ended (see
        #: :meth:`set_writable_callback`); the fileno() flag says "readable" only
        self._writable_callback: Callable[[], None] | None = None

    # --- the readability flag for select() -----------------------------------------------------------
    def ready(self) -> bool:
        """Something for the application: data, a connection, the end. Subclasses add their queues."""
        return bool(self.eof or self.error)

    def _update_flag(self) -> None:
        ready = self.ready()
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

    def fileno(self) -> int:
        return self._rsock.fileno()

    # --- the writability callback for event loops -------------------------------------------------------
    def set_writable_callback(self, callback: Callable[[], None] | None) -> None:
        """Have ``callback()`` called whenever room to send may have appeared (TinyTP's send queue drained,
        :class:`~irsock.ttp.TtpWritable`) or the connection ended; None removes it.

        The fileno() flag is a readability flag only (a socketpair end is always writable), so an event loop
        cannot wait for writability on it: this is what it uses instead (:mod:`irsock.aio`). The callback runs on
        the engine thread under the interface's lock: it must only hand the news over (e.g.
        ``loop.call_soon_threadsafe``), never call the socket. Raw IrLMP sockets get no drain event (IrLMP says
        nothing when its queue shrinks): their callers also try again after a short while, as ``_wait`` does.
        """
        self._writable_callback = callback

    def _wake_writer(self) -> None:
        callback = self._writable_callback
        if callback is not None:
            try:
                callback()
            except Exception:  # noqa: BLE001 - the engine thread must go on whatever a user callback does
                self._writable_callback = None

    def settimeout(self, value: float | None) -> None:
        self.timeout = value

    def gettimeout(self) -> float | None:
        return self.timeout

    # --- events, on the engine thread, under iface.cond -------------------------------------------------
    def on_event(self, event: Any) -> None:
        match event:
            case TtpConnected(incoming=False):
                self.connected = True
                self.peer_max_sdu = event.peer_max_sdu
            case LmpConnectConfirm():
                self.connected = True
            case TtpWritable():
                pass  # for the writable callback, below
            case TtpDisconnected() | LmpDisconnected():
                detail = getattr(event, "detail", "")
                words = event.reason.name.lower().replace("_", " ")
                reason = event.reason
                if self.sharp and self.connected and reason == P.DisconnectReason.UNEXPECTED_LAP_DISCONNECT:
                    # Windows CE's Sharp mode: Zaurus-style devices end a connection by dropping the IrLAP link
                    # without an IrLMP Disconnect; read that as their orderly close (EOF after the data)
                    reason = P.DisconnectReason.USER_REQUEST
                if not self.connected:
                    self.error = f"refused: {words}" + (f" ({detail})" if detail else "")
                self.eof = True
                self.connected = False
                self.disconnect_reason = reason
                # an orderly close (ours or the peer's) is EOF after the data; anything else is a reset
                if reason != P.DisconnectReason.USER_REQUEST and self.error is None:
                    self.error = detail or f"the peer ended the connection: {words}"
            case _:
                self.on_data_event(event)
        self._update_flag()
        if isinstance(event, TtpWritable | TtpDisconnected | LmpDisconnected):
            self._wake_writer()  # after the state changed: room to send, or the news that there will be none

    def on_data_event(self, event: Any) -> None:
        """Events that bring something to read or accept: the subclass keeps them."""

    def on_failure(self, message: str) -> None:
        self.error = message
        self.eof = True
        self._update_flag()
        self._wake_writer()

    # --- waiting and calling the engine -----------------------------------------------------------------
    def _wait(self, ready: Callable[[], bool], what: str) -> None:
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
                cond.wait(WAIT_SLICE if remaining is None else min(remaining, WAIT_SLICE))

    def _call(self, fn: Callable[[Any, float], Any]) -> Any:
        """Run ``fn(stack, now)`` on the engine thread; the stack's complaints come back as OSErrors."""
        try:
            return self.iface.call(fn)
        except (LmpError, TtpError) as exc:
            raise invalid(str(exc)) from None
        except IrSockError as exc:
            if isinstance(exc, OSError):
                raise
            raise net_down(str(exc)) from None

    def _call_quietly(self, fn: Callable[[Any, float], Any], default: Any = None) -> Any:
        """:meth:`_call` where failure changes nothing for the caller (closing, estimates): ``default`` then."""
        try:
            return self._call(fn)
        except (OSError, ValueError):
            return default

    def ias(self, device: int, class_name: str, attribute: str, what: str) -> IasResult | None:
        """Ask ``device``'s IAS and wait for the answer; None when the interface went down first."""
        ident = self._call(lambda stack, now: stack.ias_query(device, class_name, attribute, now, 8.0))
        self._wait(lambda: ident in self.iface.ias_results or self.iface.failure is not None, what)
        with self.iface.cond:
            return self.iface.ias_results.pop(ident, None)

    # --- names and options -------------------------------------------------------------------------------
    def getsockname(self) -> tuple[int, str]:
        return (self.iface.address, self.name or (f"{C.LSAP_SEL_PREFIX}{self.local_lsap}" if self.local_lsap else ""))

    def getpeername(self) -> tuple[int, str]:
        if self.peer is None:
            raise not_connected()
        return self.peer

    def getsockopt(self, level: int, option: int, arg: Any = None) -> Any:
        if (level, option) == (_socket.SOL_SOCKET, _socket.SO_LINGER):
            return options.get_linger(self, arg)
        if level not in C.SOL_IRLMP_ALIASES:
            raise no_option(option_name(level, option))
        return options.get_irlmp(self, option_name(level, option), arg)

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        if (level, option) == (_socket.SOL_SOCKET, _socket.SO_LINGER):
            options.set_linger(self, value)
            return
        if level not in C.SOL_IRLMP_ALIASES:
            raise no_option(option_name(level, option))
        options.set_irlmp(self, option_name(level, option), value)

    def _close_endpoint(self) -> None:
        self.closed = True
        self._writable_callback = None
        self._rsock.close()
        self._wsock.close()
