"""TinyTP: credit-based flow control and segmentation/reassembly over IrLMP connections, sans-IO.

:class:`TinyTP` wraps an :class:`~irsock.lmp.stack.IrLMP` with the same driver interface. Each
connection works with credits counted in IrLMP data PDUs:

* we grant the peer as many PDUs as our receive buffer holds (``initial_credit``) and give credits
  back only as the reader consumes data (:meth:`recv`), so a slow reader stops the sender instead
  of making anyone buffer without bound; credits ride on our data PDUs, or in a dataless PDU once
  ``credit_threshold`` are owed (or at once when the peer has none left);
* we send only while the peer has granted us credit; dataless credit PDUs cost none;
* SAR: with a MaxSduSize negotiated (SOCK_SEQPACKET), an SDU is cut into segments with the M bit
  set on all but the last and reassembled on the other side; without it (0: SOCK_STREAM) data is a
  byte stream;
* a peer that sends beyond its credit, or an SDU above the size we announced, is disconnected with
  a reason; ``close`` sends queued data first, then the IrLMP Disconnect (TinyTP's orderly close);
  :meth:`TinyTP.abort` discards it and disconnects at once;
* when the peer disconnects, what we received and the reader has not read yet stays readable: the
  connection ends (``ended``) but is forgotten only once the reader has drained it or closes it, so a
  stream's tail is never lost to the Disconnect that follows it;
* a credit grant that would take the peer's credit above 127 is clamped: a peer cannot make us count
  (or send) beyond what TinyTP can express.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from irsock.errors import IrSockError
from irsock.lmp import pdu as P
from irsock.lmp.stack import IrLMP, LmpConnectConfirm, LmpConnectIndication, LmpData, LmpDisconnected

if TYPE_CHECKING:
    from irlap.station import DiscoveredDevice

OWNER = "ttp"
DEFAULT_CREDIT = 14
CREDIT_THRESHOLD = 7
LMP_QUEUE_DEPTH = 2  # PDUs a connection keeps queued in IrLMP: keeps the link shared fairly
SAR_UNBOUNDED = 0xFFFFFFFF

ConnId = tuple[int, int]  # (local LSAP, remote LSAP)


class TtpError(IrSockError):
    """Misuse of TinyTP (no such connection, SDU above the peer's limit...)."""


@dataclass
class TtpConnection:
    local: int
    remote: int
    device: int
    rx_max_sdu: int  # what we announced: 0 = no SAR (stream)
    tx_max_sdu: int = 0  # what the peer announced
    open: bool = False
    tx_credit: int = 0  # PDUs the peer lets us send
    rx_granted: int = 0  # PDUs we let the peer send and it has not used yet
    to_return: int = 0  # credits the reader freed that the peer does not know about yet
    tx_segments: deque = field(default_factory=deque)  # (payload, more)
    rx_units: deque = field(default_factory=deque)  # [data, pdus] stream chunks or whole SDUs
    rx_partial: bytearray = field(default_factory=bytearray)
    rx_partial_pdus: int = 0
    closing: bool = False
    ended: bool = False  # the IrLMP connection is gone; kept only while unread data remains
    released: bool = False  # closed by its reader: nothing more will be read
    own_lsap: bool = False  # we allocated the local LSAP for it (connect): freed when it is forgotten
    sent_pdus: int = 0
    received_bytes: int = 0

    @property
    def id(self) -> ConnId:
        return (self.local, self.remote)

    @property
    def sar(self) -> bool:
        return self.rx_max_sdu != 0


@dataclass(frozen=True)
class TtpConnected:
    conn: ConnId
    device: int
    peer_max_sdu: int
    incoming: bool


@dataclass(frozen=True)
class TtpReadable:
    conn: ConnId


@dataclass(frozen=True)
class TtpWritable:
    """PDUs of this connection went down to IrLMP: its send queue has room again (a writer may go on)."""

    conn: ConnId


@dataclass(frozen=True)
class TtpDisconnected:
    conn: ConnId
    reason: P.DisconnectReason
    detail: str = ""


class TinyTP:
    """TinyTP over IrLMP (see the module docstring)."""

    def __init__(self, lmp: IrLMP, *, initial_credit: int = DEFAULT_CREDIT,
                 credit_threshold: int = CREDIT_THRESHOLD) -> None:
        if not 1 <= initial_credit <= P.TTP_MAX_CREDIT:
            raise TtpError("the initial credit is 1..127 PDUs")
        self.lmp = lmp
        self.station = lmp.station
        self.initial_credit = initial_credit
        self.credit_threshold = credit_threshold
        self.connections: dict[ConnId, TtpConnection] = {}
        self.listening: dict[int, int] = {}  # LSAP -> our max SDU
        self._events: list = []

    # --- driver interface ----------------------------------------------------------------------
    def receive(self, frame: bytes, now: float) -> None:
        self.lmp.receive(frame, now)
        self._process(now)

    def sense(self, now: float) -> None:
        self.lmp.sense(now)

    def handle_timer(self, now: float) -> None:
        self.lmp.handle_timer(now)
        self._process(now)

    def next_deadline(self) -> float | None:
        return self.lmp.next_deadline()

    def take_output(self) -> list:
        return self.lmp.take_output()

    def take_events(self) -> list:
        events, self._events = self._events, []
        return events

    # --- the services below, for convenience -----------------------------------------------------
    def discover(self, slots: int, now: float, *, stop_when: Callable[[DiscoveredDevice], bool] | None = None) -> None:
        self.lmp.discover(slots, now, stop_when=stop_when)

    def ias_query(self, device: int, class_name: str | bytes, attribute: str | bytes, now: float,
                  timeout: float = 10.0) -> int:
        return self.lmp.ias_query(device, class_name, attribute, now, timeout)

    # --- service ---------------------------------------------------------------------------------
    def listen(self, lsap: int | None = None, *, max_sdu_size: int = 0) -> int:
        """Accept TinyTP connections on ``lsap`` (allocated if None); returns the LSAP."""
        lsap = self.lmp.allocate_lsap() if lsap is None else lsap
        self.lmp.listen(lsap, OWNER)
        self.listening[lsap] = max_sdu_size
        return lsap

    def connect(self, device: int, remote: int, now: float, *, max_sdu_size: int = 0,
                local: int | None = None) -> ConnId:
        own_lsap = local is None
        local = self.lmp.allocate_lsap() if local is None else local
        conn = TtpConnection(local, remote, device, max_sdu_size, rx_granted=self.initial_credit,
                             own_lsap=own_lsap)
        params = P.build_ttp_connect(P.TtpConnect(self.initial_credit, max_sdu_size if max_sdu_size else None))
        self.connections[conn.id] = conn
        try:
            self.lmp.connect(local, device, remote, now, user_data=params, owner=OWNER)
        except Exception:
            del self.connections[conn.id]
            self.lmp.release_lsap(local)
            raise
        return conn.id

    def send(self, conn_id: ConnId, data: bytes, now: float) -> None:
        """Queue data: one SDU on a SAR connection, bytes of the stream otherwise."""
        conn = self._conn(conn_id)
        if not conn.open or conn.closing:
            raise TtpError("the connection is not open")
        data = bytes(data)
        room = self.lmp.max_data() - 1
        if conn.tx_max_sdu and conn.tx_max_sdu != SAR_UNBOUNDED and len(data) > conn.tx_max_sdu:
            raise TtpError(f"an SDU of {len(data)} bytes exceeds the peer's limit of {conn.tx_max_sdu}")
        if conn.tx_max_sdu:
            pieces = [data[i : i + room] for i in range(0, len(data), room)] or [b""]
            for index, piece in enumerate(pieces):
                conn.tx_segments.append((piece, index < len(pieces) - 1))
        else:
            for i in range(0, len(data), room):
                conn.tx_segments.append((data[i : i + room], False))
        self._pump(conn, now)

    def pending(self, conn_id: ConnId) -> int:
        """Bytes queued for sending (waiting for credit or for the link); 0 for a connection that is gone.

        Sockets read it from their own thread, without the engine's lock, as an estimate of their room."""
        conn = self.connections.get(conn_id)
        return sum(len(p) for p, _m in list(conn.tx_segments)) if conn is not None else 0

    def unsent(self, conn_id: ConnId) -> int:
        """Bytes sent on this connection that the peer has not acknowledged: queued here (waiting for credit)
        plus IrLMP's backlog less TinyTP's 1-byte header per PDU (the IrLAP part is the link's)."""
        conn = self.connections.get(conn_id)
        queued = sum(len(p) for p, _m in conn.tx_segments) if conn is not None else 0
        pdus, data = self.lmp.backlog(*conn_id)
        return queued + max(0, data - pdus)

    def outstanding(self) -> int:
        """Work left before everything we were given is through the link: bytes waiting here for credit plus
        one per connection not yet ended, plus :meth:`IrLMP.outstanding`. 0 once all is delivered."""
        live = [conn for conn in self.connections.values() if not conn.ended]
        return sum(len(p) for conn in live for p, _m in conn.tx_segments) + len(live) + self.lmp.outstanding()

    def readable(self, conn_id: ConnId) -> int:
        conn = self._conn(conn_id)
        return sum(len(unit[0]) for unit in conn.rx_units)

    def recv(self, conn_id: ConnId, max_bytes: int | None = None, now: float = 0.0) -> bytes:
        """Stream: up to ``max_bytes``. SAR: the next whole SDU (``max_bytes`` ignored). Frees credit.

        On a connection the peer has ended, the data left is returned; once it is drained the connection
        is forgotten and ``b""`` is returned.
        """
        conn = self.connections.get(conn_id)
        if conn is None:
            return b""
        if conn.sar:
            if not conn.rx_units:
                self._forget_if_drained(conn)
                return b""
            data, pdus = conn.rx_units.popleft()
            conn.to_return += pdus
            self._pump(conn, now)
            self._forget_if_drained(conn)
            return bytes(data)
        out = bytearray()
        while conn.rx_units and (max_bytes is None or len(out) < max_bytes):
            unit = conn.rx_units[0]
            want = len(unit[0]) if max_bytes is None else max_bytes - len(out)
            out += unit[0][:want]
            if want >= len(unit[0]):
                conn.rx_units.popleft()
                conn.to_return += unit[1]
            else:
                unit[0] = unit[0][want:]
        self._pump(conn, now)
        self._forget_if_drained(conn)
        return bytes(out)

    def recv_pdu(self, conn_id: ConnId, now: float = 0.0) -> bytes | None:
        """The next unit whole: one received PDU on a stream connection, one SDU with SAR; None if none waits.

        IrCOMM needs it: each of its frames (control part, then data) travels in exactly one TinyTP PDU."""
        conn = self.connections.get(conn_id)
        if conn is None or not conn.rx_units:
            if conn is not None:
                self._forget_if_drained(conn)
            return None
        data, pdus = conn.rx_units.popleft()
        conn.to_return += pdus
        self._pump(conn, now)
        self._forget_if_drained(conn)
        return bytes(data)

    def close(self, conn_id: ConnId, now: float, *, keep_received: bool = False) -> None:
        """Orderly close: queued data first, then the IrLMP Disconnect (which IrLMP sends after the data).

        With ``keep_received`` (a socket's ``shutdown(SHUT_WR)``) what the peer sent stays readable;
        otherwise the reader is gone: what arrives meanwhile is discarded and its credit given back, so
        the peer is never left waiting for credit while we wait to finish our own sending.
        """
        conn = self.connections.get(conn_id)
        if conn is None:
            return
        if not keep_received:
            conn.released = True
            for _data, pdus in conn.rx_units:
                conn.to_return += pdus
            conn.rx_units.clear()
        if conn.ended:
            self._forget_if_drained(conn)
            return
        conn.closing = True
        self._pump(conn, now)

    def abort(self, conn_id: ConnId, now: float) -> None:
        """Abortive close: discard what is queued and disconnect at once (the peer sees a reset)."""
        conn = self.connections.get(conn_id)
        if conn is None:
            return
        self._forget(conn)
        if conn.ended:
            return
        conn.tx_segments.clear()
        self.lmp.disconnect(conn.local, conn.remote, now, reason=P.DisconnectReason.UNSPECIFIED, after_queued=False)
        self._events.append(TtpDisconnected(conn.id, P.DisconnectReason.USER_REQUEST, "aborted by us"))

    def closed(self, conn_id: ConnId) -> bool:
        """True once a connection we closed has handed everything, its Disconnect included, to IrLMP."""
        conn = self.connections.get(conn_id)
        return conn is None or conn.ended

    # --- internals -------------------------------------------------------------------------------
    def _forget(self, conn: TtpConnection) -> None:
        """Drop a connection for good, and the LSAP we allocated for it (or 111 connects would use them all)."""
        if self.connections.get(conn.id) is conn:
            del self.connections[conn.id]
            if conn.own_lsap and not any(c.local == conn.local for c in self.connections.values()):
                self.lmp.release_lsap(conn.local)

    def _forget_if_drained(self, conn: TtpConnection) -> None:
        if conn.ended and (conn.released or not conn.rx_units):
            self._forget(conn)

    def _end(self, conn: TtpConnection, reason: P.DisconnectReason, detail: str) -> None:
        """The IrLMP connection is gone: nothing more can be sent, what was received stays readable."""
        conn.open = False
        conn.ended = True
        conn.closing = False
        conn.tx_segments.clear()
        conn.rx_partial = bytearray()  # an SDU the peer never finished is not data
        self._forget_if_drained(conn)
        self._events.append(TtpDisconnected(conn.id, reason, detail))

    def _conn(self, conn_id: ConnId) -> TtpConnection:
        conn = self.connections.get(conn_id)
        if conn is None:
            raise TtpError(f"no TinyTP connection {conn_id}")
        return conn

    def _process(self, now: float) -> None:
        for event in self.lmp.take_events():
            match event:
                case LmpConnectIndication(owner=owner) if owner == OWNER:
                    self._on_indication(event, now)
                case LmpConnectConfirm(owner=owner) if owner == OWNER:
                    self._on_confirm(event, now)
                case LmpData(owner=owner) if owner == OWNER:
                    self._on_data(event, now)
                case LmpDisconnected(owner=owner) if owner == OWNER:
                    conn = self.connections.get((event.local, event.remote))
                    if conn is not None and not conn.ended:
                        self._end(conn, event.reason, event.detail)
                case _:
                    self._events.append(event)
        for conn in list(self.connections.values()):
            self._pump(conn, now)

    def _on_indication(self, event: LmpConnectIndication, now: float) -> None:
        try:
            params = P.parse_ttp_connect(event.user_data)
        except P.PduError as exc:
            self.lmp.disconnect(event.local, event.remote, now, reason=P.DisconnectReason.UNSPECIFIED)
            self._events.append(TtpDisconnected((event.local, event.remote), P.DisconnectReason.UNSPECIFIED,
                                                f"bad TinyTP connect parameters: {exc}"))
            return
        old = self.connections.get((event.local, event.remote))
        if old is not None:
            # the peer reuses the LSAP pair of a connection whose data our reader has not drained yet:
            # refuse rather than mix two connections' bytes
            self.lmp.disconnect(event.local, event.remote, now, reason=P.DisconnectReason.HALF_OPEN)
            return
        our_sdu = self.listening.get(event.local, 0)
        conn = TtpConnection(event.local, event.remote, event.device, our_sdu, params.max_sdu_size or 0,
                             open=True, tx_credit=params.credit, rx_granted=self.initial_credit)
        self.connections[conn.id] = conn
        ours = P.build_ttp_connect(P.TtpConnect(self.initial_credit, our_sdu if our_sdu else None))
        self.lmp.confirm(event.local, event.remote, now, user_data=ours)
        self._events.append(TtpConnected(conn.id, conn.device, conn.tx_max_sdu, incoming=True))

    def _on_confirm(self, event: LmpConnectConfirm, now: float) -> None:
        conn = self.connections.get((event.local, event.remote))
        if conn is None:
            return
        try:
            params = P.parse_ttp_connect(event.user_data)
        except P.PduError as exc:
            self._abort(conn, f"bad TinyTP confirm parameters: {exc}", now)
            return
        conn.open = True
        conn.tx_credit = params.credit
        conn.tx_max_sdu = params.max_sdu_size or 0
        self._events.append(TtpConnected(conn.id, conn.device, conn.tx_max_sdu, incoming=False))

    def _on_data(self, event: LmpData, now: float) -> None:
        conn = self.connections.get((event.local, event.remote))
        if conn is None:
            return
        try:
            more, credit, payload = P.parse_ttp_data(event.data)
        except P.PduError:
            self._abort(conn, "empty TinyTP PDU", now)
            return
        conn.tx_credit = min(P.TTP_MAX_CREDIT, conn.tx_credit + credit)
        if not payload and not more:
            return  # a dataless credit PDU costs no credit
        if conn.rx_granted <= 0:
            self._abort(conn, "the peer sent beyond its credit", now)
            return
        conn.rx_granted -= 1
        conn.received_bytes += len(payload)
        if conn.released:
            conn.to_return += 1  # nobody reads any more: consumed at once
            return
        if not conn.sar:
            conn.rx_units.append([bytes(payload), 1])
            self._events.append(TtpReadable(conn.id))
            return
        conn.rx_partial += payload
        conn.rx_partial_pdus += 1
        if conn.rx_max_sdu != SAR_UNBOUNDED and len(conn.rx_partial) > conn.rx_max_sdu:
            self._abort(conn, f"the peer sent an SDU above our limit of {conn.rx_max_sdu} bytes", now)
            return
        if not more:
            conn.rx_units.append([bytes(conn.rx_partial), conn.rx_partial_pdus])
            conn.rx_partial = bytearray()
            conn.rx_partial_pdus = 0
            self._events.append(TtpReadable(conn.id))

    def _abort(self, conn: TtpConnection, detail: str, now: float) -> None:
        self._forget(conn)
        self.lmp.disconnect(conn.local, conn.remote, now, reason=P.DisconnectReason.UNSPECIFIED, after_queued=False)
        self._events.append(TtpDisconnected(conn.id, P.DisconnectReason.UNSPECIFIED, detail))

    def _pump(self, conn: TtpConnection, now: float) -> None:
        if conn.ended or not conn.open or conn.id not in self.lmp.connections or not self.lmp.link_up:
            return
        # the peer may send as many PDUs as our buffer has room for: grant what the reader freed
        queued = len(conn.tx_segments)
        while conn.tx_segments and conn.tx_credit > 0 and self.lmp.queued(conn.local, conn.remote) < LMP_QUEUE_DEPTH:
            payload, more = conn.tx_segments.popleft()
            give = min(conn.to_return, P.TTP_MAX_CREDIT)
            conn.to_return -= give
            conn.rx_granted += give
            conn.tx_credit -= 1
            conn.sent_pdus += 1
            self.lmp.send(conn.local, conn.remote, P.build_ttp_data(payload, give, more), now)
        if len(conn.tx_segments) < queued:
            self._events.append(TtpWritable(conn.id))
        if conn.to_return and (conn.to_return >= self.credit_threshold or conn.rx_granted == 0):
            give = min(conn.to_return, P.TTP_MAX_CREDIT)
            conn.to_return -= give
            conn.rx_granted += give
            self.lmp.send(conn.local, conn.remote, P.build_ttp_data(b"", give, False), now)
        if conn.closing and not conn.tx_segments:
            self.lmp.disconnect(conn.local, conn.remote, now)
            self._end(conn, P.DisconnectReason.USER_REQUEST, "closed by us")
