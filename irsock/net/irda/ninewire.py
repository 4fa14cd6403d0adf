"""IRLMP_9WIRE_MODE: a TinyTP socket that speaks cooked IrCOMM (what gammu and Windows' IrCOMM clients use).

Each TinyTP PDU carries one IrCOMM frame: ``clen``, control parameters, user data. The socket sends its data in
frames without control, the DTE's hello (service types, port settings, DTR and RTS) once connected; what it
receives is unframed here, on the engine thread: the control part goes to the socket's
:class:`~irsock.ircomm.IrCommChannel` (polls and the service type are answered at once), the data to the reader.
Windows documents the mode as dropping incoming control information; we keep it (the peer's lines).
"""

from __future__ import annotations

from typing import Any

from irsock.ircomm import IrCommChannel, IrCommError, frame, unframe

__all__ = ["data_room", "frame", "read"]


def data_room(stack: Any) -> int:
    """User data one frame can carry: an IrLMP data PDU less TinyTP's byte and IrCOMM's clen."""
    return max(1, stack.lmp.max_data() - 2)


def read(stack: Any, conn: tuple[int, int], channel: IrCommChannel, buffer: bytearray, bufsize: int,
         now: float) -> bytes:
    """On the engine thread: frames into ``buffer`` until it holds ``bufsize`` bytes or none waits; up to
    ``bufsize`` bytes out of it. A malformed frame is dropped whole and the connection kept."""
    while len(buffer) < bufsize and (pdu := stack.recv_pdu(conn, now)) is not None:
        try:
            control, data = unframe(pdu)
            answer = channel.on_params(control) if control else b""
        except IrCommError:
            continue
        if answer and conn in stack.connections and stack.connections[conn].open:
            stack.send(conn, frame(b"", answer), now)
        buffer += data
    out = bytes(buffer[:bufsize])
    del buffer[:bufsize]
    return out
