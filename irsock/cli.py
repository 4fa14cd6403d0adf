"""The ``irda`` command line.

Every command turns the project's own errors (and missing files) into a one-line message on stderr
and a non-zero exit status; a traceback means a bug in irsock, never bad input.
"""

from __future__ import annotations

import argparse
import json
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


def build_parser() -> argparse.ArgumentParser:
    from irsock import __version__

    parser = argparse.ArgumentParser(prog="irda", description="A userspace IrDA stack: tools and tests.")
    parser.add_argument("--version", action="version", version=f"irsock {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
    show.add_argument("--json", action="store_true", help="one JSON object per frame")
    show.set_defaults(func=cmd_trace_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
        return 130


if __name__ == "__main__":
    sys.exit(main())
