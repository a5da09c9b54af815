"""What every loaded graph must be, checked once at load with one-line errors.

``x``: 2-D floating point with at least one node, finite (NaN or Inf features train
silently to chance accuracy, so they are refused); ``y``: 1-D integer of length N,
a class index from 0 to :data:`MAX_CLASSES` - 1 (negative = no label; the output
layer has ``max(y) + 1`` classes); ``edge_index``: ``[2, E]`` integer with ids in
``[0, N)``; masks (all three or none): 1-D bool of length N, disjoint, labelled
nodes only. :func:`check_sets`, once the split is made: training, validation and
test sets each hold a node.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data

__all__ = ["MASKS", "MAX_CLASSES", "check_graph", "check_finite", "check_sets"]

MASKS = ("train_mask", "val_mask", "test_mask")
#: What each mask selects, as messages name it.
SET_NAMES = {"train_mask": "training", "val_mask": "validation", "test_mask": "test"}
#: Most classes a graph may have (labels 0 .. MAX_CLASSES - 1): the output layer has one
#: row per class, so a stray huge label would allocate terabytes.
MAX_CLASSES = 1 << 16
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
            raise _empty_set(data, m, dataset, f"{m} selects no node")
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


def _empty_set(data: Data, mask: str, dataset: str, how: str) -> ValueError:
    n, labelled = data.num_nodes, int((data.y >= 0).sum())
    return ValueError(
        f"{dataset}: the {SET_NAMES[mask]} set is empty (0 of {n:,} node(s), {labelled:,} "
        f"labelled; {how}): training, model selection and the test accuracy each need at "
        f"least one labelled node; give the graph more labelled nodes, or masks of its own")


def check_sets(data: Data, dataset: str) -> None:
    """Raise :class:`ValueError` naming ``dataset`` if the training, validation or test
    mask of a split graph (``data.split`` describes the split) selects no node."""
    for m in MASKS:
        if not bool(data[m].any()):
            raise _empty_set(data, m, dataset, f"split: {data.get('split') or m}")


def _check_labels(y: Tensor, dataset: str) -> None:
    if y.numel() == 0 or int(y.max()) < MAX_CLASSES:
        return
    top = int(y.max())
    node = int((y == top).nonzero()[0])
    raise ValueError(f"{dataset}: y holds label {top:,} (node {node}), which would make "
                     f"{top + 1:,} classes; labels are class indices 0 to {MAX_CLASSES - 1:,} "
                     f"(at most {MAX_CLASSES:,} classes), negative for an unlabelled node")


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
    if n == 0:
        raise ValueError(f"{dataset}: the graph has no nodes (x has {_shape(x)}); it needs at "
                         f"least one labelled node in each of the training, validation and "
                         f"test sets")
    if y.shape != (n,) or y.is_floating_point() or y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"{dataset}: y must be a 1-D integer tensor of length {n:,} (one label "
                         f"per node of x), got {_shape(y)}")
    _check_labels(y, dataset)
    if ei.dim() != 2 or ei.size(0) != 2 or ei.is_floating_point() or ei.dtype == torch.bool:
        raise ValueError(f"{dataset}: edge_index must be an integer tensor of shape [2, E], "
                         f"got {_shape(ei)}")
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
        raise ValueError(f"{dataset}: edge_index points outside the {n:,} nodes (ids from "
                         f"{int(ei.min())} to {int(ei.max())}; allowed 0 to {n - 1})")
    _check_masks(data, n, dataset)
    check_finite(x, dataset)
