r"""Packed inference by neighbour-sampled mini-batches, for graphs whose full batch does
not fit (Reddit): :func:`neighbor_batches` draws the subgraphs (PyG's ``NeighborLoader``
when ``pyg-lib``/``torch-sparse`` is installed, else a small pure-torch sampler with the
same semantics) and :func:`sampled_packed_forward` runs the packed kernel on each.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence, Union

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..assignment import BitAssignment
from ..degree import DegreeBuckets
from ..models.base import QuantGNN
from ..quantize import QuantOptions
from .runner import DEFAULT_CHUNK_SIZE, PackedRunner, check_chunk_size
from .storage import PackedFeature, RowSubset, spans

__all__ = ["pyg_sampler_available", "neighbor_batches", "sampled_packed_forward"]


def pyg_sampler_available() -> bool:
    """Whether PyG's ``NeighborLoader`` has a sampling backend (pyg-lib or torch-sparse)."""
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
    use_pyg = backend == "pyg" or (backend == "auto" and pyg_sampler_available())
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
    for s, e in spans(seeds.numel(), batch_size):
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
    ``None``: the features are then held packed only. A model's per-node state from the
    whole graph (:meth:`~sgquant.models.QuantGNN.node_state`) is used on each subgraph.
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
    state = model.node_state(runner, data.edge_index, n)
    outputs = []
    for n_id, sub, size in neighbor_batches(data.edge_index, n, num_neighbors, batch_size,
                                            input_nodes=input_nodes, seed=seed,
                                            backend=backend):
        runner.bind(sub, n_id.numel(),
                    None if full_bucket is None else full_bucket.index_select(0, n_id))
        result = runner.run_bound(RowSubset(x_packed, n_id), sub, n_id.numel(),
                                  None if state is None else state.index_select(0, n_id))
        outputs.append(result.logits[:size])
    return torch.cat(outputs) if outputs else torch.empty(0, 0)
