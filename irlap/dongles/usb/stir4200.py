"""SigmaTel STIr4200 (066f:4200): a USB IrDA chip without framing, driven by register writes.

Behaviour from the removed Linux stir4200 driver (read for behaviour only) and SigmaTel's register names:

* registers are written one at a time with the vendor request WRITE_SINGLE (0x03, OUT | vendor | device,
  wValue = value, wIndex = register) and read in runs with READ_REG (0x01, IN, wIndex = first register);
  writing several at once does not work on the chip;
* a speed change: modulator reset (CTRL1 = SRESET), the DPLL value 0x15, the clock divider (PDCLK: 0x77
  for 9600 ... 0x09 for 115200, 0xDF for 2400, 0x02 for 4 Mbit/s), MODE = NRESET | FASTRX | SIR (| 2400 bit),
  then CTRL1 with SDMODE and again without it (this resets a TEMIC-style transceiver, and leaves the
  transmitter power bits), then CTRL2 = receiver sensitivity << 5. Until CTRL1 loses SRESET the chip is silent;
* the host does the framing: each bulk OUT transfer (endpoint 1) is ``55 AA``, the length (16 bits LE) and
  the SIR-wrapped frame (XBOFs, BOF, escaped frame and FCS, EOF); bulk IN (endpoint 2) gives the raw bytes
  the receiver decoded, which we unwrap;
* the transmit FIFO (4 KiB) must be empty before a speed change and before the receiver is started: FIFOCTL
  (register 5) has DIR (0x10, transmitting) and EMPTY (0x04); FIFOLSB/FIFOMSB hold the byte count;
* the chip needs polling to receive and does not keep the turnaround: the XBOFs the station puts before its
  first frame (at <= 115200) keep it, as on a serial dongle.

FIR (4 Mbit/s): the host builds the frame and the chip only does the 4PPM modulation. MODE = NRESET | FASTRX |
FIR | FFRSTEN and PDCLK 0x02. The ``55 AA len`` block holds 16 bytes 0x7F (the chip sends a preamble for each),
two 0x7E (start flag), the frame and its CRC-32 (IEEE 802, little-endian) with 0x7D, 0x7E and 0x7F escaped as
0x7D and the byte XOR 0x20, then two 0x7E (stop flag). What the receiver decoded comes back by polling bulk IN in
the same byte form (0x7E delimited, escaped, CRC-32 included): the host finds the frames, removes the escapes and
checks the CRC-32; bad frames are dropped and counted in :attr:`Stir4200.stats`. At FIR there is no fill to keep
the peer's minimum turnaround, so before the first frame of a turn the driver waits the fill time counted from
when the last bulk IN transfer with data completed (as Linux's driver did from its last receive time).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from irlap import framing
from irlap.dongles import DongleError
from irlap.dongles.framed import FrameDongle, Received
from irlap.dongles.usb import UsbPort, UsbStall
from irlap.fir import checked_frame, fcs32
from irlap.sir import DEFAULT_MAX_FRAME, Unwrapper, UnwrapStats, wrap

REQ_WRITE_REG = 0x00
REQ_READ_REG = 0x01
REQ_WRITE_SINGLE = 0x03
VENDOR_OUT = 0x40
VENDOR_IN = 0xC0

REG_MODE, REG_PDCLK, REG_CTRL1, REG_CTRL2, REG_FIFOCTL, REG_FIFOLSB, REG_FIFOMSB, REG_DPLL = 1, 2, 3, 4, 5, 6, 7, 8

MODE_FIR, MODE_SIR, MODE_FASTRX, MODE_FFRSTEN, MODE_NRESET, MODE_2400 = 0x80, 0x20, 0x08, 0x04, 0x02, 0x01
CTRL1_SDMODE, CTRL1_TXPWD, CTRL1_RXPWD, CTRL1_SRESET = 0x80, 0x10, 0x08, 0x01
FIFOCTL_DIR, FIFOCTL_CLR, FIFOCTL_EMPTY = 0x10, 0x08, 0x04
DPLL_VALUE = 0x15
PDCLK: dict[int, int] = {2400: 0xDF, 9600: 0x77, 19200: 0x3B, 38400: 0x1D, 57600: 0x13, 115200: 0x09,
                         4000000: 0x02}
FIFO_SIZE = 4096
EP_OUT, EP_IN = 0x01, 0x82
FIR_XBOF, FIR_EOF, FIR_CE = 0x7F, 0x7E, 0x7D  # preamble byte, start/stop flag, escape (XOR 0x20 follows)
FIR_PREAMBLE_BYTES = 16
_ESCAPED = re.compile(rb"\x7d(.)", re.DOTALL)


def fir_stuff(data: bytes) -> bytes:
    """``data`` with 0x7D, 0x7E and 0x7F escaped (0x7D first, so the inserted escapes are not escaped again)."""
    return bytes(data).replace(b"\x7d", b"\x7d\x5d").replace(b"\x7e", b"\x7d\x5e").replace(b"\x7f", b"\x7d\x5f")


def fir_unstuff(data: bytes) -> bytes:
    """Undo :func:`fir_stuff` (the caller has checked that no escape ends the data)."""
    return _ESCAPED.sub(lambda m: bytes((m.group(1)[0] ^ 0x20,)), bytes(data)) if b"\x7d" in data else bytes(data)


def fir_block(frame: bytes) -> bytes:
    """The bytes the STIr4200 takes for one FIR frame (without the ``55 AA len`` header)."""
    frame = bytes(frame)
    body = fir_stuff(frame + fcs32(frame).to_bytes(4, "little"))
    return bytes((FIR_XBOF,)) * FIR_PREAMBLE_BYTES + b"\x7e\x7e" + body + b"\x7e\x7e"


class FirUnwrapper:
    """The host's FIR receive path: frames in the 0x7E-delimited, escaped bytes the chip hands up.

    As Linux's driver parsed them: bytes before a 0x7E are skipped, repeated 0x7E are one flag, a 0x7F inside a
    frame or an escape followed by 0x7E aborts it, the next 0x7E ends it; a frame must carry a good CRC-32.
    ``feed`` scans with ``bytes.find`` (the byte loop of C costs too much in Python at 4 Mbit/s).
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.stats = UnwrapStats()
        self.max_bytes = 2 * (max_frame + 4)  # escaped: at most twice the frame and its CRC
        self._partial = b""
        self._in_frame = False

    def reset(self) -> None:
        """Forget a partial frame (after a speed change: what follows is another framing); counters are kept."""
        self._partial = b""
        self._in_frame = False

    def feed(self, data: bytes) -> list[bytes]:
        """The good frames (without CRC) that ``data``, one bulk IN transfer, completes."""
        frames: list[bytes] = []
        buf = self._partial + bytes(data)
        self._partial = b""
        pos, end = 0, len(buf)
        while pos < end:
            if not self._in_frame:
                start = buf.find(b"\x7e", pos)
                if start < 0:
                    self.stats.garbage_bytes += end - pos
                    return frames
                self.stats.garbage_bytes += start - pos
                self._in_frame = True
                pos = start + 1
            while pos < end and buf[pos] == FIR_EOF:  # more start flags
                pos += 1
            if pos >= end:
                return frames
            stop = buf.find(b"\x7e", pos)
            if stop < 0:
                if end - pos > self.max_bytes:
                    self.stats.oversize += 1
                    self._in_frame = False
                    return frames
                self._partial = buf[pos:]
                return frames
            body, pos = buf[pos:stop], stop + 1
            self._in_frame = False
            frame = self._finish(body)
            if frame is not None:
                frames.append(frame)
        return frames

    def _finish(self, body: bytes) -> bytes | None:
        """The frame in one escaped body between flags, or None (counted) when it is broken."""
        if not body.strip(b"\x7f"):
            return None  # preamble between a stop flag and the next start flag
        if b"\x7f" in body or body.endswith(b"\x7d"):  # a preamble byte inside, or an escape before the flag
            self.stats.aborted += 1
            return None
        if len(body) > self.max_bytes:
            self.stats.oversize += 1
            return None
        return checked_frame(fir_unstuff(body), self.stats)


class Stir4200(FrameDongle):
    """SigmaTel STIr4200 (Hama and other brands)."""

    name = "stir4200"
    description = "SigmaTel STIr4200 (USB)"
    speeds = (2400, 9600, 19200, 38400, 57600, 115200, 4000000)
    min_turnaround_us = 1000  # Linux offered 1 ms or more for this chip (qos_mtt_bits 0x07)
    tx_power = 0  # 0 = highest ... 3 = lowest
    rx_sensitivity = 1  # 0 = most sensitive

    def __init__(self, port: UsbPort, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(port, sleep)
        self.unwrapper = Unwrapper()
        self.fir_unwrapper = FirUnwrapper()
        self.clock: Callable[[], float] = time.monotonic
        self.heard_at = float("-inf")  # self.clock() when the last bulk IN transfer with data completed

    @property
    def stats(self) -> UnwrapStats:
        """What the FIR receive path dropped and passed (SIR frames are counted by the SIR unwrapper)."""
        return self.fir_unwrapper.stats

    def write_reg(self, register: int, value: int) -> None:
        try:
            self.port.control_out(VENDOR_OUT, REQ_WRITE_SINGLE, value, register)
        except UsbStall:
            raise DongleError(f"the adapter refused the STIr4200 register write {register}={value:#04x}: it is not "
                              "an STIr4200") from None

    def read_regs(self, register: int, count: int) -> bytes:
        try:
            data = self.port.control_in(VENDOR_IN, REQ_READ_REG, 0, register, count)
        except UsbStall:
            raise DongleError("the adapter refused the STIr4200 register read: it is not an STIr4200") from None
        if len(data) != count:
            raise DongleError(f"the STIr4200 returned {len(data)} register bytes for {count}")
        return data

    def open(self) -> None:
        self.speed = None
        self.set_speed(9600)

    def fifo_wait(self) -> None:
        """Wait until the transmit FIFO is empty (or the chip has turned to receiving); clear a stuck FIFO."""
        previous = FIFO_SIZE * 2
        while True:
            status, low, high = self.read_regs(REG_FIFOCTL, 3)
            count = (high & 0x1F) << 8 | low
            if not status & FIFOCTL_DIR or status & FIFOCTL_EMPTY:
                return
            if count > previous:  # the count went up while we waited: the FIFO is confused
                self.write_reg(REG_FIFOCTL, FIFOCTL_CLR)
                self.write_reg(REG_FIFOCTL, 0)
                return
            previous = count
            self.sleep(max(count / framing.data_rate(self.speed or 9600), 0.0005))

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        if self.speed is not None:
            self.fifo_wait()
        self.write_reg(REG_CTRL1, CTRL1_SRESET)
        self.write_reg(REG_DPLL, DPLL_VALUE)
        self.write_reg(REG_PDCLK, PDCLK[baud])
        mode = MODE_NRESET | MODE_FASTRX | (MODE_FIR | MODE_FFRSTEN if baud == 4000000 else MODE_SIR)
        if baud == 2400:
            mode |= MODE_2400
        self.write_reg(REG_MODE, mode)
        power = (self.tx_power & 3) << 1
        self.write_reg(REG_CTRL1, CTRL1_SDMODE | power)
        self.write_reg(REG_CTRL1, power)
        self.write_reg(REG_CTRL2, (self.rx_sensitivity & 7) << 5)
        self.unwrapper.reset()
        self.fir_unwrapper.reset()
        self.speed = baud

    @property
    def turnaround_from_rx(self) -> bool:
        return (self.speed or 9600) in framing.FIR_SPEEDS  # FIR: the wait below; SIR: XBOFs

    def send_frame(self, frame: bytes, xbofs: int) -> None:
        speed = self.speed or 9600
        if speed in framing.FIR_SPEEDS:
            if xbofs:  # no fill at FIR: keep the turnaround, counted from the end of what we heard last
                wait = self.heard_at + framing.fill_seconds(speed, xbofs) - self.clock()
                if wait > 0:
                    self.sleep(wait)
            wire = fir_block(frame)
        else:
            wire = wrap(frame, xbofs)
        # a frame whose escapes make it longer than the FIFO (2 KB of 0x7E at FIR) goes in two blocks, the second
        # once the FIFO has room: the FIFO is one byte stream to the modulator (Linux wrote past its 4 KB buffer)
        room = FIFO_SIZE - 4
        offset = 0
        while offset < len(wire):
            piece = wire[offset:offset + room]
            if offset + len(piece) < len(wire) and (len(piece) - len(piece.rstrip(b"\x7d"))) % 2:
                piece = piece[:-1]  # a block never ends between an escape and the byte it escapes
            if offset:
                self.fifo_room(len(piece) + 4)
            self.port.bulk_write(EP_OUT, b"\x55\xaa" + len(piece).to_bytes(2, "little") + piece)
            offset += len(piece)

    def fifo_room(self, needed: int) -> None:
        """Wait until the transmit FIFO has room for ``needed`` bytes."""
        previous = FIFO_SIZE * 2
        while True:
            status, low, high = self.read_regs(REG_FIFOCTL, 3)
            count = (high & 0x1F) << 8 | low
            if not status & FIFOCTL_DIR or status & FIFOCTL_EMPTY or FIFO_SIZE - count >= needed:
                return
            if count > previous:
                raise DongleError("the STIr4200's transmit FIFO count went up while it was sending: the chip is "
                                  "confused; unplug it and plug it in again")
            previous = count
            self.sleep(max((needed - (FIFO_SIZE - count)) / framing.data_rate(self.speed or 9600), 0.0005))

    def receive(self, timeout: float) -> Received:
        data = self.port.bulk_read(EP_IN, FIFO_SIZE, int(timeout * 1000))
        if not data:
            return Received()
        if (self.speed or 9600) in framing.FIR_SPEEDS:
            self.heard_at = self.clock()  # read by send_frame on the engine thread (one float: no lock needed)
            return Received(frames=self.fir_unwrapper.feed(data), busy=True)
        return Received(frames=self.unwrapper.feed(data), busy=True)

    def close(self) -> None:
        try:
            self.write_reg(REG_CTRL1, CTRL1_TXPWD | CTRL1_RXPWD)  # power the transceiver down
        except Exception:  # noqa: BLE001 - an unplugged chip is powered down already
            pass
        self.port.close()
