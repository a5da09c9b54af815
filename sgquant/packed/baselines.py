r"""Packed and coded storage against their baselines: the bytes of every quantized
feature group (a layer input per degree bucket, the edge coefficients per layer) held as

* **dense FP32**: :math:`4n` bytes;
* **sparse FP32**: the smaller of dense and CSR (float32 values, int32 column indices
  and row pointers, as scipy holds them; int64 beyond :math:`2^{31}`), on the FP32
  model's own features;
* **packed**: SGQuant's fixed-width codes, :math:`\lceil n b/8 \rceil + 8` bytes;
* **coded**: the same codes coded losslessly (:mod:`sgquant.coding`, codec ``auto``):
  everything stored is counted (headers, models, block index, checksums, min/scale);
* **entropy**: the codes' empirical order-0 entropy :math:`nH/8`, the bound of any
  symbol-by-symbol code (model excluded);

with the coded pass's logits compared to the packed pass's (:func:`storage_baselines`,
:func:`storage_totals`). Chapter 7 (:mod:`sgquant.chapters.below_one_bit`) and
``benchmarks/coding.py`` report them.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Union

import pandas as pd
import torch
from torch import Tensor
from torch_geometric.data import Data

from ..assignment import BitAssignment, as_assignment
from ..bitwidth import FP32_BITS
from ..coding import code_entropy_bits
from ..degree import DegreeBuckets
from ..models.base import QuantGNN
from ..quantize import QuantOptions
from .runner import PackedRunner

__all__ = ["METHODS", "METHOD_COLUMNS", "CHUNK_SIZE", "EDGE_CHUNK_SIZE", "input_first",
           "csr_nbytes", "fp32_features", "storage_baselines", "storage_totals"]

#: Storage methods compared, in the order of the tables.
METHODS: tuple[str, ...] = ("dense FP32", "sparse FP32", "packed", "coded", "entropy")
#: The column of :func:`storage_baselines` holding each method's bytes.
METHOD_COLUMNS = {"dense FP32": "fp32_bytes", "sparse FP32": "sparse_fp32_bytes",
                  "packed": "packed_bytes", "coded": "coded_bytes", "entropy": "entropy_bytes"}
#: Node rows rematched at a time and edge rows per chunk in the passes compared.
CHUNK_SIZE: int = 128
EDGE_CHUNK_SIZE: int = 2048


def input_first(num_layers: int, input_bits: int = 1, other_bits: int = 8) -> BitAssignment:
    """``input_bits`` for the first layer's input, ``other_bits`` for every other
    feature (hidden inputs and edge coefficients): the configuration
    ``benchmarks/coding.py --quick`` stores."""
    emb = [[input_bits]] + [[other_bits]] * (num_layers - 1)
    return BitAssignment.full([other_bits] * num_layers, emb)


# ------------------------------------------------------------------ FP32 baselines
def csr_nbytes(x: Tensor) -> int:
    r"""Bytes of ``x`` (2-D; 1-D is one column) as a CSR matrix the way scipy holds
    it: float32 values, column indices and :math:`N + 1` row pointers of int32 (int64
    when the entries or a dimension reach :math:`2^{31}`)."""
    x2 = x.reshape(x.shape[0], -1) if x.dim() != 2 else x
    nnz = int(torch.count_nonzero(x2))
    index = 4 if max(nnz, *x2.shape) < 2**31 else 8
    return 4 * nnz + index * nnz + index * (x2.shape[0] + 1)


def fp32_features(net: QuantGNN, data: Data) -> dict[str, Tensor]:
    """What the FP32 model passes through each quantization point (``emb_L1``,
    ``att_L1`` ...), captured with forward hooks."""
    captured: dict[str, Tensor] = {}
    net.set_bits(None)
    handles = [point.register_forward_hook(
        lambda mod, inp, out, name=name: captured.__setitem__(name, inp[0].detach()))
        for name, point in net.quant_points.items()]
    try:
        with torch.no_grad():
            net.reset_cache()
            net(data.x, data.edge_index)
    finally:
        for h in handles:
            h.remove()
        net.reset_cache()
    return captured


def _component(name: str) -> str:
    kind, layer = name.split("_L")
    return "attention" if kind == "att" else ("input" if layer == "1" else "hidden")


def storage_baselines(net: QuantGNN, data: Data, assignment: Union[BitAssignment, dict, str],
                      buckets: Optional[DegreeBuckets] = None, *, label: Optional[str] = None,
                      chunk_size: int = CHUNK_SIZE,
                      edge_chunk_size: int = EDGE_CHUNK_SIZE,
                      options: Optional[QuantOptions] = None) -> pd.DataFrame:
    """Bytes of every feature group of ``net`` on ``data`` under ``assignment``, one
    row per group: ``elements`` and the bytes of each of :data:`METHODS`
    (``fp32_bytes``, ``csr_bytes``, ``sparse_fp32_bytes``, ``packed_bytes``,
    ``coded_bytes`` with the ``codec`` chosen and its ``coder``: ``sparse``,
    ``ans/codes``, ``ans/runs``, ``zstd/codes``, ``zstd/runs`` or ``packed``;
    ``entropy_bytes``), ``same_logits``
    (coded pass == packed pass, bit for bit) and ``same_predictions`` (share of nodes
    whose coded argmax equals the fake-quant model's). Groups kept in float32 count
    :math:`4n` bytes in every method. ``options``: the quantizer (rounding and range,
    :class:`~sgquant.quantize.QuantOptions`) of both passes; default the paper's."""
    asg = as_assignment(assignment)
    asg.check_shape(net.num_layers)
    bk = buckets if asg.num_buckets > 1 else None
    net.eval()
    features = fp32_features(net, data)
    passes = {}
    for codec in ("packed", "auto"):
        runner = PackedRunner(net, asg, buckets=bk, chunk_size=chunk_size,
                              edge_chunk_size=edge_chunk_size, keep_features=True, codec=codec,
                              options=options)
        passes[codec] = runner.run(data.x, data.edge_index)
    packed, coded = passes["packed"], passes["auto"]
    net.set_bits(asg, bk, options)
    with torch.no_grad():
        reference = net(data.x, data.edge_index)
    net.set_bits(None)
    same = bool(torch.equal(packed.logits, coded.logits))
    agree = float((coded.logits.argmax(1) == reference.argmax(1)).float().mean())
    rows = []
    for name, feature in packed.features.items():
        fp = features[name]
        for j, (g, cg) in enumerate(zip(feature.groups, coded.features[name].groups)):
            per_row = math.prod(feature.shape[1:])
            elements = g.num_rows * per_row
            if elements == 0:
                continue
            x = fp if g.index is None else fp.index_select(0, g.index)
            dense = 4 * elements
            csr = csr_nbytes(x)
            entropy = (dense if g.bits == FP32_BITS
                       else math.ceil(code_entropy_bits(g.packed) / 8))
            rows.append({
                "configuration": label or str(asg), "assignment": str(asg), "feature": name,
                "component": _component(name), "layer": int(name.split("_L")[1]),
                "bucket": j if len(feature.groups) > 1 else None, "bits": g.bits,
                "elements": elements, "fp32_bytes": dense, "csr_bytes": csr,
                "sparse_fp32_bytes": min(dense, csr), "packed_bytes": g.nbytes,
                "coded_bytes": cg.nbytes, "codec": cg.codec,
                "coder": cg.coded.plan.label if cg.coded is not None else cg.codec,
                "entropy_bytes": entropy,
                "same_logits": same, "same_predictions": agree,
                "average_bits": _average_bits(packed.records),
            })
    return pd.DataFrame(rows)


def _average_bits(records) -> float:
    """Element-weighted average bits of a pass's quantized groups (32 for float32)."""
    n = sum(r.elements for r in records)
    return sum(r.elements * r.bits for r in records) / n if n else math.nan


def storage_totals(groups: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: total bytes of each method, bits per element, savings
    against dense and sparse FP32, coded against the entropy bound, and whether the
    coded pass gave the packed pass's logits."""
    rows = []
    for conf, g in groups.groupby("configuration", sort=False):
        n = int(g["elements"].sum())
        row: dict[str, Any] = {"configuration": conf, "assignment": g["assignment"].iloc[0],
                               "elements": n,
                               "average_bits": float(g["average_bits"].iloc[0])}
        for method in METHODS:
            column = METHOD_COLUMNS[method]
            total = int(g[column].sum())
            row[column] = total
            row[f"{column[:-6]}_bits_per_element"] = 8 * total / n
        for method in METHODS[2:]:
            column = METHOD_COLUMNS[method]
            key = column[:-6]
            row[f"{key}_saving_vs_fp32"] = row["fp32_bytes"] / row[column]
            row[f"{key}_saving_vs_sparse_fp32"] = row["sparse_fp32_bytes"] / row[column]
        row["sparse_fp32_saving_vs_fp32"] = row["fp32_bytes"] / row["sparse_fp32_bytes"]
        row["coded_vs_entropy"] = row["coded_bytes"] / max(row["entropy_bytes"], 1)
        row["coded_vs_packed"] = row["coded_bytes"] / row["packed_bytes"]
        row["codecs"] = ", ".join(f"{c} x{k}" for c, k in g["coder"].value_counts().items())
        row["same_logits"] = bool(g["same_logits"].all())
        row["same_predictions"] = float(g["same_predictions"].min())
        rows.append(row)
    return pd.DataFrame(rows)
