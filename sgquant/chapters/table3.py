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
the FP32 model's and the paper's (:func:`overall_table`). A row's saving is the ratio
of the mean memories across its searches (the median and the lowest beside it); it
reaches the paper's only when every search does (:func:`reaches_paper`); a search that kept FP32 has drop 0; a row
whose model the profile trains at another size than the paper is not comparable
(:func:`paper_mismatch`).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from ..assignment import BitAssignment
from ..checks import check_optional_int
from ..data import available_datasets
from ..models import get_model
from ..paper import paper_table
from ..settings import RunSettings
from ..profiles import Profile, get_profile
from ..runner import Runner, cost_by_purpose
from ..seeds import SeedPlan, get_plan
from ..variants import Variant, get_variant
from .at_paper import AT_PAPER_FIELDS, at_paper_info, paper_table3_saving
from .common import (NOT_AVAILABLE, NOT_IN_PROFILE, chapter_settings, dataset_available,
                     final_finetune_jobs, mean_std, measurement_runner, percent, pretrain,
                     resolve_datasets, resolve_models, resolve_seeds, run_labelled,
                     search_settings)

__all__ = ["DEFAULT_VARIANTS", "overall_runs", "overall_table", "paper_mismatch", "reaches_paper"]

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


def _per_search(ran: pd.DataFrame) -> pd.DataFrame:
    """One row per search seed: means over evaluation seeds of the choice's accuracies
    and drop, and its saving and memory. A search that kept FP32 (``found`` false: no
    configuration passed) ships the FP32 model itself, so its drop is 0 by definition
    and its accuracies are the FP32 model's (not a further fine-tune of FP32 weights)."""
    kept = ~ran["found"].fillna(True).astype(bool) if "found" in ran else \
        pd.Series(False, index=ran.index)
    ran = ran.assign(
        test=ran["test"].where(~kept, ran["fp32_test"]),
        best_test=ran["best_test"].where(~kept, ran["fp32_best_test"]),
        val=ran["val"].where(~kept, ran["fp32_val"]),
        memory_mb=ran["memory_mb"].where(~kept, ran["fp32_memory_mb"]),
        saving=ran["saving"].where(~kept, 1.0))
    if "search_top_saving" not in ran:  # runs put together without it (by hand)
        ran = ran.assign(search_top_saving=np.nan)
    return ran.assign(acc_drop=ran["fp32_test"] - ran["test"]).groupby("search_seed").agg(
        test=("test", "mean"), acc_drop=("acc_drop", "mean"), best_test=("best_test", "mean"),
        saving=("saving", "first"), formula_saving=("paper_saving", "first"),
        average_bits=("average_bits", "first"), memory_mb=("memory_mb", "first"),
        found=("found", "first"), chosen=("chosen", "first"),
        search_top_saving=("search_top_saving", "first"), val=("val", "mean"),
        fp32_val=("fp32_val", "mean"))


def _aggregate(ran: pd.DataFrame, tolerance: float) -> dict:
    r"""One (dataset, model, variant): per search seed the means over evaluation seeds
    (:func:`_per_search`), then across search seeds. The row's saving is the ratio of
    the mean memories,

    .. math:: \text{saving} = \frac{\text{FP32 MB}}{\frac{1}{S}\sum_s \text{MB}_s},

    (30x and 1x give 1.9x), beside the median and the lowest of the searches' savings
    and, labelled, their mean (``saving_mean_of_ratios``: 15.5x there); ``32 / average
    bits`` likewise of the mean bits. ``_std`` columns: sample std across search seeds
    (the FP32 columns: across evaluation seeds; ``val_std``: over all runs)."""
    per = _per_search(ran)
    row: dict[str, Any] = {"status": "run", "seeds": int(ran["seed"].nunique()),
                           "searches": len(per)}
    fp32 = ran.drop_duplicates("seed")  # one FP32 model per evaluation seed
    for col in ("fp32_test", "fp32_best_test", "fp32_val"):
        row[col], row[f"{col}_std"] = mean_std(fp32[col])
    row["val"], row["val_std"] = mean_std(per["val"])
    for col in ("test", "acc_drop", "best_test", "average_bits", "memory_mb"):
        row[col], row[f"{col}_std"] = mean_std(per[col])
    row["fp32_memory_mb"] = float(ran["fp32_memory_mb"].iloc[0])
    row["saving"] = row["fp32_memory_mb"] / row["memory_mb"]
    row["saving_mean_of_ratios"], row["saving_std"] = mean_std(per["saving"])
    row["saving_median"] = float(per["saving"].median())
    row["saving_min"], row["saving_max"] = float(per["saving"].min()), float(per["saving"].max())
    row["formula_saving"] = 32.0 / row["average_bits"]
    row["over_tolerance"] = int((per["acc_drop"] > tolerance + 1e-9).sum())
    row["found"] = int(per["found"].fillna(True).astype(bool).sum())
    row["search_top_saving"] = float(per["search_top_saving"].mean())
    row["chosen"] = " | ".join(dict.fromkeys(per["chosen"]))
    # each search's choice: (saving, test drop, validation drop), means over evaluation seeds
    row["search_choices"] = [(float(r.saving), float(r.acc_drop), float(r.fp32_val - r.val))
                             for r in per.itertuples()]
    row["final_epochs"] = int(ran["final_epochs"].iloc[0])
    return row


def paper_mismatch(model: str, profile: "str | Profile | RunSettings | None") -> str:
    """``""`` when ``profile`` trains ``model`` at the paper's size (or no profile is
    given), else the profile's size as the paper writes it (GAT: heads x hidden, ``"8 x
    8"`` against the paper's 8 x 256): such a row is not comparable with the paper's."""
    if profile is None:
        return ""
    prof = profile.profile if isinstance(profile, RunSettings) else get_profile(profile)
    return get_model(model).paper_mismatch(prof)


def reaches_paper(t: pd.DataFrame, tolerance: float) -> pd.Series:
    """Rows of :func:`overall_table` that reach the paper's Table III saving at a drop of
    at most ``tolerance`` points: **every** search's saving at least the paper's (the
    lowest, ``saving_min``, not a mean) and the row's mean test drop within tolerance."""
    return ((t["saving_min"] >= t["paper_saving"] - 1e-9)
            & (t["acc_drop"] <= tolerance + 1e-9)).fillna(False).astype(bool)


def overall_table(runs: pd.DataFrame, tolerance: float = 0.5,
                  profile: "str | Profile | RunSettings | None" = None) -> pd.DataFrame:
    """Table III: one row per (dataset, model, variant) run (:func:`_aggregate`), beside
    the paper's numbers, in the paper's row order; pairs the paper does not have (another
    dataset) follow with its columns empty, pairs not run keep their ``status``.
    ``acc_drop`` is FP32 test minus the variant's test (points), ``over_tolerance`` the
    searches whose drop exceeds ``tolerance``, ``searches_reaching`` those whose saving
    is at least the paper's, ``reaches`` :func:`reaches_paper`. ``comparable``: false
    where ``profile`` (the runs') trains the model at another size than the paper
    (:func:`paper_mismatch`, in ``architecture``); such rows count in no comparison with
    the paper."""
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
        mismatch = paper_mismatch(m, profile) if p is not None else ""
        base: dict[str, Any] = {"dataset": d, "model": m, "comparable": not mismatch,
                                "architecture": mismatch}
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
    out = pd.DataFrame(rows)
    if "saving_min" in out:
        out["searches_reaching"] = [
            sum(c[0] >= ps - 1e-9 for c in ch) if isinstance(ch, list) and pd.notna(ps)
            else np.nan for ch, ps in zip(out["search_choices"], out["paper_saving"])]
        out["reaches"] = reaches_paper(out, tolerance)
    return out
