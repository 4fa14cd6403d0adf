"""IrLMP, IAS and TinyTP: golden PDUs, behaviour on the simulated medium, hostile peers."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irlap.frames import DiscoveryInfo
from irlap.qos import QosParams
from irlap.sim import Faults, Simulator
from irlap.station import Connected, Disconnected, Station
from irsock.lmp import pdu as P
from irsock.lmp import stack as stack_module
from irsock.lmp.ias import IasDatabase, IasServerSession, fragments
from irsock.lmp.stack import (
    ConnectionlessData,
    IasResult,
    IrLMP,
    LmpConnectConfirm,
    LmpConnectIndication,
    LmpData,
    LmpDisconnected,
    LmpError,
)
from irsock.sim.scenarios import run_ttp_transfer
from irsock.ttp import TinyTP, TtpConnected, TtpDisconnected

h = bytes.fromhex
A, B = 0xA1A1A1A1, 0xB2B2B2B2


# --- golden PDUs (oracles.md 1.5: the bytes after the IrLAP address and control) ---------------------
def test_lmp_golden_pdus():
    assert P.build_lmp(P.LmpControl(0x00, 0x10, P.OP_CONNECT)) == h("80 10 01 00")
    assert P.build_lmp(P.LmpControl(0x10, 0x00, P.OP_CONNECT_CONFIRM)) == h("90 00 81 00")
    assert P.build_lmp(P.LmpControl(0x00, 0x10, P.OP_DISCONNECT, 0x01)) == h("80 10 02 01")
    assert P.parse_lmp(h("80 10 02 01")) == P.LmpControl(0, 0x10, P.OP_DISCONNECT, 1)
    assert P.parse_lmp(h("05 11 01 00 68 65 6c 6c 6f")) == P.LmpData(5, 0x11, h("01 00") + b"hello")
    assert P.build_lmp(P.LmpControl(0x05, 0x11, P.OP_CONNECT, 0, h("0e"))) == h("85 11 01 00 0e")
    assert P.build_connectionless(P.LmpConnectionless(1, b"x")) == h("70 70 01") + b"x"
    assert P.build_lmp(P.LmpControl(1, 2, P.OP_ACCESS_MODE_CONFIRM, 0xFF, b"\x01")) == h("81 02 83 ff 01")


def test_ias_golden_pdus():
    request = P.build_ias_request(b"IrDA:IrCOMM", b"IrDA:TinyTP:LsapSel")
    assert request == h("84 0b") + b"IrDA:IrCOMM" + h("13") + b"IrDA:TinyTP:LsapSel"
    assert P.parse_ias_request(request) == (0x84, b"IrDA:IrCOMM", b"IrDA:TinyTP:LsapSel")
    body = P.build_ias_response_body(0, ((1, P.IasValue.of_int(5)),))
    assert h("84") + body == h("84 00 00 01 00 01 01 00 00 00 05")
    assert P.parse_ias_response_body(body).entries[0][1].python == 5
    string = P.build_ias_response_body(0, ((0, P.IasValue.of_string("peer")),))
    assert string == h("00 00 01 00 00 03 00 04") + b"peer"
    octets = P.build_ias_response_body(0, ((2, P.IasValue.of_octets(h("010000"))),))
    assert octets == h("00 00 01 00 02 02 00 03 01 00 00")
    assert P.build_ias_response_body(P.IAS_NO_SUCH_CLASS) == h("01")


def test_ttp_golden_pdus():
    assert P.build_ttp_connect(P.TtpConnect(14)) == h("0e")
    assert P.parse_ttp_connect(h("0e")) == P.TtpConnect(14)
    with_sdu = P.build_ttp_connect(P.TtpConnect(14, 2048))
    assert with_sdu == h("8e 04 01 02 08 00")
    assert P.parse_ttp_connect(with_sdu) == P.TtpConnect(14, 2048)
    assert P.parse_ttp_connect(P.build_ttp_connect(P.TtpConnect(3, 0xFFFFFFFF))).max_sdu_size == 0xFFFFFFFF
    assert P.build_ttp_data(b"world", 2, True) == h("82") + b"world"
    assert P.parse_ttp_data(h("01") + b"hello") == (False, 1, b"hello")


@pytest.mark.parametrize("data", [b"", b"\x80", b"\x80\x01\x01", b"\x81\x02\x77\x00", b"\x01\x82"])
def test_malformed_lmp_pdus(data):
    with pytest.raises(P.PduError):
        P.parse_lmp(data)


@given(st.binary(max_size=80))
def test_pdu_parsers_raise_only_pdu_error(data):
    for parse in (P.parse_lmp, P.parse_ias_response_body, P.parse_ias_request, P.parse_ttp_connect,
                  P.parse_connectionless, P.parse_ttp_data):
        try:
            parse(data)
        except P.PduError:
            pass


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(P.IasValue.of_int),
    st.binary(max_size=40).map(P.IasValue.of_octets),
    st.text(max_size=30).map(lambda t: P.IasValue.of_string(t, 0xFF)),
)), max_size=5))
def test_ias_values_round_trip(entries):
    parsed = P.parse_ias_response_body(P.build_ias_response_body(0, tuple(entries)))
    assert parsed.entries == tuple(entries)


# --- IAS server ------------------------------------------------------------------------------------
def test_ias_database_and_return_codes():
    db = IasDatabase.for_device("Galileo")
    assert db.get(b"Device", b"DeviceName")[1][0][1].text == "Galileo"
    assert db.get(b"Device", b"IrLMPSupport")[1][0][1].octets == h("01 00 00")
    assert db.get(b"Nope", b"x") == (P.IAS_NO_SUCH_CLASS, ())
    assert db.get(b"Device", b"x") == (P.IAS_NO_SUCH_ATTRIBUTE, ())
    session = IasServerSession(db)
    [answer] = session.receive(bytes((0x80 | 0x02,)), 62)  # GetObjects: not supported
    assert answer == h("82 ff")


def test_ias_long_answers_are_fragmented_and_acknowledged():
    db = IasDatabase()
    for index in range(3):
        db.set(f"Svc{index}", "Data", P.IasValue.of_octets(bytes(range(100))))
    db.set("Svc0", "Name", P.IasValue.of_string("x" * 200))
    session = IasServerSession(db)
    request = P.build_ias_request(b"Svc0", b"Name")
    frames = session.receive(request, 64)
    assert len(frames) == 1 and not frames[0][0] & P.IAS_LST
    collected = frames[0][1:]
    while not frames[-1][0] & P.IAS_LST:
        frames = session.receive(bytes((P.IAS_ACK | 4,)), 64)
        collected += frames[0][1:]
    assert P.parse_ias_response_body(collected).entries[0][1].text == "x" * 200
    assert [len(f) for f in fragments(4, bytes(130), 64)] == [64, 64, 5]


# --- on the simulated medium ----------------------------------------------------------------------------
def pair(seed=1, qos=None, faults=None, ttp=False):
    sim = Simulator(seed, faults)
    qos = qos or QosParams.offer()

    def stack(address, name):
        lmp = IrLMP(Station(address, qos=qos, rng=sim.station_rng(), info=DiscoveryInfo.make(name, hints=0x8404)))
        return TinyTP(lmp) if ttp else lmp

    return sim, sim.add(stack(A, "alpha"), "a"), sim.add(stack(B, "beta"), "b")


def events(node, kind):
    return [e for e in node.events if isinstance(e, kind)]


def test_ias_query_over_the_air_every_type_and_code():
    sim, a, b = pair()
    b.station.ias.set("IrDA:IrCOMM", "IrDA:TinyTP:LsapSel", P.IasValue.of_int(5))
    b.station.ias.set("IrDA:IrCOMM", "Parameters", P.IasValue.of_octets(h("000104010101")))
    b.station.ias.set("Unicode", "Name", P.IasValue.of_string("Tauchcomputer ☺", 0xFF))
    for cls, attr in (("IrDA:IrCOMM", "IrDA:TinyTP:LsapSel"), ("IrDA:IrCOMM", "Parameters"), ("Unicode", "Name"),
                      ("Device", "DeviceName"), ("Nope", "x"), ("Device", "x")):
        a.call("ias_query", B, cls, attr)
    sim.run(until=5)
    results = {(r.class_name, r.attribute): r for r in events(a, IasResult)}
    assert results["IrDA:IrCOMM", "IrDA:TinyTP:LsapSel"].values[0].python == 5
    assert results["IrDA:IrCOMM", "Parameters"].values[0].python == h("000104010101")
    assert results["Unicode", "Name"].values[0].python == "Tauchcomputer ☺"
    assert results["Device", "DeviceName"].values[0].python == "beta"
    assert results["Nope", "x"].status == P.IAS_NO_SUCH_CLASS and results["Nope", "x"].describe() == "no such class"
    assert results["Device", "x"].status == P.IAS_NO_SUCH_ATTRIBUTE
    sim.run(until=10)
    assert not a.station.station.connected  # the link closed after the idle time


def test_connect_while_our_link_is_closing_opens_a_new_link():
    """A query asked just as the idle link is being closed waits for the close, then gets a new link."""
    sim, a, b = pair()
    a.call("ias_query", B, "Device", "DeviceName")
    t = 0.0
    while not a.station.station.closing and t < 10:
        t += 0.0002 if t > 1.9 else 0.1  # the idle close (2 s) takes a few ms at 115200
        sim.run(until=t)
    assert a.station.station.closing, "the idle link never started closing"
    a.call("ias_query", B, "Device", "DeviceName")
    sim.run(until=t + 8)
    results = events(a, IasResult)
    assert len(results) == 2 and all(r.ok and r.values[0].python == "beta" for r in results)
    assert len(events(a, Connected)) == 2 and len(events(a, Disconnected)) >= 1


def test_a_query_asked_during_our_discovery_round_gets_its_link_when_the_round_ends():
    """IrLAP cannot connect while it discovers: the query waits for the end of the round, then opens the link
    (it used to wait for a link nobody opened, and timed out after 8 s)."""
    sim, a, b = pair()
    a.call("discover", 6)
    sim.run(until=0.05)
    assert a.station.station.state.value == "QUERY"
    a.call("ias_query", B, "Device", "DeviceName")
    sim.run(until=3)
    results = events(a, IasResult)
    assert len(results) == 1 and results[0].ok and results[0].values[0].python == "beta"


def test_query_to_another_device_drops_our_idle_link_at_once():
    """IrLAP connects to one device at a time. A link kept up only for the idle time (no LSAP open on it) is
    dropped at once when another device is asked for, which then gets its own link: not "the link is in use"."""
    sim, a, b = pair()
    C = 0xC3C3C3C3
    sim.add(IrLMP(Station(C, rng=sim.station_rng(), info=DiscoveryInfo.make("gamma", hints=0x8404))), "c")
    a.call("ias_query", B, "Device", "DeviceName")
    sim.run(until=5, stop=lambda: bool(events(a, IasResult)))
    assert a.station.station.connected and not a.station.connections  # held for the idle time
    asked = sim.now
    a.call("ias_query", C, "Device", "DeviceName")
    sim.run(until=asked + 5, stop=lambda: len(events(a, IasResult)) == 2)
    assert [r.values[0].python for r in events(a, IasResult) if r.ok] == ["beta", "gamma"]
    assert sim.now - asked < a.station.idle_timeout  # no wait for the idle time
    assert a.station.peer == C


def test_connect_to_another_device_while_an_lsap_is_open_is_refused():
    sim, a, b = pair()
    b.call("listen", 5)
    a.call("connect", 3, B, 5)
    sim.run(until=5, stop=lambda: bool(events(a, LmpConnectConfirm)))
    with pytest.raises(LmpError, match="in use"):
        a.call("connect", 4, 0xC3C3C3C3, 5)
    assert a.station.station.connected and a.station.peer == B


def test_ias_query_with_small_frames_fragments_both_ways():
    small = QosParams.offer(max_data_size=64)
    sim, a, b = pair(qos=small)
    b.station.ias.set("Long", "A" * 60, P.IasValue.of_string("v" * 250))
    a.call("ias_query", B, "Long", "A" * 60)
    sim.run(until=8)
    [result] = events(a, IasResult)
    assert result.ok and result.values[0].python == "v" * 250


def test_ias_query_times_out_when_nobody_answers():
    sim = Simulator(1)
    a = sim.add(IrLMP(Station(A, rng=random.Random(1))), "a")
    a.call("ias_query", 0x12345678, "Device", "DeviceName")
    sim.run(until=20)
    [result] = events(a, IasResult)
    assert result.status is None and result.error


def test_lsap_connections_multiplexed_with_user_data():
    sim, a, b = pair()
    b.station.listen(0x10)
    b.station.listen(0x11)
    c1 = a.station.allocate_lsap()
    c2 = a.station.allocate_lsap()
    a.call("connect", c1, B, 0x10)
    a.call("connect", c2, B, 0x11)
    sim.run(until=2)
    indications = events(b, LmpConnectIndication)
    assert {(i.local, i.remote) for i in indications} == {(0x10, c1), (0x11, c2)}
    b.station.confirm(0x10, c1, sim.now, user_data=b"hi")
    b.station.confirm(0x11, c2, sim.now)
    b.pump()
    sim.run(until=3)
    confirms = {(e.local, e.remote): e.user_data for e in events(a, LmpConnectConfirm)}
    assert confirms == {(c1, 0x10): b"hi", (c2, 0x11): b""}
    a.call("send", c1, 0x10, b"one")
    a.call("send", c2, 0x11, b"two")
    sim.run(until=4)
    assert {(e.local, e.data) for e in events(b, LmpData)} == {(0x10, b"one"), (0x11, b"two")}
    a.call("disconnect", c1, 0x10)
    sim.run(until=5)
    [gone] = events(b, LmpDisconnected)
    assert gone.local == 0x10 and gone.reason == P.DisconnectReason.USER_REQUEST
    assert a.station.station.connected  # the other connection keeps the link


def test_connect_to_unbound_lsap_is_refused_with_a_reason():
    sim, a, b = pair()
    local = a.station.allocate_lsap()
    a.call("connect", local, B, 0x42)
    sim.run(until=3)
    [gone] = events(a, LmpDisconnected)
    assert gone.reason == P.DisconnectReason.NO_CLIENT


def test_connect_to_absent_device_fails_with_lap_reason():
    sim = Simulator(1)
    a = sim.add(IrLMP(Station(A, rng=random.Random(1))), "a")
    a.call("connect", 1, 0x12345678, 5)
    sim.run(until=5)
    [gone] = events(a, LmpDisconnected)
    assert gone.reason == P.DisconnectReason.LAP_CONNECT_FAILED


def test_hostile_peer_bogus_lsaps_access_mode_and_garbage():
    sim, a, b = pair()
    b.station.listen(0x10)
    local = a.station.allocate_lsap()
    a.call("connect", local, B, 0x10)
    sim.run(until=1)
    b.station.confirm(0x10, local, sim.now)
    b.pump()
    sim.run(until=2)
    station = a.station.station
    station.send(P.build_lmp(P.LmpData(0x33, 0x44, b"nobody")), sim.now)  # data on a closed LSAP
    station.send(P.build_lmp(P.LmpControl(0x10, local, P.OP_ACCESS_MODE, 1)), sim.now)  # no mode byte: dropped
    station.send(P.build_access_mode(0x10, local, 7), sim.now)  # a mode nobody knows
    for junk in (b"", b"\x80", b"\xff\xff\xff\xff", b"\x00\x10\x84\xff" + b"A" * 300, bytes(range(40))):
        station.send(junk, sim.now)
    a.pump()
    sim.run(until=4)
    from irlap import frames as F

    answers = [P.parse_lmp(f.info) for f in (F.parse(raw) for _t, raw in b.sent_frames)
               if isinstance(f, F.IFrame) and f.info]
    assert P.LmpControl(0x44, 0x33, P.OP_DISCONNECT, P.DisconnectReason.DATA_ON_DISCONNECTED_LSAP) in answers
    assert P.LmpControl(local, 0x10, P.OP_ACCESS_MODE_CONFIRM, P.ACCESS_STATUS_UNSUPPORTED, b"\x07") in answers
    assert not any(a.opcode == P.OP_ACCESS_MODE_CONFIRM and a.data == b"\x01" for a in answers
                   if isinstance(a, P.LmpControl))
    assert b.station.station.connected and (0x10, local) in b.station.connections
    a.call("send", local, 0x10, b"still here")
    sim.run(until=5)
    assert events(b, LmpData)[-1].data == b"still here"


def test_ias_names_of_255_bytes_survive():
    sim, a, b = pair()
    a.call("ias_query", B, "C" * 255, "A" * 255)
    sim.run(until=5)
    [result] = events(a, IasResult)
    assert result.status == P.IAS_NO_SUCH_CLASS


def test_connectionless_data():
    sim, a, b = pair()
    a.call("send_connectionless", 1, b"beacon")
    sim.run(until=2)
    assert events(b, ConnectionlessData) == [ConnectionlessData(1, b"beacon")]


def test_lap_reset_and_loss_disconnect_lmp_connections():
    sim, a, b = pair(faults=Faults(outages=[(3.0, 60.0)]), qos=QosParams.offer(max_link_disconnect_s=3))
    b.station.listen(0x10)
    local = a.station.allocate_lsap()
    a.call("connect", local, B, 0x10)
    sim.run(until=1)
    b.station.confirm(0x10, local, sim.now)
    b.pump()
    sim.run(until=20)
    [gone] = events(a, LmpDisconnected)
    assert gone.reason == P.DisconnectReason.UNEXPECTED_LAP_DISCONNECT and "lost" in gone.detail
    assert events(a, Disconnected) and events(a, Connected)


# --- TinyTP ------------------------------------------------------------------------------------------
def test_ttp_stream_one_megabyte_efficiency():
    report = run_ttp_transfer(1_000_000)
    print("TinyTP 1 MB at 115200:", report.as_dict())
    assert report.intact == [True] and report.efficiency >= 0.92


def test_ttp_five_connections_share_fairly():
    report = run_ttp_transfer(60_000, connections=5)
    assert report.intact == [True] * 5 and not report.disconnects
    assert max(report.finish_times) - min(report.finish_times) < 0.2 * max(report.finish_times)


def test_ttp_slow_reader_bounds_every_buffer():
    report = run_ttp_transfer(40_000, reader_bytes_per_s=2000)
    assert report.intact == [True]
    assert report.max_receiver_buffered <= 14 * 2045  # the credit we grant
    assert report.max_sender_buffered <= 4096 + 2045 * 2
    assert report.goodput_Bps == pytest.approx(2000, rel=0.1)  # the reader sets the pace


def test_ttp_sar_keeps_message_boundaries_under_bit_errors():
    sim, a, b = pair(ttp=True, faults=Faults(ber=2e-5), seed=4)
    lsap = b.station.listen(max_sdu_size=8000)
    conn = a.station.connect(B, lsap, 0.0, max_sdu_size=8000)
    a.pump()
    sim.run(until=2)
    [connected] = events(a, TtpConnected)
    assert connected.peer_max_sdu == 8000
    messages = [bytes([i]) * (i * 300 + 1) for i in range(20)]
    for message in messages:
        a.call("send", conn, message)
    [peer_conn] = list(b.station.connections)
    got = []
    for second in range(3, 60):
        sim.run(until=second)
        while sdu := b.station.recv(peer_conn, None, sim.now):  # reading frees credit
            got.append(sdu)
        b.pump()
        if len(got) == len(messages):
            break
    assert got == messages
    with pytest.raises(Exception, match="exceeds the peer's limit"):
        a.station.send(conn, bytes(9000), sim.now)


def test_ttp_credit_violation_disconnects():
    sim, a, b = pair(ttp=True)
    lsap = b.station.listen()
    conn = a.station.connect(B, lsap, 0.0)
    a.pump()
    sim.run(until=2)
    # bypass TinyTP's accounting: push 20 PDUs straight into IrLMP (the peer granted 14)
    for _ in range(20):
        a.station.lmp.connections[conn].queue.append(P.build_lmp(P.LmpData(lsap, conn[0], h("00") + b"x")))
    a.station.lmp._pump(sim.now)
    a.pump()
    sim.run(until=6)
    [gone] = events(b, TtpDisconnected)
    assert "beyond its credit" in gone.detail


def test_ttp_orderly_close_delivers_queued_data_first():
    sim, a, b = pair(ttp=True)
    lsap = b.station.listen()
    conn = a.station.connect(B, lsap, 0.0)
    a.pump()
    sim.run(until=2)
    a.call("send", conn, b"x" * 30000)
    a.call("close", conn)
    received = bytearray()

    def read(node, event):
        for peer in list(b.station.connections):
            received.extend(b.station.recv(peer, None, sim.now))
        sim.at(sim.now, b.pump)

    b.on_event = read
    sim.run(until=20)
    assert bytes(received) == b"x" * 30000
    assert events(b, TtpDisconnected)[0].reason == P.DisconnectReason.USER_REQUEST


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), ber=st.sampled_from([0, 1e-5, 1e-4]))
def test_ttp_random_faults_never_corrupt(seed, ber):
    report = run_ttp_transfer(8000, connections=2, seed=seed, faults=Faults(ber=ber))
    for got, ok in zip(report.delivered, report.intact, strict=False):
        assert ok or got < 8000


def test_malformed_ias_answer_is_an_error_not_a_return_code():
    from irsock.lmp.ias import IasClientCall

    call = IasClientCall(1, B, b"Device", b"DeviceName", P.build_ias_request(b"Device", b"DeviceName"))
    call.start(62)
    replies, response = call.receive(h("84 00 00 05 00"))  # claims 5 entries, holds none
    assert response is None and replies == [] and "malformed IAS answer" in call.error


def _busy_link_pair(monkeypatch, timeout):
    """A 9600 bit/s link whose IrLAP queue is full of one connection's data, and a short connect timeout."""
    sim, a, b = pair(qos=QosParams.offer(max_baud=9600))
    for lsap in (0x10, 0x11, 0x12):
        b.station.listen(lsap)
    first = a.station.allocate_lsap()
    a.call("connect", first, B, 0x10)
    sim.run(until=2)
    b.station.confirm(0x10, first, sim.now)
    b.pump()
    sim.run(until=3)
    for _ in range(40):  # about 10 s of line time; IrLMP keeps LAP_QUEUE_TARGET frames queued in IrLAP
        a.station.send(first, 0x10, bytes(a.station.max_data()), sim.now)
    a.pump()
    monkeypatch.setattr(stack_module, "CONNECT_TIMEOUT", timeout)
    return sim, a, b


def test_connect_queued_behind_data_is_not_timed_out_before_it_reaches_the_peer(monkeypatch):
    """The soak's seed 1 at t=8529: a Connect waited 12 s behind the previous connection's data on a link
    slowed by bit errors, reached B 2 s after A had given up with 'client not responding', and B confirmed at
    once. Here the Connect needs ~1.4 s of line time behind the queued frames; the timeout is 0.5 s."""
    sim, a, b = _busy_link_pair(monkeypatch, 0.5)
    second = a.station.allocate_lsap()
    started = sim.now
    a.call("connect", second, B, 0x11)
    while not [i for i in events(b, LmpConnectIndication) if i.local == 0x11] and sim.now < started + 10:
        sim.run(until=sim.now + 0.01)
    assert sim.now - started > 1.0  # longer than the timeout: the Connect really waited
    b.station.confirm(0x11, second, sim.now)
    b.pump()
    sim.run(until=sim.now + 0.3)
    assert [(e.local, e.remote) for e in events(a, LmpConnectConfirm)][-1] == (second, 0x11)
    assert not [e for e in events(a, LmpDisconnected) if e.local == second]
    assert a.station.connections[second, 0x11].state.name == "OPEN"


def test_connect_watchdog_still_fires_for_a_silent_peer_and_a_stalled_link(monkeypatch):
    sim, a, b = _busy_link_pair(monkeypatch, 0.5)
    silent = a.station.allocate_lsap()
    started = sim.now
    a.call("connect", silent, B, 0x12)  # B's user never confirms
    sim.run(until=started + 10)
    [gone] = [e for e in events(a, LmpDisconnected) if e.local == silent]
    assert gone.reason == P.DisconnectReason.CLIENT_NOT_RESPONDING
    # it failed only after the Connect got through and the peer kept silent
    assert [(i.local, i.remote) for i in events(b, LmpConnectIndication) if i.local == 0x12] == [(0x12, silent)]
    # a link that moves nothing (the peer holds us in RNR) fails the connect after the timeout too
    b.station.station.set_local_busy(True, sim.now)
    b.pump()
    for _ in range(8):
        a.station.send(*next(iter(k for k in a.station.connections if k[1] == 0x10)), bytes(10), sim.now)
    stalled = a.station.allocate_lsap()
    started = sim.now
    a.call("connect", stalled, B, 0x11)
    sim.run(until=started + 3)
    [gone] = [e for e in events(a, LmpDisconnected) if e.local == stalled]
    assert gone.reason == P.DisconnectReason.CLIENT_NOT_RESPONDING
