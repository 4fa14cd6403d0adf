"""Hostile PDUs into IrLMP, IAS and TinyTP through a connected link, and hostile packets into the OBEX server.

The victim is a full stack (IrLAP station + IrLMP with its IAS server + TinyTP) on the simulated medium;
the attacker is a bare IrLAP station that opened the link and sends whatever I-frames it likes: random
bytes, and structured but wrong PDUs (data on closed LSAPs, connects to unbound LSAPs, IAS requests
with wrong lengths, TinyTP credit bytes 0..255 and abused M bits, disconnects for unknown LSAPs).
Asserted: nothing escapes ``receive`` or ``handle_timer`` (the simulator calls both and would raise),
every queue stays under its bound, and the link still carries a well-formed exchange afterwards.
"""

import io
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irlap import frames as F
from irlap import station as lap
from irlap.qos import QosParams
from irlap.sim import Simulator
from irlap.station import Station
from irsock.lmp import pdu as P
from irsock.lmp.stack import IasResult, IrLMP
from irsock.obex import ObexServer
from irsock.obex import packets as OP
from irsock.ttp import TinyTP, TtpConnected

VICTIM, ATTACKER = 0x71C71C71, 0xA77ACC00
TTP_LSAP = 0x10  # the victim's TinyTP service
OUR_TTP = 0x20  # the attacker's end of the TinyTP connection
OUR_IAS = 0x30  # the attacker's end of an IAS connection
QUEUE_BOUND = 64  # PDUs the victim may hold for one peer, all queues together


def control(dlsap: int, slsap: int, opcode: int, parameter: int = 0, data: bytes = b"") -> bytes:
    return bytes((0x80 | dlsap & 0x7F, slsap & 0x7F, opcode & 0xFF, parameter & 0xFF)) + data


def data_pdu(dlsap: int, slsap: int, data: bytes) -> bytes:
    return bytes((dlsap & 0x7F, slsap & 0x7F)) + data


class Rig:
    """The victim's full stack and the attacker's bare station, linked; a TinyTP and an IAS connection open."""

    def __init__(self, seed: int = 1) -> None:
        self.sim = Simulator(seed)
        qos = QosParams.offer()
        self.victim = TinyTP(IrLMP(Station(VICTIM, qos=qos, rng=self.sim.station_rng(),
                                           info=F.DiscoveryInfo.make("victim"))))
        self.victim.listen(TTP_LSAP)
        self.attacker = Station(ATTACKER, qos=qos, rng=self.sim.station_rng(), info=F.DiscoveryInfo.make("evil"))
        self.v = self.sim.add(self.victim, "victim")
        self.a = self.sim.add(self.attacker, "attacker")
        self.a.call("connect", VICTIM)
        self.sim.run(until=1.0, stop=lambda: self.attacker.state == lap.State.NRM_PRIMARY)
        assert self.attacker.state == lap.State.NRM_PRIMARY
        self.send(control(TTP_LSAP, OUR_TTP, P.OP_CONNECT, 0, P.build_ttp_connect(P.TtpConnect(14))))
        self.send(control(P.LSAP_IAS, OUR_IAS, P.OP_CONNECT))
        self.run(0.5)
        assert any(isinstance(e, TtpConnected) for e in self.v.events)
        self.conn = (TTP_LSAP, OUR_TTP)

    def send(self, pdu: bytes) -> None:
        self.attacker.send(pdu[: self.attacker.max_send_size], self.sim.now)
        self.a.pump()

    def run(self, seconds: float) -> None:
        self.sim.run(until=self.sim.now + seconds)

    def victim_queued(self) -> int:
        """Every PDU the victim holds for the attacker: IrLAP's queue and every IrLMP connection queue."""
        lmp = self.victim.lmp
        return self.victim.station.tx_queue_len + sum(len(c.queue) for c in lmp.connections.values())

    def check_bounds(self) -> None:
        lmp, station = self.victim.lmp, self.victim.station
        assert self.victim_queued() <= QUEUE_BOUND
        assert station.unacked <= 7 and station.pending_resends <= 7
        assert len(lmp.connections) <= 0x70 and len(lmp._ias_sessions) <= len(lmp.connections)
        assert len(lmp._timers) <= len(lmp.connections) + 2
        for conn in self.victim.connections.values():
            assert 0 <= conn.tx_credit <= P.TTP_MAX_CREDIT
            assert conn.rx_granted <= self.victim.initial_credit
            assert sum(len(u[0]) for u in conn.rx_units) <= self.victim.initial_credit * 2048
        assert len(self.victim._events) == 0 and len(lmp._events) == 0 and len(station._events) == 0


# --- strategies ----------------------------------------------------------------------------------------
lsaps = st.integers(0, 0x7F)
random_bytes = st.binary(max_size=80)
data_on_any_lsap = st.builds(data_pdu, lsaps, lsaps, st.binary(max_size=40))
opcodes = st.sampled_from([1, 2, 0x81, 0x82, 3, 0x83, 0x7F, 0xFF]) | st.integers(0, 255)
controls = st.builds(control, lsaps, lsaps, opcodes, st.integers(0, 255), st.binary(max_size=60))
connect_unbound = st.builds(lambda d, s: control(d, s, P.OP_CONNECT), st.integers(0x40, 0x6F), lsaps)
disconnect_unknown = st.builds(lambda d, s, r: control(d, s, P.OP_DISCONNECT, r), st.integers(0x40, 0x7F), lsaps,
                               st.integers(0, 255))
ttp_pdus = st.builds(lambda first, payload: data_pdu(TTP_LSAP, OUR_TTP, bytes((first,)) + payload),
                     st.integers(0, 255), st.binary(max_size=100))  # credit 0..127 with the M bit on or off
ttp_empty = st.just(data_pdu(TTP_LSAP, OUR_TTP, b""))
ttp_connect_params = st.builds(lambda s, params: control(TTP_LSAP, s, P.OP_CONNECT, 0, params),
                               st.integers(0x40, 0x7F), st.binary(max_size=20))


def _ias_request(control_byte: int, class_len: int, name: bytes, attr_len: int, attr: bytes) -> bytes:
    return data_pdu(P.LSAP_IAS, OUR_IAS, bytes((control_byte, class_len & 0xFF)) + name
                    + bytes((attr_len & 0xFF,)) + attr)


ias_requests = st.builds(_ias_request, st.sampled_from([0x84, 0x04, 0xC4, 0x44, 0x81, 0x82, 0x83, 0x85, 0xFF, 0x00]),
                         st.integers(0, 255), st.sampled_from([b"Device", b"", b"IrDA:IrCOMM", b"x" * 70]),
                         st.integers(0, 255), st.sampled_from([b"DeviceName", b"", b"IrLMPSupport", b"y" * 70]))
ias_garbage = st.builds(lambda body: data_pdu(P.LSAP_IAS, OUR_IAS, body), st.binary(max_size=60))
hostile = st.one_of(random_bytes, data_on_any_lsap, controls, connect_unbound, disconnect_unknown, ttp_pdus,
                    ttp_empty, ttp_connect_params, ias_requests, ias_garbage)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile, min_size=1, max_size=30), st.booleans())
def test_hostile_pdus_never_raise_and_every_queue_stays_bounded(pdus, busy):
    rig = Rig()
    if busy:  # the attacker holds the victim in RNR while it hammers
        rig.attacker.set_local_busy(True, rig.sim.now)
    for pdu in pdus:
        rig.send(pdu)
        rig.run(0.02)
        rig.check_bounds()
    rig.run(1.0)
    rig.check_bounds()
    if busy:
        rig.attacker.set_local_busy(False, rig.sim.now)
    rig.run(3.0)
    rig.check_bounds()
    # whatever happened, the link still works: an IAS question of our own gets its answer
    assert rig.victim.station.connected
    assert rig.victim.station.tx_queue_len <= rig.victim.lmp.lap_queue_target  # the replies drained: peer ready


def test_ttp_pdus_with_every_first_byte():
    """Each TinyTP first byte 0..255 (credit 0..127, M bit on and off), on an open connection."""
    rig = Rig()
    for first in range(256):
        rig.send(data_pdu(TTP_LSAP, OUR_TTP, bytes((first,)) + (b"z" if first % 3 else b"")))
        rig.run(0.005)
        rig.check_bounds()


def test_credit_beyond_127_is_clamped():
    """Issue 13 item 7: ten dataless grants of 127 leave the peer's credit at 127, not 1,284."""
    rig = Rig()
    for _ in range(10):
        rig.send(data_pdu(TTP_LSAP, OUR_TTP, bytes((127,))))
    rig.run(0.5)
    conn = rig.victim.connections[rig.conn]
    assert conn.tx_credit == P.TTP_MAX_CREDIT


def test_sar_m_bit_abuse_on_a_stream_connection_is_survived():
    """M set on every PDU of a connection without SAR, then a SAR connection fed M forever: bounded."""
    rig = Rig()
    for _ in range(12):
        rig.send(data_pdu(TTP_LSAP, OUR_TTP, b"\x80" + b"m" * 200))
    rig.run(0.5)
    rig.check_bounds()
    # a SAR connection (max SDU 1000) fed M-bit segments without end: disconnected, not buffered without end
    rig.victim.listen(0x11, max_sdu_size=1000)
    rig.send(control(0x11, 0x21, P.OP_CONNECT, 0, P.build_ttp_connect(P.TtpConnect(14))))
    rig.run(0.3)
    for _ in range(14):
        rig.send(data_pdu(0x11, 0x21, b"\x80" + b"s" * 200))
        rig.run(0.02)
        rig.check_bounds()
    assert (0x11, 0x21) not in rig.victim.connections  # the SDU passed our limit: disconnected with a reason


def test_replies_to_data_on_closed_lsaps_are_bounded_while_we_are_held_in_rnr():
    """Issue 13 item 6: the peer holds us in RNR and sends 300 PDUs to closed LSAPs; every one asks for a
    Disconnect reply. The replies we hold must stay bounded (refuse or drop with a counter, never grow)."""
    rig = Rig()
    rig.attacker.set_local_busy(True, rig.sim.now)
    rig.run(0.2)
    for index in range(300):
        rig.send(data_pdu(0x50 + index % 16, 0x40 + index % 32, b"knock"))
        if index % 20 == 0:
            rig.run(0.05)
    rig.run(2.0)
    assert rig.victim.station.connected
    assert rig.victim_queued() <= QUEUE_BOUND, f"{rig.victim_queued()} PDUs queued for a peer that is busy"


def test_ias_answers_are_bounded_while_we_are_held_in_rnr():
    """Issue 13 item 6, IAS side: 300 requests on one IAS connection while the peer says RNR."""
    rig = Rig()
    rig.attacker.set_local_busy(True, rig.sim.now)
    rig.run(0.2)
    request = data_pdu(P.LSAP_IAS, OUR_IAS, P.build_ias_request(b"Device", b"DeviceName"))
    for index in range(300):
        rig.send(request)
        if index % 20 == 0:
            rig.run(0.05)
    rig.run(2.0)
    assert rig.victim_queued() <= QUEUE_BOUND, f"{rig.victim_queued()} PDUs queued for a peer that is busy"


def test_the_link_still_works_after_the_storm():
    """After hostile PDUs the victim's own IAS client still gets an answer from a well-behaved peer."""
    rig = Rig(seed=3)
    rng = random.Random(3)
    for _ in range(200):
        rig.send(rng.randbytes(rng.randint(0, 40)))
    rig.run(1.0)
    rig.check_bounds()
    assert rig.victim.station.connected
    # the attacker answers our IAS question like an honest peer would not; we only require no crash and an end
    rig.v.call("ias_query", ATTACKER, "Device", "DeviceName")
    rig.run(15.0)
    assert [e for e in rig.v.events if isinstance(e, IasResult)]


# --- OBEX server -----------------------------------------------------------------------------------------
class ScriptedSocket:
    """A socket whose peer sends ``incoming`` and then hangs up; what the server sends is kept."""

    def __init__(self, incoming: bytes) -> None:
        self._in = io.BytesIO(incoming)
        self.sent = bytearray()

    def recv(self, n: int) -> bytes:
        return self._in.read(n)

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def settimeout(self, _timeout) -> None:
        pass


def responses(raw: bytes) -> list[int]:
    codes = []
    while raw:
        length = int.from_bytes(raw[1:3], "big")
        assert length >= 3, "a response shorter than its header"
        codes.append(raw[0])
        raw = raw[length:]
    return codes


def framed(opcode: int, body: bytes) -> bytes:
    return bytes((opcode,)) + (len(body) + 3).to_bytes(2, "big") + body


opcodes = st.sampled_from([OP.CONNECT, OP.DISCONNECT, OP.PUT, OP.PUT | OP.FINAL, OP.GET, OP.GET | OP.FINAL,
                           OP.SETPATH, OP.ABORT]) | st.integers(0, 255)
obex_headers = st.lists(st.one_of(
    st.builds(lambda hi, text: bytes((hi,)) + (len(text) + 3).to_bytes(2, "big") + text,
              st.sampled_from([0x01, 0x05, 0x42, 0x46, 0x47, 0x48, 0x49, 0x4C]) | st.integers(0, 255),
              st.binary(max_size=30)),  # length-prefixed headers, any identifier, any content
    st.builds(lambda hi, v: bytes((hi,)) + v, st.sampled_from([0xC0, 0xC3, 0xCB, 0x97, 0x93]), st.binary(min_size=0,
                                                                                                        max_size=5)),
    st.binary(max_size=12),  # plain garbage inside the packet
), max_size=5).map(b"".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(opcodes, st.binary(max_size=4), obex_headers), min_size=1, max_size=6))
def test_obex_server_answers_random_packets_and_never_raises(tmp_path, packets):
    root = tmp_path / "inbox"
    root.mkdir(exist_ok=True)
    stream = b"".join(framed(opcode, prefix + headers) for opcode, prefix, headers in packets)
    sock = ScriptedSocket(stream)
    ObexServer(root).serve(sock, "fuzz")  # raises nothing for anything the peer sends
    codes = responses(bytes(sock.sent))
    assert all(code & OP.FINAL for code in codes), "every response has the final bit"
    well_formed = []
    for opcode, prefix, headers in packets:
        try:
            OP.parse(framed(opcode, prefix + headers))
            well_formed.append(True)
        except Exception:  # noqa: BLE001 - the parser's verdict, whatever it raises
            well_formed.append(False)
    # every request is answered, until a well-formed DISCONNECT ends the session
    answered = next((i + 1 for i, (opcode, _p, _h) in enumerate(packets) if opcode == OP.DISCONNECT
                     and well_formed[i]), len(packets))
    assert len(codes) == answered
    for (opcode, _p, _h), ok, code in zip(packets, well_formed, codes, strict=False):
        if not ok:  # a packet the parser refuses gets an error response
            assert code >= 0xC0, f"malformed packet 0x{opcode:02x} answered 0x{code:02x}"
    for path in root.rglob("*"):
        assert root in path.resolve().parents  # nothing escaped the inbox


@pytest.mark.parametrize("raw", [b"\x80\x00\x03", b"\x02\x00\x03", b"\x83\x00\x03", b"\xff\x00\x03",
                                 b"\x82\x00\x06\x01\x00\x02", b"\x85\x00\x05\x00\x00"])
def test_obex_server_short_and_odd_packets(tmp_path, raw):
    sock = ScriptedSocket(raw)
    ObexServer(tmp_path).serve(sock, "fuzz")
    codes = responses(bytes(sock.sent))
    assert len(codes) == 1 and codes[0] & OP.FINAL
