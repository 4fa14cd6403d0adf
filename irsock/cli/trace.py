"""``irda trace``: convert raw serial bytes to pcap, decode a capture, capture a port's frames. Captures are
files, not a link: the group stands apart from the commands that talk to devices."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from irsock.cli.common import EXIT_OK, CliError, port_options, read_input, start_runtime, stop_runtime


def register(commands: argparse._SubParsersAction) -> None:
    """``irda trace`` and its actions convert, show and capture."""
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

    capture = trace_cmds.add_parser("capture", help="record every frame the stack sends and receives")
    port_options(capture)
    capture.add_argument("-o", "--output", required=True, metavar="OUT.pcap")
    capture.add_argument("--duration", type=float, help="seconds to capture (default: until Ctrl-C)")
    capture.add_argument("--discover", action="store_true", help="run discovery every 3 s while capturing")
    capture.add_argument("--json", action="store_true",
                         help="print one JSON object at the end: the output file, the records written, the port")
    capture.set_defaults(func=cmd_trace_capture)


def cmd_trace_convert(args: argparse.Namespace) -> int:
    from irlap.trace import convert_raw

    raw = read_input(args.raw)
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

    data = read_input(args.file)
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
        runtime = start_runtime(args, trace=writer)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        print(f"capturing on {runtime.url} to {out}; Ctrl-C stops", file=sys.stderr)
        next_discovery = time.monotonic()
        while deadline is None or time.monotonic() < deadline:
            if args.discover and time.monotonic() >= next_discovery:
                runtime.call(lambda st, now: st.discover(6, now) if st.lmp.station.state.value == "NDM" else None)
                next_discovery = time.monotonic() + 3.0
            event = runtime.next_event(0.2)
            if isinstance(event, PortFailed):
                raise CliError(event.message)
    except KeyboardInterrupt:
        pass
    finally:
        if runtime is not None:
            stop_runtime(runtime)
        writer.close()
    if args.json:
        print(json.dumps({"output": str(out), "records": writer.records,
                          "port": runtime.url if runtime is not None else None}))
    else:
        print(f"{writer.records} records written to {out}", file=sys.stderr)
    return EXIT_OK
