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
    default_interface,
    enum_protocols,
    install_layered,
    interfaces,
    remove_layered,
    socket,
)
from irsock.net.constants import *  # noqa: E402,F403 - AF_IRDA, SOL_IRLMP, IRLMP_* as in af_irda.h


def attach(port: str, **options):
    """Bring an IrDA stack up on ``port``, or use the one a daemon (``irda serve``) runs for it.

    ``port`` is any pyserial URL (``/dev/ttyUSB0``, ``irsim://demo?devices=2``) or ``unix:PATH``, a daemon's socket.
    While a daemon serves ``port`` (its socket in the default place, see :func:`irsock.daemon.default_socket_path`)
    the interface returned is the daemon's: this process shares its station with every other client instead of
    opening the port a second time; ``nickname``/``hints`` then name this process's station (built-in emulator) or
    add to the station's hint bits, and the port options (``dongle``, ``trace``, ``qos``...) are the daemon's.
    The options otherwise are those of :func:`irsock.net.attach`.
    """
    from irsock.daemon import default_socket_path

    if port.startswith("unix:") or default_socket_path(port).exists():  # the client only then (3 ms of imports)
        from irsock.daemon.client import attach_daemon

        iface = attach_daemon(port, nickname=options.get("nickname"), hints=options.get("hints"))
        if iface is not None:
            return iface
    return _attach_here(port, **options)


from irsock.net import attach as _attach_here  # noqa: E402

__all__ = [
    "AF_INET", "AF_INET6", "AF_IRDA", "SOCK_DGRAM", "SOCK_SEQPACKET", "SOCK_STREAM", "SOL_IRLMP",
    "Interface", "attach", "default_interface", "interfaces", "enum_protocols", "install_layered",
    "remove_layered", "IasQuery", "IasSet", "IrdaDevice", "socket",
]
