"""Chapter 3 (Table III): the memory SGQuant's chosen assignment saves, at what accuracy.

For each (dataset, model), one cost-model search
(:func:`sgquant.search.cost_model_search`) chooses a configuration on validation;
it is then fine-tuned from the FP32 model of every seed and its test accuracy is
reported beside the FP32 model's and the paper's.
"""
from __future__ import annotations

import dataclasses
from concurrent.futures import Executor
from functools import cached_property
from typing import Any, Optional, Sequence

import pandas as pd

from ..bits import BitAssignment
from ..data import available_datasets
from ..paper import paper_table
from ..plots import MODEL_LABELS, format_overall, plot_overall_saving, table
from ..profiles import Profile, get_profile
from .common import (NOT_AVAILABLE, NOT_IN_PROFILE, BaseChapter, dataset_available, markdown,
                     mean_std, measurement_pool, percent, pretrain, resolve_datasets,
                     resolve_models, resolve_seeds, run_jobs)

__all__ = ["overall_runs", "overall_table", "reading_overall", "Chapter"]

#: Table III's columns, ours and the paper's, averaged over seeds by :func:`overall_table`.
_MEANS = ("fp32_test", "test", "best_test", "fp32_best_test", "val", "fp32_val")
_FIRST = ("average_bits", "fp32_memory_mb", "memory_mb", "saving", "paper_saving", "weight_mb",
          "chosen", "found")


def overall_runs(dataset: "str | Sequence[str] | None" = None,
                 model: "str | Sequence[str] | None" = None,
                 profile: "str | Profile" = "default",
                 seeds: "int | Sequence[int] | None" = None, *, tolerance: float = 0.5,
                 search_seed: int = 0, workers: Optional[int] = None,
                 include_missing: bool = True, progress: bool = False) -> pd.DataFrame:
    """Table III, one row per (dataset, model, seed).

    For each (dataset, model) one cost-model search
    (:func:`sgquant.search.cost_model_search`, seed ``search_seed``, the profile's
    budget) chooses the configuration with the largest saving within
    ``tolerance`` points of FP32 *validation* accuracy; that configuration is then
    fine-tuned from the FP32 model of every seed and its test accuracy (at the
    best-validation epoch: ours) and best test accuracy over epochs (the authors'
    protocol) are recorded beside the FP32 model's (from the measurement record).
    A dataset whose data is unavailable gets rows with ``status``
    :data:`~sgquant.chapters.common.NOT_AVAILABLE`; with ``include_missing``, the
    paper's other (dataset, model) pairs get one row saying why they were not run.
    """
    prof = get_profile(profile)
    names = resolve_datasets(dataset, prof)
    models = resolve_models(model, prof)
    seed_list = resolve_seeds(seeds, prof)
    present = [d for d in names if dataset_available(d)]
    rows: list[dict] = []
    with measurement_pool(prof, workers) as pool:
        fp32 = pretrain(pool, [(d, m, s) for d in present for m in models
                               for s in sorted({search_seed, *seed_list})], prof)
        for name in names:
            if name not in present:
                rows += [{"dataset": name, "model": m, "status": NOT_AVAILABLE} for m in models]
                continue
            for m in models:
                rows += _pair_runs(name, m, prof, seed_list, tolerance, search_seed, pool,
                                   fp32[(name, m, search_seed)]["num_layers"], progress)
    if include_missing:
        done = {(r["dataset"], r["model"]) for r in rows}
        files = set(available_datasets())
        for r in paper_table("table3_overall").itertuples():
            if (r.dataset, r.model) not in done:
                status = NOT_AVAILABLE if r.dataset not in files else NOT_IN_PROFILE
                rows.append({"dataset": r.dataset, "model": r.model, "status": status})
    return pd.DataFrame(rows)


def _pair_runs(name: str, m: str, prof: Profile, seed_list: list[int], tolerance: float,
               search_seed: int, pool: Executor, num_layers: int, progress: bool) -> list[dict]:
    """One search on (``name``, ``m``), then its choice fine-tuned on every seed."""
    from ..search import cost_model_search

    result = cost_model_search(name, m, tolerance=tolerance, seed=search_seed, profile=prof,
                               executor=pool, progress=progress)
    chosen = result.chosen or BitAssignment.fp32(num_layers)
    search_info = {"chosen": str(chosen), "chosen_json": chosen.to_json(),
                   "found": result.chosen is not None,
                   "search_measurements": result.num_measured,
                   "search_seconds": result.wall_seconds}
    jobs = [({"seed": s}, (name, m, s, prof, chosen.to_dict())) for s in seed_list]
    return [{"dataset": name, "model": m, "seed": rec["seed"], "status": "run",
             "fp32_val": percent(rec["fp32_val_acc"]),
             "fp32_test": percent(rec["fp32_test_acc"]),
             "fp32_best_test": percent(rec["fp32_best_test_acc"]),
             "val": percent(rec["val_acc"]), "test": percent(rec["test_acc"]),
             "best_test": percent(rec["best_test_acc"]),
             "average_bits": rec["average_bits"], "fp32_memory_mb": rec["fp32_memory_mb"],
             "memory_mb": rec["memory_mb"], "saving": rec["saving"],
             "paper_saving": rec["paper_saving"], "weight_mb": rec["weight_mb"],
             **search_info} for rec in run_jobs(jobs, pool)]


def _aggregate(row: dict, ran: pd.DataFrame) -> dict:
    """``row`` with the mean and std over seeds of the runs ``ran`` of one pair."""
    row["status"] = "run"
    row["seeds"] = len(ran)
    for col in _MEANS:
        row[col], row[f"{col}_std"] = mean_std(ran[col])
    row["acc_drop"], row["acc_drop_std"] = mean_std(ran["fp32_test"] - ran["test"])
    first = ran.iloc[0]
    for col in _FIRST:
        row[f"ours_{col}" if col in ("saving", "paper_saving") else col] = first[col]
    return row


def overall_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Table III: :func:`overall_runs` aggregated over seeds (mean and std), beside
    the paper's numbers, in the paper's row order (pairs the paper does not have,
    e.g. another dataset, follow with its columns empty). ``acc_drop`` is FP32
    test minus SGQuant test (ours); ``paper_acc_drop`` the paper's."""
    paper = paper_table("table3_overall")
    runs = runs.reindex(columns=list(dict.fromkeys([*runs.columns, "dataset", "model", "status"])))
    ran_all = runs[runs["status"] == "run"]
    rows = []
    for p in paper.itertuples():
        sel = runs[(runs["dataset"] == p.dataset) & (runs["model"] == p.model)]
        ran = ran_all.loc[ran_all.index.intersection(sel.index)]
        row: dict[str, Any] = {
            "dataset": p.dataset, "model": p.model,
            "paper_fp32_acc": p.fp32_accuracy, "paper_acc": p.sgquant_accuracy,
            "paper_acc_drop": p.fp32_accuracy - p.sgquant_accuracy,
            "paper_average_bits": p.sgquant_average_bits,
            "paper_fp32_mb": p.fp32_memory_mb, "paper_mb": p.sgquant_memory_mb,
            "paper_saving": p.saving}
        if len(ran):
            rows.append(_aggregate(row, ran))
        else:
            row["status"] = sel["status"].iloc[0] if len(sel) else NOT_IN_PROFILE
            rows.append(row)
    known = {(p.dataset, p.model) for p in paper.itertuples()}
    for (d, m), sub in runs.groupby(["dataset", "model"], sort=False):
        if (d, m) in known:
            continue
        ran = ran_all.loc[ran_all.index.intersection(sub.index)]
        rows.append(_aggregate({"dataset": d, "model": m}, ran) if len(ran)
                    else {"dataset": d, "model": m, "status": sub["status"].iloc[0]})
    return pd.DataFrame(rows)


def reading_overall(table3: pd.DataFrame) -> str:
    """Closing paragraph of chapter 3, from :func:`overall_table`."""
    ran = table3[table3["status"] == "run"]
    if not len(ran):
        return "No (dataset, model) pair was run with this profile and these parameters."
    pairs = [f"{r.dataset}/{MODEL_LABELS[r.model]}" for r in ran.itertuples()]
    best = ran.loc[ran["ours_saving"].idxmax()]
    paper = ran.dropna(subset=["paper_saving"])
    text = (
        f"Over the {len(ran)} pair(s) run ({', '.join(pairs)}), the chosen configurations save "
        f"**{ran['ours_saving'].min():.1f}x to {ran['ours_saving'].max():.1f}x** of feature memory "
        f"counting the min/scale overhead (the paper's 32/average-bits figure: "
        f"{ran['ours_paper_saving'].min():.1f}x to {ran['ours_paper_saving'].max():.1f}x); the "
        f"largest is {best.dataset}/{MODEL_LABELS[best.model]} at {best.average_bits:.2f} "
        f"average bits. ")
    compared = "the same pairs" if len(paper) == len(ran) else f"the {len(paper)} it has"
    if len(paper):
        text += (f"The paper reports {paper['paper_saving'].min():.1f}x to "
                 f"{paper['paper_saving'].max():.1f}x on {compared}. ")
    text += (
        f"The mean test-accuracy drop against FP32 is **{ran['acc_drop'].mean():.2f} points**"
        + (f" (the paper: {paper['paper_acc_drop'].mean():.2f} on "
           f"{'these pairs' if len(paper) == len(ran) else 'its pairs'})" if len(paper) else "")
        + ", with configurations "
        f"selected on validation. Selecting on the test set as the authors' scripts do "
        f"(best test accuracy over epochs) would report "
        f"{(ran['best_test'] - ran['test']).mean():.2f} points more for SGQuant "
        f"and {(ran['fp32_best_test'] - ran['fp32_test']).mean():.2f} more for FP32. ")
    lost = ran[~ran["found"].astype(bool)]
    if len(lost):
        names = ", ".join(f"{r.dataset}/{MODEL_LABELS[r.model]}" for r in lost.itertuples())
        text += (f"For {names} "
                 "no measured configuration stayed within tolerance, so FP32 is kept (saving 1x). ")
    text += (
        "Absolute megabytes differ from the paper's because the paper does not say what its "
        "'Memory Size' counts; ours is the analytic feature memory of every layer's input "
        "embedding and edge coefficients (see the reproducibility page), and only ratios are "
        "comparable. Fine-tuning epochs and search budgets are the profile's, smaller than "
        "the paper's except in the `paper` profile; a larger budget can find larger savings.")
    return text


@dataclasses.dataclass
class Chapter(BaseChapter):
    """Chapter 3 (``notebooks/03_overall.ipynb``)."""

    tolerance: float = 0.5
    search_seed: int = 0
    workers: Optional[int] = None

    @cached_property
    def runs(self) -> pd.DataFrame:
        """:func:`overall_runs`: one row per (dataset, model, seed)."""
        return overall_runs(self.dataset, self.model, self.profile, self.seeds,
                            tolerance=self.tolerance, search_seed=self.search_seed,
                            workers=self.workers)

    @cached_property
    def table3(self) -> pd.DataFrame:
        """:func:`overall_table` of :attr:`runs`."""
        return overall_table(self.runs)

    @cached_property
    def display(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """(accuracy, memory, chosen configurations): :func:`sgquant.plots.format_overall`."""
        return format_overall(self.table3)

    def accuracy_table(self) -> Any:
        return table(self.display[0], caption="Table III (accuracy, %): ours (selected on "
                     "validation, test reported; mean ± std over seeds) beside the paper's")

    def memory_table(self) -> Any:
        return table(self.display[1], caption="Table III (memory): average bits, feature "
                     "memory (MB = 1e6 bytes) and saving, ours beside the paper's")

    def chosen_table(self) -> Any:
        return table(self.display[2], caption="The configuration chosen by each search (bits "
                     "per layer: attention, then embedding per degree bucket, lowest degrees "
                     "first)")

    def saving_figure(self) -> Any:
        return plot_overall_saving(self.table3)

    def runs_table(self) -> Any:
        ran = self.runs[self.runs["status"] == "run"]
        if not len(ran):
            return markdown("No (dataset, model) pair was run: "
                            + "; ".join(sorted(set(self.runs["status"]))) + ".")
        return table(ran.drop(columns=["chosen_json"]), caption="Every (dataset, model, seed) run")

    def reading(self) -> Any:
        return markdown(reading_overall(self.table3))
