"""The stack daemon: one process owns a port and its IrDA stack, other processes share it (``irda serve``).

- :mod:`.protocol`: the line codec of the daemon's protocol (version 1, ``docs/daemon.md``), no I/O beyond reading
  one line off a socket without taking more than that line;
- :mod:`.server`: :class:`~irsock.daemon.server.StackDaemon`, the daemon itself: a Unix socket, a session per
  client process, in-process irsock sockets behind each client connection;
- :mod:`.client`: what ``irsock.attach("unix:PATH")`` returns: an interface whose sockets live in the daemon
  (their ``fileno()`` is a real Unix socket once connected);
- :mod:`.native`: the ``LD_PRELOAD`` library that gives unmodified C programs ``AF_IRDA`` (``irda run``).

The package sits above :mod:`irsock.net` (the daemon makes sockets on an interface and serves them; the client is an
interface for the socket layer); nothing below it imports it (``irsock.attach`` looks for a daemon first).
"""

from __future__ import annotations

import os
import re
import socket as _socket
from pathlib import Path

BUILTIN_NAME = "builtin"


def socket_name(port: str | None) -> str:
    """The file name part for ``port``: ``/dev/ttyUSB0`` -> ``dev-ttyUSB0``, the built-in emulator -> ``builtin``.

    The query of an ``irsim://`` URL (devices, pace...) is left out: it sets up a medium, it does not name one.
    """
    if not port:
        return BUILTIN_NAME
    base = port.split("?", 1)[0] if port.startswith("irsim://") else port
    if base == "irsim://builtin":
        return BUILTIN_NAME
    return re.sub(r"[^A-Za-z0-9._-]", "-", base).strip("-") or "port"


def socket_dir() -> Path:
    """``$XDG_RUNTIME_DIR/irsock``, else ``/tmp/irsock-UID`` (a directory only this user can enter)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "irsock"
    return Path("/tmp") / f"irsock-{os.getuid()}"


def default_socket_path(port: str | None) -> Path:
    """Where the daemon for ``port`` listens unless told otherwise (None: the built-in emulator)."""
    return socket_dir() / f"{socket_name(port)}.sock"


def live_socket(path: str | os.PathLike) -> bool:
    """A daemon answers at ``path`` (a stale socket file, left by a daemon that was killed, does not)."""
    if not os.path.exists(path):
        return False
    probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(os.fspath(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


__all__ = ["BUILTIN_NAME", "default_socket_path", "live_socket", "socket_dir", "socket_name"]
