"""A discrete-event simulator of the infrared medium: N stations, a virtual clock, seeded faults.

Every station is a sans-IO :class:`~irlap.station.Station`; the simulator plays the part of its
runtime (ports, UARTs, dongles) and of the light between them:

* a transmission occupies the sender for its line time at the speed (:func:`irlap.framing.line_seconds`:
  10 bit times per SIR byte, 8 per MIR byte, 1 us per FIR chip byte), and every other station hears it; the
  medium is half duplex: a station that is sending hears nothing;
* overlapping transmissions corrupt each other (every receiver gets garbage);
* a receiver whose UART runs at another speed gets garbage too;
* faults from one seed: bit error rate, dropped transmissions, blocked-beam windows (outages), a
  station processing latency, and received frames duplicated or held back (so that later frames
  overtake them), as a buggy driver or dongle buffer would. The same seed gives the same run, event
  for event.

Received bytes go through the real decoder of the speed's framing (SIR unwrapper, MIR HDLC, FIR 4PPM), so
bit errors hit the framing overhead too (flags, stuffed bits, preamble, chips) and end as bad-FCS, aborted
or illegal-symbol drops exactly as on a real line. The bit error rate is per line bit (per chip at FIR).
:func:`run_link` and :func:`run_discovery` are the scenarios behind ``irda sim``.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from irlap import frames as F
from irlap import framing
from irlap.qos import QosParams
from irlap.station import (
    Connected,
    Data,
    Disconnected,
    Discovered,
    Event,
    SetSpeed,
    Station,
    Transmit,
)


@dataclass
class Faults:
    """What goes wrong on the medium; everything random is drawn from the simulator's seed."""

    ber: float = 0.0  #: probability that one data bit arrives flipped
    drop: float = 0.0  #: probability that a whole transmission is lost for everybody
    outages: list[tuple[float, float]] = field(default_factory=list)  #: (start, duration) of blocked beams
    latency: float = 0.0  #: station processing latency, seconds
    #: probability that a received frame is handed to the station twice (the copy ``duplicate_delay`` later)
    duplicate: float = 0.0
    duplicate_delay: tuple[float, float] = (0.0, 0.05)  #: (min, max) seconds between a frame and its copy
    #: probability that a received frame is held back by ``reorder_delay`` seconds, so later frames overtake it
    reorder: float = 0.0
    reorder_delay: tuple[float, float] = (0.005, 0.2)  #: (min, max) seconds a held-back frame is late

    def __post_init__(self) -> None:
        for name in ("ber", "drop", "duplicate", "reorder"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} is a probability in [0, 1)")
        if self.latency < 0 or any(duration < 0 for _start, duration in self.outages):
            raise ValueError("latency and outage durations cannot be negative")
        for name in ("duplicate_delay", "reorder_delay"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} is (min, max) with 0 <= min <= max")


@dataclass
class _Transmission:
    sender: Node
    start: float
    end: float
    wire: bytes
    baud: int


class Node:
    """A station with its simulated port: transmit queue, speed and the decoder of that speed's framing."""

    def __init__(self, sim: Simulator, station, name: str) -> None:
        """``station`` is a Station or any stack above one with the same driver interface (IrLMP...)."""
        self.sim = sim
        self.station = station
        self.name = name
        self.baud = getattr(station, "station", station).baud
        self.unwrapper = framing.unwrapper(self.baud)
        self.events: list[Event] = []
        self.on_event: Callable[[Node, Event], None] | None = None
        self.after: Callable[[Node], None] | None = None  # runs after every interaction (e.g. to feed data)
        self._actions: deque = deque()
        self._sending_until = 0.0
        self._transmitting = False
        self._timer_generation = 0
        self._timer_at: float | None = None
        self.sent_frames: list[tuple[float, bytes]] = []
        #: keep every event and sent frame in :attr:`events` and :attr:`sent_frames` (a long soak turns it off
        #: and watches events through :attr:`on_event`; :attr:`event_count` counts them either way)
        self.keep_history = True
        self.event_count = 0

    # every call into the station goes through here, so outputs and timers are always collected
    def call(self, method: str, *args) -> None:
        getattr(self.station, method)(*args, self.sim.now)
        self.pump()

    def pump(self) -> None:
        station = self.station
        for _ in range(100):
            actions = station.take_output()
            events = station.take_events()
            self._actions.extend(actions)
            self.event_count += len(events)
            for event in events:
                if self.keep_history:
                    self.events.append(event)
                if self.on_event:
                    self.on_event(self, event)
            if self.after:
                self.after(self)
            if not actions and not events:
                break
        self._start_next()
        self._schedule_timer()

    def _schedule_timer(self) -> None:
        deadline = self.station.next_deadline()
        if deadline == self._timer_at:
            return
        self._timer_generation += 1
        self._timer_at = deadline
        if deadline is not None:
            generation = self._timer_generation
            self.sim.at(max(deadline, self.sim.now), lambda: self._fire_timer(generation))

    def _fire_timer(self, generation: int) -> None:
        if generation != self._timer_generation:
            return
        self._timer_at = None
        self.station.handle_timer(self.sim.now)
        self.pump()

    def _start_next(self) -> None:
        if self._transmitting:
            return
        while self._actions:
            action = self._actions.popleft()
            if isinstance(action, SetSpeed):
                if framing.kind(action.baud) == framing.kind(self.baud):
                    self.unwrapper.reset()
                else:
                    self.unwrapper = framing.unwrapper(action.baud)  # MIR or FIR decoding (new counters)
                self.baud = action.baud
                continue
            assert isinstance(action, Transmit)
            start = self.sim.now + self.sim.faults.latency
            self._transmitting = True
            self.sim.at(start, lambda a=action: self._begin(a))
            return

    def _begin(self, action: Transmit) -> None:
        now = self.sim.now
        wire = action.wire
        end = now + framing.line_seconds(len(wire), self.baud)
        if self.keep_history:
            self.sent_frames.append((now, action.frame))
        self.sim._transmit(_Transmission(self, now, end, wire, self.baud))
        self.sim.at(end, self._end)

    def _end(self) -> None:
        self._transmitting = False
        self._start_next()


class Simulator:
    """Event loop with a virtual clock. ``at(time, fn)`` schedules; ``run`` advances."""

    def __init__(self, seed: int = 0, faults: Faults | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.now = 0.0
        self.nodes: list[Node] = []
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._recent: list[_Transmission] = []
        self.collisions = 0
        self.events_processed = 0
        self.duplicated = 0  #: frames handed to a station twice (Faults.duplicate)
        self.reordered = 0  #: frames held back so that later ones overtook them (Faults.reorder)
        self._outage_index: tuple[tuple[int, int], list[float], list[float]] | None = None

    def add(self, station, name: str | None = None) -> Node:
        node = Node(self, station, name or f"station{len(self.nodes)}")
        self.nodes.append(node)
        return node

    def station_rng(self) -> random.Random:
        """A random source for a new station, derived from the seed."""
        return random.Random(self.rng.getrandbits(64))

    def at(self, time: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (time, next(self._counter), fn))

    def run(self, until: float, stop: Callable[[], bool] | None = None, max_events: int = 50_000_000) -> None:
        """Process events up to simulated time ``until`` or until ``stop()`` is true."""
        while self._heap and self.events_processed < max_events:
            time, _seq, fn = self._heap[0]
            if time > until:
                break
            heapq.heappop(self._heap)
            self.now = max(self.now, time)
            fn()
            self.events_processed += 1
            if stop is not None and stop():
                return
        self.now = max(self.now, until) if not (stop and stop()) else self.now

    # --- the medium ----------------------------------------------------------------------------------
    def _transmit(self, tx: _Transmission) -> None:
        self._recent = [t for t in self._recent if t.end > tx.start - 1.0]
        self._recent.append(tx)
        blocked = self._in_outage(tx.start, tx.end)
        dropped = self.faults.drop and self.rng.random() < self.faults.drop
        for node in self.nodes:
            if node is tx.sender:
                continue
            if not blocked:
                self.at(tx.start, lambda n=node: n.station.sense(self.now))
        self.at(tx.end, lambda: self._deliver(tx, blocked or bool(dropped)))

    def _in_outage(self, start: float, end: float) -> bool:
        """Whether [start, end] overlaps a blocked-beam window (bisect: a soak has hundreds of outages)."""
        outages = self.faults.outages
        if not outages:
            return False
        key = (id(outages), len(outages))  # the list may grow between runs (append, never edit in place)
        if self._outage_index is None or self._outage_index[0] != key:
            ordered = sorted(outages)
            starts = [o_start for o_start, _d in ordered]
            reach, furthest = [], -math.inf
            for o_start, duration in ordered:
                furthest = max(furthest, o_start + duration)
                reach.append(furthest)  # the latest end among the outages starting up to here
            self._outage_index = (key, starts, reach)
        _copy, starts, reach = self._outage_index
        last = bisect.bisect_left(starts, end) - 1  # the outages that start before this transmission ends
        return last >= 0 and reach[last] > start

    def _deliver(self, tx: _Transmission, lost: bool) -> None:
        overlapping = [t for t in self._recent if t is not tx and t.start < tx.end and t.end > tx.start]
        collided = any(t.sender is not tx.sender for t in overlapping)
        if collided:
            self.collisions += 1
        if lost:
            return
        for node in self.nodes:
            if node is tx.sender:
                continue
            if any(t.sender is node for t in overlapping):
                continue  # half duplex: a station hears nothing while it sends
            if collided or node.baud != tx.baud:
                data = self._garbage(len(tx.wire) * node.baud // tx.baud)
            else:
                data = self._bit_errors(tx.wire)
            frames = node.unwrapper.feed(data)
            if node.unwrapper.in_frame:
                # the end of this transmission never came intact; a real UART would see silence next
                node.unwrapper.reset()
            for frame in frames:
                self._hand_over(node, frame)

    def _hand_over(self, node: Node, frame: bytes) -> None:
        """A frame out of the receiver's unwrapper to its station: on time, late, or twice."""
        faults = self.faults
        when = self.now + faults.latency
        if faults.reorder and self.rng.random() < faults.reorder:
            when += self.rng.uniform(*faults.reorder_delay)
            self.reordered += 1
        self.at(when, lambda: self._receive(node, frame))
        if faults.duplicate and self.rng.random() < faults.duplicate:
            self.duplicated += 1
            self.at(when + self.rng.uniform(*faults.duplicate_delay), lambda: self._receive(node, frame))

    def _receive(self, node: Node, frame: bytes) -> None:
        node.station.receive(frame, self.now)
        node.pump()

    def _garbage(self, length: int) -> bytes:
        return self.rng.randbytes(max(1, length))

    def _bit_errors(self, data: bytes) -> bytes:
        return flip_bits(data, self.faults.ber, self.rng)


def flip_bits(data: bytes, ber: float, rng: random.Random) -> bytes:
    """``data`` with each data bit flipped with probability ``ber`` (gaps drawn geometrically)."""
    if not ber:
        return data
    bits = len(data) * 8
    position = -1
    out: bytearray | None = None
    log_q = math.log1p(-ber)
    while True:
        position += 1 + int(math.log(1.0 - rng.random()) / log_q)
        if position >= bits:
            break
        if out is None:
            out = bytearray(data)
        out[position // 8] ^= 1 << (position % 8)
    return bytes(out) if out is not None else data


# --- scenarios -----------------------------------------------------------------------------------------
@dataclass
class LinkReport:
    """The outcome of :func:`run_link` (the JSON of ``irda sim link``)."""

    delivered_bytes: int
    intact: bool
    sim_seconds: float
    goodput_Bps: float
    line_rate_Bps: float
    efficiency: float
    retransmissions: int
    resets: int
    link_lost: bool
    baud: int
    data_size: int
    window: int
    prefix_ok: bool
    cpu_events: int

    def as_dict(self) -> dict:
        return {
            "delivered_bytes": self.delivered_bytes,
            "intact": self.intact,
            "sim_seconds": round(self.sim_seconds, 6),
            "goodput_Bps": round(self.goodput_Bps, 1),
            "line_rate_Bps": self.line_rate_Bps,
            "efficiency": round(self.efficiency, 4),
            "retransmissions": self.retransmissions,
            "resets": self.resets,
            "link_lost": self.link_lost,
            "baud": self.baud,
            "data_size": self.data_size,
            "window": self.window,
        }


def run_link(
    nbytes: int,
    *,
    baud: int = 115200,
    data_size: int = 2048,
    window: int = 7,
    min_turn_us: int = 10,
    link_disconnect_s: int = 12,
    faults: Faults | None = None,
    seed: int = 0,
) -> LinkReport:
    """One primary sends ``nbytes`` random bytes to one secondary over IrLAP."""
    sim = Simulator(seed, faults)
    payload = random.Random(seed ^ 0x5EED).randbytes(nbytes)
    qos = QosParams.offer(max_baud=baud, max_data_size=data_size, max_window=window, min_turnaround_us=min_turn_us,
                          max_link_disconnect_s=link_disconnect_s)
    primary = sim.add(Station(0x11111111, qos=qos, rng=sim.station_rng(),
                              info=F.DiscoveryInfo.make("primary")), "primary")
    secondary = sim.add(Station(0x22222222, qos=qos, rng=sim.station_rng(),
                                info=F.DiscoveryInfo.make("secondary")), "secondary")
    received = bytearray()
    state = {"offset": 0, "connected_at": None, "last_data": None, "lost": False, "done": False, "closed": False}

    def feed(node: Node) -> None:
        station = node.station
        if state["connected_at"] is None or not station.connected or state["closed"]:
            return
        size = station.max_send_size
        while state["offset"] < nbytes and station.tx_queue_len < 2 * max(1, station.params.tx_window):
            chunk = payload[state["offset"] : state["offset"] + size]
            state["offset"] += len(chunk)
            station.send(chunk, sim.now)

    def on_primary_event(node: Node, event: Event) -> None:
        if isinstance(event, Connected):
            state["connected_at"] = sim.now
        elif isinstance(event, Disconnected):
            state["lost"] = not state["closed"]
            state["done"] = True

    def on_secondary_event(node: Node, event: Event) -> None:
        if isinstance(event, Data):
            received.extend(event.data)
            state["last_data"] = sim.now
            if len(received) >= nbytes:
                state["done"] = True
        elif isinstance(event, Disconnected) and not state["closed"]:
            state["lost"] = True
            state["done"] = True

    primary.after = feed
    primary.on_event = on_primary_event
    secondary.on_event = on_secondary_event
    primary.call("connect", 0x22222222)
    line_rate = framing.data_rate(baud)
    limit = nbytes * 10 / 2400 * 4 + sum(d for _s, d in (faults.outages if faults else [])) + 120
    sim.run(until=limit, stop=lambda: state["done"])
    if not state["done"]:
        state["lost"] = True  # neither finished nor disconnected: report it as a failure, never hang
    if state["done"] and not state["lost"]:
        state["closed"] = True
        primary.call("disconnect")
        sim.run(until=sim.now + 10, stop=lambda: not primary.station.connected)
    start = state["connected_at"] if state["connected_at"] is not None else 0.0
    end = state["last_data"] if state["last_data"] is not None else sim.now
    seconds = max(end - start, 1e-9)
    delivered = len(received)
    goodput = delivered / seconds if delivered else 0.0
    link = primary.station.params or secondary.station.params
    negotiated = primary.events and next((e.params for e in primary.events if isinstance(e, Connected)), None)
    return LinkReport(
        delivered_bytes=delivered,
        intact=delivered == nbytes and hashlib.sha256(received).digest() == hashlib.sha256(payload).digest(),
        sim_seconds=seconds,
        goodput_Bps=goodput,
        line_rate_Bps=line_rate,
        efficiency=goodput / line_rate,
        retransmissions=primary.station.stats.retransmissions,
        resets=primary.station.stats.resets,
        link_lost=bool(state["lost"]),
        baud=(negotiated or link).baud if (negotiated or link) else 9600,
        data_size=(negotiated or link).tx_data_size if (negotiated or link) else 0,
        window=(negotiated or link).tx_window if (negotiated or link) else 0,
        prefix_ok=bytes(received) == payload[:delivered],
        cpu_events=sim.events_processed,
    )


@dataclass
class DiscoveryReport:
    devices: list[dict]
    rounds: int
    sim_seconds: float
    round_seconds: list[float]
    expected: int
    collisions: int

    def as_dict(self) -> dict:
        return {
            "devices": self.devices,
            "rounds": self.rounds,
            "sim_seconds": round(self.sim_seconds, 6),
            "round_seconds": [round(r, 6) for r in self.round_seconds],
            "all_found": len(self.devices) == self.expected,
            "collisions": self.collisions,
        }


def run_discovery(devices: int, *, slots: int = 6, seed: int = 0, max_rounds: int = 20,
                  faults: Faults | None = None) -> DiscoveryReport:
    """Discovery rounds by one initiator among ``devices`` responders until every one is found."""
    if devices < 0:
        raise ValueError("devices cannot be negative")
    sim = Simulator(seed, faults)
    initiator = sim.add(Station(0x1A1A1A1A, rng=sim.station_rng(), info=F.DiscoveryInfo.make("initiator")),
                        "initiator")
    addresses: set[int] = set()
    for index in range(devices):
        rng = sim.station_rng()
        address = rng.randrange(1, 0xFFFFFFFF)
        while address in addresses or address == 0x1A1A1A1A:
            address = rng.randrange(1, 0xFFFFFFFF)
        addresses.add(address)
        sim.add(Station(address, rng=rng, info=F.DiscoveryInfo.make(f"device-{index + 1}", hints=0x8420)),
                f"device-{index + 1}")
    found: dict[int, dict] = {}
    rounds: list[float] = []
    state = {"ended": False}

    def on_event(node: Node, event: Event) -> None:
        if isinstance(event, Discovered):
            for device in event.devices:
                found[device.address] = device.as_dict()  # the form irda discover --json prints
            rounds.append(sim.now - event.started)
            state["ended"] = True

    initiator.on_event = on_event
    current = {node.station.address for node in sim.nodes[1:]}
    while len(rounds) < max_rounds and not current <= set(found):
        state["ended"] = False
        initiator.call("discover", slots)
        sim.run(until=sim.now + 60, stop=lambda: state["ended"])
        current = {node.station.address for node in sim.nodes[1:]}
    listed = [found[a] for a in sorted(found) if a in current]
    return DiscoveryReport(listed, len(rounds), sim.now, rounds, devices, sim.collisions)
