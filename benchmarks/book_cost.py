"""What a profile's book cost, in epochs: the ledger of its results folder summed.

Every job a run asks for (FP32 trainings, search candidates, confirmations, final
fine-tunes, the chapters' own measurements; read from the cache or measured) has a line
in ``RESULTS/ledger/<profile>.jsonl`` (``sgquant.runner.ledger``). This script counts
each record once (a record asked for twice is paid once) and prints, by purpose and
then per dataset, the epochs, CPU-minutes (the records' single-threaded seconds) and
jobs; its last line reads ``book cost: N epochs, M CPU-minutes (profile P)``. An empty
or missing ledger is one line on stderr, exit status 1.

    .venv/bin/python benchmarks/book_cost.py --profile quick [--results DIR]
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

import pandas as pd

from sgquant.cache import results_root
from sgquant.profiles import get_profile
from sgquant.runner.ledger import cost_table, ledger_path, read_ledger, unique_entries

from _args import ScriptParser, run_script  # benchmarks/_args.py


def parse(argv: Optional[Sequence[str]]) -> tuple[str, str]:
    """(profile name, results folder), checked before any work."""
    ap = ScriptParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", required=True, help="the profile whose book to count")
    ap.add_argument("--results", default=None,
                    help="results folder (default: $SGQUANT_RESULTS, else ./results)")
    args = ap.parse_args(argv)
    try:
        name = get_profile(args.profile).name
    except ValueError as exc:
        raise ValueError(f"--profile: {exc}") from None
    return name, str(results_root(args.results))


def _show(df: pd.DataFrame) -> str:
    return df.assign(cpu_minutes=df["cpu_minutes"].map(lambda m: f"{m:.2f}")).to_string(
        index=False)


def main(argv: Optional[Sequence[str]] = None) -> int:
    profile, results = parse(argv)
    path = ledger_path(results, profile)
    entries = read_ledger(path)
    if not entries:
        sys.exit(f"book_cost.py: no ledger entries for profile {profile} in {path}: "
                 "run the book (or a chapter, a search) with this results folder first")
    unique = unique_entries(entries)
    print(f"book cost of profile {profile}: {len(entries)} ledger lines, {len(unique)} "
          f"records ({path})")
    by_purpose = cost_table(entries)
    print("\nby purpose")
    print(_show(by_purpose))
    print("\nper dataset")
    print(_show(cost_table(entries, by=("dataset", "purpose"))))
    epochs = int(by_purpose["epochs"].sum())
    minutes = float(by_purpose["cpu_minutes"].sum())
    print(f"\nbook cost: {epochs} epochs, {minutes:.1f} CPU-minutes (profile {profile})")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
