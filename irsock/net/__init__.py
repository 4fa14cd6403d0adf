"""The socket API: interfaces (``attach``), ``socket``, the provider catalog and its layered providers.

Arrows point down only: :mod:`.sockets` asks :mod:`.providers` for an implementation; the catalog makes
it with a base provider (:mod:`.irda` over an :mod:`.interface`, or :mod:`.inet`) and stacks the chosen
:mod:`.layered` ones over it. The interface is below the sockets and does not import them: importing
this package hands it the socket type for ``Interface.socket``.
"""

from __future__ import annotations

from irsock.net.constants import *  # noqa: F403 - AF_IRDA, SOL_IRLMP, IRLMP_* as in af_irda.h
from irsock.net.constants import AF_INET, AF_INET6, AF_IRDA, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, SOL_IRLMP
from irsock.net.errors import IrSockNetDown
from irsock.net.interface import Interface, attach, default_interface, interfaces
from irsock.net.providers import enum_protocols, install_layered, remove_layered
from irsock.net.sockets import socket
from irsock.net.values import IasQuery, IasSet, IrdaDevice, parse_address

Interface.socket_type = socket

__all__ = [
    "AF_INET", "AF_INET6", "AF_IRDA", "SOCK_DGRAM", "SOCK_SEQPACKET", "SOCK_STREAM", "SOL_IRLMP",
    "Interface", "IrSockNetDown", "attach", "default_interface", "interfaces", "enum_protocols", "install_layered",
    "remove_layered", "IasQuery", "IasSet", "IrdaDevice", "parse_address", "socket",
]
