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
        "Line settings set with termios become IrCOMM parameters; opening the port raises DTR. A connection "
        "that ends is reported and made again on the next open or write; a link lost while a program holds the "
        "port hangs it up (the program reads EOF, writes fail with EIO) and a new PTY takes its place. With "
        "--serve, offer IrCOMM to peers instead and give each incoming connection a PTY. Without --port, the "
        "built-in emulator holds an emulated phone (AT commands). Runs until interrupted.")
    port_options(comm)
    comm.add_argument("--to", metavar="ADDRESS|NICKNAME", help="the device (default: the one with the IrCOMM hint)")
    comm.add_argument("--pty", action="store_true", help="make a pseudo-terminal (the only kind of port so far)")
    comm.add_argument("--link", metavar="PATH", help="also make a symlink to the PTY, e.g. /tmp/ircomm0")
    comm.add_argument("--serve", action="store_true",
                      help="offer IrDA:IrCOMM to peers (be the DCE) and bridge each incoming connection to a PTY")
    comm.add_argument("--timeout", type=float, default=10.0, help="seconds finding and connecting may take")
    comm.add_argument("--idle", type=float, default=30.0, metavar="SECONDS",
                      help="drop the link after this long with no program holding the port and no traffic "
                      "(0: never; default 30)")
    comm.add_argument("--json", action="store_true",
                      help="print the port as one JSON object once it is ready ({pty, link, device, ...}); with "
                      "--serve, one JSON line when serving starts and one per incoming connection")
    comm.set_defaults(func=cmd_comm)


def cmd_comm(args: argparse.Namespace) -> int:
    if not args.pty:
        raise CliError("give --pty: irda comm makes a pseudo-terminal for programs to open")
    from irsock.cli.common import daemon_in_use

    served = daemon_in_use(args)
    if served:  # the PTY's lines and termios are IrCOMM control parameters: protocol 1 of the daemon has no room
        raise CliError(f"irda comm works on a stack of its own: the irsock daemon at {served} holds the port "
                       "(stop it, or give irda comm another --port); programs that only read and write a 9-wire "
                       "socket go through the daemon")
    if args.serve:
        if args.to:
            raise CliError("--serve waits for peers to connect: --to does not go with it")
        return serve(args)
    return bridge_to_device(args)


def serve(args: argparse.Namespace) -> int:
    """``--serve``: IrCOMM offered to peers, a PTY per incoming connection."""
    from irsock.apps.comm import CommServer, stderr_log

    def announce(port) -> None:
        if args.json:
            print(json.dumps(port.as_dict()), flush=True)
        else:
            print(f"{port.path}" + (f" (also {port.link})" if port.link else ""), flush=True)

    def terminate(*_args: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    iface = attach(args)
    server = None
    try:
        with transfer_errors():
            try:
                server = CommServer(iface, link=args.link, log=stderr_log(), on_port=announce)
            except FileExistsError as exc:
                raise CliError(f"{args.link}: exists and is not a symlink (choose another --link)") from exc
            server.start()
        if args.json:
            print(json.dumps(server.as_dict()), flush=True)
        else:
            print(f"irda comm: offering IrCOMM as 0x{iface.address:08x}; each connection gets a PTY, printed here; "
                  "Ctrl-C ends", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server is not None:
            server.close()
        detach(iface)
    return EXIT_OK


def bridge_to_device(args: argparse.Namespace) -> int:
    """A PTY bridged to a device's IrCOMM (we are the DTE)."""
    from irsock.apps.comm import CommBridge, stderr_log

    def terminate(*_args: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    iface = attach(args, builtin=BUILTIN_PHONE)
    bridge = None
    try:
        with transfer_errors():
            try:
                bridge = CommBridge(iface, to=args.to, link=args.link, timeout=args.timeout, idle=args.idle,
                                    log=stderr_log())
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
