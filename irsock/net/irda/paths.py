"""The ways a connected AF_IRDA socket reaches its peer: TinyTP (the default) or raw IrLMP, multiplexed or exclusive.

``IRLMP_IRLPT_MODE`` / ``IRLMP_EXCLUSIVE_MODE`` switch a socket to raw IrLMP (no TinyTP header, no
credit, no segmentation) before it binds or connects; ``IRLMP_EXCLUSIVE_MODE`` also asks the peer for IrLMP's
exclusive access mode once connected (the connect fails if it is not granted). Everything that differs between
them is here, as stack operations run on the engine thread (``fn(stack, ...)``), so the socket class holds no
``if raw``. Registering a bound name in IAS is here too: a raw listener bound to ``IrDA:IrCOMM`` is 3-wire raw
IrCOMM and says so in the class's ``Parameters``.
"""

from __future__ import annotations

from typing import Any

from irsock import ircomm
from irsock.lmp import pdu as P
from irsock.net import constants as C

ConnId = tuple[int, int]
SEND_BUFFER = 8192  # bytes a stream socket queues in TinyTP before send() blocks
RAW_QUEUE_LIMIT = 8  # IrLMP frames a raw socket may have queued before send() waits
#: what ``IrdaEndpoint.raw`` holds: "" (TinyTP), or the option that made the socket raw IrLMP
RAW_IRLPT = "irlpt"
RAW_EXCLUSIVE = "exclusive"


class TinyTpPath:
    """SOCK_STREAM and SOCK_SEQPACKET over TinyTP: credit-based flow control, SAR for SEQPACKET."""

    attribute = C.TINYTP_LSAP_ATTRIBUTE
    header = 1  # TinyTP's byte in every IrLMP data PDU

    @staticmethod
    def listen(stack: Any, lsap: int | None, max_sdu: int) -> int:
        return stack.listen(lsap, max_sdu_size=max_sdu)

    @classmethod
    def register(cls, stack: Any, service: str, lsap: int) -> None:
        """Put the bound LSAP in IAS under the service's class."""
        stack.lmp.ias.set(service, cls.attribute, P.IasValue.of_int(lsap))

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
        """Bytes send() may queue now, in whole TinyTP PDUs (read from an application thread: an estimate
        refreshed by events).

        Whole PDUs because TinyTP cuts each send into PDUs of its own: a writer that filled the buffer and was
        let in for the 96 bytes that had drained queued a 96-byte PDU, and at 9600 bit/s, where a turn carries
        one frame, that runt took a whole turn (4 of 63 turns in a 20 kB push: 0.920 of the line instead of
        0.93). Waiting until a whole PDU fits costs a writer nothing: the link is still busy with the queue."""
        free = max(0, SEND_BUFFER - stack.pending(conn))
        unit = stack.lmp.max_data() - TinyTpPath.header
        return free - free % unit if free >= unit else 0

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

    exclusive = False  # ask for IrLMP's exclusive access mode once connected

    @staticmethod
    def listen(stack: Any, lsap: int | None, max_sdu: int) -> int:
        chosen = lsap if lsap is not None else stack.lmp.allocate_lsap()
        stack.lmp.listen(chosen, "raw")
        return chosen

    @classmethod
    def register(cls, stack: Any, service: str, lsap: int) -> None:
        """``IrDA:IrLMP:LsapSel``; under ``IrDA:IrCOMM`` also the service type 3-wire raw in ``Parameters``
        (added to what a TinyTP listener of the class offers), so that a DTE reading it knows to come raw."""
        stack.lmp.ias.set(service, cls.attribute, P.IasValue.of_int(lsap))
        if service == ircomm.IAS_CLASS:
            offered, port = _ircomm_parameters(stack)
            stack.lmp.ias.set(service, ircomm.IAS_PARAMETERS, P.IasValue.of_octets(
                ircomm.ias_parameters(offered | ircomm.SERVICE_3WIRE_RAW, port)))

    @classmethod
    def connect(cls, stack: Any, device: int, remote: int, now: float, max_sdu: int) -> ConnId:
        local = stack.lmp.allocate_lsap()
        try:
            stack.lmp.connect(local, device, remote, now, owner="raw", exclusive=cls.exclusive)
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


class ExclusiveLmpPath(RawLmpPath):
    """Raw IrLMP in exclusive mode (IRLMP_EXCLUSIVE_MODE): the link carries this connection alone, and IrLAP's
    flow control (RNR while our reader is behind) holds nobody else's data."""

    exclusive = True


def _ircomm_parameters(stack: Any) -> tuple[int, int]:
    """(service types, port type) of our IAS ``IrDA:IrCOMM`` ``Parameters``; (0, serial) without one."""
    status, entries = stack.lmp.ias.get(ircomm.IAS_CLASS.encode(), ircomm.IAS_PARAMETERS.encode())
    if status != P.IAS_SUCCESS or not entries or entries[0][1].kind != P.VALUE_OCTETS:
        return 0, ircomm.PORT_SERIAL
    try:
        return ircomm.parse_ias_parameters(entries[0][1].octets)
    except ircomm.IrCommError:
        return 0, ircomm.PORT_SERIAL


def release(stack: Any, lsap: int, service: str | None = None, attribute: str = "") -> None:
    """Free ``lsap`` for the next socket, and take ``service`` out of IAS when it was registered there (for a raw
    ``IrDA:IrCOMM`` listener also its 3-wire raw service type, the whole ``Parameters`` if nothing else is left)."""
    stack.lmp.release_lsap(lsap)
    stack.listening.pop(lsap, None)
    if not service:
        return
    stack.lmp.ias.remove(service, attribute)
    if service == ircomm.IAS_CLASS and attribute == C.IRLMP_LSAP_ATTRIBUTE:
        offered, port = _ircomm_parameters(stack)
        if offered & ~ircomm.SERVICE_3WIRE_RAW:
            stack.lmp.ias.set(service, ircomm.IAS_PARAMETERS, P.IasValue.of_octets(
                ircomm.ias_parameters(offered & ~ircomm.SERVICE_3WIRE_RAW, port)))
        else:
            stack.lmp.ias.remove(service, ircomm.IAS_PARAMETERS)


def path_of(raw: str | bool) -> type[TinyTpPath] | type[RawLmpPath]:
    """TinyTP for ``""``, raw IrLMP for IRLMP_IRLPT_MODE, raw IrLMP in exclusive mode for IRLMP_EXCLUSIVE_MODE."""
    if raw == RAW_EXCLUSIVE:
        return ExclusiveLmpPath
    return RawLmpPath if raw else TinyTpPath
