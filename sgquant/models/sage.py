r"""GraphSAGE (Hamilton et al.) with the mean aggregator, SGQuant's quantization points,
and its packed kernel.

.. math::
    \alpha_{u,v} = 1 / d_v, \qquad
    h^k_v = \sum_{u \in N(v)} \alpha'_{u,v}\, W_l h'^{k-1}_u + W_r h'^{k-1}_v + b

where :math:`N(v)` are the sources of :math:`v`'s incoming edges as the graph gives them
and :math:`d_v = |N(v)|`: PyG's ``SAGEConv`` with ``aggr="mean"``, its :math:`W_l`
applied before the mean (a linear map commutes with it), so every float intermediate has
the layer's output width, as in GCN. Quantization points of layer :math:`k`:
``emb_L{k}`` (:math:`h^{k-1}`, by degree bucket) and ``att_L{k}`` (the mean's
coefficients :math:`1/d_v`, one per edge, as GCN's normalised weights). ReLU between
layers, dropout on each layer's input.

Not in the paper; our size and optimiser, those of PyG's citation examples: hidden 64,
2 layers, dropout 0.5, Adam at lr 0.01 with weight decay 5e-4.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import SAGEConv

from .base import LayerSpec, QuantGNN, check_dropout, use_row_blocks
from .entry import ModelEntry

__all__ = ["inverse_in_degree", "QuantSAGEConv", "SAGE", "ENTRY"]


def inverse_in_degree(edge_index: Tensor, num_nodes: int) -> Tensor:
    r""":math:`1/d_v` of every node over ``edge_index`` as given (1 where :math:`d_v = 0`:
    such a node is no edge's target)."""
    deg = torch.bincount(edge_index[1], minlength=num_nodes).to(torch.float32)
    return deg.clamp_(min=1.0).reciprocal_()


class QuantSAGEConv(SAGEConv):
    r""":class:`~torch_geometric.nn.SAGEConv` whose mean is
    :math:`\sum_u \alpha_{u,v} W_l h_u` over the given (quantized) coefficients
    :math:`\alpha`, then :math:`+\, W_r h_v + b`. Both products evaluate in row blocks."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, aggr="add", bias=False)
        self.bias = torch.nn.Parameter(torch.zeros(out_channels))
        use_row_blocks(self.lin_l)
        use_row_blocks(self.lin_r)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if isinstance(getattr(self, "bias", None), torch.nn.Parameter):
            torch.nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, edge_index: Tensor, alpha: Tensor) -> Tensor:
        # propagate_type: (x: Tensor, alpha: Tensor)
        out = self.propagate(edge_index, x=self.lin_l(x), alpha=alpha)
        return out + self.lin_r(x) + self.bias

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.view(-1, 1) * x_j


class SAGE(QuantGNN):
    """GraphSAGE-mean: ``num_layers`` :class:`QuantSAGEConv` layers.

    Args:
        in_dim, num_classes: input width and number of classes.
        hidden: hidden width (ours: 64). num_layers: layers (ours: 2).
        dropout: dropout probability of each layer's input (0.5).
    """

    name = "sage"

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64,
                 num_layers: int = 2, dropout: float = 0.5) -> None:
        dims = [in_dim] + [hidden] * (num_layers - 1) + [num_classes]
        super().__init__([LayerSpec(d, 1, False) for d in dims[:-1]])
        self.convs = torch.nn.ModuleList(
            QuantSAGEConv(dims[i], dims[i + 1]) for i in range(num_layers))
        self.dropout = check_dropout(dropout)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        self._check_graph(x, edge_index)
        alpha = inverse_in_degree(edge_index, x.size(0)).index_select(0, edge_index[1])
        return self.conv_stack(x, edge_index, F.relu, lambda k: (self.quant_att(alpha, k),))

    def packed_forward(self, runner, h, edge_index: Tensor, num_nodes: int,
                       node_state: Optional[Tensor] = None) -> Tensor:
        r"""Per layer: :math:`h' W_l` and :math:`h' W_r` from packed rows, the
        coefficients :math:`1/d_v` quantized and packed chunk by chunk of edges, then
        :math:`\sum_u \alpha'_{u,v} (h' W_l)_u` scatter-added. On a sampled subgraph
        :math:`d_v` counts the sampled edges (GraphSAGE's sampled mean)."""
        edges = runner.edges(edge_index, num_nodes, self_loops=False)
        inv = inverse_in_degree(edges.base, num_nodes)

        def coefficient(src: Tensor, dst: Tensor) -> Tensor:
            return inv.index_select(0, dst)

        last = len(self.convs) - 1
        out = None
        for k, conv in enumerate(self.convs):
            d = conv.out_channels
            xl = runner.transform(h, conv.lin_l, d)
            xr = runner.transform(h, conv.lin_r, d)
            h = None
            att = runner.pack_edges(runner.edge_source(coefficient, edges), edges.num_edges,
                                    (), k)
            out = runner.aggregate(
                att, lambda src, a, xl=xl: a.view(-1, 1) * xl.index_select(0, src), edges,
                runner.zeros(num_nodes, d))
            out = out + xr + conv.bias
            del xl, xr, att
            if k < last:
                h = runner.pack_nodes(F.relu(out), k + 1)
                out = None
        return out


ENTRY = ModelEntry("sage", SAGE, "GraphSAGE", hidden=64, num_layers=2, lr=0.01,
                   weight_decay=5e-4)
