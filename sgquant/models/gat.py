r"""GAT (Veličković et al.) with SGQuant's quantization points, and its packed kernel.

.. math::
    \alpha_{u,v} = \mathrm{softmax}_u\big(\mathrm{LeakyReLU}(a_s^\top W h_u + a_d^\top W h_v)\big),
    \qquad h^k_v = \big\Vert_{heads} \sum_u \alpha'_{u,v} W h'^{k-1}_u

Quantization points of layer :math:`k`: ``emb_L{k}`` (the layer input, by degree bucket)
and ``att_L{k}`` (the attention after the softmax, ``E x heads``, quantized before the
attention dropout). ELU between layers, dropout 0.6 (PyG's example).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import GATConv

from ..checks import check_int
from .base import LayerSpec, QuantGNN, check_dropout, dropout, use_row_blocks
from .entry import ModelEntry

__all__ = ["DEFAULT_GAT_HEADS", "QuantGATConv", "GAT", "ENTRY"]

#: The authors' GAT script uses 8 attention heads of width 256 in its first layer.
DEFAULT_GAT_HEADS = 8


class QuantGATConv(GATConv):
    r""":class:`~torch_geometric.nn.GATConv` whose attention
    :math:`\alpha = \mathrm{softmax}(\mathrm{LeakyReLU}(a^\top[W h_u \| W h_v]))` passes
    through ``quantizer`` (the layer's ``att`` point) after the softmax and before
    attention dropout."""

    def __init__(self, *args, quantizer: Optional[Callable[[Tensor], Tensor]] = None,
                 **kwargs) -> None:
        attention_dropout = kwargs.pop("dropout", 0.0)
        super().__init__(*args, dropout=0.0, **kwargs)
        self.attention_dropout = attention_dropout
        self.quantizer = quantizer

    def edge_update(self, alpha_j: Tensor, alpha_i: Optional[Tensor],
                    edge_attr: Optional[Tensor], index: Tensor, ptr: Optional[Tensor],
                    dim_size: Optional[int]) -> Tensor:
        alpha = super().edge_update(alpha_j, alpha_i, edge_attr, index, ptr, dim_size)
        if self.quantizer is not None:
            alpha = self.quantizer(alpha)
        return dropout(alpha, self.attention_dropout, self.training)


class GAT(QuantGNN):
    """``heads`` attention heads of width ``hidden`` (concatenated), then one output head.

    Args:
        in_dim, num_classes: input width and number of classes.
        hidden: width per head (paper: 256). num_layers: layers (paper: 2).
        heads: heads of the hidden layers (the authors' script: 8). dropout: 0.6.
    """

    name = "gat"

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 256,
                 num_layers: int = 2, heads: int = DEFAULT_GAT_HEADS,
                 dropout: float = 0.6) -> None:
        heads = check_int(heads, "heads", minimum=1)
        specs, dims = [], []
        d = in_dim
        for k in range(num_layers):
            last = k == num_layers - 1
            h = 1 if last else heads
            specs.append(LayerSpec(d, h, True))
            dims.append((d, num_classes if last else hidden, h, not last))
            d = num_classes if last else hidden * heads
        super().__init__(specs)
        self.dropout = check_dropout(dropout)
        self.heads = heads
        self.convs = torch.nn.ModuleList()
        for k, (d_in, d_out, h, concat) in enumerate(dims, start=1):
            conv = QuantGATConv(d_in, d_out, heads=h, concat=concat, dropout=self.dropout,
                                quantizer=self.quant_points[f"att_L{k}"])
            use_row_blocks(conv.lin)
            self.convs.append(conv)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        self._check_graph(x, edge_index)
        return self.conv_stack(x, edge_index, F.elu)

    def packed_forward(self, runner, h, edge_index: Tensor, num_nodes: int,
                       node_state: Optional[Tensor] = None) -> Tensor:
        r"""Per layer: :math:`X W` from packed rows; the attention logits' softmax
        statistics over edge chunks; :math:`\alpha` computed, quantized and packed chunk
        by chunk; then :math:`\sum_u \alpha'_{u,v} (X W)_u` per head."""
        for conv in self.convs:
            if conv.lin is None or conv.lin_edge is not None or conv.res is not None:
                raise ValueError("packed GAT supports GATConv layers with one shared linear "
                                 "map, no edge features and no residual")
        edges = runner.edges(edge_index, num_nodes)
        last = len(self.convs) - 1
        out = None
        for k, conv in enumerate(self.convs):
            H, C = conv.heads, conv.out_channels
            xw = runner.transform(h, conv.lin, H * C).view(-1, H, C)
            h = None
            a_src = (xw * conv.att_src).sum(dim=-1)
            a_dst = (xw * conv.att_dst).sum(dim=-1)

            def logit(src: Tensor, dst: Tensor, a_src=a_src, a_dst=a_dst, conv=conv) -> Tensor:
                val = a_src.index_select(0, src) + a_dst.index_select(0, dst)
                return F.leaky_relu(val, conv.negative_slope)

            alpha = runner.softmax(logit, edges, (H,))
            att = runner.pack_edges(runner.edge_source(alpha, edges), edges.num_edges, (H,), k)
            del alpha
            out = runner.aggregate(att, lambda src, a, xw=xw: a.unsqueeze(-1) * xw.index_select(0, src),
                                   edges, runner.zeros(num_nodes, H, C))
            del xw, att, a_src, a_dst
            out = out.view(-1, H * C) if conv.concat else out.mean(dim=1)
            if conv.bias is not None:
                out = out + conv.bias
            if k < last:
                h = runner.pack_nodes(F.elu(out), k + 1)
                out = None
        return out


#: Table I's size with the authors' 8 heads; Adam as in PyG's GAT example. A profile sets
#: the width and heads it trains (``gat_hidden``, ``gat_heads``: the paper's 8 x 256 takes
#: minutes per run on a CPU).
ENTRY = ModelEntry("gat", GAT, "GAT", hidden=256, num_layers=2, lr=0.005, weight_decay=5e-4,
                   in_paper=True, options={"heads": DEFAULT_GAT_HEADS},
                   profile_fields={"hidden": "gat_hidden", "heads": "gat_heads"})
