"""The two ways a connected AF_IRDA socket reaches its peer: TinyTP (the default) or raw IrLMP.

``IRLMP_IRLPT_MODE`` / ``IRLMP_EXCLUSIVE_MODE`` switch a socket to raw IrLMP (no TinyTP header, no
credit, no segmentation) before it binds or connects. Everything that differs between the two is here,
as stack operations run on the engine thread (``fn(stack, ...)``), so the socket class holds no ``if raw``.
"""

from __future__ import annotations

from typing import Any

from irsock.lmp import pdu as P
from irsock.net import constants as C

ConnId = tuple[int, int]
SEND_BUFFER = 8192  # bytes a stream socket queues in TinyTP before send() blocks
RAW_QUEUE_LIMIT = 8  # IrLMP frames a raw socket may have queued before send() waits


class TinyTpPath:
    """SOCK_STREAM and SOCK_SEQPACKET over TinyTP: credit-based flow control, SAR for SEQPACKET."""

    attribute = C.TINYTP_LSAP_ATTRIBUTE
    header = 1  # TinyTP's byte in every IrLMP data PDU

    @staticmethod
    def listen(stack: Any, lsap: int | None, max_sdu: int) -> int:
        return stack.listen(lsap, max_sdu_size=max_sdu)

    @staticmethod
    def connect(stack: Any, device: int, remote: int, now: float, max_sdu: int) -> ConnId:
        return stack.connect(device, remote, now, max_sdu_size=max_sdu)

    @staticmethod
    def send(stack: Any, conn: ConnId, data: bytes, now: float) -> bool:
        """Queue ``data``; False if the connection is gone (the link was lost)."""
        if conn not in stack.connections:
            return False
        stack.send(conn, data, now)
        return True

    @staticmethod
    def room(stack: Any, conn: ConnId) -> int:
        """Bytes send() may queue now (read from an application thread: an estimate refreshed by events)."""
        return max(0, SEND_BUFFER - stack.pending(conn))

    @staticmethod
    def unsent(stack: Any, conn: ConnId) -> int:
        return stack.unsent(conn)

    @staticmethod
    def close(stack: Any, conn: ConnId, now: float, *, abort: bool, keep_received: bool) -> None:
        if abort:
            stack.abort(conn, now)
        else:
            stack.close(conn, now, keep_received=keep_received)

    @staticmethod
    def delivered(stack: Any, conn: ConnId) -> bool:
        # a closing connection keeps its Disconnect in IrLMP's queue until IrLAP has it: an empty backlog
        # (this connection's queue and the link's unacknowledged frames) means all of it was delivered
        return stack.closed(conn) and not stack.lmp.backlog(*conn)[0]


class RawLmpPath:
    """Raw IrLMP (IrLPT, exclusive mode): one IrLMP data PDU per send, no flow control but the link's."""

    attribute = C.IRLMP_LSAP_ATTRIBUTE
    header = 0

    @staticmethod
    def listen(stack: Any, lsap: int | None, max_sdu: int) -> int:
        chosen = lsap if lsap is not None else stack.lmp.allocate_lsap()
        stack.lmp.listen(chosen, "raw")
        return chosen

    @staticmethod
    def connect(stack: Any, device: int, remote: int, now: float, max_sdu: int) -> ConnId:
        local = stack.lmp.allocate_lsap()
        try:
            stack.lmp.connect(local, device, remote, now, owner="raw")
        except Exception:
            stack.lmp.release_lsap(local)
            raise
        return (local, remote)

    @staticmethod
    def send(stack: Any, conn: ConnId, data: bytes, now: float) -> bool:
        if conn not in stack.lmp.connections:
            return False
        stack.lmp.send(conn[0], conn[1], data, now)
        return True

    @staticmethod
    def room(stack: Any, conn: ConnId) -> int:
        """Bytes send() may hand over now: one PDU while IrLMP's queue is short (an estimate, as above)."""
        return 0 if stack.lmp.queued(*conn) >= RAW_QUEUE_LIMIT else stack.lmp.max_data()

    @staticmethod
    def unsent(stack: Any, conn: ConnId) -> int:
        return stack.lmp.backlog(*conn)[1]

    @staticmethod
    def close(stack: Any, conn: ConnId, now: float, *, abort: bool, keep_received: bool) -> None:
        reason = P.DisconnectReason.UNSPECIFIED if abort else P.DisconnectReason.USER_REQUEST
        stack.lmp.disconnect(conn[0], conn[1], now, after_queued=not abort, reason=reason)

    @staticmethod
    def delivered(stack: Any, conn: ConnId) -> bool:
        return not stack.lmp.backlog(*conn)[0]


def release(stack: Any, lsap: int, service: str | None = None, attribute: str = "") -> None:
    """Free ``lsap`` for the next socket, and take ``service`` out of IAS when it was registered there."""
    stack.lmp.release_lsap(lsap)
    stack.listening.pop(lsap, None)
    if service:
        stack.lmp.ias.remove(service, attribute)


def path_of(raw: bool) -> type[TinyTpPath] | type[RawLmpPath]:
    return RawLmpPath if raw else TinyTpPath
