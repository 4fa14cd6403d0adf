"""irsock.aio: asyncio streams over AF_IRDA (and AF_INET through the same calls), discovery as an async iterator.

Each test runs its own loop with asyncio.run (no pytest-asyncio); every wait is bounded by asyncio.wait_for so that
a lost wake-up fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import hashlib
import json
import random
import socket as _socket
import struct
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

import irsock
import irsock.aio as aio
from irsock.net.interface import Interface

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 30.0  # seconds any one awaited step may take before the test fails


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def pair(interfaces):
    return interfaces("alpha"), interfaces("beta")


def test_echo_between_two_interfaces(interfaces):
    a, b = pair(interfaces)

    async def main():
        server = await aio.start_server(echo, "Echo", interface=b)
        assert isinstance(server, aio.Server) and server.is_serving()
        assert server.sockets[0].getsockname() == (b.address, "Echo")
        reader, writer = await asyncio.wait_for(aio.open_connection(b.address, "Echo", interface=a), LIMIT)
        assert writer.get_extra_info("peername") == (b.address, "Echo")
        assert writer.get_extra_info("sockname")[0] == a.address
        assert writer.get_extra_info("socket").family == irsock.AF_IRDA
        lines = [f"line {n}\n".encode() for n in range(50)]
        for line in lines:
            writer.write(line)
        await writer.drain()
        echoed = [await asyncio.wait_for(reader.readline(), LIMIT) for _ in lines]
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), LIMIT)
        async with server:
            pass
        assert not server.is_serving() and server.sockets == ()
        return echoed, lines

    echoed, lines = asyncio.run(main())
    assert echoed == lines


async def gated_transfer(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, size: int, piece: int,
                         gulp: int) -> tuple[bytes, int, int]:
    """The writer sends ``size`` bytes in ``piece``-byte writes with drain(); the reader takes ``gulp`` bytes only
    while the writer is held in drain() (or done): a reader slower than the writer at every step. Returns the
    bytes read, the most the writer's transport ever buffered, and how often drain() held the writer."""
    payload = random.Random(size).randbytes(size)
    transport = writer.transport
    high = transport.get_write_buffer_limits()[1]
    held = asyncio.Event()
    largest = holds = 0

    async def write() -> None:
        nonlocal largest, holds
        for start in range(0, size, piece):
            writer.write(payload[start:start + piece])
            largest = max(largest, transport.get_write_buffer_size())
            if transport.get_write_buffer_size() > high:
                holds += 1
                held.set()  # drain() waits: the reader takes gulps until it returns
                await writer.drain()
                held.clear()
            else:
                await writer.drain()
        writer.write_eof()

    writing = asyncio.ensure_future(write())
    received = bytearray()
    while True:
        waiter = asyncio.ensure_future(held.wait())
        await asyncio.wait_for(asyncio.wait({waiter, writing}, return_when=asyncio.FIRST_COMPLETED), LIMIT)
        waiter.cancel()
        data = await asyncio.wait_for(reader.read(gulp), LIMIT)
        if not data:
            break
        received.extend(data)
    await writing
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    return bytes(received), largest, holds


def test_a_megabyte_to_a_slow_reader_keeps_the_writers_buffer_bounded(interfaces):
    """TinyTP credit holds the writer while the reader does not read: drain() waits, the transport's buffer stays
    under its high-water mark plus one write, the stack below it holds at most its 8 kB send queue."""
    a, b = pair(interfaces)
    accepted: asyncio.Queue = asyncio.Queue()

    async def main():
        server = await aio.start_server(lambda r, w: accepted.put_nowait((r, w)), "Sink", interface=b)
        _reader, writer = await asyncio.wait_for(aio.open_connection(b.address, "Sink", interface=a), LIMIT)
        server_reader, server_writer = await asyncio.wait_for(accepted.get(), LIMIT)
        piece = 16384
        _data, largest, holds = await gated_transfer(writer, server_reader, 1_000_000, piece, 32768)
        high = writer.transport.get_write_buffer_limits()[1]
        writer.close()
        server_writer.close()
        server.close()
        await asyncio.wait_for(server.wait_closed(), LIMIT)
        return largest, holds, high, piece

    largest, holds, high, piece = asyncio.run(main())
    assert largest <= high + piece
    assert holds >= 10  # the reader really held the writer back, again and again


def test_the_stacks_writable_callback_wakes_a_waiting_writer(interfaces, monkeypatch):
    """The fileno() flag of an AF_IRDA socket says nothing about room to send; the transport learns of it from
    the stack (TinyTP's TtpWritable through set_writable_callback). With its own retry set to a minute, a writer
    that was not woken would take minutes for what takes well under a second."""
    monkeypatch.setattr(aio, "WRITE_RETRY", 60.0)
    a, b = pair(interfaces)

    async def main():
        server = await aio.start_server(echo, "Echo", interface=b)
        reader, writer = await asyncio.wait_for(aio.open_connection(b.address, "Echo", interface=a), LIMIT)
        payload = random.Random(3).randbytes(400_000)  # 50 times the stack's send queue
        reading = asyncio.ensure_future(reader.readexactly(len(payload)))
        writer.write(payload)
        await asyncio.wait_for(writer.drain(), 10)
        echoed = await asyncio.wait_for(reading, 10)
        writer.close()
        server.close()
        return echoed == payload

    assert asyncio.run(main())


@pytest.mark.parametrize("ending", ["write_eof", "close"])
def test_every_byte_then_eof(interfaces, ending):
    """write_eof() (shutdown SHUT_WR) or close() after a write: the peer reads all of it, then EOF."""
    a, b = pair(interfaces)
    results: asyncio.Queue = asyncio.Queue()
    payload = random.Random(7).randbytes(300_000)

    async def collect(reader, writer):
        results.put_nowait(await reader.read())  # everything up to EOF
        writer.close()

    async def main():
        server = await aio.start_server(collect, "Collect", interface=b)
        _reader, writer = await asyncio.wait_for(aio.open_connection(b.address, "Collect", interface=a), LIMIT)
        writer.write(payload)  # no drain: the ending must not lose what is still buffered
        if ending == "write_eof":
            assert writer.can_write_eof()
            writer.write_eof()
            with pytest.raises(RuntimeError):
                writer.write(b"more")
        else:
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), LIMIT)
        received = await asyncio.wait_for(results.get(), LIMIT)
        writer.close()
        server.close()
        return received

    assert asyncio.run(main()) == payload


def test_the_server_closes_and_the_client_reads_the_rest_then_eof(interfaces):
    a, b = pair(interfaces)
    payload = random.Random(8).randbytes(200_000)

    async def speak_and_leave(_reader, writer):
        writer.write(payload)
        writer.close()  # graceful: the buffered bytes go first

    async def main():
        server = await aio.start_server(speak_and_leave, "Talk", interface=b)
        reader, writer = await asyncio.wait_for(aio.open_connection(b.address, "Talk", interface=a), LIMIT)
        received = await asyncio.wait_for(reader.read(), LIMIT)
        assert reader.at_eof()
        writer.close()
        server.close()
        return received

    assert asyncio.run(main()) == payload


def test_an_abortive_close_is_a_reset_for_the_reader(interfaces):
    a, b = pair(interfaces)

    async def reset(reader, writer):
        await reader.readexactly(5)
        writer.get_extra_info("socket").setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    async def main():
        server = await aio.start_server(reset, "Reset", interface=b)
        reader, writer = await asyncio.wait_for(aio.open_connection(b.address, "Reset", interface=a), LIMIT)
        writer.write(b"hello")
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), LIMIT)
        writer.close()
        server.close()

    asyncio.run(main())


def test_many_connections_in_one_loop_without_a_thread_each(interfaces):
    """Twenty connections accepted and served on one loop: data and accepts use no thread; connect (IAS lookup,
    the IrLMP connection) runs in the loop's executor, here two threads for the twenty."""
    a, b = pair(interfaces)
    count = 20

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=2))
        before = threading.active_count()
        server = await aio.start_server(echo, "Echo", interface=b)
        streams = await asyncio.wait_for(asyncio.gather(
            *(aio.open_connection(b.address, "Echo", interface=a) for _ in range(count))), LIMIT)
        connected = threading.active_count()

        async def talk(n, reader, writer):
            payload = random.Random(n).randbytes(20_000)
            writer.write(payload)
            echoed = await asyncio.wait_for(reader.readexactly(len(payload)), LIMIT)
            writer.close()
            return echoed == payload

        results = await asyncio.gather(*(talk(n, r, w) for n, (r, w) in enumerate(streams)))
        talked = threading.active_count()
        server.close()
        await asyncio.wait_for(server.wait_closed(), LIMIT)  # every served connection ended too
        return results, before, connected, talked

    results, before, connected, talked = asyncio.run(main())
    assert results == [True] * count
    assert connected <= before + 2 and talked <= before + 2


def test_af_inet_through_the_same_calls():
    async def main():
        server = await aio.start_server(echo, 0)  # an int is a TCP port: asyncio's own server, on 127.0.0.1
        host, port = server.sockets[0].getsockname()[:2]
        assert host == "127.0.0.1"
        out = []
        for kwargs in ({}, {"family": irsock.AF_INET}):
            reader, writer = await asyncio.wait_for(aio.open_connection("127.0.0.1", port, **kwargs), LIMIT)
            writer.write(b"over tcp\n")
            out.append(await asyncio.wait_for(reader.readline(), LIMIT))
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return out

    assert asyncio.run(main()) == [b"over tcp\n"] * 2


def test_an_irsock_socket_whose_fileno_is_a_real_socket_waits_for_room_with_add_writer():
    """A socket with no writable callback (AF_INET here; a daemon client's socket is the same case) is waited on
    with loop.add_writer: a slow reader holds the writer through the OS socket's own flow control."""
    async def main():
        accepted: asyncio.Queue = asyncio.Queue()
        server = await aio.start_server(lambda r, w: accepted.put_nowait((r, w)), 0)
        port = server.sockets[0].getsockname()[1]
        sock = irsock.socket(irsock.AF_INET, irsock.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, 16384)  # few OS buffers: the holds come sooner
        assert sock.set_writable_callback(lambda: None) is False
        _reader, writer = await aio.open_connection(sock=sock)
        assert isinstance(writer.transport, aio.SocketTransport)
        server_reader, server_writer = await asyncio.wait_for(accepted.get(), LIMIT)
        server_writer.transport.get_extra_info("socket").setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, 16384)
        _data, largest, holds = await gated_transfer(writer, server_reader, 4_000_000, 65536, 65536)
        high = writer.transport.get_write_buffer_limits()[1]
        writer.close()
        server_writer.close()
        server.close()
        return largest, holds, high

    largest, holds, high = asyncio.run(main())
    assert largest <= high + 65536
    assert holds >= 1


def test_discovery_yields_devices_as_they_answer():
    """Two virtual devices: each is yielded once over two rounds, the first in the slot it answered in. To make
    "before the round ended" certain, ``stop`` (asked on the engine thread, in the slot) holds the engine until
    the loop has that device: the round cannot end meanwhile."""
    iface = irsock.attach(f"irsim://aio-{uuid.uuid4().hex[:8]}?devices=2&pace=0", nickname="seeker")
    delivered = threading.Event()

    def stop(_device):
        delivered.wait(LIMIT)  # the first answer: until the consumer has it; later ones: at once
        return False

    try:
        async def main():
            rounds = iface.discovery_rounds
            found = []
            async for device in aio.discover(interface=iface, rounds=2, stop=stop):
                found.append((device, iface.discovery_rounds - rounds))
                delivered.set()
            return found

        found = asyncio.run(main())
    finally:
        iface.close()
    assert sorted(device.name for device, _ended in found) == ["virtual-1", "virtual-2"]  # once each
    assert all(device.hints1 & 0x04 for device, _ended in found)  # Computer
    assert found[0][1] == 0  # the first came while its round was running


def test_wait_device_ends_the_round_at_the_device_and_names_what_it_saw():
    iface = irsock.attach(f"irsim://aio-{uuid.uuid4().hex[:8]}?devices=2&pace=0", nickname="seeker")
    try:
        async def main():
            device = await aio.wait_device("virtual-2", interface=iface)
            any_device = await aio.wait_device(interface=iface)
            by_address = await aio.wait_device(device.address, interface=iface)
            ended_early = iface.last_round.ended_early
            for _ in range(8):  # a device that picked the round's last slot (1 in 6) leaves no slot to skip
                if ended_early:
                    break
                await aio.wait_device(device.address, interface=iface)
                ended_early = iface.last_round.ended_early
            with pytest.raises(TimeoutError) as caught:
                await aio.wait_device("nobody", interface=iface, timeout=2.0)
            return device, any_device, by_address, ended_early, caught.value

        device, any_device, by_address, ended_early, error = asyncio.run(main())
    finally:
        iface.close()
    assert device.name == "virtual-2" and by_address == device
    assert any_device.name.startswith("virtual-")
    assert ended_early
    assert error.errno == errno.ETIMEDOUT
    assert "no device matching 'nobody' answered discovery within 2 s (devices seen: " in str(error)


def test_discovery_through_an_interface_without_the_slot_hook(interfaces):
    """An interface whose discover() takes no stop_when (a daemon's, say) is asked through a socket's
    IRLMP_ENUMDEVICES: the devices come at the end of each round instead of in their slots."""
    a, b = pair(interfaces)

    class Plain:
        def __init__(self, iface: Interface) -> None:
            self.iface = iface

        def discover(self, slots: int = 6) -> list:
            raise AssertionError("not used without stop_when")

        def socket(self, *args, **kwargs):
            return self.iface.socket(*args, **kwargs)

    async def main():
        return [device async for device in aio.discover(interface=Plain(a))]

    found = asyncio.run(main())
    assert [(device.address, device.name) for device in found] == [(b.address, "beta")]


def test_connect_by_nickname(interfaces):
    a, b = pair(interfaces)

    async def main():
        server = await aio.start_server(echo, "Echo", interface=b)
        reader, writer = await asyncio.wait_for(aio.open_connection("beta", "Echo", interface=a), LIMIT)
        writer.write(b"by name")
        data = await asyncio.wait_for(reader.readexactly(7), LIMIT)
        peer = writer.get_extra_info("peername")
        writer.close()
        server.close()
        return data, peer

    assert asyncio.run(main()) == (b"by name", (b.address, "Echo"))


def test_errors_are_the_socket_layers(interfaces):
    a, b = pair(interfaces)

    async def main():
        server = await aio.start_server(echo, "Echo", interface=b)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(aio.open_connection(b.address, "NoSuchService", interface=a), LIMIT)
        with pytest.raises(OSError) as unknown:  # nobody at that address answers
            await asyncio.wait_for(aio.open_connection(0x12345678, "Echo", interface=a), LIMIT)
        with pytest.raises(ValueError):
            await aio.open_connection(b.address, "", interface=a)
        with pytest.raises(TypeError):
            await aio.open_connection(b.address, "Echo", interface=a, ssl=True)
        # the failures left nothing behind: a connection still works
        reader, writer = await asyncio.wait_for(aio.open_connection(b.address, "Echo", interface=a), LIMIT)
        writer.write(b"still fine")
        data = await asyncio.wait_for(reader.readexactly(10), LIMIT)
        writer.close()
        with pytest.raises(TimeoutError) as nobody:  # a nickname nobody answers to
            await aio.open_connection("nobody-here", "Echo", interface=a, timeout=1.0)
        server.close()
        return unknown.value, data, nobody.value

    unknown, data, nobody = asyncio.run(main())
    assert unknown.errno in (errno.EHOSTUNREACH, errno.ETIMEDOUT) and "0x12345678" in str(unknown)
    assert data == b"still fine"
    assert "no device matching 'nobody-here' answered discovery within 1 s" in str(nobody)


def test_a_connection_right_after_leaving_discovery_early(interfaces):
    """Leaving ``async for ... in discover()`` at the first device leaves its round running (16 slots here); the
    IAS question open_connection asks meanwhile gets its link when the round ends (IrLMP used to lose it, and the
    connect failed after IAS's 8 s)."""
    a, b = pair(interfaces)

    async def main():
        server = await aio.start_server(echo, "Echo", interface=b)
        found = aio.discover(interface=a, slots=16)
        device = await found.__anext__()  # and no more: the generator stays suspended, its round running
        reader, writer = await asyncio.wait_for(aio.open_connection(device.address, "Echo", interface=a), 6.0)
        writer.write(b"right away")
        data = await asyncio.wait_for(reader.readexactly(10), LIMIT)
        writer.close()
        server.close()
        return device, data

    device, data = asyncio.run(main())
    assert (device.address, data) == (b.address, b"right away")


def test_the_example_echoes_over_concurrent_connections():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "aio_echo.py"), "--connections", "3",
                             "--size", "50000", "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["all_echoed"] and report["name"] == "virtual-1" and len(report["connections"]) == 3


def test_sockets_of_a_stack_daemon(interfaces, daemon_on):
    """A daemon client's socket (irsock.attach("unix:PATH")) carries its data on a real Unix socket: the transport
    waits for room with add_writer there; accepting reads the daemon's incoming lines on the listener's fileno().
    The client connects out through the daemon, and a peer connects in to a server the client runs."""
    a, b = pair(interfaces)
    daemon = daemon_on(a.port.split("?", 1)[0], nickname="gamma")
    client = irsock.attach(f"unix:{daemon.path}")

    async def main():
        here = await aio.start_server(echo, "Echo", interface=b)
        reader, writer = await asyncio.wait_for(aio.open_connection(b.address, "Echo", interface=client), LIMIT)
        assert writer.get_extra_info("socket").set_writable_callback(None) is False  # a real socket underneath
        payload = random.Random(11).randbytes(30_000)
        writer.write(payload)
        out = await asyncio.wait_for(reader.readexactly(len(payload)), LIMIT) == payload
        writer.close()
        there = await aio.start_server(echo, "Served", interface=client)
        reader, writer = await asyncio.wait_for(aio.open_connection(client.address, "Served", interface=a), LIMIT)
        writer.write(b"into the daemon")
        back = await asyncio.wait_for(reader.readexactly(15), LIMIT)
        writer.close()
        there.close()
        here.close()
        await asyncio.wait_for(there.wait_closed(), LIMIT)
        return out, back

    try:
        assert asyncio.run(main()) == (True, b"into the daemon")
    finally:
        client.close()
