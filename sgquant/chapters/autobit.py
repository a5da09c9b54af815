"""Chapter 5 (Fig. 8): does the cost model find better configurations than random search?

Three searches (:mod:`sgquant.search`) get the same budget on the same FP32 model:
the cost model with the paper's plain steps, the library's default cost model, and
random search. Also the latency of one cost-model iteration, re-run with each
search's own recorded settings.
"""
from __future__ import annotations

import dataclasses
import math
import time
from functools import cached_property
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from ..checks import check_choice
from ..data import canonical_name
from ..measure import prepare
from ..paper import PAPER_CLAIMS
from ..plots import MODEL_LABELS, plot_autobit, plot_latency, table
from ..settings import RunSettings
from ..profiles import Profile
from .common import (SingleDatasetChapter, chapter_settings, markdown, mean_std,
                     measurement_runner, percent, pretrain, resolve_models, resolve_seeds,
                     search_settings)

__all__ = ["AUTOBIT_METHODS", "autobit_runs", "autobit_curves", "autobit_summary",
           "strategy_fields", "autobit_latency", "measurement_seconds", "reading_autobit",
           "Chapter"]

#: Display names of :func:`autobit_summary`'s columns.
SUMMARY_COLUMNS = {"method": "method", "searches": "searches", "measurements": "measurements",
                   "saving": "saving (x)", "saving_std": "± std",
                   "paper_saving": "32/avg bits (x)", "val": "val", "test": "test",
                   "fp32_test": "FP32 test"}
#: The paper's Fig. 8 savings, by method, drawn beside ours.
PAPER_SAVINGS = {"cost model": PAPER_CLAIMS["search_saving_cost_model"],
                 "random": PAPER_CLAIMS["search_saving_random"]}

#: Chapter 5's searches: label -> (``sgquant.search`` method, strategy): the paper's
#: plain cost-model steps, the library's default cost model, and random search.
AUTOBIT_METHODS = {
    "cost model (paper's steps)": ("cost-model", "paper"),
    "cost model (sgquant default)": ("cost-model", "default"),
    "random": ("random", None),
}


def _label(result: Any) -> str:
    return getattr(result, "label", None) or result.method


def autobit_runs(dataset: str = "Cora", model: str = "gcn",
                 profile: "str | Profile | RunSettings" = "default",
                 seeds: "int | Sequence[int] | None" = None, *, budget: Optional[int] = None,
                 tolerance: float = 0.5, methods: Optional[Sequence[str]] = None,
                 workers: Optional[int] = None, progress: bool = False) -> list:
    """Fig. 8: for every search seed (which also selects the FP32 model), one search
    per method of :data:`AUTOBIT_METHODS` (default: all) with the same budget.

    Returns the :class:`~sgquant.search.SearchResult` objects, each with a
    ``label`` attribute naming its method.
    """
    from .. import search as S

    settings = chapter_settings(profile, workers)
    prof = settings.profile
    name, m = canonical_name(dataset), resolve_models(model, prof)[0]
    labels = list(AUTOBIT_METHODS) if methods is None else list(methods)
    for label in labels:
        check_choice(label, "search method", tuple(AUTOBIT_METHODS))
    out = []
    seed_list = resolve_seeds(seeds, prof)
    with measurement_runner(settings, asked_by="autobit") as runner:
        pretrain(runner, [(name, m, s) for s in seed_list])
        for s in seed_list:
            for label in labels:
                method, strategy = AUTOBIT_METHODS[label]
                kwargs = dict(budget=budget, tolerance=tolerance, seed=s, progress=progress,
                              **search_settings(runner))
                if method == "random":
                    result = S.random_search(name, m, **kwargs)
                else:
                    spec = S.SearchSpec(strategy=S.PAPER_STRATEGY) if strategy == "paper" \
                        else None
                    result = S.cost_model_search(name, m, spec, **kwargs)
                result.label = label
                out.append(result)
    return out


def autobit_curves(results: Sequence) -> pd.DataFrame:
    """Best saving within tolerance after each measurement
    (:meth:`~sgquant.search.SearchResult.best_so_far`), one row per
    (method label, seed, measurements)."""
    frames = [r.best_so_far().assign(method=_label(r), seed=r.seed) for r in results]
    cols = ["method", "seed", "measurements", "best_saving"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def autobit_summary(results: Sequence) -> pd.DataFrame:
    """Per method: final saving of the chosen configuration (ours, and the paper's
    32/average bits), mean and std over search seeds, and its validation and test
    accuracy (means over the search's confirmation fine-tunes, when it made any)."""
    rows = []
    for r in results:
        val = getattr(r, "chosen_val_acc_mean", r.chosen_val_acc)
        test = getattr(r, "chosen_test_acc_mean", r.chosen_test_acc)
        rows.append({"method": _label(r), "seed": r.seed, "measurements": r.num_measured,
                     "saving": r.chosen_saving or 1.0,
                     "paper_saving": r.chosen_paper_saving or 1.0,
                     "val": percent(val if r.chosen is not None else r.fp32_val_acc),
                     "test": percent(test if r.chosen is not None else r.fp32_test_acc),
                     "fp32_val": percent(r.fp32_val_acc), "fp32_test": percent(r.fp32_test_acc),
                     "wall_seconds": r.wall_seconds})
    df = pd.DataFrame(rows)
    out = []
    for method, sub in df.groupby("method", sort=False):
        row = {"method": method, "searches": len(sub),
               "measurements": int(sub["measurements"].max())}
        for col in ("saving", "paper_saving", "val", "test", "fp32_test", "wall_seconds"):
            row[col], row[f"{col}_std"] = mean_std(sub[col])
        out.append(row)
    return pd.DataFrame(out)


def strategy_fields(strategy: Any) -> tuple[dict[str, Any], bool]:
    """A search's recorded strategy (a mapping, or a dataclass such as
    ``sgquant.search.Strategy``) as the keyword arguments of
    :func:`sgquant.search.cost_model_step`, and whether the FP32 model anchors
    the cost model (``fp32_anchor``, passed to the step as ``fp32_accuracy``)."""
    if strategy is None:
        fields: dict[str, Any] = {}
    elif isinstance(strategy, Mapping):
        fields = dict(strategy)
    elif dataclasses.is_dataclass(strategy):
        fields = dataclasses.asdict(strategy)
    else:
        raise ValueError(f"a search's strategy must be a mapping or a dataclass, "
                         f"got {type(strategy).__name__}")
    return fields, bool(fields.pop("fp32_anchor", False))


def autobit_latency(results: Sequence, repeats: int = 3) -> pd.DataFrame:
    """Per-iteration latency of the cost-model step (:func:`sgquant.search.cost_model_step`:
    fit, generate, features, predict, select ...), re-run with each cost-model
    search's own recorded settings on the measured set each of its iterations
    started from. Median of ``repeats``; one row per (method, seed, iteration)."""
    from .. import search as S

    rows = []
    for r in results:
        if r.method != "cost-model" or "n_mea" not in r.settings:
            continue
        setup = prepare(r.dataset, r.model, r.seed, r.profile)
        space = S.SearchSpace.from_layout(setup.layout, r.bit_choices)
        rec = r.records.sort_values("order")
        vectors = np.array([space.vector(a) for a in rec["assignment"]])
        acc = np.where(rec["status"] == "failed", np.nan, rec["val_acc"]).astype(float)
        step, anchored = strategy_fields(r.settings.get("strategy"))
        step.update(r.settings.get("xgb_params") or {})
        for it in sorted(set(rec["iteration"]) - {0}):
            before = (rec["iteration"] < it).to_numpy()
            timings = []
            for rep in range(repeats):
                t: dict = {}
                features = S.FeatureCache(space, setup.layout)
                start = time.perf_counter()
                S.cost_model_step(space, features, vectors[before], acc[before], r.threshold,
                                  r.settings["n_sample"], r.settings["n_mea"],
                                  np.random.default_rng([r.seed, it, rep]), seed=r.seed,
                                  fp32_accuracy=r.fp32_val_acc if anchored else None,
                                  timings=t, **step)
                t["total"] = time.perf_counter() - start
                timings.append(t)
            med = {k: float(np.median([t[k] for t in timings])) for k in timings[0]}
            rows.append({"method": _label(r), "seed": r.seed, "iteration": int(it),
                         "measured_before": int(before.sum()),
                         "n_sample": r.settings["n_sample"], **med})
    return pd.DataFrame(rows)


def measurement_seconds(results: Sequence) -> float:
    """Median wall time of one measurement (fine-tuning) over the searches' records."""
    secs = pd.concat([r.records["seconds"] for r in results], ignore_index=True) if results else []
    return float(pd.Series(secs).median()) if len(secs) else math.nan


def reading_autobit(curves: pd.DataFrame, summary: pd.DataFrame, latency: pd.DataFrame,
                    dataset: str, model: str, measure_seconds: Optional[float] = None) -> str:
    """Closing paragraph of chapter 5 (``measure_seconds``: :func:`measurement_seconds`)."""
    s = summary.set_index("method")
    text = [f"On {dataset}/{MODEL_LABELS[model]}, with "
            f"{int(s['measurements'].max())} measurements per search and "
            f"{int(s['searches'].max())} search seed(s), "]
    parts = []
    for method in s.index:
        r = s.loc[method]
        std = "" if pd.isna(r.saving_std) else f" ± {r.saving_std:.1f}"
        parts.append(f"the {method} search ends at **{r.saving:.1f}x{std}** "
                     f"(32/average bits: {r.paper_saving:.1f}x)")
    text.append("; ".join(parts) + f". The paper: {PAPER_CLAIMS['search_saving_cost_model']:g}x "
                f"with its cost model, {PAPER_CLAIMS['search_saving_random']:g}x with random "
                "search. ")
    mean = curves.groupby(["method", "measurements"])["best_saving"].mean().unstack(0)
    if "random" in s.index:
        for method in [m for m in s.index if m != "random"]:
            diff = s.loc[method, "saving"] - s.loc["random", "saving"]
            text.append(f"The {method} finds "
                        f"{'more' if diff > 0 else 'less' if diff < 0 else 'the same'} saving "
                        f"than random search ({diff:+.1f}x at the end")
            if len(mean) and method in mean:
                half = mean.index[len(mean) // 2]
                text.append(f"; {mean.loc[half, method]:.1f}x against "
                            f"{mean.loc[half, 'random']:.1f}x after {half} measurements")
            text.append("). ")
    if len(latency):
        parts = [f"{method}: {float(sub['total'].median()):.3f} s (max {sub['total'].max():.3f} s)"
                 for method, sub in latency.groupby("method", sort=False)]
        text.append(f"One cost-model iteration, scoring {int(latency['n_sample'].max())} "
                    f"candidates, takes (median) " + "; ".join(parts) +
                    f", against the paper's < {PAPER_CLAIMS['cost_model_latency_s']:g} s")
        if measure_seconds is not None and not math.isnan(measure_seconds):
            text.append(f"; one measurement (a fine-tuning run) takes {measure_seconds:.2f} s "
                        f"(median), {measure_seconds / float(latency['total'].median()):.0f}x "
                        f"an iteration")
        text.append(". ")
    text.append("Savings are those of configurations within tolerance on validation; the "
                "paper's budget is larger (see the `paper` profile).")
    return "".join(text)


@dataclasses.dataclass
class Chapter(SingleDatasetChapter):
    """Chapter 5 (``notebooks/05_autobit.ipynb``)."""

    budget: Optional[int] = None
    tolerance: float = 0.5
    workers: Optional[int] = None

    @cached_property
    def searches(self) -> list:
        """:func:`autobit_runs`: every method's search on every seed."""
        return autobit_runs(self.dataset_name, self.model_name, self.run_settings, self.seeds,
                            budget=self.budget, tolerance=self.tolerance)

    @cached_property
    def curves(self) -> pd.DataFrame:
        return autobit_curves(self.searches)

    @cached_property
    def summary(self) -> pd.DataFrame:
        return autobit_summary(self.searches)

    @cached_property
    def latency(self) -> pd.DataFrame:
        return autobit_latency(self.searches)

    def curves_figure(self) -> Any:
        return plot_autobit(self.curves, paper=PAPER_SAVINGS)

    def summary_table(self) -> Any:
        return table(self.summary, columns=SUMMARY_COLUMNS,
                     caption="Final result of each method (mean ± std over search seeds; "
                             "accuracies in %, test of the chosen configuration)")

    def latency_figure(self) -> Any:
        return plot_latency(self.latency, claim=PAPER_CLAIMS["cost_model_latency_s"])

    def latency_table(self) -> Any:
        return table(self.latency, precision=4, caption="Per-iteration latency of the "
                     "cost-model step (seconds, median of repeats)")

    def reading(self) -> Any:
        return markdown(reading_autobit(self.curves, self.summary, self.latency,
                                        self.dataset_name, self.model_name,
                                        measurement_seconds(self.searches)))
