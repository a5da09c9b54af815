"""Chapter 1 (Fig. 1): how much of a GNN's FP32 memory are features, how much weights.

Analytic (:func:`sgquant.memory.feature_memory` with every field at 32 bits), no
training: the paper's Table I architecture of each model on every dataset, sized
from the loaded graph when its files are here, else from the paper's Table II.
"""
from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any, Optional, Sequence

import pandas as pd

from ..assignment import BitAssignment
from ..data import DATASETS, available_datasets, load_dataset
from ..memory import MB, FeatureLayout, LayerLayout, feature_layout, feature_memory
from ..models import build_model
from ..paper import PAPER_CLAIMS, paper_sizes
from ..plots import MODEL_LABELS, plot_memory_breakdown, table
from .common import BaseChapter, markdown, resolve_datasets, resolve_models

__all__ = ["layout_from_sizes", "memory_breakdown", "reading_memory", "Chapter"]

LOADED = "loaded data"
#: Display names of :func:`memory_breakdown`'s columns.
COLUMNS = {"dataset": "dataset", "model": "model", "source": "sizes from", "nodes": "nodes",
           "edges": "edges", "feature_mb": "features (MB)", "weight_mb": "weights (MB)",
           "feature_share": "feature share (%)"}


def layout_from_sizes(model: Any, nodes: int, edges: int) -> FeatureLayout:
    """Layout of ``model`` on a graph known only by its size (self-loops added
    to ``edges`` for layers that add them; the paper's edge counts have none)."""
    layers = tuple(
        LayerLayout(s.in_dim, (edges + nodes if s.self_loops else edges) if s.heads else 0,
                    s.heads) for s in model.layer_specs)
    return FeatureLayout((nodes,), layers, sum(p.numel() for p in model.parameters()))


def memory_breakdown(datasets: "str | Sequence[str] | None" = None, model: str = "gat",
                     data_root: Optional[str] = None) -> pd.DataFrame:
    r"""Fig. 1: FP32 feature memory against weight memory of the paper's Table I
    architecture of ``model`` (GAT: 8 heads x 256; a model the paper does not have: its
    registry size, :func:`sgquant.models.build_model`'s default) on every dataset.

    Feature memory :math:`= 4 \sum_k (N d_k + E_k h_k)` bytes (every layer's input
    embedding and edge coefficients, float32). Sizes come from the loaded graph
    when its files are present, else from the paper's Table II (``source`` says
    which). One row per (dataset, model): ``feature_mb``, ``weight_mb``,
    ``feature_share`` (%).
    """
    names = list(DATASETS) if datasets is None or datasets == "all" else \
        resolve_datasets(datasets, "paper")
    models = resolve_models(model, "paper")
    present = set(available_datasets(data_root))
    sizes = paper_sizes()
    rows = []
    for name in names:
        data = load_dataset(name, data_root) if name in present else None
        for m in models:
            if data is not None:
                net = build_model(m, data.num_features, int(data.y.max()) + 1)
                layout = feature_layout(net, data.edge_index, data.num_nodes)
                source, n, e = LOADED, data.num_nodes, int(data.edge_index.size(1))
            else:
                s = sizes[name]
                net = build_model(m, s["features"], s["classes"])
                layout = layout_from_sizes(net, s["nodes"], s["edges"])
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
    measured = df[df["source"] == LOADED]["dataset"].unique().tolist()
    sized = df[df["source"] != LOADED]["dataset"].unique().tolist()
    text = (
        f"Features take between **{low.feature_share:.2f}%** ({low.dataset}) and "
        f"**{top.feature_share:.2f}%** ({top.dataset}) of the FP32 memory of "
        f"{', '.join(MODEL_LABELS[m] for m in df['model'].unique())} "
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


@dataclasses.dataclass
class Chapter(BaseChapter):
    """Chapter 1 (``notebooks/01_memory_breakdown.ipynb``)."""

    model: Any = "gat"

    unused = ("seeds",)

    @cached_property
    def breakdown(self) -> pd.DataFrame:
        """:func:`memory_breakdown` of the chosen datasets and models."""
        return memory_breakdown(self.dataset, self.model)

    def breakdown_table(self) -> Any:
        return table(self.breakdown, columns=COLUMNS, caption="Fig. 1 data: FP32 feature and "
                     "weight memory (MB) of the paper's architecture")

    def figure(self) -> Any:
        return plot_memory_breakdown(self.breakdown)

    def reading(self) -> Any:
        return markdown(reading_memory(self.breakdown))
