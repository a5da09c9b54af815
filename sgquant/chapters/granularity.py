"""Chapter 4 (Figs. 4, 5, 7): does finer granularity buy accuracy at equal memory?

Fig. 7: configurations of each granularity (uniform, component, topology, layer,
full) fine-tuned on every seed, validation error against feature memory, and
per granularity its Pareto front. Figs. 4 and 5: one part of the features at a
time quantized, to check the paper's three observations.
"""
from __future__ import annotations

import dataclasses
import math
from functools import cached_property
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from ..assignment import BitAssignment, as_assignment
from ..checks import check_int
from ..data import canonical_name
from ..memory import FeatureLayout, feature_memory
from ..plots import (GRANULARITY_LABELS, GRANULARITY_ORDER, MODEL_LABELS, format_claims,
                     plot_granularity, plot_sensitivity, table)
from ..settings import RunSettings
from ..profiles import Profile, get_profile
from ..quantize import FP32_BITS
from .common import (SingleDatasetChapter, chapter_settings, markdown, measurement_runner,
                     percent, pretrain, resolve_models, resolve_seeds, run_labelled)

__all__ = ["GRANULARITIES", "granularity_configs", "granularity_runs", "pareto_front",
           "granularity_comparison", "sensitivity_configs", "sensitivity_runs",
           "sensitivity_claims", "reading_granularity", "Chapter"]

#: The granularities of Fig. 7, coarsest first.
GRANULARITIES = GRANULARITY_ORDER
#: Display names of :func:`granularity_comparison`'s columns.
COMPARISON_COLUMNS = {"budget": "memory budget", "budget_mb": "MB",
                      **{g: GRANULARITY_LABELS[g].split(" (")[0] for g in GRANULARITIES}}


def _choices(prof: Profile) -> list[int]:
    return [b for b in prof.bit_choices if b != FP32_BITS]


def granularity_configs(layout: FeatureLayout, profile: "str | Profile" = "default",
                        samples: Optional[int] = None, seed: int = 0) -> pd.DataFrame:
    """The configurations of Fig. 7, one row per (granularity, configuration):
    ``uniform`` every bit width of the profile (below 32); ``component``,
    ``topology``, ``layer`` and ``full`` ``samples`` (default: the profile's
    ``granularity_samples``) distinct random draws of their free fields from the
    profile's bit widths (below 32), seeded. Also one ``fp32`` reference row."""
    from ..search import Sampler, SearchSpace

    prof = get_profile(profile)
    n = prof.granularity_samples if samples is None else check_int(samples, "samples", minimum=1)
    L, J = layout.num_layers, len(layout.bucket_sizes)
    choices = _choices(prof)
    rng = np.random.default_rng([seed, 0x6A4])
    out: list[tuple[str, BitAssignment]] = [("fp32", BitAssignment.fp32(L, J))]
    out += [("uniform", BitAssignment.uniform(b, L, J)) for b in choices]

    def draw(kind: str, make, width: int) -> None:
        seen: set = set()
        limit = len(choices) ** width
        tries = 0
        while len(seen) < min(n, limit) and tries < 100 * n:
            tries += 1
            bits = tuple(int(b) for b in rng.choice(choices, size=width))
            if len(set(bits)) == 1 or bits in seen:  # uniform ones are their own curve
                continue
            seen.add(bits)
            out.append((kind, make(bits).expand_buckets(J)))

    draw("component", lambda b: BitAssignment.component_wise(b[0], b[1], L), 2)
    draw("topology", lambda b: BitAssignment.topology_aware(b, L), J)
    draw("layer", lambda b: BitAssignment.layer_wise(b), L)
    space = SearchSpace.from_layout(layout, choices)
    for a in Sampler(space, seed).draw(min(n, space.size)):
        out.append(("full", a))
    rows = []
    for kind, a in out:
        rep = feature_memory(layout, a)
        rows.append({"granularity": kind, "config": str(a), "assignment": a.to_json(),
                     "average_bits": rep.average_bits, "memory_mb": rep.mb, "saving": rep.saving})
    return pd.DataFrame(rows).drop_duplicates(["granularity", "assignment"], ignore_index=True)


def granularity_runs(dataset: str = "Cora", model: str = "gcn",
                     profile: "str | Profile | RunSettings" = "default",
                     seeds: "int | Sequence[int] | None" = None, *,
                     samples: Optional[int] = None, workers: Optional[int] = None) -> pd.DataFrame:
    """Figs. 4, 5, 7: every configuration of :func:`granularity_configs` fine-tuned
    on every seed; one row per (granularity, configuration, seed) with validation
    ``error`` (%) and ``memory_mb``. Configurations are scored on validation."""
    settings = chapter_settings(profile, workers)
    prof = settings.profile
    name, m = canonical_name(dataset), resolve_models(model, prof)[0]
    seed_list = resolve_seeds(seeds, prof)
    with measurement_runner(settings, asked_by="granularity") as runner:
        pretrain(runner, [(name, m, s) for s in seed_list])
        configs = granularity_configs(runner.setup(name, m, seed_list[0]).layout, prof, samples)
        cells = [(s, c) for s in seed_list for c in configs.itertuples()]
        records = run_labelled(
            runner, [{"granularity": c.granularity, "config": c.config, "seed": s}
                     for s, c in cells],
            [runner.finetune_job(name, m, s, as_assignment(c.assignment)) for s, c in cells])
    rows = []
    for rec in records:
        rows.append({"dataset": name, "model": m, "granularity": rec["granularity"],
                     "config": rec["config"], "seed": rec["seed"],
                     "val_acc": percent(rec["val_acc"]), "error": 100.0 - percent(rec["val_acc"]),
                     "fp32_val_acc": percent(rec["fp32_val_acc"]),
                     "average_bits": rec["average_bits"], "memory_mb": rec["memory_mb"],
                     "saving": rec["saving"]})
    return pd.DataFrame(rows)


def pareto_front(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean validation error per configuration (over seeds) and, per granularity,
    whether it is on the Pareto front (no other configuration of that granularity
    has both less memory and no higher error). Sorted by memory."""
    agg = (runs.groupby(["granularity", "config"], as_index=False)
           .agg(memory_mb=("memory_mb", "first"), average_bits=("average_bits", "first"),
                saving=("saving", "first"), error=("error", "mean"),
                error_std=("error", lambda s: s.std(ddof=1) if len(s) > 1 else math.nan),
                seeds=("seed", "nunique")))
    agg = agg.sort_values(["granularity", "memory_mb", "error"], ignore_index=True)
    agg["pareto"] = False
    for g, idx in agg.groupby("granularity").groups.items():
        best = math.inf
        for i in idx:  # sorted by memory: on the front iff it beats every cheaper one
            if agg.at[i, "error"] < best - 1e-9:
                agg.at[i, "pareto"] = True
                best = agg.at[i, "error"]
    return agg


def granularity_comparison(front: pd.DataFrame) -> pd.DataFrame:
    """Fig. 7's claim as a table: at the memory of each uniform b-bit configuration
    (the budget), the lowest mean validation error each granularity reaches
    within that budget (NaN: none of its configurations fits)."""
    uni = front[front["granularity"] == "uniform"].sort_values("memory_mb")
    rows = []
    for u in uni.itertuples():
        row = {"budget": f"uniform {int(round(u.average_bits))}-bit", "budget_mb": u.memory_mb}
        for g in GRANULARITIES:
            fits = front["memory_mb"] <= u.memory_mb * (1 + 1e-9)
            sub = front[(front["granularity"] == g) & fits]
            row[g] = sub["error"].min() if len(sub) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def sensitivity_configs(layout: FeatureLayout,
                        bits: Sequence[int] = (1, 2, 3, 4, 8)) -> pd.DataFrame:
    """One field group at ``b`` bits, everything else FP32: ``component`` att / emb
    (all layers and buckets), ``topology`` bucket j's embedding rows (all layers),
    ``layer`` every feature of layer k."""
    L, J = layout.num_layers, len(layout.bucket_sizes)
    F = FP32_BITS
    rows = []
    for b in bits:
        items = [("component", "att", BitAssignment.full([b] * L, [[F] * J] * L)),
                 ("component", "emb", BitAssignment.full([F] * L, [[b] * J] * L))]
        for j in range(J):
            emb = [[b if jj == j else F for jj in range(J)] for _ in range(L)]
            items.append(("topology", f"bucket {j}", BitAssignment.full([F] * L, emb)))
        for k in range(L):
            items.append(("layer", f"layer {k + 1}", BitAssignment.full(
                [b if kk == k else F for kk in range(L)],
                [[b if kk == k else F] * J for kk in range(L)])))
        for family, part, a in items:
            rep = feature_memory(layout, a)
            if rep.groups == 0:  # e.g. att of a model without edge coefficients
                continue
            rows.append({"family": family, "part": part, "bits": int(b),
                         "assignment": a.to_json(), "memory_mb": rep.mb})
    return pd.DataFrame(rows)


def sensitivity_runs(dataset: str = "Cora", model: str = "gcn",
                     profile: "str | Profile | RunSettings" = "default",
                     seeds: "int | Sequence[int] | None" = None, *,
                     bits: Sequence[int] = (1, 2, 3, 4, 8),
                     workers: Optional[int] = None) -> pd.DataFrame:
    """The paper's component / topology / layer observations (Figs. 4, 5): validation
    accuracy when only one part of the features is quantized to ``bits``.
    One row per (family, part, bits, seed)."""
    settings = chapter_settings(profile, workers)
    prof = settings.profile
    name, m = canonical_name(dataset), resolve_models(model, prof)[0]
    seed_list = resolve_seeds(seeds, prof)
    with measurement_runner(settings, asked_by="granularity") as runner:
        pretrain(runner, [(name, m, s) for s in seed_list])
        configs = sensitivity_configs(runner.setup(name, m, seed_list[0]).layout, bits)
        cells = [(s, c) for s in seed_list for c in configs.itertuples()]
        records = run_labelled(
            runner, [{"family": c.family, "part": c.part, "bits": c.bits, "seed": s}
                     for s, c in cells],
            [runner.finetune_job(name, m, s, as_assignment(c.assignment)) for s, c in cells])
    rows = []
    for rec in records:
        rows.append({"dataset": name, "model": m, "family": rec["family"], "part": rec["part"],
                     "bits": rec["bits"], "seed": rec["seed"], "val_acc": percent(rec["val_acc"]),
                     "fp32_val_acc": percent(rec["fp32_val_acc"]),
                     "drop": percent(rec["fp32_val_acc"]) - percent(rec["val_acc"]),
                     "memory_mb": rec["memory_mb"]})
    return pd.DataFrame(rows)


def sensitivity_claims(runs: pd.DataFrame, tolerance: float = 0.5) -> pd.DataFrame:
    """The three claims checked on :func:`sensitivity_runs`.

    For each part: ``min_bits`` = fewest bits whose mean validation drop is within
    ``tolerance`` points (NaN: none measured), and the mean drop at the fewest bits
    measured. A claim holds when the part said to need fewer bits has ``min_bits``
    no larger (ties broken by the drop at the fewest bits)."""
    agg = runs.groupby(["family", "part", "bits"], as_index=False)["drop"].mean()
    low = int(agg["bits"].min())

    def stats(family: str, part: str) -> tuple[float, float]:
        sub = agg[(agg["family"] == family) & (agg["part"] == part)].sort_values("bits")
        ok = sub[sub["drop"] <= tolerance + 1e-9]
        return (float(ok["bits"].min()) if len(ok) else math.nan,
                float(sub.loc[sub["bits"] == low, "drop"].mean()))

    parts = {f: sorted(agg[agg["family"] == f]["part"].unique(),
                       key=lambda p: (len(p), p)) for f in agg["family"].unique()}
    claims = []
    if {"att", "emb"} <= set(parts.get("component", [])):
        claims.append(("component", "attention tolerates fewer bits than embeddings", "att", "emb"))
    if len(parts.get("topology", [])) > 1:
        claims.append(("topology", "high-degree nodes tolerate fewer bits",
                       parts["topology"][-1], parts["topology"][0]))
    if len(parts.get("layer", [])) > 1:
        claims.append(("layer", "later layers tolerate fewer bits",
                       parts["layer"][-1], parts["layer"][0]))
    rows = []
    for family, claim, fewer, more in claims:
        (bf, df_), (bm, dm) = stats(family, fewer), stats(family, more)
        inf = lambda x: math.inf if math.isnan(x) else x  # noqa: E731
        if inf(bf) != inf(bm):
            holds = inf(bf) < inf(bm)
        else:
            holds = df_ <= dm + 1e-9
        rows.append({"family": family, "claim": claim, "part_fewer": fewer, "part_more": more,
                     "min_bits_fewer": bf, "min_bits_more": bm, "lowest_bits": low,
                     "drop_at_lowest_fewer": df_, "drop_at_lowest_more": dm,
                     "holds": bool(holds)})
    return pd.DataFrame(rows)


def reading_granularity(front: pd.DataFrame, comparison: pd.DataFrame,
                        claims: pd.DataFrame, dataset: str, model: str) -> str:
    """Closing paragraph of chapter 4."""
    text = []
    finer = [g for g in GRANULARITIES if g != "uniform"]
    wins, total = 0, 0
    for r in comparison.itertuples():
        u = getattr(r, "uniform")
        best = np.nanmin([getattr(r, g) for g in finer]) if any(
            not pd.isna(getattr(r, g)) for g in finer) else math.nan
        if not pd.isna(u) and not pd.isna(best):
            total += 1
            wins += int(best <= u + 1e-9)
    text.append(
        f"On {dataset}/{MODEL_LABELS[model]}, at {wins} of {total} uniform memory budgets some "
        f"finer granularity reaches a validation error no higher than uniform quantization "
        f"(Fig. 7's claim). ")
    if len(comparison):
        per = {g: int(np.nansum([getattr(r, g) <= getattr(r, "uniform") + 1e-9
                                 for r in comparison.itertuples()
                                 if not pd.isna(getattr(r, g)) and not pd.isna(r.uniform)]))
               for g in finer}
        text.append("Per granularity, budgets where it matches or beats uniform: " +
                    ", ".join(f"{GRANULARITY_LABELS[g]} {n}" for g, n in per.items()) + ". ")
    text.append("\n\nThe paper's observations, checked by quantizing one part at a time:\n\n")
    for c in claims.itertuples():
        fmt = lambda b: "none" if pd.isna(b) else f"{int(b)}"  # noqa: E731
        text.append(
            f"* *{c.claim.capitalize()}*: **{'holds' if c.holds else 'does not hold'}** here "
            f"(fewest bits within tolerance: {c.part_fewer}: {fmt(c.min_bits_fewer)}, "
            f"{c.part_more}: {fmt(c.min_bits_more)}; validation drop at {c.lowest_bits} "
            f"bit(s): {c.part_fewer}: {c.drop_at_lowest_fewer:.1f} points, {c.part_more}: "
            f"{c.drop_at_lowest_more:.1f} points).\n")
    text.append("\n")
    text.append(
        "Errors are validation errors of configurations fine-tuned for the profile's few "
        "epochs (the paper does not say which split its figures use). With binary input "
        "features (Cora, CiteSeer), the first layer's embedding is lossless at 1 bit, which "
        "favours any granularity that can give layer 1 fewer bits than the rest.")
    return "".join(text)


@dataclasses.dataclass
class Chapter(SingleDatasetChapter):
    """Chapter 4 (``notebooks/04_granularity.ipynb``)."""

    samples: Optional[int] = None
    bits: Sequence[int] = (1, 2, 3, 4, 8)
    tolerance: float = 0.5
    workers: Optional[int] = None

    @cached_property
    def runs(self) -> pd.DataFrame:
        """:func:`granularity_runs`: every configuration on every seed."""
        return granularity_runs(self.dataset_name, self.model_name, self.run_settings,
                                self.seeds, samples=self.samples)

    @cached_property
    def front(self) -> pd.DataFrame:
        """:func:`pareto_front` of :attr:`runs`."""
        return pareto_front(self.runs)

    @cached_property
    def comparison(self) -> pd.DataFrame:
        """:func:`granularity_comparison` of :attr:`front`."""
        return granularity_comparison(self.front)

    @cached_property
    def sensitivity(self) -> pd.DataFrame:
        """:func:`sensitivity_runs`: one part at a time at each of ``bits``."""
        return sensitivity_runs(self.dataset_name, self.model_name, self.run_settings,
                                self.seeds, bits=self.bits)

    @cached_property
    def claims(self) -> pd.DataFrame:
        """:func:`sensitivity_claims` of :attr:`sensitivity`."""
        return sensitivity_claims(self.sensitivity, self.tolerance)

    def granularity_figure(self) -> Any:
        return plot_granularity(self.front)

    def comparison_table(self) -> Any:
        return table(self.comparison, columns=COMPARISON_COLUMNS, formats={"MB": "{:.3f}"},
                     caption="Lowest validation error (%) of each granularity within the "
                             "memory of each uniform configuration")

    def sensitivity_figure(self) -> Any:
        return plot_sensitivity(self.sensitivity)

    def claims_table(self) -> Any:
        return table(format_claims(self.claims),
                     caption="The paper's three observations checked: fewest bits within "
                             "tolerance, and validation accuracy drop (points) at the fewest "
                             "bits measured")

    def reading(self) -> Any:
        return markdown(reading_granularity(self.front, self.comparison, self.claims,
                                            self.dataset_name, self.model_name))
