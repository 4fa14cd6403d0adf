"""The Winsock-style socket layer: ``irsock.socket(family, type, proto)`` for AF_IRDA and AF_INET alike.

A :class:`socket` has the interface of Python's ``socket.socket``. Its work is done by a *provider*
chosen from the catalog (:mod:`irsock.net.providers`): the base IrDA provider (TinyTP streams and
SEQPACKET, IrLMP datagrams, IrLPT/exclusive raw IrLMP), the base TCP/UDP provider (the OS's own
sockets), and layered providers stacked over a base one (trace, TLS).

The IrDA provider's sockets live in :mod:`irsock.net.irda`; this module is only the public face that
delegates to whichever implementation object the catalog made.
"""

from __future__ import annotations

import errno
import io
from typing import Any

from irsock.net import constants as C
from irsock.net import providers
from irsock.net.errors import invalid
from irsock.net.interface import Interface


# --- the public socket --------------------------------------------------------------------------------------
class socket:  # noqa: N801 - the name of the API it mirrors
    """``irsock.socket(family, type, proto=0, interface=None)``: the interface of ``socket.socket``."""

    def __init__(self, family: int = C.AF_IRDA, type: int = C.SOCK_STREAM, proto: int = 0,  # noqa: A002
                 interface: Interface | None = None, *, provider: str | tuple[str, ...] | None = None,
                 _impl: Any = None, **provider_options: Any) -> None:
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

    def set_writable_callback(self, callback: Any) -> bool:
        """For event loops: have ``callback()`` called (from the stack's thread) whenever room to send may have
        appeared or the connection ended; None removes it. True if the socket does this (AF_IRDA: its fileno() is
        a readability flag only, so a loop cannot wait for writability on it); False if it does not, and then
        fileno() is a real socket whose writability ``select`` and ``loop.add_writer`` see (AF_INET)."""
        method = getattr(self._impl, "set_writable_callback", None)
        if not callable(method):
            return False
        method(callback)
        return True

    def unsent(self) -> int:
        """Bytes sent but not yet acknowledged by the peer (0 where the provider cannot tell)."""
        method = getattr(self._impl, "unsent", None)
        return method() if callable(method) else 0

    @property
    def ircomm(self) -> Any:
        """IRLMP_9WIRE_MODE: the connection's IrCOMM control channel (the service type agreed, the peer's
        settings and lines); None for any other socket."""
        return getattr(self._impl, "ircomm", None)

    def ircomm_set(self, **changes: Any) -> None:
        """IRLMP_9WIRE_MODE: change our IrCOMM port settings or lines and tell the peer (see docs/ircomm.md)."""
        method = getattr(self._impl, "ircomm_set", None)
        if method is None:
            raise invalid("ircomm_set needs an AF_IRDA IRLMP_9WIRE_MODE socket")
        method(**changes)

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

    @property
    def peer_lsap_sel(self) -> int | None:
        """The peer's IrLMP LSAP of a connected AF_IRDA socket (getpeername names the service); else None."""
        conn = getattr(self._impl, "conn", None)
        return conn[1] if conn else None

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


__all__ = ["socket"]
