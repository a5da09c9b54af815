"""GCN, AGNN and GAT with SGQuant's quantization points, built on PyG layers.

One file per architecture (:mod:`.gcn`, :mod:`.gat`, :mod:`.agnn`) holds its formula,
its fake-quant forward and its chunked packed kernel; :mod:`.base` holds what they share
(quantization points as modules, row-blocked products, caches). :func:`build_model`
builds one with the paper's Table I sizes by default.
"""
from __future__ import annotations

from typing import Optional

from ..checks import check_choice, check_int
from ..quantize import QuantOptions
from .agnn import AGNN, QuantAGNNConv
from .base import (ROW_BLOCK, LayerSpec, QuantGNN, QuantPoint, RowBlockedLinear,
                   RowBlockedPygLinear, row_blocks, use_row_blocks)
from .gat import DEFAULT_GAT_HEADS, GAT, QuantGATConv
from .gcn import GCN

__all__ = ["MODELS", "PAPER_ARCHITECTURES", "DEFAULT_GAT_HEADS", "ROW_BLOCK", "LayerSpec",
           "QuantOptions", "QuantPoint", "QuantGNN", "GCN", "GAT", "AGNN", "QuantGATConv",
           "QuantAGNNConv", "RowBlockedLinear", "RowBlockedPygLinear", "row_blocks",
           "use_row_blocks", "build_model"]

MODELS = ("gcn", "agnn", "gat")

#: Table I of the paper (hidden width, number of layers) and our defaults.
PAPER_ARCHITECTURES = {"gcn": (32, 2), "agnn": (16, 4), "gat": (256, 2)}

_CLASSES = {"gcn": GCN, "agnn": AGNN, "gat": GAT}


def build_model(name: str, in_dim: int, num_classes: int, *, hidden: Optional[int] = None,
                num_layers: Optional[int] = None, heads: int = DEFAULT_GAT_HEADS,
                dropout: Optional[float] = None) -> QuantGNN:
    """Build ``gcn``, ``agnn`` or ``gat`` with the paper's Table I sizes by default
    (``heads`` applies to GAT; ``dropout`` defaults to each model's PyG example value)."""
    key = check_choice(str(name).lower(), "model", MODELS) if isinstance(name, str) else \
        check_choice(name, "model", MODELS)
    in_dim = check_int(in_dim, "in_dim", minimum=1)
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    paper_hidden, paper_layers = PAPER_ARCHITECTURES[key]
    hidden = check_int(paper_hidden if hidden is None else hidden, "hidden", minimum=1)
    num_layers = check_int(paper_layers if num_layers is None else num_layers, "num_layers",
                           minimum=1)
    heads = check_int(heads, "heads", minimum=1)
    kwargs = {} if dropout is None else {"dropout": dropout}
    if key == "gat":
        kwargs["heads"] = heads
    return _CLASSES[key](in_dim, num_classes, hidden, num_layers, **kwargs)
