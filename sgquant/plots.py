"""Figures and display tables of the book (seaborn / matplotlib / pandas Styler).

Each ``plot_*`` function draws one DataFrame of a chapter (:mod:`sgquant.chapters`) and
returns the :class:`matplotlib.figure.Figure`; ``table`` and ``format_*`` turn a
DataFrame into what a chapter shows (a Styler renders as an HTML table).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .models import REGISTRY

__all__ = [
    "setup_style", "table", "pm", "short_config", "two_level", "format_claims",
    "format_rounding", "format_architectures", "format_datasets", "GRANULARITY_ORDER",
    "GRANULARITY_LABELS", "MODEL_LABELS", "SHORT_DATASET_NAMES",
    "plot_memory_breakdown", "plot_overall_saving", "plot_granularity", "plot_sensitivity",
    "plot_autobit", "plot_latency", "plot_peak_memory", "plot_rounding", "plain_log_axis",
]

#: The granularities of Fig. 7, coarsest first, and how the book names them.
GRANULARITY_ORDER = ("uniform", "component", "topology", "layer", "full")
GRANULARITY_LABELS = {"uniform": "uniform", "component": "CWQ (component)",
                      "topology": "TAQ (topology)", "layer": "LWQ (layer)",
                      "full": "full (SGQuant)", "fp32": "FP32"}
#: How the book names the models.
MODEL_LABELS = {name: entry.label for name, entry in REGISTRY.items()}
#: Dataset names shortened where space is tight (figure axes).
SHORT_DATASET_NAMES = {"Amazon-Computers": "Computers"}
#: Text cells that are numbers ("1,234", "+5", "12.3x", "80.1 ± 0.2", "—", "yes") align right.
_NUMERIC_TEXT = r"^[-+]?[\d.,]+(x| ± [\d.]+)?$|^—$|^yes$|^no$|^[\d /]+$"


def setup_style() -> None:
    """The book's figure style: seaborn whitegrid, 110 dpi, compact fonts."""
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.95)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "figure.autolayout": False,
                         "axes.titleweight": "bold"})


def pm(mean: Any, std: Any, digits: int = 2, suffix: str = "") -> str:
    """``"mean ± std"`` (``"mean"`` alone when std is NaN, ``"—"`` when mean is);
    ``suffix`` follows the mean (e.g. ``"x"``)."""
    if mean is None or pd.isna(mean):
        return "—"
    if std is None or pd.isna(std):
        return f"{mean:.{digits}f}{suffix}"
    return f"{mean:.{digits}f}{suffix} ± {std:.{digits}f}"


def table(df: pd.DataFrame, caption: Optional[str] = None, precision: int = 2,
          columns: Optional[Mapping[str, str]] = None, formats: Optional[Mapping[str, str]] = None,
          highlight: Optional[str] = None) -> "pd.io.formats.style.Styler":
    """A display table: selected/renamed ``columns`` (in that order), floats with
    ``precision`` digits (or per-column ``formats``), missing values as "—", no
    index, a caption; ``highlight``: a boolean column whose true rows are shaded."""
    data = df if columns is None else df[list(columns)].rename(columns=dict(columns))
    shade = None if highlight is None else df[highlight].astype(bool).to_numpy()
    fmt = {}
    for col in data.columns:
        if formats and col in formats:
            fmt[col] = formats[col]
        elif pd.api.types.is_float_dtype(data[col]):
            fmt[col] = f"{{:.{precision}f}}"
    styler = data.style.format(fmt, na_rep="—").hide(axis="index")
    text_cols = [c for c in data.columns
                 if (pd.api.types.is_string_dtype(data[c]) or data[c].dtype == object)
                 and not data[c].astype(str).str.match(_NUMERIC_TEXT).all()]
    other = [c for c in data.columns if c not in text_cols]
    if text_cols:
        styler = styler.set_properties(subset=text_cols, **{"text-align": "left"})
    if other:
        styler = styler.set_properties(subset=other, **{"text-align": "right"})
    if caption:
        styler = styler.set_caption(caption)
    styler = styler.set_table_styles([
        {"selector": "caption", "props": "caption-side: top; font-weight: bold; "
                                         "text-align: left; padding-bottom: 0.4em;"},
        {"selector": "th", "props": "text-align: center; padding: 0.3em 0.6em;"},
        {"selector": "td", "props": "padding: 0.3em 0.6em;"},
    ], overwrite=False)
    if shade is not None:
        styler = styler.apply(lambda row: ["background-color: #eef5ff" if shade[row.name] else ""
                                           for _ in row], axis=1)
    return styler


def format_at_paper(t: pd.DataFrame) -> pd.DataFrame:
    """:func:`sgquant.chapters.overall.at_paper_table` for display: one row per (dataset,
    model, method), test drop as ``mean ± std`` over evaluation seeds; with a ``note``
    column (chapter 3 marks rows not comparable with the paper), that too."""
    drop = "test drop ± std over evaluation seeds"
    rows = [{"dataset": r.dataset, "model": MODEL_LABELS.get(r.model, r.model),
             "method": r.variant_label, "paper saving": pm(r.paper_saving, None, suffix="x"),
             "saving": f"{r.saving:.2f}x", "avg bits": f"{r.average_bits:.2f}",
             "val drop (search model)": f"{r.search_val_drop:.2f}",
             drop: pm(r.acc_drop, r.acc_drop_std),
             "seeds over tol.": f"{int(r.over_tolerance)} / {int(r.seeds)}",
             "configuration": short_config(r.chosen),
             "note": getattr(r, "note", "")} for r in t.itertuples()]
    cols = ["dataset", "model", "method", "paper saving", "saving", "avg bits",
            "val drop (search model)", drop, "seeds over tol.", "configuration"]
    return pd.DataFrame(rows, columns=cols + (["note"] if "note" in t else []))


def two_level(rows: list[dict]) -> pd.DataFrame:
    """A display frame whose ``(group, column)`` keys become two-level headers."""
    df = pd.DataFrame(rows)
    if len(df):
        df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df


def format_architectures(arch: pd.DataFrame) -> pd.DataFrame:
    """Table I (:func:`sgquant.chapters.setup.architecture_table`) for display,
    two-level headers."""
    num = lambda v: "—" if v is None or pd.isna(v) else f"{int(v)}"  # noqa: E731
    rows = []
    for r in arch.itertuples():
        rows.append({("", "model"): MODEL_LABELS.get(r.model, r.model),
                     ("paper", "hidden"): num(r.paper_hidden),
                     ("paper", "layers"): num(r.paper_layers),
                     ("paper", "heads"): num(r.paper_heads),
                     ("ours", "hidden"): num(r.hidden), ("ours", "layers"): num(r.layers),
                     ("ours", "heads"): num(r.heads),
                     ("ours", "quantized tensors"): num(r.quantized_fields),
                     ("ours", "weights on Cora"): f"{int(r.weights_on_cora):,}",
                     ("", "same as paper"): "yes" if r.same_as_paper else
                     "no" if getattr(r, "in_paper", True) else "—"})
    return two_level(rows)


def format_datasets(stats: pd.DataFrame) -> pd.DataFrame:
    """Table II (:func:`sgquant.chapters.setup.dataset_table`) for display: ours, the paper's and
    the difference (ours - paper) under two-level headers (``unavailable*``: the
    dataset's files are absent, only the paper's numbers are shown)."""
    num = lambda v: "—" if v is None or pd.isna(v) else f"{int(v):,}"  # noqa: E731
    diff = lambda v: "—" if v is None or pd.isna(v) else f"{int(v):+,}"  # noqa: E731
    rows = []
    for r in stats.itertuples():
        status = "from data" if r.status == "computed from data" else "unavailable*"
        rows.append({("", "dataset"): r.dataset, ("", "sizes"): status,
                     ("nodes", "ours"): num(r.nodes), ("nodes", "paper"): num(r.paper_nodes),
                     ("nodes", "diff"): diff(r.nodes_diff),
                     ("edges", "directed"): num(r.edges),
                     ("edges", "undirected"): num(r.undirected_edges),
                     ("edges", "paper"): num(r.paper_edges),
                     ("edges", "diff (dir.)"): diff(r.edges_diff),
                     ("edges", "diff (undir.)"): diff(r.undirected_diff),
                     ("features", "ours"): num(r.features),
                     ("features", "paper"): num(r.paper_features),
                     ("classes", "ours"): num(r.classes),
                     ("classes", "paper"): num(r.paper_classes),
                     ("nodes per split", "train / val / test"):
                         "—" if pd.isna(r.train)
                         else f"{int(r.train)} / {int(r.val)} / {int(r.test)}",
                     ("", "split"): "—" if pd.isna(getattr(r, "split", None)) else r.split})
    return two_level(rows)


def format_claims(claims: pd.DataFrame) -> pd.DataFrame:
    """The paper's observations (:func:`sgquant.chapters.granularity.sensitivity_claims`)
    for display, with two-level column headers."""
    fewer, more = "said to need fewer bits", "said to need more bits"
    fmt = lambda b: "none" if pd.isna(b) else f"{int(b)}"  # noqa: E731
    rows = []
    for r in claims.itertuples():
        rows.append({("", "claim"): r.claim,
                     (fewer, "part"): r.part_fewer,
                     (fewer, "fewest bits within tolerance"): fmt(r.min_bits_fewer),
                     (fewer, f"drop at {r.lowest_bits} bit(s)"): f"{r.drop_at_lowest_fewer:.2f}",
                     (more, "part"): r.part_more,
                     (more, "fewest bits within tolerance"): fmt(r.min_bits_more),
                     (more, f"drop at {r.lowest_bits} bit(s)"): f"{r.drop_at_lowest_more:.2f}",
                     ("", "holds here"): "yes" if r.holds else "no"})
    return two_level(rows)


def format_rounding(summary: pd.DataFrame) -> pd.DataFrame:
    """Validation accuracy (%, mean over seeds) per (quantized part, bits) and
    (rounding, range) option, for display."""
    wide = summary.pivot_table(index=["target", "bits"], columns="option", values="val")
    wide.columns.name = None
    return wide.reset_index().rename(columns={"target": "quantized"})


def short_config(text: str) -> str:
    """``"BitAssignment(L1: ...)"`` without the class name."""
    text = str(text)
    prefix = "BitAssignment("
    return text[len(prefix):-1] if text.startswith(prefix) and text.endswith(")") else text


def _finish(fig: plt.Figure) -> plt.Figure:
    """Lay out and close ``fig`` (a notebook shows it once, as the cell's value)."""
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_memory_breakdown(df: pd.DataFrame) -> plt.Figure:
    """Fig. 1: FP32 feature and weight memory (MB, log scale) per dataset, with the
    feature share printed above each pair; hatched bars: sizes from the paper's
    Table II (data unavailable)."""
    models = df["model"].unique()
    fig, axes = plt.subplots(1, len(models), figsize=(max(7.5, 4.5 * len(models)), 4.0),
                             squeeze=False)
    palette = sns.color_palette("deep")
    for ax, m in zip(axes[0], models):
        sub = df[df["model"] == m].reset_index(drop=True)
        x = np.arange(len(sub))
        w = 0.38
        for i, r in sub.iterrows():
            estimated = r["source"] != "loaded data"
            hatch = "//" if estimated else None
            ax.bar(x[i] - w / 2, r["feature_mb"], w, color=palette[0], hatch=hatch,
                   edgecolor="white", label="features" if i == 0 else None)
            ax.bar(x[i] + w / 2, r["weight_mb"], w, color=palette[1], hatch=hatch,
                   edgecolor="white", label="weights" if i == 0 else None)
            ax.annotate(f"{r['feature_share']:.2f}%", (x[i], max(r["feature_mb"], r["weight_mb"])),
                        textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
        ax.set_yscale("log")
        ax.set_xticks(x, [d + (" *" if s != "loaded data" else "")
                          for d, s in zip(sub["dataset"], sub["source"])], rotation=15)
        ax.set_ylabel("FP32 memory (MB, log scale)")
        ax.set_title(f"{MODEL_LABELS.get(m, m)} (paper's Table I size)")
        ax.margins(y=0.15)
        ax.legend(loc="upper left", fontsize=8)
    return _finish(fig)


def plot_overall_saving(t: pd.DataFrame) -> plt.Figure:
    """Table III's saving column: each method's (the ratio of the mean memories across
    search seeds, with min/scale) beside the paper's, per (dataset, model) run; a pair
    whose model is not the paper's size (``comparable`` false) is marked under its name."""
    ran = t[t["status"] == "run"]
    rows = []
    for (d, m), pair in ran.groupby(["dataset", "model"], sort=False):
        label = f"{SHORT_DATASET_NAMES.get(d, d)}\n{MODEL_LABELS.get(m, m)}"
        if "comparable" in pair and not bool(pair["comparable"].iloc[0]):
            label += f"\n({pair['architecture'].iloc[0]}: not\ncomparable)"
        for r in pair.itertuples():
            rows.append({"pair": label, "saving": r.saving, "source": r.variant_label})
        if not pd.isna(pair["paper_saving"].iloc[0]):
            rows.append({"pair": label, "saving": pair["paper_saving"].iloc[0],
                         "source": "paper (as published)"})
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * max(ran[["dataset", "model"]]
                                                          .drop_duplicates().shape[0], 1) + 2.5),
                                    4.0))
    if rows:
        df = pd.DataFrame(rows)
        sns.barplot(data=df, x="pair", y="saving", hue="source", ax=ax, errorbar=None)
        ax.legend(fontsize=8, title=None, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  frameon=False)
        ax.tick_params(axis="x", labelsize=8)
    ax.set_ylabel("feature memory saving (x)")
    ax.set_xlabel("")
    return _finish(fig)


def plain_log_axis(ax: plt.Axes) -> None:
    """Plain numbers (0.5, 1, 2 ...) on a logarithmic x axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def plot_granularity(front: pd.DataFrame) -> plt.Figure:
    """Figs. 4/5/7: mean validation error (%) against feature memory (MB, log) of
    every configuration, one colour per granularity, its Pareto front as a line;
    the FP32 model's error (the ``fp32`` row, if any) as a dashed line. Left: all
    configurations; right: the same, zoomed on errors near FP32."""
    ref = front[front["granularity"] == "fp32"]
    fp32_error = float(ref["error"].iloc[0]) if len(ref) else None
    front = front[front["granularity"] != "fp32"]
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.2))
    palette = dict(zip(GRANULARITY_ORDER, sns.color_palette("deep", len(GRANULARITY_ORDER))))
    markers = dict(zip(GRANULARITY_ORDER, "osD^v"))
    for ax in axes:
        for g in GRANULARITY_ORDER:
            sub = front[front["granularity"] == g].sort_values("memory_mb")
            if not len(sub):
                continue
            ax.scatter(sub["memory_mb"], sub["error"], s=22, alpha=0.4, color=palette[g],
                       marker=markers[g])
            p = sub[sub["pareto"]]
            ax.plot(p["memory_mb"], p["error"], marker=markers[g], color=palette[g], lw=1.8,
                    ms=5, label=GRANULARITY_LABELS[g])
        if fp32_error is not None:
            ax.axhline(fp32_error, color="0.3", ls="--", lw=1, label="FP32")
        ax.set_xscale("log")
        plain_log_axis(ax)
        ax.set_xlabel("feature memory (MB, log scale)")
        ax.set_ylabel("validation error (%)")
    axes[0].set_title("all configurations")
    base = fp32_error if fp32_error is not None else float(front["error"].min())
    low = min(base, float(front["error"].min())) if len(front) else base
    axes[1].set_ylim(low - 1.0, base + 8.0)
    axes[1].set_title("zoom: within 8 points of FP32")
    axes[1].legend(fontsize=8, loc="upper right")
    return _finish(fig)


def plot_sensitivity(runs: pd.DataFrame) -> plt.Figure:
    """Validation accuracy drop (points, mean ± std over seeds) when only one part
    is quantized, against its bits; one panel per family (component / topology / layer)."""
    families = [f for f in ("component", "topology", "layer") if f in set(runs["family"])]
    fig, axes = plt.subplots(1, len(families), figsize=(3.6 * len(families) + 0.6, 3.6),
                             sharey=True, squeeze=False)
    for ax, fam in zip(axes[0], families):
        sub = runs[runs["family"] == fam]
        sns.lineplot(data=sub, x="bits", y="drop", hue="part", marker="o", ax=ax,
                     errorbar="sd", err_style="bars")
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xscale("log", base=2)
        bits = sorted(sub["bits"].unique())
        ax.set_xticks(bits, [str(b) for b in bits])
        ax.set_title(fam)
        ax.set_xlabel("bits of this part (others FP32)")
        ax.set_ylabel("validation accuracy drop (points)")
        ax.legend(fontsize=8, title=None)
    return _finish(fig)


def plot_autobit(curves: pd.DataFrame, paper: Optional[Mapping[str, float]] = None) -> plt.Figure:
    """Fig. 8: best saving within tolerance against measurements, mean ± std over
    search seeds, per method; ``paper`` values (label -> saving) as dotted lines."""
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    methods = list(dict.fromkeys(curves["method"]))
    colors = dict(zip(methods, sns.color_palette("deep", len(methods))))
    sns.lineplot(data=curves, x="measurements", y="best_saving", hue="method", ax=ax,
                 errorbar="sd", palette=colors)
    for (label, value), color in zip((paper or {}).items(), ("0.25", "0.55")):
        ax.axhline(value, ls=":", color=color, lw=1.3, label=f"paper, {label}: {value:g}x")
    ax.set_xlabel("configurations measured")
    ax.set_ylabel("best saving within tolerance (x)")
    ax.legend(fontsize=8, title=None)
    return _finish(fig)


def plot_latency(latency: pd.DataFrame, claim: float = 0.1) -> plt.Figure:
    """Seconds of each cost-model iteration, stacked by phase (every timed phase
    of :func:`sgquant.search.cost_model_step`), mean over search seeds, one panel
    per method, with the paper's claim as a dashed line."""
    skip = {"method", "seed", "iteration", "measured_before", "n_sample", "total"}
    phases = [c for c in latency.columns if c not in skip]
    methods = list(dict.fromkeys(latency["method"])) if "method" in latency else [None]
    fig, axes = plt.subplots(1, len(methods), figsize=(5.2 * len(methods) + 0.6, 3.6),
                             sharey=True, squeeze=False)
    colors = sns.color_palette("muted", len(phases))
    for ax, method in zip(axes[0], methods):
        sub = latency if method is None else latency[latency["method"] == method]
        mean = sub.groupby("iteration")[phases].mean()
        bottom = np.zeros(len(mean))
        for c, col in zip(colors, phases):
            ax.bar(mean.index.astype(str), mean[col].to_numpy(), bottom=bottom, color=c,
                   label=col)
            bottom += mean[col].to_numpy()
        ax.axhline(claim, color="crimson", ls="--", lw=1, label=f"paper's claim: < {claim:g} s")
        ax.set_xlabel("cost-model iteration")
        ax.set_ylabel("seconds")
        if method is not None:
            ax.set_title(method)
    axes[0][-1].legend(fontsize=7, ncol=2)
    return _finish(fig)


def plot_peak_memory(peak: pd.DataFrame) -> plt.Figure:
    """Peak memory of one inference pass per mode (MB): input features as held
    plus the pass's temporaries; packed at each rematching chunk size."""
    df = peak.copy()
    df["label"] = [m if pd.isna(c) or m != "packed" else f"packed, {int(c)} rows"
                   for m, c in zip(df["mode"], df["chunk_size"])]
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    y = np.arange(len(df))
    ax.barh(y, df["input_bytes"] / 1e6, color="#4c72b0", label="input features as held")
    ax.barh(y, df["pass_peak_bytes"] / 1e6, left=df["input_bytes"] / 1e6, color="#dd8452",
            label="peak growth during the pass")
    ax.set_yticks(y, df["label"])
    ax.invert_yaxis()
    ax.set_xlabel("MB (1e6 bytes)")
    ax.legend(fontsize=8, loc="lower right")
    return _finish(fig)


def plot_rounding(summary: pd.DataFrame) -> plt.Figure:
    """Validation accuracy after fine-tuning against bits for each (rounding,
    range) option, one panel per target; dashed: FP32."""
    targets = list(dict.fromkeys(summary["target"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(4.6 * len(targets) + 0.5, 3.8),
                             sharey=True, squeeze=False)
    for ax, target in zip(axes[0], targets):
        sub = summary[summary["target"] == target]
        for opt, g in sub.groupby("option", sort=True):
            g = g.sort_values("bits")
            ax.errorbar(g["bits"], g["val"], yerr=g["val_std"].fillna(0), marker="o", ms=4,
                        capsize=2, label=opt)
        ax.axhline(float(sub["fp32_val"].mean()), color="0.3", ls="--", lw=1, label="FP32")
        ax.set_xscale("log", base=2)
        bits = sorted(sub["bits"].unique())
        ax.set_xticks(bits, [str(b) for b in bits])
        ax.set_xlabel("bits")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title(f"quantized: {target}")
        ax.legend(fontsize=7)
    return _finish(fig)
