"""The IrLAP station: discovery, connection, windowed reliable transfer and recovery, sans I/O.

A :class:`Station` never reads a clock, a port or a random source of its own. Its driver (the
discrete-event simulator, or the real-time runtime) feeds it:

* ``receive(frame, now)``: one frame as the SIR unwrapper returned it (FCS already checked);
* ``sense(now)``: the medium carries energy (a BOF or any byte arrived), for media-busy sensing and
  the timer extensions while a frame is arriving;
* ``handle_timer(now)`` at ``next_deadline()``;
* requests from the layer above: ``discover``, ``connect``, ``send``, ``disconnect``, ``send_ui``,
  ``send_test``, ``set_local_busy``.

and drains ``take_output()`` (:class:`Transmit` and :class:`SetSpeed` actions, to be carried out in
order: a speed change waits until the transmissions before it have left the UART) and
``take_events()``. Misusing the API raises :class:`~irlap.errors.IrLAPError` at once; a peer that
misbehaves never makes ``receive`` raise, it gets the protocol's reaction (FRMR, reset, disconnect).

The station estimates when its own transmissions leave the line (wire bytes x 10 / baud) and starts
its reply timers from there, so a driver that sends promptly needs to report nothing back.

Design choices (IrLAP 1.1 where the reference is clear, the Linux stack's behaviour otherwise):
go-back-N recovery driven by the primary's RR polls (received REJ and SREJ are honoured, never
sent); the F timer is the peer's max turnaround, the idle poll timer starts at 10 ms and doubles up to
our own max turnaround (fast polls while a peer may be about to answer); N1/N2 from the
negotiated link-disconnect time; discovery slots of 90 ms started when the XID is sent.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from irlap import frames as F
from irlap import framing
from irlap.errors import FrameError, IrLAPError, QosError
from irlap.framing import SIR_MAX
from irlap.qos import LinkParams, QosParams, mtt_xbofs, negotiate
from irlap.sir import wrap

# --- timers and counters (seconds) ----------------------------------------------------------------
NDM_BAUD = 9600
NDM_XBOFS = 12
SLOT_TIMEOUT = 0.090
SLOT_EXTENSION = 0.010  # while a frame is arriving when the slot timer expires
QUERY_EXTRA = 0.134  # responder: slot x (S - s) + 34 ms + 100 ms
MEDIA_BUSY = 0.500
MEDIA_BUSY_AFTER_DISCOVERY = 0.100
F_TIMEOUT_NDM = 0.500
F_EXTENSION = 0.300  # once, while a frame is arriving
N3 = 3
FAST_POLL = 0.002  # the first idle poll of the primary (doubling up to its max turnaround time)
BACKOFF = (0.020, 0.050)
LOG_EXPIRY = 6.0
#: most devices the discovery log holds (and one discovery round reports); the oldest entry makes room
MAX_LOGGED_DEVICES = 64
DISCOVERY_SLOTS = (1, 6, 8, 16)


class State(enum.Enum):
    NDM = "NDM"
    QUERY = "QUERY"  # we run a discovery
    REPLY = "REPLY"  # we answer somebody's discovery
    SETUP = "SETUP"  # SNRM sent, waiting for UA
    NRM_PRIMARY = "NRM-P"
    NRM_SECONDARY = "NRM-S"
    RESET_WAIT = "RESET"  # reset SNRM sent, waiting for UA
    PCLOSE = "PCLOSE"  # DISC sent, waiting for UA/DM
    SCLOSE = "SCLOSE"  # RD sent, waiting for DISC


class DisconnectReason(enum.Enum):
    USER_REQUEST = "user request"
    PEER_REQUEST = "the peer disconnected"
    LINK_LOST = "link lost (no answer within the link-disconnect time)"
    CONNECT_FAILED = "no answer to the connection request"
    REFUSED = "the peer refused the connection"
    PROTOCOL_ERROR = "protocol error (reset failed)"


# --- actions --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Transmit:
    """Send one frame: ``xbofs`` fillers, then the frame wrapped for ``baud`` (see :attr:`wire`).

    ``xbofs`` is in the fill unit of the speed's framing (:mod:`irlap.framing`): XBOF bytes at SIR speeds,
    extra start flags at MIR, idle microseconds at FIR. ``baud`` is the speed the frame goes out at (the
    station's speed once the actions before it are carried out); it selects the framing of :attr:`wire`.
    """

    frame: bytes
    xbofs: int
    baud: int = field(default=NDM_BAUD, compare=False)

    @cached_property
    def wire(self) -> bytes:
        """The line bytes: SIR-wrapped up to 115200 bit/s, MIR or FIR above."""
        if self.baud <= SIR_MAX:
            return wrap(self.frame, self.xbofs)
        return framing.wrap(self.frame, self.baud, self.xbofs)

    @property
    def line_seconds(self) -> float:
        """Seconds the frame occupies the medium at :attr:`baud`."""
        return framing.line_seconds(len(self.wire), self.baud)


@dataclass(frozen=True)
class SetSpeed:
    """Switch dongle and UART to ``baud`` once everything before this action has been sent."""

    baud: int


Action = Transmit | SetSpeed


# --- events ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiscoveredDevice:
    """One entry of the discovery log."""

    address: int
    info: F.DiscoveryInfo | None
    last_seen: float

    @property
    def nickname(self) -> str:
        return self.info.nickname if self.info else ""

    @property
    def hints(self) -> bytes:
        return self.info.hints if self.info else b""

    def as_dict(self) -> dict:
        """The JSON form ``irda discover`` and ``irda sim discover`` print: ``address`` an integer,
        ``address_hex``, ``nickname``, ``hints`` in words, ``hint_bytes`` in hex, ``charset``."""
        return {
            "address": self.address,
            "address_hex": f"0x{self.address:08x}",
            "nickname": self.nickname,
            "hints": self.info.hint_words if self.info else [],
            "hint_bytes": self.hints.hex(),
            "charset": self.info.charset if self.info else None,
        }


@dataclass(frozen=True)
class Discovered:
    """Our discovery round ended; ``devices`` answered it. ``started`` is when its first XID went out.

    ``garbled``: energy without a good frame was heard in some slot (two answers colliding, or noise), so a
    device may have answered unheard; a round without it heard every answer there was.

    ``ended_early``: the round ended in the slot in which a device that ``stop_when`` accepted answered (see
    :meth:`Station.discover`); the later slots did not run, so devices that would have answered in them are
    missing."""

    devices: tuple[DiscoveredDevice, ...]
    started: float
    conflict: bool = False
    garbled: bool = False
    ended_early: bool = False


@dataclass(frozen=True)
class DiscoveryIndication:
    """Another station discovered us, or we overheard its discovery (passive discovery)."""

    device: DiscoveredDevice


@dataclass(frozen=True)
class Connected:
    peer: int
    params: LinkParams
    primary: bool


@dataclass(frozen=True)
class Data:
    """In-order payload of one I-frame from the peer."""

    data: bytes


@dataclass(frozen=True)
class UIData:
    """Connectionless data (a UI frame)."""

    data: bytes
    command: bool


@dataclass(frozen=True)
class TestResult:
    """The answer to our TEST: the echoed information field."""

    __test__ = False  # not a pytest class

    source: int | None
    data: bytes
    time: float = 0.0  #: when the answer arrived (the station's clock)


@dataclass(frozen=True)
class Disconnected:
    reason: DisconnectReason
    peer: int | None = None


@dataclass(frozen=True)
class LinkDegraded:
    """N1 F-timer expiries (or ~3 s of silence): the beam is probably blocked."""


@dataclass(frozen=True)
class LinkReset:
    """The link was reset; frames that were in flight may be lost. The layer above decides."""

    by_peer: bool


Event = (Discovered | DiscoveryIndication | Connected | Data | UIData | TestResult | Disconnected
         | LinkDegraded | LinkReset)


@dataclass
class StationStats:
    frames_sent: int = 0
    i_frames_sent: int = 0
    retransmissions: int = 0
    resets: int = 0
    f_timeouts: int = 0
    frames_received: int = 0
    bad_frames: int = 0
    frmr_sent: int = 0
    bytes_delivered: int = 0


@dataclass
class _Discovery:
    slots: int
    started: float
    slot: int = 0
    found: dict[int, DiscoveredDevice] = field(default_factory=dict)
    conflict: bool = False
    extensions: int = 0
    garbled: bool = False  # a slot ended with energy and no good frame after it
    stop_when: Callable[[DiscoveredDevice], bool] | None = None
    ending: bool = False  # stop_when accepted an answer: the final XID follows this slot at once


@dataclass
class _Reply:
    initiator: int
    slot: int
    answered: bool = False
    last_slot: int = 0


def _seq_diff(a: int, b: int) -> int:
    return (a - b) % 8


class Station:
    """One IrLAP station (see the module docstring for the contract)."""

    def __init__(
        self,
        address: int,
        *,
        qos: QosParams | None = None,
        info: F.DiscoveryInfo | None = None,
        rng: random.Random | None = None,
        accept_connections: bool = True,
        slot_timeout: float = SLOT_TIMEOUT,
        log_expiry: float = LOG_EXPIRY,
        max_logged_devices: int = MAX_LOGGED_DEVICES,
    ) -> None:
        if not 0 < address < 0xFFFFFFFF:
            raise IrLAPError("a device address must be a 32-bit value other than 0 and 0xffffffff")
        self.address = address
        self.qos = qos or QosParams.offer()
        self.info = info or F.DiscoveryInfo.make("irsock", hints=0x0400)
        self.rng = rng or random.Random(address)
        self.accept_connections = accept_connections
        self.slot_timeout = slot_timeout
        self.log_expiry = log_expiry
        if max_logged_devices < 1:
            raise IrLAPError("the discovery log must hold at least one device")
        self.max_logged_devices = max_logged_devices
        #: the port keeps the peer's minimum turnaround counted from the end of the frame it heard (a USB chip
        #: that cannot send fill waits that long itself): an answer may then wait for the layers above for part
        #: of that time at no cost to the line (see :meth:`_answer_grace`)
        self.turnaround_from_rx = False
        self.stats = StationStats()

        self.state = State.NDM
        self.baud = NDM_BAUD  # the port's speed once the actions emitted so far are carried out
        self.params: LinkParams | None = None
        self.peer: int | None = None
        self.ca: int | None = None
        self._output: list[Action] = []
        self._events: list[Event] = []
        self._timers: dict[str, float] = {}
        self._tx_free = 0.0  # when our last emitted transmission leaves the line
        self._busy_until = 0.0  # media busy
        self._last_sense = -1.0
        self._last_rx_end = -1.0
        self._log: dict[int, DiscoveredDevice] = {}
        self._pending_ndm: deque[tuple] = deque()
        self._discovery: _Discovery | None = None
        self._reply: _Reply | None = None
        self._setup_tries = 0
        self._setup_started = 0.0
        self._setup_heard = False  # energy sensed since our first SNRM (a garbled UA, perhaps)
        self._pending_conflict = False  # two devices answered with one address: set the flag next round
        self.test_sent_at: float | None = None
        self._reset_link()

    def _reset_link(self) -> None:
        self.vs = 0
        self.vr = 0
        self.va = 0
        self._unacked: deque[bytes] = deque()
        self._queue: deque[bytes] = deque()
        # N(S) of unacknowledged frames to send again at our next turn (REJ, SREJ, a final N(R) short of
        # V(S)): each at most once, and the frames stay in _unacked, so this never exceeds the window
        self._resend: list[int] = []
        self._token = False
        self._remote_busy = False
        self._local_busy = False
        self._retries = 0
        self._degraded_sent = False
        self._received_this_turn = False
        self._answer_waited = False  # this turn's bare answer already waited its grace
        self._timers.pop("turn", None)  # a turn taken before the reset (one waiting its grace) is not ours now
        self._idle_polls = 0  # idle P-timer waits in a row: the next one is twice as long
        self._close_requested = False
        self._frmr: F.FRMR | None = None
        self._f_extended = False
        self._wd_expiries = 0

    # --- outputs -----------------------------------------------------------------------------
    def take_output(self) -> list[Action]:
        out, self._output = self._output, []
        return out

    def take_events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        return min(self._timers.values()) if self._timers else None

    @property
    def connected(self) -> bool:
        return self.state in (State.NRM_PRIMARY, State.NRM_SECONDARY, State.RESET_WAIT, State.PCLOSE, State.SCLOSE)

    @property
    def closing(self) -> bool:
        """The link is up but going down: a close was requested or DISC/RD is on its way."""
        return self.connected and (self._close_requested or self.state in (State.PCLOSE, State.SCLOSE))

    @property
    def is_primary(self) -> bool:
        return self.state in (State.NRM_PRIMARY, State.RESET_WAIT, State.PCLOSE)

    @property
    def max_send_size(self) -> int:
        """Largest payload :meth:`send` takes (the negotiated data size the peer can receive)."""
        if self.params is None:
            raise IrLAPError("not connected: the data size is known once the link is up")
        return self.params.tx_data_size

    @property
    def tx_queue_len(self) -> int:
        """Frames waiting to be sent for the first time (not counting unacknowledged ones)."""
        return len(self._queue)

    @property
    def unacked(self) -> int:
        return len(self._unacked)

    @property
    def pending_resends(self) -> int:
        """Unacknowledged frames marked to be sent again next turn (by REJ, SREJ or a short N(R))."""
        return len(self._resend)

    @property
    def backlog(self) -> tuple[int, int]:
        """(frames, bytes) handed to :meth:`send` that the peer has not acknowledged yet (queued or in flight)."""
        frames = (*self._queue, *self._unacked)
        return len(frames), sum(len(frame) for frame in frames)

    @property
    def logged_devices(self) -> int:
        """Entries held in the discovery log (at most :data:`MAX_LOGGED_DEVICES`; expired ones go at the
        next insert or read)."""
        return len(self._log)

    def discovery_log(self, now: float) -> list[DiscoveredDevice]:
        """Devices seen within the log expiry time, most recent first."""
        self._expire_log(now)
        return sorted(self._log.values(), key=lambda d: -d.last_seen)

    def _expire_log(self, now: float) -> None:
        for address in [a for a, d in self._log.items() if now - d.last_seen > self.log_expiry]:
            del self._log[address]

    def _remember(self, device: DiscoveredDevice, now: float) -> None:
        """Log a device heard, expiring old entries and dropping the oldest beyond the cap.

        Done on every insert, not only when somebody reads the log: every overheard discovery adds an
        entry, and a station nobody asks would otherwise keep them all (20,000 after 20 minutes).
        """
        self._expire_log(now)
        self._log.pop(device.address, None)
        self._log[device.address] = device
        while len(self._log) > self.max_logged_devices:
            oldest = min(self._log.values(), key=lambda d: d.last_seen)
            del self._log[oldest.address]

    def media_busy(self, now: float) -> bool:
        return now < self._busy_until

    # --- internals: emitting ------------------------------------------------------------------
    def _emit(self, frame: F.Frame, now: float, xbofs: int) -> float:
        action = Transmit(F.build(frame), xbofs, self.baud)
        self._output.append(action)
        self.stats.frames_sent += 1
        self._answer_waited = False  # we spoke: the next turn has its grace again
        start = max(now, self._tx_free)
        self._tx_free = start + action.line_seconds
        return self._tx_free

    def _set_speed(self, baud: int) -> None:
        if baud != self.baud:
            self._output.append(SetSpeed(baud))
            self.baud = baud

    def _ndm_xbofs(self) -> int:
        return NDM_XBOFS

    def _first_xbofs(self) -> int:
        """Fill before the first frame of our turn: the peer's min turnaround plus, at SIR speeds, its extra BOFs.

        Above 115200 bit/s the turnaround is extra start flags (MIR) or idle line (FIR), and the additional-BOFs
        parameter does not apply (:func:`irlap.framing.turnaround_fill`)."""
        assert self.params is not None
        if self.baud <= SIR_MAX:
            return mtt_xbofs(self.baud, self.params.tx_min_turnaround_us) + self.params.tx_additional_bofs
        return framing.turnaround_fill(self.baud, self.params.tx_min_turnaround_us)

    def _next_xbofs(self) -> int:
        """Fill before the later frames of a turn: the peer's extra BOFs at SIR speeds, nothing above."""
        assert self.params is not None
        return self.params.tx_additional_bofs if self.baud <= SIR_MAX else 0

    def _start(self, name: str, deadline: float) -> None:
        self._timers[name] = deadline

    def _stop(self, *names: str) -> None:
        for name in names:
            self._timers.pop(name, None)

    def _frame_arriving(self) -> bool:
        return self._last_sense > self._last_rx_end

    # --- inputs: medium -------------------------------------------------------------------------
    def sense(self, now: float) -> None:
        """Energy on the medium (a byte arrived): the medium is busy for the next 500 ms."""
        if self.state == State.SETUP:
            self._setup_heard = True  # perhaps the peer's UA, garbled: see _setup_gives_up
        self._last_sense = now
        self._busy_until = max(self._busy_until, now + MEDIA_BUSY)

    def receive(self, data: bytes, now: float) -> None:
        """One received frame (no FCS). Never raises for anything the peer sent."""
        self._last_rx_end = now
        self._busy_until = max(self._busy_until, now + MEDIA_BUSY)
        try:
            frame = F.parse(data)
        except F.UndefinedControlError as exc:
            self.stats.bad_frames += 1
            self._on_undefined(exc, now)
            return
        except FrameError:
            self.stats.bad_frames += 1
            return
        self.stats.frames_received += 1
        if frame.address == F.BROADCAST_ADDRESS:
            self._on_broadcast(frame, now)
        elif self.connected and frame.address == self.ca:
            if self.is_primary:
                self._on_primary_frame(frame, now)
            else:
                self._on_secondary_frame(frame, now)
        elif self.state == State.SETUP and frame.address == self.ca:
            self._on_setup_frame(frame, now)

    # --- requests -------------------------------------------------------------------------------
    def discover(self, slots: int, now: float, *,
                 stop_when: Callable[[DiscoveredDevice], bool] | None = None) -> None:
        """Start a discovery round with ``slots`` slots; ends with a :class:`Discovered` event.

        ``stop_when(device)`` (optional) is asked about each device that answers; once it says yes, the round
        ends there: the final XID goes out as soon as that answer is in (after the slot's end-of-frame wait,
        as for any slot), without the slots that remain, and the event says ``ended_early``. For a caller
        that looks for one known device (by nickname or address): it learns about it up to ``slots - 1``
        slots (90 ms each) sooner. Stations that would have answered in the later slots see the final XID
        and end the round as usual.
        """
        if slots not in DISCOVERY_SLOTS:
            raise IrLAPError(f"discovery takes 1, 6, 8 or 16 slots, not {slots}")
        if self.state not in (State.NDM, State.REPLY):
            raise IrLAPError(f"cannot discover while {self.state.value}")
        self._pending_ndm.append(("discover", slots, stop_when))
        self._run_pending(now)

    def connect(self, address: int, now: float) -> None:
        """Connect to the device ``address`` as primary (SNRM with our QoS)."""
        if self.state not in (State.NDM, State.REPLY) or any(p[0] == "connect" for p in self._pending_ndm):
            raise IrLAPError(f"cannot connect while {self.state.value}")
        if not 0 < address < 0xFFFFFFFF:
            raise IrLAPError(f"0x{address:08x} is not a device address")
        self._pending_ndm.append(("connect", address))
        self._run_pending(now)

    def send_ui(self, data: bytes, now: float) -> None:
        """Connectionless data to every station in range (sent when the medium is free)."""
        if self.connected:
            raise IrLAPError("UI frames are sent only while not connected")
        if len(data) > 2048:
            raise IrLAPError("a UI frame carries at most 2048 bytes")
        self._pending_ndm.append(("ui", bytes(data)))
        self._run_pending(now)

    def set_hints(self, hints: int) -> None:
        """Announce ``hints`` (first byte << 8 | second byte, or one byte) in discoveries from now on."""
        nickname = self.info.nickname if self.info else ""
        self.info = F.DiscoveryInfo.make(nickname, hints=hints | 0x8000 if hints > 0xFF else hints)

    def send_test(self, dest: int, data: bytes, now: float) -> None:
        """A TEST command; the echo comes back as :class:`TestResult`."""
        if self.connected:
            raise IrLAPError("TEST is sent only while not connected")
        self._pending_ndm.append(("test", dest, bytes(data)))
        self._run_pending(now)

    def send(self, data: bytes, now: float) -> None:
        """Queue one I-frame payload (at most :attr:`max_send_size` bytes) for the connected peer."""
        if self.state not in (State.NRM_PRIMARY, State.NRM_SECONDARY, State.RESET_WAIT):
            raise IrLAPError("not connected")
        if len(data) > self.max_send_size:
            raise IrLAPError(f"{len(data)} bytes exceed the negotiated data size of {self.max_send_size}")
        self._queue.append(bytes(data))
        self._wake_primary(now)

    def _wake_primary(self, now: float) -> None:
        """An idle primary takes its turn at once; through a timer due now, so that several requests
        made at the same instant go out in one window. A turn waiting its answer grace is taken at once too
        (primary or secondary)."""
        if self.state == State.NRM_PRIMARY and self._token and "p" in self._timers:
            self._start("p", min(self._timers["p"], now))
        if self._answer_waited and "turn" in self._timers:
            self._start("turn", min(self._timers["turn"], now))

    def _answer_grace(self) -> float:
        """Seconds a turn with nothing to send may wait for data from the layers above before it answers bare.

        Where the port counts the peer's minimum turnaround from the end of the frame it heard
        (:attr:`turnaround_from_rx`), the line must stay idle that long anyway: at 4 Mbit/s between two MCS7780s
        (1 ms) the primary polled with an RR just before the OBEX client's next packet was queued, and the
        secondary answered a window with an RR just before the OBEX server's response was: two turn pairs
        (~3 ms each) per 64 kB packet. Half of it, since part of the turnaround went by before the frame reached
        us. Elsewhere (fill on the line, XBOFs) waiting would add to the turnaround: no grace."""
        if not self.turnaround_from_rx or self.params is None or self._answer_waited:
            return 0.0
        return self.params.tx_min_turnaround_us / 2e6

    def set_local_busy(self, busy: bool, now: float) -> None:
        """The layer above cannot take more data (RNR) or can again (RR)."""
        if self._local_busy == busy:
            return
        self._local_busy = busy
        if not busy:
            self._wake_primary(now)

    def disconnect(self, now: float) -> None:
        """Close the link (DISC as primary, RD as secondary at the next poll)."""
        if self.state in (State.NDM, State.QUERY, State.REPLY):
            self._pending_ndm = deque(p for p in self._pending_ndm if p[0] != "connect")
            return
        if self.state == State.SETUP:
            self._stop("f", "backoff")
            self._to_ndm(now, DisconnectReason.USER_REQUEST)
            return
        self._close_requested = True
        self._wake_primary(now)

    # --- NDM: pending actions that wait for a free medium -------------------------------------------
    def _run_pending(self, now: float) -> None:
        while self._pending_ndm and self.state == State.NDM:
            if self.media_busy(now):
                self._start("media", self._busy_until)
                return
            self._stop("media")
            item = self._pending_ndm.popleft()
            kind = item[0]
            if kind == "discover":
                self._begin_discovery(item[1], now, item[2])
            elif kind == "connect":
                self._begin_connect(item[1], now)
            elif kind == "ui":
                self._emit(F.UI(command=True, poll_final=False, info=item[1]), now, self._ndm_xbofs())
            elif kind == "test":
                self.test_sent_at = now  # when our TEST really left (media busy may delay it)
                self._emit(F.TEST(command=True, source=self.address, dest=item[1], info=item[2]), now,
                           self._ndm_xbofs())

    # --- discovery ------------------------------------------------------------------------------
    def _begin_discovery(self, slots: int, now: float,
                         stop_when: Callable[[DiscoveredDevice], bool] | None = None) -> None:
        self.state = State.QUERY
        self._discovery = _Discovery(slots=slots, started=now, conflict=self._pending_conflict, stop_when=stop_when)
        self._pending_conflict = False
        self._send_xid_slot(now)

    def _send_xid_slot(self, now: float) -> None:
        d = self._discovery
        assert d is not None
        frame = F.XIDCommand(source=self.address, slots=d.slots, slot=d.slot, conflict=d.conflict)
        self._emit(frame, now, self._ndm_xbofs())
        self._start("slot", now + self.slot_timeout)

    def _slot_expired(self, now: float) -> None:
        d = self._discovery
        assert d is not None
        if self._frame_arriving() and d.extensions < 3:
            d.extensions += 1
            self._start("slot", now + SLOT_EXTENSION)
            return
        d.extensions = 0
        d.garbled = d.garbled or self._frame_arriving()  # energy that never became a good frame
        d.slot += 1
        if d.slot < d.slots and not d.ending:
            self._send_xid_slot(now)
            return
        final = F.XIDCommand(source=self.address, slots=d.slots, slot=F.XID_FINAL_SLOT, conflict=d.conflict,
                             info=self.info)
        self._emit(final, now, self._ndm_xbofs())
        self.state = State.NDM
        self._discovery = None
        for device in d.found.values():
            self._remember(device, now)
        self._events.append(Discovered(tuple(d.found.values()), d.started, conflict=self._pending_conflict,
                                       garbled=d.garbled, ended_early=d.ending and d.slot < d.slots))
        # IrLAP 6.13.4: a completed discovery clears media busy. The answers we just heard were to us; waiting
        # 500 ms after the last of them before a connect would only add latency (Linux clears it too).
        self._busy_until = min(self._busy_until, now)
        self._run_pending(now)

    def _on_broadcast(self, frame: F.Frame, now: float) -> None:
        match frame:
            case F.XIDCommand():
                self._on_xid_command(frame, now)
            case F.XIDResponse() if self.state == State.QUERY and frame.dest == self.address:
                d = self._discovery
                assert d is not None
                device = DiscoveredDevice(frame.source, frame.info, now)
                if frame.source in d.found and d.found[frame.source].info != frame.info:
                    self._pending_conflict = True  # two devices answered with one address
                if frame.source in d.found or len(d.found) < self.max_logged_devices:
                    d.found[frame.source] = device  # the first answers of a flood are kept, the rest ignored
                    if d.stop_when is not None and not d.ending and d.stop_when(device):
                        d.ending = True
                        self._start("slot", now)  # end the slot now: _slot_expired sends the final XID
            case F.SNRM(dest=dest) if dest == self.address:
                self._on_snrm(frame, now)
            case F.TEST(command=True) if frame.dest in (self.address, F.BROADCAST_DEVICE) and not self.connected:
                reply = F.TEST(command=False, source=self.address, dest=frame.source, info=frame.info)
                self._emit(reply, now, self._ndm_xbofs())
            case F.TEST(command=False) if frame.dest == self.address:
                self._events.append(TestResult(frame.source, frame.info, now))
            case F.UI():
                self._events.append(UIData(frame.info, frame.command))

    def _on_xid_command(self, frame: F.XIDCommand, now: float) -> None:
        if frame.is_final:
            device = DiscoveredDevice(frame.source, frame.info, now)
            self._remember(device, now)
            self._events.append(DiscoveryIndication(device))
            if self.state == State.REPLY:
                self.state = State.NDM
                self._reply = None
                self._stop("query")
            self._busy_until = max(self._busy_until, now + MEDIA_BUSY_AFTER_DISCOVERY)
            if self.state == State.NDM:
                self._run_pending(now)
            return
        if self.state not in (State.NDM, State.REPLY) or frame.dest not in (F.BROADCAST_DEVICE, self.address):
            return
        if (self.state == State.NDM or self._reply is None or self._reply.initiator != frame.source
                or frame.slot < self._reply.last_slot):
            if frame.conflict:
                self._new_address()
            slot = self.rng.randint(frame.slot, frame.slots - 1) if frame.slot < frame.slots else frame.slot
            self._reply = _Reply(initiator=frame.source, slot=slot)
            self.state = State.REPLY
        self._start("query", now + self.slot_timeout * (frame.slots - frame.slot) + QUERY_EXTRA)
        reply = self._reply
        reply.last_slot = frame.slot
        if not reply.answered and frame.slot == reply.slot:
            reply.answered = True
            response = F.XIDResponse(source=self.address, dest=frame.source, slots=frame.slots, slot=frame.slot,
                                     info=self.info)
            self._emit(response, now, self._ndm_xbofs())

    def _new_address(self) -> None:
        while True:
            candidate = self.rng.randrange(1, 0xFFFFFFFF)
            if candidate != self.address:
                self.address = candidate
                return

    # --- connection setup -----------------------------------------------------------------------
    def _begin_connect(self, address: int, now: float) -> None:
        self.state = State.SETUP
        self.peer = address
        self.ca = self.rng.randint(1, 0x7E)
        self._setup_tries = 0
        self._setup_started = now
        self._setup_heard = False
        self._send_snrm(now)

    def _send_snrm(self, now: float) -> None:
        assert self.peer is not None and self.ca is not None
        self._setup_tries += 1
        frame = F.SNRM(source=self.address, dest=self.peer, new_address=self.ca, qos=self._snrm_offer())
        end = self._emit(frame, now, self._ndm_xbofs())
        self._start("f", end + F_TIMEOUT_NDM)

    def _snrm_offer(self) -> QosParams:
        """Our QoS for an SNRM, fitted to the line capacity of the fastest speed we offer.

        The speed is not chosen yet when the SNRM goes out, and fitting to the slowest would cripple
        fast links; a peer that settles on a slower speed must fit its frames itself (IrLAP's rule, which
        :func:`~irlap.qos.negotiate` applies for us). A turn of 500 ms is the longest any peer holds the line.
        """
        return self.qos.fitted(self.qos.value("baud"), 500)

    def _on_setup_frame(self, frame: F.Frame, now: float) -> None:
        match frame:
            case F.UA(source=source) if source == self.peer:
                try:
                    params = negotiate(self.qos, frame.qos or QosParams())
                except QosError:
                    self._emit(F.DISC(address=self.ca), now, self._ndm_xbofs())
                    self._to_ndm(now, DisconnectReason.REFUSED)
                    return
                self._stop("f", "backoff")
                self._enter_nrm(params, primary=True, now=now)
                self._events.append(Connected(self.peer, params, primary=True))
                self._primary_turn(now, idle_poll=True)  # first poll at the new speed
            case F.DM():
                self._stop("f", "backoff")
                self._to_ndm(now, DisconnectReason.REFUSED)

    def _on_snrm(self, frame: F.SNRM, now: float) -> None:
        """An SNRM addressed to us: answer UA (or DM), then switch speed."""
        if frame.is_reset:
            return
        if self.state == State.SETUP:
            if self.address > frame.source:
                return  # contention: the larger address stays primary
            self._stop("f", "backoff")
        elif self.state == State.NRM_SECONDARY and frame.source == self.peer:
            # our primary lost its state and connects anew: the old link is gone
            self._events.append(Disconnected(DisconnectReason.PEER_REQUEST, self.peer))
            self._timers = {}
            self._set_speed(NDM_BAUD)
        elif self.state not in (State.NDM, State.REPLY):
            return
        self._stop("query")
        self._reply = None
        if not self.accept_connections:
            self._emit(F.DM(address=frame.new_address), now, self._ndm_xbofs())
            self.state = State.NDM
            return
        try:
            params = negotiate(self.qos, frame.qos or QosParams())
        except QosError:
            self._emit(F.DM(address=frame.new_address), now, self._ndm_xbofs())
            self.state = State.NDM
            return
        self.peer = frame.source
        self.ca = frame.new_address
        xbofs = mtt_xbofs(NDM_BAUD, params.tx_min_turnaround_us) + params.tx_additional_bofs
        # the speed is known now: advertise only what the peer may send us within one of its turns
        answer = self.qos.fitted(params.baud, params.rx_max_turnaround_ms)
        self._emit(F.UA(address=self.ca, source=self.address, dest=frame.source, qos=answer), now,
                   max(xbofs, self._ndm_xbofs()))
        self._enter_nrm(params, primary=False, now=now)
        self._events.append(Connected(self.peer, params, primary=False))

    def _enter_nrm(self, params: LinkParams, *, primary: bool, now: float) -> None:
        self._reset_link()
        self.params = params
        self.state = State.NRM_PRIMARY if primary else State.NRM_SECONDARY
        self._set_speed(params.baud)
        self._token = primary
        if not primary:
            self._start_wd(now)

    def _to_ndm(self, now: float, reason: DisconnectReason) -> None:
        peer = self.peer
        self._timers = {k: v for k, v in self._timers.items() if k == "media"}
        self._set_speed(NDM_BAUD)
        self.state = State.NDM
        self.params = None
        self.ca = None
        self.peer = None
        self._reset_link()
        self._events.append(Disconnected(reason, peer))
        self._run_pending(now)

    # --- timers ---------------------------------------------------------------------------------
    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        while True:
            due = [(deadline, name) for name, deadline in self._timers.items() if deadline <= now + 1e-12]
            if not due:
                return
            _deadline, name = min(due)
            del self._timers[name]
            getattr(self, f"_timer_{name}")(now)

    def _timer_media(self, now: float) -> None:
        self._run_pending(now)

    def _timer_slot(self, now: float) -> None:
        self._slot_expired(now)

    def _timer_query(self, now: float) -> None:
        if self.state == State.REPLY:
            self.state = State.NDM
            self._reply = None
            self._run_pending(now)

    def _timer_backoff(self, now: float) -> None:
        if self.state == State.SETUP:
            self._send_snrm(now)
        elif self.state == State.RESET_WAIT:
            self._send_reset(now)

    def _timer_f(self, now: float) -> None:
        if self._frame_arriving() and not self._f_extended:
            self._f_extended = True
            self._start("f", now + F_EXTENSION)
            return
        self._f_extended = False
        self.stats.f_timeouts += 1
        if self.state == State.SETUP:
            if self._setup_gives_up(now):
                self._to_ndm(now, DisconnectReason.CONNECT_FAILED)
            else:
                self._start("backoff", now + self.rng.uniform(*BACKOFF))
            return
        if self.state == State.PCLOSE:
            self._retries += 1
            if self._retries >= N3:
                self._to_ndm(now, DisconnectReason.USER_REQUEST)
            else:
                self._send_disc(now)
            return
        if self.state == State.RESET_WAIT:
            self._retries += 1
            if self._retries >= N3:
                self._to_ndm(now, DisconnectReason.PROTOCOL_ERROR)
            else:
                self._start("backoff", now + self.rng.uniform(*BACKOFF))
            return
        if self.state != State.NRM_PRIMARY:
            return
        self._retries += 1
        assert self.params is not None
        if self._retries >= self.params.n2:
            self._to_ndm(now, DisconnectReason.LINK_LOST)
            return
        if self.params.n1 and self._retries >= self.params.n1 and not self._degraded_sent:
            self._degraded_sent = True
            self._events.append(LinkDegraded())
        # poll again; the answer's N(R) tells what to resend
        self._token = True
        self._send_supervisory(now, poll=True)

    def _setup_gives_up(self, now: float) -> bool:
        """After N3 unanswered SNRMs, unless something was heard since the first one.

        A peer whose UA we lost (garbled, so we only sensed it) sits at the new speed in NRM, deaf to our
        SNRMs at 9600, until its link-disconnect time passes without a poll; then it listens at 9600 again.
        Giving up before that fails a connection to a device that is right there, so a primary that heard
        an answer keeps trying for the longest link-disconnect time it offered (the peer's is no longer),
        and then for N3 more tries, which the peer hears.
        """
        if self._setup_tries < N3:
            return False
        if not self._setup_heard:
            return True
        one_try = F_TIMEOUT_NDM + BACKOFF[1]
        return now - self._setup_started > self.qos.value("link_disconnect") + N3 * one_try

    def _timer_turn(self, now: float) -> None:
        """Our turn, taken through a timer due at once: the layers above first see what arrived and
        can answer in the same turn (an IrLMP connect confirm rides on the response to its poll)."""
        if self.state == State.NRM_SECONDARY:
            self._secondary_turn(now)
        elif self.state == State.NRM_PRIMARY and self._token:
            self._primary_turn(now)

    @property
    def pending_turn(self) -> float | None:
        """When our deferred turn is due (right after the frame that gave us the token), if one is."""
        return self._timers.get("turn")

    def _timer_p(self, now: float) -> None:
        if self.state == State.NRM_PRIMARY and self._token:
            self._primary_turn(now, idle_poll=True)

    def _timer_wd(self, now: float) -> None:
        if self.state not in (State.NRM_SECONDARY, State.SCLOSE):
            return
        assert self.params is not None
        self._wd_expiries += 1
        silent = self._wd_expiries * self._wd_timeout()
        if silent >= self.params.link_disconnect_s - 1e-9:
            self._to_ndm(now, DisconnectReason.LINK_LOST)
            return
        if self.params.link_disconnect_s > 3 and silent >= 3.0 - 1e-9 and not self._degraded_sent:
            self._degraded_sent = True
            self._events.append(LinkDegraded())
        self._start("wd", now + self._wd_timeout())

    def _wd_timeout(self) -> float:
        assert self.params is not None
        return 2 * self.params.rx_max_turnaround_ms / 1000

    def _start_wd(self, now: float) -> None:
        self._wd_expiries = 0
        self._start("wd", now + self._wd_timeout())

    # --- NRM common -------------------------------------------------------------------------------
    def _valid_nr(self, nr: int) -> bool:
        return _seq_diff(nr, self.va) <= _seq_diff(self.vs, self.va)

    def _ack(self, nr: int) -> None:
        while self.va != nr and self._unacked:
            self._unacked.popleft()
            self.va = (self.va + 1) % 8
        self._resend = [ns for ns in self._resend if _seq_diff(ns, self.va) < len(self._unacked)]

    def _go_back(self) -> None:
        """Resend every unacknowledged frame at our next turn, with the same sequence numbers.

        The frames stay unacknowledged and V(S) stays where it is: an answer that was only late (a
        slow peer answering an old poll after our next window left) may still acknowledge them, and must
        not look like an invalid N(R). (Moving them back to the send queue and rewinding V(S) turned
        such an answer into a reset, after which the frames were sent again and delivered twice.)
        """
        self._resend = [(self.va + offset) % 8 for offset in range(len(self._unacked))]

    def _on_i_frame(self, frame: F.IFrame) -> None:
        if frame.ns == self.vr:
            self.vr = (self.vr + 1) % 8
            self.stats.bytes_delivered += len(frame.info)
            self._received_this_turn = True
            self._idle_polls = 0
            if frame.info:
                self._events.append(Data(frame.info))

    def _handle_s_frame(self, frame: F.SFrame) -> None:
        self._ack(frame.nr)
        match frame:
            case F.RR():
                self._remote_busy = False
            case F.RNR():
                self._remote_busy = True
            case F.REJ():
                self._remote_busy = False
                self._go_back()
            case F.SREJ():
                self._queue_selective_resend(self.va)

    def _queue_selective_resend(self, ns: int) -> None:
        """Resend frame ``ns`` at our next turn, once however often the peer asks (a peer repeating SREJ
        must not make us send more than a window per turn)."""
        if _seq_diff(ns, self.va) < len(self._unacked) and ns not in self._resend:
            self._resend.append(ns)

    def _send_window(self, now: float, *, final: bool) -> float:
        """Our turn: (re)send I-frames up to the window, the last with P/F; else RR/RNR with P/F."""
        assert self.params is not None
        xbofs = self._first_xbofs()
        frames: list[F.Frame] = []
        command = self.is_primary
        if not self._remote_busy:
            for ns in sorted(self._resend, key=lambda ns: _seq_diff(ns, self.va)):
                frames.append(F.IFrame(address=self.ca, command=command, poll_final=False, ns=ns, nr=self.vr,
                                       info=self._unacked[_seq_diff(ns, self.va)]))
            self.stats.retransmissions += len(self._resend)
            self._resend = []
        while (self._queue and not self._remote_busy and len(self._unacked) < self.params.tx_window
               and len(frames) < self.params.tx_window):
            data = self._queue.popleft()
            frames.append(F.IFrame(address=self.ca, command=command, poll_final=False, ns=self.vs, nr=self.vr,
                                   info=data))
            self._unacked.append(data)
            self.vs = (self.vs + 1) % 8
            self.stats.i_frames_sent += 1
        if not frames:
            return self._send_supervisory(now, poll=final)
        frames[-1] = F.replace(frames[-1], poll_final=final)
        end = now
        for index, frame in enumerate(frames):
            end = self._emit(frame, now, xbofs if index == 0 else self._next_xbofs())
        self._received_this_turn = False
        return end

    def _send_supervisory(self, now: float, *, poll: bool) -> float:
        cls = F.RNR if self._local_busy else F.RR
        frame = cls(address=self.ca, command=self.is_primary, poll_final=poll, nr=self.vr)
        end = self._emit(frame, now, self._first_xbofs())
        self._received_this_turn = False
        if self.is_primary and poll:
            self._token = False
            self._start("f", end + self._f_timeout())
        return end

    def _f_timeout(self) -> float:
        assert self.params is not None
        return self.params.rx_max_turnaround_ms / 1000

    def _on_undefined(self, exc: F.UndefinedControlError, now: float) -> None:
        if exc.address_byte >> 1 != self.ca or not self.connected:
            return
        if self.state == State.NRM_SECONDARY:
            self._frmr = F.FRMR(address=self.ca, rejected_control=exc.control, vs=self.vs, vr=self.vr,
                                rejected_was_response=not exc.address_byte & 1, w=True, x=exc.has_info)
            if exc.control & F.PF:
                self._start("turn", now)
        elif self.state == State.NRM_PRIMARY:
            self._start_reset(now)

    # --- NRM primary ---------------------------------------------------------------------------------
    def _primary_turn(self, now: float, *, idle_poll: bool = False) -> None:
        """We hold the token: send data, a poll, a DISC, or wait (idle) for the P timer."""
        if self._close_requested:
            self._send_disc(now)
            return
        has_data = bool(self._queue or self._resend) and not self._remote_busy
        if has_data:
            self._idle_polls = 0
            end = self._send_window(now, final=True)
            self._token = False
            self._start("f", end + self._f_timeout())
            return
        if self._received_this_turn and not idle_poll and (grace := self._answer_grace()) > 0:
            self._answer_waited = True
            self._start("turn", now + grace)
            return
        if self._received_this_turn or idle_poll:
            self._send_supervisory(now, poll=True)
            return
        assert self.params is not None
        self._start("p", now + self._idle_poll_delay())

    def _idle_poll_delay(self) -> float:
        """How long the idle primary keeps the token before polling again.

        A peer that just received a request is usually about to answer it (an OBEX or IAS response), and
        it can only speak when polled; so the first idle polls come quickly and the wait doubles up to our
        max turnaround time, where an idle link settles. Data in either direction starts over.
        """
        assert self.params is not None
        delay = min(self.params.tx_max_turnaround_ms / 1000, FAST_POLL * 2 ** min(self._idle_polls, 16))
        self._idle_polls += 1
        return delay

    def _on_primary_frame(self, frame: F.Frame, now: float) -> None:
        if frame.command:
            return  # only responses come from a secondary
        if self.state == State.PCLOSE:
            if isinstance(frame, (F.UA, F.DM)):
                self._to_ndm(now, DisconnectReason.USER_REQUEST)
            return
        if self.state == State.RESET_WAIT:
            if isinstance(frame, F.UA):
                self._stop("f", "backoff")
                self.state = State.NRM_PRIMARY
                self._events.append(LinkReset(by_peer=False))
                self._primary_turn(now, idle_poll=True)
            elif isinstance(frame, F.DM):
                self._to_ndm(now, DisconnectReason.PEER_REQUEST)
            return
        match frame:
            case F.IFrame() | F.RR() | F.RNR() | F.REJ() | F.SREJ():
                if not self._valid_nr(frame.nr):
                    self._start_reset(now)
                    return
                if isinstance(frame, F.IFrame):
                    self._ack(frame.nr)
                    self._on_i_frame(frame)
                else:
                    self._handle_s_frame(frame)
            case F.FRMR():
                self._start_reset(now)
                return
            case F.RD():
                self._stop("f")
                self._send_disc(now)
                return
            case F.DM():
                self._to_ndm(now, DisconnectReason.PEER_REQUEST)
                return
            case F.RNRM():
                self._start_reset(now)
                return
            case F.TEST() | F.UI():
                if isinstance(frame, F.UI):
                    self._events.append(UIData(frame.info, frame.command))
            case _:
                return
        if frame.poll_final:
            self._stop("f")
            self._f_extended = False
            self._retries = 0
            self._degraded_sent = False
            self._token = True
            if self._unacked and not self._resend:
                self._go_back()  # the final N(R) did not cover everything we sent (SREJ names its one frame)
            self._start("turn", now)

    def _send_disc(self, now: float) -> None:
        self.state = State.PCLOSE
        self._token = False
        end = self._emit(F.DISC(address=self.ca), now, self._first_xbofs())
        self._start("f", end + self._f_timeout())

    def _start_reset(self, now: float) -> None:
        self.stats.resets += 1
        self._stop("p", "f")
        lost = len(self._unacked)
        self._unacked.clear()
        self._resend.clear()
        self.vs = self.vr = self.va = 0
        self._retries = 0
        self.state = State.RESET_WAIT
        del lost
        self._send_reset(now)

    def _send_reset(self, now: float) -> None:
        end = self._emit(F.SNRM(address=self.ca), now, self._first_xbofs())
        self._start("f", end + self._f_timeout())

    # --- NRM secondary -------------------------------------------------------------------------------
    def _on_secondary_frame(self, frame: F.Frame, now: float) -> None:
        if not frame.command:
            return
        self._start_wd(now)
        self._degraded_sent = False
        match frame:
            case F.IFrame() | F.RR() | F.RNR() | F.REJ() | F.SREJ():
                if self._frmr is None and not self._valid_nr(frame.nr):
                    self._frmr = F.FRMR(address=self.ca, rejected_control=F.build(frame)[1], vs=self.vs,
                                        vr=self.vr, z=True)
                elif self._frmr is None:
                    if isinstance(frame, F.IFrame):
                        self._ack(frame.nr)
                        self._on_i_frame(frame)
                    else:
                        self._handle_s_frame(frame)
            case F.SNRM() if frame.is_reset:
                self.stats.resets += 1
                params = self.params
                self._reset_link()
                self.params = params
                self._start_wd(now)
                self._events.append(LinkReset(by_peer=True))
                self._emit(F.UA(address=self.ca), now, self._first_xbofs())
                return
            case F.SNRM():
                return  # a new connection request while connected: the primary will time out and retry
            case F.DISC():
                self._emit(F.UA(address=self.ca), now, self._first_xbofs())
                self._to_ndm(now, DisconnectReason.USER_REQUEST if self.state == State.SCLOSE
                             else DisconnectReason.PEER_REQUEST)
                return
            case F.TEST():
                self._emit(F.TEST(address=self.ca, command=False, info=frame.info), now, self._first_xbofs())
                return
            case F.UI():
                self._events.append(UIData(frame.info, frame.command))
            case _:
                return
        if frame.poll_final:
            self._start("turn", now)

    def _secondary_turn(self, now: float) -> None:
        if self._frmr is not None:
            self.stats.frmr_sent += 1
            self._emit(self._frmr, now, self._first_xbofs())
            return
        if self._close_requested:
            self.state = State.SCLOSE
            self._emit(F.RD(address=self.ca), now, self._first_xbofs())
            return
        if self._unacked and not self._resend:
            # the primary polled again without acknowledging everything: resend from its N(R)
            self._go_back()
        if not ((self._queue or self._resend) and not self._remote_busy) and (grace := self._answer_grace()) > 0:
            self._answer_waited = True
            self._start("turn", now + grace)
            return
        self._send_window(now, final=True)
