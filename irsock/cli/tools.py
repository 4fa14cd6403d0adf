"""``irda emulate``, ``irda dongles``, ``irda bench``, ``irda demo``: the emulator's ports, the dongle drivers and
whole-stack runs (measure a link, show the stack at work): tools around the stack rather than one layer's."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from irsock.cli.common import EXIT_ERROR, EXIT_OK, CliError, byte_count, transfer_errors


def register(commands: argparse._SubParsersAction) -> None:
    """``irda emulate``, ``irda dongles``, ``irda bench`` and ``irda demo``."""
    emulate = commands.add_parser(
        "emulate", help="PTY serial ports on an emulated medium with virtual devices",
        description="Expose N pseudo-terminal serial ports (plain dongles that follow the baud rate a program "
        "sets) on one emulated infrared medium with M virtual devices; print the device paths and run until "
        "interrupted. Any program that opens a serial port can use them.",
    )
    emulate.add_argument("--pty", type=int, default=1, metavar="N", help="ports to create (default 1)")
    emulate.add_argument("--devices", type=device_kinds, default=2, metavar="M|KIND,...",
                         help="virtual devices: how many echo devices, or a list of kinds "
                         "(phone, dive, printer, echo; default 2)")
    emulate.add_argument("--nickname", default="virtual", help="name prefix of the virtual devices")
    emulate.add_argument("--medium", help="medium name (default: one per process)")
    emulate.add_argument("--seed", type=int, default=0)
    emulate.add_argument("--json", action="store_true", help="print ports and devices as one JSON object at the start")
    emulate.set_defaults(func=cmd_emulate)

    dongles = commands.add_parser("dongles", help="list the dongle drivers and their speeds")
    dongles.add_argument("--scan", action="store_true",
                         help="list the USB IrDA adapters plugged in (through pyusb/libusb), with the usb: URL of each")
    dongles.add_argument("--json", action="store_true", help="print one JSON object: {dongles: [...]}")
    dongles.set_defaults(func=cmd_dongles)

    udev = commands.add_parser(
        "udev-rule", help="print a udev rule that lets a group use the USB IrDA adapters",
        description="Print udev rules giving GROUP (and the user at the console) the USB IrDA adapters irsock knows: "
        "irda udev-rule | sudo tee /etc/udev/rules.d/70-irsock.rules, then plug the adapter in again.")
    udev.add_argument("--group", default="plugdev", metavar="NAME", help="the group (default plugdev)")
    udev.set_defaults(func=cmd_udev_rule)

    bench = commands.add_parser(
        "bench", help="measure one link: discovery, turnaround, goodput, CPU",
        description="Measure one link in real time: A discovers B, pings it with TEST frames (turnaround), "
        "connects and pushes --bytes with OBEX (goodput, efficiency against the line rate, CPU). Two dongles "
        "facing each other: --port A --peer-port B; without ports, two stacks on the emulator.")
    bench.add_argument("--port", help="A's serial port (the sender)")
    bench.add_argument("--peer-port", help="B's serial port (the receiver)")
    bench.add_argument("--dongle", default="plain", help="A's dongle type (default plain)")
    bench.add_argument("--peer-dongle", help="B's dongle type (default: as A)")
    bench.add_argument("--bytes", type=byte_count, default=100_000, help="bytes to push (default 100k)")
    bench.add_argument("--max-baud", type=int, default=115200,
                       choices=(9600, 19200, 38400, 57600, 115200, 576000, 1152000, 4000000),
                       help="highest speed offered (default 115200; MIR/FIR on the emulator use its fir dongle)")
    bench.add_argument("--pings", type=int, default=5, help="TEST frames (default 5)")
    bench.add_argument("--json", action="store_true", help="print the report as one JSON object at the end")
    bench.set_defaults(func=cmd_bench)

    demo = commands.add_parser(
        "demo", help="the whole stack on the emulator: discover, IAS, push, verify",
        description="Two irsock stacks on an emulated infrared medium at 115200 bit/s: discovery, IAS lookup, "
        "an OBEX push with the progress display, verification by SHA-256 and a summary. No hardware needed.")
    demo.add_argument("--pcap", metavar="FILE", help="write the sender's frames to a pcap file for Wireshark")
    demo.add_argument("--size", type=byte_count, default=32 * 1024, help="bytes to push (default 32k)")
    demo.add_argument("--json", action="store_true",
                      help="print the result as one JSON object at the end (the narration goes to stderr)")
    demo.set_defaults(func=cmd_demo)


def device_kinds(text: str) -> int | list[str]:
    """``2`` or ``phone,echo`` (the kinds irsock registers with the emulator)."""
    import irsock  # noqa: F401 - registers the emulated devices
    from irlap.emulator.virtual import parse_devices

    try:
        return parse_devices(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


def cmd_udev_rule(args: argparse.Namespace) -> int:
    from irlap.dongles.usb import udev_rule

    sys.stdout.write(udev_rule(args.group))
    return EXIT_OK


def cmd_scan(args: argparse.Namespace) -> int:
    from irlap.dongles.usb import scan
    from irlap.port import PortError

    try:
        adapters = scan()
    except PortError as exc:
        if args.json:
            print(json.dumps({"error": str(exc)}))
            return EXIT_ERROR
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps({"adapters": adapters}))
        return EXIT_OK
    if not adapters:
        print("no USB IrDA adapter found (a USB-serial adapter with a SIR dongle is a serial port: "
              "--port /dev/ttyUSB0)")
    for row in adapters:
        print(f"{row['url']:<14} {row['vid']}:{row['pid']}  {row['driver']:<9} {row['description']}")
    return EXIT_OK


def cmd_dongles(args: argparse.Namespace) -> int:
    from irlap.dongles import DongleError, dongle_names, get_dongle

    if args.scan:
        return cmd_scan(args)

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


def cmd_bench(args: argparse.Namespace) -> int:
    from irsock.apps.bench import bench_link, emulator_dongle, emulator_ports

    if bool(args.port) != bool(args.peer_port):
        raise CliError("give both --port (A, the sender) and --peer-port (B), or neither for the emulator")
    ports = (args.port, args.peer_port) if args.port else emulator_ports(args.max_baud)
    if not args.port and args.max_baud > 115200 and args.dongle == "plain":
        args.dongle = emulator_dongle(args.max_baud)  # MIR/FIR on the emulator: its host-framed fir dongle
    if not args.port and not args.json:
        print(f"two stacks on the emulated medium {ports[0]} (paced like a real line)", file=sys.stderr)
    with transfer_errors():
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


def cmd_demo(args: argparse.Namespace) -> int:
    from irsock.apps.demo import run_demo

    with transfer_errors():
        report = run_demo(size=args.size, pcap=Path(args.pcap) if args.pcap else None,
                          out=sys.stderr if args.json else None)
    if args.json:
        print(json.dumps({**report.summary.as_dict(), "received_name": report.received_name,
                          "intact": report.intact, "pcap": str(report.pcap) if report.pcap else None}))
    return EXIT_OK if report.intact else EXIT_ERROR
