"""SIR dongle drivers: how a USB-serial infrared adapter is powered up and switched between speeds.

A driver talks to the port through the pyserial interface only (``dtr``, ``rts``, ``baudrate``,
``write``, ``flush``, ``read``), and waits through an injectable ``sleep`` so that tests can record
its line timeline on a virtual clock. The registry is filled from the built-in drivers and from the
``irsock.dongles`` entry-point group, loaded lazily (the python-can model). USB adapters (``irda-usb``,
``stir4200``, ``ks959``, ``mcs7780``, ``ksdazzle``, ``kingsun-sir``) are in the same registry: frame-level
drivers in :mod:`irlap.dongles.usb`, on ``usb:`` ports, which the runtime hands whole frames
(:mod:`irlap.dongles.framed` says why)::

    from irlap.dongles import get_dongle, dongle_names
    driver = get_dongle("tekram")(port)
    driver.open()              # power up, reset, 9600 bit/s
    driver.set_speed(115200)   # DTR/RTS sequences and command bytes as the dongle needs them
    driver.close()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from irlap.errors import IrLAPError

ENTRY_POINT_GROUP = "irsock.dongles"


class DongleError(IrLAPError):
    """The dongle did not do what its protocol promises (no echo, wrong echo, unsupported speed)."""


class Dongle:
    """Base class of dongle drivers. Subclasses set the class attributes and override the steps."""

    name: ClassVar[str] = "?"
    description: ClassVar[str] = ""
    speeds: ClassVar[tuple[int, ...]] = (9600,)
    #: minimum turnaround time this dongle needs, microseconds (narrows the QoS we offer)
    min_turnaround_us: ClassVar[int] = 10
    #: speed the dongle is at after reset
    reset_speed: ClassVar[int] = 9600
    echoes: ClassVar[bool] = False

    def __init__(self, port: Any, sleep: Callable[[float], None] = time.sleep) -> None:
        self.port = port
        self.sleep = sleep
        self.speed: int | None = None

    # --- helpers --------------------------------------------------------------------------------
    def lines(self, dtr: bool, rts: bool) -> None:
        """Set DTR and RTS (in that order)."""
        self.port.dtr = dtr
        self.port.rts = rts

    def command(self, data: bytes, baud: int = 9600) -> None:
        """Send control bytes to the dongle at ``baud`` and wait until they have left the UART."""
        if self.port.baudrate != baud:
            self.port.baudrate = baud
        self.port.write(bytes(data))
        self.port.flush()

    def check_speed(self, baud: int) -> None:
        if baud not in self.speeds:
            raise DongleError(
                f"the {self.name} dongle does not support {baud} bit/s; it supports "
                f"{', '.join(map(str, self.speeds))}"
            )

    # --- the driver's steps ---------------------------------------------------------------------
    def open(self) -> None:
        """Power the dongle up and reset it to 9600 bit/s (port and dongle)."""
        self.lines(True, True)
        self.sleep(0.050)  # the Linux drivers give the dongle 50 ms of power first
        self.reset()
        self.set_speed(9600)

    def reset(self) -> None:
        """Bring the dongle to its reset speed (no UART change)."""
        self.speed = self.reset_speed

    def set_speed(self, baud: int) -> None:
        """Switch dongle and UART to ``baud``; the caller has drained the transmit buffer first."""
        self.check_speed(baud)
        self.port.baudrate = baud
        self.speed = baud

    def close(self) -> None:
        """Leave the dongle powered down (most dongles draw power from DTR/RTS)."""
        try:
            self.lines(False, False)
        except (OSError, ValueError):
            pass  # an unplugged port cannot be powered down; nothing is lost


_BUILTIN = {
    "plain": "irlap.dongles.builtin:Plain",
    "tekram": "irlap.dongles.builtin:Tekram",
    "actisys": "irlap.dongles.builtin:Actisys",
    "actisys+": "irlap.dongles.builtin:ActisysPlus",
    "esi": "irlap.dongles.builtin:Esi",
    "girbil": "irlap.dongles.builtin:Girbil",
    "litelink": "irlap.dongles.builtin:Litelink",
    "ma600": "irlap.dongles.builtin:Ma600",
    "mcp2120": "irlap.dongles.builtin:Mcp2120",
    "old_belkin": "irlap.dongles.builtin:OldBelkin",
    "toim3232": "irlap.dongles.builtin:Toim3232",
    "act200l": "irlap.dongles.builtin:Act200l",
    # USB chips (frame-level drivers, irlap.dongles.framed; pyusb imported only when one is opened)
    "irda-usb": "irlap.dongles.usb.bridge:UsbBridge",
    "stir4200": "irlap.dongles.usb.stir4200:Stir4200",
    "ks959": "irlap.dongles.usb.ks959:Ks959",
    "mcs7780": "irlap.dongles.usb.mcs7780:Mcs7780",
    "ksdazzle": "irlap.dongles.usb.ksdazzle:KsDazzle",
    "kingsun-sir": "irlap.dongles.usb.kingsun_sir:KingsunSir",
}


def _entry_points() -> dict[str, str]:
    from importlib import metadata  # only for a name that is not built in: 10 ms of every start otherwise

    found = {}
    try:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            found[ep.name] = ep.value
    except Exception:  # noqa: BLE001 - a broken third-party install must not break the built-ins
        return {}
    return found


def dongle_names() -> list[str]:
    """Every dongle name: built-ins first, then plugins."""
    names = list(_BUILTIN)
    names += sorted(n for n in _entry_points() if n not in _BUILTIN)
    return names


def get_dongle(name: str) -> type[Dongle]:
    """The driver class for ``name`` (imported on first use)."""
    target = _BUILTIN.get(name) or _entry_points().get(name)
    if target is None:
        raise DongleError(f"unknown dongle {name!r}; known dongles: {', '.join(dongle_names())} (see: irda dongles)")
    module_name, _, attribute = target.partition(":")
    try:
        module = __import__(module_name, fromlist=[attribute])
        cls = getattr(module, attribute)
    except (ImportError, AttributeError) as exc:
        raise DongleError(f"dongle {name!r} could not be loaded from {target}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Dongle)):
        raise DongleError(f"dongle {name!r} ({target}) is not a Dongle subclass")
    return cls
