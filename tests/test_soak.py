"""The simulator's new faults (duplicated, held-back frames) and the soak of the whole stack (irsock/soak.py).

CI runs a short seed set (a few simulated minutes each, well under a second of wall time per seed);
``benchmarks/soak.py --hours 10`` is the long mode.
"""

import functools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irlap import frames as F
from irlap.sim import Faults, Simulator
from irlap.station import Transmit
from irsock.lmp import pdu as P
from irsock.sim import soak
from irsock.ttp import TinyTP


class Talker:
    """A stand-in for a station: sends the frames it is given, records the frames it receives."""

    baud = 9600

    def __init__(self) -> None:
        self.out: list = []
        self.got: list[tuple[float, bytes]] = []

    def take_output(self):
        out, self.out = self.out, []
        return out

    def take_events(self):
        return []

    def next_deadline(self):
        return None

    def sense(self, now):
        pass

    def receive(self, frame, now):
        self.got.append((now, frame))

    def say(self, n):
        for i in range(n):
            frame = F.UI(command=True, poll_final=False, info=i.to_bytes(2, "big"))
            self.out.append(Transmit(frame=F.build(frame), xbofs=0))


def run_talk(faults, seed=5, n=400):
    sim = Simulator(seed, faults)
    talker, listener = Talker(), Talker()
    node = sim.add(talker, "talker")
    sim.add(listener, "listener")
    talker.say(n)
    node.pump()
    sim.run(until=100)
    order = [int.from_bytes(F.parse(frame).info, "big") for _t, frame in listener.got]
    return sim, order


def test_duplicate_fault_hands_some_frames_over_twice_and_nothing_else_changes():
    sim, order = run_talk(Faults(duplicate=0.1))
    assert 15 < sim.duplicated < 70 and sim.reordered == 0
    assert len(order) == 400 + sim.duplicated
    assert sorted(set(order)) == list(range(400))
    assert sum(1 for i in range(400) if order.count(i) == 2) == sim.duplicated


def test_reorder_fault_lets_later_frames_overtake_and_loses_none():
    sim, order = run_talk(Faults(reorder=0.1, reorder_delay=(0.05, 0.2)))
    assert 15 < sim.reordered < 70 and sim.duplicated == 0
    assert sorted(order) == list(range(400)) and order != list(range(400))


def test_faults_off_change_nothing_and_faults_are_deterministic_from_the_seed():
    _sim, order = run_talk(Faults())
    assert order == list(range(400))
    first = run_talk(Faults(duplicate=0.05, reorder=0.05), seed=9)
    again = run_talk(Faults(duplicate=0.05, reorder=0.05), seed=9)
    assert first[1] == again[1] and first[0].duplicated == again[0].duplicated


@pytest.mark.parametrize("bad", [{"duplicate": 1.0}, {"reorder": -0.1}, {"reorder_delay": (0.2, 0.1)},
                                 {"duplicate_delay": (-1, 0)}])
def test_fault_parameters_are_checked(bad):
    with pytest.raises(ValueError):
        Faults(**bad)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 20)), max_size=30), st.floats(0, 120), st.floats(0, 3))
def test_outage_lookup_agrees_with_a_plain_scan(outages, start, length):
    sim = Simulator(0, Faults(outages=list(outages)))
    end = start + length
    assert sim._in_outage(start, end) == any(start < s + d and end > s for s, d in outages)


# --- the soak --------------------------------------------------------------------------------------------
CI_SEEDS = range(6)  # 9600, 38400 and 115200 among them; outages long and short; duplicates and reordering


@functools.cache
def short_soak(seed):
    return soak.run_soak(150, seed=seed)


@pytest.mark.parametrize("seed", CI_SEEDS)
def test_soak_short(seed):
    report = short_soak(seed)
    print(report.as_dict())
    assert report.failures == []
    assert report.completed >= 2 and report.bytes_completed > 0
    assert report.discovery_rounds >= 10
    assert report.completed + report.broken == report.connections


def test_soak_short_seed_set_covers_the_faults():
    """The CI seeds meet every fault at least once (else the soak would prove little)."""
    reports = [short_soak(seed) for seed in CI_SEEDS]
    assert {r.baud for r in reports} >= {9600, 115200}
    assert sum(r.duplicated for r in reports) > 0 and sum(r.reordered for r in reports) > 0
    assert sum(r.long_outages for r in reports) > 0 and sum(r.outages for r in reports) > sum(r.long_outages
                                                                                              for r in reports)
    assert sum(r.broken for r in reports) > 0  # a long outage broke a connection, and the next ones succeeded
    assert sum(r.retransmissions for r in reports) > 0 and sum(r.collisions for r in reports) > 0
    assert max(r.max_log for r in reports) > 0  # A or B overheard C's discovery


def test_soak_is_deterministic():
    first, again = soak.run_soak(60, seed=3).as_dict(), soak.run_soak(60, seed=3).as_dict()
    for report in (first, again):
        del report["wall_seconds"], report["cpu_seconds"]
    assert first == again


# the soak's checks can fail: each of these breaks the stack on purpose
def test_soak_sees_a_lost_byte(monkeypatch):
    real = TinyTP.recv
    state = {"n": 0}

    def lossy(self, conn_id, max_bytes=None, now=0.0):
        data = real(self, conn_id, max_bytes, now)
        state["n"] += 1
        return data[1:] if data and state["n"] % 7 == 0 else data

    monkeypatch.setattr(TinyTP, "recv", lossy)
    report = soak.run_soak(60, seed=1, duplicate=0, reorder=0, max_size=20000)
    assert any("orderly close but" in f for f in report.failures)


def test_soak_sees_a_duplicated_byte(monkeypatch):
    real = TinyTP.recv
    state = {"n": 0}

    def stutter(self, conn_id, max_bytes=None, now=0.0):
        data = real(self, conn_id, max_bytes, now)
        state["n"] += 1
        return data[:1] + data if data and state["n"] % 7 == 0 else data

    monkeypatch.setattr(TinyTP, "recv", stutter)
    report = soak.run_soak(60, seed=1, duplicate=0, reorder=0, max_size=20000)
    assert any("differs at byte" in f or "were not sent" in f for f in report.failures)


def test_soak_sees_a_deadlock(monkeypatch):
    """A receiver whose reads never free credit wedges the sender: reported as no progress, never ended."""
    real_pump = TinyTP._pump

    def no_credit_back(self, conn, now):
        conn.to_return = 0
        real_pump(self, conn, now)

    monkeypatch.setattr(TinyTP, "_pump", no_credit_back)
    report = soak.run_soak(90, seed=1)
    assert any("no progress" in f for f in report.failures)
    assert any("never ended" in f for f in report.failures)


def test_soak_sees_unbounded_state(monkeypatch):
    monkeypatch.setattr(soak, "LAP_QUEUE_BOUND", 1)
    report = soak.run_soak(30, seed=1)
    assert any("IrLAP queue is" in f for f in report.failures)


def test_soak_sees_a_connection_broken_without_cause(monkeypatch):
    """An IrLMP disconnect out of the blue (no outage, no reset) is not excused."""
    real = TinyTP._on_data
    seen = {"pdus": 0}

    def flaky(self, event, now):
        if self.station.address != soak.B_ADDRESS:
            return real(self, event, now)
        seen["pdus"] += 1
        if seen["pdus"] % 150 == 0 and event.local in {c[0] for c in self.connections}:  # a few times a run
            self.lmp.disconnect(event.local, event.remote, now, reason=P.DisconnectReason.UNSPECIFIED)
            return
        real(self, event, now)

    monkeypatch.setattr(TinyTP, "_on_data", flaky)
    report = soak.run_soak(120, seed=1, duplicate=0, reorder=0)
    assert report.failures


def test_overheard_discovery_keeps_the_log_bounded():
    """Issue 13 item 5 on the medium: passers-by under new addresses every 2 s for 2 minutes; the log of two
    idle stacks that overhear them holds only the recent ones (expiry 6 s), not one entry per passer-by."""
    from irlap.qos import QosParams

    sim = Simulator(8)
    stacks = [soak._stack(address, name, QosParams.offer(), sim) for address, name in ((1, "a"), (2, "b"))]
    for stack in stacks:
        sim.add(stack).keep_history = False
    from irlap.station import Station

    passer = Station(0x3333, rng=sim.station_rng())
    node = sim.add(passer)
    rng = random.Random(8)
    largest = 0
    for _ in range(60):
        passer.address = rng.randrange(1, 0xFFFFFFFE)
        node.call("discover", 1)
        sim.run(until=sim.now + 2.0)
        largest = max(largest, *(len(s.station._log) for s in stacks))
    assert 1 <= largest <= 5
