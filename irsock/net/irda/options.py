"""The socket options of AF_IRDA sockets: SOL_IRLMP (Windows and Linux numbering) and SO_LINGER.

Functions over an :class:`~irsock.net.irda.endpoint.IrdaEndpoint` rather than methods of it, so that
the option table reads in one place and the socket classes stay about sockets.
"""

from __future__ import annotations

import errno
import struct
import time
from typing import TYPE_CHECKING, Any

from irsock.ircomm import SERVICE_3WIRE, SERVICE_9WIRE, IrCommChannel
from irsock.lmp import pdu as P
from irsock.net import constants as C
from irsock.net.errors import NotOffered, invalid, no_option, os_error, timed_out, unreachable
from irsock.net.irda.paths import RAW_EXCLUSIVE, RAW_IRLPT
from irsock.net.values import (
    IasQuery,
    IasSet,
    IrdaDevice,
    device_address,
    device_list_bytes,
    linger,
    parse_address,
)

if TYPE_CHECKING:
    from irsock.net.irda.endpoint import IrdaEndpoint

#: the options that make a socket raw IrLMP, and the mode each puts in ``IrdaEndpoint.raw``
RAW_MODES = {"IRLMP_IRLPT_MODE": RAW_IRLPT, "IRLMP_EXCLUSIVE_MODE": RAW_EXCLUSIVE}


def get_linger(sock: IrdaEndpoint, arg: Any) -> Any:
    packed = struct.pack("ii", *sock.linger)
    return packed[:arg] if isinstance(arg, int) else struct.unpack("ii", packed)[0]


def set_linger(sock: IrdaEndpoint, value: Any) -> None:
    sock.linger = linger(value)


def get_irlmp(sock: IrdaEndpoint, name: str, arg: Any) -> Any:
    if name == "IRLMP_ENUMDEVICES":
        devices = enum_devices(sock, arg if isinstance(arg, str) else None)
        return device_list_bytes(devices, arg) if isinstance(arg, int) else devices
    if name == "IRLMP_IAS_QUERY":
        if not isinstance(arg, IasQuery):
            raise invalid("IRLMP_IAS_QUERY takes an irsock.IasQuery(device, class_name, attribute)")
        return ias_query(sock, arg)
    if name == "IRLMP_IAS_GET":
        if not isinstance(arg, IasQuery):
            raise invalid("IRLMP_IAS_GET takes an irsock.IasQuery(0, class_name, attribute) (our own IAS)")
        return ias_get(sock, arg)
    if name == "IRLMP_SEND_PDU_LEN":
        return sock._call(lambda stack, now: stack.lmp.max_data() - (0 if sock.raw else 1))
    if name == "IRLMP_MAX_SDU_SIZE":
        return sock.peer_max_sdu if sock.connected else sock.max_sdu
    if name == "IRLMP_WAITDEVICE":
        return wait_device(sock, arg if isinstance(arg, int | float) else 10000)
    if name in RAW_MODES:
        return int(sock.raw == RAW_MODES[name])
    if name == "IRLMP_SHARP_MODE":
        return int(sock.sharp)
    if name == "IRLMP_9WIRE_MODE":
        return int(getattr(sock, "ircomm", None) is not None)
    raise no_option(name)


def set_irlmp(sock: IrdaEndpoint, name: str, value: Any) -> None:
    if name == "IRLMP_IAS_SET":
        if not isinstance(value, IasSet):
            raise invalid("IRLMP_IAS_SET takes an irsock.IasSet(class_name, attribute, value)")
        if isinstance(value.value, int):
            ias_value = P.IasValue.of_int(value.value)
        elif isinstance(value.value, bytes):
            ias_value = P.IasValue.of_octets(value.value)
        else:
            ias_value = P.IasValue.of_string(value.value, value.charset)
        sock._call(lambda stack, now: stack.lmp.ias.set(value.class_name, value.attribute, ias_value))
    elif name == "IRLMP_IAS_DEL":
        if not isinstance(value, IasQuery | IasSet):
            raise invalid("IRLMP_IAS_DEL takes an irsock.IasQuery(0, class_name, attribute)")
        removed = sock._call(lambda stack, now: stack.lmp.ias.remove(value.class_name, value.attribute))
        if not removed:
            raise os_error(OSError, errno.EADDRNOTAVAIL, C.WSAEADDRNOTAVAIL,
                           f"no IAS attribute {value.class_name!r} {value.attribute!r} of ours to delete")
    elif name == "IRLMP_HINT_MASK_SET":
        sock.hint_mask = int.from_bytes(value, "big") if isinstance(value, bytes) else int(value)
    elif name == "IRLMP_HINTS_SET":
        hints = int.from_bytes(value, "big") if isinstance(value, bytes) else int(value)
        sock.iface.set_hints(hints)
    elif name in RAW_MODES:
        if sock.connected or sock.local_lsap is not None:
            raise invalid(f"{name} must be set before bind() or connect()")
        if value and getattr(sock, "ircomm", None) is not None:
            raise invalid(f"{name} and IRLMP_9WIRE_MODE exclude each other (raw IrLMP or cooked IrCOMM over TinyTP)")
        if value:
            sock.raw = RAW_MODES[name]  # the last one set wins: IrLPT (multiplexed) or exclusive
        elif sock.raw == RAW_MODES[name]:
            sock.raw = ""
    elif name == "IRLMP_SHARP_MODE":
        sock.sharp = bool(value)  # any time: it only changes how the end of a connection reads
    elif name == "IRLMP_9WIRE_MODE":
        if sock.type != C.SOCK_STREAM or sock.raw or sock.connected or sock.local_lsap is not None:
            raise invalid("IRLMP_9WIRE_MODE is set on a TinyTP SOCK_STREAM socket before bind() or connect()")
        sock.ircomm = IrCommChannel(dte=True, services=SERVICE_9WIRE | SERVICE_3WIRE) if value else None
    elif name == "IRLMP_MAX_SDU_SIZE":
        if sock.type != C.SOCK_SEQPACKET or sock.connected:
            raise invalid("IRLMP_MAX_SDU_SIZE is set on a SOCK_SEQPACKET socket before connect/bind")
        sock.max_sdu = int(value)
    else:
        raise no_option(name)


def enum_devices(sock: IrdaEndpoint, wanted: str | None = None) -> list[IrdaDevice]:
    """IRLMP_ENUMDEVICES: a discovery round, then every device in the log.

    ``wanted`` (irsock's own argument: a device address or nickname, as ``irda send --to`` takes it) ends the
    round as soon as that device has answered, instead of after every slot.
    """
    stop_when = None
    if wanted:
        address = parse_address(wanted)

        def stop_when(device: Any) -> bool:
            return device.address == address or device.nickname == wanted

    out = []
    mask = getattr(sock, "hint_mask", 0)
    for device in sock.iface.discover(stop_when=stop_when):
        hints = device.hints.ljust(2, b"\0")
        charset = device.info.charset if device.info else 0
        found = IrdaDevice(device.address, device.nickname, hints[0], hints[1] if hints[0] & 0x80 else 0, charset)
        if not mask or (found.hints1 << 8 | found.hints2) & mask:  # IRLMP_HINT_MASK_SET: Linux filters the log
            out.append(found)
    return out


def ias_get(sock: IrdaEndpoint, query: IasQuery) -> P.IasValue:
    """IRLMP_IAS_GET (Linux): an attribute of our own IAS database."""
    def get(stack, _now):
        ias = stack.lmp.ias
        return ias.get(ias._name(query.class_name, "class"), ias._name(query.attribute, "attribute"))

    try:
        status, entries = sock._call(get)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    if status != P.IAS_SUCCESS:
        raise os_error(OSError, errno.EADDRNOTAVAIL, C.WSAEADDRNOTAVAIL,
                       f"no IAS attribute {query.class_name!r} {query.attribute!r} of ours")
    return entries[0][1]


def ias_query(sock: IrdaEndpoint, query: IasQuery) -> P.IasValue:
    device = device_address(query.device)
    result = sock.ias(device, query.class_name, query.attribute, "querying IAS")
    if result is None or result.status is None:
        raise unreachable(f"0x{device:08x} did not answer the IAS query: {result.error if result else 'down'}")
    if not result.ok:  # no such class or attribute: the device does not offer it (Linux: EADDRNOTAVAIL)
        raise os_error(NotOffered, errno.ECONNREFUSED, C.WSAECONNREFUSED, f"IAS of 0x{device:08x}: {result.describe()}")
    return result.values[0]


def wait_device(sock: IrdaEndpoint, timeout_ms: float) -> int:
    """IRLMP_WAITDEVICE: discovery rounds until a device not seen before answers."""
    iface = sock.iface
    deadline = time.monotonic() + timeout_ms / 1000
    with iface.cond:
        iface.new_devices.clear()
    while time.monotonic() < deadline:
        iface.discover(timeout=min(3.0, max(0.1, deadline - time.monotonic())))
        with iface.cond:
            if iface.new_devices:
                return iface.new_devices.popleft()
    raise timed_out("no new device appeared (IRLMP_WAITDEVICE)")
