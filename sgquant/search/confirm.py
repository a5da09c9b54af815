r"""Step 6 of a search, against the winner's curse: confirm the chosen configuration.

With 500 validation nodes, 0.5 points is 2.5 nodes, so the feasible configuration
with the largest saving often passed by the luck of its one fine-tune. After the
budget is spent, the ``confirm_top`` feasible configurations with the largest
savings are fine-tuned ``confirm_seeds`` more times from the same FP32 weights
(other fine-tune seeds, :func:`confirmation_seeds`) and the chosen one is the
largest saving whose *mean* validation accuracy stays within tolerance
(:func:`confirm_choice`). The extra fine-tunes are counted apart from the budget.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd

from ..checks import check_int
from .candidates import ACCURACY_SLACK
from .measurements import MeasurementRun
from .result import TEST_FIELDS

__all__ = ["confirm_choice", "confirmation_seeds", "check_confirm"]


def confirmation_seeds(seed: int, confirm_seeds: int) -> list[int]:
    """The fine-tune seeds of the confirmation of a search with ``seed``:
    ``seed * 1000 + 1 + i`` for ``i < confirm_seeds`` (never ``seed`` itself,
    the search measurements' fine-tune seed; disjoint across search seeds)."""
    return [seed * 1000 + 1 + i for i in range(confirm_seeds)]


def check_confirm(confirm_top: Any, confirm_seeds: Any) -> tuple[int, int]:
    """``(confirm_top, confirm_seeds)`` checked: ``0 <= confirm_top``,
    ``1 <= confirm_seeds <= 999`` (the seeds of :func:`confirmation_seeds` stay
    apart across search seeds)."""
    return (check_int(confirm_top, "confirm_top", minimum=0),
            check_int(confirm_seeds, "confirm_seeds", minimum=1, maximum=999))


def confirm_choice(run: MeasurementRun, records: pd.DataFrame, seed: int, confirm_top: int,
                   confirm_seeds: int) -> tuple[Optional[pd.Series], pd.DataFrame, dict]:
    r"""Step 6, against the winner's curse: the chosen configuration.

    Without confirmation (``confirm_top = 0``) it is the feasible record with the
    largest saving. Otherwise the ``confirm_top`` feasible records with the
    largest savings are fine-tuned again with ``confirm_seeds`` more seeds
    (:func:`confirmation_seeds`) and the chosen one is the largest saving whose
    mean validation accuracy over its :math:`1 + ` ``confirm_seeds`` fine-tunes
    is within tolerance (a failed fine-tune: not confirmed). If none is, the next
    ``confirm_top`` feasible ones are tried (at most ``4 * confirm_top`` in all);
    then ``None`` (keep FP32).

    Returns (chosen record or ``None``, one row per extra fine-tune, the chosen's
    mean val / test / best-test accuracies, empty without confirmation).
    """
    ok = records[records["feasible"]].sort_values(["saving", "val_acc", "order"],
                                                  ascending=[False, False, True])
    cols = ["rank", "config_key", "saving", "finetune_seed", "status", "error", "val_acc",
            "test_acc", "best_test_acc", "seconds", "worker", "mean_val_acc", "confirmed"]
    if not len(ok) or confirm_top == 0:
        return (ok.iloc[0] if len(ok) else None), pd.DataFrame(columns=cols), {}
    seeds = confirmation_seeds(seed, confirm_seeds)
    limit = min(len(ok), 4 * confirm_top)
    rows: list[dict] = []
    for start in range(0, limit, confirm_top):
        batch = ok.iloc[start:min(start + confirm_top, limit)]
        extra = run.measure_finetunes(list(batch["config_key"]), seeds)
        found = None
        for rank, (_, top) in enumerate(batch.iterrows(), start=start + 1):
            key = top["config_key"]
            mine = [r for r in extra if r["config_key"] == key]
            first = run.private[key]
            vals = [float(top["val_acc"])] + [r["val_acc"] for r in mine]
            good = all(r["status"] != "failed" for r in mine)
            mean_val = float(np.mean(vals)) if good else np.nan
            confirmed = bool(good and mean_val >= run.threshold - ACCURACY_SLACK)
            for r in mine:
                rows.append({**r, "rank": rank, "saving": float(top["saving"]),
                             "mean_val_acc": mean_val, "confirmed": confirmed})
            if confirmed and found is None:
                found = (top, {"val_acc": mean_val, **{
                    f: float(np.mean([first[f]] + [r[f] for r in mine]))
                    for f in TEST_FIELDS}})
        if found is not None:
            return found[0], pd.DataFrame(rows, columns=cols), found[1]
    return None, pd.DataFrame(rows, columns=cols), {}
