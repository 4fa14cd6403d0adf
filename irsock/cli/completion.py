"""``irda completion``: the shell completion script of the whole parser (shtab), and which arguments complete file
or folder names. It is handed ``build_parser`` rather than importing it: the package imports this module."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

from irsock.cli.common import EXIT_OK, subcommands

COMPLETION_SHELLS = ("bash", "zsh", "fish")
FILE_METAVARS = {"RAW", "FILE", "FILE.pcap", "OUT.pcap"}
# shtab's FILE and DIRECTORY, spelled out so that building the parser does not import shtab
FILE_COMPLETION = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f",
                   "fish": "(__fish_complete_path (commandline -ct))"}
DIRECTORY_COMPLETION = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/", "tcsh": "d",
                        "fish": "(__fish_complete_directories)"}


def register(commands: argparse._SubParsersAction, build_parser: Callable[[], argparse.ArgumentParser]) -> None:
    """``irda completion``, whose script describes the parser that ``build_parser`` makes."""
    completion = commands.add_parser(
        "completion", help="print the shell completion script (bash, zsh, fish)",
        description="Print the tab-completion script of irda for SHELL (commands, options, choices, file "
        "names). Install it once: irda completion bash > ~/.local/share/bash-completion/completions/irda; "
        "irda completion zsh > ~/.zfunc/_irda (with fpath+=(~/.zfunc) before compinit in ~/.zshrc); "
        "irda completion fish > ~/.config/fish/completions/irda.fish.")
    completion.add_argument("shell", choices=COMPLETION_SHELLS, metavar="SHELL", help="bash, zsh or fish")
    completion.set_defaults(func=functools.partial(cmd_completion, build_parser=build_parser))


def mark_file_arguments(parser: argparse.ArgumentParser) -> None:
    """Tell shtab which arguments of ``parser`` and its commands complete file names and which folder names."""
    for action in (parser, *subcommands(parser).values()):
        for argument in action._actions:
            if argument.metavar in FILE_METAVARS or argument.dest in ("port", "peer_port", "pcap", "output"):
                argument.complete = FILE_COMPLETION  # shtab completes file names there
            elif argument.dest == "dir":
                argument.complete = DIRECTORY_COMPLETION


def cmd_completion(args: argparse.Namespace, build_parser: Callable[[], argparse.ArgumentParser]) -> int:
    import shtab

    parser = build_parser()
    for action in parser._actions:  # hidden from the help only (the listing replaces it), not from completion
        if isinstance(action, argparse._SubParsersAction):
            action.help = None
    for sub in (parser, *subcommands(parser).values()):  # shtab describes a command by its description:
        for action in sub._actions:  # give it the one-line help instead of the paragraph
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    action.choices[choice.dest].description = choice.help
    print(shtab.complete(parser, args.shell), end="")
    return EXIT_OK
