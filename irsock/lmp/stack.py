"""IrLMP: many LSAP conversations over one IrLAP link, the discovery service and the IAS server/client.

:class:`IrLMP` wraps a :class:`~irlap.station.Station` and offers the same driver interface
(``receive``, ``sense``, ``handle_timer``, ``next_deadline``, ``take_output``, ``take_events``), so
the simulator and the real-time runtime drive it exactly as they drive a bare station.

* LSAP connections are keyed by (local LSAP, remote LSAP); several run at once over the one link.
  Their outgoing PDUs wait in per-connection queues and go to IrLAP round-robin, a few frames at a
  time, so connections share the link fairly and nobody queues without bound below us.
* The IrLAP connection is opened by the first LSAP connection and closed after ``idle_timeout``
  once the last one is gone.
* A Connect to an LSAP nobody listens on is answered with Disconnect "no LM-MUX client"; data for
  an unknown connection with "data on disconnected LSAP".
* Access modes: a connection may ask for exclusive mode (:meth:`IrLMP.request_access_mode`, or
  ``connect(..., exclusive=True)``, which completes only once the peer granted it). Either side grants it only
  to a connection that is alone on the link; while one holds it (or asks for it) every other connect, from
  either side and IAS included, is refused, and the link returns to multiplexed mode on request or when that
  connection ends. A request we cannot honour is answered with its status (failure, unsupported mode), never
  by closing the connection it came on; a malformed one (no mode byte) is dropped.
  Such replies wait in one bounded queue (:data:`REPLY_QUEUE_LIMIT`, one per LSAP pair and kind):
  a peer that floods us while holding us in RNR makes us drop replies (counted in :attr:`IrLMP.stats`),
  never grow. IAS requests beyond :data:`PEER_QUEUE_LIMIT` queued answers are dropped the same way.
* The link is dropped after the idle time only once IrLAP has delivered everything handed to it: the
  Disconnect of the last LSAP rides behind its data, and the link must not go down under them.
* IrLAP connects to one device at a time: a connect to another device while no LSAP uses the link (it is
  kept for the idle time, or its last LSAP is closing) drops the link at once, once its queue has drained,
  and opens one to the new device; while an LSAP is open on it, the connect is refused ("in use").
* LSAP selectors are allocated round-robin, so a connection just closed is not confused with the next.
* A connect fails with "client not responding" only when the peer leaves it unanswered for
  :data:`CONNECT_TIMEOUT` after its IrLAP acknowledged our Connect, or when the link delivered nothing of
  ours for that long: the time the Connect waits behind earlier PDUs (here or in IrLAP's queue, resent
  under bit errors) is not the peer's silence, and a link that is up loses nothing.
* LSAP 0 is the IAS server (:mod:`irsock.lmp.ias`); :meth:`ias_query` is the client.
* Connectionless data uses UI frames on LSAP 0x70 with a PID.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from irlap import station as lap
from irlap.errors import IrLAPError
from irlap.frames import DiscoveryInfo
from irsock.errors import IrSockError
from irsock.lmp import pdu as P
from irsock.lmp.ias import IasClientCall, IasDatabase, IasServerSession

LAP_IDLE_TIMEOUT = 2.0
IAS_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
LINK_SWITCH_POLL = 0.05  # while another device waits for the link, how often we look whether it has drained
LAP_QUEUE_TARGET = 4  # frames we keep queued in IrLAP (a whole window if the link's is larger); the rest waits here
REPLY_QUEUE_LIMIT = 16  # protocol replies (disconnects, confirms) waiting for the link
PEER_QUEUE_LIMIT = 8  # PDUs a peer's requests (IAS) may queue on one connection before we drop requests
#: Bytes of raw IrLMP data (owner "raw": IrLPT, exclusive mode) handed up and not yet consumed, above which the
#: link is held busy (IrLAP RNR: raw IrLMP has no flow control of its own) until the reader is down to half.
RAW_RECEIVE_LIMIT = 16384


@dataclass
class LmpStats:
    """What a misbehaving or flooding peer cost us: requests we dropped instead of queueing."""

    replies_dropped: int = 0
    ias_requests_dropped: int = 0
    raw_holds: int = 0  # times the link was held busy for a raw reader that fell behind


class LmpError(IrSockError):
    """Misuse of the IrLMP service (no such connection, LSAP in use, link to another device...)."""


class ConnState(enum.Enum):
    WAIT_LINK = "waiting for the link"
    CONNECTING = "connect sent"
    OPEN = "open"
    CLOSING = "closing"


@dataclass
class LsapConnection:
    local: int
    remote: int
    device: int
    state: ConnState
    user_data: bytes = b""
    owner: str = "user"  # "user", "ias-server", "ias-client", or a layer name like "ttp"
    started: float = 0.0
    queue: deque = field(default_factory=deque)
    close_after_queue: bool = False
    close_reason: P.DisconnectReason = P.DisconnectReason.USER_REQUEST
    # the connect watchdog (see IrLMP._connect_watch): our Connect PDU, its place in the count of PDUs handed
    # to IrLAP once it is handed over, and how many of those had left IrLAP's backlog when the timer was armed
    connect_pdu: bytes | None = None
    connect_mark: int | None = None
    connect_delivered: bool = False
    settled_at_arm: int = 0
    unread: int = 0  # raw data handed up in LmpData events that the user has not consumed yet
    # access modes: the mode we asked the peer for and await its confirm of; connect(exclusive=True) holds back
    # the LmpConnectConfirm (and the peer's user data) until the peer granted exclusive mode
    access_asked: int | None = None
    exclusive_on_confirm: bool = False
    confirm_data: bytes = b""
    notified: bool = False  # the owner was already told the connection ended

    @property
    def key(self) -> tuple[int, int]:
        return (self.local, self.remote)


# --- events ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LmpConnectIndication:
    """A peer connected to one of our listening LSAPs (already confirmed)."""

    local: int
    remote: int
    device: int
    user_data: bytes
    owner: str


@dataclass(frozen=True)
class LmpConnectConfirm:
    local: int
    remote: int
    device: int
    user_data: bytes
    owner: str


@dataclass(frozen=True)
class LmpData:
    local: int
    remote: int
    data: bytes
    owner: str


@dataclass(frozen=True)
class LmpDisconnected:
    local: int
    remote: int
    reason: P.DisconnectReason
    user_data: bytes
    owner: str
    detail: str = ""


@dataclass(frozen=True)
class LmpAccessMode:
    """The access mode of a connection changed, or our request for a change was answered.

    ``mode`` is the mode the link is in now for this connection (``P.ACCESS_EXCLUSIVE`` or
    ``P.ACCESS_MULTIPLEXED``); ``status`` the answer's (``P.ACCESS_STATUS_*``; success for a change the peer
    asked for and we granted); ``by_peer`` says who asked."""

    local: int
    remote: int
    mode: int
    status: int
    owner: str
    by_peer: bool = False
    detail: str = ""


@dataclass(frozen=True)
class ConnectionlessData:
    pid: int
    data: bytes


@dataclass(frozen=True)
class IasResult:
    """The answer to :meth:`IrLMP.ias_query`: ``status`` is an IAS return code, or None on failure."""

    query: int
    device: int
    class_name: str
    attribute: str
    status: int | None
    values: tuple[P.IasValue, ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == P.IAS_SUCCESS

    def describe(self) -> str:
        if self.status is None:
            return self.error
        return P.IAS_RETURN_WORDS.get(self.status, f"return code {self.status}")


class IrLMP:
    """IrLMP and IAS on one station (see the module docstring)."""

    def __init__(self, station: lap.Station, *, ias: IasDatabase | None = None,
                 idle_timeout: float = LAP_IDLE_TIMEOUT) -> None:
        self.station = station
        self.ias = ias or IasDatabase.for_device(station.info.nickname)
        self.idle_timeout = idle_timeout
        self.connections: dict[tuple[int, int], LsapConnection] = {}
        self.listeners: dict[int, str] = {P.LSAP_IAS: "ias-server"}
        self.hint_filter = 0
        self._events: list = []
        self._timers: dict[str, float] = {}
        self._peer: int | None = None  # device of the LAP link (or the one being connected)
        self._rr: deque[tuple[int, int]] = deque()
        self._ias_sessions: dict[tuple[int, int], IasServerSession] = {}
        self._ias_calls: dict[tuple[int, int], IasClientCall] = {}
        self._query_ids = 0
        self._used_lsaps: set[int] = set()
        self._next_lsap = P.LSAP_MIN
        self._replies: deque[tuple[tuple[int, int, int], bytes]] = deque()
        self._handed = 0  # PDUs ever handed to IrLAP's send() (we are its only user), see _settled
        self._hurry = False  # the idle link is to go as soon as it has drained (release_idle_link)
        self._closing_link = False  # we asked IrLAP to close the idle link
        self._holding = False  # the link is held busy for a raw reader that fell behind (RAW_RECEIVE_LIMIT)
        #: the LSAP pair in exclusive mode, or asking for it (every other connect is refused meanwhile)
        self.exclusive: tuple[int, int] | None = None
        self.stats = LmpStats()

    # --- driver interface ----------------------------------------------------------------------
    def receive(self, frame: bytes, now: float) -> None:
        self.station.receive(frame, now)
        self._process(now)

    def sense(self, now: float) -> None:
        self.station.sense(now)

    def handle_timer(self, now: float) -> None:
        deadline = self.station.next_deadline()
        if deadline is not None and deadline <= now:
            self.station.handle_timer(now)
        for name, when in sorted(self._timers.items(), key=lambda item: item[1]):
            if when <= now and self._timers.get(name) == when:
                del self._timers[name]
                self._fire(name, now)
        self._process(now)

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.station.next_deadline(), *self._timers.values()) if d is not None]
        return min(deadlines) if deadlines else None

    def take_output(self) -> list:
        return self.station.take_output()

    def take_events(self) -> list:
        events, self._events = self._events, []
        return events

    # --- LSAPs -------------------------------------------------------------------------------------
    def allocate_lsap(self) -> int:
        """A free LSAP selector (0x01-0x6F), the next one after the last allocated (round-robin)."""
        busy = self._used_lsaps | set(self.listeners) | {c.local for c in self.connections.values()}
        span = P.LSAP_MAX - P.LSAP_MIN + 1
        for step in range(span):
            lsap = P.LSAP_MIN + (self._next_lsap - P.LSAP_MIN + step) % span
            if lsap not in busy:
                self._used_lsaps.add(lsap)
                self._next_lsap = P.LSAP_MIN + (lsap - P.LSAP_MIN + 1) % span
                return lsap
        raise LmpError("no free LSAP selector (all 111 are in use)")

    def release_lsap(self, lsap: int) -> None:
        self._used_lsaps.discard(lsap)
        self.listeners.pop(lsap, None) if lsap != P.LSAP_IAS else None

    def listen(self, lsap: int, owner: str = "user") -> None:
        """Accept connections to ``lsap`` (confirmed at once; the owner gets LmpConnectIndication)."""
        if not P.LSAP_MIN <= lsap <= P.LSAP_MAX:
            raise LmpError(f"LSAP 0x{lsap:02x} cannot be listened on (0x01-0x6F)")
        if lsap in self.listeners and self.listeners[lsap] != owner:
            raise LmpError(f"LSAP 0x{lsap:02x} is already in use")
        self.listeners[lsap] = owner
        self._used_lsaps.add(lsap)

    @property
    def lap_queue_target(self) -> int:
        """Frames IrLMP keeps queued in IrLAP: :data:`LAP_QUEUE_TARGET`, or the link's window when that is larger.

        IrLAP sends at its turn only what is queued then, so a queue shorter than the window cuts every turn
        short: at 4 Mbit/s (window 7) turns of 4 frames cost 3-4 % of the line in turnarounds (docs/performance.md).
        """
        params = self.station.params
        return max(LAP_QUEUE_TARGET, params.tx_window if params is not None else 0)

    @property
    def link_up(self) -> bool:
        return self.station.state in (lap.State.NRM_PRIMARY, lap.State.NRM_SECONDARY)

    @property
    def peer(self) -> int | None:
        return self._peer

    def connect(self, local: int, device: int, remote: int, now: float, *, user_data: bytes = b"",
                owner: str = "user", exclusive: bool = False) -> LsapConnection:
        """Connect our LSAP ``local`` to ``remote`` on ``device``; opens the IrLAP link if needed.

        ``exclusive``: once the peer confirmed, ask it for exclusive mode; the owner gets LmpConnectConfirm only
        when it was granted, else LmpDisconnected (the connection is closed: it was wanted exclusive or not at
        all, as Windows' IRLMP_EXCLUSIVE_MODE sockets do)."""
        if not 0 <= remote <= P.LSAP_MAX:
            raise LmpError(f"remote LSAP 0x{remote:02x} is not a connectable LSAP (0x00-0x6F)")
        if (local, remote) in self.connections:
            raise LmpError(f"LSAP 0x{local:02x} is already connected to 0x{remote:02x}")
        if self.exclusive is not None:
            raise LmpError(f"the link is in exclusive mode for LSAP 0x{self.exclusive[0]:02x}->"
                           f"0x{self.exclusive[1]:02x}: no other connection until it ends or returns to multiplexed")
        if exclusive and (others := self._others(None)):
            raise LmpError(f"exclusive mode needs the link to itself: {others} other connection(s) use it")
        switch = self._peer is not None and self._peer != device and bool(self.connections or self.station.connected)
        if switch and any(not c.close_after_queue and c.device != device for c in self.connections.values()):
            raise LmpError(f"the link is in use by device 0x{self._peer:08x}; IrLAP connects to one device at a time")
        if len(user_data) > 60:
            raise LmpError("IrLMP connect user data is limited to 60 bytes")
        conn = LsapConnection(local, remote, device, ConnState.WAIT_LINK, bytes(user_data), owner, now)
        conn.exclusive_on_confirm = exclusive
        self.connections[conn.key] = conn
        self._used_lsaps.add(local)
        self._timers[f"connect:{local}:{remote}"] = now + CONNECT_TIMEOUT
        conn.settled_at_arm = self._settled
        self._timers.pop("idle", None)
        if self.link_up and self.station.peer == device and not self.station.closing:
            self._send_connect(conn, now)
        elif not self.station.connected and self.station.state in (lap.State.NDM, lap.State.REPLY):
            self._peer = device
            try:
                self.station.connect(device, now)
            except IrLAPError as exc:
                del self.connections[conn.key]
                raise LmpError(str(exc)) from None
        elif switch:
            # no LSAP uses the link (it is kept for the idle time, or its last one is closing): drop it now, and
            # the Disconnected event opens a link to ``device`` for this connection (see _reopen_link)
            self.release_idle_link(now)
        return conn

    def _link_idle(self) -> bool:
        """No LSAP connection uses the link: any left are waiting for a link to another device."""
        return all(c.state == ConnState.WAIT_LINK and c.device != self._peer for c in self.connections.values())

    def release_idle_link(self, now: float) -> bool:
        """Drop the link now, not after the idle time, if no LSAP connection uses it (once what is queued on
        it is through). False if an LSAP connection uses it; True if there is no link or it is going down."""
        if not self.station.connected:
            return True
        if not self._link_idle():
            return False
        self._hurry = True
        if not self.station.closing:
            self._timers["idle"] = now
        return True

    def send(self, local: int, remote: int, data: bytes, now: float) -> None:
        """Queue one IrLMP data PDU's payload (at most :meth:`max_data` bytes)."""
        conn = self._conn(local, remote)
        if conn.state not in (ConnState.OPEN,) or conn.close_after_queue:
            raise LmpError(f"connection 0x{local:02x}->0x{remote:02x} is {conn.state.value}")
        if len(data) > self.max_data():
            raise LmpError(f"{len(data)} bytes exceed the largest IrLMP payload of {self.max_data()} bytes")
        conn.queue.append(P.build_lmp(P.LmpData(remote, local, bytes(data))))
        self._pump(now)

    def max_data(self) -> int:
        """Largest payload of one data PDU (the IrLAP data size minus the 2-byte IrLMP header)."""
        return self.station.max_send_size - 2 if self.station.params else 62

    def queued(self, local: int, remote: int) -> int:
        """PDUs waiting in this connection's queue; 0 for a connection that is gone (safe to read as an estimate
        from another thread)."""
        conn = self.connections.get((local, remote))
        return len(conn.queue) if conn is not None else 0

    def backlog(self, local: int, remote: int) -> tuple[int, int]:
        """(PDUs, bytes of user data) sent on this connection that the peer has not acknowledged yet.

        This connection's queue here plus IrLAP's backlog, which is the link's, shared by every connection
        on it; the 2-byte IrLMP header of each PDU is not counted.
        """
        conn = self.connections.get((local, remote))
        pdus = tuple(conn.queue) if conn is not None else ()
        link_frames, link_bytes = self.station.backlog
        count = len(pdus) + link_frames
        return count, max(0, sum(len(pdu) for pdu in pdus) + link_bytes - 2 * count)

    def outstanding(self) -> int:
        """Work left before the link is idle: bytes of the PDUs queued here (replies included) and of the
        frames IrLAP has not had acknowledged, plus one per LSAP connection (its Disconnect is yet to go).
        0 once everything handed to IrLMP is through; it shrinks as the link moves."""
        _frames, link_bytes = self.station.backlog
        queued = sum(len(pdu) for conn in self.connections.values() for pdu in conn.queue)
        return queued + sum(len(pdu) for _key, pdu in self._replies) + link_bytes + len(self.connections)

    def disconnect(self, local: int, remote: int, now: float, *,
                   reason: P.DisconnectReason = P.DisconnectReason.USER_REQUEST, user_data: bytes = b"",
                   after_queued: bool = True) -> None:
        """Close a connection; by default after the data already queued has been handed to IrLAP."""
        conn = self.connections.get((local, remote))
        if conn is None:
            return
        if conn.state in (ConnState.WAIT_LINK,):
            self._drop(conn, reason, now, notify=False)
            return
        control = P.build_lmp(P.LmpControl(remote, local, P.OP_DISCONNECT, int(reason), bytes(user_data)))
        if not after_queued:
            conn.queue.clear()
        conn.queue.append(control)
        conn.close_after_queue = True
        conn.close_reason = reason
        self._pump(now)

    def send_connectionless(self, pid: int, data: bytes, now: float) -> None:
        self.station.send_ui(P.build_connectionless(P.LmpConnectionless(pid, bytes(data))), now)

    # --- discovery -----------------------------------------------------------------------------
    def discover(self, slots: int, now: float, *,
                 stop_when: Callable[[lap.DiscoveredDevice], bool] | None = None) -> None:
        """A discovery round (``stop_when``: end it once a device it accepts answered, see ``Station.discover``)."""
        self.station.discover(slots, now, stop_when=stop_when)

    def discovery_log(self, now: float) -> list[lap.DiscoveredDevice]:
        """The device log, filtered by :attr:`hint_filter` (0 = no filtering)."""
        devices = self.station.discovery_log(now)
        if not self.hint_filter:
            return devices
        mask = self.hint_filter.to_bytes(2, "big")
        return [d for d in devices if any(h & m & 0x7F for h, m in zip(d.hints.ljust(2, b"\0"), mask, strict=False))]

    # --- IAS client --------------------------------------------------------------------------------
    def ias_query(self, device: int, class_name: str | bytes, attribute: str | bytes, now: float,
                  timeout: float = IAS_TIMEOUT) -> int:
        """Ask ``device``'s IAS; the answer comes as an :class:`IasResult` event with the returned id."""
        cls = class_name.encode("utf-8") if isinstance(class_name, str) else bytes(class_name)
        attr = attribute.encode("utf-8") if isinstance(attribute, str) else bytes(attribute)
        request = P.build_ias_request(cls, attr)
        self._query_ids += 1
        local = self.allocate_lsap()
        try:
            self.connect(local, device, P.LSAP_IAS, now, owner="ias-client")
        except LmpError:
            self.release_lsap(local)
            raise
        self._ias_calls[(local, P.LSAP_IAS)] = IasClientCall(self._query_ids, device, cls, attr, request)
        self._timers[f"ias:{local}"] = now + timeout
        return self._query_ids

    # --- internals -----------------------------------------------------------------------------------
    def _conn(self, local: int, remote: int) -> LsapConnection:
        conn = self.connections.get((local, remote))
        if conn is None:
            raise LmpError(f"no connection 0x{local:02x}->0x{remote:02x}")
        return conn

    def _send_connect(self, conn: LsapConnection, now: float) -> None:
        conn.state = ConnState.CONNECTING
        conn.connect_pdu = P.build_lmp(P.LmpControl(conn.remote, conn.local, P.OP_CONNECT, 0, conn.user_data))
        conn.queue.appendleft(conn.connect_pdu)
        self._pump(now)

    @property
    def _settled(self) -> int:
        """PDUs handed to IrLAP that have left its backlog: acknowledged by the peer, or discarded with the
        link (a reset or a disconnect, which end every LSAP connection anyway). Never decreases."""
        return self._handed - self.station.backlog[0]

    def _connect_watch(self, now: float) -> None:
        """The peer gets :data:`CONNECT_TIMEOUT` to answer from the moment its IrLAP acknowledged our Connect.

        The Connect may wait behind earlier PDUs, in our queues and in IrLAP's, and on a slow link (bit errors,
        a passer-by's discovery colliding with our frames) that can take longer than the timeout itself;
        IrLAP loses nothing while the link is up, so until the Connect is through the timer only watches that
        the link moves (see :meth:`_fire`), and once it is through the timer starts again."""
        settled = None
        for conn in self.connections.values():
            if conn.state != ConnState.CONNECTING or conn.connect_mark is None or conn.connect_delivered:
                continue
            settled = self._settled if settled is None else settled
            if settled >= conn.connect_mark:
                conn.connect_delivered = True
                name = f"connect:{conn.local}:{conn.remote}"
                if name in self._timers:
                    self._timers[name] = now + CONNECT_TIMEOUT

    def consumed(self, local: int, remote: int, nbytes: int, now: float) -> None:
        """The user read ``nbytes`` of a raw connection's data: the link may take more once it is down to half."""
        conn = self.connections.get((local, remote))
        if conn is not None:
            conn.unread = max(0, conn.unread - nbytes)
        self._pump(now)

    def _hold_for_raw_readers(self, now: float) -> None:
        """Hold the link (RNR) while a raw reader is behind by more than RAW_RECEIVE_LIMIT; release it when every
        one is down to half (or gone). Frames already in the peer's window still arrive: the bound is the limit
        plus one window."""
        unread = [c.unread for c in self.connections.values() if c.owner == "raw"]
        if not self._holding and any(n > RAW_RECEIVE_LIMIT for n in unread):
            self._holding = True
            self.stats.raw_holds += 1
            self.station.set_local_busy(True, now)
        elif self._holding and all(n <= RAW_RECEIVE_LIMIT // 2 for n in unread):
            self._holding = False
            self.station.set_local_busy(False, now)

    def _pump(self, now: float) -> None:
        """Move queued PDUs into IrLAP round-robin, keeping only a few frames queued there."""
        self._hold_for_raw_readers(now)
        if not self.link_up:
            self._replies.clear()  # replies belong to the link they answer
            return
        target = self.lap_queue_target
        while self._replies and self.station.tx_queue_len < target:
            self.station.send(self._replies.popleft()[1], now)
            self._handed += 1
        keys = [k for k, c in self.connections.items() if c.queue]
        for key in keys:
            if key not in self._rr:
                self._rr.append(key)
        while self._rr and self.station.tx_queue_len < target:
            key = self._rr.popleft()
            conn = self.connections.get(key)
            if conn is None or not conn.queue:
                continue
            pdu = conn.queue.popleft()
            self.station.send(pdu, now)
            self._handed += 1
            if pdu is conn.connect_pdu:
                conn.connect_mark = self._handed
            if conn.queue:
                self._rr.append(key)
            elif conn.close_after_queue:
                self._drop(conn, conn.close_reason, now, notify=True, local_close=True)

    def _process(self, now: float) -> None:
        for event in self.station.take_events():
            self._on_lap_event(event, now)
        self._connect_watch(now)
        self._pump(now)

    def _on_lap_event(self, event, now: float) -> None:
        match event:
            case lap.Connected(peer=peer):
                self._peer = peer
                for conn in list(self.connections.values()):
                    if conn.state == ConnState.WAIT_LINK and conn.device == peer:
                        self._send_connect(conn, now)
                if not self.connections:
                    self._timers["idle"] = now + self.idle_timeout
                self._events.append(event)
            case lap.Data(data=data):
                self._on_pdu(data, now)
            case lap.Disconnected(reason=reason):
                lmp_reason = (P.DisconnectReason.LAP_CONNECT_FAILED
                              if reason in (lap.DisconnectReason.CONNECT_FAILED, lap.DisconnectReason.REFUSED)
                              else P.DisconnectReason.UNEXPECTED_LAP_DISCONNECT)
                # connections asked for while our own close was under way wait for a new link
                waiting = [c for c in self.connections.values() if c.state == ConnState.WAIT_LINK
                           and reason == lap.DisconnectReason.USER_REQUEST]
                # IrLAP reports a close it carried out as a user request, also one the peer asked for with RD:
                # connections still open when we did not close the idle link were closed by the peer
                detail = reason.value
                if reason == lap.DisconnectReason.USER_REQUEST and not self._closing_link:
                    detail = "the peer closed the link"
                self._closing_link = False
                for conn in list(self.connections.values()):
                    if conn not in waiting:
                        self._drop(conn, lmp_reason, now, notify=True, detail=detail)
                self._peer = None
                self._timers.pop("idle", None)
                self._hurry = False
                self._events.append(event)
                if waiting:
                    self._reopen_link(waiting, now)
            case lap.Discovered():
                # IrLAP cannot connect while it discovers: connections asked for during our round open the link now
                waiting = [c for c in self.connections.values() if c.state == ConnState.WAIT_LINK]
                if waiting and not self.station.connected and self.station.state in (lap.State.NDM, lap.State.REPLY):
                    self._reopen_link(waiting, now)
                self._events.append(event)
            case lap.LinkReset():
                for conn in list(self.connections.values()):
                    self._drop(conn, P.DisconnectReason.LAP_RESET, now, notify=True)
                self._events.append(event)
            case lap.UIData(data=data):
                try:
                    pdu = P.parse_connectionless(data)
                except P.PduError:
                    return
                self._events.append(ConnectionlessData(pdu.pid, pdu.data))
            case _:
                self._events.append(event)

    def _reply(self, local: int, remote: int, opcode: int, parameter: int, now: float, data: bytes = b"") -> None:
        """Queue a protocol reply; bounded, and one per LSAP pair and opcode (a repeat adds nothing)."""
        if not self.link_up:
            return
        key = (local, remote, opcode)
        if any(k == key for k, _pdu in self._replies):
            return
        if len(self._replies) >= REPLY_QUEUE_LIMIT:
            self.stats.replies_dropped += 1
            return
        self._replies.append((key, P.build_lmp(P.LmpControl(remote, local, opcode, parameter, data))))
        self._pump(now)

    def _on_pdu(self, data: bytes, now: float) -> None:
        try:
            pdu = P.parse_lmp(data)
        except P.PduError:
            return  # not IrLMP: nothing sensible to answer
        local, remote = pdu.dlsap, pdu.slsap
        conn = self.connections.get((local, remote))
        if isinstance(pdu, P.LmpData):
            if conn is None or conn.state != ConnState.OPEN:
                self._reply(local, remote, P.OP_DISCONNECT, P.DisconnectReason.DATA_ON_DISCONNECTED_LSAP, now)
                return
            self._deliver(conn, pdu.data, now)
            return
        if pdu.opcode == P.OP_CONNECT:
            self._on_connect(local, remote, pdu.data, now)
        elif pdu.opcode == P.OP_CONNECT_CONFIRM:
            if conn is not None and conn.state == ConnState.CONNECTING:
                conn.state = ConnState.OPEN
                self._timers.pop(f"connect:{local}:{remote}", None)
                if conn.owner == "ias-client":
                    call = self._ias_calls.get(conn.key)
                    if call is not None:
                        for piece in call.start(self.max_data()):
                            conn.queue.append(P.build_lmp(P.LmpData(remote, local, piece)))
                elif conn.exclusive_on_confirm:  # the owner hears of it once exclusive mode is granted
                    conn.confirm_data = bytes(pdu.data)
                    self._ask_access(conn, P.ACCESS_EXCLUSIVE, now)
                else:
                    self._events.append(LmpConnectConfirm(local, remote, conn.device, pdu.data, conn.owner))
        elif pdu.opcode == P.OP_DISCONNECT:
            if conn is not None:
                self._drop(conn, P.DisconnectReason.of(pdu.parameter), now, notify=True, user_data=pdu.data)
        elif pdu.opcode == P.OP_ACCESS_MODE:
            self._on_access_request(local, remote, pdu, now)
        elif pdu.opcode == P.OP_ACCESS_MODE_CONFIRM:
            self._on_access_confirm(local, remote, pdu, now)

    # --- access modes --------------------------------------------------------------------------------
    def request_access_mode(self, local: int, remote: int, exclusive: bool, now: float) -> None:
        """Ask the peer to put the link in exclusive mode for this connection, or back to multiplexed mode.

        The answer comes as an :class:`LmpAccessMode` event (or a failure one after :data:`CONNECT_TIMEOUT`).
        Raises LmpError when it cannot be asked: another connection uses the link or holds exclusive mode, the
        connection is not open, already in the mode asked for, or waiting for the answer to an earlier request.
        """
        conn = self._conn(local, remote)
        if conn.state != ConnState.OPEN or conn.close_after_queue:
            raise LmpError(f"connection 0x{local:02x}->0x{remote:02x} is {conn.state.value}")
        if conn.access_asked is not None:
            raise LmpError("an access mode request of this connection is still waiting for its answer")
        if exclusive:
            if self.exclusive == conn.key:
                raise LmpError("the connection is in exclusive mode already")
            if self.exclusive is not None:
                raise LmpError(f"LSAP 0x{self.exclusive[0]:02x}->0x{self.exclusive[1]:02x} holds exclusive mode")
            if others := self._others(conn.key):
                raise LmpError(f"exclusive mode needs the link to itself: {others} other connection(s) use it")
        elif self.exclusive != conn.key:
            raise LmpError("the connection is not in exclusive mode")
        self._ask_access(conn, P.ACCESS_EXCLUSIVE if exclusive else P.ACCESS_MULTIPLEXED, now)

    def _others(self, key: tuple[int, int] | None) -> int:
        """LSAP connections other than ``key`` on the link (IAS ones too; not those whose Disconnect is queued,
        nor those waiting for a link to another device)."""
        return sum(1 for k, c in self.connections.items() if k != key and not c.close_after_queue
                   and not (c.state == ConnState.WAIT_LINK and c.device != self._peer))

    def _ask_access(self, conn: LsapConnection, mode: int, now: float) -> None:
        """Send our access mode request; exclusive mode is held for the connection while it waits."""
        if mode == P.ACCESS_EXCLUSIVE:
            if self.exclusive not in (None, conn.key) or self._others(conn.key):
                self._access_answered(conn, mode, P.ACCESS_STATUS_FAILURE, now, "other connections use the link here")
                return
            self.exclusive = conn.key
        conn.access_asked = mode
        conn.queue.append(P.build_access_mode(conn.remote, conn.local, mode))
        self._timers[f"access:{conn.local}:{conn.remote}"] = now + CONNECT_TIMEOUT
        self._pump(now)

    def _access_answered(self, conn: LsapConnection, asked: int, status: int | None, now: float,
                         detail: str = "") -> None:
        """Our request for ``asked`` got ``status`` (None: no answer in time); tell the owner."""
        granted = asked == P.ACCESS_EXCLUSIVE and status == P.ACCESS_STATUS_SUCCESS
        if self.exclusive == conn.key and not granted:
            self.exclusive = None  # refused, unanswered, or back to multiplexed (which cannot be refused)
        if not detail and status is not None and status != P.ACCESS_STATUS_SUCCESS:
            detail = f"the peer answered {P.ACCESS_STATUS_WORDS.get(status, f'status 0x{status:02x}')}"
        if conn.exclusive_on_confirm:
            conn.exclusive_on_confirm = False
            if granted:
                self._events.append(LmpConnectConfirm(conn.local, conn.remote, conn.device, conn.confirm_data,
                                                      conn.owner))
                return
            # wanted exclusive or not at all: IrLMP ends the connection it made (LM-initiated)
            reason = P.DisconnectReason.CLIENT_NOT_RESPONDING if status is None else P.DisconnectReason.LM_INITIATED
            self._events.append(LmpDisconnected(conn.local, conn.remote, reason, b"", conn.owner,
                                                f"exclusive mode not granted: {detail}"))
            conn.notified = True
            self.disconnect(conn.local, conn.remote, now, reason=reason)
            return
        mode = P.ACCESS_EXCLUSIVE if self.exclusive == conn.key else P.ACCESS_MULTIPLEXED
        self._events.append(LmpAccessMode(conn.local, conn.remote, mode,
                                          P.ACCESS_STATUS_FAILURE if status is None else status, conn.owner,
                                          False, detail))

    def _on_access_request(self, local: int, remote: int, pdu: P.LmpControl, now: float) -> None:
        """The peer asks for a mode: granted, or answered with failure / unsupported; never a reason to close."""
        mode = P.access_mode_of(pdu)
        if mode is None:
            return  # malformed (no mode byte): nothing to answer
        conn = self.connections.get((local, remote))
        if conn is None or conn.state != ConnState.OPEN:
            # as for data: there is no such connection here (a half-open peer learns it)
            self._reply(local, remote, P.OP_DISCONNECT, P.DisconnectReason.DATA_ON_DISCONNECTED_LSAP, now)
            return

        def answer(status: int, mode_now: int) -> None:
            self._reply(local, remote, P.OP_ACCESS_MODE_CONFIRM, status, now, data=bytes((mode_now,)))

        if mode == P.ACCESS_EXCLUSIVE:
            if self.exclusive == conn.key:
                answer(P.ACCESS_STATUS_SUCCESS, P.ACCESS_EXCLUSIVE)  # granted already, or both asked at once
            elif self.exclusive is not None or self._others(conn.key):
                answer(P.ACCESS_STATUS_FAILURE, P.ACCESS_MULTIPLEXED)
            else:
                self.exclusive = conn.key
                answer(P.ACCESS_STATUS_SUCCESS, P.ACCESS_EXCLUSIVE)
                self._events.append(LmpAccessMode(local, remote, P.ACCESS_EXCLUSIVE, P.ACCESS_STATUS_SUCCESS,
                                                  conn.owner, True))
        elif mode == P.ACCESS_MULTIPLEXED:
            if self.exclusive == conn.key:
                self.exclusive = None
                answer(P.ACCESS_STATUS_SUCCESS, P.ACCESS_MULTIPLEXED)
                asked, conn.access_asked = conn.access_asked, None
                if asked is not None:  # we were asking for exclusive mode ourselves: the peer said no
                    self._timers.pop(f"access:{local}:{remote}", None)
                    self._access_answered(conn, asked, P.ACCESS_STATUS_FAILURE, now, "the peer asked for multiplexed")
                else:
                    self._events.append(LmpAccessMode(local, remote, P.ACCESS_MULTIPLEXED, P.ACCESS_STATUS_SUCCESS,
                                                      conn.owner, True))
            elif self.exclusive is None:
                answer(P.ACCESS_STATUS_SUCCESS, P.ACCESS_MULTIPLEXED)  # multiplexed already
            else:
                answer(P.ACCESS_STATUS_FAILURE, P.ACCESS_MULTIPLEXED)  # another connection holds exclusive mode
        else:
            answer(P.ACCESS_STATUS_UNSUPPORTED, mode)

    def _on_access_confirm(self, local: int, remote: int, pdu: P.LmpControl, now: float) -> None:
        """The answer to our request; an unsolicited or malformed confirm is dropped."""
        conn = self.connections.get((local, remote))
        mode = P.access_mode_of(pdu)
        if conn is None or conn.access_asked is None or mode is None:
            return
        asked, conn.access_asked = conn.access_asked, None
        self._timers.pop(f"access:{local}:{remote}", None)
        status = pdu.parameter
        if asked == P.ACCESS_EXCLUSIVE and status == P.ACCESS_STATUS_SUCCESS and mode != P.ACCESS_EXCLUSIVE:
            status = P.ACCESS_STATUS_FAILURE  # "success, multiplexed" is no grant
        self._access_answered(conn, asked, status, now)

    def _on_connect(self, local: int, remote: int, user_data: bytes, now: float) -> None:
        owner = self.listeners.get(local)
        if owner is None:
            self._reply(local, remote, P.OP_DISCONNECT, P.DisconnectReason.NO_CLIENT, now)
            return
        if (local, remote) in self.connections:  # a repeated connect: confirm again
            self._reply(local, remote, P.OP_CONNECT_CONFIRM, 0, now)
            return
        if self.exclusive is not None:  # the link belongs to one connection: IrLMP refuses (LM-initiated)
            self._reply(local, remote, P.OP_DISCONNECT, P.DisconnectReason.LM_INITIATED, now)
            return
        device = self.station.peer or 0
        conn = LsapConnection(local, remote, device, ConnState.OPEN, bytes(user_data), owner, now)
        self.connections[conn.key] = conn
        self._timers.pop("idle", None)
        if owner == "ias-server":
            self._ias_sessions[conn.key] = IasServerSession(self.ias)
            self._reply(local, remote, P.OP_CONNECT_CONFIRM, 0, now)
            return
        self._events.append(LmpConnectIndication(local, remote, device, bytes(user_data), owner))

    def confirm(self, local: int, remote: int, now: float, user_data: bytes = b"") -> None:
        """Confirm an indicated connection (the owner may add user data, e.g. TinyTP parameters)."""
        conn = self._conn(local, remote)
        conn.queue.appendleft(P.build_lmp(P.LmpControl(remote, local, P.OP_CONNECT_CONFIRM, 0, bytes(user_data))))
        self._pump(now)

    def _deliver(self, conn: LsapConnection, data: bytes, now: float) -> None:
        if conn.owner == "ias-server":
            session = self._ias_sessions.get(conn.key)
            if session is not None and len(conn.queue) >= PEER_QUEUE_LIMIT:
                self.stats.ias_requests_dropped += 1  # the peer asks faster than it lets us answer
                return
            if session is not None:
                for piece in session.receive(data, self.max_data()):
                    conn.queue.append(P.build_lmp(P.LmpData(conn.remote, conn.local, piece)))
            return
        if conn.owner == "ias-client":
            call = self._ias_calls.get(conn.key)
            if call is None:
                return
            replies, result = call.receive(data)
            if len(conn.queue) >= PEER_QUEUE_LIMIT:
                replies = []  # a server that floods us while holding us in RNR gets no more acks queued
                self.stats.replies_dropped += 1
            for piece in replies:
                conn.queue.append(P.build_lmp(P.LmpData(conn.remote, conn.local, piece)))
            if result is not None or call.error:
                self._finish_ias(conn, result, call.error, now)
            return
        if conn.owner == "raw":
            conn.unread += len(data)
        self._events.append(LmpData(conn.local, conn.remote, data, conn.owner))

    def _finish_ias(self, conn: LsapConnection, response: P.IasResponse | None, error: str, now: float) -> None:
        call = self._ias_calls.pop(conn.key, None)
        self._timers.pop(f"ias:{conn.local}", None)
        if call is None:
            return
        if response is None:
            result = IasResult(call.query, call.device, call.class_name.decode("utf-8", "replace"),
                               call.attribute.decode("utf-8", "replace"), None, (), error)
        else:
            result = IasResult(call.query, call.device, call.class_name.decode("utf-8", "replace"),
                               call.attribute.decode("utf-8", "replace"), response.status,
                               tuple(v for _id, v in response.entries))
        self._events.append(result)
        # like the Linux client: one question per connection, then close it
        if conn.key in self.connections and conn.state == ConnState.OPEN:
            self.disconnect(conn.local, conn.remote, now)
        elif conn.key in self.connections:
            self._drop(conn, P.DisconnectReason.USER_REQUEST, now, notify=False)
        self.release_lsap(conn.local)

    def _drop(self, conn: LsapConnection, reason: P.DisconnectReason, now: float, *, notify: bool,
              user_data: bytes = b"", detail: str = "", local_close: bool = False) -> None:
        self.connections.pop(conn.key, None)
        self._timers.pop(f"connect:{conn.local}:{conn.remote}", None)
        self._timers.pop(f"access:{conn.local}:{conn.remote}", None)
        if self.exclusive == conn.key:
            self.exclusive = None  # the connection ends: the link is multiplexed again
        self._ias_sessions.pop(conn.key, None)
        if conn.key in self._ias_calls and not local_close:
            self._finish_ias(conn, None, detail or f"the IAS connection was closed: {reason.name.lower()}", now)
        if notify and not conn.notified and conn.owner not in ("ias-server", "ias-client"):
            self._events.append(LmpDisconnected(conn.local, conn.remote, reason, user_data, conn.owner, detail))
        if self.station.connected and self._link_idle():
            # the idle time, or at once when another device waits for the link
            self._timers["idle"] = now + (0.0 if self.connections else self.idle_timeout)

    def _reopen_link(self, waiting: list[LsapConnection], now: float) -> None:
        """Open a new IrLAP link for connections that arrived while the old one was closing."""
        device = waiting[0].device
        for conn in waiting[1:]:
            if conn.device != device:
                self._drop(conn, P.DisconnectReason.LAP_CONNECT_FAILED, now, notify=True,
                           detail="another device took the link")
        self._peer = device
        try:
            self.station.connect(device, now)
        except IrLAPError as exc:
            for conn in waiting:
                if conn.key in self.connections:
                    self._drop(conn, P.DisconnectReason.LAP_CONNECT_FAILED, now, notify=True, detail=str(exc))

    def _fire(self, name: str, now: float) -> None:
        if name == "idle":
            if self.station.connected and self._link_idle():
                if self.station.backlog[0] or self._replies:
                    # the last LSAP's data and Disconnect are still on their way: the link stays up for them
                    self._timers["idle"] = now + (LINK_SWITCH_POLL if self._hurry else self.idle_timeout)
                else:
                    self._closing_link = True
                    self.station.disconnect(now)
            return
        if name.startswith("connect:"):
            _, local, remote = name.split(":")
            conn = self.connections.get((int(local), int(remote)))
            if (conn is not None and conn.state == ConnState.CONNECTING and not conn.connect_delivered
                    and self.link_up and self._settled > conn.settled_at_arm):
                # our Connect is still queued behind earlier PDUs, and the link delivered some of them meanwhile:
                # slow, not lost, and the peer has not been asked yet (see _connect_watch)
                conn.settled_at_arm = self._settled
                self._timers[name] = now + CONNECT_TIMEOUT
                return
            if conn is not None and conn.state in (ConnState.WAIT_LINK, ConnState.CONNECTING):
                if conn.state == ConnState.CONNECTING:
                    self._reply(conn.local, conn.remote, P.OP_DISCONNECT, P.DisconnectReason.CLIENT_NOT_RESPONDING, now)
                self._drop(conn, P.DisconnectReason.CLIENT_NOT_RESPONDING, now, notify=True,
                           detail="no connect confirm")
            return
        if name.startswith("access:"):
            _, local, remote = name.split(":")
            conn = self.connections.get((int(local), int(remote)))
            if conn is not None and conn.access_asked is not None:
                asked, conn.access_asked = conn.access_asked, None
                self._access_answered(conn, asked, None, now,
                                      f"no answer to the access mode request within {CONNECT_TIMEOUT:g} s")
            return
        if name.startswith("ias:"):
            local = int(name.split(":")[1])
            conn = self.connections.get((local, P.LSAP_IAS))
            if conn is not None:
                self._finish_ias(conn, None, "no IAS answer within the timeout", now)


def device_info(nickname: str, hints: int) -> DiscoveryInfo:
    return DiscoveryInfo.make(nickname, hints=hints)
