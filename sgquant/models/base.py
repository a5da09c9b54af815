r"""What every quantized GNN shares: quantization points, row-blocked products, caches.

Every layer :math:`k` has two quantization points (the architecture page,
"quantization points"):

* ``emb_L{k}``: the layer's input embedding :math:`h^{k-1}` (``N x d_{k-1}``),
  quantized row-wise by degree bucket when the assignment is topology-aware;
* ``att_L{k}``: the edge coefficients :math:`\alpha^k` (``E_k x heads``), for layers that
  aggregate over edges.

As in ``torch.ao.quantization`` (``activation_post_process``), each point is a small
module (:class:`QuantPoint`): tools observe or capture what passes through it with
forward hooks (``model.quant_points["att_L1"].register_forward_hook(...)``) instead of
replacing methods on an instance. The layer then aggregates and combines the
dequantized ("rematched") values, :math:`h^k_v = W^k \sum_u \alpha'_{u,v} h'^{k-1}_u`.
With no assignment, or an all-32-bit one, the forward pass is exactly the plain float32
model.

**Row blocks.** A BLAS multiplies a few rows with other kernels than many rows, whose
sums can differ in the last bit (by CPU, by library version); a last-bit difference is
enough to move a code across a rounding boundary. So in evaluation every dense product
:math:`h W` runs on blocks of exactly :data:`ROW_BLOCK` rows, aligned at multiples of
:data:`ROW_BLOCK` from row 0, the last block zero-padded (:func:`row_blocks`). Packed
inference (:mod:`sgquant.packed`) forms its products on the same blocks, so both paths
give every row the same floats, on any CPU. Training uses one product (autograd, speed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor
from torch_geometric.nn.dense.linear import Linear as PygLinear

from ..assignment import BitAssignment
from ..bitwidth import FP32_BITS
from ..checks import check_number
from ..degree import DegreeBuckets
from ..quantize import QuantOptions

__all__ = ["ROW_BLOCK", "row_blocks", "dropout", "RowBlockedLinear", "RowBlockedPygLinear",
           "use_row_blocks", "LayerSpec", "QuantPoint", "QuantGNN", "check_dropout"]

#: Rows of every dense product in evaluation (see the module docstring).
ROW_BLOCK: int = 64


def row_blocks(fn: Callable[[Tensor], Tensor], x: Tensor, block: int = ROW_BLOCK) -> Tensor:
    r"""``fn`` applied to ``x`` in consecutive blocks of exactly ``block`` rows.

    Block :math:`i` holds rows :math:`[i b, (i+1) b)`; the last one is padded with zero
    rows, whose outputs are dropped. Row :math:`r` of the result therefore comes from
    one call of ``fn`` on a ``block``-row input at position :math:`r \bmod b`, however
    ``x`` was split before (as long as splits fall on multiples of ``block``).
    """
    n = x.size(0)
    if n == 0:
        return fn(x)
    out: Optional[Tensor] = None
    for s in range(0, n, block):
        part = x[s:s + block]
        r = part.size(0)
        if r < block:
            part = torch.cat([part, part.new_zeros((block - r, *part.shape[1:]))])
        y = fn(part)[:r]
        if out is None:
            out = y.new_empty((n, *y.shape[1:]))
        out[s:s + r] = y
    return out


class RowBlockedLinear(torch.nn.Linear):
    """:class:`torch.nn.Linear` that evaluates in row blocks (:func:`row_blocks`)."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training or x.dim() != 2:
            return super().forward(x)
        return row_blocks(super().forward, x)


class RowBlockedPygLinear(PygLinear):
    """PyG's :class:`~torch_geometric.nn.dense.linear.Linear` (the ``lin`` of
    ``GCNConv``/``GATConv``) that evaluates in row blocks (:func:`row_blocks`)."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training or x.dim() != 2:
            return super().forward(x)
        return row_blocks(super().forward, x)


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    r"""Inverted dropout, :math:`x \cdot m / (1 - p)` with :math:`m_i \sim \text{Bernoulli}(1 - p)`:
    the distribution of :func:`torch.nn.functional.dropout`, its mask drawn as
    :math:`u_i < 1 - p` from uniform numbers (about 4x faster on a CPU than torch's
    Bernoulli sampler, which dominates an epoch on large graphs)."""
    if not training or p == 0.0:
        return x
    mask = torch.empty_like(x).uniform_().lt_(1.0 - p)
    return x * mask.div_(1.0 - p)


def use_row_blocks(module: torch.nn.Module) -> torch.nn.Module:
    """Make a ``Linear`` (torch's or PyG's) evaluate in row blocks, in place: its class
    becomes the row-blocked subclass (same parameters, same state dict keys, no new
    random draws)."""
    if isinstance(module, (RowBlockedLinear, RowBlockedPygLinear)):
        return module
    if type(module) is PygLinear:
        module.__class__ = RowBlockedPygLinear
    elif type(module) is torch.nn.Linear:
        module.__class__ = RowBlockedLinear
    else:
        raise ValueError(f"use_row_blocks needs torch.nn.Linear or PyG Linear, "
                         f"got {type(module).__name__}")
    return module


@dataclass(frozen=True)
class LayerSpec:
    """What layer ``k`` stores as features: its input width ``in_dim`` and, when it
    aggregates over edges, ``heads`` coefficients per edge (``heads = 0``: no ``att``
    component). ``self_loops``: the layer adds one self-loop per node to its edges."""

    in_dim: int
    heads: int
    self_loops: bool


class QuantPoint(torch.nn.Module):
    r"""One quantization point: fake-quantizes what passes through it,
    :math:`x' = s \lfloor (x - \min)/s \rfloor + \min` per group, with straight-through
    gradients. ``bits`` has one entry per group (degree bucket for ``emb``; one group for
    ``att``); unset or all 32: the identity (the same tensor object)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.bits: Optional[tuple[int, ...]] = None
        self.groups: list[Tensor] = []  # row indices of each group (empty: one group)
        self.options = QuantOptions()
        self._partition: Optional[int] = None

    def configure(self, bits: Optional[Sequence[int]], groups: Sequence[Tensor] = (),
                  options: Optional[QuantOptions] = None) -> None:
        """Set the bits (``None``: no quantization), the row groups and the options
        (this point's own: :meth:`QuantOptions.for_point` of its name)."""
        self.bits = None if bits is None else tuple(int(b) for b in bits)
        self.groups = list(groups)
        self.options = (options or QuantOptions()).for_point(self.name)
        rows = torch.cat(self.groups) if self.groups else torch.empty(0, dtype=torch.long)
        # the groups partition rows 0 .. n-1 (degree buckets do): n, else None
        self._partition = (rows.numel() if rows.numel() and torch.equal(
            rows.sort().values, torch.arange(rows.numel(), device=rows.device)) else None)

    @property
    def active(self) -> bool:
        return self.bits is not None and any(b != FP32_BITS for b in self.bits)

    def _fq(self, x: Tensor, bits: int) -> Tensor:
        return self.options.fake_quantize(x, bits)

    def forward(self, x: Tensor) -> Tensor:
        if not self.active:
            return x
        if not self.groups or len(self.bits) == 1:
            return self._fq(x, self.bits[0])
        # one output written group by group (copying x once per group cost more than
        # quantizing it on large inputs); from x only where some rows keep their floats
        every_row = self._partition == x.size(0) and FP32_BITS not in self.bits
        out = torch.empty_like(x) if every_row else x.clone()
        for idx, bits in zip(self.groups, self.bits):
            if bits != FP32_BITS and idx.numel():
                out.index_copy_(0, idx, self._fq(x.index_select(0, idx), bits))
        return out

    def extra_repr(self) -> str:
        bits = "fp32" if self.bits is None else "/".join(map(str, self.bits))
        return f"{self.name}, bits={bits}, {self.options.label}"


class QuantGNN(torch.nn.Module):
    """Base class: the :class:`QuantPoint` of every layer, the assignment that sets them,
    and the caches (quantized input, per-graph state) with a public :meth:`reset_cache`.

    Subclasses define :attr:`layer_specs`, ``forward`` (fake quantization) and
    :meth:`packed_forward` (the chunked kernel of :mod:`sgquant.packed`)."""

    name: str = "gnn"

    def __init__(self, specs: Sequence[LayerSpec]) -> None:
        super().__init__()
        self._specs = list(specs)
        points = {}
        for k, spec in enumerate(self._specs, start=1):
            points[f"emb_L{k}"] = QuantPoint(f"emb_L{k}")
            if spec.heads:
                points[f"att_L{k}"] = QuantPoint(f"att_L{k}")
        self.quant_points = torch.nn.ModuleDict(points)
        self.assignment: Optional[BitAssignment] = None
        self.buckets: Optional[DegreeBuckets] = None
        self.options = QuantOptions()
        self._input_cache: tuple = ()
        self._dropout_buffer: tuple = ()

    # ------------------------------------------------------------- structure
    @property
    def layer_specs(self) -> list[LayerSpec]:
        return list(self._specs)

    @property
    def num_layers(self) -> int:
        return len(self._specs)

    # ---------------------------------------------------------- quantization
    def set_bits(self, assignment: Optional[BitAssignment],
                 buckets: Optional[DegreeBuckets] = None,
                 options: Optional[QuantOptions] = None) -> "QuantGNN":
        """Quantize this model's features with ``assignment`` (``None``: FP32).

        A topology-aware assignment (more than one bucket per layer) needs the graph's
        :class:`~sgquant.data.DegreeBuckets` with as many buckets.
        """
        if assignment is not None:
            if not isinstance(assignment, BitAssignment):
                raise ValueError(
                    f"set_bits needs a BitAssignment or None, got {type(assignment).__name__}")
            assignment.check_shape(self.num_layers)
            assignment.check_buckets(buckets)
        if options is not None and not isinstance(options, QuantOptions):
            raise ValueError(f"options must be QuantOptions, got {type(options).__name__}")
        self.assignment = assignment
        self.buckets = buckets if assignment is not None and assignment.num_buckets > 1 else None
        self.options = options or QuantOptions()
        groups: list[Tensor] = []
        if self.buckets is not None:
            groups = [(self.buckets.bucket == j).nonzero().view(-1)
                      for j in range(self.buckets.num_buckets)]
        for k in range(1, self.num_layers + 1):
            emb = self.quant_points[f"emb_L{k}"]
            att = self.quant_points[f"att_L{k}"] if f"att_L{k}" in self.quant_points else None
            if assignment is None:
                emb.configure(None)
                if att is not None:
                    att.configure(None)
                continue
            emb.configure(assignment.emb_bits[k - 1], groups, self.options.for_point(emb.name))
            if att is not None:
                att.configure((assignment.att_bits[k - 1],), (), self.options.for_point(att.name))
        self.reset_cache()
        return self

    def reset_cache(self) -> None:
        """Forget the cached quantized input, its dropout buffer and any per-graph state
        (normalised edges); :meth:`set_bits` calls it."""
        self._input_cache = ()
        self._dropout_buffer = ()

    def _check_graph(self, x: Tensor, edge_index: Tensor) -> None:
        if self.buckets is not None:
            self.buckets.check_graph(edge_index, x.size(0))

    def quant_emb(self, h: Tensor, layer: int) -> Tensor:
        """The ``emb`` point of ``layer`` (0-based) applied to ``h``."""
        return self.quant_points[f"emb_L{layer + 1}"](h)

    def quant_att(self, alpha: Tensor, layer: int) -> Tensor:
        """The ``att`` point of ``layer`` (0-based) applied to the edge coefficients."""
        return self.quant_points[f"att_L{layer + 1}"](alpha)

    def quant_input(self, x: Tensor) -> Tensor:
        """The first layer's quantized input, cached.

        The dataset's features do not change between epochs, so their quantized copy is
        computed once per bit assignment and reused (keyed by the tensor and its version
        counter; :meth:`reset_cache` clears it). The point's hooks fire when it computes.
        """
        if x.requires_grad:
            return self.quant_emb(x, 0)
        cache = self._input_cache
        if cache and cache[0] is x and cache[1] == x._version:
            return cache[2]
        xq = self.quant_emb(x, 0)
        self._input_cache = (x, x._version, xq, None)
        return xq

    def layer_input(self, h: Tensor, k: int) -> Tensor:
        """The input of layer ``k`` (0-based) as training sees it: the cached quantized
        input with dropout for ``k = 0``; else ``h`` through the ``emb`` point, then
        dropout (``self.dropout``)."""
        if k == 0:
            return self.input_dropout(h, self.dropout)
        return dropout(self.quant_emb(h, k), self.dropout, self.training)

    def conv_stack(self, x: Tensor, edge_index: Tensor, activation: Callable[[Tensor], Tensor],
                   layer_args: Callable[[int], tuple] = lambda k: ()) -> Tensor:
        r"""The fake-quant forward of a plain stack of ``self.convs``:
        :math:`h^0 = x'`, :math:`h^k = \sigma(\mathrm{conv}_k(\mathrm{layer\_input}(h^{k-1}),
        \text{edges}, \ldots))` with ``activation`` :math:`\sigma` between layers (none after
        the last); ``layer_args(k)`` gives layer ``k``'s further arguments (e.g. its
        quantized edge coefficients)."""
        h = self.quant_input(x)
        last = len(self.convs) - 1
        for k, conv in enumerate(self.convs):
            h = conv(self.layer_input(h, k), edge_index, *layer_args(k))
            if k < last:
                h = activation(h)
        return h

    def input_dropout(self, x: Tensor, p: float) -> Tensor:
        """Dropout of the first layer's input. When ``x`` is the cached input and mostly
        zeros (citation graphs' bag-of-words), only its non-zero entries draw a mask: the
        same distribution as ``F.dropout``, far cheaper."""
        if not self.training or p == 0.0:
            return x
        cache = self._input_cache
        if not cache or cache[2] is not x:
            return dropout(x, p, True)
        nonzero = cache[3]
        if nonzero is None:
            sparse = int(torch.count_nonzero(x)) <= 0.5 * x.numel()
            nonzero = x.reshape(-1).nonzero().view(-1) if sparse else False
            self._input_cache = (*cache[:3], nonzero)
        if nonzero is False:
            return dropout(x, p, True)
        flat = x.reshape(-1)
        values = dropout(flat.index_select(0, nonzero), p, True)
        # the zeros stay where they are: one buffer per cached input, whose non-zero
        # entries each step overwrites (a fresh dense tensor each step cost more than
        # the layer's product on Coauthor-CS); the step's backward reads it before the
        # next step writes it, and autograd refuses (loudly) any other order
        held = self._dropout_buffer
        if not held or held[0] is not x:
            held = self._dropout_buffer = (x, torch.zeros_like(flat))
        return held[1].index_copy_(0, nonzero, values).view_as(x)

    # --------------------------------------------------------- packed kernel
    def node_state(self, runner, edge_index: Tensor, num_nodes: int) -> Optional[Tensor]:
        """Per-node state the packed kernel needs from the *whole* graph when it runs on
        sampled subgraphs (GCN: :math:`\\hat d^{-1/2}`); ``None`` if none."""
        return None

    def packed_forward(self, runner, h, edge_index: Tensor, num_nodes: int,
                       node_state: Optional[Tensor] = None) -> Tensor:
        """Logits from packed input features ``h`` with the building blocks of
        :class:`sgquant.packed.PackedRunner` (``runner``)."""
        raise NotImplementedError


def check_dropout(dropout: object) -> float:
    """``dropout`` as a probability in [0, 1)."""
    return check_number(dropout, "dropout", minimum=0.0, below=1.0)
