"""Kingsun Dazzle (07d0:4100, sold as MA-660): SIR through two interrupt endpoints, 7 bytes per transfer.

Behaviour from the removed Linux ksdazzle-sir driver (read for behaviour only; its author worked it out from
USB captures of the Windows driver):

* one interface with exactly two endpoints: the first interrupt IN, the second interrupt OUT;
* transmit: the host wraps the frame (SIR: XBOFs, BOF, escapes, FCS, EOF) and sends it in segments of at
  most 7 bytes, each an 8-byte interrupt OUT transfer whose first byte is 0xF8 + the segment's
  length; the unused tail is ignored (we send zeros). One big block does not work on this chip;
* receive: the host polls the interrupt IN endpoint; each transfer brings 0-8 raw bytes the receiver decoded,
  which, put together, are the SIR byte stream we unwrap;
* speed: class request 0x09 (OUT | class | interface, wValue 0x0200, wIndex 1) with the 8-byte line-coding
  record the KS-959 also takes (bit rate, 32 bits LE; 0x03 = 8 data bits, no parity, one stop bit; zeros).

Linux offered 2400-115200 (only SIR was ever seen on this chip): so does this driver.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from irlap.dongles import DongleError
from irlap.dongles.framed import FrameDongle, Received
from irlap.dongles.usb import UsbPort, UsbStall
from irlap.dongles.usb.ks959 import speed_record
from irlap.sir import Unwrapper, wrap

CLASS_OUT = 0x21
REQ_SEND = 0x09
SEGMENT = 7  # clear bytes per interrupt transfer
PACKET = 8  # the interrupt endpoints' packet size
DRAIN_READS = 64  # further reads, 1 ms each at most, after the first that brought data


class KsDazzle(FrameDongle):
    """Kingsun Dazzle / MA-660."""

    name = "ksdazzle"
    description = "Kingsun Dazzle / MA-660 (USB)"
    speeds = (2400, 9600, 19200, 38400, 57600, 115200)
    min_turnaround_us = 1000  # Linux offered 10, 5 and 1 ms

    def __init__(self, port: UsbPort, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(port, sleep)
        self.unwrapper = Unwrapper()
        self.ep_in, self.ep_out = 0x81, 0x02

    def _find_endpoints(self) -> None:
        endpoints = self.port.endpoints()
        if len(endpoints) != 2:
            raise DongleError(f"the adapter has {len(endpoints)} endpoints, a Dazzle has 2: it is not a Dazzle")
        (ep_in, in_attr, _in_size), (ep_out, out_attr, _out_size) = endpoints
        if not (ep_in & 0x80 and in_attr & 3 == 3) or ep_out & 0x80 or out_attr & 3 != 3:
            raise DongleError("the adapter's endpoints are not interrupt IN then interrupt OUT: it is not a Dazzle")
        self.ep_in, self.ep_out = ep_in, ep_out

    def open(self) -> None:
        self.speed = None
        self._find_endpoints()
        self.set_speed(9600)

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        try:
            self.port.control_out(CLASS_OUT, REQ_SEND, 0x0200, 1, speed_record(baud))
        except UsbStall:
            raise DongleError("the adapter refused the Dazzle speed request: it is not a Dazzle") from None
        self.unwrapper.reset()
        self.speed = baud

    def send_frame(self, frame: bytes, xbofs: int) -> None:
        wire = wrap(frame, xbofs)  # no size limit: the chip holds one segment (Linux's 2 KiB was its own buffer)
        for start in range(0, len(wire), SEGMENT):
            segment = wire[start:start + SEGMENT]
            self.port.bulk_write(self.ep_out, bytes((0xF8 + len(segment),)) + segment + bytes(SEGMENT - len(segment)))

    def receive(self, timeout: float) -> Received:
        data = self.port.bulk_read(self.ep_in, PACKET, int(timeout * 1000))
        if not data:
            return Received()
        chunks = [data]
        for _ in range(DRAIN_READS):  # what else has come in: the chip gives 8 bytes per transfer
            more = self.port.bulk_read(self.ep_in, PACKET, 1)
            if not more:
                break
            chunks.append(more)
        return Received(frames=self.unwrapper.feed(b"".join(chunks)), busy=True)

    def close(self) -> None:
        self.port.close()
