"""The provider catalog, in the Winsock model (WSAEnumProtocols): base providers and layered ones.

A *base provider* implements sockets of some families and types: ``IrDA`` (AF_IRDA over TinyTP and
IrLMP) and ``TCP/IP`` (the OS's own sockets). A *layered provider* (an LSP) sits over a base
provider and changes what every call does: ``Trace`` logs each call and byte counts through
``logging``; ``TLS`` runs the stdlib ``ssl`` module over any stream through ``ssl.MemoryBIO``, so
TLS works over infrared as over TCP. ``irsock.socket(..., provider="TLS", tls_context=ctx, ...)``
picks a chain; :func:`enum_protocols` lists the catalog; :func:`install_layered` adds LSPs.
"""

from __future__ import annotations

import errno
import socket as _socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from irsock.net import constants as C
from irsock.net.inet import TcpImpl
from irsock.net.irda import irda_provider
from irsock.net.layered import TlsImpl, TraceImpl

XP1_GUARANTEED_DELIVERY = 0x0002
XP1_GUARANTEED_ORDER = 0x0004
XP1_MESSAGE_ORIENTED = 0x0008
XP1_CONNECTIONLESS = 0x0001
XP1_GRACEFUL_CLOSE = 0x0020
XP1_EXPEDITED_DATA = 0x0040
XP1_IFS_HANDLES = 0x20000


@dataclass(frozen=True)
class ProtocolInfo:
    """One catalog entry, after WSAPROTOCOL_INFO."""

    name: str
    family: int
    type: int
    protocol: int
    service_flags: int
    max_message_size: int  # 0: stream; 0xFFFFFFFF: unbounded messages
    chain: tuple[str, ...]  # provider names, top first; one name for a base provider

    @property
    def layered(self) -> bool:
        return len(self.chain) > 1

    def describe(self) -> str:
        flags = [name for bit, name in ((XP1_GUARANTEED_DELIVERY, "guaranteed delivery"),
                                        (XP1_GUARANTEED_ORDER, "guaranteed order"),
                                        (XP1_MESSAGE_ORIENTED, "message oriented"),
                                        (XP1_CONNECTIONLESS, "connectionless"),
                                        (XP1_GRACEFUL_CLOSE, "graceful close")) if self.service_flags & bit]
        return f"{self.name}: {' > '.join(self.chain)}; {', '.join(flags)}"


STREAM = XP1_GUARANTEED_DELIVERY | XP1_GUARANTEED_ORDER | XP1_GRACEFUL_CLOSE | XP1_IFS_HANDLES
_BASE: list[ProtocolInfo] = [
    ProtocolInfo("IrDA TinyTP stream", C.AF_IRDA, C.SOCK_STREAM, 0, STREAM, 0, ("IrDA",)),
    ProtocolInfo("IrDA TinyTP SAR", C.AF_IRDA, C.SOCK_SEQPACKET, 0, STREAM | XP1_MESSAGE_ORIENTED, 0xFFFFFFFF,
                 ("IrDA",)),
    ProtocolInfo("IrDA IrLMP connectionless", C.AF_IRDA, C.SOCK_DGRAM, 0, XP1_CONNECTIONLESS | XP1_MESSAGE_ORIENTED,
                 2045, ("IrDA",)),
    ProtocolInfo("TCP/IP", C.AF_INET, C.SOCK_STREAM, 0, STREAM | XP1_EXPEDITED_DATA, 0, ("TCP/IP",)),
    ProtocolInfo("UDP/IP", C.AF_INET, C.SOCK_DGRAM, 0, XP1_CONNECTIONLESS | XP1_MESSAGE_ORIENTED, 65507,
                 ("TCP/IP",)),
    ProtocolInfo("TCP/IPv6", C.AF_INET6, C.SOCK_STREAM, 0, STREAM | XP1_EXPEDITED_DATA, 0, ("TCP/IP",)),
    ProtocolInfo("UDP/IPv6", C.AF_INET6, C.SOCK_DGRAM, 0, XP1_CONNECTIONLESS | XP1_MESSAGE_ORIENTED, 65507,
                 ("TCP/IP",)),
]
_LAYERED: dict[str, Callable[..., Any]] = {}
_LAYERED_TYPES: dict[str, tuple[int, ...]] = {}


def enum_protocols(family: int | None = None) -> list[ProtocolInfo]:
    """The catalog: base entries, then one entry per layered provider over each base entry it fits."""
    entries = list(_BASE)
    for name, types in _LAYERED_TYPES.items():
        for base in _BASE:
            if base.type in types:
                entries.append(ProtocolInfo(f"{name} over {base.name}", base.family, base.type, base.protocol,
                                            base.service_flags, base.max_message_size, (name, *base.chain)))
    if family is not None:
        wanted = C.AF_IRDA_ALIASES if family in C.AF_IRDA_ALIASES else {family}
        entries = [e for e in entries if e.family in wanted]
    return entries


def install_layered(name: str, factory: Callable[..., Any], types: tuple[int, ...] = (C.SOCK_STREAM,)) -> None:
    """Install an LSP: ``factory(lower_impl, **options)`` returns the wrapped implementation."""
    _LAYERED[name] = factory
    _LAYERED_TYPES[name] = types


def remove_layered(name: str) -> None:
    _LAYERED.pop(name, None)
    _LAYERED_TYPES.pop(name, None)


def open_socket(family: int, type_: int, proto: int, interface: Any, provider: str | tuple[str, ...] | None,
                **options: Any) -> Any:
    """The implementation object for a new socket, through the chosen provider chain."""
    if family in C.AF_IRDA_ALIASES:
        impl = irda_provider(family, type_, proto, interface)
    elif family in (C.AF_INET, C.AF_INET6):
        impl = TcpImpl(_socket.socket(family, type_, proto))
    else:
        exc = OSError(errno.EAFNOSUPPORT, f"address family {family} is not supported (AF_IRDA, AF_INET, AF_INET6)")
        exc.winerror = C.WSAEAFNOSUPPORT  # type: ignore[attr-defined]
        raise exc
    chain = (provider,) if isinstance(provider, str) else tuple(provider or ())
    for name in reversed(chain):
        factory = _LAYERED.get(name)
        if factory is None:
            raise ValueError(f"no layered provider {name!r}; installed: {', '.join(_LAYERED) or 'none'}")
        if type_ not in _LAYERED_TYPES[name]:
            raise ValueError(f"the {name} provider does not layer over socket type {type_}")
        impl = factory(impl, **options)
    return impl


install_layered("Trace", TraceImpl, (C.SOCK_STREAM, C.SOCK_SEQPACKET, C.SOCK_DGRAM))
install_layered("TLS", TlsImpl, (C.SOCK_STREAM,))
