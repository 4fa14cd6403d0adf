"""The OSErrors the socket API raises: errno as on Linux, ``winerror`` as Winsock would say it.

Every failure a program can meet on an AF_IRDA socket is one of these, so code written for
``socket.socket`` (``except ConnectionRefusedError``, ``exc.errno == errno.ETIMEDOUT``) works unchanged.
"""

from __future__ import annotations

import errno

from irsock.errors import IrSockError
from irsock.net import constants as C

WSAEOPNOTSUPP = 10045
WSAESOCKTNOSUPPORT = 10044
WSAEMSGSIZE = 10040
WSAENETUNREACH = 10051


def os_error(cls: type[OSError], code: int, winerror: int, message: str) -> OSError:
    """An OSError of class ``cls`` carrying ``errno`` ``code`` and the Winsock code ``winerror``."""
    exc = cls(code, message)
    exc.winerror = winerror  # type: ignore[attr-defined]
    return exc


class NotOffered(ConnectionRefusedError):
    """IAS answered "no such class" or "no such attribute": the device does not offer the service."""


class IrSockNetDown(IrSockError, OSError):
    """No interface to use (errno ENETDOWN, WSAENETDOWN)."""

    def __init__(self, message: str) -> None:
        OSError.__init__(self, errno.ENETDOWN, message)
        self.winerror = C.WSAENETDOWN


def refused(message: str) -> OSError:
    return os_error(ConnectionRefusedError, errno.ECONNREFUSED, C.WSAECONNREFUSED, message)


def timed_out(message: str) -> OSError:
    return os_error(TimeoutError, errno.ETIMEDOUT, C.WSAETIMEDOUT, message)


def reset(message: str) -> OSError:
    return os_error(ConnectionResetError, errno.ECONNRESET, C.WSAECONNRESET, message)


def unreachable(message: str) -> OSError:
    return os_error(OSError, errno.EHOSTUNREACH, C.WSAEHOSTUNREACH, message)


def net_down(message: str) -> OSError:
    return os_error(OSError, errno.ENETDOWN, C.WSAENETDOWN, message)


def no_option(name: str) -> OSError:
    return os_error(OSError, errno.ENOPROTOOPT, C.WSAENOPROTOOPT, f"option {name} is not supported by irsock")


def would_block() -> OSError:
    return os_error(BlockingIOError, errno.EAGAIN, C.WSAEWOULDBLOCK, "the operation would block")


def not_connected() -> OSError:
    return os_error(OSError, errno.ENOTCONN, C.WSAENOTCONN, "the socket is not connected")


def invalid(message: str) -> OSError:
    return os_error(OSError, errno.EINVAL, C.WSAEINVAL, message)


def too_long(message: str) -> OSError:
    return os_error(OSError, errno.EMSGSIZE, WSAEMSGSIZE, message)


def no_flags(flags: int) -> None:
    """IrDA sockets have no MSG_PEEK/MSG_OOB/...: say so instead of ignoring the flags."""
    if flags:
        raise os_error(OSError, errno.EOPNOTSUPP, WSAEOPNOTSUPP,
                       f"flags 0x{flags:x} are not supported on AF_IRDA sockets")
