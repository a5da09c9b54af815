"""A replication status per Table III row (ReScience style), derived from the aggregated
row (:func:`sgquant.chapters.table3.overall_table`) against the paper's row.

The rule, per (dataset, model) and method:

* **not comparable (8 x 8)**: the profile trains the model at another size than the
  paper (:func:`~sgquant.chapters.table3.paper_mismatch`); nothing is compared;
* **not run**: the row was not run (its data unavailable, or not in the profile);
* otherwise two criteria, the saving (*every* search's saving at least the paper's
  Table III saving: the lowest of them, not a mean) and the accuracy (the row's mean
  test drop against our FP32 at most the tolerance, the search's own bound):
  **reproduced** when both hold, **partly** when one does, **not** when neither does.

``saving`` and ``drop`` give each criterion as measured (with the searches whose drop
exceeds the tolerance), or why the row was not judged.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..models import get_model
from ..plots import MODEL_LABELS

__all__ = ["REPRODUCED", "PARTLY", "NOT_REPRODUCED", "NOT_RUN", "replication_status"]

REPRODUCED = "reproduced"
PARTLY = "partly"
NOT_REPRODUCED = "not reproduced"
NOT_RUN = "not run"


def _verdict(r: Any, tolerance: float) -> dict[str, str]:
    """Status and its two criteria of one run row of Table III that the paper has and that
    is comparable."""
    saving_ok = r.saving_min >= r.paper_saving - 1e-9
    drop_ok = r.acc_drop <= tolerance + 1e-9
    status = REPRODUCED if saving_ok and drop_ok else PARTLY if saving_ok or drop_ok \
        else NOT_REPRODUCED
    n = int(r.searches)
    return {"status": status,
            "saving": f"{int(r.searches_reaching)} of {n} reach {r.paper_saving:g}x "
                      f"(lowest {r.saving_min:.1f}x)",
            "drop": f"{r.acc_drop:.2f} {'<=' if drop_ok else '>'} {tolerance:g}; "
                    f"{int(r.over_tolerance)} of {n} searches over"}


def replication_status(table3: pd.DataFrame, tolerance: float = 0.5) -> pd.DataFrame:
    """One row per (dataset, model, method) of ``table3`` that the paper has (one per
    (dataset, model) when it was not run): ``status`` by the module's rule, ``saving`` and
    ``drop`` its two criteria as measured (or why the row was not judged)."""
    cols = ["dataset", "model", "variant_label", "status", "saving", "drop"]
    rows = []
    paper = table3.dropna(subset=["paper_saving"]) if "paper_saving" in table3 else table3
    for r in paper.itertuples():
        head = {"dataset": r.dataset, "model": r.model,
                "variant_label": getattr(r, "variant_label", None)}
        if r.status != "run":
            rows.append({**head, "variant_label": "—", "status": NOT_RUN, "saving": r.status,
                         "drop": "—"})
        elif not getattr(r, "comparable", True):
            rows.append({**head, "status": f"not comparable ({r.architecture})",
                         "saving": f"{MODEL_LABELS.get(r.model, r.model)} {r.architecture} here, "
                                   f"{get_model(r.model).size_label()} in the paper",
                         "drop": "—"})
        else:
            rows.append({**head, **_verdict(r, tolerance)})
    return pd.DataFrame(rows, columns=cols)
