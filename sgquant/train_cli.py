"""``sgquant train``: FP32 baselines and uniform-bit fine-tuning from the command line.

    sgquant train --dataset Cora --model gcn --seeds 3 --bits 8 4

prints FP32 and quantized accuracy (mean ± sample standard deviation over seeds,
ddof = 1; one seed shows no ±; configurations selected on validation, test
reported) with the memory saving of each bit width. Files are checked before any
work; a full disk later is one line (exit 1) and what was trained stays in the cache.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd

from .assignment import BitAssignment
from .cache import (WriteFailed, check_output_file, check_results_folder,
                    stale_records_notice, write_result_json)
from .checks import check_int, check_int_list
from .measure import measure, prepare
from .models import MODELS
from .profiles import PROFILES, get_profile
from .quantize import ALLOWED_BITS

__all__ = ["uniform_bits_table", "summarize", "mean_pm_std", "check_widths", "add_cli"]


def check_widths(bits: Any) -> list[int]:
    """Uniform bit widths to fine-tune: allowed widths, each given once."""
    widths = check_int_list(bits, "--bits", minimum=1, maximum=max(ALLOWED_BITS),
                            allow_empty=True)
    for b in widths:
        if b not in ALLOWED_BITS:
            raise ValueError(f"--bits entry {b} is not an allowed width; choose from "
                             f"{', '.join(map(str, ALLOWED_BITS))}")
    repeated = sorted({b for b in widths if widths.count(b) > 1})
    if repeated:
        raise ValueError(f"--bits lists {', '.join(map(str, repeated))} more than once "
                         f"(got {' '.join(map(str, widths))}): give each width once")
    return widths


def uniform_bits_table(dataset: str, model: str, bits: Sequence[int], seeds: Sequence[int],
                       profile: str = "default", results: Optional[str] = None,
                       device: Optional[str] = None) -> pd.DataFrame:
    """One row per (bits, seed): FP32 (bits 32, not fine-tuned) and uniform ``bits``,
    on ``device`` (:func:`sgquant.device.resolve_device`)."""
    prof = get_profile(profile)
    bits = check_widths(bits)
    rows = []
    for seed in seeds:
        setup = prepare(dataset, model, seed, prof, results, device=device)
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


def mean_pm_std(values: pd.Series) -> str:
    """``mean ± std`` in percent, the std the sample one (ddof = 1); a single value
    has no spread to show, so it is printed alone."""
    mean = 100 * values.mean()
    if len(values) < 2:
        return f"{mean:.2f}"
    std = 100 * values.std(ddof=1)
    return f"{mean:.2f} ± {std:.2f}" if math.isfinite(std) else f"{mean:.2f}"


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sample std (ddof = 1, in %) over seeds per bit width."""
    out = []
    for bits, group in table.groupby("bits", sort=False):
        out.append({
            "bits": bits, "seeds": len(group),
            "val %": mean_pm_std(group.val_acc),
            "test %": mean_pm_std(group.test_acc),
            "authors' best test %": f"{100 * group.best_test_acc.mean():.2f}",
            "average bits": f"{group.average_bits.mean():.2f}",
            "saving": f"{group.saving.mean():.2f}x"})
    return pd.DataFrame(out)


def is_train_output(payload: Any) -> bool:
    """Whether ``payload`` (parsed JSON) is a file ``sgquant train`` wrote."""
    return isinstance(payload, dict) and {"runs", "summary"} <= set(payload)


def _run(args: argparse.Namespace) -> int:
    from .settings import use_run_settings

    seeds = check_int(args.seeds, "--seeds", minimum=1)
    bits = check_widths(args.bits)
    settings = use_run_settings(args.device)
    results = check_results_folder(args.results)
    if args.output:
        check_output_file(args.output, is_train_output)
    notice = stale_records_notice(results)
    if notice:
        print(f"sgquant train: {notice}", file=sys.stderr)
    table = uniform_bits_table(args.dataset, args.model, bits, list(range(seeds)),
                               args.profile, str(results))
    summary = summarize(table)
    print(f"{args.dataset} / {args.model} / profile {args.profile} / {settings['device']} "
          f"(mean ± sample std over {seeds} seed{'s' if seeds > 1 else ''}, in %)")
    print(summary.to_string(index=False))
    if args.output:
        write_result_json(Path(args.output),
                          {"runs": json.loads(table.to_json(orient="records")),
                           "summary": summary.to_dict(orient="records")}, results)
    return 0


def add_cli(subparsers: Any) -> None:
    from .settings import add_settings_arguments

    p = subparsers.add_parser("train", help="FP32 baseline and uniform-bit fine-tuning",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--bits", type=int, nargs="*", default=[8, 4],
                   help="uniform bit widths to fine-tune, each once (default: 8 4)")
    p.add_argument("--seeds", type=int, default=3,
                   help="seeds 0..N-1; accuracies are mean ± sample std (ddof = 1) "
                        "over them (default 3)")
    p.add_argument("--profile", default="default", choices=list(PROFILES))
    p.add_argument("--results", default=None,
                   help="results cache (default $SGQUANT_RESULTS or ./results)")
    p.add_argument("--output", default=None, help="write the runs as JSON here")
    add_settings_arguments(p, scheduler=False)
    p.set_defaults(func=_run, failures=(WriteFailed,))  # a full disk: one line, exit 1
