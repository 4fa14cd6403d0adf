"""The ``irda`` command line.

Every command turns the project's own errors (and missing files) into a one-line message on stderr
and a non-zero exit status; a traceback means a bug in irsock, never bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from irlap.errors import IrLAPError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure the user can act on: printed as ``irda: <message>``, exit status 1."""


def _read_input(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise CliError(f"{path}: permission denied") from None


# --- irda trace -----------------------------------------------------------------------------------
def cmd_trace_convert(args: argparse.Namespace) -> int:
    from irlap.trace import convert_raw

    raw = _read_input(args.raw)
    out = Path(args.output)
    try:
        with out.open("wb") as stream:
            report = convert_raw(raw, stream, outgoing=args.direction == "out", baud=args.baud)
    except OSError as exc:
        raise CliError(f"{out}: cannot write: {exc.strerror or exc}") from None
    if args.json:
        print(json.dumps({"output": str(out), **report.as_dict()}))
    else:
        stats = report.stats
        print(
            f"{report.frames} frames written to {out}: {stats.good} good, {stats.bad_fcs} bad FCS, "
            f"{stats.aborted} aborted, {stats.oversize} oversize, {stats.runts} runts, "
            f"{stats.garbage_bytes} garbage bytes"
        )
        if stats.good == 0:
            print(
                "no frame with a good FCS was found: is this a raw SIR capture (BOF 0xC0 ... EOF 0xC1)?",
                file=sys.stderr,
            )
    return EXIT_OK


def cmd_trace_show(args: argparse.Namespace) -> int:
    from irlap.pcap import read_pcap_bytes
    from irlap.trace import decode_record

    data = _read_input(args.file)
    start: float | None = None
    for record in read_pcap_bytes(data, name=args.file):
        if start is None:
            start = record.time
        decoded = decode_record(record, start=start)
        if args.json:
            print(json.dumps(decoded.as_dict()))
        else:
            print(decoded.line())
    return EXIT_OK


# --- irda sim -------------------------------------------------------------------------------------
def _outage(text: str) -> tuple[float, float]:
    try:
        start, seconds = (float(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"outage {text!r} is not START:SECONDS (e.g. 5:3.5)") from None
    if start < 0 or seconds < 0:
        raise argparse.ArgumentTypeError(f"outage {text!r}: start and length cannot be negative")
    return start, seconds


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1)")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} cannot be negative")
    return value


def cmd_sim_discover(args: argparse.Namespace) -> int:
    from irlap.sim import Faults, run_discovery

    report = run_discovery(args.devices, slots=args.slots, seed=args.seed, max_rounds=args.max_rounds,
                           faults=Faults(ber=args.ber))
    data = report.as_dict()
    if args.json:
        print(json.dumps(data))
        return EXIT_OK
    for device in report.devices:
        hints = ", ".join(device["hints"]) or "none"
        print(f"{device['address_hex']}  {device['nickname']:<22} {hints} (hints {device['hint_bytes']})")
    per_round = sum(report.round_seconds) / len(report.round_seconds) if report.round_seconds else 0.0
    print(
        f"{len(report.devices)} of {args.devices} devices found in {report.rounds} round(s) of {args.slots} slots, "
        f"{report.sim_seconds:.3f} s simulated ({per_round:.3f} s per round, {report.collisions} collisions)"
    )
    if len(report.devices) < args.devices:
        print(f"not every device answered: with {args.devices} devices try --slots 16", file=sys.stderr)
    return EXIT_OK


def cmd_sim_link(args: argparse.Namespace) -> int:
    from irlap.qos import BAUD_RATES, DATA_SIZES
    from irlap.sim import Faults, run_link

    if args.baud not in BAUD_RATES or args.baud > 115200:
        raise CliError(f"--baud {args.baud}: SIR speeds are 2400, 9600, 19200, 38400, 57600 and 115200")
    if args.data_size not in DATA_SIZES:
        raise CliError(f"--data-size {args.data_size}: IrLAP data sizes are {', '.join(map(str, DATA_SIZES))}")
    if not 1 <= args.window <= 7:
        raise CliError(f"--window {args.window}: the IrLAP window is 1 to 7 frames")
    from irlap.qos import MIN_TURNAROUND_US

    if args.min_turn not in MIN_TURNAROUND_US:
        raise CliError(f"--min-turn {args.min_turn}: valid values are {', '.join(map(str, MIN_TURNAROUND_US))} us")
    faults = Faults(ber=args.ber, drop=args.drop, outages=list(args.outage), latency=args.latency / 1000)
    report = run_link(args.bytes, baud=args.baud, data_size=args.data_size, window=args.window,
                      min_turn_us=args.min_turn, faults=faults, seed=args.seed)
    data = report.as_dict()
    complete = report.intact and not report.link_lost
    if args.json:
        print(json.dumps(data))
        return EXIT_OK if complete else EXIT_ERROR
    print(
        f"{report.delivered_bytes} of {args.bytes} bytes delivered, {'intact' if report.intact else 'NOT intact'}, "
        f"in {report.sim_seconds:.3f} s simulated\n"
        f"link {report.baud} bit/s, {report.window} x {report.data_size} B; "
        + (f"goodput {report.goodput_Bps:.0f} B/s of {report.line_rate_Bps:.0f} B/s line rate: efficiency "
           f"{report.efficiency:.3f}\n" if complete else "no goodput or efficiency: the transfer did not complete\n")
        + f"{report.retransmissions} frames retransmitted, {report.resets} resets"
        + (", LINK LOST" if report.link_lost else "")
    )
    if not complete:
        print("irda: the transfer failed: " + ("the link was lost" if report.link_lost else "the data arrived damaged")
              + f" after {report.delivered_bytes} of {args.bytes} bytes", file=sys.stderr)
    return EXIT_OK if complete else EXIT_ERROR


# --- commands on a port ------------------------------------------------------------------------------
BUILTIN_DEVICES = 3


# one medium per process (irsim media live in the process): a fixed name, so that the virtual devices'
# addresses, derived from their nickname and the medium's name, are the same in every run
BUILTIN_URL = "irsim://builtin"


def _is_builtin(url: str) -> bool:
    return url.split("?", 1)[0] == BUILTIN_URL


def _port_settings(args: argparse.Namespace) -> tuple[str, str]:
    """The port URL and dongle: --port/--dongle, else IRDA_PORT/IRDA_DONGLE, else the built-in emulator."""
    import os

    url = args.port or os.environ.get("IRDA_PORT")
    dongle = args.dongle or os.environ.get("IRDA_DONGLE") or "plain"
    if not url:
        url = f"{BUILTIN_URL}?devices={BUILTIN_DEVICES}"
        print(
            f"irda: no --port and no IRDA_PORT: using the built-in emulator with {BUILTIN_DEVICES} virtual devices "
            f"({url}); give --port /dev/ttyUSB0 (and --dongle) for a real dongle",
            file=sys.stderr,
        )
        given = args.dongle and "--dongle" or os.environ.get("IRDA_DONGLE") and "IRDA_DONGLE"
        if given:
            print(f"irda: {given} {dongle} is ignored: the built-in emulator has no dongle (give --port with it)",
                  file=sys.stderr)
        dongle = "plain"
    return url, dongle


def _start_runtime(args: argparse.Namespace, **kwargs):
    from irlap.runtime import LinkRuntime
    from irsock.stack import full_stack

    url, dongle = _port_settings(args)
    kwargs.setdefault("stack", full_stack)
    runtime = LinkRuntime(url, dongle=dongle, nickname=getattr(args, "nickname", None) or "irsock", **kwargs)
    runtime.start()
    return runtime


def _stop_runtime(runtime) -> None:
    runtime.close()
    _stop_builtin_devices(runtime.url)


def _stop_builtin_devices(url: str) -> None:
    """The virtual devices the built-in emulator placed on the medium of ``url`` go with it."""
    from irlap.emulator.virtual import stop_devices

    if _is_builtin(url):
        from irlap.emulator.medium import drop_medium

        name = url.split("://", 1)[1].split("?", 1)[0]
        stop_devices(name)
        drop_medium(name)  # the next run in this process makes it anew, with its devices


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


def cmd_discover(args: argparse.Namespace) -> int:
    import time

    runtime = _start_runtime(args)
    try:
        seen: dict[int, object] = {}
        answered: set[int] = set()
        deadline = time.monotonic() + args.timeout
        rounds = 0
        while True:
            event = _discover_round(runtime, args.slots, timeout=max(2.0, args.slots * 0.2 + 1.5))
            rounds += 1
            if event is not None:
                for device in event.devices:
                    answered.add(device.address)
                    if args.hint and not set(args.hint) <= set(device.info.hint_words if device.info else []):
                        continue
                    new = device.address not in seen
                    seen[device.address] = device
                    if args.watch and new:
                        _print_devices([device], args.json)
            if not args.watch and time.monotonic() >= deadline:
                break
            if args.watch:
                time.sleep(max(0.0, 3.0 - args.slots * 0.09))
        if not args.watch:
            devices = sorted(seen.values(), key=lambda d: d.address)
            if args.json:
                print(json.dumps({"devices": [_device_dict(d) for d in devices], "rounds": rounds}))
            elif devices:
                _print_devices(devices, False)
            elif answered:
                print(f"{len(answered)} device(s) answered, none announcing {', '.join(args.hint)}", file=sys.stderr)
            else:
                print(f"no device answered {rounds} discovery round(s) on {runtime.url}: is a device in range and "
                      "awake? is the dongle type right (--dongle, see irda dongles)?", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        _stop_runtime(runtime)
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
            lambda stack, now: runtime.station.connected and runtime.station.peer == address):
        return False  # the link came up: the device is there, the failure is another

    def logged() -> bool:
        return runtime.call(lambda stack, now: any(d.address == address for d in runtime.station.discovery_log(now)))

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

    runtime = _start_runtime(args)
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
        _stop_runtime(runtime)


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
    runtime = _start_runtime(args)
    try:
        address = _resolve_device(runtime, args.address)
        wait = args.wait + 2 * _air_time(args.size, runtime.call(lambda _stack, _now: runtime.station.baud))
        received, rtts, replies = 0, [], []

        def say(text: str) -> None:
            if not args.json:
                print(text, flush=True)

        for sequence in range(args.count):
            payload = struct.pack(">Id", sequence, time.monotonic()).ljust(args.size, b"\xa5")
            sent_at = time.monotonic()
            runtime.call(lambda _stack, now, p=payload: runtime.station.send_test(address, p, now))
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
                left_at = runtime.call(lambda _stack, now: runtime.station.test_sent_at)
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
        _stop_runtime(runtime)


def cmd_trace_capture(args: argparse.Namespace) -> int:
    import time

    from irlap.pcap import PcapWriter
    from irlap.runtime import PortFailed

    out = Path(args.output)
    try:
        writer = PcapWriter(out)
    except OSError as exc:
        raise CliError(f"{out}: cannot write: {exc.strerror or exc}") from None
    runtime = None
    try:
        runtime = _start_runtime(args, trace=writer)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        print(f"capturing on {runtime.url} to {out}; Ctrl-C stops", file=sys.stderr)
        next_discovery = time.monotonic()
        while deadline is None or time.monotonic() < deadline:
            if args.discover and time.monotonic() >= next_discovery:
                runtime.call(lambda st, now: st.discover(6, now) if runtime.station.state.value == "NDM" else None)
                next_discovery = time.monotonic() + 3.0
            event = runtime.next_event(0.2)
            if isinstance(event, PortFailed):
                raise CliError(event.message)
    except KeyboardInterrupt:
        pass
    finally:
        if runtime is not None:
            _stop_runtime(runtime)
        writer.close()
    if args.json:
        print(json.dumps({"output": str(out), "records": writer.records,
                          "port": runtime.url if runtime is not None else None}))
    else:
        print(f"{writer.records} records written to {out}", file=sys.stderr)
    return EXIT_OK


# --- irda send / receive / demo ---------------------------------------------------------------------
def _attach(args: argparse.Namespace, **kwargs):
    """An irsock interface on --port/--dongle (else IRDA_PORT, else the built-in emulator)."""
    import irsock

    url, dongle = _port_settings(args)
    return irsock.attach(url, dongle=dongle, nickname=getattr(args, "nickname", None) or "irsock", **kwargs)


def _detach(iface) -> None:
    iface.close()
    _stop_builtin_devices(iface.port)


@contextlib.contextmanager
def _transfer_errors():
    """Turn transfer, OBEX and socket failures into one-line CLI errors."""
    from irsock.apps.transfer import TransferError
    from irsock.obex import ObexError

    try:
        yield
    except (TransferError, ObexError) as exc:
        raise CliError(str(exc)) from None
    except TimeoutError as exc:
        reason = exc.strerror or str(exc) or "no answer"  # once: str() of an OSError repeats the errno
        raise CliError(reason if reason.startswith("timed out") else f"timed out: {reason}") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CliError(f"{exc.filename}: {reason}" if exc.filename else reason) from None


BUILTIN_RECEIVER_HINT = (
    "each irda process has its own built-in emulator, so a receiver in another terminal is not seen: try "
    "irda demo, or irda emulate --pty 2 and give one port to irda receive --port, the other to irda send --port")


def _receiver_hint(iface) -> str:
    """What to check when no OBEX device answered: on the built-in emulator, how to try a push instead."""
    from irsock.apps.transfer import RECEIVER_HINT

    return BUILTIN_RECEIVER_HINT if _is_builtin(iface.port) else RECEIVER_HINT


def cmd_send(args: argparse.Namespace) -> int:
    import irsock
    from irsock.apps import transfer

    quiet = args.json
    out = sys.stderr if quiet else sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    with _transfer_errors():
        files = transfer.check_files(args.files)
        if args.tcp:
            with transfer.connect_tcp(args.tcp, args.timeout) as sock:
                say(f"connected to {args.tcp} over TCP")
                summary = transfer.push_files(sock, files, rate=None, out=out, digest=not args.no_digest)
        else:
            iface = _attach(args)
            try:
                with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
                    sock.settimeout(args.timeout)
                    device = transfer.choose_device(sock, args.to, log=say, hint=_receiver_hint(iface))
                    say(f"pushing to {transfer.describe_device(device)}")
                    transfer.connect_obex(sock, device.address, log=say)
                    summary = transfer.push_files(sock, files, rate=transfer.line_rate(iface), out=out,
                                                  digest=not args.no_digest)
            finally:
                _detach(iface)
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        say(summary.describe())
    return EXIT_OK


def _byte_count(text: str) -> int:
    units = {"k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}
    number = text.rstrip("bB").rstrip()
    for suffix in sorted(units, key=len, reverse=True):
        if number.lower().endswith(suffix):
            number, factor = number[: -len(suffix)], units[suffix]
            break
    else:
        factor = 1
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 500000, 200k, 10M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the size must be positive")
    return value


def cmd_receive(args: argparse.Namespace) -> int:
    import signal

    from irsock.apps import transfer

    root = Path(args.dir)
    if not root.is_dir():
        raise CliError(f"{root}: no such directory (create it, or give --dir)")
    if not os.access(root, os.W_OK):
        raise CliError(f"{root}: not writable")
    def terminate(*_args: object) -> None:
        raise KeyboardInterrupt  # like Ctrl-C: a session in progress ends at once, its partial file removed

    previous = signal.signal(signal.SIGTERM, terminate)
    count = 0

    def report(received) -> None:
        nonlocal count
        count += 1
        if args.json:
            print(json.dumps({"name": received.name, "size": received.size, "peer": received.peer,
                              "verified": received.verified, "path": str(received.path),
                              "relative": received.relative}), flush=True)
        else:
            print(transfer.describe_received(received), flush=True)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    from irsock.obex.server import sharing_words

    sharing = "sharing: " + sharing_words(args.browse, args.allow_delete)
    iface = None
    try:
        with _transfer_errors():
            if args.tcp_listen:
                listener = transfer.tcp_listener(args.tcp_listen)
                host, port = listener.getsockname()[:2]
                log(f"OBEX inbox {root} on TCP {host}:{port}; {sharing}; Ctrl-C stops")
            else:
                iface = _attach(args, hints=transfer.OBEX_HINTS)
                listener = transfer.obex_listener(iface)
                log(f"OBEX inbox {root} on 0x{iface.address:08x} {iface.nickname!r} ({iface.port}); {sharing}; "
                    "Ctrl-C stops")
            listener.settimeout(0.5)
            with listener:
                transfer.serve(listener, root, once=args.once, max_size=args.max_size, report=report, log=log,
                               browse=args.browse, allow_delete=args.allow_delete, idle_timeout=args.idle_timeout)
    except KeyboardInterrupt as stopped:
        discarded = getattr(stopped, "discarded", [])
        log(f"stopped (an unfinished transfer is discarded: {'; '.join(discarded)})" if discarded else "stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if iface is not None:
            _detach(iface)
    log(f"{count} file(s) received")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from irsock.apps.demo import run_demo

    with _transfer_errors():
        report = run_demo(size=args.size, pcap=Path(args.pcap) if args.pcap else None,
                          out=sys.stderr if args.json else None)
    if args.json:
        print(json.dumps({**report.summary.as_dict(), "received_name": report.received_name,
                          "intact": report.intact, "pcap": str(report.pcap) if report.pcap else None}))
    return EXIT_OK if report.intact else EXIT_ERROR


def cmd_bench(args: argparse.Namespace) -> int:
    from irsock.apps.bench import bench_link, emulator_ports

    if bool(args.port) != bool(args.peer_port):
        raise CliError("give both --port (A, the sender) and --peer-port (B), or neither for the emulator")
    ports = (args.port, args.peer_port) if args.port else emulator_ports()
    if not args.port and not args.json:
        print(f"two stacks on the emulated medium {ports[0]} (paced like a real line)", file=sys.stderr)
    with _transfer_errors():
        report = bench_link(*ports, dongle_a=args.dongle, dongle_b=args.peer_dongle or args.dongle,
                            nbytes=args.bytes, max_baud=args.max_baud, pings=args.pings)
    if args.json:
        print(json.dumps(report))
        return EXIT_OK if report["intact"] else EXIT_ERROR
    qos = report["qos_a"] or {}
    rtts = report["ping_rtt_ms"]
    print(f"discovery      {report['discovery_s']:.2f} s until B answered")
    print(f"TEST ping      {len(rtts)}/{args.pings} answered" + (
        f", rtt min/avg {min(rtts):.1f}/{sum(rtts) / len(rtts):.1f} ms at 9600, turnaround "
        f"{report['turnaround_ms']:.1f} ms" if rtts else ""))
    print(f"link           {qos.get('baud')} bit/s, data size {qos.get('tx_data_size')}, window "
          f"{qos.get('tx_window')}, max turnaround {qos.get('tx_max_turnaround_ms')} ms")
    efficiency = report["efficiency"]
    print(f"OBEX push      {report['bytes']} bytes in {report['seconds']:.2f} s: {report['goodput_Bps']:.0f} bytes/s"
          + (f", {efficiency:.1%} of the line rate" if efficiency is not None else "")
          + (", intact and verified" if report["intact"] and report["verified"] else ", DAMAGED"))

    def percent(value):
        return "n/a" if value is None else f"{value:.1%}"

    print(f"CPU            sender stack {percent(report['cpu_sender_stack'])} of a core, receiver stack "
          f"{percent(report['cpu_receiver_stack'])}, whole process {percent(report['cpu_process_all'])}")
    return EXIT_OK if report["intact"] else EXIT_ERROR


# --- irda emulate -----------------------------------------------------------------------------------
def cmd_emulate(args: argparse.Namespace) -> int:
    import os
    import signal
    import threading

    from irlap.emulator.medium import drop_medium
    from irlap.emulator.pty_bridge import PtyBridge
    from irlap.emulator.virtual import spawn_devices, stop_devices

    if args.pty < 1:
        raise CliError("--pty must be at least 1")
    medium = args.medium or f"emulate-{os.getpid()}"
    bridges = [PtyBridge(medium) for _ in range(args.pty)]
    devices = spawn_devices(medium, args.devices, prefix=args.nickname, seed=args.seed)
    info = {
        "medium": medium,
        "ports": [bridge.path for bridge in bridges],
        "devices": [{"address": d.station.address, "nickname": d.station.info.nickname} for d in devices],
    }
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        for path in info["ports"]:
            print(f"port {path}", flush=True)
        for device in info["devices"]:
            print(f"virtual device 0x{device['address']:08x} {device['nickname']}", flush=True)
        print("use a port with: irda discover --port PATH; Ctrl-C stops", file=sys.stderr, flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        stop_devices(medium)
        for bridge in bridges:
            bridge.close()
        drop_medium(medium)
    return EXIT_OK


# --- irda dongles ---------------------------------------------------------------------------------
def cmd_dongles(args: argparse.Namespace) -> int:
    from irlap.dongles import DongleError, dongle_names, get_dongle

    rows = []
    for name in dongle_names():
        try:
            cls = get_dongle(name)
        except DongleError as exc:
            rows.append({"name": name, "error": str(exc)})
            continue
        rows.append({"name": name, "description": cls.description, "speeds": list(cls.speeds),
                     "min_turnaround_us": cls.min_turnaround_us, "echoes": cls.echoes})
    if args.json:
        print(json.dumps({"dongles": rows}))
        return EXIT_OK
    for row in rows:
        if "error" in row:
            print(f"{row['name']:<11} (cannot load: {row['error']})")
            continue
        speeds = ", ".join(str(s) for s in row["speeds"])
        print(f"{row['name']:<11} {row['description']:<34} {speeds}; min turnaround {row['min_turnaround_us']} us")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from irsock import __version__

    parser = argparse.ArgumentParser(prog="irda", description="A userspace IrDA stack: tools and tests.",
                                     usage="irda [-h] [--version] COMMAND ...",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"irsock {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, help=argparse.SUPPRESS,
                                     prog="irda")

    trace = commands.add_parser("trace", help="convert and read IrDA captures")
    trace_cmds = trace.add_subparsers(dest="trace_command", metavar="ACTION", required=True)

    convert = trace_cmds.add_parser(
        "convert",
        help="turn raw serial-line bytes into a Wireshark capture",
        description="Read RAW, a file of bytes as seen on a SIR serial line (XBOFs, wrapped frames, garbage), "
        "and write every frame with a good FCS to a pcap file (LINKTYPE_LINUX_IRDA) that Wireshark and "
        "tshark open. Timestamps are the position of each frame's end at --baud.",
    )
    convert.add_argument("raw", metavar="RAW", help="file of raw serial bytes")
    convert.add_argument("-o", "--output", required=True, metavar="OUT.pcap", help="pcap file to write")
    convert.add_argument("--direction", choices=("in", "out"), default="in", help="direction of every frame")
    convert.add_argument("--baud", type=int, default=9600, help="line speed for timestamps (default 9600)")
    convert.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    convert.set_defaults(func=cmd_trace_convert)

    show = trace_cmds.add_parser(
        "show",
        help="decode a capture, one line per frame",
        description="Decode an IrDA pcap file (LINKTYPE_LINUX_IRDA): one line per frame with time, direction, "
        "frame kind, addresses, sequence numbers, discovery and QoS details.",
    )
    show.add_argument("file", metavar="FILE.pcap")
    show.add_argument("--json", action="store_true", help="print JSON lines: one object per frame")
    show.set_defaults(func=cmd_trace_show)

    emulate = commands.add_parser(
        "emulate", help="PTY serial ports on an emulated medium with virtual devices",
        description="Expose N pseudo-terminal serial ports (plain dongles that follow the baud rate a program "
        "sets) on one emulated infrared medium with M virtual devices; print the device paths and run until "
        "interrupted. Any program that opens a serial port can use them.",
    )
    emulate.add_argument("--pty", type=int, default=1, metavar="N", help="ports to create (default 1)")
    emulate.add_argument("--devices", type=_positive_int, default=2, metavar="M", help="virtual devices (default 2)")
    emulate.add_argument("--nickname", default="virtual", help="name prefix of the virtual devices")
    emulate.add_argument("--medium", help="medium name (default: one per process)")
    emulate.add_argument("--seed", type=int, default=0)
    emulate.add_argument("--json", action="store_true", help="print ports and devices as one JSON object at the start")
    emulate.set_defaults(func=cmd_emulate)

    dongles = commands.add_parser("dongles", help="list the dongle drivers and their speeds")
    dongles.add_argument("--json", action="store_true", help="print one JSON object: {dongles: [...]}")
    dongles.set_defaults(func=cmd_dongles)

    def port_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--port", help="serial port or pyserial URL (default: $IRDA_PORT, else the emulator)")
        command.add_argument("--dongle", help="dongle type (default: $IRDA_DONGLE, else plain; see irda dongles)")
        command.add_argument("--nickname", default="irsock", help="our name in discovery")

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

    send = commands.add_parser(
        "send", help="push files to a device with OBEX (infrared or TCP)",
        description="Push FILEs with OBEX: over infrared to the device with the OBEX hint in range (or the one "
        "named by --to), found by discovery and IAS; or over TCP with --tcp. Shows progress and a summary "
        "(bytes, seconds, bytes/s, efficiency against the line rate). An irsock receiver verifies each file "
        "with the SHA-256 the sender adds to the OBEX headers.")
    port_options(send)
    send.add_argument("files", nargs="+", metavar="FILE")
    send.add_argument("--to", metavar="ADDRESS|NICKNAME", help="the device to push to (default: the OBEX one)")
    send.add_argument("--tcp", metavar="HOST[:PORT]", help="push over TCP instead (default port 650)")
    send.add_argument("--timeout", type=float, default=30.0, help="seconds any one step may take (default 30)")
    send.add_argument("--no-digest", action="store_true", help="do not send the SHA-256 integrity header")
    send.add_argument("--json", action="store_true",
                      help="print the summary as one JSON object at the end (progress goes to stderr)")
    send.set_defaults(func=cmd_send)

    receive = commands.add_parser(
        "receive", help="an OBEX inbox: store files pushed over infrared or TCP",
        description="Run an OBEX inbox that stores files pushed into --dir. Nothing in --dir is listed, sent or "
        "deleted unless --browse / --allow-delete say so. Over infrared it registers the IAS classes OBEX and "
        "OBEX:IrXfer and announces the OBEX hint; with --tcp-listen it listens on TCP instead (127.0.0.1 unless "
        "a host is given, default port 650). Files are written under a temporary name and renamed when "
        "complete; names are reduced to safe base names and never overwrite.")
    port_options(receive)
    receive.add_argument("--dir", default=".", help="where to store files (default: the current directory)")
    receive.add_argument("--tcp-listen", metavar="[HOST:]PORT",
                         help="listen on TCP instead of infrared (host 127.0.0.1 unless given, e.g. 0.0.0.0:650)")
    receive.add_argument("--once", action="store_true", help="stop after the first session")
    receive.add_argument("--max-size", type=_byte_count, metavar="BYTES", help="refuse larger files (e.g. 10M)")
    receive.add_argument("--browse", action="store_true",
                         help="let peers list folders and fetch files from --dir (obexftp -l, -g)")
    receive.add_argument("--allow-delete", action="store_true", help="let peers delete files and empty folders")
    receive.add_argument("--idle-timeout", type=float, default=60.0, metavar="SECONDS",
                         help="close a session whose peer sends nothing for this long (default 60)")
    receive.add_argument("--json", action="store_true", help="print JSON lines: one object per received file")
    receive.set_defaults(func=cmd_receive)

    bench = commands.add_parser(
        "bench", help="measure one link: discovery, turnaround, goodput, CPU",
        description="Measure one link in real time: A discovers B, pings it with TEST frames (turnaround), "
        "connects and pushes --bytes with OBEX (goodput, efficiency against the line rate, CPU). Two dongles "
        "facing each other: --port A --peer-port B; without ports, two stacks on the emulator.")
    bench.add_argument("--port", help="A's serial port (the sender)")
    bench.add_argument("--peer-port", help="B's serial port (the receiver)")
    bench.add_argument("--dongle", default="plain", help="A's dongle type (default plain)")
    bench.add_argument("--peer-dongle", help="B's dongle type (default: as A)")
    bench.add_argument("--bytes", type=_byte_count, default=100_000, help="bytes to push (default 100k)")
    bench.add_argument("--max-baud", type=int, default=115200, choices=(9600, 19200, 38400, 57600, 115200))
    bench.add_argument("--pings", type=int, default=5, help="TEST frames (default 5)")
    bench.add_argument("--json", action="store_true", help="print the report as one JSON object at the end")
    bench.set_defaults(func=cmd_bench)

    demo = commands.add_parser(
        "demo", help="the whole stack on the emulator: discover, IAS, push, verify",
        description="Two irsock stacks on an emulated infrared medium at 115200 bit/s: discovery, IAS lookup, "
        "an OBEX push with the progress display, verification by SHA-256 and a summary. No hardware needed.")
    demo.add_argument("--pcap", metavar="FILE", help="write the sender's frames to a pcap file for Wireshark")
    demo.add_argument("--size", type=_byte_count, default=32 * 1024, help="bytes to push (default 32k)")
    demo.add_argument("--json", action="store_true",
                      help="print the result as one JSON object at the end (the narration goes to stderr)")
    demo.set_defaults(func=cmd_demo)

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
    ping.add_argument("--count", type=_positive_int, default=4)
    ping.add_argument("--json", action="store_true",
                      help="print one JSON object at the end: the summary and each reply")
    ping.add_argument("--size", type=int, default=32, help="bytes per TEST frame (12-2000)")
    ping.add_argument("--interval", type=float, default=1.0, help="seconds between frames")
    ping.add_argument("--wait", type=float, default=2.0,
                      help="seconds to wait for each answer besides the frame's time on the line both ways, "
                      "which grows with --size (default 2)")
    ping.set_defaults(func=cmd_ping)

    capture = trace_cmds.add_parser("capture", help="record every frame the stack sends and receives")
    port_options(capture)
    capture.add_argument("-o", "--output", required=True, metavar="OUT.pcap")
    capture.add_argument("--duration", type=float, help="seconds to capture (default: until Ctrl-C)")
    capture.add_argument("--discover", action="store_true", help="run discovery every 3 s while capturing")
    capture.add_argument("--json", action="store_true",
                         help="print one JSON object at the end: the output file, the records written, the port")
    capture.set_defaults(func=cmd_trace_capture)

    sim = commands.add_parser("sim", help="run IrLAP on the simulated medium (virtual clock)")
    sim_cmds = sim.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    discover = sim_cmds.add_parser(
        "discover", help="discovery among N simulated devices",
        description="One initiator runs discovery rounds among N simulated devices until all are found.",
    )
    discover.add_argument("--devices", type=_positive_int, default=4, help="devices around the initiator")
    discover.add_argument("--slots", type=int, choices=(1, 6, 8, 16), default=6, help="slots per round")
    discover.add_argument("--seed", type=int, default=0)
    discover.add_argument("--ber", type=_probability, default=0.0, help="bit error rate")
    discover.add_argument("--max-rounds", type=_positive_int, default=20)
    discover.add_argument("--json", action="store_true",
                          help="print one JSON object at the end: {devices: [...]} as irda discover prints them, "
                               "rounds, timings")
    discover.set_defaults(func=cmd_sim_discover)

    link = sim_cmds.add_parser(
        "link", help="a bulk transfer over one IrLAP link",
        description="A primary sends N random bytes to a secondary over IrLAP on the simulated medium and "
        "reports goodput, efficiency against the line rate, retransmissions and resets.",
    )
    link.add_argument("--bytes", type=_positive_int, default=100_000, help="bytes to send")
    link.add_argument("--baud", type=int, default=115200, help="highest speed both stations offer")
    link.add_argument("--data-size", type=int, default=2048, help="largest data size both stations offer")
    link.add_argument("--window", type=int, default=7, help="largest window both stations offer")
    link.add_argument("--min-turn", type=int, default=10, metavar="US", help="min turnaround both need, us")
    link.add_argument("--ber", type=_probability, default=0.0, help="bit error rate")
    link.add_argument("--drop", type=_probability, default=0.0, help="probability a transmission is lost")
    link.add_argument("--latency", type=float, default=0.0, metavar="MS", help="station processing latency")
    link.add_argument("--outage", type=_outage, action="append", default=[], metavar="START:SECONDS",
                      help="a blocked beam from START for SECONDS (repeatable)")
    link.add_argument("--seed", type=int, default=0)
    link.add_argument("--json", action="store_true",
                      help="print the report as one JSON object (exit status 1 all the same if the transfer failed)")
    link.set_defaults(func=cmd_sim_link)

    completion = commands.add_parser(
        "completion", help="print the shell completion script (bash, zsh, fish)",
        description="Print the tab-completion script of irda for SHELL (commands, options, choices, file "
        "names). Install it once: irda completion bash > ~/.local/share/bash-completion/completions/irda; "
        "irda completion zsh > ~/.zfunc/_irda (with fpath+=(~/.zfunc) before compinit in ~/.zshrc); "
        "irda completion fish > ~/.config/fish/completions/irda.fish.")
    completion.add_argument("shell", choices=COMPLETION_SHELLS, metavar="SHELL", help="bash, zsh or fish")
    completion.set_defaults(func=cmd_completion)

    for action in (parser, *_subcommands(parser).values()):
        for argument in action._actions:
            if argument.metavar in FILE_METAVARS or argument.dest in ("port", "peer_port", "pcap", "output"):
                argument.complete = FILE_COMPLETION  # shtab completes file names there
            elif argument.dest == "dir":
                argument.complete = DIRECTORY_COMPLETION
    parser.epilog = _command_listing(parser)
    return parser


# --- irda --help, irda completion ---------------------------------------------------------------------
COMPLETION_SHELLS = ("bash", "zsh", "fish")
FILE_METAVARS = {"RAW", "FILE", "FILE.pcap", "OUT.pcap"}
# shtab's FILE and DIRECTORY, spelled out so that building the parser does not import shtab
FILE_COMPLETION = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f",
                   "fish": "(__fish_complete_path (commandline -ct))"}
DIRECTORY_COMPLETION = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/", "tcsh": "d",
                        "fish": "(__fish_complete_directories)"}


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command and action below ``parser``, by its full name (``"trace show"``), in parser order."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[prefix + name] = sub
                found.update(_subcommands(sub, prefix + name + " "))
    return found


def _command_listing(parser: argparse.ArgumentParser) -> str:
    """The ``irda --help`` list: every command one line, actions of a group (trace, sim) by their full name."""
    helps: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
    rows = []
    for name, sub in _subcommands(parser).items():
        group = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
        if group:
            continue  # listed by its actions
        top, _, rest = name.partition(" ")
        if rest:
            inner = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[top]
            text = next(c.help for a in inner._actions if isinstance(a, argparse._SubParsersAction)
                        for c in a._choices_actions if c.dest == rest)
        else:
            text = helps[name]
        rows.append((name, text))
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"  {name:<{width}}{text}" for name, text in rows]
    return "commands (irda COMMAND --help tells more):\n" + "\n".join(lines)


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    parser = build_parser()
    for action in parser._actions:  # hidden from the help only (the listing replaces it), not from completion
        if isinstance(action, argparse._SubParsersAction):
            action.help = None
    for sub in (parser, *_subcommands(parser).values()):  # shtab describes a command by its description:
        for action in sub._actions:  # give it the one-line help instead of the paragraph
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    action.choices[choice.dest].description = choice.help
    print(shtab.complete(parser, args.shell), end="")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # argparse would show the top level's usage: show the one of the command that was given
        name = " ".join(part for part in (args.command, getattr(args, "trace_command", None),
                                          getattr(args, "sim_command", None)) if part)
        _subcommands(parser).get(name, parser).error(f"unrecognized arguments: {' '.join(extras)}")
    try:
        return args.func(args)
    except (CliError, IrLAPError) as exc:
        print(f"irda: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # `irda trace show x.pcap | head`: the reader went away, which is not an error
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        print("\nirda: interrupted", file=sys.stderr)
        return 130


