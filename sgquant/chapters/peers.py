"""Chapter 8: where we stand among the peers, and what each change of SGQuant+ buys.

* :func:`front_runs`: every configuration chapter 3's searches measured on Cora GCN,
  CiteSeer GCN and Cora GAT (both methods; read from the results cache), with its
  validation and test accuracy; :func:`pareto_fronts` keeps, per method, the
  configurations no cheaper one beats on *validation* (the front is chosen on
  validation, its test accuracy is shown);
* the published points of the paper, A2Q, Bi-GCN and MixQ-GNN
  (:func:`sgquant.paper.paper_table` ``"peers"``), each labelled with its protocol;
* :func:`ablation_runs`: chapter 3's protocol (:func:`sgquant.chapters.table3.overall_runs`)
  for every step of :data:`sgquant.variants.ABLATION`, from the paper's method to SGQuant+.
"""
from __future__ import annotations

import dataclasses
import math
from functools import cached_property
from typing import Any, Optional, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..assignment import as_assignment
from ..paper import paper_table
from ..plots import MODEL_LABELS, plain_log_axis, table
from ..settings import RunSettings
from ..profiles import Profile
from ..seeds import SeedPlan, get_plan, search_finetune_seed
from ..variants import ABLATION, get_variant
from .common import (SearchChapter, chapter_settings, markdown, measurement_runner, percent,
                     search_settings)
from .table3 import DEFAULT_VARIANTS, overall_runs, overall_table

__all__ = ["PEER_PAIRS", "ABLATION_PAIRS", "front_runs", "pareto_fronts", "peer_points",
           "plot_fronts", "ablation_runs", "ablation_table", "best_within_bits", "reading_peers",
           "Chapter"]

#: The (dataset, model) pairs the peers published points on.
PEER_PAIRS = (("Cora", "gcn"), ("CiteSeer", "gcn"), ("Cora", "gat"))
#: The pairs of the ablation.
ABLATION_PAIRS = (("Cora", "gcn"), ("CiteSeer", "gcn"))


def _pairs(pairs: Sequence[tuple[str, str]], prof: Profile) -> list[tuple[str, str]]:
    """``pairs`` the profile runs (its datasets and models)."""
    return [(d, m) for d, m in pairs if d in prof.datasets and m in prof.models]


def front_runs(pairs: Sequence[tuple[str, str]] = PEER_PAIRS,
               profile: "str | Profile | RunSettings" = "default",
               *, variants: Sequence[str] = DEFAULT_VARIANTS, search_seed: Optional[int] = None,
               search_seeds: Optional[int] = None, tolerance: float = 0.5,
               workers: Optional[int] = None, plan: "str | SeedPlan" = "development"
               ) -> pd.DataFrame:
    """Every configuration chapter 3's searches measured, one row per (pair, method,
    search seed, configuration): validation and test accuracy (%) of its fine-tune on
    that search's FP32 model (``fp32_seed``, the seed ``plan``'s), average bits and
    saving. The searches and measurements are chapter 3's (same profile, plan, seeds and
    tolerance), so after chapter 3 they come from the cache."""
    from ..search import cost_model_search

    settings = chapter_settings(profile, workers)
    prof, seed_plan = settings.profile, get_plan(plan)
    seeds = seed_plan.search_seeds(prof.search_seeds if search_seeds is None else search_seeds,
                                   search_seed)
    rows = []
    with measurement_runner(settings, asked_by="peers") as runner:
        for d, m in _pairs(pairs, prof):
            for name in variants:
                v = get_variant(name)
                jobs, labels = [], []
                for s in seeds:
                    fp32 = seed_plan.search_fp32(s)
                    result = cost_model_search(d, m, tolerance=tolerance, seed=s, fp32_seed=fp32,
                                               progress=False, variant=v,
                                               **search_settings(runner))
                    ok = result.records[result.records["status"] != "failed"]
                    for a in dict(zip(ok["config_key"], ok["assignment"])).values():
                        labels.append({"search_seed": s, "fp32_seed": fp32})
                        jobs.append(runner.finetune_job(
                            d, m, fp32, as_assignment(a), options=v.options,
                            finetune=v.finetune, finetune_seed=search_finetune_seed(fp32)))
                for label, rec in zip(labels, runner.run(jobs)):
                    rows.append({"dataset": d, "model": m, "variant": v.name,
                                 "method": v.label, **label, "config_key": rec["config_key"],
                                 "val": percent(rec["val_acc"]), "test": percent(rec["test_acc"]),
                                 "fp32_val": percent(rec["fp32_val_acc"]),
                                 "fp32_test": percent(rec["fp32_test_acc"]),
                                 "average_bits": rec["average_bits"], "saving": rec["saving"]})
    return pd.DataFrame(rows)


def pareto_fronts(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (pair, method): the configurations no configuration with fewer average bits
    beats on validation accuracy (chosen on validation), sorted by average bits."""
    out = []
    for _, g in runs.groupby(["dataset", "model", "variant"], sort=False):
        best = -math.inf
        for _, r in g.sort_values(["average_bits", "val"], ascending=[True, False]).iterrows():
            if r["val"] > best + 1e-9:
                out.append(r)
                best = r["val"]
    return pd.DataFrame(out).reset_index(drop=True)


def peer_points(pairs: Sequence[tuple[str, str]] = PEER_PAIRS) -> pd.DataFrame:
    """The published points on ``pairs`` (:func:`sgquant.paper.paper_table` ``"peers"``)."""
    peers = paper_table("peers")
    keep = {(d, m) for d, m in pairs}
    return peers[[(d, m) in keep for d, m in zip(peers["dataset"], peers["model"])]] \
        .reset_index(drop=True)


def plot_fronts(fronts: pd.DataFrame, peers: pd.DataFrame) -> plt.Figure:
    """Test accuracy against average bits, one panel per pair: each method's front (chosen
    on validation), the searches' FP32 model (dashed) and the published points."""
    pairs = list(dict.fromkeys(zip(fronts["dataset"], fronts["model"])))
    fig, axes = plt.subplots(1, max(len(pairs), 1), figsize=(4.6 * max(len(pairs), 1), 4.2),
                             squeeze=False)
    palette = dict(zip(dict.fromkeys(fronts["method"]), sns.color_palette("deep")))
    markers = dict(zip(dict.fromkeys(peers["method"]), "s^DPX*"))
    for ax, (d, m) in zip(axes[0], pairs):
        sub = fronts[(fronts["dataset"] == d) & (fronts["model"] == m)]
        for method, g in sub.groupby("method", sort=False):
            ax.plot(g["average_bits"], g["test"], "-o", ms=3, color=palette[method],
                    label=f"{method} (ours: front on validation)")
        ax.axhline(float(sub["fp32_test"].iloc[0]), ls="--", color="grey", lw=1,
                   label="FP32 (ours)")
        for r in peers[(peers["dataset"] == d) & (peers["model"] == m)].itertuples():
            ax.errorbar(r.average_bits, r.accuracy, yerr=None if pd.isna(r.accuracy_std)
                        else r.accuracy_std, marker=markers[r.method], color="black", ms=6,
                        capsize=2, ls="none", label=f"{r.method} (published)")
        ax.set_xscale("log")
        plain_log_axis(ax)
        ax.set_title(f"{d} / {MODEL_LABELS.get(m, m)}")
        ax.set_xlabel("average bits per feature element (log)")
        ax.set_ylabel("test accuracy (%)")
        lo = max(float(sub["test"].min()) - 2.0, float(sub["fp32_test"].iloc[0]) - 15.0)
        ax.set_ylim(lo, None)
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(dict(zip(labels, handles)).values(), dict(zip(labels, handles)).keys(),
                  fontsize=7, loc="lower right")
    fig.tight_layout()
    plt.close(fig)
    return fig


def ablation_runs(pairs: Sequence[tuple[str, str]] = ABLATION_PAIRS,
                  profile: "str | Profile | RunSettings" = "default",
                  seeds: "int | Sequence[int] | None" = None, **kwargs: Any) -> pd.DataFrame:
    """Chapter 3's protocol (:func:`sgquant.chapters.table3.overall_runs`) for every step of
    :data:`sgquant.variants.ABLATION` on ``pairs``; the paper's method and SGQuant+ come
    from chapter 3's cache."""
    settings = chapter_settings(profile, kwargs.pop("workers", None))
    frames = [overall_runs(d, m, settings, seeds, variants=[v.name for v in ABLATION],
                           include_missing=False, **kwargs)
              for d, m in _pairs(pairs, settings.profile)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def ablation_table(runs: pd.DataFrame, tolerance: float = 0.5) -> pd.DataFrame:
    """:func:`sgquant.chapters.table3.overall_table` of :func:`ablation_runs`, one row per
    (pair, step), in the order of :data:`sgquant.variants.ABLATION`."""
    t = overall_table(runs, tolerance)
    t = t[t["status"] == "run"].copy()
    order = {v.name: i for i, v in enumerate(ABLATION)}
    t["step"] = t["variant"].map(order)
    return t.sort_values(["dataset", "model", "step"], kind="stable").reset_index(drop=True)


def best_within_bits(front: pd.DataFrame, bits: float) -> Optional[pd.Series]:
    """The point of one method's ``front`` at ``bits`` average bits or fewer with the highest
    *validation* accuracy (ties: fewer bits), or ``None``. Its test accuracy is then read
    once; test accuracy never chooses."""
    within = front[front["average_bits"] <= bits + 1e-9]
    if not len(within):
        return None
    within = within.sort_values(["val", "average_bits"], ascending=[False, True], kind="stable")
    return within.iloc[0]


def reading_peers(fronts: pd.DataFrame, peers: pd.DataFrame,
                  ablation: Optional[pd.DataFrame] = None, tolerance: float = 0.5) -> str:
    """The chapter's conclusion, from the fronts, the published points and the ablation."""
    text = []
    for r in peers.itertuples():
        sub = fronts[(fronts["dataset"] == r.dataset) & (fronts["model"] == r.model)]
        if not len(sub):
            continue
        parts = []
        for method, g in sub.groupby("method", sort=False):
            best = best_within_bits(g, r.average_bits)
            if best is not None:
                parts.append(f"{method} {best['test']:.1f}% test (its validation "
                             f"{best['val']:.1f}%) at {best['average_bits']:.2f} bits")
            else:
                parts.append(f"{method}: no front point at {r.average_bits:g} bits or fewer")
        std = "" if pd.isna(r.accuracy_std) else f" ± {r.accuracy_std:g}"
        text.append(f"* {r.dataset}/{MODEL_LABELS.get(r.model, r.model)}, **{r.method}** publishes {r.accuracy:g}%{std} at "
                    f"{r.average_bits:g} average bits ({r.protocol}); within as many bits our "
                    f"fronts reach {'; '.join(parts)} (chosen on validation, test read once).\n")
    text.append("\nOur points are single fine-tunes of the searches' candidates on one FP32 model "
                "(chapter 3's final fine-tunes are longer); published points that select the "
                "epoch on the test set are optimistic by the margin chapter 3 measures. Bi-GCN "
                "and MixQ-GNN also quantize the weights, which our count leaves in float32.\n")
    if ablation is not None and len(ablation):
        text.append("\n**Ablation** (mean over search seeds of the test drop against FP32; the "
                    "share of searches whose choice drops more than the tolerance): ")
        parts = []
        for (d, m), g in ablation.groupby(["dataset", "model"], sort=False):
            steps = "; ".join(f"{r.variant_label} {r.saving:.1f}x, drop {r.acc_drop:.2f}, "
                              f"{int(r.over_tolerance)}/{int(r.searches)} over"
                              for r in g.itertuples())
            parts.append(f"{d}/{MODEL_LABELS.get(m, m)}: {steps}")
        text.append(". ".join(parts) + ".")
    return "".join(text)


@dataclasses.dataclass
class Chapter(SearchChapter):
    """Chapter 8 (``notebooks/08_peers.ipynb``)."""

    ablation: bool = True

    unused = ("dataset", "model")

    @cached_property
    def runs(self) -> pd.DataFrame:
        return front_runs(PEER_PAIRS, self.run_settings, search_seed=self.search_seed,
                          search_seeds=self.search_seeds, tolerance=self.tolerance)

    @cached_property
    def fronts(self) -> pd.DataFrame:
        return pareto_fronts(self.runs)

    @cached_property
    def peers(self) -> pd.DataFrame:
        return peer_points(_pairs(PEER_PAIRS, self.prof))

    @cached_property
    def ablation_results(self) -> pd.DataFrame:
        if not self.ablation:
            return pd.DataFrame()
        return ablation_table(ablation_runs(ABLATION_PAIRS, self.run_settings, self.seeds,
                                            tolerance=self.tolerance,
                                            search_seed=self.search_seed,
                                            search_seeds=self.search_seeds), self.tolerance)

    def fronts_figure(self) -> Any:
        return plot_fronts(self.fronts, self.peers)

    def peers_table(self) -> Any:
        return table(self.peers, caption="Published points (source: the BibTeX key, see the "
                     "references page) and the protocol each was measured under",
                     columns={"method": "method", "dataset": "dataset", "model": "model",
                              "accuracy": "test accuracy (%)", "accuracy_std": "± std",
                              "average_bits": "average bits", "saving": "saving (x)",
                              "components": "quantized", "protocol": "protocol",
                              "source": "source"})

    def fronts_table(self) -> Any:
        return table(self.fronts, caption="Our Pareto fronts (chosen on validation; test "
                     "accuracy of the same fine-tune)",
                     columns={"dataset": "dataset", "model": "model", "method": "method",
                              "average_bits": "average bits", "saving": "saving (x)",
                              "val": "val (%)", "test": "test (%)",
                              "fp32_test": "FP32 test (%)"})

    def ablation_display(self) -> Any:
        t = self.ablation_results
        if not len(t):
            return markdown("The ablation was not run (`ablation = False`).")
        return table(t, caption="Ablation: one change at a time from the paper's method to "
                     "SGQuant+ (chapter 3's protocol; mean ± std across search seeds)",
                     columns={"dataset": "dataset", "model": "model",
                              "variant_label": "step", "saving": "saving (x)",
                              "saving_std": "saving ± std", "average_bits": "avg bits",
                              "test": "test (%)", "acc_drop": "drop vs FP32 (points)",
                              "acc_drop_std": "drop ± std", "over_tolerance": "drops > tol.",
                              "searches": "searches"})

    def reading(self) -> Any:
        return markdown(reading_peers(self.fronts, self.peers, self.ablation_results,
                                      self.tolerance))
