"""What the command groups of ``irda`` share: exit codes and ``CliError``, argument types, the port options and
the port (a runtime or an irsock interface, the built-in emulator by default), and the walk over the parser."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure the user can act on: printed as ``irda: <message>``, exit status 1."""


def read_input(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise CliError(f"{path}: permission denied") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} cannot be negative")
    return value


def byte_count(text: str) -> int:
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


# --- commands on a port ------------------------------------------------------------------------------
BUILTIN_DEVICES = 3


# one medium per process (irsim media live in the process): a fixed name, so that the virtual devices'
# addresses, derived from their nickname and the medium's name, are the same in every run
BUILTIN_URL = "irsim://builtin"


def port_options(command: argparse.ArgumentParser) -> None:
    """The options of every command on a port: --port, --dongle, --nickname."""
    command.add_argument("--port", help="serial port or pyserial URL (default: $IRDA_PORT, else the emulator)")
    command.add_argument("--dongle", help="dongle type (default: $IRDA_DONGLE, else plain; see irda dongles)")
    command.add_argument("--nickname", default="irsock", help="our name in discovery")
    command.add_argument("--socket", metavar="PATH",
                         help="use the irsock daemon (irda serve) at PATH (default: $IRSOCK_SOCKET; a daemon that "
                         "serves the port is used by itself)")


def is_builtin(url: str) -> bool:
    return url.split("?", 1)[0] == BUILTIN_URL


#: what the built-in emulator places for most commands: (the devices= value, how to say it)
BUILTIN_PLAIN = (str(BUILTIN_DEVICES), f"{BUILTIN_DEVICES} virtual devices")


def port_settings(args: argparse.Namespace, builtin: tuple[str, str] = BUILTIN_PLAIN) -> tuple[str, str]:
    """The port URL and dongle: --port/--dongle, else IRDA_PORT/IRDA_DONGLE, else the built-in emulator with
    the ``builtin`` devices (``irda comm`` asks for an emulated phone)."""
    import os

    url = args.port or os.environ.get("IRDA_PORT")
    dongle = args.dongle or os.environ.get("IRDA_DONGLE") or "plain"
    if not url:
        url = f"{BUILTIN_URL}?devices={builtin[0]}"
        from irsock.daemon import default_socket_path

        served = default_socket_path(None)
        if served.exists():  # a daemon serves the built-in emulator: irsock.attach uses it
            print(f"irda: no --port and no IRDA_PORT: using the built-in emulator of the irsock daemon at {served}",
                  file=sys.stderr)
            return url, "plain"
        print(
            f"irda: no --port and no IRDA_PORT: using the built-in emulator with {builtin[1]} "
            f"({url}); give --port /dev/ttyUSB0 (and --dongle) for a real dongle",
            file=sys.stderr,
        )
        given = args.dongle and "--dongle" or os.environ.get("IRDA_DONGLE") and "IRDA_DONGLE"
        if given:
            print(f"irda: {given} {dongle} is ignored: the built-in emulator has no dongle (give --port with it)",
                  file=sys.stderr)
        dongle = "plain"
    return url, dongle


def daemon_in_use(args: argparse.Namespace) -> str | None:
    """The socket of the daemon a command on a port goes through: --socket / IRSOCK_SOCKET, else a daemon that serves
    the port (or the built-in emulator) in the default place; None when the command opens the port itself."""
    import os

    from irsock.daemon import default_socket_path, live_socket

    named = daemon_socket(args)
    if named:
        return named
    path = default_socket_path(args.port or os.environ.get("IRDA_PORT") or None)
    return str(path) if path.exists() and live_socket(path) else None


def start_runtime(args: argparse.Namespace, **kwargs):
    """A runtime of our own on the port, for the commands that work on the link itself (ias, ping, trace capture)."""
    from irlap.runtime import LinkRuntime
    from irsock.stack import full_stack

    served = daemon_in_use(args)
    if served:
        raise CliError(f"the irsock daemon at {served} holds the port and this command works on the link itself: "
                       "stop the daemon (or give another --port) to run it")
    url, dongle = port_settings(args)
    kwargs.setdefault("stack", full_stack)
    runtime = LinkRuntime(url, dongle=dongle, nickname=getattr(args, "nickname", None) or "irsock", **kwargs)
    runtime.start()
    return runtime


def stop_runtime(runtime) -> None:
    runtime.close()
    stop_builtin_devices(runtime.url)


def stop_builtin_devices(url: str) -> None:
    """The virtual devices the built-in emulator placed on the medium of ``url`` go with it."""
    from irlap.emulator.virtual import stop_devices

    if is_builtin(url):
        from irlap.emulator.medium import drop_medium

        name = url.split("://", 1)[1].split("?", 1)[0]
        stop_devices(name)
        drop_medium(name)  # the next run in this process makes it anew, with its devices


def daemon_socket(args: argparse.Namespace) -> str | None:
    """The daemon the user named: --socket, else $IRSOCK_SOCKET."""
    import os

    return getattr(args, "socket", None) or os.environ.get("IRSOCK_SOCKET") or None


def attach(args: argparse.Namespace, builtin: tuple[str, str] = BUILTIN_PLAIN, **kwargs):
    """An irsock interface on --port/--dongle (else IRDA_PORT, else the built-in emulator): a daemon's when one
    serves that port or --socket/IRSOCK_SOCKET names one."""
    import irsock

    path = daemon_socket(args)
    if path:
        return irsock.attach(f"unix:{path}", nickname=getattr(args, "nickname", None) or "irsock",
                             hints=kwargs.get("hints", 0x0400))
    url, dongle = port_settings(args, builtin)
    return irsock.attach(url, dongle=dongle, nickname=getattr(args, "nickname", None) or "irsock", **kwargs)


def detach(iface) -> None:
    iface.close()
    stop_builtin_devices(iface.port)


def _obex_error() -> type[Exception]:
    from irsock.obex import ObexError

    return ObexError


@contextlib.contextmanager
def transfer_errors():
    """Turn transfer, OBEX and socket failures into one-line CLI errors."""
    from irsock.apps.transfer import TransferError

    try:
        yield
    except (TransferError, _obex_error()) as exc:  # evaluated on a failure only: irsock.obex is not imported before
        raise CliError(str(exc)) from None
    except TimeoutError as exc:
        reason = exc.strerror or str(exc) or "no answer"  # once: str() of an OSError repeats the errno
        raise CliError(reason if reason.startswith("timed out") else f"timed out: {reason}") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CliError(f"{exc.filename}: {reason}" if exc.filename else reason) from None


# --- the parser -------------------------------------------------------------------------------------
def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command and action below ``parser``, by its full name (``"trace show"``), in parser order."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[prefix + name] = sub
                found.update(subcommands(sub, prefix + name + " "))
    return found
