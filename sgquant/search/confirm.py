r"""Step 6 of a search, against the winner's curse: confirm the chosen configuration.

With 500 validation nodes, 0.5 points is 2.5 nodes, so the feasible configuration
with the largest saving often passed by the luck of its one fine-tune. After the
budget is spent, the ``confirm_top`` feasible configurations with the largest
savings are fine-tuned ``confirm_seeds`` more times from the same FP32 weights
(other fine-tune seeds, :func:`confirmation_seeds`) and the chosen one is the
largest saving whose *mean* validation accuracy (or a one-sided lower confidence bound
of it at a stated level, Student's t: :func:`confirmed_accuracy`,
:class:`~sgquant.variants.Confirmation`) stays within
tolerance (:func:`confirm_choice`). With ``other_fp32``, the same fresh fine-tunes also
run from other FP32 models (:meth:`~sgquant.variants.Confirmation.fp32_seeds`), each
accuracy shifted by its model's FP32 validation accuracy to the search model's,

.. math:: a'_i = a_i - \text{FP32 val}_{m(i)} + \text{FP32 val}_{\text{search}},

so a choice that holds only on the weights it was searched on is not confirmed (with
``search_model=False``, only the other models' fine-tunes run and are judged). Their rows
in a search's ``confirmations`` carry :math:`a'_i` as ``val_acc`` and the model's seed as
``fp32_seed``. The extra fine-tunes are counted apart from the budget.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np
import pandas as pd

from ..measure import prepare
from ..seeds import confirmation_finetune_seeds
from ..variants import Confirmation
from .candidates import ACCURACY_SLACK
from .rounds import MeasurementRun
from .result import TEST_FIELDS

__all__ = ["confirm_choice", "confirmation_seeds", "check_confirm", "confirmed_accuracy",
           "every_run_must_pass", "t_quantile", "Confirmation"]


def confirmation_seeds(seed: int, confirm_seeds: int, fp32_seed: int) -> list[int]:
    """The fine-tune seeds of the confirmation of a search with ``seed`` on the FP32
    model of ``fp32_seed``: :func:`sgquant.seeds.confirmation_finetune_seeds`, in the
    confirmation's own range, so they never replay an evaluation fine-tune's, a search
    candidate's or an FP32 training's stream; distinct across search seeds."""
    return confirmation_finetune_seeds(fp32_seed, seed, confirm_seeds)


def check_confirm(confirm_top: Any, confirm_seeds: Any) -> tuple[int, int]:
    """``(confirm_top, confirm_seeds)`` checked: ``0 <= confirm_top``,
    ``1 <= confirm_seeds <= 999``."""
    c = Confirmation(top=confirm_top, seeds=confirm_seeds)
    return c.top, c.seeds


def confirmed_accuracy(vals: list[float], level: float) -> float:
    r"""The one-sided lower confidence bound of level ``level`` on the mean of the
    validation accuracies ``vals``,

    .. math:: \bar a - t_{\text{level},\,n-1}\, s / \sqrt{n}

    (:math:`t_{\text{level},\,n-1}` the quantile of Student's t with :math:`n - 1`
    degrees of freedom, :func:`t_quantile`; :math:`s` the sample standard deviation); the
    mean when ``level = 0.5`` or ``n = 1``. With :math:`n = 2` and ``level = 0.75``,
    :math:`t = 1`: the mean minus one standard error."""
    arr = np.asarray(vals, dtype=float)
    if level == 0.5 or arr.size < 2:
        return float(arr.mean())
    q = t_quantile(level, arr.size - 1)
    return float(arr.mean() - q * arr.std(ddof=1) / np.sqrt(arr.size))


def t_quantile(level: float, df: int) -> float:
    r"""The ``level`` quantile of Student's t with ``df`` degrees of freedom (scipy's),
    rounded to 12 significant digits so that exact values stay exact
    (:math:`t_{0.75,1} = \tan(\pi/4) = 1`, where scipy gives 1 + 2e-16)."""
    from scipy.stats import t

    return float(f"{float(t.ppf(level, df)):.12g}")


def every_run_must_pass(c: Confirmation) -> bool:
    r"""Whether ``c`` confirms a configuration exactly when every judged fine-tune is within
    tolerance: it judges fresh fine-tunes only, one or two of them, by a bound that is
    their minimum (two values: :math:`\bar a - t s/\sqrt 2 = \min` iff :math:`t = 1`, which
    is level 0.75). Then a fine-tune may stop once it is within tolerance without
    changing the decision (:mod:`sgquant.fidelity`)."""
    n = c.seeds * ((1 if c.search_model else 0) + c.other_fp32)
    if not c.fresh_only or n > 2:
        return False
    return n == 1 or confirmed_accuracy([0.0, 1.0], c.level) == 0.0


def _batches(ok: pd.DataFrame, top: int, ladder: float, batches: int = 4
             ) -> Iterator[pd.DataFrame]:
    """The confirmation's batches of ``ok`` (feasible records by falling saving, a
    ``rank`` column added: 1-based position in ``ok``): the first ``top``, then after each
    batch the next ``top`` whose savings are at most ``ladder`` times the batch's
    smallest; at most ``batches`` of them."""
    ok = ok.assign(rank=np.arange(1, len(ok) + 1))
    rest = ok
    for _ in range(batches):
        batch = rest.iloc[:top]
        if not len(batch):
            return
        yield batch
        rest = rest.iloc[len(batch):]
        if ladder < 1.0:
            rest = rest[rest["saving"] <= ladder * float(batch["saving"].min())]


def confirm_choice(run: MeasurementRun, records: pd.DataFrame, seed: int,
                   confirmation: "Confirmation | int", confirm_seeds: Optional[int] = None
                   ) -> tuple[Optional[pd.Series], pd.DataFrame, dict]:
    r"""Step 6, against the winner's curse: the chosen configuration.

    Without confirmation (``top = 0``) it is the feasible record with the largest
    saving. Otherwise the ``top`` feasible records with the largest savings are
    fine-tuned again with ``seeds`` more seeds (:func:`confirmation_seeds`) and the
    chosen one is the largest saving whose confirmed accuracy
    (:func:`confirmed_accuracy` of its fine-tunes: the extra ones, plus the search's own
    unless ``fresh_only``) is within tolerance (a failed fine-tune: not confirmed). If
    none is, the next batch of ``top`` feasible ones is tried (the next in order, or
    with ``ladder < 1`` the largest savings at most ``ladder`` times the failed batch's
    smallest; at most 4 batches); then ``None`` (keep FP32). With ``other_fp32`` the
    fresh fine-tunes also run from the other FP32 models (prepared here, from the cache
    or trained once), their accuracies shifted as the module docstring says.
    ``confirmation`` may also be given the old way, as ``confirm_top, confirm_seeds``.

    Returns (chosen record or ``None``, one row per extra fine-tune, the chosen's
    mean val / test / best-test accuracies over the judged fine-tunes, empty without
    confirmation).
    """
    if not isinstance(confirmation, Confirmation):
        confirmation = Confirmation(top=confirmation,
                                    seeds=2 if confirm_seeds is None else confirm_seeds)
    c = confirmation
    ok = records[records["feasible"]].sort_values(["saving", "val_acc", "order"],
                                                  ascending=[False, False, True])
    cols = ["rank", "config_key", "saving", "fp32_seed", "finetune_seed", "status", "error",
            "val_acc", "test_acc", "best_test_acc", "seconds", "epochs_run", "worker",
            "mean_val_acc", "confirmed_val_acc", "confirmed"]
    if not len(ok) or c.top == 0:
        return (ok.iloc[0] if len(ok) else None), pd.DataFrame(columns=cols), {}
    seeds = confirmation_seeds(seed, c.seeds, run.setup.seed)
    finetune = c.finetune(run.finetune, run.setup.profile.finetune_epochs)
    others = [run.sibling(prepare(run.setup.dataset, run.setup.model_name, s, run.setup.profile,
                                  str(run.runner.cache.root), run.data_root, run.setup.device))
              for s in c.fp32_seeds(run.setup.seed)]
    base_val = float(run.setup.fp32["val_acc"])
    assignments = dict(zip(ok["config_key"], ok["assignment"]))
    every = every_run_must_pass(c)
    rows: list[dict] = []
    for batch in _batches(ok, c.top, c.ladder):
        keys = list(batch["config_key"])
        extra = (run.measure_finetunes(keys, seeds, finetune, every_run=every)
                 if c.search_model else [])
        shifted = []
        for other in others:
            shift = base_val - float(other.setup.fp32["val_acc"])
            for r in other.measure_finetunes(keys, seeds, finetune, assignments,
                                             every_run=every):
                shifted.append({**r, "val_acc": r["val_acc"] + shift})
        found = None
        for rank, (_, top) in zip(batch["rank"], batch.iterrows()):
            key = top["config_key"]
            mine = [r for r in extra if r["config_key"] == key]
            theirs = [r for r in shifted if r["config_key"] == key]
            first = run.private[key]
            judged = ([] if c.fresh_only else [{"val_acc": float(top["val_acc"]), **first}]) \
                + mine
            vals = [float(r["val_acc"]) for r in judged + theirs]
            good = all(r["status"] != "failed" for r in mine + theirs)
            mean_val = float(np.mean(vals)) if good else np.nan
            bound = confirmed_accuracy(vals, c.level) if good else np.nan
            confirmed = bool(good and bound >= run.threshold - ACCURACY_SLACK)
            for r in mine + theirs:
                rows.append({**r, "rank": int(rank), "saving": float(top["saving"]),
                             "mean_val_acc": mean_val, "confirmed_val_acc": bound,
                             "confirmed": confirmed})
            if confirmed and found is None:
                # test accuracies: the search model's fine-tunes (one FP32 model) when
                # there are any, else the other models'
                tests = judged or theirs
                found = (top, {"val_acc": mean_val, **{
                    f: float(np.mean([float(r[f]) for r in tests])) for f in TEST_FIELDS}})
        if found is not None:
            return found[0].drop("rank"), pd.DataFrame(rows, columns=cols), found[1]
    return None, pd.DataFrame(rows, columns=cols), {}
