"""Table III for display (chapter 3): :func:`sgquant.chapters.table3.overall_table` as the
tables the chapter shows, one row per (dataset, model), each method's columns beside the
paper's, narrow enough to fit a 1,400-pixel browser window (``tests/html_width.py``;
long dataset names shortened, :data:`sgquant.plots.SHORT_DATASET_NAMES`).

Every ``±`` names its axis in its column header: across search seeds for a method's
accuracy and drop, across evaluation seeds for FP32. A row whose model the profile
trains at another size than the paper is marked ``not comparable (8 x 8)``.
"""
from __future__ import annotations

from typing import Any, Optional

import pandas as pd

from ..plots import MODEL_LABELS, SHORT_DATASET_NAMES, pm, short_config, two_level

__all__ = ["PAPER", "SAVING", "format_accuracy", "format_memory", "format_memory_details",
           "format_authors", "format_chosen", "format_replication", "row_note"]

#: The group header of the paper's numbers.
PAPER = "paper's Table III"
_DASH = "—"
#: The header of a row's saving: the ratio of the mean memories across search seeds.
SAVING = "saving (ratio of means)"
_SEARCH_PM = "± std over search seeds"
_EVAL_PM = "± std over evaluation seeds"


def row_note(first: Any, ran: pd.DataFrame) -> str:
    """What a (dataset, model) row's ``note`` column says: its status when it was not run,
    ``not comparable (8 x 8)`` when the profile's model is not the paper's size."""
    if not len(ran):
        return str(first["status"])
    if "comparable" in ran and not bool(ran["comparable"].iloc[0]):
        return f"not comparable ({ran['architecture'].iloc[0]})"
    return ""


def _pairs(t: pd.DataFrame) -> list[tuple[dict, pd.Series, pd.DataFrame, dict]]:
    """Per (dataset, model): its two leading cells, its first row (the paper's numbers),
    its run rows and those by method label."""
    out = []
    for (d, m), pair in t.groupby(["dataset", "model"], sort=False):
        ran = pair[pair["status"] == "run"]
        base = {("", "dataset"): SHORT_DATASET_NAMES.get(d, d),
                ("", "model"): MODEL_LABELS.get(m, m)}
        out.append((base, pair.iloc[0], ran, {r.variant_label: r for r in ran.itertuples()}))
    return out


def _labels(t: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(t["variant_label"].dropna())) if "variant_label" in t else []


def _paper_first(t: pd.DataFrame) -> Optional[str]:
    """The label of the paper's method (its columns come first, beside the paper's)."""
    hit = t[t["variant"] == "sgquant"] if "variant" in t else t.iloc[0:0]
    return str(hit["variant_label"].iloc[0]) if len(hit) else None


def _ordered(labels: list[str], paper_method: Optional[str]) -> list[Optional[str]]:
    """Method labels with ``None`` (the paper's block) after the paper's method."""
    if paper_method in labels:
        i = labels.index(paper_method) + 1
        return [*labels[:i], None, *labels[i:]]
    return [*labels, None]


def format_accuracy(t: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy (%) of each method's choice and its drop against our FP32, beside the
    paper's; two-level headers."""
    rows = []
    for base, first, ran, by in _pairs(t):
        fp32 = ran.iloc[0] if len(ran) else None
        row = {**base,
               ("FP32 test (%)", f"ours {_EVAL_PM}"): _DASH if fp32 is None
               else pm(fp32["fp32_test"], fp32["fp32_test_std"]),
               ("FP32 test (%)", "paper"): pm(first.get("paper_fp32_acc"), None)}
        for label in _ordered(_labels(t), _paper_first(t)):
            if label is None:
                row[(PAPER, "test (%)")] = pm(first.get("paper_acc"), None)
                row[(PAPER, "drop")] = pm(first.get("paper_acc_drop"), None)
                continue
            r = by.get(label)
            row[(label, f"test (%) {_SEARCH_PM}")] = _DASH if r is None else pm(r.test,
                                                                                r.test_std)
            row[(label, f"drop {_SEARCH_PM}")] = _DASH if r is None else pm(r.acc_drop,
                                                                            r.acc_drop_std)
        row[("", "note")] = row_note(first, ran)
        rows.append(row)
    return two_level(rows)


def format_memory(t: pd.DataFrame) -> pd.DataFrame:
    """Average bits and feature-memory saving of each method's choice beside the paper's:
    the ratio of the mean memories across search seeds (:data:`SAVING`), the median and
    the lowest of the searches' savings."""
    rows = []
    for base, first, ran, by in _pairs(t):
        row = dict(base)
        for label in _ordered(_labels(t), _paper_first(t)):
            if label is None:
                row[(PAPER, "avg bits")] = pm(first.get("paper_average_bits"), None)
                saving = first.get("paper_saving")  # as printed
                row[(PAPER, "saving")] = _DASH if pd.isna(saving) else f"{saving:g}x"
                continue
            r = by.get(label)
            row[(label, "avg bits")] = _DASH if r is None else f"{r.average_bits:.2f}"
            row[(label, SAVING)] = _DASH if r is None else f"{r.saving:.1f}x"
            row[(label, "median")] = _DASH if r is None else f"{r.saving_median:.1f}x"
            row[(label, "lowest")] = _DASH if r is None else f"{r.saving_min:.1f}x"
        row[("", "note")] = row_note(first, ran)
        rows.append(row)
    return two_level(rows)


def format_memory_details(t: pd.DataFrame) -> pd.DataFrame:
    """The saving counted other ways: FP32 megabytes (ours, the paper's), and per method
    the mean of the searches' savings (a mean of ratios), ``32 / average bits`` (the
    paper's formula, no min/scale) and the entropy-coded storage when measured."""
    rows = []
    for base, first, ran, by in _pairs(t):
        fp32 = ran.iloc[0] if len(ran) else None
        row = {**base, ("FP32 MB", "ours"): _DASH if fp32 is None
               else f"{fp32['fp32_memory_mb']:.2f}",
               ("FP32 MB", "paper"): pm(first.get("paper_fp32_mb"), None)}
        for label in _labels(t):
            r = by.get(label)
            row[(label, "mean of the searches' savings")] = _DASH if r is None else \
                f"{r.saving_mean_of_ratios:.2f}x"
            row[(label, "32 / avg bits")] = _DASH if r is None else f"{r.formula_saving:.2f}x"
            if "coded_saving" in t:
                row[(label, "coded")] = _DASH if r is None or pd.isna(r.coded_saving) else \
                    f"{r.coded_saving:.1f}x ({r.coded_bits:.2f} bits)"
        rows.append(row)
    return two_level(rows)


def format_authors(t: pd.DataFrame) -> pd.DataFrame:
    """The authors' protocol (best test accuracy over epochs, %): our FP32 and each
    method's choice, beside the paper's (which its scripts report this way)."""
    rows = []
    for base, first, ran, by in _pairs(t):
        fp32 = ran.iloc[0] if len(ran) else None
        row = {**base, ("FP32", f"ours {_EVAL_PM}"): _DASH if fp32 is None
               else pm(fp32["fp32_best_test"], fp32["fp32_best_test_std"])}
        for label in _labels(t):
            r = by.get(label)
            row[(label, f"ours {_SEARCH_PM}")] = _DASH if r is None else pm(r.best_test,
                                                                            r.best_test_std)
        row[(PAPER, "FP32")] = pm(first.get("paper_fp32_acc"), None)
        row[(PAPER, "SGQuant")] = pm(first.get("paper_acc"), None)
        row[("", "note")] = row_note(first, ran)
        rows.append(row)
    return two_level(rows)


def format_chosen(t: pd.DataFrame) -> pd.DataFrame:
    """The configurations the searches chose, one row per (dataset, model, method)."""
    rows = []
    for base, _, ran, by in _pairs(t):
        for label, r in by.items():
            rows.append({"dataset": base[("", "dataset")], "model": base[("", "model")],
                         "method": label,
                         "within tolerance": f"{int(r.found)} of {int(r.searches)} searches",
                         "chosen configuration(s)": " | ".join(
                             short_config(c) for c in str(r.chosen).split(" | "))})
    return pd.DataFrame(rows, columns=["dataset", "model", "method", "within tolerance",
                                       "chosen configuration(s)"])


def format_replication(status: pd.DataFrame) -> pd.DataFrame:
    """:func:`sgquant.chapters.replication.replication_status` for display."""
    out = status.rename(columns={"variant_label": "method"})
    out["dataset"] = [SHORT_DATASET_NAMES.get(d, d) for d in out["dataset"]]
    out["model"] = [MODEL_LABELS.get(m, m) for m in out["model"]]
    return out[["dataset", "model", "method", "status", "saving", "drop"]].rename(
        columns={"saving": "searches at the paper's saving", "drop": "mean test drop"})
