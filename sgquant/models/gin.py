r"""GIN (Xu et al.) with SGQuant's quantization points, and its packed kernel.

.. math::
    h^k_v = W_2\, \mathrm{ReLU}\Big((1 + \epsilon)\, W_1 h'^{k-1}_v
            + \sum_{u \in N(v)} W_1 h'^{k-1}_u + b_1\Big) + b_2

PyG's ``GINConv`` with a two-layer MLP (:math:`W_1, b_1, W_2, b_2`) and
:math:`\epsilon = 0` not trained (GIN-0), over the graph's edges as given. The MLP's first
linear map is applied before the sum (a linear map commutes with it; :math:`b_1` is added
after), so every float intermediate has the hidden width. Quantization points: only
``emb_L{k}`` (:math:`h^{k-1}`, by degree bucket): a sum has no edge coefficients to
store, so no ``att`` point (as AGNN's linear layers). ReLU between layers, dropout on
each layer's input.

Not in the paper; our size and optimiser, those of PyG's citation examples: hidden 64
(each MLP's inner width and the layers' width), 2 layers, dropout 0.5, Adam at lr 0.01
with weight decay 5e-4.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import GINConv
from torch_geometric.nn.dense.linear import Linear as PygLinear

from .base import LayerSpec, QuantGNN, check_dropout, use_row_blocks
from .entry import ModelEntry

__all__ = ["QuantGINConv", "GIN", "ENTRY"]


class QuantGINConv(GINConv):
    r""":class:`~torch_geometric.nn.GINConv` computing
    :math:`\mathrm{nn}\big(\sum_u W_1 h_u + (1 + \epsilon) W_1 h_v + b_1\big)`:
    ``lin`` (:math:`W_1`, no bias) before the sum, ``bias`` (:math:`b_1`) after it, then
    ``nn`` = ReLU and :math:`W_2, b_2`. Both products evaluate in row blocks."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int,
                 eps: float = 0.0) -> None:
        second = use_row_blocks(PygLinear(hidden, out_channels))
        super().__init__(torch.nn.Sequential(torch.nn.ReLU(), second), eps=eps,
                         train_eps=False)
        self.lin = use_row_blocks(PygLinear(in_channels, hidden, bias=False))
        self.bias = torch.nn.Parameter(torch.zeros(hidden))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if isinstance(getattr(self, "bias", None), torch.nn.Parameter):
            self.lin.reset_parameters()
            torch.nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        z = self.lin(x)
        # propagate_type: (x: Tensor)
        out = self.propagate(edge_index, x=z)
        return self.nn(out + (1 + self.eps) * z + self.bias)


class GIN(QuantGNN):
    """GIN-0: ``num_layers`` :class:`QuantGINConv` layers.

    Args:
        in_dim, num_classes: input width and number of classes.
        hidden: hidden width (ours: 64). num_layers: layers (ours: 2).
        dropout: dropout probability of each layer's input (0.5).
    """

    name = "gin"

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64,
                 num_layers: int = 2, dropout: float = 0.5) -> None:
        dims = [in_dim] + [hidden] * (num_layers - 1) + [num_classes]
        super().__init__([LayerSpec(d, 0, False) for d in dims[:-1]])
        self.convs = torch.nn.ModuleList(
            QuantGINConv(dims[i], hidden, dims[i + 1]) for i in range(num_layers))
        self.dropout = check_dropout(dropout)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        self._check_graph(x, edge_index)
        return self.conv_stack(x, edge_index, F.relu)

    def packed_forward(self, runner, h, edge_index: Tensor, num_nodes: int,
                       node_state: Optional[Tensor] = None) -> Tensor:
        r"""Per layer: :math:`z = h' W_1` from packed rows, :math:`\sum_u z_u`
        scatter-added chunk by chunk of edges, then the MLP's rest."""
        edges = runner.edges(edge_index, num_nodes, self_loops=False)
        last = len(self.convs) - 1
        out = None
        for k, conv in enumerate(self.convs):
            d = conv.lin.out_channels
            z = runner.transform(h, conv.lin, d)
            h = None
            out = runner.aggregate(None, lambda src, _, z=z: z.index_select(0, src), edges,
                                   runner.zeros(num_nodes, d))
            out = conv.nn(out + (1 + conv.eps) * z + conv.bias)
            del z
            if k < last:
                h = runner.pack_nodes(F.relu(out), k + 1)
                out = None
        return out


ENTRY = ModelEntry("gin", GIN, "GIN", hidden=64, num_layers=2, lr=0.01, weight_decay=5e-4)
