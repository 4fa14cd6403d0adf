"""Kingsun KS-959 (07d0:4959, sold as MA-620): SIR through control transfers, with obfuscated payloads.

Behaviour from the removed Linux ks959-sir driver (read for behaviour only):

* everything goes through endpoint 0; the interrupt IN endpoint the interface has is never used;
* transmit: the host wraps the frame (SIR: XBOFs, BOF, escapes, FCS, EOF) and sends it in fragments of at
  most 240 bytes, each a class request 0x09 (OUT | class | interface) with wValue = the fragment's length and
  a payload padded with zeros to a multiple of 8 plus 16 bytes; every byte of the fragment is XOR'd with
  ``K[(n & 0x0F) ^ 6] ^ 0x55``, where n is the fragment's length and K the 16-byte key string
  ``wangshuofei19710`` the chip expects;
* receive: the host polls with class request 0x01 (IN, wValue 0x0200, wLength 2048); the chip answers with
  the raw bytes it received, each XOR'd with 0x55 and with a counter that starts at 1 for the first byte of
  the session and goes up by one per byte (modulo 256) across all answers; when the counter wraps to 0 the
  chip puts in a filler byte, which the host drops;
* speed: class request 0x09 with wValue 0x0200, wIndex 1 and an 8-byte record (the bit rate, 32 bits LE, then
  a flags byte: 0x03 = 8 data bits, no parity, one stop bit; three zero bytes).

Linux offered 9600-57600 (a phone's large frames arrived corrupted at 115200; the chip's fault or the
phone's was never settled): so does this driver.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from irlap.dongles import DongleError
from irlap.dongles.framed import FrameDongle, Received
from irlap.dongles.usb import UsbPort, UsbStall
from irlap.sir import Unwrapper, wrap

CLASS_OUT = 0x21
CLASS_IN = 0xA1
REQ_SEND = 0x09
REQ_RECV = 0x01
KEY = b"wangshuofei19710"
FRAGMENT = (256 & ~0x7) - 0x10  # 240 clear bytes per control transfer
RECEIVE_SIZE = 2048
POLL = 0.002  # seconds between polls that brought nothing


def tx_mask(length: int) -> int:
    return KEY[(length & 0x0F) ^ 0x06] ^ 0x55


def obfuscate(clear: bytes) -> bytes:
    """One transmit fragment as the chip takes it: XOR'd, zero padded to 8n + 16 bytes."""
    mask = tx_mask(len(clear))
    padded = ((len(clear) + 7) & ~0x7) + 0x10
    return bytes(b ^ mask for b in clear) + bytes(padded - len(clear))


def speed_record(baud: int) -> bytes:
    return baud.to_bytes(4, "little") + bytes((0x03, 0, 0, 0))


class Ks959(FrameDongle):
    """Kingsun KS-959 / MA-620."""

    name = "ks959"
    description = "Kingsun KS-959 / MA-620 (USB)"
    speeds = (9600, 19200, 38400, 57600)
    min_turnaround_us = 1000  # Linux offered 10, 5 and 1 ms

    def __init__(self, port: UsbPort, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(port, sleep)
        self.unwrapper = Unwrapper()
        self.counter = 0  # the receive XOR counter, kept for the whole session

    def _send(self, value: int, index: int, payload: bytes) -> None:
        try:
            self.port.control_out(CLASS_OUT, REQ_SEND, value, index, payload)
        except UsbStall:
            raise DongleError("the adapter refused the KS-959 send request: it is not a KS-959") from None

    def open(self) -> None:
        self.speed = None
        self.counter = 0
        self.set_speed(9600)

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        self._send(0x0200, 1, speed_record(baud))
        self.unwrapper.reset()
        self.speed = baud

    def send_frame(self, frame: bytes, xbofs: int) -> None:
        wire = wrap(frame, xbofs)
        for start in range(0, len(wire), FRAGMENT):
            clear = wire[start:start + FRAGMENT]
            self._send(len(clear), 0, obfuscate(clear))

    def deobfuscate(self, data: bytes) -> bytes:
        clear = bytearray()
        counter = self.counter
        for byte in data:
            counter = (counter + 1) & 0xFF
            if counter:
                clear.append(byte ^ counter ^ 0x55)
        self.counter = counter
        return bytes(clear)

    def receive(self, timeout: float) -> Received:
        deadline = time.monotonic() + timeout
        while True:
            try:
                data = self.port.control_in(CLASS_IN, REQ_RECV, 0x0200, 0, RECEIVE_SIZE)
            except UsbStall:
                raise DongleError("the adapter refused the KS-959 receive request: it is not a KS-959") from None
            if data:
                return Received(frames=self.unwrapper.feed(self.deobfuscate(data)), busy=True)
            if time.monotonic() >= deadline:
                return Received()
            time.sleep(POLL)

    def close(self) -> None:
        self.port.close()
