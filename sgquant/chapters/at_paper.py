r"""Chapter 3's converse question: what does the paper's saving itself cost under our protocol?

Table III reports the saving each method *chooses* within tolerance. Here the saving is
fixed instead, at the paper's Table III figure: among the configurations a method's
searches measured with at least that saving (:func:`at_paper_saving`), the one with the
best validation accuracy on the search's FP32 model is fine-tuned with the method's final
fine-tune from every evaluation seed, and its test drop

.. math:: \Delta = \text{FP32 test} - \text{test}

is read once per seed (:func:`at_paper_runs`), then averaged (:func:`at_paper_table`).
Each method's searches measured their own configurations, so the two methods' savings
here differ; the table shows each.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd

from ..assignment import BitAssignment
from ..paper import paper_table
from ..plots import MODEL_LABELS
from ..settings import RunSettings
from ..profiles import Profile
from ..variants import get_variant
from .common import final_finetune_jobs, mean_std, measurement_runner, percent, run_labelled

__all__ = ["AT_PAPER_FIELDS", "paper_table3_saving", "at_paper_saving", "at_paper_info",
           "at_paper_runs", "at_paper_table", "at_paper_cost", "at_paper_summary"]


def paper_table3_saving(dataset: str, model: str) -> Optional[float]:
    """The paper's Table III saving of (``dataset``, ``model``), ``None`` if it has none."""
    paper = paper_table("table3_overall")
    hit = paper[(paper["dataset"] == dataset) & (paper["model"] == model)]
    return float(hit["saving"].iloc[0]) if len(hit) else None


def at_paper_saving(records: pd.DataFrame, saving: float) -> Optional[pd.Series]:
    """The configuration a search measured that the paper's ``saving`` allows, chosen on
    validation: among ``records`` (its measurements) with a saving of at least
    ``saving``, the highest validation accuracy (ties: the larger saving, then the one
    measured first); ``None`` when no measured configuration reaches it."""
    ok = records[(records["saving"] >= saving - 1e-9) & records["val_acc"].notna()]
    if "status" in ok:
        ok = ok[ok["status"] != "failed"]
    if not len(ok):
        return None
    return ok.sort_values(["val_acc", "saving", "order"],
                          ascending=[False, False, True]).iloc[0]


#: Columns :func:`overall_runs` adds for :func:`at_paper_runs` (one search's candidate).
AT_PAPER_FIELDS = ("at_paper_json", "at_paper_saving", "at_paper_val_drop")


def at_paper_info(result: Any, target: Optional[float]) -> dict:
    """A search's :func:`at_paper_saving` candidate: its assignment (JSON), its saving and
    its validation drop on the search's FP32 model (points); empty (NaN) without one."""
    best = None if target is None else at_paper_saving(result.records, target)
    if best is None:
        return {"at_paper_json": None, "at_paper_saving": np.nan, "at_paper_val_drop": np.nan}
    return {"at_paper_json": str(best["assignment"]), "at_paper_saving": float(best["saving"]),
            "at_paper_val_drop": percent(result.fp32_val_acc) - percent(best["val_acc"])}


def at_paper_runs(runs: pd.DataFrame, profile: "str | Profile | RunSettings" = "default",
                  workers: Optional[int] = None) -> pd.DataFrame:
    """What the paper's saving costs each method: per (dataset, model, variant) of
    ``runs`` (:func:`overall_runs`), the searches' :func:`at_paper_saving` candidate with
    the smallest validation drop (each from its search's own FP32 model; ties: the
    larger saving, then the first search seed), fine-tuned with the variant's final
    fine-tune from every evaluation seed of ``runs``. One row per (dataset, model,
    variant, seed); none for a row whose searches measured nothing at the paper's saving
    (or that the paper does not have)."""
    ran = runs[runs["status"] == "run"] if "status" in runs else runs.iloc[0:0]
    if not len(ran) or "at_paper_json" not in ran:
        return pd.DataFrame()
    todo = []
    for (d, m, v), sub in ran.groupby(["dataset", "model", "variant"], sort=False):
        cands = sub.dropna(subset=["at_paper_json"]).drop_duplicates("search_seed")
        if not len(cands):
            continue
        best = cands.sort_values(["at_paper_val_drop", "at_paper_saving", "search_seed"],
                                 ascending=[True, False, True]).iloc[0]
        variant = get_variant(v)
        assignment = BitAssignment.from_json(str(best["at_paper_json"]))
        meta = {"dataset": d, "model": m, "variant": v, "variant_label": variant.label,
                "search_seed": int(best["search_seed"]),
                "search_val_drop": float(best["at_paper_val_drop"]), "chosen": str(assignment)}
        todo.append((meta, d, m, sorted(sub["seed"].unique()), assignment, variant))
    if not todo:
        return pd.DataFrame()
    with measurement_runner(profile, workers, asked_by="at_paper") as runner:
        labels, jobs = [], []
        for meta, d, m, seeds, a, variant in todo:
            labels += [{**meta, "seed": int(e)} for e in seeds]
            jobs += final_finetune_jobs(runner, d, m, seeds, a, variant)
        done = run_labelled(runner, labels, jobs)
    return pd.DataFrame([{**{k: r[k] for k in ("dataset", "model", "variant", "variant_label",
                                                 "search_seed", "search_val_drop", "chosen",
                                                 "seed", "saving", "average_bits")},
                          "fp32_test": percent(r["fp32_test_acc"]), "test": percent(r["test_acc"]),
                          "acc_drop": percent(r["fp32_test_acc"]) - percent(r["test_acc"])}
                         for r in done])


def at_paper_table(point_runs: pd.DataFrame, tolerance: float = 0.5) -> pd.DataFrame:
    """:func:`at_paper_runs` per (dataset, model, variant): the paper's saving, the
    configuration's saving and average bits, its validation drop on the search's FP32
    model, and its test drop, mean and std over evaluation seeds, with the number of
    seeds whose drop exceeds ``tolerance``."""
    cols = ["dataset", "model", "variant", "variant_label", "paper_saving", "saving",
            "average_bits", "search_val_drop", "acc_drop", "acc_drop_std", "over_tolerance",
            "seeds", "chosen"]
    if not len(point_runs):
        return pd.DataFrame(columns=cols)
    rows = []
    for (d, m, v), sub in point_runs.groupby(["dataset", "model", "variant"], sort=False):
        drop, drop_std = mean_std(sub["acc_drop"])
        rows.append({"dataset": d, "model": m, "variant": v,
                     "variant_label": sub["variant_label"].iloc[0],
                     "paper_saving": paper_table3_saving(d, m),
                     "saving": float(sub["saving"].iloc[0]),
                     "average_bits": float(sub["average_bits"].iloc[0]),
                     "search_val_drop": float(sub["search_val_drop"].iloc[0]),
                     "acc_drop": drop, "acc_drop_std": drop_std,
                     "over_tolerance": int((sub["acc_drop"] > tolerance + 1e-9).sum()),
                     "seeds": int(sub["seed"].nunique()), "chosen": sub["chosen"].iloc[0]})
    return pd.DataFrame(rows, columns=cols)


def at_paper_cost(rows: pd.DataFrame, at_paper: pd.DataFrame, tolerance: float) -> str:
    """One sentence: what the paper's saving itself costs on the Table III ``rows`` (those
    that miss the paper's saving), from :func:`at_paper_table`."""
    parts = []
    for r in rows.itertuples():
        hit = at_paper[(at_paper["dataset"] == r.dataset) & (at_paper["model"] == r.model)
                       & (at_paper["variant"] == r.variant)]
        name = f"{r.dataset}/{MODEL_LABELS[r.model]}"
        if not len(hit):
            parts.append(f"nothing its searches measured reaches it on {name}")
            continue
        p = hit.iloc[0]
        std = "" if pd.isna(p["acc_drop_std"]) else f" ± {p['acc_drop_std']:.2f}"
        parts.append(f"{p['acc_drop']:.2f}{std} points on {name} ({p['saving']:.1f}x; "
                     f"{int(p['over_tolerance'])} of {int(p['seeds'])} evaluation seeds over "
                     f"{tolerance:g})")
    if not parts:
        return ""
    return ("On the rows short of the paper's saving, that saving itself (the best-validation "
            "configuration the searches measured at or above it, fine-tuned from every "
            "evaluation seed) costs a test drop of " + "; ".join(parts) + ". ")


def at_paper_summary(ran: pd.DataFrame, at_paper: pd.DataFrame, tolerance: float) -> str:
    """One sentence: each method's test drop at the paper's saving, over the rows."""
    rows = ran.dropna(subset=["paper_saving"])
    parts = []
    for v, sub in rows.groupby("variant", sort=False):
        got = at_paper[at_paper["variant"] == v]
        if not len(got):
            continue
        within = int((got["acc_drop"] <= tolerance + 1e-9).sum())
        parts.append(f"{got['acc_drop'].mean():.2f} points for {sub['variant_label'].iloc[0]} "
                     f"(within {tolerance:g} on {within} of the {len(got)} "
                     f"row{'' if len(got) == 1 else 's'} its searches measured there, at "
                     f"{got['saving'].mean():.1f}x on average)")
    if not parts:
        return ""
    return ("At the paper's saving itself (the configuration with the best validation "
            "accuracy among those a method's searches measured at or above it, fine-tuned from "
            "every evaluation seed) the mean test drop is " + " and ".join(parts)
            + "; each method's searches measured their own configurations, so these savings "
            "differ. ")
