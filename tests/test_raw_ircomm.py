"""Exclusive mode, Sharp mode and the three IrCOMM service types at the socket level, on the emulated medium."""

from __future__ import annotations

import errno
import random
import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irsock
from irsock import ircomm as I
from irsock.lmp import pdu as P
from tests.conftest import wait_until
from tests.test_socket import echo_server, exchange

EXCLUSIVE, IRLPT, NINE = irsock.IRLMP_EXCLUSIVE_MODE, irsock.IRLMP_IRLPT_MODE, irsock.IRLMP_9WIRE_MODE


def sock(iface, *options):
    s = iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    s.settimeout(10)
    for option in options:
        s.setsockopt(irsock.SOL_IRLMP, option, 1)
    return s


def listener(iface, service, *options, echo=True, count=1):
    s = sock(iface, *options)
    s.bind((service,))
    s.listen()
    if echo:
        echo_server(s, count)
    return s


def exclusive_holder(iface):
    return iface.call(lambda stack, now: stack.lmp.exclusive)


def ias(client, device, cls, attribute):
    return client.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY, irsock.IasQuery(device, cls, attribute))




# --- exclusive mode ------------------------------------------------------------------------------------
def test_exclusive_mode_socket_gets_the_link_to_itself_and_gives_it_back(medium):
    a, b = medium
    server = listener(b, "Raw", EXCLUSIVE)
    other = listener(b, "Other")  # a TinyTP service on the same device
    client = sock(a, EXCLUSIVE)
    assert client.getsockopt(irsock.SOL_IRLMP, EXCLUSIVE) == 1 and client.getsockopt(irsock.SOL_IRLMP, IRLPT) == 0
    client.connect((b.address, "Raw"))
    conn = client._impl.conn
    assert exclusive_holder(a) == conn and exclusive_holder(b) == (conn[1], conn[0])
    payload = random.Random(3).randbytes(20_000)
    assert exchange(client, payload) == payload
    # nothing else gets on the link meanwhile: a connect (its IAS lookup first) fails at once, saying why
    with sock(a) as second, pytest.raises(OSError, match="exclusive mode") as info:
        second.connect((b.address, "Other"))
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError, match="exclusive mode"):
        ias(client, b.address, "Device", "DeviceName")
    client.close()
    wait_until(lambda: exclusive_holder(a) is None and exclusive_holder(b) is None, "the link is multiplexed again")
    with sock(a) as second:
        second.connect((b.address, "Other"))
        assert exchange(second, b"multiplexed again") == b"multiplexed again"
    server.close()
    other.close()


def test_a_peer_that_does_not_grant_exclusive_mode_refuses_the_connect(medium):
    """A peer like the Linux stack answers every access mode request "unsupported": the connect fails with
    ECONNREFUSED and says so; the link and the peer's listener are fine for the next connection."""
    a, b = medium

    def linux_like(stack, now):
        lmp = stack.lmp
        lmp._on_access_request = lambda local, remote, pdu, now: lmp._reply(
            local, remote, P.OP_ACCESS_MODE_CONFIRM, P.ACCESS_STATUS_UNSUPPORTED, now, data=pdu.data[:1])

    b.call(linux_like)
    server = listener(b, "Raw", IRLPT, count=2)
    with sock(a, EXCLUSIVE) as client, pytest.raises(ConnectionRefusedError, match="not granted.*unsupported"):
        client.connect((b.address, "Raw"))
    assert exclusive_holder(a) is None
    with sock(a, IRLPT) as client:  # raw IrLMP without exclusive mode still works with that peer
        client.connect((b.address, "Raw"))
        assert exchange(client, b"raw anyway") == b"raw anyway"
    server.close()


def test_exclusive_mode_is_not_had_while_another_connection_uses_the_link(medium):
    a, b = medium
    listener(b, "Raw", EXCLUSIVE)
    listener(b, "Other")
    with sock(a) as first:
        first.connect((b.address, "Other"))
        with sock(a, EXCLUSIVE) as client, pytest.raises(OSError, match="to itself") as info:
            client.connect((b.address, "Raw"))
        assert info.value.errno == errno.EINVAL
        assert exchange(first, b"untouched") == b"untouched"


def test_irlpt_mode_is_raw_irlmp_without_exclusive_mode(medium):
    a, b = medium
    listener(b, "Raw", IRLPT)
    listener(b, "Other")
    with sock(a, IRLPT) as client, sock(a) as second:
        client.connect((b.address, "Raw"))
        assert exclusive_holder(a) is None
        second.connect((b.address, "Other"))  # shares the link
        assert exchange(client, b"raw") == b"raw" and exchange(second, b"ttp") == b"ttp"


def test_raw_mode_options_are_set_before_connecting_and_exclude_9wire(medium):
    a, _b = medium
    with sock(a) as s:
        s.setsockopt(irsock.SOL_IRLMP, IRLPT, 1)
        s.setsockopt(irsock.SOL_IRLMP, EXCLUSIVE, 1)  # the last one set wins
        assert (s.getsockopt(irsock.SOL_IRLMP, IRLPT), s.getsockopt(irsock.SOL_IRLMP, EXCLUSIVE)) == (0, 1)
        s.setsockopt(irsock.SOL_IRLMP, IRLPT, 0)  # clearing the other one changes nothing
        assert s.getsockopt(irsock.SOL_IRLMP, EXCLUSIVE) == 1
        with pytest.raises(OSError):
            s.setsockopt(irsock.SOL_IRLMP, NINE, 1)
        s.setsockopt(irsock.SOL_IRLMP, EXCLUSIVE, 0)
        assert s.getsockopt(irsock.SOL_IRLMP, EXCLUSIVE) == 0 and not s._impl.raw
    with sock(a, NINE) as s, pytest.raises(OSError, match="exclude"):
        s.setsockopt(irsock.SOL_IRLMP, EXCLUSIVE, 1)


# --- Sharp mode --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sharp", [True, False])
def test_sharp_mode_reads_a_dropped_link_as_the_peers_close(medium, sharp):
    """A Zaurus ends a connection by dropping the IrLAP link without an IrLMP Disconnect. Windows CE's
    IRLMP_SHARP_MODE reads that as an orderly close: EOF after the data, not a reset."""
    a, b = medium
    server = listener(b, "Zaurus", echo=False)
    with sock(a) as client:
        client.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_SHARP_MODE, int(sharp))
        assert client.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_SHARP_MODE) == int(sharp)
        client.connect((b.address, "Zaurus"))
        peer, _address = server.accept()
        peer.sendall(b"last words")
        received = b""
        while received != b"last words":
            received += client.recv(100)
        b.call(lambda stack, now: stack.lmp.station.disconnect(now))  # the link goes, no IrLMP Disconnect
        if sharp:
            assert client.recv(100) == b""
        else:
            with pytest.raises(ConnectionResetError):
                client.recv(100)
        peer.close()
    server.close()


# --- IrCOMM: the three service types against each other ----------------------------------------------
def test_nine_wire_dte_socket_to_nine_wire_dce_listener(medium):
    a, b = medium
    server = listener(b, I.IAS_CLASS, NINE)
    with sock(a, NINE) as dte:
        dte.connect((b.address, I.IAS_CLASS))
        payload = bytes(range(256)) * 40  # every byte value, clen-looking bytes included
        assert exchange(dte, payload) == payload
        assert dte._impl.ircomm.service == I.SERVICE_9WIRE  # the DCE answered the hello with its choice
    server.close()


def test_three_wire_cooked_dte_offering_only_three_wire(medium):
    a, b = medium
    server = listener(b, I.IAS_CLASS, NINE, echo=False)
    with sock(a, NINE) as dte:
        dte._impl.ircomm.services = I.SERVICE_3WIRE  # a DTE that takes 3-wire only
        dte.connect((b.address, I.IAS_CLASS))
        dce, _address = server.accept()
        echo_server_on(dce)
        payload = random.Random(4).randbytes(10_000)
        assert exchange(dte, payload) == payload
        assert dte._impl.ircomm.service == I.SERVICE_3WIRE == dce._impl.ircomm.service
        assert not dte._impl.ircomm.nine_wire and not dce._impl.ircomm.nine_wire
    server.close()


def echo_server_on(conn):
    def run():
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            return
    threading.Thread(target=run, daemon=True).start()


@pytest.mark.parametrize("mode", [EXCLUSIVE, IRLPT])
def test_three_wire_raw_socket_to_raw_listener_on_ircomm(medium, mode):
    a, b = medium
    server = listener(b, I.IAS_CLASS, mode)
    with sock(a, mode) as client:
        params = ias(client, b.address, I.IAS_CLASS, I.IAS_PARAMETERS)
        assert I.parse_ias_parameters(params.octets) == (I.SERVICE_3WIRE_RAW, I.PORT_SERIAL)
        assert ias(client, b.address, I.IAS_CLASS, "IrDA:IrLMP:LsapSel").integer == server._impl.local_lsap
        with pytest.raises(ConnectionRefusedError):
            ias(client, b.address, I.IAS_CLASS, "IrDA:TinyTP:LsapSel")
        client.connect((b.address, I.IAS_CLASS))
        payload = bytes(range(256)) * 40
        assert exchange(client, payload) == payload
    server.close()
    with sock(a) as probe, pytest.raises(ConnectionRefusedError, match="no such class"):
        ias(probe, b.address, I.IAS_CLASS, I.IAS_PARAMETERS)  # the listener took its IAS entries with it


def test_nine_wire_dte_meets_a_device_offering_only_three_wire_raw(medium):
    a, b = medium
    server = listener(b, I.IAS_CLASS, IRLPT)
    with sock(a, NINE) as dte, pytest.raises(ConnectionRefusedError, match="3-wire raw.*IRLMP_IRLPT_MODE") as info:
        dte.connect((b.address, I.IAS_CLASS))
    assert info.value.errno == errno.ECONNREFUSED
    server.close()


def test_raw_socket_finds_linux_three_wire_raw_under_irlpt(medium):
    """Linux's ircomm-tty registered 3-wire raw IrCOMM as class IrLPT (IrDA:IrLMP:LsapSel)."""
    a, b = medium
    server = listener(b, I.IAS_IRLPT_CLASS, IRLPT)
    with sock(a, IRLPT) as client:
        client.connect((b.address, I.IAS_CLASS))
        assert client._impl.conn[1] == server._impl.local_lsap
        assert exchange(client, b"linux 3-wire raw") == b"linux 3-wire raw"
    server.close()


@pytest.fixture(scope="module")
def connected():
    """A 9-wire DTE socket to a 9-wire DCE echo and a raw socket to a raw echo on IrDA:IrCOMM of another
    device pair (one medium each: a link carries one device pair)."""
    made = []
    pairs = {}
    for kind, option in (("9-wire", NINE), ("raw", IRLPT)):
        name = f"rt-{uuid.uuid4().hex[:8]}"
        a = irsock.attach(f"irsim://{name}?pace=0", nickname="alpha")
        b = irsock.attach(f"irsim://{name}", nickname="beta")
        made += [a, b]
        listener(b, I.IAS_CLASS, option)
        client = sock(a, option)
        client.connect((b.address, I.IAS_CLASS))
        pairs[kind] = client
    yield pairs
    for iface in made:
        iface.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["9-wire", "raw"]), chunks=st.lists(st.binary(min_size=1, max_size=3000), min_size=1,
                                                                max_size=6))
def test_ircomm_round_trips_byte_for_byte(connected, kind, chunks):
    client = connected[kind]
    payload = b"".join(chunks)
    received = bytearray()
    reader = threading.Thread(target=lambda: _read(client, received, len(payload)))
    reader.start()
    for chunk in chunks:
        client.sendall(chunk)
    reader.join(30)
    assert bytes(received) == payload


def _read(client, into, count):
    while len(into) < count:
        data = client.recv(65536)
        if not data:
            return
        into.extend(data)
