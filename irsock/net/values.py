"""Values of the AF_IRDA socket API: addresses, service names, and what options take and return."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from irlap.frames import hint_words
from irsock.lmp import pdu as P
from irsock.net import constants as C
from irsock.net.errors import invalid


# --- option values ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IrdaDevice:
    """An entry of IRLMP_ENUMDEVICES."""

    address: int
    name: str
    hints1: int
    hints2: int
    charset: int

    @property
    def hint_words(self) -> list[str]:
        return hint_words(bytes((self.hints1, self.hints2)))


@dataclass(frozen=True)
class IasSet:
    """IRLMP_IAS_SET: an attribute of ours (value: int, bytes (octets) or str (user string))."""

    class_name: str
    attribute: str
    value: int | bytes | str
    charset: int = 0


@dataclass(frozen=True)
class IasQuery:
    """IRLMP_IAS_QUERY input: which device, class and attribute."""

    device: int
    class_name: str
    attribute: str


def device_list_bytes(devices: list[IrdaDevice], buflen: int) -> bytes:
    """The Windows DEVICELIST: ULONG count, then 29-byte WINDOWS_IRDA_DEVICE_INFO entries."""
    room = max(0, (buflen - 4) // 29)
    chosen = devices[:room]
    out = struct.pack("<I", len(chosen))
    for device in chosen:
        name = device.name.encode("latin-1", "replace")[:21]
        out += struct.pack("<I", device.address) + name.ljust(22, b"\0") + bytes(
            (device.hints1, device.hints2, device.charset))
    return out[:buflen]


def option_name(level: int, option: int) -> str:
    if level not in C.SOL_IRLMP_ALIASES:
        return f"level {level} option {option}"
    if level == C.SOL_IRLMP_LINUX and option in C.LINUX_OPTIONS:
        return C.LINUX_OPTIONS[option]
    return C.WINDOWS_OPTIONS.get(option) or C.LINUX_OPTIONS.get(option) or f"SOL_IRLMP option {option}"


def linger(value: Any) -> tuple[int, int]:
    """SO_LINGER as ``struct linger`` bytes (``struct.pack("ii", onoff, seconds)``) or an (onoff, seconds) pair."""
    try:
        onoff, seconds = struct.unpack("ii", bytes(value)) if isinstance(value, bytes | bytearray) else value
        onoff, seconds = int(onoff), int(seconds)
    except (TypeError, ValueError, struct.error):
        raise invalid("SO_LINGER takes struct.pack('ii', onoff, seconds) or (onoff, seconds)") from None
    if seconds < 0:
        raise invalid("the SO_LINGER time cannot be negative")
    return (1 if onoff else 0, seconds)


# --- addresses -------------------------------------------------------------------------------------------
def parse_address(text: str) -> int | None:
    """A device address written as ``0x1234abcd``, ``1234abcd`` or decimal; None if it is not one."""
    try:
        value = int(text, 0)
    except ValueError:
        try:
            value = int(text, 16)
        except ValueError:
            return None
    return value if 0 < value < 0xFFFFFFFF else None


def device_address(value: Any) -> int:
    if isinstance(value, bytes | bytearray) and len(value) == 4:
        return int.from_bytes(value, "little")
    if isinstance(value, str):
        address = parse_address(value)
        if address is None:
            raise invalid(f"{value!r} is not a device address")
        return address
    if isinstance(value, int):
        return value
    raise invalid(f"{value!r} is not a device address (an int, 4 bytes or '0x1234abcd')")


def bound_service(address: Any) -> str:
    """The service name of a ``bind`` address: ``('ServiceName',)``, ``(device, 'ServiceName')`` or a bare name."""
    if isinstance(address, str):
        address = (address,)
    if not isinstance(address, tuple) or not address:
        raise invalid("AF_IRDA bind takes ('ServiceName',) or (device, 'ServiceName')")
    return str(address[-1])


def lsap_sel(service: str) -> int | None:
    if service.upper().startswith(C.LSAP_SEL_PREFIX):
        try:
            value = int(service[len(C.LSAP_SEL_PREFIX):])
        except ValueError:
            raise invalid(f"{service!r}: LSAP-SEL takes a decimal number") from None
        if not 0 < value <= P.LSAP_MAX:
            raise invalid(f"{service!r}: LSAP selectors are 1..111")
        return value
    return None
