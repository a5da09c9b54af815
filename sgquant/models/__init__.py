"""The quantized GNNs with SGQuant's quantization points, built on PyG layers.

One file per architecture (:mod:`.gcn`, :mod:`.agnn`, :mod:`.gat`, ... : the files
:data:`.registry.MODEL_MODULES` lists) holds its formula, its fake-quant forward, its
chunked packed kernel and its registry entry (:class:`.entry.ModelEntry`);
:func:`build_model` builds one by name (its default size: the paper's Table I for the
paper's models); :mod:`.base` holds what they share (quantization points as modules,
row-blocked products, caches).
"""
from __future__ import annotations

from ..quantize import QuantOptions
from .agnn import AGNN, QuantAGNNConv
from .base import (ROW_BLOCK, LayerSpec, QuantGNN, QuantPoint, RowBlockedLinear,
                   RowBlockedPygLinear, row_blocks, use_row_blocks)
from .entry import ModelEntry
from .gat import DEFAULT_GAT_HEADS, GAT, QuantGATConv
from .gcn import GCN
from .registry import (MODEL_MODULES, MODELS, PAPER_ARCHITECTURES, PAPER_MODELS, REGISTRY,
                       build_model, get_model)

__all__ = ["MODELS", "PAPER_MODELS", "PAPER_ARCHITECTURES", "MODEL_MODULES", "REGISTRY",
           "ModelEntry", "get_model", "DEFAULT_GAT_HEADS", "ROW_BLOCK", "LayerSpec",
           "QuantOptions", "QuantPoint", "QuantGNN", "GCN", "GAT", "AGNN", "QuantGATConv",
           "QuantAGNNConv", "RowBlockedLinear", "RowBlockedPygLinear", "row_blocks",
           "use_row_blocks", "build_model"]
