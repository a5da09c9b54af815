"""What every loaded graph must be, checked once at load with one-line errors.

``x``: 2-D floating point, finite (NaN or Inf features train silently to chance
accuracy, so they are refused); ``y``: 1-D integer of length N (negative = no
label); ``edge_index``: ``[2, E]`` integer with ids in ``[0, N)``; masks (all three
or none): 1-D bool of length N, disjoint, labelled nodes only.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data

__all__ = ["MASKS", "check_graph", "check_finite"]

MASKS = ("train_mask", "val_mask", "test_mask")
_ELEMENTS_PER_CHUNK = 1 << 22  # checked at a time by check_finite


def _shape(t: Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {str(t.dtype).replace('torch.', '')}"


def check_finite(x: Tensor, dataset: str) -> None:
    """Raise :class:`ValueError` starting with ``dataset`` (e.g. ``"dataset 'Cora'"``)
    if ``x`` holds NaN or Inf.

    Fast path: NaN and Inf propagate through sums, so finite row sums prove every
    value finite; otherwise (or on overflow) rows are scanned in chunks to name the
    first bad value.
    """
    if x.numel() == 0 or bool(torch.isfinite(x.sum(dim=1)).all()):
        return
    rows = max(1, _ELEMENTS_PER_CHUNK // max(1, x.size(1)))
    for start in range(0, x.size(0), rows):
        chunk = x[start:start + rows]
        if bool(torch.isfinite(chunk).all()):
            continue
        nan = int(torch.isnan(x).sum())
        inf = int(torch.isinf(x).sum())
        node, feat = (~torch.isfinite(chunk)).nonzero()[0].tolist()
        raise ValueError(
            f"{dataset}: non-finite features ({nan:,} NaN, {inf:,} Inf; first at "
            f"node {start + node}, feature {feat}): refused, since they train silently to chance "
            f"accuracy; replace them (e.g. torch.nan_to_num) and save the graph again"
        )


def _check_masks(data: Data, n: int, dataset: str) -> None:
    present = [m for m in MASKS if data.get(m) is not None]
    if not present:
        return
    if len(present) != len(MASKS):
        absent = [m for m in MASKS if m not in present]
        raise ValueError(f"{dataset}: has {', '.join(present)} but not {', '.join(absent)}; "
                         f"give all three masks or none")
    for m in MASKS:
        t = data[m]
        if not isinstance(t, Tensor) or t.dtype != torch.bool or t.shape != (n,):
            got = _shape(t) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{dataset}: {m} must be a 1-D bool tensor of length {n:,} (the "
                             f"nodes), got {got}")
        if not bool(t.any()):
            raise ValueError(f"{dataset}: {m} selects no node")
        unlabeled = t & (data.y < 0)
        if bool(unlabeled.any()):
            raise ValueError(f"{dataset}: {m} holds {int(unlabeled.sum())} node(s) without a "
                             f"label (y < 0), e.g. node {int(unlabeled.nonzero()[0])}")
    for i, a in enumerate(MASKS):
        for b in MASKS[i + 1:]:
            both = data[a] & data[b]
            if bool(both.any()):
                raise ValueError(f"{dataset}: {a} and {b} overlap in {int(both.sum()):,} node(s), "
                                 f"e.g. node {int(both.nonzero()[0])}; the split must be disjoint")


def check_graph(data: Data, dataset: str) -> None:
    """Raise :class:`ValueError` naming ``dataset`` (e.g. ``"dataset 'Cora'"`` or
    ``"graph file <path>"``) and the first problem found."""
    x, y, ei = data.get("x"), data.get("y"), data.get("edge_index")
    for key, value in (("x", x), ("y", y), ("edge_index", ei)):
        if not isinstance(value, Tensor):
            got = "missing" if value is None else type(value).__name__
            raise ValueError(f"{dataset}: {key} must be a tensor, got {got}")
    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"{dataset}: x must be a 2-D floating point tensor [nodes, features], "
                         f"got {_shape(x)}")
    n = int(x.size(0))
    if y.shape != (n,) or y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"{dataset}: y must be a 1-D integer tensor of length {n:,} (one label "
                         f"per node of x), got {_shape(y)}")
    if ei.dim() != 2 or ei.size(0) != 2 or ei.is_floating_point() or ei.dtype == torch.bool:
        raise ValueError(f"{dataset}: edge_index must be an integer tensor of shape [2, E], "
                         f"got {_shape(ei)}")
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
        raise ValueError(f"{dataset}: edge_index points outside the {n:,} nodes (ids from "
                         f"{int(ei.min())} to {int(ei.max())}; allowed 0 to {n - 1})")
    _check_masks(data, n, dataset)
    check_finite(x, dataset)
