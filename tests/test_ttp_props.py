"""TinyTP over IrLMP between two full stacks in the simulator, driven by hypothesis (a RuleBasedStateMachine).

Rules open connections from A to B, send random data on them, read some of it at B (or nothing, so that
credit runs out), close them in order, close them keeping what was received, abort them, close B's
end, let bit errors and short outages happen, and run the clock. After every step:

* no exception escapes the stacks (the rules call them bare);
* bounded: the credit a connection holds never exceeds 127, what B buffers never exceeds the credit it
  granted (14 PDUs of one frame each), IrLMP's queues stay a few PDUs deep;
* what B has read on a connection is a prefix of what A sent on it, in order, without duplicates;

and at the end, with the line clean again, every connection A closed in order has delivered every
byte to a reader that reads to EOF.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from irlap.sim import Faults
from irsock.lmp import pdu as P
from irsock.ttp import DEFAULT_CREDIT, TtpDisconnected
from tests.test_lmp import B, pair

MAX_CONNECTIONS = 4


class TinyTPPair(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.faults = Faults()
        self.sim, self.a, self.b = pair(ttp=True, faults=self.faults)
        self.lsap = self.b.station.listen()
        self.sent: dict = {}  # A's connection -> bytes handed to send
        self.read: dict = {}  # B's connection -> bytes read
        self.peer_of: dict = {}  # A's connection -> B's connection (by LSAP pair)
        self.closed_in_order: set = set()  # A's connections closed by A without abort
        self.broken: set = set()  # A's connections that ended for another reason than an orderly close
        self.max_frame = 0

    # --- helpers -------------------------------------------------------------------------------------
    def open_connections(self) -> list:
        ttp = self.a.station
        return [c for c in self.sent if c in ttp.connections and ttp.connections[c].open
                and not ttp.connections[c].closing]

    def b_conn(self, a_conn):
        return (a_conn[1], a_conn[0])

    def run(self, seconds: float) -> None:
        self.sim.run(until=self.sim.now + seconds)
        for event in self.b.events:
            if isinstance(event, TtpDisconnected) and event.reason != P.DisconnectReason.USER_REQUEST:
                self.broken.add((event.conn[1], event.conn[0]))
        for event in self.a.events:
            if isinstance(event, TtpDisconnected) and event.reason != P.DisconnectReason.USER_REQUEST:
                self.broken.add(event.conn)
        self.a.events.clear()
        self.b.events.clear()

    # --- rules ----------------------------------------------------------------------------------------
    @precondition(lambda self: len(self.open_connections()) < MAX_CONNECTIONS)
    @rule()
    def connect(self) -> None:
        try:
            conn = self.a.station.connect(B, self.lsap, self.sim.now)
        except Exception:  # noqa: BLE001 - the link is busy closing, or no LSAP: the user is told at once
            return
        self.a.pump()
        self.sent[conn] = b""
        self.read[self.b_conn(conn)] = b""
        self.run(1.0)

    @rule(data=st.binary(min_size=1, max_size=6000), which=st.integers(0, 3))
    def send(self, data: bytes, which: int) -> None:
        conns = self.open_connections()
        if not conns:
            return
        conn = conns[which % len(conns)]
        self.a.call("send", conn, data)
        self.sent[conn] += data

    @rule(amount=st.sampled_from([0, 100, 2000, 100_000]))
    def read_at_b(self, amount: int) -> None:
        for conn in list(self.b.station.connections):
            if conn in self.read:
                self.read[conn] += self.b.station.recv(conn, amount, self.sim.now)
        self.b.pump()

    @rule(which=st.integers(0, 3), keep=st.booleans())
    def close(self, which: int, keep: bool) -> None:
        conns = self.open_connections()
        if conns:
            conn = conns[which % len(conns)]
            self.a.station.close(conn, self.sim.now, keep_received=keep)
            self.a.pump()
            self.closed_in_order.add(conn)

    @rule(which=st.integers(0, 3))
    def abort(self, which: int) -> None:
        conns = self.open_connections()
        if conns:
            conn = conns[which % len(conns)]
            self.a.call("abort", conn)
            self.broken.add(conn)

    @rule(which=st.integers(0, 3))
    def b_closes(self, which: int) -> None:
        conns = [c for c in self.b.station.connections if c in self.read]
        if conns:
            conn = conns[which % len(conns)]
            self.b.call("close", conn)
            self.broken.add(self.b_conn(conn))  # A's data after this point is not read by anybody

    @rule(ber=st.sampled_from([0.0, 1e-5, 1e-4]))
    def line(self, ber: float) -> None:
        self.faults.ber = ber

    @rule(seconds=st.sampled_from([0.05, 0.5, 3.0]))
    def wait(self, seconds: float) -> None:
        self.run(seconds)

    # --- invariants -------------------------------------------------------------------------------------
    @invariant()
    def bounded(self) -> None:
        for stack in (self.a.station, self.b.station):
            frame = stack.lmp.max_data() + 2 if stack.lmp.link_up else 0
            self.max_frame = max(self.max_frame, frame)
            for conn in stack.connections.values():
                assert conn.tx_credit <= P.TTP_MAX_CREDIT
                buffered = sum(len(unit[0]) for unit in conn.rx_units) + len(conn.rx_partial)
                assert buffered <= DEFAULT_CREDIT * max(self.max_frame, 64)
            for conn in stack.lmp.connections.values():
                assert len(conn.queue) <= 16

    @invariant()
    def prefix_in_order(self) -> None:
        for a_conn, sent in self.sent.items():
            got = self.read.get(self.b_conn(a_conn), b"")
            assert sent.startswith(got), f"{a_conn}: B read bytes A did not send, or out of order"

    def teardown(self) -> None:
        """A clean line and a reader that reads to the end: every orderly close delivered everything."""
        self.faults.ber = 0.0
        for _ in range(200):
            self.read_at_b(100_000)
            self.run(1.0)
            if not any(c in self.b.station.connections for c in self.read):
                break
        for a_conn in self.closed_in_order - self.broken:
            got = self.read.get(self.b_conn(a_conn), b"")
            assert got == self.sent[a_conn], f"{a_conn}: {len(got)} of {len(self.sent[a_conn])} bytes after close"


TinyTPPair.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
test_tinytp_state_machine = TinyTPPair.TestCase
