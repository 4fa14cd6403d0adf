"""The base IrDA provider: AF_IRDA sockets over the stack of an :class:`~irsock.net.interface.Interface`.

- :mod:`.endpoint`: what every AF_IRDA socket has (select flag, waiting, engine calls, names, options);
- :mod:`.connection`: SOCK_STREAM / SOCK_SEQPACKET over TinyTP, or raw IrLMP (:mod:`.paths` says how);
- :mod:`.datagram`: SOCK_DGRAM over IrLMP connectionless data;
- :mod:`.resolve` (IAS lookups, auto-connect) and :mod:`.options` (SOL_IRLMP, SO_LINGER).
"""

from __future__ import annotations

from irsock.net import constants as C
from irsock.net.interface import Interface, default_interface
from irsock.net.irda.connection import IrdaConnection
from irsock.net.irda.datagram import IrdaDatagram
from irsock.net.irda.endpoint import IrdaEndpoint


def irda_provider(family: int, type_: int, proto: int, interface: Interface | None) -> IrdaEndpoint:
    """The catalog's factory for AF_IRDA: a socket of ``type_`` on ``interface`` (else the default one)."""
    iface = interface or default_interface()
    make_endpoint = getattr(iface, "make_endpoint", None)
    if make_endpoint is not None:  # an interface whose stack is elsewhere (the daemon's) makes its own sockets
        return make_endpoint(type_, proto)
    if type_ == C.SOCK_DGRAM:
        return IrdaDatagram(iface, type_, proto)
    return IrdaConnection(iface, type_, proto)


__all__ = ["IrdaConnection", "IrdaDatagram", "IrdaEndpoint", "irda_provider"]
