"""Table III's protocol: the memory each method's chosen assignment saves, at what
accuracy (chapter 3, :mod:`sgquant.chapters.overall`; chapter 8's ablation repeats it for
every step, :mod:`sgquant.chapters.peers`).

For each (dataset, model) and each method variant (:mod:`sgquant.variants`: the
paper's SGQuant, our SGQuant+), ``search_seeds`` cost-model searches
(:func:`sgquant.search.cost_model_search`) choose a configuration on validation. Each
search seed searches on an FP32 model of its own, which both methods share (and
SGQuant+ confirms on the models that follow it), none of them an evaluation model: the
seed plan (:mod:`sgquant.seeds`, ``development`` or ``held-out``) says which. Each choice
is then fine-tuned (the variant's final fine-tune) from the FP32 model of every
evaluation seed (:func:`overall_runs`), and its test accuracy is reported once, beside
the FP32 model's and the paper's (:func:`overall_table`).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from ..assignment import BitAssignment
from ..checks import check_optional_int
from ..data import available_datasets
from ..paper import paper_table
from ..settings import RunSettings
from ..profiles import Profile
from ..runner import Runner, cost_by_purpose
from ..seeds import SeedPlan, get_plan
from ..variants import Variant, get_variant
from .at_paper import AT_PAPER_FIELDS, at_paper_info, paper_table3_saving
from .common import (NOT_AVAILABLE, NOT_IN_PROFILE, chapter_settings, dataset_available,
                     final_finetune_jobs, mean_std, measurement_runner, percent, pretrain,
                     resolve_datasets, resolve_models, resolve_seeds, run_labelled,
                     search_settings)

__all__ = ["DEFAULT_VARIANTS", "overall_runs", "overall_table"]

#: The methods Table III compares.
DEFAULT_VARIANTS = ("sgquant", "sgquant+")


def _seed_lists(plan: SeedPlan, prof: Profile, seeds: "int | Sequence[int] | None",
                search_seed: Optional[int], search_seeds: Optional[int],
                variants: list[Variant]) -> tuple[list[int], list[int], list[int]]:
    """The run's evaluation seeds (``None``: the plan's first ``prof.seeds``; a number
    ``n``: its first ``n``; a list: those), search seeds (from ``search_seed``, default
    the plan's first; ``search_seeds`` of them, default the profile's) and every FP32
    seed it trains; ``ValueError`` naming a seed two purposes would share."""
    if seeds is None or isinstance(seeds, int):
        n = prof.seeds if seeds is None else len(resolve_seeds(seeds, prof))
        seed_list = plan.evaluation_seeds(n)
    else:
        seed_list = resolve_seeds(seeds, prof)
    n = check_optional_int(search_seeds, "search_seeds", minimum=1)
    search_list = plan.search_seeds(prof.search_seeds if n is None else n, search_seed)
    confirm = max((v.confirmation.other_fp32 for v in variants), default=0)
    fp32 = list(plan.fp32_by_purpose(seed_list, search_list, confirm))
    return seed_list, search_list, fp32


def overall_runs(dataset: "str | Sequence[str] | None" = None,
                 model: "str | Sequence[str] | None" = None,
                 profile: "str | Profile | RunSettings" = "default",
                 seeds: "int | Sequence[int] | None" = None, *, tolerance: float = 0.5,
                 search_seed: Optional[int] = None, search_seeds: Optional[int] = None,
                 plan: "str | SeedPlan" = "development",
                 variants: Sequence["str | Variant"] = DEFAULT_VARIANTS,
                 workers: Optional[int] = None, include_missing: bool = True,
                 progress: bool = False) -> pd.DataFrame:
    """Table III, one row per (dataset, model, variant, search seed, evaluation seed).

    The seed ``plan`` (:func:`sgquant.seeds.get_plan`: ``"development"``, ``"held-out"``
    or a :class:`~sgquant.seeds.SeedPlan`) gives the evaluation seeds (``seeds``
    overrides them), the search seeds (``search_seed`` the first, ``search_seeds`` how
    many; default the plan's first and the profile's count) and each search seed's FP32
    model (``search_fp32_seed`` column) and confirmation models. Per (dataset, model)
    and search seed, each variant's search runs on that seed's FP32 model and chooses
    the largest saving within ``tolerance`` points of FP32 *validation* accuracy
    (confirmed as the variant says); every choice is then fine-tuned from the FP32 model
    of every evaluation seed with the variant's final fine-tune (``finetune_seed``: the
    evaluation stream, :func:`sgquant.seeds.evaluation_finetune_seed`), and its test
    accuracy at the best-validation epoch (ours) and best test accuracy over epochs (the
    authors' protocol) are recorded beside the FP32 model's. A dataset whose data is
    unavailable gets rows with ``status`` :data:`~sgquant.chapters.common.NOT_AVAILABLE`;
    with ``include_missing``, the paper's other pairs get one row saying why. The table's
    ``attrs["cost"]``: the epochs, CPU seconds and jobs the runs asked for, by purpose
    (:func:`sgquant.runner.cost_by_purpose`).
    """
    settings = chapter_settings(profile, workers)
    prof, chosen_plan = settings.profile, get_plan(plan)
    names = resolve_datasets(dataset, prof)
    models = resolve_models(model, prof)
    chosen_variants = [get_variant(v) for v in variants]
    seed_list, search_list, fp32 = _seed_lists(chosen_plan, prof, seeds, search_seed,
                                               search_seeds, chosen_variants)
    present = [d for d in names if dataset_available(d)]
    rows: list[dict] = []
    with measurement_runner(settings, asked_by="overall") as runner:
        pretrain(runner, [(d, m, s) for d in present for m in models for s in fp32])
        for name in names:
            if name not in present:
                rows += [{"dataset": name, "model": m, "status": NOT_AVAILABLE} for m in models]
                continue
            for m in models:
                rows += _pair_runs(name, m, runner, seed_list, search_list, chosen_plan,
                                   chosen_variants, tolerance, progress)
    if include_missing:
        done = {(r["dataset"], r["model"]) for r in rows}
        files = set(available_datasets())
        for r in paper_table("table3_overall").itertuples():
            if (r.dataset, r.model) not in done:
                status = NOT_AVAILABLE if r.dataset not in files else NOT_IN_PROFILE
                rows.append({"dataset": r.dataset, "model": r.model, "status": status})
    out = pd.DataFrame(rows)
    out.attrs["cost"] = cost_by_purpose(runner.account.entries)  # its searches' too
    return out


def _search_info(result: Any, v: Variant, s: int, target: Optional[float],
                 num_layers: int) -> tuple[BitAssignment, dict]:
    """A search's choice (FP32 if none) and what a run row says of the search."""
    chosen = result.chosen or BitAssignment.fp32(num_layers)
    feasible = result.records.loc[result.records["feasible"], "saving"]
    return chosen, {
        "variant": v.name, "variant_label": v.label, "search_seed": s,
        "search_fp32_seed": int(result.settings["fp32_seed"]),
        "chosen": str(chosen), "chosen_json": chosen.to_json(),
        "found": result.chosen is not None,
        "search_val": percent(result.chosen_val_acc_mean)
        if result.chosen is not None else np.nan,
        "search_top_saving": float(feasible.max()) if len(feasible) else np.nan,
        "search_measurements": result.num_measured,
        "search_confirmations": result.num_confirmations,
        "search_seconds": result.wall_seconds, **at_paper_info(result, target)}


def _pair_runs(name: str, m: str, runner: Runner, seed_list: list[int],
               search_list: list[int], plan: SeedPlan, variants: list[Variant],
               tolerance: float, progress: bool) -> list[dict]:
    """The searches of (``name``, ``m``) for every search seed (on its FP32 model, which
    every variant's search of that seed shares) and variant, then each choice fine-tuned
    from every evaluation seed; rows in (variant, search seed) order."""
    from ..search import cost_model_search

    prof = runner.settings.profile
    target = paper_table3_saving(name, m)
    searched: dict[tuple[str, int], tuple[BitAssignment, dict]] = {}
    for s in search_list:  # one search seed's variants in turn: its FP32 model stays prepared
        fp32_seed = plan.search_fp32(s)
        num_layers = runner.setup(name, m, fp32_seed).num_layers
        for v in variants:
            result = cost_model_search(name, m, tolerance=tolerance, seed=s, fp32_seed=fp32_seed,
                                       progress=progress, variant=v, **search_settings(runner))
            searched[v.name, s] = _search_info(result, v, s, target, num_layers)
    labels, jobs = [], []
    for v in variants:
        for s in search_list:
            chosen, info = searched[v.name, s]
            labels += [{**info, "seed": int(e)} for e in seed_list]
            jobs += final_finetune_jobs(runner, name, m, seed_list, chosen, v)
    return [{"dataset": name, "model": m, "status": "run", "plan": plan.name,
             "seed": rec["seed"], "finetune_seed": rec["finetune_seed"],
             **{k: rec[k] for k in ("variant", "variant_label", "search_seed",
                                    "search_fp32_seed", "chosen", "chosen_json", "found",
                                    "search_val", "search_top_saving", "search_measurements",
                                    "search_confirmations", "search_seconds",
                                    *AT_PAPER_FIELDS)},
             "fp32_val": percent(rec["fp32_val_acc"]), "fp32_test": percent(rec["fp32_test_acc"]),
             "fp32_best_test": percent(rec["fp32_best_test_acc"]),
             "val": percent(rec["val_acc"]), "test": percent(rec["test_acc"]),
             "best_test": percent(rec["best_test_acc"]),
             "average_bits": rec["average_bits"], "fp32_memory_mb": rec["fp32_memory_mb"],
             "memory_mb": rec["memory_mb"], "saving": rec["saving"],
             "paper_saving": rec["paper_saving"], "weight_mb": rec["weight_mb"],
             "final_epochs": rec["finetune"]["epochs"] or prof.finetune_epochs}
            for rec in run_labelled(runner, labels, jobs)]


def _aggregate(ran: pd.DataFrame, tolerance: float) -> dict:
    """One (dataset, model, variant): means over evaluation seeds per search seed, then
    mean and std across search seeds (the stability of the choice)."""
    if "search_top_saving" not in ran:  # runs put together without it (by hand)
        ran = ran.assign(search_top_saving=np.nan)
    per = ran.assign(acc_drop=ran["fp32_test"] - ran["test"]).groupby("search_seed").agg(
        test=("test", "mean"), acc_drop=("acc_drop", "mean"), best_test=("best_test", "mean"),
        saving=("saving", "first"), formula_saving=("paper_saving", "first"),
        average_bits=("average_bits", "first"), memory_mb=("memory_mb", "first"),
        found=("found", "first"), chosen=("chosen", "first"),
        search_top_saving=("search_top_saving", "first"), val=("val", "mean"),
        fp32_val=("fp32_val", "mean"))
    row: dict[str, Any] = {"status": "run", "seeds": int(ran["seed"].nunique()),
                           "searches": len(per)}
    fp32 = ran.drop_duplicates("seed")  # one FP32 model per evaluation seed
    for col in ("fp32_test", "fp32_best_test", "fp32_val"):
        row[col], row[f"{col}_std"] = mean_std(fp32[col])
    row["val"], row["val_std"] = mean_std(ran["val"])
    for col in ("test", "acc_drop", "best_test", "saving", "formula_saving", "average_bits",
                "memory_mb"):
        row[col], row[f"{col}_std"] = mean_std(per[col])
    row["over_tolerance"] = int((per["acc_drop"] > tolerance + 1e-9).sum())
    row["found"] = int(per["found"].astype(bool).sum())
    row["search_top_saving"] = float(per["search_top_saving"].mean())
    row["chosen"] = " | ".join(dict.fromkeys(per["chosen"]))
    # each search's choice: (saving, test drop, validation drop), means over evaluation seeds
    row["search_choices"] = [(float(r.saving), float(r.acc_drop), float(r.fp32_val - r.val))
                             for r in per.itertuples()]
    row["fp32_memory_mb"] = float(ran["fp32_memory_mb"].iloc[0])
    row["final_epochs"] = int(ran["final_epochs"].iloc[0])
    return row


def overall_table(runs: pd.DataFrame, tolerance: float = 0.5) -> pd.DataFrame:
    """Table III: one row per (dataset, model, variant) run (:func:`_aggregate`), beside
    the paper's numbers, in the paper's row order; pairs the paper does not have (another
    dataset) follow with its columns empty, pairs not run keep their ``status``.
    ``acc_drop`` is FP32 test minus the variant's test (points), ``over_tolerance`` the
    searches whose drop exceeds ``tolerance``."""
    paper = paper_table("table3_overall")
    runs = runs.reindex(columns=list(dict.fromkeys([*runs.columns, "dataset", "model", "status",
                                                    "variant"])))
    ran_all = runs[runs["status"] == "run"]
    order = [(p.dataset, p.model) for p in paper.itertuples()]
    order += [k for k in dict.fromkeys(zip(runs["dataset"], runs["model"])) if k not in order]
    by_pair = {(p.dataset, p.model): p for p in paper.itertuples()}
    rows = []
    for d, m in order:
        p = by_pair.get((d, m))
        base: dict[str, Any] = {"dataset": d, "model": m}
        if p is not None:
            base.update(paper_fp32_acc=p.fp32_accuracy, paper_acc=p.sgquant_accuracy,
                        paper_acc_drop=p.fp32_accuracy - p.sgquant_accuracy,
                        paper_average_bits=p.sgquant_average_bits,
                        paper_fp32_mb=p.fp32_memory_mb, paper_mb=p.sgquant_memory_mb,
                        paper_saving=p.saving)
        ran = ran_all[(ran_all["dataset"] == d) & (ran_all["model"] == m)]
        if not len(ran):
            sel = runs[(runs["dataset"] == d) & (runs["model"] == m)]
            rows.append({**base, "status": sel["status"].iloc[0] if len(sel) else NOT_IN_PROFILE})
            continue
        for v, sub in ran.groupby("variant", sort=False):
            rows.append({**base, "variant": v, "variant_label": sub["variant_label"].iloc[0],
                         **_aggregate(sub, tolerance)})
    return pd.DataFrame(rows)
