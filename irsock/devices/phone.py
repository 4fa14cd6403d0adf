"""The emulated phone: IrCOMM 9-wire (IAS ``IrDA:IrCOMM``) with an AT command set, as infrared phones of
2000-2010 answered a PC's dialler, gammu or a sync tool.

:class:`AtPhone` is the modem (bytes in, bytes out, no I/O): echo, V.250 result codes, ``+CMEE`` error
reporting, identity (``ATI``, ``+CGMI/+CGMM/+CGMR/+CGSN``, ``+CIMI``), character sets (``+CSCS``), a phonebook
(``+CPBS``, ``+CPBR``), the clock (``+CCLK``), battery and signal (``+CBC``, ``+CSQ``). :class:`PhoneDevice` is
the virtual device's stack: TinyTP with an IrCOMM DCE on its LSAP, feeding the modem.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field

from irlap.station import Station
from irsock import ircomm as I
from irsock.lmp import pdu as P
from irsock.stack import DeviceStack
from irsock.ttp import TtpConnected, TtpDisconnected, TtpReadable

IRCOMM_LSAP = 0x05
MANUFACTURER = "irsock"
MODEL = "IR-Phone 2004"
REVISION = "V 1.04 emulated"
IMEI = "350000000000006"
IMSI = "001010123456789"
LINE_LIMIT = 512  # a command line longer than this is dropped (a real modem's buffer is smaller still)

#: +CME ERROR codes (3GPP TS 27.007) we use, with their text for +CMEE=2
CME_ERRORS = {3: "operation not allowed", 4: "operation not supported", 21: "invalid index",
              22: "not found", 24: "text string too long", 50: "incorrect parameters"}


@dataclass
class Entry:
    number: str
    name: str

    @property
    def type(self) -> int:
        return 145 if self.number.startswith("+") else 129  # international or unknown numbering


def default_phonebooks() -> dict[str, dict[int, Entry]]:
    """Made-up entries: the phone's memory (ME) and the SIM (SM)."""
    return {
        "ME": {1: Entry("+4930123456", "Alice"), 2: Entry("+441234567890", "Bob"), 5: Entry("112", "Emergency")},
        "SM": {1: Entry("+33123456789", "Carol")},
    }


@dataclass
class AtPhone:
    """An AT command interpreter: ``feed(bytes)`` returns what the phone sends back."""

    echo: bool = True
    verbose: bool = True
    cmee: int = 0
    charset: str = "IRA"
    memory: str = "ME"
    size: int = 100  # locations per phonebook
    books: dict[str, dict[int, Entry]] = field(default_factory=default_phonebooks)
    clock_offset: float = 0.0  # seconds the phone's clock is set away from UTC
    commands: list[str] = field(default_factory=list)  # every command line, for tests and traces
    _line: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if byte == 0x1B:  # ESC: abandons the line (gammu sends it first)
                self._line.clear()
                continue
            if self.echo:
                out.append(byte)
            if byte in (0x0D, 0x0A):
                if byte == 0x0D:
                    line = self._line.decode("latin-1").strip()
                    self._line.clear()
                    if line:
                        out += self.execute(line)
                continue
            if byte in (0x08, 0x7F):
                del self._line[-1:]
            elif len(self._line) < LINE_LIMIT:
                self._line.append(byte)
        return bytes(out)

    # --- results ------------------------------------------------------------------------------------------
    def _final(self, ok: bool, code: int = 4) -> bytes:
        if ok:
            return b"\r\nOK\r\n" if self.verbose else b"0\r"
        if self.cmee == 1:
            return f"\r\n+CME ERROR: {code}\r\n".encode()
        if self.cmee == 2:
            return f"\r\n+CME ERROR: {CME_ERRORS.get(code, 'unknown')}\r\n".encode()
        return b"\r\nERROR\r\n" if self.verbose else b"4\r"

    @staticmethod
    def _lines(lines: list[str]) -> bytes:
        return b"".join(f"\r\n{line}".encode("latin-1", "replace") for line in lines) + (b"\r\n" if lines else b"")

    # --- commands -----------------------------------------------------------------------------------------
    def execute(self, line: str) -> bytes:
        self.commands.append(line)
        if not line[:2].upper() == "AT":
            return b""  # not a command: a modem ignores it
        body = line[2:]
        lines: list[str] = []
        for command in _split(body):
            result = self._one(command, lines)
            if result is not True:
                return self._lines(lines) + self._final(False, result if isinstance(result, int) else 4)
        return self._lines(lines) + self._final(True)

    def _one(self, command: str, out: list[str]) -> bool | int:
        """Run one command, appending its information lines; True, or the CME error code."""
        upper = command.upper()
        if upper == "":
            return True
        basic = re.fullmatch(r"([EVQ])([01]?)", upper)
        if basic:
            value = basic.group(2) != "0" if basic.group(2) else False
            if basic.group(1) == "E":
                self.echo = value
            elif basic.group(1) == "V":
                self.verbose = value
            return True
        if upper in ("Z", "&F", "Z0"):
            self.echo, self.verbose, self.cmee = True, True, 0
            return True
        if upper in ("I", "I0", "+GMI", "+CGMI"):
            out.append(MANUFACTURER)
            return True
        if upper in ("I1", "+GMM", "+CGMM"):
            out.append(MODEL)
            return True
        if upper in ("I2", "I3", "+GMR", "+CGMR"):
            out.append(REVISION)
            return True
        if upper in ("+GSN", "+CGSN"):
            out.append(IMEI)
            return True
        if upper == "+CIMI":
            out.append(IMSI)
            return True
        if upper.startswith("+CMEE"):
            return self._setting(upper[5:], out, "+CMEE", str(self.cmee), "(0-2)", self._set_cmee)
        if upper.startswith("+CSCS"):
            return self._setting(command[5:], out, "+CSCS", f'"{self.charset}"', '("IRA","GSM","UCS2","8859-1")',
                                 self._set_charset)
        if upper.startswith("+CPBS"):
            used = len(self.books.get(self.memory, {}))
            return self._setting(command[5:], out, "+CPBS", f'"{self.memory}",{used},{self.size}',
                                 '("ME","SM")', self._set_memory)
        if upper.startswith("+CPBR"):
            return self._read_phonebook(upper[5:], out)
        if upper.startswith("+CCLK"):
            if upper[5:] == "?":
                now = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=self.clock_offset)
                out.append(f'+CCLK: "{now:%y/%m/%d,%H:%M:%S}+00"')
                return True
            return 4
        if upper in ("+CBC", "+CBC?"):
            out.append("+CBC: 0,80")
            return True
        if upper in ("+CSQ", "+CSQ?"):
            out.append("+CSQ: 20,99")
            return True
        if upper in ("+CFUN?",):
            out.append("+CFUN: 1")
            return True
        return 4

    def _setting(self, rest: str, out: list[str], name: str, current: str, choices: str, setter) -> bool | int:
        if rest == "?":
            out.append(f"{name}: {current}")
            return True
        if rest == "=?":
            out.append(f"{name}: {choices}")
            return True
        if rest.startswith("="):
            return setter(rest[1:].strip())
        return 50

    def _set_cmee(self, value: str) -> bool | int:
        if value not in ("0", "1", "2"):
            return 50
        self.cmee = int(value)
        return True

    def _set_charset(self, value: str) -> bool | int:
        name = value.strip('"').upper()
        if name not in ("IRA", "GSM", "UCS2", "8859-1"):
            return 50
        self.charset = name
        return True

    def _set_memory(self, value: str) -> bool | int:
        name = value.strip('"').upper()
        if name not in self.books:
            return 50
        self.memory = name
        return True

    def _read_phonebook(self, rest: str, out: list[str]) -> bool | int:
        if rest == "=?":
            out.append(f"+CPBR: (1-{self.size}),40,24")
            return True
        match = re.fullmatch(r"=(\d+)(?:,(\d+))?", rest)
        if not match:
            return 50
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if not 1 <= first <= last <= self.size:
            return 21
        book = self.books.get(self.memory, {})
        for index in range(first, last + 1):
            entry = book.get(index)
            if entry is not None:
                out.append(f'+CPBR: {index},"{entry.number}",{entry.type},"{self._encode(entry.name)}"')
        return True

    def _encode(self, text: str) -> str:
        return text.encode("utf-16-be").hex().upper() if self.charset == "UCS2" else text


def _split(body: str) -> list[str]:
    """``E1V1+CMEE=1;+CSCS?`` -> ["E1", "V1", "+CMEE=1", "+CSCS?"]: basic commands one letter (and digits) at a
    time, extended ones (``+``/``&``) up to the next ``;``."""
    commands = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == ";":
            index += 1
            continue
        if char == "+":
            end = body.find(";", index)
            end = len(body) if end < 0 else end
            commands.append(body[index:end].strip())
            index = end
            continue
        match = re.match(r"&?[A-Za-z]\d*", body[index:])
        if not match:
            commands.append(body[index:])  # not a command we can read: answered with an error
            break
        commands.append(match.group(0))
        index += len(match.group(0))
    return commands or [""]


class PhoneDevice(DeviceStack):
    """The phone's stack: an IrCOMM DCE on TinyTP (IAS ``IrDA:IrCOMM``), each connection with its modem.

    Everything runs inside the stack, on the engine thread: data received is read at once, its control part
    applied (answers sent back in the same turn), its user data fed to the connection's modem.
    """

    def __init__(self, station: Station) -> None:
        super().__init__(station)
        self.listen(IRCOMM_LSAP)
        self.lmp.ias.set(I.IAS_CLASS, "IrDA:TinyTP:LsapSel", P.IasValue.of_int(IRCOMM_LSAP))
        self.lmp.ias.set(I.IAS_CLASS, I.IAS_PARAMETERS,
                         P.IasValue.of_octets(I.ias_parameters(I.SERVICE_9WIRE | I.SERVICE_3WIRE)))
        self.sessions: dict[tuple[int, int], tuple[I.IrCommChannel, AtPhone]] = {}

    def on_event(self, event: object, now: float) -> None:
        if isinstance(event, TtpConnected) and event.incoming:
            channel = I.IrCommChannel(dte=False, services=I.SERVICE_9WIRE | I.SERVICE_3WIRE)
            self.sessions[event.conn] = (channel, AtPhone())
        elif isinstance(event, TtpDisconnected):
            self.sessions.pop(event.conn, None)
        elif isinstance(event, TtpReadable) and event.conn in self.sessions:
            self._serve(event.conn, now)

    def _serve(self, conn_id: tuple[int, int], now: float) -> None:
        channel, modem = self.sessions[conn_id]
        replies = bytearray()
        answer = b""
        while (pdu := self.recv_pdu(conn_id, now)) is not None:
            try:
                control, data = I.unframe(pdu)
                answer += channel.on_params(control)
            except I.IrCommError:
                continue  # a malformed frame is dropped; the connection stays
            replies += modem.feed(data)
        connection = self.connections.get(conn_id)
        if connection is None or not connection.open or (not replies and not answer):
            return
        for piece in I.split_data(bytes(replies), self.lmp.max_data() - 1, answer):
            self.send(conn_id, piece, now)


def phone_stack(station: Station) -> PhoneDevice:
    return PhoneDevice(station)
