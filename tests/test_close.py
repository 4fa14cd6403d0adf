"""Close semantics: every byte given to send() arrives before EOF, on AF_IRDA exactly as on AF_INET.

The same test body runs on TinyTP over two interfaces on one emulated medium and on TCP over loopback
(the ``endpoints`` fixture of conftest.py): the sender does sendall() then close() or shutdown(SHUT_WR);
the receiver reads until EOF and must see every byte, in order, and then b"" (not ConnectionResetError).
"""

import hashlib
import os
import socket as _socket
import struct
import threading

import pytest


def read_until_eof(server, result):
    """Accept one connection and read it to EOF; record the bytes, or the exception that ended it."""
    try:
        conn, _address = server.accept()
        with conn:
            data = bytearray()
            while chunk := conn.recv(65536):
                data += chunk
            result["data"] = bytes(data)
    except OSError as exc:
        result["error"] = exc


@pytest.mark.parametrize("ending", ["close", "shutdown"])
@pytest.mark.parametrize("size", [1_500_000, 2_000_000])
def test_every_byte_arrives_before_eof(endpoints, ending, size):
    make_client, server, address = endpoints
    payload = os.urandom(size)
    result: dict = {}
    reader = threading.Thread(target=read_until_eof, args=(server, result))
    reader.start()
    client = make_client()
    client.connect(address)
    client.sendall(payload)
    if ending == "close":
        client.close()
    else:
        client.shutdown(_socket.SHUT_WR)
    reader.join(120)
    if ending != "close":
        client.close()
    server.close()
    assert not reader.is_alive(), "the receiver never saw EOF"
    assert "error" not in result, f"the receiver got {result.get('error')!r} instead of EOF"
    data = result["data"]
    assert len(data) == len(payload), f"{len(payload) - len(data)} bytes lost"
    assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()


def test_zero_linger_close_is_an_abort(endpoints):
    """SO_LINGER on with a zero time asks for an abortive close: the peer sees a reset, not EOF."""
    make_client, server, address = endpoints
    result: dict = {}
    reader = threading.Thread(target=read_until_eof, args=(server, result))
    reader.start()
    client = make_client()
    client.connect(address)
    client.sendall(b"x" * 1000)
    client.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    reader.join(30)
    server.close()
    assert not reader.is_alive()
    assert isinstance(result.get("error"), ConnectionResetError)


def test_closing_the_interface_right_after_sendall_loses_nothing(medium):
    """Leaving ``with irsock.attach(...)`` right after sendall: the interface waits for the backlog."""
    import irsock

    a, b = medium
    server = b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    server.bind(("Sink",))
    server.listen()
    payload = os.urandom(300_000)
    result: dict = {}
    reader = threading.Thread(target=read_until_eof, args=(server, result))
    reader.start()
    client = a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    client.connect((b.address, "Sink"))
    client.sendall(payload)
    a.close()  # no client.close(): the interface closes the connection the way the socket would
    reader.join(60)
    server.close()
    assert result.get("data") == payload, result.get("error")
