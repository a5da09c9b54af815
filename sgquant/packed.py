r"""Packed inference: quantized features held only as bit-packed codes.

The fake-quant models of :mod:`sgquant.models` compute with float32 copies of the
quantized features; this module runs the same GCN, AGNN and GAT (same weights, same
:class:`~sgquant.bits.BitAssignment`, same quantization groups, hence the same codes)
while every quantized feature is stored as a :class:`~sgquant.quantize.PackedTensor`
(:math:`\lceil n b / 8 \rceil` bytes plus float32 ``min`` and ``scale`` per group).
Values are *rematched* (dequantized, :math:`x' = s \cdot q + \min`) in chunks of
rows just before the operation that consumes them:

* layer input :math:`h'^{k-1}` (``emb``, by degree bucket): rows ``[s, e)`` are
  dequantized and multiplied by :math:`W^k`, so :math:`X W` is formed chunk by chunk
  (AGNN's propagation, which has no weight, gathers the dequantized rows of the
  source and target nodes of an edge chunk);
* edge coefficients :math:`\alpha'^k` (``att``), over the graph's edges and one
  self-loop per node (generated chunk by chunk; the edge index is never copied):
  GCN's :math:`1/\sqrt{\hat d_u \hat d_v}` and the attention of GAT/AGNN are
  computed chunk by chunk of edges, quantized with the range of the whole tensor (a
  first pass takes the min/max; the softmax statistics are node-sized), packed, and
  consumed by the aggregation :math:`\sum_u \alpha'_{u,v} (h' W)_u`, scatter-added
  one edge chunk at a time.

1, 2, 4 and 8-bit codes are decoded through a 256-entry byte table (one float32 row
per byte value), other widths through :func:`~sgquant.quantize.unpack_bits`.

Bits 32 fields are kept as float32 (no packing). What exists in float32 at any time:
node-sized intermediates of width :math:`d_k` (:math:`X W` and the aggregation's
accumulator, the layer output before it is quantized), one chunk of dequantized rows,
and one chunk of edge messages. A clipped range (``clip_percentile``) needs the
percentiles of the whole group, so that group is gathered once in float32.

Matrix products of 1-3 rows use another BLAS kernel than a big product, whose sums
differ in the last bit (enough to move a hidden code next to a rounding boundary by
one level), so rows rematched in chunks below 4 rows are multiplied in blocks of 4.
From 4 rows up the chunked products, the chunked scatter-adds (edges in the same
order) and the softmax statistics reproduce the fake-quant model's floats, hence its
codes and logits (checked bit for bit on Cora; another BLAS may differ in the last
bit, predictions still agree). Inputs of the first layer are quantized from the same
floats, so their codes are identical.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import remove_self_loops

from .bits import BitAssignment, as_assignment
from .data import DegreeBuckets
from .models import AGNN, GAT, GCN, QuantGNN, QuantOptions
from .quantize import FP32_BITS, PackedTensor, pack_bits, unpack_bits
# The same range and code arithmetic as fake_quantize, so that the codes are identical.
from .quantize import _codes_float, _range_tensors

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FeatureRecord",
    "PackedFeature",
    "PackedResult",
    "PackedRunner",
    "check_chunk_size",
    "dequantize_packed_rows",
    "gather_packed_rows",
    "neighbor_batches",
    "packed_forward",
    "sampled_packed_forward",
]

#: Rows dequantized at a time when nothing else is asked for.
DEFAULT_CHUNK_SIZE = 4096

#: Matrix products take at least this many rows (see PackedRunner._transform).
_MIN_MATMUL_ROWS = 4


def check_chunk_size(chunk_size: object, name: str = "chunk_size") -> int:
    """Return ``chunk_size`` if it is an integer >= 1, else raise :class:`ValueError`."""
    if isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, (int, np.integer)) \
            or int(chunk_size) < 1:
        raise ValueError(f"{name} must be an integer >= 1 (rows per chunk), got {chunk_size!r}")
    return int(chunk_size)


def _spans(n: int, size: int) -> Iterator[tuple[int, int]]:
    for s in range(0, n, size):
        yield s, min(s + size, n)


def _aligned(size: int) -> int:
    """``size`` rounded up to a multiple of 8 rows: a chunk of whole bytes at any width."""
    return -(-size // 8) * 8


# ----------------------------------------------------------------------- storage
_LUT_BITS = (1, 2, 4, 8)
_DECODE_BLOCK = 1 << 16  # bytes decoded per index_select


def _byte_table(packed: PackedTensor) -> Tensor:
    r"""``256 x (8 / b)`` float32 table: the rematched values of the codes in each byte
    value (code :math:`i` of a byte is bits :math:`[ib, (i+1)b)`, as :func:`pack_bits`
    writes them), computed with the same float32 operations as
    :meth:`~sgquant.quantize.PackedTensor.dequantize`."""
    b = packed.bits
    per_byte = 8 // b
    values = torch.arange(2**b, dtype=torch.float32).mul_(packed.scale).add_(packed.minimum)
    byte = torch.arange(256).view(-1, 1)
    codes = (byte >> (torch.arange(per_byte) * b)) & (2**b - 1)
    return values[codes]


def _decode(packed: PackedTensor, data: Tensor, bit_offset: int, n: int,
            table: Optional[Tensor] = None) -> Tensor:
    """``n`` rematched values from the bytes ``data`` starting at stream bit ``bit_offset``
    (float32, 1-D). Widths 1, 2, 4, 8 read a byte table (one float32 output and one int32
    index per byte, no other temporary); other widths go through :func:`unpack_bits`."""
    if packed.bits in _LUT_BITS and bit_offset % packed.bits == 0:
        table = _byte_table(packed) if table is None else table
        per_byte = 8 // packed.bits
        first = bit_offset // packed.bits  # codes to skip in the first byte
        nbytes = (first + n + per_byte - 1) // per_byte
        out = torch.empty(nbytes, per_byte)
        for s, e in _spans(nbytes, _DECODE_BLOCK):  # bounded int32 index temporaries
            torch.index_select(table, 0, data[s:e].to(torch.int32), out=out[s:e])
        out = out.view(-1)
        return out[first:first + n] if (first or out.numel() != n) else out
    codes = unpack_bits(data, packed.bits, n, bit_offset=bit_offset)
    return codes.to(torch.float32).mul_(packed.scale).add_(packed.minimum)


def dequantize_packed_rows(packed: PackedTensor, start: int, stop: int,
                           table: Optional[Tensor] = None) -> Tensor:
    """Rows ``[start, stop)`` of ``packed`` (float32), equal to
    :meth:`~sgquant.quantize.PackedTensor.dequantize_rows`, decoded with a byte table
    at 1, 2, 4 and 8 bits."""
    if len(packed.shape) == 0 or not 0 <= start <= stop <= packed.shape[0]:
        raise ValueError(f"need 0 <= start <= stop <= rows ({packed.shape[0] if packed.shape else 0}), "
                         f"got start={start}, stop={stop}")
    per_row = math.prod(packed.shape[1:])
    out_shape = (stop - start, *packed.shape[1:])
    n = (stop - start) * per_row
    if n == 0:
        return torch.empty(out_shape, dtype=torch.float32)
    first = start * per_row * packed.bits
    b0 = first // 8
    b1 = (first + n * packed.bits + 7) // 8
    return _decode(packed, packed.data[b0:b1], first - 8 * b0, n, table).view(out_shape)


def gather_packed_rows(packed: PackedTensor, rows: Tensor,
                       table: Optional[Tensor] = None) -> Tensor:
    r"""Rows ``rows`` (any order, repeats allowed) of ``packed.dequantize()`` as float32.

    Only the bytes of the requested rows are decoded, in blocks of rows (bounded
    temporaries). A row of :math:`r` elements occupies stream bits
    :math:`[i r b, (i+1) r b)`: when :math:`r b` is a multiple of 8 rows are gathered
    as whole bytes; else, at 1, 2, 4, 8 bits, the bytes covering each row are decoded
    with the byte table and the row's codes sliced out at its code offset; at other
    widths each row is cut out of its covering bits.
    """
    if packed.bits == FP32_BITS:
        raise ValueError("gather_packed_rows needs a bit-packed tensor (bits 1..16), got bits 32")
    shape = packed.shape
    if len(shape) == 0:
        raise ValueError("gather_packed_rows needs a tensor with at least one dimension")
    per_row = math.prod(shape[1:])
    rows = rows.reshape(-1).to(torch.int64)
    m = rows.numel()
    out_shape = (m, *shape[1:])
    if m == 0 or per_row == 0:
        return torch.empty(out_shape, dtype=torch.float32)
    if int(rows.min()) < 0 or int(rows.max()) >= shape[0]:
        raise ValueError(f"rows must lie in [0, {shape[0]}), got "
                         f"[{int(rows.min())}, {int(rows.max())}]")
    bits = packed.bits
    row_bits = per_row * bits
    if row_bits % 8 == 0:
        nb = row_bits // 8
        data = packed.data[: shape[0] * nb].view(shape[0], nb).index_select(0, rows)
        return _decode(packed, data.reshape(-1), 0, m * per_row, table).view(out_shape)
    out = torch.empty(m, per_row)
    size = packed.data.numel()
    if bits in _LUT_BITS:
        table = _byte_table(packed) if table is None else table
        per_byte = 8 // bits
        first = rows * per_row  # first code of each row
        b0, off = first // per_byte, first % per_byte
        width = (per_byte - 1 + per_row + per_byte - 1) // per_byte  # bytes of any row
        step = max(1, _DECODE_BLOCK // width)
        span = torch.arange(width)
        for s, e in _spans(m, step):
            idx = (b0[s:e, None] + span).clamp_(max=size - 1)
            dec = table.index_select(0, packed.data[idx].view(-1).to(torch.int32))
            dec = dec.view(e - s, width * per_byte)
            o = off[s:e]
            for value in torch.unique(o).tolist():
                sel = (o == value).nonzero().view(-1)
                out[s + sel] = dec.index_select(0, sel)[:, value:value + per_row]
        return out.view(out_shape)
    data = packed.data.numpy()
    nb = (7 + row_bits + 7) // 8
    step = max(1, (_DECODE_BLOCK * 8) // (nb * 8 + row_bits))
    weights = 1 << np.arange(bits, dtype=np.int32)
    rows_np = rows.numpy()
    for s, e in _spans(m, step):
        first = rows_np[s:e] * row_bits
        b0, off = first // 8, first % 8
        idx = np.minimum(b0[:, None] + np.arange(nb), data.size - 1)
        stream = np.unpackbits(data[idx], axis=1, bitorder="little")
        sel = np.take_along_axis(stream, off[:, None] + np.arange(row_bits), axis=1)
        codes = (sel.reshape(-1, bits).astype(np.int32) * weights).sum(1, dtype=np.int32)
        out[s:e] = torch.from_numpy(codes).view(e - s, per_row).to(torch.float32)
    return out.mul_(packed.scale).add_(packed.minimum).view(out_shape)


@dataclass(eq=False)
class _Group:
    """Rows ``index`` (sorted; ``None``: all rows) of a feature, packed or float32."""

    index: Optional[Tensor]
    bits: int
    packed: Optional[PackedTensor] = None
    values: Optional[Tensor] = None
    _table: Optional[Tensor] = None

    def table(self) -> Optional[Tensor]:
        if self._table is None and self.packed is not None and self.bits in _LUT_BITS:
            self._table = _byte_table(self.packed)
        return self._table

    @property
    def num_rows(self) -> int:
        store = self.values if self.values is not None else self.packed
        return int(store.shape[0])

    @property
    def nbytes(self) -> int:
        if self.values is not None:
            return int(self.values.numel()) * 4
        return self.packed.nbytes if self.packed is not None else 0

    def rows(self, start: int, stop: int) -> Tensor:
        if self.values is not None:
            return self.values[start:stop]
        return dequantize_packed_rows(self.packed, start, stop, self.table())

    def gather(self, pos: Tensor) -> Tensor:
        if self.values is not None:
            return self.values.index_select(0, pos)
        return gather_packed_rows(self.packed, pos, self.table())


class PackedFeature:
    r"""One quantized feature held as packed codes: the rows of an ``N x d`` layer input
    (one group, or one group per degree bucket) or of an ``E x heads`` edge tensor.

    :meth:`rows` and :meth:`gather` rematch rows on demand; :attr:`nbytes` is the
    storage actually held (``ceil(n b / 8) + 8`` per packed group, ``4 n`` at 32 bits).
    """

    def __init__(self, name: str, shape: tuple[int, ...], groups: list[_Group],
                 group_of: Optional[Tensor] = None) -> None:
        self.name = name
        self.shape = tuple(int(s) for s in shape)
        self.groups = groups
        self.group_of = group_of  # row -> group id when there are several groups

    @property
    def nbytes(self) -> int:
        return sum(g.nbytes for g in self.groups)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def bits(self) -> tuple[int, ...]:
        return tuple(g.bits for g in self.groups)

    def _single(self) -> bool:
        return len(self.groups) == 1 and self.groups[0].index is None

    def rows(self, start: int, stop: int) -> Tensor:
        """Rematched rows ``[start, stop)`` (float32)."""
        if self._single():
            return self.groups[0].rows(start, stop)
        out = torch.empty((stop - start, *self.shape[1:]), dtype=torch.float32)
        bounds = torch.tensor([start, stop])
        for g in self.groups:
            if g.index is None or g.index.numel() == 0:
                continue
            p0, p1 = (int(v) for v in torch.searchsorted(g.index, bounds))
            if p1 > p0:
                out[g.index[p0:p1] - start] = g.rows(p0, p1)
        return out

    def gather(self, ids: Tensor) -> Tensor:
        """Rematched rows ``ids`` (any order; float32)."""
        if self._single():
            return self.groups[0].gather(ids)
        out = torch.empty((ids.numel(), *self.shape[1:]), dtype=torch.float32)
        owner = self.group_of.index_select(0, ids)
        for j, g in enumerate(self.groups):
            if g.index is None or g.index.numel() == 0:
                continue
            mask = owner == j
            if bool(mask.any()):
                sel = ids[mask]
                out[mask] = g.gather(torch.searchsorted(g.index, sel))
        return out

    def dequantize(self) -> Tensor:
        """The whole rematched tensor (a full float32 copy: for checks, not inference)."""
        return self.rows(0, self.shape[0]) if self.shape[0] else torch.empty(self.shape)

    def __repr__(self) -> str:
        return (f"PackedFeature({self.name}, shape={self.shape}, bits={self.bits}, "
                f"nbytes={self.nbytes})")


class _RowSubset:
    """Rows ``n_id`` of a :class:`PackedFeature`, read through it (no copy)."""

    def __init__(self, feature: PackedFeature, n_id: Tensor) -> None:
        self.feature, self.n_id = feature, n_id
        self.shape = (int(n_id.numel()), *feature.shape[1:])

    def rows(self, start: int, stop: int) -> Tensor:
        return self.feature.gather(self.n_id[start:stop])

    def gather(self, ids: Tensor) -> Tensor:
        return self.feature.gather(self.n_id.index_select(0, ids))


def _pack_group(source: Callable[[int, int], Tensor], n: int, row_shape: tuple[int, ...],
                bits: int, options: QuantOptions, chunk: int,
                index: Optional[Tensor] = None) -> _Group:
    r"""Quantize ``n`` rows produced by ``source(s, e)`` as one group and pack them.

    The range is :math:`(\min, \max)` of all rows (a first pass over the chunks;
    exact, as min/max do not depend on the order) or their percentiles when
    ``options.clip_percentile`` is set (then the group is gathered once). Codes are
    computed chunk by chunk (chunks of a multiple of 8 rows, so each packs to whole
    bytes) and written into one byte stream.
    """
    shape = (n, *row_shape)
    if bits == FP32_BITS:  # kept as float32, filled chunk by chunk
        values = torch.empty(shape)
        for s, e in _spans(n, max(chunk, 1)):
            values[s:e] = source(s, e)
        return _Group(index, bits, values=values)
    if n == 0 or math.prod(row_shape) == 0:
        empty = PackedTensor(torch.empty(0, dtype=torch.uint8), 0.0, 0.0, bits, shape,
                             options.rounding)
        return _Group(index, bits, packed=empty)
    step = _aligned(chunk)
    if options.clip_percentile is None:
        mn = mx = None
        for s, e in _spans(n, step):
            lo, hi = _range_tensors(source(s, e).to(torch.float32), None)
            mn = lo if mn is None else torch.minimum(mn, lo)
            mx = hi if mx is None else torch.maximum(mx, hi)
    else:
        whole = source(0, n).to(torch.float32)
        mn, mx = _range_tensors(whole, options.clip_percentile)
        del whole
    per_row = math.prod(row_shape)
    data = torch.empty((n * per_row * bits + 7) // 8, dtype=torch.uint8)
    scale = None
    for s, e in _spans(n, step):
        t, scale = _codes_float(source(s, e).to(torch.float32), mn, mx, bits, options.rounding)
        piece = pack_bits(t.to(torch.int32), bits)
        b0 = s * per_row * bits // 8
        data[b0:b0 + piece.numel()] = piece
    packed = PackedTensor(data, float(mn), float(scale), bits, shape, options.rounding)
    return _Group(index, bits, packed=packed)


# ------------------------------------------------------------------------ results
@dataclass(frozen=True)
class FeatureRecord:
    """Storage of one quantized group: ``layer`` (1-based), ``component`` (``emb``/``att``),
    ``bucket`` (degree bucket of an ``emb`` group, ``None`` for ``att``), ``bits``,
    ``elements`` and the ``nbytes`` actually held."""

    layer: int
    component: str
    bucket: Optional[int]
    bits: int
    elements: int
    nbytes: int


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


# -------------------------------------------------------------------------- edges
class _Edges:
    """The edges a layer aggregates over, in PyG's order: the graph's edges without
    self-loops, then one self-loop per node (``add_remaining_self_loops`` /
    ``remove_self_loops`` + ``add_self_loops``). Read by chunks: the edge index is not
    copied (unless it holds self-loops to drop) and the loops are generated."""

    def __init__(self, edge_index: Tensor, num_nodes: int) -> None:
        has_loops = False
        for s, e in _spans(edge_index.size(1), 1 << 20):
            if bool((edge_index[0, s:e] == edge_index[1, s:e]).any()):
                has_loops = True
                break
        self.base = remove_self_loops(edge_index)[0] if has_loops else edge_index
        self.num_base = int(self.base.size(1))
        self.num_nodes = int(num_nodes)
        self.num_edges = self.num_base + self.num_nodes

    def pair(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """Sources and targets of edges ``[start, stop)``."""
        nb = self.num_base
        if stop <= nb:
            return self.base[0, start:stop], self.base[1, start:stop]
        loops = torch.arange(max(start - nb, 0), stop - nb)
        if start >= nb:
            return loops, loops
        return (torch.cat([self.base[0, start:], loops]),
                torch.cat([self.base[1, start:], loops]))

    def in_degree(self) -> Tensor:
        """In-degree with the self-loops, as float32 (GCN's normalisation)."""
        deg = torch.bincount(self.base[1], minlength=self.num_nodes)
        return deg.add_(1).to(torch.float32)


# ------------------------------------------------------------------------- runner
class PackedRunner:
    r"""Inference of a :class:`~sgquant.models.GCN`, :class:`~sgquant.models.AGNN` or
    :class:`~sgquant.models.GAT` with packed features, rematched in chunks.

    Args:
        model: the trained model (its weights are used as they are; dropout is off).
        assignment: bits of every feature (one entry per layer of ``model``).
        buckets: the graph's :class:`~sgquant.data.DegreeBuckets`; required when the
            assignment has several buckets per layer, checked against the graph.
        options: rounding and range (:class:`~sgquant.models.QuantOptions`, default the
            paper's floor over min/max); use the fake-quant model's options to compare.
        chunk_size: node rows rematched at a time (>= 1).
        edge_chunk_size: edge rows per chunk (default ``chunk_size``).
        keep_features: keep every :class:`PackedFeature` in the result (for checks);
            by default each one is freed once consumed.
    """

    def __init__(self, model: QuantGNN, assignment: Union[BitAssignment, dict, str], *,
                 buckets: Optional[DegreeBuckets] = None,
                 options: Optional[QuantOptions] = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE,
                 edge_chunk_size: Optional[int] = None,
                 keep_features: bool = False) -> None:
        if not isinstance(model, (GCN, AGNN, GAT)):
            raise ValueError(f"PackedRunner supports sgquant.models GCN, AGNN and GAT, got "
                             f"{type(model).__name__}")
        self.model = model
        self.assignment = as_assignment(assignment)
        self.assignment.check_shape(model.num_layers)
        if self.assignment.num_buckets > 1:
            if buckets is None:
                raise ValueError(
                    f"the assignment has {self.assignment.num_buckets} degree buckets per "
                    "layer: pass the graph's DegreeBuckets (buckets=...)")
            if buckets.num_buckets != self.assignment.num_buckets:
                raise ValueError(
                    f"the assignment has {self.assignment.num_buckets} degree buckets per "
                    f"layer but the DegreeBuckets have {buckets.num_buckets}")
        if buckets is not None and not isinstance(buckets, DegreeBuckets):
            raise ValueError(f"buckets must be DegreeBuckets or None, got {type(buckets).__name__}")
        if options is not None and not isinstance(options, QuantOptions):
            raise ValueError(f"options must be QuantOptions or None, got {type(options).__name__}")
        self.buckets = buckets
        self.options = options or QuantOptions()
        self.chunk_size = check_chunk_size(chunk_size)
        self.edge_chunk_size = (self.chunk_size if edge_chunk_size is None
                                else check_chunk_size(edge_chunk_size, "edge_chunk_size"))
        self.keep_features = bool(keep_features)
        if isinstance(model, GAT):
            for conv in model.convs:
                if conv.lin is None or conv.lin_edge is not None or conv.res is not None:
                    raise ValueError("PackedRunner supports GATConv layers with one shared "
                                     "linear map, no edge features and no residual")
        self._records: list[FeatureRecord] = []
        self._kept: dict[str, PackedFeature] = {}
        # graph-dependent group layout, set by _bind
        self._group_of: Optional[Tensor] = None
        self._group_index: list[Tensor] = []

    # ------------------------------------------------------------ graph binding
    def _bind(self, edge_index: Tensor, num_nodes: int) -> None:
        if self.buckets is not None:
            self.buckets.check_graph(edge_index, num_nodes)
        self._bind_groups(self.buckets.bucket if self.buckets is not None else None, num_nodes)

    def _bind_groups(self, bucket: Optional[Tensor], num_nodes: int) -> None:
        if self.assignment.num_buckets > 1:
            if bucket is None or bucket.numel() != num_nodes:
                raise ValueError("degree bucket ids do not match the number of nodes")
            self._group_of = bucket
            self._group_index = [(bucket == j).nonzero().view(-1)
                                 for j in range(self.assignment.num_buckets)]
        else:
            self._group_of, self._group_index = None, []

    # ----------------------------------------------------------------- packing
    def _record(self, feature: PackedFeature, layer: int, component: str) -> None:
        for j, g in enumerate(feature.groups):
            elements = g.num_rows * math.prod(feature.shape[1:])
            if elements == 0:
                continue
            bucket = None if component == "att" else j
            self._records.append(FeatureRecord(layer, component, bucket, g.bits, elements,
                                               g.nbytes))
        if self.keep_features:
            self._kept[feature.name] = feature

    def _pack_nodes(self, h: Tensor, layer: int) -> PackedFeature:
        """Quantize ``h`` (``N x d``) as the input of ``layer`` (0-based), by bucket."""
        row = self.assignment.emb_bits[layer]
        name = f"emb_L{layer + 1}"
        n, rest = h.size(0), tuple(h.shape[1:])
        if not self._group_index:
            if row[0] == FP32_BITS:
                group = _Group(None, FP32_BITS, values=h.to(torch.float32))
            else:
                group = _pack_group(lambda s, e: h[s:e], n, rest, row[0], self.options,
                                    self.chunk_size)
            feature = PackedFeature(name, h.shape, [group])
        else:
            groups = []
            for idx, bits in zip(self._group_index, row):
                src = (lambda s, e, idx=idx: h.index_select(0, idx[s:e]))
                groups.append(_pack_group(src, int(idx.numel()), rest, bits, self.options,
                                          self.chunk_size, index=idx))
            feature = PackedFeature(name, h.shape, groups, group_of=self._group_of)
        self._record(feature, layer + 1, "emb")
        return feature

    def _pack_edges(self, source: Callable[[int, int], Tensor], num_edges: int,
                    row_shape: tuple[int, ...], layer: int) -> PackedFeature:
        bits = self.assignment.att_bits[layer]
        group = _pack_group(source, num_edges, row_shape, bits, self.options,
                            self.edge_chunk_size)
        feature = PackedFeature(f"att_L{layer + 1}", (num_edges, *row_shape), [group])
        self._record(feature, layer + 1, "att")
        return feature

    def pack_input(self, x: Tensor, edge_index: Optional[Tensor] = None) -> PackedFeature:
        """Quantize and pack the input features (the ``emb`` of layer 1).

        Done once, before inference (features stored packed); ``edge_index`` lets the
        degree buckets be checked against the graph.
        """
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError(f"x must be a [num_nodes, num_features] tensor, got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        if edge_index is not None:
            self._bind(edge_index, x.size(0))
        elif self.assignment.num_buckets > 1:
            if self.buckets.num_nodes != x.size(0):
                raise ValueError(f"degree buckets were computed on a graph with "
                                 f"{self.buckets.num_nodes} nodes, got x with {x.size(0)} rows")
            self._bind_groups(self.buckets.bucket, x.size(0))
        self._records, self._kept = [], {}
        with torch.no_grad():
            feature = self._pack_nodes(x, 0)
        self._input_records = list(self._records)
        return feature

    # --------------------------------------------------------------- inference
    def run(self, x: Union[Tensor, PackedFeature], edge_index: Tensor) -> PackedResult:
        """Inference on the graph ``edge_index`` from features ``x`` (float32, packed
        here) or a :class:`PackedFeature` from :meth:`pack_input`."""
        num_nodes = x.shape[0]
        if isinstance(x, PackedFeature):
            self._bind(edge_index, num_nodes)
            self._records = list(getattr(self, "_input_records", []))
            self._kept = {x.name: x} if self.keep_features else {}
            h = x
        else:
            h = self.pack_input(x, edge_index)
        return self._run(h, edge_index, num_nodes)

    def _run(self, h, edge_index: Tensor, num_nodes: int,
             edge_weight_fn: Optional[Callable[[Tensor, Tensor], Tensor]] = None) -> PackedResult:
        start = time.perf_counter()
        with torch.no_grad():
            if isinstance(self.model, GCN):
                logits = self._gcn(h, edge_index, num_nodes, edge_weight_fn)
            elif isinstance(self.model, GAT):
                logits = self._gat(h, edge_index, num_nodes)
            else:
                logits = self._agnn(h, edge_index, num_nodes)
        result = PackedResult(logits, list(self._records), time.perf_counter() - start,
                              dict(self._kept))
        self._records, self._kept = [], {}
        return result

    # ------------------------------------------------------------ building blocks
    def _transform(self, h, lin: Callable[[Tensor], Tensor], out_dim: int) -> Tensor:
        r""":math:`h' W` formed chunk by chunk from the packed rows of ``h``."""
        n = h.shape[0]
        out = torch.empty(n, out_dim)
        if self.chunk_size >= _MIN_MATMUL_ROWS:
            for s, e in _spans(n, self.chunk_size):
                out[s:e] = lin(h.rows(s, e))
            return out
        # chunks below 4 rows are rematched one by one into a 4-row staging block:
        # BLAS multiplies 1-3 rows with another kernel whose sums differ in the last bit
        stage = torch.empty((_MIN_MATMUL_ROWS, *h.shape[1:]))
        for s0, e0 in _spans(n, _MIN_MATMUL_ROWS):
            for s, e in _spans(e0 - s0, self.chunk_size):
                stage[s:e] = h.rows(s0 + s, s0 + e)
            out[s0:e0] = lin(stage[:e0 - s0])
        return out

    def _softmax_stats(self, logit: Callable[[Tensor, Tensor], Tensor], edges: _Edges,
                       heads_shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        r"""Per target node :math:`\max_u e_{u,v}` and :math:`\sum_u \exp(e_{u,v} - \max)`
        over edge chunks, as :func:`torch_geometric.utils.softmax` computes them."""
        n = edges.num_nodes
        m = torch.full((n, *heads_shape), float("-inf"))
        for s, e in _spans(edges.num_edges, self.edge_chunk_size):
            src, dst = edges.pair(s, e)
            val = logit(src, dst)
            m.scatter_reduce_(0, _bcast(dst, val), val, reduce="amax", include_self=True)
        m.masked_fill_(torch.isinf(m), 0.0)
        total = torch.zeros((n, *heads_shape))
        for s, e in _spans(edges.num_edges, self.edge_chunk_size):
            src, dst = edges.pair(s, e)
            ex = (logit(src, dst) - m.index_select(0, dst)).exp()
            total.scatter_add_(0, _bcast(dst, ex), ex)
        return m, total.add_(1e-16)

    def _edge_source(self, fn: Callable[[Tensor, Tensor], Tensor],
                     edges: _Edges) -> Callable[[int, int], Tensor]:
        def source(s: int, e: int) -> Tensor:
            return fn(*edges.pair(s, e))
        return source

    def _aggregate(self, att: PackedFeature, message: Callable[[Tensor, Tensor], Tensor],
                   edges: _Edges, out: Tensor) -> Tensor:
        r""":math:`\text{out}_v \mathrel{+}= \sum_{(u,v)} \alpha'_{u,v} \, \text{message}_u`,
        one edge chunk at a time (the coefficients are rematched per chunk)."""
        for s, e in _spans(edges.num_edges, self.edge_chunk_size):
            src, _dst = edges.pair(s, e)
            msg = message(src, att.rows(s, e))
            out.scatter_add_(0, _bcast(_dst, msg), msg)
        return out

    # ----------------------------------------------------------------- models
    def _gcn(self, h, edge_index: Tensor, num_nodes: int,
             edge_weight_fn: Optional[Callable[[Tensor, Tensor], Tensor]]) -> Tensor:
        model: GCN = self.model
        edges = _Edges(edge_index, num_nodes)
        if edge_weight_fn is None:  # gcn_norm: 1/sqrt(deg_u deg_v), self loops included
            dis = edges.in_degree().pow_(-0.5)
            dis.masked_fill_(dis == float("inf"), 0.0)

            def edge_weight_fn(src: Tensor, dst: Tensor) -> Tensor:
                return dis.index_select(0, src) * dis.index_select(0, dst)
        last = len(model.convs) - 1
        for k, conv in enumerate(model.convs):
            xw = self._transform(h, conv.lin, conv.out_channels)
            h = None
            att = self._pack_edges(self._edge_source(edge_weight_fn, edges), edges.num_edges,
                                   (), k)
            out = self._aggregate(
                att, lambda src, a: a.view(-1, 1) * xw.index_select(0, src), edges,
                torch.zeros(num_nodes, conv.out_channels))
            del xw, att
            if conv.bias is not None:
                out = out + conv.bias
            if k < last:
                h = self._pack_nodes(F.relu(out), k + 1)
                del out
        return out

    def _gat(self, h, edge_index: Tensor, num_nodes: int) -> Tensor:
        model: GAT = self.model
        edges = _Edges(edge_index, num_nodes)
        last = len(model.convs) - 1
        for k, conv in enumerate(model.convs):
            H, C = conv.heads, conv.out_channels
            xw = self._transform(h, conv.lin, H * C).view(-1, H, C)
            h = None
            a_src = (xw * conv.att_src).sum(dim=-1)
            a_dst = (xw * conv.att_dst).sum(dim=-1)

            def logit(src: Tensor, dst: Tensor) -> Tensor:
                val = a_src.index_select(0, src) + a_dst.index_select(0, dst)
                return F.leaky_relu(val, conv.negative_slope)

            mx, total = self._softmax_stats(logit, edges, (H,))

            def alpha(src: Tensor, dst: Tensor) -> Tensor:
                ex = (logit(src, dst) - mx.index_select(0, dst)).exp()
                return ex / total.index_select(0, dst)

            att = self._pack_edges(self._edge_source(alpha, edges), edges.num_edges, (H,), k)
            del mx, total
            out = self._aggregate(
                att, lambda src, a: a.unsqueeze(-1) * xw.index_select(0, src), edges,
                torch.zeros(num_nodes, H, C))
            del xw, att, a_src, a_dst
            out = out.view(-1, H * C) if conv.concat else out.mean(dim=1)
            if conv.bias is not None:
                out = out + conv.bias
            if k < last:
                h = self._pack_nodes(F.elu(out), k + 1)
                del out
        return out

    def _agnn(self, h, edge_index: Tensor, num_nodes: int) -> Tensor:
        model: AGNN = self.model
        out = F.relu(self._transform(h, model.lin1, model.lin1.out_features))
        h = self._pack_nodes(out, 1)
        del out
        edges = _Edges(edge_index, num_nodes)
        for i, prop in enumerate(model.props):
            layer = i + 1

            def logit(src: Tensor, dst: Tensor, h=h, prop=prop) -> Tensor:
                ni = F.normalize(h.gather(dst), p=2.0, dim=-1)
                nj = F.normalize(h.gather(src), p=2.0, dim=-1)
                return prop.beta * (ni * nj).sum(dim=-1)

            mx, total = self._softmax_stats(logit, edges, ())

            def alpha(src: Tensor, dst: Tensor, logit=logit, mx=mx, total=total) -> Tensor:
                ex = (logit(src, dst) - mx.index_select(0, dst)).exp()
                return (ex / total.index_select(0, dst)).view(-1, 1)

            att = self._pack_edges(self._edge_source(alpha, edges), edges.num_edges, (1,),
                                   layer)
            del mx, total
            out = self._aggregate(
                att, lambda src, a, h=h: h.gather(src) * a.view(-1, 1), edges,
                torch.zeros(num_nodes, h.shape[1]))
            del att
            h = self._pack_nodes(out, layer + 1)
            del out
        return self._transform(h, model.lin2, model.lin2.out_features)


def _bcast(index: Tensor, like: Tensor) -> Tensor:
    """``index`` viewed and expanded to the shape of ``like`` along dim 0 (as PyG's scatter)."""
    return index.view((-1,) + (1,) * (like.dim() - 1)).expand_as(like)


# ---------------------------------------------------------------- convenience
def packed_forward(model: QuantGNN, data: Data, assignment: Union[BitAssignment, dict, str],
                   buckets: Optional[DegreeBuckets] = None, *,
                   chunk_size: int = DEFAULT_CHUNK_SIZE,
                   edge_chunk_size: Optional[int] = None,
                   options: Optional[QuantOptions] = None) -> Tensor:
    """Logits of ``model`` on ``data`` with packed features (see :class:`PackedRunner`)."""
    runner = PackedRunner(model, assignment, buckets=buckets, options=options,
                          chunk_size=chunk_size, edge_chunk_size=edge_chunk_size)
    return runner.run(data.x, data.edge_index).logits


# ------------------------------------------------------------ neighbour sampling
def _pyg_sampler_available() -> bool:
    import torch_geometric.typing as tg
    return bool(getattr(tg, "WITH_PYG_LIB", False) or getattr(tg, "WITH_TORCH_SPARSE", False))


def neighbor_batches(edge_index: Tensor, num_nodes: int, num_neighbors: Sequence[int],
                     batch_size: int, *, input_nodes: Optional[Tensor] = None, seed: int = 0,
                     backend: str = "auto") -> Iterator[tuple[Tensor, Tensor, int]]:
    r"""Mini-batches of sampled subgraphs: yields ``(n_id, edge_index, batch_size)``.

    ``n_id`` are the global ids of the subgraph's nodes, the first ``batch_size`` being
    the seed nodes; ``edge_index`` is local. Hop :math:`i` keeps up to
    ``num_neighbors[i]`` incoming edges of each frontier node (``-1``: all). With
    ``backend="pyg"`` (or ``"auto"`` when ``pyg-lib`` or ``torch-sparse`` is installed)
    PyG's :class:`~torch_geometric.loader.NeighborLoader` samples; ``"torch"`` is a
    small pure-torch sampler with the same semantics (uniform, without replacement).
    """
    batch_size = check_chunk_size(batch_size, "batch_size")
    hops = [int(k) for k in num_neighbors]
    if not hops or any(k == 0 or k < -1 for k in hops):
        raise ValueError(f"num_neighbors needs one entry per hop, each -1 (all) or >= 1, "
                         f"got {list(num_neighbors)!r}")
    if backend not in ("auto", "pyg", "torch"):
        raise ValueError(f"backend must be 'auto', 'pyg' or 'torch', got {backend!r}")
    seeds = torch.arange(num_nodes) if input_nodes is None else input_nodes.reshape(-1).long()
    use_pyg = backend == "pyg" or (backend == "auto" and _pyg_sampler_available())
    if use_pyg:
        from torch_geometric.loader import NeighborLoader
        data = Data(edge_index=edge_index, num_nodes=num_nodes)
        data.n_id = torch.arange(num_nodes)
        torch.manual_seed(seed)
        loader = NeighborLoader(data, num_neighbors=hops, batch_size=batch_size,
                                input_nodes=seeds, shuffle=False)
        for batch in loader:
            yield batch.n_id, batch.edge_index, int(batch.batch_size)
        return
    gen = torch.Generator().manual_seed(seed)
    order = torch.argsort(edge_index[1], stable=True)
    src_sorted = edge_index[0].index_select(0, order)
    ptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(torch.bincount(edge_index[1], minlength=num_nodes), 0)
    del order
    local = torch.full((num_nodes,), -1, dtype=torch.long)
    for s, e in _spans(seeds.numel(), batch_size):
        batch = seeds[s:e]
        nodes = [batch]
        local[batch] = torch.arange(batch.numel())
        count = batch.numel()
        frontier = batch
        rows, cols = [], []
        for fanout in hops:
            deg = ptr[frontier + 1] - ptr[frontier]
            total = int(deg.sum())
            if total == 0:
                break
            owner = torch.repeat_interleave(torch.arange(frontier.numel()), deg)
            starts = torch.cumsum(deg, 0) - deg
            eid = ptr[frontier].index_select(0, owner) + (torch.arange(total)
                                                          - starts.index_select(0, owner))
            if fanout > 0:
                keys = torch.rand(total, generator=gen)
                perm = torch.argsort(keys)
                perm = perm[torch.argsort(owner[perm], stable=True)]
                rank = torch.arange(total) - starts.index_select(0, owner[perm])
                keep = perm[rank < fanout]
                keep = keep.sort().values
                eid, owner = eid[keep], owner[keep]
            nbr = src_sorted.index_select(0, eid)
            new = torch.unique(nbr[local.index_select(0, nbr) < 0])
            local[new] = torch.arange(count, count + new.numel())
            count += new.numel()
            nodes.append(new)
            rows.append(local.index_select(0, nbr))
            cols.append(local.index_select(0, frontier.index_select(0, owner)))
            frontier = new
            if frontier.numel() == 0:
                break
        n_id = torch.cat(nodes)
        local[n_id] = -1
        sub = (torch.stack([torch.cat(rows), torch.cat(cols)]) if rows
               else torch.empty(2, 0, dtype=torch.long))
        yield n_id, sub, int(batch.numel())


def sampled_packed_forward(model: QuantGNN, data: Data,
                           assignment: Union[BitAssignment, dict, str], *,
                           num_neighbors: Sequence[int], batch_size: int = 1024,
                           buckets: Optional[DegreeBuckets] = None,
                           options: Optional[QuantOptions] = None,
                           chunk_size: int = DEFAULT_CHUNK_SIZE,
                           edge_chunk_size: Optional[int] = None,
                           input_nodes: Optional[Tensor] = None, seed: int = 0,
                           backend: str = "auto",
                           packed_input: Optional[PackedFeature] = None) -> Tensor:
    r"""Packed inference by neighbour-sampled mini-batches, for graphs whose full batch
    does not fit (Reddit). Returns logits of ``input_nodes`` (default all nodes).

    The input features are packed once for the whole graph (groups and codes as in
    full-batch inference) and read through each batch's node ids; hidden features are
    quantized per batch (their min/max are the batch's), by the full graph's degree
    buckets. GCN uses the full graph's normalisation :math:`1/\sqrt{\hat d_u \hat d_v}`.
    With all neighbours (``num_neighbors=[-1] * layers``) and float32 hidden
    features, the logits equal full-batch inference. ``packed_input`` (from
    :meth:`PackedRunner.pack_input` with the same assignment) lets ``data.x`` be
    ``None``: the features are then held packed only.
    """
    runner = PackedRunner(model, assignment, buckets=buckets, options=options,
                          chunk_size=chunk_size, edge_chunk_size=edge_chunk_size)
    n = data.num_nodes
    if packed_input is None:
        x_packed = runner.pack_input(data.x, data.edge_index)
    else:
        if packed_input.shape[0] != n:
            raise ValueError(f"packed_input has {packed_input.shape[0]} rows, the graph "
                             f"{n} nodes")
        if buckets is not None:
            buckets.check_graph(data.edge_index, n)
        x_packed = packed_input
    full_bucket = buckets.bucket if buckets is not None else None
    weight_fn = None
    if isinstance(model, GCN):
        dis = _Edges(data.edge_index, n).in_degree().pow_(-0.5)
        dis.masked_fill_(dis == float("inf"), 0.0)
    outputs = []
    for n_id, sub, size in neighbor_batches(data.edge_index, n, num_neighbors, batch_size,
                                            input_nodes=input_nodes, seed=seed,
                                            backend=backend):
        if isinstance(model, GCN):
            d = dis.index_select(0, n_id)
            weight_fn = (lambda s, t, d=d: d.index_select(0, s) * d.index_select(0, t))
        runner._bind_groups(None if full_bucket is None else full_bucket.index_select(0, n_id),
                            n_id.numel())
        runner._records = []
        result = runner._run(_RowSubset(x_packed, n_id), sub, n_id.numel(), weight_fn)
        outputs.append(result.logits[:size])
    return torch.cat(outputs) if outputs else torch.empty(0, 0)
