"""The base TCP/IP provider: the OS's own sockets behind the same interface as an IrDA socket."""

from __future__ import annotations

import errno
import socket as _socket
import struct
from typing import Any

from irsock.net import constants as C


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
