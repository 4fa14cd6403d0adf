"""IrLAP frames: a codec between bytes and small immutable objects the state machines match on.

A frame (as it comes out of the SIR unwrapper, FCS removed) is an address byte (connection address
``ca << 1 | C/R``), a control byte, and for some kinds an information field. The control byte's low
bits give the class: ``...0`` I, ``..01`` S (RR, RNR, REJ, SREJ), ``..11`` U; P/F is bit 4.

The information fields with structure (XID, SNRM, UA, FRMR, TEST) are declared with ``construct``, not
compiled: a connection has few of them (discovery, link setup), and compiling the five cost 6 ms of every
start against ~15 us a frame; I and S frames, the hot path of a transfer, are sliced directly from the two
header bytes. :func:`parse` raises :class:`~irlap.errors.FrameError` for anything malformed, so a
station can answer a bad frame with the protocol's reaction instead of crashing; undefined control
fields raise :class:`UndefinedControlError`, which carries the bytes an FRMR needs.

Invariant, tested with hypothesis: ``build(parse(data)) == data`` for every frame ``parse`` accepts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import construct as c

from irlap.errors import FrameError, QosError
from irlap.qos import QosParams

BROADCAST_ADDRESS = 0x7F  #: connection address of NDM frames (byte 0xFF command, 0xFE response)
BROADCAST_DEVICE = 0xFFFFFFFF  #: destination device address of XID discovery commands
PF = 0x10
XID_FORMAT = 0x01
XID_FINAL_SLOT = 0xFF
SLOT_COUNTS: tuple[int, ...] = (1, 6, 8, 16)  # by the two low flag bits
XID_CONFLICT = 0x04
NICKNAME_MAX = 21  # bytes of nickname a station sends (the Linux stack's limit)

# U-frame control codes (P/F masked off)
U_SNRM = 0x83  # command; the same code as a response is RNRM
U_DISC = 0x43  # command; as a response: RD
U_UA = 0x63
U_DM = 0x0F
U_FRMR = 0x87
U_XID_CMD = 0x2F
U_XID_RSP = 0xAF
U_TEST = 0xE3
U_UI = 0x03
# S-frame codes
S_RR = 0x01
S_RNR = 0x05
S_REJ = 0x09
S_SREJ = 0x0D

CHARSET_ASCII = 0x00
CHARSET_UNICODE = 0xFF


# --- declarations ------------------------------------------------------------------------------
_XID_BODY = c.Struct(
    "format" / c.Int8ub,
    "source" / c.Int32ul,
    "dest" / c.Int32ul,
    "flags" / c.Int8ub,
    "slot" / c.Int8ub,
    "version" / c.Int8ub,
    "info" / c.GreedyBytes,
)
_SNRM_BODY = c.Struct(
    "source" / c.Int32ul,
    "dest" / c.Int32ul,
    "ca" / c.Int8ub,
    "params" / c.GreedyBytes,
)
_UA_BODY = c.Struct("source" / c.Int32ul, "dest" / c.Int32ul, "params" / c.GreedyBytes)
_TEST_BODY = c.Struct("source" / c.Int32ul, "dest" / c.Int32ul, "info" / c.GreedyBytes)
_FRMR_BODY = c.Struct(
    "rejected" / c.Int8ub,
    "state" / c.BitStruct("vr" / c.BitsInteger(3), "cr" / c.Flag, "vs" / c.BitsInteger(3), "zero" / c.Bit),
    "reasons" / c.BitStruct("reserved" / c.BitsInteger(4), "z" / c.Flag, "y" / c.Flag, "x" / c.Flag, "w" / c.Flag),
    c.Terminated,
)


def _parse_struct(struct: c.Construct, data: bytes, what: str) -> c.Container:
    try:
        return struct.parse(data)
    except c.ConstructError as exc:
        raise FrameError(f"{what}: information field of {len(data)} bytes is malformed ({_short(exc)})") from None


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]


# --- discovery info ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DiscoveryInfo:
    """Hints, character set and nickname a station announces during discovery.

    ``hints`` are the raw hint bytes, each but the last with its extension bit 0x80 set.
    """

    hints: bytes
    charset: int
    nickname_bytes: bytes

    @property
    def nickname(self) -> str:
        """The nickname as text; undecodable bytes become U+FFFD, never an exception."""
        return decode_nickname(self.nickname_bytes, self.charset)

    @property
    def hint_words(self) -> list[str]:
        """The service hint bits in words (PnP, PDA, Computer, ..., IrCOMM, OBEX)."""
        return hint_words(self.hints)

    @property
    def hint_value(self) -> int:
        """The hint bytes as one big-endian integer (0x8420 for bytes 84 20), as libraries print them."""
        return int.from_bytes(self.hints, "big")

    def to_bytes(self) -> bytes:
        return bytes(self.hints) + bytes((self.charset,)) + bytes(self.nickname_bytes)

    @classmethod
    def from_bytes(cls, data: bytes) -> DiscoveryInfo:
        index = 0
        while index < len(data) and data[index] & 0x80:
            index += 1
        if index >= len(data):
            raise FrameError("discovery info: hint bytes never end (every byte has the extension bit)")
        hints = bytes(data[: index + 1])
        if len(data) < index + 2:
            raise FrameError("discovery info: character set byte missing after the hints")
        return cls(hints, data[index + 1], bytes(data[index + 2 :]))

    @classmethod
    def make(cls, nickname: str, hints: int | bytes = 0, charset: int | None = None) -> DiscoveryInfo:
        """Discovery info for a nickname: ASCII when it fits, else Unicode (UCS-2 big-endian).

        Hints may be an int (0x8420 = bytes 84 20) or bytes; extension bits are set on every byte but
        the last. The nickname is cut to 21 bytes without splitting a character.
        """
        if isinstance(hints, int):
            if hints < 0:
                raise ValueError("hints cannot be negative")
            hint_bytes = hints.to_bytes(max(1, (hints.bit_length() + 7) // 8), "big")
        else:
            hint_bytes = bytes(hints) or b"\x00"
        hint_bytes = bytes(b | 0x80 for b in hint_bytes[:-1]) + bytes((hint_bytes[-1] & 0x7F,))
        if charset is None:
            charset = CHARSET_ASCII if nickname.isascii() else CHARSET_UNICODE
        encoded = encode_nickname(nickname, charset)
        return cls(hint_bytes, charset, encoded)


HINT_NAMES: tuple[tuple[str, ...], ...] = (
    ("PnP", "PDA", "Computer", "Printer", "Modem", "Fax", "LAN"),
    ("Telephony", "FileServer", "IrCOMM", "Message", "HTTP", "OBEX"),
)


def hint_words(hints: bytes) -> list[str]:
    """Words for the hint bits of the first two hint bytes (the extension bit is not a service)."""
    words = []
    for names, byte in zip(HINT_NAMES, hints, strict=False):
        words += [name for bit, name in enumerate(names) if byte & (1 << bit)]
    return words


def _codec(charset: int) -> str:
    if charset == CHARSET_UNICODE:
        return "utf-16-be"
    if 1 <= charset <= 9:
        return f"iso8859_{charset}"
    return "ascii"


def decode_nickname(data: bytes, charset: int) -> str:
    return bytes(data).decode(_codec(charset), "replace").rstrip("\x00")


def encode_nickname(text: str, charset: int, limit: int = NICKNAME_MAX) -> bytes:
    """Encode a nickname, cut to ``limit`` bytes at a character boundary; unencodable chars become '?'."""
    codec = _codec(charset)
    out = b""
    for char in text:
        piece = char.encode(codec, "replace")
        if codec == "utf-16-be" and len(piece) > 2:
            piece = "?".encode(codec)  # outside UCS-2
        if len(out) + len(piece) > limit:
            break
        out += piece
    return out


# --- frame classes -------------------------------------------------------------------------------
# A class that adds no field and changes no default is a plain subclass with ``__slots__ = ()``: the dataclass
# methods of its base (init, repr, eq, hash, frozen setattr) serve it as they are, and each decorator costs
# about 1 ms of every start.
@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """Base of every IrLAP frame: connection address, C/R bit (True = command) and P/F bit."""

    kind: ClassVar[str] = "?"
    address: int = BROADCAST_ADDRESS
    command: bool = True
    poll_final: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0x7F:
            raise ValueError(f"connection address must be 0..0x7f, not {self.address:#x}")

    @property
    def address_byte(self) -> int:
        return self.address << 1 | int(self.command)

    def to_bytes(self) -> bytes:
        return build(self)

    def _header(self, control: int) -> bytes:
        return bytes((self.address_byte, control | (PF if self.poll_final else 0)))


def _check_seq(name: str, value: int) -> None:
    if not 0 <= value <= 7:
        raise ValueError(f"{name} must be 0..7, not {value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class IFrame(Frame):
    """Information frame: sequence numbers N(S), N(R) (modulo 8) and the payload."""

    kind: ClassVar[str] = "I"
    ns: int = 0
    nr: int = 0
    info: bytes = b""

    def __post_init__(self) -> None:
        Frame.__post_init__(self)
        _check_seq("ns", self.ns)
        _check_seq("nr", self.nr)


@dataclass(frozen=True, slots=True, kw_only=True)
class SFrame(Frame):
    """Supervisory frame: acknowledges up to N(R) - 1."""

    code: ClassVar[int] = 0
    nr: int = 0

    def __post_init__(self) -> None:
        Frame.__post_init__(self)
        _check_seq("nr", self.nr)


class RR(SFrame):
    __slots__ = ()
    kind: ClassVar[str] = "RR"
    code: ClassVar[int] = S_RR


class RNR(SFrame):
    __slots__ = ()
    kind: ClassVar[str] = "RNR"
    code: ClassVar[int] = S_RNR


class REJ(SFrame):
    __slots__ = ()
    kind: ClassVar[str] = "REJ"
    code: ClassVar[int] = S_REJ


class SREJ(SFrame):
    __slots__ = ()
    kind: ClassVar[str] = "SREJ"
    code: ClassVar[int] = S_SREJ


class _DirectedU(Frame):
    """A U frame that exists only as a command or only as a response."""

    __slots__ = ()
    is_command: ClassVar[bool] = True

    def __post_init__(self) -> None:
        Frame.__post_init__(self)
        if self.command != self.is_command:
            raise ValueError(f"{self.kind} is a {'command' if self.is_command else 'response'}")


def _qos_from_raw(kind: str, raw: bytes) -> QosParams | None:
    if not raw:
        return None
    try:
        return QosParams.decode(raw)
    except QosError as exc:
        raise FrameError(f"{kind}: bad QoS parameters: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class SNRM(_DirectedU):
    """Set Normal Response Mode: a connection request, or without an I-field a link reset.

    ``new_address`` is the connection address the secondary is to use. ``qos_raw`` keeps the
    parameter bytes exactly as received (order, unknown PIs) so a parsed frame rebuilds
    byte-identical; it takes no part in equality.
    """

    kind: ClassVar[str] = "SNRM"
    source: int | None = None
    dest: int | None = None
    new_address: int | None = None
    qos: QosParams | None = None
    qos_raw: bytes | None = field(default=None, compare=False)

    @property
    def is_reset(self) -> bool:
        return self.source is None

    def __post_init__(self) -> None:
        _DirectedU.__post_init__(self)
        present = [v is not None for v in (self.source, self.dest, self.new_address)]
        if any(present) and not all(present):
            raise ValueError("SNRM needs source, dest and new_address together (or none for a reset)")
        if self.source is None and (self.qos is not None or self.qos_raw):
            raise ValueError("a reset SNRM carries no QoS parameters")
        if self.new_address is not None and not 0 <= self.new_address <= 0x7E:
            raise ValueError("new connection address must be 0..0x7e")


@dataclass(frozen=True, slots=True, kw_only=True)
class RNRM(_DirectedU):
    """Request Normal Response Mode: a secondary asks the primary to reset the link."""

    kind: ClassVar[str] = "RNRM"
    is_command: ClassVar[bool] = False
    command: bool = False


class DISC(_DirectedU):
    __slots__ = ()
    kind: ClassVar[str] = "DISC"


@dataclass(frozen=True, slots=True, kw_only=True)
class RD(_DirectedU):
    """Request Disconnect: a secondary asks the primary to disconnect."""

    kind: ClassVar[str] = "RD"
    is_command: ClassVar[bool] = False
    command: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class UA(_DirectedU):
    """Unnumbered Acknowledge; the answer to SNRM carries addresses and QoS parameters."""

    kind: ClassVar[str] = "UA"
    is_command: ClassVar[bool] = False
    command: bool = False
    source: int | None = None
    dest: int | None = None
    qos: QosParams | None = None
    qos_raw: bytes | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _DirectedU.__post_init__(self)
        if (self.source is None) != (self.dest is None):
            raise ValueError("UA needs source and dest together")
        if self.source is None and (self.qos is not None or self.qos_raw):
            raise ValueError("a UA without addresses carries no QoS parameters")


@dataclass(frozen=True, slots=True, kw_only=True)
class DM(_DirectedU):
    """Disconnected Mode: the answer of a station that refuses or has no connection."""

    kind: ClassVar[str] = "DM"
    is_command: ClassVar[bool] = False
    command: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class FRMR(_DirectedU):
    """Frame Reject: the rejected control byte, our V(S)/V(R), and why (w, x, y, z).

    w: undefined control field; x: I-field where none is allowed (set with w); y: I-field too long;
    z: invalid N(R).
    """

    kind: ClassVar[str] = "FRMR"
    is_command: ClassVar[bool] = False
    command: bool = False
    rejected_control: int = 0
    vs: int = 0
    vr: int = 0
    rejected_was_response: bool = False
    w: bool = False
    x: bool = False
    y: bool = False
    z: bool = False

    def __post_init__(self) -> None:
        _DirectedU.__post_init__(self)
        _check_seq("vs", self.vs)
        _check_seq("vr", self.vr)
        if not 0 <= self.rejected_control <= 0xFF:
            raise ValueError("rejected_control is one byte")


@dataclass(frozen=True, slots=True, kw_only=True)
class _XID(Frame):
    source: int = 0
    dest: int = BROADCAST_DEVICE
    slots: int = 6
    slot: int = 0
    conflict: bool = False
    version: int = 0
    info: DiscoveryInfo | None = None
    reserved_flags: int = 0  #: flag bits other than the slot code and conflict, kept for round trips

    @property
    def is_final(self) -> bool:
        return self.slot == XID_FINAL_SLOT

    def __post_init__(self) -> None:
        Frame.__post_init__(self)
        if self.slots not in SLOT_COUNTS:
            raise ValueError(f"slots must be one of {SLOT_COUNTS}")
        for name in ("source", "dest"):
            if not 0 <= getattr(self, name) <= 0xFFFFFFFF:
                raise ValueError(f"{name} is a 32-bit device address")
        if not 0 <= self.slot <= 0xFF or not 0 <= self.version <= 0xFF:
            raise ValueError("slot and version are single bytes")
        if self.reserved_flags & 0x07 or not 0 <= self.reserved_flags <= 0xFF:
            raise ValueError("reserved_flags may not overlap the slot code and conflict bits")


class XIDCommand(_XID):
    """Discovery command: slot 0..S-1, then the final one (slot 0xFF) with the initiator's info."""

    __slots__ = ()
    kind: ClassVar[str] = "XID"

    def __post_init__(self) -> None:
        _XID.__post_init__(self)
        if not self.command:
            raise ValueError("XIDCommand is a command")


@dataclass(frozen=True, slots=True, kw_only=True)
class XIDResponse(_XID):
    """Discovery response: the responder's address and info, sent in its chosen slot."""

    kind: ClassVar[str] = "XID"
    command: bool = False

    def __post_init__(self) -> None:
        _XID.__post_init__(self)
        if self.command:
            raise ValueError("XIDResponse is a response")


@dataclass(frozen=True, slots=True, kw_only=True)
class TEST(Frame):
    """TEST command/response. Broadcast (NDM) TESTs carry source and dest device addresses."""

    kind: ClassVar[str] = "TEST"
    source: int | None = None
    dest: int | None = None
    info: bytes = b""

    def __post_init__(self) -> None:
        Frame.__post_init__(self)
        if (self.source is None) != (self.dest is None):
            raise ValueError("TEST needs source and dest together")
        if self.address != BROADCAST_ADDRESS and self.source is not None:
            raise ValueError("only broadcast TEST frames carry device addresses")
        if self.address == BROADCAST_ADDRESS and self.source is None and self.info:
            raise ValueError("a broadcast TEST with information needs source and dest")


@dataclass(frozen=True, slots=True, kw_only=True)
class UI(Frame):
    """Unnumbered information: connectionless data (IrLMP Ultra), command or response."""

    kind: ClassVar[str] = "UI"
    info: bytes = b""


S_CLASSES: dict[int, type[SFrame]] = {S_RR: RR, S_RNR: RNR, S_REJ: REJ, S_SREJ: SREJ}


class UndefinedControlError(FrameError):
    """A frame with a control field IrLAP does not define; a connected station answers FRMR (w)."""

    def __init__(self, message: str, address_byte: int, control: int, has_info: bool) -> None:
        super().__init__(message)
        self.address_byte = address_byte
        self.control = control
        self.has_info = has_info


# --- parse ---------------------------------------------------------------------------------------
def parse(data: bytes) -> Frame:
    """Decode one IrLAP frame (address byte first, no FCS). Raises FrameError, nothing else."""
    data = bytes(data)
    if len(data) < 2:
        raise FrameError(f"frame of {len(data)} byte(s) is too short: address and control are required")
    address_byte, control = data[0], data[1]
    address = address_byte >> 1
    command = bool(address_byte & 1)
    pf = bool(control & PF)
    body = data[2:]
    if not control & 0x01:  # I frame
        return IFrame(address=address, command=command, poll_final=pf, ns=(control >> 1) & 7, nr=control >> 5,
                      info=body)
    if control & 0x03 == 0x01:  # S frame
        cls = S_CLASSES.get(control & 0x0F)
        if cls is None:
            raise UndefinedControlError(f"undefined S-frame control 0x{control:02x}", address_byte, control,
                                        bool(body))
        if body:
            raise FrameError(f"{cls.kind} frame with a {len(body)}-byte information field (none is allowed)")
        return cls(address=address, command=command, poll_final=pf, nr=control >> 5)
    return _parse_u(address, command, pf, control, control & ~PF & 0xFF, body, address_byte)


def _no_body(kind: str, body: bytes) -> None:
    if body:
        raise FrameError(f"{kind} frame with a {len(body)}-byte information field (none is allowed)")


def _parse_u(address: int, command: bool, pf: bool, control: int, code: int, body: bytes,
             address_byte: int) -> Frame:
    common = {"address": address, "command": command, "poll_final": pf}
    direction = "command" if command else "response"
    if code == U_SNRM:
        if not command:
            _no_body("RNRM", body)
            return RNRM(**common)
        if not body:
            return SNRM(**common)
        if len(body) < 9:
            raise FrameError(f"SNRM: information field of {len(body)} bytes is too short (9 needed)")
        parsed = _parse_struct(_SNRM_BODY, body, "SNRM")
        if parsed.ca & 1:
            raise FrameError(f"SNRM: new connection address byte 0x{parsed.ca:02x} has its C/R bit set")
        if parsed.ca >> 1 == BROADCAST_ADDRESS:
            raise FrameError("SNRM: the broadcast address cannot be a connection address")
        return SNRM(**common, source=parsed.source, dest=parsed.dest, new_address=parsed.ca >> 1,
                    qos=_qos_from_raw("SNRM", parsed.params), qos_raw=parsed.params)
    if code == U_DISC:
        _no_body("DISC" if command else "RD", body)
        return DISC(**common) if command else RD(**common)
    if code in (U_XID_CMD, U_XID_RSP):
        expected_command = code == U_XID_CMD
        if command != expected_command:
            raise FrameError(f"XID {'command' if expected_command else 'response'} code sent as a {direction}")
        return _parse_xid(common, body)
    if code == U_TEST:
        if address == BROADCAST_ADDRESS:
            if body and len(body) < 8:
                raise FrameError(f"TEST: broadcast information field of {len(body)} bytes lacks device addresses")
            if body:
                parsed = _parse_struct(_TEST_BODY, body, "TEST")
                return TEST(**common, source=parsed.source, dest=parsed.dest, info=parsed.info)
        return TEST(**common, info=body)
    if code == U_UI:
        return UI(**common, info=body)
    if command:
        raise UndefinedControlError(f"undefined command control 0x{control:02x}", address_byte, control, bool(body))
    if code == U_UA:
        if not body:
            return UA(**common)
        if len(body) < 8:
            raise FrameError(f"UA: information field of {len(body)} bytes is too short (8 needed)")
        parsed = _parse_struct(_UA_BODY, body, "UA")
        return UA(**common, source=parsed.source, dest=parsed.dest, qos=_qos_from_raw("UA", parsed.params),
                  qos_raw=parsed.params)
    if code == U_DM:
        _no_body("DM", body)
        return DM(**common)
    if code == U_FRMR:
        if len(body) != 3:
            raise FrameError(f"FRMR: information field must be 3 bytes, not {len(body)}")
        parsed = _parse_struct(_FRMR_BODY, body, "FRMR")
        if parsed.state.zero or parsed.reasons.reserved:
            raise FrameError(f"FRMR: reserved bits set in {body.hex()}")
        return FRMR(**common, rejected_control=parsed.rejected, vs=parsed.state.vs, vr=parsed.state.vr,
                    rejected_was_response=parsed.state.cr, w=parsed.reasons.w, x=parsed.reasons.x,
                    y=parsed.reasons.y, z=parsed.reasons.z)
    raise UndefinedControlError(f"undefined response control 0x{control:02x}", address_byte, control, bool(body))


def _parse_xid(common: dict, body: bytes) -> Frame:
    if len(body) < 12:
        raise FrameError(f"XID: information field of {len(body)} bytes is too short (12 needed)")
    parsed = _parse_struct(_XID_BODY, body, "XID")
    if parsed.format != XID_FORMAT:
        raise FrameError(f"XID: unknown format identifier 0x{parsed.format:02x} (only 0x01 is defined)")
    info = DiscoveryInfo.from_bytes(parsed.info) if parsed.info else None
    cls = XIDCommand if common["command"] else XIDResponse
    return cls(**common, source=parsed.source, dest=parsed.dest, slots=SLOT_COUNTS[parsed.flags & 0x03],
               conflict=bool(parsed.flags & XID_CONFLICT), reserved_flags=parsed.flags & 0xF8,
               slot=parsed.slot, version=parsed.version, info=info)


# --- build ---------------------------------------------------------------------------------------
def _qos_bytes(frame: SNRM | UA) -> bytes:
    if frame.qos_raw is not None:
        return frame.qos_raw
    return frame.qos.encode() if frame.qos is not None else b""


def build(frame: Frame) -> bytes:
    """Encode a frame object to bytes (address byte first, no FCS)."""
    match frame:
        case IFrame():
            control = frame.nr << 5 | frame.ns << 1
            return frame._header(control) + bytes(frame.info)
        case SFrame():
            return frame._header(frame.nr << 5 | frame.code)
        case SNRM():
            header = frame._header(U_SNRM)
            if frame.source is None:
                return header
            return header + _SNRM_BODY.build({"source": frame.source, "dest": frame.dest,
                                              "ca": frame.new_address << 1, "params": _qos_bytes(frame)})
        case RNRM():
            return frame._header(U_SNRM)
        case DISC() | RD():
            return frame._header(U_DISC)
        case UA():
            header = frame._header(U_UA)
            if frame.source is None:
                return header
            return header + _UA_BODY.build({"source": frame.source, "dest": frame.dest,
                                            "params": _qos_bytes(frame)})
        case DM():
            return frame._header(U_DM)
        case FRMR():
            return frame._header(U_FRMR) + _FRMR_BODY.build({
                "rejected": frame.rejected_control,
                "state": {"vr": frame.vr, "cr": frame.rejected_was_response, "vs": frame.vs, "zero": 0},
                "reasons": {"reserved": 0, "z": frame.z, "y": frame.y, "x": frame.x, "w": frame.w},
            })
        case XIDCommand() | XIDResponse():
            flags = SLOT_COUNTS.index(frame.slots) | (XID_CONFLICT if frame.conflict else 0) | frame.reserved_flags
            code = U_XID_CMD if frame.command else U_XID_RSP
            return frame._header(code) + _XID_BODY.build({
                "format": XID_FORMAT, "source": frame.source, "dest": frame.dest, "flags": flags,
                "slot": frame.slot, "version": frame.version,
                "info": frame.info.to_bytes() if frame.info is not None else b"",
            })
        case TEST():
            header = frame._header(U_TEST)
            if frame.source is None:
                return header + bytes(frame.info)
            return header + _TEST_BODY.build({"source": frame.source, "dest": frame.dest, "info": frame.info})
        case UI():
            return frame._header(U_UI) + bytes(frame.info)
    raise TypeError(f"cannot build {type(frame).__name__}")


def replace(frame: Frame, **changes) -> Frame:
    """A copy of ``frame`` with some fields changed (dataclasses.replace, re-validated)."""
    return dataclasses.replace(frame, **changes)
