"""The ``irda`` command line: ``main`` and the parser, put together from one module per command group (trace, sim,
discovery, transfer, tools, completion), each adding its commands with ``register``; common holds what they share.

Every command turns the project's own errors (and missing files) into a one-line message on stderr
and a non-zero exit status; a traceback means a bug in irsock, never bad input.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import sys
from collections.abc import Sequence

from irlap.errors import IrLAPError
from irsock.cli.common import EXIT_ERROR, EXIT_OK, CliError
from irsock.cli.common import subcommands as _subcommands  # the name tests know it by

#: The order in which ``irda --help`` lists the commands and completion offers them: each group module registers
#: its own commands together, a new command takes its place here too.
COMMAND_ORDER = ("trace", "emulate", "dongles", "udev-rule", "discover", "send", "receive", "print", "comm", "bench",
                 "demo", "ias", "ping", "serve", "run", "sim", "completion")
#: The group module (``irsock.cli.GROUP``) that registers each command but completion: ``main`` imports and builds
#: only the one of the command it was given (2 ms instead of 15 ms for all); the whole parser is checked against it.
COMMAND_GROUPS = {"trace": "trace", "emulate": "tools", "dongles": "tools", "udev-rule": "tools", "bench": "tools",
                  "demo": "tools", "discover": "discovery", "ias": "discovery", "ping": "discovery", "send": "transfer",
                  "receive": "transfer", "print": "transfer", "comm": "comm", "serve": "serve", "run": "run",
                  "sim": "sim"}
GROUPS = ("trace", "tools", "discovery", "transfer", "comm", "serve", "run", "sim")  # registered in this order


def _group(name: str):
    return importlib.import_module(f"irsock.cli.{name}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``command`` (one of COMMAND_GROUPS) only of its group's commands."""
    from irsock import __version__

    parser = argparse.ArgumentParser(prog="irda", description="A userspace IrDA stack: tools and tests.",
                                     usage="irda [-h] [--version] COMMAND ...",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"irsock {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, help=argparse.SUPPRESS,
                                     prog="irda")
    if command is not None:
        _group(COMMAND_GROUPS[command]).register(commands)
        return parser
    for group in GROUPS:
        before = set(commands.choices)
        _group(group).register(commands)
        misplaced = {name for name in set(commands.choices) - before if COMMAND_GROUPS.get(name) != group}
        if misplaced:
            raise ValueError(f"COMMAND_GROUPS does not give {', '.join(sorted(misplaced))} to {group}")
    if set(COMMAND_GROUPS) - set(commands.choices):
        raise ValueError(f"COMMAND_GROUPS names unregistered {', '.join(set(COMMAND_GROUPS) - set(commands.choices))}")
    from irsock.cli import completion

    completion.register(commands, build_parser)
    _in_order(commands, COMMAND_ORDER)
    completion.mark_file_arguments(parser)
    parser.epilog = _command_listing(parser)
    return parser


def _in_order(commands: argparse._SubParsersAction, names: Sequence[str]) -> None:
    """Put the commands in the order of ``names`` (the parsers, and their lines in the help)."""
    unplaced = set(commands.choices) ^ set(names)
    if unplaced:
        raise ValueError(f"COMMAND_ORDER and the registered commands differ in {', '.join(sorted(unplaced))}")
    parsers = dict(commands.choices)
    commands.choices.clear()  # in place: argparse looks commands up in the same dict
    commands.choices.update((name, parsers[name]) for name in names)
    commands._choices_actions.sort(key=lambda choice: names.index(choice.dest))


# --- irda --help ----------------------------------------------------------------------------------------
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


def _skip_final_collections() -> None:
    """Freeze the heap when the interpreter exits: its final garbage collections then skip the ~24,000 objects
    the imports made, which nothing needs collected in a process that ends (20 ms of every command's exit). Exit
    handlers still run; only cycles left unreachable are not finalized, and the commands close their files and
    ports themselves."""
    atexit.unregister(gc.freeze)  # once, however often main runs in one process (the tests)
    atexit.register(gc.freeze)


def main(argv: Sequence[str] | None = None) -> int:
    _skip_final_collections()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv and argv[0] in COMMAND_GROUPS else None)
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
