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
    from irsock.devices import register_all

    register_all()  # the personalities: devices=phone, ...


_register_virtual_devices()

from irsock.net import (  # noqa: E402
    AF_INET,
    AF_INET6,
    AF_IRDA,
    SOCK_DGRAM,
    SOCK_SEQPACKET,
    SOCK_STREAM,
    SOL_IRLMP,
    IasQuery,
    IasSet,
    Interface,
    IrdaDevice,
    attach,
    default_interface,
    enum_protocols,
    install_layered,
    interfaces,
    remove_layered,
    socket,
)
from irsock.net.constants import *  # noqa: E402,F403 - AF_IRDA, SOL_IRLMP, IRLMP_* as in af_irda.h

__all__ = [
    "AF_INET", "AF_INET6", "AF_IRDA", "SOCK_DGRAM", "SOCK_SEQPACKET", "SOCK_STREAM", "SOL_IRLMP",
    "Interface", "attach", "default_interface", "interfaces", "enum_protocols", "install_layered",
    "remove_layered", "IasQuery", "IasSet", "IrdaDevice", "socket",
]
