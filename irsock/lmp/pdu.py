"""IrLMP, IAS (IrIAP) and TinyTP PDUs: bytes to small immutable objects and back.

IrLMP rides in IrLAP I-frames (and UI frames for connectionless data):

* data PDU ``DLSAP, SLSAP, data`` (bit 7 of the first byte clear);
* control PDU ``0x80 | DLSAP, SLSAP, opcode, parameter[, user data]``: Connect (0x01),
  Connect confirm (0x81), Disconnect (0x02, reason), Access mode request (0x03: reserved byte, mode) and
  confirm (0x83: status, mode);
* connectionless: ``DLSAP=0x70, SLSAP=0x70, PID, data``.

IAS sits directly on an IrLMP connection to LSAP 0; TinyTP puts one header byte in front of each
data PDU (``M << 7 | credit``) and its parameters in the connect user data. Declarations use
construct; malformed input raises :class:`PduError`, never a construct or index error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import construct as c

from irsock.errors import IrSockError

LSAP_IAS = 0x00
LSAP_CONNECTIONLESS = 0x70
LSAP_MIN = 0x01
LSAP_MAX = 0x6F

OP_CONNECT = 0x01
OP_CONNECT_CONFIRM = 0x81
OP_DISCONNECT = 0x02
OP_ACCESS_MODE = 0x03
OP_ACCESS_MODE_CONFIRM = 0x83

# Access mode PDUs: ``0x80|DLSAP, SLSAP, 0x03 (request) / 0x83 (confirm), reserved / status, mode``
ACCESS_MULTIPLEXED = 0x00
ACCESS_EXCLUSIVE = 0x01
ACCESS_STATUS_SUCCESS = 0x00
ACCESS_STATUS_FAILURE = 0x01
ACCESS_STATUS_UNSUPPORTED = 0xFF
ACCESS_MODE_WORDS = {ACCESS_MULTIPLEXED: "multiplexed", ACCESS_EXCLUSIVE: "exclusive"}
ACCESS_STATUS_WORDS = {ACCESS_STATUS_SUCCESS: "success", ACCESS_STATUS_FAILURE: "failure",
                       ACCESS_STATUS_UNSUPPORTED: "unsupported"}


class PduError(IrSockError, ValueError):
    """Bytes that are not a valid IrLMP / IAS / TinyTP PDU."""


class DisconnectReason(enum.IntEnum):
    USER_REQUEST = 0x01
    UNEXPECTED_LAP_DISCONNECT = 0x02
    LAP_CONNECT_FAILED = 0x03
    LAP_RESET = 0x04
    LM_INITIATED = 0x05
    DATA_ON_DISCONNECTED_LSAP = 0x06
    CLIENT_NOT_RESPONDING = 0x07
    NO_CLIENT = 0x08
    HALF_OPEN = 0x09
    ILLEGAL_SOURCE = 0x0A
    UNSPECIFIED = 0xFF

    @classmethod
    def of(cls, value: int) -> DisconnectReason:
        try:
            return cls(value)
        except ValueError:
            return cls.UNSPECIFIED


# --- IrLMP --------------------------------------------------------------------------------------
_CONTROL = c.Struct(
    "dlsap" / c.Int8ub,
    "slsap" / c.Int8ub,
    "opcode" / c.Int8ub,
    "parameter" / c.Int8ub,
    "data" / c.GreedyBytes,
).compile()


@dataclass(frozen=True, slots=True)
class LmpData:
    dlsap: int
    slsap: int
    data: bytes


@dataclass(frozen=True, slots=True)
class LmpControl:
    """A control PDU. ``parameter`` is the reason of a Disconnect, the mode/status of access mode PDUs."""

    dlsap: int
    slsap: int
    opcode: int
    parameter: int = 0
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class LmpConnectionless:
    pid: int
    data: bytes


def parse_lmp(data: bytes) -> LmpData | LmpControl:
    data = bytes(data)
    if len(data) < 2:
        raise PduError(f"IrLMP PDU of {len(data)} byte(s): DLSAP and SLSAP are required")
    if data[0] & 0x80:
        if len(data) < 4:
            raise PduError(f"IrLMP control PDU of {len(data)} bytes: opcode and parameter are required")
        parsed = _CONTROL.parse(bytes((data[0] & 0x7F,)) + data[1:])
        if parsed.opcode not in (OP_CONNECT, OP_CONNECT_CONFIRM, OP_DISCONNECT, OP_ACCESS_MODE,
                                 OP_ACCESS_MODE_CONFIRM):
            raise PduError(f"unknown IrLMP opcode 0x{parsed.opcode:02x}")
        if parsed.slsap & 0x80:
            raise PduError("IrLMP SLSAP with bit 7 set")
        return LmpControl(parsed.dlsap, parsed.slsap, parsed.opcode, parsed.parameter, parsed.data)
    if data[1] & 0x80:
        raise PduError("IrLMP SLSAP with bit 7 set")
    return LmpData(data[0], data[1], data[2:])


def build_lmp(pdu: LmpData | LmpControl) -> bytes:
    if not (0 <= pdu.dlsap <= 0x7F and 0 <= pdu.slsap <= 0x7F):
        raise ValueError("LSAP selectors are 7-bit values")
    if isinstance(pdu, LmpData):
        return bytes((pdu.dlsap, pdu.slsap)) + bytes(pdu.data)
    body = _CONTROL.build({"dlsap": pdu.dlsap, "slsap": pdu.slsap, "opcode": pdu.opcode,
                           "parameter": pdu.parameter, "data": bytes(pdu.data)})
    return bytes((body[0] | 0x80,)) + body[1:]


def build_access_mode(dlsap: int, slsap: int, mode: int, status: int | None = None) -> bytes:
    """An access mode request (``status`` None: the reserved byte is 0) or confirm (with ``status``)."""
    if not 0 <= mode <= 0xFF:
        raise ValueError("the access mode is one byte")
    opcode = OP_ACCESS_MODE if status is None else OP_ACCESS_MODE_CONFIRM
    return build_lmp(LmpControl(dlsap, slsap, opcode, 0 if status is None else status, bytes((mode,))))


def access_mode_of(pdu: LmpControl) -> int | None:
    """The mode byte of an access mode PDU (the first byte after the parameter); None when it is missing."""
    return pdu.data[0] if pdu.data else None


def parse_connectionless(data: bytes) -> LmpConnectionless:
    data = bytes(data)
    if len(data) < 3 or data[0] != LSAP_CONNECTIONLESS or data[1] != LSAP_CONNECTIONLESS:
        raise PduError("not a connectionless IrLMP PDU (LSAP 0x70, PID)")
    if data[2] & 0x80:
        raise PduError("connectionless PDU with the PID extension bit (unsupported)")
    return LmpConnectionless(data[2], data[3:])


def build_connectionless(pdu: LmpConnectionless) -> bytes:
    if not 0 <= pdu.pid <= 0x7F:
        raise ValueError("the PID is a 7-bit value")
    return bytes((LSAP_CONNECTIONLESS, LSAP_CONNECTIONLESS, pdu.pid)) + bytes(pdu.data)


# --- IAS -----------------------------------------------------------------------------------------
IAS_LST = 0x80
IAS_ACK = 0x40
IAS_GET_VALUE_BY_CLASS = 0x04

IAS_SUCCESS = 0x00
IAS_NO_SUCH_CLASS = 0x01
IAS_NO_SUCH_ATTRIBUTE = 0x02
IAS_LIST_TOO_LONG = 0x03
IAS_UNSUPPORTED = 0xFF

IAS_RETURN_WORDS = {
    IAS_SUCCESS: "success",
    IAS_NO_SUCH_CLASS: "no such class",
    IAS_NO_SUCH_ATTRIBUTE: "no such attribute",
    IAS_LIST_TOO_LONG: "attribute list too long",
    IAS_UNSUPPORTED: "operation not supported",
}

VALUE_MISSING = 0
VALUE_INTEGER = 1
VALUE_OCTETS = 2
VALUE_STRING = 3

MAX_OCTETS = 1024
MAX_STRING = 255


@dataclass(frozen=True, slots=True)
class IasValue:
    """One IAS attribute value: an integer, an octet sequence, a user string (with charset) or missing."""

    kind: int
    integer: int = 0
    octets: bytes = b""
    charset: int = 0

    @classmethod
    def of_int(cls, value: int) -> IasValue:
        if not -(2**31) <= value < 2**31:
            raise ValueError("IAS integers are 32-bit signed")
        return cls(VALUE_INTEGER, integer=value)

    @classmethod
    def of_octets(cls, value: bytes) -> IasValue:
        if len(value) > MAX_OCTETS:
            raise ValueError(f"IAS octet sequences hold at most {MAX_OCTETS} bytes")
        return cls(VALUE_OCTETS, octets=bytes(value))

    @classmethod
    def of_string(cls, text: str | bytes, charset: int = 0) -> IasValue:
        from irlap.frames import encode_nickname

        raw = text if isinstance(text, bytes) else encode_nickname(text, charset, MAX_STRING)
        if len(raw) > MAX_STRING:
            raise ValueError(f"IAS user strings hold at most {MAX_STRING} bytes")
        return cls(VALUE_STRING, octets=bytes(raw), charset=charset)

    @property
    def text(self) -> str:
        from irlap.frames import decode_nickname

        return decode_nickname(self.octets, self.charset)

    @property
    def python(self) -> int | bytes | str | None:
        return {VALUE_INTEGER: self.integer, VALUE_OCTETS: self.octets, VALUE_STRING: self.text}.get(self.kind)

    def encode(self) -> bytes:
        if self.kind == VALUE_INTEGER:
            return bytes((VALUE_INTEGER,)) + self.integer.to_bytes(4, "big", signed=True)
        if self.kind == VALUE_OCTETS:
            return bytes((VALUE_OCTETS,)) + len(self.octets).to_bytes(2, "big") + self.octets
        if self.kind == VALUE_STRING:
            return bytes((VALUE_STRING, self.charset, len(self.octets))) + self.octets
        return bytes((VALUE_MISSING,))

    def describe(self) -> str:
        if self.kind == VALUE_INTEGER:
            return f"integer {self.integer}"
        if self.kind == VALUE_OCTETS:
            return f"octets {self.octets.hex()}"
        if self.kind == VALUE_STRING:
            return f"string {self.text!r} (charset {self.charset})"
        return "missing"


@dataclass(frozen=True, slots=True)
class IasRequest:
    class_name: bytes
    attribute: bytes
    control: int = IAS_LST | IAS_GET_VALUE_BY_CLASS


@dataclass(frozen=True, slots=True)
class IasResponse:
    """A GetValueByClass answer: return code and (object id, value) entries."""

    status: int
    entries: tuple[tuple[int, IasValue], ...] = ()
    control: int = IAS_LST | IAS_GET_VALUE_BY_CLASS


def build_ias_request(class_name: bytes, attribute: bytes) -> bytes:
    if len(class_name) > 255 or len(attribute) > 255:
        raise ValueError("IAS class and attribute names are at most 255 bytes")
    header = bytes((IAS_LST | IAS_GET_VALUE_BY_CLASS, len(class_name)))
    return header + class_name + bytes((len(attribute),)) + attribute


def parse_ias_request(data: bytes) -> tuple[int, bytes, bytes]:
    """(control, class, attribute) of a request; other opcodes come back with empty names."""
    data = bytes(data)
    if not data:
        raise PduError("empty IAS request")
    control = data[0]
    if control & 0x3F != IAS_GET_VALUE_BY_CLASS:
        return control, b"", b""
    try:
        class_len = data[1]
        class_name = data[2 : 2 + class_len]
        attr_len = data[2 + class_len]
        attribute = data[3 + class_len : 3 + class_len + attr_len]
    except IndexError:
        raise PduError("truncated IAS GetValueByClass request") from None
    if len(class_name) != class_len or len(attribute) != attr_len:
        raise PduError("truncated IAS GetValueByClass request")
    return control, class_name, attribute


def build_ias_response_body(status: int, entries: tuple[tuple[int, IasValue], ...] = ()) -> bytes:
    """Return code and value list (without the control byte, which the fragmenter adds)."""
    if status != IAS_SUCCESS:
        return bytes((status,))
    out = bytearray((status,)) + len(entries).to_bytes(2, "big")
    for object_id, value in entries:
        out += object_id.to_bytes(2, "big") + value.encode()
    return bytes(out)


def parse_ias_response_body(data: bytes) -> IasResponse:
    data = bytes(data)
    if not data:
        raise PduError("empty IAS response")
    status = data[0]
    if status != IAS_SUCCESS:
        return IasResponse(status)
    try:
        count = int.from_bytes(data[1:3], "big")
        if len(data) < 3:
            raise IndexError
        pos = 3
        entries = []
        for _ in range(count):
            object_id = int.from_bytes(data[pos : pos + 2], "big")
            kind = data[pos + 2]
            pos += 3
            if kind == VALUE_INTEGER:
                raw = data[pos : pos + 4]
                if len(raw) != 4:
                    raise IndexError
                value = IasValue.of_int(int.from_bytes(raw, "big", signed=True))
                pos += 4
            elif kind == VALUE_OCTETS:
                length = int.from_bytes(data[pos : pos + 2], "big")
                raw = data[pos + 2 : pos + 2 + length]
                if len(raw) != length or pos + 2 > len(data):
                    raise IndexError
                value = IasValue(VALUE_OCTETS, octets=raw)
                pos += 2 + length
            elif kind == VALUE_STRING:
                charset, length = data[pos], data[pos + 1]
                raw = data[pos + 2 : pos + 2 + length]
                if len(raw) != length:
                    raise IndexError
                value = IasValue(VALUE_STRING, octets=raw, charset=charset)
                pos += 2 + length
            elif kind == VALUE_MISSING:
                value = IasValue(VALUE_MISSING)
            else:
                raise PduError(f"IAS value of unknown type {kind}")
            entries.append((object_id, value))
    except IndexError:
        raise PduError("truncated IAS response") from None
    return IasResponse(status, tuple(entries))


# --- TinyTP --------------------------------------------------------------------------------------
TTP_MAX_CREDIT = 127
TTP_PI_MAX_SDU = 0x01


@dataclass(frozen=True, slots=True)
class TtpConnect:
    """TinyTP connect parameters (user data of IrLMP Connect / Connect confirm)."""

    credit: int
    max_sdu_size: int | None = None  # None: no parameters (P clear); 0: no SAR


def build_ttp_connect(pdu: TtpConnect) -> bytes:
    if not 0 <= pdu.credit <= TTP_MAX_CREDIT:
        raise ValueError("TinyTP credit is 0..127")
    if pdu.max_sdu_size is None:
        return bytes((pdu.credit,))
    size = pdu.max_sdu_size
    length = 2 if size <= 0xFFFF else 4
    value = size.to_bytes(length, "big")
    return bytes((0x80 | pdu.credit, 2 + length, TTP_PI_MAX_SDU, length)) + value


def parse_ttp_connect(data: bytes) -> TtpConnect:
    data = bytes(data)
    if not data:
        raise PduError("TinyTP connect parameters missing (empty user data)")
    credit = data[0] & 0x7F
    if not data[0] & 0x80:
        return TtpConnect(credit)
    if len(data) < 2 or len(data) < 2 + data[1]:
        raise PduError("TinyTP connect parameters truncated")
    params = data[2 : 2 + data[1]]
    max_sdu = 0
    pos = 0
    while pos < len(params):
        if pos + 2 > len(params) or pos + 2 + params[pos + 1] > len(params):
            raise PduError("TinyTP connect parameter truncated")
        pi, pl = params[pos], params[pos + 1]
        if pi == TTP_PI_MAX_SDU:
            if not 1 <= pl <= 4:
                raise PduError(f"TinyTP MaxSduSize of {pl} bytes")
            max_sdu = int.from_bytes(params[pos + 2 : pos + 2 + pl], "big")
        pos += 2 + pl
    return TtpConnect(credit, max_sdu)


def build_ttp_data(data: bytes, credit: int, more: bool) -> bytes:
    if not 0 <= credit <= TTP_MAX_CREDIT:
        raise ValueError("TinyTP credit is 0..127")
    return bytes(((0x80 if more else 0) | credit,)) + bytes(data)


def parse_ttp_data(data: bytes) -> tuple[bool, int, bytes]:
    """(more, credit, payload) of a TinyTP data PDU."""
    data = bytes(data)
    if not data:
        raise PduError("empty TinyTP data PDU")
    return bool(data[0] & 0x80), data[0] & 0x7F, data[1:]
