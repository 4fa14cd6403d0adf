"""The stack daemon (irda serve) and its clients: the protocol, sharing one station, sessions, faults.

The socket behaviour itself runs over the daemon in the socket tests too (``endpoints`` has a ``daemon`` case: the
same test bodies as in-process).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket as _socket
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import irsock
from irsock.daemon import default_socket_path, live_socket, socket_name
from irsock.daemon import protocol as W
from irsock.daemon.client import DaemonInterface
from tests.conftest import wait_until
from tests.test_socket import echo_server as serve_echo

IRDA = [sys.executable, "-m", "irsock.cli"]


def medium_url() -> str:
    return f"irsim://daemon-{uuid.uuid4().hex[:8]}"


def echo_server(iface, service: str = "Echo"):
    """A listening socket on ``iface`` that echoes every connection until its EOF, in threads."""
    server = iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    server.bind((service,))
    server.listen()
    serve_echo(server, None)
    return server


def exchange_raw(path: Path, *lines: bytes) -> list[bytes]:
    """Send request lines on a fresh connection; the answer lines."""
    with _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(str(path))
        answers = []
        for text in lines:
            conn.sendall(text)
            answers.append(W.read_line(conn))
        return answers


# --- the protocol ------------------------------------------------------------------------------------------
@given(st.binary(max_size=200))
def test_percent_encoding_round_trips_and_stays_one_field(raw):
    field = W.quote(raw)
    assert " " not in field and "\n" not in field and field.isascii() and field
    assert W.unquote_bytes(field) == raw


def test_read_line_takes_exactly_one_line_and_leaves_the_data_behind_it():
    a, b = _socket.socketpair()
    with a, b:
        a.sendall(b"ok 7 0x0000abcd 3\nDATA AFTER THE LINE")
        assert W.read_line(b) == b"ok 7 0x0000abcd 3\n"
        assert b.recv(100) == b"DATA AFTER THE LINE"
        a.sendall(b"x" * (W.MAX_LINE + 10))
        with pytest.raises(W.ProtocolError):
            W.read_line(b)


def test_socket_names_and_paths(monkeypatch, tmp_path):
    assert socket_name("/dev/ttyUSB0") == "dev-ttyUSB0"
    assert socket_name(None) == socket_name("irsim://builtin?devices=3") == "builtin"
    assert socket_name("irsim://lab?pace=0") == socket_name("irsim://lab") == "irsim---lab"
    assert socket_name("rfc2217://rig:2217") == "rfc2217---rig-2217"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_socket_path("/dev/ttyS0") == tmp_path / "irsock" / "dev-ttyS0.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_socket_path(None) == Path(f"/tmp/irsock-{os.getuid()}/builtin.sock")


def test_bad_requests_are_answered_and_the_connection_goes_on(daemon_on):
    daemon = daemon_on(medium_url())
    answers = exchange_raw(daemon.path, b"socket stream\n", b"hello 9 1\n", b"hello 1 42\n", b"hello 1 42\n",
                           b"frobnicate\n", b"bind\n", b"socket tentacle\n", b"getsockopt 0 IRLMP_ENUMDEVICES\n",
                           b"\xff\xfe\n", b"socket stream\n", b"getsockopt 0 IRLMP_NO_SUCH\n",
                           b"getsockopt 99 IRLMP_MAX_SDU_SIZE\n", b"take 12345\n", b"setsockopt 0 IRLMP_IAS_SET "
                           b"Class Attr float 1\n", b"bind LSAP-SEL9999\n", b"connect 0x12345678\n")
    codes = [a.split()[:2] for a in answers]
    assert codes[0] == [b"err", str(errno.EPROTO).encode()]  # hello first
    assert codes[1] == [b"err", str(errno.EPROTONOSUPPORT).encode()]
    assert codes[2][0] == b"ok" and answers[2].split()[1] == b"1"
    assert codes[3] == [b"err", str(errno.EISCONN).encode()]
    assert codes[4] == [b"err", str(errno.EOPNOTSUPP).encode()]
    assert codes[5][0] == b"err" and codes[6] == [b"err", str(errno.ESOCKTNOSUPPORT).encode()]
    assert codes[7] == [b"err", str(errno.ENOTSOCK).encode()]
    assert codes[8] == [b"err", str(errno.EPROTO).encode()]
    assert codes[9][0] == b"ok"
    assert codes[10] == [b"err", str(errno.ENOPROTOOPT).encode()]
    assert codes[11] == [b"err", str(errno.EBADF).encode()]
    assert codes[12] == [b"err", str(errno.EISCONN).encode()]  # a socket already: it cannot take another
    assert [c[0] for c in codes[13:]] == [b"err"] * 3
    assert live_socket(daemon.path)  # and the daemon serves on
    assert exchange_raw(daemon.path, b"hello 1 1\n")[0].startswith(b"ok 1 ")


def test_a_line_over_the_limit_is_refused_and_the_daemon_goes_on(daemon_on):
    daemon = daemon_on(medium_url())
    answer = exchange_raw(daemon.path, b"hello 1 1 " + b"x" * W.MAX_LINE + b"\n")[0]
    assert answer.startswith(b"err %d " % errno.EPROTO)
    assert exchange_raw(daemon.path, b"hello 1 1\n")[0].startswith(b"ok 1 ")


# --- the daemon's socket file -------------------------------------------------------------------------------
def test_socket_is_private_a_second_daemon_refuses_and_a_stale_file_is_replaced(daemon_on, tmp_path):
    from irsock.daemon.server import StackDaemon

    url = medium_url()
    daemon = daemon_on(url)
    assert stat.S_IMODE(daemon.path.stat().st_mode) == 0o600
    with pytest.raises(OSError) as refused:
        StackDaemon(url, path=daemon.path).start()
    assert refused.value.errno == errno.EADDRINUSE and "already serves" in str(refused.value)
    stale = Path(tempfile.mkdtemp(prefix="irsd-")) / "stale.sock"
    leftover = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    leftover.bind(str(stale))
    leftover.close()  # a daemon killed with -9 leaves its socket file behind
    assert stale.exists() and not live_socket(stale)
    replacement = daemon_on(medium_url(), path=stale)
    assert live_socket(replacement.path)


def test_the_default_directory_is_made_private(monkeypatch, daemon_on):
    run = Path(tempfile.mkdtemp(prefix="irsr-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    url = medium_url()
    daemon = daemon_on(url, path=None)
    assert daemon.path == run / "irsock" / f"{socket_name(url)}.sock"
    assert stat.S_IMODE((run / "irsock").stat().st_mode) == 0o700


# --- sharing one station -------------------------------------------------------------------------------------
def test_attach_uses_a_daemon_that_serves_the_port_and_shares_its_station(monkeypatch, daemon_on):
    run = Path(tempfile.mkdtemp(prefix="irsr-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    url = medium_url()
    peer = irsock.attach(f"{url}?pace=0", nickname="peer")
    try:
        echo_server(peer)
        daemon = daemon_on(url, nickname="shared", path=None)
        first, second = irsock.attach(url), irsock.attach(url)  # as two programs would
        try:
            assert isinstance(first, DaemonInterface) and isinstance(second, DaemonInterface)
            assert first.address == second.address == daemon.iface.address
            assert first.session != second.session
            with first.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as a, \
                    second.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as b:
                devices = a.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES)
                assert [d.name for d in devices] == ["peer"]
                a.connect((peer.address, "Echo"))
                b.connect((peer.address, "Echo"))  # two LSAP connections of two programs on one link
                a.sendall(b"from a")
                b.sendall(b"from b")
                assert a.recv(100) == b"from a" and b.recv(100) == b"from b"
                assert a.getsockname()[0] == b.getsockname()[0] == daemon.iface.address
                assert a.getsockname()[1] != b.getsockname()[1]  # their own LSAPs
        finally:
            first.close()
            second.close()
    finally:
        peer.close()


def test_a_session_shares_ias_and_hint_bits_while_it_lasts(daemon_on):
    url = medium_url()
    peer = irsock.attach(f"{url}?pace=0", nickname="peer")
    try:
        daemon = daemon_on(url, nickname="shared", hints=0x0400)
        client = irsock.attach(f"unix:{daemon.path}", hints=0x8420)  # + OBEX
        assert client.hints & 0x8420 == 0x8420
        with client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
            sock.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_SET, irsock.IasSet("Shared", "Value", 42))
            sock.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_SET, irsock.IasSet("Shared", "Name", "zwölf", 1))
            with peer.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as ask:
                value = ask.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                                       irsock.IasQuery(daemon.iface.address, "Shared", "Value"))
                assert value.integer == 42
                name = ask.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                                      irsock.IasQuery(daemon.iface.address, "Shared", "Name"))
                assert name.text == "zwölf" and name.charset == 1
            own = sock.getsockopt(irsock.SOL_IRLMP_LINUX, 8, irsock.IasQuery(0, "Shared", "Value"))  # IAS_GET
            assert own.integer == 42
            heard = [d for d in peer.discover() if d.address == daemon.iface.address]
            assert heard and heard[0].hints[1] & 0x20  # the OBEX hint the client added
        client.close()  # the session ends: its attributes and hint bits go, the daemon's stay

        def gone():
            with peer.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as ask:
                try:
                    ask.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                                   irsock.IasQuery(daemon.iface.address, "Shared", "Value"))
                except ConnectionRefusedError:
                    return True
            return False

        wait_until(gone, "the session's IAS attribute removed")
        wait_until(lambda: daemon.iface.hints & 0x7F7F == 0x0400, "the station's own hint bits alone again")
    finally:
        peer.close()


def test_a_listener_in_the_daemon_accepts_and_select_sees_it(daemon_on):
    import select

    url = medium_url()
    peer = irsock.attach(f"{url}?pace=0", nickname="peer")
    try:
        daemon = daemon_on(url)
        client = irsock.attach(f"unix:{daemon.path}")
        with client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as server:
            server.bind(("Served",))
            server.listen(2)
            assert server.getsockname() == (daemon.iface.address, "Served")
            assert select.select([server], [], [], 0)[0] == []
            with peer.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as out:
                out.connect((daemon.iface.address, "Served"))
                assert select.select([server], [], [], 10)[0] == [server]  # a real fd: the incoming line
                conn, (device, name) = server.accept()
                with conn:
                    assert device == peer.address and name.startswith("LSAP-SEL")
                    out.sendall(b"x" * 100_000)
                    out.shutdown(_socket.SHUT_WR)
                    got = bytearray()
                    while data := conn.recv(65536):
                        got += data
                    assert bytes(got) == b"x" * 100_000
        client.close()
    finally:
        peer.close()


def test_a_refused_service_leaves_the_socket_usable_for_the_next_try(daemon_on):
    url = medium_url()
    peer = irsock.attach(f"{url}?pace=0", nickname="peer")
    try:
        echo_server(peer)
        daemon = daemon_on(url)
        with irsock.attach(f"unix:{daemon.path}") as client, client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
            with pytest.raises(ConnectionRefusedError):
                s.connect((peer.address, "IrDA:OBEX"))
            s.connect((peer.address, "Echo"))  # gammu tries names one after the other on one socket
            s.sendall(b"second try")
            assert s.recv(100) == b"second try"
    finally:
        peer.close()


# --- processes ----------------------------------------------------------------------------------------------
def start_serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, dict]:
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path))
    process = subprocess.Popen([*IRDA, "serve", "--json", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    line = process.stdout.readline()
    assert line, process.stderr.read()
    return process, json.loads(line)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_receive_and_send_in_two_terminals_find_each_other_through_the_builtin_daemon(tmp_path):
    run = Path(tempfile.mkdtemp(prefix="irsr-"))
    daemon, info = start_serve(run, "--devices", "0")
    env = dict(os.environ, XDG_RUNTIME_DIR=str(run))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    payload = tmp_path / "photo.jpg"
    payload.write_bytes(os.urandom(30_000))
    receiver = None
    try:
        assert info["socket"] == str(run / "irsock" / "builtin.sock")
        receiver = subprocess.Popen([*IRDA, "receive", "--dir", str(inbox), "--once", "--nickname", "desk"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        banner = receiver.stderr.readline()
        assert "irsock daemon" in banner, banner
        assert "OBEX inbox" in receiver.stderr.readline()
        listed = subprocess.run([*IRDA, "discover", "--json", "--timeout", "0"], capture_output=True, text=True,
                                env=env, timeout=60)
        assert [d["nickname"] for d in json.loads(listed.stdout)["devices"]] == ["desk"], listed.stderr
        refused = subprocess.run([*IRDA, "ping", "0x1234"], capture_output=True, text=True, env=env, timeout=60)
        assert refused.returncode == 1 and "holds the port" in refused.stderr
        comm = subprocess.run([*IRDA, "comm", "--pty"], capture_output=True, text=True, env=env, timeout=60)
        assert comm.returncode == 1 and "holds the port" in comm.stderr and "Traceback" not in comm.stderr
        sent = subprocess.run([*IRDA, "send", str(payload)], capture_output=True, text=True, env=env, timeout=60)
        assert sent.returncode == 0, sent.stderr
        assert "'desk'" in sent.stdout and "1/1 verified" in sent.stdout
        out, _err = receiver.communicate(timeout=30)
        assert "received photo.jpg (30000 bytes)" in out
        assert (inbox / "photo.jpg").read_bytes() == payload.read_bytes()
    finally:
        if receiver is not None:
            stop(receiver)
        stop(daemon)
    assert not Path(info["socket"]).exists()  # removed when the daemon stops


CLIENT = r'''
import os, sys, irsock
path, device, count = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3])
iface = irsock.attach("unix:" + path)
s = iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
s.connect((device, "Echo"))
print("connected", flush=True)
block = bytes(range(256)) * 16
for i in range(count):
    s.sendall(block)
    got = b""
    while len(got) < len(block):
        got += s.recv(len(block) - len(got))
    assert got == block
print("done", flush=True)
sys.stdin.readline()
'''


def test_a_client_killed_mid_transfer_loses_its_sockets_and_nobody_else_notices(daemon_on, tmp_path):
    url = medium_url()
    peer = irsock.attach(f"{url}?pace=0", nickname="peer")
    try:
        echo_server(peer)
        daemon = daemon_on(url)
        victim = subprocess.Popen([sys.executable, "-c", CLIENT, str(daemon.path), hex(peer.address), "100000"],
                                  stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        assert victim.stdout.readline() == "connected\n"
        wait_until(lambda: len(daemon.sessions) == 1, "the victim's session")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        wait_until(lambda: not daemon.sessions, "the victim's session ended")
        wait_until(lambda: not peer.call(lambda stack, _now: list(stack.connections)), "its connection closed")
        survivor = subprocess.run([sys.executable, "-c", CLIENT, str(daemon.path), hex(peer.address), "20"],
                                  capture_output=True, text=True, input="\n", timeout=60)
        assert survivor.stdout.split() == ["connected", "done"], survivor.stderr
    finally:
        peer.close()


def test_the_daemon_stopping_gives_clients_enetdown_and_a_restart_serves_again(tmp_path):
    run = Path(tempfile.mkdtemp(prefix="irsr-"))
    url = medium_url()
    peer_process = subprocess.Popen([*IRDA, "serve", "--port", f"{url}?devices=echo", "--socket",
                                     str(run / "peer.sock"), "--json"], stdout=subprocess.PIPE, text=True)
    daemon = None
    try:
        # the medium lives in a process: a second daemon would be alone on it. One daemon, two clients.
        peer_info = json.loads(peer_process.stdout.readline())
        with irsock.attach(f"unix:{peer_info['socket']}") as client:
            sock = client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
            devices = wait_until(lambda: sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES),
                                 "the echo device discovered")
            assert len(devices) == 1  # the echo device
            sock.connect((devices[0].address, "Echo"))
            sock.sendall(b"before")
            assert sock.recv(100) == b"before"
            peer_process.send_signal(signal.SIGKILL)  # the daemon dies mid-connection
            peer_process.wait(10)
            with pytest.raises(OSError) as down:
                while sock.recv(100):
                    pass
            assert down.value.errno == errno.ENETDOWN and "went away" in str(down.value)
            with pytest.raises(OSError) as again:
                client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
            assert again.value.errno == errno.ENETDOWN
            sock.close()
        daemon, info = start_serve(run, "--port", f"{url}?devices=echo", "--socket", str(run / "peer.sock"))
        with irsock.attach(f"unix:{info['socket']}") as client:  # the stale file was replaced
            with client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
                devices = wait_until(lambda: sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES),
                                     "the echo device discovered again")
                assert len(devices) == 1
    finally:
        stop(peer_process)
        if daemon is not None:
            stop(daemon)


def test_sigterm_ends_every_client_connection_with_the_reason(daemon_on):
    url = medium_url()
    peer = irsock.attach(f"{url}?pace=0", nickname="peer")
    try:
        echo_server(peer)
        daemon = daemon_on(url)
        client = irsock.attach(f"unix:{daemon.path}")
        sock = client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
        sock.connect((peer.address, "Echo"))
        daemon.stop("the daemon stopped (SIGTERM)")
        with pytest.raises(OSError) as down:
            while sock.recv(100):
                pass
        assert down.value.errno == errno.ENETDOWN
        assert "went away (the daemon stopped (SIGTERM))" in str(down.value)
        sock.close()
        client.close()
    finally:
        peer.close()


def test_fifty_client_processes_with_a_socket_each_at_once(daemon_on):
    url = medium_url()
    peer = irsock.attach(f"{url}?pace=0", nickname="peer")
    try:
        echo_server(peer)
        daemon = daemon_on(url)
        clients = [subprocess.Popen([sys.executable, "-c", CLIENT, str(daemon.path), hex(peer.address), "3"],
                                    stdout=subprocess.PIPE, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for _ in range(50)]
        try:
            for process in clients:  # all of them connected and echoed while every other one holds its socket
                assert process.stdout.readline() == "connected\n", process.stderr.read()
                assert process.stdout.readline() == "done\n", process.stderr.read()
            assert len(daemon.sessions) == 50
            assert len(peer.call(lambda stack, _now: list(stack.connections))) == 50
        finally:
            for process in clients:
                process.stdin.close()
                process.wait(30)
        assert all(process.returncode == 0 for process in clients)
        wait_until(lambda: not daemon.sessions, "every session ended")
    finally:
        peer.close()


@pytest.mark.parametrize("where", ["in-process", "daemon"])
def test_linux_options_ias_get_ias_del_and_the_hint_mask(where, daemon_on):
    """IRLMP_IAS_GET / IAS_DEL / HINT_MASK_SET (Linux numbering, SOL_IRLMP 266): the same on both paths."""
    url = medium_url()
    peer = irsock.attach(f"{url}?pace=0", nickname="printer", hints=0x0800)  # Printer only
    other = irsock.attach(f"{url}?pace=0", nickname="obex", hints=0x8420)
    try:
        if where == "daemon":
            client = irsock.attach(f"unix:{daemon_on(url).path}")
        else:
            client = irsock.attach(f"{url}?pace=0", nickname="me")
        with client, client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
            linux = irsock.SOL_IRLMP_LINUX
            sock.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_SET, irsock.IasSet("Mine", "Blob", b"\x00\x01"))
            assert sock.getsockopt(linux, 8, irsock.IasQuery(0, "Mine", "Blob")).octets == b"\x00\x01"
            sock.setsockopt(linux, 9, irsock.IasQuery(0, "Mine", "Blob"))  # IAS_DEL
            with pytest.raises(OSError) as gone:
                sock.getsockopt(linux, 8, irsock.IasQuery(0, "Mine", "Blob"))
            assert gone.value.errno == errno.EADDRNOTAVAIL
            with pytest.raises(OSError) as again:
                sock.setsockopt(linux, 9, irsock.IasQuery(0, "Mine", "Blob"))
            assert again.value.errno == errno.EADDRNOTAVAIL
            everyone = {d.name for d in sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES)}
            assert {"printer", "obex"} <= everyone
            sock.setsockopt(linux, 10, 0x0020)  # HINT_MASK_SET: OBEX (second byte)
            assert [d.name for d in sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES)] == ["obex"]
    finally:
        peer.close()
        other.close()


VERBS = ["hello", "attach", "station", "hints", "socket", "bind", "listen", "connect", "take", "setsockopt",
         "getsockopt", "getsockname", "getpeername", "close", "error", "unsent", "bye", "incoming", "ok", "err"]
FIELDS = st.one_of(st.sampled_from(["0", "1", "0x1234", "-1", "%", "%zz", "stream", "dgram", "LSAP-SEL3", "Echo",
                                    "IRLMP_ENUMDEVICES", "IRLMP_IAS_SET", "IRLMP_IAS_QUERY", "IRLMP_HINTS_SET",
                                    "IRLMP_MAX_SDU_SIZE", "SO_LINGER", "int", "octets", "string", "zz", "99999999999"]),
                   st.text(alphabet="abcXYZ019%-_.:~/,", min_size=1, max_size=12))


@pytest.fixture(scope="module")
def fuzzed_daemon():
    from irsock.daemon.server import StackDaemon

    daemon = StackDaemon(medium_url(), path=Path(tempfile.mkdtemp(prefix="irsf-")) / "d.sock").start()
    yield daemon
    daemon.stop()


@given(st.lists(st.tuples(st.sampled_from(VERBS), st.lists(FIELDS, max_size=6)), max_size=12))
def test_random_requests_are_answered_and_nothing_escapes(fuzzed_daemon, requests):
    import logging

    failures = []
    handler = logging.Handler()
    handler.emit = failures.append
    logging.getLogger("irsock.daemon").addHandler(handler)
    try:
        with _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM) as conn:
            conn.settimeout(20)
            conn.connect(str(fuzzed_daemon.path))
            conn.sendall(b"hello 1 1\n")
            assert W.read_line(conn).startswith(b"ok 1 ")
            for verb, fields in requests:
                if verb in ("connect", "listen", "take"):
                    continue  # these wait for the air or switch to data mode: the socket tests cover them
                conn.sendall(W.line(verb, *fields))
                answer = W.read_line(conn)
                assert answer is not None and answer.split()[0] in (b"ok", b"err"), (verb, fields, answer)
    finally:
        logging.getLogger("irsock.daemon").removeHandler(handler)
    assert not failures, failures
    assert exchange_raw(fuzzed_daemon.path, b"hello 1 1\n")[0].startswith(b"ok 1 ")


def test_a_dongle_pulled_out_and_plugged_back_in_is_served_again(daemon_on, tmp_path):
    """The daemon's port fails (its PTY goes away, as a USB adapter does): clients get ENETDOWN with the reason;
    once the port is back under the same name the daemon opens it again and new sockets work."""
    from irlap.emulator.pty_bridge import PtyBridge
    from irlap.qos import QosParams

    url = medium_url()
    name = url.split("://", 1)[1]
    # the peer's link to the pulled station ends after the link disconnect time: 3 s here (12 s by default)
    peer = irsock.attach(f"{url}?pace=0", nickname="peer", qos=QosParams.offer(max_link_disconnect_s=3))
    bridge = PtyBridge(name)
    link = Path(tempfile.mkdtemp(prefix="irsp-")) / "ttyIR0"
    link.symlink_to(bridge.path)
    try:
        echo_server(peer)
        daemon = daemon_on(str(link))
        client = irsock.attach(f"unix:{daemon.path}")
        with client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
            sock.connect((peer.address, "Echo"))
            sock.sendall(b"before")
            assert sock.recv(100) == b"before"
            bridge.close()  # pulled out
            with pytest.raises(OSError) as broken:
                while sock.recv(100):
                    pass
            assert broken.value.errno in (errno.ENETDOWN, errno.ECONNRESET)
        wait_until(lambda: daemon.port_failure, "the daemon saw the port fail")
        with pytest.raises(OSError) as down:
            client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM).connect((peer.address, "Echo"))
        assert down.value.errno == errno.ENETDOWN and "is down" in str(down.value)
        bridge = PtyBridge(name)  # plugged back in: the same name points at it again
        link.unlink()
        link.symlink_to(bridge.path)
        wait_until(lambda: daemon.reopened == 1, "the daemon opened the port again")
        wait_until(lambda: not peer.call(lambda stack, _now: stack.lmp.station.connected),
                   "the peer's link to the pulled station timed out")
        with client.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:  # the same session goes on
            sock.connect((peer.address, "Echo"))
            sock.sendall(b"after")
            assert sock.recv(100) == b"after"
        client.close()
    finally:
        bridge.close()
        peer.close()


def test_a_bad_socket_path_or_group_is_refused_before_anything_is_made(tmp_path):
    from irsock.daemon.server import StackDaemon

    missing = tmp_path / "no" / "such" / "dir" / "d.sock"
    with pytest.raises(OSError) as no_dir:
        StackDaemon(medium_url(), path=missing).start()
    assert no_dir.value.errno == errno.ENOENT and not (tmp_path / "no").exists()  # a given path's directory is not made
    target = Path(tempfile.mkdtemp(prefix="irsg-")) / "d.sock"
    with pytest.raises(KeyError):
        StackDaemon(medium_url(), path=target, group="no-such-group-irsock").start()
    assert not target.exists()  # no socket file left behind
