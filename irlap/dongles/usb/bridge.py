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
which both kinds of chip apply the same way. Turnaround: at SIR the XBOFs in front of a frame keep the peer's
minimum turnaround; at MIR and FIR there are none, so before the first frame of a turn the driver waits the fill
time counted from when the last bulk IN transfer completed (Linux's irda-usb kept it in the host the same way,
from the time of its last receive). What the chip needs from the peer is in its descriptor, which narrows our
QoS offer (speeds, data size, window, min turnaround).

SigmaTel STIr4210, STIr4220 and STIr4116 (066f:4210/4220/4116) are Bridge class chips that do nothing useful
until the host has downloaded SigmaTel's firmware patch. As Linux's irda-usb did it: after the class descriptor,
the vendor request 0x02 (OUT | vendor | device); then the patch file ``4210XXXX.sb``, XXXX the device's
bcdDevice in upper-case hex, is checked (it starts with ``Product Version: MMM.mmm.bbb`` whose BCD form
``M << 12 | m << 8 | (b / 10) << 4 | b % 10`` must equal bcdDevice; a 0x1A byte within the first 512 bytes ends
its text header and ``STMP`` follows) and what follows ``STMP`` is sent in bulk OUT transfers of at most 1023
bytes, 10 ms apart; then the descriptor is read again (the patched chip reports its real speeds). The patch is
the user's file, never shipped here: it is looked for in the directory (or file) given by the port URL option
``firmware=``, the directories in ``$IRSOCK_FIRMWARE_PATH`` (``os.pathsep``-separated), ``/lib/firmware/updates``
and ``/lib/firmware``. These chips take a 3-byte header both ways: the speed/XBOF byte (both nibbles always set
together), a byte that says an extra pad byte was appended (a frame whose length is a multiple of 128 but not of
512 gets one), and the peer's minimum turnaround as a code (0 = none, 1 = 10 us, 2 = 50 us, 3 = 100 us,
4 = 500 us, 5 = 1 ms, 6 = 5 ms, 7 = 10 ms), which the chip keeps itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from irlap import framing
from irlap.dongles import DongleError
from irlap.dongles.framed import FrameDongle, Received
from irlap.dongles.usb import UsbPort, UsbStall, is_usb_url, parse_usb_url
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

#: SigmaTel's Bridge class chips that need their firmware patch (Linux: IUC_STIR421X)
STIR421X_IDS: dict[tuple[int, int], str] = {(0x066F, 0x4210): "STIr4210", (0x066F, 0x4220): "STIr4220",
                                            (0x066F, 0x4116): "STIr4116"}
STIR421X_HEADER = 3
REQ_STIR421X_PREPARE = 0x02  # vendor request (OUT | vendor | device) sent before the patch
VENDOR_OUT = 0x40
PATCH_VERSION_TAG = b"Product Version: "
PATCH_END_OF_HEADER = 0x1A
PATCH_CODE_TAG = b"STMP"
PATCH_HEADER_MAX = 512
PATCH_BLOCK = 1023
FIRMWARE_ENV = "IRSOCK_FIRMWARE_PATH"
FIRMWARE_DIRS = ("/lib/firmware/updates", "/lib/firmware")
#: microseconds -> the STIr421x header's turnaround code (the smallest code that lasts at least that long)
MTT_CODES: tuple[tuple[int, int], ...] = ((0, 0), (10, 1), (50, 2), (100, 3), (500, 4), (1000, 5), (5000, 6),
                                          (10000, 7))


def stir421x_firmware_name(bcd_device: int) -> str:
    """The patch file Linux asked for: ``4210`` and bcdDevice in 4 upper-case hex digits, ``.sb``."""
    return f"4210{bcd_device:04X}.sb"


def firmware_search_path(option: str | None = None) -> list[Path]:
    """Where a firmware file is looked for, in order: the URL option, ``$IRSOCK_FIRMWARE_PATH``, the system's."""
    places = [option] if option else []
    places += [p for p in os.environ.get(FIRMWARE_ENV, "").split(os.pathsep) if p]
    return [Path(p) for p in places] + [Path(d) for d in FIRMWARE_DIRS]


def find_firmware(name: str, option: str | None = None) -> tuple[Path | None, list[Path]]:
    """The first ``name`` found on :func:`firmware_search_path` (a place that is a file is taken as the file)."""
    searched = firmware_search_path(option)
    for place in searched:
        try:
            candidate = place if place.is_file() else place / name
            if candidate.is_file():
                return candidate, searched
        except OSError:
            continue  # a place we may not read (EACCES): the next one
    return None, searched


def patch_version(data: bytes) -> int | None:
    """The BCD product version in a patch's text header (``Product Version: 001.000.001`` -> 0x1001)."""
    if not data.startswith(PATCH_VERSION_TAG):
        return None
    text = data[len(PATCH_VERSION_TAG):len(PATCH_VERSION_TAG) + 11]
    if len(text) < 8 or text[3:4] != b"." or text[7:8] != b".":
        return None

    def number(raw: bytes) -> int:
        digits = bytes(raw).split(b".")[0].strip()
        return int(digits) if digits.isdigit() else 0

    major, minor, build = number(text[0:3]), number(text[4:7]), number(text[8:11])
    return (major << 12) + (minor << 8) + ((build // 10) << 4) + build % 10


def stir421x_patch_image(data: bytes, bcd_device: int, where: str = "the patch") -> bytes:
    """The code to download from a ``4210XXXX.sb`` file, checked as Linux checked it; a DongleError says why not."""
    version = patch_version(data)
    if version != bcd_device:
        found = "no 'Product Version: MMM.mmm.bbb' line" if version is None else f"version {version:04x}"
        raise DongleError(f"{where} is not the patch for this chip: it has {found}, the chip is {bcd_device:04x}")
    end = data.find(bytes((PATCH_END_OF_HEADER,)), 0, PATCH_HEADER_MAX)
    if end < 0 or data[end + 1:end + 1 + len(PATCH_CODE_TAG)] != PATCH_CODE_TAG:
        raise DongleError(f"{where} has no 0x1A 'STMP' within its first {PATCH_HEADER_MAX} bytes: not a SigmaTel "
                          "patch file")
    image = data[end + 1 + len(PATCH_CODE_TAG):]
    if not image:
        raise DongleError(f"{where} holds no code after its 'STMP' tag")
    return bytes(image)


def mtt_code(microseconds: float) -> int:
    """The STIr421x header's turnaround code for ``microseconds`` (rounded up, as Linux did)."""
    for limit, code in MTT_CODES:
        if microseconds <= limit:
            return code
    return 7


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
    """USB IrDA Bridge class adapters (no-name bridges, ACT-IR2000U, KC-180, ESI-9685, and SigmaTel's STIr4210,
    STIr4220 and STIr4116 once their firmware patch is downloaded: see the module docstring)."""

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
        self.stir421x = STIR421X_IDS.get((getattr(port, "vid", None), getattr(port, "pid", None)))
        self.header_length = STIR421X_HEADER if self.stir421x else 1
        self.patched_from: Path | None = None  # the firmware file downloaded (STIr421x)
        self.clock: Callable[[], float] = time.monotonic
        self.heard_at = float("-inf")  # self.clock() when the last bulk IN transfer with a frame completed

    def read_descriptor(self) -> ClassDescriptor:
        try:
            raw = self.port.control_in(CLASS_INTERFACE_IN, REQ_GET_CLASS_DESC, 0, self.port.interface,
                                       DESCRIPTOR_LENGTH)
        except UsbStall:
            raise DongleError("the adapter refused GET_CLASS_SPECIFIC_DESCRIPTOR: it is not a USB IrDA Bridge "
                              "device (irda dongles --scan names its driver)") from None
        return ClassDescriptor(raw)

    def open(self) -> None:
        self.descriptor = self.read_descriptor()
        bulk_in = [a for a, attrs, _size in self.port.endpoints() if attrs & 3 == 2 and a & 0x80]
        bulk_out = [a for a, attrs, _size in self.port.endpoints() if attrs & 3 == 2 and not a & 0x80]
        if not bulk_in or not bulk_out:
            raise DongleError("the adapter has no bulk IN and OUT endpoints: not a USB IrDA Bridge device")
        self.ep_in, self.ep_out = bulk_in[0], bulk_out[0]
        if self.stir421x:
            self.download_patch()
            self.descriptor = self.read_descriptor()  # what the patched chip reports now
        self.speeds = self.descriptor.speeds  # instance attribute: this chip's speeds
        self.min_turnaround_us = self.descriptor.min_turnaround_us
        self.speed = None
        self._header_only(SPEED_CODES[9600] | XBOF_CODES[12] << 4)
        self.speed, self.xbofs = 9600, 12

    def download_patch(self) -> None:
        """Find, check and download the STIr421x firmware patch (see the module docstring)."""
        bcd = int(getattr(self.port, "bcd_device", 0) or 0)
        name = stir421x_firmware_name(bcd)
        url = getattr(self.port, "url", "")
        option = parse_usb_url(url).options.get("firmware") or None if is_usb_url(url) else None
        path, searched = find_firmware(name, option)
        if path is None:
            places = ", ".join(str(p) for p in searched)
            raise DongleError(f"the SigmaTel {self.stir421x} needs its firmware patch {name} (SigmaTel's file, not "
                              f"part of irsock) and it was not found in: {places}; copy it to /lib/firmware, or "
                              f"name its directory with ?firmware=DIR in the port URL or in ${FIRMWARE_ENV}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DongleError(f"cannot read the {self.stir421x} firmware patch {path}: {exc}") from None
        image = stir421x_patch_image(data, bcd, str(path))
        try:
            self.port.control_out(VENDOR_OUT, REQ_STIR421X_PREPARE, 0, 0)
        except UsbStall:
            raise DongleError(f"the adapter refused the {self.stir421x} patch request: it is not an "
                              f"{self.stir421x}") from None
        self.sleep(0.01)
        for offset in range(0, len(image), PATCH_BLOCK):
            self.port.bulk_write(self.ep_out, image[offset:offset + PATCH_BLOCK])
            self.sleep(0.01)
        self.patched_from = path

    def _header_only(self, header: int) -> None:
        self.port.bulk_write(self.ep_out, bytes((header,)) + bytes(self.header_length - 1))

    def set_speed(self, baud: int) -> None:
        self.check_speed(baud)
        if baud == self.speed:
            return
        if self.stir421x:  # speed and XBOFs always together; no XBOFs above SIR (as Linux set them)
            xbofs = self.xbofs if baud <= framing.SIR_MAX else 0
            self._header_only(SPEED_CODES[baud] | XBOF_CODES[xbofs] << 4)
            self.xbofs = xbofs
        else:
            self._header_only(SPEED_CODES[baud])
        self.speed = baud

    @property
    def turnaround_from_rx(self) -> bool:
        """MIR/FIR on a bridge without the STIr421x header: the wait in :meth:`send_frame`. (The STIr421x keeps
        the turnaround itself, from a point we do not know; SIR: the chip's XBOFs.)"""
        return (self.speed or 9600) > framing.SIR_MAX and not self.stir421x

    def send_frame(self, frame: bytes, xbofs: int) -> None:
        speed = self.speed or 9600
        turnaround_us = 0.0
        if speed <= framing.SIR_MAX:
            wanted, code = xbof_code(xbofs)
            if wanted != self.xbofs:
                self._header_only((code << 4) | (SPEED_CODES[speed] if self.stir421x else 0))
                self.xbofs = wanted
        elif xbofs:  # no XBOFs at MIR/FIR: the fill stands for the peer's minimum turnaround
            if self.stir421x:
                turnaround_us = framing.fill_seconds(speed, xbofs) * 1e6  # the chip keeps it (header byte 2)
            else:
                wait = self.heard_at + framing.fill_seconds(speed, xbofs) - self.clock()
                if wait > 0:
                    self.sleep(wait)
        frame = bytes(frame)
        if not self.stir421x:
            self.port.bulk_write(self.ep_out, b"\x00" + frame)
            return
        pad = len(frame) % 128 == 0 and len(frame) % 512 != 0  # the chip drops the byte after such a frame
        header = bytes((0, 1 if pad else 0, mtt_code(turnaround_us)))
        self.port.bulk_write(self.ep_out, header + frame + (b"\x00" if pad else b""))

    def receive(self, timeout: float) -> Received:
        packet = self.port.bulk_read(self.ep_in, MAX_IN, int(timeout * 1000))
        received = Received()
        if not packet:
            return received
        header, frame = packet[0], packet[self.header_length:]
        if frame:
            self.heard_at = self.clock()
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

