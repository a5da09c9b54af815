"""Degree buckets: nodes grouped by in-degree for topology-aware quantization.

A node's bucket decides the bit width of its embedding (the paper's topology-aware
quantization; see the architecture page). Bucket ``j`` of ``J`` holds the nodes with
``edges[j-1] < deg(v) <= edges[j]``, edges taken from degree quantiles.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_int

__all__ = ["DegreeBuckets", "degree_buckets", "graph_fingerprint"]


def graph_fingerprint(edge_index: Tensor, num_nodes: int) -> str:
    """``n<N>-e<E>-<blake2b of edge_index>``: identifies a graph, edge order included."""
    ei = edge_index.detach().to("cpu", torch.int64).contiguous()
    digest = hashlib.blake2b(memoryview(ei.numpy()), digest_size=8).hexdigest()
    return f"n{int(num_nodes)}-e{ei.size(1)}-{digest}"


def check_edge_index(edge_index: Tensor, num_nodes: int) -> None:
    """Raise :class:`ValueError` unless ``edge_index`` is ``[2, E]`` with ids in ``[0, N)``."""
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index)
        raise ValueError(f"edge_index must be a [2, num_edges] tensor, got {shape}")
    if int(num_nodes) < 0:
        raise ValueError(f"num_nodes must be >= 0, got {num_nodes}")
    if edge_index.numel() and (
        int(edge_index.min()) < 0 or int(edge_index.max()) >= int(num_nodes)
    ):
        raise ValueError(
            f"edge_index has node ids outside [0, {int(num_nodes)}): "
            f"min {int(edge_index.min())}, max {int(edge_index.max())}"
        )


@dataclass(frozen=True)
class DegreeBuckets:
    """Nodes grouped by in-degree for topology-aware quantization.

    Node ``v`` is in bucket ``j`` iff ``edges[j-1] < deg(v) <= edges[j]`` (with
    ``edges[-1] = -inf`` and ``edges[num_buckets-1] = +inf``); bucket 0 holds the
    lowest degrees. ``fingerprint`` identifies the graph the buckets were computed on
    (see :meth:`check_graph`). Equality compares the fingerprint, edges and ids.
    """

    bucket: Tensor
    edges: tuple[float, ...]
    num_buckets: int
    num_nodes: int
    num_edges: int
    fingerprint: str

    def __post_init__(self) -> None:
        if self.num_buckets < 1:
            raise ValueError(f"num_buckets must be >= 1, got {self.num_buckets}")
        if len(self.edges) != self.num_buckets - 1:
            raise ValueError(
                f"need {self.num_buckets - 1} edges for {self.num_buckets} buckets, "
                f"got {len(self.edges)}"
            )
        if self.bucket.shape != (self.num_nodes,):
            raise ValueError(
                f"bucket must have shape ({self.num_nodes},), got {tuple(self.bucket.shape)}"
            )

    @property
    def counts(self) -> list[int]:
        """Number of nodes in each bucket (empty buckets give 0)."""
        return torch.bincount(self.bucket.cpu(), minlength=self.num_buckets).tolist()

    def check_graph(self, edge_index: Tensor, num_nodes: int) -> None:
        """Raise :class:`ValueError` unless these buckets were computed on this graph."""
        num_nodes = int(num_nodes)
        if num_nodes != self.num_nodes:
            raise ValueError(
                f"degree buckets were computed on a graph with {self.num_nodes} nodes, "
                f"got num_nodes={num_nodes}"
            )
        num_edges = int(edge_index.size(1)) if edge_index.dim() == 2 else -1
        if num_edges != self.num_edges:
            raise ValueError(
                f"degree buckets were computed on a graph with {self.num_edges} edges, "
                f"got edge_index with {num_edges} edges (shape {tuple(edge_index.shape)})"
            )
        fp = graph_fingerprint(edge_index, num_nodes)
        if fp != self.fingerprint:
            raise ValueError(
                f"degree buckets were computed on another graph: fingerprint "
                f"{self.fingerprint} != {fp} (same node and edge counts, different "
                f"edge_index content or order)"
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DegreeBuckets):
            return NotImplemented
        return (
            self.fingerprint == other.fingerprint
            and self.edges == other.edges
            and self.num_buckets == other.num_buckets
            and torch.equal(self.bucket.cpu(), other.bucket.cpu())
        )

    def __hash__(self) -> int:
        return hash((self.fingerprint, self.edges, self.num_buckets))


def degree_buckets(edge_index: Tensor, num_nodes: int, num_buckets: int = 3) -> DegreeBuckets:
    """Split nodes into ``num_buckets`` in-degree buckets with quantile edges.

    In-degree counts edges at their target (``edge_index[1]``). The target edge
    ``j`` (``j = 1..J-1``) is the lower ``j/J`` quantile of the node degrees
    (``sorted_deg[floor(j/J * (N-1))]``). Degrees are heavily tied, so the targets are
    then snapped to distinct degree values, in order: edge ``j`` is moved up to the
    next distinct degree above edge ``j-1`` and down so that enough distinct degrees
    remain above it for the buckets after it. Hence, when the graph has at least
    ``J`` distinct in-degrees, every bucket is non-empty; with ``K < J`` distinct
    degrees, the ``K`` degrees take buckets ``0..K-1`` and the top buckets are empty.
    Equal degrees always share a bucket, and bucket ids are monotone in degree.
    """
    num_buckets = check_int(num_buckets, "num_buckets", minimum=1)
    num_nodes = int(num_nodes)
    check_edge_index(edge_index, num_nodes)
    from torch_geometric.utils import degree

    deg = degree(edge_index[1], num_nodes, dtype=torch.long)
    J = num_buckets
    distinct = torch.unique(deg)  # sorted ascending
    K = distinct.numel()
    if J == 1 or K == 0:
        edge_vals = [float(distinct[-1]) if K else 0.0] * (J - 1)
        bucket = torch.zeros(num_nodes, dtype=torch.long, device=deg.device)
    else:
        sorted_deg = torch.sort(deg).values
        n = sorted_deg.numel()
        edge_pos: list[int] = []  # positions in ``distinct``
        for j in range(1, J):
            target = sorted_deg[(j * (n - 1)) // J]
            pos = int(torch.searchsorted(distinct, target))
            lo = edge_pos[-1] + 1 if edge_pos else 0
            hi = K - 1 - (J - j)  # leave J - j distinct degrees above this edge
            pos = max(min(pos, hi), lo)
            edge_pos.append(min(pos, K - 1))
        thresholds = distinct[torch.tensor(edge_pos, device=distinct.device)]
        # number of edges strictly below the degree = bucket id
        bucket = torch.searchsorted(thresholds, deg, right=False)
        edge_vals = [float(t) for t in thresholds.tolist()]
    return DegreeBuckets(
        bucket=bucket,
        edges=tuple(edge_vals),
        num_buckets=J,
        num_nodes=num_nodes,
        num_edges=int(edge_index.size(1)),
        fingerprint=graph_fingerprint(edge_index, num_nodes),
    )
