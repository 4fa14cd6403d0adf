"""pcap LINKTYPE_LINUX_IRDA: exact bytes, round trips, and every kind of broken file."""

import io
import math
import struct
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irlap.errors import TraceError
from irlap.pcap import (
    INCOMING,
    LINKTYPE_LINUX_IRDA,
    LOG,
    MISSED,
    OUTGOING,
    PcapRecord,
    PcapWriter,
    RecordKind,
    read_pcap,
    read_pcap_bytes,
)

# --- the layout of the reference page (oracles.md 1.3), written independently of irlap.pcap ------------

GLOBAL_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 144)


def reference_record(payload: bytes, packet_type: int, sec: int, usec: int) -> bytes:
    pseudo = struct.pack(">HHH8sH", packet_type, 783, 0, bytes(8), 0x0017)
    data = pseudo + payload
    return struct.pack("<IIII", sec, usec, len(data), len(data)) + data


def write(records) -> bytes:
    buffer = io.BytesIO()
    with PcapWriter(buffer) as writer:
        for record in records:
            writer.write_record(record)
    return buffer.getvalue()


def test_constants():
    assert (LINKTYPE_LINUX_IRDA, INCOMING, OUTGOING, LOG, MISSED) == (144, 0x0000, 0x0004, 0x0100, 0x0101)
    assert [int(kind) for kind in RecordKind] == [0x0000, 0x0004, 0x0100, 0x0101]


def test_exact_bytes_against_reference_layout():
    buffer = io.BytesIO()
    with PcapWriter(buffer) as writer:
        writer.write_frame(b"\x55\x11", outgoing=True, time=1.5)
        writer.write_frame(b"\x54\x11", outgoing=False, time=2.25)
        writer.write_log("speed 9600", time=3.0)
        writer.write_missed("overflow", time=4.000001)
    expected = GLOBAL_HEADER
    expected += reference_record(b"\x55\x11", 0x0004, 1, 500000)
    expected += reference_record(b"\x54\x11", 0x0000, 2, 250000)
    expected += reference_record(b"speed 9600", 0x0100, 3, 0)
    expected += reference_record(b"overflow", 0x0101, 4, 1)
    assert buffer.getvalue() == expected


def test_one_record_byte_by_byte():
    """The same thing spelled out, so a wrong struct format in both places cannot hide."""
    data = write([PcapRecord(0.0, RecordKind.FRAME_OUT, b"\x55\x11")])
    assert data.hex() == (
        "d4c3b2a1" "0200" "0400" "00000000" "00000000" "ffff0000" "90000000"  # global header
        "00000000" "00000000" "12000000" "12000000"  # ts_sec, ts_usec, incl_len 18, orig_len 18
        "0004" "030f" "0000" "0000000000000000" "0017"  # type out, ARPHRD 783, alen, addr, protocol
        "5511"
    )


def test_empty_capture_is_just_the_header():
    assert write([]) == GLOBAL_HEADER
    assert list(read_pcap_bytes(GLOBAL_HEADER)) == []


def test_round_trip_frames_logs_missed(tmp_path):
    path = tmp_path / "x.pcap"
    with PcapWriter(path) as writer:
        writer.write_frame(b"\xff\x3f\x01", outgoing=True, time=0.0)
        writer.write_log("speed 115200 \u00e9", time=0.5)
        writer.write_missed(3, time=0.75)
        writer.write_frame(b"\xfe\xbf", outgoing=False, time=1.000001)
        assert writer.records == 4
    records = list(read_pcap(path))
    assert [r.kind for r in records] == [RecordKind.FRAME_OUT, RecordKind.LOG, RecordKind.MISSED,
                                         RecordKind.FRAME_IN]
    assert records[0].outgoing and not records[0].incoming and records[0].is_frame
    assert records[3].incoming and not records[3].outgoing and records[3].is_frame
    assert not records[1].is_frame and not records[2].is_frame
    assert records[0].data == b"\xff\x3f\x01" and records[3].data == b"\xfe\xbf"
    assert records[1].text == "speed 115200 \u00e9"
    assert records[2].text == "3 frames missed"
    assert records[3].time == pytest.approx(1.000001)


def test_text_replaces_bad_utf8():
    assert PcapRecord(0, RecordKind.LOG, b"ok \xff").text == "ok \ufffd"


def test_write_missed_default_and_negative():
    [record] = read_pcap_bytes(_write_with(lambda w: w.write_missed(time=0)))
    assert record.kind is RecordKind.MISSED and record.text == "1 frame missed"
    with pytest.raises(ValueError):
        _write_with(lambda w: w.write_missed(-1, time=0))


def _write_with(action) -> bytes:
    buffer = io.BytesIO()
    with PcapWriter(buffer) as writer:
        action(writer)
    return buffer.getvalue()


def test_stream_left_open_path_closed(tmp_path):
    buffer = io.BytesIO()
    with PcapWriter(buffer) as writer:
        writer.write_frame(b"\x55\x11", outgoing=True, time=0)
    assert not buffer.closed
    with PcapWriter(tmp_path / "p.pcap") as writer:
        stream = writer._stream
    assert stream.closed


def test_read_stream_from_its_current_position():
    data = write([PcapRecord(0, RecordKind.FRAME_IN, b"\x55\x11")])
    stream = io.BytesIO(b"junk" + data)
    stream.seek(4)
    assert [r.data for r in read_pcap(stream)] == [b"\x55\x11"]


def test_text_mode_stream_is_a_trace_error(tmp_path):
    path = tmp_path / "t.pcap"
    path.write_text("hello")
    with open(path) as stream, pytest.raises(TraceError, match="binary mode"):
        read_pcap(stream)


@pytest.mark.parametrize(
    "time, sec, usec",
    [(0.9999999, 1, 0), (0.9999996, 1, 0), (0.9999994, 0, 999999), (1.000001, 1, 1), (12.5, 12, 500000),
     (2**32 - 1, 2**32 - 1, 0)],
)
def test_microsecond_rounding_carries(time, sec, usec):
    data = write([PcapRecord(time, RecordKind.FRAME_IN, b"\x55\x11")])
    assert struct.unpack_from("<II", data, 24) == (sec, usec)


@pytest.mark.parametrize("time", [-1.0, -1e-9, math.nan, math.inf, float(2**32), 2**32 - 1e-7])
def test_unrepresentable_time_rejected(time):
    with pytest.raises(ValueError):
        write([PcapRecord(time, RecordKind.FRAME_IN, b"\x55\x11")])


def test_oversized_record_is_cut_at_snaplen():
    frame = bytes(70000)
    data = write([PcapRecord(0, RecordKind.FRAME_IN, frame)])
    caplen, origlen = struct.unpack_from("<II", data, 24 + 8)
    assert (caplen, origlen) == (65535, 70016)
    [record] = read_pcap_bytes(data)
    assert record.data == frame[: 65535 - 16]


PSEUDO_OUT = struct.pack(">HHH8sH", 4, 783, 0, bytes(8), 0x17)


@pytest.mark.parametrize(
    "magic, order, fraction, expected",
    [
        (0xA1B2C3D4, ">", 500_000, 7.5),
        (0xA1B23C4D, "<", 250_000_000, 7.25),
        (0xA1B23C4D, ">", 1, 7.000000001),
    ],
)
def test_big_endian_and_nanosecond_files(magic, order, fraction, expected):
    data = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 144)
    data += struct.pack(order + "IIII", 7, fraction, 18, 18) + PSEUDO_OUT + b"\x55\x11"
    [record] = read_pcap_bytes(data)
    assert record.time == pytest.approx(expected, abs=1e-10)
    assert record.data == b"\x55\x11" and record.outgoing


def test_sll_with_irda_protocol_is_read():
    data = bytearray(write([PcapRecord(0, RecordKind.FRAME_IN, b"\x55\x11"),
                            PcapRecord(1, RecordKind.FRAME_OUT, b"\x54\x11")]))
    struct.pack_into("<I", data, 20, 113)
    records = list(read_pcap_bytes(bytes(data)))
    assert [(r.kind, r.data) for r in records] == [(RecordKind.FRAME_IN, b"\x55\x11"),
                                                   (RecordKind.FRAME_OUT, b"\x54\x11")]


def test_sll_broadcast_counts_as_incoming():
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 113)
    data += struct.pack("<IIII", 0, 0, 18, 18) + struct.pack(">HHH8sH", 1, 783, 0, bytes(8), 0x17)
    data += b"\xff\x3f"
    [record] = read_pcap_bytes(data)
    assert record.incoming


GOOD = write([PcapRecord(0, RecordKind.FRAME_IN, b"\x55\x11"),
              PcapRecord(1, RecordKind.FRAME_OUT, b"\x54\x11")])
RECORD_HEADER = struct.Struct("<IIII")
SLL_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 113)


def pseudo(packet_type: int, protocol: int = 0x17) -> bytes:
    return struct.pack(">HHH8sH", packet_type, 783, 0, bytes(8), protocol)


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "not a pcap file"),
        (GOOD[:23], r"not a pcap file \(only 23 bytes"),
        (b"\x00" * 24, "magic number 00000000"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1), "link type 1 is not IrDA"),
        (GOOD[:-1], r"record 2 is truncated \(expected 18 bytes, got 17 at offset 74\)"),
        (GOOD[:24 + 8], r"record 1 is truncated \(its header needs 16 bytes, 8 left at offset 24\)"),
        (GOOD[:24] + RECORD_HEADER.pack(0, 0, 4, 4) + b"abcd",
         r"record 1 \(offset 24\) has 4 bytes, shorter"),
        (GOOD[:24] + RECORD_HEADER.pack(0, 0, 10**7, 10**7), "record 1 .* claims 10000000 bytes.*corrupt"),
        (GOOD + RECORD_HEADER.pack(0, 0, 65536, 65536) + bytes(65536),
         r"record 3 \(offset 92\) claims 65536"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 0, 144) + RECORD_HEADER.pack(0, 0, 262145, 0),
         "more than the limit of 262144"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 20, 144) + RECORD_HEADER.pack(0, 0, 21, 21)
         + pseudo(0) + b"\x55\x11\x00\x00\x00", "claims 21 bytes, more than the limit of 20"),
        (GOOD[:24] + RECORD_HEADER.pack(0, 0, 16, 16) + pseudo(7), "record 1 .* unknown packet type 0x0007"),
        (GOOD + RECORD_HEADER.pack(0, 0, 16, 16) + pseudo(0x0200), "record 3 .* unknown packet type 0x0200"),
        (SLL_HEADER + RECORD_HEADER.pack(0, 0, 18, 18) + pseudo(0, 0x0800) + b"\x55\x11",
         r"not IrDA \(protocol 0x0800"),
        (SLL_HEADER + RECORD_HEADER.pack(0, 0, 16, 16) + pseudo(0x0100), "unknown packet type 0x0100"),
        (b"\x0a\x0d\x0d\x0a" + bytes(28), "pcapng file.*editcap -F pcap x.pcap"),
        (b"\x0a\x0d\x0d\x0a", "pcapng"),
    ],
)
def test_broken_files_raise_trace_error(data, words):
    with pytest.raises(TraceError, match=words) as info:
        list(read_pcap_bytes(data, name="x.pcap"))
    assert str(info.value).startswith("x.pcap: ")


def test_good_records_before_damage_are_delivered():
    records = read_pcap_bytes(GOOD[:-1])
    assert next(records).data == b"\x55\x11"
    with pytest.raises(TraceError, match="record 2"):
        next(records)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(TraceError, match="nope.pcap: no such file"):
        list(read_pcap(tmp_path / "nope.pcap"))
    with pytest.raises(TraceError, match="is a directory"):
        list(read_pcap(tmp_path))


def test_path_and_stream_name_appear_in_errors(tmp_path):
    path = tmp_path / "cut.pcap"
    path.write_bytes(GOOD[:-1])
    with pytest.raises(TraceError, match=f"^{path}: record 2 is truncated"):
        list(read_pcap(str(path)))
    with open(path, "rb") as stream, pytest.raises(TraceError, match=f"^{path}: record 2"):
        list(read_pcap(stream))


# --- properties --------------------------------------------------------------------------------------

records_strategy = st.lists(
    st.builds(PcapRecord, st.integers(0, 2**31).map(lambda us: us / 1e6), st.sampled_from(list(RecordKind)),
              st.binary(max_size=300)),
    max_size=10,
)


@given(records_strategy)
def test_round_trip(records):
    got = list(read_pcap_bytes(write(records)))
    assert [(r.kind, r.data) for r in got] == [(r.kind, r.data) for r in records]
    assert all(abs(a.time - b.time) < 1e-6 for a, b in zip(got, records, strict=True))


@given(st.integers(0, 2**32 - 1), st.integers(0, 999_999))
def test_timestamp_fields_exact(sec, usec):
    data = write([PcapRecord(sec + usec / 1e6, RecordKind.FRAME_IN, b"")])
    assert struct.unpack_from("<II", data, 24) == (sec, usec)


PREFIXES = [
    b"",
    GOOD[:24],
    struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 144),
    struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 144),
    SLL_HEADER,
]


@given(st.sampled_from(PREFIXES), st.binary(max_size=200))
def test_garbage_raises_only_trace_error(prefix, data):
    try:
        list(read_pcap_bytes(prefix + data))
    except TraceError:
        pass


@given(st.data())
def test_damaged_good_file_raises_only_trace_error(draw):
    data = bytearray(GOOD + write([PcapRecord(2, RecordKind.LOG, b"hello")]))
    for _ in range(draw.draw(st.integers(1, 4))):
        position = draw.draw(st.integers(0, len(data) - 1))
        data[position] = draw.draw(st.integers(0, 255))
    data = data[: draw.draw(st.integers(0, len(data)))]
    try:
        for record in read_pcap_bytes(bytes(data)):
            assert isinstance(record.kind, RecordKind) and isinstance(record.data, bytes)
    except TraceError:
        pass


# --- tshark as the oracle ----------------------------------------------------------------------------

def test_tshark_reads_our_file(tmp_path, tshark):
    path = tmp_path / "rr.pcap"
    with PcapWriter(path) as writer:
        writer.write_frame(b"\x55\x11", outgoing=True, time=0.0)
        writer.write_log("hello", time=0.1)
        writer.write_frame(b"\x54\x11", outgoing=False, time=0.2)
        writer.write_missed(2, time=0.3)
    result = subprocess.run(
        [tshark, "-r", str(path), "-T", "fields", "-e", "frame.number", "-e", "irlap.a", "-e", "irlap.c",
         "-e", "log.msg", "-e", "log.missed", "-e", "_ws.col.Info"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines() if line]
    assert [row[:5] for row in rows] == [
        ["1", "0x55", "0x11", "", ""],
        ["2", "", "", "hello", ""],
        ["3", "0x54", "0x11", "", ""],
        ["4", "", "", "", "1"],
    ]
    assert rows[0][5] == "S P, func=RR, N(R)=0" and rows[2][5] == "S F, func=RR, N(R)=0"


def test_tshark_reads_our_file_from_stdin(tshark):
    """Sanity check of the reference layout itself: tshark accepts the hand-built bytes too."""
    data = GLOBAL_HEADER + reference_record(b"\x55\x53", 0x0004, 0, 0)
    result = subprocess.run([tshark, "-r", "-", "-T", "fields", "-e", "irlap.c"], input=data,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["0x53"]
