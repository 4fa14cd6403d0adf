"""The daemon's protocol, version 1 (``docs/daemon.md``): lines of space-separated fields, percent-encoding.

Both ends use these helpers: the daemon (:mod:`.server`), the Python client (:mod:`.client`); the C library
(``native/``) implements the same rules. :func:`read_line` takes exactly one line off a socket (it peeks first), so
that the bytes after an ``ok`` that switches a connection to data mode stay in the socket for whoever reads it next.
"""

from __future__ import annotations

import errno
import socket as _socket

VERSION = 1
MAX_LINE = 4096
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:~/")
_HEX = "0123456789ABCDEF"

#: socket types by their protocol name
TYPES = {"stream": _socket.SOCK_STREAM, "seqpacket": _socket.SOCK_SEQPACKET, "dgram": _socket.SOCK_DGRAM}


class ProtocolError(ValueError):
    """A line that breaks the protocol (too long, not ASCII, a bad field): answered ``err 71`` (EPROTO)."""


def quote(value: str | bytes) -> str:
    """A field that may hold anything: bytes outside ``A-Z a-z 0-9 - _ . : ~ /`` as ``%XX``; empty as ``%``."""
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if not raw:
        return "%"
    return "".join(chr(b) if b in _SAFE else f"%{_HEX[b >> 4]}{_HEX[b & 15]}" for b in raw)


def unquote_bytes(field: str) -> bytes:
    if field == "%":
        return b""
    out = bytearray()
    i = 0
    while i < len(field):
        char = field[i]
        if char == "%":
            try:
                out.append(int(field[i + 1:i + 3], 16))
            except ValueError:
                raise ProtocolError(f"bad percent escape in {field!r}") from None
            if len(field[i + 1:i + 3]) != 2:
                raise ProtocolError(f"bad percent escape in {field!r}")
            i += 3
        else:
            out.append(ord(char))
            i += 1
    return bytes(out)


def unquote(field: str) -> str:
    """A percent-encoded text field (UTF-8; undecodable bytes kept as surrogate escapes)."""
    return unquote_bytes(field).decode("utf-8", "surrogateescape")


def number(field: str) -> int:
    """A decimal or ``0x`` hexadecimal number field."""
    try:
        return int(field, 0)
    except ValueError:
        raise ProtocolError(f"{field!r} is not a number") from None


def line(*fields: object) -> bytes:
    """One message: the fields (already encoded where needed) joined by spaces, ending in ``\\n``."""
    text = " ".join(str(f) for f in fields)
    data = text.encode("ascii") + b"\n"
    if len(data) > MAX_LINE:
        raise ProtocolError(f"a message of {len(data)} bytes is over the limit of {MAX_LINE}")
    return data


def ok(*fields: object) -> bytes:
    return line("ok", *fields)


def err(code: int, text: str, linux: int | None = None) -> bytes:
    """``err ERRNO TEXT [LINUX_ERRNO]``: the last field where Linux's af_irda said something else (C programs)."""
    return line("err", code, quote(text[:1000]), *([linux] if linux is not None else []))


def split(data: bytes) -> list[str]:
    """The fields of a received line (without its ``\\n``)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("messages are ASCII (percent-encode the rest)") from None
    fields = text.rstrip("\r\n").split(" ")
    if not fields or not fields[0]:
        raise ProtocolError("an empty message")
    return fields


def error_of(fields: list[str]) -> OSError:
    """The OSError an ``err ERRNO TEXT`` answer stands for (OSError picks its subclass from the errno)."""
    try:
        code = int(fields[1])
        text = unquote(fields[2]) if len(fields) > 2 else ""
    except (IndexError, ValueError):
        return OSError(errno.EPROTO, f"a malformed error answer from the daemon: {' '.join(fields)[:100]}")
    return OSError(code, text or errno.errorcode.get(code, "error"))


def read_line(sock: _socket.socket) -> bytes | None:
    """One line from ``sock`` (with its ``\\n``), None at end of file; blocks as the socket does.

    Peeks before it takes, so nothing after the line leaves the socket. :class:`ProtocolError` for a line over
    :data:`MAX_LINE` (what was read of it is gone: the connection is not usable after that).
    """
    buffer = bytearray()
    while True:
        peeked = sock.recv(MAX_LINE, _socket.MSG_PEEK)
        if not peeked:
            return None  # the end (a last line without its newline is not a message)
        end = peeked.find(b"\n")
        take = len(peeked) if end < 0 else end + 1
        buffer += sock.recv(take)
        if len(buffer) > MAX_LINE or end < 0 and len(buffer) >= MAX_LINE:
            raise ProtocolError(f"a line over {MAX_LINE} bytes")
        if end >= 0:
            return bytes(buffer)


__all__ = ["MAX_LINE", "TYPES", "VERSION", "ProtocolError", "err", "error_of", "line", "number", "ok", "quote",
           "read_line", "split", "unquote", "unquote_bytes"]
