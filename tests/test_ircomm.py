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
