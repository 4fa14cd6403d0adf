"""IrLMP access modes (exclusive / multiplexed): golden PDUs, two IrLMP stacks on the simulated medium, peers that
do not support it or do not answer, hostile access-mode PDUs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irlap import frames as F
from irlap.frames import DiscoveryInfo
from irlap.qos import QosParams
from irlap.sim import Simulator
from irlap.station import Station
from irsock.lmp import pdu as P
from irsock.lmp.stack import (
    CONNECT_TIMEOUT,
    IrLMP,
    LmpAccessMode,
    LmpConnectConfirm,
    LmpConnectIndication,
    LmpData,
    LmpDisconnected,
    LmpError,
)

h = bytes.fromhex
A, B = 0xA1A1A1A1, 0xB2B2B2B2


class UnsupportingLmp(IrLMP):
    """A peer like the Linux stack or pyirda: every access mode request is answered "unsupported"."""

    def _on_access_request(self, local, remote, pdu, now):
        self._reply(local, remote, P.OP_ACCESS_MODE_CONFIRM, P.ACCESS_STATUS_UNSUPPORTED, now, data=pdu.data[:1])


class SilentLmp(IrLMP):
    """A peer that never answers an access mode request."""

    def _on_access_request(self, local, remote, pdu, now):
        return


def pair(peer=IrLMP, seed=1):
    sim = Simulator(seed)

    def stack(cls, address, name):
        return cls(Station(address, qos=QosParams.offer(), rng=sim.station_rng(),
                           info=DiscoveryInfo.make(name, hints=0x8404)))

    return sim, sim.add(stack(IrLMP, A, "alpha"), "a"), sim.add(stack(peer, B, "beta"), "b")


def events(node, kind):
    return [e for e in node.events if isinstance(e, kind)]


def lmp_sent(node):
    """The IrLMP PDUs ``node`` sent in I-frames."""
    out = []
    for _t, raw in node.sent_frames:
        frame = F.parse(raw)
        if isinstance(frame, F.IFrame) and frame.info:
            try:
                out.append(P.parse_lmp(frame.info))
            except P.PduError:
                pass
    return out


def accept_on(sim, node, lsap):
    """Confirm every connection indicated on ``lsap`` at once (a listener that accepts)."""
    node.station.listen(lsap)

    def on_event(n, event):
        if isinstance(event, LmpConnectIndication) and event.local == lsap:
            n.station.confirm(event.local, event.remote, sim.now)
    node.on_event = on_event


def exclusive_connection(peer=IrLMP):
    """a connected to b's LSAP 0x10 in exclusive mode."""
    sim, a, b = pair(peer)
    accept_on(sim, b, 0x10)
    local = a.station.allocate_lsap()
    a.station.connect(local, B, 0x10, sim.now, exclusive=True)
    a.pump()
    sim.run(until=5, stop=lambda: bool(events(a, LmpConnectConfirm) or events(a, LmpDisconnected)))
    return sim, a, b, local


# --- golden bytes ---------------------------------------------------------------------------------
def test_access_mode_golden_pdus():
    assert P.build_access_mode(0x10, 0x05, P.ACCESS_EXCLUSIVE) == h("90 05 03 00 01")
    assert P.build_access_mode(0x05, 0x10, P.ACCESS_EXCLUSIVE, P.ACCESS_STATUS_SUCCESS) == h("85 10 83 00 01")
    assert P.build_access_mode(0x05, 0x10, P.ACCESS_MULTIPLEXED, P.ACCESS_STATUS_FAILURE) == h("85 10 83 01 00")
    request = P.parse_lmp(h("90 05 03 00 01"))
    assert request == P.LmpControl(0x10, 0x05, P.OP_ACCESS_MODE, 0, b"\x01")
    assert P.access_mode_of(request) == P.ACCESS_EXCLUSIVE
    assert P.access_mode_of(P.parse_lmp(h("90 05 03 00"))) is None  # truncated: no mode byte


# --- on the simulated medium -----------------------------------------------------------------------------
def test_exclusive_mode_is_granted_to_the_only_connection_and_refuses_every_other():
    sim, a, b, local = exclusive_connection()
    [confirm] = events(a, LmpConnectConfirm)
    assert (confirm.local, confirm.remote) == (local, 0x10)
    assert a.station.exclusive == (local, 0x10) and b.station.exclusive == (0x10, local)
    # the peer granted it, and said so to its owner; the confirm reached our owner only after the grant
    [granted] = events(b, LmpAccessMode)
    assert granted.by_peer and granted.mode == P.ACCESS_EXCLUSIVE and granted.status == P.ACCESS_STATUS_SUCCESS
    assert P.build_access_mode(0x10, local, P.ACCESS_EXCLUSIVE) in [P.build_lmp(p) for p in lmp_sent(a)]
    # no other connection from our side, IAS included
    with pytest.raises(LmpError, match="exclusive mode"):
        a.station.connect(a.station.allocate_lsap(), B, 0x10, sim.now)
    with pytest.raises(LmpError, match="exclusive mode"):
        a.station.ias_query(B, "Device", "DeviceName", sim.now)
    with pytest.raises(LmpError, match="exclusive mode"):
        b.station.connect(0x22, A, 0x20, sim.now)
    # ... nor from the peer's: a Connect to a listening LSAP and to IAS are refused by IrLMP (LM-initiated)
    a.station.listen(0x20)
    for pdu in (P.LmpControl(0x20, 0x33, P.OP_CONNECT), P.LmpControl(P.LSAP_IAS, 0x34, P.OP_CONNECT)):
        b.station.station.send(P.build_lmp(pdu), sim.now)
    b.pump()
    sim.run(until=sim.now + 2)
    refusals = [p for p in lmp_sent(a) if isinstance(p, P.LmpControl) and p.opcode == P.OP_DISCONNECT]
    assert {(p.dlsap, p.slsap, p.parameter) for p in refusals} == {
        (0x33, 0x20, P.DisconnectReason.LM_INITIATED), (0x34, P.LSAP_IAS, P.DisconnectReason.LM_INITIATED)}
    assert set(a.station.connections) == {(local, 0x10)}
    # the exclusive connection itself carries data both ways
    a.call("send", local, 0x10, b"to b")
    b.call("send", 0x10, local, b"to a")
    sim.run(until=sim.now + 2)
    assert [e.data for e in events(b, LmpData)] == [b"to b"] and [e.data for e in events(a, LmpData)] == [b"to a"]


def test_back_to_multiplexed_on_request_then_other_connections_work():
    sim, a, b, local = exclusive_connection()
    a.call("request_access_mode", local, 0x10, False)
    sim.run(until=sim.now + 2, stop=lambda: bool(events(a, LmpAccessMode)))
    [answer] = events(a, LmpAccessMode)
    assert answer.mode == P.ACCESS_MULTIPLEXED and answer.status == P.ACCESS_STATUS_SUCCESS and not answer.by_peer
    assert a.station.exclusive is None and b.station.exclusive is None
    assert events(b, LmpAccessMode)[-1].mode == P.ACCESS_MULTIPLEXED
    a.call("ias_query", B, "Device", "DeviceName")
    other = a.station.allocate_lsap()
    accept_on(sim, b, 0x11)
    a.call("connect", other, B, 0x11)
    sim.run(until=sim.now + 3, stop=lambda: len(events(a, LmpConnectConfirm)) == 2)
    assert {(e.local, e.remote) for e in events(a, LmpConnectConfirm)} == {(local, 0x10), (other, 0x11)}
    # and now exclusive mode cannot be had while two connections share the link
    with pytest.raises(LmpError, match="to itself"):
        a.station.request_access_mode(local, 0x10, True, sim.now)


def test_exclusive_mode_ends_with_its_connection():
    sim, a, b, local = exclusive_connection()
    b.call("disconnect", 0x10, local)
    sim.run(until=sim.now + 2, stop=lambda: bool(events(a, LmpDisconnected)))
    assert events(a, LmpDisconnected)[0].reason == P.DisconnectReason.USER_REQUEST
    assert a.station.exclusive is None and b.station.exclusive is None
    a.call("ias_query", B, "Device", "DeviceName")  # the link takes other connections again
    sim.run(until=sim.now + 3)
    from irsock.lmp.stack import IasResult

    assert [r.values[0].python for r in events(a, IasResult)] == ["beta"]


def test_a_peer_without_exclusive_mode_refuses_the_connection_not_the_link():
    sim, a, b, local = exclusive_connection(UnsupportingLmp)
    assert not events(a, LmpConnectConfirm)
    [gone] = events(a, LmpDisconnected)
    assert gone.reason == P.DisconnectReason.LM_INITIATED and "unsupported" in gone.detail
    sim.run(until=sim.now + 1, stop=lambda: bool(events(b, LmpDisconnected)))
    assert events(b, LmpDisconnected)[0].reason == P.DisconnectReason.LM_INITIATED  # we closed it, with a reason
    assert a.station.exclusive is None and not a.station.connections
    assert a.station.station.connected  # the link stays (for its idle time)


def test_a_peer_that_never_answers_times_out_as_not_responding():
    sim, a, b, local = exclusive_connection(SilentLmp)
    assert not events(a, LmpDisconnected)
    [asked] = [t for t, raw in a.sent_frames if isinstance(f := F.parse(raw), F.IFrame) and f.info
               and P.parse_lmp(f.info) == P.LmpControl(0x10, local, P.OP_ACCESS_MODE, 0, b"\x01")]
    sim.run(until=asked + CONNECT_TIMEOUT + 5, stop=lambda: bool(events(a, LmpDisconnected)))
    [gone] = events(a, LmpDisconnected)
    assert gone.reason == P.DisconnectReason.CLIENT_NOT_RESPONDING and "no answer" in gone.detail
    assert CONNECT_TIMEOUT - 1 <= sim.now - asked <= CONNECT_TIMEOUT + 1
    assert a.station.exclusive is None and not events(a, LmpConnectConfirm)


def test_a_connection_sharing_the_link_is_refused_exclusive_mode_with_failure_and_kept():
    """b has two connections; an access mode request on one is answered "failure", and both stay."""
    sim, a, b = pair()
    accept_on(sim, b, 0x10)
    first, second = a.station.allocate_lsap(), a.station.allocate_lsap()
    a.call("connect", first, B, 0x10)
    a.call("connect", second, B, 0x10)
    sim.run(until=3, stop=lambda: len(events(a, LmpConnectConfirm)) == 2)
    with pytest.raises(LmpError, match="to itself"):
        a.station.connect(a.station.allocate_lsap(), B, 0x10, sim.now, exclusive=True)
    a.station.station.send(P.build_access_mode(0x10, first, P.ACCESS_EXCLUSIVE), sim.now)  # past our own check
    a.pump()
    sim.run(until=sim.now + 2)
    answer = P.LmpControl(first, 0x10, P.OP_ACCESS_MODE_CONFIRM, P.ACCESS_STATUS_FAILURE, b"\x00")
    assert answer in lmp_sent(b)
    assert b.station.exclusive is None and set(b.station.connections) == {(0x10, first), (0x10, second)}


@pytest.mark.parametrize("pdu, answer", [
    (h("90 05 03 00 07"), (P.OP_ACCESS_MODE_CONFIRM, P.ACCESS_STATUS_UNSUPPORTED, b"\x07")),  # unknown mode
    (h("90 05 03 00 00"), (P.OP_ACCESS_MODE_CONFIRM, P.ACCESS_STATUS_SUCCESS, b"\x00")),  # multiplexed already
    (h("90 05 03 00"), None),  # no mode byte: dropped
    (h("90 05 83 00 01"), None),  # a confirm nobody asked for: dropped
    (h("90 05 83 ff"), None),
    (h("90 06 03 00 01"), (P.OP_DISCONNECT, P.DisconnectReason.DATA_ON_DISCONNECTED_LSAP, b"")),  # no such pair
])
def test_odd_access_mode_pdus_are_answered_or_dropped(pdu, answer):
    sim, a, b = pair()
    accept_on(sim, b, 0x10)
    a.call("connect", 0x05, B, 0x10)  # the PDUs below are for this connection (b's 0x10 <- our 0x05)
    sim.run(until=3, stop=lambda: bool(events(a, LmpConnectConfirm)))
    before = len(lmp_sent(b))
    a.station.station.send(pdu, sim.now)
    a.pump()
    sim.run(until=sim.now + 2)
    replies = [(p.opcode, p.parameter, p.data) for p in lmp_sent(b)[before:] if isinstance(p, P.LmpControl)]
    assert replies == ([answer] if answer else [])
    assert b.station.exclusive is None and b.station.station.connected


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([P.OP_ACCESS_MODE, P.OP_ACCESS_MODE_CONFIRM]), st.integers(0, 255),
                          st.binary(max_size=3), st.booleans()), min_size=1, max_size=12))
def test_hostile_access_mode_pdus_never_raise_and_keep_the_connection(pdus):
    sim, a, b, local = exclusive_connection()
    station = b.station.station
    for opcode, parameter, data, on_ours in pdus:
        dlsap, slsap = (local, 0x10) if on_ours else (0x30, 0x31)
        station.send(P.build_lmp(P.LmpControl(dlsap, slsap, opcode, parameter, data)), sim.now)
    b.pump()
    sim.run(until=sim.now + 3)
    assert (local, 0x10) in a.station.connections and a.station.station.connected
    assert len(a.station._replies) <= 16
    b.call("send", 0x10, local, b"still here")
    sim.run(until=sim.now + 2)
    assert events(a, LmpData)[-1].data == b"still here"
