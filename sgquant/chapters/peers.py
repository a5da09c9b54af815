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
from typing import Any, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..assignment import as_assignment
from ..paper import paper_table
from ..models import get_model
from ..plots import MODEL_LABELS, plain_log_axis, pm, table
from ..settings import RunSettings
from ..profiles import Profile
from ..seeds import SeedPlan, get_plan, search_finetune_seed
from ..variants import ABLATION, get_variant
from .common import (SearchChapter, chapter_settings, markdown, measurement_runner, percent,
                     search_settings)
from .table3 import DEFAULT_VARIANTS, overall_runs, overall_table, paper_mismatch

__all__ = ["PEER_PAIRS", "ABLATION_PAIRS", "OUR_BITS", "front_runs", "pareto_fronts",
           "peer_points", "plot_fronts", "ablation_runs", "ablation_table", "best_within_bits",
           "reading_peers", "format_peers", "format_peer_sources", "Chapter"]

#: The (dataset, model) pairs the peers published points on.
PEER_PAIRS = (("Cora", "gcn"), ("CiteSeer", "gcn"), ("Cora", "gat"))
#: The pairs of the ablation.
ABLATION_PAIRS = (("Cora", "gcn"), ("CiteSeer", "gcn"))
#: What our average bits are (``bits_definition`` of :func:`peer_points`): bits of the
#: stored feature elements over their number (the float32 min/scale of each group is
#: counted in the saving, not in the bits). Only published points with the same
#: definition are compared with our fronts.
OUR_BITS = "per feature element"


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


def _like(peers: pd.DataFrame) -> pd.Series:
    """Published points whose average bits are ours (:data:`OUR_BITS`)."""
    return peers["bits_definition"] == OUR_BITS if "bits_definition" in peers else \
        pd.Series(True, index=peers.index)


def search_models(runs: pd.DataFrame) -> pd.DataFrame:
    """The FP32 models a pair's searches ran on (each search seed its own), one row each:
    ``fp32_seed``, ``fp32_val``, ``fp32_test``."""
    return runs.drop_duplicates("fp32_seed")[["fp32_seed", "fp32_val", "fp32_test"]]


def plot_fronts(fronts: pd.DataFrame, peers: pd.DataFrame,
                mismatch: Optional[Mapping[str, str]] = None) -> plt.Figure:
    """Test accuracy against average bits, one panel per pair: each method's front (chosen
    on validation), the searches' FP32 model (dashed) and the published points, filled
    when their average bits are ours (:data:`OUR_BITS`), hollow and grey when they count
    another quantity (not comparable on this axis); a panel whose model is not the paper's
    size (``mismatch``: model -> our size) says so in its title."""
    mismatch = mismatch or {}
    pairs = list(dict.fromkeys(zip(fronts["dataset"], fronts["model"])))
    fig, axes = plt.subplots(1, max(len(pairs), 1), figsize=(4.6 * max(len(pairs), 1), 4.2),
                             squeeze=False)
    palette = dict(zip(dict.fromkeys(fronts["method"]), sns.color_palette("deep")))
    markers = dict(zip(dict.fromkeys(peers["method"]), "s^DPX*"))
    like = _like(peers)
    for ax, (d, m) in zip(axes[0], pairs):
        sub = fronts[(fronts["dataset"] == d) & (fronts["model"] == m)]
        for method, g in sub.groupby("method", sort=False):
            ax.plot(g["average_bits"], g["test"], "-o", ms=3, color=palette[method],
                    label=f"{method} (ours: front on validation)")
        fp32 = search_models(sub)["fp32_test"]
        if len(fp32) > 1:
            ax.axhspan(float(fp32.min()), float(fp32.max()), color="grey", alpha=0.15, lw=0)
        ax.axhline(float(fp32.mean()), ls="--", color="grey", lw=1, label=(
            f"FP32 (ours: mean of the {len(fp32)} search models, range shaded)"
            if len(fp32) > 1 else "FP32 (ours: the search model)"))
        here = (peers["dataset"] == d) & (peers["model"] == m)
        for r, same in zip(peers[here].itertuples(), like[here]):
            ax.errorbar(r.average_bits, r.accuracy, yerr=None if pd.isna(r.accuracy_std)
                        else r.accuracy_std, marker=markers[r.method],
                        color="black" if same else "grey", mfc=None if same else "none",
                        ms=6, capsize=2, ls="none", label=f"{r.method} (published" + (
                            ")" if same else f"; bits: {r.bits_definition})"))
        ax.set_xscale("log")
        plain_log_axis(ax)
        title = f"{d} / {MODEL_LABELS.get(m, m)}"
        ax.set_title(title + (f" ({mismatch[m]}: not comparable)" if mismatch.get(m) else ""))
        ax.set_xlabel("average bits per feature element (log)")
        ax.set_ylabel("test accuracy (%)")
        lowest = min([float(sub["test"].min()), *peers.loc[here, "accuracy"].astype(float)])
        lo = max(lowest - 2.0, float(fp32.min()) - 15.0)
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


def ablation_table(runs: pd.DataFrame, tolerance: float = 0.5,
                   profile: "str | Profile | RunSettings | None" = None) -> pd.DataFrame:
    """:func:`sgquant.chapters.table3.overall_table` of :func:`ablation_runs` (under
    ``profile``, the runs'), one row per (pair, step), in the order of
    :data:`sgquant.variants.ABLATION`."""
    t = overall_table(runs, tolerance, profile)
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


def _published(r: Any) -> str:
    """A published point as the reading quotes it: accuracy with its ± and bits, then its
    protocol and source."""
    std = "" if pd.isna(r.accuracy_std) else f" ± {r.accuracy_std:g}"
    where = "; ".join(str(w) for w in (r.protocol, _source(r)) if w)
    return (f"{r.dataset}/{MODEL_LABELS.get(r.model, r.model)}, **{r.method}** publishes "
            f"{r.accuracy:g}%{std} at {r.average_bits:g} average bits ({where})")


def _source(r: Any) -> str:
    """A published point's source: its BibTeX key, then the table or log where recorded."""
    key, where = getattr(r, "source", ""), getattr(r, "figure_source", None)
    return f"{key}, {where}" if isinstance(where, str) and where else str(key or "")


def _beside(sub: pd.DataFrame, bits: float) -> str:
    """Each method's front point within ``bits`` chosen on validation, its test read once."""
    parts = []
    for method, g in sub.groupby("method", sort=False):
        best = best_within_bits(g, bits)
        if best is not None:
            parts.append(f"{method} {best['test']:.1f}% test (its validation "
                         f"{best['val']:.1f}%) at {best['average_bits']:.2f} bits")
        else:
            parts.append(f"{method}: no front point at {bits:g} bits or fewer")
    return "; ".join(parts)


def reading_peers(fronts: pd.DataFrame, peers: pd.DataFrame,
                  ablation: Optional[pd.DataFrame] = None, tolerance: float = 0.5,
                  mismatch: Optional[Mapping[str, str]] = None) -> str:
    """The chapter's conclusion, from the fronts, the published points and the ablation.
    A published point is compared with our fronts only when its average bits are ours
    (``bits_definition`` :data:`OUR_BITS`) and our model has the paper's size (``mismatch``:
    model -> our size where it differs); the others are quoted and marked."""
    mismatch = mismatch or {}
    text = []
    for r, same in zip(peers.itertuples(), _like(peers)):
        sub = fronts[(fronts["dataset"] == r.dataset) & (fronts["model"] == r.model)]
        if not len(sub):
            continue
        if mismatch.get(r.model):
            verdict = (f"not comparable ({mismatch[r.model]}): our "
                       f"{MODEL_LABELS.get(r.model, r.model)} is {mismatch[r.model]}, the "
                       f"paper's {get_model(r.model).size_label()}, so no front is set beside it")
        elif not same:
            verdict = (f"its average bits are another quantity ({r.bits_definition}), so our "
                       f"fronts are not set beside it")
        else:
            verdict = (f"within as many bits our fronts reach {_beside(sub, r.average_bits)} "
                       f"(chosen on validation, test read once)")
        text.append(f"* {_published(r)}; {verdict}.\n")
    text.append("\nOur points are single fine-tunes of the searches' candidates, each on its "
                f"search's own FP32 model ({_models_note(fronts)}), pooled into one front per "
                "method on validation (chapter 3's final fine-tunes are longer); the dashed line "
                "is those models' mean FP32 test accuracy. Published points that select the "
                "epoch on the test set are optimistic by the margin chapter 3 measures. Bi-GCN "
                "and MixQ-GNN also quantize the weights, which our count leaves in float32.\n")
    if ablation is not None and len(ablation):
        text.append("\n**Ablation** (per step the saving as the ratio of the mean memories "
                    "across search seeds, the mean over search seeds of the test drop against "
                    "FP32, and the searches whose choice drops more than the tolerance): ")
        parts = []
        for (d, m), g in ablation.groupby(["dataset", "model"], sort=False):
            steps = "; ".join(f"{r.variant_label} {r.saving:.1f}x, drop {r.acc_drop:.2f}, "
                              f"{int(r.over_tolerance)}/{int(r.searches)} over"
                              for r in g.itertuples())
            parts.append(f"{d}/{MODEL_LABELS.get(m, m)}: {steps}")
        text.append(". ".join(parts) + ".")
    return "".join(text)


def _models_note(fronts: pd.DataFrame) -> str:
    """Per pair: its search models' seeds and FP32 test accuracies."""
    parts = []
    for (d, m), g in fronts.groupby(["dataset", "model"], sort=False):
        models = search_models(g)
        parts.append(f"{d} {MODEL_LABELS.get(m, m)}: seed " + ", ".join(
            f"{int(r.fp32_seed)} {r.fp32_test:.1f}%" for r in models.itertuples()))
    return "; ".join(parts)


def _pair(r: Any) -> str:
    return f"{r.dataset} {MODEL_LABELS.get(r.model, r.model)}"


def format_peers(peers: pd.DataFrame) -> pd.DataFrame:
    """The published points for display: accuracy with its published ± in one column, the
    average bits and what they average, the saving and what it is of."""
    rows = [{"method": r.method, "pair": _pair(r),
             "test (%) ± published std": pm(r.accuracy, r.accuracy_std),
             "avg bits": f"{r.average_bits:g}", "what the bits average": r.bits_definition,
             "saving": "—" if pd.isna(r.saving) else f"{r.saving:g}x ({r.saving_of})"}
            for r in peers.itertuples()]
    return pd.DataFrame(rows)


def format_peer_sources(peers: pd.DataFrame) -> pd.DataFrame:
    """Where each published point comes from: its protocol and source (BibTeX key, then
    the table or log where recorded)."""
    rows = [{"method": r.method, "pair": _pair(r), "test (%)": f"{r.accuracy:g}",
             "protocol": r.protocol, "source": _source(r)} for r in peers.itertuples()]
    return pd.DataFrame(rows)


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
    def mismatch(self) -> dict[str, str]:
        """Model -> its size here where it is not the paper's (:func:`paper_mismatch`)."""
        return {m: paper_mismatch(m, self.run_settings) for _, m in PEER_PAIRS}

    @cached_property
    def ablation_results(self) -> pd.DataFrame:
        if not self.ablation:
            return pd.DataFrame()
        return ablation_table(ablation_runs(ABLATION_PAIRS, self.run_settings, self.seeds,
                                            tolerance=self.tolerance,
                                            search_seed=self.search_seed,
                                            search_seeds=self.search_seeds), self.tolerance,
                              self.run_settings)

    def fronts_figure(self) -> Any:
        return plot_fronts(self.fronts, self.peers, self.mismatch)

    def peers_table(self) -> Any:
        return table(format_peers(self.peers), caption=(
            f"Published points: test accuracy with its published ± (none where none is "
            f"published), the average bits and what they average (ours: {OUR_BITS}; only "
            f"those points are compared with our fronts), and the saving and what it is of"))

    def sources_table(self) -> Any:
        return table(format_peer_sources(self.peers), caption=(
            "Where each published point comes from: the protocol it was measured under and "
            "its source (BibTeX key, see the references page; then the table, where "
            "recorded)"))

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
        shown = pd.DataFrame({
            "dataset": t["dataset"], "model": [MODEL_LABELS.get(m, m) for m in t["model"]],
            "step": t["variant_label"],
            "saving: ratio of mean memories": [f"{v:.2f}x" for v in t["saving"]],
            "lowest saving": [f"{v:.2f}x" for v in t["saving_min"]],
            "avg bits": [f"{v:.2f}" for v in t["average_bits"]],
            "test (%) ± std over search seeds": [pm(a, b) for a, b in zip(t["test"],
                                                                          t["test_std"])],
            "drop ± std over search seeds": [pm(a, b) for a, b in zip(t["acc_drop"],
                                                                      t["acc_drop_std"])],
            "searches with drop > tol.": [f"{int(a)} / {int(b)}" for a, b in
                                          zip(t["over_tolerance"], t["searches"])]})
        return table(shown, caption="Ablation: one change at a time from the paper's method "
                     "to SGQuant+ (chapter 3's protocol)")

    def reading(self) -> Any:
        return markdown(reading_peers(self.fronts, self.peers, self.ablation_results,
                                      self.tolerance, self.mismatch))
