r"""GCN (Kipf & Welling) with SGQuant's quantization points, and its packed kernel.

.. math::
    H^k = \sigma\big(\hat D^{-1/2} \hat A \hat D^{-1/2}\, H'^{k-1} W^k\big)

where :math:`\hat A` adds one self-loop per node. Quantization points of layer :math:`k`:
``emb_L{k}`` (:math:`H^{k-1}`, by degree bucket) and ``att_L{k}`` (the normalised
coefficients :math:`1/\sqrt{\hat d_u \hat d_v}`). Dropout on each layer's input.
"""
from __future__ import annotations

import warnings
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import GCNConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from .base import LayerSpec, QuantGNN, check_dropout, use_row_blocks
from .entry import ModelEntry

__all__ = ["GCN", "SparseProduct", "ENTRY"]


class GCN(QuantGNN):
    r"""Kipf & Welling's GCN on PyG's :class:`~torch_geometric.nn.GCNConv` (normalisation
    computed once per graph and cached; :meth:`reset_cache` forgets it).

    Args:
        in_dim, num_classes: input width and number of classes.
        hidden: hidden width (paper: 32). num_layers: layers (paper: 2).
        dropout: dropout probability of each layer's input (PyG's example: 0.5).
    """

    name = "gcn"

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 32,
                 num_layers: int = 2, dropout: float = 0.5) -> None:
        dims = [in_dim] + [hidden] * (num_layers - 1) + [num_classes]
        super().__init__([LayerSpec(d, 1, True) for d in dims[:-1]])
        self.convs = torch.nn.ModuleList(
            GCNConv(dims[i], dims[i + 1], normalize=False) for i in range(num_layers))
        for conv in self.convs:
            use_row_blocks(conv.lin)
        self.dims = dims
        self.dropout = check_dropout(dropout)
        self._norm_cache: tuple = ()
        self._adjacency = {}

    def reset_cache(self) -> None:
        super().reset_cache()
        self._norm_cache = ()
        self._adjacency: dict[int, tuple[Tensor, Tensor]] = {}

    def normalized_edges(self, edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
        """Edges with self-loops and their symmetric normalisation, cached for the last
        graph seen (keyed by the edge tensor itself, its version and the node count)."""
        cache = self._norm_cache
        if not (cache and cache[0] is edge_index and cache[1] == (edge_index._version, num_nodes)):
            ei, w = gcn_norm(edge_index, None, num_nodes, add_self_loops=True)
            self._norm_cache = (edge_index, (edge_index._version, num_nodes), ei, w)
        return self._norm_cache[2], self._norm_cache[3]

    def adjacency(self, k: int, ei: Tensor, w: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
        r"""Layer ``k``'s quantized coefficients as sparse CSR matrices :math:`\hat A^\top`
        (rows: targets) and its transpose, for training: the coefficients do not depend
        on the weights, so both are built once per assignment (:meth:`reset_cache`
        forgets them) and each step is one sparse-dense product forward and one backward
        (:class:`SparseProduct`) instead of per-edge messages."""
        cached = self._adjacency.get(k)
        if cached is not None and cached[0] is ei:
            return cached[1], cached[2]
        with warnings.catch_warnings():  # torch: "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            adj, adj_t = (torch.sparse_coo_tensor(torch.stack(pair), w.detach(),
                                                  (num_nodes, num_nodes)).coalesce().to_sparse_csr()
                          for pair in ((ei[1], ei[0]), (ei[0], ei[1])))
        self._adjacency[k] = (ei, adj, adj_t)
        return adj, adj_t

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """Training aggregates with a sparse product (fast); evaluation with PyG's
        per-edge messages in edge order, the sums packed inference reproduces exactly."""
        self._check_graph(x, edge_index)
        n = x.size(0)
        ei, w = self.normalized_edges(edge_index, n)
        h = self.quant_input(x)
        for k, conv in enumerate(self.convs):
            wq = self.quant_att(w, k)
            if self.training:
                xw = conv.lin(self.layer_input(h, k))
                h = SparseProduct.apply(xw, *self.adjacency(k, ei, wq, n))
                if conv.bias is not None:
                    h = h + conv.bias
            else:
                h = conv(self.layer_input(h, k), ei, wq)
            if k < len(self.convs) - 1:
                h = F.relu(h)
        return h

    # ----------------------------------------------------------------- packed
    def node_state(self, runner, edge_index: Tensor, num_nodes: int) -> Optional[Tensor]:
        r""":math:`\hat d^{-1/2}` of every node of the whole graph (self-loops included)."""
        return _inv_sqrt_degree(runner.edges(edge_index, num_nodes).in_degree())

    def packed_forward(self, runner, h, edge_index: Tensor, num_nodes: int,
                       node_state: Optional[Tensor] = None) -> Tensor:
        r"""Per layer: :math:`X W` from packed rows, the coefficients
        :math:`\hat d_u^{-1/2} \hat d_v^{-1/2}` computed, quantized and packed chunk by
        chunk of edges, then :math:`\sum_u \alpha'_{u,v} (X W)_u` scatter-added."""
        edges = runner.edges(edge_index, num_nodes)
        dis = _inv_sqrt_degree(edges.in_degree()) if node_state is None else node_state

        def weight(src: Tensor, dst: Tensor) -> Tensor:
            return dis.index_select(0, src) * dis.index_select(0, dst)

        last = len(self.convs) - 1
        out = None
        for k, conv in enumerate(self.convs):
            xw = runner.transform(h, conv.lin, conv.out_channels)
            h = None
            att = runner.pack_edges(runner.edge_source(weight, edges), edges.num_edges, (), k)
            out = runner.aggregate(att, lambda src, a: a.view(-1, 1) * xw.index_select(0, src),
                                   edges, runner.zeros(num_nodes, conv.out_channels))
            del xw, att
            if conv.bias is not None:
                out = out + conv.bias
            if k < last:
                h = runner.pack_nodes(F.relu(out), k + 1)
                out = None
        return out


class SparseProduct(torch.autograd.Function):
    r""":math:`Y = A X` for a constant sparse :math:`A` whose transpose is given:
    the backward pass is :math:`\partial L / \partial X = A^\top \partial L / \partial Y`
    with the cached :math:`A^\top` (torch would transpose and sort :math:`A` on every
    step: half of a GCN epoch on Amazon-Computers)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, adj: Tensor, adj_t: Tensor) -> Tensor:
        ctx.adj_t = adj_t
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Optional[Tensor], None, None]:
        return torch.sparse.mm(ctx.adj_t, grad), None, None


def _inv_sqrt_degree(deg: Tensor) -> Tensor:
    dis = deg.pow_(-0.5)
    return dis.masked_fill_(dis == float("inf"), 0.0)


#: Table I's size; Adam as in PyG's GCN example.
ENTRY = ModelEntry("gcn", GCN, "GCN", hidden=32, num_layers=2, lr=0.01, weight_decay=5e-4,
                   in_paper=True)
