"""MosChip MCS7780 (9710:7780): SIR, MIR and FIR, 16-bit registers over vendor requests, two bulk endpoints.

Behaviour from the removed Linux mcs7780 driver (read for behaviour only):

* registers are 16 bits: written with vendor request 0x0E (OUT | vendor | device, wValue = value, wIndex =
  register), read with 0x0F (IN, wIndex = register, 2 bytes LE). MODE (register 0) holds FIR (0x0001), the
  1.6 us SIR pulse (0x0002), back-to-back and ASK (0x0004, 0x0008), the speed code in bits 7-5 (0 = 2400,
  1 = 9600 ... 5 = 115200, 6 = 576000, 7 = 1152000; 4 Mbit/s is the FIR bit), PLL power down (0x0100),
  DRIVER (0x0200: the host drives the chip), DTD (0x0400: the chip turns the direction itself), SIPEN
  (0x1000: it sends the SIP pulse itself) and RESET (0x8000, cleared to make the changes take effect);
  XCVR (register 2) sets up the transceiver (a Vishay TFDU by default: MODE0 0x0001, STFIR 0x0002, XCVR_CONF
  0x0004, RXFAST 0x0008, MODE1 0x0080); MINRXPW (4) is the minimum receive pulse width (0 at SIR, 5 at MIR
  and FIR); RESV (7) has IRINTX (0x0001) while the chip transmits;
* the Vishay transceiver is put into its mode by a sequence on XCVR: MODE0 and XCVR_CONF set with STFIR and
  MODE1 cleared, then MODE0 cleared, then XCVR_CONF cleared; Linux ran it at open and again whenever a speed
  change crossed between SIR, MIR and FIR;
* a speed change waits until IRINTX is clear (at most 100 reads), sets MINRXPW when the framing changes,
  writes MODE with the new speed code / FIR bit, re-runs the transceiver sequence if the framing changed,
  then writes MODE with RESET cleared;
* each bulk OUT transfer is one frame behind a 2-byte little-endian length that counts itself: at SIR the
  host-wrapped frame (XBOFs, BOF, escaped frame and FCS, EOF), at MIR the frame and its CRC-16 (LE), at FIR
  the frame and its CRC-32 (LE); the chip does the HDLC or 4PPM framing at MIR and FIR;
* each bulk IN transfer is one received frame: at SIR its escaped bytes without BOF and EOF, at MIR and FIR
  the frame with its CRC, which the host checks (bad ones are dropped and counted).

The chip does not keep the peer's minimum turnaround at MIR and FIR (there is nothing like XBOFs to hand it),
so the driver waits before such a frame until the fill time has passed since the last bulk IN transfer completed
(the peer's frame had ended by then): the time the frame took to reach the host and the station to answer is
part of the turnaround, not added to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from irlap import framing
from irlap.dongles import DongleError
from irlap.dongles.framed import FrameDongle, Received
from irlap.dongles.usb import UsbPort, UsbStall
from irlap.fir import GOOD_RESIDUE as FIR_GOOD_RESIDUE
from irlap.fir import fcs32
from irlap.sir import GOOD_RESIDUE, Unwrapper, UnwrapStats, fcs16, wrap

VENDOR_OUT, VENDOR_IN = 0x40, 0xC0
REQ_WRITE, REQ_READ = 0x0E, 0x0F
REG_MODE, REG_XCVR, REG_MINRXPW, REG_RESV = 0, 2, 4, 7

MODE_FIR, MODE_SIR16US, MODE_BBTG, MODE_ASK = 0x0001, 0x0002, 0x0004, 0x0008
MODE_SPEED_MASK, MODE_SPEED_SHIFT = 0x00E0, 5
MODE_PLLPWDN, MODE_DRIVER, MODE_DTD, MODE_SIPEN, MODE_RESET = 0x0100, 0x0200, 0x0400, 0x1000, 0x8000
XCVR_MODE0, XCVR_STFIR, XCVR_CONF, XCVR_RXFAST, XCVR_MODE1 = 0x0001, 0x0002, 0x0004, 0x0008, 0x0080
RESV_IRINTX = 0x0001
SPEED_CODES: dict[int, int] = {2400: 0, 9600: 1, 19200: 2, 38400: 3, 57600: 4, 115200: 5, 576000: 6, 1152000: 7,
                               4000000: 0}
BUFFER = 4096  # the chip's transfer buffer, both ways


def min_rx_pulse(baud: int) -> int:
    return 0 if baud <= framing.SIR_MAX else 5


class Mcs7780(FrameDongle):
    """MosChip MCS7780 with a Vishay TFDU transceiver (the usual build)."""

    name = "mcs7780"
    description = "MosChip MCS7780 (USB, SIR/MIR/FIR)"
    speeds = (2400, 9600, 19200, 38400, 57600, 115200, 576000, 1152000, 4000000)
    min_turnaround_us = 1000  # Linux offered 10, 5 and 1 ms

    def __init__(self, port: UsbPort, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(port, sleep)
        self.unwrapper = Unwrapper()
        self.stats = UnwrapStats()  # frames dropped at MIR/FIR for a bad CRC or a short length
        self.ep_in, self.ep_out = 0x81, 0x02
        self.clock: Callable[[], float] = time.monotonic
        self.heard_at = float("-inf")  # self.clock() when the last bulk IN transfer (a frame heard) completed

    # --- registers ------------------------------------------------------------------------------------
    def write_reg(self, register: int, value: int) -> None:
        try:
            self.port.control_out(VENDOR_OUT, REQ_WRITE, value & 0xFFFF, register)
        except UsbStall:
            raise DongleError(f"the adapter refused the MCS7780 register write {register}={value:#06x}: it is not "
                              "an MCS7780") from None

    def read_reg(self, register: int) -> int:
        try:
            data = self.port.control_in(VENDOR_IN, REQ_READ, 0, register, 2)
        except UsbStall:
            raise DongleError("the adapter refused the MCS7780 register read: it is not an MCS7780") from None
        if len(data) != 2:
            raise DongleError(f"the MCS7780 returned {len(data)} bytes for its 16-bit register {register}")
        return int.from_bytes(data, "little")

    def setup_transceiver(self) -> None:
        """The Vishay TFDU mode sequence on XCVR."""
        value = (self.read_reg(REG_XCVR) | XCVR_MODE0 | XCVR_CONF) & ~(XCVR_STFIR | XCVR_MODE1)
        self.write_reg(REG_XCVR, value)
        value &= ~XCVR_MODE0
        self.write_reg(REG_XCVR, value)
        value &= ~XCVR_CONF
        self.write_reg(REG_XCVR, value)

    def _find_endpoints(self) -> None:
        try:
            endpoints = self.port.endpoints()
        except Exception:  # noqa: BLE001 - a port without descriptors keeps the usual addresses
            return
        ins = [address for address, attributes, _size in endpoints if address & 0x80 and attributes & 3 == 2]
        outs = [address for address, attributes, _size in endpoints if not address & 0x80 and attributes & 3 == 2]
        if not ins or not outs:
            raise DongleError("the adapter has no bulk IN and OUT endpoint: it is not an MCS7780")
        self.ep_in, self.ep_out = ins[0], outs[0]

    # --- the driver's steps ---------------------------------------------------------------------------
    def open(self) -> None:
        self.speed = None
        self._find_endpoints()
        mode = self.read_reg(REG_MODE) | MODE_DRIVER
        self.write_reg(REG_MODE, mode)
        self.write_reg(REG_MINRXPW, 0)
        mode = self.read_reg(REG_MODE) & ~(MODE_FIR | MODE_BBTG | MODE_ASK | MODE_SPEED_MASK | MODE_PLLPWDN)
        mode |= MODE_SIR16US | SPEED_CODES[9600] << MODE_SPEED_SHIFT | MODE_DTD | MODE_SIPEN
        self.write_reg(REG_MODE, mode)
        self.setup_transceiver()
        self.write_reg(REG_XCVR, self.read_reg(REG_XCVR) | XCVR_RXFAST)
        self.write_reg(REG_MODE, self.read_reg(REG_MODE) & ~MODE_RESET)
        self.unwrapper.reset()
        self.speed = 9600

    def wait_transmitted(self) -> None:
        for _ in range(100):
            if not self.read_reg(REG_RESV) & RESV_IRINTX:
                return
            self.sleep(0.001)
        raise DongleError("the MCS7780 kept transmitting for 100 status reads: cannot change its speed")

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        if baud == self.speed:
            return
        self.wait_transmitted()
        old = framing.kind(self.speed or 9600)
        new = framing.kind(baud)
        mode = self.read_reg(REG_MODE) & ~(MODE_FIR | MODE_SPEED_MASK)
        if new != old:
            self.write_reg(REG_MINRXPW, min_rx_pulse(baud))
        mode |= SPEED_CODES[baud] << MODE_SPEED_SHIFT | (MODE_FIR if new == "fir" else 0)
        self.write_reg(REG_MODE, mode)
        if new != old:
            self.setup_transceiver()
        self.write_reg(REG_MODE, self.read_reg(REG_MODE) & ~MODE_RESET)
        self.unwrapper.reset()
        self.speed = baud

    @property
    def turnaround_from_rx(self) -> bool:
        return framing.kind(self.speed or 9600) != "sir"  # MIR/FIR: the wait below; SIR: XBOFs

    def send_frame(self, frame: bytes, xbofs: int) -> None:
        speed = self.speed or 9600
        kind = framing.kind(speed)
        if kind == "sir":
            body = wrap(frame, xbofs)
        else:
            if xbofs:
                # the chip cannot send fill: keep the turnaround, counted from the end of what we heard last
                wait = self.heard_at + framing.fill_seconds(speed, xbofs) - self.clock()
                if wait > 0:
                    self.sleep(wait)
            crc = fcs16(frame).to_bytes(2, "little") if kind == "mir" else fcs32(frame).to_bytes(4, "little")
            body = bytes(frame) + crc
        if len(body) + 2 > BUFFER:
            raise DongleError(f"a {len(frame)}-byte frame does not fit the MCS7780's {BUFFER}-byte buffer")
        self.port.bulk_write(self.ep_out, (len(body) + 2).to_bytes(2, "little") + body)

    def unwrap(self, data: bytes) -> list[bytes]:
        """The frames in one bulk IN transfer at the current speed (bad ones counted in :attr:`stats`)."""
        kind = framing.kind(self.speed or 9600)
        if kind == "sir":
            return self.unwrapper.feed(b"\xc0" + data + b"\xc1")  # the chip strips BOF and EOF
        if kind == "mir":
            if len(data) < 4:
                self.stats.runts += 1
                return []
            if fcs16(data) != GOOD_RESIDUE:
                self.stats.bad_fcs += 1
                return []
            self.stats.good += 1
            return [bytes(data[:-2])]
        if len(data) < 6:
            self.stats.runts += 1
            return []
        if fcs32(data) != FIR_GOOD_RESIDUE:
            self.stats.bad_fcs += 1
            return []
        self.stats.good += 1
        return [bytes(data[:-4])]

    def receive(self, timeout: float) -> Received:
        data = self.port.bulk_read(self.ep_in, BUFFER, int(timeout * 1000))
        if not data:
            return Received()
        self.heard_at = self.clock()  # read by send_frame on the engine thread (one float: no lock needed)
        return Received(frames=self.unwrap(data), busy=True)

    def close(self) -> None:
        try:
            self.write_reg(REG_MODE, (self.read_reg(REG_MODE) | MODE_PLLPWDN) & ~MODE_DRIVER)
        except Exception:  # noqa: BLE001 - an unplugged chip is powered down already
            pass
        self.port.close()
