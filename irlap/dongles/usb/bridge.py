"""The USB IrDA Bridge class (``irda-usb``): adapters that wrap and check frames themselves.

Behaviour from the published *Universal Serial Bus IrDA Bridge Device Definition* 1.0 (AMP/SystemSoft,
March 2000) and the removed Linux irda-usb driver (read for behaviour only):

* the interface is class 0xFE (application specific), subclass 0x02 (IrDA bridge), with one bulk IN and one
  bulk OUT endpoint (an interrupt IN endpoint some chips add is not used);
* the class-specific descriptor (type 0x21, 12 bytes) is read with the class request
  GET_CLASS_SPECIFIC_DESCRIPTOR (0x06, IN | class | interface); its fields are IrLAP QoS bit masks: data size,
  window, min turnaround, baud rate (16 bits LE), additional BOFs, rate sniffing, unicast list size;
* every bulk OUT transfer is a one-byte header and one frame without FCS (the chip adds the BOFs, wraps and
  appends the FCS); the header's low nibble asks for a new speed (1 = 2400 ... 6 = 115200, 7 = 576000,
  8 = 1152000, 9 = 4000000, 0 = no change), its high nibble a new number of XBOFs (1 = 48, 2 = 24, 3 = 12,
  4 = 6, 5 = 3, 6 = 2, 7 = 1, 8 = 0, 0 = no change), both taking effect *after* the frame; a transfer
  with the header alone changes the settings without sending anything;
* every bulk IN transfer is a one-byte header (bit 7: the medium was busy) and one received frame whose FCS
  the chip has checked, or the header alone.

Quirk: several chips (Linux: IUC_SPEED_BUG) apply the header's settings *before* the frame. This driver never
asks for a change on a frame that carries data: speed and XBOF changes always go in a header-only transfer,
which both kinds of chip apply the same way. Turnaround: the chip keeps the peer's minimum turnaround itself
(spec chapter 4); what it needs from the peer is in its descriptor, which narrows our QoS offer.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from irlap.dongles import DongleError
from irlap.dongles.framed import FrameDongle, Received
from irlap.dongles.usb import UsbPort, UsbStall
from irlap.qos import (
    ADDITIONAL_BOFS,
    BAUD_RATES,
    DATA_SIZES,
    MIN_TURNAROUND_US,
    WINDOW_SIZES,
    QosParams,
)

REQ_GET_CLASS_DESC = 0x06
CLASS_INTERFACE_IN = 0xA1  # device to host | class | interface
IRDA_DESCRIPTOR = 0x21
DESCRIPTOR_LENGTH = 12
SPEED_CODES: dict[int, int] = {2400: 1, 9600: 2, 19200: 3, 38400: 4, 57600: 5, 115200: 6, 576000: 7,
                               1152000: 8, 4000000: 9, 16000000: 10}
XBOF_CODES: dict[int, int] = {48: 1, 24: 2, 12: 3, 6: 4, 3: 5, 2: 6, 1: 7, 0: 8}
MEDIA_BUSY = 0x80
#: frame bytes a bulk IN transfer can hold: 2048 data + address, control + header, with margin
MAX_IN = 2100


def xbof_code(xbofs: int) -> tuple[int, int]:
    """The header code for at least ``xbofs`` extra BOFs (the chip offers 0, 1, 2, 3, 6, 12, 24, 48)."""
    for count in sorted(XBOF_CODES):
        if count >= xbofs:
            return count, XBOF_CODES[count]
    return 48, XBOF_CODES[48]


class ClassDescriptor:
    """The 12-byte IrDA class-specific descriptor, checked."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) < DESCRIPTOR_LENGTH:
            raise DongleError(f"the IrDA class descriptor is {len(raw)} bytes, not {DESCRIPTOR_LENGTH}: "
                              "not a USB IrDA Bridge device")
        if raw[1] != IRDA_DESCRIPTOR:
            raise DongleError(f"the class descriptor has type 0x{raw[1]:02x}, not 0x21: not a USB IrDA Bridge device")
        self.raw = bytes(raw[:DESCRIPTOR_LENGTH])
        self.spec = int.from_bytes(raw[2:4], "little")
        self.data_size_bits = raw[4]
        self.window_bits = raw[5]
        self.min_turnaround_bits = raw[6]
        self.baud_bits = int.from_bytes(raw[7:9], "little")
        self.bofs_bits = raw[9]
        self.rate_sniff = raw[10]
        self.unicast_list = raw[11]
        if not self.baud_bits & 0x0002:
            raise DongleError(f"the adapter's descriptor offers no 9600 bit/s (baud mask 0x{self.baud_bits:04x})")

    @property
    def speeds(self) -> tuple[int, ...]:
        return tuple(b for i, b in enumerate(BAUD_RATES) if self.baud_bits >> i & 1)

    @property
    def min_turnaround_us(self) -> int:
        """The shortest turnaround the chip accepts (the highest bit set: bits run 10 ms ... 0 us)."""
        bits = [MIN_TURNAROUND_US[i] for i in range(8) if self.min_turnaround_bits >> i & 1]
        return min(bits) if bits else MIN_TURNAROUND_US[0]

    @property
    def max_data_size(self) -> int:
        sizes = [DATA_SIZES[i] for i in range(len(DATA_SIZES)) if self.data_size_bits >> i & 1]
        return max(sizes) if sizes else 64

    @property
    def max_window(self) -> int:
        windows = [WINDOW_SIZES[i] for i in range(len(WINDOW_SIZES)) if self.window_bits >> i & 1]
        return max(windows) if windows else 1

    @property
    def additional_bofs(self) -> int:
        """What the chip needs extra BOFs-wise (the value of the highest bit set, as QoS reads it)."""
        bits = [i for i in range(8) if self.bofs_bits >> i & 1]
        return ADDITIONAL_BOFS[max(bits)] if bits else 12


class UsbBridge(FrameDongle):
    """USB IrDA Bridge class adapters (STIr4116-class and no-name bridges, ACT-IR2000U, KC-180, ESI-9685)."""

    name = "irda-usb"
    description = "USB IrDA Bridge class (irda-usb)"
    speeds = (2400, 9600, 19200, 38400, 57600, 115200)  # until the descriptor says otherwise
    min_turnaround_us = 0

    def __init__(self, port: UsbPort, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(port, sleep)
        self.descriptor: ClassDescriptor | None = None
        self.xbofs = 12
        self.ep_in = 0x81
        self.ep_out = 0x02
        self.media_busy_seen = 0

    def open(self) -> None:
        try:
            raw = self.port.control_in(CLASS_INTERFACE_IN, REQ_GET_CLASS_DESC, 0, self.port.interface,
                                       DESCRIPTOR_LENGTH)
        except UsbStall:
            raise DongleError("the adapter refused GET_CLASS_SPECIFIC_DESCRIPTOR: it is not a USB IrDA Bridge "
                              "device (irda dongles --scan names its driver)") from None
        self.descriptor = ClassDescriptor(raw)
        self.speeds = self.descriptor.speeds  # instance attribute: this chip's speeds
        self.min_turnaround_us = self.descriptor.min_turnaround_us
        bulk_in = [a for a, attrs, _size in self.port.endpoints() if attrs & 3 == 2 and a & 0x80]
        bulk_out = [a for a, attrs, _size in self.port.endpoints() if attrs & 3 == 2 and not a & 0x80]
        if not bulk_in or not bulk_out:
            raise DongleError("the adapter has no bulk IN and OUT endpoints: not a USB IrDA Bridge device")
        self.ep_in, self.ep_out = bulk_in[0], bulk_out[0]
        self.speed = None
        self._header_only(SPEED_CODES[9600] | XBOF_CODES[12] << 4)
        self.speed, self.xbofs = 9600, 12

    def _header_only(self, header: int) -> None:
        self.port.bulk_write(self.ep_out, bytes((header,)))

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        if baud == self.speed:
            return
        self._header_only(SPEED_CODES[baud])
        self.speed = baud

    def send_frame(self, frame: bytes, xbofs: int) -> None:
        wanted, code = xbof_code(xbofs)
        if wanted != self.xbofs:
            self._header_only(code << 4)
            self.xbofs = wanted
        self.port.bulk_write(self.ep_out, b"\x00" + bytes(frame))

    def receive(self, timeout: float) -> Received:
        packet = self.port.bulk_read(self.ep_in, MAX_IN, int(timeout * 1000))
        received = Received()
        if not packet:
            return received
        header, frame = packet[0], packet[1:]
        if header & MEDIA_BUSY:
            received.busy = True
            self.media_busy_seen += 1
        if frame:
            received.frames.append(frame)
        return received

    def line_time(self, frame: bytes, xbofs: int) -> float:
        if (self.speed or 9600) <= 115200:  # at SIR the chip sends at least the XBOFs it was told last
            xbofs = max(xbofs, self.xbofs)
        return super().line_time(frame, xbofs)

    def restrict_qos(self, qos: QosParams) -> QosParams:
        from dataclasses import replace

        qos = super().restrict_qos(qos)
        if self.descriptor is not None:
            qos = replace(qos, data_size=qos.data_size & self.descriptor.data_size_bits or 0x01,
                          window_size=qos.window_size & self.descriptor.window_bits or 0x01)
        return qos

    def close(self) -> None:
        self.port.close()

