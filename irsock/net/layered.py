"""The layered providers (LSPs) irsock installs: Trace (every call logged) and TLS (ssl over any stream).

Each wraps the implementation object of the provider below it and is chosen with
``irsock.socket(..., provider="TLS", ...)``; :mod:`irsock.net.providers` registers them in the catalog.
``ssl`` is imported by the TLS methods that use it, not here: every irsock program imports this module, few
use TLS, and the import is 5 ms of each start (``irda send``'s time to the first byte, issue 17).
"""

from __future__ import annotations

import errno
import logging
import socket as _socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("irsock.trace")


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
        import ssl

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
        import ssl

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
        import ssl

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
        import ssl

        try:
            return self._run(lambda: self.tls.read(bufsize))
        except ssl.SSLZeroReturnError:
            return b""

    def shutdown(self, how: int) -> None:
        import ssl

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
