"""``irda send`` and ``irda receive``: OBEX pushes and the inbox, over infrared (an irsock interface and its
sockets) or TCP; the work is in :mod:`irsock.apps.transfer`, here are the options, the output and the errors."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

from irsock.cli.common import (
    EXIT_OK,
    CliError,
    attach,
    byte_count,
    detach,
    is_builtin,
    port_options,
    transfer_errors,
)


def register(commands: argparse._SubParsersAction) -> None:
    """``irda send`` and ``irda receive``."""
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
    receive.add_argument("--max-size", type=byte_count, metavar="BYTES", help="refuse larger files (e.g. 10M)")
    receive.add_argument("--browse", action="store_true",
                         help="let peers list folders and fetch files from --dir (obexftp -l, -g)")
    receive.add_argument("--allow-delete", action="store_true", help="let peers delete files and empty folders")
    receive.add_argument("--idle-timeout", type=float, default=60.0, metavar="SECONDS",
                         help="close a session whose peer sends nothing for this long (default 60)")
    receive.add_argument("--irlpt", action="store_true",
                         help="be an IrLPT printer instead: store each print job as irlpt-job-N.prn in --dir")
    receive.add_argument("--json", action="store_true",
                         help="print JSON lines: one object per received file (or print job)")
    receive.set_defaults(func=cmd_receive)

    printer = commands.add_parser(
        "print", help="send a file to an infrared printer (IrLPT)",
        description="Send FILE to the IrLPT service (IAS class IrLPT, raw IrLMP) of the printer named by --to, "
        "else of the one device with the Printer hint, with progress and a summary. The file goes as it is: "
        "render it in the printer's language first (PCL, PostScript, plain text). Done means the printer's "
        "link acknowledged every byte.")
    port_options(printer)
    printer.add_argument("file", metavar="FILE")
    printer.add_argument("--to", metavar="ADDRESS|NICKNAME", help="the printer (default: the one with the hint)")
    printer.add_argument("--timeout", type=float, default=30.0, help="seconds any one step may take (default 30)")
    printer.add_argument("--json", action="store_true",
                         help="print the summary as one JSON object at the end (progress goes to stderr)")
    printer.set_defaults(func=cmd_print)


BUILTIN_RECEIVER_HINT = (
    "each irda process has its own built-in emulator, so a receiver in another terminal is not seen: try "
    "irda demo, or irda emulate --pty 2 and give one port to irda receive --port, the other to irda send --port")



def _receiver_hint(iface) -> str:
    """What to check when no OBEX device answered: on the built-in emulator, how to try a push instead."""
    from irsock.apps.transfer import RECEIVER_HINT

    return BUILTIN_RECEIVER_HINT if is_builtin(iface.port) else RECEIVER_HINT


def _load_obex() -> None:
    """Import the OBEX client and read the system's MIME table (it types the files pushed): work of the push that a
    thread does while the port opens (its flush waits 20 ms) and the discovery round waits on the line."""
    import mimetypes

    import irsock.obex  # noqa: F401 - loaded for connect_obex and push_files

    mimetypes.init()


def cmd_send(args: argparse.Namespace) -> int:
    import irsock
    from irsock.apps import transfer

    quiet = args.json
    out = sys.stderr if quiet else sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    with transfer_errors():
        files = transfer.check_files(args.files)
        if args.tcp:
            with transfer.connect_tcp(args.tcp, args.timeout) as sock:
                say(f"connected to {args.tcp} over TCP")
                summary = transfer.push_files(sock, files, rate=None, out=out, digest=not args.no_digest)
        else:
            # what the push needs after the discovery (irsock.obex, the MIME table: 15 ms) loads meanwhile
            loader = threading.Thread(target=_load_obex, name="irda send: loading OBEX")
            loader.start()
            iface = attach(args)
            try:
                with iface.socket(irsock.AF_IRDA, irsock.SOCK_STREAM) as sock:
                    sock.settimeout(args.timeout)
                    device = transfer.choose_device(sock, args.to, log=say, hint=_receiver_hint(iface), iface=iface)
                    say(f"pushing to {transfer.describe_device(device)}")
                    loader.join()  # long done (discovery takes 0.5 s): the MIME table is never used half-read
                    transfer.connect_obex(sock, device.address, log=say)
                    summary = transfer.push_files(sock, files, rate=transfer.line_rate(iface), out=out,
                                                  digest=not args.no_digest)
            finally:
                detach(iface)
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        say(summary.describe())
    return EXIT_OK


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
        with transfer_errors():
            if args.irlpt:
                return _receive_print_jobs(args, root, log)
            if args.tcp_listen:
                listener = transfer.tcp_listener(args.tcp_listen)
                host, port = listener.getsockname()[:2]
                log(f"OBEX inbox {root} on TCP {host}:{port}; {sharing}; Ctrl-C stops")
            else:
                iface = attach(args, hints=transfer.OBEX_HINTS)
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
            detach(iface)
    log(f"{count} file(s) received")
    return EXIT_OK


def _receive_print_jobs(args: argparse.Namespace, root: Path, log) -> int:
    """``irda receive --irlpt``: an IrLPT sink storing each job in ``root``."""
    from irsock.apps import irlpt

    if args.tcp_listen or args.browse or args.allow_delete:
        raise CliError("--irlpt takes none of --tcp-listen, --browse, --allow-delete")
    jobs = []

    def report(job) -> None:
        jobs.append(job)
        print(json.dumps(job.as_dict()) if args.json else
              f"job {job.path.name}: {job.size} bytes from {job.peer}" + ("" if job.complete else " (incomplete)"),
              flush=True)

    iface = attach(args)
    try:
        listener = irlpt.irlpt_listener(iface)
        log(f"IrLPT printer {root} on 0x{iface.address:08x} {iface.nickname!r} ({iface.port}); Ctrl-C stops")
        listener.settimeout(0.5)
        with listener:
            try:
                irlpt.serve_jobs(listener, root, once=args.once, report=report, log=log,
                                 limit=args.max_size or irlpt.JOB_LIMIT)
            except KeyboardInterrupt:
                log("stopped")
    finally:
        detach(iface)
    log(f"{len(jobs)} print job(s) received")
    return EXIT_OK


def cmd_print(args: argparse.Namespace) -> int:
    from irsock.apps import irlpt, transfer

    out = sys.stderr if args.json else sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    with transfer_errors():
        [path] = transfer.check_files([args.file])
        iface = attach(args, builtin=("printer", "an emulated printer"))
        try:
            with irlpt.printer_socket(iface) as sock:
                sock.settimeout(args.timeout)
                device = transfer.choose_device(sock, args.to, log=say, kind="Printer", iface=iface,
                                                hint="check that the printer is on and its infrared port faces ours")
                say(f"printing to {transfer.describe_device(device)}")
                summary = irlpt.print_file(sock, device.address, path, line_rate=lambda: transfer.line_rate(iface),
                                           out=out,
                                           timeout=args.timeout)
        finally:
            detach(iface)
    if args.json:
        print(json.dumps({"file": str(path), "bytes": summary.bytes, "seconds": round(summary.seconds, 4),
                          "bytes_per_s": round(summary.rate, 1), "line_rate": summary.line_rate,
                          "efficiency": None if summary.efficiency is None else round(summary.efficiency, 4)}))
    else:
        efficiency = "" if summary.efficiency is None else f", {summary.efficiency:.0%} of the line rate"
        say(f"printed {path.name}: {summary.bytes} bytes in {summary.seconds:.2f} s "
            f"({summary.rate:.0f} bytes/s{efficiency}); the printer's link acknowledged every byte")
    return EXIT_OK
