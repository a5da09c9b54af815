r"""Packed inference: a model's forward pass while its quantized features exist only as
bit-packed codes, rematched in chunks just before the operation that consumes them.

The fake-quant models of :mod:`sgquant.models` compute with float32 copies of the
quantized features; :class:`PackedRunner` runs the same model (same weights, same
:class:`~sgquant.assignment.BitAssignment`, same quantization groups, hence the same codes)
with every quantized feature stored as a :class:`~sgquant.packed.storage.PackedFeature`.
Each model holds its own chunked kernel (``model.packed_forward``) written with the
building blocks here:

* :meth:`PackedRunner.transform`: :math:`h' W` formed from the packed rows of :math:`h`,
  in the row blocks of :func:`sgquant.models.base.row_blocks` (so every row's floats are
  those of the fake-quant model, on any CPU);
* :meth:`PackedRunner.pack_nodes` / :meth:`PackedRunner.pack_edges`: quantize and pack a
  layer input (by degree bucket) or the edge coefficients;
* :meth:`PackedRunner.softmax` (over :meth:`PackedRunner.softmax_stats`) and
  :meth:`PackedRunner.aggregate`: the softmax coefficients and
  :math:`\sum_u \alpha'_{u,v} m_u`, one edge chunk at a time over the graph's edges
  and one generated self-loop per node (:class:`Edges`; the edge index is never copied).

What exists in float32 at any time: node-sized intermediates of width :math:`d_k`
(:math:`X W`, the aggregation's accumulator, the layer output before it is quantized),
one chunk of rematched rows (at least :data:`~sgquant.models.base.ROW_BLOCK` rows), and
one chunk of edge messages. A clipped range needs the percentiles of the whole group,
so that group is gathered once in float32.

**Equality with fake quantization.** On the same machine and thread count, packed logits
equal the fake-quant model's bit for bit: the products use the same row blocks, the
scatter-adds visit the edges in the same order, and the quantizer is the same code
(:func:`~sgquant.quantize.codes`). Tested under the CPU kernel sets ``default``, ``avx2``
and ``avx512`` and MKL's compatibility path (``MKL_CBWR=COMPATIBLE``).
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Union

import torch
from torch import Tensor
from torch_geometric.utils import remove_self_loops

from ..assignment import BitAssignment, as_assignment
from ..bitwidth import FP32_BITS
from ..checks import check_bool, check_int
from ..coding import check_codec
from ..degree import DegreeBuckets
from ..models.base import ROW_BLOCK, QuantGNN
from ..quantize import QuantOptions
from .storage import FeatureGroup, PackedFeature, pack_group, spans

__all__ = ["DEFAULT_CHUNK_SIZE", "check_chunk_size", "Edges", "FeatureRecord", "PackedResult",
           "PackedRunner"]

#: Rows rematched at a time when nothing else is asked for.
DEFAULT_CHUNK_SIZE = 4096


def check_chunk_size(chunk_size: object, name: str = "chunk_size") -> int:
    """``chunk_size`` (rows per chunk) if it is an integer >= 1."""
    return check_int(chunk_size, name, minimum=1)


def _bcast(index: Tensor, like: Tensor) -> Tensor:
    """``index`` viewed and expanded to the shape of ``like`` along dim 0 (as PyG's scatter)."""
    return index.view((-1,) + (1,) * (like.dim() - 1)).expand_as(like)


class Edges:
    """The edges a layer aggregates over, in PyG's order: the graph's edges without
    self-loops, then one self-loop per node (``remove_self_loops`` + ``add_self_loops``);
    with ``self_loops=False``, the graph's edges as given. Read by chunks: the edge index
    is not copied (unless it holds self-loops to drop) and the loops are generated."""

    def __init__(self, edge_index: Tensor, num_nodes: int, self_loops: bool = True) -> None:
        has_loops = False
        for s, e in spans(edge_index.size(1) if self_loops else 0, 1 << 20):
            if bool((edge_index[0, s:e] == edge_index[1, s:e]).any()):
                has_loops = True
                break
        self.base = remove_self_loops(edge_index)[0] if has_loops else edge_index
        self.num_base = int(self.base.size(1))
        self.num_nodes = int(num_nodes)
        self.self_loops = bool(self_loops)
        self.num_edges = self.num_base + (self.num_nodes if self_loops else 0)

    def pair(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """Sources and targets of edges ``[start, stop)``."""
        nb = self.num_base
        if stop <= nb:
            return self.base[0, start:stop], self.base[1, start:stop]
        loops = torch.arange(max(start - nb, 0), stop - nb, device=self.base.device)
        if start >= nb:
            return loops, loops
        return (torch.cat([self.base[0, start:], loops]),
                torch.cat([self.base[1, start:], loops]))

    def in_degree(self) -> Tensor:
        """In-degree over these edges (self-loops included when added), as float32."""
        deg = torch.bincount(self.base[1], minlength=self.num_nodes)
        return (deg.add_(1) if self.self_loops else deg).to(torch.float32)


@dataclass(frozen=True)
class FeatureRecord:
    """Storage of one quantized group: ``layer`` (1-based), ``component`` (``emb``/``att``),
    ``bucket`` (degree bucket of an ``emb`` group, ``None`` for ``att``), ``bits``,
    ``elements``, the ``nbytes`` actually held and the ``codec`` that holds them
    (``fp32``, ``packed``, ``sparse`` or ``entropy``)."""

    layer: int
    component: str
    bucket: Optional[int]
    bits: int
    elements: int
    nbytes: int
    codec: str = "packed"


@dataclass
class PackedResult:
    """Output of :meth:`PackedRunner.run`: ``logits`` and the storage of every feature."""

    logits: Tensor
    records: list[FeatureRecord]
    seconds: float
    features: dict[str, PackedFeature] = field(default_factory=dict, repr=False)

    @property
    def measured_bytes(self) -> int:
        """Sum of the ``nbytes`` of every packed (or float32) feature group."""
        return sum(r.nbytes for r in self.records)

    @property
    def elements(self) -> int:
        return sum(r.elements for r in self.records)


class PackedRunner:
    r"""Inference of a :class:`~sgquant.models.QuantGNN` with packed features, rematched
    in chunks.

    Args:
        model: the trained model (its weights are used as they are; it runs in eval mode).
        assignment: bits of every feature (one entry per layer of ``model``).
        buckets: the graph's :class:`~sgquant.data.DegreeBuckets`; required when the
            assignment has several buckets per layer, checked against the graph.
        options: rounding and range (:class:`~sgquant.quantize.QuantOptions`, default the
            paper's floor over min/max; per-kind options apply to their points); use the
            fake-quant model's options to compare.
        chunk_size: node rows rematched at a time (>= 1; products take whole row blocks,
            so below :data:`~sgquant.models.base.ROW_BLOCK` rows the chunks are staged
            into one block, above it the chunk is rounded down to whole blocks).
        edge_chunk_size: edge rows per chunk (default ``chunk_size``).
        keep_features: keep every :class:`PackedFeature` in the result (for checks);
            by default each one is freed once consumed.
        codec: how each quantized group is stored (:data:`sgquant.coding.CODECS`):
            ``packed`` (fixed-width bit packing, the default), ``sparse``, ``entropy``
            (lossless codes of the codes, decoded block by block as rows are consumed;
            same logits) or ``auto`` (the smallest of the three per group).
    """

    def __init__(self, model: QuantGNN, assignment: Union[BitAssignment, dict, str], *,
                 buckets: Optional[DegreeBuckets] = None,
                 options: Optional[QuantOptions] = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE,
                 edge_chunk_size: Optional[int] = None,
                 keep_features: bool = False, codec: str = "packed") -> None:
        if not isinstance(model, QuantGNN):
            raise ValueError(f"PackedRunner needs an sgquant model (GCN, AGNN, GAT), got "
                             f"{type(model).__name__}")
        self.model = model
        self.assignment = as_assignment(assignment)
        self.assignment.check_shape(model.num_layers)
        if buckets is not None and not isinstance(buckets, DegreeBuckets):
            raise ValueError(f"buckets must be DegreeBuckets or None, got {type(buckets).__name__}")
        self.assignment.check_buckets(buckets)
        if options is not None and not isinstance(options, QuantOptions):
            raise ValueError(f"options must be QuantOptions or None, got {type(options).__name__}")
        self.buckets = buckets
        self.options = options or QuantOptions()
        self.chunk_size = check_chunk_size(chunk_size)
        self.edge_chunk_size = (self.chunk_size if edge_chunk_size is None
                                else check_chunk_size(edge_chunk_size, "edge_chunk_size"))
        self.keep_features = check_bool(bool(keep_features), "keep_features")
        self.codec = check_codec(codec)
        self.device = next(model.parameters()).device
        self._records: list[FeatureRecord] = []
        self._input_records: list[FeatureRecord] = []
        self._kept: dict[str, PackedFeature] = {}
        self._group_of: Optional[Tensor] = None
        self._group_index: list[Tensor] = []

    # ------------------------------------------------------------ graph binding
    def bind(self, edge_index: Tensor, num_nodes: int, bucket: Optional[Tensor] = None) -> None:
        """Bind the degree-bucket groups of a graph: the runner's buckets (checked against
        ``edge_index``), or the bucket id of each node given as ``bucket`` (a sampled
        subgraph's nodes)."""
        if bucket is None and self.buckets is not None:
            self.buckets.check_graph(edge_index, num_nodes)
            bucket = self.buckets.bucket
        if self.assignment.num_buckets > 1:
            if bucket is None or bucket.numel() != num_nodes:
                raise ValueError("degree bucket ids do not match the number of nodes")
            bucket = bucket.to(self.device)
            self._group_of = bucket
            self._group_index = [(bucket == j).nonzero().view(-1)
                                 for j in range(self.assignment.num_buckets)]
        else:
            self._group_of, self._group_index = None, []

    def edges(self, edge_index: Tensor, num_nodes: int, self_loops: bool = True) -> Edges:
        """The edges a layer aggregates over (:class:`Edges`)."""
        return Edges(edge_index, num_nodes, self_loops)

    # ----------------------------------------------------------------- packing
    def _record(self, feature: PackedFeature, layer: int, component: str) -> None:
        for j, g in enumerate(feature.groups):
            elements = g.num_rows * math.prod(feature.shape[1:])
            if elements == 0:
                continue
            bucket = None if component == "att" else j
            self._records.append(FeatureRecord(layer, component, bucket, g.bits, elements,
                                               g.nbytes, g.codec))
        if self.keep_features:
            self._kept[feature.name] = feature

    def pack_nodes(self, h: Tensor, layer: int) -> PackedFeature:
        """Quantize ``h`` (``N x d``) as the input of ``layer`` (0-based), by bucket."""
        row = self.assignment.emb_bits[layer]
        name = f"emb_L{layer + 1}"
        opts = self.options.for_point(name)  # per-kind options (input, hidden) apply
        n, rest = h.size(0), tuple(h.shape[1:])
        if not self._group_index:
            if row[0] == FP32_BITS:
                group = FeatureGroup(None, FP32_BITS, values=h.to(torch.float32))
            else:
                group = pack_group(lambda s, e: h[s:e], n, rest, row[0], opts,
                                   self.chunk_size, device=self.device, codec=self.codec,
                                   name=name)
            feature = PackedFeature(name, h.shape, [group])
        else:
            groups = []
            for j, (idx, bits) in enumerate(zip(self._group_index, row)):
                src = (lambda s, e, idx=idx: h.index_select(0, idx[s:e]))
                groups.append(pack_group(src, int(idx.numel()), rest, bits, opts,
                                         self.chunk_size, index=idx, device=self.device,
                                         codec=self.codec, name=f"{name} bucket {j}"))
            feature = PackedFeature(name, h.shape, groups, group_of=self._group_of)
        self._record(feature, layer + 1, "emb")
        return feature

    def pack_edges(self, source: Callable[[int, int], Tensor], num_edges: int,
                   row_shape: tuple[int, ...], layer: int) -> PackedFeature:
        """Quantize and pack the edge coefficients of ``layer`` (0-based), produced chunk by
        chunk by ``source(start, stop)``."""
        bits = self.assignment.att_bits[layer]
        name = f"att_L{layer + 1}"
        group = pack_group(source, num_edges, row_shape, bits, self.options.for_point(name),
                           self.edge_chunk_size, device=self.device, codec=self.codec,
                           name=name)
        feature = PackedFeature(name, (num_edges, *row_shape), [group])
        self._record(feature, layer + 1, "att")
        return feature

    def pack_input(self, x: Tensor, edge_index: Optional[Tensor] = None) -> PackedFeature:
        """Quantize and pack the input features (the ``emb`` of layer 1), once, before
        inference (features stored packed); ``edge_index`` lets the degree buckets be
        checked against the graph."""
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError(f"x must be a [num_nodes, num_features] tensor, got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        if edge_index is not None:
            self.bind(edge_index, x.size(0))
        elif self.assignment.num_buckets > 1:
            if self.buckets.num_nodes != x.size(0):
                raise ValueError(f"degree buckets were computed on a graph with "
                                 f"{self.buckets.num_nodes} nodes, got x with {x.size(0)} rows")
            self.bind(torch.empty(2, 0, dtype=torch.long), x.size(0), self.buckets.bucket)
        self._records, self._kept = [], {}
        with torch.no_grad():
            feature = self.pack_nodes(x.to(self.device), 0)
        self._input_records = list(self._records)
        return feature

    # --------------------------------------------------------------- inference
    @contextmanager
    def _eval(self) -> Iterator[None]:
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model.train(was)

    def run(self, x: Union[Tensor, PackedFeature], edge_index: Tensor) -> PackedResult:
        """Inference on the graph ``edge_index`` from features ``x`` (float32, packed
        here) or a :class:`PackedFeature` from :meth:`pack_input`."""
        num_nodes = x.shape[0]
        edge_index = edge_index.to(self.device)
        if isinstance(x, PackedFeature):
            self.bind(edge_index, num_nodes)
            self._records = list(self._input_records)
            self._kept = {x.name: x} if self.keep_features else {}
            h = x
        else:
            h = self.pack_input(x, edge_index)
        return self.run_bound(h, edge_index, num_nodes)

    def run_bound(self, h, edge_index: Tensor, num_nodes: int,
                  node_state: Optional[Tensor] = None) -> PackedResult:
        """The pass itself on input rows ``h`` (a :class:`PackedFeature` or anything with
        ``rows``/``gather``/``shape``), groups already bound (:meth:`bind`)."""
        start = time.perf_counter()
        with self._eval():
            logits = self.model.packed_forward(self, h, edge_index, num_nodes, node_state)
        result = PackedResult(logits, list(self._records), time.perf_counter() - start,
                              dict(self._kept))
        self._records, self._kept = list(self._input_records), {}
        return result

    # ------------------------------------------------------------ building blocks
    def transform(self, h, lin: Callable[[Tensor], Tensor], out_dim: int) -> Tensor:
        r""":math:`h' W` (``lin``) formed from the rematched rows of ``h``, in the row
        blocks of the fake-quant model (aligned at multiples of ``ROW_BLOCK``)."""
        n = h.shape[0]
        out = torch.empty(n, out_dim, device=self.device)
        if self.chunk_size >= ROW_BLOCK:
            step = self.chunk_size // ROW_BLOCK * ROW_BLOCK
            for s, e in spans(n, step):
                out[s:e] = lin(h.rows(s, e))
            return out
        stage = torch.empty((ROW_BLOCK, *h.shape[1:]), device=self.device)
        for s0, e0 in spans(n, ROW_BLOCK):
            for s, e in spans(e0 - s0, self.chunk_size):
                stage[s:e] = h.rows(s0 + s, s0 + e)
            out[s0:e0] = lin(stage[:e0 - s0])
        return out

    def softmax_stats(self, logit: Callable[[Tensor, Tensor], Tensor], edges: Edges,
                      heads_shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        r"""Per target node :math:`\max_u e_{u,v}` and :math:`\sum_u \exp(e_{u,v} - \max)`
        over edge chunks, as :func:`torch_geometric.utils.softmax` computes them."""
        n = edges.num_nodes
        m = torch.full((n, *heads_shape), float("-inf"), device=self.device)
        for s, e in spans(edges.num_edges, self.edge_chunk_size):
            src, dst = edges.pair(s, e)
            val = logit(src, dst)
            m.scatter_reduce_(0, _bcast(dst, val), val, reduce="amax", include_self=True)
        m.masked_fill_(torch.isinf(m), 0.0)
        total = torch.zeros((n, *heads_shape), device=self.device)
        for s, e in spans(edges.num_edges, self.edge_chunk_size):
            src, dst = edges.pair(s, e)
            ex = (logit(src, dst) - m.index_select(0, dst)).exp()
            total.scatter_add_(0, _bcast(dst, ex), ex)
        return m, total.add_(1e-16)

    def softmax(self, logit: Callable[[Tensor, Tensor], Tensor], edges: Edges,
                heads_shape: tuple[int, ...]) -> Callable[[Tensor, Tensor], Tensor]:
        r""":math:`\alpha_{u,v} = \exp(e_{u,v} - \max_u e_{u,v}) / \sum_u \exp(e_{u,v} -
        \max)` as a function of an edge chunk, the statistics from :meth:`softmax_stats`
        (held until the returned function is released)."""
        mx, total = self.softmax_stats(logit, edges, heads_shape)

        def alpha(src: Tensor, dst: Tensor) -> Tensor:
            ex = (logit(src, dst) - mx.index_select(0, dst)).exp()
            return ex / total.index_select(0, dst)
        return alpha

    def edge_source(self, fn: Callable[[Tensor, Tensor], Tensor],
                    edges: Edges) -> Callable[[int, int], Tensor]:
        """``fn(src, dst)`` as a source of edge rows ``[s, e)`` for :meth:`pack_edges`."""
        def source(s: int, e: int) -> Tensor:
            return fn(*edges.pair(s, e))
        return source

    def aggregate(self, att: Optional[PackedFeature],
                  message: Callable[[Tensor, Optional[Tensor]], Tensor],
                  edges: Edges, out: Tensor) -> Tensor:
        r""":math:`\text{out}_v \mathrel{+}= \sum_{(u,v)} \alpha'_{u,v} \, \text{message}_u`,
        one edge chunk at a time (the coefficients are rematched per chunk; ``att=None``:
        no coefficients, ``message`` gets ``None``)."""
        for s, e in spans(edges.num_edges, self.edge_chunk_size):
            src, dst = edges.pair(s, e)
            msg = message(src, None if att is None else att.rows(s, e))
            out.scatter_add_(0, _bcast(dst, msg), msg)
        return out

    def zeros(self, *shape: int) -> Tensor:
        """A float32 accumulator on the runner's device."""
        return torch.zeros(*shape, device=self.device)
