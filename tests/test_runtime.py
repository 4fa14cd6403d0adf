"""The real-time runtime over irsim:// and PTY ports: dongle pairs at every speed, faults, CLI tools.

These tests run in real time (the emulator paces bytes at the line rate), so they keep transfers small.
"""

import json
import os
import random
import subprocess
import sys
import time
import urllib.parse
import uuid

import pytest
import serial

from irlap.dongles import get_dongle
from irlap.emulator.medium import get_medium
from irlap.emulator.models import MODELS
from irlap.emulator.virtual import spawn_devices, stop_devices
from irlap.port import PortError, open_port
from irlap.qos import QosParams
from irlap.runtime import LinkRuntime, PortFailed
from irlap.sir import wrap
from irlap.station import Connected, Data, Disconnected, Discovered


def medium_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def runtime(url, **kwargs) -> LinkRuntime:
    kwargs.setdefault("rng", random.Random(hash(url) & 0xFFFF))
    return LinkRuntime(url, **kwargs).start()


def connect(a: LinkRuntime, b: LinkRuntime, timeout=5.0) -> Connected:
    a.call(lambda st, now: st.connect(b.station.address, now))
    event = a.wait_for((Connected, Disconnected), timeout)
    assert isinstance(event, Connected), event
    assert isinstance(b.wait_for((Connected,), timeout), Connected)
    return event


def transfer(a: LinkRuntime, b: LinkRuntime, payload: bytes, timeout=10.0) -> bytes:
    size = a.call(lambda st, now: st.max_send_size)
    a.call(lambda st, now: [st.send(payload[i:i + size], now) for i in range(0, len(payload), size)])
    got = bytearray()
    deadline = time.monotonic() + timeout
    while len(got) < len(payload) and time.monotonic() < deadline:
        event = b.wait_for((Data,), deadline - time.monotonic())
        if event is None:
            break
        got += event.data
    return bytes(got)


PAIRS = [(name, speed) for name in MODELS for speed in get_dongle(name).speeds if speed >= 9600]


@pytest.mark.parametrize("dongle, speed", PAIRS)
def test_station_pair_for_each_dongle_at_each_speed(dongle, speed):
    medium = medium_name()
    qos = QosParams.offer(max_baud=speed, max_data_size=256, max_window=2)
    model = urllib.parse.quote(dongle)  # "actisys+" in a query string
    a = runtime(f"irsim://{medium}?dongle={model}", dongle=dongle, qos=qos)
    b = runtime(f"irsim://{medium}?dongle={model}", dongle=dongle, qos=qos)
    try:
        event = connect(a, b)
        assert event.params.baud == speed
        assert a.driver.speed == speed and a.port.baudrate == speed
        payload = bytes(range(256)) * 2
        assert transfer(a, b, payload) == payload
    finally:
        a.close()
        b.close()


def test_wrong_dongle_setting_hears_nothing_from_peers():
    medium = medium_name()
    spawn_devices(medium, 2)
    try:
        # a Tekram on the port, but we drive it as an ESI: the lines say 115200 to an ESI, nothing to a Tekram
        wrong = runtime(f"irsim://{medium}?dongle=tekram", dongle="esi")
        try:
            wrong.call(lambda st, now: st.discover(6, now))
            event = wrong.wait_for((Discovered,), 3.0)
            assert isinstance(event, Discovered) and event.devices == ()
        finally:
            wrong.close()
        right = runtime(f"irsim://{medium}?dongle=tekram", dongle="tekram")
        try:
            found = set()
            for _ in range(4):
                right.call(lambda st, now: st.discover(6, now))
                event = right.wait_for((Discovered,), 3.0)
                found |= {d.nickname for d in event.devices}
                if len(found) == 2:
                    break
            assert found == {"virtual-1", "virtual-2"}
        finally:
            right.close()
    finally:
        stop_devices(medium)


def test_garbage_on_the_line_is_survived():
    medium = medium_name()
    a = runtime(f"irsim://{medium}")
    b = runtime(f"irsim://{medium}")
    noise = open_port(f"irsim://{medium}")
    try:
        noise.write(random.Random(1).randbytes(600) + b"\xc0\x7d\xc1\xc0" + wrap(b"\x55") + b"\xc0" * 50)
        noise.flush()
        time.sleep(0.2)
        connect(a, b)
        assert transfer(a, b, b"still fine") == b"still fine"
        assert a.unwrapper.stats.garbage_bytes + b.unwrapper.stats.garbage_bytes > 0
    finally:
        noise.close()
        a.close()
        b.close()


def test_port_closed_under_the_runtime_is_a_clean_stop():
    medium = medium_name()
    a = runtime(f"irsim://{medium}")
    a.port.close()
    event = a.wait_for((Connected,), 3.0)
    assert isinstance(event, PortFailed) and "port failed" in event.message
    deadline = time.monotonic() + 2
    while a.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not a.running
    with pytest.raises(Exception, match="not running"):
        a.call(lambda st, now: None)
    a.close()  # closing a failed runtime is harmless


def test_link_lost_when_the_peer_vanishes():
    medium = medium_name()
    qos = QosParams.offer(max_link_disconnect_s=3)
    a = runtime(f"irsim://{medium}", qos=qos)
    b = runtime(f"irsim://{medium}", qos=qos)
    try:
        connect(a, b)
        b.close(disconnect=False)  # gone without a word
        event = a.wait_for((Disconnected,), 6.0)
        assert isinstance(event, Disconnected) and "lost" in event.reason.value
    finally:
        a.close()


def test_unopenable_port_is_a_clear_error():
    with pytest.raises(PortError, match="cannot open /dev/nonexistent-irda"):
        LinkRuntime("/dev/nonexistent-irda").start()


def test_irsim_url_options_are_checked():
    with pytest.raises(serial.SerialException, match="no emulated dongle"):
        serial.serial_for_url("irsim://x?dongle=nosuch")
    with pytest.raises(serial.SerialException, match="unknown option"):
        serial.serial_for_url("irsim://x?colour=blue")


def test_close_powers_the_dongle_down():
    medium = medium_name()
    a = runtime(f"irsim://{medium}?dongle=tekram", dongle="tekram")
    endpoint = a.port._endpoint
    a.close()
    assert (endpoint.dtr, endpoint.rts) == (False, False)
    medium_obj, _ = get_medium(medium)
    assert endpoint not in medium_obj.endpoints


def cli(*args, timeout=60, env=None):
    return subprocess.run([sys.executable, "-m", "irsock.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_discover_uses_the_builtin_emulator_and_says_so():
    env = {k: v for k, v in os.environ.items() if k not in ("IRDA_PORT", "IRDA_DONGLE")}
    result = cli("discover", "--timeout", "2", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert "built-in emulator" in result.stderr
    devices = json.loads(result.stdout)["devices"]
    assert {d["nickname"] for d in devices} <= {"virtual-1", "virtual-2", "virtual-3"} and devices
    assert all(isinstance(d["address"], int) and d["hints"] == ["Computer", "IrCOMM"] and d["charset"] == 0
               for d in devices)


def test_ping_and_trace_capture(tmp_path):
    result = cli("ping", "virtual-1", "--count", "2", "--interval", "0.6")
    assert result.returncode == 0, result.stderr
    assert "2 sent, 2 received, 0% loss" in result.stdout
    out = tmp_path / "cap.pcap"
    result = cli("trace", "capture", "-o", str(out), "--duration", "1.5", "--discover")
    assert result.returncode == 0, result.stderr
    shown = cli("trace", "show", str(out))
    assert "-> XID" in shown.stdout and "s=final" in shown.stdout


def test_emulate_pty_used_by_another_process():
    proc = subprocess.Popen([sys.executable, "-m", "irsock.cli", "emulate", "--pty", "2", "--devices", "2", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        port_a, port_b = info["ports"]
        assert port_a.startswith("/dev/pts/")
        found = set()
        for _ in range(3):
            result = cli("discover", "--port", port_a, "--timeout", "1.5", "--json")
            assert result.returncode == 0, result.stderr
            found |= {d["nickname"] for d in json.loads(result.stdout)["devices"]}
            if len(found) == 2:
                break
        assert found == {"virtual-1", "virtual-2"}
        # and two stacks of ours over the two PTYs: the speed change goes through termios
        a = runtime(port_a)
        b = runtime(port_b)
        try:
            event = connect(a, b)
            assert event.params.baud == 115200 and a.port.baudrate == 115200
            payload = random.Random(5).randbytes(3000)
            assert transfer(a, b, payload) == payload
        finally:
            a.close()
            b.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_virtual_device_answers_ias_and_echoes_over_tinytp():
    import irsock  # noqa: F401 - registers the full stack for virtual devices
    from irsock.lmp.stack import IasResult
    from irsock.stack import full_stack
    from irsock.ttp import TtpConnected, TtpReadable

    medium = medium_name()
    [device] = spawn_devices(medium, 1)
    a = runtime(f"irsim://{medium}", stack=full_stack)
    try:
        address = device.station.address
        a.call(lambda stack, now: stack.ias_query(address, "IrDA:IrCOMM", "IrDA:TinyTP:LsapSel", now))
        result = a.wait_for((IasResult,), 5)
        assert isinstance(result, IasResult) and result.ok
        lsap = result.values[0].integer
        conn = a.call(lambda stack, now: stack.connect(address, lsap, now))
        assert isinstance(a.wait_for((TtpConnected,), 5), TtpConnected)
        a.call(lambda stack, now: stack.send(conn, b"echo me", now))
        got = b""
        deadline = time.monotonic() + 5
        while got != b"echo me" and time.monotonic() < deadline:
            if isinstance(a.wait_for((TtpReadable,), 1), TtpReadable):
                got += a.call(lambda stack, now: stack.recv(conn, None, now))
        assert got == b"echo me"
    finally:
        a.close()
        stop_devices(medium)


def test_a_port_opens_clean_of_stale_bytes_even_from_a_pty_nobody_read(tmp_path):
    """Frames that reached a PTY port before anyone opened it (thousands, from the emulated medium) are not
    decoded by the program that opens it later: the bridge drops what does not fit (as a UART overruns) and
    the runtime flushes the port's input once the dongle is up. Frames sent after the open are all there."""
    from irlap import frames as F
    from irlap.emulator.medium import MediumOptions
    from irlap.emulator.pty_bridge import PtyBridge
    from irlap.pcap import PcapWriter, read_pcap_bytes

    name = f"stale-{uuid.uuid4().hex[:8]}"
    medium, _created = get_medium(name, MediumOptions(pace=0))
    bridge = PtyBridge(name)
    sender = medium.attach("plain", name="sender")
    try:
        def ui(text: bytes) -> bytes:
            return wrap(F.build(F.UI(address=0x7F, command=True, info=text)), 2)

        sender.set_baud(bridge._speed)
        sender.write(b"".join(ui(b"stale %04d" % i) for i in range(3000)))
        deadline = time.monotonic() + 10
        while bridge.endpoint.in_waiting() and time.monotonic() < deadline:
            bridge._stop.wait(0.01)  # the bridge takes what it can, the rest is an overrun
        assert bridge.endpoint.in_waiting() == 0, "the bridge holds stale bytes for a PTY nobody reads"

        capture = tmp_path / "capture.pcap"
        writer = PcapWriter(capture)
        runtime = LinkRuntime(bridge.path, trace=writer).start()
        try:
            sender.set_baud(9600)
            records = 0
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and records < 3:
                sender.write(ui(b"fresh"))
                bridge._stop.wait(0.1)
                records = writer.records
        finally:
            runtime.close()
            writer.close()
        infos = list(read_pcap_bytes(capture.read_bytes()))
        assert len(infos) >= 3
        stale = [r for r in infos if b"stale" in bytes(r.data)]
        assert not stale, f"{len(stale)} stale frames decoded, first {bytes(stale[0].data)!r}"
    finally:
        sender.close()
        bridge.close()
