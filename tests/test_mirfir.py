"""MIR and FIR framing: golden bytes from IrPHY's definitions, a bit-by-bit oracle, streaming under any cut,
and counting what is dropped (bad CRC, aborted, oversize, illegal symbols)."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irlap import fir, framing, mir
from irlap.sir import fcs16

# --- an independent, slow MIR encoder: one bit at a time, as an HDLC shift register does ----------------------


def naive_mir(frame: bytes, start_flags: int = 2) -> bytes:
    bits: list[int] = []
    flag = [0, 1, 1, 1, 1, 1, 1, 0]
    for _ in range(start_flags):
        bits += flag
    ones = 0
    for byte in frame + fcs16(frame).to_bytes(2, "little"):
        for i in range(8):  # least significant bit first
            bit = byte >> i & 1
            bits.append(bit)
            ones = ones + 1 if bit else 0
            if ones == 5:
                bits.append(0)  # the stuffed zero
                ones = 0
    bits += flag
    bits += [1] * (-len(bits) % 8)  # idle marks up to a whole byte
    out = bytearray()
    for i in range(0, len(bits), 8):
        out.append(sum(b << k for k, b in enumerate(bits[i:i + 8])))
    return bytes(out)


def test_mir_flag_is_7e_and_frames_start_with_two():
    wire = mir.wrap(b"\x55\x11")
    assert wire[:2] == b"\x7e\x7e"
    assert mir.wrap(b"\x55\x11", start_flags=5)[:5] == b"\x7e" * 5
    with pytest.raises(ValueError):
        mir.wrap(b"\x55\x11", start_flags=1)


def test_mir_golden_with_stuffing():
    # frame FF 3F and its FCS-16/X-25 0x39F3 (LE: F3 39), each byte least significant bit first:
    # 11111111 11111100 11001111 10011100; a 0 goes in after every five 1s (the count runs across bytes)
    assert fcs16(b"\xff\x3f") == 0x39F3
    expected_bits = ("01111110" * 2 + "11111" "0" "111" + "11" "0" "1111" "00" + "11001111" + "1" "0" "0011100"
                     + "01111110")
    expected_bits += "1" * (-len(expected_bits) % 8)
    expected = bytes(int(expected_bits[i:i + 8][::-1], 2) for i in range(0, len(expected_bits), 8))
    assert mir.wrap(b"\xff\x3f") == expected == naive_mir(b"\xff\x3f")


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=2, max_size=300), st.integers(min_value=2, max_value=6))
def test_mir_matches_the_bit_by_bit_oracle(frame, flags):
    assert mir.wrap(frame, flags) == naive_mir(frame, flags)


def test_mir_body_never_holds_six_ones():
    wire = mir.wrap(b"\xff" * 64 + b"\x7e" * 8)
    body = mir.to_bits(wire)[16:]
    body = body[: body.rindex(mir.FLAG_BITS)]
    assert "111111" not in body


def test_fir_4ppm_golden():
    # IrPHY 4PPM: pair 00 -> 1000, 01 -> 0100, 10 -> 0010, 11 -> 0001; a byte goes least significant pair first.
    # 0x1B = 00 01 10 11 -> pairs sent 11, 10, 01, 00 -> 0001 0010 0100 1000
    assert fir.encode(b"\x1b") == bytes([0b00010010, 0b01001000])
    assert fir.encode(b"\x00\xff") == bytes([0x88, 0x88, 0x11, 0x11])
    assert fir.decode(bytes([0x12, 0x48])) == b"\x1b"
    assert fir.decode(bytes([0x12])) is None  # half a byte
    assert fir.decode(bytes([0x13, 0x48])) is None  # 0011: two pulses in a symbol


def test_fir_frame_golden():
    assert fir.fcs32(b"123456789") == 0xCBF43926
    frame = b"\x55\x11"
    crc = fir.fcs32(frame).to_bytes(4, "little")
    assert fir.fcs32(frame + crc) == fir.GOOD_RESIDUE
    wire = fir.wrap(frame)
    preamble = bytes([0b10000000, 0b10101000]) * 16  # 1000 0000 1010 1000, sixteen times
    start = bytes([0b00001100, 0b00001100, 0b01100000, 0b01100000])
    stop = bytes([0b00001100, 0b00001100, 0b00000110, 0b00000110])
    assert wire == preamble + start + fir.encode(frame + crc) + stop
    assert len(wire) == fir.wire_len(2) == 32 + 8 + 12
    assert fir.wrap(frame, idle_us=3) == b"\x00\x00\x00" + wire


frames_strategy = st.lists(st.binary(min_size=2, max_size=200), min_size=1, max_size=8)


@pytest.mark.parametrize("module", [mir, fir])
@settings(max_examples=120, deadline=None)
@given(frames=frames_strategy, cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=30))
def test_round_trip_under_any_cut(module, frames, cuts):
    stream = b"".join(module.wrap(f) for f in frames)
    unwrapper = module.Unwrapper()
    got = []
    last = 0
    for cut in sorted(c % (len(stream) + 1) for c in cuts) + [len(stream)]:
        got += unwrapper.feed(stream[last:cut])
        last = cut
    assert got == frames
    assert unwrapper.stats.good == len(frames) and unwrapper.stats.dropped == 0
    assert unwrapper.stats.garbage_bytes == 0 and not unwrapper.in_frame


@pytest.mark.parametrize("module", [mir, fir])
@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=600), frame=st.binary(min_size=2, max_size=40))
def test_garbage_never_raises_and_a_later_frame_survives(module, garbage, frame):
    unwrapper = module.Unwrapper()
    unwrapper.feed(garbage)  # whatever this is, it must not raise
    # an idle gap ends whatever the garbage started (seven 1s at MIR, silence at FIR)
    gap = b"\xff" if module is mir else b"\x00"
    got = unwrapper.feed(gap + module.wrap(frame))
    assert got[-1:] == [frame]


@pytest.mark.parametrize("module", [mir, fir])
def test_bit_errors_are_counted_never_delivered(module):
    rng = random.Random(5)
    frame = bytes(range(200))
    unwrapper = module.Unwrapper()
    delivered = 0
    for _ in range(300):
        wire = bytearray(module.wrap(frame))
        position = rng.randrange(len(wire) * 8)
        wire[position // 8] ^= 1 << position % 8
        for got in unwrapper.feed(bytes(wire) + (b"\xff" if module is mir else b"\x00")):
            assert got == frame  # a flip in padding or idle fill may leave the frame intact: never a wrong one
            delivered += 1
    stats = unwrapper.stats
    assert stats.good == delivered and stats.dropped > 250


def test_mir_abort_oversize_runt():
    u = mir.Unwrapper(max_frame=64)
    good = mir.wrap(b"\x55\x11ok")
    aborted = mir.wrap(bytes(40))[:20] + b"\xff"  # frame bits, then seven and more 1s
    assert u.feed(aborted + good) == [b"\x55\x11ok"]
    assert u.stats.aborted == 1
    assert u.feed(mir.wrap(bytes(200)) + good) == [b"\x55\x11ok"]
    assert u.stats.oversize == 1
    runt = mir.from_bits(mir.FLAG_BITS * 2 + "0" * 16 + mir.FLAG_BITS)  # two bytes between flags
    assert u.feed(runt + good) == [b"\x55\x11ok"]
    assert u.stats.runts == 1 and u.stats.good == 3


def test_fir_abort_oversize_illegal():
    u = fir.Unwrapper(max_frame=64)
    good = fir.wrap(b"\x55\x11ok")
    cut = fir.wrap(bytes(40))[:-30] + b"\x00\x00"  # silence in the middle of a frame
    assert u.feed(cut + good) == [b"\x55\x11ok"]
    assert u.stats.aborted == 1
    assert u.feed(fir.wrap(bytes(200)) + good) == [b"\x55\x11ok"]
    assert u.stats.oversize == 1
    bad = bytearray(fir.wrap(b"\x55\x11ok"))
    bad[45] = 0x30  # 0011 0000: two pulses, then none: no data symbol
    assert u.feed(bytes(bad) + good) == [b"\x55\x11ok"]
    assert u.stats.illegal == 1 and u.stats.dropped == 3 and u.stats.good == 3


def test_framing_by_speed():
    assert [framing.kind(b) for b in (9600, 115200, 576000, 1152000, 4000000)] == ["sir", "sir", "mir", "mir", "fir"]
    with pytest.raises(ValueError):
        framing.kind(16000000)
    frame = b"\x55\x11"
    assert framing.wrap(frame, 4000000, 10) == fir.wrap(frame, 10)
    assert framing.wrap(frame, 576000, 1) == mir.wrap(frame, 3)
    assert framing.unwrapper(1152000).feed(framing.wrap(frame, 1152000)) == [frame]
    # line time: 10 bits a byte on SIR, 8 at MIR, 1 us per FIR chip byte
    assert framing.line_seconds(1152, 115200) == pytest.approx(0.1)
    assert framing.line_seconds(72, 576000) == pytest.approx(0.001)
    assert framing.line_seconds(500, 4000000) == pytest.approx(500e-6)
    assert framing.data_rate(115200) == 11520 and framing.data_rate(4000000) == 500000
    # a min turnaround as fill: SIR whole XBOFs (down), MIR flags and FIR microseconds (up)
    assert framing.turnaround_fill(115200, 1000) == 11
    assert framing.turnaround_fill(1152000, 10) == 2  # 11.52 bit times: two flags
    assert framing.turnaround_fill(4000000, 500) == 500
    assert framing.fill_seconds(4000000, 500) == pytest.approx(500e-6)


# --- QoS, the station, the simulator and the emulated medium at MIR/FIR speeds -------------------------------------
def test_qos_negotiates_the_fastest_speed_both_offer():
    from irlap.qos import QosParams, line_capacity, negotiate

    fir_station = QosParams.offer(max_baud=4000000)
    mir_station = QosParams.offer(max_baud=1152000, max_turnaround_ms=100)
    link = negotiate(fir_station, mir_station)
    assert link.baud == negotiate(mir_station, fir_station).baud == 1152000
    # the MIR station holds the line 100 ms: what it sends us fits 11520 bytes a turn (2048 B x 5)
    assert line_capacity(1152000, 100) == 11520
    assert (link.rx_data_size, link.rx_window) == (2048, 5)
    assert (link.tx_data_size, link.tx_window) == (2048, 7)  # our 500 ms turn at 1.152M: 57600 bytes
    both_fir = negotiate(fir_station, QosParams.offer(max_baud=4000000, max_turnaround_ms=50))
    assert both_fir.baud == 4000000 and (both_fir.rx_data_size, both_fir.rx_window) == (2048, 7)  # 20000 B in 50 ms
    assert QosParams.decode(fir_station.encode()).values("baud")[-3:] == [576000, 1152000, 4000000]
    assert fir_station.encode()[:4] == bytes([0x01, 0x02, 0xFF, 0x01])  # baud bits 0-8: two bytes


def test_station_fills_the_turnaround_and_no_extra_bofs_above_sir():
    from irlap.qos import QosParams
    from irlap.sim import Simulator
    from irlap.station import Station, Transmit

    sim = Simulator(1)
    offer = QosParams.offer(max_baud=4000000, min_turnaround_us=500, additional_bofs=24)
    a = sim.add(Station(0xA, qos=offer, rng=sim.station_rng()))
    b = sim.add(Station(0xB, qos=offer, rng=sim.station_rng()))
    a.call("connect", 0xB)
    sim.run(until=2, stop=lambda: a.station.connected and b.station.connected)
    assert a.station.baud == 4000000
    for chunk in range(4):
        a.call("send", bytes([chunk]) * 2000)
    sent: list[Transmit] = []
    a.station.take_output()
    a.station.send(b"x" * 100, sim.now)
    a.station.handle_timer(a.station.next_deadline() or sim.now)
    sent = [t for t in a.station.take_output() if isinstance(t, Transmit)]
    assert sent and sent[0].baud == 4000000
    assert sent[0].xbofs == 500  # the peer's 500 us as idle line, not 24 BOFs
    assert all(t.xbofs == 0 for t in sent[1:])
    assert sent[0].wire.startswith(b"\x00" * 500 + fir.PREAMBLE)
    assert sent[0].line_seconds == pytest.approx(len(sent[0].wire) * 1e-6)


@pytest.mark.parametrize("baud", [576000, 1152000, 4000000])
def test_simulated_link_at_mir_and_fir(baud):
    from irlap.sim import run_link

    report = run_link(400_000, baud=baud)
    assert report.intact and report.baud == baud and (report.data_size, report.window) == (2048, 7)
    assert report.line_rate_Bps == baud / 8
    assert report.efficiency >= 0.95  # no turnaround latency on the virtual clock: the framing's overhead only


def test_simulated_bit_errors_hit_the_framed_length():
    """The same BER costs FIR more frames than SIR: a FIR frame is 16 chips a byte on the line."""
    from irlap.sim import Faults, run_link

    sir_run = run_link(100_000, baud=115200, faults=Faults(ber=2e-6), seed=4)
    fir_run = run_link(100_000, baud=4000000, faults=Faults(ber=2e-6), seed=4)
    assert sir_run.intact and fir_run.intact
    assert fir_run.retransmissions > sir_run.retransmissions


def test_light_endpoints_on_the_emulated_medium():
    import time
    import uuid

    from irlap.emulator.medium import drop_medium, get_medium

    name = f"light-{uuid.uuid4().hex[:8]}"
    medium, _ = get_medium(name)
    try:
        a = medium.attach_light("a", speed=4000000)
        b = medium.attach_light("b", speed=4000000)
        c = medium.attach_light("c", speed=1152000)  # another modulation: hears garbage
        frame = bytes(range(256)) * 8
        wire = framing.wrap(frame, 4000000)
        started = medium.now()
        end = a.send(wire)
        assert end - started == pytest.approx(len(wire) * 1e-6, abs=2e-3)
        deadline = time.monotonic() + 5
        heard: list[bytes] = []
        while not heard and time.monotonic() < deadline:
            heard += b.receive(timeout=0.5)
        assert fir.Unwrapper().feed(b"".join(heard)) == [frame]
        garbled = []
        while not garbled and time.monotonic() < deadline:
            garbled += c.receive(timeout=0.5)
        assert framing.unwrapper(1152000).feed(b"".join(garbled)) == []
        assert a.receive(timeout=0) == []  # a sender does not hear itself
        # media busy while someone else's light is on
        a.send(framing.wrap(frame * 4, 4000000))
        assert b.busy() and not a.busy()
    finally:
        drop_medium(name)


def test_the_framing_table_names_the_codecs_speeds():
    """irlap.framing keeps its own copy of the MIR/FIR speeds so that it need not import the codecs at start."""
    from irlap import fir, framing, mir

    assert framing.MIR_SPEEDS == mir.SPEEDS and framing.FIR_SPEEDS == (fir.SPEED,)
