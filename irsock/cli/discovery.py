"""``irda discover``, ``irda ias``, ``irda ping``: who is in range and what they answer, asked of IrLAP and IrLMP
directly on a port (a runtime, no sockets), as the devices are found by nickname or address."""

from __future__ import annotations

import argparse
import json
import sys

from irsock.cli.common import EXIT_ERROR, EXIT_OK, CliError, port_options, positive_int, start_runtime, stop_runtime


def register(commands: argparse._SubParsersAction) -> None:
    """``irda discover``, ``irda ias`` and ``irda ping``."""
    discover_cmd = commands.add_parser("discover", help="list the IrDA devices in range")
    port_options(discover_cmd)
    discover_cmd.add_argument("--slots", type=int, choices=(1, 6, 8, 16), default=6)
    discover_cmd.add_argument("--timeout", type=float, default=3.0, help="seconds of discovery rounds (default 3)")
    discover_cmd.add_argument("--watch", action="store_true", help="keep discovering, print devices as they appear")
    discover_cmd.add_argument("--hint", action="append", default=[], metavar="WORD",
                              help="only devices announcing this service hint (OBEX, IrCOMM, Printer...); repeatable")
    discover_cmd.add_argument("--json", action="store_true",
                              help="print one JSON object at the end: {devices: [...], rounds}; with --watch, "
                                   "JSON lines: one object per device as it appears")
    discover_cmd.set_defaults(func=cmd_discover)

    ias = commands.add_parser("ias", help="ask a device's IAS directory for an attribute")
    port_options(ias)
    ias.add_argument("address", metavar="ADDRESS", help="device address (0x1234abcd) or nickname")
    ias.add_argument("class_name", metavar="CLASS", help='e.g. "Device", "OBEX", "IrDA:IrCOMM"')
    ias.add_argument("attribute", metavar="ATTRIBUTE", help='e.g. "DeviceName", "IrDA:TinyTP:LsapSel"')
    ias.add_argument("--timeout", type=float, default=10.0)
    ias.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    ias.set_defaults(func=cmd_ias)

    ping = commands.add_parser("ping", help="TEST frames to a device: round-trip times and loss")
    port_options(ping)
    ping.add_argument("address", metavar="ADDRESS", help="device address (0x1234abcd) or nickname")
    ping.add_argument("--count", type=positive_int, default=4)
    ping.add_argument("--json", action="store_true",
                      help="print one JSON object at the end: the summary and each reply")
    ping.add_argument("--size", type=int, default=32, help="bytes per TEST frame (12-2000)")
    ping.add_argument("--interval", type=float, default=1.0, help="seconds between frames")
    ping.add_argument("--wait", type=float, default=2.0,
                      help="seconds to wait for each answer besides the frame's time on the line both ways, "
                      "which grows with --size (default 2)")
    ping.set_defaults(func=cmd_ping)


def _device_dict(device) -> dict:
    return device.as_dict()


def _discover_round(runtime, slots: int, timeout: float):
    from irlap.runtime import PortFailed
    from irlap.station import Discovered

    runtime.call(lambda st, now: st.discover(slots, now))
    event = runtime.wait_for((Discovered,), timeout)
    if isinstance(event, PortFailed):
        raise CliError(event.message)
    return event


class _LoggedDevice:
    """A device of a daemon's discovery log (IRLMP_ENUMDEVICES), printed like a discovered one."""

    def __init__(self, device) -> None:
        self.address = device.address
        self.device = device

    def as_dict(self) -> dict:
        from irlap.frames import hint_words

        raw = bytes((self.device.hints1, self.device.hints2)) if self.device.hints1 & 0x80 else \
            bytes((self.device.hints1,))
        return {"address": self.address, "address_hex": f"0x{self.address:08x}", "nickname": self.device.name,
                "hints": hint_words(raw), "hint_bytes": raw.hex(), "charset": self.device.charset}


def _rounds(args: argparse.Namespace, one_round, nothing: str) -> None:
    """Discovery rounds until --timeout (or for ever with --watch), then the devices that answered.

    ``one_round()`` runs a round and returns its devices (anything with ``address`` and ``as_dict()``); ``nothing``
    ends the message printed when no device answered."""
    import time

    seen: dict[int, object] = {}
    answered: set[int] = set()
    deadline = time.monotonic() + args.timeout
    rounds = 0
    try:
        while True:
            found = one_round()
            rounds += 1
            for device in found:
                answered.add(device.address)
                if args.hint and not set(args.hint) <= set(_device_dict(device)["hints"]):
                    continue
                new = device.address not in seen
                seen[device.address] = device
                if args.watch and new:
                    _print_devices([device], args.json)
            if not args.watch and time.monotonic() >= deadline:
                break
            if args.watch:
                time.sleep(max(0.0, 3.0 - args.slots * 0.09))
    except KeyboardInterrupt:
        return
    if args.watch:
        return
    devices = sorted(seen.values(), key=lambda d: d.address)
    if args.json:
        print(json.dumps({"devices": [_device_dict(d) for d in devices], "rounds": rounds}))
    elif devices:
        _print_devices(devices, False)
    elif answered:
        print(f"{len(answered)} device(s) answered, none announcing {', '.join(args.hint)}", file=sys.stderr)
    else:
        print(f"no device answered {rounds} discovery round(s) {nothing}", file=sys.stderr)


def cmd_discover(args: argparse.Namespace) -> int:
    from irsock.cli.common import daemon_in_use

    served = daemon_in_use(args)
    if served:  # the daemon holds the port: its rounds (IRLMP_ENUMDEVICES), its discovery log
        import irsock

        with irsock.attach(f"unix:{served}") as iface, iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
            _rounds(args, lambda: [_LoggedDevice(d) for d in sock.getsockopt(irsock.SOL_IRLMP,
                                                                             irsock.IRLMP_ENUMDEVICES)],
                    f"of the irsock daemon at {served}")
        return EXIT_OK
    runtime = start_runtime(args)
    try:
        def one_round() -> list:
            event = _discover_round(runtime, args.slots, timeout=max(2.0, args.slots * 0.2 + 1.5))
            return list(event.devices) if event is not None else []

        _rounds(args, one_round, f"on {runtime.url}: is a device in range and awake? is the dongle type right "
                "(--dongle, see irda dongles)?")
    finally:
        stop_runtime(runtime)
    return EXIT_OK


def _print_devices(devices, as_json: bool) -> None:
    for device in devices:
        if as_json:
            print(json.dumps(_device_dict(device)))
            continue
        data = _device_dict(device)
        charset = {0: "ASCII", 0xFF: "Unicode"}.get(data["charset"], f"ISO-8859-{data['charset']}")
        print(f"{data['address_hex']}  {data['nickname']:<22} {', '.join(data['hints']) or '-'} ({charset})",
              flush=True)


def _resolve_device(runtime, text: str) -> int:
    """A device address from hex/decimal, or a nickname found by discovery (up to five rounds)."""
    from irsock.net.values import parse_address

    address = parse_address(text)
    if address is not None:
        return address
    for _round in range(5):  # answers that collide in a slot are lost for that round
        event = _discover_round(runtime, 6, timeout=3.0)
        matches = [d for d in (event.devices if event else ()) if d.nickname == text]
        if matches:
            return matches[0].address
    raise CliError(f"{text!r} is neither a device address (0x1234abcd) nor a nickname in range (5 discovery rounds)")


def _never_discovered(runtime, address: int, error: str) -> bool:
    """The link to ``address`` could not be made and discovery has not seen it (one round asks again)."""
    from irlap.errors import IrLAPError
    from irlap.station import DisconnectReason

    if error != DisconnectReason.CONNECT_FAILED.value and runtime.call(
            lambda stack, now: stack.lmp.station.connected and stack.lmp.station.peer == address):
        return False  # the link came up: the device is there, the failure is another

    def logged() -> bool:
        return runtime.call(lambda stack, now: any(d.address == address for d in stack.lmp.discovery_log(now)))

    if logged():
        return False
    try:
        event = _discover_round(runtime, 6, timeout=3.0)
    except IrLAPError:  # still trying to connect: the log is what we know
        return True
    return not logged() and not any(d.address == address for d in (event.devices if event else ()))


def cmd_ias(args: argparse.Namespace) -> int:
    from irsock.lmp import pdu as P
    from irsock.lmp.stack import IasResult, LmpError

    runtime = start_runtime(args)
    try:
        address = _resolve_device(runtime, args.address)
        try:
            runtime.call(lambda stack, now: stack.ias_query(address, args.class_name, args.attribute, now,
                                                             args.timeout))
        except LmpError as exc:
            raise CliError(str(exc)) from None
        result = runtime.wait_for((IasResult,), args.timeout + 5)
        if not isinstance(result, IasResult):
            raise CliError(getattr(result, "message", None) or f"no IAS answer from 0x{address:08x}")
        if result.status is None and _never_discovered(runtime, address, result.error):
            raise CliError(f"0x{address:08x} was not seen by discovery: is it in range? "
                           "irda discover lists the devices")
        kinds = {P.VALUE_INTEGER: "integer", P.VALUE_OCTETS: "octets", P.VALUE_STRING: "string",
                 P.VALUE_MISSING: "missing"}
        values = []
        for value in result.values:
            item = {"type": kinds[value.kind]}
            if value.kind == P.VALUE_INTEGER:
                item["value"] = value.integer
            elif value.kind == P.VALUE_OCTETS:
                item["value"] = value.octets.hex()
            elif value.kind == P.VALUE_STRING:
                item.update(value=value.text, charset=value.charset)
            values.append(item)
        if args.json:
            print(json.dumps({"address": address, "class": args.class_name, "attribute": args.attribute,
                              "status": result.status, "status_text": result.describe(), "values": values}))
        elif result.ok:
            for value in result.values:
                print(value.describe())
        else:
            print(f"0x{address:08x} {args.class_name} {args.attribute}: {result.describe()}")
        return EXIT_OK if result.ok else EXIT_ERROR
    finally:
        stop_runtime(runtime)


def _air_time(size: int, baud: int) -> float:
    """Seconds a TEST frame with ``size`` bytes of data may take on the line: every byte escaped, plus the
    header, FCS, flags and XBOFs, 10 bits a byte (2000 bytes at 9600: up to 4.2 s each way)."""
    return (2 * size + 40) * 10 / baud


def cmd_ping(args: argparse.Namespace) -> int:
    import struct
    import time

    from irlap.runtime import PortFailed
    from irlap.station import TestResult

    if args.size < 12 or args.size > 2000:
        raise CliError("--size must be between 12 and 2000 bytes")
    runtime = start_runtime(args)
    try:
        address = _resolve_device(runtime, args.address)
        wait = args.wait + 2 * _air_time(args.size, runtime.call(lambda stack, _now: stack.lmp.station.baud))
        received, rtts, replies = 0, [], []

        def say(text: str) -> None:
            if not args.json:
                print(text, flush=True)

        for sequence in range(args.count):
            payload = struct.pack(">Id", sequence, time.monotonic()).ljust(args.size, b"\xa5")
            sent_at = time.monotonic()
            runtime.call(lambda stack, now, p=payload: stack.lmp.station.send_test(address, p, now))
            reply = None
            deadline = sent_at + wait
            while time.monotonic() < deadline:
                event = runtime.wait_for((TestResult,), deadline - time.monotonic())
                if isinstance(event, PortFailed):
                    raise CliError(event.message)
                if event is not None and event.data[:4] == payload[:4]:
                    reply = event
                    break
            if reply is None:
                replies.append({"seq": sequence, "answered": False})
                say(f"no answer from 0x{address:08x}: seq={sequence}")
            else:
                # from the moment the TEST left (it waits while the medium is busy) to the answer
                left_at = runtime.call(lambda stack, _now: stack.lmp.station.test_sent_at)
                rtt = (reply.time - left_at) * 1000
                rtts.append(rtt)
                received += 1
                replies.append({"seq": sequence, "answered": True, "bytes": len(reply.data),
                                "rtt_ms": round(rtt, 3), "intact": reply.data == payload})
                intact = "" if reply.data == payload else " (CORRUPTED echo)"
                say(f"{len(reply.data)} bytes from 0x{address:08x}: seq={sequence} time={rtt:.1f} ms{intact}")
            if sequence + 1 < args.count:
                time.sleep(max(0.0, args.interval - (time.monotonic() - sent_at)))
        loss = 100 * (args.count - received) / args.count if args.count else 0
        summary = f"{args.count} sent, {received} received, {loss:.0f}% loss"
        if rtts:
            summary += f"; rtt min/avg/max {min(rtts):.1f}/{sum(rtts) / len(rtts):.1f}/{max(rtts):.1f} ms"
        if args.json:
            print(json.dumps({"address": address, "address_hex": f"0x{address:08x}", "size": args.size,
                              "sent": args.count, "received": received, "loss_percent": round(loss, 1),
                              "rtt_ms": {"min": round(min(rtts), 3), "avg": round(sum(rtts) / len(rtts), 3),
                                         "max": round(max(rtts), 3)} if rtts else None,
                              "replies": replies}))
        else:
            print(summary)
        return EXIT_OK if received else EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        stop_runtime(runtime)
