"""irresponder: a fixed IrDA peer for hardware-in-the-loop tests (MicroPython and CPython).

The far end of a bench rig: a microcontroller with an SIR transceiver on a UART that answers, as an
IrLAP *secondary* (it never initiates anything):

* SIR framing: XBOFs, BOF 0xC0, EOF 0xC1, 0x7D escapes, CRC-16/X-25 FCS (table-driven, little endian);
* discovery: an XID command gets our XID response (nickname, hints) in a random slot;
* TEST commands are echoed (``irda ping``), UI frames are ignored;
* SNRM -> UA with QoS negotiation (9600..115200 bit/s), then the UART changes speed like a real
  secondary; I / RR / RNR / REJ / SREJ with windows up to 7 both ways, go-back-N from the primary's
  N(R), FRMR for invalid N(R) and undefined commands, reset (SNRM without parameters), DISC -> UA;
  a watchdog ends a link that stays silent for the negotiated link-disconnect time;
* IrLMP: LM-Connect / LM-Disconnect on LSAPs, access mode answered "unsupported";
* IAS server on LSAP 0: GetValueByClass for ``Device`` / ``DeviceName``, ``IrLMPSupport`` and, for
  every service class (``IrDA:IrCOMM`` and ``Echo`` by default), ``IrDA:TinyTP:LsapSel``;
* a TinyTP echo service on one LSAP with credit flow control: a peer never gets more credit than the
  PDUs we can hold, and credit goes back only once the echo has left;
* IrCOMM (``IrDA:IrCOMM``, 9-wire and 3-wire cooked, on its own LSAP) as a DCE with a loopback plug: the
  control part of each frame is answered (the service type it takes, its lines CTS, DSR and CD on a poll;
  other parameters accepted), the user data comes back in frames of its own; a malformed frame is dropped
  and the connection kept.

This module is the portable core: no I/O of its own, no clock and nothing CPython-only (no
dataclasses, typing or hex separators). A driver feeds it bytes and the time, and hands it a port
object with two methods:

* ``port.write(buf)``: send these bytes now (a memoryview of a reused buffer: write or copy it);
* ``port.set_speed(baud)``: wait until every byte written so far has left the UART, then switch the
  UART (and the transceiver) to ``baud``.

    r = Responder(port, nickname="bench", hints=0x0404)
    r.feed(uart_bytes, now_ms)     # any chunking; frames are answered from inside feed()
    r.poll(now_ms)                 # timers (query timer, watchdog); call at r.next_deadline()

``now_ms`` is a non-wrapping integer millisecond clock. Byte layouts follow the IrDA specifications
as the repository's own codec (irlap/frames.py, irlap/qos.py, irsock/lmp/pdu.py) writes them; no
code was taken from GPL stacks.
"""

import struct

try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value


__version__ = "0.1.0"

XBOF = const(0xFF)
BOF = const(0xC0)
EOF = const(0xC1)
CE = const(0x7D)
GOOD_RESIDUE = const(0xF0B8)  # CRC over frame + FCS, before the final XOR
NDM_BAUD = const(9600)
NDM_XBOFS = const(12)
BROADCAST = const(0xFFFFFFFF)

# QoS value tables, lowest bit first (IrLAP; the same tables as irlap/qos.py)
BAUD_RATES = (2400, 9600, 19200, 38400, 57600, 115200)
MAX_TURN_MS = (500, 250, 100, 50)
DATA_SIZES = (64, 128, 256, 512, 1024, 2048)
WINDOWS = (1, 2, 3, 4, 5, 6, 7)
ADD_BOFS = (48, 24, 12, 5, 3, 2, 1, 0)
MIN_TURN_US = (10000, 5000, 1000, 500, 100, 50, 10, 0)
LINK_DISC_S = (3, 8, 12, 16, 20, 25, 30, 40)
# bytes one station may send per 500 ms turn (IrLAP line capacity table)
LINE_CAPACITY = {2400: 100, 9600: 400, 19200: 800, 38400: 1600, 57600: 2360, 115200: 4800}
SLOT_COUNTS = (1, 6, 8, 16)
SLOT_MS = const(90)
QUERY_EXTRA_MS = const(134)

# states
NDM = const(0)
REPLY = const(1)
NRM = const(2)

# IrLMP / IAS / TinyTP
LSAP_IAS = const(0)
OP_CONNECT = const(0x01)
OP_CONNECT_CONFIRM = const(0x81)
OP_DISCONNECT = const(0x02)
OP_ACCESS_MODE = const(0x03)
OP_ACCESS_MODE_CONFIRM = const(0x83)
REASON_DATA_ON_DISCONNECTED = const(0x06)
REASON_NO_CLIENT = const(0x08)
REASON_UNSPECIFIED = const(0xFF)
IAS_LST = const(0x80)
IAS_ACK = const(0x40)
IAS_GET_VALUE_BY_CLASS = const(4)
IAS_UNSUPPORTED = const(0xFF)
LSAP_ATTRIBUTE = b"IrDA:TinyTP:LsapSel"
IRCOMM_CLASS = b"IrDA:IrCOMM"
IRCOMM_PARAMETERS = b"\x00\x01\x06\x01\x01\x00"  # IAS Parameters: service types 9-wire + 3-wire, serial port
IRCOMM_DCE_LINES = const(0xB0)  # CTS, DSR and CD on
MAX_CONNECTIONS = const(6)
MAX_IAS_REQUEST = const(256)
CONTROL_QUEUE_BUSY = const(8)  # queued control PDUs at which we answer RNR


# --- CRC-16/X-25 ------------------------------------------------------------------------------------
def _crc_table():
    try:
        from array import array

        table = array("H", [0] * 256)
    except ImportError:
        table = [0] * 256
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
        table[i] = c
    return table


CRC_TABLE = _crc_table()


def crc16(data, crc=0xFFFF):
    """CRC-16/X-25 register after ``data`` (no final XOR): GOOD_RESIDUE over a frame with its FCS."""
    t = CRC_TABLE
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc


def fcs16(data):
    """The FCS of ``data``: CRC-16/X-25 (0x906E for b"123456789"), sent little endian."""
    return crc16(data) ^ 0xFFFF


# --- SIR framing -------------------------------------------------------------------------------------
class SirTx:
    """Wraps frames for the UART through one small reused buffer (flushed to ``write`` when full)."""

    def __init__(self, write, size=256):
        self.write = write
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.wire_bytes = 0  # bytes written since the counter was last cleared

    def send(self, xbofs, head, body=None):
        """XBOFs, BOF, escaped(head + body + FCS), EOF. ``head``/``body``: bytes-like."""
        buf = self.buf
        mv = self.mv
        write = self.write
        limit = len(buf) - 2
        t = CRC_TABLE
        n = 0
        total = 0
        for _ in range(xbofs):
            buf[n] = 0xFF
            n += 1
            if n >= limit:
                write(mv[:n])
                total += n
                n = 0
        buf[n] = 0xC0
        n += 1
        crc = 0xFFFF
        for part in (head, body):
            if part is None:
                continue
            for x in part:
                crc = (crc >> 8) ^ t[(crc ^ x) & 0xFF]
                if x == 0xC0 or x == 0xC1 or x == 0x7D:
                    buf[n] = 0x7D
                    buf[n + 1] = x ^ 0x20
                    n += 2
                else:
                    buf[n] = x
                    n += 1
                if n >= limit:
                    write(mv[:n])
                    total += n
                    n = 0
        crc ^= 0xFFFF
        for x in (crc & 0xFF, crc >> 8):
            if x == 0xC0 or x == 0xC1 or x == 0x7D:
                buf[n] = 0x7D
                buf[n + 1] = x ^ 0x20
                n += 2
            else:
                buf[n] = x
                n += 1
            if n >= limit:
                write(mv[:n])
                total += n
                n = 0
        buf[n] = 0xC1
        n += 1
        write(mv[:n])
        total += n
        self.wire_bytes += total
        return total


def wrap(frame, xbofs=NDM_XBOFS):
    """The wire bytes of one frame (a convenience for tests; the responder streams through SirTx)."""
    out = bytearray()
    SirTx(out.extend, 64).send(xbofs, frame)
    return bytes(out)


class SirRx:
    """Streaming SIR decoder into one preallocated buffer; ``on_frame(memoryview)`` per good frame.

    The memoryview (address, control, information; FCS removed) is only valid during the call.
    Counters: good, bad_fcs, aborted (escape + EOF, or a BOF inside a frame), oversize, runts,
    garbage (bytes outside frames that are not XBOFs).
    """

    def __init__(self, max_frame, on_frame):
        self.buf = bytearray(max_frame + 2)  # + FCS
        self.mv = memoryview(self.buf)
        self.on_frame = on_frame
        self.state = 0  # 0 hunting BOF, 1 in frame, 2 after an escape, 3 skipping an oversize frame
        self.n = 0
        self.crc = 0xFFFF
        self.good = self.bad_fcs = self.aborted = self.oversize = self.runts = self.garbage = 0

    def reset(self):
        """Forget a partial frame (after a speed change)."""
        self.state = 0
        self.n = 0

    @property
    def in_frame(self):
        return self.state != 0

    def feed(self, data):
        buf = self.buf
        size = len(buf)
        t = CRC_TABLE
        state = self.state
        n = self.n
        crc = self.crc
        for x in data:
            if x == 0xC0:
                if state != 0 and (n or state == 2):
                    self.aborted += 1
                state = 1
                n = 0
                crc = 0xFFFF
                continue
            if state == 0:
                if x != 0xFF:
                    self.garbage += 1
                continue
            if x == 0xC1:
                if state == 1:
                    if n < 4:
                        if n:
                            self.runts += 1
                    elif crc == 0xF0B8:
                        self.good += 1
                        self.state = 0
                        self.n = 0
                        self.on_frame(self.mv[: n - 2])
                    else:
                        self.bad_fcs += 1
                elif state == 2:
                    self.aborted += 1
                state = 0
                n = 0
                continue
            if state == 3:
                continue
            if state == 2:
                x ^= 0x20
                state = 1
            elif x == 0x7D:
                state = 2
                continue
            if n >= size:
                self.oversize += 1
                state = 3
                n = 0
                continue
            buf[n] = x
            n += 1
            crc = (crc >> 8) ^ t[(crc ^ x) & 0xFF]
        self.state = state
        self.n = n
        self.crc = crc


def unwrap_all(data, max_frame=2050):
    """Every good frame in ``data`` as bytes (a convenience for tests)."""
    frames = []
    rx = SirRx(max_frame, lambda mv: frames.append(bytes(mv)))
    rx.feed(data)
    return frames, rx


# --- QoS -------------------------------------------------------------------------------------------
def _highest(bits, table):
    """The value of the highest set bit of ``bits`` that ``table`` defines, or None."""
    i = len(table) - 1
    while i >= 0:
        if bits & (1 << i):
            return table[i]
        i -= 1
    return None


def _mask_up_to(table, value):
    return (1 << (table.index(value) + 1)) - 1


def parse_qos(params):
    """PI -> value bits of a PI/PL/PV list (little endian values; unknown PIs skipped), None if malformed."""
    out = {}
    pos = 0
    end = len(params)
    while pos < end:
        if pos + 2 > end:
            return None
        pi = params[pos]
        pl = params[pos + 1]
        if pos + 2 + pl > end:
            return None
        if pi in (0x01, 0x82, 0x83, 0x84, 0x85, 0x86, 0x08):
            if pl == 0:
                return None
            value = 0
            for i in range(pl):
                value |= params[pos + 2 + i] << (8 * i)
            out[pi] = value & (0xFFFF if pi == 0x01 else 0xFF)
        pos += 2 + pl
    return out


def cap_to_line(data_size, window, baud, turn_ms=500, add_bofs=0, min_turn_us=0):
    """Shrink (data size, window) so one turn fits the line capacity (irlap.qos.cap_to_line_capacity):
    window first, then data size; a frame costs 6 framing bytes and the receiver's BOFs, plus its turnaround."""
    capacity = LINE_CAPACITY.get(baud, 400) * turn_ms // 500
    i = DATA_SIZES.index(data_size)
    while window * (DATA_SIZES[i] + 6 + add_bofs) + mtt_xbofs(baud, min_turn_us) > capacity:
        if window > 1:
            window -= 1
        elif i > 0:
            i -= 1
        else:
            break
    return DATA_SIZES[i], window


class Link:
    """The parameters in force on a link, from our side (what we send is bound by the peer's offer)."""

    def __init__(self, ours, theirs):
        common = ours.get(0x01, 0x02) & theirs.get(0x01, 0x02)
        self.baud = _highest(common, BAUD_RATES)
        self.link_disconnect_s = _highest(ours.get(0x08, 1) & theirs.get(0x08, 1), LINK_DISC_S) or 3
        baud = self.baud or NDM_BAUD
        # our max turnaround is 500 ms; below 115200 only 500 ms is defined for anyone
        rx_turn = _highest(theirs.get(0x82, 1), MAX_TURN_MS) or 500
        self.rx_max_turn_ms = rx_turn if baud >= 115200 else 500
        self.tx_min_turn_us = _highest(theirs.get(0x86, 1), MIN_TURN_US)
        if self.tx_min_turn_us is None:
            self.tx_min_turn_us = 10000
        self.tx_add_bofs = _highest(theirs.get(0x85, 4), ADD_BOFS)
        if self.tx_add_bofs is None:
            self.tx_add_bofs = 12
        self.tx_data, self.tx_window = cap_to_line(_highest(theirs.get(0x83, 1), DATA_SIZES) or 64,
                                                   _highest(theirs.get(0x84, 1), WINDOWS) or 1, baud, 500,
                                                   self.tx_add_bofs, self.tx_min_turn_us)


def mtt_xbofs(baud, min_turn_us):
    """XBOFs that fill the peer's minimum turnaround time at ``baud`` (10 bit times per byte)."""
    return baud * min_turn_us // 10000000


# --- helpers ---------------------------------------------------------------------------------------
def le32(value):
    return struct.pack("<I", value)


def _u32(mv, pos):
    return mv[pos] | mv[pos + 1] << 8 | mv[pos + 2] << 16 | mv[pos + 3] << 24


def encode_nickname(name, limit=21):
    """(charset, bytes): ASCII when it fits, else Unicode (UCS-2 big endian), cut to ``limit`` bytes."""
    if all(ord(ch) < 128 for ch in name):
        return 0, name.encode()[:limit]
    out = bytearray()
    for ch in name:
        code = ord(ch)
        if code > 0xFFFF:
            code = 0x3F
        if len(out) + 2 > limit:
            break
        out.append(code >> 8)
        out.append(code & 0xFF)
    return 0xFF, bytes(out)


def hint_bytes(hints):
    """Hints as an int (0x0404 = bytes 84 04: Computer + IrCOMM) to bytes with extension bits."""
    if hints > 0xFF:
        return bytes((((hints >> 8) & 0xFF) | 0x80, hints & 0x7F))
    return bytes((hints & 0x7F,))


def ias_string(raw, charset=0):
    return bytes((3, charset, len(raw))) + raw


def ias_int(value):
    return b"\x01" + struct.pack(">i", value)


def ias_octets(raw):
    return b"\x02" + struct.pack(">H", len(raw)) + raw


# --- IrLMP, IAS and the TinyTP echo ------------------------------------------------------------------
class Conn:
    """One LSAP connection: an IAS session (LSAP 0) or a TinyTP echo."""

    def __init__(self, local, remote, ias):
        self.local = local
        self.remote = remote
        self.ias = ias
        # IAS
        self.request = None  # bytearray while a request arrives in several frames
        self.opcode = 0
        self.answer = None  # the answer body still to send, with self.pos
        self.pos = 0
        self.wait_ack = False
        # TinyTP
        self.tx_credit = 0  # PDUs the peer lets us send
        self.rx_granted = 0  # PDUs we let the peer send that it has not sent yet
        self.to_return = 0  # credit freed here that the peer does not know about yet
        self.segments = []  # [payload, M bit (0x80/0), credit freed once sent]
        self.sdu = None  # the peer's MaxSduSize, mirrored in our confirm
        # IrCOMM
        self.ircomm = False
        self.service = 0  # the service type agreed (4: 9-wire, 2: 3-wire)


class Lmp:
    """IrLMP multiplexer with the IAS server and the TinyTP echo, pulled from by the link at each turn."""

    def __init__(self, owner, echo_lsap, credit, ias_objects, ircomm_lsap=0):
        self.owner = owner
        self.echo_lsap = echo_lsap
        self.ircomm_lsap = ircomm_lsap
        self.credit = credit
        self.ias = ias_objects  # [(object id, class bytes, attribute bytes, encoded value)]
        self.conns = {}
        self.control = []  # PDUs that go before any connection's data
        self.rr = 0
        self.echoed = 0  # payload bytes echoed
        self.ias_answers = 0
        self.ircomm_malformed = 0  # IrCOMM frames dropped (clen past the end)

    def reset(self):
        self.conns = {}
        self.control = []

    def busy(self):
        return len(self.control) >= CONTROL_QUEUE_BUSY

    def _control_pdu(self, remote, local, opcode, parameter, data=b""):
        self.control.append(bytes((0x80 | remote, local, opcode, parameter)) + data)

    # receive -------------------------------------------------------------------------------------------
    def receive(self, p):
        if len(p) < 2 or p[1] & 0x80:
            return
        if p[0] & 0x80:
            if len(p) >= 4:
                self._on_control(p[0] & 0x7F, p[1], p[2], p[3], p[4:])
            return
        conn = self.conns.get(p[0] << 8 | p[1])
        if conn is None:
            self._control_pdu(p[1], p[0], OP_DISCONNECT, REASON_DATA_ON_DISCONNECTED)
            return
        if conn.ias:
            self._ias_receive(conn, p[2:])
        else:
            self._ttp_receive(conn, p[2:])

    def _on_control(self, local, remote, opcode, parameter, data):
        key = local << 8 | remote
        if opcode == OP_CONNECT:
            conn = self.conns.get(key)
            if conn is None:
                ircomm = self.ircomm_lsap != 0 and local == self.ircomm_lsap
                if local != LSAP_IAS and local != self.echo_lsap and not ircomm:
                    self._control_pdu(remote, local, OP_DISCONNECT, REASON_NO_CLIENT)
                    return
                if len(self.conns) >= MAX_CONNECTIONS:
                    self._control_pdu(remote, local, OP_DISCONNECT, REASON_UNSPECIFIED)
                    return
                conn = Conn(local, remote, local == LSAP_IAS)
                conn.ircomm = ircomm
                if not conn.ias:
                    params = parse_ttp_connect(data)
                    if params is None:
                        self._control_pdu(remote, local, OP_DISCONNECT, REASON_UNSPECIFIED)
                        return
                    conn.tx_credit, conn.sdu = params
                    conn.rx_granted = self.credit
                self.conns[key] = conn
                kind = "ias" if conn.ias else "ircomm" if conn.ircomm else "echo"
                self.owner._log(f"lmp connect {kind} lsap {local} <- {remote}")
            user = b"" if conn.ias else build_ttp_connect(self.credit, conn.sdu)
            self._control_pdu(remote, local, OP_CONNECT_CONFIRM, 0, user)
        elif opcode == OP_DISCONNECT:
            if self.conns.pop(key, None) is not None:
                self.owner._log(f"lmp disconnect lsap {local} <- {remote} reason {parameter}")
        elif opcode == OP_ACCESS_MODE:
            mode = data[0] if len(data) else 0
            self._control_pdu(remote, local, OP_ACCESS_MODE_CONFIRM, 0xFF, bytes((mode,)))

    def _abort(self, conn, why):
        self.conns.pop(conn.local << 8 | conn.remote, None)
        self._control_pdu(conn.remote, conn.local, OP_DISCONNECT, REASON_UNSPECIFIED)
        self.owner._log(f"lmp abort lsap {conn.local}: {why}")

    def _ias_receive(self, conn, p):
        if not len(p):
            return
        control = p[0]
        if control & IAS_ACK and len(p) == 1:
            conn.wait_ack = False  # the client took our last fragment: the next may go
            return
        conn.opcode = control & 0x3F
        if conn.request is None:
            conn.request = bytearray()
        if len(conn.request) + len(p) - 1 > MAX_IAS_REQUEST:
            conn.request = None
            self._answer(conn, bytes((IAS_UNSUPPORTED,)))
            return
        conn.request += bytes(p[1:])
        if not control & IAS_LST:
            self.control.append(bytes((conn.remote, conn.local, IAS_ACK | conn.opcode)))
            return
        body = conn.request
        conn.request = None
        if conn.opcode != IAS_GET_VALUE_BY_CLASS:
            self._answer(conn, bytes((IAS_UNSUPPORTED,)))
            return
        self._answer(conn, self.get_value_by_class(body))

    def get_value_by_class(self, body):
        """The answer body (return code, count, entries) for a GetValueByClass request body."""
        if len(body) < 2 or len(body) < 2 + body[0]:
            return bytes((IAS_UNSUPPORTED,))
        class_len = body[0]
        class_name = bytes(body[1 : 1 + class_len])
        attr_len = body[1 + class_len]
        attribute = bytes(body[2 + class_len : 2 + class_len + attr_len])
        if len(attribute) != attr_len:
            return bytes((IAS_UNSUPPORTED,))
        known = False
        entries = []
        for object_id, cls, attr, value in self.ias:
            if cls == class_name:
                known = True
                if attr == attribute:
                    entries.append(struct.pack(">H", object_id) + value)
        if not known:
            return b"\x01"  # no such class
        if not entries:
            return b"\x02"  # no such attribute
        return b"\x00" + struct.pack(">H", len(entries)) + b"".join(entries)

    def _answer(self, conn, body):
        conn.answer = body
        conn.pos = 0
        conn.wait_ack = False
        self.ias_answers += 1

    def _ttp_receive(self, conn, p):
        if not len(p):
            self._abort(conn, "empty TinyTP PDU")
            return
        more = p[0] & 0x80
        conn.tx_credit += p[0] & 0x7F
        n = len(p) - 1
        if n == 0 and not more:
            return  # a dataless credit PDU costs no credit
        if conn.rx_granted <= 0:
            self._abort(conn, "the peer sent beyond its credit")
            return
        conn.rx_granted -= 1
        room = self.owner.pdu_room() - 3
        if conn.ircomm:
            self._ircomm_receive(conn, p[1:], room)
            return
        if n == 0:
            conn.segments.append([b"", more, 1])
            return
        i = 0
        while i < n:
            j = min(n, i + room)
            last = j >= n
            conn.segments.append([bytes(p[1 + i : 1 + j]), more if last else 0x80, 1 if last else 0])
            i = j

    def _ircomm_receive(self, conn, frame, room):
        """One cooked IrCOMM frame (clen, control, data): the answer to its control part and its data go back
        in frames of at most ``room`` bytes; the PDU's credit returns with the last of them."""
        if not len(frame) or 1 + frame[0] > len(frame):
            self.ircomm_malformed += 1
            conn.to_return += 1  # consumed: the connection stays
            return
        clen = frame[0]
        answer = ircomm_answer(conn, frame[1 : 1 + clen])
        data = bytes(frame[1 + clen :])
        out = []
        if answer and 1 + len(answer) + len(data) <= room:
            out.append(bytes((len(answer),)) + answer + data)
            data = b""
        elif answer:
            out.append(bytes((len(answer),)) + answer)
        step = max(1, room - 1)
        for i in range(0, len(data), step):
            out.append(b"\x00" + data[i : i + step])
        if not out:
            conn.to_return += 1
            return
        last = len(out) - 1
        for k in range(len(out)):
            conn.segments.append([out[k], 0, 1 if k == last else 0])

    # send (pulled by the link) ------------------------------------------------------------------------
    def next_pdu(self, room):
        """The next IrLMP PDU to send (at most ``room`` bytes), or None."""
        if self.control:
            return self.control.pop(0)
        keys = list(self.conns)
        count = len(keys)
        for k in range(count):
            index = (self.rr + k) % count
            pdu = self._conn_pdu(self.conns[keys[index]], room)
            if pdu is not None:
                self.rr = index + 1
                return pdu
        return None

    def _conn_pdu(self, conn, room):
        if conn.ias:
            if conn.answer is None or conn.wait_ack:
                return None
            rest = len(conn.answer) - conn.pos
            chunk = max(1, room - 3)
            last = rest <= chunk
            take = rest if last else chunk
            header = bytes((conn.remote, conn.local, (IAS_LST if last else 0) | conn.opcode))
            pdu = header + conn.answer[conn.pos : conn.pos + take]
            conn.pos += take
            if last:
                conn.answer = None
            else:
                conn.wait_ack = True
            return pdu
        if conn.segments and conn.tx_credit > 0:
            payload, more, freed = conn.segments.pop(0)
            conn.to_return += freed
            give = min(conn.to_return, 127)
            conn.to_return -= give
            conn.rx_granted += give
            conn.tx_credit -= 1
            self.echoed += len(payload)
            return bytes((conn.remote, conn.local, more | give)) + payload
        if conn.to_return and conn.rx_granted == 0:
            give = min(conn.to_return, 127)
            conn.to_return -= give
            conn.rx_granted += give
            return bytes((conn.remote, conn.local, give))
        return None


def ircomm_answer(conn, control):
    """The DCE's answer to cooked IrCOMM control parameters (PI, PL, PV): the service type it takes (9-wire over
    3-wire), its lines on a poll; other parameters are taken without an answer. A truncated one ends them."""
    out = b""
    i = 0
    n = len(control)
    while i + 2 <= n:
        pi = control[i]
        pl = control[i + 1]
        if i + 2 + pl > n:
            break
        if pi == 0x00 and pl:
            offered = control[i + 2]
            conn.service = 4 if offered & 4 else (2 if offered & 2 else 0)
            out += bytes((0x00, 1, conn.service))
        elif pi == 0x22:
            out += bytes((0x21, 1, IRCOMM_DCE_LINES))
        i += 2 + pl
    return out


def parse_ttp_connect(data):
    """(initial credit, MaxSduSize or None) of TinyTP connect parameters, or None if malformed."""
    if not len(data):
        return None
    credit = data[0] & 0x7F
    if not data[0] & 0x80:
        return credit, None
    if len(data) < 2 or len(data) < 2 + data[1]:
        return None
    end = 2 + data[1]
    pos = 2
    sdu = 0
    while pos < end:
        if pos + 2 > end or pos + 2 + data[pos + 1] > end:
            return None
        pi = data[pos]
        pl = data[pos + 1]
        if pi == 0x01:
            if not 1 <= pl <= 4:
                return None
            sdu = 0
            for i in range(pl):
                sdu = sdu << 8 | data[pos + 2 + i]
        pos += 2 + pl
    return credit, sdu


def build_ttp_connect(credit, sdu):
    if sdu is None:
        return bytes((credit,))
    if sdu <= 0xFFFF:
        return bytes((0x80 | credit, 4, 0x01, 2)) + struct.pack(">H", sdu)
    return bytes((0x80 | credit, 6, 0x01, 4)) + struct.pack(">I", sdu)


# --- the responder (IrLAP secondary) -----------------------------------------------------------------
class Responder:
    """An IrLAP secondary with IrLMP, IAS and a TinyTP echo (see the module docstring).

    Options: ``address`` (random if None), ``nickname``, ``hints`` (int, 0x0404 = Computer + IrCOMM),
    ``speeds`` the UART/transceiver supports (9600 is always offered), ``data_size`` (largest I-field
    we receive: 64..2048; sets the buffers), ``window`` (1..7 frames per turn the primary may send us),
    ``min_turnaround_us`` (what we need after sending before we can receive; 10000 gives a slow driver
    10 ms to change speed), ``additional_bofs``, ``link_disconnect_s`` (the largest we offer),
    ``credit`` (TinyTP PDUs we buffer per echo connection), ``echo_lsap``, ``services`` (IAS classes
    that point at the echo LSAP), ``ircomm_lsap`` (IrCOMM's LSAP, registered as ``IrDA:IrCOMM``; 0: none),
    ``rng`` (an object with randint and getrandbits; the ``random`` module by default), ``log`` (a callable
    taking a string, or None).
    """

    def __init__(self, port, address=None, nickname="irresponder", hints=0x0404,
                 speeds=(9600, 19200, 38400, 57600, 115200), data_size=1024, window=7, min_turnaround_us=10000,
                 additional_bofs=0, link_disconnect_s=12, credit=4, echo_lsap=2,
                 services=("Echo",), ircomm_lsap=3, rng=None, log=None):
        if rng is None:
            import random

            rng = random
        if data_size not in DATA_SIZES:
            raise ValueError("data_size must be one of 64, 128, 256, 512, 1024, 2048")
        if not 1 <= window <= 7:
            raise ValueError("window must be 1..7")
        if not 1 <= credit <= 127:
            raise ValueError("credit must be 1..127")
        if not 1 <= echo_lsap <= 0x6F:
            raise ValueError("echo_lsap must be 1..111")
        if ircomm_lsap == echo_lsap or not 0 <= ircomm_lsap <= 0x6F:
            raise ValueError("ircomm_lsap must be 1..111 and not the echo's (or 0: no IrCOMM)")
        self.port = port
        self.rng = rng
        self.logger = log
        self.address = address if address is not None else self._random_address()
        if not 0 < self.address < BROADCAST:
            raise ValueError("the device address must be a 32-bit value other than 0 and 0xffffffff")
        self.nickname = nickname
        charset, nick = encode_nickname(nickname)
        self.info = hint_bytes(hints) + bytes((charset,)) + nick
        self.data_size = data_size
        baud_bits = 0x02
        for speed in speeds:
            if speed not in BAUD_RATES:
                raise ValueError(f"{speed} bit/s is not an IrDA SIR speed")
            baud_bits |= 1 << BAUD_RATES.index(speed)
        self.offer = {
            0x01: baud_bits,
            0x82: 0x01,  # max turnaround 500 ms
            0x83: _mask_up_to(DATA_SIZES, data_size),
            0x84: (1 << window) - 1,
            0x85: 1 << ADD_BOFS.index(additional_bofs),
            0x86: 1 << MIN_TURN_US.index(min_turnaround_us),
            0x08: _mask_up_to(LINK_DISC_S, link_disconnect_s),
        }
        self.qos = b"".join(bytes((pi, 1, self.offer[pi])) for pi in (0x01, 0x82, 0x83, 0x84, 0x85, 0x86, 0x08))
        ias = [(0, b"Device", b"DeviceName", ias_string(nick, charset)),
               (0, b"Device", b"IrLMPSupport", ias_octets(b"\x01\x00\x00"))]
        for index, service in enumerate(services):
            if ircomm_lsap and service.encode() == IRCOMM_CLASS:
                continue  # IrCOMM is a service of its own (below), not the echo
            ias.append((index + 1, service.encode(), LSAP_ATTRIBUTE, ias_int(echo_lsap)))
        if ircomm_lsap:
            ias.append((len(services) + 1, IRCOMM_CLASS, LSAP_ATTRIBUTE, ias_int(ircomm_lsap)))
            ias.append((len(services) + 1, IRCOMM_CLASS, b"Parameters", ias_octets(IRCOMM_PARAMETERS)))
        self.lmp = Lmp(self, echo_lsap, credit, ias, ircomm_lsap)
        # the largest frame we take: an I-frame of data_size, or a TEST with addresses of that size
        self.rx = SirRx(2 + 8 + data_size, self._on_frame)
        self.tx = SirTx(port.write, 256)
        self.state = NDM
        self.baud = NDM_BAUD
        self.now = 0
        self.link = None
        self.peer = None
        self.ca = None
        self.query_deadline = None
        self.wd_deadline = None
        self.reply_source = None
        self.reply_slot = 0
        self.reply_last = 0
        self.answered = False
        self._reset_link()
        # counters
        self.frames_in = self.ignored = self.errors = 0
        self.xid_answers = self.test_echoes = self.connections = self.resets = self.frmr_sent = 0
        self.i_frames_in = self.i_frames_out = self.retransmissions = 0
        self.last_error = ""

    def _random_address(self):
        while True:
            value = self.rng.getrandbits(32)
            if 0 < value < BROADCAST:
                return value

    def _reset_link(self):
        self.vs = self.vr = self.va = 0
        self.unacked = []  # PDUs sent and not acknowledged, oldest (N(S) = va) first
        self.remote_busy = False
        self.frmr = None

    def _log(self, text):
        if self.logger is not None:
            self.logger(text)

    # --- driver interface -------------------------------------------------------------------------
    def feed(self, data, now):
        """Bytes from the UART (any chunking). Frames are answered from inside this call."""
        self.now = now
        self.rx.feed(data)

    def poll(self, now):
        """Fire the timers that are due at ``now`` (ms)."""
        self.now = now
        if self.query_deadline is not None and now >= self.query_deadline:
            self.query_deadline = None
            if self.state == REPLY:
                self.state = NDM
        if self.wd_deadline is not None and now >= self.wd_deadline:
            self.wd_deadline = None
            if self.state == NRM:
                self._log("link lost: no frame from the primary within the link-disconnect time")
                self._to_ndm()

    def next_deadline(self):
        """The earliest timer (ms), or None."""
        deadlines = [d for d in (self.query_deadline, self.wd_deadline) if d is not None]
        return min(deadlines) if deadlines else None

    @property
    def connected(self):
        return self.state == NRM

    def stats(self):
        rx = self.rx
        return {"good": rx.good, "bad_fcs": rx.bad_fcs, "aborted": rx.aborted, "oversize": rx.oversize,
                "runts": rx.runts, "garbage": rx.garbage, "ignored": self.ignored, "errors": self.errors,
                "xid_answers": self.xid_answers, "test_echoes": self.test_echoes,
                "connections": self.connections, "resets": self.resets, "frmr_sent": self.frmr_sent,
                "i_frames_in": self.i_frames_in, "i_frames_out": self.i_frames_out,
                "retransmissions": self.retransmissions, "ias_answers": self.lmp.ias_answers,
                "echoed": self.lmp.echoed}

    def pdu_room(self):
        """The largest IrLMP PDU we send: the peer's data size, and never more than our own."""
        if self.link is None:
            return 64
        return min(self.link.tx_data, self.data_size)

    # --- frames -------------------------------------------------------------------------------------
    def _on_frame(self, f):
        self.frames_in += 1
        try:
            self._dispatch(f)
        except Exception as exc:  # noqa: BLE001 - a peer's frame must never stop the responder
            self.errors += 1
            self.last_error = repr(exc)
            self._log(f"error handling a frame: {exc!r}")

    def _dispatch(self, f):
        address = f[0]
        if not address & 1:
            self.ignored += 1  # a response: never for a secondary
            return
        ca = address >> 1
        if ca == 0x7F:
            self._on_broadcast(f)
        elif self.state == NRM and ca == self.ca:
            self._on_nrm(f)
        else:
            self.ignored += 1  # another connection's frame

    def _send(self, xbofs, head, body=None):
        self.tx.send(xbofs, head, body)

    def _set_speed(self, baud):
        if baud != self.baud:
            self.baud = baud
            self.port.set_speed(baud)
            self.rx.reset()

    # NDM ---------------------------------------------------------------------------------------------
    def _on_broadcast(self, f):
        code = f[1] & 0xEF
        if code == 0x2F:
            self._on_xid(f)
        elif code == 0x83:
            self._on_snrm(f)
        elif code == 0xE3:
            self._on_test(f)
        else:
            self.ignored += 1  # UI (connectionless data) and anything else

    def _on_xid(self, f):
        if self.state == NRM or len(f) < 14 or f[2] != 0x01:
            self.ignored += 1
            return
        source = _u32(f, 3)
        dest = _u32(f, 7)
        flags = f[11]
        slot = f[12]
        if slot == 0xFF:  # the final XID: the discovery is over
            if self.state == REPLY:
                self.state = NDM
                self.query_deadline = None
            return
        if dest != BROADCAST and dest != self.address:
            self.ignored += 1
            return
        slots = SLOT_COUNTS[flags & 0x03]
        if slot >= slots:
            self.ignored += 1
            return
        if self.state == NDM or self.reply_source != source or slot < self.reply_last:
            if flags & 0x04:  # the initiator saw two devices with one address: draw a new one
                self.address = self._random_address()
                self._log(f"address conflict: new address 0x{self.address:08x}")
            self.reply_source = source
            self.reply_slot = self.rng.randint(slot, slots - 1)
            self.answered = False
            self.state = REPLY
        self.query_deadline = self.now + SLOT_MS * (slots - slot) + QUERY_EXTRA_MS
        self.reply_last = slot
        if not self.answered and slot == self.reply_slot:
            self.answered = True
            self.xid_answers += 1
            head = b"\xfe\xbf\x01" + le32(self.address) + le32(source) + bytes((flags & 0x03, slot, 0))
            self._send(NDM_XBOFS, head, self.info)
            self._log(f"xid answered 0x{source:08x} in slot {slot}/{slots}")

    def _on_test(self, f):
        if self.state == NRM or len(f) < 10:
            self.ignored += 1
            return
        source = _u32(f, 2)
        dest = _u32(f, 6)
        if dest != self.address and dest != BROADCAST:
            self.ignored += 1
            return
        self.test_echoes += 1
        self._send(NDM_XBOFS, b"\xfe\xf3" + le32(self.address) + le32(source), f[10:])
        self._log(f"test echoed to 0x{source:08x}: {len(f) - 10} bytes")

    def ua_qos(self, baud):
        """Our offer as a UA carries it: data size and window fitted to the line capacity at the negotiated
        speed (the peer's frames to us must fit a turn too: at 9600 no more than 256 B x 1)."""
        offer = dict(self.offer)
        data, window = cap_to_line(_highest(offer[0x83], DATA_SIZES), _highest(offer[0x84], WINDOWS), baud, 500,
                                   _highest(offer[0x85], ADD_BOFS), _highest(offer[0x86], MIN_TURN_US))
        offer[0x83] = _mask_up_to(DATA_SIZES, data)
        offer[0x84] = (1 << window) - 1
        return b"".join(bytes((pi, 1, offer[pi])) for pi in (0x01, 0x82, 0x83, 0x84, 0x85, 0x86, 0x08))

    def _on_snrm(self, f):
        if len(f) < 11:
            self.ignored += 1
            return
        source = _u32(f, 2)
        dest = _u32(f, 6)
        ca_byte = f[10]
        if dest != self.address or ca_byte & 1 or ca_byte >> 1 == 0x7F:
            self.ignored += 1
            return
        if self.state == NRM:
            if source != self.peer:
                self.ignored += 1
                return
            self._log("the primary connects anew: the old link is gone")
            self._to_ndm()
        theirs = parse_qos(f[11:])
        if theirs is None:
            self.ignored += 1  # malformed parameters: no answer (the primary retries or gives up)
            return
        link = Link(self.offer, theirs)
        if link.baud is None:
            self._send(NDM_XBOFS, bytes((ca_byte, 0x1F)))  # DM: no common speed
            self.state = NDM
            return
        self.query_deadline = None
        self.peer = source
        self.ca = ca_byte >> 1
        self.link = link
        xbofs = max(NDM_XBOFS, mtt_xbofs(NDM_BAUD, link.tx_min_turn_us) + link.tx_add_bofs)
        self._send(xbofs, bytes((ca_byte, 0x73)) + le32(self.address) + le32(source), self.ua_qos(link.baud))
        self._reset_link()
        self.lmp.reset()
        self.state = NRM
        self.connections += 1
        self.wd_deadline = self.now + link.link_disconnect_s * 1000
        text = f"connected to 0x{source:08x}: {link.baud} bit/s, tx {link.tx_window}x{link.tx_data} B"
        self._log(text + f", disconnect {link.link_disconnect_s} s")
        self._set_speed(link.baud)

    def _to_ndm(self):
        self.state = NDM
        self.link = None
        self.peer = None
        self.ca = None
        self.wd_deadline = None
        self._reset_link()
        self.lmp.reset()
        self._set_speed(NDM_BAUD)

    # NRM ----------------------------------------------------------------------------------------------
    def _turn_xbofs(self):
        return mtt_xbofs(self.baud, self.link.tx_min_turn_us) + self.link.tx_add_bofs

    def _valid_nr(self, nr):
        return (nr - self.va) & 7 <= (self.vs - self.va) & 7

    def _ack(self, nr):
        while self.va != nr and self.unacked:
            self.unacked.pop(0)
            self.va = (self.va + 1) & 7

    def _on_nrm(self, f):
        c = f[1]
        self.wd_deadline = self.now + self.link.link_disconnect_s * 1000
        poll = c & 0x10
        if not c & 0x01:  # I-frame
            nr = c >> 5
            if self.frmr is None:
                if not self._valid_nr(nr):
                    self._reject(c, 0x08)
                else:
                    self._ack(nr)
                    if (c >> 1) & 7 == self.vr and not self.lmp.busy():
                        self.vr = (self.vr + 1) & 7
                        self.i_frames_in += 1
                        if len(f) > 2:
                            self.lmp.receive(f[2:])
        elif c & 0x03 == 0x01:  # S-frame: RR, RNR, REJ, SREJ
            nr = c >> 5
            if self.frmr is None:
                if not self._valid_nr(nr):
                    self._reject(c, 0x08)
                else:
                    self._ack(nr)
                    self.remote_busy = c & 0x0F == 0x05
        else:
            code = c & 0xEF
            if code == 0x83:  # SNRM
                if len(f) == 2:
                    self._reset(f)
                return  # with parameters on our address: ignored, the primary times out
            if code == 0x43:  # DISC
                self._send(self._turn_xbofs(), bytes((self.ca << 1, 0x73)))
                self._log("disconnected by the primary")
                self._to_ndm()
                return
            if code == 0xE3:  # TEST: echo
                self.test_echoes += 1
                self._send(self._turn_xbofs(), bytes((self.ca << 1, 0xF3)), f[2:])
                return
            if code not in (0x03, 0x2F, 0xAF):  # UI and XID are ignored here, the rest is undefined
                if self.frmr is None:
                    self._reject(c, 0x01 | (0x02 if len(f) > 2 else 0))
        if poll:
            self._turn()

    def _reject(self, control, reasons):
        self.frmr = bytes((self.ca << 1, 0x97, control, self.vr << 5 | self.vs << 1, reasons))

    def _reset(self, f):
        self.resets += 1
        self._reset_link()
        self.lmp.reset()
        self._log("link reset by the primary")
        self._send(self._turn_xbofs(), bytes((self.ca << 1, 0x73)))

    def _turn(self):
        """Our turn (the primary's poll): FRMR, or I-frames up to the window, else RR/RNR; F on the last."""
        xbofs = self._turn_xbofs()
        if self.frmr is not None:
            self.frmr_sent += 1
            self._send(xbofs, self.frmr)
            return
        frames = []
        if not self.remote_busy:
            # whatever the poll's N(R) did not acknowledge was lost: send it again (go-back-N)
            self.retransmissions += len(self.unacked)
            frames.extend(self.unacked)
            self.vs = self.va
            room = self.pdu_room()
            while len(frames) < self.link.tx_window:
                pdu = self.lmp.next_pdu(room)
                if pdu is None:
                    break
                frames.append(pdu)
                self.unacked.append(pdu)
        if not frames:
            code = 0x05 if self.lmp.busy() else 0x01
            self._send(xbofs, bytes((self.ca << 1, self.vr << 5 | 0x10 | code)))
            return
        add = self.link.tx_add_bofs
        last = len(frames) - 1
        for i, pdu in enumerate(frames):
            control = self.vr << 5 | self.vs << 1 | (0x10 if i == last else 0)
            self._send(xbofs if i == 0 else add, bytes((self.ca << 1, control)), pdu)
            self.vs = (self.vs + 1) & 7
            self.i_frames_out += 1
