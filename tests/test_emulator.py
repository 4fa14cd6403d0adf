"""The emulated medium at byte and bit level: UART resampling, pacing, collisions, silence, faults."""

import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irlap.emulator.medium import Medium, MediumOptions
from irlap.emulator.uart import line_bits, resample


def test_line_bits_frame_each_byte():
    assert line_bits(b"\x01").bin == "0" + "10000000" + "1"
    assert line_bits(b"\xc0").bin == "0" + "00000011" + "1"


@given(st.binary(max_size=64), st.sampled_from([2400, 9600, 19200, 57600, 115200]))
def test_same_speed_is_identity(data, baud):
    assert resample(data, baud, baud) == (data, 0)


def test_slower_receiver_sees_garbage_and_framing_errors():
    data = bytes(range(64))
    got, errors = resample(data, 115200, 9600)
    assert got != data and len(got) < len(data) and errors > 0


def test_faster_receiver_sees_more_bytes_than_sent():
    got, errors = resample(b"\x55\xaa", 9600, 115200)
    assert len(got) > 2 and errors > 0


def test_small_clock_error_still_decodes():
    data = bytes(range(256))
    assert resample(data, 9700, 9600)[0] == data  # 1 % off: within a UART's tolerance


def medium(**options) -> Medium:
    return Medium(f"t-{uuid.uuid4().hex[:6]}", MediumOptions(**options))


def ready(endpoint, baud=9600):
    endpoint.set_lines(True, True)
    endpoint.set_baud(baud)
    return endpoint


def test_bytes_paced_at_the_line_rate_and_heard_by_others_only():
    m = medium()
    a, b, c = (ready(m.attach("plain")) for _ in range(3))
    start = time.monotonic()
    a.write(b"x" * 96)  # 100 ms at 9600
    a.drain()
    elapsed = time.monotonic() - start
    # never faster than the line; the upper bound leaves a loaded machine room but not half the bit rate
    assert 0.097 <= elapsed < 0.19, elapsed
    assert b.read(200, 1.0) == b"x" * 96 and c.read(200, 1.0) == b"x" * 96
    assert a.read(10, 0.05) == b""
    m.stop()


def test_speed_mismatch_between_dongles_gives_garbage():
    m = medium()
    a, b = ready(m.attach("plain"), 9600), ready(m.attach("plain"), 115200)
    a.write(bytes(range(48)))
    data = b.read(1000, 1.0)
    assert data and data != bytes(range(48))
    m.stop()


def test_collision_garbles_both():
    m = medium(seed=3)
    a, b, c = (ready(m.attach("plain")) for _ in range(3))
    a.write(b"A" * 50)
    b.write(b"B" * 50)
    got = c.read(1000, 1.0)
    assert got and got != b"A" * 50 and got != b"B" * 50 and m.collisions >= 1
    m.stop()


def test_dongle_in_reset_is_silent():
    m = medium()
    a = ready(m.attach("plain"))
    b = m.attach("mcp2120")
    b.set_lines(True, True)  # reset and inhibit
    a.write(b"hello")
    assert b.read(10, 0.3) == b""
    m.stop()


def test_outage_and_bit_errors():
    m = medium(outages=[(0.0, 0.3)], ber=0.0)
    a, b = ready(m.attach("plain")), ready(m.attach("plain"))
    a.write(b"lost")
    assert b.read(10, 0.2) == b""
    time.sleep(0.3)
    a.write(b"seen")
    assert b.read(10, 0.5) == b"seen"
    m.stop()
    noisy = medium(ber=0.05, seed=1)
    a, b = ready(noisy.attach("plain")), ready(noisy.attach("plain"))
    a.write(bytes(100))
    assert b.read(200, 1.0) != bytes(100)
    noisy.stop()


@pytest.mark.parametrize("keep_extproc", [True, False])
def test_pty_bridge_follows_the_speed_a_program_sets(keep_extproc):
    """The light runs at the speed the program chose, also when the program clears EXTPROC (MicroPython does)."""
    import os
    import termios

    from irlap.emulator.medium import get_medium
    from irlap.emulator.pty_bridge import EXTPROC, PtyBridge

    bridge = PtyBridge(f"pty-{uuid.uuid4().hex[:8]}")
    try:
        listener = ready(get_medium(bridge.medium.name)[0].attach("plain"), 57600)
        fd = os.open(bridge.path, os.O_RDWR | os.O_NOCTTY)
        try:
            attrs = termios.tcgetattr(fd)
            attrs[0] = attrs[1] = 0
            attrs[3] = attrs[3] & EXTPROC if keep_extproc else 0  # raw; EXTPROC kept or cleared
            attrs[4] = attrs[5] = termios.B9600
            termios.tcsetattr(fd, termios.TCSANOW, attrs)  # the change that clears EXTPROC is still announced
            time.sleep(0.1)
            attrs[4] = attrs[5] = termios.B57600
            termios.tcsetattr(fd, termios.TCSANOW, attrs)  # this one only with EXTPROC
            time.sleep(0.1)
            os.write(fd, b"at 57600 bit/s")
            received = b""
            deadline = time.monotonic() + 5
            while len(received) < 14 and time.monotonic() < deadline:
                received += listener.read(100, 0.2)
            assert received == b"at 57600 bit/s"
        finally:
            os.close(fd)
    finally:
        bridge.close()
