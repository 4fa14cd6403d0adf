"""Kingsun/DonShine KS-7200 (07c0:4200): SIR at 9600 bit/s through two interrupt endpoints.

Behaviour from the removed Linux kingsun-sir driver (read for behaviour only; its author worked it out from
USB captures of the Windows driver):

* one interface with exactly two endpoints: the first interrupt IN (packet size 2-255, 8 in practice), the
  second interrupt OUT;
* transmit: the host wraps the frame (SIR: XBOFs, BOF, escapes, FCS, EOF) and sends it as one interrupt OUT
  transfer;
* receive: the host polls; each read is one full packet whose first byte is the number (1 .. packet size - 1)
  of valid bytes after it. Any other count is an uninitialised buffer (just after plug-in): discarded;
* quirk: the chip does not empty its receive buffer when the host reads it, so with nothing new every read
  brings the same packet again. Linux left the repeats to its unwrapper; here a packet equal to the previous one
  is dropped while no frame is in progress (outside a frame a repeat can only be a stale copy or XBOF fill,
  inside one it may be real data, such as a run of equal bytes);
* speed: no speed command was ever seen; the chip runs at 9600 bit/s only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from irlap.dongles import DongleError
from irlap.dongles.framed import FrameDongle, Received
from irlap.dongles.usb import UsbPort
from irlap.sir import Unwrapper, wrap

POLL = 0.001  # the interrupt endpoint's 1 ms interval
MAX_WRAPPED = 4096  # the largest transfer Linux sent


class KingsunSir(FrameDongle):
    """Kingsun/DonShine KS-7200."""

    name = "kingsun-sir"
    description = "Kingsun/DonShine KS-7200 (USB, 9600 bit/s)"
    speeds = (9600,)
    min_turnaround_us = 1000  # Linux offered 10, 5 and 1 ms

    def __init__(self, port: UsbPort, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(port, sleep)
        self.unwrapper = Unwrapper()
        self.ep_in, self.ep_out, self.packet = 0x81, 0x02, 8
        self.last = b""  # the previous packet, to drop the chip's repeats

    def _find_endpoints(self) -> None:
        endpoints = self.port.endpoints()
        if len(endpoints) != 2:
            raise DongleError(f"the adapter has {len(endpoints)} endpoints, a KS-7200 has 2: it is not a KS-7200")
        (ep_in, in_attr, in_size), (ep_out, out_attr, _out_size) = endpoints
        if not (ep_in & 0x80 and in_attr & 3 == 3) or ep_out & 0x80 or out_attr & 3 != 3:
            raise DongleError("the adapter's endpoints are not interrupt IN then interrupt OUT: it is not a KS-7200")
        if not 1 < in_size <= 255:
            raise DongleError(f"the adapter's IN packet size {in_size} is not 2-255: it is not a KS-7200")
        self.ep_in, self.ep_out, self.packet = ep_in, ep_out, in_size

    def open(self) -> None:
        self._find_endpoints()
        self.last = b""
        self.unwrapper.reset()
        self.speed = 9600

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)  # 9600 only: nothing to tell the chip
        self.speed = baud

    def send_frame(self, frame: bytes, xbofs: int) -> None:
        wire = wrap(frame, xbofs)
        if len(wire) > MAX_WRAPPED:
            raise DongleError(f"a {len(frame)}-byte frame wraps to {len(wire)} bytes, more than {MAX_WRAPPED}")
        self.port.bulk_write(self.ep_out, wire)

    def _fresh(self, packet: bytes) -> bytes:
        """The new bytes of one packet (empty for a repeat, a short packet or an uninitialised buffer)."""
        if len(packet) != self.packet or not 1 <= packet[0] < self.packet:
            return b""
        if packet == self.last and not self.unwrapper.in_frame:
            return b""
        self.last = packet
        return packet[1:1 + packet[0]]

    def receive(self, timeout: float) -> Received:
        deadline = time.monotonic() + timeout
        while True:
            data = self._fresh(self.port.bulk_read(self.ep_in, self.packet, max(1, int(timeout * 1000))))
            if data:
                return Received(frames=self.unwrapper.feed(data), busy=True)
            if time.monotonic() >= deadline:
                return Received()
            time.sleep(POLL)

    def close(self) -> None:
        self.port.close()
