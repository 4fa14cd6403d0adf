"""irsock: a userspace IrDA stack with a Winsock-style socket API.

    import irsock
    iface = irsock.attach("/dev/ttyUSB0", dongle="tekram", nickname="my-pc")
    with irsock.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as s:
        devices = s.getsockopt(irsock.SOL_IRLMP, irsock.IRLMP_ENUMDEVICES)
        s.connect((devices[0].address, "OBEX"))
"""

__version__ = "0.1.0"


def _register_virtual_devices() -> None:
    """Virtual devices on emulated media run our full stack (resolved lazily, no import cost here)."""
    from irlap.emulator import virtual

    virtual.set_default_stack("irsock.stack:virtual_device_stack")


_register_virtual_devices()

from irsock.constants import *  # noqa: E402,F403 - AF_IRDA, SOL_IRLMP, IRLMP_* as in af_irda.h
from irsock.constants import AF_INET, AF_INET6, AF_IRDA, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, SOL_IRLMP  # noqa: E402
from irsock.interface import Interface, attach, default_interface, interfaces  # noqa: E402
from irsock.providers import enum_protocols, install_layered, remove_layered  # noqa: E402
from irsock.socket import IasQuery, IasSet, IrdaDevice, socket  # noqa: E402

__all__ = [
    "AF_INET", "AF_INET6", "AF_IRDA", "SOCK_DGRAM", "SOCK_SEQPACKET", "SOCK_STREAM", "SOL_IRLMP",
    "Interface", "attach", "default_interface", "interfaces", "enum_protocols", "install_layered",
    "remove_layered", "IasQuery", "IasSet", "IrdaDevice", "socket",
]
