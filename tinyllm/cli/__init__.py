"""The ``tinyllm`` command line: one module per command, each an ``add(subparsers)`` (its
arguments) and a ``run(args)`` (what it does, by calling the library); ``options`` holds the
options several commands share, and those of ``tinyllm train``, generated from ``TrainConfig``.

A ``TinyLLMError`` (something the user can fix) is printed as one line, exit status 1; anything
else is a bug in tinyllm and shows its traceback (``--debug`` or ``TINYLLM_DEBUG=1`` shows it for
``TinyLLMError`` too). A wrong option is one or two lines naming the command, the option and the
closest valid one, exit status 2. The library modules that import PyTorch are imported by the
commands that need them, so that ``tinyllm --help`` answers at once; and the program (``command``)
exits as soon as its command is done, without the interpreter's last walk over every object
PyTorch made (``gc.freeze``: ~1 s on a 2-core machine).
"""
import argparse
import difflib
import gc
import os
import re
import sys
import textwrap
import traceback

from ..errors import TinyLLMError
from . import check, compare, data, evaluate, explore, export, generate, sweep, tokenizer, train

COMMANDS = [train, sweep, data, generate, evaluate, explore, tokenizer, check, export,
            compare]  # --help's order


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with lines never broken inside a flag's name ('--init-from')."""

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in one or two lines: what was wrong (with the closest valid
    option for a misspelt one), and where the options are listed — not the whole usage."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        choice = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:                       # a mistyped command or choice: the closest, by name
            allowed = [c.strip(" '") for c in choice[3].split(",")]
            close = difflib.get_close_matches(choice[2], allowed, n=1)
            message = (f"argument {choice[1]}: invalid choice: '{choice[2]}'"
                       + (f": did you mean {close[0]}?" if close else
                          f" (choose from {', '.join(allowed)})"))
        self.exit(2, f"{self.prog}: error: {message}\nsee '{self.prog} --help' for the options\n")

    def unknown(self, extras: list[str]):
        """Report options this (sub)command does not have, naming the closest one."""
        option = next((e for e in extras if e.startswith("-")), extras[0])
        known = [o for action in self._actions for o in action.option_strings]
        close = difflib.get_close_matches(option.split("=")[0], known, n=1)
        what = "option" if option.startswith("-") else "argument"
        self.error(f"unrecognized {what} {option}"
                   + (f": did you mean {close[0]}?" if close else ""))


def build_parser() -> Parser:
    parser = Parser(prog="tinyllm", description="Build, train and run a tiny GPT from scratch.",
                    epilog="Run 'tinyllm COMMAND --help' for a command's options.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of every error (also: TINYLLM_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        command = parser._subparsers._group_actions[0].choices.get(args.command, parser) \
            if args.command else parser
        command = _innermost(command, args)
        command.unknown(extras)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("tinyllm: interrupted", file=sys.stderr)
        return 130
    except TinyLLMError as e:   # the user's to fix: one line (the rest is a bug: a traceback)
        if args.debug or os.environ.get("TINYLLM_DEBUG") not in (None, "", "0"):
            traceback.print_exc()
        print(f"tinyllm {args.command}: error: {e}", file=sys.stderr)
        return 1


def command() -> None:
    """The ``tinyllm`` program (and ``python -m tinyllm``): ``main``, then exit."""
    status = main()
    gc.freeze()              # what is left goes with the process, without being collected first
    sys.exit(status)


def _innermost(parser, args):
    """The sub-subcommand's parser (``tinyllm tokenizer train``) when there is one."""
    action = getattr(args, "action", None)
    subparsers = getattr(parser, "_subparsers", None)
    if action and subparsers is not None:
        return subparsers._group_actions[0].choices.get(action, parser)
    return parser


__all__ = ["main", "command", "build_parser", "COMMANDS"]
