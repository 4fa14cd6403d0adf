"""File transfer around OBEX: progress display, choosing the peer, irda send / receive / demo end to end."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import irsock
from irsock.apps import transfer
from irsock.cli import main
from tests.conftest import require_tool


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_plain_lines_every_ten_percent():
    out, clock = io.StringIO(), FakeClock()
    bar = transfer.ProgressBar("f.bin", 10_000, out, tty=False, clock=clock)
    for sent in range(0, 10_001, 500):
        clock.now += 0.05
        bar(sent, 10_000)
    bar.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in out.getvalue()
    assert lines[0].startswith("f.bin:  10% 1.0 kB/10.0 kB") and "ETA" in lines[0]
    assert lines[-1].startswith("f.bin: 100% 10.0 kB/10.0 kB 9.5 kB/s in 0:01")


def _terminal_lines(text: str) -> list[str]:
    """What a terminal shows line by line: control sequences dropped, each \\r or \\n starts a line."""
    import re

    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return [line for line in re.split(r"[\r\n]", plain) if line]


@pytest.mark.parametrize("name", ["f.bin", "holiday photos from the summer of 2026, all of them, uncut.tar.gz"])
def test_progress_on_an_80_column_terminal_fits_and_clears_the_line(name):
    from rich.console import Console

    out, clock = io.StringIO(), FakeClock()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    bar = transfer.ProgressBar(name, 100_000, tty=None, clock=clock, console=console)
    assert bar.tty
    for sent in range(2_500, 100_001, 2_500):
        clock.now += 0.5
        bar(sent, 100_000)
    bar.finish()
    text = out.getvalue()
    lines = _terminal_lines(text)
    assert lines and all(len(line) < 80 for line in lines), max(lines, key=len)
    assert "\n" not in text.replace("\x1b[?25h", "").rstrip("\n")  # one line, redrawn in place
    assert text.count("\r\x1b[2K") >= len(lines) - 1  # every redraw erases the line first: nothing stale
    assert "25% 25.0 kB/100.0 kB 5.0 kB/s ETA 0:15" in text  # bytes, rate, ETA while it runs
    assert lines[-1].endswith("100% 100.0 kB/100.0 kB 5.0 kB/s in 0:20")  # bytes, rate, time when done
    assert lines[-1].startswith(name[:15])


def test_progress_on_a_narrow_terminal_shortens_instead_of_wrapping():
    from rich.console import Console

    out, clock = io.StringIO(), FakeClock()
    console = Console(file=out, width=40, force_terminal=True, color_system=None)
    bar = transfer.ProgressBar("a-rather-long-file-name.bin", 100_000, clock=clock, console=console)
    clock.now += 5
    bar(25_000)
    bar.finish()
    lines = _terminal_lines(out.getvalue())
    assert all(len(line) < 40 for line in lines) and lines[-1].startswith("a-rathe…  25% 25.0 kB/100.0 kB")


def test_progress_shows_what_reached_the_peer_not_what_filled_the_buffers():
    class QueueingSocket:
        waiting = 0

        def unsent(self) -> int:
            return self.waiting

    sock, shown, handed = QueueingSocket(), [], []

    class Recorder(transfer.ProgressBar):
        def __call__(self, sent, total=None):
            shown.append(sent)

    bar = Recorder("f.bin", 50_000, io.StringIO(), tty=False)
    with transfer._DeliveredProgress(sock, bar, handed.append) as progress:
        sock.waiting = 20_000
        progress(20_000, 50_000)  # all still in the queues
        sock.waiting = 25_000
        progress(40_000, 50_000)
        sock.waiting = 30_000  # a retransmission re-queued: the display does not go back
        progress(40_000, 50_000)
        sock.waiting = 10_000
        progress(50_000, 50_000)
        sock.waiting = 0
        deadline = time.monotonic() + 5
        while shown[-1] != 50_000 and time.monotonic() < deadline:  # the ticker drains the tail
            time.sleep(0.05)
    assert list(dict.fromkeys(shown)) == [0, 15_000, 40_000, 50_000]  # the ticker may repeat a value
    assert shown == sorted(shown) and handed == [20_000, 40_000, 40_000, 50_000]


def test_summary_reports_efficiency_against_the_line_rate():
    summary = transfer.Summary(files=1, bytes=100_000, seconds=10.0, line_rate=11520.0, verified=1)
    assert summary.efficiency == pytest.approx(100_000 / 10 / 11520)
    assert summary.describe() == ("1 file(s), 100000 bytes in 10.00 s: 10000 bytes/s, 87% of the line rate "
                                  "(11520 bytes/s); 1/1 verified by the receiver")
    assert json.loads(json.dumps(summary.as_dict()))["efficiency"] == 0.8681


def test_files_to_send_are_checked_first(tmp_path):
    with pytest.raises(transfer.TransferError, match="no such file"):
        transfer.check_files([str(tmp_path / "absent")])
    with pytest.raises(transfer.TransferError, match="not a regular file"):
        transfer.check_files([str(tmp_path)])


@pytest.fixture
def medium(interfaces):
    return interfaces


def test_choose_device_by_hint_by_name_and_ambiguity(medium):
    sender = medium("sender")
    inbox_one = medium("inbox-one", hints=transfer.OBEX_HINTS)
    medium("printer", hints=0x0408)
    with sender.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
        assert transfer.choose_device(sock).address == inbox_one.address
        assert transfer.choose_device(sock, "printer").name == "printer"
        inbox_two = medium("inbox-two", hints=transfer.OBEX_HINTS)
        with pytest.raises(transfer.TransferError, match="several OBEX devices") as info:
            transfer.choose_device(sock)
        assert f"0x{inbox_one.address:08x}" in str(info.value) and f"0x{inbox_two.address:08x}" in str(info.value)
        assert transfer.choose_device(sock, f"0x{inbox_two.address:08x}").address == inbox_two.address
        with pytest.raises(transfer.TransferError, match="no device named 'nobody'"):
            transfer.choose_device(sock, "nobody", rounds=2)


def test_one_clean_round_is_enough_to_choose_the_only_obex_device(medium):
    """Without the interface, a second round is run for hidden colliders; with it, a round that heard nothing
    garbled is trusted (the time to the first byte of irda send)."""
    sender = medium("sender")
    inbox = medium("inbox", hints=transfer.OBEX_HINTS)
    with sender.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
        before = sender.discovery_rounds
        assert transfer.choose_device(sock).address == inbox.address
        assert sender.discovery_rounds - before == 2
        before = sender.discovery_rounds
        assert transfer.choose_device(sock, iface=sender).address == inbox.address
        assert sender.discovery_rounds - before == 1 and not sender.last_round.garbled


def test_a_named_device_ends_the_discovery_round_once_it_answered(medium):
    """``choose_device(sock, NAME)`` (irda send --to): the final XID follows the slot in which the named device
    answered (issue 17: up to five slots of 90 ms sooner), read from the sender's own frames; a round for
    the name of nobody runs every slot."""
    from irlap import frames as F
    from irlap.pcap import PcapWriter, read_pcap_bytes

    capture = io.BytesIO()
    sender = medium("sender", trace=PcapWriter(capture))
    inbox = medium("inbox", hints=transfer.OBEX_HINTS)
    medium("printer", hints=0x0408)

    with sender.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
        sender.runtime.trace.flush()
        header = capture.getvalue()
        assert transfer.choose_device(sock, "inbox").address == inbox.address
        sender.runtime.trace.flush()
        frames = [F.parse(r.data) for r in read_pcap_bytes(capture.getvalue()) if r.is_frame]
        slots = [f.slot for f in frames if isinstance(f, F.XIDCommand)]
        [answer] = [f for f in frames if isinstance(f, F.XIDResponse) and f.source == inbox.address]
        assert slots == [*range(answer.slot + 1), F.XID_FINAL_SLOT]
        assert sender.last_round.ended_early == (answer.slot < 5)
        capture.seek(0)
        capture.truncate()
        capture.write(header)
        with pytest.raises(transfer.TransferError, match="no device named 'nobody'"):
            transfer.choose_device(sock, "nobody", rounds=1)
        sender.runtime.trace.flush()
        frames = [F.parse(r.data) for r in read_pcap_bytes(capture.getvalue()) if r.is_frame]
        assert [f.slot for f in frames if isinstance(f, F.XIDCommand)] == [0, 1, 2, 3, 4, 5, F.XID_FINAL_SLOT]
        assert not sender.last_round.ended_early


def test_no_obex_device_says_what_was_seen(medium):
    sender = medium("sender")
    medium("printer", hints=0x0408)
    with sender.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
        with pytest.raises(transfer.TransferError, match="no device with the OBEX hint.*'printer'"):
            transfer.choose_device(sock, rounds=2)


def test_receiver_registers_both_ias_classes_and_the_hint(medium):
    receiver = medium("inbox")
    sender = medium("sender")
    listener = transfer.obex_listener(receiver)
    with sender.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
        values = [sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                                  irsock.IasQuery(receiver.address, cls, "IrDA:TinyTP:LsapSel")).integer
                  for cls in ("OBEX", "OBEX:IrXfer")]
        assert values[0] == values[1] == listener._impl.local_lsap
        device = transfer.choose_device(sock)
        assert device.address == receiver.address and "OBEX" in device.hint_words
    listener.close()


def run_cli(args, **kwargs):
    return subprocess.run([sys.executable, "-m", "irsock.cli", *args], capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_send_and_receive_over_irda_between_two_stacks(medium, tmp_path):
    """The library path of irda send/receive: inbox thread on one interface, push from the other."""
    receiver = medium("inbox", hints=transfer.OBEX_HINTS)
    sender = medium("sender")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    listener = transfer.obex_listener(receiver)
    listener.settimeout(0.5)
    stored = []

    def receive_once():  # what irda receive --once does: one session, then the interface goes down at once
        stored.extend(transfer.serve(listener, inbox, once=True))
        listener.close()
        receiver.close()

    thread = threading.Thread(target=receive_once)
    thread.start()
    files = []
    for index, size in enumerate((0, 1, 70_000)):
        path = tmp_path / f"file{index}.bin"
        path.write_bytes(os.urandom(size))
        files.append(path)
    out = io.StringIO()
    with sender.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
        sock.settimeout(30)
        device = transfer.choose_device(sock)
        transfer.connect_obex(sock, device.address)
        summary = transfer.push_files(sock, files, rate=transfer.line_rate(sender), out=out, tty=False)
    thread.join(30)
    assert summary.files == 3 and summary.bytes == 70_001 and summary.verified == 3
    assert summary.disconnect == "ok"  # the receiver answered DISCONNECT before its link went down
    assert summary.line_rate == 11520
    assert [(f.name, f.size, f.verified) for f in stored] == [("file0.bin", 0, True), ("file1.bin", 1, True),
                                                             ("file2.bin", 70_000, True)]
    for path in files:
        assert (inbox / path.name).read_bytes() == path.read_bytes()
    assert sorted(p.name for p in inbox.iterdir()) == ["file0.bin", "file1.bin", "file2.bin"]


def test_cli_send_and_receive_over_tcp(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    payload = tmp_path / "report.pdf"
    payload.write_bytes(os.urandom(50_000))
    receiver = subprocess.Popen([sys.executable, "-m", "irsock.cli", "receive", "--dir", str(inbox),
                                 "--tcp-listen", "127.0.0.1:0", "--once", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = receiver.stderr.readline()
        assert "sharing: push only" in banner
        port = int(banner.split("127.0.0.1:")[1].split(";")[0])
        sent = run_cli(["send", str(payload), "--tcp", f"127.0.0.1:{port}", "--json"])
        assert sent.returncode == 0, sent.stderr
        summary = json.loads(sent.stdout)
        assert summary["bytes"] == 50_000 and summary["verified"] == 1 and summary["line_rate"] is None
        assert summary["disconnect"] == "ok"
        out, err = receiver.communicate(timeout=30)
    finally:
        receiver.kill()
    assert receiver.returncode == 0, err
    report = json.loads(out.splitlines()[0])
    assert report["name"] == "report.pdf" and report["size"] == 50_000 and report["verified"] is True
    assert (inbox / "report.pdf").read_bytes() == payload.read_bytes()


def test_receive_stops_on_sigterm_mid_transfer_and_keeps_nothing(tmp_path):
    import signal

    from irsock.obex import packets as P

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    receiver = subprocess.Popen([sys.executable, "-m", "irsock.cli", "receive", "--dir", str(inbox),
                                 "--tcp-listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        banner = receiver.stderr.readline()
        port = int(banner.split("127.0.0.1:")[1].split(";")[0])
        with irsock.socket(irsock.AF_INET, irsock.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
            sock.sendall(P.build(P.PUT, [(P.H_NAME, "half.bin"), (P.H_LENGTH, 1_000_000),
                                         (P.H_BODY, bytes(50_000))]))
            assert P.parse(P.read_packet(sock), response_to=P.PUT).code == P.CONTINUE
            assert len(list(inbox.iterdir())) == 1  # the temporary file
            receiver.send_signal(signal.SIGTERM)  # the session is still open: it must not hold the stop
            out, err = receiver.communicate(timeout=10)
    finally:
        receiver.kill()
    assert receiver.returncode == 0 and "Traceback" not in err
    assert "stopped (an unfinished transfer is discarded: half.bin (50000 of 1000000 bytes) from 127.0.0.1:" in err
    assert list(inbox.iterdir()) == []


def test_receive_stopped_while_idle_says_only_stopped(tmp_path):
    import signal

    receiver = subprocess.Popen([sys.executable, "-m", "irsock.cli", "receive", "--dir", str(tmp_path),
                                 "--tcp-listen", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "OBEX inbox" in receiver.stderr.readline()
        receiver.send_signal(signal.SIGTERM)
        _out, err = receiver.communicate(timeout=10)
    finally:
        receiver.kill()
    assert receiver.returncode == 0 and "stopped\n" in err and "unfinished" not in err, err


def test_cli_errors_are_one_line(tmp_path):
    result = run_cli(["send", str(tmp_path / "absent.txt"), "--tcp", "127.0.0.1:9"])
    assert result.returncode == 1 and result.stderr.strip() == f"irda: {tmp_path / 'absent.txt'}: no such file"
    payload = tmp_path / "a.txt"
    payload.write_text("x")
    result = run_cli(["send", str(payload), "--tcp", "127.0.0.1:9"])
    assert result.returncode == 1 and result.stderr.startswith("irda: 127.0.0.1:9 refused the connection")
    assert "port 650" in result.stderr and "Traceback" not in result.stderr
    result = run_cli(["send", str(payload), "--tcp", "nosuchhost.invalid"])
    assert result.returncode == 1 and "cannot resolve 'nosuchhost.invalid'" in result.stderr
    result = run_cli(["receive", "--tcp-listen", "127.0.0.1:99999"])
    assert result.returncode == 1 and "port from 0 to 65535" in result.stderr and "Traceback" not in result.stderr
    result = run_cli(["receive", "--dir", str(tmp_path / "nowhere")])
    assert result.returncode == 1 and "no such directory" in result.stderr
    result = run_cli(["receive", "--max-size", "lots"])
    assert result.returncode == 2 and "not a size" in result.stderr


def test_obex_over_tcp_turns_nagle_off():
    """Request/response over TCP: without TCP_NODELAY every OBEX packet waited ~40 ms (1.5 MB/s on loopback)."""
    import socket as stdlib_socket

    listener = irsock.socket(irsock.AF_INET, irsock.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    with listener, transfer.connect_tcp(f"127.0.0.1:{listener.getsockname()[1]}", 5) as sock:
        assert sock.getsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY) == 1
        conn, _address = listener.accept()
        with conn:
            assert conn.getsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY) == 0
            transfer._no_delay(conn)  # what serve() does with each session
            assert conn.getsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY) == 1


def test_send_to_a_tcp_server_that_is_not_obex(tmp_path):
    listener = irsock.socket(irsock.AF_INET, irsock.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def http_server():
        conn, _address = listener.accept()
        with conn:
            conn.recv(1000)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=http_server, daemon=True)
    thread.start()
    payload = tmp_path / "a.txt"
    payload.write_text("x")
    port = listener.getsockname()[1]
    result = run_cli(["send", str(payload), "--tcp", f"127.0.0.1:{port}"])
    thread.join(10)
    listener.close()
    assert result.returncode == 1 and "does not answer CONNECT in OBEX" in result.stderr
    assert "is it an OBEX server?" in result.stderr and "Traceback" not in result.stderr


def test_send_on_the_builtin_emulator_explains_there_is_no_obex_device(tmp_path):
    payload = tmp_path / "a.txt"
    payload.write_text("x")
    env = {k: v for k, v in os.environ.items() if k not in ("IRDA_PORT", "IRDA_DONGLE")}
    result = run_cli(["send", str(payload)], env=env)
    assert result.returncode == 1
    assert "no device with the OBEX hint in range" in result.stderr and "virtual-1" in result.stderr


def test_demo_pushes_verifies_and_writes_a_capture(tmp_path):
    pcap = tmp_path / "demo.pcap"
    started = time.monotonic()
    result = run_cli(["demo", "--pcap", str(pcap), "--size", "8k"])
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "discovery:" in out and "'demo-receiver' (Computer, OBEX)" in out
    assert "IAS: OBEX IrDA:TinyTP:LsapSel = " in out
    assert "received irsock-demo.bin (8000 bytes)" in out and "verified" in out
    assert "the file arrived intact" in out and "of the line rate (11520 bytes/s)" in out
    assert elapsed < 60
    from irlap.pcap import read_pcap

    records = list(read_pcap(pcap))
    assert len(records) > 10


def test_demo_capture_opens_in_tshark(tmp_path):
    tshark = require_tool("tshark")
    pcap = tmp_path / "demo.pcap"
    assert main(["demo", "--pcap", str(pcap), "--size", "2k"]) == 0
    fields = subprocess.run([tshark, "-r", str(pcap), "-T", "fields", "-e", "irlap.c", "-e", "iap.classname"],
                            capture_output=True, text=True, timeout=60)
    assert fields.returncode == 0, fields.stderr
    assert "OBEX" in fields.stdout  # the IAS query for the OBEX class, decoded


def test_two_processes_through_emulated_ptys(tmp_path):
    """irda emulate --pty 2; irda receive on one port, irda send on the other (issue 7, item 6)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    payload = tmp_path / "notes.txt"
    payload.write_bytes(os.urandom(20_000))
    emulate = subprocess.Popen([sys.executable, "-m", "irsock.cli", "emulate", "--pty", "2", "--devices", "1",
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    receiver = None
    try:
        ports = json.loads(emulate.stdout.readline())["ports"]
        receiver = subprocess.Popen([sys.executable, "-m", "irsock.cli", "receive", "--port", ports[0],
                                     "--nickname", "pty-inbox", "--dir", str(inbox), "--once"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "OBEX inbox" in receiver.stderr.readline()
        sent = run_cli(["send", "--port", ports[1], str(payload)])
        assert sent.returncode == 0, sent.stderr
        assert "pushing to" in sent.stdout and "'pty-inbox'" in sent.stdout and "1/1 verified" in sent.stdout
        out, err = receiver.communicate(timeout=30)
        assert "received notes.txt (20000 bytes)" in out and "verified" in out
    finally:
        for process in (receiver, emulate):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
    assert (inbox / "notes.txt").read_bytes() == payload.read_bytes()


# --- interop with OpenOBEX's obex_tcp (fixed port 650: each test in its own network namespace) -------------
NETNS_DRIVER = r'''
import json, os, subprocess, sys, time
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
mode, work, payload = sys.argv[1], sys.argv[2], sys.argv[3]
irda = [sys.executable, "-m", "irsock.cli"]
out = {}
if mode == "obex_tcp-to-irda":
    inbox = os.path.join(work, "inbox")
    receiver = subprocess.Popen(irda + ["receive", "--tcp-listen", "127.0.0.1:650", "--dir", inbox, "--once",
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out["banner"] = receiver.stderr.readline()
    client = subprocess.run(["obex_tcp", payload, "127.0.0.1"], capture_output=True, text=True, timeout=60,
                            input="")
    out["client"] = client.stdout[-2000:] + client.stderr[-2000:]
    out["client_rc"] = client.returncode
    out["receiver"], err = receiver.communicate(timeout=60)
    out["receiver_err"] = err[-2000:]
else:
    outdir = os.path.join(work, "server")
    server = subprocess.Popen(["obex_tcp"], cwd=outdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, stdin=subprocess.DEVNULL)
    for _ in range(100):
        if subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout.count(":650 "):
            break
        time.sleep(0.05)
    sent = subprocess.run(irda + ["send", payload, "--tcp", "127.0.0.1", "--json"], capture_output=True,
                          text=True, timeout=60)
    out["sender"], out["sender_err"], out["sender_rc"] = sent.stdout, sent.stderr[-2000:], sent.returncode
    try:
        out["server"] = server.communicate(timeout=20)[0][-2000:]
    except subprocess.TimeoutExpired:
        server.kill()
        out["server"] = server.communicate()[0][-2000:]
print(json.dumps(out))
'''


def run_in_netns(mode: str, work, payload):
    """Run NETNS_DRIVER in a private network namespace (root: ``unshare -n``), so port 650 is ours alone."""
    require_tool("obex_tcp")
    unshare = require_tool("unshare")
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        message = f"cannot make a network namespace for port 650 (unshare -n: {probe.stderr.decode().strip()})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run([unshare, "-n", sys.executable, "-c", NETNS_DRIVER, mode, str(work), str(payload)],
                            capture_output=True, text=True, timeout=180, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_obex_tcp_client_pushes_to_irda_receive(tmp_path):
    """OpenOBEX's client: one PUT-final with Name, Length, the 0xCF creator header and a Body, no End-of-Body."""
    (tmp_path / "inbox").mkdir()
    payload = tmp_path / "from-openobex.bin"
    payload.write_bytes(os.urandom(30_000))
    out = run_in_netns("obex_tcp-to-irda", tmp_path, payload)
    assert "OBEX inbox" in out["banner"], out
    assert out["client_rc"] == 0 and "PUT successful" in out["client"], out
    report = json.loads(out["receiver"].splitlines()[0])
    assert report["name"] == "from-openobex.bin" and report["size"] == 30_000
    assert report["verified"] is None  # OpenOBEX sends no digest: received, not verified
    assert (tmp_path / "inbox" / "from-openobex.bin").read_bytes() == payload.read_bytes()
    assert sorted(p.name for p in (tmp_path / "inbox").iterdir()) == ["from-openobex.bin"]


def test_irda_send_pushes_to_obex_tcp_server(tmp_path):
    (tmp_path / "server").mkdir()
    payload = tmp_path / "to-openobex.bin"
    payload.write_bytes(os.urandom(100_000))
    out = run_in_netns("irda-to-obex_tcp", tmp_path, payload)
    assert out["sender_rc"] == 0, out
    summary = json.loads(out["sender"])
    assert summary["bytes"] == 100_000 and summary["verified"] == 0  # the peer does not know the digest header
    assert (tmp_path / "server" / "to-openobex.bin").read_bytes() == payload.read_bytes()


def test_obexftp_browses_irda_receive(tmp_path):
    """obexftp against `irda receive --tcp-listen`: push, list, get, change folder, delete."""
    obexftp = require_tool("obexftp")
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "sub" / "inside.txt").write_text("in the folder\n")
    local = tmp_path / "local"
    local.mkdir()
    (local / "pushed.txt").write_text("pushed by obexftp\n")
    receiver = subprocess.Popen([sys.executable, "-m", "irsock.cli", "receive", "--dir", str(inbox),
                                 "--tcp-listen", "127.0.0.1:0", "--json", "--browse", "--allow-delete"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = receiver.stderr.readline()
        assert "sharing: push, browse, delete" in banner
        port = int(banner.split("127.0.0.1:")[1].split(";")[0])

        def ftp(*args):
            result = subprocess.run([obexftp, "-n", f"127.0.0.1:{port}", *args], capture_output=True, text=True,
                                    timeout=30, cwd=local)
            return result.stdout + result.stderr

        ftp("-p", "pushed.txt")
        assert (inbox / "pushed.txt").read_text() == "pushed by obexftp\n"
        listing = ftp("-l")
        assert 'name="pushed.txt"' in listing and 'name="sub"' in listing and "<folder" in listing
        (local / "pushed.txt").unlink()
        ftp("-g", "pushed.txt")
        assert (local / "pushed.txt").read_text() == "pushed by obexftp\n"
        assert 'name="inside.txt"' in ftp("-c", "sub", "-l")
        sub = ftp("-l", "sub")  # obexftp -l FOLDER: a listing GET with a Name
        assert 'name="inside.txt"' in sub and "pushed.txt" not in sub
        ftp("-k", "pushed.txt")
        assert not (inbox / "pushed.txt").exists() and (inbox / "sub" / "inside.txt").exists()
    finally:
        receiver.terminate()
        receiver.wait(10)


def test_obexftp_gets_nothing_from_a_push_only_inbox(tmp_path):
    """The default inbox takes files and shows, sends and deletes nothing (0xC3 Forbidden)."""
    obexftp = require_tool("obexftp")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "private.txt").write_text("the owner's\n")
    local = tmp_path / "local"
    local.mkdir()
    (local / "pushed.txt").write_text("pushed\n")
    receiver = subprocess.Popen([sys.executable, "-m", "irsock.cli", "receive", "--dir", str(inbox),
                                 "--tcp-listen", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(receiver.stderr.readline().split("127.0.0.1:")[1].split(";")[0])

        def ftp(*args):
            result = subprocess.run([obexftp, "-n", f"127.0.0.1:{port}", *args], capture_output=True, text=True,
                                    timeout=30, cwd=local)
            return result.stdout + result.stderr

        assert "private.txt" not in ftp("-l")
        ftp("-g", "private.txt")
        ftp("-k", "private.txt")
        ftp("-C", "sub", "-p", "pushed.txt")  # making a folder and pushing into it is still pushing
    finally:
        receiver.terminate()
        _out, err = receiver.communicate(timeout=10)
    assert not (local / "private.txt").exists() and (inbox / "private.txt").read_text() == "the owner's\n"
    assert (inbox / "sub" / "pushed.txt").read_text() == "pushed\n"
    assert "0xC3 Forbidden" in err and "created folder sub/" in err, err


def test_obexftp_push_to_receive_once_gets_its_disconnect_answered(tmp_path):
    """An independent sender ends with DISCONNECT: irda receive --once answers it before it goes."""
    obexftp = require_tool("obexftp")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (tmp_path / "once.txt").write_text("one push\n")
    receiver = subprocess.Popen([sys.executable, "-m", "irsock.cli", "receive", "--dir", str(inbox),
                                 "--tcp-listen", "0", "--once", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(receiver.stderr.readline().split("127.0.0.1:")[1].split(";")[0])
        # obexftp's exit status is useless here: it exits with -ret, 255 after a successful push; its words
        # are what tell success ("done") from a dropped link ("failed: disconnect")
        result = subprocess.run([obexftp, "-n", f"127.0.0.1:{port}", "-p", "once.txt"], capture_output=True,
                                text=True, timeout=30, cwd=tmp_path)
        out, err = receiver.communicate(timeout=30)
    finally:
        receiver.kill()
    words = (result.stdout + result.stderr).replace("\r", "\n")
    assert "Disconnecting" in words and "failed" not in words, words
    assert receiver.returncode == 0, err
    assert json.loads(out.splitlines()[0])["name"] == "once.txt"
    assert (inbox / "once.txt").read_text() == "one push\n"


# --- the receiving loop: concurrent sessions, bounds, cleanup, failures ----------------------------------------
def tcp_inbox(root, **options):
    """serve() on a loopback listener in a thread; (address, stop event, thread, received list, log lines)."""
    listener = transfer.tcp_listener("0")
    listener.settimeout(0.2)
    stop = threading.Event()
    received, lines = [], []

    def run():
        with listener:
            transfer.serve(listener, root, stop=stop.is_set, log=lines.append, report=received.append, **options)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[:2], stop, thread, received, lines


def quiet_client(address):
    """A client that sends CONNECT and then nothing."""
    from irsock.obex import packets as P

    sock = irsock.socket(irsock.AF_INET, irsock.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(address)
    sock.sendall(P.build(P.CONNECT, connect=(0x10, 0, 0xFFFF)))
    return sock, P.parse(P.read_packet(sock), response_to=P.CONNECT)


def test_a_quiet_client_does_not_block_other_pushes(tmp_path):
    address, stop, thread, received, _lines = tcp_inbox(tmp_path)
    quiet, answer = quiet_client(address)
    with quiet:
        assert answer.code == 0xA0
        with transfer.connect_tcp(f"{address[0]}:{address[1]}", 5) as sock:  # 5 s: was served after 60 s
            summary = transfer.push_files(sock, [_file(tmp_path, "b.txt", b"pushed meanwhile")], rate=None,
                                          out=io.StringIO())
        assert summary.files == 1 and summary.disconnect == "ok"
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [f.name for f in received] == ["b.txt"]
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_sessions_beyond_the_bound_are_refused_clearly(tmp_path):
    from irsock.obex import ObexClient, ObexResponseError
    from irsock.obex import packets as P

    address, stop, thread, _received, lines = tcp_inbox(tmp_path, max_sessions=2)
    first, _ = quiet_client(address)
    second, _ = quiet_client(address)
    with first, second, irsock.socket(irsock.AF_INET, irsock.SOCK_STREAM) as third:
        third.settimeout(10)
        third.connect(address)
        with pytest.raises(ObexResponseError) as refused:
            ObexClient(third).connect()
        assert refused.value.code == P.SERVICE_UNAVAILABLE and "2 sessions" in str(refused.value)
    stop.set()
    thread.join(10)
    assert any("refused" in line and "2 sessions" in line for line in lines), lines


def test_an_idle_session_is_closed_after_the_idle_timeout(tmp_path):
    address, stop, thread, _received, lines = tcp_inbox(tmp_path, idle_timeout=0.3)
    quiet, _ = quiet_client(address)
    with quiet:
        assert quiet.recv(1) == b""  # the receiver hung up on it (within the 10 s socket timeout)
    stop.set()
    thread.join(10)
    assert any("idle" in line for line in lines), lines


def test_a_failing_session_does_not_end_the_receiver(tmp_path, monkeypatch):
    from irsock.obex import ObexServer

    real_serve = ObexServer.serve
    calls = []

    def serve_failing_once(self, sock, peer=""):
        calls.append(peer)
        if len(calls) == 1:
            raise UnicodeEncodeError("utf-8", "caf\udce9", 3, 4, "surrogates not allowed")
        return real_serve(self, sock, peer)

    monkeypatch.setattr(ObexServer, "serve", serve_failing_once)
    address, stop, thread, received, lines = tcp_inbox(tmp_path)
    with transfer.connect_tcp(f"{address[0]}:{address[1]}", 5) as sock:
        assert sock.recv(1) == b""  # that session failed and was closed
    with transfer.connect_tcp(f"{address[0]}:{address[1]}", 5) as sock:
        transfer.push_files(sock, [_file(tmp_path, "next.txt", b"next")], rate=None, out=io.StringIO())
    stop.set()
    thread.join(10)
    assert [f.name for f in received] == ["next.txt"]
    assert any("failed" in line and "UnicodeEncodeError" in line for line in lines), lines


def test_serve_removes_stale_partial_files_first(tmp_path):
    stale = tmp_path / ".irsock-incoming-0123456789abcdef.part"
    stale.write_bytes(b"left by a receiver killed with SIGKILL")
    os.utime(stale, (1_000_000_000, 1_000_000_000))
    mine = tmp_path / "mine.part"
    mine.write_bytes(b"a user's file")
    lines = []
    listener = transfer.tcp_listener("0")
    with listener:
        transfer.serve(listener, tmp_path, stop=lambda: True, log=lines.append)
    assert not stale.exists() and mine.exists()
    assert any("1 stale partial file" in line for line in lines), lines


def test_tcp_listen_binds_loopback_unless_a_host_is_given():
    with transfer.tcp_listener("0") as local:
        assert local.getsockname()[0] == "127.0.0.1"
    with transfer.tcp_listener("0.0.0.0:0") as everywhere:
        assert everywhere.getsockname()[0] == "0.0.0.0"


def test_a_push_into_a_folder_is_reported_with_its_path(tmp_path):
    from irsock.obex import ReceivedFile

    received = ReceivedFile("x.txt", tmp_path / "sub" / "x.txt", 3, "peer", None, "sub/x.txt")
    assert transfer.describe_received(received).startswith("received sub/x.txt (3 bytes) from peer")


def _file(folder, name, data):
    path = folder / "outbox" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def test_send_on_the_builtin_emulator_says_how_to_try_a_push(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IRDA_PORT", raising=False)
    source = tmp_path / "a.txt"
    source.write_text("hi")
    assert main(["send", str(source), "--timeout", "10"]) == 1
    err = capsys.readouterr().err
    assert "no device with the OBEX hint in range" in err
    assert "each irda process has its own built-in emulator" in err and "irda demo" in err
    assert "irda emulate --pty 2" in err and "check that the receiver runs" not in err


def test_a_receiver_that_stops_mid_transfer_is_said_to_have_closed_the_session(medium, tmp_path):
    """The receiver ends the session (TinyTP/IrLMP disconnect for a user request) while a file is pushed."""
    receiver = medium("inbox", hints=transfer.OBEX_HINTS)
    sender = medium("sender")
    (tmp_path / "inbox").mkdir()
    server = irsock.obex.ObexServer(tmp_path / "inbox")
    listener = transfer.obex_listener(receiver)
    accepted = []

    def serve():
        conn, _address = listener.accept()
        accepted.append(conn)
        try:
            server.serve(conn)
        except Exception:  # noqa: BLE001 - the session is cut here on purpose
            pass

    threading.Thread(target=serve, daemon=True).start()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(100_000))

    def stop_receiver(sent: int) -> None:  # what irda receive does when stopped: close the session
        if sent > 20_000 and accepted:
            accepted.pop().close()

    with sender.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
        sock.settimeout(20)
        transfer.connect_obex(sock, transfer.choose_device(sock).address)
        with pytest.raises(transfer.TransferError) as info:
            transfer.push_files(sock, [big], rate=None, out=io.StringIO(), tty=False, on_progress=stop_receiver)
    message = str(info.value)
    assert message.startswith("the receiver closed the session during big.bin (")
    assert "of 100000 bytes reached it): was it stopped?" in message
    assert "user request" not in message and "closed by the peer" not in message


def test_a_send_that_times_out_says_so_once_without_the_errno(tmp_path):
    import socket

    payload = tmp_path / "a.txt"
    payload.write_text("hello")
    with socket.socket() as silent:  # accepts the connection (backlog), never answers OBEX CONNECT
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        result = run_cli(["send", str(payload), "--tcp", f"127.0.0.1:{silent.getsockname()[1]}", "--timeout", "0.5"])
    assert result.returncode == 1
    assert "Errno" not in result.stderr and result.stderr.count("timed out") == 1, result.stderr
