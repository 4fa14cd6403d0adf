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

FIR (4 Mbit/s, host-built frames with CRC-32) waits for the MIR/FIR codecs of the medium; this driver offers
the SIR speeds 2400-115200.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from irlap.dongles import DongleError
from irlap.dongles.framed import FrameDongle, Received
from irlap.dongles.usb import UsbPort, UsbStall
from irlap.sir import Unwrapper, wrap

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


class Stir4200(FrameDongle):
    """SigmaTel STIr4200 (Hama and other brands)."""

    name = "stir4200"
    description = "SigmaTel STIr4200 (USB)"
    speeds = (2400, 9600, 19200, 38400, 57600, 115200)
    min_turnaround_us = 1000  # Linux offered 1 ms or more for this chip
    tx_power = 0  # 0 = highest ... 3 = lowest
    rx_sensitivity = 1  # 0 = most sensitive

    def __init__(self, port: UsbPort, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(port, sleep)
        self.unwrapper = Unwrapper()

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
            self.sleep(max(count * 10 / (self.speed or 9600), 0.0005))

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
        self.speed = baud

    def send_frame(self, frame: bytes, xbofs: int) -> None:
        wire = wrap(frame, xbofs)
        if len(wire) + 4 > FIFO_SIZE:
            raise DongleError(f"a {len(frame)}-byte frame does not fit the STIr4200's {FIFO_SIZE}-byte FIFO")
        self.port.bulk_write(EP_OUT, b"\x55\xaa" + len(wire).to_bytes(2, "little") + wire)

    def receive(self, timeout: float) -> Received:
        data = self.port.bulk_read(EP_IN, FIFO_SIZE, int(timeout * 1000))
        if not data:
            return Received()
        return Received(frames=self.unwrapper.feed(data), busy=True)

    def close(self) -> None:
        try:
            self.write_reg(REG_CTRL1, CTRL1_TXPWD | CTRL1_RXPWD)  # power the transceiver down
        except Exception:  # noqa: BLE001 - an unplugged chip is powered down already
            pass
        self.port.close()
