"""Chapter 7 (beyond the paper): below one bit.

The paper's savings stop at 32x (one bit per value against dense float32). On
citation graphs most of the features are a binary bag-of-words input, ~99% zeros:
a plain sparse float32 matrix already stores it in a few percent of the dense bytes,
and its 1-bit codes carry ~0.1 bit of information per value. This chapter measures,
for one model and graph, the bytes of every quantized group (a layer input per degree
bucket, the edge coefficients per layer) held as dense FP32, sparse FP32, packed, coded
and at the entropy bound (:mod:`sgquant.packed.baselines` defines each), at uniform bit
widths and at a chosen configuration, with the coded pass's logits compared to the
packed pass's, and the inference time of coded against packed against FP32, measured
side by side (:func:`sgquant.inference_time.inference_times`). :func:`reading` writes
the chapter's conclusion from the data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Optional, Sequence, Union

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..assignment import BitAssignment, as_assignment
from ..checks import check_int_list
from ..inference_time import inference_times
from ..measure import prepare
from ..memory import MB
from ..packed.baselines import METHOD_COLUMNS, METHODS, storage_baselines, storage_totals
from ..profiles import Profile
from ..settings import RunSettings
from .common import SingleDatasetChapter, chapter_settings, measurement_runner

__all__ = ["CHOSEN", "below_one_bit_tables", "plot_bytes", "reading", "Chapter"]

_COMPONENT_LABELS = {"input": "input features", "hidden": "hidden features",
                     "attention": "edge coefficients"}
#: Label of the chosen configuration in the chapter's tables.
CHOSEN = "chosen"


# -------------------------------------------------------------------- the chapter
def below_one_bit_tables(dataset: str = "Cora", model: str = "gcn",
                         profile: Union[str, Profile, RunSettings] = "default",
                         seed: int = 0, *,
                         bits: Sequence[int] = (1, 2, 4, 8),
                         assignment: Union[BitAssignment, dict, str, None] = None,
                         repeats: Optional[int] = None) -> dict[str, pd.DataFrame]:
    """The chapter's measurements on the FP32 model of ``(dataset, model, seed)``
    (trained once, cached): ``groups`` and ``totals``
    (:func:`~sgquant.packed.baselines.storage_baselines`,
    :func:`~sgquant.packed.baselines.storage_totals`) at uniform ``bits`` and at
    ``assignment`` (default: the configuration chapter 3's SGQuant+ search chooses,
    :func:`sgquant.search.choice.search_choice`), and ``timing``
    (:func:`~sgquant.inference_time.inference_times` at ``assignment``; ``repeats``
    default 5 in the quick profile, 15 otherwise)."""
    settings = chapter_settings(profile)
    prof = settings.profile
    # prepare canonicalises the name, once
    setup = prepare(dataset, model, seed, prof, str(settings.results), settings.data_root,
                    settings.device)
    net = setup.fp32_model()
    L = net.num_layers
    if assignment is None:
        from ..search.choice import search_choice
        with measurement_runner(settings, asked_by="below_one_bit") as runner:
            chosen = search_choice(setup.dataset, setup.model_name, runner.settings,
                                   executor=runner.executor)
    else:
        chosen = as_assignment(assignment)
    chosen.check_shape(L, setup.buckets.num_buckets)
    configs = [(f"uniform {b}-bit", BitAssignment.uniform(b, L)) for b in bits]
    configs.append((CHOSEN, chosen))
    groups = pd.concat([storage_baselines(net, setup.data, a, setup.buckets, label=name)
                        for name, a in configs], ignore_index=True)
    groups.insert(0, "dataset", setup.dataset)
    groups.insert(1, "model", setup.model_name)
    totals = storage_totals(groups)
    totals.insert(0, "dataset", setup.dataset)
    totals.insert(1, "model", setup.model_name)
    reps = repeats if repeats is not None else (5 if prof.name == "quick" else 15)
    timing = inference_times(net, setup.data, chosen, setup.buckets, repeats=reps)
    timing.insert(0, "configuration", CHOSEN)
    timing.insert(1, "assignment", str(chosen))
    return {"groups": groups, "totals": totals, "timing": timing}


def plot_bytes(groups: pd.DataFrame, configurations: Optional[Sequence[str]] = None
               ) -> plt.Figure:
    """Bytes per component (input, hidden features, edge coefficients) for each
    storage method, one panel per configuration (log scale)."""
    confs = list(configurations or dict.fromkeys(groups["configuration"]))
    rows = []
    for (conf, comp), g in groups[groups["configuration"].isin(confs)].groupby(
            ["configuration", "component"], sort=False):
        for method in METHODS:
            rows.append({"configuration": conf, "component": _COMPONENT_LABELS[comp],
                         "method": method, "MB": g[METHOD_COLUMNS[method]].sum() / MB})
    df = pd.DataFrame(rows)
    grid = sns.catplot(df, kind="bar", x="component", y="MB", hue="method", col="configuration",
                       col_order=confs, col_wrap=min(3, len(confs)), height=3.2, aspect=1.25,
                       hue_order=list(METHODS), order=list(_COMPONENT_LABELS.values()),
                       sharey=True)
    grid.set(yscale="log")
    grid.set_axis_labels("", "MB (1e6 bytes), log scale")
    grid.set_titles("{col_name}")
    for ax in grid.axes.flat:
        ax.tick_params(axis="x", labelsize=8)
    plt.close(grid.figure)  # a notebook shows it once, as the cell's value
    return grid.figure


def reading(tables: dict[str, pd.DataFrame]) -> str:
    """The chapter's conclusion, written from the tables (no number typed by hand)."""
    t = tables["totals"]
    text = []
    one = t[t["configuration"] == "uniform 1-bit"]
    if len(one):
        r = one.iloc[0]
        share = math.log(r["sparse_fp32_saving_vs_fp32"]) / math.log(r["packed_saving_vs_fp32"])
        text.append(
            f"At uniform 1 bit, SGQuant's fixed-width packing stores the features in "
            f"{r['packed_bytes'] / MB:.3f} MB, **{r['packed_saving_vs_fp32']:.1f}x** less than "
            f"dense FP32 ({r['fp32_bytes'] / MB:.2f} MB). A plain sparse FP32 matrix (CSR where "
            f"it pays) already takes {r['sparse_fp32_bytes'] / MB:.3f} MB, "
            f"**{r['sparse_fp32_saving_vs_fp32']:.1f}x** less than dense: on a log scale "
            f"{100 * share:.0f}% of the 1-bit saving is just not storing zeros, and against "
            f"the sparse baseline packing saves {r['packed_saving_vs_sparse_fp32']:.1f}x. ")
    below = t[t["coded_bits_per_element"] < 1.0]
    best = t.loc[t["coded_saving_vs_fp32"].idxmax()]
    text.append(
        f"Coded storage (lossless codes of the same codes) goes below one bit per element in "
        f"{len(below)} of {len(t)} configurations; the smallest is {best['configuration']}: "
        f"**{best['coded_bits_per_element']:.3f} bits per element**, "
        f"{best['coded_bytes'] / MB:.4f} MB, **{best['coded_saving_vs_fp32']:.0f}x** less than "
        f"dense FP32 and {best['coded_saving_vs_sparse_fp32']:.1f}x less than sparse FP32, "
        f"{best['coded_vs_entropy']:.3f}x the codes' order-0 entropy "
        f"({best['entropy_bits_per_element']:.3f} bits per element; codecs {best['codecs']}). ")
    if (t["coded_vs_entropy"] < 1).any():
        text.append("Coded storage goes below the order-0 entropy where the run form (gaps "
                    "between non-zero codes) or zstd's matches capture structure that a "
                    "code-by-code model cannot. ")
    chosen = t[t["configuration"] == CHOSEN]
    if len(chosen):
        c = chosen.iloc[0]
        text.append(
            f"At the chosen configuration ({c['assignment']}, "
            f"{c['average_bits']:.2f} average bits) the coded features take "
            f"{c['coded_bits_per_element']:.3f} bits per element: "
            f"{c['coded_saving_vs_fp32']:.0f}x less than dense FP32, "
            f"{c['coded_saving_vs_sparse_fp32']:.1f}x less than sparse FP32 (whose own saving is "
            f"{c['sparse_fp32_saving_vs_fp32']:.1f}x) and {1 / c['coded_vs_packed']:.1f}x less "
            f"than fixed-width packing ({c['packed_saving_vs_fp32']:.1f}x). ")
    same = bool(t["same_logits"].all())
    text.append("In every configuration the coded pass gives the packed pass's logits bit for "
                "bit" if same else "Some coded pass did NOT give the packed pass's logits")
    text.append(f", and predicts the fake-quant model's class for "
                f"{100 * t['same_predictions'].min():.2f}% of nodes in the worst one. ")
    tm = tables.get("timing")
    if tm is not None and len(tm):
        s = tm.set_index("mode")
        parts = [f"{m} {1e3 * s.loc[m, 'seconds']:.1f} ms ({s.loc[m, 'ratio_vs_fp32']:.2f}x FP32)"
                 for m in s.index if m != "fp32"]
        text.append(f"One inference pass at the chosen configuration (median of "
                    f"{int(s['repeats'].iloc[0])} alternating repeats, one thread): FP32 "
                    f"{1e3 * s.loc['fp32', 'seconds']:.1f} ms; " + "; ".join(parts) + ". ")
        if "auto" in s.index:
            text.append(f"With its decoding (and the coding of the hidden features and "
                        f"coefficients it produces), the coded pass takes "
                        f"{s.loc['auto', 'ratio_vs_packed']:.2f}x the fixed-width pass's "
                        f"time. ")
    text.append("Sizes count every stored byte (codes, models, block index, checksums, "
                "min/scale); the graph structure and the weights are the same in every method "
                "and are not counted.")
    return "".join(text)


# ------------------------------------------------------------------- notebook glue
@dataclass
class Chapter(SingleDatasetChapter):
    """Chapter 7 (``notebooks/07_below_one_bit.ipynb``); each method shows one table,
    figure or the reading (measurements run once, on first use)."""

    bits: Sequence[int] = (1, 2, 4, 8)
    assignment: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.bits = check_int_list(self.bits, "bits", minimum=1, maximum=16)

    @cached_property
    def tables(self) -> dict[str, pd.DataFrame]:
        return below_one_bit_tables(self.dataset_name, self.model_name, self.run_settings,
                                    self.seed_list[0], bits=self.bits,
                                    assignment=self.assignment)

    def totals_table(self) -> Any:
        from .. import plots
        totals = self.tables["totals"]
        chosen = totals.loc[totals["configuration"] == CHOSEN, "assignment"]
        return plots.table(
            totals, caption="Feature storage by method (all groups)" + (
                f"; chosen = {chosen.iloc[0]}" if len(chosen) else ""),
            columns={"configuration": "configuration", "average_bits": "avg bits",
                     "fp32_bytes": "dense FP32 (B)",
                     "sparse_fp32_bytes": "sparse FP32 (B)", "packed_bytes": "packed (B)",
                     "coded_bytes": "coded (B)", "entropy_bytes": "entropy bound (B)",
                     "coded_bits_per_element": "coded bits/element",
                     "packed_bits_per_element": "packed bits/element",
                     "coded_saving_vs_fp32": "coded saving vs FP32 (x)",
                     "coded_saving_vs_sparse_fp32": "coded saving vs sparse FP32 (x)",
                     "coded_vs_entropy": "coded / entropy", "same_logits": "same logits"},
            formats={k: "{:,.0f}" for k in ("dense FP32 (B)", "sparse FP32 (B)", "packed (B)",
                                             "coded (B)", "entropy bound (B)")}
            | {"coded bits/element": "{:.3f}", "packed bits/element": "{:.3f}",
               "coded / entropy": "{:.3f}", "coded saving vs FP32 (x)": "{:,.1f}",
               "coded saving vs sparse FP32 (x)": "{:,.1f}"})

    def groups_table(self) -> Any:
        from .. import plots
        return plots.table(
            self.tables["groups"], caption="Every group: bytes by storage method",
            columns={"configuration": "configuration", "feature": "feature",
                     "bucket": "bucket", "bits": "bits", "elements": "elements",
                     "fp32_bytes": "dense FP32", "sparse_fp32_bytes": "sparse FP32",
                     "packed_bytes": "packed", "coded_bytes": "coded", "coder": "coder",
                     "entropy_bytes": "entropy bound"},
            formats={"bucket": "{:.0f}"} | {k: "{:,.0f}" for k in (
                "elements", "dense FP32", "sparse FP32", "packed", "coded", "entropy bound")})

    def bytes_figure(self) -> plt.Figure:
        return plot_bytes(self.tables["groups"])

    def timing_table(self) -> Any:
        from .. import plots
        return plots.table(
            self.tables["timing"], caption="One inference pass: FP32 against packed and coded",
            columns={"mode": "storage", "seconds": "seconds (median)",
                     "ratio_vs_fp32": "x FP32", "ratio_vs_packed": "x packed",
                     "input_bytes": "input as held (B)"},
            formats={"seconds (median)": "{:.4f}", "input as held (B)": "{:,.0f}"})

    def reading(self) -> Any:
        from IPython.display import Markdown
        return Markdown(reading(self.tables))
