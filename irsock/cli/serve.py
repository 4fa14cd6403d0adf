"""``irda serve``: the stack daemon for one port (:mod:`irsock.daemon.server`); here are its options and output."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from irsock.cli.common import BUILTIN_DEVICES, EXIT_OK, CliError


def register(commands: argparse._SubParsersAction) -> None:
    """``irda serve``."""
    serve = commands.add_parser(
        "serve", help="the stack daemon: one port, shared by every program of the user",
        description="Own a port (a dongle, irsim://, a PTY, rfc2217://) and its IrDA stack, and let other processes "
        "use it through a Unix socket: every irda command and irsock.attach() use a running daemon for the port "
        "by themselves (or the one given by --socket / IRSOCK_SOCKET), C programs through irda run. They share "
        "one station: its discovery log, IAS and LSAPs. Without --port the built-in emulator becomes a medium "
        "shared by the user's programs: irda receive in one terminal and irda send in another find each other. "
        "Prints the socket's path once it serves; runs until interrupted (every client then gets ENETDOWN).")
    serve.add_argument("--port", help="serial port or pyserial URL (default: $IRDA_PORT, else the built-in emulator)")
    serve.add_argument("--dongle", help="dongle type (default: $IRDA_DONGLE, else plain; see irda dongles)")
    serve.add_argument("--nickname", default="irsock", help="the station's name in discovery")
    serve.add_argument("--socket", metavar="PATH",
                       help="the Unix socket to listen on (default: $XDG_RUNTIME_DIR/irsock/NAME.sock, else "
                       "/tmp/irsock-UID/NAME.sock, NAME from the port)")
    serve.add_argument("--group", metavar="NAME", help="let this group use the daemon too (socket mode 0660)")
    serve.add_argument("--devices", default=str(BUILTIN_DEVICES), metavar="N|KIND,...",
                       help=f"built-in emulator only: the virtual devices on the medium (default {BUILTIN_DEVICES}; "
                       "e.g. phone,printer,dive; 0 for none)")
    serve.add_argument("--json", action="store_true",
                       help="print one JSON object ({socket, port, pid, address, ...}) once it serves")
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from irsock.daemon.server import StackDaemon

    port = args.port or os.environ.get("IRDA_PORT") or None
    dongle = args.dongle or os.environ.get("IRDA_DONGLE") or "plain"
    daemon = StackDaemon(port, dongle=dongle, nickname=args.nickname, path=args.socket, group=args.group,
                         devices=args.devices)
    try:
        daemon.start()
    except KeyError:
        raise CliError(f"--group {args.group}: no such group") from None
    except OSError as exc:
        raise CliError(f"cannot serve {port or 'the built-in emulator'}: {exc.strerror or exc}") from None

    def stop(signum, _frame) -> None:
        daemon.stop(f"the daemon stopped ({signal.Signals(signum).name})")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    info = daemon.describe()
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(info["socket"], flush=True)
        print(f"irda: serving {info['port']} on {info['socket']}; IRSOCK_SOCKET={info['socket']} irda ... or "
              "irda run -- PROGRAM use it", file=sys.stderr)
    try:
        while not daemon.wait(0.5):
            pass
    except KeyboardInterrupt:
        daemon.stop("the daemon stopped (interrupted)")
    return EXIT_OK
