"""Emulated USB IrDA adapters: a pyusb backend whose devices behave like the chips, on the emulated medium.

:class:`EmulatedBus` implements pyusb's ``usb.backend.IBackend``, so ``usb.core.find(backend=bus)`` and every
pyusb call the drivers make (descriptors, control requests, bulk and interrupt transfers) reach a
:class:`ChipModel` instead of libusb. Each model answers what its chip answers (its descriptors, the requests
it knows; a STALL, ``EPIPE``, for the ones it does not), frames or carries the bytes the way the chip does,
and puts light on an ``irsim`` medium through a light endpoint of the medium (``Medium.attach_light``), where
serial dongle models, virtual devices and other USB chips hear it. A driver for another chip therefore fails
here as on hardware: its requests are refused, or what it sends never becomes a frame.

``bus.unplug(device)`` pulls a device out: every transfer in progress or later fails with ``ENODEV``, as
libusb reports a device that is gone.

A ``usb:VID:PID?irsim=MEDIUM`` URL plugs a new model of that chip into the bus of MEDIUM and opens it (options
as for ``irsim://``: ``devices``, ``ber``, ``seed``, ``pace``, ``nickname``).
"""

from __future__ import annotations

import errno
import re
import threading
import time
from collections import deque
from typing import Any, ClassVar

import usb.backend
import usb.core

from irlap import fir, framing, mir, sir
from irlap.emulator.medium import Medium, MediumOptions, get_medium
from irlap.sir import Unwrapper

NO_DEVICE = "No such device (it may have been disconnected)"


def _gone() -> usb.core.USBError:
    return usb.core.USBError(NO_DEVICE, errno=errno.ENODEV)


def _kingsun_speed_record(chip: Any, data: bytes) -> bytes:
    """The 8-byte speed record Kingsun's KS-959 and Dazzle both take (a class SET_REPORT to interface 1): the baud
    rate little-endian, then flags whose low two bits must be set; with anything else the model goes dark (logged),
    so that a driver sending the wrong record fails visibly."""
    if len(data) != 8:
        raise _stall()
    baud, flags = int.from_bytes(data[:4], "little"), data[4]
    if baud in chip.SPEEDS and flags & 0x03 == 0x03:
        chip.light.set_speed(baud)
    else:
        chip.log.append(f"speed record {data.hex()} not taken")
        chip.light.set_speed(None)
    return b""


def _stall() -> usb.core.USBError:
    return usb.core.USBError("Pipe error", errno=errno.EPIPE)


class _Descriptor:
    def __init__(self, **fields: Any) -> None:
        self.extra_descriptors: list[int] = []
        self.__dict__.update(fields)


# --- chip models ----------------------------------------------------------------------------------------------
class ChipModel:
    """One emulated USB device: descriptors, endpoint 0 requests, data endpoints, and its transceiver."""

    name: ClassVar[str] = "?"
    vid: ClassVar[int] = 0
    pid: ClassVar[int] = 0
    device_class: ClassVar[tuple[int, int, int]] = (0, 0, 0)
    interface_class: ClassVar[tuple[int, int, int]] = (0xFF, 0, 0)
    #: (address, attributes (2 bulk, 3 interrupt), max packet size)
    endpoints: ClassVar[tuple[tuple[int, int, int], ...]] = ((0x81, 2, 64), (0x02, 2, 64))
    bcd_device: ClassVar[int] = 0x0100
    #: the driver that takes this chip (its registry name); ``by_id``: a usb:VID:PID URL plugs this model
    driver: ClassVar[str] = ""
    by_id: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("driver"):
            cls.driver = cls.name

    def __init__(self, medium: Medium, name: str) -> None:
        self.medium = medium
        self.light = medium.attach_light(name, speed=None)  # silent until the host sets a speed
        self.light.on_light = self._heard
        self.present = True
        self.lock = threading.Condition()
        self.inbound: deque[bytes] = deque()  # what the chip has for the host on its IN endpoint
        self.requests: list[tuple[int, int, int, int]] = []  # (type, request, value, index), for tests
        self.bus = 1
        self.address = 0
        self.port_numbers: tuple[int, ...] = ()
        self.configuration = 0
        self.log: list[str] = []

    # descriptors
    def device_descriptor(self) -> _Descriptor:
        cls, sub, proto = self.device_class
        return _Descriptor(bLength=18, bDescriptorType=1, bcdUSB=0x0110, bDeviceClass=cls, bDeviceSubClass=sub,
                           bDeviceProtocol=proto, bMaxPacketSize0=8, idVendor=self.vid, idProduct=self.pid,
                           bcdDevice=self.bcd_device, iManufacturer=0, iProduct=0, iSerialNumber=0,
                           bNumConfigurations=1, address=self.address, bus=self.bus,
                           port_number=self.port_numbers[-1] if self.port_numbers else None,
                           port_numbers=self.port_numbers, speed=2)

    def config_descriptor(self) -> _Descriptor:
        return _Descriptor(bLength=9, bDescriptorType=2, wTotalLength=9 + 9 + 7 * len(self.endpoints),
                           bNumInterfaces=1, bConfigurationValue=1, iConfiguration=0, bmAttributes=0x80,
                           bMaxPower=50)

    def interface_descriptor(self) -> _Descriptor:
        cls, sub, proto = self.interface_class
        return _Descriptor(bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0,
                           bNumEndpoints=len(self.endpoints), bInterfaceClass=cls, bInterfaceSubClass=sub,
                           bInterfaceProtocol=proto, iInterface=0)

    def endpoint_descriptor(self, index: int) -> _Descriptor:
        address, attributes, size = self.endpoints[index]
        return _Descriptor(bLength=7, bDescriptorType=5, bEndpointAddress=address, bmAttributes=attributes,
                           wMaxPacketSize=size, bInterval=1 if attributes == 3 else 0, bRefresh=0, bSynchAddress=0)

    # host side (called by the bus; raise _stall() for what the chip does not know)
    def control(self, request_type: int, request: int, value: int, index: int, data: bytes, length: int) -> bytes:
        raise _stall()

    def data_out(self, endpoint: int, data: bytes) -> None:
        raise _stall()

    def data_in(self, endpoint: int, size: int, timeout: float) -> bytes:
        """The next inbound packet (at most ``size`` bytes), waiting up to ``timeout``; empty when none came."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not self.inbound and self.present:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return b""
                self.lock.wait(remaining)
            if not self.present:
                raise _gone()
            packet = self.inbound.popleft()
            if len(packet) > size:
                self.inbound.appendleft(packet[size:])
                packet = packet[:size]
            return packet

    def queue_in(self, packet: bytes) -> None:
        with self.lock:
            self.inbound.append(bytes(packet))
            self.lock.notify_all()

    # light side
    def _heard(self, data: bytes) -> None:
        """Bytes the transceiver decoded (medium thread): per chip."""

    def unplug(self) -> None:
        with self.lock:
            self.present = False
            self.lock.notify_all()
        self.light.close()


class BridgeChip(ChipModel):
    """A USB IrDA Bridge class device (per the Bridge Device Definition 1.0): it wraps and checks frames itself.

    Defaults are those of an ACT-IR2000U-like SIR bridge; ``speeds`` and the other descriptor fields can be
    changed per instance (a FIR bridge lists 576000, 1152000, 4000000). At MIR and FIR it frames the frame
    (HDLC with CRC-16, 4PPM with CRC-32) and sends it at once: keeping the peer's turnaround is the host's job
    there, as Linux's irda-usb did it."""

    name = "irda-usb"
    vid, pid = 0x09C4, 0x0011
    interface_class = (0xFE, 0x02, 0x00)
    endpoints = ((0x81, 2, 64), (0x02, 2, 64), (0x83, 3, 1))
    SIR_SPEEDS: ClassVar[tuple[int, ...]] = (2400, 9600, 19200, 38400, 57600, 115200)
    HEADER: ClassVar[int] = 1  # bytes of the header on both endpoints
    SPEED_CODES: ClassVar[dict[int, int]] = {1: 2400, 2: 9600, 3: 19200, 4: 38400, 5: 57600, 6: 115200, 7: 576000,
                                             8: 1152000, 9: 4000000}
    XBOF_CODES: ClassVar[dict[int, int]] = {1: 48, 2: 24, 3: 12, 4: 6, 5: 3, 6: 2, 7: 1, 8: 0}

    def __init__(self, medium: Medium, name: str, speeds: tuple[int, ...] | None = None) -> None:
        super().__init__(medium, name)
        self.speeds = self.SIR_SPEEDS if speeds is None else tuple(speeds)
        self.data_size_bits = 0x3F  # 64 ... 2048
        self.window_bits = 0x7F  # 1 ... 7
        self.min_turnaround_bits = 0x07  # 10, 5, 1 ms: the chip's receiver needs 1 ms at least
        self.bofs_bits = 0x04  # 12 additional BOFs
        self.speed: int | None = None  # until the host's first header sets it: no light
        self.xbofs = 12
        self.unwrapper: Any = Unwrapper()
        self.busy_pending = False

    @property
    def baud_bits(self) -> int:
        from irlap.qos import BAUD_RATES

        return sum(1 << BAUD_RATES.index(s) for s in self.speeds)

    def class_descriptor(self) -> bytes:
        return bytes((12, 0x21, 0x00, 0x01, self.data_size_bits, self.window_bits, self.min_turnaround_bits)) + \
            self.baud_bits.to_bytes(2, "little") + bytes((self.bofs_bits, 0, 0))

    def control(self, request_type: int, request: int, value: int, index: int, data: bytes, length: int) -> bytes:
        if request_type == 0xA1 and request == 0x06 and index == 0:  # GET_CLASS_SPECIFIC_DESCRIPTOR
            return self.class_descriptor()[:length]
        raise _stall()

    def data_out(self, endpoint: int, data: bytes) -> None:
        if endpoint != 0x02:
            raise _stall()
        if len(data) < self.HEADER:
            return
        header, frame = bytes(data[:self.HEADER]), bytes(data[self.HEADER:])
        if frame and self.speed is not None:
            self.light.send(self._line(header, frame))
        # the header's changes apply after the frame (spec 5.4.2.2): the frame above is paced at the old speed
        self._settings(header[0])

    def _line(self, header: bytes, frame: bytes) -> bytes:
        """The line bytes of one frame from the host at the current speed."""
        speed = self.speed or 9600
        return framing.wrap(frame, speed, self.xbofs if speed <= framing.SIR_MAX else 0)

    def _settings(self, header: int) -> None:
        """Apply a header's speed and XBOF nibbles (after the frame it came with, as the spec says)."""
        speed_code, xbof_code = header & 0x0F, header >> 4
        if speed_code:
            wanted = self.SPEED_CODES.get(speed_code)
            if wanted in self.speeds:
                self.speed = wanted
                self.light.set_speed(wanted)
                self.unwrapper = framing.unwrapper(wanted)
            else:
                self.log.append(f"header asks for an unsupported speed code {speed_code}")
        if xbof_code in self.XBOF_CODES:
            self.xbofs = self.XBOF_CODES[xbof_code]

    def data_in(self, endpoint: int, size: int, timeout: float) -> bytes:
        if endpoint == 0x83:  # the interrupt endpoint some bridges have: nothing the spec defines comes here
            time.sleep(min(timeout, 0.05))
            return b""
        if endpoint != 0x81:
            raise _stall()
        return super().data_in(endpoint, size, timeout)

    def _heard(self, data: bytes) -> None:
        stats = self.unwrapper.stats
        before = (stats.bad_fcs, stats.aborted, stats.garbage_bytes)
        frames = self.unwrapper.feed(data)
        broken = (stats.bad_fcs, stats.aborted, stats.garbage_bytes) != before
        pad = bytes(self.HEADER - 1)
        for frame in frames:
            self.queue_in(bytes((0x80 if broken or self.busy_pending else 0x00,)) + pad + frame)
            self.busy_pending = broken = False
        if broken or (not frames and self.unwrapper.in_frame):
            if not self.busy_pending:
                self.busy_pending = True
                self.queue_in(b"\x80" + pad)  # energy that made no frame: the medium is busy


class FirBridgeChip(BridgeChip):
    """A FIR-capable Bridge class device: its descriptor lists 576000, 1152000 and 4000000 too.

    A model of the class, not of one product: it has the ACT-IR2000U's id but is opened by name
    (``usb:?irsim=M&chip=irda-usb-fir``) and never by that id."""

    name = "irda-usb-fir"
    driver = "irda-usb"
    by_id = False
    SIR_SPEEDS = BridgeChip.SIR_SPEEDS + (576000, 1152000, 4000000)


def stir421x_patch_image(payload: bytes) -> bytes:
    """A code image the emulated STIr421x's loader takes: length (4 bytes LE), payload, CRC-32 of both (LE).

    SigmaTel's real image format is not public; this stands for it so that a download can be judged complete
    and intact (a modelling guess: the real chip's check is unknown)."""
    body = len(payload).to_bytes(4, "little") + bytes(payload)
    return body + fir.fcs32(body).to_bytes(4, "little")


def stir421x_patch_file(bcd_device: int, payload: bytes = b"irsock synthetic STIr421x test patch") -> bytes:
    """A synthetic ``4210XXXX.sb`` for tests and benchmarks, in the layout Linux's irda-usb parsed: a text header
    ``Product Version: MMM.mmm.bbb`` (bcdDevice's BCD digits), 0x1A, ``STMP``, then the code image. Never the
    vendor's file: the image is :func:`stir421x_patch_image` of ``payload``."""
    major, minor, build = bcd_device >> 12, bcd_device >> 8 & 0xF, (bcd_device >> 4 & 0xF) * 10 + (bcd_device & 0xF)
    header = f"Product Version: {major:03d}.{minor:03d}.{build:03d}\r\nirsock synthetic test patch\r\n".encode()
    return header + b"\x1aSTMP" + stir421x_patch_image(payload)


class Stir421xChip(BridgeChip):
    """SigmaTel STIr4210 (and 4220, 4116): a Bridge class chip that is deaf and dark until its firmware patch.

    Before the patch it answers the class descriptor (SIR speeds) and the vendor request 0x02 that starts a
    download, and nothing else works: bulk OUT transfers are taken as patch code after that request and ignored
    before it; no light, nothing on bulk IN. The download is taken when it is a whole :func:`stir421x_patch_image`
    (length, payload, CRC-32: the model's stand-in for SigmaTel's format); anything else (the file with its text
    header, a cut download) leaves the chip unusable. Patched, its descriptor lists the FIR speeds and it takes
    the 3-byte header (speed/XBOF byte with both nibbles set together, pad flag, turnaround code), keeping the
    turnaround the code asks for itself: counted from the end of the last light it heard, as idle line before
    the frame."""

    name = "stir421x"
    driver = "irda-usb"
    vid, pid = 0x066F, 0x4210
    bcd_device = 0x1001
    endpoints = ((0x81, 2, 64), (0x02, 2, 64), (0x83, 3, 1))
    HEADER = 3
    MTT_US = (0, 10, 50, 100, 500, 1000, 5000, 10000)
    FIR_SPEEDS = BridgeChip.SIR_SPEEDS + (576000, 1152000, 4000000)

    def __init__(self, medium: Medium, name: str, speeds: tuple[int, ...] | None = None) -> None:
        super().__init__(medium, name, speeds=BridgeChip.SIR_SPEEDS)
        self.patched_speeds = self.FIR_SPEEDS if speeds is None else tuple(speeds)
        self.patched = False
        self.loading = False
        self.download = bytearray()
        self.heard_end = float("-inf")  # medium time when the last light the chip heard ended

    def control(self, request_type: int, request: int, value: int, index: int, data: bytes, length: int) -> bytes:
        if request_type == 0x40 and request == 0x02 and not self.patched:  # start of a patch download
            self.loading, self.download = True, bytearray()
            return b""
        return super().control(request_type, request, value, index, data, length)

    def data_out(self, endpoint: int, data: bytes) -> None:
        if endpoint != 0x02:
            raise _stall()
        if not self.patched:
            self._load(bytes(data))
            return
        if len(data) < self.HEADER:
            return
        header = bytes(data[:self.HEADER])
        speed_code, xbof_code = header[0] & 0x0F, header[0] >> 4
        if bool(speed_code) != bool(xbof_code):  # the chip takes speed and XBOFs only together
            self.log.append(f"header {header.hex()} sets one of speed and XBOFs: ignored")
            header = b"\x00" + header[1:]
        frame = bytes(data[self.HEADER:])
        if header[1] == 1 and frame:
            frame = frame[:-1]  # the pad byte the host appended
        if frame and self.speed is not None:
            self.light.send(self._line(header, frame))
        self._settings(header[0])

    def _load(self, block: bytes) -> None:
        """One bulk OUT transfer of an unpatched chip: patch code after the 0x02 request, else ignored."""
        if not self.loading:
            self.log.append(f"{len(block)} bytes before the patch request: ignored (not patched)")
            return
        if len(block) > 1023:
            self.log.append(f"a patch block of {len(block)} bytes (more than 1023): download abandoned")
            self.loading = False
            return
        self.download += block
        if len(self.download) < 4:
            return
        total = 4 + int.from_bytes(self.download[:4], "little") + 4
        if len(self.download) < total:
            return
        image = bytes(self.download[:total])
        self.loading = False
        if len(self.download) == total and fir.fcs32(image) == fir.GOOD_RESIDUE:
            self.patched = True
            self.speeds = self.patched_speeds
            self.log.append("patched")
        else:
            self.log.append("the downloaded patch is not an image this chip takes: still unpatched")

    def _line(self, header: bytes, frame: bytes) -> bytes:
        speed = self.speed or 9600
        if speed <= framing.SIR_MAX:
            return framing.wrap(frame, speed, self.xbofs)
        wanted = self.MTT_US[header[2] & 7] / 1e6 - (self.medium.now() - self.heard_end)
        fill = framing.turnaround_fill(speed, int(wanted * 1e6)) if wanted > 0 else 0
        return framing.wrap(frame, speed, fill)

    def data_in(self, endpoint: int, size: int, timeout: float) -> bytes:
        if not self.patched and endpoint in (0x81, 0x83):
            time.sleep(min(timeout, 0.05))  # an unpatched chip has nothing to say
            return b""
        return super().data_in(endpoint, size, timeout)

    def _heard(self, data: bytes) -> None:
        self.heard_end = self.medium.now()
        if self.patched:
            super()._heard(data)


class _FirDemodulator(fir.Unwrapper):
    """The STIr4200's FIR receiver: 4PPM frames between the flags, CRC-32 included and not checked (the host does
    that); frames with chips that are no data symbol are not passed up."""

    def _finish(self, chips: bytes) -> bytes | None:
        if len(chips) > self._max_chips:
            return None
        return fir.decode(chips) or None


_FIR_ESCAPED = re.compile(rb"\x7d(.)?", re.DOTALL)  # an escape and its byte; a lone escape at the end


class Stir4200Chip(ChipModel):
    """SigmaTel STIr4200: registers by vendor requests, host-framed bytes in ``55 AA len`` blocks, raw bytes in.

    At FIR the chip modulates what the host framed, byte by byte: each 0x7F out of a frame is one preamble unit
    (16 chips), a pair of 0x7E is a start flag (then a stop flag), 0x7D escapes the next byte (XOR 0x20), 0x7F in
    a frame aborts it, every other byte is 4PPM; the CRC-32 is the host's bytes, never checked. So a host that
    frames wrongly (SIR wrapping at FIR, one 0x7E, a wrong CRC) puts nothing on the line that a receiver takes.
    Received frames go up in the same byte form (``7E 7E``, escaped frame and CRC, ``7E 7E``; the preamble is not
    passed up: a modelling guess consistent with how Linux parsed them)."""

    name = "stir4200"
    vid, pid = 0x066F, 0x4200
    interface_class = (0xFF, 0x00, 0x00)
    endpoints = ((0x01, 2, 64), (0x82, 2, 64))
    PDCLK = {0xDF: 2400, 0x77: 9600, 0x3B: 19200, 0x1D: 38400, 0x13: 57600, 0x09: 115200, 0x02: 4000000}
    PREAMBLE_UNIT = fir.PREAMBLE[:2]
    OUT, HALF_START, IN, HALF_STOP = range(4)

    def __init__(self, medium: Medium, name: str) -> None:
        super().__init__(medium, name)
        self.regs = bytearray(16)
        self.regs[3] = 0x01  # CTRL1: the modulator comes up in reset
        self.rx = bytearray()
        self.tx_state = self.OUT
        self.tx_escape = False  # a frame's 0x7D ended the last block: it escapes the next block's first byte
        self.demodulator: _FirDemodulator | None = None

    def _speed(self) -> int | None:
        """The IR speed the registers select, or None while the chip cannot send or receive."""
        mode, pdclk, ctrl1 = self.regs[1], self.regs[2], self.regs[3]
        if ctrl1 & 0x01 or ctrl1 & 0x18 == 0x18 or not mode & 0x02:  # SRESET, both powered down, no NRESET
            return None
        speed = self.PDCLK.get(pdclk)
        if speed is None or (speed == 4000000) != bool(mode & 0x80) or (speed == 2400) != bool(mode & 0x01):
            return None
        if speed != 4000000 and not mode & 0x20:
            return None
        return speed

    def _apply(self) -> None:
        speed = self._speed()
        if speed != self.light.speed:
            self.light.set_speed(speed)
            with self.lock:
                self.tx_state, self.tx_escape = self.OUT, False
                self.demodulator = _FirDemodulator() if speed == 4000000 else None

    def _fifo(self) -> bytes:
        speed = self.light.speed
        left = max(0.0, self.light.tx_busy_until - self.medium.now()) if speed else 0.0
        count = min(int(left * framing.data_rate(speed)), 4095) if speed else 0  # host bytes still to send
        status = 0x10 | (0x04 if count == 0 else 0)
        return bytes((status, count & 0xFF, count >> 8))

    def control(self, request_type: int, request: int, value: int, index: int, data: bytes, length: int) -> bytes:
        if request_type == 0x40 and request == 0x03 and index < 16:  # WRITE_SINGLE
            self.regs[index] = value & 0xFF
            if index == 5 and value & 0x08:
                self.log.append("FIFO cleared")
            self._apply()
            return b""
        if request_type == 0xC0 and request == 0x01 and index < 16:  # READ_REG
            view = bytearray(self.regs)
            view[5:8] = self._fifo()
            return bytes(view[index:index + length])
        raise _stall()

    def data_out(self, endpoint: int, data: bytes) -> None:
        if endpoint != 0x01:
            raise _stall()
        data = bytes(data)
        while data:
            if len(data) < 4 or data[:2] != b"\x55\xaa":
                self.log.append(f"bad transmit header {data[:4].hex()}")
                return  # the chip drops a block without its header
            length = int.from_bytes(data[2:4], "little")
            block, data = data[4:4 + length], data[4 + length:]
            if self.light.speed == 4000000:
                self.light.send(self._modulate(block))
            elif self.light.speed:
                self.light.send(block)

    @staticmethod
    def _data_chips(stuffed: bytes) -> bytes:
        """4PPM of frame bytes as the host escaped them (an escape with no byte after it is dropped)."""
        if b"\x7d" in stuffed:
            stuffed = _FIR_ESCAPED.sub(lambda m: bytes((m.group(1)[0] ^ 0x20,)) if m.group(1) else b"", stuffed)
        return fir.encode(stuffed)

    def _modulate(self, block: bytes) -> bytes:
        """The line chips the modulator makes of host bytes at FIR (see the class docstring)."""
        out = bytearray()
        pos, end = 0, len(block)
        while pos < end:
            state = self.tx_state
            if state == self.OUT:
                start = block.find(b"\x7e", pos)
                segment = block[pos:end if start < 0 else start]
                # a preamble unit for each 0x7F, 4PPM for whatever else the host sent out of a frame
                out += self.PREAMBLE_UNIT.join(fir.encode(run) for run in segment.split(b"\x7f"))
                if start < 0:
                    break
                out += fir.START_FLAG[:2]
                self.tx_state, pos = self.HALF_START, start + 1
            elif state == self.HALF_START:
                if block[pos] == 0x7E:
                    out += fir.START_FLAG[2:]
                    self.tx_state, pos = self.IN, pos + 1
                else:
                    self.tx_state = self.OUT  # half a flag: nothing a receiver locks on
            elif state == self.IN:
                stop = block.find(b"\x7e", pos)
                segment = block[pos:end if stop < 0 else stop]
                abort = segment.find(b"\x7f")
                carried, self.tx_escape = (b"\x7d" if self.tx_escape else b""), False
                if abort >= 0:
                    out += self._data_chips(carried + segment[:abort]) + b"\x00\x00"  # empty symbols: an abort
                    self.tx_state, pos = self.OUT, pos + abort + 1
                    continue
                if stop < 0 and (len(segment) - len(segment.rstrip(b"\x7d"))) % 2:
                    # the FIFO is one byte stream: an escape that ends a block applies to the next block's first byte
                    self.tx_escape, segment = True, segment[:-1]
                out += self._data_chips(carried + segment)
                if stop < 0:
                    break
                out += fir.STOP_FLAG[:2]
                self.tx_state, pos = self.HALF_STOP, stop + 1
            else:
                if block[pos] == 0x7E:
                    out += fir.STOP_FLAG[2:]
                    self.tx_state, pos = self.OUT, pos + 1
                else:
                    self.tx_state = self.IN  # half a stop flag inside the frame: the receiver sees illegal chips
        return bytes(out)

    def data_in(self, endpoint: int, size: int, timeout: float) -> bytes:
        if endpoint != 0x82:
            raise _stall()
        return super().data_in(endpoint, size, timeout)

    def _heard(self, data: bytes) -> None:
        demodulator = self.demodulator
        if demodulator is None:
            self.queue_in(data)
            return
        for raw in demodulator.feed(data):
            stuffed = raw.replace(b"\x7d", b"\x7d\x5d").replace(b"\x7e", b"\x7d\x5e").replace(b"\x7f", b"\x7d\x5f")
            self.queue_in(b"\x7e\x7e" + stuffed + b"\x7e\x7e")


class Ks959Chip(ChipModel):
    """Kingsun KS-959: obfuscated class requests on endpoint 0 for data and speed; a dummy interrupt endpoint."""

    name = "ks959"
    vid, pid = 0x07D0, 0x4959
    interface_class = (0xFF, 0x00, 0x00)  # not in public sources; the chip is found by its id
    endpoints = ((0x81, 3, 8),)
    KEY = b"wangshuofei19710"
    SPEEDS = (2400, 9600, 19200, 38400, 57600, 115200)

    def __init__(self, medium: Medium, name: str) -> None:
        super().__init__(medium, name)
        self.rx = bytearray()
        self.counter = 0

    def control(self, request_type: int, request: int, value: int, index: int, data: bytes, length: int) -> bytes:
        if request_type == 0x21 and request == 0x09 and index == 1 and value == 0x0200:
            return _kingsun_speed_record(self, data)
        if request_type == 0x21 and request == 0x09 and index == 0:
            size = value
            if size == 0 or len(data) != ((size + 7) & ~0x7) + 0x10:
                self.log.append(f"transmit of {len(data)} bytes for {size} dropped")
                return b""
            mask = self.KEY[(size & 0x0F) ^ 0x06] ^ 0x55
            if self.light.speed:
                self.light.send(bytes(b ^ mask for b in data[:size]))
            return b""
        if request_type == 0xA1 and request == 0x01 and value == 0x0200:
            out = bytearray()
            with self.lock:
                taken = 0
                while taken < len(self.rx) and len(out) < length:
                    self.counter = (self.counter + 1) & 0xFF
                    if self.counter == 0:
                        out.append(0x95 ^ 0x55)  # the filler byte at each wrap of the counter
                        continue
                    out.append(self.rx[taken] ^ self.counter ^ 0x55)
                    taken += 1
                del self.rx[:taken]
            return bytes(out)
        raise _stall()

    def data_in(self, endpoint: int, size: int, timeout: float) -> bytes:
        if endpoint != 0x81:
            raise _stall()
        time.sleep(min(timeout, 0.05))  # the interrupt endpoint never has anything
        return b""

    def _heard(self, data: bytes) -> None:
        with self.lock:
            self.rx += data


class Mcs7780Chip(ChipModel):
    """MosChip MCS7780: 16-bit registers by vendor requests, one frame per bulk transfer behind a 2-byte length;
    the host frames SIR, the chip frames MIR (HDLC) and FIR (4PPM) around the host's frame and CRC.

    The transceiver (a Vishay TFDU) works only after its mode sequence on XCVR (MODE0 and XCVR_CONF set, MODE0
    cleared, XCVR_CONF cleared) and only in the framing (SIR, MIR, FIR) MODE had when the sequence ended: a
    speed change across framings without the sequence leaves the chip deaf and dark, as Linux always ran it."""

    name = "mcs7780"
    vid, pid = 0x9710, 0x7780
    interface_class = (0xFF, 0x00, 0x00)  # not in public sources; the chip is found by its id
    endpoints = ((0x81, 2, 64), (0x02, 2, 64))
    SPEED_CODES = {0: 2400, 1: 9600, 2: 19200, 3: 38400, 4: 57600, 5: 115200, 6: 576000, 7: 1152000}
    MODE_FIR, MODE_PLLPWDN, MODE_DRIVER, MODE_RESET = 0x0001, 0x0100, 0x0200, 0x8000
    XCVR_MODE0, XCVR_CONF = 0x0001, 0x0004
    BUFFER = 4096

    def __init__(self, medium: Medium, name: str) -> None:
        super().__init__(medium, name)
        self.regs = [0] * 16
        self.regs[0] = self.MODE_RESET | self.MODE_PLLPWDN | 1 << 5  # in reset, PLL down, 9600
        self.xcvr_step = 0  # progress through the transceiver's mode sequence
        self.xcvr_kind: str | None = None  # the framing the transceiver was set up for (None: not yet)
        self.rx_frame: bytearray | None = None  # SIR: the bytes since a BOF
        self.rx_decoder: mir.Unwrapper | fir.Unwrapper | None = None

    def _speed(self) -> int | None:
        mode = self.regs[0]
        if mode & (self.MODE_RESET | self.MODE_PLLPWDN) or not mode & self.MODE_DRIVER:
            return None
        if self.regs[2] & self.XCVR_CONF:
            return None  # the transceiver is being configured
        speed = 4000000 if mode & self.MODE_FIR else self.SPEED_CODES[mode >> 5 & 7]
        if self.xcvr_kind != framing.kind(speed):
            return None
        return speed

    def _apply(self) -> None:
        speed = self._speed()
        if speed != self.light.speed:
            self.light.set_speed(speed)
            with self.lock:
                self.rx_frame = None
                self.rx_decoder = framing.unwrapper(speed) if speed and speed > framing.SIR_MAX else None

    def _write_xcvr(self, value: int) -> None:
        old = self.regs[2]
        self.regs[2] = value
        conf, mode0 = value & self.XCVR_CONF, value & self.XCVR_MODE0
        if conf and mode0:
            self.xcvr_step = 1
        elif conf and self.xcvr_step == 1 and old & self.XCVR_MODE0:
            self.xcvr_step = 2
        elif not conf and self.xcvr_step == 2:
            self.xcvr_step = 0
            mode = self.regs[0]
            self.xcvr_kind = "fir" if mode & self.MODE_FIR else framing.kind(self.SPEED_CODES[mode >> 5 & 7])
        elif not conf:
            self.xcvr_step = 0

    def _status(self) -> int:
        speed = self.light.speed
        busy = speed is not None and self.light.tx_busy_until > self.medium.now()
        return 0x0001 if busy else 0

    def control(self, request_type: int, request: int, value: int, index: int, data: bytes, length: int) -> bytes:
        if request_type == 0x40 and request == 0x0E and index < 16 and not data:  # write register
            if index == 2:
                self._write_xcvr(value & 0xFFFF)
            elif index != 7:  # RESV is read-only
                self.regs[index] = value & 0xFFFF
            self._apply()
            return b""
        if request_type == 0xC0 and request == 0x0F and index < 16:  # read register
            value = self._status() if index == 7 else self.regs[index]
            return value.to_bytes(2, "little")[:length]
        raise _stall()

    def data_out(self, endpoint: int, data: bytes) -> None:
        if endpoint != 0x02:
            raise _stall()
        data = bytes(data)
        if len(data) < 3 or int.from_bytes(data[:2], "little") != len(data) or len(data) > self.BUFFER:
            self.log.append(f"transfer of {len(data)} bytes with length field {data[:2].hex()} dropped")
            return
        speed, body = self.light.speed, data[2:]
        if not speed:
            return
        if speed in framing.MIR_SPEEDS:  # HDLC around the host's frame and CRC-16, as given
            bits = mir.FLAG_BITS * mir.MIN_START_FLAGS + mir.stuff(mir.to_bits(body)) + mir.FLAG_BITS
            self.light.send(mir.from_bits(bits + "1" * (-len(bits) % 8)))
        elif speed in framing.FIR_SPEEDS:  # 4PPM around the host's frame and CRC-32, as given
            self.light.send(fir.PREAMBLE + fir.START_FLAG + fir.encode(body) + fir.STOP_FLAG)
        else:
            self.light.send(body)  # SIR: the host wrapped it

    def data_in(self, endpoint: int, size: int, timeout: float) -> bytes:
        if endpoint != 0x81:
            raise _stall()
        return super().data_in(endpoint, size, timeout)

    def _heard(self, data: bytes) -> None:
        speed = self.light.speed
        if not speed:
            return
        with self.lock:
            decoder = self.rx_decoder
            if decoder is not None:  # MIR/FIR: each good frame goes up with its CRC for the host to check
                for frame in decoder.feed(data):
                    crc = (sir.fcs16(frame).to_bytes(2, "little") if speed in framing.MIR_SPEEDS
                           else fir.fcs32(frame).to_bytes(4, "little"))
                    self.inbound.append(frame + crc)
                self.lock.notify_all()
                return
            for byte in data:  # SIR: the escaped bytes between BOF and EOF, one transfer per frame
                if byte == 0xC0:
                    self.rx_frame = bytearray()
                elif self.rx_frame is None:
                    continue
                elif byte == 0xC1:
                    if self.rx_frame:
                        self.inbound.append(bytes(self.rx_frame))
                    self.rx_frame = None
                elif len(self.rx_frame) < self.BUFFER:
                    self.rx_frame.append(byte)
                else:
                    self.rx_frame = None  # longer than the chip's buffer: dropped
            self.lock.notify_all()


class KsDazzleChip(ChipModel):
    """Kingsun Dazzle: interrupt IN then interrupt OUT (8-byte packets); each OUT packet is 0xF8 + n and n raw
    bytes (n = 1..7) for the light; IN packets carry up to 8 raw bytes heard; speed by the KS-959's line-coding
    class request. The 1 ms interrupt interval of the real bus is not modelled (transfers are not paced)."""

    name = "ksdazzle"
    vid, pid = 0x07D0, 0x4100
    interface_class = (0xFF, 0x00, 0x00)  # not in public sources; the chip is found by its id
    endpoints = ((0x81, 3, 8), (0x02, 3, 8))
    SPEEDS = (2400, 9600, 19200, 38400, 57600, 115200)

    def control(self, request_type: int, request: int, value: int, index: int, data: bytes, length: int) -> bytes:
        if request_type == 0x21 and request == 0x09 and index == 1 and value == 0x0200:
            return _kingsun_speed_record(self, data)
        raise _stall()

    def data_out(self, endpoint: int, data: bytes) -> None:
        if endpoint != 0x02:
            raise _stall()
        count = data[0] - 0xF8 if len(data) == 8 else -1
        if not 1 <= count <= 7:
            self.log.append(f"interrupt packet {bytes(data).hex()} dropped")
            return
        if self.light.speed:
            self.light.send(bytes(data[1:1 + count]))

    def data_in(self, endpoint: int, size: int, timeout: float) -> bytes:
        if endpoint != 0x81:
            raise _stall()
        return super().data_in(endpoint, min(size, 8), timeout)

    def _heard(self, data: bytes) -> None:
        self.queue_in(data)


class KingsunSirChip(ChipModel):
    """Kingsun/DonShine KS-7200: 9600 bit/s from power-up, no requests at all; a wrapped frame per interrupt OUT
    transfer; each interrupt IN read is an 8-byte buffer, a count (1-7) and that many bytes heard. The buffer is
    never emptied: with nothing new, a read brings the same buffer again; its unused tail keeps older bytes; just
    after plug-in it holds garbage with an impossible count."""

    name = "kingsun-sir"
    vid, pid = 0x07C0, 0x4200
    interface_class = (0xFF, 0x00, 0x00)  # not in public sources; the chip is found by its id
    endpoints = ((0x81, 3, 8), (0x02, 3, 8))

    def __init__(self, medium: Medium, name: str) -> None:
        super().__init__(medium, name)
        self.light.set_speed(9600)  # no speed command exists: the chip is at 9600 bit/s from power-up
        self.rx = bytearray()
        self.buffer = bytearray(b"\x36\x55\xaa\x00\x01\x02\x03\x04")  # uninitialised, as after plug-in

    def control(self, request_type: int, request: int, value: int, index: int, data: bytes, length: int) -> bytes:
        raise _stall()

    def data_out(self, endpoint: int, data: bytes) -> None:
        if endpoint != 0x02:
            raise _stall()
        if data:
            self.light.send(bytes(data))

    def data_in(self, endpoint: int, size: int, timeout: float) -> bytes:
        if endpoint != 0x81:
            raise _stall()
        with self.lock:
            if not self.present:
                raise _gone()
            if self.rx:
                count = min(7, len(self.rx))
                self.buffer[0] = count
                self.buffer[1:1 + count] = self.rx[:count]  # the tail keeps what an earlier read left there
                del self.rx[:count]
            return bytes(self.buffer[:size])

    def _heard(self, data: bytes) -> None:
        with self.lock:
            self.rx += data


CHIPS: dict[str, type[ChipModel]] = {cls.name: cls for cls in (BridgeChip, FirBridgeChip, Stir421xChip, Stir4200Chip,
                                                                 Ks959Chip, Mcs7780Chip, KsDazzleChip, KingsunSirChip)}
BY_ID: dict[tuple[int, int], type[ChipModel]] = {(cls.vid, cls.pid): cls for cls in CHIPS.values() if cls.by_id}


# --- the bus --------------------------------------------------------------------------------------------------
class EmulatedBus(usb.backend.IBackend):
    """A pyusb backend whose devices are chip models (see the module docstring)."""

    def __init__(self, medium: Medium, number: int = 1) -> None:
        super().__init__()
        self.medium = medium
        self.number = number
        self.devices: list[ChipModel] = []
        self._next_port = 1
        self._lock = threading.Lock()

    def plug(self, chip: str | type[ChipModel], port: int | None = None, **options: Any) -> ChipModel:
        """A new device of ``chip`` (a name from CHIPS or a model class) on ``port`` (default: the next free one)."""
        cls = CHIPS[chip] if isinstance(chip, str) else chip
        with self._lock:
            if port is None:
                port = self._next_port
            if any(d.port_numbers == (port,) for d in self.devices):
                raise ValueError(f"port {port} of emulated USB bus {self.number} is taken")
            self._next_port = max(self._next_port, port + 1)
            device = cls(self.medium, f"{self.medium.name}/usb{self.number}-{port}", **options)
            device.bus, device.port_numbers, device.address = self.number, (port,), port + 1
            self.devices.append(device)
        return device

    def unplug(self, device: ChipModel) -> None:
        with self._lock:
            if device in self.devices:
                self.devices.remove(device)
        device.unplug()

    def view(self, device: ChipModel) -> EmulatedBus:
        """A backend that enumerates ``device`` alone (what one ``usb:`` URL opens)."""
        view = EmulatedBus(self.medium, self.number)
        view.devices = [device]
        view.unplug = self.unplug  # type: ignore[method-assign]
        return view

    # IBackend
    def enumerate_devices(self):
        return [d for d in self.devices if d.present]

    def get_parent(self, dev):
        return None

    def get_device_descriptor(self, dev):
        return dev.device_descriptor()

    def get_configuration_descriptor(self, dev, config):
        if config != 0:
            raise IndexError(config)
        return dev.config_descriptor()

    def get_interface_descriptor(self, dev, intf, alt, config):
        if (intf, alt, config) != (0, 0, 0):
            raise IndexError(intf)
        return dev.interface_descriptor()

    def get_endpoint_descriptor(self, dev, ep, intf, alt, config):
        if ep >= len(dev.endpoints):
            raise IndexError(ep)
        return dev.endpoint_descriptor(ep)

    def _check(self, dev: ChipModel) -> None:
        if not dev.present:
            raise _gone()

    def open_device(self, dev):
        self._check(dev)
        return dev

    def close_device(self, dev_handle):
        pass

    def set_configuration(self, dev_handle, config_value):
        self._check(dev_handle)
        dev_handle.configuration = config_value

    def get_configuration(self, dev_handle):
        self._check(dev_handle)
        return dev_handle.configuration

    def set_interface_altsetting(self, dev_handle, intf, altsetting):
        self._check(dev_handle)

    def claim_interface(self, dev_handle, intf):
        self._check(dev_handle)

    def release_interface(self, dev_handle, intf):
        pass

    def is_kernel_driver_active(self, dev_handle, intf):
        return False

    def clear_halt(self, dev_handle, ep):
        self._check(dev_handle)

    def ctrl_transfer(self, dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout):
        self._check(dev_handle)
        dev_handle.requests.append((bmRequestType, bRequest, wValue, wIndex))
        if bmRequestType & 0x80:
            answer = dev_handle.control(bmRequestType, bRequest, wValue, wIndex, b"", len(data))
            answer = answer[:len(data)]
            data[:len(answer)] = type(data)(data.typecode, answer)
            return len(answer)
        payload = bytes(data) if data is not None else b""
        dev_handle.control(bmRequestType, bRequest, wValue, wIndex, payload, len(payload))
        return len(payload)

    def _write(self, dev_handle, ep, data):
        self._check(dev_handle)
        dev_handle.data_out(ep, bytes(data))
        return len(data)

    def _read(self, dev_handle, ep, buff, timeout):
        self._check(dev_handle)
        packet = dev_handle.data_in(ep, len(buff), (timeout or 1000) / 1000)
        if not packet:
            raise usb.core.USBTimeoutError("Operation timed out", errno=errno.ETIMEDOUT)
        buff[:len(packet)] = type(buff)(buff.typecode, packet)
        return len(packet)

    def bulk_write(self, dev_handle, ep, intf, data, timeout):
        return self._write(dev_handle, ep, data)

    def intr_write(self, dev_handle, ep, intf, data, timeout):
        return self._write(dev_handle, ep, data)

    def bulk_read(self, dev_handle, ep, intf, buff, timeout):
        return self._read(dev_handle, ep, buff, timeout)

    def intr_read(self, dev_handle, ep, intf, buff, timeout):
        return self._read(dev_handle, ep, buff, timeout)


_BUSES: dict[str, EmulatedBus] = {}
_BUSES_LOCK = threading.Lock()


def bus_for(medium: str | Medium) -> EmulatedBus:
    """The emulated USB bus whose devices shine on ``medium`` (made on first use)."""
    if isinstance(medium, str):
        medium, _created = get_medium(medium)
    with _BUSES_LOCK:
        bus = _BUSES.get(medium.name)
        if bus is None or bus.medium is not medium:
            bus = _BUSES[medium.name] = EmulatedBus(medium, number=len(_BUSES) + 1)
        return bus


def backend_for_url(parsed: Any) -> EmulatedBus:
    """For ``usb:VID:PID?irsim=MEDIUM&...``: plug a new model of that chip into MEDIUM's bus; its backend view."""
    from irlap.port import PortError

    options = dict(parsed.options)
    options.pop("firmware", None)  # the driver's (where a chip's firmware patch is): not the emulator's
    name = options.pop("irsim") or "default"
    chip = options.pop("chip", None)
    cls = CHIPS.get(chip) if chip else BY_ID.get((parsed.vid, parsed.pid)) if parsed.vid is not None else None
    located = parsed.bus is not None and chip is None
    if cls is None and not located:
        known = ", ".join(f"{c.vid:04x}:{c.pid:04x} ({n})" for n, c in CHIPS.items())
        raise PortError(f"cannot open {parsed.url}: no emulated USB chip {chip or 'with that id'}; emulated: {known}")
    try:
        medium_options = MediumOptions(ber=float(options.pop("ber", 0)), seed=int(options.pop("seed", 0)),
                                       pace=float(options.pop("pace", 1)))
        devices = options.pop("devices", "0")
        nickname = options.pop("nickname", "virtual")
        from irlap.emulator.virtual import parse_devices

        count = parse_devices(devices)
    except ValueError as exc:
        raise PortError(f"cannot open {parsed.url}: {exc}") from None
    if options:
        raise PortError(f"cannot open {parsed.url}: unknown option {next(iter(options))!r} (irsim, chip, devices, "
                        "ber, seed, pace, nickname, firmware)")
    medium, created = get_medium(name, medium_options)
    if created and count:
        from irlap.emulator.virtual import spawn_devices

        spawn_devices(name, count, prefix=nickname, seed=medium_options.seed)
    bus = bus_for(medium)
    if located:
        return bus  # usb:BUS-PORT?irsim=...: a chip already plugged in there (bus.plug), none is added
    return bus.view(bus.plug(cls))


def chip_of(port: Any) -> ChipModel:
    """The emulated chip behind an opened :class:`~irlap.dongles.usb.UsbPort` (for tests and the rig)."""
    chip = port.device._ctx.dev
    if not isinstance(chip, ChipModel):
        raise TypeError(f"{port.url} is not an emulated USB device")
    return chip
