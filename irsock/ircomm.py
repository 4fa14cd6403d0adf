"""IrCOMM: serial and parallel ports over infrared (cooked 3-wire and 9-wire over TinyTP).

Cooked IrCOMM carries, in every TinyTP PDU, a control part and user data: ``clen, parameters (clen bytes),
data``. The parameters are PI/PL/PV triples: the service type the two ends agree on, the port's type and
name, its line settings (data rate, data format, flow control, XON/XOFF characters) and, with 9-wire, the
modem lines (DTR and RTS from the DTE; CTS, DSR, RI and CD from the DCE) with delta bits, and a poll that
the other end answers with its lines. 3-wire raw IrCOMM has no control part at all (plain IrLMP data).

This module is sans-IO like the layers below it: :func:`frame` / :func:`unframe` and the parameter codec
turn bytes into values and back, and :class:`IrCommChannel` is one end's control state: what it has set,
what the peer told it, and what it must answer. The caller moves the bytes (a socket, a virtual device).
Unknown parameters are skipped and counted, never fatal: a newer peer may send more than we know.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from irsock.errors import IrSockError

# Service types (bit mask in the IAS Parameters attribute and in PI 0x00)
SERVICE_3WIRE_RAW = 0x01
SERVICE_3WIRE = 0x02
SERVICE_9WIRE = 0x04
SERVICE_CENTRONICS = 0x08
SERVICE_NAMES = {SERVICE_3WIRE_RAW: "3-wire raw", SERVICE_3WIRE: "3-wire", SERVICE_9WIRE: "9-wire",
                 SERVICE_CENTRONICS: "Centronics"}
PORT_SERIAL = 0x00
PORT_PARALLEL = 0x01

# Parameter identifiers
PI_SERVICE_TYPE = 0x00
PI_PORT_TYPE = 0x01
PI_PORT_NAME = 0x02
PI_DATA_RATE = 0x10
PI_DATA_FORMAT = 0x11
PI_FLOW_CONTROL = 0x12
PI_XON_XOFF = 0x13
PI_ENQ_ACK = 0x14
PI_LINE_STATUS = 0x15
PI_BREAK = 0x16
PI_DTE = 0x20
PI_DCE = 0x21
PI_POLL = 0x22
PI_NAMES = {PI_SERVICE_TYPE: "service type", PI_PORT_TYPE: "port type", PI_PORT_NAME: "port name",
            PI_DATA_RATE: "data rate", PI_DATA_FORMAT: "data format", PI_FLOW_CONTROL: "flow control",
            PI_XON_XOFF: "XON/XOFF", PI_ENQ_ACK: "ENQ/ACK", PI_LINE_STATUS: "line status", PI_BREAK: "break",
            PI_DTE: "DTE lines", PI_DCE: "DCE lines", PI_POLL: "poll"}

# DTE line settings (PI 0x20)
DTE_DELTA_DTR = 0x01
DTE_DELTA_RTS = 0x02
DTE_DTR = 0x04
DTE_RTS = 0x08
# DCE line settings (PI 0x21)
DCE_DELTA_CTS = 0x01
DCE_DELTA_DSR = 0x02
DCE_DELTA_RI = 0x04
DCE_DELTA_CD = 0x08
DCE_CTS = 0x10
DCE_DSR = 0x20
DCE_RI = 0x40
DCE_CD = 0x80

# Data format (PI 0x11): character length in bits 0-1 (5-8 bits as 0-3), two stop bits in bit 2, parity on in
# bit 3 and its kind in bits 4-5
FORMAT_8N1 = 0x03
FORMAT_TWO_STOP_BITS = 0x04
FORMAT_PARITY = 0x08
FORMAT_PARITY_ODD = 0x00
FORMAT_PARITY_EVEN = 0x10
FORMAT_PARITY_MARK = 0x20
FORMAT_PARITY_SPACE = 0x30
# Flow control (PI 0x12): one bit per method and direction
FLOW_XON_XOFF_IN = 0x01
FLOW_XON_XOFF_OUT = 0x02
FLOW_RTS_CTS_IN = 0x04
FLOW_RTS_CTS_OUT = 0x08
FLOW_DSR_DTR_IN = 0x10
FLOW_DSR_DTR_OUT = 0x20

#: the IAS class and attributes of IrCOMM
IAS_CLASS = "IrDA:IrCOMM"
IAS_PARAMETERS = "Parameters"
IAS_IRLPT_CLASS = "IrLPT"

#: the peer's changes an IrCommChannel remembers
CHANGES_KEPT = 32

#: the control part we put in one frame stays short: a peer's buffers for it are small
MAX_CONTROL = 32


class IrCommError(IrSockError):
    """A malformed IrCOMM frame or control parameter from the peer."""


# --- codec -----------------------------------------------------------------------------------------------
def encode_params(params: Iterable[tuple[int, bytes]]) -> bytes:
    """PI/PL/PV triples: ``[(pi, value), ...]`` -> bytes."""
    out = bytearray()
    for pi, value in params:
        if not 0 <= pi <= 0xFF or len(value) > 0xFF:
            raise IrCommError(f"parameter 0x{pi:02x} of {len(value)} bytes cannot be encoded")
        out += bytes((pi, len(value))) + value
    return bytes(out)


def decode_params(data: bytes) -> list[tuple[int, bytes]]:
    """The PI/PL/PV triples in ``data``, in order; IrCommError if a length runs past the end."""
    params = []
    index = 0
    while index < len(data):
        if index + 2 > len(data):
            raise IrCommError(f"control parameters end inside a parameter header at byte {index}")
        pi, length = data[index], data[index + 1]
        if index + 2 + length > len(data):
            raise IrCommError(f"parameter 0x{pi:02x} says {length} bytes, {len(data) - index - 2} remain")
        params.append((pi, bytes(data[index + 2:index + 2 + length])))
        index += 2 + length
    return params


def frame(data: bytes = b"", params: bytes = b"") -> bytes:
    """One cooked IrCOMM frame: ``clen``, the control parameters, the user data."""
    if len(params) > 0xFF:
        raise IrCommError("at most 255 bytes of control parameters fit in a frame")
    return bytes((len(params),)) + params + bytes(data)


def unframe(pdu: bytes) -> tuple[bytes, bytes]:
    """``(control parameters, user data)`` of a cooked frame; IrCommError if it is empty or ``clen`` overruns."""
    if not pdu:
        raise IrCommError("an empty IrCOMM frame (no clen byte)")
    clen = pdu[0]
    if 1 + clen > len(pdu):
        raise IrCommError(f"clen {clen} runs past the frame's {len(pdu) - 1} bytes")
    return bytes(pdu[1:1 + clen]), bytes(pdu[1 + clen:])


def ias_parameters(service_types: int, port_type: int = PORT_SERIAL) -> bytes:
    """The octets of the IAS attribute ``IrDA:IrCOMM`` / ``Parameters``: service types and port type."""
    return encode_params([(PI_SERVICE_TYPE, bytes((service_types,))), (PI_PORT_TYPE, bytes((port_type,)))])


def parse_ias_parameters(octets: bytes) -> tuple[int, int]:
    """``(service types, port type)`` from the IAS ``Parameters`` attribute (missing ones are 0)."""
    found = dict(decode_params(octets))
    service = found.get(PI_SERVICE_TYPE, b"\x00")[:1] or b"\x00"
    port = found.get(PI_PORT_TYPE, b"\x00")[:1] or b"\x00"
    return service[0], port[0]


def choose_service(offered: int, supported: int) -> int:
    """The one service type both ends have, the richest first (9-wire, 3-wire, 3-wire raw); 0 if none."""
    common = offered & supported
    for service in (SERVICE_CENTRONICS, SERVICE_9WIRE, SERVICE_3WIRE, SERVICE_3WIRE_RAW):
        if common & service:
            return service
    return 0


def describe(params: bytes) -> list[str]:
    """Human words for control parameters (for traces and errors)."""
    try:
        decoded = decode_params(params)
    except IrCommError as exc:
        return [f"malformed: {exc}"]
    return [f"{PI_NAMES.get(pi, f'PI 0x{pi:02x}')}={value.hex() or '-'}" for pi, value in decoded]


# --- one end of the control channel ------------------------------------------------------------------------
@dataclass
class PortSettings:
    """The line settings of the emulated port (what a program sets with termios)."""

    data_rate: int = 9600
    data_format: int = FORMAT_8N1
    flow_control: int = 0
    xon_xoff: bytes = b"\x11\x13"
    port_type: int = PORT_SERIAL
    port_name: str = ""


@dataclass
class IrCommChannel:
    """One end of a cooked IrCOMM connection: the DTE (the computer, usually the connecting side) or the DCE.

    ``hello()`` is what the DTE sends first; ``on_params(control)`` applies what the peer sent and returns the
    control parameters to answer with (b"" when nothing); ``set_dte_lines`` / ``set_dce_lines`` /
    ``set_settings`` return the parameters that tell the peer about a change. The caller frames and sends them.
    """

    dte: bool = True
    services: int = SERVICE_9WIRE | SERVICE_3WIRE
    settings: PortSettings = field(default_factory=PortSettings)
    service: int = 0  # the one agreed on (0 until known)
    dtr: bool = True
    rts: bool = True
    cts: bool = True
    dsr: bool = True
    ri: bool = False
    cd: bool = True
    peer_settings: PortSettings = field(default_factory=PortSettings)
    peer_lines: int | None = None  # the last line byte the peer sent (DTE or DCE lines, deltas cleared)
    peer_break: bool = False
    line_status: int = 0  # the last line status error the peer reported
    unknown: int = 0  # parameters skipped because we do not know them
    #: what the peer changed lately, for the caller to act on (the last CHANGES_KEPT: a chatty peer fills nothing)
    changes: deque[str] = field(default_factory=lambda: deque(maxlen=CHANGES_KEPT))

    # --- what we send ---------------------------------------------------------------------------------
    def hello(self) -> bytes:
        """The DTE's first control parameters: the service types it takes, its port settings and lines."""
        return encode_params([(PI_SERVICE_TYPE, bytes((self.services,)))] + self._settings_params(self.settings)
                             + ([(PI_DTE, bytes((self._dte_byte(),)))] if self.services & SERVICE_9WIRE else []))

    def set_settings(self, **changes: object) -> bytes:
        """Change our port settings (data_rate, data_format, flow_control, xon_xoff); the parameters to send."""
        before = PortSettings(**vars(self.settings))
        for name, value in changes.items():
            if not hasattr(self.settings, name):
                raise TypeError(f"no port setting {name!r}")
            setattr(self.settings, name, value)
        changed = [p for p, q in zip(self._settings_params(self.settings), self._settings_params(before),
                                     strict=True) if p != q]
        return encode_params(changed)

    def set_dte_lines(self, *, dtr: bool | None = None, rts: bool | None = None) -> bytes:
        """New DTR/RTS; the DTE-lines parameter with delta bits for what changed (b"" if nothing did)."""
        delta = 0
        if dtr is not None and dtr != self.dtr:
            self.dtr, delta = dtr, delta | DTE_DELTA_DTR
        if rts is not None and rts != self.rts:
            self.rts, delta = rts, delta | DTE_DELTA_RTS
        if not delta or not self.nine_wire:
            return b""
        return encode_params([(PI_DTE, bytes((self._dte_byte() | delta,)))])

    def set_dce_lines(self, *, cts: bool | None = None, dsr: bool | None = None, ri: bool | None = None,
                      cd: bool | None = None) -> bytes:
        """New DCE lines; the DCE-lines parameter with delta bits (b"" if nothing changed)."""
        delta = 0
        for name, value, bit in (("cts", cts, DCE_DELTA_CTS), ("dsr", dsr, DCE_DELTA_DSR), ("ri", ri, DCE_DELTA_RI),
                                 ("cd", cd, DCE_DELTA_CD)):
            if value is not None and value != getattr(self, name):
                setattr(self, name, value)
                delta |= bit
        if not delta or not self.nine_wire:
            return b""
        return encode_params([(PI_DCE, bytes((self._dce_byte() | delta,)))])

    def poll(self) -> bytes:
        """Ask the peer for its lines (9-wire)."""
        return encode_params([(PI_POLL, b"")])

    @property
    def nine_wire(self) -> bool:
        return self.service == SERVICE_9WIRE or (self.service == 0 and bool(self.services & SERVICE_9WIRE))

    # --- what the peer sends --------------------------------------------------------------------------
    def on_params(self, control: bytes) -> bytes:
        """Apply the peer's control parameters; the parameters to answer with (b"" if none).

        Raises IrCommError for a malformed control part (the caller answers nothing and keeps the data).
        """
        answer: list[tuple[int, bytes]] = []
        for pi, value in decode_params(control):
            if pi == PI_SERVICE_TYPE and value:
                chosen = choose_service(value[0], self.services)
                if self.dte:
                    self.service = chosen or self.service  # the DCE told us what it took
                else:
                    self.service = chosen
                    answer.append((PI_SERVICE_TYPE, bytes((chosen,))))  # the DCE answers with its choice
                self.changes.append(f"service type {SERVICE_NAMES.get(chosen, 'none')}")
            elif pi == PI_PORT_TYPE and value:
                self.peer_settings.port_type = value[0]
            elif pi == PI_PORT_NAME:
                self.peer_settings.port_name = value.decode("ascii", "replace")
            elif pi == PI_DATA_RATE and len(value) == 4:
                self.peer_settings.data_rate = int.from_bytes(value, "big")
                self.changes.append(f"data rate {self.peer_settings.data_rate}")
            elif pi == PI_DATA_FORMAT and value:
                self.peer_settings.data_format = value[0]
                self.changes.append(f"data format 0x{value[0]:02x}")
            elif pi == PI_FLOW_CONTROL and value:
                self.peer_settings.flow_control = value[0]
                self.changes.append(f"flow control 0x{value[0]:02x}")
            elif pi == PI_XON_XOFF and len(value) == 2:
                self.peer_settings.xon_xoff = value
            elif pi == PI_LINE_STATUS and value:
                self.line_status = value[0]
            elif pi == PI_BREAK and value:
                self.peer_break = bool(value[0])
            elif pi in (PI_DTE, PI_DCE) and value:
                self.peer_lines = value[0] & 0xF0 if pi == PI_DCE else value[0] & 0x0C
                self.changes.append(f"{'DCE' if pi == PI_DCE else 'DTE'} lines 0x{self.peer_lines:02x}")
            elif pi == PI_POLL:
                answer.append((PI_DTE, bytes((self._dte_byte(),))) if self.dte
                              else (PI_DCE, bytes((self._dce_byte(),))))
            else:
                self.unknown += 1
        return encode_params(answer)

    # --- the peer's lines in words --------------------------------------------------------------------
    def peer_dce_lines(self) -> dict[str, bool]:
        lines = self.peer_lines or 0
        return {"cts": bool(lines & DCE_CTS), "dsr": bool(lines & DCE_DSR), "ri": bool(lines & DCE_RI),
                "cd": bool(lines & DCE_CD)}

    def peer_dte_lines(self) -> dict[str, bool]:
        lines = self.peer_lines or 0
        return {"dtr": bool(lines & DTE_DTR), "rts": bool(lines & DTE_RTS)}

    # --- helpers --------------------------------------------------------------------------------------
    def _dte_byte(self) -> int:
        return (DTE_DTR if self.dtr else 0) | (DTE_RTS if self.rts else 0)

    def _dce_byte(self) -> int:
        return ((DCE_CTS if self.cts else 0) | (DCE_DSR if self.dsr else 0) | (DCE_RI if self.ri else 0)
                | (DCE_CD if self.cd else 0))

    @staticmethod
    def _settings_params(settings: PortSettings) -> list[tuple[int, bytes]]:
        return [(PI_DATA_RATE, settings.data_rate.to_bytes(4, "big")),
                (PI_DATA_FORMAT, bytes((settings.data_format,))),
                (PI_FLOW_CONTROL, bytes((settings.flow_control,))),
                (PI_XON_XOFF, bytes(settings.xon_xoff))]


def split_data(data: bytes, room: int, control: bytes = b"") -> list[bytes]:
    """Cooked frames carrying ``data`` in PDUs of at most ``room`` bytes, ``control`` in the first one."""
    if room < 2 + len(control):
        raise IrCommError(f"a PDU of {room} bytes cannot carry {len(control)} bytes of control and data")
    frames = []
    first = room - 1 - len(control)
    frames.append(frame(data[:first], control))
    for start in range(first, len(data), room - 1):
        frames.append(frame(data[start:start + room - 1]))
    return frames
