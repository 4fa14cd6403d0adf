"""Which LSAP to connect to: a service name asked of the device's IAS, or Linux's auto-connect (device 0).

A connecting socket needs the peer's LSAP selector. ``LSAP-SELn`` names it directly; any other service
name is looked up in the peer's IAS under ``IrDA:TinyTP:LsapSel`` (or ``IrDA:IrLMP:LsapSel`` for raw IrLMP).

``IrDA:IrCOMM`` has two more rules, because one device may offer it cooked (TinyTP) or 3-wire raw (IrLMP):
a raw socket that finds no ``IrDA:IrLMP:LsapSel`` there tries class ``IrLPT``, where Linux's ircomm-tty
registered 3-wire raw; a TinyTP socket that finds no ``IrDA:TinyTP:LsapSel`` there reads the class's ``Parameters``
and, when they offer 3-wire raw only, says so (set IRLMP_IRLPT_MODE or IRLMP_EXCLUSIVE_MODE) instead of a bare
"no such attribute".
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from irsock import ircomm
from irsock.lmp import pdu as P
from irsock.net import constants as C
from irsock.net.errors import WSAENETUNREACH, NotOffered, net_down, os_error, refused, unreachable
from irsock.net.values import lsap_sel

if TYPE_CHECKING:
    from irsock.net.irda.endpoint import IrdaEndpoint

AUTO_DISCOVERY_ROUNDS = 3  # auto-connect (device 0) discovers until a round adds nobody, at most this often


def resolve(sock: IrdaEndpoint, device: int, service: str) -> int:
    """The LSAP of ``service`` on ``device``."""
    lsap = lsap_sel(service)
    if lsap is not None:
        return lsap
    attribute = C.IRLMP_LSAP_ATTRIBUTE if sock.raw else C.TINYTP_LSAP_ATTRIBUTE
    result = _ask(sock, device, service, attribute)
    if sock.raw and service == ircomm.IAS_CLASS and result.status in (P.IAS_NO_SUCH_CLASS, P.IAS_NO_SUCH_ATTRIBUTE):
        linux = _ask(sock, device, ircomm.IAS_IRLPT_CLASS, attribute)  # Linux: 3-wire raw IrCOMM is class IrLPT
        if linux.status is not None and linux.status not in (P.IAS_NO_SUCH_CLASS, P.IAS_NO_SUCH_ATTRIBUTE):
            result = linux
    if result.status in (P.IAS_NO_SUCH_CLASS, P.IAS_NO_SUCH_ATTRIBUTE):
        hint = (_raw_only_hint(sock, device) if service == ircomm.IAS_CLASS and not sock.raw
                and result.status == P.IAS_NO_SUCH_ATTRIBUTE else "")
        raise os_error(NotOffered, errno.ECONNREFUSED, C.WSAECONNREFUSED,
                       f"0x{device:08x} offers no service {service!r} ({result.describe()}){hint}")
    if result.status is None:
        raise unreachable(f"0x{device:08x} did not answer the IAS query for {service!r}: {result.error}")
    if not result.ok or not result.values or result.values[0].kind != P.VALUE_INTEGER:
        raise refused(f"0x{device:08x} has no usable LSAP for {service!r} ({result.describe()})")
    return result.values[0].integer


def _ask(sock: IrdaEndpoint, device: int, class_name: str, attribute: str) -> Any:
    """The IAS answer (an IasResult); ENETDOWN when the interface went down meanwhile."""
    result = sock.ias(device, class_name, attribute, f"asking 0x{device:08x} for {class_name!r}")
    if result is None:
        raise net_down(sock.iface.failure or "interface down")
    return result


def _raw_only_hint(sock: IrdaEndpoint, device: int) -> str:
    """What to do when a device's IrCOMM has no TinyTP LSAP: its Parameters offer 3-wire raw only."""
    try:
        result = _ask(sock, device, ircomm.IAS_CLASS, ircomm.IAS_PARAMETERS)
        if not result.ok or not result.values or result.values[0].kind != P.VALUE_OCTETS:
            return ""
        offered, _port = ircomm.parse_ias_parameters(result.values[0].octets)
    except (OSError, ircomm.IrCommError):
        return ""
    if offered & ircomm.SERVICE_3WIRE_RAW and not offered & (ircomm.SERVICE_3WIRE | ircomm.SERVICE_9WIRE):
        return ("; it offers IrCOMM only as 3-wire raw over IrLMP: set IRLMP_IRLPT_MODE or IRLMP_EXCLUSIVE_MODE "
                "instead of IRLMP_9WIRE_MODE")
    return ""


def auto_device(sock: IrdaEndpoint, service: str) -> tuple[int, int]:
    """Linux auto-connect: (device, LSAP) of the one device in range that offers ``service``.

    A discovery round runs first. Only IAS's own answer "no such class/attribute" means a device does
    not offer the service; a lookup that fails otherwise leaves the question open and is reported (when
    two devices answered that they offer it, it is ENOTUNIQ whatever the others did)."""
    # two devices answering in the same slot garble each other and one round misses both: rounds go on
    # until one adds nobody to what was found (at most AUTO_DISCOVERY_ROUNDS)
    found: dict[int, Any] = {}
    for _round in range(AUTO_DISCOVERY_ROUNDS):
        new = {d.address: d for d in sock.iface.discover() if d.address not in found}
        if found and not new:
            break
        found.update(new)
    if not found:
        raise os_error(OSError, errno.ENETUNREACH, WSAENETUNREACH,
                       f"no IrDA device in range ({AUTO_DISCOVERY_ROUNDS} discovery rounds found none)")
    offering: list[tuple[int, int]] = []
    failures: list[tuple[int, OSError]] = []
    for address in found:
        try:
            offering.append((address, resolve(sock, address, service)))
        except NotOffered:
            continue
        except OSError as exc:
            failures.append((address, exc))
    if len(offering) > 1:
        raise os_error(OSError, errno.ENOTUNIQ, C.WSAEINVAL,
                       f"{len(offering)} devices offer {service!r}: give the device address")
    if failures:
        address, exc = failures[0]
        raise os_error(type(exc), exc.errno or errno.EIO, getattr(exc, "winerror", None) or C.WSAEHOSTUNREACH,
                       f"cannot tell which device offers {service!r}: asking 0x{address:08x} failed "
                       f"({exc.strerror or exc}); give the device address")
    if not offering:
        raise os_error(OSError, errno.EADDRNOTAVAIL, C.WSAEADDRNOTAVAIL, f"no device in range offers {service!r}")
    return offering[0]
