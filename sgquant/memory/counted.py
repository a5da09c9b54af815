r"""Counted memory: the one definition of a model's feature memory.

For a model of :math:`L` layers on a graph, under a :class:`~sgquant.assignment.BitAssignment`
(the architecture page, "memory accounting"):

.. math::

    \text{bits} = \sum_k \Big[\sum_j n_j\, d_{k-1}\, b^{emb}_{k,j}
                  + E_k\, \text{heads}_k\, b^{att}_k\Big],\qquad
    \text{bytes} = \text{bits} / 8 + 8 \cdot \#\text{quantized groups}

with :math:`n_j` nodes in degree bucket :math:`j`, :math:`E_k` the edges layer
:math:`k` aggregates over (self-loops included when it adds them) and 8 bytes
(float32 ``min`` and ``scale``) per quantized group. FP32 stores 32 bits per
element and no group overhead. ``saving = fp32 bytes / bytes``; the paper's
figure is ``32 / average bits`` (reported beside ours as ``paper_saving``).
Weights are counted separately. MB are :math:`10^6` bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import Tensor
from torch_geometric.utils import remove_self_loops

from ..bitwidth import ALLOWED_BITS, FP32_BITS, GROUP_OVERHEAD_BYTES
from ..assignment import BitAssignment
from ..degree import DegreeBuckets

__all__ = ["MB", "GROUP_OVERHEAD_BYTES", "LayerLayout", "FeatureLayout", "MemoryReport",
           "edges_aggregated", "feature_layout", "feature_memory", "average_bits",
           "batch_memory", "model_memory"]

#: Megabytes are 10^6 bytes throughout the book.
MB = 1e6


@dataclass(frozen=True)
class LayerLayout:
    """Feature sizes of one layer: input width ``in_dim``, ``num_edges`` it
    aggregates over and ``heads`` coefficients per edge (0: no ``att``)."""

    in_dim: int
    num_edges: int
    heads: int


@dataclass(frozen=True)
class FeatureLayout:
    """Everything memory accounting needs to know about a model on a graph."""

    bucket_sizes: tuple[int, ...]
    layers: tuple[LayerLayout, ...]
    weight_params: int = 0

    @property
    def num_nodes(self) -> int:
        return sum(self.bucket_sizes)

    @property
    def num_layers(self) -> int:
        return len(self.layers)


@dataclass
class MemoryReport:
    """Feature memory of one configuration; ``rows`` breaks it down by
    (layer, component, bucket)."""

    bits_total: float
    elements: int
    bytes: float
    fp32_bytes: float
    weight_bytes: float
    groups: int
    rows: list[dict] = field(default_factory=list)

    @property
    def average_bits(self) -> float:
        return self.bits_total / self.elements if self.elements else 0.0

    @property
    def saving(self) -> float:
        return self.fp32_bytes / self.bytes if self.bytes else float("inf")

    @property
    def paper_saving(self) -> float:
        """The paper's figure, ``32 / average bits`` (no min/scale overhead)."""
        return FP32_BITS / self.average_bits if self.average_bits else float("inf")

    @property
    def mb(self) -> float:
        return self.bytes / MB

    @property
    def fp32_mb(self) -> float:
        return self.fp32_bytes / MB

    @property
    def feature_share(self) -> float:
        """Share of FP32 feature memory in FP32 features + weights (Fig. 1)."""
        total = self.fp32_bytes + self.weight_bytes
        return self.fp32_bytes / total if total else 0.0

    def summary(self) -> dict:
        return {"average_bits": self.average_bits, "memory_mb": self.mb,
                "fp32_memory_mb": self.fp32_mb, "saving": self.saving,
                "paper_saving": self.paper_saving, "weight_mb": self.weight_bytes / MB}


def edges_aggregated(edge_index: Tensor, num_nodes: int, self_loops: bool) -> int:
    """Edges a layer aggregates over: existing self-loops are replaced by one per node."""
    if not self_loops:
        return int(edge_index.size(1))
    without, _ = remove_self_loops(edge_index)
    return int(without.size(1)) + num_nodes


def feature_layout(model: torch.nn.Module, edge_index: Tensor, num_nodes: int,
                   buckets: Optional[DegreeBuckets] = None) -> FeatureLayout:
    """The :class:`FeatureLayout` of a :class:`~sgquant.models.QuantGNN` on a graph."""
    if buckets is not None:
        buckets.check_graph(edge_index, num_nodes)
        sizes = tuple(int(c) for c in buckets.counts)
    else:
        sizes = (num_nodes,)
    layers = []
    cache: dict[bool, int] = {}
    for spec in model.layer_specs:
        if spec.heads:
            if spec.self_loops not in cache:
                cache[spec.self_loops] = edges_aggregated(edge_index, num_nodes, spec.self_loops)
            layers.append(LayerLayout(spec.in_dim, cache[spec.self_loops], spec.heads))
        else:
            layers.append(LayerLayout(spec.in_dim, 0, 0))
    weights = sum(p.numel() for p in model.parameters())
    return FeatureLayout(sizes, tuple(layers), weights)


def feature_memory(layout: FeatureLayout, assignment: BitAssignment) -> MemoryReport:
    """Feature memory of ``assignment`` on ``layout`` (the formula above).

    A one-bucket assignment quantizes each layer's embedding as one group; a
    ``J``-bucket one needs a layout with ``J`` buckets.
    """
    if not isinstance(assignment, BitAssignment):
        raise ValueError(f"feature_memory needs a BitAssignment, got {type(assignment).__name__}")
    assignment.check_shape(layout.num_layers)
    if assignment.num_buckets == 1:
        sizes: tuple[int, ...] = (layout.num_nodes,)
    elif assignment.num_buckets == len(layout.bucket_sizes):
        sizes = layout.bucket_sizes
    else:
        raise ValueError(
            f"the assignment has {assignment.num_buckets} degree buckets but the layout was "
            f"computed with {len(layout.bucket_sizes)}")
    rows, bits_total, elements, groups = [], 0.0, 0, 0
    for k, (spec, att, emb_row) in enumerate(
            zip(layout.layers, assignment.att_bits, assignment.emb_bits), start=1):
        parts = [("emb", j, n * spec.in_dim, b) for j, (n, b) in enumerate(zip(sizes, emb_row))]
        parts.append(("att", None, spec.num_edges * spec.heads, att))
        for component, bucket, count, bits in parts:
            if count == 0:
                continue
            quantized = bits != FP32_BITS
            overhead = GROUP_OVERHEAD_BYTES if quantized else 0
            rows.append({"layer": k, "component": component, "bucket": bucket,
                         "elements": count, "bits": bits,
                         "bytes": count * bits / 8 + overhead,
                         "fp32_bytes": count * 4})
            bits_total += count * bits
            elements += count
            groups += int(quantized)
    nbytes = bits_total / 8 + GROUP_OVERHEAD_BYTES * groups
    return MemoryReport(bits_total=bits_total, elements=elements, bytes=nbytes,
                        fp32_bytes=4.0 * elements, weight_bytes=4.0 * layout.weight_params,
                        groups=groups, rows=rows)


def average_bits(layout: FeatureLayout, assignment: BitAssignment) -> float:
    """Bits per quantized element of ``assignment`` on ``layout``."""
    return feature_memory(layout, assignment).average_bits


def batch_memory(layout: FeatureLayout, att_bits: np.ndarray, emb_bits: np.ndarray) -> dict:
    """:func:`feature_memory` of ``n`` assignments at once (the same formula, vectorised).

    ``att_bits`` is ``[n, L]`` (bits of each layer's ``att``), ``emb_bits`` ``[n, L, J]``
    with ``J = 1`` (one group per layer) or the layout's number of buckets. Returns
    arrays of length ``n``: ``bits_total, elements, bytes, fp32_bytes, groups,
    average_bits, saving, paper_saving, memory_mb, fp32_memory_mb`` (equal to the
    corresponding :class:`MemoryReport` fields).
    """
    att = np.asarray(att_bits)
    emb = np.asarray(emb_bits)
    L = layout.num_layers
    if att.ndim != 2 or att.shape[1] != L:
        raise ValueError(f"att_bits must have shape [n, {L}] (n assignments x layers), "
                         f"got {att.shape}")
    if emb.ndim != 3 or emb.shape[0] != att.shape[0] or emb.shape[1] != L:
        raise ValueError(f"emb_bits must have shape [{att.shape[0]}, {L}, J] (assignments x "
                         f"layers x degree buckets), got {emb.shape}")
    J = emb.shape[2]
    if J == 1:
        sizes = np.array([layout.num_nodes], dtype=np.int64)
    elif J == len(layout.bucket_sizes):
        sizes = np.asarray(layout.bucket_sizes, dtype=np.int64)
    else:
        raise ValueError(f"emb_bits has {J} degree buckets but the layout was computed "
                         f"with {len(layout.bucket_sizes)} (allowed: 1 or "
                         f"{len(layout.bucket_sizes)})")
    for name, bits in (("att_bits", att), ("emb_bits", emb)):
        bad = ~np.isin(bits, ALLOWED_BITS)
        if bad.any():
            raise ValueError(f"{name} holds {int(bits[bad].flat[0])} bits; allowed: "
                             f"{', '.join(map(str, ALLOWED_BITS))}")
    att, emb = att.astype(np.int64), emb.astype(np.int64)
    emb_count = sizes[None, :] * np.array([spec.in_dim for spec in layout.layers],
                                          dtype=np.int64)[:, None]          # [L, J]
    att_count = np.array([spec.num_edges * spec.heads for spec in layout.layers],
                         dtype=np.int64)                                    # [L]
    bits_total = (emb * emb_count).sum(axis=(1, 2)) + (att * att_count).sum(axis=1)
    groups = (((emb != FP32_BITS) & (emb_count > 0)).sum(axis=(1, 2))
              + ((att != FP32_BITS) & (att_count > 0)).sum(axis=1))
    elements = int(emb_count.sum() + att_count.sum())
    bits_total = bits_total.astype(np.float64)  # exact: integer sums below 2**53
    nbytes = bits_total / 8 + GROUP_OVERHEAD_BYTES * groups
    fp32_bytes = np.full(len(att), 4.0 * elements)
    with np.errstate(divide="ignore", invalid="ignore"):
        average = bits_total / elements if elements else np.zeros(len(att))
        saving = np.where(nbytes > 0, fp32_bytes / np.where(nbytes > 0, nbytes, 1), np.inf)
        paper = np.where(average > 0, FP32_BITS / np.where(average > 0, average, 1), np.inf)
    return {"bits_total": bits_total, "elements": np.full(len(att), elements, dtype=np.int64),
            "bytes": nbytes, "fp32_bytes": fp32_bytes, "groups": groups.astype(np.int64),
            "average_bits": average, "saving": saving, "paper_saving": paper,
            "memory_mb": nbytes / MB, "fp32_memory_mb": fp32_bytes / MB}


def model_memory(model: torch.nn.Module, edge_index: Tensor, num_nodes: int,
                 assignment: BitAssignment,
                 buckets: Optional[DegreeBuckets] = None) -> MemoryReport:
    """Shortcut: :func:`feature_memory` of ``model`` on a graph."""
    return feature_memory(feature_layout(model, edge_index, num_nodes, buckets), assignment)
