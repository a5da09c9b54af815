r"""GCN, AGNN and GAT with SGQuant's quantization points, built on PyG layers.

Every layer :math:`k` has two quantization points (DESIGN.md section 3):

* ``emb``: the layer's input embedding :math:`h^{k-1}` (``N x d_{k-1}``), quantized
  row-wise by degree bucket when the assignment is topology-aware;
* ``att``: the edge coefficients :math:`\alpha^k` (``E_k x heads``): the attention
  after softmax for GAT and AGNN, the normalised weights
  :math:`1/\sqrt{d_u d_v}` for GCN (layers without edges, e.g. AGNN's linear
  input and output layers, have none).

The layer then aggregates and combines the dequantized ("rematched") values,
:math:`h^k_v = W^k \sum_u \alpha'_{u,v} h'^{k-1}_u`. With no assignment, or an
all-32-bit one, the forward pass is exactly the plain float32 model.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import AGNNConv, GATConv, GCNConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import softmax

from .bits import BitAssignment
from .data import DegreeBuckets
from .quantize import FP32_BITS, check_clip_percentile, check_rounding, fake_quantize

MODELS = ("gcn", "agnn", "gat")

#: Table I of the paper (hidden width, number of layers) and our defaults.
PAPER_ARCHITECTURES = {"gcn": (32, 2), "agnn": (16, 4), "gat": (256, 2)}

#: The authors' GAT script uses 8 attention heads of width 256 in its first layer.
DEFAULT_GAT_HEADS = 8


@dataclass(frozen=True)
class LayerSpec:
    """What layer ``k`` stores as features: its input width ``in_dim`` and,
    when it aggregates over edges, ``heads`` coefficients per edge
    (``heads = 0``: no ``att`` component). ``self_loops``: the layer adds one
    self-loop per node to the edges it aggregates over."""

    in_dim: int
    heads: int
    self_loops: bool


@dataclass(frozen=True)
class QuantOptions:
    """How features are quantized: the paper's floor rounding over the full
    min/max range by default; ``rounding="nearest"`` and a clipped range
    (``clip_percentile``, e.g. 99.0) are options."""

    rounding: str = "floor"
    clip_percentile: Optional[float] = None

    def __post_init__(self) -> None:
        check_rounding(self.rounding)
        object.__setattr__(self, "clip_percentile", check_clip_percentile(self.clip_percentile))


class QuantGNN(torch.nn.Module):
    """Base class: holds the BitAssignment and applies the quantization points."""

    name: str = "gnn"

    def __init__(self) -> None:
        super().__init__()
        self.assignment: Optional[BitAssignment] = None
        self.buckets: Optional[DegreeBuckets] = None
        self.options = QuantOptions()
        self._bucket_index: list[Tensor] = []
        self._input_cache: tuple = ()

    # ------------------------------------------------------------- structure
    @property
    def layer_specs(self) -> list[LayerSpec]:
        raise NotImplementedError

    @property
    def num_layers(self) -> int:
        return len(self.layer_specs)

    # ---------------------------------------------------------- quantization
    def set_bits(self, assignment: Optional[BitAssignment],
                 buckets: Optional[DegreeBuckets] = None,
                 options: Optional[QuantOptions] = None) -> "QuantGNN":
        """Quantize this model's features with ``assignment`` (``None``: FP32).

        A topology-aware assignment (more than one bucket per layer) needs the
        graph's :class:`~sgquant.data.DegreeBuckets` with as many buckets.
        """
        if assignment is not None:
            if not isinstance(assignment, BitAssignment):
                raise ValueError(
                    f"set_bits needs a BitAssignment or None, got {type(assignment).__name__}")
            assignment.check_shape(self.num_layers)
            if assignment.num_buckets > 1:
                if buckets is None:
                    raise ValueError(
                        f"the assignment has {assignment.num_buckets} degree buckets per "
                        "layer: pass the graph's DegreeBuckets")
                if buckets.num_buckets != assignment.num_buckets:
                    raise ValueError(
                        f"the assignment has {assignment.num_buckets} degree buckets per "
                        f"layer but the DegreeBuckets have {buckets.num_buckets}")
        if options is not None and not isinstance(options, QuantOptions):
            raise ValueError(f"options must be QuantOptions, got {type(options).__name__}")
        self.assignment = assignment
        self.buckets = buckets
        self.options = options or QuantOptions()
        self._input_cache = ()
        self._bucket_index = []
        if assignment is not None and assignment.num_buckets > 1:
            self._bucket_index = [
                (buckets.bucket == j).nonzero().view(-1) for j in range(buckets.num_buckets)]
        return self

    def _check_graph(self, x: Tensor, edge_index: Tensor) -> None:
        if self._bucket_index:
            self.buckets.check_graph(edge_index, x.size(0))

    def _fq(self, x: Tensor, bits: int) -> Tensor:
        return fake_quantize(x, bits, rounding=self.options.rounding,
                             clip_percentile=self.options.clip_percentile)

    def quant_emb(self, h: Tensor, layer: int) -> Tensor:
        """Fake-quantize the input embedding of ``layer`` (0-based) by degree bucket."""
        if self.assignment is None:
            return h
        row = self.assignment.emb_bits[layer]
        if not self._bucket_index:
            return self._fq(h, row[0])
        if all(b == FP32_BITS for b in row):
            return h
        out = h
        for idx, bits in zip(self._bucket_index, row):
            if bits != FP32_BITS and idx.numel():
                out = out.index_copy(0, idx, self._fq(h.index_select(0, idx), bits))
        return out

    def quant_input(self, x: Tensor) -> Tensor:
        """The first layer's quantized input, cached.

        The dataset's features do not change between epochs, so their quantized
        copy is computed once per bit assignment and reused (the cache holds one
        float32 copy of ``x``; :meth:`set_bits` clears it).
        """
        if x.requires_grad:
            return self.quant_emb(x, 0)
        cache = self._input_cache
        if cache and cache[0] is x and cache[1] == x._version:
            return cache[2]
        xq = self.quant_emb(x, 0)
        self._input_cache = (x, x._version, xq, None)
        return xq

    def input_dropout(self, x: Tensor, p: float) -> Tensor:
        """Dropout of the first layer's input. When ``x`` is the cached input and
        mostly zeros (citation graphs' bag-of-words), only its non-zero entries
        draw a mask: the same distribution as ``F.dropout``, far cheaper."""
        if not self.training or p == 0.0:
            return x
        cache = self._input_cache
        if not cache or cache[2] is not x:
            return F.dropout(x, p, True)
        nonzero = cache[3]
        if nonzero is None:
            sparse = int(torch.count_nonzero(x)) <= 0.5 * x.numel()
            nonzero = x.reshape(-1).nonzero().view(-1) if sparse else False
            self._input_cache = (*cache[:3], nonzero)
        if nonzero is False:
            return F.dropout(x, p, True)
        flat = x.reshape(-1)
        values = flat.index_select(0, nonzero)
        keep = torch.empty_like(values).bernoulli_(1.0 - p).div_(1.0 - p)
        return torch.zeros_like(flat).index_copy(0, nonzero, values * keep).view_as(x)

    def quant_att(self, alpha: Tensor, layer: int) -> Tensor:
        """Fake-quantize the edge coefficients of ``layer`` (0-based)."""
        if self.assignment is None:
            return alpha
        return self._fq(alpha, self.assignment.att_bits[layer])

    def weight_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------------- GCN
class GCN(QuantGNN):
    r"""Kipf & Welling's GCN, :math:`H^k = \sigma(\hat D^{-1/2}\hat A\hat D^{-1/2} H'^{k-1} W^k)`.

    The normalised coefficients :math:`1/\sqrt{\hat d_u \hat d_v}` (self-loops
    included) are the ``att`` component; dropout on each layer's input.
    """

    name = "gcn"

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 32,
                 num_layers: int = 2, dropout: float = 0.5) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [num_classes]
        self.convs = torch.nn.ModuleList(
            GCNConv(dims[i], dims[i + 1], normalize=False) for i in range(num_layers))
        self.dims = dims
        self.dropout = dropout
        self._norm_cache: tuple = ()

    @property
    def layer_specs(self) -> list[LayerSpec]:
        return [LayerSpec(d, 1, True) for d in self.dims[:-1]]

    def normalized_edges(self, edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
        """Edges with self-loops and their symmetric normalisation (cached per graph)."""
        key = (edge_index.data_ptr(), edge_index.shape, num_nodes)
        if not self._norm_cache or self._norm_cache[0] != key:
            ei, w = gcn_norm(edge_index, None, num_nodes, add_self_loops=True)
            self._norm_cache = (key, ei, w)
        return self._norm_cache[1], self._norm_cache[2]

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        self._check_graph(x, edge_index)
        ei, w = self.normalized_edges(edge_index, x.size(0))
        h = self.quant_input(x)
        for k, conv in enumerate(self.convs):
            if k == 0:
                h = self.input_dropout(h, self.dropout)
            else:
                h = F.dropout(self.quant_emb(h, k), self.dropout, self.training)
            h = conv(h, ei, self.quant_att(w, k))
            if k < len(self.convs) - 1:
                h = F.relu(h)
        return h


# ---------------------------------------------------------------------- GAT
class QuantGATConv(GATConv):
    r""":class:`~torch_geometric.nn.GATConv` whose attention
    :math:`\alpha = \mathrm{softmax}(\mathrm{LeakyReLU}(a^\top[W h_u \| W h_v]))`
    is quantized after the softmax and before attention dropout."""

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
        return F.dropout(alpha, p=self.attention_dropout, training=self.training)


class GAT(QuantGNN):
    """Veličković et al.'s GAT: ``heads`` attention heads of width ``hidden``
    (concatenated) then one output head; ELU, dropout 0.6 (as PyG's example)."""

    name = "gat"

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 256,
                 num_layers: int = 2, heads: int = DEFAULT_GAT_HEADS,
                 dropout: float = 0.6) -> None:
        super().__init__()
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got {heads!r}")
        self.dropout = dropout
        self.heads = heads
        convs, dims, layer_heads = [], [], []
        d = in_dim
        for k in range(num_layers):
            last = k == num_layers - 1
            h = 1 if last else heads
            out = num_classes if last else hidden
            convs.append(QuantGATConv(d, out, heads=h, concat=not last, dropout=dropout))
            dims.append(d)
            layer_heads.append(h)
            d = out if last else hidden * heads
        self.convs = torch.nn.ModuleList(convs)
        self._specs = [LayerSpec(d, h, True) for d, h in zip(dims, layer_heads)]

    @property
    def layer_specs(self) -> list[LayerSpec]:
        return list(self._specs)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        self._check_graph(x, edge_index)
        h = self.quant_input(x)
        for k, conv in enumerate(self.convs):
            if k == 0:
                h = self.input_dropout(h, self.dropout)
            else:
                h = F.dropout(self.quant_emb(h, k), self.dropout, self.training)
            conv.quantizer = partial(self.quant_att, layer=k)
            h = conv(h, edge_index)
            if k < len(self.convs) - 1:
                h = F.elu(h)
        return h


# --------------------------------------------------------------------- AGNN
class QuantAGNNConv(AGNNConv):
    r""":class:`~torch_geometric.nn.AGNNConv` whose attention
    :math:`\alpha_{u,v} = \mathrm{softmax}_u(\beta \cos(h_u, h_v))` is quantized."""

    def __init__(self, requires_grad: bool = True,
                 quantizer: Optional[Callable[[Tensor], Tensor]] = None) -> None:
        super().__init__(requires_grad=requires_grad)
        self.quantizer = quantizer  # set by the owning model before each call

    def message(self, x_j: Tensor, x_norm_i: Tensor, x_norm_j: Tensor, index: Tensor,
                ptr: Optional[Tensor], size_i: Optional[int]) -> Tensor:
        alpha = self.beta * (x_norm_i * x_norm_j).sum(dim=-1)
        alpha = softmax(alpha, index, ptr, size_i)
        if self.quantizer is not None:
            alpha = self.quantizer(alpha.view(-1, 1)).view(-1)
        return x_j * alpha.view(-1, 1)


class AGNN(QuantGNN):
    """Thekumparampil et al.'s AGNN as in PyG's example and the paper's Table I:
    4 layers = linear (in -> hidden), ``num_layers - 2`` attention propagations,
    linear (hidden -> classes)."""

    name = "agnn"

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 16,
                 num_layers: int = 4, dropout: float = 0.5) -> None:
        super().__init__()
        if num_layers < 3:
            raise ValueError(f"AGNN needs num_layers >= 3 (linear, propagation(s), linear), "
                             f"got {num_layers!r}")
        self.dropout = dropout
        self.lin1 = torch.nn.Linear(in_dim, hidden)
        self.props = torch.nn.ModuleList(
            QuantAGNNConv(requires_grad=i > 0) for i in range(num_layers - 2))
        self.lin2 = torch.nn.Linear(hidden, num_classes)
        self._specs = ([LayerSpec(in_dim, 0, False)]
                       + [LayerSpec(hidden, 1, True)] * (num_layers - 2)
                       + [LayerSpec(hidden, 0, False)])

    @property
    def layer_specs(self) -> list[LayerSpec]:
        return list(self._specs)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        self._check_graph(x, edge_index)
        h = self.quant_input(x)
        h = F.relu(self.lin1(self.input_dropout(h, self.dropout)))
        for i, prop in enumerate(self.props):
            prop.quantizer = partial(self.quant_att, layer=i + 1)
            h = prop(self.quant_emb(h, i + 1), edge_index)
        h = self.quant_emb(h, self.num_layers - 1)
        h = F.dropout(h, self.dropout, self.training)
        return self.lin2(h)


# ------------------------------------------------------------------ factory
def build_model(name: str, in_dim: int, num_classes: int, *, hidden: Optional[int] = None,
                num_layers: Optional[int] = None, heads: int = DEFAULT_GAT_HEADS,
                dropout: Optional[float] = None) -> QuantGNN:
    """Build ``gcn``, ``agnn`` or ``gat`` with the paper's Table I sizes by default."""
    key = str(name).lower()
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    for arg, value in (("in_dim", in_dim), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    paper_hidden, paper_layers = PAPER_ARCHITECTURES[key]
    hidden = paper_hidden if hidden is None else hidden
    num_layers = paper_layers if num_layers is None else num_layers
    for arg, value in (("hidden", hidden), ("num_layers", num_layers), ("heads", heads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    kwargs = {} if dropout is None else {"dropout": dropout}
    if key == "gcn":
        return GCN(in_dim, num_classes, hidden, num_layers, **kwargs)
    if key == "agnn":
        return AGNN(in_dim, num_classes, hidden, num_layers, **kwargs)
    return GAT(in_dim, num_classes, hidden, num_layers, heads=heads, **kwargs)
