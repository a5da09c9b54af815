"""Chapter 3 (Table III): the memory each method's chosen assignment saves, at what accuracy.

The runs and Table III's rows are :mod:`sgquant.chapters.table3`'s (its protocol); this
module adds the coded storage of each choice (:func:`add_coded_storage`), the reading
and the ``Chapter`` the notebook drives. The converse question, what the paper's saving
itself costs under this protocol, is :mod:`sgquant.chapters.at_paper`'s.
"""
from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any, Optional, Sequence

import pandas as pd

from ..models import get_model
from ..plots import (MODEL_LABELS, SHORT_DATASET_NAMES, format_at_paper, plot_overall_saving,
                     table)
from ..runner import cost_sentence
from ..search.confirm import t_quantile
from ..variants import get_variant
from .at_paper import at_paper_cost, at_paper_runs, at_paper_summary, at_paper_table
from .coded_column import add_coded_storage
from .common import SearchChapter, markdown
from .held_out import (development_vs_held_out, format_held_out, held_out_runs,
                       reading_held_out)
from .replication import replication_status
from .table3 import DEFAULT_VARIANTS, overall_runs, overall_table, reaches_paper
from .table3_display import (format_accuracy, format_authors, format_chosen, format_memory,
                             format_memory_details, format_replication)

__all__ = ["add_coded_storage", "reading_overall", "Chapter"]


def _rate(t: pd.DataFrame, variant: str) -> tuple[int, int]:
    """(searches whose choice's test drop exceeds the tolerance, searches) of ``variant``."""
    sub = t[t["variant"] == variant]
    return int(sub["over_tolerance"].sum()), int(sub["searches"].sum())


def _miss(r: Any, tolerance: float) -> str:
    """Why a Table III row of SGQuant+ misses its target (every search at the paper's
    saving, the mean test drop within tolerance), from what was measured: the searches
    that kept FP32 (no configuration passed confirmation), the searches' largest feasible
    saving (what the search found within tolerance, before confirmation), and the choice's
    validation drop beside its test drop (validation that did not predict test)."""
    why = []
    if r.saving_min < r.paper_saving - 1e-9:
        kept = int(r.searches) - int(r.found)
        top = r.search_top_saving
        if kept:
            reason = (f": {kept} of {int(r.searches)} searches kept FP32, no configuration "
                      f"passing confirmation")
        elif pd.notna(top) and r.saving_min < 0.95 * top:
            reason = (f": confirmation rejected larger feasible savings (the searches' "
                      f"largest average {top:.1f}x"
                      + (", itself below the paper's)" if top < r.paper_saving - 1e-9 else ")"))
        elif pd.notna(top):
            reason = (f": the searches' largest feasible savings average only {top:.1f}x, "
                      f"so within its budget the search found nothing larger within tolerance")
        else:
            reason = ": the largest saving confirmation accepted on validation"
        why.append(f"{int(r.searches_reaching)} of {int(r.searches)} searches reach the "
                   f"paper's {r.paper_saving:.1f}x, the row saving {r.saving:.1f}x and its "
                   f"lowest search {r.saving_min:.1f}x" + reason)
    if r.acc_drop > tolerance + 1e-9:
        val_drop = r.fp32_val - r.val
        why.append(f"test drop {r.acc_drop:.2f} > {tolerance:g}"
                   + (f", with a validation drop of only {val_drop:.2f}: validation did not "
                      f"predict test" if val_drop <= tolerance + 1e-9 else
                      f", validation drop {val_drop:.2f}: the final fine-tunes lost more than "
                      f"the search's measurements"))
    if not why:
        return ""
    return f"{r.dataset}/{MODEL_LABELS[r.model]} ({', '.join(why)})"


def _spread_sentence(plus: pd.DataFrame, tolerance: float) -> str:
    """How much SGQuant+'s choice depends on the search seed: the rows whose test drop has
    a standard deviation across search seeds above ``tolerance``, each with what every
    search chose (saving, test drop, validation drop) and why its worst choice lost more
    than the others, from what was measured."""
    spread = plus.dropna(subset=["acc_drop_std"])
    if not len(spread):
        return ""
    wide = spread[spread["acc_drop_std"] > tolerance + 1e-9]
    head = (f"Across search seeds the test drop of SGQuant+'s choice has a standard deviation "
            f"of at most {tolerance:g} points on {len(spread) - len(wide)} of {len(spread)} "
            f"comparable rows (the standard deviation of its saving across search seeds "
            f"reaches {plus['saving_std'].max():.1f}x)")
    if not len(wide):
        return head + ": the choice is stable. "
    parts = []
    for r in wide.itertuples():
        each = ", ".join(f"{sv:.1f}x losing {d:.2f}" for sv, d, _ in r.search_choices)
        sv, d, vd = max(r.search_choices, key=lambda c: c[1])
        why = (f"whose validation drop was {vd:.2f}: validation did not predict test"
               if vd <= tolerance + 1e-9 else
               f"whose validation drop was {vd:.2f} too: the final fine-tunes of that "
               f"configuration lost more than the search measured")
        parts.append(f"{r.dataset}/{MODEL_LABELS[r.model]} ({r.acc_drop_std:.2f}: the searches "
                     f"chose {each}; the worst, {sv:.1f}x, {why})")
    return head + "; above it on " + "; ".join(parts) + ". "


def _comparable(ran: pd.DataFrame) -> pd.Series:
    """Rows comparable with the paper's (all when ``comparable`` is absent)."""
    return ran["comparable"].astype(bool) if "comparable" in ran else \
        pd.Series(True, index=ran.index)


def _excluded_sentence(ran: pd.DataFrame) -> str:
    """The rows left out of every count: their model is not the paper's size."""
    out = ran[~_comparable(ran)].drop_duplicates(["dataset", "model"])
    if not len(out):
        return ""
    names = ", ".join(f"{r.dataset}/{MODEL_LABELS[r.model]}" for r in out.itertuples())
    sizes = "; ".join(f"{MODEL_LABELS[m]} is {a} here, {get_model(m).size_label()} in the paper"
                      for m, a in dict(zip(out["model"], out["architecture"])).items())
    return (f"Left out of every count above and below, marked not comparable: {names} ({sizes};"
            f" the `paper` profile trains the paper's size). ")


def _method_sentence(sub: pd.DataFrame, comp: pd.DataFrame, v: str, tolerance: float) -> str:
    """One method's headline over the comparable rows ``sub`` of it."""
    label = sub["variant_label"].iloc[0]
    over, total = _rate(comp, v)
    text = (f"**{label}** saves **{sub['saving'].min():.1f}x to {sub['saving'].max():.1f}x** of "
            f"feature memory (counting the min/scale overhead; per row the ratio of the mean "
            f"memories over its {int(sub['searches'].max())} search seed(s), the searches' "
            f"medians {sub['saving_median'].min():.1f}x to {sub['saving_median'].max():.1f}x) "
            f"at a mean test drop of **{sub['acc_drop'].mean():.2f} points** against our FP32 "
            f"(a search that kept FP32 counts a drop of 0); the test drop of a search's choice "
            f"exceeds the {tolerance:g}-point tolerance in {over} of {total} searches")
    paper = sub.dropna(subset=["paper_saving"])
    if len(paper):
        meets = int(reaches_paper(paper, tolerance).sum())
        median = int(((paper["saving_median"] >= paper["paper_saving"] - 1e-9)
                      & (paper["acc_drop"] <= tolerance + 1e-9)).sum())
        text += (f"; **every search** reaches the paper's saving, at a mean drop of at most "
                 f"{tolerance:g} points, on **{meets} of {len(paper)}** comparable rows (the "
                 f"median search on {median})")
    return text + ". "


def _confirmation_sentence(ran: pd.DataFrame) -> str:
    """The confidence level of each method's confirmation bound (none for a mean)."""
    parts = []
    for v, sub in ran.groupby("variant", sort=False):
        c = get_variant(v).confirmation
        if c.top and c.level > 0.5:
            n = c.judged()
            parts.append(f"{sub['variant_label'].iloc[0]} confirms a configuration when the "
                         f"one-sided {100 * c.level:g}% lower confidence bound of its mean "
                         f"validation accuracy (Student's t with {n - 1} degree(s) of "
                         f"freedom over its {n} confirmation fine-tunes: the mean minus "
                         f"{t_quantile(c.level, n - 1):.3g} times the standard error) is within "
                         f"the tolerance")
    return "; ".join(parts) + ". " if parts else ""


def reading_overall(table3: pd.DataFrame, tolerance: float = 0.5,
                    at_paper: Optional[pd.DataFrame] = None) -> str:
    """Closing paragraph of chapter 3, from :func:`overall_table` and, when given,
    :func:`at_paper_table` (what the paper's saving itself costs each method). Counts
    and means compare with the paper only the rows whose model has the paper's size
    (``comparable``); a row "reaches the paper's saving" when *every* search does
    (:func:`~sgquant.chapters.table3.reaches_paper`)."""
    ran = table3[table3["status"] == "run"]
    if not len(ran):
        return "No (dataset, model) pair was run with this profile and these parameters."
    comp = ran[_comparable(ran)]
    pairs = set(zip(comp["dataset"], comp["model"]))
    if at_paper is not None:
        keep = pd.Series([(d, m) in pairs for d, m in zip(at_paper["dataset"],
                                                          at_paper["model"])],
                         index=at_paper.index, dtype=bool)
        at_paper = at_paper.loc[keep]
    text = [_method_sentence(sub, comp, v, tolerance)
            for v, sub in comp.groupby("variant", sort=False)]
    if not len(comp):
        text.append("No row run here has the paper's model size, so none is compared with "
                    "the paper. ")
    text.append(_excluded_sentence(ran))
    text.append(_confirmation_sentence(ran))
    if at_paper is not None:
        text.append(at_paper_summary(comp, at_paper, tolerance))
    plus = comp[comp["variant"] == "sgquant+"] if "variant" in comp else comp.iloc[0:0]
    if len(plus):
        text.append(_spread_sentence(plus, tolerance))
        paper_rows = plus.dropna(subset=["paper_saving"])
        misses = [m for m in (_miss(r, tolerance) for r in paper_rows.itertuples()) if m]
        if misses:
            text.append("SGQuant+ misses the target on " + "; ".join(misses) + ". ")
        if at_paper is not None:
            short = paper_rows[paper_rows["saving_min"] < paper_rows["paper_saving"] - 1e-9]
            text.append(at_paper_cost(short, at_paper, tolerance))
    text.append(
        f"Selecting on the test set as the authors' scripts do (best test accuracy over epochs) "
        f"would report {(ran['best_test'] - ran['test']).mean():.2f} points more for the "
        f"quantized models and {(ran['fp32_best_test'] - ran['fp32_test']).mean():.2f} more for "
        "FP32. Absolute megabytes differ from the paper's because the paper does not say what "
        "its 'Memory Size' counts; ours is the analytic feature memory (see the architecture "
        "page), and only ratios are comparable. Search budgets are the profile's, smaller than "
        "the paper's except in the `paper` profile.")
    return "".join(text)


@dataclasses.dataclass
class Chapter(SearchChapter):
    """Chapter 3 (``notebooks/03_overall.ipynb``)."""

    variants: Sequence[str] = DEFAULT_VARIANTS
    held_out: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.variants = [get_variant(v).name for v in self.variants]

    @cached_property
    def runs(self) -> pd.DataFrame:
        """:func:`overall_runs`: one row per (dataset, model, variant, search seed, seed)."""
        return overall_runs(self.dataset, self.model, self.run_settings, self.seeds,
                            tolerance=self.tolerance, search_seed=self.search_seed,
                            search_seeds=self.search_seeds, variants=self.variants)

    @cached_property
    def table3(self) -> pd.DataFrame:
        """:func:`overall_table` of :attr:`runs` (rows marked comparable or not under this
        chapter's profile), with the coded storage of each choice (:func:`add_coded_storage`)."""
        return add_coded_storage(overall_table(self.runs, self.tolerance, self.run_settings),
                                 self.runs, self.run_settings)

    @cached_property
    def at_paper(self) -> pd.DataFrame:
        """:func:`at_paper_table` of :func:`at_paper_runs` of :attr:`runs`."""
        return at_paper_table(at_paper_runs(self.runs, self.run_settings),
                              self.tolerance)

    @cached_property
    def replication(self) -> pd.DataFrame:
        """:func:`~sgquant.chapters.replication.replication_status` of :attr:`table3`."""
        return replication_status(self.table3, self.tolerance)

    def _runs_line(self) -> str:
        """How many evaluation seeds and searches each run row has, and the dataset names
        the tables shorten."""
        ran = self.table3[self.table3["status"] == "run"]
        short = [f"{v}: {k}" for k, v in SHORT_DATASET_NAMES.items()
                 if k in set(self.table3["dataset"])]
        names = f" ({'; '.join(short)}.)" if short else ""
        if not len(ran):
            return names
        return (f" Each row run: {int(ran['seeds'].max())} evaluation seed(s) x "
                f"{int(ran['searches'].max())} search(es).{names}")

    def accuracy_table(self) -> Any:
        return table(format_accuracy(self.table3), caption=(
            "Table III (accuracy, %): test accuracy of each method's choice (selected on "
            "validation, test read once; mean over evaluation seeds) and its drop against our "
            "FP32, beside the paper's; a search that kept FP32 counts a drop of 0."
            + self._runs_line()))

    def memory_table(self) -> Any:
        return table(format_memory(self.table3), caption=(
            "Table III (memory): average bits and feature-memory saving (min/scale counted) "
            "of each method's choice, beside the paper's: the ratio of the mean memories "
            "across search seeds, and the median and lowest of the searches' savings."
            + self._runs_line()))

    def memory_details_table(self) -> Any:
        return table(format_memory_details(self.table3), caption=(
            "The saving counted other ways: FP32 megabytes, the mean of the searches' savings "
            "(a mean of ratios, which a single large saving inflates), the paper's formula "
            "32 / average bits (no min/scale) and the entropy-coded storage"))

    def authors_table(self) -> Any:
        return table(format_authors(self.table3), caption=(
            "The authors' protocol (best test accuracy over epochs, %; selected on test, so "
            "optimistic), beside the paper's numbers"))

    def replication_table(self) -> Any:
        return table(format_replication(self.replication), caption=(
            "Replication status per Table III row (the rule: sgquant.chapters.replication): "
            "reproduced when every search reaches the paper's saving and the mean test drop "
            f"is at most {self.tolerance:g} points, partly when one of the two holds, not "
            "reproduced when neither does." + self._runs_line()))

    def chosen_table(self) -> Any:
        return table(format_chosen(self.table3), caption=(
            "The configurations the searches chose (bits per layer: attention, then embedding "
            "per degree bucket, lowest degrees first)"))

    def at_paper_display(self) -> Any:
        if not len(self.at_paper):
            return markdown("No search measured a configuration at the paper's saving "
                            "(or no row the paper has was run).")
        t3 = self.table3.drop_duplicates(["dataset", "model"])
        notes = {(r.dataset, r.model): f"not comparable ({r.architecture})"
                 for r in t3.itertuples() if not getattr(r, "comparable", True)}
        shown = self.at_paper.assign(note=[notes.get((d, m), "") for d, m in
                                           zip(self.at_paper["dataset"], self.at_paper["model"])])
        return table(format_at_paper(shown), caption=(
            "At the paper's saving: the configuration with the best validation accuracy among "
            "those each method's searches measured at or above the paper's Table III saving, "
            "fine-tuned with the method's final fine-tune from every evaluation seed"))

    def saving_figure(self) -> Any:
        return plot_overall_saving(self.table3)

    def runs_table(self) -> Any:
        ran = self.runs[self.runs["status"] == "run"]
        if not len(ran):
            return markdown("No (dataset, model) pair was run: "
                            + "; ".join(sorted(set(self.runs["status"]))) + ".")
        cost = self.runs.attrs.get("cost")
        spent = f"; epochs asked for, by purpose: {cost_sentence(cost, seconds=False)}" \
            if cost else ""
        return table(ran.drop(columns=["chosen_json", "at_paper_json"], errors="ignore"),
                     caption="Every (dataset, model, method, search seed, seed) run" + spent)

    def reading(self) -> Any:
        return markdown(reading_overall(self.table3, self.tolerance, self.at_paper))

    # ------------------------------------------------ held out (sgquant.chapters.held_out)
    @cached_property
    def held_out_comparison(self) -> pd.DataFrame:
        """Development beside held-out rows (:func:`development_vs_held_out`); empty when
        ``held_out`` is off."""
        if not self.held_out:
            return pd.DataFrame()
        held = overall_table(held_out_runs(self.run_settings, self.variants, self.tolerance,
                                           self.workers), self.tolerance)
        return development_vs_held_out(self.table3, held)

    def frozen_display(self) -> Any:
        from ..frozen import FROZEN, settings_table

        return table(settings_table("sgquant+"), caption=(
            f"SGQuant+ as frozen (version {FROZEN['sgquant+'][-1]}, "
            "sgquant/frozen/): every setting of the method; the held-out runs check the code "
            "against it before they start"))

    def design_display(self) -> Any:
        from ..frozen import design_list

        return markdown(design_list())

    def held_out_display(self) -> Any:
        if not len(self.held_out_comparison):
            return markdown("The held-out evaluation is off (`-p held_out False`).")
        return table(format_held_out(self.held_out_comparison), caption=(
            "Development (the seeds and datasets SGQuant+ was designed on) beside held-out "
            "(fresh seeds for every purpose; Coauthor-CS never used): saving (ratio of "
            "Table III's saving column), test and validation drop (points; means over search "
            "seeds); diff = held-out minus development"))

    def held_out_reading(self) -> Any:
        from ..frozen import FROZEN

        return markdown(reading_held_out(self.held_out_comparison, FROZEN["sgquant+"][-1],
                                         self.tolerance))
