"""The provider catalog, in the Winsock model (WSAEnumProtocols): base providers and layered ones.

A *base provider* implements sockets of some families and types: ``IrDA`` (AF_IRDA over TinyTP and
IrLMP) and ``TCP/IP`` (the OS's own sockets). A *layered provider* (an LSP) sits over a base
provider and changes what every call does: ``Trace`` logs each call and byte counts through
``logging``; ``TLS`` runs the stdlib ``ssl`` module over any stream through ``ssl.MemoryBIO``, so
TLS works over infrared as over TCP. ``irsock.socket(..., provider="TLS", tls_context=ctx, ...)``
picks a chain; :func:`enum_protocols` lists the catalog; :func:`install_layered` adds LSPs.
"""

from __future__ import annotations

import errno
import logging
import socket as _socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from irsock import constants as C

XP1_GUARANTEED_DELIVERY = 0x0002
XP1_GUARANTEED_ORDER = 0x0004
XP1_MESSAGE_ORIENTED = 0x0008
XP1_CONNECTIONLESS = 0x0001
XP1_GRACEFUL_CLOSE = 0x0020
XP1_EXPEDITED_DATA = 0x0040
XP1_IFS_HANDLES = 0x20000

log = logging.getLogger("irsock.trace")


@dataclass(frozen=True)
class ProtocolInfo:
    """One catalog entry, after WSAPROTOCOL_INFO."""

    name: str
    family: int
    type: int
    protocol: int
    service_flags: int
    max_message_size: int  # 0: stream; 0xFFFFFFFF: unbounded messages
    chain: tuple[str, ...]  # provider names, top first; one name for a base provider

    @property
    def layered(self) -> bool:
        return len(self.chain) > 1

    def describe(self) -> str:
        flags = [name for bit, name in ((XP1_GUARANTEED_DELIVERY, "guaranteed delivery"),
                                        (XP1_GUARANTEED_ORDER, "guaranteed order"),
                                        (XP1_MESSAGE_ORIENTED, "message oriented"),
                                        (XP1_CONNECTIONLESS, "connectionless"),
                                        (XP1_GRACEFUL_CLOSE, "graceful close")) if self.service_flags & bit]
        return f"{self.name}: {' > '.join(self.chain)}; {', '.join(flags)}"


STREAM = XP1_GUARANTEED_DELIVERY | XP1_GUARANTEED_ORDER | XP1_GRACEFUL_CLOSE | XP1_IFS_HANDLES
_BASE: list[ProtocolInfo] = [
    ProtocolInfo("IrDA TinyTP stream", C.AF_IRDA, C.SOCK_STREAM, 0, STREAM, 0, ("IrDA",)),
    ProtocolInfo("IrDA TinyTP SAR", C.AF_IRDA, C.SOCK_SEQPACKET, 0, STREAM | XP1_MESSAGE_ORIENTED, 0xFFFFFFFF,
                 ("IrDA",)),
    ProtocolInfo("IrDA IrLMP connectionless", C.AF_IRDA, C.SOCK_DGRAM, 0, XP1_CONNECTIONLESS | XP1_MESSAGE_ORIENTED,
                 2045, ("IrDA",)),
    ProtocolInfo("TCP/IP", C.AF_INET, C.SOCK_STREAM, 0, STREAM | XP1_EXPEDITED_DATA, 0, ("TCP/IP",)),
    ProtocolInfo("UDP/IP", C.AF_INET, C.SOCK_DGRAM, 0, XP1_CONNECTIONLESS | XP1_MESSAGE_ORIENTED, 65507,
                 ("TCP/IP",)),
    ProtocolInfo("TCP/IPv6", C.AF_INET6, C.SOCK_STREAM, 0, STREAM | XP1_EXPEDITED_DATA, 0, ("TCP/IP",)),
    ProtocolInfo("UDP/IPv6", C.AF_INET6, C.SOCK_DGRAM, 0, XP1_CONNECTIONLESS | XP1_MESSAGE_ORIENTED, 65507,
                 ("TCP/IP",)),
]
_LAYERED: dict[str, Callable[..., Any]] = {}
_LAYERED_TYPES: dict[str, tuple[int, ...]] = {}


def enum_protocols(family: int | None = None) -> list[ProtocolInfo]:
    """The catalog: base entries, then one entry per layered provider over each base entry it fits."""
    entries = list(_BASE)
    for name, types in _LAYERED_TYPES.items():
        for base in _BASE:
            if base.type in types:
                entries.append(ProtocolInfo(f"{name} over {base.name}", base.family, base.type, base.protocol,
                                            base.service_flags, base.max_message_size, (name, *base.chain)))
    if family is not None:
        wanted = C.AF_IRDA_ALIASES if family in C.AF_IRDA_ALIASES else {family}
        entries = [e for e in entries if e.family in wanted]
    return entries


def install_layered(name: str, factory: Callable[..., Any], types: tuple[int, ...] = (C.SOCK_STREAM,)) -> None:
    """Install an LSP: ``factory(lower_impl, **options)`` returns the wrapped implementation."""
    _LAYERED[name] = factory
    _LAYERED_TYPES[name] = types


def remove_layered(name: str) -> None:
    _LAYERED.pop(name, None)
    _LAYERED_TYPES.pop(name, None)


def open_socket(family: int, type_: int, proto: int, interface: Any, provider: str | tuple[str, ...] | None,
                **options: Any) -> Any:
    """The implementation object for a new socket, through the chosen provider chain."""
    if family in C.AF_IRDA_ALIASES:
        from irsock.socket import irda_provider

        impl = irda_provider(family, type_, proto, interface)
    elif family in (C.AF_INET, C.AF_INET6):
        impl = TcpImpl(_socket.socket(family, type_, proto))
    else:
        exc = OSError(errno.EAFNOSUPPORT, f"address family {family} is not supported (AF_IRDA, AF_INET, AF_INET6)")
        exc.winerror = C.WSAEAFNOSUPPORT  # type: ignore[attr-defined]
        raise exc
    chain = (provider,) if isinstance(provider, str) else tuple(provider or ())
    for name in reversed(chain):
        factory = _LAYERED.get(name)
        if factory is None:
            raise ValueError(f"no layered provider {name!r}; installed: {', '.join(_LAYERED) or 'none'}")
        if type_ not in _LAYERED_TYPES[name]:
            raise ValueError(f"the {name} provider does not layer over socket type {type_}")
        impl = factory(impl, **options)
    return impl


class TcpImpl:
    """The base TCP/IP provider: the OS socket, with accept() returning wrapped children."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def unsent(self) -> int:
        """Bytes in the kernel's send queue not yet acknowledged (Linux SIOCOUTQ; 0 elsewhere)."""
        try:
            import fcntl
            import termios

            return struct.unpack("i", fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
        except (ImportError, OSError, AttributeError):
            return 0

    def accept(self) -> tuple[TcpImpl, Any]:
        child, address = self.sock.accept()
        return TcpImpl(child), address

    def getsockopt(self, level: int, option: int, *args: Any) -> Any:
        if level in C.SOL_IRLMP_ALIASES:
            exc = OSError(errno.ENOPROTOOPT, "SOL_IRLMP options apply to AF_IRDA sockets only")
            exc.winerror = C.WSAENOPROTOOPT  # type: ignore[attr-defined]
            raise exc
        return self.sock.getsockopt(level, option, *args)

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        if level in C.SOL_IRLMP_ALIASES:
            exc = OSError(errno.ENOPROTOOPT, "SOL_IRLMP options apply to AF_IRDA sockets only")
            exc.winerror = C.WSAENOPROTOOPT  # type: ignore[attr-defined]
            raise exc
        self.sock.setsockopt(level, option, value)


class TraceImpl:
    """LSP that logs every call and byte count (logger ``irsock.trace``) and passes it on."""

    def __init__(self, lower: Any, **_options: Any) -> None:
        self.lower = lower
        self.sent = 0
        self.received = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.lower, name)
        if not callable(attribute) or name in ("fileno", "gettimeout"):
            return attribute

        def traced(*args: Any) -> Any:
            try:
                result = attribute(*args)
            except Exception as exc:
                log.info("%s%r -> %s: %s", name, _short(args), type(exc).__name__, exc)
                raise
            log.info("%s%r -> %r", name, _short(args), _short_result(result))
            return result

        return traced

    def send(self, data: bytes, *flags: int) -> int:
        count = self.lower.send(data, *flags)
        self.sent += count
        log.info("send %d bytes (total sent %d)", count, self.sent)
        return count

    def recv(self, bufsize: int, *flags: int) -> bytes:
        data = self.lower.recv(bufsize, *flags)
        self.received += len(data)
        log.info("recv %d bytes (total received %d)", len(data), self.received)
        return data

    def accept(self) -> tuple[Any, Any]:
        child, address = self.lower.accept()
        log.info("accept -> %r", address)
        return TraceImpl(child), address


def _short(args: tuple) -> tuple:
    return tuple(f"<{len(a)} bytes>" if isinstance(a, bytes | bytearray | memoryview) else a for a in args)


def _short_result(result: Any) -> Any:
    return f"<{len(result)} bytes>" if isinstance(result, bytes | bytearray) else result


def _tls_no_flags(flags: tuple[int, ...]) -> None:
    if any(flags):
        exc = OSError(errno.EOPNOTSUPP, "send/recv flags are not supported over the TLS provider")
        exc.winerror = 10045  # type: ignore[attr-defined]
        raise exc


class TlsImpl:
    """LSP running TLS (stdlib ssl, MemoryBIO) over any stream implementation below it."""

    def __init__(self, lower: Any, *, tls_context: ssl.SSLContext, server_side: bool = False,
                 server_hostname: str | None = None, **_options: Any) -> None:
        self.lower = lower
        self.context = tls_context
        self.server_side = server_side
        self.server_hostname = server_hostname
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls: ssl.SSLObject | None = None
        self._eof = False
        self._tls_lock = threading.Lock()
        self._send_lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lower, name)

    def _start(self) -> None:
        self.tls = self.context.wrap_bio(self.incoming, self.outgoing, server_side=self.server_side,
                                         server_hostname=self.server_hostname)
        self._run(self.tls.do_handshake)

    def _attempt(self, operation: Callable[[], Any]) -> tuple[bool, Any]:
        """One try of a TLS operation: (done, result); done is False when TLS needs more bytes from the peer.

        A reader and a writer thread may share the connection (full duplex), and the SSL object is not
        safe for concurrent use: every TLS call runs under ``_tls_lock``, and what it produced is taken
        from the outgoing BIO and sent under ``_send_lock``, acquired before ``_tls_lock`` is let go, so
        that records reach the wire in the order TLS made them. No lock is held while waiting for the peer.
        """
        error: Exception | None = None
        done, result = True, None
        with self._tls_lock:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                done = False
            except Exception as exc:  # noqa: BLE001 - raised below, after the alert it may have produced is sent
                error = exc
            pending = self.outgoing.read()
            if pending:
                self._send_lock.acquire()
        if pending:
            try:
                view = memoryview(pending)
                while view:
                    view = view[self.lower.send(view):]
            finally:
                self._send_lock.release()
        if error is not None:
            raise error
        return done, result

    def _flush(self) -> None:
        self._attempt(lambda: None)

    def _run(self, operation: Callable[[], Any]) -> Any:
        while True:
            done, result = self._attempt(operation)
            if done:
                return result
            data = self.lower.recv(16384)
            with self._tls_lock:
                if data:
                    self.incoming.write(data)
                else:
                    self.incoming.write_eof()
                    self._eof = True
            if not data:
                try:
                    done, result = self._attempt(operation)
                except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                    return b""
                return result if done else b""

    def connect(self, address: Any) -> None:
        self.lower.connect(address)
        self._start()

    def accept(self) -> tuple[Any, Any]:
        child, address = self.lower.accept()
        wrapped = TlsImpl(child, tls_context=self.context, server_side=True)
        wrapped._start()
        return wrapped, address

    def send(self, data: bytes, *flags: int) -> int:
        _tls_no_flags(flags)
        if self.tls is None:
            raise OSError(errno.ENOTCONN, "TLS is not established")
        return self._run(lambda: self.tls.write(bytes(data)))

    def recv(self, bufsize: int, *flags: int) -> bytes:
        _tls_no_flags(flags)
        if self.tls is None:
            raise OSError(errno.ENOTCONN, "TLS is not established")
        try:
            return self._run(lambda: self.tls.read(bufsize))
        except ssl.SSLZeroReturnError:
            return b""

    def shutdown(self, how: int) -> None:
        if self.tls is not None and how in (_socket.SHUT_WR, _socket.SHUT_RDWR):
            try:
                self._attempt(self.tls.unwrap)
            except ssl.SSLError:
                pass
        self.lower.shutdown(how)

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self.tls.getpeercert(binary_form) if self.tls else None

    def version(self) -> str | None:
        return self.tls.version() if self.tls else None


install_layered("Trace", TraceImpl, (C.SOCK_STREAM, C.SOCK_SEQPACKET, C.SOCK_DGRAM))
install_layered("TLS", TlsImpl, (C.SOCK_STREAM,))
