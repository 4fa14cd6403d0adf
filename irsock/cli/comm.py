"""``irda comm``: a virtual serial port (a PTY) bridged to a device's IrCOMM service; the work is in
:mod:`irsock.apps.comm`, here are the options, the output and the errors."""

from __future__ import annotations

import argparse
import json
import signal
import sys

from irsock.cli.common import EXIT_OK, CliError, attach, detach, port_options, transfer_errors

#: on the built-in emulator the device to talk to is an emulated phone
BUILTIN_PHONE = ("phone", "an emulated phone")


def register(commands: argparse._SubParsersAction) -> None:
    """``irda comm``."""
    comm = commands.add_parser(
        "comm", help="a virtual serial port (PTY) bridged to a device's IrCOMM",
        description="Make a pseudo-terminal and bridge it to the IrCOMM service (IAS IrDA:IrCOMM, 9-wire cooked) "
        "of the device named by --to, else of the one device with the IrCOMM hint. Programs that talk to a "
        "serial port (gammu with an at connection, minicom, a vendor's download tool) open the printed path. "
        "A broken connection is reported and made again on the program's next write. Without --port, the "
        "built-in emulator holds an emulated phone (AT commands). Runs until interrupted.")
    port_options(comm)
    comm.add_argument("--to", metavar="ADDRESS|NICKNAME", help="the device (default: the one with the IrCOMM hint)")
    comm.add_argument("--pty", action="store_true", help="make a pseudo-terminal (the only kind of port so far)")
    comm.add_argument("--link", metavar="PATH", help="also make a symlink to the PTY, e.g. /tmp/ircomm0")
    comm.add_argument("--timeout", type=float, default=10.0, help="seconds finding and connecting may take")
    comm.add_argument("--json", action="store_true",
                      help="print the port as one JSON object once it is ready ({pty, link, device, ...})")
    comm.set_defaults(func=cmd_comm)


def cmd_comm(args: argparse.Namespace) -> int:
    from irsock.apps.comm import CommBridge, stderr_log

    if not args.pty:
        raise CliError("give --pty: irda comm makes a pseudo-terminal for programs to open")

    def terminate(*_args: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    iface = attach(args, builtin=BUILTIN_PHONE)
    bridge = None
    try:
        with transfer_errors():
            try:
                bridge = CommBridge(iface, to=args.to, link=args.link, timeout=args.timeout, log=stderr_log())
            except FileExistsError as exc:
                raise CliError(f"{args.link}: exists and is not a symlink (choose another --link)") from exc
            bridge.start()
        if args.json:
            print(json.dumps(bridge.as_dict()), flush=True)
        else:
            print(f"{bridge.path}" + (f" (also {bridge.link})" if bridge.link else ""), flush=True)
            print("irda comm: open that port in your program; Ctrl-C ends", file=sys.stderr, flush=True)
        try:
            bridge.serve_forever()
        except KeyboardInterrupt:
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if bridge is not None:
            bridge.close()
        detach(iface)
    return EXIT_OK
