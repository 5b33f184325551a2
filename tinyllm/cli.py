"""The ``tinyllm`` command line. Each subcommand is a small ``add_*`` (its arguments) plus a
``cmd_*`` (what it does, by calling the library). Errors become one line and exit status 1.
"""
import argparse
import sys

from .errors import TinyLLMError

# -- subcommands --------------------------------------------------------------------------
# (each section: add_<name>(subparsers) registers it; cmd_<name>(args) runs it and returns 0)

COMMANDS = []  # add_* functions, in the order --help lists them


def command(add):
    COMMANDS.append(add)
    return add


# -- main ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyllm",
        description="Build, train and run a tiny GPT from scratch.",
        epilog="Run 'tinyllm COMMAND --help' for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("tinyllm: interrupted", file=sys.stderr)
        return 130
    except (TinyLLMError, ValueError, OSError) as e:
        print(f"tinyllm {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
