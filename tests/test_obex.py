"""IrOBEX: the packet codec, safe names, and the client against the server over a socket pair.

The server runs in a thread on one end of ``socket.socketpair()``; the transport does not matter to OBEX
(test_transfer.py runs the same code over TinyTP and against OpenOBEX and obexftp).
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
from pathlib import Path

import pytest

from irsock.obex import FBS_UUID, ObexClient, ObexError, ObexResponseError, ObexServer, safe_name
from irsock.obex import packets as P
from irsock.obex import server as server_module
from irsock.obex.names import MAX_NAME_BYTES, reserve_unique


# --- codec --------------------------------------------------------------------------------------------
def test_headers_round_trip_in_all_four_encodings():
    headers = [(P.H_NAME, "Bild 😀 ümlaut.jpg"), (P.H_TYPE, b"image/jpeg\0"), (P.H_LENGTH, 123456),
               (P.H_CONNECTION_ID, 0xFFFFFFFF), (P.H_IRSOCK_VERIFIED, 1), (P.H_NAME, "")]
    raw = b"".join(P.encode_header(h, v) for h, v in headers)
    assert P.decode_headers(raw) == headers
    # an empty unicode header is 3 bytes; a non-empty one ends in a UTF-16 NUL
    assert P.encode_header(P.H_NAME, "") == b"\x01\x00\x03"
    assert P.encode_header(P.H_NAME, "a") == b"\x01\x00\x07\x00a\x00\x00"


def test_connect_packet_layout_and_parse():
    raw = P.build(P.CONNECT, [(P.H_TARGET, FBS_UUID)], connect=(0x10, 0, 0x2000))
    assert raw[:7] == bytes([0x80, 0, len(raw), 0x10, 0, 0x20, 0])
    packet = P.parse(raw)
    assert (packet.version, packet.flags, packet.max_packet) == (0x10, 0, 0x2000)
    assert packet.get(P.H_TARGET) == FBS_UUID
    response = P.parse(P.build(P.SUCCESS, [], connect=(0x10, 0, 255)), response_to=P.CONNECT)
    assert response.max_packet == 255 and response.final


@pytest.mark.parametrize("raw, complaint", [
    (b"\x02\x00", "shorter than"),
    (b"\x02\x00\x09\x48\x00\x05ab", "states 9 bytes"),
    (P.build(P.PUT, raw_headers=b"\x48\x00\x09abc"), "holds"),
    (P.build(P.PUT, raw_headers=b"\x48\x00\x01"), "states 1 bytes"),
    (P.build(P.PUT, raw_headers=b"\x01\x00\x06abc"), "odd length"),
    (P.build(P.PUT, raw_headers=b"\x01\x00\x05\xd8\x00"), "not valid UTF-16"),
    (P.build(P.PUT, raw_headers=b"\xc3\x00\x00"), "cut short"),
    (P.build(P.PUT, raw_headers=b"\x97"), "cut short"),
    (b"\x80\x00\x05\x10\x00", "without version"),
])
def test_malformed_packets_raise_obex_error(raw, complaint):
    with pytest.raises(ObexError, match=complaint):
        P.parse(raw)


def test_unknown_headers_are_kept_not_fatal():
    raw = P.build(P.PUT | P.FINAL, raw_headers=b"\x7a\x00\x05hi" + P.encode_header(P.H_END_OF_BODY, b"x"))
    packet = P.parse(raw)
    assert packet.get(0x7A) == b"hi" and packet.body() == b"x"


def test_read_packet_refuses_a_stream_out_of_step():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"\x02\x00\x01")
        with pytest.raises(ObexError, match="out of step"):
            P.read_packet(b)
        a.sendall(b"\x02\xff\xff")
        with pytest.raises(ObexError, match="exceeds the 1000 bytes"):
            P.read_packet(b, 1000)
        a.sendall(b"\x02\x00\x10abc")
        a.close()
        with pytest.raises(ObexError, match="in the middle of a packet"):
            P.read_packet(b)


# --- names --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("offered, stored", [
    ("photo.jpg", "photo.jpg"),
    ("../../etc/passwd", "passwd"),
    ("/etc/shadow", "shadow"),
    ("C:\\Windows\\system32\\evil.dll", "evil.dll"),
    ("C:evil.dll", "evil.dll"),
    ("\\\\server\\share\\doc.txt", "doc.txt"),
    ("..", "received.bin"),
    (".", "received.bin"),
    ("", "received.bin"),
    ("dir/", "received.bin"),
    (".bashrc", "bashrc"),
    ("a\x00b.txt", "a_b.txt"),
    ("line\nbreak\x1b[31m.txt", "line_break_[31m.txt"),
    ('what?<>:"|*.txt', "what_______.txt"),
    ("CON", "_CON"),
    ("nul.txt", "_nul.txt"),
    ("com1.tar.gz", "_com1.tar.gz"),
    ("LPT9", "_LPT9"),
    ("trailing. . ", "trailing"),
    ("日本語のファイル.txt", "日本語のファイル.txt"),
    ("invoice\u202etxt.exe", "invoicetxt.exe"),  # RLO: would show as invoiceexe.txt
    ("\u2066x\u2069\u2067y\u2068.txt", "xy.txt"),  # bidi isolates
    ("\u202aa\u202bb\u202cc\u202dd.txt", "abcd.txt"),  # embeddings, pop, LRO
    ("\u200fright\u200e.txt", "right.txt"),  # RLM, LRM
    ("arabic\u061cmark.txt", "arabicmark.txt"),  # ALM
    ("zero\u200bwidth\ufeff.txt", "zerowidth.txt"),  # ZWSP, BOM (format characters)
    ("soft\u00adhyphen.txt", "softhyphen.txt"),
    ("c1\x85next\x9bline.txt", "c1_next_line.txt"),  # C1 controls (NEL, CSI)
    ("para\u2029line\u2028.txt", "para_line_.txt"),  # separators break a line in a log too
])
def test_safe_name(offered, stored):
    assert safe_name(offered) == stored


def test_safe_name_caps_length_and_keeps_the_extension():
    name = safe_name("ä" * 300 + ".jpeg")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES and name.endswith(".jpeg")
    name.encode("utf-8")  # never a cut UTF-8 sequence


def test_safe_name_leaves_no_format_or_control_character():
    import unicodedata

    offered = "".join(map(chr, [*range(0x00, 0x20), *range(0x7F, 0xA0), 0xAD, 0x61C, *range(0x200B, 0x2010),
                                *range(0x2028, 0x202F), *range(0x2060, 0x2070), 0xFEFF, 0xFFF9]))
    kept = safe_name("a" + offered + "b.txt")
    assert kept.startswith("a") and kept.endswith("b.txt")
    assert not [c for c in kept if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]


def test_reserve_unique_never_overwrites(tmp_path):
    first = reserve_unique(tmp_path, "a.txt")
    first.write_text("keep")
    assert reserve_unique(tmp_path, "a.txt").name == "a (1).txt"
    assert reserve_unique(tmp_path, "a.txt").name == "a (2).txt"
    assert reserve_unique(tmp_path, "noext").name == "noext"
    assert reserve_unique(tmp_path, "noext").name == "noext (1)"
    assert first.read_text() == "keep"


# --- client and server --------------------------------------------------------------------------------
class Session:
    """A server thread on one end of a socket pair; ``sock`` is the client end."""

    def __init__(self, root: Path, **options) -> None:
        self.root = root
        self.server = ObexServer(root, **options)
        self.sock, self._far = socket.socketpair()
        self.sock.settimeout(10)
        self.stored: list = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self.stored = self.server.serve(self._far, "test-peer")
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
        finally:
            self._far.close()

    def request(self, raw: bytes, response_to: int) -> P.Packet:
        self.sock.sendall(raw)
        answer = P.read_packet(self.sock)
        assert answer is not None
        return P.parse(answer, response_to=response_to)

    def finish(self) -> list:
        self.sock.close()
        self._thread.join(10)
        assert not self._thread.is_alive()
        return self.stored


@pytest.fixture
def inbox(tmp_path):
    root = tmp_path / "inbox"
    root.mkdir()
    return root


def everything_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_push_stores_the_file_verified_with_its_own_name(inbox):
    session = Session(inbox)
    data = os.urandom(150_000)
    seen = []
    with ObexClient(session.sock) as client:
        result = client.put_bytes("report.pdf", data, progress=lambda sent, total: seen.append((sent, total)))
    stored = session.finish()
    assert result.verified is True and result.size == len(data) and result.code == P.SUCCESS
    assert (inbox / "report.pdf").read_bytes() == data
    assert [(f.name, f.size, f.peer, f.verified) for f in stored] == [("report.pdf", len(data), "test-peer", True)]
    assert seen[0] == (0, len(data)) and seen[-1] == (len(data), len(data))
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))


def test_the_time_header_dates_the_stored_file(inbox, tmp_path):
    source = tmp_path / "old.txt"
    source.write_text("from 2001")
    os.utime(source, (1_000_000_000, 1_000_000_000))  # 2001-09-09T01:46:40Z
    session = Session(inbox)
    client = ObexClient(session.sock)
    client.connect()
    client.put_file(source)
    session.request(P.build(P.PUT | P.FINAL, [(P.H_NAME, "four.txt"), (P.H_TIME_4, 946684800),
                                              (P.H_END_OF_BODY, b"y2k")]), P.PUT)
    session.request(P.build(P.PUT | P.FINAL, [(P.H_NAME, "bad.txt"), (P.H_TIME, b"yesterday"),
                                              (P.H_END_OF_BODY, b"kept")]), P.PUT)
    session.finish()
    assert (inbox / "old.txt").stat().st_mtime == 1_000_000_000
    assert (inbox / "four.txt").stat().st_mtime == 946684800
    assert (inbox / "bad.txt").read_bytes() == b"kept"  # an unreadable time costs nothing


@pytest.mark.parametrize("value, expected", [
    (b"20010909T014640Z", 1_000_000_000.0),
    (b"20010909T014640Z\0", 1_000_000_000.0),
    (946684800, 946684800.0),
    (b"2001-09-09", None),
    (b"99999999T999999", None),
    ("text", None),
])
def test_parse_time(value, expected):
    assert P.parse_time(value) == expected


def test_parse_time_without_z_is_local_time():
    import datetime

    local = datetime.datetime(2020, 6, 1, 12, 0, 0).timestamp()
    assert P.parse_time(b"20200601T120000") == local


@pytest.mark.parametrize("name, expected", [
    ("Anna.vcf", b"text/x-vcard\0"), ("meeting.VCS", b"text/x-vcalendar\0"), ("photo.jpg", b"image/jpeg\0"),
    ("notes.txt", b"text/plain\0"), ("mystery", None),
])
def test_put_file_sends_the_type_phones_act_on(tmp_path, name, expected):
    """The first PUT packet carries the Type: a phone files a text/x-vcard as a contact."""
    source = tmp_path / name
    source.write_bytes(b"BEGIN:VCARD\r\nEND:VCARD\r\n")
    a, b = socket.socketpair()
    with a, b:
        b.sendall(P.build(P.SUCCESS))  # the answer to the PUT, sent ahead: the client reads it after sending
        ObexClient(a).put_file(source)
        first = P.parse(P.read_packet(b))
    assert first.get(P.H_TYPE) == expected and first.get(P.H_NAME) == name


def test_an_object_without_a_name_is_named_by_its_type(inbox):
    session = Session(inbox)
    for mime in (b"text/x-vcard\0", b"image/jpeg\0", b"x-unknown/thing\0", None):
        headers = [(P.H_TYPE, mime)] if mime else []
        answer = session.request(P.build(P.PUT | P.FINAL, [*headers, (P.H_END_OF_BODY, b"data")]), P.PUT)
        assert answer.code == P.SUCCESS
    session.finish()
    assert everything_under(inbox) == ["received (1).bin", "received.bin", "received.jpg", "received.vcf"]


def test_push_without_the_digest_header_is_stored_unverified(inbox):
    session = Session(inbox)
    with ObexClient(session.sock) as client:
        result = client.put_bytes("plain.txt", b"hello", digest=False)
        empty = client.put_bytes("empty.txt", b"")
    session.finish()
    assert result.verified is None and (inbox / "plain.txt").read_bytes() == b"hello"
    assert empty.verified is True and (inbox / "empty.txt").read_bytes() == b""


def test_hostile_names_land_inside_the_inbox_and_never_overwrite(tmp_path, inbox):
    (inbox / "passwd").write_text("mine")
    session = Session(inbox)
    names = ["../../outside.txt", "/tmp/abs.txt", "..\\..\\win.txt", "passwd", "passwd", "CON", "\x00", "..",
             ".irsock-incoming-x.part"]
    with ObexClient(session.sock) as client:
        for index, name in enumerate(names):
            client.put_bytes(name, f"file {index}".encode())
    stored = session.finish()
    assert everything_under(tmp_path) == ["inbox", *(f"inbox/{n}" for n in sorted(
        ["outside.txt", "abs.txt", "win.txt", "passwd", "passwd (1)", "passwd (2)", "_CON", "_", "received.bin",
         "irsock-incoming-x.part"]))]
    assert (inbox / "passwd").read_text() == "mine"
    assert [f.name for f in stored][:5] == ["outside.txt", "abs.txt", "win.txt", "passwd (1)", "passwd (2)"]


def test_small_peer_packets_split_the_push(inbox, monkeypatch):
    monkeypatch.setattr(server_module, "SERVER_MTU", 255)
    session = Session(inbox)
    data = os.urandom(5000)
    with ObexClient(session.sock) as client:
        assert client.peer_mtu == 255
        client.put_bytes("split.bin", data)
    session.finish()
    assert (inbox / "split.bin").read_bytes() == data


class RecordingSocket:
    """A socket that keeps what the client sent, to see its packets."""

    def __init__(self, sock) -> None:
        self.sock, self.sent = sock, bytearray()

    def sendall(self, data) -> None:
        self.sent += data
        self.sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def packet_lengths(stream: bytes) -> list[int]:
    lengths, at = [], 0
    while at < len(stream):
        length = int.from_bytes(stream[at + 1:at + 3], "big")
        lengths.append(length)
        at += length
    return lengths


@pytest.mark.parametrize("unit", [2045, 253])
def test_put_packets_are_whole_transport_units(inbox, unit):
    """65535-byte packets over 2045-byte TinyTP PDUs ended in a 95-byte frame that took a turn of its own."""
    session = Session(inbox)
    recording = RecordingSocket(session.sock)
    data = os.urandom(300_000)
    with ObexClient(recording, unit=unit) as client:
        assert client.peer_mtu == 0xFFFF
        client.put_bytes("big.bin", data, progress=lambda _sent, _total: None)
    session.finish()
    assert (inbox / "big.bin").read_bytes() == data
    puts = packet_lengths(bytes(recording.sent))[1:-2]  # after CONNECT; before the final PUT and DISCONNECT
    assert len(puts) >= 3 and all(length == 0xFFFF - 0xFFFF % unit for length in puts), puts


def test_headers_that_fit_the_peer_but_not_whole_units_still_go(inbox, monkeypatch):
    """Whole units (61 bytes at a 64-byte IrLAP data size) cut a 255-byte packet to 244: a first packet whose
    headers fit in 255 but not in 244 goes at the peer's length instead of failing."""
    monkeypatch.setattr(server_module, "SERVER_MTU", 255)
    session = Session(inbox)
    name = "n" * 80 + ".bin"  # its headers: 247 bytes with the packet and body headers
    with ObexClient(session.sock, unit=61) as client:
        assert client.packet_limit() == 244
        client.put_bytes(name, b"x" * 1000, mime_type="application/octet-stream")
    session.finish()
    assert (inbox / name).read_bytes() == b"x" * 1000


def test_declared_size_over_the_limit_is_refused_with_entity_too_large(inbox):
    session = Session(inbox, max_size=1000)
    with ObexClient(session.sock) as client:
        with pytest.raises(ObexResponseError) as refused:
            client.put_bytes("big.bin", bytes(5000))
        assert refused.value.code == P.ENTITY_TOO_LARGE
        assert "limit of 1000 bytes" in str(refused.value)
        client.put_bytes("small.bin", bytes(100))  # the session goes on
    session.finish()
    assert everything_under(inbox) == ["small.bin"]


def test_undeclared_size_over_the_limit_is_refused_midway(inbox):
    session = Session(inbox, max_size=1000)
    session.request(P.build(P.CONNECT, connect=(0x10, 0, 0xFFFF)), P.CONNECT)
    answer = session.request(P.build(P.PUT, [(P.H_NAME, "sneaky.bin"), (P.H_BODY, bytes(800))]), P.PUT)
    assert answer.code == P.CONTINUE
    answer = session.request(P.build(P.PUT, [(P.H_BODY, bytes(800))]), P.PUT)
    assert answer.code == P.ENTITY_TOO_LARGE
    session.finish()
    assert everything_under(inbox) == []


def test_digest_mismatch_refuses_the_file(inbox):
    session = Session(inbox)
    session.request(P.build(P.CONNECT, connect=(0x10, 0, 0xFFFF)), P.CONNECT)
    wrong = hashlib.sha256(b"something else").digest()
    answer = session.request(P.build(P.PUT | P.FINAL, [(P.H_NAME, "x.bin"), (P.H_LENGTH, 4),
                                                       (P.H_IRSOCK_SHA256, wrong), (P.H_END_OF_BODY, b"data")]), P.PUT)
    assert answer.code == P.NOT_ACCEPTABLE and "SHA-256" in answer.get(P.H_DESCRIPTION)
    session.finish()
    assert everything_under(inbox) == []


def test_length_mismatch_refuses_the_file(inbox):
    session = Session(inbox)
    answer = session.request(P.build(P.PUT | P.FINAL, [(P.H_NAME, "x.bin"), (P.H_LENGTH, 10),
                                                       (P.H_END_OF_BODY, b"data")]), P.PUT)
    assert answer.code == P.BAD_REQUEST and "Length" in answer.get(P.H_DESCRIPTION)
    session.finish()
    assert everything_under(inbox) == []


def test_final_put_with_body_and_no_end_of_body_is_stored(inbox):
    """OpenOBEX's obex_tcp ends a push with a Body header, not End-of-Body."""
    session = Session(inbox)
    answer = session.request(P.build(P.PUT | P.FINAL, [(P.H_NAME, "o.txt"), (P.H_BODY, b"openobex")]), P.PUT)
    assert answer.code == P.SUCCESS
    session.finish()
    assert (inbox / "o.txt").read_bytes() == b"openobex"


@pytest.mark.parametrize("ending", ["cut", "abort", "disconnect"])
def test_an_unfinished_push_leaves_no_file(inbox, ending):
    session = Session(inbox)
    session.request(P.build(P.CONNECT, connect=(0x10, 0, 0xFFFF)), P.CONNECT)
    answer = session.request(P.build(P.PUT, [(P.H_NAME, "half.bin"), (P.H_LENGTH, 100_000),
                                             (P.H_BODY, bytes(30_000))]), P.PUT)
    assert answer.code == P.CONTINUE
    assert [p.name.startswith(".irsock-incoming-") for p in inbox.iterdir()] == [True]
    if ending == "cut":
        session.sock.sendall(P.build(P.PUT, [(P.H_BODY, bytes(1000))])[:500])
    elif ending == "abort":
        assert session.request(P.build(P.ABORT), P.ABORT).code == P.SUCCESS
    else:
        assert session.request(P.build(P.DISCONNECT), P.DISCONNECT).code == P.SUCCESS
    assert session.finish() == []
    assert session.error is None
    assert everything_under(inbox) == []


def test_malformed_and_unknown_requests_get_error_codes_and_the_session_goes_on(inbox):
    session = Session(inbox, browse=True)
    bad = P.build(P.PUT | P.FINAL, raw_headers=b"\x01\x00\x06abc")
    assert session.request(bad, P.PUT).code == P.BAD_REQUEST
    assert session.request(P.build(0x17), 0x17).code == P.NOT_IMPLEMENTED
    assert session.request(P.build(P.GET | P.FINAL), P.GET).code == P.BAD_REQUEST
    assert session.request(P.build(P.PUT | P.FINAL, [(P.H_NAME, "ok.txt"), (P.H_END_OF_BODY, b"1")]),
                           P.PUT).code == P.SUCCESS
    session.finish()
    assert everything_under(inbox) == ["ok.txt"]


def test_a_stream_out_of_step_ends_the_session_quietly(inbox):
    session = Session(inbox)
    session.sock.sendall(b"\x02\x00\x01garbage")
    try:
        assert session.sock.recv(10) == b""  # the server hung up
    except ConnectionResetError:
        pass  # hung up with our garbage unread
    assert session.finish() == [] and session.error is None


def test_unknown_target_is_refused_with_service_unavailable(inbox):
    session = Session(inbox)
    with pytest.raises(ObexResponseError) as refused:
        ObexClient(session.sock, target=bytes(16)).connect()
    assert refused.value.code == P.SERVICE_UNAVAILABLE
    session.finish()


def test_client_accepts_a_connect_refusal_without_the_fixed_fields():
    a, b = socket.socketpair()
    with a, b:
        b.sendall(P.build(P.FORBIDDEN))
        with pytest.raises(ObexResponseError) as refused:
            ObexClient(a).connect()
        assert refused.value.code == P.FORBIDDEN


def test_folder_browsing(inbox):
    (inbox / "a.txt").write_text("alpha")
    (inbox / "docs").mkdir()
    session = Session(inbox, browse=True, allow_delete=True)
    with ObexClient(session.sock, target=FBS_UUID) as client:
        assert client.who == FBS_UUID and client.connection_id is not None
        listing = client.listing()
        assert '<file name="a.txt" size="5"' in listing and '<folder name="docs"' in listing
        assert "parent-folder" not in listing
        assert client.get("a.txt") == b"alpha"
        client.setpath("docs")
        client.put_bytes("inner.txt", b"inside")
        assert "parent-folder" in client.listing() and 'name="inner.txt"' in client.listing()
        client.setpath("new")  # created
        client.setpath(up=True)
        with pytest.raises(ObexResponseError) as missing:
            client.setpath("absent", create=False)
        assert missing.value.code == P.NOT_FOUND
        client.delete("new")
        client.setpath()  # back to the root
        with pytest.raises(ObexResponseError) as up:
            client.setpath(up=True)
        assert up.value.code == P.NOT_FOUND
        with pytest.raises(ObexResponseError) as nonempty:
            client.delete("docs")
        assert nonempty.value.code == P.PRECONDITION_FAILED
        client.delete("a.txt")
    session.finish()
    assert everything_under(inbox) == ["docs", "docs/inner.txt"]


def test_large_get_is_split_to_the_clients_packet_size(inbox):
    data = os.urandom(20_000)
    (inbox / "big.bin").write_bytes(data)
    session = Session(inbox, browse=True)
    with ObexClient(session.sock, mtu=255, target=FBS_UUID) as client:
        assert client.get("big.bin") == data
    session.finish()


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/passwd", "link", ".irsock-incoming-1.part", "a/b"])
def test_browsing_never_leaves_the_inbox(tmp_path, inbox, name):
    (tmp_path / "outside.txt").write_text("secret")
    (inbox / "link").symlink_to(tmp_path / "outside.txt")
    session = Session(inbox, browse=True, allow_delete=True)
    with ObexClient(session.sock, target=FBS_UUID) as client:
        with pytest.raises(ObexResponseError) as refused:
            client.get(name)
        assert refused.value.code in (P.FORBIDDEN, P.BAD_REQUEST)
        with pytest.raises(ObexResponseError):
            client.delete(name)
        with pytest.raises(ObexResponseError):
            client.setpath(name)
        assert "link" not in client.listing()
    session.finish()
    assert (tmp_path / "outside.txt").read_text() == "secret"


def test_an_inbox_takes_files_only_unless_asked(inbox):
    """By default nothing in the inbox is shown, sent or deleted: 0xC3 Forbidden. Folders can still be entered
    and made, which is how a client pushes into one (obexftp -c sub -p file)."""
    (inbox / "private.txt").write_text("no")
    session = Session(inbox)
    with ObexClient(session.sock) as client:
        for attempt in (client.listing, lambda: client.get("private.txt"), lambda: client.delete("private.txt"),
                        lambda: client.listing("sub")):
            with pytest.raises(ObexResponseError) as refused:
                attempt()
            assert refused.value.code == P.FORBIDDEN
        client.put_bytes("in.txt", b"yes")
        client.setpath("sub")
        client.put_bytes("deeper.txt", b"in sub")
    session.finish()
    assert everything_under(inbox) == ["in.txt", "private.txt", "sub", "sub/deeper.txt"]


def test_browsing_without_delete_lists_and_gets_but_does_not_delete(inbox):
    (inbox / "keep.txt").write_text("kept")
    session = Session(inbox, browse=True)
    with ObexClient(session.sock, target=FBS_UUID) as client:
        assert 'name="keep.txt"' in client.listing() and client.get("keep.txt") == b"kept"
        with pytest.raises(ObexResponseError) as refused:
            client.delete("keep.txt")
        assert refused.value.code == P.FORBIDDEN and "delet" in str(refused.value)
    session.finish()
    assert everything_under(inbox) == ["keep.txt"]


def test_deleting_without_browsing(inbox):
    (inbox / "old.txt").write_text("old")
    session = Session(inbox, allow_delete=True)
    with ObexClient(session.sock) as client:
        with pytest.raises(ObexResponseError) as refused:
            client.listing()
        assert refused.value.code == P.FORBIDDEN
        client.delete("old.txt")
    session.finish()
    assert everything_under(inbox) == []


def test_a_listing_with_a_name_lists_that_folder(inbox):
    """obexftp -l sub: a GET of x-obex/folder-listing with Name "sub" lists sub, relative to the current folder."""
    (inbox / "top.txt").write_text("top")
    (inbox / "sub" / "deeper").mkdir(parents=True)
    (inbox / "sub" / "inside.txt").write_text("in sub")
    (inbox / "sub" / "deeper" / "bottom.txt").write_text("in deeper")
    session = Session(inbox, browse=True)
    with ObexClient(session.sock, target=FBS_UUID) as client:
        sub = client.listing("sub")
        assert 'name="inside.txt"' in sub and 'name="deeper"' in sub and "top.txt" not in sub
        assert "<parent-folder/>" in sub
        assert 'name="bottom.txt"' in client.listing("sub/deeper") and 'name="bottom.txt"' in client.listing(
            "sub/deeper/")
        assert 'name="top.txt"' in client.listing("")  # an empty Name: the current folder
        client.setpath("sub")
        assert 'name="bottom.txt"' in client.listing("deeper")
        for name, code in (("absent", P.NOT_FOUND), ("inside.txt", P.NOT_FOUND), ("..", P.FORBIDDEN),
                           ("deeper/../..", P.FORBIDDEN), ("/etc", P.FORBIDDEN), ("../sub", P.FORBIDDEN)):
            with pytest.raises(ObexResponseError) as refused:
                client.listing(name)
            assert refused.value.code == code, name
    session.finish()


def test_a_listing_skips_names_that_are_not_utf8_and_the_session_goes_on(inbox):
    """A name on disk that is not UTF-8 (Latin-1 from an old system) once crashed the whole receiver."""
    os.close(os.open(os.path.join(os.fsencode(inbox), b"caf\xe9.txt"), os.O_CREAT | os.O_WRONLY, 0o644))
    (inbox / "fine.txt").write_text("ok")
    (inbox / "rlo\u202etxt.exe").write_text("x")  # a name the server would never store: not offered
    session = Session(inbox, browse=True)
    with ObexClient(session.sock, target=FBS_UUID) as client:
        listing = client.listing()
        assert 'name="fine.txt"' in listing and "caf" not in listing and "rlo" not in listing
        listing.encode("utf-8")
        client.put_bytes("after.txt", b"still serving")
    session.finish()
    assert session.error is None and (inbox / "after.txt").read_bytes() == b"still serving"


def test_an_unexpected_failure_is_answered_internal_error_and_the_session_goes_on(inbox, monkeypatch):
    events = []

    def broken(self, folder):
        raise RuntimeError("a bug in the listing")

    monkeypatch.setattr(server_module._Session, "listing", broken)
    session = Session(inbox, browse=True, log=events.append)
    with ObexClient(session.sock, target=FBS_UUID) as client:
        with pytest.raises(ObexResponseError) as failed:
            client.listing()
        assert failed.value.code == P.INTERNAL_ERROR
        client.put_bytes("after.txt", b"still serving")
    session.finish()
    assert session.error is None and (inbox / "after.txt").read_bytes() == b"still serving"
    assert any("a bug in the listing" in e and "test-peer" in e for e in events), events


def test_the_server_logs_refusals_downloads_deletes_folders_and_where_a_push_went(inbox):
    (inbox / "a.txt").write_text("alpha")
    events = []
    session = Session(inbox, browse=True, allow_delete=True, max_size=1000, log=events.append)
    with ObexClient(session.sock, target=FBS_UUID) as client:
        with pytest.raises(ObexResponseError):
            client.put_bytes("big.bin", bytes(5000))
        session.request(P.build(P.PUT | P.FINAL, [(P.H_CONNECTION_ID, client.connection_id), (P.H_NAME, "x\u202e.bin"),
                                                  (P.H_IRSOCK_SHA256, bytes(32)), (P.H_END_OF_BODY, b"data")]),
                        P.PUT)
        assert client.get("a.txt") == b"alpha"
        client.delete("a.txt")
        client.setpath("new")
        client.put_bytes("inner.txt", b"inside")
    stored = session.finish()
    text = "\n".join(events)
    assert "refused 'big.bin' from test-peer: 0xCD Request Entity Too Large" in text, text
    assert "refused 'x\\u202e.bin' from test-peer: 0xC6 Not Acceptable" in text and "SHA-256" in text
    assert "sent a.txt (5 bytes) to test-peer" in text
    assert "deleted a.txt for test-peer" in text
    assert "created folder new/ for test-peer" in text
    assert "\u202e" not in text  # what the peer offered is logged escaped (a bidi override stays visible)
    assert [(f.name, f.relative) for f in stored] == [("inner.txt", "new/inner.txt")]


def test_stored_files_get_the_mode_the_umask_gives(inbox):
    previous = os.umask(0o022)
    try:
        session = Session(inbox)
        with ObexClient(session.sock) as client:
            client.put_bytes("shared.txt", b"like obex_tcp")
        session.finish()
        os.umask(0o077)
        session = Session(inbox)
        with ObexClient(session.sock) as client:
            client.put_bytes("private.txt", b"mine")
        session.finish()
    finally:
        os.umask(previous)
    assert (inbox / "shared.txt").stat().st_mode & 0o777 == 0o644
    assert (inbox / "private.txt").stat().st_mode & 0o777 == 0o600


def test_stale_partial_files_are_removed_and_nothing_else(inbox):
    import fcntl

    (inbox / "sub").mkdir()
    stale = [inbox / ".irsock-incoming-k3j_9x0a.part", inbox / "sub" / ".irsock-incoming-0123456789abcdef.part"]
    kept = [inbox / ".irsock-incoming-notes.txt", inbox / "movie.part", inbox / ".irsock-incoming-abc.part",
            inbox / "irsock-incoming-k3j_9x0a.part"]
    for path in stale + kept:
        path.write_bytes(b"partial")
        os.utime(path, (1_000_000_000, 1_000_000_000))  # left by a receiver killed long ago
    fresh = inbox / ".irsock-incoming-00000000000000aa.part"  # just created, perhaps not yet locked: kept
    fresh.write_bytes(b"")
    kept.append(fresh)
    busy = inbox / ".irsock-incoming-fedcba9876543210.part"  # another receiver is writing it right now
    with busy.open("wb") as writer:
        os.utime(busy, (1_000_000_000, 1_000_000_000))
        fcntl.flock(writer, fcntl.LOCK_EX | fcntl.LOCK_NB)
        removed = ObexServer(inbox).remove_stale_parts()
        assert busy.exists()
    assert sorted(removed) == sorted(stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_the_file_being_received_is_locked_against_a_second_receivers_cleanup(inbox):
    session = Session(inbox)
    session.request(P.build(P.CONNECT, connect=(0x10, 0, 0xFFFF)), P.CONNECT)
    answer = session.request(P.build(P.PUT, [(P.H_NAME, "slow.bin"), (P.H_BODY, bytes(1000))]), P.PUT)
    assert answer.code == P.CONTINUE
    [partial] = inbox.iterdir()
    os.utime(partial, (1_000_000_000, 1_000_000_000))  # a slow sender: old, but its receiver is alive
    assert ObexServer(inbox).remove_stale_parts() == []
    assert session.request(P.build(P.PUT | P.FINAL, [(P.H_END_OF_BODY, b"end")]), P.PUT).code == P.SUCCESS
    session.finish()
    assert (inbox / "slow.bin").read_bytes() == bytes(1000) + b"end"


def test_disconnect_is_answered_then_the_server_waits_for_the_client_to_hang_up(inbox):
    """The 0xA0 goes out and stays deliverable: the server does not close first (over IrDA a close right
    after the answer could drop the link before the answer left)."""
    session = Session(inbox)
    with ObexClient(session.sock) as client:
        client.put_bytes("a.txt", b"a")
    assert client.disconnect_status == "ok"
    session.sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        session.sock.recv(1)  # the server still holds the connection open
    session.finish()  # we hang up: the session ends


def test_the_wait_for_the_client_to_hang_up_is_bounded(inbox):
    session = Session(inbox, close_wait=0.2)
    session.request(P.build(P.DISCONNECT), P.DISCONNECT)
    session._thread.join(10)
    assert not session._thread.is_alive()
    assert session.sock.recv(1) == b""
    session.finish()


def test_a_missing_disconnect_answer_is_reported_not_hidden(caplog):
    import logging

    a, b = socket.socketpair()
    with a, b:
        b.sendall(P.build(P.SUCCESS, connect=(0x10, 0, 0xFFFF)))
        client = ObexClient(a)
        client.connect()
        b.close()  # the peer drops the link instead of answering DISCONNECT
        with caplog.at_level(logging.DEBUG, logger="irsock.obex"):
            status = client.disconnect()
    assert status == client.disconnect_status and status.startswith("no response: ")
    assert any("DISCONNECT" in r.getMessage() for r in caplog.records)
    a, b = socket.socketpair()
    with a, b:
        b.sendall(P.build(P.SUCCESS, connect=(0x10, 0, 0xFFFF)) + P.build(P.FORBIDDEN))
        client = ObexClient(a)
        client.connect()
        assert client.disconnect() == "refused: 0xC3 Forbidden"


def test_a_push_bigger_than_the_free_space_is_refused_before_any_byte_is_written(inbox, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10_000, 9_000, 1_000))
    session = Session(inbox)
    with ObexClient(session.sock) as client:
        with pytest.raises(ObexResponseError) as refused:
            client.put_bytes("big.bin", bytes(5000))
        assert refused.value.code == P.DATABASE_FULL and "1000 bytes free" in str(refused.value)
        client.put_bytes("small.bin", bytes(500))
    session.finish()
    assert everything_under(inbox) == ["small.bin"]


def test_a_full_disk_is_answered_with_database_full(inbox, monkeypatch):
    import errno as errno_module

    real_fdopen = os.fdopen

    class FullFile:
        def __init__(self, stream):
            self.stream = stream

        def write(self, data):
            raise OSError(errno_module.ENOSPC, "No space left on device")

        def close(self):
            self.stream.close()

    monkeypatch.setattr(server_module.os, "fdopen", lambda fd, mode: FullFile(real_fdopen(fd, mode)))
    session = Session(inbox)
    with ObexClient(session.sock) as client:
        with pytest.raises(ObexResponseError) as refused:
            client.put_bytes("x.bin", bytes(100))
    session.finish()
    assert refused.value.code == P.DATABASE_FULL and "No space left" in str(refused.value)
    assert everything_under(inbox) == []


def test_client_reports_a_peer_that_hangs_up():
    a, b = socket.socketpair()
    with a, b:
        b.close()
        with pytest.raises((ObexError, OSError)):
            ObexClient(a).connect()


def test_client_refuses_a_connect_answer_without_packet_length():
    a, b = socket.socketpair()
    with a, b:
        b.sendall(struct.pack(">BH", P.SUCCESS, 3))
        with pytest.raises(ObexError, match="without version"):
            ObexClient(a).connect()


def test_cancel_names_the_discarded_upload_even_when_the_session_thread_cleans_up_first(tmp_path):
    """Stopping the receiver mid-push: the session's own thread, woken by the shutdown, may discard the
    upload before cancel() looks at it; cancel() must still say what was discarded."""
    server = ObexServer(tmp_path)
    client, far = socket.socketpair()
    finished = threading.Event()

    class ShutdownWaitsForTheSession:
        """The far end as the server sees it; shutdown() lets the session thread finish before returning."""

        def __getattr__(self, name):
            return getattr(far, name)

        def shutdown(self, how):
            far.shutdown(how)
            finished.wait(5)

    def run():
        try:
            server.serve(ShutdownWaitsForTheSession(), peer="peer")
        finally:
            finished.set()

    thread = threading.Thread(target=run)
    thread.start()
    with client, far:
        client.sendall(P.build(P.CONNECT, connect=(0x10, 0, 0x2000)))
        P.read_packet(client)
        client.sendall(P.build(P.PUT, [(P.H_NAME, "half.bin"), (P.H_LENGTH, 1000), (P.H_BODY, bytes(100))]))
        assert P.parse(P.read_packet(client), response_to=P.PUT).code == P.CONTINUE
        discarded = server.cancel()
        thread.join(5)
    assert discarded == ["half.bin (100 of 1000 bytes) from peer"]
    assert list(tmp_path.iterdir()) == []


def test_a_packet_is_handed_over_in_whole_transport_units_when_the_unit_is_known():
    """Over IrDA (TinyTP PDUs of 2045 bytes at 4 Mbit/s) a 4096-byte slice left a 6-byte frame taking a slot of every
    other IrLAP window; with the unit known the slices are 4090 bytes and only a packet's last frame may be short."""
    from irsock.obex.client import SLICE, ObexClient

    class Recorder:
        def __init__(self) -> None:
            self.sizes: list[int] = []

        def sendall(self, data) -> None:
            self.sizes.append(len(data))

    for unit, expected in ((2045, 4090), (253, 4048), (0, SLICE), (SLICE + 1, SLICE)):
        sock = Recorder()
        ObexClient(sock, unit=unit)._send(bytes(20_000), progress=lambda _n: None)
        assert sock.sizes[:-1] == [expected] * (len(sock.sizes) - 1) and sum(sock.sizes) == 20_000
