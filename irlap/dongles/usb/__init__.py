"""USB IrDA adapters through pyusb: ``usb:`` port URLs, the known chips, scanning, permissions.

The drivers (``irda-usb`` for the USB IrDA Bridge class, ``stir4200``, ``ks959``, ``mcs7780``, ``ksdazzle``,
``kingsun-sir``) are :class:`~irlap.dongles.framed.FrameDongle` subclasses: the runtime hands them whole frames (see
:mod:`irlap.dongles.framed` for why the seam is a frame-level port and not a pyserial-like object). They talk
to the chip through a :class:`UsbPort`, a thin wrapper of one pyusb device that turns pyusb's errors into
ours: a stalled request (the chip does not know it: the wrong driver) is a :class:`UsbStall`, a device that
is gone is a :class:`~irlap.port.PortError` that says it was unplugged.

``usb:`` URLs::

    usb:                 the first known IrDA adapter found
    usb:066f:4200        the first one with that vendor:product id (hex)
    usb:1-4.2            the one on bus 1, port path 4.2 (as lsusb -t and the kernel name it)
    usb:066f:4200?irsim=lab&devices=phone
                         an emulated STIr4200 plugged into the emulated USB bus of the irsim medium "lab"
                         (irlap.emulator.usb): the same driver code, against a model of the chip
    usb:066f:4210?firmware=/opt/sigmatel
                         an STIr4210 whose firmware patch is looked for in /opt/sigmatel first (irda-usb)

pyusb is an optional dependency (``pip install 'irsock[usb]'``); nothing here imports it before a ``usb:``
port is opened or a scan is asked for.
"""

from __future__ import annotations

import errno
import importlib
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from irlap.dongles import DongleError
from irlap.port import PortError

#: (vid, pid) -> (driver name, what it is); the Bridge class is also found by its interface class
KNOWN_IDS: dict[tuple[int, int], tuple[str, str]] = {
    (0x09C4, 0x0011): ("irda-usb", "ACTiSYS ACT-IR2000U (USB IrDA Bridge class)"),
    (0x4428, 0x0012): ("irda-usb", "IBM UltraPort IrDA (USB IrDA Bridge class)"),
    (0x050F, 0x0180): ("irda-usb", "KC Technology KC-180 (USB IrDA Bridge class)"),
    (0x08E9, 0x0100): ("irda-usb", "Extended Systems XTNDAccess ESI-9685 (USB IrDA Bridge class)"),
    (0x066F, 0x4200): ("stir4200", "SigmaTel STIr4200"),
    (0x066F, 0x4210): ("irda-usb", "SigmaTel STIr4210 (USB IrDA Bridge class; needs its firmware patch 4210XXXX.sb)"),
    (0x066F, 0x4220): ("irda-usb", "SigmaTel STIr4220 (USB IrDA Bridge class; needs its firmware patch 4210XXXX.sb)"),
    (0x066F, 0x4116): ("irda-usb", "SigmaTel STIr4116 (USB IrDA Bridge class; needs its firmware patch 4210XXXX.sb)"),
    (0x07D0, 0x4959): ("ks959", "Kingsun KS-959 (MA-620)"),
    (0x9710, 0x7780): ("mcs7780", "MosChip MCS7780"),
    (0x07D0, 0x4100): ("ksdazzle", "Kingsun Dazzle (MA-660)"),
    (0x07C0, 0x4200): ("kingsun-sir", "Kingsun/DonShine KS-7200"),
}
#: interface class/subclass of the USB IrDA Bridge class: application specific (0xFE), IrDA bridge (0x02)
BRIDGE_CLASS = (0xFE, 0x02)
#: URL options that name another pyusb backend than libusb, and the function (``module:name``, imported when used)
#: that makes it from the parsed URL; named, not imported, as the dongle registry does: the emulator sits above
#: the runtime, which opens usb: ports through this module
BACKEND_PROVIDERS: dict[str, str] = {"irsim": "irlap.emulator.usb:backend_for_url"}
USB_SCHEME = "usb:"


class UsbStall(DongleError):
    """The chip refused a request (a STALL): it does not speak this driver's protocol."""


def is_usb_url(url: object) -> bool:
    return isinstance(url, str) and url.lower().startswith(USB_SCHEME)


@dataclass
class UsbUrl:
    """A parsed ``usb:`` URL."""

    url: str
    vid: int | None = None
    pid: int | None = None
    bus: int | None = None
    ports: tuple[int, ...] | None = None
    options: dict[str, str] = field(default_factory=dict)

    def matches(self, vid: int, pid: int, bus: int | None, ports: tuple[int, ...] | None) -> bool:
        if self.vid is not None and (vid, pid) != (self.vid, self.pid):
            return False
        if self.bus is not None and (bus, tuple(ports or ())) != (self.bus, self.ports):
            return False
        return True


def parse_usb_url(url: str) -> UsbUrl:
    """``usb:[VID:PID|BUS-PORT[.PORT...]][?options]``; a PortError that shows the forms for anything else."""
    if not is_usb_url(url):
        raise PortError(f"{url!r} is not a usb: URL")
    rest = url[len(USB_SCHEME):].lstrip("/")
    selector, _, query = rest.partition("?")
    parsed = UsbUrl(url, options={k: v[-1] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()})
    usage = "usb:, usb:VID:PID (hex, e.g. usb:066f:4200) or usb:BUS-PORT (e.g. usb:1-4.2)"
    try:
        if not selector:
            return parsed  # usb: alone: the first known adapter
        if ":" in selector:
            vid, pid = selector.split(":")
            parsed.vid, parsed.pid = int(vid, 16), int(pid, 16)
            if not (0 <= parsed.vid <= 0xFFFF and 0 <= parsed.pid <= 0xFFFF):
                raise ValueError(selector)
        elif "-" in selector:
            bus, ports = selector.split("-")
            parsed.bus = int(bus)
            parsed.ports = tuple(int(p) for p in ports.split("."))
        else:
            raise ValueError(selector)
    except ValueError:
        raise PortError(f"cannot open {url}: {selector!r} names no USB device; use {usage}") from None
    return parsed


def driver_for(vid: int, pid: int, interface_classes: list[tuple[int, int]] | tuple = ()) -> str | None:
    """The driver name for a device: by its id, else by a USB IrDA Bridge class interface."""
    known = KNOWN_IDS.get((vid, pid))
    if known is not None:
        return known[0]
    from irlap.dongles import _BUILTIN, get_dongle

    for name in _BUILTIN:
        target = _BUILTIN[name]
        if ".usb." not in target:
            continue
        cls = get_dongle(name)
        if (vid, pid) in getattr(cls, "usb_ids", ()):
            return name
    if BRIDGE_CLASS in list(interface_classes):
        return "irda-usb"
    return None


def _pyusb() -> Any:
    try:
        import usb.core
        import usb.util
    except ImportError:
        raise PortError("usb: ports need pyusb: pip install 'irsock[usb]' (or pip install pyusb)") from None
    return usb


def _interface_classes(device: Any) -> list[tuple[int, int]]:
    classes = []
    try:
        for config in device:
            for interface in config:
                classes.append((interface.bInterfaceClass, interface.bInterfaceSubClass))
    except Exception:  # noqa: BLE001 - a device whose descriptors cannot be read is simply not ours
        return []
    return classes


def _ports(device: Any) -> tuple[int, ...] | None:
    ports = getattr(device, "port_numbers", None)
    return tuple(ports) if ports else None


def _location(device: Any) -> str:
    ports = _ports(device)
    return f"{device.bus}-{'.'.join(map(str, ports))}" if ports else f"bus {device.bus} address {device.address}"


def default_backend() -> Any:
    """libusb-1.0 through pyusb, or a PortError saying what to install."""
    _pyusb()
    import usb.backend.libusb1 as libusb1

    backend = libusb1.get_backend()
    if backend is None:
        raise PortError("usb: ports need the libusb-1.0 library: install it (Debian/Ubuntu: apt install "
                        "libusb-1.0-0; macOS: brew install libusb; Windows: see docs/dongles.md)")
    return backend


def scan(backend: Any = None) -> list[dict]:
    """Every USB IrDA adapter on the bus: id, location, the driver that takes it and what it is."""
    usb = _pyusb()
    backend = backend if backend is not None else default_backend()
    found = []
    try:
        devices = list(usb.core.find(find_all=True, backend=backend))
    except usb.core.USBError as exc:
        raise PortError(f"cannot list USB devices: {exc}") from None
    for device in devices:
        vid, pid = device.idVendor, device.idProduct
        name = driver_for(vid, pid, _interface_classes(device))
        if name is None:
            continue
        what = KNOWN_IDS.get((vid, pid), (name, "USB IrDA Bridge class adapter"))[1]
        ports = _ports(device)
        url = f"usb:{device.bus}-{'.'.join(map(str, ports))}" if ports else f"usb:{vid:04x}:{pid:04x}"
        found.append({"vid": f"{vid:04x}", "pid": f"{pid:04x}", "bus": device.bus, "address": device.address,
                      "url": url, "driver": name, "description": what})
    return found


def udev_rule(group: str = "plugdev") -> str:
    """udev rules giving ``group`` (and the logged-in user, through uaccess) the known adapters."""
    lines = ["# irsock: USB IrDA adapters (irda udev-rule | sudo tee /etc/udev/rules.d/70-irsock.rules;",
             "# then: sudo udevadm control --reload && sudo udevadm trigger, and plug the adapter in again)"]
    ids = dict(KNOWN_IDS)
    from irlap.dongles import _BUILTIN, get_dongle

    for name, target in _BUILTIN.items():
        if ".usb." in target:
            for vid_pid in getattr(get_dongle(name), "usb_ids", ()):
                ids.setdefault(vid_pid, (name, get_dongle(name).description))
    for (vid, pid), (name, what) in sorted(ids.items()):
        lines.append(f'# {what} ({name})')
        lines.append(f'SUBSYSTEM=="usb", ATTR{{idVendor}}=="{vid:04x}", ATTR{{idProduct}}=="{pid:04x}", '
                     f'MODE="0660", GROUP="{group}", TAG+="uaccess"')
    return "\n".join(lines) + "\n"


class UsbPort:
    """One opened USB device: control and bulk transfers with our errors (see the module docstring)."""

    def __init__(self, device: Any, url: str, usb: Any, interface: int = 0) -> None:
        self.device = device
        self.url = url
        self.port = url  # what the runtime names in its messages (like pyserial's .port)
        self._usb = usb
        self.interface = interface
        self.vid = device.idVendor
        self.pid = device.idProduct
        self.closed = False

    @property
    def bcd_device(self) -> int:
        """The device's release number (bcdDevice): it names the STIr421x firmware patch."""
        return int(self.device.bcdDevice)

    @property
    def interface_classes(self) -> list[tuple[int, int]]:
        return _interface_classes(self.device)

    def endpoints(self) -> list[tuple[int, int, int]]:
        """(address, attributes, max packet size) of each endpoint of the claimed interface."""
        config = self.device.get_active_configuration()
        interface = config[(self.interface, 0)]
        return [(ep.bEndpointAddress, ep.bmAttributes, ep.wMaxPacketSize) for ep in interface]

    # --- transfers --------------------------------------------------------------------------------
    def _failed(self, what: str, exc: Exception) -> Exception:
        code = getattr(exc, "errno", None)
        if code == errno.EPIPE:
            return UsbStall(f"the adapter refused {what} (a stall): it does not speak this driver's protocol")
        if code in (errno.ENODEV, errno.ENOENT, errno.ESHUTDOWN) or "No such device" in str(exc):
            return PortError(f"{self.url}: the USB adapter is gone ({exc}); was it unplugged?")
        if code == errno.ETIMEDOUT or isinstance(exc, self._usb.core.USBTimeoutError):
            return PortError(f"{self.url}: the USB adapter did not answer {what} in time; unplug it and plug it in "
                             "again")
        return PortError(f"{self.url}: {what} failed ({exc}); is the adapter unplugged?")

    def control_out(self, request_type: int, request: int, value: int = 0, index: int = 0, data: bytes = b"",
                    timeout_ms: int = 500) -> None:
        try:
            self.device.ctrl_transfer(request_type, request, value, index, bytes(data) or None, timeout_ms)
        except self._usb.core.USBError as exc:
            raise self._failed(f"control request 0x{request:02x}", exc) from None

    def control_in(self, request_type: int, request: int, value: int, index: int, length: int,
                   timeout_ms: int = 500) -> bytes:
        try:
            return bytes(self.device.ctrl_transfer(request_type, request, value, index, length, timeout_ms))
        except self._usb.core.USBError as exc:
            raise self._failed(f"control request 0x{request:02x}", exc) from None

    def bulk_write(self, endpoint: int, data: bytes, timeout_ms: int = 1000) -> int:
        try:
            return self.device.write(endpoint, data, timeout_ms)
        except self._usb.core.USBError as exc:
            raise self._failed("a bulk write", exc) from None

    def bulk_read(self, endpoint: int, size: int, timeout_ms: int) -> bytes:
        """What the endpoint gives within the timeout (empty when it gave nothing)."""
        try:
            return bytes(self.device.read(endpoint, size, max(1, timeout_ms)))
        except self._usb.core.USBTimeoutError:
            return b""
        except self._usb.core.USBError as exc:
            if getattr(exc, "errno", None) == errno.ETIMEDOUT:
                return b""
            raise self._failed("a bulk read", exc) from None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._usb.util.release_interface(self.device, self.interface)
        except Exception:  # noqa: BLE001 - an unplugged device has nothing left to release
            pass
        try:
            self._usb.util.dispose_resources(self.device)
        except Exception:  # noqa: BLE001
            pass


def open_usb(url: str, backend: Any = None) -> tuple[UsbPort, str | None]:
    """Open the adapter ``url`` names; returns the port and the driver its id calls for (None: unknown)."""
    parsed = parse_usb_url(url)
    usb = _pyusb()
    provider = next((BACKEND_PROVIDERS[key] for key in parsed.options if key in BACKEND_PROVIDERS), None)
    if backend is None and provider is not None:
        module, _, function = provider.partition(":")
        backend = getattr(importlib.import_module(module), function)(parsed)
    elif backend is None:
        backend = default_backend()
    try:
        devices = list(usb.core.find(find_all=True, backend=backend))
    except usb.core.USBError as exc:
        raise PortError(f"cannot open {url}: cannot list USB devices ({exc})") from None
    candidates = []
    for device in devices:
        vid, pid = device.idVendor, device.idProduct
        if not parsed.matches(vid, pid, device.bus, _ports(device)):
            continue
        name = driver_for(vid, pid, _interface_classes(device))
        if name is None and parsed.vid is None and parsed.bus is None:
            continue  # usb: alone takes only adapters we know
        candidates.append((device, name))
    if not candidates:
        raise PortError(f"cannot open {url}: no such USB IrDA adapter; is it plugged in? "
                        "(irda dongles --scan lists the ones found)")
    device, name = candidates[0]
    where = _location(device)
    try:
        try:
            if device.is_kernel_driver_active(0):
                device.detach_kernel_driver(0)
        except (NotImplementedError, usb.core.USBError):
            pass
        device.set_configuration()
        usb.util.claim_interface(device, 0)
    except usb.core.USBError as exc:
        code = getattr(exc, "errno", None)
        if code in (errno.EACCES, errno.EPERM):
            raise PortError(f"cannot open {url} ({where}): permission denied; install the udev rule "
                            "(irda udev-rule | sudo tee /etc/udev/rules.d/70-irsock.rules) and plug the adapter "
                            "in again") from None
        if code == errno.EBUSY:
            raise PortError(f"cannot open {url} ({where}): another program holds the adapter") from None
        raise PortError(f"cannot open {url} ({where}): {exc}") from None
    return UsbPort(device, url, usb), name
