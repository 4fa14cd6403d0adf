"""A soak of the whole stack on the simulated medium: hours of TinyTP transfers under hostile weather.

Two full stacks (IrLAP station + IrLMP + TinyTP), A and B, and a third bare station C on one simulated
medium (:mod:`irlap.sim`). From one seed:

* A opens TinyTP stream connections to B one after the other (up to :data:`MAX_OUTSTANDING` overlap),
  sends each a pseudo-random payload and closes it in an orderly way (TinyTP close); B's application
  reads the way a socket user does, until EOF (the peer's orderly disconnect) or a disconnect event,
  at once, slowly (a few kB/s) or with pauses;
* the weather changes every minute: bit error rate, duplicated and held-back (reordered) frames;
  blocked-beam outages come at random, most shorter than the link-disconnect threshold, some longer;
* C runs a discovery round every few seconds under a new address each time (people walking by), so
  A and B overhear XIDs and answer slots whenever they are not connected.

The checks (:attr:`SoakReport.failures`, empty when all is well):

* every connection that ended in an orderly way delivered exactly the bytes sent (not one corrupt,
  duplicated or lost byte), and a connection that broke delivered a prefix of them;
* a connection may break only when an outage longer than the link-disconnect threshold overlapped it,
  and then the receiving user was told (a disconnect event with a reason other than a user request);
* no deadlock: something progresses (a byte read, a connection begun or ended) at least every
  :data:`STALL_LIMIT` seconds of simulated time, outages aside, and every connection ends;
* bounded state, sampled every simulated second: IrLAP queues and window, the SREJ list, the
  discovery log, IrLMP queues and timers, TinyTP buffers and credit, pending events, the event heap.

:func:`run_soak` is used by ``tests/test_soak.py`` (a few simulated minutes per seed) and by
``benchmarks/soak.py`` (ten simulated hours).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from irlap import frames as F
from irlap import station as lap
from irlap.qos import QosParams
from irlap.sim import Faults, Simulator
from irlap.station import Station
from irsock.lmp import pdu as P
from irsock.lmp.stack import IrLMP
from irsock.ttp import TinyTP, TtpConnected, TtpDisconnected, TtpReadable

A_ADDRESS, B_ADDRESS, C_ADDRESS = 0xA0A0A0A0, 0xB0B0B0B0, 0xC0C0C0C0
LINK_DISCONNECT_S = 3  # the negotiated threshold: outages longer than this may break the link
MAX_OUTSTANDING = 3  # connections A keeps open at once (a new one starts while B still reads the last)
STALL_LIMIT = 40.0  # seconds without any progress (outages aside) count as a deadlock
CHUNK = 4096  # what A's application hands TinyTP at a time
BERS = (0.0, 0.0, 1e-6, 1e-5, 3e-5)
# bounds on state (the stacks are well-behaved peers of each other; a hostile peer is the fuzz tests' job)
LOG_BOUND = 8  # discovery log entries: C discovers at most every 2 s under a new address, entries expire after 6 s
LAP_QUEUE_BOUND = 16
LMP_QUEUE_BOUND = 16
HEAP_BOUND = 2000


@dataclass
class Transfer:
    index: int
    payload: bytes
    started: float
    a_conn: tuple[int, int] | None = None
    b_conn: tuple[int, int] | None = None
    offset: int = 0  # bytes A handed to TinyTP
    received: bytearray = field(default_factory=bytearray)
    a_end: P.DisconnectReason | None = None
    b_end: P.DisconnectReason | None = None
    b_eof: bool = False  # B's user has read everything there was after the peer's disconnect
    ended: float | None = None
    mode: str = "fast"  # how B's user reads: fast, slow, pauses
    rate: int = 0  # slow: bytes per second
    paused_until: float = 0.0

    @property
    def done(self) -> bool:
        return self.a_end is not None and (self.b_eof or self.b_conn is None)


@dataclass
class SoakReport:
    seed: int
    baud: int
    sim_seconds: float
    connections: int
    completed: int
    broken: int
    bytes_sent: int  # handed to TinyTP by A
    bytes_delivered: int  # read by B's user
    bytes_completed: int  # in connections that ended in an orderly way, all verified
    goodput_Bps: float
    retransmissions: int
    resets: int
    lap_disconnects: int
    lap_connections: int
    outages: int
    long_outages: int
    duplicated: int
    reordered: int
    collisions: int
    discovery_rounds: int
    max_log: int
    max_lap_queue: int
    max_lmp_queue: int
    max_rx_buffered: int
    max_heap: int
    events: int
    sim_events: int
    wall_seconds: float
    cpu_seconds: float
    failures: list[str]

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("sim_seconds", "goodput_Bps", "wall_seconds", "cpu_seconds"):
            out[key] = round(out[key], 3)
        out["failures"] = self.failures[:20]
        out["failure_count"] = len(self.failures)
        return out


def _stack(address: int, nickname: str, qos: QosParams, sim: Simulator) -> TinyTP:
    station = Station(address, qos=qos, rng=sim.station_rng(), info=F.DiscoveryInfo.make(nickname, hints=0x8404))
    return TinyTP(IrLMP(station))


def _weather(seconds: float, rng: random.Random) -> tuple[list[tuple[float, float]], int]:
    """Outages over ``seconds``: a mean gap of 90 s; one in four longer than the link-disconnect threshold,
    those at least 60 s apart so that a connection can succeed between them. Returns (outages, long ones)."""
    outages: list[tuple[float, float]] = []
    long_count = 0
    t = rng.uniform(10, 60)
    last_long = -1e9
    while t < seconds:
        if rng.random() < 0.25 and t - last_long > 60:
            duration = rng.uniform(LINK_DISCONNECT_S + 1, LINK_DISCONNECT_S + 12)
            last_long = t
            long_count += 1
        else:
            duration = rng.uniform(0.05, LINK_DISCONNECT_S * 0.6)
        outages.append((t, duration))
        t += duration + rng.expovariate(1 / 90)
    return outages, long_count


def run_soak(seconds: float = 180.0, *, seed: int = 0, baud: int | None = None, max_size: int | None = None,
             duplicate: float | None = None, reorder: float | None = None) -> SoakReport:
    """``seconds`` of simulated transfers (see the module docstring); never raises for a stack failure:
    the failures are listed in the report."""
    wall, cpu = time.perf_counter(), time.process_time()
    rng = random.Random(seed ^ 0x50A4)
    baud = baud or rng.choice((9600, 38400, 115200, 115200))
    max_size = max_size or max(2000, baud * 2)  # up to ~20 s of line time per connection
    # the outages from a generator of their own: a shorter run is a prefix of a longer one with the same seed,
    # so a failure seen after hours can be replayed by running just past it
    outages, long_count = _weather(seconds, random.Random(seed ^ 0x0A7A6E))
    faults = Faults(outages=outages,
                    duplicate=duplicate if duplicate is not None else rng.choice((0.0, 0.002, 0.01)),
                    reorder=reorder if reorder is not None else rng.choice((0.0, 0.002, 0.01)))
    sim = Simulator(seed, faults)
    qos = QosParams.offer(max_baud=baud, max_link_disconnect_s=LINK_DISCONNECT_S)
    a_stack = _stack(A_ADDRESS, "soak-a", qos, sim)
    b_stack = _stack(B_ADDRESS, "soak-b", qos, sim)
    c_station = Station(C_ADDRESS, rng=sim.station_rng(), info=F.DiscoveryInfo.make("passer-by", hints=0x0400))
    a, b, c = sim.add(a_stack, "A"), sim.add(b_stack, "B"), sim.add(c_station, "C")
    for node in (a, b, c):
        node.keep_history = False
    service = b_stack.listen()

    failures: list[str] = []
    transfers: list[Transfer] = []
    by_a: dict[tuple[int, int], Transfer] = {}
    by_b: dict[tuple[int, int], Transfer] = {}
    orphans: list[Transfer] = []  # connections B accepted after A had given up on them
    stats = {"progress": 0.0, "rounds": 0, "lap_disconnects": 0, "lap_connections": 0, "next_at": 0.0,
             "max_log": 0, "over": set(), "max_lap_queue": 0, "max_lmp_queue": 0, "max_rx": 0, "max_heap": 0}

    def fail(message: str) -> None:
        if len(failures) < 200:
            failures.append(f"t={sim.now:.3f} {message}")

    def long_outage_between(start: float, end: float) -> bool:
        return any(o_start < end and o_start + d > start - 1 and d > LINK_DISCONNECT_S for o_start, d in outages)

    stale_frames = bool(faults.duplicate or faults.reorder)
    link_breaks: list[float] = []  # when A or B saw its IrLAP link reset or lost

    def excused(start: float, end: float) -> bool:
        """A connection may break when an outage longer than the threshold overlapped it; or, when frames
        are duplicated or reordered, when the link was reset or lost meanwhile: IrLAP's 3-bit sequence
        numbers assume a medium that does neither, and a stale frame's N(R) is invalid (the standard's
        answer is a reset, and IrLMP's answer to a reset is to disconnect every LSAP connection)."""
        return long_outage_between(start, end) or (stale_frames and any(start <= t <= end for t in link_breaks))

    def progress() -> None:
        stats["progress"] = sim.now

    # --- A: the sending application ------------------------------------------------------------------
    def start_transfer() -> None:
        if sim.now >= seconds:
            return
        if sum(1 for t in transfers if not t.done) >= MAX_OUTSTANDING:
            next_transfer(0.5)  # B's user is still reading the earlier ones: try again soon
            return
        size = rng.randint(1, max_size) if rng.random() < 0.9 else rng.randint(0, 64)
        transfer = Transfer(len(transfers), rng.randbytes(size), sim.now)
        transfer.mode = rng.choice(("fast", "fast", "slow", "pauses"))
        transfer.rate = rng.randint(max(200, baud // 100), max(400, baud // 20))
        transfers.append(transfer)
        try:
            transfer.a_conn = a_stack.connect(B_ADDRESS, service, sim.now)
        except Exception as exc:  # noqa: BLE001 - the soak reports, it does not stop
            fail(f"#{transfer.index}: connect raised {exc!r}")
            transfer.a_end = P.DisconnectReason.UNSPECIFIED
            transfer.ended = sim.now
            return
        by_a[transfer.a_conn] = transfer
        progress()
        a.pump()

    def next_transfer(delay: float) -> None:
        when = sim.now + delay
        if when > stats["next_at"]:
            stats["next_at"] = when
            sim.at(when, start_transfer)

    def feed(node) -> None:
        for conn_id, transfer in list(by_a.items()):
            conn = a_stack.connections.get(conn_id)
            if conn is None or not conn.open or conn.closing:
                continue
            while transfer.offset < len(transfer.payload) and a_stack.pending(conn_id) < CHUNK:
                piece = transfer.payload[transfer.offset: transfer.offset + CHUNK]
                transfer.offset += len(piece)
                a_stack.send(conn_id, piece, sim.now)
            if transfer.offset >= len(transfer.payload):
                a_stack.close(conn_id, sim.now)

    def on_a(node, event) -> None:
        if isinstance(event, TtpConnected):
            progress()
        elif isinstance(event, TtpDisconnected):
            transfer = by_a.pop(event.conn, None)
            if transfer is None:
                fail(f"A: disconnect for an unknown connection {event.conn}")
                return
            transfer.a_end = event.reason
            progress()
            if event.reason in (P.DisconnectReason.UNEXPECTED_LAP_DISCONNECT, P.DisconnectReason.LAP_RESET):
                link_breaks.append(sim.now)  # IrLMP tells its users before passing the IrLAP event on
            if event.reason != P.DisconnectReason.USER_REQUEST and transfer.b_conn is None:
                transfer.ended = sim.now  # never reached B's user
                if not excused(transfer.started, sim.now) and not any(
                        o_start < sim.now and o_start + d > transfer.started for o_start, d in outages):
                    fail(f"#{transfer.index}: the connection failed ({event.reason.name}: {event.detail}) "
                         "without an outage")
            release(transfer)
            next_transfer(rng.choice((0.0, 0.0, rng.uniform(0, 1), rng.uniform(1, 5))))
        elif isinstance(event, lap.Disconnected):
            stats["lap_disconnects"] += 1
            if event.reason != lap.DisconnectReason.USER_REQUEST:
                link_breaks.append(sim.now)
        elif isinstance(event, lap.LinkReset):
            link_breaks.append(sim.now)
        elif isinstance(event, lap.Connected):
            stats["lap_connections"] += 1

    # --- B: the receiving application ----------------------------------------------------------------
    def read(transfer: Transfer, budget: int | None) -> None:
        if transfer.b_eof or transfer.b_conn is None:
            return
        data = b_stack.recv(transfer.b_conn, budget, sim.now)
        if data:
            transfer.received += data
            progress()
        elif transfer.b_end is not None:
            end_of_b(transfer)

    def end_of_b(transfer: Transfer) -> None:
        """B's user saw EOF or the disconnect: the verdict on this connection."""
        transfer.b_eof = True
        transfer.ended = sim.now
        by_b.pop(transfer.b_conn, None)
        sent = transfer.payload
        got = bytes(transfer.received)
        if transfer.index < 0:
            if got:
                fail(f"B: {len(got)} bytes arrived on connection {transfer.b_conn}, which A had given up on")
            return
        if transfer.b_end == P.DisconnectReason.USER_REQUEST:
            if got != sent:
                differ = (i for i, (x, y) in enumerate(zip(got, sent, strict=False)) if x != y)
                prefix = len(got) if sent.startswith(got) else next(differ, 0) if got and sent else 0
                fail(f"#{transfer.index}: orderly close but {len(got)} of {len(sent)} bytes read "
                     f"({'a prefix: the tail was lost' if sent.startswith(got) else f'differs at byte {prefix}'})")
        else:
            if not sent.startswith(got):
                fail(f"#{transfer.index}: broken connection delivered bytes that were not sent")
            if not excused(transfer.started, sim.now):
                fail(f"#{transfer.index}: broken ({transfer.b_end.name}) without a long outage")
        release(transfer)

    def release(transfer: Transfer) -> None:
        """Nothing to free by hand: TinyTP gives back the LSAP it allocated once it forgets the connection
        (and LSAPs are allocated round-robin, so the next connections do not reuse it)."""

    def reader_tick(transfer: Transfer) -> None:
        if transfer.b_eof:
            return
        if transfer.mode == "slow":
            read(transfer, max(1, transfer.rate // 10))
        elif transfer.mode == "pauses" and sim.now >= transfer.paused_until:
            read(transfer, None)
            if rng.random() < 0.02:
                transfer.paused_until = sim.now + rng.uniform(0.5, 5.0)
        b.pump()
        if not transfer.b_eof:
            sim.at(sim.now + 0.1, lambda: reader_tick(transfer))

    def on_b(node, event) -> None:
        if isinstance(event, (lap.LinkReset, lap.Disconnected)):
            link_breaks.append(sim.now)
        if isinstance(event, TtpConnected):
            transfer = next((t for t in by_a.values() if t.a_conn == (event.conn[1], event.conn[0])), None)
            if transfer is None or transfer.b_conn is not None:
                # A gave up on this connect (no confirm within IrLMP's connect timeout, an outage) after its
                # Connect PDU had reached IrLAP: B accepts it, then gets A's disconnect. Nothing may arrive on it.
                orphan = Transfer(-1, b"", sim.now, b_conn=event.conn, a_end=P.DisconnectReason.CLIENT_NOT_RESPONDING)
                orphans.append(orphan)
                by_b[event.conn] = orphan
                return
            transfer.b_conn = event.conn
            by_b[event.conn] = transfer
            progress()
            if transfer.mode != "fast":
                sim.at(sim.now + 0.1, lambda: reader_tick(transfer))
        elif isinstance(event, TtpReadable):
            transfer = by_b.get(event.conn)
            if transfer is not None and transfer.mode == "fast":
                sim.at(sim.now, lambda: (read(transfer, None), b.pump()))
        elif isinstance(event, TtpDisconnected):
            transfer = by_b.get(event.conn)
            if transfer is None:
                return
            transfer.b_end = event.reason
            progress()
            if transfer.mode == "fast":  # read until EOF, as a socket user would
                sim.at(sim.now, lambda: (read(transfer, None), b.pump()))

    # --- C: a passer-by discovering ----------------------------------------------------------------
    def discover() -> None:
        if c_station.state == lap.State.NDM and not c_station._pending_ndm:
            c_station.address = rng.randrange(1, 0xFFFFFFFE)
            c.call("discover", rng.choice(lap.DISCOVERY_SLOTS))
            stats["rounds"] += 1
        if sim.now < seconds:
            sim.at(sim.now + rng.uniform(2.0, 8.0), discover)

    # --- the weather and the watch ------------------------------------------------------------------
    def weather() -> None:
        sim.faults.ber = rng.choice(BERS)
        if sim.now < seconds:
            sim.at(sim.now + 60, weather)

    def watch() -> None:
        check_bounds()
        blocked = any(o_start <= sim.now <= o_start + d + LINK_DISCONNECT_S * 2 + 10 for o_start, d in outages)
        if sim.now - stats["progress"] > STALL_LIMIT and not blocked:
            fail(f"no progress for {sim.now - stats['progress']:.1f} s (deadlock?): "
                 f"{[(t.index, t.offset, len(t.received), t.a_end, t.b_end) for t in transfers if not t.done]}")
            stats["progress"] = sim.now  # report each stall once
        if sim.now < seconds + 120:
            sim.at(sim.now + 1.0, watch)

    def check_bounds() -> None:
        for name, stack in (("A", a_stack), ("B", b_stack)):
            station, lmp = stack.station, stack.lmp
            stats["max_log"] = max(stats["max_log"], len(station._log))
            stats["max_lap_queue"] = max(stats["max_lap_queue"], station.tx_queue_len)
            stats["max_heap"] = max(stats["max_heap"], len(sim._heap))
            checks = [
                ("discovery log", len(station._log), LOG_BOUND),
                ("IrLAP queue", station.tx_queue_len, LAP_QUEUE_BOUND),
                ("IrLAP unacked", station.unacked, 7),
                ("IrLAP SREJ list", station.pending_resends, 7),
                ("IrLAP pending NDM requests", len(station._pending_ndm), 4),
                ("IrLAP pending events", len(station._events), 0),
                ("IrLMP connections", len(lmp.connections), MAX_OUTSTANDING * 2 + 2),
                ("IrLMP round-robin", len(lmp._rr), MAX_OUTSTANDING * 2 + 2),
                ("IrLMP timers", len(lmp._timers), MAX_OUTSTANDING * 2 + 4),
                ("IrLMP pending events", len(lmp._events), 0),
                ("TinyTP connections", len(stack.connections), MAX_OUTSTANDING),
                ("TinyTP pending events", len(stack._events), 0),
                ("simulator heap", len(sim._heap), HEAP_BOUND),
            ]
            room = 2048  # the largest IrLAP data size: one TinyTP PDU carries less
            for conn in lmp.connections.values():
                stats["max_lmp_queue"] = max(stats["max_lmp_queue"], len(conn.queue))
                checks.append(("IrLMP connection queue", len(conn.queue), LMP_QUEUE_BOUND))
            for conn in stack.connections.values():
                buffered = sum(len(u[0]) for u in conn.rx_units)
                stats["max_rx"] = max(stats["max_rx"], buffered)
                checks.append(("TinyTP receive buffer", buffered, stack.initial_credit * room))
                checks.append(("TinyTP send queue", sum(len(p) for p, _m in conn.tx_segments), 2 * CHUNK))
                checks.append(("TinyTP credit", conn.tx_credit, P.TTP_MAX_CREDIT))
            for what, value, bound in checks:
                if value > bound and (name, what) not in stats["over"]:
                    stats["over"].add((name, what))  # each bound once: the first time it is passed
                    fail(f"{name}: {what} is {value}, above its bound of {bound}")

    a.after = feed
    a.on_event = on_a
    b.on_event = on_b
    sim.at(0.0, start_transfer)
    sim.at(rng.uniform(0.5, 3.0), discover)
    sim.at(0.0, weather)
    sim.at(1.0, watch)
    sim.run(until=seconds)
    # no new connections from here; give the ones under way time to end
    stats["next_at"] = float("inf")
    sim.run(until=seconds + 120, stop=lambda: all(t.done for t in transfers + orphans))
    for transfer in transfers + orphans:
        if not transfer.done:
            fail(f"#{transfer.index} never ended (A: {transfer.a_end}, B: {transfer.b_end}, "
                 f"{len(transfer.received)} of {len(transfer.payload)} bytes read, mode {transfer.mode})")
    completed = [t for t in transfers if t.b_end == P.DisconnectReason.USER_REQUEST and t.b_eof]
    broken = [t for t in transfers if t.done and t not in completed]
    delivered = sum(len(t.received) for t in transfers)
    station_a, station_b = a_stack.station.stats, b_stack.station.stats
    return SoakReport(
        seed=seed, baud=baud, sim_seconds=sim.now, connections=len(transfers), completed=len(completed),
        broken=len(broken), bytes_sent=sum(t.offset for t in transfers), bytes_delivered=delivered,
        bytes_completed=sum(len(t.payload) for t in completed), goodput_Bps=delivered / max(sim.now, 1e-9),
        retransmissions=station_a.retransmissions + station_b.retransmissions,
        resets=station_a.resets + station_b.resets, lap_disconnects=stats["lap_disconnects"],
        lap_connections=stats["lap_connections"], outages=len(outages), long_outages=long_count,
        duplicated=sim.duplicated, reordered=sim.reordered, collisions=sim.collisions,
        discovery_rounds=stats["rounds"], max_log=stats["max_log"], max_lap_queue=stats["max_lap_queue"],
        max_lmp_queue=stats["max_lmp_queue"], max_rx_buffered=stats["max_rx"], max_heap=stats["max_heap"],
        events=a.event_count + b.event_count + c.event_count, sim_events=sim.events_processed,
        wall_seconds=time.perf_counter() - wall, cpu_seconds=time.process_time() - cpu, failures=failures,
    )
