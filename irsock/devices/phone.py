"""The emulated phone: IrCOMM 9-wire (IAS ``IrDA:IrCOMM``) with an AT command set, as infrared phones of
2000-2010 answered a PC's dialler, gammu or a sync tool.

:class:`AtPhone` is the modem (bytes in, bytes out, no I/O): echo, V.250 result codes, ``+CMEE`` error
reporting, identity (``ATI``, ``+CGMI/+CGMM/+CGMR/+CGSN``, ``+CIMI``), character sets (``+CSCS``), a phonebook
(``+CPBS``, ``+CPBR``), the clock (``+CCLK``), battery and signal (``+CBC``, ``+CSQ``). :class:`PhoneDevice` is
the virtual device's stack: TinyTP with an IrCOMM DCE on its LSAP, feeding the modem, and an OBEX server on
another (IAS ``OBEX`` and ``OBEX:IrXfer``): an inbox for pushed objects (business cards, appointments, any file)
kept in memory, the owner's business card as the inbox's default object, and the IrMC objects (``IRMC-SYNC``:
``telecom/pb.vcf``, ``telecom/pb/info.log``, ``telecom/cal.vcs``, ``telecom/devinfo.txt``). One phonebook serves
``AT+CPBR`` and ``telecom/pb.vcf`` alike.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field

from irlap.station import Station
from irsock import ircomm as I
from irsock.devices import irmc
from irsock.devices.objects import MemoryInbox, ObjectServer, ObjectSession, Refused
from irsock.lmp import pdu as P
from irsock.obex import IAS_CLASSES as OBEX_IAS_CLASSES
from irsock.obex.packets import FORBIDDEN, ObexError, PacketReader
from irsock.stack import DeviceStack
from irsock.ttp import ConnId, TtpConnected, TtpDisconnected, TtpReadable

IRCOMM_LSAP = 0x05
OBEX_LSAP = 0x06
OBEX_SESSIONS = 4  # OBEX connections served at once; one more is closed at once
OBEX_BACKLOG = 2  # responses (of the largest size) queued for a peer before its requests are left unread
OWNER = ("Phone Owner", "+491700000006")  # the owner's business card (N, TEL): made up
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
    """The phone's stack: an IrCOMM DCE on TinyTP (IAS ``IrDA:IrCOMM``), each connection with its modem, and an
    OBEX server on TinyTP (IAS ``OBEX``, ``OBEX:IrXfer``) with the inbox and the IrMC objects.

    Everything runs inside the stack, on the engine thread: data received is read at once, its control part
    applied (answers sent back in the same turn), its user data fed to the connection's modem; OBEX requests
    are answered as they complete, while the answers already queued for that peer stay few.
    """

    def __init__(self, station: Station) -> None:
        super().__init__(station)
        self.listen(IRCOMM_LSAP)
        self.lmp.ias.set(I.IAS_CLASS, "IrDA:TinyTP:LsapSel", P.IasValue.of_int(IRCOMM_LSAP))
        self.lmp.ias.set(I.IAS_CLASS, I.IAS_PARAMETERS,
                         P.IasValue.of_octets(I.ias_parameters(I.SERVICE_9WIRE | I.SERVICE_3WIRE)))
        self.sessions: dict[tuple[int, int], tuple[I.IrCommChannel, AtPhone]] = {}
        self.books = default_phonebooks()  # what AT+CPBR reads and telecom/pb.vcf is made of
        self.book_size = AtPhone.size
        self.inbox = MemoryInbox()
        self.obex = ObjectServer(self.inbox, {b"": self._inbox_object, irmc.IRMC_TARGET: self._irmc_object})
        self.listen(OBEX_LSAP)
        for service in OBEX_IAS_CLASSES:
            self.lmp.ias.set(service, "IrDA:TinyTP:LsapSel", P.IasValue.of_int(OBEX_LSAP))
        self.obex_sessions: dict[ConnId, tuple[PacketReader, ObjectSession]] = {}

    def on_event(self, event: object, now: float) -> None:
        if isinstance(event, TtpConnected) and event.incoming and event.conn[0] == OBEX_LSAP:
            if len(self.obex_sessions) >= OBEX_SESSIONS:
                self.close(event.conn, now)
                return
            self.obex_sessions[event.conn] = (PacketReader(self.obex.mtu), self.obex.session(event.device))
        elif isinstance(event, TtpConnected) and event.incoming:
            channel = I.IrCommChannel(dte=False, services=I.SERVICE_9WIRE | I.SERVICE_3WIRE)
            self.sessions[event.conn] = (channel, AtPhone(books=self.books, size=self.book_size))
        elif isinstance(event, TtpDisconnected):
            self.sessions.pop(event.conn, None)
            if self.obex_sessions.pop(event.conn, None) is not None:
                self.close(event.conn, now)  # requests left unread are dropped: TinyTP may forget the connection
        elif isinstance(event, TtpReadable) and event.conn in self.sessions:
            self._serve(event.conn, now)
        elif isinstance(event, TtpReadable) and event.conn in self.obex_sessions:
            self._serve_obex(event.conn, now)

    def _process(self, now: float) -> None:
        super()._process(now)
        # requests left unread while answers were queued: their turn comes as the answers leave
        for conn_id in list(self.obex_sessions):
            connection = self.connections.get(conn_id)
            if connection is not None and connection.rx_units:
                self._serve_obex(conn_id, now)

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

    def _serve_obex(self, conn_id: ConnId, now: float) -> None:
        """Answer the requests that are complete, reading no further than the packet under way: a peer that
        sends without waiting for answers is held back by TinyTP's credit, not queued for here."""
        reader, session = self.obex_sessions[conn_id]
        while self.pending(conn_id) <= OBEX_BACKLOG * self.obex.mtu:
            connection = self.connections.get(conn_id)
            if connection is None or not connection.open or connection.closing:
                return
            data = self.recv(conn_id, reader.wanted(), now)
            if not data:
                return
            try:
                packet = reader.feed(data)
            except ObexError:
                self.obex_sessions.pop(conn_id, None)
                self.close(conn_id, now)  # out of step: nothing sensible can follow on this stream
                return
            if packet is not None:
                self.send(conn_id, session.handle(packet), now)

    # --- what the OBEX services hand out ------------------------------------------------------------------
    def phonebook_entries(self, memory: str = "ME") -> list[tuple[str, str]]:
        """(name, number) of each used location of a phonebook, in location order: what AT+CPBR lists."""
        book = self.books.get(memory, {})
        return [(book[index].name, book[index].number) for index in sorted(book)]

    def _inbox_object(self, name: str, mime: str) -> bytes | None:
        """The inbox hands out one object: the owner's business card, asked for by type without a name."""
        if not name and mime.lower() == irmc.VCARD_TYPE:
            return irmc.vcard(*OWNER).encode("utf-8")
        raise Refused(FORBIDDEN, "the inbox only takes objects (IrMC objects: CONNECT with Target IRMC-SYNC)")

    def _irmc_object(self, name: str, mime: str) -> bytes | None:
        entries = self.phonebook_entries()
        if name == irmc.PHONEBOOK:
            return irmc.phonebook(OWNER, entries)
        if name == irmc.PHONEBOOK_INFO:
            return irmc.info_log(len(entries), self.book_size)
        if name == irmc.CALENDAR:
            return irmc.calendar()
        if name == irmc.DEVINFO:
            return irmc.devinfo(MANUFACTURER, MODEL, IMEI)
        return None


def phone_stack(station: Station) -> PhoneDevice:
    return PhoneDevice(station)
