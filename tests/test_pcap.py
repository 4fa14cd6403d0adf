"""pcap LINKTYPE_LINUX_IRDA: exact bytes, round trips, and every kind of broken file."""

import io
import struct
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irlap.errors import TraceError
from irlap.pcap import PcapRecord, PcapWriter, RecordKind, read_pcap, read_pcap_bytes


def reference_record(frame: bytes, outgoing: bool, t: float) -> bytes:
    """The record layout of the reference page (oracles.md 1.3), written independently."""
    pseudo = struct.pack(">HHH8sH", 4 if outgoing else 0, 783, 0, bytes(8), 0x0017)
    data = pseudo + frame
    sec = int(t)
    return struct.pack("<IIII", sec, round((t - sec) * 1e6), len(data), len(data)) + data


def write(records) -> bytes:
    buffer = io.BytesIO()
    with PcapWriter(buffer) as writer:
        for record in records:
            writer.write_record(record)
    return buffer.getvalue()


def test_exact_bytes_against_reference_layout():
    buffer = io.BytesIO()
    with PcapWriter(buffer) as writer:
        writer.write_frame(b"\x55\x11", outgoing=True, time=1.5)
        writer.write_frame(b"\x54\x11", outgoing=False, time=2.25)
    expected = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 144)
    expected += reference_record(b"\x55\x11", True, 1.5) + reference_record(b"\x54\x11", False, 2.25)
    assert buffer.getvalue() == expected


def test_round_trip_frames_logs_missed(tmp_path):
    path = tmp_path / "x.pcap"
    with PcapWriter(path) as writer:
        writer.write_frame(b"\xff\x3f\x01", outgoing=True, time=0.0)
        writer.write_log("speed 115200", time=0.5)
        writer.write_missed(3, time=0.75)
        writer.write_frame(b"\xfe\xbf", outgoing=False, time=1.000001)
    records = list(read_pcap(path))
    assert [r.kind for r in records] == [RecordKind.FRAME_OUT, RecordKind.LOG, RecordKind.MISSED,
                                         RecordKind.FRAME_IN]
    assert records[0].outgoing and records[3].incoming and records[0].is_frame and not records[1].is_frame
    assert records[1].text == "speed 115200"
    assert "3" in records[2].text
    assert records[3].time == pytest.approx(1.000001)


def test_microsecond_rounding_carries():
    data = write([PcapRecord(0.9999999, RecordKind.FRAME_IN, b"\x55\x11")])
    sec, usec = struct.unpack_from("<II", data, 24)
    assert (sec, usec) == (1, 0)


def test_negative_time_rejected():
    with pytest.raises(ValueError):
        write([PcapRecord(-1.0, RecordKind.FRAME_IN, b"\x55\x11")])


def test_big_endian_and_nanosecond_files():
    pseudo = struct.pack(">HHH8sH", 4, 783, 0, bytes(8), 0x17)
    be = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 144)
    be += struct.pack(">IIII", 7, 500000, 18, 18) + pseudo + b"\x55\x11"
    [record] = read_pcap_bytes(be)
    assert record.time == pytest.approx(7.5) and record.data == b"\x55\x11" and record.outgoing
    ns = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 144)
    ns += struct.pack("<IIII", 1, 250_000_000, 18, 18) + pseudo + b"\x55\x11"
    [record] = read_pcap_bytes(ns)
    assert record.time == pytest.approx(1.25)


def test_sll_with_irda_protocol_is_read():
    data = bytearray(write([PcapRecord(0, RecordKind.FRAME_IN, b"\x55\x11")]))
    struct.pack_into("<I", data, 20, 113)
    assert [r.data for r in read_pcap_bytes(bytes(data))] == [b"\x55\x11"]


GOOD = write([PcapRecord(0, RecordKind.FRAME_IN, b"\x55\x11"), PcapRecord(1, RecordKind.FRAME_OUT, b"\x54\x11")])


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "not a pcap file"),
        (b"\x00" * 24, "magic number"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1), "link type 1 is not IrDA"),
        (GOOD[:-1], "record 2 is truncated"),
        (GOOD[:24 + 8], "record 1 is truncated"),
        (GOOD[:24] + struct.pack("<IIII", 0, 0, 4, 4) + b"abcd", "shorter than the 16-byte"),
        (GOOD[:24] + struct.pack("<IIII", 0, 0, 10**7, 10**7), "corrupt"),
        (GOOD[:24] + struct.pack("<IIII", 0, 0, 16, 16) + struct.pack(">HHH8sH", 7, 0, 0, bytes(8), 0x17),
         "unknown packet type"),
        (b"\x0a\x0d\x0d\x0a" + bytes(28), "pcapng"),
    ],
)
def test_broken_files_raise_trace_error(data, words):
    with pytest.raises(TraceError, match=words):
        list(read_pcap_bytes(data, name="x.pcap"))


def test_missing_file(tmp_path):
    with pytest.raises(TraceError, match="no such file"):
        list(read_pcap(tmp_path / "nope.pcap"))


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


@given(st.binary(max_size=200))
def test_garbage_raises_only_trace_error(data):
    for prefix in (b"", GOOD[:24]):
        try:
            list(read_pcap_bytes(prefix + data))
        except TraceError:
            pass


def test_tshark_reads_our_file(tmp_path, tshark):
    path = tmp_path / "rr.pcap"
    with PcapWriter(path) as writer:
        writer.write_frame(b"\x55\x11", outgoing=True, time=0.0)
        writer.write_log("hello", time=0.1)
        writer.write_frame(b"\x54\x11", outgoing=False, time=0.2)
    out = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "frame.number", "-e", "irlap.c"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    rows = [line.split("\t") for line in out if line]
    assert rows[0] == ["1", "0x11"] and rows[2] == ["3", "0x11"]
    assert len(rows) == 3
