"""Bench scenarios: each test is the procedure an engineer would otherwise follow by hand at the bench.

Run on the emulator (default) or on hardware (see conftest.py and docs/hil.md). Every figure goes into
the rig report through ``bench.record``.
"""

from __future__ import annotations

import errno
import subprocess
import sys
import threading
import time

import pytest

import irsock
from hil_tests.procedures import push_file
from irlap import framing
from irsock.apps import bench as figures


# --- discovery and IAS --------------------------------------------------------------------------------------
@pytest.mark.scenario("discovery")
def test_discovery_both_ways(rig, bench):
    """A finds B and B finds A; how long each took."""
    a = rig.attach("a", nickname="rig-a")
    if rig.b is None:  # the responder answers discovery; it never asks
        started = time.monotonic()
        rig.responder_address(a)
        bench.record("discovery", {"direction": "a->responder"}, {"discovery_s": round(time.monotonic() - started, 3)})
        return
    b = rig.attach("b", nickname="rig-b")
    for name, seeker, target in (("a->b", a, b), ("b->a", b, a)):
        seconds = figures.discover_peer(seeker, target.address, timeout=15)
        assert seconds is not None, f"{name}: 0x{target.address:08x} never answered discovery"
        found = {d.address: d for d in seeker.discover()}
        assert found[target.address].nickname == target.nickname
        bench.record("discovery", {"direction": name}, {"discovery_s": round(seconds, 3)})


@pytest.mark.scenario("ias")
def test_ias_lookups_both_ways(rig, bench):
    """Each side asks the other's IAS for its device name and for a service it registered."""
    a = rig.attach("a", nickname="rig-a")
    if rig.b is None:  # the responder's directory: its name and the echo service
        board = rig.responder_address(a)
        with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
            started = time.monotonic()
            name = sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                                   irsock.IasQuery(board, "Device", "DeviceName"))
            lsap = sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                                   irsock.IasQuery(board, "Echo", "IrDA:TinyTP:LsapSel"))
            seconds = time.monotonic() - started
            with pytest.raises(ConnectionRefusedError):
                sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                                irsock.IasQuery(board, "NoSuchClass", "IrDA:TinyTP:LsapSel"))
        assert name.text and lsap.integer > 0
        bench.record("ias", {"direction": "a->responder"}, {"two_queries_s": round(seconds, 3)})
        return
    b = rig.attach("b", nickname="rig-b")
    for direction, asker, owner in (("a->b", a, b), ("b->a", b, a)):
        with owner.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as server:
            server.bind(("RigService",))
            server.listen()
            with asker.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
                started = time.monotonic()
                device_name = sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                                              irsock.IasQuery(owner.address, "Device", "DeviceName"))
                lsap = sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                                       irsock.IasQuery(owner.address, "RigService", "IrDA:TinyTP:LsapSel"))
                seconds = time.monotonic() - started
                with pytest.raises(ConnectionRefusedError):
                    sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                                    irsock.IasQuery(owner.address, "NoSuchClass", "IrDA:TinyTP:LsapSel"))
        assert device_name.text == owner.nickname
        assert lsap.integer == server.lsap_sel
        bench.record("ias", {"direction": direction}, {"two_queries_s": round(seconds, 3)})


@pytest.mark.scenario("echo")
def test_echo_stream(rig, bench):
    """A TinyTP stream to an echo service on B (or the responder board): 20 kB out, the same 20 kB back."""
    a = rig.attach("a")
    if rig.b is None:
        address = rig.responder_address(a)
    else:
        b = rig.attach("b")
        address = b.address
        server = b.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
        server.bind(("Echo",))
        server.listen()

        def echo() -> None:
            try:
                conn, _peer = server.accept()
                with conn:
                    while data := conn.recv(4096):
                        conn.sendall(data)
            except OSError:
                return  # the scenario ended and took the interface down

        threading.Thread(target=echo, daemon=True).start()
    payload = bytes(range(256)) * 80
    received = bytearray()
    with a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect((address, "Echo"))
        started = time.monotonic()
        reader = threading.Thread(target=lambda: _read_exactly(sock, len(payload), received), daemon=True)
        reader.start()
        sock.sendall(payload)
        reader.join(60)
        seconds = time.monotonic() - started
    assert bytes(received) == payload, f"{len(received)} of {len(payload)} bytes came back intact"
    bench.record("echo", {"bytes": len(payload)}, {"round_trip_Bps": round(2 * len(payload) / seconds, 1),
                                                   "seconds": round(seconds, 3)})


def _read_exactly(sock, count: int, into: bytearray) -> None:
    while len(into) < count:
        data = sock.recv(65536)
        if not data:
            return
        into.extend(data)


# --- speeds ---------------------------------------------------------------------------------------------------
def sweep_bytes(baud: int) -> int:
    """What the speed sweep pushes at ``baud``: 2 s of line at SIR speeds (where a turn is long and the fixed costs,
    the PUT's first and last exchange, take line time), 1 s at MIR and FIR (where they take a few ms: efficiency
    reads the same as over 2 MB, docs/performance.md)."""
    return int(framing.data_rate(baud) * (2 if baud <= framing.SIR_MAX else 1))


@pytest.mark.parametrize("baud", [9600, 19200, 38400, 57600, 115200, 576000, 1152000, 4000000])
@pytest.mark.scenario("speed")
def test_connection_at_each_speed(rig, bench, baud):
    """Connect with both sides offering at most ``baud``; both must end up there; push ~1-2 s of data. Above
    115200 the emulator rig runs it between two ``fir`` dongles on its medium (A's PTY carries SIR only)."""
    ends = rig.ends_for(baud)
    if ends is None:
        pytest.skip(f"{baud} bit/s is not supported by both dongles ({rig.common_speeds()})")
    a = rig.attach_to(ends[0], nickname="rig-a", max_baud=baud)
    b = rig.attach_to(ends[1], nickname="rig-b", max_baud=baud)
    nbytes = sweep_bytes(baud)
    outcome = push_file(a, b, nbytes, timeout=60)
    assert outcome.error is None, outcome.error
    assert outcome.intact and len(outcome.stored) == 1 and outcome.stored[0].verified
    assert outcome.qos_sender["baud"] == baud and outcome.qos_receiver["baud"] == baud
    bench.record("speed", {"baud": baud, "bytes": nbytes, "dongles": f"{ends[0].dongle} <-> {ends[1].dongle}"},
                 outcome.metrics())


# --- transfer, ping ---------------------------------------------------------------------------------------------
@pytest.mark.scenario("transfer")
def test_file_transfer_both_ways(rig, bench):
    """A pushes a file to B, then B to A; both arrive intact and verified by SHA-256."""
    a, b = rig.attach("a"), rig.attach("b")
    for name, sender, receiver in (("a->b", a, b), ("b->a", b, a)):
        outcome = push_file(sender, receiver, 60_000, timeout=60)
        assert outcome.error is None, f"{name}: {outcome.error}"
        assert outcome.intact and outcome.stored[0].verified, f"{name}: the file arrived damaged"
        bench.record("transfer", {"direction": name, "bytes": 60_000}, outcome.metrics())


@pytest.mark.scenario("ping")
def test_test_frame_ping(rig, bench):
    """TEST frames from A to B come back intact; round-trip times at 9600 bit/s."""
    a = rig.attach("a")
    if rig.b is not None:
        b = rig.attach("b")
        address = b.address
    else:
        address = rig.responder_address(a)
    rtts = figures.ping(a, address, count=5)
    assert len(rtts) >= 4, f"only {len(rtts)} of 5 TEST frames came back"
    turnaround = (min(rtts) - 2 * figures.test_airtime(32)) / 2
    bench.record("ping", {"size": 32, "count": 5}, {"rtt_ms": round(sum(rtts) / len(rtts) * 1000, 2),
                                                    "rtt_min_ms": round(min(rtts) * 1000, 2),
                                                    "turnaround_ms": round(turnaround * 1000, 2)})


# --- the beam ---------------------------------------------------------------------------------------------------
@pytest.mark.scenario("link_recovery")
def test_link_lost_and_recovered(rig, bench):
    """A hand in the beam for 1.5 s (the link disconnect threshold is 12 s): the transfer resumes, intact."""
    rig.need_emulator("block the beam")
    a, b = rig.attach("a"), rig.attach("b")
    blocked = []

    def block(sent: int) -> bool:
        if sent >= 20_000:
            rig.block_beam(1.5)
            blocked.append(time.monotonic())
            return True
        return False

    outcome = push_file(a, b, 60_000, during=block, timeout=60)
    assert blocked, "the transfer never reached the point where the beam is blocked"
    assert outcome.error is None, outcome.error
    assert outcome.intact and len(outcome.stored) == 1
    bench.record("link_recovery", {"outage_s": 1.5, "bytes": 60_000}, outcome.metrics())


@pytest.mark.scenario("link_lost")
def test_link_lost_for_good(rig, bench):
    """The beam stays blocked longer than the 3 s disconnect threshold: the sender is told, nothing is stored."""
    rig.need_emulator("block the beam")
    a, b = rig.attach("a", max_link_disconnect_s=3), rig.attach("b", max_link_disconnect_s=3)

    def block(sent: int) -> bool:
        if sent >= 10_000:
            rig.block_beam(30)
            return True
        return False

    started = time.monotonic()
    outcome = push_file(a, b, 60_000, during=block, timeout=20)
    detected = time.monotonic() - started
    assert outcome.error is not None and ("Reset" in outcome.error or "Timeout" in outcome.error
                                          or "broke" in outcome.error), outcome.error
    assert outcome.stored == [] and outcome.inbox_files == [], "a cut transfer left a file behind"
    bench.record("link_lost", {"outage_s": 30, "disconnect_threshold_s": 3},
                 {"reported_after_s": round(detected, 2), "error": outcome.error})


@pytest.mark.parametrize("ber,nbytes", [(0.0, 40_000), (1e-6, 40_000), (1e-5, 20_000), (1e-4, 4_000)])
@pytest.mark.scenario("ber")
def test_bit_error_sweep(rig, bench, ber, nbytes):
    """Bit errors on the beam cost retransmissions, never data: what arrives is whole, once."""
    rig.need_emulator("inject bit errors")
    rig.set_bit_error_rate(ber)
    a, b = rig.attach("a"), rig.attach("b")
    outcome = push_file(a, b, nbytes, timeout=90)
    assert outcome.error is None, outcome.error
    assert outcome.intact and len(outcome.stored) == 1 and outcome.stored[0].size == nbytes
    assert outcome.inbox_files == [outcome.stored[0].name]
    bench.record("ber", {"ber": ber, "bytes": nbytes}, outcome.metrics())


# --- things going wrong at the bench ----------------------------------------------------------------------------
@pytest.mark.scenario("dongle_mismatch")
def test_wrong_dongle_type_is_diagnosed(rig, bench):
    """B's port driven with the wrong --dongle: nothing is heard, and the message says what to check."""
    target = rig.b if rig.b is not None else rig.a
    wrong = "actisys" if target.dongle != "actisys" else "tekram"
    if rig.b is not None:
        rig.attach("a")  # something in range that would answer with the right driver
    result = subprocess.run([sys.executable, "-m", "irsock.cli", "discover", "--port", target.port, "--dongle", wrong,
                             "--timeout", "2"], capture_output=True, text=True, timeout=60)
    message = result.stderr.strip()
    assert "--dongle" in message or "did not come up" in message, message
    assert "Traceback" not in message
    bench.record("dongle_mismatch", {"port": target.port, "dongle": wrong}, {"message": message.splitlines()[-1]})


@pytest.mark.scenario("unplug")
def test_unplug_mid_transfer(rig, bench):
    """A's adapter is pulled mid-transfer: the sender gets a clear error, B keeps no partial file."""
    rig.need_emulator("unplug a dongle")
    a, b = rig.attach("a", max_link_disconnect_s=3), rig.attach("b", max_link_disconnect_s=3)
    pulled = threading.Event()

    def unplug(sent: int) -> bool:
        if sent >= 10_000:
            rig.unplug_a()
            pulled.set()
            return True
        return False

    outcome = push_file(a, b, 60_000, during=unplug, timeout=20)
    assert pulled.is_set()
    assert outcome.error is not None
    assert a.failure and rig.a.port in a.failure, a.failure
    assert outcome.stored == [] and outcome.inbox_files == []
    with pytest.raises(OSError) as down:  # what every later socket call on A gets: ENETDOWN and the reason
        a.socket(irsock.AF_IRDA, irsock.SOCK_STREAM).getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES)
    assert down.value.errno == errno.ENETDOWN and "unplugged" in str(down.value)
    bench.record("unplug", {"after_bytes": 10_000}, {"error": outcome.error, "port_failure": a.failure})


@pytest.mark.scenario("rfc2217")
def test_remote_dongle_through_ser2net(rig, bench, tmp_path):
    """A's port served by ser2net over RFC 2217 on loopback: discovery and a verified push work the same."""
    from tests.conftest import require_tool

    ser2net = require_tool("ser2net")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "ser2net.yaml"
    config.write_text(f"connection: &rig\n  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n"
                      f"  connector: serialdev,{rig.a.port},9600n81,local\n  options:\n    kickolduser: true\n")
    server = subprocess.Popen([ser2net, "-n", "-d", "-c", str(config), "-P", str(tmp_path / "ser2net.pid")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"rfc2217://127.0.0.1:{port}?ign_set_control"
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(f"ser2net did not start: {server.communicate()[0]!r}")
                time.sleep(0.1)
        rig.a.port = url
        a, b = rig.attach("a"), rig.attach("b")
        seconds = figures.discover_peer(a, b.address, timeout=15)
        assert seconds is not None
        outcome = push_file(a, b, 20_000, timeout=60)
        assert outcome.error is None, outcome.error
        assert outcome.intact and outcome.stored[0].verified
        bench.record("rfc2217", {"url": url}, {"discovery_s": round(seconds, 3), **outcome.metrics()})
    finally:
        rig.close_interfaces()
        server.terminate()
        server.wait(10)
