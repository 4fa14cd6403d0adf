"""The socket layer: two interfaces on one emulated medium in one process, and the same tests on TCP."""

import asyncio
import errno
import random
import selectors
import ssl
import subprocess
import threading
import time
import uuid

import pytest

import irsock
from irlap.station import LOG_EXPIRY
from irsock.net import providers
from irsock.net.errors import IrSockNetDown


def echo_server(listener, count=1):
    """Accept ``count`` connections (None: until the listener closes); echo each until EOF."""
    def serve_one(conn):
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                return

    def run():
        served = 0
        while count is None or served < count:
            served += 1
            try:
                conn, _address = listener.accept()
            except OSError:
                return  # the test is over and its interface closed
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def exchange(client, payload, piece=None):
    """Send ``payload`` (in ``piece``-byte sendall calls if given) while a thread reads the echo; the echo."""
    received = bytearray()

    def reader():
        while len(received) < len(payload):
            data = client.recv(65536)
            if not data:
                break
            received.extend(data)

    thread = threading.Thread(target=reader)
    thread.start()
    view = memoryview(payload)
    step = piece or len(payload) or 1
    for start in range(0, len(payload), step):
        client.sendall(view[start:start + step])
    thread.join(60)
    return bytes(received)


def test_one_megabyte_both_ways(endpoints):
    make_client, server, address = endpoints
    echo_server(server)
    payload = random.Random(1).randbytes(1_000_000)
    with make_client() as client:
        client.settimeout(30)
        client.connect(address)
        assert exchange(client, payload) == payload
        client.shutdown(2)


def sink(iface):
    """A listener bound to "Sink" on ``iface`` and a thread that keeps what one connection sends, until its EOF:
    (listener, the bytes received so far, the thread)."""
    server = iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    server.bind(("Sink",))
    server.listen()
    received = bytearray()

    def keep():
        conn, _peer = server.accept()
        with conn:
            while data := conn.recv(65536):
                received.extend(data)

    reader = threading.Thread(target=keep, daemon=True)
    reader.start()
    return server, received, reader


def test_a_writer_with_a_full_send_queue_is_woken_by_the_stack_not_by_its_own_polling(medium, monkeypatch):
    """TinyTP says when PDUs left its queue (TtpWritable). Without it a blocked sendall waited for some other
    event or its wait slice each time the 8 kB send buffer filled: this transfer took 26 s instead of 0.5 s,
    and an unpaced stream ran at 0.43 MB/s instead of 2.4 (benchmarks/stream.py)."""
    from irsock.net.irda import endpoint

    monkeypatch.setattr(endpoint, "WAIT_SLICE", 60.0)  # a missed wake-up now costs the socket's timeout
    a, b = medium
    server, received, reader = sink(b)
    payload = random.Random(5).randbytes(200_000)  # 25 times the send buffer
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as client:
        client.settimeout(3)  # far above a woken wait (milliseconds); far below a wait for the 60 s slice
        client.connect((b.address, "Sink"))
        client.sendall(payload)
    reader.join(30)
    assert bytes(received) == payload
    server.close()


def test_a_stream_writer_let_in_by_a_drained_buffer_queues_whole_pdus(interfaces):
    """Each send becomes TinyTP PDUs of its own, so a writer let in for the few bytes that had left a full send
    buffer made a short PDU, and at 9600 bit/s (one frame a turn) that runt took a whole turn: a 20 kB push
    had 4 of them in 63 turns. Only the stream's last frame may be short now."""
    import io

    from irlap.frames import IFrame, parse
    from irlap.pcap import PcapWriter, read_pcap_bytes
    from irlap.qos import QosParams

    capture = io.BytesIO()
    trace = PcapWriter(capture)
    slow = QosParams.offer(max_baud=9600)  # 256-byte frames: the buffer drains in many small steps
    a = interfaces("alpha", qos=slow, trace=trace)
    b = interfaces("beta", qos=slow)
    server, received, reader = sink(b)
    payload = random.Random(6).randbytes(60_000)
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as client:
        client.settimeout(30)
        client.connect((b.address, "Sink"))
        pdu = client.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_SEND_PDU_LEN)
        step = 16 * pdu  # whole PDUs, as the OBEX client writes: only the buffer's draining could cut one
        for start in range(0, len(payload), step):
            client.sendall(payload[start:start + step])
    reader.join(30)
    assert bytes(received) == payload
    trace.flush()
    sizes = []
    for record in read_pcap_bytes(capture.getvalue()):
        if record.is_frame and record.outgoing:
            frame = parse(record.data)
            if isinstance(frame, IFrame) and len(frame.info) > 3 and frame.info[0] & 0x80 == 0 \
                    and frame.info[0] & 0x7F:  # IrLMP data, not to IAS (LSAP 0)
                sizes.append(len(frame.info) - 3)  # less the IrLMP and TinyTP headers
    assert sum(sizes) == len(payload)
    assert [size for size in sizes[:-1] if size != pdu] == []
    server.close()


def test_unsent_counts_what_the_peer_has_not_acknowledged(endpoints):
    make_client, server, address = endpoints
    with make_client() as client:
        client.settimeout(10)
        client.connect(address)
        conn, _peer = server.accept()
        with conn:
            assert client.unsent() == 0
            client.setblocking(False)
            handed = 0
            try:
                while handed < 64 << 20:
                    handed += client.send(bytes(65536))
            except BlockingIOError:
                pass  # the queues are full: the peer does not read
            assert 0 < client.unsent() <= handed
            conn.settimeout(10)
            received = 0
            while received < handed:
                received += len(conn.recv(1 << 20))
            deadline = time.monotonic() + 10
            while client.unsent() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.unsent() == 0


def test_select_selectors_and_nonblocking(endpoints):
    make_client, server, address = endpoints
    echo_server(server, count=3)
    clients = [make_client() for _ in range(3)]
    try:
        for client in clients:
            client.settimeout(10)
            client.connect(address)
        clients[1].sendall(b"ping")
        selector = selectors.DefaultSelector()
        for client in clients:
            selector.register(client, selectors.EVENT_READ)
        ready = [key.fileobj for key, _ in selector.select(5)]
        assert ready == [clients[1]]
        assert clients[1].recv(100) == b"ping"
        clients[0].setblocking(False)
        assert clients[0].getblocking() is False
        with pytest.raises(BlockingIOError):
            clients[0].recv(100)
        clients[0].settimeout(0.3)
        assert clients[0].gettimeout() == 0.3
        with pytest.raises(TimeoutError):
            clients[0].recv(100)
        selector.close()
    finally:
        for client in clients:
            client.close()


def test_asyncio_add_reader(endpoints):
    make_client, server, address = endpoints
    echo_server(server)
    with make_client() as client:
        client.settimeout(10)
        client.connect(address)

        async def main():
            loop = asyncio.get_running_loop()
            ready = asyncio.Event()
            loop.add_reader(client.fileno(), ready.set)
            client.sendall(b"async")
            await asyncio.wait_for(ready.wait(), 5)
            loop.remove_reader(client.fileno())
            return client.recv(100)

        assert asyncio.run(main()) == b"async"


def test_a_connect_confirmed_before_the_caller_runs_again_is_not_lost(medium):
    """The peer's confirm can be the very next frame the engine handles, before the thread that asked to
    connect runs again (a loaded machine): the socket must already be registered for its events by then."""
    a, b = medium
    server = b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    server.bind(("Echo",))
    server.listen()
    echo_server(server)
    register = a.register

    def slow_register(key, endpoint):
        if isinstance(key, tuple) and key and isinstance(key[0], int):
            time.sleep(0.3)  # whoever registers the connection is late; the confirm takes milliseconds
        register(key, endpoint)

    a.register = slow_register
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect((b.address, "Echo"))
        client.sendall(b"late")
        assert client.recv(10) == b"late"


def test_makefile_lines(endpoints):
    make_client, server, address = endpoints
    echo_server(server)
    with make_client() as client:
        client.settimeout(10)
        client.connect(address)
        stream = client.makefile("rwb")
        stream.write(b"hello\nworld\n")
        stream.flush()
        assert stream.readline() == b"hello\n" and stream.readline() == b"world\n"


def test_enumdevices_connect_by_name_and_lsap_sel(medium):
    a, b = medium
    server = b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    server.bind(("Echo",))
    server.listen()
    echo_server(server, count=2)
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as client:
        devices = client.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES)
        assert [(d.address, d.name) for d in devices] == [(b.address, "beta")]
        assert "Computer" in devices[0].hint_words
        raw = client.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES, 4 + 29 * 4)
        assert raw[:4] == b"\x01\x00\x00\x00" and raw[4:8] == b.address.to_bytes(4, "little")
        assert raw[8:12] == b"beta" and len(raw) == 33
        linux = client.getsockopt(irsock.SOL_IRLMP_LINUX, 1)  # Linux numbering of ENUMDEVICES
        assert [d.address for d in linux] == [b.address]
        client.settimeout(10)
        client.connect((devices[0].address, "Echo"))
        assert client.getpeername() == (b.address, "Echo")
        client.sendall(b"by name")
        assert client.recv(100) == b"by name"
    lsap = server.getsockname()
    assert lsap == (b.address, "Echo")
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect((b.address, f"LSAP-SEL{server._impl.local_lsap}"))
        client.sendall(b"by lsap")
        assert client.recv(100) == b"by lsap"


def test_seqpacket_keeps_boundaries_and_sdu_option(medium):
    a, b = medium
    server = b.socket(irsock.AF_IRDA, irsock.SOCK_SEQPACKET)
    server.bind(("Messages",))
    server.listen()
    with a.socket(irsock.AF_IRDA, irsock.SOCK_SEQPACKET) as client:
        client.settimeout(10)
        client.connect((b.address, "Messages"))
        conn, peer = server.accept()
        conn.settimeout(10)
        assert peer[0] == a.address
        messages = [b"x" * n for n in (1, 5000, 3, 12000)]
        for message in messages:
            client.send(message)
        assert [conn.recv(20000) for _ in messages] == messages
        assert client.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_MAX_SDU_SIZE) == 0xFFFFFFFF
        assert client.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_SEND_PDU_LEN) == 2045
        conn.close()


def test_datagrams(medium):
    a, b = medium
    receiver = b.socket(irsock.AF_IRDA, irsock.SOCK_DGRAM)
    receiver.bind(("",))
    receiver.settimeout(5)
    sender = a.socket(irsock.AF_IRDA, irsock.SOCK_DGRAM)
    sender.sendto(b"beacon", (0xFFFFFFFF, "LSAP-SEL1"))
    data, _address = receiver.recvfrom(100)
    assert data == b"beacon"
    sender.close()
    receiver.close()


def test_a_datagram_reader_that_does_not_read_keeps_a_bounded_queue(medium):
    """Datagrams may be lost, memory may not grow: past RECEIVE_QUEUE they are dropped and counted."""
    from irsock.net.irda.datagram import RECEIVE_QUEUE

    a, b = medium
    receiver = b.socket(irsock.AF_IRDA, irsock.SOCK_DGRAM)
    receiver.bind(("",))
    sender = a.socket(irsock.AF_IRDA, irsock.SOCK_DGRAM)
    for index in range(RECEIVE_QUEUE + 20):
        sender.sendto(index.to_bytes(2, "big"), (0xFFFFFFFF, "LSAP-SEL1"))
    impl = receiver._impl
    deadline = time.monotonic() + 30
    while len(impl.dgrams) + impl.dropped < RECEIVE_QUEUE + 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (len(impl.dgrams), impl.dropped) == (RECEIVE_QUEUE, 20)
    receiver.settimeout(5)
    assert [int.from_bytes(receiver.recvfrom(10)[0], "big") for _ in range(RECEIVE_QUEUE)] == list(range(RECEIVE_QUEUE))
    sender.close()
    receiver.close()


def test_flags_are_passed_to_tcp_and_refused_on_irda(endpoints):
    """MSG_PEEK reaches the OS on TCP; IrDA has no such flags and says so rather than ignoring them."""
    import socket as pysocket

    make_client, server, address = endpoints
    echo_server(server)
    with make_client() as client:
        client.settimeout(10)
        client.connect(address)
        if client.family == irsock.AF_IRDA:
            with pytest.raises(OSError) as info:
                client.send(b"x", pysocket.MSG_OOB)
            assert info.value.errno == errno.EOPNOTSUPP
            with pytest.raises(OSError):
                client.recv(10, pysocket.MSG_PEEK)
        else:
            client.sendall(b"peek")
            assert client.recv(10, pysocket.MSG_PEEK | pysocket.MSG_WAITALL) == b"peek"
            assert client.recv(10) == b"peek"


def test_irlpt_mode_raw_irlmp(medium):
    a, b = medium
    server = b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    server.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IRLPT_MODE, 1)
    server.bind(("IrLPT",))
    server.listen()
    echo_server(server)
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as client:
        client.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IRLPT_MODE, 1)
        value = client.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                                  irsock.IasQuery(b.address, "IrLPT", "IrDA:IrLMP:LsapSel"))
        assert value.integer == server._impl.local_lsap
        client.settimeout(10)
        client.connect((b.address, "IrLPT"))
        payload = bytes(range(256)) * 40
        assert exchange(client, payload) == payload


def test_ias_set_and_query(medium):
    a, b = medium
    with b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
        s.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_SET, irsock.IasSet("Weather", "Station", "Mount Washington"))
        s.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_SET, irsock.IasSet("Weather", "Id", 42))
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
        value = s.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY, irsock.IasQuery(b.address, "Weather", "Station"))
        assert value.text == "Mount Washington"
        assert s.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                            irsock.IasQuery(b.address, "Weather", "Id")).integer == 42
        with pytest.raises(ConnectionRefusedError):
            s.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY, irsock.IasQuery(b.address, "Nope", "x"))


# --- error rows -----------------------------------------------------------------------------------------
def test_no_such_service_is_connection_refused(medium):
    a, b = medium
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as client:
        client.settimeout(10)
        with pytest.raises(ConnectionRefusedError) as info:
            client.connect((b.address, "NoSuchService"))
        assert info.value.errno == errno.ECONNREFUSED and info.value.winerror == irsock.WSAECONNREFUSED
        assert client.connect_ex((b.address, "LSAP-SEL99")) == errno.ECONNREFUSED


def test_absent_device_times_out(medium):
    a, _b = medium
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as client:
        client.settimeout(20)
        with pytest.raises(OSError) as info:
            client.connect((0x12345678, "LSAP-SEL3"))
        assert isinstance(info.value, TimeoutError | ConnectionResetError)


def test_peer_gone_mid_connection(medium):
    a, b = medium
    server = b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    server.bind(("Echo",))
    server.listen()
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as client:
        client.settimeout(20)
        client.connect((b.address, "Echo"))
        b.close()  # the peer's whole stack goes away
        with pytest.raises((ConnectionResetError, TimeoutError)):
            while True:
                client.sendall(b"x" * 4096)
                if client.recv(1) == b"":
                    raise ConnectionResetError("closed")


def test_no_interface_is_enetdown(monkeypatch):
    monkeypatch.delenv("IRDA_PORT", raising=False)
    monkeypatch.setattr(irsock.net.interface, "_interfaces", [])  # as if nothing were attached
    with pytest.raises(IrSockNetDown) as info:
        irsock.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    assert info.value.errno == errno.ENETDOWN and "irsock.attach" in str(info.value)


def test_nothing_discovered_is_an_empty_list():
    alone = irsock.attach(f"irsim://alone-{uuid.uuid4().hex[:6]}")
    try:
        with alone.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
            assert s.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES) == []
            with pytest.raises(TimeoutError):
                s.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_WAITDEVICE, 300)
    finally:
        alone.close()


@pytest.fixture
def fresh():
    """``fresh(n)``: an interface just attached to a new medium with ``n`` virtual devices offering IrDA:IrCOMM."""
    from irlap.emulator.virtual import devices_on, stop_devices

    made = []

    def make(count):
        name = f"auto-{uuid.uuid4().hex[:8]}"
        iface = irsock.attach(f"irsim://{name}?devices={count}")
        made.append((name, iface))
        return iface, [d.station.address for d in devices_on(name)]

    yield make
    for name, iface in made:
        iface.close()
        stop_devices(name)


def test_auto_connect_with_two_devices_offering_it_is_enotuniq(fresh):
    iface, _devices = fresh(2)
    with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
        s.settimeout(20)
        with pytest.raises(OSError) as info:
            s.connect((0, "IrDA:IrCOMM"))
        assert info.value.errno == errno.ENOTUNIQ and info.value.winerror == irsock.WSAEINVAL


def test_auto_connect_right_after_attach_finds_the_one_device(fresh):
    iface, [device] = fresh(1)
    with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:  # no ENUMDEVICES before: connect discovers
        s.settimeout(20)
        s.connect((0, "IrDA:IrCOMM"))
        assert s.getpeername() == (device, "IrDA:IrCOMM")
        with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as other:
            other.settimeout(20)
            with pytest.raises(OSError) as info:
                other.connect((0, "NoSuchService"))
            assert info.value.errno == errno.EADDRNOTAVAIL


def test_auto_connect_with_nothing_in_range_is_enetunreach_after_a_discovery_round(fresh):
    iface, _devices = fresh(0)
    with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
        s.settimeout(20)
        with pytest.raises(OSError) as info:
            s.connect((0, "IrDA:IrCOMM"))
        assert info.value.errno == errno.ENETUNREACH and info.value.winerror == 10051
    assert iface.discovery_rounds >= 1


def test_discovery_runs_while_the_link_is_only_kept_for_its_idle_time(fresh):
    """After the last connection closes IrLMP keeps the link ~2 s, and IrLAP cannot discover while a link is
    up: ENUMDEVICES and auto-connect drop that idle link and run a real round, rather than wait out the
    round that never starts and answer with an expired log ("nothing in range" with the device right there)."""
    iface, [device] = fresh(1)
    iface.call(lambda stack, now: setattr(stack.lmp.station, "log_expiry", 0.3))
    with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect((device, "IrDA:IrCOMM"))  # by address: no discovery needed
    deadline = time.monotonic() + 10
    while iface.call(lambda stack, now: stack.lmp.discovery_log(now)) and time.monotonic() < deadline:
        with iface.cond:
            iface.cond.wait(0.02)
    assert iface.call(lambda stack, now: stack.lmp.link_up and not stack.lmp.connections), "the link is not idle"
    # the log is empty (expired entries are deleted): back to the default expiry, so that what the next rounds
    # find is not expired again by a loaded machine before connect() reads it
    iface.call(lambda stack, now: setattr(stack.lmp.station, "log_expiry", LOG_EXPIRY))
    rounds, started = iface.discovery_rounds, time.monotonic()
    with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
        assert [d.address for d in s.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES)] == [device]
        assert iface.discovery_rounds > rounds and time.monotonic() - started < 2.0
        s.settimeout(20)
        s.connect((0, "IrDA:IrCOMM"))
        assert s.getpeername() == (device, "IrDA:IrCOMM")


def test_auto_connect_reports_a_failed_lookup_instead_of_counting_it_as_no_service(fresh, monkeypatch):
    """Only IAS's own "no such class/attribute" means a device does not offer the service; a lookup that
    fails otherwise (no answer, link trouble) leaves the question open, and is reported."""
    from irsock.net.errors import timed_out
    from irsock.net.irda import resolve as lookup

    iface, [first, second] = fresh(2)
    resolve = lookup.resolve

    def flaky(sock, device, service):
        if device == second:
            raise timed_out(f"0x{device:08x} did not answer")
        return resolve(sock, device, service)

    monkeypatch.setattr(lookup, "resolve", flaky)
    with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
        s.settimeout(20)
        with pytest.raises(OSError) as info:
            s.connect((0, "IrDA:IrCOMM"))
        assert info.value.errno == errno.ETIMEDOUT and f"0x{second:08x}" in str(info.value)
        with pytest.raises(OSError) as info:
            s.connect((0, "NoSuchService"))  # the other device says "no such class": still undecided
        assert info.value.errno == errno.ETIMEDOUT
    assert first != second


def test_unsupported_options_raise_enoprotoopt(medium):
    a, _b = medium
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
        for option in (irsock.IRLMP_PARAMETERS, irsock.IRLMP_TINYTP_MODE, irsock.IRLMP_DISCOVERY_MODE, 0x7777):
            with pytest.raises(OSError) as info:
                s.getsockopt(irsock.SOL_IRLMP, option)
            assert info.value.errno == errno.ENOPROTOOPT and info.value.winerror == irsock.WSAENOPROTOOPT
            with pytest.raises(OSError):
                s.setsockopt(irsock.SOL_IRLMP, option, 1)
    with irsock.socket(irsock.AF_INET, irsock.SOCK_STREAM) as tcp, pytest.raises(OSError) as info:
        tcp.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES)
    assert info.value.errno == errno.ENOPROTOOPT


def test_unknown_family():
    with pytest.raises(OSError) as info:
        irsock.socket(12345, irsock.SOCK_STREAM)
    assert info.value.errno == errno.EAFNOSUPPORT


# --- providers ----------------------------------------------------------------------------------------------
def test_catalog_lists_base_and_layered_providers():
    entries = irsock.enum_protocols()
    names = [e.name for e in entries]
    assert "IrDA TinyTP stream" in names and "TCP/IP" in names
    tls_irda = next(e for e in entries if e.name == "TLS over IrDA TinyTP stream")
    assert tls_irda.chain == ("TLS", "IrDA") and tls_irda.layered
    seqpacket = next(e for e in entries if e.name == "IrDA TinyTP SAR")
    assert seqpacket.service_flags & providers.XP1_MESSAGE_ORIENTED and seqpacket.max_message_size == 0xFFFFFFFF
    assert all(e.family in irsock.net.constants.AF_IRDA_ALIASES for e in irsock.enum_protocols(irsock.AF_IRDA))


def test_trace_lsp_logs_calls_and_bytes(medium, caplog):
    a, b = medium
    server = b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    server.bind(("Echo",))
    server.listen()
    echo_server(server)
    caplog.set_level("INFO", logger="irsock.trace")
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM, provider="Trace") as client:
        client.settimeout(10)
        client.connect((b.address, "Echo"))
        client.sendall(b"traced")
        assert client.recv(100) == b"traced"
    text = caplog.text
    assert "connect" in text and "send 6 bytes" in text and "recv 6 bytes" in text


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    from tests.conftest import require_tool

    openssl = require_tool("openssl")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=irsock-test", "-addext", "subjectAltName=DNS:irsock-test"],
                   check=True, capture_output=True)
    return cert, key


@pytest.mark.parametrize("family", ["irda", "inet"])
def test_tls_lsp_over_irda_and_tcp(medium, certificate, family):
    a, b = medium
    cert, key = certificate
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cert)
    if family == "irda":
        server = b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM, provider="TLS", tls_context=server_ctx,
                          server_side=True)
        server.bind(("Secure",))
        address = (b.address, "Secure")

        def make_client():
            return a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM, provider="TLS", tls_context=client_ctx,
                            server_hostname="irsock-test")
    else:
        server = irsock.socket(irsock.AF_INET, irsock.SOCK_STREAM, provider="TLS", tls_context=server_ctx,
                               server_side=True)
        server.bind(("127.0.0.1", 0))
        address = server.getsockname()

        def make_client():
            return irsock.socket(irsock.AF_INET, irsock.SOCK_STREAM, provider="TLS", tls_context=client_ctx,
                                 server_hostname="irsock-test")
    server.listen()
    echo_server(server)
    with make_client() as client:
        client.settimeout(20)
        client.connect(address)
        assert client._impl.version().startswith("TLS")
        payload = random.Random(3).randbytes(50_000)
        assert exchange(client, payload) == payload


def test_tls_lsp_is_full_duplex(certificate):
    """A reader and a writer thread on one TLS socket: records must reach the wire in the order TLS made them."""
    cert, key = certificate
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cert)
    server = irsock.socket(irsock.AF_INET, irsock.SOCK_STREAM, provider="TLS", tls_context=server_ctx,
                           server_side=True)
    server.bind(("127.0.0.1", 0))
    server.listen()
    echo_server(server)
    payload = random.Random(4).randbytes(4_000_000)
    with irsock.socket(irsock.AF_INET, irsock.SOCK_STREAM, provider="TLS", tls_context=client_ctx,
                       server_hostname="irsock-test") as client:
        client.settimeout(30)
        client.connect(server.getsockname())
        assert exchange(client, payload, piece=1000) == payload  # many small records, interleaved with reads
    server.close()


def test_a_link_the_peer_closed_is_not_reported_as_our_user_request(medium):
    """The peer's IrLAP closes the link (RD as secondary): IrLAP calls the close it carried out a user request,
    but the connections on it were cut by the peer, and the error says so."""
    a, b = medium
    server = b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    server.bind(("Echo",))
    server.listen(1)
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect((b.address, "Echo"))
        server.accept()
        b.runtime.close()  # b's link goes down under the open connection, as when its process is stopped
        with pytest.raises(ConnectionResetError) as info:
            client.recv(10)
    assert "the peer closed the link" in str(info.value) and "user request" not in str(info.value)


def test_a_raw_irlmp_reader_that_falls_behind_holds_the_link_and_loses_nothing(medium):
    """Raw IrLMP has no flow control: a reader that does not read would let the peer fill memory without end.
    IrLMP holds the link (RNR) above RAW_RECEIVE_LIMIT unread bytes; the sender waits; nothing is lost."""
    from irsock.lmp.stack import RAW_RECEIVE_LIMIT
    from irsock.net.irda.paths import RAW_QUEUE_LIMIT

    a, b = medium
    server = b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    server.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IRLPT_MODE, 1)
    server.bind(("IrLPT",))
    server.listen()
    payload = bytes(random.Random(7).getrandbits(8) for _ in range(120_000))
    accepted = []
    acceptor = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    acceptor.start()  # a raw IrLMP connection is confirmed by accept()
    client = a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    client.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IRLPT_MODE, 1)
    client.settimeout(60)
    client.connect((b.address, "IrLPT"))
    acceptor.join(10)
    [reader] = accepted
    sender = threading.Thread(target=client.sendall, args=(payload,), daemon=True)
    sender.start()
    unread = lambda: sum(map(len, list(reader._impl.raw_rx)))  # noqa: E731
    held = lambda: b.call(lambda stack, _now: stack.lmp.stats.raw_holds)  # noqa: E731
    window = 7 * a.call(lambda stack, _now: stack.lmp.max_data())  # what the peer had in flight when held
    deadline = time.monotonic() + 30
    while not held() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held() == 1 and sender.is_alive()
    conn = client._impl.conn
    while time.monotonic() < deadline and a.call(lambda stack, _now: stack.lmp.queued(*conn)) < RAW_QUEUE_LIMIT:
        time.sleep(0.01)  # until the sender's queue is full behind the held link
    assert RAW_RECEIVE_LIMIT < unread() <= RAW_RECEIVE_LIMIT + window
    received = bytearray()
    reader.settimeout(30)
    while len(received) < len(payload):
        received += reader.recv(4096)
    sender.join(30)
    assert bytes(received) == payload and not sender.is_alive()
    client.close()
    reader.close()
    server.close()


def test_what_discovery_and_ias_answers_fill_in_the_interface_is_bounded(medium):
    """A crowd of devices (or one that changes its address every round) cannot grow the interface's tables."""
    from irlap.station import DiscoveredDevice, DiscoveryIndication
    from irsock.lmp.stack import IasResult
    from irsock.net.interface import KEPT_DEVICES, KEPT_IAS_RESULTS

    a, _b = medium
    for address in range(1, 1001):
        a._on_event(DiscoveryIndication(DiscoveredDevice(address, None, 0.0)))
        a._on_event(IasResult(10_000 + address, address, "Class", "Attribute", None, error="late"))
    assert list(a.devices) == list(range(1001 - KEPT_DEVICES, 1001))
    assert list(a.new_devices) == list(range(1001 - KEPT_DEVICES, 1001))
    assert list(a.ias_results) == [10_000 + n for n in range(1001 - KEPT_IAS_RESULTS, 1001)]


def test_a_name_or_lsap_bound_twice_is_eaddrinuse_and_free_again_after_close(medium):
    a, b = medium
    first = b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    first.bind(("Twice",))
    lsap = first.lsap_sel
    for address in (("Twice",), (f"LSAP-SEL{lsap}",)):
        with b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as second, pytest.raises(OSError) as taken:
            second.bind(address)
        assert taken.value.errno == errno.EADDRINUSE
    first.close()
    with b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as again:
        again.bind(("Twice",))  # the name went with the socket


def test_an_empty_name_binds_a_free_lsap_without_an_ias_entry(medium):
    """OpenOBEX's servers bind {"", LSAP_ANY}: Linux gave them an LSAP and no class anybody asks for."""
    a, b = medium
    with b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as server:
        server.bind(("",))
        server.listen()
        lsap = server.lsap_sel
        assert server.getsockname() == (b.address, f"LSAP-SEL{lsap}")
        assert not b.call(lambda stack, _now: [o for o in stack.lmp.ias.objects if o.class_name == b""])
        with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as client:
            client.connect((b.address, f"LSAP-SEL{lsap}"))
            conn, _peer = server.accept()
            with conn:
                client.sendall(b"by number")
                assert conn.recv(100) == b"by number"
