r"""The book's experiments: one function per table or figure, returning tidy DataFrames.

Every chapter of the book calls these functions and nothing else (plus
:mod:`sgquant.plots` to draw the result). Each function takes the chapter's
parameters (``dataset``, ``model``, ``profile``, ``seeds`` ...), runs its
measurements through :func:`sgquant.measure.measure_job` (FP32 models and every
fine-tuned configuration are cached on disk by :mod:`sgquant.cache`, so a rerun
measures nothing twice) and returns one row per observation. Accuracies are in
percent, memory in MB (:math:`10^6` bytes, :mod:`sgquant.memory`).

* :func:`memory_breakdown` -- Fig. 1, feature vs weight memory (analytic);
* :func:`architecture_table`, :func:`dataset_table` -- Tables I and II;
* :func:`overall_runs`, :func:`overall_table` -- Table III;
* :func:`granularity_runs`, :func:`pareto_front`, :func:`granularity_comparison`,
  :func:`sensitivity_runs`, :func:`sensitivity_claims` -- Figs. 4, 5, 7;
* :func:`autobit_runs`, :func:`autobit_curves`, :func:`autobit_latency` -- Fig. 8;
* :func:`rematching_tables` -- chapter 6 (packed inference, rounding, clipping).

``reading_*`` functions write the closing paragraph of a chapter from the data
(markdown; no number in the book is typed by hand).
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
import pandas as pd

from .bits import BitAssignment, as_assignment
from .data import DATASETS, available_datasets, canonical_name, dataset_statistics, load_dataset
from .measure import measure_job, prepare
from .memory import MB, FeatureLayout, LayerLayout, feature_layout, feature_memory
from .models import DEFAULT_GAT_HEADS, MODELS, PAPER_ARCHITECTURES, build_model
from .profiles import Profile, get_profile
from .quantize import FP32_BITS

__all__ = [
    "GRANULARITIES", "PAPER_CLAIMS", "NOT_AVAILABLE", "NO_FILES", "NOT_IN_PROFILE", "PAPER_DIR",
    "paper_table", "default_workers", "measurement_pool", "train_fp32_job",
    "resolve_datasets", "resolve_models", "resolve_seeds", "check_parameters",
    "memory_breakdown", "architecture_table", "dataset_table",
    "overall_runs", "overall_table",
    "granularity_configs", "granularity_runs", "pareto_front", "granularity_comparison",
    "sensitivity_configs", "sensitivity_runs", "sensitivity_claims",
    "AUTOBIT_METHODS", "autobit_runs", "autobit_curves", "autobit_summary", "autobit_latency",
    "measurement_seconds",
    "rematching_tables", "rounding_summary", "run_info", "mean_std",
    "reading_memory", "reading_setup", "reading_overall", "reading_granularity",
    "reading_autobit", "reading_rematching",
]

PAPER_DIR = Path(__file__).resolve().parent / "paper"
NOT_AVAILABLE = "not run: data unavailable"
NOT_IN_PROFILE = "not run: not in this profile"
NO_FILES = "files unavailable: paper's numbers only"
GRANULARITIES = ("uniform", "component", "topology", "layer", "full")
GRANULARITY_LABELS = {"uniform": "uniform", "component": "CWQ (component)",
                      "topology": "TAQ (topology)", "layer": "LWQ (layer)",
                      "full": "full (SGQuant)"}
#: Numbers the paper states in its text (its tables are in ``sgquant/paper/*.csv``).
PAPER_CLAIMS = {
    "gat_feature_share_max": 99.89,   # % of GAT's memory taken by features (Fig. 1)
    "search_saving_cost_model": 25.0,  # Fig. 8, x
    "search_saving_random": 20.0,      # Fig. 8, x
    "cost_model_latency_s": 0.1,       # per search iteration, upper bound
}
_PAPER_NAMES = {"citeseer": "CiteSeer", "pubmed": "PubMed", "amazon-computer": "Amazon-Computers"}
_MODEL_LABELS = {"gcn": "GCN", "agnn": "AGNN", "gat": "GAT"}


# ------------------------------------------------------------------ helpers
def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's tables (``table1_architectures``, ``table2_datasets``,
    ``table3_overall``) with our canonical dataset and model names."""
    names = sorted(p.stem for p in PAPER_DIR.glob("*.csv"))
    if name not in names:
        raise ValueError(f"unknown paper table {name!r}; choose one of {', '.join(names)}")
    df = pd.read_csv(PAPER_DIR / f"{name}.csv")
    if "dataset" in df:
        df["dataset"] = [_PAPER_NAMES.get(str(d).lower()) or canonical_name(d)
                         for d in df["dataset"]]
    if "model" in df:
        df["model"] = df["model"].str.lower()
    return df


def resolve_datasets(dataset: "str | Sequence[str] | None", profile: "str | Profile") -> list[str]:
    """``"all"`` / ``None``: the profile's datasets; else canonical names of a
    name, a comma-separated string or a list (unknown names raise ``ValueError``)."""
    prof = get_profile(profile)
    if dataset is None or (isinstance(dataset, str) and dataset.strip().lower() == "all"):
        return list(prof.datasets)
    items = dataset.split(",") if isinstance(dataset, str) else list(dataset)
    out = [canonical_name(d.strip() if isinstance(d, str) else d) for d in items]
    return list(dict.fromkeys(out))


def resolve_models(model: "str | Sequence[str] | None", profile: "str | Profile") -> list[str]:
    """``"all"`` / ``None``: the profile's models; else the named ones
    (``gcn``, ``agnn``, ``gat``)."""
    prof = get_profile(profile)
    if model is None or (isinstance(model, str) and model.strip().lower() == "all"):
        return list(prof.models)
    items = model.split(",") if isinstance(model, str) else list(model)
    out = []
    for m in items:
        key = str(m).strip().lower()
        if key not in MODELS:
            raise ValueError(f"unknown model {m!r}; choose one of {', '.join(MODELS)} or 'all'")
        out.append(key)
    return list(dict.fromkeys(out))


def resolve_seeds(seeds: "int | Sequence[int] | None", profile: "str | Profile") -> list[int]:
    """``None``: the profile's seeds; an int ``n``: seeds ``0..n-1``; a list: those seeds."""
    prof = get_profile(profile)
    if seeds is None:
        return prof.seed_list()
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1 (number of seeds) or a list of seeds, "
                             f"got {seeds!r}")
        return list(range(int(seeds)))
    if isinstance(seeds, str) or not isinstance(seeds, Iterable):
        raise ValueError(f"seeds must be a number of seeds, a list of seeds or None, got {seeds!r}")
    out = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"seeds must be non-negative integers, got {s!r}")
        out.append(int(s))
    if not out:
        raise ValueError("seeds is an empty list; give at least one seed")
    return list(dict.fromkeys(out))


def check_parameters(*, dataset: Any = None, model: Any = None, profile: Any = "default",
                     seeds: Any = None, **_: Any) -> dict:
    """Validate a chapter's parameters (raises ``ValueError`` naming the bad value)."""
    prof = get_profile(profile)
    return {"profile": prof.name, "datasets": resolve_datasets(dataset, prof),
            "models": resolve_models(model, prof), "seeds": resolve_seeds(seeds, prof)}


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for one value)."""
    arr = np.asarray([v for v in values if v is not None and not pd.isna(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def run_info(profile: "str | Profile", **parameters: Any) -> pd.DataFrame:
    """The profile's budgets and a chapter's parameters, as a two-column table."""
    prof = get_profile(profile)
    rows = [{"setting": k, "value": str(v)} for k, v in parameters.items()]
    rows += [{"setting": f"profile.{k}", "value": str(v)} for k, v in prof.to_dict().items()]
    return pd.DataFrame(rows)


def default_workers(profile: "str | Profile", workers: Optional[int] = None) -> int:
    """Measurement processes: ``workers`` if given; else 0 (in this process) for the
    ``quick`` profile, whose tiny budgets cost less than starting a process pool, and
    every core otherwise."""
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
            raise ValueError(f"workers must be an integer >= 0 or None, got {workers!r}")
        return int(workers)
    return 0 if get_profile(profile).name == "quick" else (os.cpu_count() or 1)


@contextlib.contextmanager
def measurement_pool(profile: "str | Profile", workers: Optional[int] = None) -> Iterator[Executor]:
    """One executor for all the measurements of a chapter
    (:func:`sgquant.search.make_executor` with :func:`default_workers`)."""
    from .search import make_executor

    pool = make_executor(default_workers(profile, workers))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True)


def train_fp32_job(dataset: str, model: str, seed: int, profile: Profile) -> dict:
    """Picklable job: train (or read from the cache) one FP32 model; its summary."""
    return dict(prepare(dataset, model, seed, profile).fp32)


def _pretrain(pool: Executor, items: Iterable[tuple[str, str, int]], prof: Profile) -> None:
    """Train the FP32 models of ``(dataset, model, seed)`` items in parallel on
    ``pool`` before any search or fine-tuning needs them (cached on disk)."""
    futures = [pool.submit(train_fp32_job, d, m, s, prof) for d, m, s in dict.fromkeys(items)]
    for fut in futures:
        fut.result()


def _run_jobs(jobs: list[tuple[dict, tuple]], executor: Executor) -> list[dict]:
    """Run ``measure_job(*args)`` for each ``(meta, args)`` on ``executor``; return
    ``{**meta, **record}`` in the order given (a failed job raises)."""
    futures = [executor.submit(measure_job, *args) for _, args in jobs]
    return [{**meta, **fut.result()} for (meta, _), fut in zip(jobs, futures)]


def _pct(x: Any) -> float:
    return math.nan if x is None or pd.isna(x) else 100.0 * float(x)


# -------------------------------------------------------------- chapter 01
def _paper_sizes() -> dict[str, dict]:
    t2 = paper_table("table2_datasets")
    return {r.dataset: {"nodes": int(r.vertices), "edges": int(r.edges),
                        "features": int(r.dim), "classes": int(r.classes)}
            for r in t2.itertuples()}


def _layout_from_sizes(model: Any, nodes: int, edges: int) -> FeatureLayout:
    """Layout of ``model`` on a graph known only by its size (self-loops added
    to ``edges`` for layers that add them; the paper's edge counts have none)."""
    layers = tuple(
        LayerLayout(s.in_dim, (edges + nodes if s.self_loops else edges) if s.heads else 0,
                    s.heads) for s in model.layer_specs)
    return FeatureLayout((nodes,), layers, sum(p.numel() for p in model.parameters()))


def memory_breakdown(datasets: "str | Sequence[str] | None" = None, model: str = "gat",
                     data_root: Optional[str] = None) -> pd.DataFrame:
    """Fig. 1: FP32 feature memory against weight memory of the paper's Table I
    architecture of ``model`` (GAT: 8 heads x 256) on every dataset.

    Analytic (:func:`sgquant.memory.feature_memory` with every field at 32 bits),
    no training. Sizes come from the loaded graph when its files are present,
    else from the paper's Table II (``source`` says which). One row per
    (dataset, model): ``feature_mb``, ``weight_mb``, ``feature_share`` (%).
    """
    names = list(DATASETS) if datasets is None or datasets == "all" else \
        resolve_datasets(datasets, "paper")
    models = resolve_models(model, "paper")
    present = set(available_datasets(data_root))
    sizes = _paper_sizes()
    rows = []
    for name in names:
        data = load_dataset(name, data_root) if name in present else None
        for m in models:
            hidden, layers = PAPER_ARCHITECTURES[m]
            kwargs = {"hidden": hidden, "num_layers": layers}
            if m == "gat":
                kwargs["heads"] = DEFAULT_GAT_HEADS
            if data is not None:
                net = build_model(m, data.num_features, int(data.y.max()) + 1, **kwargs)
                layout = feature_layout(net, data.edge_index, data.num_nodes)
                source, n, e = "loaded data", data.num_nodes, int(data.edge_index.size(1))
            else:
                s = sizes[name]
                net = build_model(m, s["features"], s["classes"], **kwargs)
                layout = _layout_from_sizes(net, s["nodes"], s["edges"])
                source, n, e = "paper's Table II sizes (data unavailable)", s["nodes"], s["edges"]
            report = feature_memory(layout, BitAssignment.fp32(net.num_layers))
            rows.append({"dataset": name, "model": m, "source": source, "nodes": n, "edges": e,
                         "feature_mb": report.fp32_mb, "weight_mb": report.weight_bytes / MB,
                         "feature_share": 100.0 * report.feature_share})
    return pd.DataFrame(rows)


def reading_memory(df: pd.DataFrame) -> str:
    """Closing paragraph of chapter 1, from :func:`memory_breakdown`."""
    top = df.loc[df["feature_share"].idxmax()]
    low = df.loc[df["feature_share"].idxmin()]
    measured = df[df["source"] == "loaded data"]["dataset"].unique().tolist()
    sized = df[df["source"] != "loaded data"]["dataset"].unique().tolist()
    text = (
        f"Features take between **{low.feature_share:.2f}%** ({low.dataset}) and "
        f"**{top.feature_share:.2f}%** ({top.dataset}) of the FP32 memory of "
        f"{', '.join(_MODEL_LABELS[m] for m in df['model'].unique())} "
        f"(the paper: up to {PAPER_CLAIMS['gat_feature_share_max']}% for GAT). Weights depend "
        f"only on the feature width and the number of classes, while features grow with "
        f"nodes x width and edges x heads, so the share rises with the graph's size: "
        f"quantizing features, not weights, is what saves memory. ")
    if measured:
        text += f"Sizes were computed from the loaded data for {', '.join(measured)}"
    if sized:
        text += (f"{'; ' if measured else ''}{', '.join(sized)} use the paper's Table II sizes "
                 "because their files are not available here")
    return text + "."


# -------------------------------------------------------------- chapter 02
def architecture_table(profile: "str | Profile" = "default") -> pd.DataFrame:
    """Table I: the paper's architectures beside the ones this profile trains, with
    their quantization points (``emb`` per layer, ``att`` per layer with edges)."""
    prof = get_profile(profile)
    paper = paper_table("table1_architectures").set_index("model")
    rows = []
    for m in prof.models:
        arch = prof.architecture(m)
        net = build_model(m, 1433, 7, **arch)  # Cora's width and classes, for the weight count
        specs = net.layer_specs
        rows.append({
            "model": m, "paper_hidden": int(paper.loc[m, "hidden"]),
            "paper_layers": int(paper.loc[m, "layers"]),
            "paper_heads": DEFAULT_GAT_HEADS if m == "gat" else None,
            "hidden": arch.get("hidden"), "layers": net.num_layers,
            "heads": arch.get("heads") if m == "gat" else None,
            "quantized_fields": sum(1 + (s.heads > 0) for s in specs),
            "weights_on_cora": sum(p.numel() for p in net.parameters()),
            "same_as_paper": bool(arch.get("hidden") == paper.loc[m, "hidden"]
                                  and net.num_layers == paper.loc[m, "layers"]
                                  and (m != "gat" or arch.get("heads") == DEFAULT_GAT_HEADS)),
        })
    return pd.DataFrame(rows)


def dataset_table(datasets: "str | Sequence[str] | None" = None,
                  data_root: Optional[str] = None) -> pd.DataFrame:
    """Table II: statistics computed from the data (:func:`sgquant.data.dataset_statistics`)
    beside the paper's, with differences. Datasets whose files are absent keep the
    paper's numbers and ``status`` says so."""
    names = list(DATASETS) if datasets is None or datasets == "all" else \
        resolve_datasets(datasets, "paper")
    present = set(available_datasets(data_root))
    paper = _paper_sizes()
    rows = []
    for name in names:
        p = paper[name]
        row: dict[str, Any] = {"dataset": name, "paper_nodes": p["nodes"],
                               "paper_edges": p["edges"], "paper_features": p["features"],
                               "paper_classes": p["classes"]}
        if name in present:
            s = dataset_statistics(load_dataset(name, data_root))
            row.update(status="computed from data", nodes=s["nodes"], edges=s["edges"],
                       undirected_edges=s["undirected_edges"], features=s["features"],
                       classes=s["classes"], train=s["train"], val=s["val"], test=s["test"],
                       isolated_nodes=s["isolated_nodes"])
            row.update(nodes_diff=s["nodes"] - p["nodes"], edges_diff=s["edges"] - p["edges"],
                       undirected_diff=s["undirected_edges"] - p["edges"],
                       features_diff=s["features"] - p["features"],
                       classes_diff=s["classes"] - p["classes"])
        else:
            row.update(status=NO_FILES)
        rows.append(row)
    cols = ["dataset", "status", "nodes", "paper_nodes", "nodes_diff", "edges", "paper_edges",
            "edges_diff", "undirected_edges", "undirected_diff", "features", "paper_features",
            "features_diff",
            "classes", "paper_classes", "classes_diff", "train", "val", "test", "isolated_nodes"]
    df = pd.DataFrame(rows).reindex(columns=cols)
    for col in cols[2:]:
        df[col] = df[col].astype("Int64")
    return df


def reading_setup(arch: pd.DataFrame, stats: pd.DataFrame) -> str:
    """Closing paragraph of chapter 2."""
    same = arch[arch["same_as_paper"]]["model"].map(_MODEL_LABELS).tolist()
    diff = arch[~arch["same_as_paper"]]
    parts = []
    if same:
        parts.append(f"{', '.join(same)} use the paper's Table I architecture")
    for r in diff.itertuples():
        heads = f", {int(r.heads)} heads" if r.heads and not pd.isna(r.heads) else ""
        pheads = (f", {int(r.paper_heads)} heads"
                  if r.paper_heads and not pd.isna(r.paper_heads) else "")
        parts.append(f"{_MODEL_LABELS[r.model]} uses hidden {r.hidden}{heads} against the "
                     f"paper's {r.paper_hidden}{pheads} (the `paper` profile uses the paper's)")
    text = "; ".join(parts) + ". "
    got = stats[stats["status"] == "computed from data"]
    exact = got[(got["nodes_diff"] == 0) & (got["features_diff"] == 0) & (got["classes_diff"] == 0)]
    if len(got):
        text += (f"Nodes, feature width and classes match the paper for "
                 f"{len(exact)} of {len(got)} datasets loaded here"
                 + (f" ({', '.join(exact['dataset'])})" if len(exact) else "") + ". ")
        edge_bits = []
        for r in got.itertuples():
            if r.edges_diff == 0 or r.undirected_diff == 0:
                continue
            closer = "undirected" if abs(r.undirected_diff) < abs(r.edges_diff) else "directed"
            edge_bits.append(f"{r.dataset}: directed {int(r.edges_diff):+d}, undirected "
                             f"{int(r.undirected_diff):+d}, closest to our {closer} count")
        if edge_bits:
            text += ("Edge counts differ (ours minus paper; " + "; ".join(edge_bits) +
                     "). PyG stores each undirected edge in both directions; the paper does "
                     "not say how it counts edges, nor which version of each dataset it used. ")
    missing = stats[stats["status"] != "computed from data"]["dataset"].tolist()
    if missing:
        text += (f"{', '.join(missing)}: files not available here, so only the paper's "
                 "numbers are shown.")
    return text


# -------------------------------------------------------------- chapter 03
def _pending_rows(names: list[str], models: list[str], status: str) -> list[dict]:
    return [{"dataset": d, "model": m, "status": status} for d in names for m in models]


def overall_runs(dataset: "str | Sequence[str] | None" = None,
                 model: "str | Sequence[str] | None" = None,
                 profile: "str | Profile" = "default",
                 seeds: "int | Sequence[int] | None" = None, *, tolerance: float = 0.5,
                 search_seed: int = 0, workers: Optional[int] = None,
                 include_missing: bool = True, progress: bool = False) -> pd.DataFrame:
    """Table III, one row per (dataset, model, seed).

    For each (dataset, model) one cost-model search
    (:func:`sgquant.search.cost_model_search`, seed ``search_seed``, the profile's
    budget) chooses the configuration with the largest saving within
    ``tolerance`` points of FP32 *validation* accuracy; that configuration is then
    fine-tuned from the FP32 model of every seed and its test accuracy (at the
    best-validation epoch: ours) and best test accuracy over epochs (the authors'
    protocol) are recorded beside the FP32 model's. With ``include_missing``,
    the paper's other (dataset, model) pairs get one row with a ``status``
    saying why they were not run.
    """
    prof = get_profile(profile)
    names = resolve_datasets(dataset, prof)
    models = resolve_models(model, prof)
    seed_list = resolve_seeds(seeds, prof)
    present = set(available_datasets())
    rows: list[dict] = []
    with measurement_pool(prof, workers) as pool:
        _pretrain(pool, [(d, m, s) for d in names if d in present for m in models
                         for s in sorted({search_seed, *seed_list})], prof)
        rows += _overall_pairs(names, models, prof, seed_list, present, tolerance, search_seed,
                               pool, progress)
    if include_missing:
        done = {(r["dataset"], r["model"]) for r in rows}
        t3 = paper_table("table3_overall")
        for r in t3.itertuples():
            if (r.dataset, r.model) not in done:
                status = NOT_AVAILABLE if r.dataset not in present else NOT_IN_PROFILE
                rows.append({"dataset": r.dataset, "model": r.model, "status": status})
    return pd.DataFrame(rows)


def _overall_pairs(names: list[str], models: list[str], prof: Profile, seed_list: list[int],
                   present: set, tolerance: float, search_seed: int, pool: Executor,
                   progress: bool) -> list[dict]:
    from .search import cost_model_search

    rows: list[dict] = []
    for name in names:
        if name not in present:
            rows += _pending_rows([name], models, NOT_AVAILABLE)
            continue
        for m in models:
            result = cost_model_search(name, m, tolerance=tolerance, seed=search_seed,
                                       profile=prof, executor=pool, progress=progress)
            chosen = result.chosen or BitAssignment.fp32(
                as_assignment(result.records["assignment"].iloc[0]).num_layers)
            search_info = {"chosen": str(chosen), "chosen_json": chosen.to_json(),
                           "found": result.chosen is not None,
                           "search_measurements": result.num_measured,
                           "search_seconds": result.wall_seconds}
            jobs = [({"seed": s}, (name, m, s, prof, chosen.to_dict())) for s in seed_list]
            for rec in _run_jobs(jobs, pool):
                setup = prepare(name, m, rec["seed"], prof)
                rows.append({
                    "dataset": name, "model": m, "seed": rec["seed"], "status": "run",
                    "fp32_val": _pct(setup.fp32["val_acc"]),
                    "fp32_test": _pct(setup.fp32["test_acc"]),
                    "fp32_best_test": _pct(setup.fp32["best_test_acc"]),
                    "val": _pct(rec["val_acc"]), "test": _pct(rec["test_acc"]),
                    "best_test": _pct(rec["best_test_acc"]),
                    "average_bits": rec["average_bits"], "fp32_memory_mb": rec["fp32_memory_mb"],
                    "memory_mb": rec["memory_mb"], "saving": rec["saving"],
                    "paper_saving": rec["paper_saving"], "weight_mb": rec["weight_mb"],
                    **search_info})
    return rows


def overall_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Table III: :func:`overall_runs` aggregated over seeds (mean and std), beside
    the paper's numbers, in the paper's row order. ``acc_drop`` is FP32 test minus
    SGQuant test (ours); ``paper_acc_drop`` the paper's."""
    paper = paper_table("table3_overall")
    rows = []
    for p in paper.itertuples():
        sel = runs[(runs["dataset"] == p.dataset) & (runs["model"] == p.model)]
        row: dict[str, Any] = {
            "dataset": p.dataset, "model": p.model,
            "paper_fp32_acc": p.fp32_accuracy, "paper_acc": p.sgquant_accuracy,
            "paper_acc_drop": p.fp32_accuracy - p.sgquant_accuracy,
            "paper_average_bits": p.sgquant_average_bits,
            "paper_fp32_mb": p.fp32_memory_mb, "paper_mb": p.sgquant_memory_mb,
            "paper_saving": p.saving}
        ran = sel[sel["status"] == "run"] if "status" in sel else sel.iloc[0:0]
        if len(ran):
            row["status"] = "run"
            row["seeds"] = len(ran)
            for col in ("fp32_test", "test", "best_test", "fp32_best_test", "val", "fp32_val"):
                row[col], row[f"{col}_std"] = mean_std(ran[col])
            row["acc_drop"], row["acc_drop_std"] = mean_std(ran["fp32_test"] - ran["test"])
            first = ran.iloc[0]
            for col in ("average_bits", "fp32_memory_mb", "memory_mb", "saving",
                        "paper_saving", "weight_mb", "chosen", "found"):
                row[f"ours_{col}" if col in ("saving", "paper_saving") else col] = first[col]
        else:
            row["status"] = sel["status"].iloc[0] if len(sel) else NOT_IN_PROFILE
        rows.append(row)
    extra = runs[(runs.get("status") == "run")] if "status" in runs else runs.iloc[0:0]
    known = {(p.dataset, p.model) for p in paper.itertuples()}
    if len(extra) and any((d, m) not in known for d, m in zip(extra["dataset"], extra["model"])):
        raise ValueError("overall_table: runs contain (dataset, model) pairs the paper's "
                         "Table III does not have")
    return pd.DataFrame(rows)


def reading_overall(table: pd.DataFrame) -> str:
    """Closing paragraph of chapter 3, from :func:`overall_table`."""
    ran = table[table["status"] == "run"]
    if not len(ran):
        return "No (dataset, model) pair was run with this profile and these parameters."
    pairs = [f"{r.dataset}/{_MODEL_LABELS[r.model]}" for r in ran.itertuples()]
    best = ran.loc[ran["ours_saving"].idxmax()]
    text = (
        f"Over the {len(ran)} pair(s) run ({', '.join(pairs)}), the chosen configurations save "
        f"**{ran['ours_saving'].min():.1f}x to {ran['ours_saving'].max():.1f}x** of feature memory "
        f"counting the min/scale overhead (the paper's 32/average-bits figure: "
        f"{ran['ours_paper_saving'].min():.1f}x to {ran['ours_paper_saving'].max():.1f}x); the "
        f"largest is {best.dataset}/{_MODEL_LABELS[best.model]} at {best.average_bits:.2f} "
        f"average bits. The paper reports {ran['paper_saving'].min():.1f}x to "
        f"{ran['paper_saving'].max():.1f}x on the same pairs. "
        f"The mean test-accuracy drop against FP32 is **{ran['acc_drop'].mean():.2f} points** "
        f"(the paper: {ran['paper_acc_drop'].mean():.2f} on these pairs), with configurations "
        f"selected on validation. Selecting on the test set as the authors' scripts do "
        f"(best test accuracy over epochs) would report "
        f"{(ran['best_test'] - ran['test']).mean():.2f} points more for SGQuant "
        f"and {(ran['fp32_best_test'] - ran['fp32_test']).mean():.2f} more for FP32. ")
    lost = ran[~ran["found"].astype(bool)]
    if len(lost):
        names = ", ".join(f"{r.dataset}/{_MODEL_LABELS[r.model]}" for r in lost.itertuples())
        text += (f"For {names} "
                 "no measured configuration stayed within tolerance, so FP32 is kept (saving 1x). ")
    text += (
        "Absolute megabytes differ from the paper's because the paper does not say what its "
        "'Memory Size' counts; ours is the analytic feature memory of every layer's input "
        "embedding and edge coefficients (see the reproducibility page), and only ratios are "
        "comparable. Fine-tuning epochs and search budgets are the profile's, smaller than "
        "the paper's except in the `paper` profile; a larger budget can find larger savings.")
    return text


# -------------------------------------------------------------- chapter 04
def _choices(prof: Profile) -> list[int]:
    return [b for b in prof.bit_choices if b != FP32_BITS]


def granularity_configs(layout: FeatureLayout, profile: "str | Profile" = "default",
                        samples: Optional[int] = None, seed: int = 0) -> pd.DataFrame:
    """The configurations of Fig. 7, one row per (granularity, configuration):
    ``uniform`` every bit width of the profile (below 32); ``component``,
    ``topology``, ``layer`` and ``full`` ``samples`` (default: the profile's
    ``granularity_samples``) distinct random draws of their free fields from the
    profile's bit widths (below 32), seeded. Also one ``fp32`` reference row."""
    from .search import Sampler, SearchSpace

    prof = get_profile(profile)
    n = prof.granularity_samples if samples is None else int(samples)
    if n < 1:
        raise ValueError(f"samples must be >= 1, got {samples!r}")
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


def _setup_layout(name: str, m: str, prof: Profile, seed: int) -> FeatureLayout:
    return prepare(name, m, seed, prof).layout


def granularity_runs(dataset: str = "Cora", model: str = "gcn",
                     profile: "str | Profile" = "default",
                     seeds: "int | Sequence[int] | None" = None, *,
                     samples: Optional[int] = None, workers: Optional[int] = None) -> pd.DataFrame:
    """Figs. 4, 5, 7: every configuration of :func:`granularity_configs` fine-tuned
    on every seed; one row per (granularity, configuration, seed) with validation
    ``error`` (%) and ``memory_mb``. Configurations are scored on validation."""
    prof = get_profile(profile)
    name, m = canonical_name(dataset), resolve_models(model, prof)[0]
    seed_list = resolve_seeds(seeds, prof)
    with measurement_pool(prof, workers) as pool:
        _pretrain(pool, [(name, m, s) for s in seed_list], prof)
        configs = granularity_configs(_setup_layout(name, m, prof, seed_list[0]), prof, samples)
        jobs = []
        for s in seed_list:
            for c in configs.itertuples():
                jobs.append(({"granularity": c.granularity, "config": c.config, "seed": s},
                             (name, m, s, prof, as_assignment(c.assignment).to_dict())))
        records = _run_jobs(jobs, pool)
    rows = []
    for rec in records:
        rows.append({"dataset": name, "model": m, "granularity": rec["granularity"],
                     "config": rec["config"], "seed": rec["seed"],
                     "val_acc": _pct(rec["val_acc"]), "error": 100.0 - _pct(rec["val_acc"]),
                     "fp32_val_acc": _pct(rec["fp32_val_acc"]),
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
                     profile: "str | Profile" = "default",
                     seeds: "int | Sequence[int] | None" = None, *,
                     bits: Sequence[int] = (1, 2, 3, 4, 8),
                     workers: Optional[int] = None) -> pd.DataFrame:
    """The paper's component / topology / layer observations (Figs. 4, 5): validation
    accuracy when only one part of the features is quantized to ``bits``.
    One row per (family, part, bits, seed)."""
    prof = get_profile(profile)
    name, m = canonical_name(dataset), resolve_models(model, prof)[0]
    seed_list = resolve_seeds(seeds, prof)
    with measurement_pool(prof, workers) as pool:
        _pretrain(pool, [(name, m, s) for s in seed_list], prof)
        configs = sensitivity_configs(_setup_layout(name, m, prof, seed_list[0]), bits)
        jobs = []
        for s in seed_list:
            for c in configs.itertuples():
                jobs.append(({"family": c.family, "part": c.part, "bits": c.bits, "seed": s},
                             (name, m, s, prof, as_assignment(c.assignment).to_dict())))
        records = _run_jobs(jobs, pool)
    rows = []
    for rec in records:
        rows.append({"dataset": name, "model": m, "family": rec["family"], "part": rec["part"],
                     "bits": rec["bits"], "seed": rec["seed"], "val_acc": _pct(rec["val_acc"]),
                     "fp32_val_acc": _pct(rec["fp32_val_acc"]),
                     "drop": _pct(rec["fp32_val_acc"]) - _pct(rec["val_acc"]),
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
        f"On {dataset}/{_MODEL_LABELS[model]}, at {wins} of {total} uniform memory budgets some "
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


# -------------------------------------------------------------- chapter 05
#: Chapter 5's searches: label -> (``sgquant.search`` method, strategy): the paper's
#: plain cost-model steps, the library's default cost model, and random search.
AUTOBIT_METHODS = {
    "cost model (paper's steps)": ("cost-model", "paper"),
    "cost model (sgquant default)": ("cost-model", "default"),
    "random": ("random", None),
}


def _label(result: Any) -> str:
    return getattr(result, "label", None) or result.method


def autobit_runs(dataset: str = "Cora", model: str = "gcn", profile: "str | Profile" = "default",
                 seeds: "int | Sequence[int] | None" = None, *, budget: Optional[int] = None,
                 tolerance: float = 0.5, methods: Optional[Sequence[str]] = None,
                 workers: Optional[int] = None, progress: bool = False) -> list:
    """Fig. 8: for every search seed (which also selects the FP32 model), one search
    per method of :data:`AUTOBIT_METHODS` (default: all) with the same budget.

    Returns the :class:`~sgquant.search.SearchResult` objects, each with a
    ``label`` attribute naming its method.
    """
    from . import search as S

    prof = get_profile(profile)
    name, m = canonical_name(dataset), resolve_models(model, prof)[0]
    labels = list(AUTOBIT_METHODS) if methods is None else list(methods)
    for label in labels:
        if label not in AUTOBIT_METHODS:
            raise ValueError(f"unknown search method {label!r}; choose from "
                             f"{', '.join(map(repr, AUTOBIT_METHODS))}")
    out = []
    seed_list = resolve_seeds(seeds, prof)
    with measurement_pool(prof, workers) as pool:
        _pretrain(pool, [(name, m, s) for s in seed_list], prof)
        for s in seed_list:
            for label in labels:
                method, strategy = AUTOBIT_METHODS[label]
                kwargs = dict(budget=budget, tolerance=tolerance, seed=s, profile=prof,
                              executor=pool, progress=progress)
                if method == "random":
                    result = S.random_search(name, m, **kwargs)
                else:
                    if strategy == "paper":
                        kwargs["strategy"] = dict(S.PAPER_STRATEGY)
                    result = S.cost_model_search(name, m, **kwargs)
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
                     "val": _pct(val if r.chosen is not None else r.fp32_val_acc),
                     "test": _pct(test if r.chosen is not None else r.fp32_test_acc),
                     "fp32_val": _pct(r.fp32_val_acc), "fp32_test": _pct(r.fp32_test_acc),
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


def autobit_latency(results: Sequence, repeats: int = 3) -> pd.DataFrame:
    """Per-iteration latency of the cost-model step (:func:`sgquant.search.cost_model_step`:
    fit, generate, features, predict, select ...), re-run with each cost-model
    search's own settings on the measured set each of its iterations started
    from. Median of ``repeats``; one row per (method, seed, iteration)."""
    from . import search as S

    feature_cache = getattr(S, "FeatureCache", None) or S._FeatureCache
    rows = []
    for r in results:
        if r.method != "cost-model" or "n_mea" not in r.settings:
            continue
        setup = prepare(r.dataset, r.model, r.seed, r.profile)
        space = S.SearchSpace.from_layout(setup.layout, r.bit_choices)
        rec = r.records.sort_values("order")
        vectors = np.array([space.vector(a) for a in rec["assignment"]])
        acc = np.where(rec["status"] == "failed", np.nan, rec["val_acc"]).astype(float)
        step = dict(r.settings.get("strategy") or {})
        extra: dict = {}
        if "fp32_anchor" in step:
            extra["fp32_accuracy"] = r.fp32_val_acc if step.pop("fp32_anchor") else None
        extra.update(step)
        extra.update(r.settings.get("xgb_params") or {})
        for it in sorted(set(rec["iteration"]) - {0}):
            before = (rec["iteration"] < it).to_numpy()
            timings = []
            for rep in range(repeats):
                t: dict = {}
                features = feature_cache(space, setup.layout)
                start = time.perf_counter()
                S.cost_model_step(space, features, vectors[before], acc[before], r.threshold,
                                  r.settings["n_sample"], r.settings["n_mea"],
                                  np.random.default_rng([r.seed, it, rep]), seed=r.seed,
                                  timings=t, **extra)
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
    text = [f"On {dataset}/{_MODEL_LABELS[model]}, with "
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


# -------------------------------------------------------------- chapter 06
def rematching_tables(dataset: str = "Cora", model: str = "gcn",
                      profile: "str | Profile" = "default",
                      seeds: "int | Sequence[int] | None" = None, *,
                      bits: Sequence[int] = (1, 2, 4, 8),
                      chunk_sizes: Sequence[int] = (1, 64, 1024, 16384),
                      peak_bits: int = 4, clip_percentile: float = 99.0) -> dict:
    """Chapter 6's measurements, from :mod:`sgquant.rematch`:

    * ``bytes``: :func:`~sgquant.rematch.packed_vs_analytic`, the packed tensors'
      real bytes against the analytic count, uniform ``bits`` (seed 0 of ``seeds``);
    * ``peak``: :func:`~sgquant.rematch.peak_memory_table`, peak memory and time of
      one inference pass (FP32, fake-quant, chunked FP32, packed at each of
      ``chunk_sizes``) at uniform ``peak_bits``;
    * ``rounding``: :func:`~sgquant.rematch.rounding_table`, floor vs nearest and
      min/max vs clipped range (``clip_percentile``) at each of ``bits``, every seed.
    """
    from . import rematch

    prof = get_profile(profile)
    name, m = canonical_name(dataset), resolve_models(model, prof)[0]
    seed_list = resolve_seeds(seeds, prof)
    return {
        "bytes": rematch.packed_vs_analytic(name, m, list(bits), seed=seed_list[0], profile=prof),
        "peak": rematch.peak_memory_table(name, m, peak_bits, chunk_sizes, seed=seed_list[0],
                                          profile=prof),
        "rounding": rematch.rounding_table(name, m, bits, clip_percentile=clip_percentile,
                                           seeds=seed_list, profile=prof),
    }


def rounding_summary(rounding: pd.DataFrame) -> pd.DataFrame:
    """:func:`~sgquant.rematch.rounding_table` averaged over seeds: validation
    accuracy (%, mean and std), accuracy before fine-tuning and reconstruction
    error per (target, bits, rounding, range)."""
    keys = ["target", "bits", "rounding", "range"]
    rows = []
    for key, sub in rounding.groupby(keys, sort=True):
        row = dict(zip(keys, key))
        row["val"], row["val_std"] = mean_std(100.0 * sub["val_acc"])
        row["val_before"], _ = mean_std(100.0 * sub["val_acc_before"])
        row["fp32_val"], _ = mean_std(100.0 * sub["fp32_val_acc"])
        row["rel_error"], _ = mean_std(sub["rel_error"])
        row["seeds"] = len(sub)
        rows.append(row)
    df = pd.DataFrame(rows)
    df["option"] = df["rounding"] + ", " + df["range"]
    return df


def reading_rematching(tables: dict) -> str:
    """Closing paragraph of chapter 6."""
    text = []
    b = tables["bytes"]
    if len(b):
        text.append(
            f"The bit-packed features take **{b['measured_bytes'].min() / MB:.3f} to "
            f"{b['measured_bytes'].max() / MB:.3f} MB** for "
            f"{b['average_bits'].min():g} to {b['average_bits'].max():g} average bits; the "
            f"analytic count used by the book differs from the real bytes by at most "
            f"{(b['measured_bytes'] - b['analytic_bytes']).abs().max():.1f} bytes (byte "
            f"rounding of each packed group), so the savings of chapters 3 to 5 are what storage "
            f"really gets. Packed inference predicts the same class as the fake-quant model for "
            + ("every node in every configuration. " if (b["pred_agreement"] >= 1).all() else
               f"{100 * b['pred_agreement'].min():.2f}% of nodes in the worst configuration. "))
    p = tables["peak"]
    if len(p):
        fp = p[p["mode"] == "fp32"]
        pk = p[p["mode"] == "packed"].sort_values("chunk_size")
        fq = p[p["mode"] == "fake_quant"]
        if len(fp) and len(pk):
            base = float(fp["inference_bytes"].iloc[0])
            best = pk.loc[pk["inference_bytes"].idxmin()]
            below = pk[pk["inference_bytes"] < base]["chunk_size"].astype(int).tolist()
            text.append(
                f"One inference pass at {p['average_bits'].iloc[0]:g} average bits: the FP32 "
                f"model holds at most {base / MB:.2f} MB of input features and temporaries, "
                + (f"the fake-quant model (everything restored to float32 at once) "
                   f"{fq['inference_bytes'].iloc[0] / MB:.2f} MB, " if len(fq) else "")
                + f"the packed pass {pk['inference_bytes'].min() / MB:.2f} to "
                f"{pk['inference_bytes'].max() / MB:.2f} MB depending on how many rows are "
                f"rematched at a time (least at {int(best.chunk_size)} rows, "
                f"{best.ratio_vs_fp32:.1f}x less than FP32). ")
            if len(below) == len(pk):
                text.append("At every chunk size measured the packed pass needs less memory "
                            "than FP32: rematching a chunk at a time costs less than packing "
                            "saves, as the paper claims. ")
            else:
                text.append(
                    f"It needs less than FP32 only at chunk sizes "
                    f"{', '.join(map(str, below)) or 'none'}"
                    f" of {', '.join(str(int(c)) for c in pk['chunk_size'])}: the paper's claim "
                    "that rematching adds little memory holds only when few rows are restored "
                    "at a time. ")
    r = tables.get("rounding")
    if r is not None and len(r):
        s = rounding_summary(r)
        low = int(s["bits"].min())
        sub = s[s["bits"] == low]
        parts = []
        for target in sub["target"].unique():
            t = sub[sub["target"] == target].set_index("option")["val"]
            best = t.idxmax()
            paper = t.get("floor, min/max", math.nan)
            parts.append(f"{target}: paper's floor, min/max {paper:.1f}%, "
                         f"best {best} {t.max():.1f}%")
        text.append(f"At {low} bit(s), validation accuracy after fine-tuning is "
                    + "; ".join(parts) + ". ")
        hi = s[s["bits"] == int(s["bits"].max())]
        text.append(f"At {int(s['bits'].max())} bits every option is within "
                    f"{(hi['fp32_val'] - hi['val']).max():.1f} points of FP32. "
                    "Round-to-nearest halves the worst-case error of floor at the same bits, "
                    "which matters most at the lowest widths; the paper uses floor.")
    text.append(" Peak memory is measured as the growth of the process's resident memory "
                "during the pass, so small graphs are near the allocator's granularity.")
    return "".join(text)
