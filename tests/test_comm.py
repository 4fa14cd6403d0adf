"""irda comm: a PTY bridged to a device's IrCOMM, used by unmodified programs (gammu) and by termios code."""

from __future__ import annotations

import errno
import json
import os
import select
import subprocess
import sys
import termios
import threading
import time
import tty
import uuid

import pytest

import irsock
from irlap.qos import QosParams
from irsock import ircomm as I
from tests.conftest import require_tool, wait_until


def read_until(fd: int, end: bytes, timeout: float = 10.0) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while not got.endswith(end):
        assert time.monotonic() < deadline, f"no {end!r} in {got!r}"
        import select

        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            got += os.read(fd, 1000)
    return got


@pytest.fixture
def comm_process(tmp_path):
    """``irda comm --pty --json`` on the built-in emulator (an emulated phone): (its JSON, the process)."""
    link = tmp_path / "ircomm0"
    process = subprocess.Popen([sys.executable, "-m", "irsock.cli", "comm", "--pty", "--json", "--link", str(link)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert line, process.stderr.read()
    yield json.loads(line), process
    process.terminate()
    process.wait(10)
    assert not link.exists()  # the symlink goes with the bridge


def test_gammu_identifies_the_phone_reads_its_phonebook_and_clock(comm_process, tmp_path):
    gammu = require_tool("gammu")
    info, _process = comm_process
    assert info["device"]["name"] == "irsock phone" and info["mode"] == "9-wire"
    config = tmp_path / "gammurc"
    config.write_text(f"[gammu]\ndevice = {info['link']}\nconnection = at115200\n")

    def run(*args: str) -> str:
        result = subprocess.run([gammu, "-c", str(config), *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    identity = run("identify")
    assert "Manufacturer         : irsock" in identity and "IMEI                 : 350000000000006" in identity
    assert "Firmware             : V 1.04 emulated" in identity
    memory = run("getallmemory", "ME")
    assert memory.count("Memory ME, Location") == 3
    assert '"+4930123456"' in memory and '"Alice"' in memory and '"Emergency"' in memory
    clock = run("getdatetime")
    assert "Phone time is" in clock and time.strftime("%Y", time.gmtime()) in clock


def test_a_program_that_sets_115200_8n1_with_termios_reads_its_echo(comm_process):
    info, _process = comm_process
    fd = os.open(info["pty"], os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[4] = attrs[5] = termios.B115200
        attrs[2] = (attrs[2] & ~(termios.CSIZE | termios.PARENB | termios.CSTOPB)) | termios.CS8 | termios.CREAD
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        os.write(fd, b"AT\r")
        assert read_until(fd, b"OK\r\n") == b"AT\r\r\nOK\r\n"  # the phone echoes, then answers
        os.write(fd, b"ATI\r")
        assert read_until(fd, b"OK\r\n") == b"ATI\r\r\nirsock\r\n\r\nOK\r\n"
    finally:
        os.close(fd)
    # a program that opens the port again (gammu does, once per command) finds it still there
    fd = os.open(info["pty"], os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        os.write(fd, b"AT+CSQ\r")
        assert read_until(fd, b"OK\r\n").endswith(b"+CSQ: 20,99\r\n\r\nOK\r\n")
    finally:
        os.close(fd)


def test_a_broken_connection_is_made_again_on_the_next_write():
    from irsock.apps.comm import CommBridge

    messages: list[str] = []
    iface = irsock.attach(f"irsim://comm-{uuid.uuid4().hex[:8]}?devices=phone", nickname="pc")
    bridge = CommBridge(iface, log=messages.append)
    try:
        bridge.start()
        fd = os.open(bridge.path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        os.write(fd, b"AT\r")
        assert read_until(fd, b"OK\r\n").endswith(b"OK\r\n")
        bridge.sock.close()  # the connection goes (as when the phone ends it)
        deadline = time.monotonic() + 10
        while bridge.sock is not None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.write(fd, b"AT+CGMI\r")
        assert read_until(fd, b"OK\r\n").endswith(b"irsock\r\n\r\nOK\r\n")
        assert bridge.reconnects == 1 and any("ended" in m for m in messages)
        assert bridge.hangups == 0  # nothing was lost: the program's descriptor stays good
        os.close(fd)
    finally:
        bridge.close()
        iface.close()


def test_comm_without_pty_says_what_to_give(capsys):
    from irsock.cli import main

    assert main(["comm"]) == 1
    assert "give --pty" in capsys.readouterr().err


# --- the bridge against a 9-wire device made of an irsock socket ---------------------------------------------
class NineWireDevice:
    """A DCE on its own interface: a 9-wire listener on IrDA:IrCOMM whose accepted connection is read all the
    time (control frames are applied as they are read), keeping what arrives."""

    def __init__(self, iface):
        self.iface = iface
        self.listener = iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
        self.listener.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_9WIRE_MODE, 1)
        self.listener.bind((I.IAS_CLASS,))
        self.listener.listen(1)
        self.conn = None
        self.received = bytearray()
        self.ended = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.conn, _peer = self.listener.accept()
        while True:
            try:
                data = self.conn.recv(4096)
            except OSError:
                break
            if not data:
                break
            self.received += data
        self.ended.set()

    @property
    def channel(self):
        return self.conn.ircomm if self.conn is not None else None


@pytest.fixture
def bridged(interfaces):
    """(a CommBridge on interface 'pc', the NineWireDevice it is connected to on 'modem', the bridge's log)."""
    from irsock.apps.comm import CommBridge

    qos = QosParams.offer(max_link_disconnect_s=3)
    pc, modem = interfaces("pc", qos=qos), interfaces("modem", qos=qos)
    device = NineWireDevice(modem)
    messages = []
    bridge = CommBridge(pc, to="modem", idle=0, log=messages.append).start()
    wait_until(lambda: device.channel is not None, "the device to accept the bridge")
    yield bridge, device, messages
    bridge.close()


def open_port(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd


def test_termios_settings_and_opening_the_port_become_ircomm_parameters(bridged):
    bridge, device, messages = bridged
    wait_until(lambda: device.channel.peer_lines is not None, "the DTE's hello")
    assert device.channel.peer_dte_lines() == {"dtr": False, "rts": False}  # nobody holds the port yet
    fd = open_port(bridge.path)
    try:
        wait_until(lambda: device.channel.peer_dte_lines() == {"dtr": True, "rts": True}, "DTR up on open")
        attrs = termios.tcgetattr(fd)
        attrs[4] = attrs[5] = termios.B19200
        attrs[2] |= termios.CSTOPB | termios.CRTSCTS
        attrs[0] |= termios.IXON
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        os.write(fd, b"ATZ\r")  # the settings go before the data written after them
        wait_until(lambda: bytes(device.received) == b"ATZ\r", "the data")
        peer = device.channel.peer_settings
        assert peer.data_rate == 19200
        assert peer.data_format == I.FORMAT_8N1 | I.FORMAT_TWO_STOP_BITS
        assert peer.flow_control == I.FLOW_RTS_CTS_IN | I.FLOW_RTS_CTS_OUT | I.FLOW_XON_XOFF_OUT
        attrs[4] = attrs[5] = termios.B0  # POSIX's hang-up: DTR drops
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        wait_until(lambda: not device.channel.peer_dte_lines()["dtr"], "DTR down at speed 0")
        attrs[4] = attrs[5] = termios.B115200
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        wait_until(lambda: device.channel.peer_dte_lines()["dtr"] and device.channel.peer_settings.data_rate == 115200,
                   "DTR up again at 115200")
    finally:
        os.close(fd)
    wait_until(lambda: device.channel.peer_dte_lines() == {"dtr": False, "rts": False}, "DTR down on close")
    assert bridge.hangups == 0


def test_the_devices_lines_are_reported_and_its_cts_holds_a_crtscts_program(bridged):
    bridge, device, messages = bridged
    fd = open_port(bridge.path)
    try:
        attrs = termios.tcgetattr(fd)
        attrs[2] |= termios.CRTSCTS
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        device.conn.ircomm_set(cts=False, cd=False)
        wait_until(lambda: bridge.peer_lines == {"cts": False, "dsr": True, "ri": False, "cd": False},
                   "the device's lines")
        assert any("CTS off" in m and "CD off" in m for m in messages)
        os.write(fd, b"held")
        time.sleep(0.3)  # a negative: nothing may go out while CTS is off
        assert bytes(device.received) == b"" and bridge.bytes_out == 0
        device.conn.ircomm_set(cts=True)
        wait_until(lambda: bytes(device.received) == b"held", "the data once CTS is on")
    finally:
        os.close(fd)


def test_a_device_that_vanishes_mid_write_hangs_the_port_up(bridged):
    """The program sees EIO (or EOF) within the link-disconnect time, and the link symlink... here the path:
    a new PTY takes the old one's place and the next open and write connect again when the device is back."""
    bridge, device, messages = bridged
    fd = open_port(bridge.path)
    old_path = bridge.path
    try:
        os.write(fd, b"x" * 1000)
        wait_until(lambda: len(device.received) == 1000, "the first bytes")
        device.iface.runtime.close(disconnect=False)  # gone without a word

        def hung_up():
            try:
                os.write(fd, b"y" * 100)
                return os.read(fd, 100) == b"" if select.select([fd], [], [], 0)[0] else False
            except OSError as exc:
                return exc.errno == errno.EIO

        wait_until(hung_up, "the program to see the hang-up", timeout=30)
    finally:
        os.close(fd)
    assert bridge.hangups == 1 and bridge.path != old_path
    assert any("hung up" in m and "broke" in m for m in messages)


def test_the_link_is_dropped_when_idle_and_brought_up_when_the_port_is_opened(interfaces):
    from irsock.apps.comm import CommBridge

    pc, modem = interfaces("pc"), interfaces("modem")
    device = NineWireDevice(modem)
    messages = []
    bridge = CommBridge(pc, to="modem", idle=0.2, log=messages.append).start()
    try:
        wait_until(lambda: bridge.sock is None and not pc.call(lambda stack, now: stack.lmp.link_up),
                   "the idle link to go")
        assert any("no program and no traffic" in m for m in messages)
        device.ended.clear()
        threading.Thread(target=device._serve, daemon=True).start()
        fd = open_port(bridge.path)
        try:
            wait_until(lambda: bridge.sock is not None, "the link to come up on open")
            os.write(fd, b"AT\r")
            wait_until(lambda: device.received.endswith(b"AT\r"), "the data")
        finally:
            os.close(fd)
    finally:
        bridge.close()


def test_comm_serve_gives_each_incoming_connection_a_pty(interfaces, tmp_path):
    from irsock.apps.comm import CommBridge, CommServer

    pc, peer = interfaces("pc"), interfaces("modem-pc")
    served = []
    server = CommServer(peer, link=str(tmp_path / "ircomm-in"), on_port=served.append).start()
    assert peer.hints & irsock.LM_HB2_IrCOMM
    bridge = CommBridge(pc, idle=0).start()  # found by its IrCOMM hint
    try:
        port = wait_until(lambda: served and served[0], "the incoming connection")
        assert os.readlink(tmp_path / "ircomm-in") == port.path and port.as_dict()["event"] == "connected"
        dte, dce = open_port(bridge.path), open_port(port.path)
        try:
            wait_until(lambda: bridge.peer_lines and bridge.peer_lines["cd"] and bridge.peer_lines["dsr"],
                       "the DCE's lines up once its program holds the port")
            os.write(dte, b"ping")
            assert read_until(dce, b"ping") == b"ping"
            os.write(dce, b"pong")
            assert read_until(dte, b"pong") == b"pong"
        finally:
            os.close(dte)
        bridge.close()  # the DTE goes: the served port is hung up
        wait_until(lambda: not server.ports, "the served port to close")
        assert read_until_eof(dce) == b""
        os.close(dce)
    finally:
        bridge.close()
        server.close()
    assert not (peer.hints & irsock.LM_HB2_IrCOMM)


def read_until_eof(fd, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                data = os.read(fd, 100)
            except OSError as exc:
                return b"" if exc.errno == errno.EIO else None
            if not data:
                return b""
    raise AssertionError("no end of file")


def test_comm_serve_with_to_is_refused(capsys):
    from irsock.cli import main

    assert main(["comm", "--pty", "--serve", "--to", "0x1"]) == 1
    assert "--to does not go with it" in capsys.readouterr().err


def test_irda_comm_serve_and_irda_comm_over_two_ptys_of_irda_emulate(tmp_path):
    """The two commands as users run them, on the two ports of ``irda emulate --pty 2``: a program's line
    written on one side's PTY is read on the other's, and the served side's link follows the connection."""
    irda = [sys.executable, "-m", "irsock.cli"]
    emulate = subprocess.Popen([*irda, "emulate", "--pty", "2", "--devices", "0", "--json"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    processes = [emulate]
    try:
        ports = json.loads(emulate.stdout.readline())["ports"]
        served_link, comm_link = tmp_path / "ircomm-in", tmp_path / "ircomm0"
        serve = subprocess.Popen([*irda, "comm", "--serve", "--pty", "--json", "--port", ports[0], "--link",
                                  str(served_link)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        processes.append(serve)
        assert json.loads(serve.stdout.readline())["serving"] == "IrDA:IrCOMM"
        comm = subprocess.Popen([*irda, "comm", "--pty", "--json", "--port", ports[1], "--link", str(comm_link)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        processes.append(comm)
        bridge = json.loads(comm.stdout.readline())
        connected = json.loads(serve.stdout.readline())
        assert connected["event"] == "connected" and connected["link"] == str(served_link)
        assert bridge["device"]["address"] != connected["peer"]["address"]
        dte, dce = open_port(str(comm_link)), open_port(str(served_link))
        try:
            os.write(dte, b"hello modem\r\n")
            assert read_until(dce, b"\r\n") == b"hello modem\r\n"
            os.write(dce, b"CONNECT 115200\r\n")
            assert read_until(dte, b"\r\n") == b"CONNECT 115200\r\n"
        finally:
            os.close(dte)
            os.close(dce)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(10)
    assert not served_link.exists() and not comm_link.exists()
