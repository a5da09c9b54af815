"""Table II style statistics of a loaded graph."""
from __future__ import annotations

from typing import Any

import torch
from torch_geometric.data import Data

__all__ = ["dataset_statistics"]


def dataset_statistics(data: Data) -> dict[str, Any]:
    """Table II style statistics of a loaded graph.

    ``edges`` counts directed edges as PyG does; ``undirected_edges`` counts distinct
    unordered pairs ``{u, v}`` (a self-loop counts once); ``mean_degree`` is
    ``edges / nodes``; ``isolated_nodes`` have no incident edge in either direction.
    """
    n = int(data.num_nodes)
    ei = data.edge_index.cpu()
    e = int(ei.size(1))
    if e:
        lo, hi = torch.minimum(ei[0], ei[1]), torch.maximum(ei[0], ei[1])
        undirected = int(torch.unique(lo * max(n, 1) + hi).numel())
        touched = torch.zeros(n, dtype=torch.bool)
        touched[ei[0]] = True
        touched[ei[1]] = True
        isolated = int((~touched).sum())
        is_undirected = bool(
            torch.equal(torch.unique(ei[0] * n + ei[1]), torch.unique(ei[1] * n + ei[0]))
        )
    else:
        undirected, isolated, is_undirected = 0, n, True
    y = getattr(data, "y", None)
    if y is None:
        classes = 0
    elif y.dim() > 1:
        classes = int(y.size(1))
    else:
        classes = int(y.max()) + 1 if y.numel() else 0

    def _size(mask_name: str) -> int | None:
        mask = getattr(data, mask_name, None)
        return None if mask is None else int(mask.sum())

    x = getattr(data, "x", None)
    return {
        "name": getattr(data, "name", None),
        "split": getattr(data, "split", None),
        "nodes": n,
        "edges": e,
        "undirected_edges": undirected,
        "is_undirected": is_undirected,
        "features": int(x.size(1)) if x is not None and x.dim() > 1 else 0,
        "classes": classes,
        "train": _size("train_mask"),
        "val": _size("val_mask"),
        "test": _size("test_mask"),
        "mean_degree": e / n if n else 0.0,
        "isolated_nodes": isolated,
    }
