"""The emulated phone's OBEX side: its inbox (irda send, ObexClient), the IrMC objects (telecom/pb.vcf from the
same phonebook AT+CPBR reads, devinfo matching AT+CGMI/+CGMM/+CGSN), refusals, hostile names and requests,
and the bound on what a peer can make it queue."""

from __future__ import annotations

import hashlib
import json
import quopri
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import irsock
from irlap.emulator.virtual import devices_on
from irsock.apps import transfer
from irsock.cli import main
from irsock.devices import irmc
from irsock.devices.objects import DEVICE_MTU, MemoryInbox, ObjectServer
from irsock.devices.phone import IMEI, MANUFACTURER, MODEL, OBEX_BACKLOG, OBEX_LSAP, OWNER, Entry
from irsock.obex import FBS_UUID, ObexClient, ObexResponseError
from irsock.obex import packets as P
from tests.conftest import wait_until


@pytest.fixture
def phone_medium():
    """An interface on a fresh medium with the emulated phone; yields (iface, phone runtime)."""
    name = f"phone-obex-{uuid.uuid4().hex[:8]}"
    iface = irsock.attach(f"irsim://{name}?devices=phone&pace=0", nickname="pc")
    try:
        [phone] = devices_on(name)
        yield iface, phone
    finally:
        iface.close()


def obex_socket(iface, device=None):
    """A socket connected to the phone's OBEX service (found by discovery unless ``device`` is given: no
    discovery while the link is up)."""
    sock = iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM)
    sock.settimeout(20)
    if device is None:
        device = transfer.choose_device(sock)
        assert device.name == "irsock phone" and "OBEX" in device.hint_words
    assert transfer.connect_obex(sock, device.address) == "OBEX"
    return sock, device


def at_command(sock, command: str) -> str:
    sock.sendall(command.encode("latin-1") + b"\r")
    reply = b""
    while not (reply.endswith(b"OK\r\n") or reply.endswith(b"ERROR\r\n")):
        data = sock.recv(256)
        assert data, "the phone closed its IrCOMM connection"
        reply += data
    return reply.decode("latin-1")


def parse_vcards(data: bytes) -> list[dict[str, str]]:
    """vCard 2.1 read independently of the code under test: properties by name (parameters dropped),
    quoted-printable and its charset decoded, ``\\;`` unescaped."""
    cards, card = [], None
    for line in data.decode("ascii").split("\r\n"):
        if line == "BEGIN:VCARD":
            card = {}
        elif line == "END:VCARD":
            cards.append(card)
            card = None
        elif line and card is not None:
            head, _, value = line.partition(":")
            name, *params = head.split(";")
            if "ENCODING=QUOTED-PRINTABLE" in params:
                charset = next((p.split("=", 1)[1] for p in params if p.startswith("CHARSET=")), "ascii")
                value = quopri.decodestring(value.encode("ascii")).decode(charset)
            card[name] = value.replace("\\;", ";").replace("\\\\", "\\")
    assert card is None, "a vCard without END"
    return cards


# --- the inbox ----------------------------------------------------------------------------------------------
def test_irda_send_pushes_to_the_phone_which_stores_and_verifies_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("IRDA_PORT", raising=False)
    card = tmp_path / "alice.vcf"
    card.write_bytes(b"BEGIN:VCARD\r\nVERSION:2.1\r\nN:Liddell;Alice\r\nTEL:+441234\r\nEND:VCARD\r\n")
    picture = tmp_path / "photo.jpg"
    picture.write_bytes(bytes(range(256)) * 60)
    name = f"phone-send-{uuid.uuid4().hex[:8]}"
    assert main(["send", str(card), str(picture), "--port", f"irsim://{name}?devices=phone", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["files"] == 2 and summary["verified"] == 2 and summary["disconnect"] == "ok"
    assert "'irsock phone'" in captured.err
    [phone] = devices_on(name)
    stored = phone.call(lambda stack, now: list(stack.inbox.objects))
    assert [(s.name, s.type, s.data, s.verified) for s in stored] == [
        ("alice.vcf", "text/x-vcard", card.read_bytes(), True),
        ("photo.jpg", "image/jpeg", picture.read_bytes(), True)]


def test_push_without_the_digest_is_stored_unverified_and_the_owner_card_is_the_default_object(phone_medium):
    iface, phone = phone_medium
    sock, _device = obex_socket(iface)
    with sock, ObexClient(sock) as client:
        assert client.peer_mtu == DEVICE_MTU
        result = client.put_bytes("note.txt", b"no checksum", digest=False)
        assert result.verified is None
        owner = parse_vcards(client.get(mime_type="text/x-vcard"))
        assert owner == [{"VERSION": "2.1", "N": OWNER[0], "TEL": OWNER[1]}]
        with pytest.raises(ObexResponseError) as refused:
            client.get("note.txt")  # the inbox hands out nothing it was given
        assert refused.value.code == P.FORBIDDEN
    [stored] = phone.call(lambda stack, now: list(stack.inbox.objects))
    assert stored.data == b"no checksum" and stored.verified is None


def test_hostile_names_are_made_safe_and_never_collide(phone_medium):
    iface, phone = phone_medium
    sock, _device = obex_socket(iface)
    offered = ["../../etc/passwd", "C:\\Windows\\evil.exe", "invoice\u202etxt.exe", "CON", ".hidden", "a\x00b\nc",
               "same.txt", "same.txt", ""]
    with sock, ObexClient(sock) as client:
        for index, name in enumerate(offered):
            client.put_bytes(name, f"object {index}".encode(), mime_type="text/x-vcard" if not name else None)
    stored = phone.call(lambda stack, now: list(stack.inbox.objects))
    assert [s.name for s in stored] == ["passwd", "evil.exe", "invoicetxt.exe", "_CON", "hidden", "a_b_c",
                                        "same.txt", "same (1).txt", "received.vcf"]
    assert [s.data for s in stored] == [f"object {i}".encode() for i in range(len(offered))]
    assert [s.offered_name for s in stored] == offered


def test_an_object_above_the_limit_is_refused_at_once_and_the_phone_goes_on(phone_medium):
    iface, phone = phone_medium
    sock, _device = obex_socket(iface)
    limit = phone.call(lambda stack, now: stack.inbox.max_size)
    with sock, ObexClient(sock) as client:
        sent = []
        with pytest.raises(ObexResponseError) as refused:  # the Length header says it: refused after one packet
            client.put_bytes("big.bin", bytes(limit + 1), progress=lambda done, total: sent.append(done))
        assert refused.value.code == P.ENTITY_TOO_LARGE and max(sent) < DEVICE_MTU
        assert client.put_bytes("small.bin", b"fits").verified
    assert [s.name for s in phone.call(lambda stack, now: list(stack.inbox.objects))] == ["small.bin"]


def test_the_inbox_holds_64_objects_then_answers_database_full(phone_medium):
    iface, phone = phone_medium
    sock, _device = obex_socket(iface)
    with sock, ObexClient(sock) as client:
        for index in range(64):
            client.put_bytes(f"{index}.txt", b"x", digest=False)
        with pytest.raises(ObexResponseError) as refused:
            client.put_bytes("65.txt", b"x")
        assert refused.value.code == P.DATABASE_FULL
    assert phone.call(lambda stack, now: len(stack.inbox.objects)) == 64


def test_a_fifth_obex_connection_is_closed_at_once(phone_medium):
    iface, phone = phone_medium
    first, device = obex_socket(iface)
    held = [first] + [obex_socket(iface, device)[0] for _ in range(3)]
    try:
        try:  # closed in the turn it is made: the disconnect may come before connect() returns
            extra, _device = obex_socket(iface, device)
        except ConnectionRefusedError:
            pass
        else:
            with extra:
                assert wait_until(lambda: extra.recv(10) == b"", what="the phone to close the fifth connection")
        with ObexClient(held[3]) as client:  # the four others are served
            assert client.put_bytes("fourth.txt", b"served").verified
    finally:
        for sock in held:
            sock.close()


# --- IrMC ------------------------------------------------------------------------------------------------------
def test_irmc_phonebook_is_the_at_phonebook_and_devinfo_names_the_same_phone(phone_medium):
    iface, phone = phone_medium

    def add_entries(stack, now):  # the phone's owner edits its phonebook: both views must follow
        stack.books["ME"][7] = Entry("+3312345", "Zoë; the \\ one")
        stack.books["ME"][3] = Entry("+4969000", "Dora")

    phone.call(add_entries)
    sock, device = obex_socket(iface)
    with sock, ObexClient(sock, target=irmc.IRMC_TARGET) as client:
        assert client.who == irmc.IRMC_TARGET and client.connection_id is not None
        cards = parse_vcards(client.get(irmc.PHONEBOOK))
        info = client.get(irmc.PHONEBOOK_INFO).decode("ascii")
        devinfo = dict(line.split(":", 1) for line in client.get(irmc.DEVINFO).decode("ascii").split("\r\n") if line)
        calendar = client.get(irmc.CALENDAR)
    with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as comm:
        comm.settimeout(20)
        comm.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_9WIRE_MODE, 1)
        comm.connect((device.address, "IrDA:IrCOMM"))
        at_command(comm, "ATE0")
        listing = at_command(comm, 'AT+CPBS="ME";+CPBR=1,100')
        identity = [at_command(comm, f"AT{c}").split("\r\n")[1] for c in ("+CGMI", "+CGMM", "+CGSN")]
    at_entries = [(fields[3].strip('"'), fields[1].strip('"')) for line in listing.split("\r\n")
                  if line.startswith("+CPBR: ") for fields in [line[7:].split(",", 3)]]
    assert [name for name, _number in at_entries] == ["Alice", "Bob", "Dora", "Emergency", "Zoë; the \\ one"]
    assert cards[0]["N"] == OWNER[0]  # IrMC: the owner's card first
    assert [(card["N"], card["TEL"]) for card in cards[1:]] == at_entries
    assert all(card["VERSION"] == "2.1" for card in cards)
    assert info == f"Total-Records:{len(at_entries)}\r\nMaximum-Records:100\r\nIEL:0x02\r\n"
    assert [devinfo["MANU"], devinfo["MOD"], devinfo["SN"]] == identity == [MANUFACTURER, MODEL, IMEI]
    assert devinfo["IRMC-VERSION"] == "1.1" and devinfo["PB-TYPE-TX"] == "VCARD2.1"
    assert calendar.startswith(b"BEGIN:VCALENDAR\r\nVERSION:1.0\r\n") and calendar.endswith(b"END:VCALENDAR\r\n")


def test_irmc_refusals_unknown_names_and_services(phone_medium):
    iface, _phone = phone_medium
    sock, device = obex_socket(iface)
    with sock, ObexClient(sock, target=irmc.IRMC_TARGET) as client:
        for name in ("telecom/nothing.vcf", "telecom/pb", "../telecom/pb.vcf", ""):
            with pytest.raises(ObexResponseError) as refused:
                client.get(name)
            assert refused.value.code == P.NOT_FOUND, name
        with pytest.raises(ObexResponseError) as refused:
            client.put_bytes("telecom/pb.vcf", b"BEGIN:VCARD\r\nEND:VCARD\r\n")
        assert refused.value.code == P.FORBIDDEN  # IrMC objects are read-only here
        assert client.get(irmc.DEVINFO).startswith(b"MANU:")  # the session goes on
    with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as other:
        other.settimeout(20)
        transfer.connect_obex(other, device.address)
        with pytest.raises(ObexResponseError) as refused:
            ObexClient(other, target=FBS_UUID).connect()  # no folder browsing on this phone
        assert refused.value.code == P.SERVICE_UNAVAILABLE


# --- hostile and greedy peers -----------------------------------------------------------------------------------
def test_a_peer_that_does_not_read_its_answers_is_held_back_not_queued_for(phone_medium):
    iface, phone = phone_medium
    sock, _device = obex_socket(iface)
    with sock:
        sock.sendall(P.build(P.CONNECT, [(P.H_TARGET, irmc.IRMC_TARGET)], connect=(P.OBEX_VERSION, 0, 0xFFFF)))
        answer = P.parse(P.read_packet(sock), response_to=P.CONNECT)
        assert answer.code == P.SUCCESS
        request = P.build(P.GET | P.FINAL, [(P.H_NAME, irmc.PHONEBOOK)])
        count = 300
        sock.setblocking(False)
        sent = 0
        stream = request * count

        def phone_state(stack, now):
            [conn] = [c for c in stack.connections.values() if c.local == OBEX_LSAP]
            return stack.pending(conn.id), len(conn.rx_units)

        def stalled():  # the phone holds our requests unread while its answers wait for us
            nonlocal sent
            try:
                sent += sock.send(stream[sent:])
            except BlockingIOError:
                pass
            pending, unread = phone.call(phone_state)
            return unread > 0 and pending > 0 and (pending, unread)

        pending, _unread = wait_until(stalled, what="the phone to leave requests unread")
        assert pending <= (OBEX_BACKLOG + 1) * DEVICE_MTU
        sock.settimeout(20)
        sock.sendall(stream[sent:])
        vcf = None
        for _ in range(count):
            response = P.parse(P.read_packet(sock), response_to=P.GET)
            assert response.code == P.SUCCESS
            vcf = vcf or response.body()
            assert response.body() == vcf
        assert parse_vcards(vcf)[0]["N"] == OWNER[0]


def test_requests_left_unread_go_with_their_connection(phone_medium):
    iface, phone = phone_medium
    sock, _device = obex_socket(iface)
    stream = P.build(P.GET | P.FINAL, [(P.H_TYPE, b"text/x-vcard\0")]) * 400
    sent = 0

    def obex_connections(stack, now):
        return [(stack.pending(c.id), len(c.rx_units)) for c in stack.connections.values() if c.local == OBEX_LSAP]

    def stalled():
        nonlocal sent
        try:
            sent += sock.send(stream[sent:])
        except BlockingIOError:
            pass
        return any(unread for _pending, unread in phone.call(obex_connections))

    sock.setblocking(False)
    wait_until(stalled, what="the phone to leave requests unread")
    sock.close()  # without reading a single answer
    wait_until(lambda: phone.call(obex_connections) == [] and phone.call(lambda stack, now: not stack.obex_sessions),
             what="the phone to forget the connection and its unread requests")


def test_a_stream_out_of_step_is_closed_and_the_phone_serves_the_next_one(phone_medium):
    iface, phone = phone_medium
    sock, device = obex_socket(iface)
    with sock:
        sock.sendall(b"\x80\x00\x01garbage")  # a packet length below its own header
        assert wait_until(lambda: sock.recv(100) == b"", what="the phone to close the connection") is True
    sock, _device = obex_socket(iface, device)
    with sock, ObexClient(sock) as client:
        assert client.put_bytes("after.txt", b"still here").verified
    assert phone.call(lambda stack, now: len(stack.obex_sessions)) <= 1


# --- the sans-IO server ----------------------------------------------------------------------------------------
def run(session, *packets: bytes) -> list[P.Packet]:
    return [P.parse(session.handle(packet)) for packet in packets]


def test_limits_of_the_memory_inbox_without_the_air():
    inbox = MemoryInbox(max_objects=2, max_size=100)
    session = ObjectServer(inbox).session(0x1234)
    put = P.PUT | P.FINAL
    # no Length: refused as soon as the body passes the limit
    [first, second] = run(session, P.build(P.PUT, [(P.H_NAME, "a.bin"), (P.H_BODY, bytes(60))]),
                          P.build(put, [(P.H_END_OF_BODY, bytes(60))]))
    assert (first.code, second.code) == (P.CONTINUE, P.ENTITY_TOO_LARGE)
    data = b"hello"
    wrong = hashlib.sha256(b"other").digest()
    [mismatch] = run(session, P.build(put, [(P.H_NAME, "x"), (P.H_IRSOCK_SHA256, wrong), (P.H_END_OF_BODY, data)]))
    assert mismatch.code == P.NOT_ACCEPTABLE
    [short] = run(session, P.build(put, [(P.H_NAME, "x"), (P.H_LENGTH, 9), (P.H_END_OF_BODY, data)]))
    assert short.code == P.BAD_REQUEST
    ok = [run(session, P.build(put, [(P.H_NAME, f"{i}.txt"), (P.H_END_OF_BODY, data)]))[0] for i in range(2)]
    assert [r.code for r in ok] == [P.SUCCESS, P.SUCCESS] and len(inbox.objects) == 2
    [full] = run(session, P.build(put, [(P.H_NAME, "3.txt"), (P.H_END_OF_BODY, data)]))
    assert full.code == P.DATABASE_FULL and len(inbox.objects) == 2
    [delete] = run(session, P.build(put, [(P.H_NAME, "0.txt")]))
    assert delete.code == P.FORBIDDEN and len(inbox.objects) == 2
    [cut] = run(session, b"\x02\x00\x05\x01\x00")  # a Name header cut short
    assert cut.code == P.BAD_REQUEST
    [unknown, setpath] = run(session, P.build(0x86, []), P.build(P.SETPATH, [(P.H_NAME, "sub")], setpath_flags=0))
    assert unknown.code == setpath.code == P.NOT_IMPLEMENTED  # no folders on a phone


def test_multi_packet_get_follows_the_clients_packet_size():
    blob = bytes(range(256)) * 8
    session = ObjectServer(None, {b"": lambda name, mime: blob if name == "blob" else None}).session(1)
    connect = P.parse(session.handle(P.build(P.CONNECT, [], connect=(P.OBEX_VERSION, 0, 300))), response_to=P.CONNECT)
    assert connect.code == P.SUCCESS and connect.max_packet == DEVICE_MTU
    got = bytearray()
    response = P.parse(session.handle(P.build(P.GET | P.FINAL, [(P.H_NAME, "blob")])))
    while response.code == P.CONTINUE:
        got += response.body()
        response = P.parse(session.handle(P.build(P.GET | P.FINAL, [])))
    assert response.code == P.SUCCESS and bytes(got + response.body()) == blob
    [missing] = run(session, P.build(P.GET | P.FINAL, [(P.H_NAME, "nothing")]))
    assert missing.code == P.NOT_FOUND


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_hostile_requests_are_answered_never_raised(raw):
    inbox = MemoryInbox(max_objects=4, max_size=64)
    session = ObjectServer(inbox, {b"": lambda name, mime: None, b"IRMC-SYNC": lambda name, mime: b"x"}).session(2)
    packet = raw[:1] + struct.pack(">H", len(raw) + 2) + raw[1:] if raw else raw
    for request in (raw, packet):
        answer = session.handle(request)
        response = P.parse(answer, response_to=request[0] if request else None)
        assert response.code in P.RESPONSE_TEXT
    assert len(inbox.objects) <= 4 and all(len(o.data) <= 64 for o in inbox.objects)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=6), st.lists(st.integers(1, 50), min_size=1))
def test_packet_reader_reassembles_whatever_the_cut(bodies, cuts):
    packets = [P.build(P.PUT, [(P.H_BODY, body)]) for body in bodies]
    stream = b"".join(packets)
    reader = P.PacketReader(DEVICE_MTU)
    out, position, index = [], 0, 0
    while position < len(stream):
        take = min(cuts[index % len(cuts)], reader.wanted())
        index += 1
        whole = reader.feed(stream[position:position + take])
        position += take
        if whole is not None:
            out.append(whole)
    assert out == packets and reader.pending == 0


def test_packet_reader_refuses_impossible_lengths():
    with pytest.raises(P.ObexError):
        P.PacketReader(1000).feed(b"\x02\x00\x02")
    with pytest.raises(P.ObexError):
        P.PacketReader(1000).feed(b"\x02\x10\x00")
    reader = P.PacketReader(1000)
    with pytest.raises(P.ObexError):
        reader.feed(b"\x02\x00\x03\x00")  # more than the packet under way
