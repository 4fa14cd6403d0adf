"""SIR framing: golden bytes, streaming under any chunking, and counting what is dropped."""

from hypothesis import given, settings
from hypothesis import strategies as st

from irlap.sir import (
    GOOD_RESIDUE,
    Unwrapper,
    escape,
    fcs16,
    unescape,
    unwrap_all,
    wrap,
)


def test_fcs_check_value():
    assert fcs16(b"123456789") == 0x906E


def test_fcs_residue_over_frame_and_le_fcs():
    frame = b"\x55\x11"
    assert fcs16(frame + fcs16(frame).to_bytes(2, "little")) == GOOD_RESIDUE


def test_wrap_golden_rr():
    fcs = fcs16(b"\x55\x11").to_bytes(2, "little")
    assert wrap(b"\x55\x11", xbofs=3) == b"\xff\xff\xff\xc0\x55\x11" + escape(fcs) + b"\xc1"


def test_wrap_escapes_reserved_bytes():
    wire = wrap(bytes([0xC0, 0xC1, 0x7D, 0x00]), xbofs=0)
    body = wire[1:-1]
    assert body.startswith(b"\x7d\xe0\x7d\xe1\x7d\x5d\x00")
    assert b"\xc0" not in body and b"\xc1" not in body


def test_escape_round_trip_all_bytes():
    data = bytes(range(256)) * 2
    assert unescape(escape(data)) == data


def test_unescape_escaped_escape_pair():
    # 0x7D 0x7D = escape followed by the escaped byte 0x5D
    assert unescape(b"\x01\x7d\x7d\x02") == b"\x01\x5d\x02"


def test_unwrapper_counts_bad_fcs_and_keeps_going():
    good = wrap(b"\x55\x11")
    bad = bytearray(wrap(b"\x55\x31"))
    bad[-2] ^= 0x01
    frames, stats = unwrap_all(bytes(bad) + good)
    assert frames == [b"\x55\x11"]
    assert stats.bad_fcs == 1 and stats.good == 1


def test_unwrapper_abort_by_escape_eof():
    frames, stats = unwrap_all(b"\xc0\x55\x11\x7d\xc1" + wrap(b"\x54\x11"))
    assert frames == [b"\x54\x11"]
    assert stats.aborted == 1


def test_unwrapper_new_bof_aborts_partial_frame():
    frames, stats = unwrap_all(b"\xc0\x55\x11\x22" + wrap(b"\x54\x11", xbofs=0))
    assert frames == [b"\x54\x11"]
    assert stats.aborted == 1


def test_repeated_bofs_are_not_errors():
    frames, stats = unwrap_all(b"\xc0\xc0\xc0" + wrap(b"\x54\x11", xbofs=0)[1:])
    assert frames == [b"\x54\x11"]
    assert stats.dropped == 0


def test_garbage_between_frames_is_counted_xbofs_are_not():
    frames, stats = unwrap_all(b"abc" + wrap(b"\x55\x11", 12) + b"\xc1zz" + wrap(b"\x54\x11"))
    assert frames == [b"\x55\x11", b"\x54\x11"]
    assert stats.garbage_bytes == 6


def test_oversize_frame_dropped_with_bounded_buffer():
    unwrapper = Unwrapper(max_frame=64)
    assert unwrapper.feed(wrap(bytes(65) + b"\x01")) == []
    assert unwrapper.stats.oversize == 1
    # a stream that never ends keeps the buffer bounded
    unwrapper.feed(b"\xc0" + b"\x00" * 10_000)
    assert len(unwrapper._buffer) <= unwrapper._max_raw
    assert unwrapper.stats.oversize == 2
    assert unwrapper.feed(wrap(b"\x55\x11")) == [b"\x55\x11"]


def test_frame_of_exactly_max_size_passes():
    frame = b"\x55\x10" + bytes(62)
    assert Unwrapper(max_frame=64).feed(wrap(frame)) == [frame]


def test_runts():
    frames, stats = unwrap_all(b"\xc0\x55\xc1\xc0\xc1")
    assert frames == [] and stats.runts == 1


def test_trailing_partial_frame_counts_as_aborted():
    frames, stats = unwrap_all(wrap(b"\x55\x11") + b"\xc0\x55")
    assert frames == [b"\x55\x11"] and stats.aborted == 1


frames_strategy = st.lists(st.binary(min_size=2, max_size=300), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(frames=frames_strategy, cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=30),
       xbofs=st.integers(min_value=0, max_value=15))
def test_round_trip_under_random_chunking(frames, cuts, xbofs):
    stream = b"".join(wrap(f, xbofs) for f in frames)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    unwrapper = Unwrapper()
    got = []
    start = 0
    for point in [*points, len(stream)]:
        got += unwrapper.feed(stream[start:point])
        start = point
    assert got == frames
    assert unwrapper.stats.good == len(frames) and unwrapper.stats.dropped == 0
    assert unwrapper.stats.garbage_bytes == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.binary(min_size=2, max_size=40))
def test_garbage_never_raises_and_never_swallows_the_next_frame(garbage, frame):
    unwrapper = Unwrapper()
    got = unwrapper.feed(garbage)
    # anything returned from garbage passed the CRC: it is a frame by definition
    assert all(len(f) >= 2 for f in got)
    # a BOF always resynchronises: the next frame gets through
    assert unwrapper.feed(wrap(frame))[-1:] == [frame]
