r"""Quantized features held as packed codes: groups, features, and how they are filled.

A feature (a layer input :math:`N \times d`, or an edge tensor :math:`E \times heads`) is
stored as one or more groups (one per degree bucket for a topology-aware ``emb``), each a
:class:`~sgquant.bitpack.PackedTensor` of :math:`\lceil n b / 8 \rceil` bytes plus its
float32 ``min`` and ``scale``, a :class:`~sgquant.coding.CodedTensor` (the same codes
coded losslessly in blocks, :mod:`sgquant.coding`), or float32 values at 32 bits. Rows
are *rematched* (:math:`x' = s q + \min`) on demand by :meth:`PackedFeature.rows` /
:meth:`PackedFeature.gather`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch
from torch import Tensor

from ..bitwidth import FP32_BITS
from ..coding import CodedTensor, encode_group
from ..bitpack import PackedTensor, pack_bits
from ..quantize import QuantOptions, codes

__all__ = ["spans", "FeatureGroup", "PackedFeature", "RowSubset", "PACK_PIECE_ELEMENTS",
           "pack_step", "pack_group"]


def spans(n: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive pieces of ``size`` covering ``range(n)``."""
    for s in range(0, n, size):
        yield s, min(s + size, n)


@dataclass(eq=False)
class FeatureGroup:
    """Rows ``index`` (sorted; ``None``: all rows) of a feature: bit-packed, coded or
    float32 (exactly one of ``packed``, ``coded``, ``values``)."""

    index: Optional[Tensor]
    bits: int
    packed: Optional[PackedTensor] = None
    values: Optional[Tensor] = None
    coded: Optional[CodedTensor] = None

    @property
    def store(self):
        """What holds the rows: the float32 values, the coded or the packed tensor."""
        if self.values is not None:
            return self.values
        return self.coded if self.coded is not None else self.packed

    @property
    def codec(self) -> str:
        """``fp32``, ``packed``, or the block codec of a coded group."""
        if self.values is not None:
            return "fp32"
        return self.coded.codec if self.coded is not None else "packed"

    @property
    def device(self) -> torch.device:
        if self.values is not None:
            return self.values.device
        return self.coded.device if self.coded is not None else self.packed.data.device

    @property
    def num_rows(self) -> int:
        return int(self.store.shape[0])

    @property
    def nbytes(self) -> int:
        if self.values is not None:
            return int(self.values.numel()) * 4
        store = self.store
        return store.nbytes if store is not None else 0

    def rows(self, start: int, stop: int) -> Tensor:
        if self.values is not None:
            return self.values[start:stop]
        return self.store.rows(start, stop)

    def gather(self, pos: Tensor) -> Tensor:
        if self.values is not None:
            return self.values.index_select(0, pos)
        return self.store.gather(pos)


class PackedFeature:
    r"""One quantized feature held as packed codes: the rows of an ``N x d`` layer input
    (one group, or one group per degree bucket) or of an ``E x heads`` edge tensor.

    :meth:`rows` and :meth:`gather` rematch rows on demand; :attr:`nbytes` is the storage
    actually held (``ceil(n b / 8) + 8`` per packed group, ``4 n`` at 32 bits).
    """

    def __init__(self, name: str, shape: tuple[int, ...], groups: list[FeatureGroup],
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

    @property
    def device(self) -> torch.device:
        return self.groups[0].device

    def _single(self) -> bool:
        return len(self.groups) == 1 and self.groups[0].index is None

    def rows(self, start: int, stop: int) -> Tensor:
        """Rematched rows ``[start, stop)`` (float32)."""
        if self._single():
            return self.groups[0].rows(start, stop)
        out = torch.empty((stop - start, *self.shape[1:]), dtype=torch.float32,
                          device=self.device)
        bounds = torch.tensor([start, stop], device=self.device)
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
        out = torch.empty((ids.numel(), *self.shape[1:]), dtype=torch.float32,
                          device=self.device)
        owner = self.group_of.index_select(0, ids)
        for j, g in enumerate(self.groups):
            if g.index is None or g.index.numel() == 0:
                continue
            mask = owner == j
            if bool(mask.any()):
                out[mask] = g.gather(torch.searchsorted(g.index, ids[mask]))
        return out

    def dequantize(self) -> Tensor:
        """The whole rematched tensor (a full float32 copy: for checks, not inference)."""
        if self.shape[0]:
            return self.rows(0, self.shape[0])
        return torch.empty(self.shape, device=self.device)

    def __repr__(self) -> str:
        return (f"PackedFeature({self.name}, shape={self.shape}, bits={self.bits}, "
                f"nbytes={self.nbytes})")


class RowSubset:
    """Rows ``n_id`` of a :class:`PackedFeature`, read through it (no copy): the input
    features of a sampled subgraph."""

    def __init__(self, feature: PackedFeature, n_id: Tensor) -> None:
        self.feature, self.n_id = feature, n_id
        self.shape = (int(n_id.numel()), *feature.shape[1:])

    def rows(self, start: int, stop: int) -> Tensor:
        return self.feature.gather(self.n_id[start:stop])

    def gather(self, ids: Tensor) -> Tensor:
        return self.feature.gather(self.n_id.index_select(0, ids))


#: Elements quantized and packed per piece, at least (see :func:`pack_step`).
PACK_PIECE_ELEMENTS: int = 1 << 14


def pack_step(chunk: int, per_row: int) -> int:
    r"""Rows quantized and packed at a time by :func:`pack_group`: a multiple of 8 (each
    piece packs to whole bytes at any width), at least ``chunk`` rows and at least
    :data:`PACK_PIECE_ELEMENTS` elements, so that narrow rows (hidden features, edge
    coefficients) are not packed a few hundred values at a time. Codes are elementwise
    for a given range, so the piece size changes no code; the float32 temporaries of a
    piece stay about :math:`\max(\text{chunk} \cdot r, 2^{14})` elements."""
    rows = max(chunk, PACK_PIECE_ELEMENTS // max(per_row, 1))
    return -(-rows // 8) * 8


def pack_group(source: Callable[[int, int], Tensor], n: int, row_shape: tuple[int, ...],
               bits: int, options: QuantOptions, chunk: int, index: Optional[Tensor] = None,
               device: Optional[torch.device] = None, codec: str = "packed",
               name: str = "group") -> FeatureGroup:
    r"""Quantize the ``n`` rows produced by ``source(s, e)`` as one group and pack them
    (then code them with ``codec``, :func:`sgquant.coding.encode_group`; ``name``
    labels the group in error messages).

    The range is the options' range rule's (``options.range_rule.observe_pieces``,
    :mod:`sgquant.quantize.ranges`): min/max fed chunk by chunk (exact in any order), a
    clipped range or a rule's choice on the whole group once. Codes
    (:func:`~sgquant.quantize.codes`, the same arithmetic as fake quantization) are
    computed chunk by chunk, chunks of a multiple of 8 rows so that each packs to whole
    bytes, and written into one byte stream.
    """
    shape = (n, *row_shape)
    rule = options.single().range_rule  # options with per-kind overrides are refused
    if bits == FP32_BITS:  # kept as float32, filled chunk by chunk
        values = torch.empty(shape, device=device)
        for s, e in spans(n, max(chunk, 1)):
            values[s:e] = source(s, e)
        return FeatureGroup(index, bits, values=values)
    if n == 0 or math.prod(row_shape) == 0:
        empty = PackedTensor(torch.empty(0, dtype=torch.uint8, device=device), 0.0, 0.0, bits,
                             shape, options.rounding)
        return FeatureGroup(index, bits, packed=empty)
    per_row = math.prod(row_shape)
    step = pack_step(chunk, per_row)
    mn, mx = rule.observe_pieces(source, n, step, bits, options.rounding)
    data = torch.empty((n * per_row * bits + 7) // 8, dtype=torch.uint8, device=device)
    scale = None
    for s, e in spans(n, step):
        q, scale = codes(source(s, e), mn, mx, bits, options.rounding)
        piece = pack_bits(q.to(torch.int32), bits)
        b0 = s * per_row * bits // 8
        data[b0:b0 + piece.numel()] = piece
    packed = PackedTensor(data, float(mn), float(scale), bits, shape, options.rounding)
    store = encode_group(packed, codec, name=name)
    if isinstance(store, CodedTensor):
        return FeatureGroup(index, bits, coded=store)
    return FeatureGroup(index, bits, packed=store)
