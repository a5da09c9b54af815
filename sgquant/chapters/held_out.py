"""Chapter 3's held-out evaluation of the frozen SGQuant+: the Table III protocol run
again with seeds and a dataset the method never saw.

The development runs (:func:`~sgquant.chapters.table3.overall_runs` with the
``development`` seed plan, :mod:`sgquant.seeds`) are the ones SGQuant+ was designed on
(the book's "How SGQuant+ was designed"). The held-out runs use the ``held-out`` plan
(fresh evaluation FP32 seeds, fresh search seeds, each with a fresh search model and
confirmation model) on the profile's ``held_out_datasets``, which include at least one
dataset no design choice read (Coauthor-CS). :func:`development_vs_held_out` puts the
two tables' rows side by side with the same columns, and :func:`reading_held_out` says by
how much they differ. SGQuant+ must match its frozen settings (:func:`sgquant.frozen.
check_frozen`) before any held-out run.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from ..frozen import check_frozen
from ..plots import MODEL_LABELS
from ..settings import RunSettings
from .table3 import overall_runs

__all__ = ["held_out_runs", "development_vs_held_out", "format_held_out", "reading_held_out",
           "COMPARED"]

#: The columns compared, development beside held-out: (column, label, unit).
COMPARED = (("saving", "saving", "x"), ("acc_drop", "test drop", "pts"),
            ("val_drop", "val drop", "pts"))


def held_out_runs(settings: RunSettings, variants: Sequence[str], tolerance: float = 0.5,
                  workers: Optional[int] = None) -> pd.DataFrame:
    """:func:`overall_runs` of the profile's ``held_out_datasets`` x ``held_out_models``
    under the ``held-out`` seed plan, once SGQuant+ is checked against its frozen
    settings (a ``ValueError`` if it moved)."""
    if "sgquant+" in variants:
        check_frozen("sgquant+")
    prof = settings.profile
    return overall_runs(list(prof.held_out_datasets), list(prof.held_out_models), settings,
                        tolerance=tolerance, plan="held-out", variants=variants,
                        workers=workers, include_missing=False)


def _values(t: pd.DataFrame) -> pd.DataFrame:
    ran = t[t["status"] == "run"].copy()
    if not len(ran):
        return pd.DataFrame(columns=["dataset", "model", "variant"])
    ran["val_drop"] = ran["fp32_val"] - ran["val"]
    keep = ["dataset", "model", "variant", "variant_label", "searches",
            *[c for c, _, _ in COMPARED], "acc_drop_std", "saving_std"]
    return ran[[c for c in keep if c in ran]]


def development_vs_held_out(development: pd.DataFrame, held_out: pd.DataFrame
                            ) -> pd.DataFrame:
    """One row per (dataset, model, method) of either Table III (:func:`overall_table`
    output): each compared column for the development and the held-out runs and their
    difference (held-out minus development; empty where one side was not run)."""
    dev, held = _values(development), _values(held_out)
    both = dev.merge(held, on=["dataset", "model", "variant"], how="outer",
                     suffixes=("_dev", "_held"))
    rows = []
    for r in both.itertuples(index=False):
        r = r._asdict()
        out = {"dataset": r["dataset"], "model": r["model"],
               "method": r.get("variant_label_dev") if isinstance(
                   r.get("variant_label_dev"), str) else r.get("variant_label_held"),
               "variant": r["variant"]}
        for col, _, _ in COMPARED:
            d, h = r.get(f"{col}_dev", np.nan), r.get(f"{col}_held", np.nan)
            out[f"{col}_dev"], out[f"{col}_held"], out[f"{col}_diff"] = d, h, h - d
        out["searches_dev"], out["searches_held"] = r.get("searches_dev"), r.get("searches_held")
        rows.append(out)
    return pd.DataFrame(rows)


def format_held_out(c: pd.DataFrame) -> pd.DataFrame:
    """The development-against-held-out comparison
    (:func:`development_vs_held_out`) for display: per compared
    column, development, held-out and their difference; a side not run is a dash."""
    def fmt(v: Any, unit: str, signed: bool = False) -> str:
        if v is None or pd.isna(v):
            return "—"
        return (f"{v:+.2f}" if signed else f"{v:.2f}") + ("x" if unit == "x" else "")

    rows = []
    for r in c.itertuples(index=False):
        r = r._asdict()
        row = {("", "dataset"): r["dataset"], ("", "model"): MODEL_LABELS.get(r["model"],
                                                                             r["model"]),
               ("", "method"): r["method"]}
        for col, label, unit in COMPARED:
            row[(label, "dev")] = fmt(r[f"{col}_dev"], unit)
            row[(label, "held out")] = fmt(r[f"{col}_held"], unit)
            row[(label, "diff")] = fmt(r[f"{col}_diff"], "pts" if unit == "pts" else "",
                                       signed=True)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out


def reading_held_out(comparison: pd.DataFrame, version: str, tolerance: float = 0.5) -> str:
    """The held-out evaluation in words: for each method, the rows run both ways and how
    far the held-out test drop and saving moved; the rows only held out (a dataset the
    method never saw) with their drop and saving."""
    if not len(comparison):
        return "No held-out row was run in this profile."
    text = [f"SGQuant+ is evaluated as frozen (version {version}); the held-out runs use "
            "evaluation, search and confirmation FP32 seeds and search seeds that no "
            "development run used. "]
    for label, sub in comparison.groupby("method", sort=False):
        both = sub.dropna(subset=["acc_drop_dev", "acc_drop_held"])
        if len(both):
            moved = both["acc_drop_diff"]
            ratio = both["saving_held"] / both["saving_dev"]
            text.append(
                f"{label}: on the {len(both)} row(s) run both ways, the held-out test drop "
                f"differs from the development one by {moved.mean():+.2f} points on average "
                f"(from {moved.min():+.2f} to {moved.max():+.2f}), and the saving is "
                f"{ratio.mean():.2f} times the development saving on average "
                f"(from {ratio.min():.2f} to {ratio.max():.2f}). ")
        new = sub[sub["acc_drop_dev"].isna() & sub["acc_drop_held"].notna()]
        for r in new.itertuples():
            within = "within" if r.acc_drop_held <= tolerance + 1e-9 else "beyond"
            text.append(f"On {r.dataset} {r.model}, never used in development, {label} saves "
                        f"{r.saving_held:.2f}x at a test drop of {r.acc_drop_held:+.2f} points "
                        f"({within} the {tolerance:g}-point tolerance). ")
    return "".join(text)
