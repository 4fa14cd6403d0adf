"""Two IrLAP stations on a hostile in-test medium, driven by hypothesis (a RuleBasedStateMachine).

The medium is one FIFO of frames in flight towards each station. Rules send data, deliver, drop,
duplicate, swap, corrupt frames, inject random bytes and random valid frames of every kind, make the
user requests (connect, disconnect, discover, busy) and move the clock to the next deadline. After every
step the invariants hold:

* no exception escapes ``receive`` / ``handle_timer`` / the requests (the rules call them bare);
* everything the station keeps is bounded: what the layer above handed it and the peer has not
  acknowledged (the tx and retransmission queues), unacknowledged frames (the window), frames and
  events one call produces, the discovery log;
* a station that is not idle has a deadline (nothing waits forever);
* data delivered is data sent, in order, without duplicates; a payload may go missing only where the
  link says so (a reset or disconnect). Frames forged into a link can make it lose or repeat data (IrLAP
  has no defence against a forged acknowledgement or sequence number), so on such a link the check is
  only that every payload delivered was sent, by the peer or by the forger.

Reordering is limited to swapping the two oldest frames in flight, and a (re)connection clears the
medium: IrLAP's modulo-8 numbering cannot tell an old frame that lingered for eight frames from a new
one, and no infrared medium holds light that long.
"""

from __future__ import annotations

import random
from collections import deque
from functools import cache

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from irlap import frames as F
from irlap.qos import QosParams
from irlap.sir import Unwrapper
from irlap.station import (
    MAX_LOGGED_DEVICES,
    Connected,
    Data,
    Disconnected,
    LinkReset,
    State,
    Station,
    Transmit,
)

A = 0x11111111
B = 0x22222222
#: payloads the test hands a station before it waits (the flow control of the layer above)
MAX_OUTSTANDING = 12
#: frames one call may emit: a full window of 7 and the frame of another timer due at the same instant
MAX_FRAMES_PER_CALL = 8
#: events one call may produce: a window of data plus a reset, disconnect or connect
MAX_EVENTS_PER_CALL = 10
IDLE = (State.NDM,)
SENDING = (State.NRM_PRIMARY, State.NRM_SECONDARY, State.RESET_WAIT)

QOS = [
    QosParams.offer(max_baud=115200, max_window=7, min_turnaround_us=1000),
    QosParams.offer(max_baud=9600, max_data_size=256, max_window=3),
]

#: a final XID of somebody else's discovery; bytes 3-6 are its source address
PASSER_BY = F.XIDCommand(source=0x40000000, slot=0xFF, info=F.DiscoveryInfo.make("passer-by")).to_bytes()
seq = st.integers(0, 7)
payload = st.binary(max_size=24)
device = st.sampled_from([A, B, 0x33333333]) | st.integers(1, 0xFFFFFFFE)


@cache
def forged_frames(ca: int | None) -> st.SearchStrategy[F.Frame]:
    """Valid frames of every kind: on the link's connection address (when there is one) or any other."""
    address = st.sampled_from([ca]) if ca is not None else st.integers(0, 0x7E)
    address = address | st.integers(0, 0x7E)
    common = {"address": address, "poll_final": st.booleans()}
    info = st.builds(F.DiscoveryInfo.make, st.text("abcxyz", max_size=8), hints=st.integers(0, 0x7F7F))
    return st.one_of(
        st.builds(F.IFrame, **common, command=st.booleans(), ns=seq, nr=seq, info=payload.map(lambda b: b"F" + b)),
        *(st.builds(cls, **common, command=st.booleans(), nr=seq) for cls in (F.RR, F.RNR, F.REJ, F.SREJ)),
        st.builds(F.FRMR, **common, rejected_control=st.integers(0, 0xFF), vs=seq, vr=seq, w=st.booleans(),
                  x=st.booleans(), y=st.booleans(), z=st.booleans()),
        st.builds(F.XIDCommand, source=device, slots=st.sampled_from(F.SLOT_COUNTS), slot=st.integers(0, 16),
                  info=st.none() | info),
        st.builds(F.XIDCommand, source=device, slots=st.sampled_from(F.SLOT_COUNTS), slot=st.just(0xFF),
                  info=info),
        st.builds(F.XIDResponse, source=device, dest=st.sampled_from([A, B]), slots=st.sampled_from(F.SLOT_COUNTS),
                  slot=st.integers(0, 15), info=info),
        st.builds(F.TEST, **common, command=st.booleans()),
        st.builds(F.TEST, command=st.booleans(), source=device, dest=st.sampled_from([A, B, F.BROADCAST_DEVICE]),
                  info=payload),
        st.builds(F.SNRM, source=device, dest=st.sampled_from([A, B]), new_address=st.integers(0, 0x7E),
                  qos=st.sampled_from(QOS)),
        st.builds(F.SNRM, address=address),  # a reset
        *(st.builds(cls, **common) for cls in (F.DISC, F.RD, F.DM, F.RNRM)),
        st.builds(F.UA, **common),
        st.builds(F.UA, **common, source=device, dest=st.sampled_from([A, B]), qos=st.sampled_from(QOS)),
        st.builds(F.UI, command=st.booleans(), info=payload),
    )


class TwoStations(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.stations = {A: Station(A, qos=QOS[0], rng=random.Random(1)),
                         B: Station(B, qos=QOS[0], rng=random.Random(2))}
        # frames on their way *to* a station, each with "already held back once"
        self.in_flight: dict[int, deque[tuple[bytes, bool]]] = {A: deque(), B: deque()}
        self.next_token = 0
        self.sent: dict[int, list[int]] = {A: [], B: []}  # tokens each station was given, in order
        self.last_delivered: dict[int, int] = {A: -1, B: -1}  # last token each station delivered
        self.loss_allowed = {A: False, B: False}  # by the receiver: a reset or disconnect since its last delivery
        self.tampered = False  # frames were forged into a link since both stations were last idle

    # --- plumbing ----------------------------------------------------------------------------------
    def other(self, address: int) -> int:
        return B if address == A else A

    def call(self, address: int, method: str, *args) -> None:
        """Call into one station (exceptions propagate: the test fails), then collect what it produced."""
        station = self.stations[address]
        getattr(station, method)(*args, self.now)
        self.collect(address)

    def collect(self, address: int) -> None:
        station = self.stations[address]
        actions = station.take_output()
        events = station.take_events()
        transmits = [a for a in actions if isinstance(a, Transmit)]
        assert len(transmits) <= MAX_FRAMES_PER_CALL, f"{len(transmits)} frames in one call"
        assert len(events) <= MAX_EVENTS_PER_CALL, f"{len(events)} events in one call"
        for event in events:
            self.on_event(address, event)
        self.in_flight[self.other(address)].extend((t.frame, False) for t in transmits)
        if all(s.state in IDLE for s in self.stations.values()):
            self.tampered = False  # no link state anywhere: whatever comes next is a fresh link

    def on_event(self, address: int, event) -> None:
        match event:
            case Connected():
                # the SNRM/UA exchange: what was in flight before belongs to an older link
                for queue in self.in_flight.values():
                    queue.clear()
                self.loss_allowed = {A: True, B: True}
            case LinkReset() | Disconnected():
                self.loss_allowed = {A: True, B: True}
            case Data(data=data):
                self.check_delivery(address, data)

    def check_delivery(self, receiver: int, data: bytes) -> None:
        if not data.startswith(b"T"):
            assert self.tampered, f"{data!r} was never sent"
            return
        token = int(data[1:9])
        sender = self.other(receiver)
        assert token in self.sent[sender], f"token {token} delivered to {receiver:x} but never sent to it"
        if not self.tampered:
            last = self.last_delivered[receiver]
            assert token > last, f"token {token} after {last}: out of order or duplicated"
            expected = next((t for t in self.sent[sender] if t > last), None)
            assert token == expected or self.loss_allowed[receiver], f"token {expected} lost without a reset"
        self.last_delivered[receiver] = max(token, self.last_delivered[receiver])
        self.loss_allowed[receiver] = False

    def deliver_frame(self, address: int, frame: bytes) -> None:
        station = self.stations[address]
        station.receive(frame, self.now)
        self.collect(address)

    def settle(self, steps: int) -> None:
        """A healthy medium for a while: deliver everything in flight, then move to the next deadline."""
        for _ in range(steps):
            for to in (A, B):
                while self.in_flight[to]:
                    self.deliver_frame(to, self.in_flight[to].popleft()[0])
            self.advance_to_next_deadline(0.0)

    def run_until(self, condition, steps: int = 30) -> bool:
        """A healthy medium, one frame or deadline at a time, until ``condition()`` holds."""
        for _ in range(steps):
            if condition():
                return True
            queue = next((to for to in (A, B) if self.in_flight[to]), None)
            if queue is None:
                self.advance_to_next_deadline(0.0)
            else:
                self.deliver_frame(queue, self.in_flight[queue].popleft()[0])
        return condition()

    # --- the layer above ---------------------------------------------------------------------------
    @initialize(who=st.sampled_from([A, B]), qos=st.sampled_from(QOS), count=st.integers(0, 12))
    def start_connected(self, who, qos, count):
        """Every run starts with a link set up on a clean medium and ``count`` payloads each way in flight."""
        self.connect(who, qos)
        self.settle(2)
        for sender in (A, B):
            self.send_data(sender, count, 20)
        self.settle(1)

    @rule(steps=st.integers(1, 12))
    def healthy_medium(self, steps):
        self.settle(steps)

    @rule(who=st.sampled_from([A, B]), count=st.integers(1, 10), size=st.integers(0, 40))
    def send_data(self, who, count, size):
        """``count`` payloads, each a token (its number) padded to ``size``, while the backlog allows."""
        station = self.stations[who]
        for _ in range(count):
            if station.state not in SENDING or station.backlog[0] >= MAX_OUTSTANDING:
                return
            data = b"T%08d" % self.next_token
            data += b"." * min(size, station.max_send_size - len(data))
            self.sent[who].append(self.next_token)
            self.next_token += 1
            self.call(who, "send", data)

    @rule(who=st.sampled_from([A, B]), qos=st.sampled_from(QOS))
    def connect(self, who, qos):
        station = self.stations[who]
        if all(s.state in IDLE for s in self.stations.values()) and not station.media_busy(self.now):
            station.qos = qos  # (a connect waiting for a free medium may not be repeated)
            self.call(who, "connect", self.other(who))

    @rule(who=st.sampled_from([A, B]), dice=st.integers(0, 3))
    def disconnect(self, who, dice):
        if dice == 0:  # a quarter of the draws: most runs should keep their link a while
            self.call(who, "disconnect")

    @rule(who=st.sampled_from([A, B]), busy=st.booleans())
    def local_busy(self, who, busy):
        self.call(who, "set_local_busy", busy)

    @rule(who=st.sampled_from([A, B]), slots=st.sampled_from([1, 6]))
    def discover(self, who, slots):
        station = self.stations[who]
        if station.state == State.NDM and not station.media_busy(self.now):
            self.call(who, "discover", slots)

    # --- the medium ----------------------------------------------------------------------------------
    @rule(to=st.sampled_from([A, B]), count=st.integers(1, 8))
    def deliver(self, to, count):
        for _ in range(count):
            if not self.in_flight[to]:
                return
            self.deliver_frame(to, self.in_flight[to].popleft()[0])

    @rule(to=st.sampled_from([A, B]))
    def drop(self, to):
        if self.in_flight[to]:
            self.in_flight[to].popleft()

    @rule(to=st.sampled_from([A, B]))
    def duplicate(self, to):
        if self.in_flight[to]:
            self.in_flight[to].insert(1, self.in_flight[to][0])

    @rule(to=st.sampled_from([A, B]))
    def swap(self, to):
        """The second frame overtakes the first, once per frame and never across a U-frame (SNRM, DISC...)."""
        queue = self.in_flight[to]
        if len(queue) < 2 or queue[0][1] or any(frame[1] & 0x03 == 0x03 for frame, _held in list(queue)[:2]):
            return
        queue[0], queue[1] = queue[1], (queue[0][0], True)

    @rule(to=st.sampled_from([A, B]), bit=st.integers(0, 10_000))
    def corrupt(self, to, bit):
        """Flip one bit on the line: the SIR unwrapper's FCS check must catch it."""
        if not self.in_flight[to]:
            return
        wire = bytearray(Transmit(self.in_flight[to].popleft()[0], 0).wire)
        wire[bit // 8 % len(wire)] ^= 1 << bit % 8
        for frame in Unwrapper().feed(bytes(wire)):
            self.deliver_frame(to, frame)

    @rule(fates=st.lists(st.sampled_from(["deliver", "deliver", "deliver", "drop", "duplicate", "swap", "corrupt",
                                          "wait"]), min_size=1, max_size=40), bit=st.integers(0, 10_000))
    def lossy_medium(self, fates, bit):
        """The medium at work with a fate for each frame in turn (a transfer under faults, not only between them)."""
        for fate in fates:
            to = next((to for to in (A, B) if self.in_flight[to]), None)
            if to is None or fate == "wait":
                self.advance_to_next_deadline(0.0)
            elif fate == "deliver":
                self.deliver(to, 1)
            elif fate == "corrupt":
                self.corrupt(to, bit)
            else:
                getattr(self, fate)(to)

    # --- a hostile third party ---------------------------------------------------------------------------
    def forge(self, to: int, frame: bytes) -> None:
        """Hand a station a frame nobody on the link sent; a link it touches is no longer trusted."""
        if self.stations[to].state not in IDLE:
            self.tampered = True
        self.deliver_frame(to, frame)
        if self.stations[to].state not in IDLE:
            self.tampered = True

    @rule(to=st.sampled_from([A, B]), data=st.binary(max_size=40))
    def inject_bytes(self, to, data):
        self.forge(to, data)

    @rule(to=st.sampled_from([A, B]), data=st.data())
    def inject_frame(self, to, data):
        self.forge(to, data.draw(forged_frames(self.stations[to].ca)).to_bytes())

    @rule(to=st.sampled_from([A, B]), count=st.integers(1, 50), pick=st.integers(0, 6))
    def srej_storm(self, to, count, pick):
        """Many SREJs (the last one final) naming frames in flight: the next turn still fits the window."""
        station = self.stations[to]
        self.send_data(to, 3, 0)
        if not self.run_until(lambda: station.unacked > 0 and station.ca is not None):
            return
        nr = (station.va + pick % station.unacked) % 8  # a frame still unacknowledged: a valid N(R)
        command = not station.is_primary
        for index in range(count):
            self.forge(to, F.SREJ(address=station.ca, command=command, poll_final=index == count - 1,
                                  nr=nr).to_bytes())
        self.advance_to_next_deadline(0.0)  # the turn the final SREJ gave

    @rule(to=st.sampled_from([A, B]), count=st.integers(1, 100))
    def overheard_discovery(self, to, count):
        """Discovery of many devices around us: the log stays under its cap."""
        for index in range(count):
            source = 0x40000000 + self.next_token * 1000 + index
            self.deliver_frame(to, PASSER_BY[:3] + source.to_bytes(4, "little") + PASSER_BY[7:])
        self.next_token += 1

    # --- the clock -----------------------------------------------------------------------------------------
    @rule(extra=st.sampled_from([0.0, 0.0, 0.001, 0.05]))
    def advance_to_next_deadline(self, extra):
        deadlines = [s.next_deadline() for s in self.stations.values() if s.next_deadline() is not None]
        self.now = max(self.now, min(deadlines) if deadlines else self.now + 1.0) + extra
        for address, station in self.stations.items():
            deadline = station.next_deadline()
            if deadline is not None and deadline <= self.now:
                self.call(address, "handle_timer")

    # --- invariants -----------------------------------------------------------------------------------------
    @invariant()
    def queues_stay_bounded(self):
        for station in self.stations.values():
            frames, _bytes = station.backlog
            assert frames <= MAX_OUTSTANDING, f"{frames} frames queued for {MAX_OUTSTANDING} handed over"
            window = station.params.tx_window if station.params else 7
            assert station.unacked <= window
            assert station.logged_devices <= MAX_LOGGED_DEVICES
            assert station.take_output() == [] and station.take_events() == []  # collect() drained them

    @invariant()
    def a_busy_station_has_a_deadline(self):
        for station in self.stations.values():
            if station.state not in IDLE:
                assert station.next_deadline() is not None, f"{station.state} with no timer"

    @invariant()
    def tokens_are_never_invented(self):
        for address in (A, B):
            assert self.last_delivered[address] < self.next_token


TwoStations.TestCase.settings = settings(max_examples=50, stateful_step_count=40, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
test_two_stations_on_a_hostile_medium = TwoStations.TestCase
