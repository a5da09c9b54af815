"""``sgquant train``: FP32 baselines and uniform-bit fine-tuning from the command line.

    sgquant train --dataset Cora --model gcn --seeds 3 --bits 8 4

prints FP32 and quantized accuracy (mean ± std over seeds; configurations
selected on validation, test reported) with the memory saving of each bit width.
"""
from __future__ import annotations

import argparse
import json
from typing import Optional

import pandas as pd

from .bits import BitAssignment
from .cache import atomic_write_json
from .measure import measure, prepare
from .models import MODELS
from .profiles import PROFILES, get_profile


def uniform_bits_table(dataset: str, model: str, bits: list[int], seeds: list[int],
                       profile: str = "default", results: Optional[str] = None) -> pd.DataFrame:
    """One row per (bits, seed): FP32 (bits 32, not fine-tuned) and uniform ``bits``."""
    prof = get_profile(profile)
    rows = []
    for seed in seeds:
        setup = prepare(dataset, model, seed, prof, results)
        rows.append({"bits": "fp32", "seed": seed, "val_acc": setup.fp32["val_acc"],
                     "test_acc": setup.fp32["test_acc"],
                     "best_test_acc": setup.fp32["best_test_acc"], "saving": 1.0,
                     "average_bits": 32.0})
        for b in bits:
            rec = measure(setup, BitAssignment.uniform(b, setup.num_layers), results=results)
            rows.append({"bits": str(b), "seed": seed,
                         **{k: rec[k] for k in ("val_acc", "test_acc", "best_test_acc",
                                                "saving", "average_bits")}})
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std (in %) over seeds per bit width."""
    out = []
    for bits, group in table.groupby("bits", sort=False):
        out.append({
            "bits": bits, "seeds": len(group),
            "val %": f"{100 * group.val_acc.mean():.2f} ± {100 * group.val_acc.std(ddof=0):.2f}",
            "test %": f"{100 * group.test_acc.mean():.2f} ± {100 * group.test_acc.std(ddof=0):.2f}",
            "authors' best test %": f"{100 * group.best_test_acc.mean():.2f}",
            "average bits": f"{group.average_bits.mean():.2f}",
            "saving": f"{group.saving.mean():.2f}x"})
    return pd.DataFrame(out)


def _run(args: argparse.Namespace) -> int:
    seeds = list(range(args.seeds))
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    table = uniform_bits_table(args.dataset, args.model, args.bits, seeds, args.profile,
                               args.results)
    summary = summarize(table)
    print(f"{args.dataset} / {args.model} / profile {args.profile}")
    print(summary.to_string(index=False))
    if args.output:
        atomic_write_json(__import__("pathlib").Path(args.output),
                          {"runs": json.loads(table.to_json(orient="records")),
                           "summary": summary.to_dict(orient="records")})
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("train", help="FP32 baseline and uniform-bit fine-tuning",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--bits", type=int, nargs="*", default=[8, 4],
                   help="uniform bit widths to fine-tune (default: 8 4)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--profile", default="default", choices=list(PROFILES))
    p.add_argument("--results", default=None, help="results cache (default ./results)")
    p.add_argument("--output", default=None, help="write the runs as JSON here")
    p.set_defaults(func=_run)
