"""firmware/irresponder: the MicroPython IrDA responder, checked against irsock's own stack.

Two tiers:

* the portable core under CPython: framing and CRC against irlap.sir, QoS against irlap.qos, and the
  whole responder against irsock's full stack (as primary) on a virtual line with a virtual clock;
* the real thing: ``micropython firmware/unix_main.py`` on a PTY bridged to an emulated medium, with
  an irsock interface on the same medium (discovery, ping, IAS, TinyTP echo sockets, speed changes,
  garbage on the line), and the same framing code run by MicroPython against irlap.sir.
"""

from __future__ import annotations

import ast
import contextlib
import heapq
import importlib.util
import itertools
import json
import os
import random
import re
import select
import shutil
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

import irlap.port  # noqa: F401 - registers irsim://
import irsock
from irlap import frames as F
from irlap.qos import (
    ADDITIONAL_BOFS,
    DATA_SIZES,
    LINK_DISCONNECT_S,
    MIN_TURNAROUND_US,
    QosParams,
    negotiate,
)
from irlap.runtime import LinkRuntime
from irlap.sir import Unwrapper, escape, fcs16, wrap
from irlap.station import Discovered, SetSpeed, Station, TestResult, Transmit
from irsock import ircomm as I
from irsock.lmp.stack import IasResult
from irsock.stack import full_stack
from irsock.ttp import TtpConnected, TtpDisconnected
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
FW_ADDRESS = 0x1A2B3C4D
HOST_ADDRESS = 0x0BADCAFE


def load_core():
    spec = importlib.util.spec_from_file_location("irresponder", FIRMWARE / "irresponder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


core = load_core()


# --- the core under CPython: framing ------------------------------------------------------------------
def test_crc_check_value_and_residue():
    assert core.fcs16(b"123456789") == 0x906E == fcs16(b"123456789")
    frame = b"\x55\x11"
    assert core.crc16(frame + core.fcs16(frame).to_bytes(2, "little")) == core.GOOD_RESIDUE == 0xF0B8


@given(st.binary(min_size=2, max_size=300), st.integers(0, 60))
def test_wrap_is_byte_identical_to_irlap_sir(frame, xbofs):
    assert core.wrap(frame, xbofs) == wrap(frame, xbofs)


def test_wrap_through_a_tiny_buffer_streams_the_same_bytes():
    frame = bytes(range(256)) * 3  # every byte value, escapes spilling over buffer boundaries
    chunks = []
    core.SirTx(lambda mv: chunks.append(bytes(mv)), 8).send(50, frame[:2], frame[2:])
    assert len(chunks) > 10 and b"".join(chunks) == wrap(frame, 50)


pieces = st.one_of(
    st.binary(min_size=2, max_size=80).map(lambda f: ("frame", f)),
    st.binary(max_size=30).map(lambda g: ("garbage", g)),
    st.binary(min_size=2, max_size=40).map(lambda f: ("badfcs", f)),
)


@settings(max_examples=150)
@given(st.lists(pieces, max_size=12), st.randoms(use_true_random=False))
def test_streaming_decoder_agrees_with_irlap_sir_under_any_chunking(parts, rnd):
    stream = bytearray()
    for kind, data in parts:
        if kind == "frame":
            stream += wrap(data, rnd.randrange(3))
        elif kind == "badfcs":
            stream += b"\xc0" + escape(data + (fcs16(data) ^ 0x0100).to_bytes(2, "little")) + b"\xc1"
        else:
            stream += data
    expected = Unwrapper().feed(bytes(stream))
    got = []
    rx = core.SirRx(2050, lambda mv: got.append(bytes(mv)))
    pos = 0
    while pos < len(stream):
        step = rnd.randrange(1, 20)
        rx.feed(memoryview(stream)[pos : pos + step])
        pos += step
    assert got == expected


def test_decoder_counts_what_it_drops():
    good = wrap(b"\x55\x11")
    bad = bytearray(wrap(b"\x55\x31", 0))
    bad[-2] ^= 0x01
    got = []
    rx = core.SirRx(16, lambda mv: got.append(bytes(mv)))
    rx.feed(b"abc" + bytes(bad) + b"\xc0\x55\x11\x7d\xc1" + b"\xc0\x01\xc1" + wrap(b"\x55" * 40, 0) + good)
    assert got == [b"\x55\x11"]
    assert (rx.garbage, rx.bad_fcs, rx.aborted, rx.runts, rx.oversize, rx.good) == (3, 1, 1, 1, 1, 1)


# --- the core under CPython: QoS ---------------------------------------------------------------------
qos_offers = st.builds(
    QosParams.offer,
    max_baud=st.sampled_from([9600, 19200, 38400, 57600, 115200, 576000, 4000000]),
    max_turnaround_ms=st.sampled_from([500, 250, 100, 50]),
    max_data_size=st.sampled_from(DATA_SIZES),
    max_window=st.integers(1, 7),
    additional_bofs=st.sampled_from(ADDITIONAL_BOFS),
    min_turnaround_us=st.sampled_from(MIN_TURNAROUND_US),
    max_link_disconnect_s=st.sampled_from(LINK_DISCONNECT_S),
    min_baud=st.sampled_from([2400, 9600]),
)


@given(qos_offers, st.sampled_from([9600, 38400, 115200]), st.sampled_from(DATA_SIZES), st.integers(1, 7))
def test_negotiation_matches_irlap_qos(host, max_baud, data_size, window):
    responder = core.Responder(FakePort(), address=FW_ADDRESS, rng=random.Random(1), data_size=data_size,
                               window=window, speeds=[b for b in (9600, 19200, 38400, 57600, 115200) if b <= max_baud])
    ours = QosParams.decode(responder.qos)
    assert ours.value("data_size") == data_size and ours.value("window_size") == window
    link = core.Link(responder.offer, core.parse_qos(host.encode()))
    expected = negotiate(ours, host)
    assert link.baud == expected.baud
    assert link.link_disconnect_s == expected.link_disconnect_s
    assert (link.tx_data, link.tx_window) == (expected.tx_data_size, expected.tx_window)
    assert link.tx_min_turn_us == expected.tx_min_turnaround_us
    assert link.tx_add_bofs == expected.tx_additional_bofs
    assert link.rx_max_turn_ms == expected.rx_max_turnaround_ms


@given(st.sampled_from([9600, 19200, 38400, 57600, 115200]), st.sampled_from(DATA_SIZES), st.integers(1, 7),
       st.sampled_from([0, 12]), st.sampled_from([10, 10000]))
def test_ua_offer_fits_the_line_capacity_like_irlap(baud, data_size, window, additional_bofs, min_turnaround_us):
    """The responder's UA advertises what fits the negotiated speed, exactly as irlap's station does."""
    responder = core.Responder(FakePort(), address=FW_ADDRESS, rng=random.Random(1), data_size=data_size,
                               window=window, additional_bofs=additional_bofs, min_turnaround_us=min_turnaround_us)
    ours = QosParams.decode(responder.qos)
    assert QosParams.decode(responder.ua_qos(baud)) == ours.fitted(baud, 500)


def test_qos_parser_skips_unknown_parameters_and_rejects_truncation():
    assert core.parse_qos(bytes.fromhex("0102fe00" "7701aa" "830120")) == {0x01: 0xFE, 0x83: 0x20}
    assert core.parse_qos(b"\x01\x02\x3e") is None
    assert core.parse_qos(b"\x83\x00") is None


# --- the core under CPython: the whole responder against irsock's stack -------------------------------
class FakePort:
    """Collects what the responder writes; speed changes are logged in order with the bytes."""

    def __init__(self, line=None):
        self.line = line
        self.log = []

    def write(self, buf):
        data = bytes(buf)
        self.log.append(("tx", data))
        if self.line is not None:
            self.line.fw_write(data)

    @classmethod
    def replay(cls, log):
        port = cls()
        port.log = list(log)
        return port

    def set_speed(self, baud):
        self.log.append(("speed", baud))
        if self.line is not None:
            self.line.fw_speed(baud)


class Line:
    """irsock's full stack (primary) and the core on one virtual half-duplex line with a virtual clock.

    Bytes arrive when their burst has left the sender (at the sender's speed); a receiver at another
    speed hears nothing, and such losses are counted, so a test can insist that speeds always agree.
    """

    def __init__(self, seed=1, **options):
        self.t = 0.0
        self._queue: list = []
        self._seq = itertools.count()
        self.host_station = Station(HOST_ADDRESS, qos=QosParams.offer(), rng=random.Random(seed),
                                    info=F.DiscoveryInfo.make("host", hints=0x0400))
        self.host = full_stack(self.host_station)
        self.host_rx = Unwrapper()
        self.host_baud = [(0.0, 9600)]
        self.host_tx_end = 0.0
        self.fw_baud = [(0.0, 9600)]
        self.fw_tx_end = 0.0
        self.lost = 0
        self.blocked = False  # the beam is interrupted: nothing arrives anywhere
        self.events: list = []
        self.port = FakePort(self)
        options.setdefault("address", FW_ADDRESS)
        options.setdefault("nickname", "bench")
        self.fw = core.Responder(self.port, rng=random.Random(seed + 1), **options)

    @staticmethod
    def _baud_at(timeline, t):
        baud = timeline[0][1]
        for since, value in timeline:
            if since <= t + 1e-9:
                baud = value
        return baud

    def _schedule(self, at, kind, payload):
        heapq.heappush(self._queue, (at, next(self._seq), kind, payload))

    def fw_write(self, data):
        start = max(self.t, self.fw_tx_end)
        baud = self._baud_at(self.fw_baud, start)
        self.fw_tx_end = start + len(data) * 10 / baud
        self._schedule(self.fw_tx_end, "to_host", (data, baud))

    def fw_speed(self, baud):
        self.fw_baud.append((max(self.t, self.fw_tx_end), baud))  # once the UART is empty

    def _drain_host(self):
        for action in self.host.take_output():
            if isinstance(action, Transmit):
                start = max(self.t, self.host_tx_end)
                baud = self._baud_at(self.host_baud, start)
                self.host_tx_end = start + len(action.wire) * 10 / baud
                self._schedule(self.host_tx_end, "to_fw", (action.wire, baud))
            elif isinstance(action, SetSpeed):
                self.host_baud.append((max(self.t, self.host_tx_end), action.baud))
        self.events += self.host.take_events()

    def call(self, fn):
        result = fn(self.host, self.t)
        self._drain_host()
        return result

    def run(self, until=None, stop=None, limit=120.0):
        """Advance the clock to ``until`` seconds or until ``stop(events)`` is true."""
        end = self.t + limit if until is None else until
        while True:
            self._drain_host()
            if stop is not None and stop(self.events):
                return True
            candidates = [end]
            if self._queue:
                candidates.append(self._queue[0][0])
            if (deadline := self.host.next_deadline()) is not None:
                candidates.append(deadline)
            if (deadline := self.fw.next_deadline()) is not None:
                candidates.append(deadline / 1000)
            self.t = max(self.t, min(candidates))
            if self.t >= end and not (self._queue and self._queue[0][0] <= end):
                return stop is None
            while self._queue and self._queue[0][0] <= self.t:
                _at, _seq, kind, (data, baud) = heapq.heappop(self._queue)
                if self.blocked:
                    continue
                if kind == "to_fw":
                    if self._baud_at(self.fw_baud, self.t) != baud:
                        self.lost += 1
                        continue
                    self.fw.feed(data, int(self.t * 1000))
                else:
                    if self._baud_at(self.host_baud, self.t) != baud:
                        self.lost += 1
                        continue
                    self.host.sense(self.t)
                    for frame in self.host_rx.feed(data):
                        self.host.receive(frame, self.t)
            if (deadline := self.host.next_deadline()) is not None and deadline <= self.t:
                self.host.handle_timer(self.t)
            if (deadline := self.fw.next_deadline()) is not None and deadline <= self.t * 1000:
                self.fw.poll(int(self.t * 1000))

    def wait_for(self, kind, predicate=lambda e: True, limit=30.0):
        found = []

        def stop(events):
            found.extend(e for e in events if isinstance(e, kind) and predicate(e))
            events.clear()
            return bool(found)

        assert self.run(stop=stop, limit=limit), f"no {kind.__name__} within {limit} s"
        return found[0]

    # conveniences ---------------------------------------------------------------------------------------
    def discover(self):
        self.call(lambda stack, now: stack.discover(6, now))
        return self.wait_for(Discovered)

    def ias(self, class_name, attribute):
        query = self.call(lambda stack, now: stack.ias_query(FW_ADDRESS, class_name, attribute, now))
        return self.wait_for(IasResult, lambda e: e.query == query)

    def connect(self, lsap, max_sdu_size=0):
        conn = self.call(lambda stack, now: stack.connect(FW_ADDRESS, lsap, now, max_sdu_size=max_sdu_size))
        event = self.wait_for((TtpConnected, TtpDisconnected), lambda e: e.conn == conn)
        assert isinstance(event, TtpConnected), event
        return conn

    def echo(self, conn, payload, limit=120.0):
        self.call(lambda stack, now: stack.send(conn, payload, now))
        got = bytearray()

        def stop(events):
            events.clear()
            got.extend(self.call(lambda stack, now: stack.recv(conn, None, now)))
            return len(got) >= len(payload)

        self.run(stop=stop, limit=limit)
        return bytes(got)


def sent_frames(port):
    """Every frame the responder wrote (its writes are chunks of a small buffer: join them first)."""
    return core.unwrap_all(b"".join(data for kind, data in port.log if kind == "tx"))[0]


def sent(port):
    return [F.parse(frame) for frame in sent_frames(port)]


@pytest.fixture
def line():
    line = Line()
    yield line
    assert line.fw.errors == 0, line.fw.last_error
    assert line.lost == 0, "a frame was sent at one speed and heard at another"


def test_discovery_answer_in_a_random_slot_with_nickname_and_hints(line):
    found = line.discover()
    [device] = found.devices
    assert (device.address, device.nickname, device.info.hint_words) == (FW_ADDRESS, "bench", ["Computer", "IrCOMM"])
    answers = sent(line.port)
    assert [type(a).__name__ for a in answers] == ["XIDResponse"]
    assert answers[0].dest == HOST_ADDRESS and answers[0].slots == 6


def test_slots_are_drawn_from_the_rng():
    slots = set()
    for seed in range(12):
        line = Line(seed=seed)
        line.discover()
        [response] = sent(line.port)
        slots.add(response.slot)
    assert len(slots) >= 3


def test_test_frame_is_echoed_and_foreign_test_ignored(line):
    payload = bytes(range(200))
    line.call(lambda stack, now: stack.station.send_test(FW_ADDRESS, payload, now))
    assert line.wait_for(TestResult).data == payload
    line.call(lambda stack, now: stack.station.send_test(0x11111111, b"not for you", now))
    line.run(until=line.t + 2)
    assert not [e for e in line.events if isinstance(e, TestResult)]
    assert line.fw.test_echoes == 1 and line.fw.ignored >= 1


def test_ias_answers(line):
    name = line.ias("Device", "DeviceName")
    assert name.ok and name.values[0].text == "bench" and name.values[0].charset == 0
    assert line.ias("Device", "IrLMPSupport").values[0].octets == b"\x01\x00\x00"
    assert line.ias("Echo", "IrDA:TinyTP:LsapSel").values[0].integer == 2
    assert line.ias("IrDA:IrCOMM", "IrDA:TinyTP:LsapSel").values[0].integer == 3
    assert I.parse_ias_parameters(line.ias("IrDA:IrCOMM", "Parameters").values[0].octets) == (
        I.SERVICE_9WIRE | I.SERVICE_3WIRE, I.PORT_SERIAL)
    assert line.ias("Nope", "x").describe() == "no such class"
    assert line.ias("Echo", "IrDA:IrLMP:LsapSel").describe() == "no such attribute"


def test_ias_answer_longer_than_a_frame_is_fragmented():
    line = Line(data_size=64, nickname="x" * 21, services=["S" * 40] * 3)
    # the host offers 2048, so the limit that bites is ours: our I-frames stay within 64 bytes
    result = line.ias("S" * 40, "IrDA:TinyTP:LsapSel")
    assert result.ok and [v.integer for v in result.values] == [2, 2, 2]
    sizes = [len(f) for f in sent_frames(line.port)]
    assert max(sizes) <= 2 + 64


def test_link_comes_up_at_115200_then_back_to_9600(line):
    line.ias("Device", "DeviceName")
    assert line.fw.connected and line.fw.baud == 115200
    speeds = [item for item in line.port.log if item[0] == "speed"]
    assert speeds == [("speed", 115200)]
    # the UA went out before the speed change, at 9600
    before = line.port.log[: line.port.log.index(("speed", 115200))]
    assert sent(FakePort.replay(before))[-1].kind == "UA"
    line.run(until=line.t + 4)  # the host's IrLMP closes an idle link after 2 s
    assert not line.fw.connected and line.fw.baud == 9600 and line.port.log[-1] == ("speed", 9600)


@pytest.mark.parametrize("data_size", [64, 256, 2048])
def test_tinytp_echo_with_credits(data_size):
    line = Line(data_size=data_size, credit=3)
    conn = line.connect(2)
    payload = random.Random(data_size).randbytes(20_000)
    assert line.echo(conn, payload) == payload
    assert line.fw.lmp.echoed == len(payload)
    assert line.fw.errors == 0 and line.lost == 0
    echo = next(iter(line.fw.lmp.conns.values()))
    assert 0 <= echo.rx_granted <= 3  # the host never held more credit than we can buffer


def ircomm_exchange(line, conn, frames, want_data, want_control=True):
    """Send cooked frames to the responder's IrCOMM; (the control parts, the data) that come back."""
    for pdu in frames:
        line.call(lambda stack, now, pdu=pdu: stack.send(conn, pdu, now))
    controls, data = [], bytearray()

    def stop(events):
        events.clear()
        while (pdu := line.call(lambda stack, now: stack.recv_pdu(conn, now))) is not None:
            control, payload = I.unframe(pdu)
            if control:
                controls.append(control)
            data.extend(payload)
        return len(data) >= want_data and (bool(controls) or not want_control)

    line.run(stop=stop, limit=30)
    return controls, bytes(data)


@pytest.mark.parametrize("data_size", [64, 1024])
def test_ircomm_dce_answers_the_control_channel_and_loops_the_data_back(data_size):
    """The firmware's IrCOMM as our 9-wire DTE sees it: the service type agreed, lines on a poll, the data back
    (split to frames of the peer's size), a malformed frame dropped with the connection kept."""
    line = Line(data_size=data_size)
    conn = line.connect(3)
    dte = I.IrCommChannel(dte=True)
    controls, data = ircomm_exchange(line, conn, [I.frame(b"AT\r", dte.hello())], 3)
    assert data == b"AT\r"
    for control in controls:
        dte.on_params(control)
    assert dte.service == I.SERVICE_9WIRE
    controls, _ = ircomm_exchange(line, conn, [I.frame(b"", dte.poll())], 0)
    for control in controls:
        dte.on_params(control)
    assert dte.peer_dce_lines() == {"cts": True, "dsr": True, "ri": False, "cd": True}
    payload = random.Random(data_size).randbytes(5000)
    room = line.call(lambda stack, now: stack.lmp.max_data()) - 2
    frames = [b"\x05\x00\x01"] + [I.frame(payload[i:i + room]) for i in range(0, len(payload), room)]
    _controls, data = ircomm_exchange(line, conn, frames, len(payload), False)  # clen 5 past a 3-byte frame: dropped
    assert data == payload and line.fw.lmp.ircomm_malformed == 1
    assert line.fw.lmp.conns[3 << 8 | conn[0]].service == I.SERVICE_9WIRE


def test_ircomm_three_wire_dte_gets_three_wire():
    line = Line()
    conn = line.connect(3)
    dte = I.IrCommChannel(dte=True, services=I.SERVICE_3WIRE)
    controls, data = ircomm_exchange(line, conn, [I.frame(b"x", dte.hello())], 1)
    for control in controls:
        dte.on_params(control)
    assert data == b"x" and dte.service == I.SERVICE_3WIRE and not dte.nine_wire


def test_host_window_larger_than_one_and_our_window_of_one():
    line = Line(window=1)
    conn = line.connect(2)
    assert line.host_station.params.tx_window == 1
    payload = bytes(range(256)) * 16
    assert line.echo(conn, payload) == payload


def test_seqpacket_boundaries_survive_the_echo():
    line = Line(data_size=256)
    conn = line.connect(2, max_sdu_size=0xFFFFFFFF)
    messages = [b"a" * 10, b"b" * 1000, b"c"]
    for message in messages:
        line.call(lambda stack, now, m=message: stack.send(conn, m, now))
    got = []

    def stop(events):
        events.clear()
        while data := line.call(lambda stack, now: stack.recv(conn, None, now)):
            got.append(data)
        return len(got) >= 3

    line.run(stop=stop, limit=60)
    assert got == messages


def test_unknown_lsap_is_refused_and_disconnect_reconnect_work(line):
    conn = line.call(lambda stack, now: stack.connect(FW_ADDRESS, 0x33, now))
    refused = line.wait_for(TtpDisconnected, lambda e: e.conn == conn)
    assert refused.reason.name == "NO_CLIENT"
    for _ in range(2):
        conn = line.connect(2)
        assert line.echo(conn, b"again") == b"again"
        line.call(lambda stack, now, c=conn: stack.close(c, now))
        line.run(until=line.t + 0.5)
        assert not line.fw.lmp.conns


def test_frames_lost_on_the_way_are_resent():
    line = Line()
    conn = line.connect(2)
    original = line.fw_write
    rnd = random.Random(3)

    def lossy(data):
        if rnd.random() < 0.2:
            return  # the light never arrived
        original(data)

    line.fw_write = lossy
    payload = random.Random(4).randbytes(8000)
    assert line.echo(conn, payload, limit=300) == payload
    assert line.fw.retransmissions > 0 and line.fw.errors == 0


def test_reset_and_invalid_nr_and_undefined_control():
    line = Line()
    line.connect(2)
    ca = line.fw.ca
    line.port.log.clear()
    line.fw.feed(wrap(bytes((ca << 1 | 1, 0x80 | 0x10 | 0x01)), 0), 0)  # RR with N(R)=4: nothing sent yet
    line.fw.feed(wrap(bytes((ca << 1 | 1, 0x11)), 0), 0)
    frmrs = sent(line.port)
    assert [f.kind for f in frmrs] == ["FRMR", "FRMR"] and frmrs[0].z and frmrs[0].rejected_control == 0x91
    line.port.log.clear()
    line.fw.feed(wrap(bytes((ca << 1 | 1, 0x93)), 0), 0)  # reset: SNRM without parameters
    line.fw.feed(wrap(bytes((ca << 1 | 1, 0x11)), 0), 0)
    line.fw.feed(wrap(bytes((ca << 1 | 1, 0x9F)), 0), 0)  # undefined command (DM code) with P
    answers = sent(line.port)
    assert [a.kind for a in answers] == ["UA", "RR", "FRMR"]
    assert answers[2].w and answers[2].rejected_control == 0x9F
    assert line.fw.resets == 1 and not line.fw.lmp.conns


def test_watchdog_drops_a_silent_link():
    line = Line()
    line.connect(2)
    line.blocked = True
    line.run(until=line.t + 11)
    assert line.fw.connected  # the negotiated link-disconnect time is 12 s
    line.run(until=line.t + 2)
    assert not line.fw.connected and line.fw.baud == 9600


@settings(max_examples=200)
@given(st.lists(st.binary(min_size=2, max_size=40), max_size=20), st.booleans())
def test_random_frames_never_raise(frames, connected):
    line = Line()
    if connected:
        line.connect(2)
    ca = line.fw.ca or 0x10
    for frame in frames:
        frame = bytearray(frame)
        if frame[0] & 1 and frame[0] >> 1 not in (0x7F, ca):
            frame[0] = ca << 1 | 1  # mostly frames the responder has to look at
        line.fw.feed(wrap(bytes(frame), 0), 1000)
    assert line.fw.errors == 0, line.fw.last_error
    for frame in sent_frames(line.port):
        F.parse(frame)  # everything it says is well formed


MICROPYTHON_MODULES = {"array", "gc", "machine", "micropython", "random", "select", "struct", "sys", "termios", "time",
                       "tty", "irresponder", "irresponder_config"}


def test_no_cpython_only_features_in_the_firmware():
    for path in FIRMWARE.glob("*.py"):
        text = path.read_text()
        tree = ast.parse(text)
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert imported <= MICROPYTHON_MODULES, f"{path.name} imports {imported - MICROPYTHON_MODULES}"
        assert not re.search(r"\{[^{}]*=\}", text), f"f-string '=' specifier in {path}"
        assert not re.search(r"\.hex\([^)]", text), f"bytes.hex(sep) in {path}"


# --- MicroPython ------------------------------------------------------------------------------------------
def micropython() -> str:
    found = shutil.which("micropython")
    if found is None and os.access("/opt/venv-mpy/bin/micropython", os.X_OK):
        return "/opt/venv-mpy/bin/micropython"
    return found or require_tool("micropython")


MPY_FRAMING = r"""
import sys
sys.path.insert(0, sys.argv[1])
import irresponder as core
out = []
for line in sys.stdin:
    xbofs, hexframe = line.split()
    out.append(core.wrap(bytes.fromhex(hexframe), int(xbofs)).hex())
frames, rx = core.unwrap_all(bytes.fromhex("".join(out)))
print(len(frames), rx.good, rx.bad_fcs, hex(core.fcs16(b"123456789")))
for wire in out:
    print(wire)
"""


def test_micropython_frames_byte_identical_to_irlap_sir(tmp_path):
    binary = micropython()
    script = tmp_path / "framing.py"
    script.write_text(MPY_FRAMING)
    rnd = random.Random(7)
    cases = [(rnd.randrange(20), rnd.randbytes(rnd.randrange(2, 300))) for _ in range(60)]
    cases.append((0, bytes(range(256))))
    stdin = "".join(f"{x} {frame.hex()}\n" for x, frame in cases)
    result = subprocess.run([binary, str(script), str(FIRMWARE)], input=stdin, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    head, *wires = result.stdout.splitlines()
    assert head.split() == [str(len(cases)), str(len(cases)), "0", "0x906e"]
    assert [bytes.fromhex(w) for w in wires] == [wrap(frame, x) for x, frame in cases]


@contextlib.contextmanager
def responder(*args: str, address: int = FW_ADDRESS, nickname: str = "resp"):
    """micropython firmware/unix_main.py on a PTY bridged to a fresh medium; yields (medium, bridge, proc)."""
    from irlap.emulator.medium import drop_medium
    from irlap.emulator.pty_bridge import PtyBridge

    binary = micropython()
    medium = f"fw-{uuid.uuid4().hex[:8]}"
    bridge = PtyBridge(medium)
    proc = subprocess.Popen([binary, str(FIRMWARE / "unix_main.py"), "--port", bridge.path, "--nickname", nickname,
                             "--address", hex(address), "--seed", "5", "-v", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = proc.stdout.readline()
        assert ready.startswith("irresponder ready"), ready + proc.stderr.read()
        assert f"address=0x{address:08x}" in ready
        yield medium, bridge, proc
        assert proc.poll() is None, "the responder died"
    finally:
        proc.terminate()
        try:
            _out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
        bridge.close()
        drop_medium(medium)
        proc.stderr_text = err
    assert "Traceback" not in err and "error handling" not in err, err


def ping(runtime, address, payload, timeout=3.0):
    """One TEST frame the way ``irda ping`` sends it; the echoed information field, or None."""
    runtime.call(lambda _stack, now: runtime.station.send_test(address, payload, now))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = runtime.wait_for((TestResult,), deadline - time.monotonic())
        if isinstance(event, TestResult) and event.data[:4] == payload[:4]:
            return event.data
    return None


def echo(sock, payload):
    sock.sendall(payload)
    got = bytearray()
    while len(got) < len(payload):
        data = sock.recv(65536)
        assert data, "the echo connection closed early"
        got += data
    return bytes(got)


def test_micropython_responder_discovery_ping_and_ias():
    with responder() as (medium, bridge, _proc):
        runtime = LinkRuntime(f"irsim://{medium}", nickname="pinger", stack=full_stack).start()
        try:
            for size in (12, 200):
                payload = struct.pack(">I", size) + bytes(range(256)) * 4
                assert ping(runtime, FW_ADDRESS, payload[:size]) == payload[:size]
            assert bridge.endpoint.host_baud == 9600  # TEST needs no link
        finally:
            runtime.close()
        iface = irsock.attach(f"irsim://{medium}", nickname="host")
        try:
            devices = []
            for _ in range(3):
                devices = [d for d in iface.discover() if d.address == FW_ADDRESS]
                if devices:
                    break
            assert devices and devices[0].nickname == "resp"
            assert devices[0].info.hint_words == ["Computer", "IrCOMM"]
            with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
                def query(cls, attr):
                    return s.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY, irsock.IasQuery(FW_ADDRESS, cls,
                                                                                                  attr))

                assert query("Device", "DeviceName").text == "resp"
                assert query("IrDA:IrCOMM", "IrDA:TinyTP:LsapSel").integer == 3
                assert query("Echo", "IrDA:TinyTP:LsapSel").integer == 2
                with pytest.raises(ConnectionRefusedError):
                    query("Nope", "x")
        finally:
            iface.close()


def test_micropython_responder_echo_by_name_and_lsap_then_reconnect():
    with responder() as (medium, bridge, proc):
        iface = irsock.attach(f"irsim://{medium}", nickname="host")
        try:
            payload = random.Random(1).randbytes(6000)
            with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
                s.settimeout(15)
                s.connect((FW_ADDRESS, "Echo"))
                assert bridge.endpoint.host_baud == 115200  # the responder followed the negotiated speed
                assert echo(s, payload) == payload
            with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
                s.settimeout(15)
                s.connect((FW_ADDRESS, "LSAP-SEL2"))
                assert echo(s, b"by lsap") == b"by lsap"
            deadline = time.monotonic() + 6  # the host closes the idle link after 2 s

            def link_up():
                return iface.call(lambda stack, now: stack.station.connected)

            while (bridge.endpoint.host_baud != 9600 or link_up()) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert bridge.endpoint.host_baud == 9600 and not link_up()
            with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
                s.settimeout(15)
                s.connect((FW_ADDRESS, "Echo"))
                assert echo(s, payload[:1000]) == payload[:1000]
        finally:
            iface.close()
        assert proc.poll() is None


def test_micropython_responder_ircomm_through_a_socket_and_irda_comm():
    """The responder's IrCOMM under real MicroPython: a 9-wire socket agrees on 9-wire and gets its data back;
    irda comm's bridge makes it a serial port with a loopback plug (what a program writes, it reads back)."""
    import termios
    import tty

    from irsock.apps.comm import CommBridge

    with responder() as (medium, _bridge, _proc):
        iface = irsock.attach(f"irsim://{medium}", nickname="host")
        try:
            with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
                s.settimeout(15)
                s.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_9WIRE_MODE, 1)
                s.connect((FW_ADDRESS, "IrDA:IrCOMM"))
                payload = random.Random(2).randbytes(3000)
                assert echo(s, payload) == payload
                assert s.ircomm.service == I.SERVICE_9WIRE
            bridge = CommBridge(iface, to="resp", idle=0).start()
            try:
                fd = os.open(bridge.path, os.O_RDWR | os.O_NOCTTY)
                try:
                    tty.setraw(fd)
                    attrs = termios.tcgetattr(fd)
                    attrs[4] = attrs[5] = termios.B57600
                    termios.tcsetattr(fd, termios.TCSANOW, attrs)
                    os.write(fd, b"loopback plug\r\n")
                    got = b""
                    deadline = time.monotonic() + 15
                    while not got.endswith(b"\r\n") and time.monotonic() < deadline:
                        if select.select([fd], [], [], 0.2)[0]:
                            got += os.read(fd, 100)
                    assert got == b"loopback plug\r\n"
                finally:
                    os.close(fd)
                assert bridge.sock.ircomm.service == I.SERVICE_9WIRE and bridge.hangups == 0
            finally:
                bridge.close()
        finally:
            iface.close()


def test_micropython_responder_at_38400_and_window_1():
    with responder("--max-baud", "38400", "--window", "1", "--data-size", "256") as (medium, bridge, _proc):
        iface = irsock.attach(f"irsim://{medium}", nickname="host")
        try:
            with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
                s.settimeout(15)
                s.connect((FW_ADDRESS, "Echo"))
                assert bridge.endpoint.host_baud == 38400
                payload = bytes(range(256)) * 4
                assert echo(s, payload) == payload
        finally:
            iface.close()


def test_micropython_responder_ignores_garbage_bad_fcs_and_foreign_frames():
    with responder("--stats") as (medium, _bridge, proc):
        port = serial.serial_for_url(f"irsim://{medium}", timeout=0.1)
        try:
            rnd = random.Random(9)

            def listen(seconds):
                got = Unwrapper()
                frames = []
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    frames += got.feed(port.read(4096))
                return [F.parse(f) for f in frames]

            test_to = lambda dest, info: wrap(F.TEST(command=True, source=0x5EED, dest=dest, info=info).to_bytes())  # noqa: E731
            bad = bytearray(test_to(FW_ADDRESS, b"bad fcs"))
            bad[-3] ^= 0x40
            port.write(rnd.randbytes(300) + bytes(bad) + b"\xc0\x01\xc1" + b"\xc0\xff\x3f\x7d\xc1")
            port.write(test_to(0x22222222, b"for somebody else"))
            port.write(wrap(F.SNRM(source=0x5EED, dest=0x22222222, new_address=0x11, qos=QosParams.offer()).to_bytes()))
            port.write(wrap(F.XIDCommand(source=0x5EED, dest=0x22222222, slots=1, slot=0).to_bytes()))
            port.write(wrap(bytes((0x23, 0x11))))  # RR on a connection that is not ours
            assert listen(1.0) == []
            port.write(test_to(FW_ADDRESS, b"still there?"))
            [answer] = listen(0.8)
            assert answer.kind == "TEST" and answer.info == b"still there?" and answer.source == FW_ADDRESS
        finally:
            port.close()
        assert proc.poll() is None
    stats = json.loads(proc.stderr_text.rsplit("stats ", 1)[1].splitlines()[0])
    assert stats["bad_fcs"] >= 1 and stats["garbage"] > 0 and stats["ignored"] >= 4 and stats["errors"] == 0, stats
    assert stats["test_echoes"] == 1 and stats["xid_answers"] == 0 and stats["connections"] == 0


def test_irda_ping_and_ias_commands_against_the_responder():
    from irlap.emulator.pty_bridge import PtyBridge

    with responder() as (medium, _bridge, _proc):
        host = PtyBridge(medium)
        try:
            env = {k: v for k, v in os.environ.items() if k not in ("IRDA_PORT", "IRDA_DONGLE")}
            cmd = [sys.executable, "-m", "irsock.cli"]
            result = subprocess.run([*cmd, "ping", hex(FW_ADDRESS), "--port", host.path, "--count", "2",
                                     "--interval", "0.2"], capture_output=True, text=True, timeout=60, env=env)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "2 sent, 2 received, 0% loss" in result.stdout
            result = subprocess.run([*cmd, "ias", hex(FW_ADDRESS), "Device", "DeviceName", "--port", host.path,
                                     "--json"], capture_output=True, text=True, timeout=60, env=env)
            assert result.returncode == 0, result.stdout + result.stderr
            answer = json.loads(result.stdout)
            assert answer["status"] == 0 and answer["values"] == [{"type": "string", "value": "resp", "charset": 0}]
        finally:
            host.close()


# --- the board entry (firmware/main.py) -------------------------------------------------------------------
FAKE_MACHINE = r'''
"""A stand-in for MicroPython's machine module on the unix port: UART on a PTY, pins and PWM that record."""
import os
import select
import termios
import time

PATH = os.getenv("FAKE_UART")
SPEEDS = {9600: 0o15, 19200: 0o16, 38400: 0o17, 57600: 0o10001, 115200: 0o10002}
calls = []


class Pin:
    OUT = 1
    IN = 0

    def __init__(self, ident, mode=None, value=None):
        self.ident = ident
        if value is not None:
            calls.append(("pin", ident, value))

    def value(self, v=None):
        if v is not None:
            calls.append(("pin", self.ident, v))


class PWM:
    def __init__(self, pin):
        self.pin = pin

    def freq(self, hz):
        calls.append(("pwm", hz))

    def duty_u16(self, duty):
        pass


class UART:
    def __init__(self, ident, baudrate=9600, tx=None, rx=None, rxbuf=0, timeout=0):
        self.f = open(PATH, "r+b")
        self.fd = self.f.fileno()
        keep = termios.tcgetattr(self.fd)[3] & 0o200000
        termios.setraw(self.fd)
        self.keep = keep
        self.pending = bytearray()
        self.poller = select.poll()
        self.poller.register(self.f, select.POLLIN)
        self.tx_end = time.ticks_ms()
        self.init(baudrate)

    def init(self, baudrate=9600):
        self.baud = baudrate
        attrs = termios.tcgetattr(self.fd)
        attrs[3] |= self.keep
        attrs[6][5] = 0
        attrs[6][6] = 0
        attrs[4] = attrs[5] = SPEEDS[baudrate]
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        calls.append(("init", baudrate))

    def any(self):
        if self.poller.poll(0):
            data = self.f.read(4096)
            if data:
                self.pending += data
        return len(self.pending)

    def readinto(self, buf, n):
        n = min(n, len(self.pending))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def read(self):
        self.any()
        data = bytes(self.pending)
        self.pending = bytearray()
        return data

    def write(self, buf):
        now = time.ticks_ms()
        self.f.write(buf)
        start = now if time.ticks_diff(self.tx_end, now) < 0 else self.tx_end
        self.tx_end = time.ticks_add(start, len(buf) * 10000 // self.baud + 1)

    def flush(self):
        wait = time.ticks_diff(self.tx_end, time.ticks_ms())
        if wait > 0:
            time.sleep_ms(wait + 1)
'''


def test_micropython_board_entry_with_a_fake_machine_module(tmp_path):
    """firmware/main.py's own loop and BoardPort, on the unix port with machine.UART faked on a PTY."""
    from irlap.emulator.medium import drop_medium
    from irlap.emulator.pty_bridge import PtyBridge

    binary = micropython()
    (tmp_path / "machine.py").write_text(FAKE_MACHINE)
    (tmp_path / "irresponder_config.py").write_text(
        f'CONFIG = {{"nickname": "board", "address": {FW_ADDRESS}, "log": True, "led": 25, "data_size": 512}}\n')
    medium = f"fw-{uuid.uuid4().hex[:8]}"
    bridge = PtyBridge(medium)
    code = f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {str(FIRMWARE)!r}]; import main; main.run()"
    proc = subprocess.Popen([binary, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FAKE_UART": bridge.path})
    try:
        ready = proc.stdout.readline()
        assert ready.startswith("irresponder ready") and f"0x{FW_ADDRESS:08x}" in ready, ready + proc.stderr.read()
        iface = irsock.attach(f"irsim://{medium}", nickname="host")
        try:
            with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
                s.settimeout(15)
                s.connect((FW_ADDRESS, "Echo"))
                assert bridge.endpoint.host_baud == 115200
                payload = random.Random(2).randbytes(3000)
                assert echo(s, payload) == payload
                assert s.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                                    irsock.IasQuery(FW_ADDRESS, "Device", "DeviceName")).text == "board"
        finally:
            iface.close()
        assert proc.poll() is None
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=5)
        bridge.close()
        drop_medium(medium)
    assert "connected to" in out and "Traceback" not in err, out + err


class FakeBoardUart:
    def __init__(self):
        self.log = []

    def write(self, data):
        self.log.append(("write", bytes(data)))

    def flush(self):
        self.log.append(("flush",))

    def read(self):
        return None

    def init(self, baudrate):
        self.log.append(("init", baudrate))


class FakePin:
    OUT = 1
    changes: list = []

    def __init__(self, ident, mode=None, value=None):
        self.ident = ident
        if value is not None:
            FakePin.changes.append((ident, value))

    def value(self, v):
        FakePin.changes.append((self.ident, v))


class FakePwm:
    def __init__(self, pin):
        self.freqs = []

    def freq(self, hz):
        self.freqs.append(hz)

    def duty_u16(self, duty):
        pass


def load_board(monkeypatch):
    fake = type(sys)("machine")
    fake.Pin, fake.PWM = FakePin, FakePwm
    monkeypatch.setitem(sys.modules, "machine", fake)
    monkeypatch.setitem(sys.modules, "irresponder", core)
    spec = importlib.util.spec_from_file_location("irresponder_board", FIRMWARE / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_board_port_commands_an_mcp2120_and_retunes_a_16x_clock(monkeypatch):
    board = load_board(monkeypatch)
    FakePin.changes = []
    uart = FakeBoardUart()
    port = board.BoardPort(uart, {**board.CONFIG, "transceiver": "mcp2120", "mode_pin": 7}, pin=FakePin)
    port.set_speed(115200)
    writes = [entry[1] for entry in uart.log if entry[0] == "write"]
    assert writes == [b"\x81", b"\x11"] and uart.log[-1] == ("init", 115200)
    assert FakePin.changes == [(7, 1), (7, 0), (7, 1)]  # data mode, command mode, data mode again
    uart = FakeBoardUart()
    port = board.BoardPort(uart, {**board.CONFIG, "transceiver": "clock16x", "clock_pin": 3}, pin=FakePin,
                           pwm=FakePwm)
    port.set_speed(57600)
    assert port.clock.freqs == [16 * 9600, 16 * 57600] and uart.log == [("flush",), ("init", 57600)]
    with pytest.raises(ValueError, match="mode_pin"):
        board.BoardPort(uart, {**board.CONFIG, "transceiver": "mcp2120"}, pin=FakePin)
