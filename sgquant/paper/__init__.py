"""The paper's published numbers: its tables (``*.csv`` beside this file) and the
claims its text states, for the book to show beside our own measurements.

    >>> paper_table("table3_overall").columns[:3].tolist()
    ['dataset', 'model', 'fp32_accuracy']
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..checks import check_choice
from ..data import canonical_name

__all__ = ["PAPER_DIR", "PAPER_CLAIMS", "PAPER_TABLES", "paper_table", "paper_sizes"]

PAPER_DIR = Path(__file__).resolve().parent
#: The tables transcribed from the paper (file stems of ``PAPER_DIR/*.csv``).
PAPER_TABLES = tuple(sorted(p.stem for p in PAPER_DIR.glob("*.csv")))
#: Numbers the paper states in its text.
PAPER_CLAIMS = {
    "gat_feature_share_max": 99.89,   # % of GAT's memory taken by features (Fig. 1)
    "search_saving_cost_model": 25.0,  # Fig. 8, x
    "search_saving_random": 20.0,      # Fig. 8, x
    "cost_model_latency_s": 0.1,       # per search iteration, upper bound
}
#: The paper's spelling of dataset names that :func:`sgquant.data.canonical_name`
#: does not know.
_PAPER_NAMES = {"citeseer": "CiteSeer", "pubmed": "PubMed", "amazon-computer": "Amazon-Computers"}


def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's tables (:data:`PAPER_TABLES`: ``table1_architectures``,
    ``table2_datasets``, ``table3_overall``) with our canonical dataset and model names."""
    check_choice(name, "paper table", PAPER_TABLES)
    df = pd.read_csv(PAPER_DIR / f"{name}.csv")
    if "dataset" in df:
        df["dataset"] = [_PAPER_NAMES.get(str(d).lower()) or canonical_name(d)
                         for d in df["dataset"]]
    if "model" in df:
        df["model"] = df["model"].str.lower()
    return df


def paper_sizes() -> dict[str, dict[str, int]]:
    """Table II as ``{dataset: {"nodes", "edges", "features", "classes"}}``."""
    t2 = paper_table("table2_datasets")
    return {r.dataset: {"nodes": int(r.vertices), "edges": int(r.edges),
                        "features": int(r.dim), "classes": int(r.classes)}
            for r in t2.itertuples()}
