"""The benchmark scripts' command line, handled as the ``sgquant`` command handles its own
(:mod:`sgquant.cli`): every argument is checked before any work; a bad one is one line on
stderr naming it, exit status 2; no traceback.

Each script parses with :class:`ScriptParser`, checks its values with
:mod:`sgquant.checks` (option names as the names, e.g. ``check_int(n, "--repeats",
minimum=1)``) and :func:`check_dataset`, and ends with ``sys.exit(run_script(main))``.
A run that cannot do its work says why in one line and exits non-zero
(``sys.exit("script: why")``, status 1).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NoReturn, Optional, Sequence

__all__ = ["ScriptParser", "run_script", "check_dataset"]


class ScriptParser(argparse.ArgumentParser):
    """argparse's own refusals (unknown option, invalid choice, not an integer) on one
    line with exit status 2, like every other bad argument (:func:`run_script`)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run_script(main: Callable[[Optional[Sequence[str]]], Optional[int]],
        argv: Optional[Sequence[str]] = None) -> int:
    """``main(argv)``'s exit status; a :class:`ValueError` (a bad argument, or data that
    cannot be used, e.g. a dataset unavailable offline) is printed as one line, status 2,
    as ``sgquant`` prints it (:func:`sgquant.cli.main`)."""
    prog = Path(sys.argv[0]).name
    try:
        return int(main(argv) or 0)
    except ValueError as exc:
        print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def check_dataset(name: str, option: str) -> str:
    """``name``'s canonical name (a registered dataset, or a graph file's absolute path,
    :func:`sgquant.data.canonical_name`) once its data is known to be usable: a
    registered dataset's raw files present (in the data root or the mirror) or else
    loaded now, which downloads them or raises :class:`ValueError` saying which files to
    place where; a graph file loaded and checked now (shapes, labels, NaN features).
    Every error names ``option``."""
    from sgquant.data import REGISTERED, canonical_name, is_available, load_dataset

    try:
        canon = canonical_name(name)
        if canon not in REGISTERED or not is_available(canon):
            load_dataset(canon)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None
    return canon
