"""TinyTP and IrLMP closing in the simulator: the tail of a stream survives the Disconnect behind it."""

from irlap.qos import QosParams
from irlap.station import Disconnected
from irsock.lmp import pdu as P
from irsock.ttp import TtpDisconnected, TtpReadable
from tests.test_lmp import B, events, pair


def connected(qos=None):
    sim, a, b = pair(ttp=True, qos=qos)
    lsap = b.station.listen()
    conn = a.station.connect(B, lsap, 0.0)
    a.pump()
    sim.run(until=2)
    [peer] = list(b.station.connections)
    return sim, a, b, conn, peer


def test_data_left_unread_when_the_peer_disconnects_stays_readable():
    """B's reader is slow: the Disconnect arrives while B still holds data it has not read."""
    sim, a, b, conn, peer = connected()
    a.call("send", conn, bytes(range(256)) * 8)
    a.call("close", conn)
    sim.run(until=10)
    [gone] = events(b, TtpDisconnected)
    assert gone.reason == P.DisconnectReason.USER_REQUEST
    assert events(b, TtpReadable)
    received = bytearray()
    while data := b.station.recv(peer, 100, sim.now):
        received += data
    assert bytes(received) == bytes(range(256)) * 8
    assert peer not in b.station.connections  # forgotten once drained
    assert b.station.recv(peer, 100, sim.now) == b""


def test_a_stream_longer_than_the_credit_arrives_whole_with_a_reader_that_wakes_late():
    """More data than B's credit: A's close waits for credit, B reads only now and then."""
    sim, a, b, conn, peer = connected()
    payload = bytes(i * 7 % 251 for i in range(40_000))
    a.call("send", conn, payload)
    a.call("close", conn)
    received = bytearray()
    for step in range(400):
        sim.run(until=2 + step * 0.5)
        received += b.station.recv(peer, 3000, sim.now)
        b.pump()
        if peer not in b.station.connections:
            break
    assert bytes(received) == payload
    assert [e.reason for e in events(b, TtpDisconnected)] == [P.DisconnectReason.USER_REQUEST]


def test_shutdown_keeps_what_the_peer_sent_readable():
    sim, a, b, conn, peer = connected()
    b.call("send", peer, b"answer")
    sim.run(until=4)
    a.station.close(conn, sim.now, keep_received=True)
    a.pump()
    sim.run(until=8)
    assert a.station.closed(conn)
    assert a.station.recv(conn, 100, sim.now) == b"answer"
    assert conn not in a.station.connections


def test_a_closed_reader_gives_credit_back_so_the_peer_never_waits_on_it():
    """A closes without reading while B keeps sending: B's data is discarded and its credit returned,
    so B's own close completes."""
    sim, a, b, conn, peer = connected()
    b.call("send", peer, b"y" * 20_000)
    a.call("close", conn)
    b.call("close", peer)
    sim.run(until=30)
    assert b.station.closed(peer) and peer not in b.station.connections
    assert conn not in a.station.connections


def test_abort_discards_queued_data_and_the_peer_sees_a_reset():
    sim, a, b, conn, peer = connected()
    a.call("send", conn, b"z" * 50_000)
    a.call("abort", conn)
    sim.run(until=10)
    [gone] = events(b, TtpDisconnected)
    assert gone.reason != P.DisconnectReason.USER_REQUEST


def test_credit_beyond_127_is_clamped():
    sim, a, b, conn, peer = connected()
    for _ in range(20):
        b.station.lmp.send(peer[0], peer[1], P.build_ttp_data(b"", 127, False), sim.now)
    b.pump()
    sim.run(until=6)
    assert a.station.connections[conn].tx_credit <= P.TTP_MAX_CREDIT


def test_the_link_stays_up_until_the_last_lsaps_data_is_delivered():
    """At 9600 bit/s the last frames take seconds; the IrLAP link must not be closed under them by the
    idle timer that starts when the last LSAP's Disconnect is handed to IrLAP."""
    sim, a, b, conn, peer = connected(qos=QosParams.offer(max_baud=9600))
    a.station.lmp.idle_timeout = 0.1
    payload = b"q" * 12_000
    a.call("send", conn, payload)
    a.call("close", conn)
    received = bytearray()

    def read(node, event):
        if peer in b.station.connections:
            received.extend(b.station.recv(peer, None, sim.now))
        sim.at(sim.now, b.pump)

    b.on_event = read
    sim.run(until=60)
    assert bytes(received) == payload
    assert [e.reason for e in events(b, TtpDisconnected)] == [P.DisconnectReason.USER_REQUEST]
    assert events(a, Disconnected)  # and the idle link did go down afterwards


def test_lsaps_of_closed_connections_are_freed():
    """A connect allocates a local LSAP; after 111 connections closed one after the other there must
    still be free ones (they were never given back)."""
    sim, a, b = pair(ttp=True)
    lsap = b.station.listen()
    for round_ in range(130):
        conn = a.station.connect(B, lsap, sim.now)
        a.pump()
        sim.run(until=sim.now + 1)
        assert conn in a.station.connections and a.station.connections[conn].open, f"connection {round_}"
        a.call("close", conn)
        for peer in list(b.station.connections):
            b.call("close", peer)
        sim.run(until=sim.now + 1)
        assert conn not in a.station.connections


def test_pdus_leaving_the_send_queue_are_announced_so_a_blocked_writer_wakes():
    """Each time queued PDUs go down to IrLMP (credit came back, the link took them) TinyTP says so: the
    socket layer wakes a writer waiting for room on it instead of leaving it to its own polling."""
    from irsock.ttp import TtpWritable

    sim, a, b, conn, peer = connected()
    a.call("send", conn, bytes(40_000))  # beyond B's credit: most of it waits in A's queue
    queued = a.station.pending(conn)
    assert queued > 0
    announced = len(events(a, TtpWritable))
    for step in range(40):
        sim.run(until=2 + step * 0.5)
        b.station.recv(peer, 40_000, sim.now)  # B reads: credit goes back, A's queue drains
        b.pump()
    assert a.station.pending(conn) == 0
    writable = events(a, TtpWritable)
    assert len(writable) > announced and {e.conn for e in writable} == {conn}


def test_irlmp_keeps_a_whole_window_queued_in_irlap():
    """IrLAP sends at its turn only the frames queued then: with a window of 7 and 4 queued, every turn was cut
    to 4 frames (at 4 Mbit/s that read as 3-4 % of the line)."""
    from irsock.lmp.stack import LAP_QUEUE_TARGET

    sim, a, b, conn, peer = connected(QosParams.offer(max_baud=4000000))
    lmp = a.station.lmp
    window = lmp.station.params.tx_window
    assert window > LAP_QUEUE_TARGET
    a.call("send", conn, bytes(40_000))
    assert lmp.lap_queue_target == window
    assert lmp.station.tx_queue_len + lmp.station.unacked == window
