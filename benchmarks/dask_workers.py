"""Search wall time on a Dask cluster with 1, 2 and 4 workers, beside the local pool.

One search (``sgquant search``, cost model, ``--profile``'s fine-tunes) runs
once per executor, each in a fresh results folder, so every run trains its FP32 model
(a second or two in the driver) and measures every configuration itself. The
executors: the local process pool with 2 workers (the default on 2 cores) and a
``LocalCluster`` (``--scheduler local``) with 1, 2 and 4 worker processes. The table
gives the wall time of each run, its ratio to the 1-worker cluster, and whether its
answer (the chosen configuration and every measured record) is identical to the local
pool's. Workers beyond the cores share them, so on a 2-core machine 4 workers cannot
be faster than 2.

    .venv/bin/python benchmarks/dask_workers.py [--budget 16] [--dataset Cora] [--profile default]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from _args import ScriptParser, check_dataset, run_script  # benchmarks/_args.py

REPO = Path(__file__).resolve().parents[1]
SGQUANT = [sys.executable, "-m", "sgquant.cli"]


def _search(args: argparse.Namespace, results: Path, extra: list[str]) -> tuple[float, dict]:
    out = results / "result.json"
    cmd = [*SGQUANT, "search", "--dataset", args.dataset, "--model", args.model,
           "--profile", args.profile, "--budget", str(args.budget), "--results", str(results),
           "--output", str(out), "--no-progress", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"dask_workers: {' '.join(extra)} failed (exit "
                         f"{proc.returncode}): {tail}")
    return seconds, json.loads(out.read_text())


def _answer(result: dict) -> tuple:
    """What must not depend on the executor: the choice and every measured record
    (minus wall times and the worker that ran it)."""
    drop = {"seconds", "worker", "wall_seconds"}
    records = [{k: v for k, v in r.items() if k not in drop} for r in result["records"]]
    records.sort(key=lambda r: json.dumps(r, sort_keys=True))
    return json.dumps(result["chosen"], sort_keys=True), json.dumps(records, sort_keys=True)


def parse_args(argv: "Sequence[str] | None" = None) -> argparse.Namespace:
    """The options, each checked before any search starts (``_args``): model, profile,
    a budget that holds the profile's search rounds, worker counts >= 1, the dataset
    registered and present."""
    from sgquant.checks import check_int, check_int_list
    from sgquant.models import MODELS
    from sgquant.profiles import get_profile
    from sgquant.search.driver import resolve_rounds

    p = ScriptParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="Cora")
    p.add_argument("--model", default="gcn", choices=MODELS)
    p.add_argument("--profile", default="quick", choices=["quick", "default"],
                   help="the fine-tunes' profile (default: quick, short fine-tunes where "
                        "the executors' overhead shows; 'default': 10-epoch fine-tunes)")
    p.add_argument("--budget", type=int, default=16)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4],
                   help="worker processes of each Dask LocalCluster (default: 1 2 4)")
    args = p.parse_args(argv)
    args.budget = check_int(args.budget, "--budget", minimum=1)
    try:  # the rounds of the profile's cost-model search must fit in the budget
        resolve_rounds(args.budget, None, None, get_profile(args.profile))
    except ValueError as exc:
        raise ValueError(f"--budget: {exc}") from None
    args.workers = check_int_list(args.workers, "--workers", minimum=1)
    args.dataset = check_dataset(args.dataset, "--dataset")
    return args


def main(argv: "Sequence[str] | None" = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sgquant-dask-") as tmp:
        runs = [("local pool, 2 processes", ["--workers", "2"])]
        runs += [(f"Dask LocalCluster, {n} worker{'s' * (n > 1)}",
                  ["--scheduler", "local", "--workers", str(n)]) for n in args.workers]
        rows = []
        for label, extra in runs:
            folder = Path(tmp) / f"run{len(rows)}"
            folder.mkdir()
            seconds, result = _search(args, folder, extra)
            rows.append((label, seconds, _answer(result), result["num_measured"]))

    reference = rows[0][2]
    one = next((s for label, s, _, _ in rows if label.endswith(", 1 worker")), rows[0][1])
    print(f"search wall time: {args.dataset} {args.model}, {args.profile} profile, budget "
          f"{args.budget}, {os.cpu_count()} cores")
    print(f"{'executor':<32} {'measured':>8} {'wall s':>8} {'vs 1 worker':>12} {'identical':>10}")
    for label, seconds, answer, measured in rows:
        print(f"{label:<32} {measured:>8} {seconds:>8.1f} {seconds / one:>11.2f}x "
              f"{str(answer == reference):>10}")
    same = all(answer == reference for _, _, answer, _ in rows)
    print(f"answers identical across executors: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(run_script(main))
