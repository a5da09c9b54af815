"""Packed inference: quantized features held only as bit-packed codes, rematched in
chunks (:mod:`.runner`), stored as :mod:`.storage` describes, optionally on
neighbour-sampled subgraphs (:mod:`.sampling`). Each model's chunked kernel lives in its
own file under :mod:`sgquant.models`."""
from __future__ import annotations

from typing import Optional, Union

from torch import Tensor
from torch_geometric.data import Data

from ..assignment import BitAssignment
from ..degree import DegreeBuckets
from ..models.base import QuantGNN
from ..bitpack import PackedTensor
from ..quantize import QuantOptions
from .runner import (DEFAULT_CHUNK_SIZE, Edges, FeatureRecord, PackedResult, PackedRunner,
                     check_chunk_size)
from .sampling import neighbor_batches, pyg_sampler_available, sampled_packed_forward
from .storage import FeatureGroup, PackedFeature, RowSubset, pack_group

__all__ = ["DEFAULT_CHUNK_SIZE", "Edges", "FeatureGroup", "FeatureRecord", "PackedFeature",
           "PackedResult", "PackedRunner", "RowSubset", "check_chunk_size",
           "dequantize_packed_rows", "gather_packed_rows", "neighbor_batches", "pack_group",
           "packed_forward", "pyg_sampler_available", "sampled_packed_forward"]


def packed_forward(model: QuantGNN, data: Data, assignment: Union[BitAssignment, dict, str],
                   buckets: Optional[DegreeBuckets] = None, *,
                   chunk_size: int = DEFAULT_CHUNK_SIZE,
                   edge_chunk_size: Optional[int] = None,
                   options: Optional[QuantOptions] = None) -> Tensor:
    """Logits of ``model`` on ``data`` with packed features (see :class:`PackedRunner`)."""
    runner = PackedRunner(model, assignment, buckets=buckets, options=options,
                          chunk_size=chunk_size, edge_chunk_size=edge_chunk_size)
    return runner.run(data.x, data.edge_index).logits


def dequantize_packed_rows(packed: PackedTensor, start: int, stop: int) -> Tensor:
    """Rows ``[start, stop)`` of ``packed`` (:meth:`PackedTensor.rows`; the name before 0.2)."""
    return packed.rows(start, stop)


def gather_packed_rows(packed: PackedTensor, rows: Tensor) -> Tensor:
    """Rows ``rows`` of ``packed`` (:meth:`PackedTensor.gather`; the name before 0.2)."""
    return packed.gather(rows)
