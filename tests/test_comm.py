"""irda comm: a PTY bridged to a device's IrCOMM, used by unmodified programs (gammu) and by termios code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import termios
import time
import tty
import uuid

import pytest

import irsock
from tests.conftest import require_tool


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
        assert bridge.reconnects == 1 and any("broke" in m for m in messages)
        os.close(fd)
    finally:
        bridge.close()
        iface.close()


def test_comm_without_pty_says_what_to_give(capsys):
    from irsock.cli import main

    assert main(["comm"]) == 1
    assert "give --pty" in capsys.readouterr().err
