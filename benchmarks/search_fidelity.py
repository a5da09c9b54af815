"""The old and the new search side by side: fine-tunes in full against thrifty ones.

For each dataset, search method (cost-model, random) and search seed it runs the same
search twice, with fidelity ``full`` (every fine-tune all its epochs: the schedule before
2026-12-02) and ``thrifty`` (:mod:`sgquant.fidelity`), on the Table III search model of
its profile, then fine-tunes each choice with the variant's final fine-tune from the
evaluation seeds' FP32 models (what Table III reports; the same for both fidelities, so
a choice made twice is measured once). It prints one row per search: the fine-tune epochs
spent by purpose (candidates, confirmation; the final fine-tunes are the same work for
both and are left out), the choice, its saving, its validation drop (search FP32
validation minus the confirmed validation accuracy; 0 when FP32 is kept) and its test
drop (evaluation FP32 test minus the final fine-tunes' test, means over the evaluation
seeds; 0 when FP32 is kept), then per (dataset, method) and in all the ratio of thrifty
to full epochs. A third arm, ``epochs`` (``--arms``), is thrifty with a budget in epochs
(``SearchSpec.epoch_budget``): ``--epoch-share`` (default 0.5) of the epochs a search
with every fine-tune in full spends on its candidates, so it measures as many
configurations as those epochs buy. Nothing is chosen here: it reports.

    .venv/bin/python benchmarks/search_fidelity.py --datasets Cora CiteSeer --model gcn \\
        --seeds 0 1 2 --variant sgquant+
"""
from __future__ import annotations

import argparse  # noqa: F401  (the parser is benchmarks/_args.py's)
import sys
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from sgquant.checks import check_int_list, check_number
from sgquant.models import MODELS
from sgquant.profiles import PROFILES
from sgquant.runner import running
from sgquant.search import SearchSpec, search
from sgquant.seeds import DEVELOPMENT
from sgquant.settings import RunSettings
from sgquant.variants import VARIANTS

from _args import ScriptParser, check_dataset, run_script  # noqa: E402  (benchmarks/_args.py)

#: The FP32 model every search runs on: the development plan's first search model (seed
#: 100), so that the two fidelities differ in nothing else.
SEARCH_MODEL = DEVELOPMENT.search_fp32(0)
ARMS = ("full", "thrifty", "epochs")


def _final_test_drop(runner, dataset: str, model: str, chosen, variant) -> float:
    """Evaluation FP32 test minus the final fine-tunes' test (points), mean over seeds."""
    if chosen is None:
        return 0.0
    prof = runner.settings.profile
    jobs = [runner.finetune_job(dataset, model, s, chosen, options=variant.options,
                                finetune=variant.final_finetune(prof)).for_purpose("final")
            for s in prof.seed_list()]
    recs = runner.run(jobs)
    return float(np.mean([100 * (r["fp32_test_acc"] - r["test_acc"]) for r in recs]))


def one_search(runner, dataset: str, model: str, method: str, seed: int, arm: str,
               variant: str, epoch_share: float = 0.5) -> dict:
    """One search of ``arm`` (:data:`ARMS`) and its final fine-tunes, as a row."""
    prof = runner.settings.profile
    epoch_budget = (None if arm != "epochs" else
                    max(prof.finetune_epochs,
                        round(epoch_share * prof.search_budget * prof.finetune_epochs)))
    spec = SearchSpec(seed=seed, fp32_seed=SEARCH_MODEL, variant=variant,
                      fidelity="full" if arm == "full" else "thrifty",
                      epoch_budget=epoch_budget)
    r = search(dataset, model, method, spec, settings=runner.settings,
               executor=runner.executor, progress=False)
    spent = {p: r.cost.get(p, {}).get("epochs", 0) for p in ("candidate", "confirmation")}
    found = r.chosen is not None
    return {"dataset": r.dataset, "method": method, "seed": seed, "fidelity": arm,
            "configurations": len(r.records), "candidate_epochs": spent["candidate"],
            "confirmation_epochs": spent["confirmation"],
            "epochs": sum(spent.values()), "chosen": str(r.chosen) if found else "FP32",
            "saving": r.chosen_saving if found else 1.0,
            "val_drop": 100 * (r.fp32_val_acc - r.chosen_val_acc_mean) if found else 0.0,
            "test_drop": _final_test_drop(runner, dataset, model, r.chosen, VARIANTS[variant])}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = ScriptParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["Cora", "CiteSeer"])
    p.add_argument("--model", default="gcn", choices=MODELS)
    p.add_argument("--methods", nargs="+", default=["cost-model", "random"],
                   choices=["cost-model", "random"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=list(ARMS[:2]), choices=ARMS,
                   help="full, thrifty (default both) and epochs (thrifty, budget in epochs)")
    p.add_argument("--epoch-share", type=float, default=0.5,
                   help="the epochs arm's budget: this share of a full search's candidate "
                        "epochs (budget x fine-tune epochs)")
    p.add_argument("--variant", default="sgquant+", choices=list(VARIANTS))
    p.add_argument("--profile", default="default", choices=list(PROFILES))
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--results", default=None)
    args = p.parse_args(argv)
    seeds = check_int_list(args.seeds, "--seeds", minimum=0)
    names = [check_dataset(d, "--datasets") for d in args.datasets]
    share = check_number(args.epoch_share, "--epoch-share", above=0.0)
    settings = RunSettings.resolve(args.profile, None, None, args.workers, args.results)
    rows = []
    with running(settings) as runner:
        for d in names:
            for method in args.methods:
                for s in seeds:
                    for arm in args.arms:
                        rows.append(one_search(runner, d, args.model, method, s, arm,
                                               args.variant, share))
                        print(pd.DataFrame(rows[-1:]).round(2).to_string(header=len(rows) == 1,
                                                                        index=False),
                              flush=True)
    t = pd.DataFrame(rows)
    wide = t.pivot_table(index=["dataset", "method"], columns="fidelity",
                         values=["configurations", "epochs", "saving", "val_drop", "test_drop"],
                         aggfunc="mean")
    print(f"\nmeans over search seeds {seeds} ({args.variant}, {args.model}, {args.profile}):")
    print(wide.round(2).to_string())
    total = t.groupby("fidelity")["epochs"].sum()
    for arm in [a for a in args.arms if a != "full"]:
        if "full" in total:
            print(f"fine-tune epochs, {arm} / full: {total[arm] / total['full']:.2f} "
                  f"({total[arm]} / {total['full']})")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
