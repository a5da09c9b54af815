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

from ..plots import (MODEL_LABELS, format_at_paper, format_overall, plot_overall_saving,
                     table)
from ..runner import cost_sentence
from ..variants import get_variant
from .at_paper import at_paper_cost, at_paper_runs, at_paper_summary, at_paper_table
from .coded_column import add_coded_storage
from .common import SearchChapter, markdown
from .held_out import (development_vs_held_out, format_held_out, held_out_runs,
                       reading_held_out)
from .table3 import DEFAULT_VARIANTS, overall_runs, overall_table

__all__ = ["add_coded_storage", "reading_overall", "Chapter"]


def _rate(t: pd.DataFrame, variant: str) -> tuple[int, int]:
    """(searches whose choice's test drop exceeds the tolerance, searches) of ``variant``."""
    sub = t[t["variant"] == variant]
    return int(sub["over_tolerance"].sum()), int(sub["searches"].sum())


def _miss(r: Any, tolerance: float) -> str:
    """Why a Table III row of SGQuant+ misses its target, from what was measured: the
    searches that kept FP32 (no configuration passed confirmation), the searches' largest
    feasible saving (what the search found within tolerance, before confirmation), and the
    choice's validation drop beside its test drop (validation that did not predict test)."""
    why = []
    if r.saving < r.paper_saving - 1e-9:
        kept = int(r.searches) - int(r.found)
        top = r.search_top_saving
        if kept:
            reason = (f": {kept} of {int(r.searches)} searches kept FP32, no configuration "
                      f"passing confirmation")
        elif pd.notna(top) and r.saving < 0.95 * top:
            reason = (f": confirmation rejected larger feasible savings (the searches' "
                      f"largest average {top:.1f}x"
                      + (", itself below the paper's)" if top < r.paper_saving - 1e-9 else ")"))
        elif pd.notna(top):
            reason = (f": the searches' largest feasible savings average only {top:.1f}x, "
                      f"so within its budget the search found nothing larger within tolerance")
        else:
            reason = ": the largest saving confirmation accepted on validation"
        why.append(f"saving {r.saving:.1f}x < the paper's {r.paper_saving:.1f}x" + reason)
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
            f"of at most {tolerance:g} points on {len(spread) - len(wide)} of {len(spread)} rows"
            f" (its saving varies by up to {plus['saving_std'].max():.1f}x)")
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


def reading_overall(table3: pd.DataFrame, tolerance: float = 0.5,
                    at_paper: Optional[pd.DataFrame] = None) -> str:
    """Closing paragraph of chapter 3, from :func:`overall_table` and, when given,
    :func:`at_paper_table` (what the paper's saving itself costs each method)."""
    ran = table3[table3["status"] == "run"]
    if not len(ran):
        return "No (dataset, model) pair was run with this profile and these parameters."
    text = []
    for v, sub in ran.groupby("variant", sort=False):
        label = sub["variant_label"].iloc[0]
        over, total = _rate(ran, v)
        paper = sub.dropna(subset=["paper_saving"])
        text.append(
            f"**{label}** saves **{sub['saving'].min():.1f}x to {sub['saving'].max():.1f}x** of "
            f"feature memory (counting the min/scale overhead; mean over "
            f"{int(sub['searches'].max())} search seed(s) per row) at a mean test drop of "
            f"**{sub['acc_drop'].mean():.2f} points** against our FP32; the test drop of a search's "
            f"choice exceeds the {tolerance:g}-point tolerance in {over} of {total} searches")
        if len(paper):
            meets = paper[(paper["saving"] >= paper["paper_saving"] - 1e-9)
                          & (paper["acc_drop"] <= tolerance + 1e-9)]
            text.append(f"; it reaches the paper's saving at a drop of at most {tolerance:g} "
                        f"points on {len(meets)} of {len(paper)} rows")
        text.append(". ")
    if at_paper is not None:
        text.append(at_paper_summary(ran, at_paper, tolerance))
    plus = ran[ran["variant"] == "sgquant+"] if "variant" in ran else ran.iloc[0:0]
    if len(plus):
        text.append(_spread_sentence(plus, tolerance))
        paper_rows = plus.dropna(subset=["paper_saving"])
        misses = [m for m in (_miss(r, tolerance) for r in paper_rows.itertuples()) if m]
        if misses:
            text.append("SGQuant+ misses the target on " + "; ".join(misses) + ". ")
        if at_paper is not None:
            short = paper_rows[paper_rows["saving"] < paper_rows["paper_saving"] - 1e-9]
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
        """:func:`overall_table` of :attr:`runs`, with the coded storage of each choice
        (:func:`add_coded_storage`)."""
        return add_coded_storage(overall_table(self.runs, self.tolerance), self.runs,
                                 self.run_settings)

    @cached_property
    def at_paper(self) -> pd.DataFrame:
        """:func:`at_paper_table` of :func:`at_paper_runs` of :attr:`runs`."""
        return at_paper_table(at_paper_runs(self.runs, self.run_settings),
                              self.tolerance)

    @cached_property
    def display(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """(accuracy, memory, chosen configurations): :func:`sgquant.plots.format_overall`."""
        return format_overall(self.table3)

    def accuracy_table(self) -> Any:
        return table(self.display[0], caption=(
            "Table III (accuracy, %): test accuracy of each method's choice (selected on "
            "validation, test read once; mean over evaluation seeds, ± std across search "
            "seeds) and its drop against our FP32, beside the paper's"))

    def memory_table(self) -> Any:
        return table(self.display[1], caption=(
            "Table III (memory): average bits and feature-memory saving of each method's "
            "choice (mean ± std across search seeds), beside the paper's"))

    def chosen_table(self) -> Any:
        return table(self.display[2], caption=(
            "The configurations the searches chose (bits per layer: attention, then embedding "
            "per degree bucket, lowest degrees first)"))

    def at_paper_display(self) -> Any:
        if not len(self.at_paper):
            return markdown("No search measured a configuration at the paper's saving "
                            "(or no row the paper has was run).")
        return table(format_at_paper(self.at_paper), caption=(
            "At the paper's saving: the configuration with the best validation accuracy among "
            "those each method's searches measured at or above the paper's Table III saving, "
            "fine-tuned with the method's final fine-tune from every evaluation seed (test "
            "drop: mean ± std over evaluation seeds)"))

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
        from ..frozen import design_table

        return table(design_table(), caption=(
            "How SGQuant+ was designed: each choice, what it was chosen on, the evidence and "
            "the alternative that stays runnable"))

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
