"""The ``sgquant`` command.

Each subcommand lives beside the code it drives: a module registers it with
``add_cli(subparsers)`` (its parser, with ``func`` set to a handler taking the
parsed arguments and returning an exit code). Bad input (``ValueError``, a
Dask scheduler address where no scheduler answers included) is printed as one line
without a traceback and the command exits with 2; a
command that could not do its work raises one of the exception types it lists
in ``failures`` (``set_defaults(failures=(...))``), printed the same way, exit 1.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from . import __version__

#: Modules that register subcommands, in the order ``--help`` lists them.
SUBCOMMAND_MODULES = ("sgquant.train_cli", "sgquant.search.cli", "sgquant.book")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgquant",
        description="Reproducible SGQuant: quantize GNN features, search bit "
                    "assignments, build the book.")
    parser.add_argument("--version", action="version", version=f"sgquant {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # subcommand not available in this installation
        module.add_cli(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"sgquant {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except tuple(getattr(args, "failures", ())) as exc:
        print(f"sgquant {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sgquant {args.command}: interrupted (measured results are kept in the cache)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
