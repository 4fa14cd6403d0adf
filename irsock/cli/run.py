"""``irda run``: an unmodified Linux program with ``AF_IRDA`` sockets, through the daemon (:mod:`irsock.daemon.native`
does the work: the preload library, its environment, the exit status); here are the options and the errors."""

from __future__ import annotations

import argparse
import os

from irsock.cli.common import CliError


def register(commands: argparse._SubParsersAction) -> None:
    """``irda run``."""
    run = commands.add_parser(
        "run", help="run a Linux AF_IRDA program (obexftp, ircp...) on the daemon",
        usage="irda run [-h] [--socket PATH] [--port URL] [--unnamed-service NAME] -- PROGRAM [ARGS...]",
        description="Run PROGRAM with a preloaded library that gives it the AF_IRDA sockets Linux removed in 4.17: "
        "socket(AF_IRDA, ...) becomes a connection to the stack daemon (irda serve), and bind, connect, listen, "
        "accept and the SOL_IRLMP options (discovery, IAS, hints) become the daemon's requests, with Linux's "
        "errno values; once connected the program reads and writes the socket itself. Every other call, and every "
        "program that never uses AF_IRDA, is left alone. The program's exit status is irda run's. Linux only; "
        "the library is built at install time, or on first use with the C compiler. IRSOCK_DEBUG=1 shows every "
        "request on stderr. See docs/native.md.")
    run.add_argument("--socket", metavar="PATH",
                     help="the daemon's socket (default: $IRSOCK_SOCKET, else the default path for --port)")
    run.add_argument("--port", metavar="URL",
                     help="the port whose daemon to use, for the default socket path (default: $IRDA_PORT, else "
                     "the built-in emulator's daemon)")
    run.add_argument("--unnamed-service", metavar="NAME",
                     help="register a socket the program binds with an empty service name under NAME in IAS "
                     "(obexftpd -i binds so: give OBEX to let peers push to it)")
    run.add_argument("program", nargs=argparse.REMAINDER, metavar="PROGRAM [ARGS...]",
                     help="the program and its arguments (after --, so that its options stay its own)")
    run.set_defaults(func=cmd_run)


def socket_for(args: argparse.Namespace) -> str:
    """--socket, else $IRSOCK_SOCKET, else where the daemon for --port / $IRDA_PORT (or the emulator) listens."""
    from irsock.daemon import default_socket_path

    if args.socket:
        return args.socket
    if os.environ.get("IRSOCK_SOCKET"):
        return os.environ["IRSOCK_SOCKET"]
    return os.fspath(default_socket_path(args.port or os.environ.get("IRDA_PORT") or None))


def cmd_run(args: argparse.Namespace) -> int:
    from irsock.daemon.native import NativeError, run

    program = list(args.program)
    if program[:1] == ["--"]:
        program = program[1:]
    if not program:
        raise CliError("give the program to run: irda run -- PROGRAM [ARGS...]")
    try:
        return run(program, socket_for(args), unnamed_service=args.unnamed_service)
    except NativeError as exc:
        raise CliError(str(exc)) from None
