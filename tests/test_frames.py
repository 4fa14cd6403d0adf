"""IrLAP frame codec: golden bytes (oracles.md 1.5, irda-facts 2.4), errors, hypothesis round trips."""

import construct
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import irlap.frames as F
from irlap.errors import FrameError
from irlap.frames import build, parse
from irlap.qos import QosParams


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def roundtrip(data: bytes) -> F.Frame:
    frame = parse(data)
    assert build(frame) == data
    assert frame.to_bytes() == data
    return frame


# --- golden frames decoded by tshark 4.0.17 -----------------------------------------------------
def test_xid_command_slot0():
    f = roundtrip(h("ff 3f 01 78 56 34 12 ff ff ff ff 02 00 00"))
    assert isinstance(f, F.XIDCommand) and f.command and f.poll_final
    assert f.address == 0x7F and f.source == 0x12345678 and f.dest == 0xFFFFFFFF
    assert f.slots == 8 and f.slot == 0 and not f.is_final and f.info is None


def test_xid_command_final_with_info():
    f = roundtrip(h("ff 3f 01 78 56 34 12 ff ff ff ff 02 ff 00 84 20 00 70 79 69 72 64 61"))
    assert f.is_final and f.info.hints == b"\x84\x20" and f.info.hint_value == 0x8420
    assert f.info.charset == 0 and f.info.nickname == "pyirda"


def test_xid_response():
    f = roundtrip(h("fe bf 01 22 22 22 22 11 11 11 11 01 00 00 84 24 00 70 65 65 72"))
    assert isinstance(f, F.XIDResponse) and not f.command
    assert f.source == 0x22222222 and f.dest == 0x11111111 and f.slots == 6 and f.info.nickname == "peer"


SNRM_HEX = "ff 93 11 11 11 11 22 22 22 22 54 01 02 3e 00 82 01 01 83 01 3f 84 01 7f 85 01 80 86 01 03 08 01 07"


def test_snrm_with_qos():
    f = roundtrip(h(SNRM_HEX))
    assert isinstance(f, F.SNRM) and not f.is_reset
    assert f.source == 0x11111111 and f.dest == 0x22222222 and f.new_address == 0x2A
    assert f.qos.value("baud") == 115200 and f.qos.value("data_size") == 2048
    # the two-byte baud field survives the round trip because the raw bytes are kept
    assert build(f) == h(SNRM_HEX)


def test_ua_with_qos():
    f = roundtrip(h("54 73 22 22 22 22 11 11 11 11 01 01 3e 82 01 01 83 01 07 84 01 01 85 01 80 86 01 01 08 01 07"))
    assert isinstance(f, F.UA) and f.address == 0x2A and f.source == 0x22222222
    assert f.qos.value("data_size") == 256 and f.qos.value("window_size") == 1


@pytest.mark.parametrize(
    "hexbytes, cls, command",
    [
        ("55 11", F.RR, True),
        ("54 11", F.RR, False),
        ("55 53", F.DISC, True),
        ("54 73", F.UA, False),
        ("54 1f", F.DM, False),
        ("54 53", F.RD, False),
        ("55 93", F.SNRM, True),
        ("54 93", F.RNRM, False),
    ],
)
def test_short_frames(hexbytes, cls, command):
    f = roundtrip(h(hexbytes))
    assert type(f) is cls and f.command is command and f.address == 0x2A and f.poll_final


def test_snrm_reset_has_no_fields():
    f = roundtrip(h("55 93"))
    assert f.is_reset and f.qos is None


@pytest.mark.parametrize("code, cls", [(0x01, F.RR), (0x05, F.RNR), (0x09, F.REJ), (0x0D, F.SREJ)])
def test_s_frames_carry_nr(code, cls):
    f = roundtrip(bytes((0x55, 5 << 5 | code)))
    assert type(f) is cls and f.nr == 5 and not f.poll_final
    assert cls(address=0x2A, command=False, poll_final=True, nr=7).to_bytes() == bytes((0x54, 0xE0 | 0x10 | code))


def test_i_frame():
    f = roundtrip(h("55 78 05 11 01 00 68 65 6c 6c 6f"))
    assert isinstance(f, F.IFrame)
    assert (f.ns, f.nr, f.poll_final) == (4, 3, True)
    assert f.info == h("05 11 01 00") + b"hello"
    i_frame = F.IFrame(address=0x2A, command=False, poll_final=False, ns=7, nr=7, info=b"x")
    assert i_frame.to_bytes() == b"\x54\xee" + b"x"


def test_frmr():
    f = roundtrip(h("54 97 e3 a6 09"))
    assert isinstance(f, F.FRMR)
    assert f.rejected_control == 0xE3 and f.vs == 3 and f.vr == 5 and f.rejected_was_response is False
    assert f.w and f.z and not f.x and not f.y
    built = F.FRMR(address=0x2A, rejected_control=0x11, vs=1, vr=2, rejected_was_response=True, z=True).to_bytes()
    assert built == h("54 97 11 52 08")


def test_ui_and_test_frames():
    ui = roundtrip(h("ff 03 70 01 68 69"))
    assert isinstance(ui, F.UI) and ui.info == h("70 01 68 69")
    test = roundtrip(h("ff f3 11 11 11 11 22 22 22 22 01 02 03"))
    assert isinstance(test, F.TEST) and test.source == 0x11111111 and test.info == b"\x01\x02\x03"
    empty = roundtrip(h("ff f3"))
    assert empty.source is None and empty.info == b""
    connected = roundtrip(h("55 f3 aa bb"))
    assert connected.source is None and connected.info == b"\xaa\xbb"


# --- building from objects --------------------------------------------------------------------------
def test_build_snrm_from_qos_object_matches_tshark_golden_layout():
    qos = QosParams.decode(h("01 02 3e 00 82 01 01 83 01 3f 84 01 7f 85 01 80 86 01 03 08 01 07"))
    f = F.SNRM(source=0x11111111, dest=0x22222222, new_address=0x2A, qos=qos)
    data = f.to_bytes()
    assert data[:11] == h(SNRM_HEX)[:11]
    assert parse(data) == f


def test_discovery_info_make_ascii_and_unicode():
    info = F.DiscoveryInfo.make("pyirda", hints=0x8420)
    assert info.to_bytes() == h("84 20 00") + b"pyirda"
    uni = F.DiscoveryInfo.make("Ünïcødé-Gerät")
    assert uni.charset == 0xFF and uni.nickname == "Ünïcødé-Gerät"[:10]
    assert len(uni.nickname_bytes) == 20 and len(uni.nickname_bytes) % 2 == 0
    long_ascii = F.DiscoveryInfo.make("x" * 40, hints=b"\x04\x20\x01")
    assert len(long_ascii.nickname_bytes) == 21
    assert long_ascii.hints == b"\x84\xa0\x01"


def test_unicode_nickname_round_trip_in_xid():
    info = F.DiscoveryInfo.make("Tauch ☺", hints=0x8220)
    frame = F.XIDResponse(source=0xCAFE7D01, dest=0x11111111, slots=16, slot=9, info=info)
    data = frame.to_bytes()
    assert parse(data) == frame
    assert parse(data).info.nickname == "Tauch ☺"


def test_iso8859_and_broken_unicode_decode_without_raising():
    assert F.DiscoveryInfo(b"\x00", 1, b"caf\xe9").nickname == "café"
    assert "\ufffd" in F.DiscoveryInfo(b"\x00", 0xFF, b"\x00a\xd8").nickname


def test_multi_byte_hints_with_extension_bits():
    data = h("fe bf 01 22 22 22 22 11 11 11 11 01 00 00 81 82 04 00") + b"x"
    f = roundtrip(data)
    assert f.info.hints == h("81 82 04") and f.info.nickname == "x"


def test_conflict_and_reserved_flags_round_trip():
    f = roundtrip(h("ff 3f 01 78 56 34 12 ff ff ff ff 47 03 00"))
    assert f.conflict and f.slots == 16 and f.reserved_flags == 0x40 and f.slot == 3


# --- malformed input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "hexbytes, words",
    [
        ("", "too short"),
        ("55", "too short"),
        ("55 11 00", "none is allowed"),
        ("55 53 00", "none is allowed"),
        ("54 1f 01", "none is allowed"),
        ("ff 3f 01 78 56 34", "too short"),
        ("ff 3f 02 78 56 34 12 ff ff ff ff 02 00 00", "format"),
        ("ff 3f 01 78 56 34 12 ff ff ff ff 02 ff 00 84 a0", "never end"),
        ("ff 3f 01 78 56 34 12 ff ff ff ff 02 ff 00 04", "character set"),
        ("fe 3f 01 78 56 34 12 ff ff ff ff 02 00 00", "sent as a response"),
        ("54 97 01 02", "3 bytes"),
        ("54 97 01 03 00", "reserved"),
        ("ff 93 11 11 11 11 22 22", "too short"),
        ("ff 93 11 11 11 11 22 22 22 22 55", "C/R"),
        ("ff 93 11 11 11 11 22 22 22 22 fe", "broadcast"),
        ("ff 93 11 11 11 11 22 22 22 22 54 83 00", "QoS"),
        ("54 73 11 11", "too short"),
        ("ff f3 11 11", "lacks device addresses"),
        ("55 63", "undefined command"),
        ("54 2b", "undefined response"),
    ],
)
def test_malformed_frames_raise_frame_error(hexbytes, words):
    with pytest.raises(FrameError, match=words):
        parse(h(hexbytes))


def test_undefined_control_carries_what_frmr_needs():
    with pytest.raises(F.UndefinedControlError) as info:
        parse(h("55 77 00"))
    assert info.value.control == 0x77 and info.value.address_byte == 0x55 and info.value.has_info


def test_invalid_objects_rejected_at_construction():
    with pytest.raises(ValueError):
        F.IFrame(ns=8)
    with pytest.raises(ValueError):
        F.UA(command=True)
    with pytest.raises(ValueError):
        F.SNRM(source=1)
    with pytest.raises(ValueError):
        F.RR(address=0x80)


def test_compiled_and_plain_structs_agree():
    plain = construct.Struct(
        "format" / construct.Int8ub, "source" / construct.Int32ul, "dest" / construct.Int32ul,
        "flags" / construct.Int8ub, "slot" / construct.Int8ub, "version" / construct.Int8ub,
        "info" / construct.GreedyBytes,
    )
    body = h("01 78 56 34 12 ff ff ff ff 02 ff 00 84 20 00 70 79")
    assert dict(F._XID_BODY.parse(body)) | {"_io": None} == dict(plain.parse(body)) | {"_io": None}
    frmr_plain = construct.Struct(
        "rejected" / construct.Int8ub,
        "state" / construct.BitStruct("vr" / construct.BitsInteger(3), "cr" / construct.Flag,
                                      "vs" / construct.BitsInteger(3), "zero" / construct.Bit),
        "reasons" / construct.BitStruct("reserved" / construct.BitsInteger(4), "z" / construct.Flag,
                                        "y" / construct.Flag, "x" / construct.Flag, "w" / construct.Flag),
    )
    for body in (h("e3 a6 09"), h("11 52 08"), h("00 00 00")):
        assert F._FRMR_BODY.build(F._FRMR_BODY.parse(body)) == frmr_plain.build(frmr_plain.parse(body)) == body


# --- properties -----------------------------------------------------------------------------------
@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_frame_error(data):
    try:
        frame = parse(data)
    except FrameError:
        return
    assert build(frame) == data


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from([0x01, 0x03, 0x0F, 0x2F, 0x43, 0x63, 0x83, 0x87, 0xAF, 0xE3]), st.integers(0, 255),
       st.booleans(), st.binary(max_size=40))
def test_u_frames_with_random_bodies(code, address_byte, pf, body):
    data = bytes((address_byte, code | (0x10 if pf else 0))) + body
    try:
        frame = parse(data)
    except FrameError:
        return
    assert build(frame) == data


addresses = st.integers(0, 0x7F)
devices = st.integers(0, 0xFFFFFFFF)
seq = st.integers(0, 7)
qos_params = st.builds(
    QosParams, baud=st.integers(1, 0x3FF), max_turnaround=st.integers(1, 0xF), data_size=st.integers(1, 0x3F),
    window_size=st.integers(1, 0x7F), additional_bofs=st.integers(1, 0xFF), min_turnaround=st.integers(1, 0xFF),
    link_disconnect=st.integers(1, 0xFF),
)
infos = st.one_of(
    st.none(),
    st.builds(F.DiscoveryInfo.make, st.text(max_size=25), st.integers(0, 0xFFFFFF)),
)
xid_kwargs = {
    "source": devices, "dest": devices, "slots": st.sampled_from(F.SLOT_COUNTS), "slot": st.integers(0, 255),
    "conflict": st.booleans(), "version": st.integers(0, 255), "info": infos,
    "reserved_flags": st.integers(0, 31).map(lambda v: v << 3), "poll_final": st.booleans(),
}
frames = st.one_of(
    st.builds(F.IFrame, address=addresses, command=st.booleans(), poll_final=st.booleans(), ns=seq, nr=seq,
              info=st.binary(max_size=64)),
    *[st.builds(cls, address=addresses, command=st.booleans(), poll_final=st.booleans(), nr=seq)
      for cls in (F.RR, F.RNR, F.REJ, F.SREJ)],
    st.builds(F.SNRM, address=addresses, poll_final=st.booleans()),
    st.builds(F.SNRM, poll_final=st.booleans(), source=devices, dest=devices, new_address=st.integers(0, 0x7E),
              qos=qos_params),
    st.builds(F.UA, address=addresses, poll_final=st.booleans()),
    st.builds(F.UA, address=addresses, source=devices, dest=devices, qos=st.one_of(st.none(), qos_params)),
    *[st.builds(cls, address=addresses, poll_final=st.booleans()) for cls in (F.RNRM, F.DISC, F.RD, F.DM)],
    st.builds(F.FRMR, address=addresses, rejected_control=st.integers(0, 255), vs=seq, vr=seq,
              rejected_was_response=st.booleans(), w=st.booleans(), x=st.booleans(), y=st.booleans(),
              z=st.booleans()),
    st.builds(F.XIDCommand, **xid_kwargs),
    st.builds(F.XIDResponse, **xid_kwargs),
    st.builds(F.TEST, command=st.booleans(), source=devices, dest=devices, info=st.binary(max_size=32)),
    st.builds(F.TEST, address=st.integers(0, 0x7E), command=st.booleans(), info=st.binary(max_size=32)),
    st.builds(F.UI, address=addresses, command=st.booleans(), info=st.binary(max_size=32)),
)


@settings(max_examples=1500, deadline=None)
@given(frames)
def test_every_frame_round_trips(frame):
    data = build(frame)
    parsed = parse(data)
    assert parsed == frame
    assert build(parsed) == data
