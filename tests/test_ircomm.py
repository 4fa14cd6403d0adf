"""IrCOMM framing and control channel: golden bytes, round trips, negotiation, lines, hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irsock import ircomm as I


def test_golden_frames_and_parameters():
    # the IAS Parameters attribute of a 9-wire + 3-wire serial port (irda-facts: 00 01 <types> 01 01 <port>)
    assert I.ias_parameters(I.SERVICE_9WIRE | I.SERVICE_3WIRE) == bytes.fromhex("000106010100")
    assert I.parse_ias_parameters(bytes.fromhex("000106010100")) == (0x06, 0x00)
    # a data frame without control (tshark: "Clen=0, UserData: 5 bytes")
    assert I.frame(b"hello") == b"\x00hello"
    # the DTE's hello: service types, 9600 bit/s, 8N1, no flow control, XON/XOFF chars, DTR+RTS
    hello = I.IrCommChannel().hello()
    assert hello == bytes.fromhex("000106" "100400002580" "110103" "120100" "13021113" "20010c")
    assert I.unframe(I.frame(b"AT\r", hello)) == (hello, b"AT\r")


params = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=8)


@given(params)
def test_parameters_round_trip(triples):
    assert I.decode_params(I.encode_params(triples)) == triples


@given(st.binary(max_size=60), st.binary(max_size=200))
def test_frames_round_trip(control, data):
    assert I.unframe(I.frame(data, control)) == (control, data)


@given(st.binary(max_size=64))
def test_hostile_control_parts_raise_only_ircomm_error(data):
    channel = I.IrCommChannel(dte=False)
    try:
        channel.on_params(data)
    except I.IrCommError:
        pass
    try:
        I.unframe(data)
    except I.IrCommError:
        pass


@pytest.mark.parametrize("control, words", [
    (b"\x10", "inside a parameter header"),
    (b"\x10\x04\x00\x00", "says 4 bytes, 2 remain"),
])
def test_malformed_parameters_say_what(control, words):
    with pytest.raises(I.IrCommError, match=words):
        I.decode_params(control)


def test_empty_frame_and_overrunning_clen():
    with pytest.raises(I.IrCommError, match="empty"):
        I.unframe(b"")
    with pytest.raises(I.IrCommError, match="clen 5"):
        I.unframe(b"\x05ab")


@pytest.mark.parametrize("offered, supported, chosen", [
    (0x06, 0x06, I.SERVICE_9WIRE),
    (0x02, 0x06, I.SERVICE_3WIRE),
    (0x07, 0x01, I.SERVICE_3WIRE_RAW),
    (0x04, 0x02, 0),
])
def test_service_type_negotiation(offered, supported, chosen):
    assert I.choose_service(offered, supported) == chosen


def test_dte_and_dce_agree_on_a_service_type_and_settings():
    dte, dce = I.IrCommChannel(dte=True), I.IrCommChannel(dte=False, services=I.SERVICE_9WIRE)
    answer = dce.on_params(dte.hello())
    assert dce.service == I.SERVICE_9WIRE and answer == bytes.fromhex("000104")
    assert dte.on_params(answer) == b"" and dte.service == I.SERVICE_9WIRE
    assert dce.peer_settings.data_rate == 9600 and dce.peer_dte_lines() == {"dtr": True, "rts": True}
    change = dte.set_settings(data_rate=115200)
    assert change == bytes.fromhex("10040001c200")  # only what changed
    dce.on_params(change)
    assert dce.peer_settings.data_rate == 115200 and "data rate 115200" in dce.changes


def test_lines_carry_deltas_and_poll_is_answered():
    dte, dce = I.IrCommChannel(dte=True, service=I.SERVICE_9WIRE), I.IrCommChannel(dte=False,
                                                                                   service=I.SERVICE_9WIRE)
    assert dte.set_dte_lines(dtr=True) == b""  # no change, nothing to say
    drop = dte.set_dte_lines(dtr=False)
    assert drop == bytes([I.PI_DTE, 1, I.DTE_RTS | I.DTE_DELTA_DTR])
    dce.on_params(drop)
    assert dce.peer_dte_lines() == {"dtr": False, "rts": True}
    carrier = dce.set_dce_lines(cd=False)
    assert carrier == bytes([I.PI_DCE, 1, I.DCE_CTS | I.DCE_DSR | I.DCE_DELTA_CD])
    dte.on_params(carrier)
    assert dte.peer_dce_lines() == {"cts": True, "dsr": True, "ri": False, "cd": False}
    assert dce.on_params(dte.poll()) == bytes([I.PI_DCE, 1, I.DCE_CTS | I.DCE_DSR])


def test_three_wire_says_nothing_of_lines_and_unknown_parameters_are_skipped():
    dte = I.IrCommChannel(dte=True, services=I.SERVICE_3WIRE, service=I.SERVICE_3WIRE)
    assert dte.set_dte_lines(dtr=False) == b""
    assert dte.on_params(bytes.fromhex("7f0201020000") + bytes.fromhex("100400002580")) == b""
    assert dte.unknown == 2 and dte.peer_settings.data_rate == 9600  # 0x7f and an empty service type


def test_data_is_split_into_frames_that_fit():
    frames = I.split_data(b"x" * 100, room=40, control=b"\x20\x01\x0c")
    assert frames[0] == b"\x03\x20\x01\x0c" + b"x" * 36 and all(len(f) <= 40 for f in frames)
    assert b"".join(I.unframe(f)[1] for f in frames) == b"x" * 100


# --- the emulated phone ------------------------------------------------------------------------------------
def test_phone_answers_what_gammu_asks_first():
    from irsock.devices.phone import IMEI, MANUFACTURER, MODEL, AtPhone

    phone = AtPhone()
    assert phone.feed(b"\x1bAT\r") == b"AT\r\r\nOK\r\n"  # ESC dropped, echo on
    assert phone.feed(b"ATE0\r") == b"ATE0\r\r\nOK\r\n"  # echoed before echo went off
    assert phone.feed(b"AT+CMEE=1\r") == b"\r\nOK\r\n"
    assert phone.feed(b'AT+CSCS?\r') == b'\r\n+CSCS: "IRA"\r\n\r\nOK\r\n'
    assert b'"UCS2"' in phone.feed(b"AT+CSCS=?\r")
    assert phone.feed(b"AT+CGMI\r") == f"\r\n{MANUFACTURER}\r\n\r\nOK\r\n".encode()
    assert phone.feed(b"AT+CGMM;+CGSN\r") == f"\r\n{MODEL}\r\n{IMEI}\r\n\r\nOK\r\n".encode()
    assert phone.feed(b"AT+MODE=2\r") == b"\r\n+CME ERROR: 4\r\n"  # not a phone command: an error, as phones do


def test_phone_phonebook_and_clock():
    from irsock.devices.phone import AtPhone

    phone = AtPhone(echo=False)
    assert phone.feed(b'AT+CPBS="ME"\r') == b"\r\nOK\r\n"
    assert phone.feed(b"AT+CPBS?\r") == b'\r\n+CPBS: "ME",3,100\r\n\r\nOK\r\n'
    assert phone.feed(b"AT+CPBR=?\r") == b"\r\n+CPBR: (1-100),40,24\r\n\r\nOK\r\n"
    listing = phone.feed(b"AT+CPBR=1,4\r")
    assert listing.count(b"+CPBR:") == 2 and b'"+4930123456",145,"Alice"' in listing
    assert phone.feed(b"AT+CPBR=0\r") == b"\r\nERROR\r\n"
    phone.feed(b"AT+CMEE=2\r")
    assert phone.feed(b"AT+CPBR=101\r") == b"\r\n+CME ERROR: invalid index\r\n"
    assert phone.feed(b'AT+CSCS="UCS2"\r') == b"\r\nOK\r\n"
    assert b'"0041006C006900630065"' in phone.feed(b"AT+CPBR=1\r")
    assert phone.feed(b"AT+CCLK?\r").startswith(b'\r\n+CCLK: "')


def test_phone_survives_garbage_and_overlong_lines():
    from irsock.devices.phone import AtPhone

    phone = AtPhone(echo=False)
    assert phone.feed(b"\x00\xff\x80garbage\r") == b""  # not a command line: ignored
    assert phone.feed(b"AT" + b"X" * 5000 + b"\r") == b"\r\nERROR\r\n"
    assert phone.feed(b"AT\r") == b"\r\nOK\r\n"


def test_nine_wire_socket_talks_to_the_emulated_phone():
    import uuid

    import irsock

    iface = irsock.attach(f"irsim://phone-{uuid.uuid4().hex[:8]}?devices=phone", nickname="pc")
    try:
        with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_9WIRE_MODE, 1)
            assert sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_9WIRE_MODE) == 1
            [phone] = sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES)
            assert phone.name == "irsock phone" and "Telephony" in phone.hint_words
            params = sock.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_IAS_QUERY,
                                     irsock.IasQuery(phone.address, "IrDA:IrCOMM", "Parameters"))
            assert I.parse_ias_parameters(params.octets) == (I.SERVICE_9WIRE | I.SERVICE_3WIRE, I.PORT_SERIAL)
            sock.connect((phone.address, "IrDA:IrCOMM"))
            sock.sendall(b"ATE0\r")
            reply = b""
            while not reply.endswith(b"OK\r\n"):
                reply += sock.recv(100)
            sock.sendall(b"AT+CGSN\r")
            reply = b""
            while not reply.endswith(b"OK\r\n"):
                reply += sock.recv(100)
            assert reply == b"\r\n350000000000006\r\n\r\nOK\r\n"
            channel = sock._impl.ircomm
            assert channel.service == I.SERVICE_9WIRE  # the phone answered our hello with the type it took
            with pytest.raises(OSError):
                sock.setsockopt(irsock.SOL_IRLMP, irsock.IRLMP_9WIRE_MODE, 0)  # too late once connected
    finally:
        iface.close()


def test_an_unknown_device_kind_names_the_known_ones():
    import serial

    import irsock  # noqa: F401 - registers the personalities

    with pytest.raises(serial.SerialException, match="unknown device kind fax: a number or a list of dive, echo, phone, printer"):  # noqa: E501
        serial.serial_for_url("irsim://kinds?devices=fax")
