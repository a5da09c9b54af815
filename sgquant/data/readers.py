"""Reading a registered dataset with its PyG class (or ogb's), checked before it reads.

Each reader class is wrapped so that, right before it opens the raw files (after a
download, if any), a callback checks them, and a reader failure becomes a one-line
error naming the files. Raw files are only read when the processed folder is
missing, so the check costs nothing on later loads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch_geometric.data import Data

from .errors import DatasetUnavailableError
from .catalogue import DatasetSpec

__all__ = ["OGB_INSTALL", "open_dataset", "graph_from"]

#: How to install the optional ogb reader.
OGB_INSTALL = "pip install 'sgquant[ogb]'"


def _require_ogb(spec: DatasetSpec) -> Any:
    try:
        from ogb.nodeproppred import PygNodePropPredDataset
    except ImportError as exc:
        raise DatasetUnavailableError(
            f"Dataset {spec.name!r} is read by the optional ogb package, which is not "
            f"installed ({type(exc).__name__}: {exc}): {OGB_INSTALL}", dataset=spec.name
        ) from None
    return PygNodePropPredDataset


def _reader_class(spec: DatasetSpec) -> type:
    if spec.loader == "ogb":
        return _require_ogb(spec)
    from torch_geometric import datasets

    return {"planetoid": datasets.Planetoid, "amazon": datasets.Amazon,
            "coauthor": datasets.Coauthor, "reddit": datasets.Reddit,
            "wikics": datasets.WikiCS, "flickr": datasets.Flickr}[spec.loader]


def _checked(cls: type, before_read: Callable[[], None],
             on_error: Callable[[Exception], Exception]) -> type:
    """``cls`` whose ``process`` first calls ``before_read`` and turns a reader's
    exception into ``on_error(exc)`` (PyG runs ``process`` only when it reads raw files)."""

    class Checked(cls):  # type: ignore[valid-type, misc]
        def download(self) -> None:  # PyG downloads only when a class defines download
            super().download()

        def process(self) -> None:
            before_read()
            try:
                super().process()
            except Exception as exc:
                raise on_error(exc) from exc

    Checked.__name__ = Checked.__qualname__ = cls.__name__
    return Checked


def open_dataset(spec: DatasetSpec, root: Path, *, force_reload: bool,
                 before_read: Callable[[], None],
                 on_error: Callable[[Exception], Exception]) -> Any:
    """The PyG dataset object of ``spec`` under ``root`` (downloading, then processing
    its raw files, when PyG needs to)."""
    cls = _checked(_reader_class(spec), before_read, on_error)
    if spec.loader == "planetoid":
        return cls(str(root), spec.loader_name, split="public", force_reload=force_reload)
    if spec.loader in ("amazon", "coauthor"):
        return cls(str(root), spec.loader_name, force_reload=force_reload)
    if spec.loader == "wikics":
        return cls(str(root / spec.loader_name), is_undirected=True, force_reload=force_reload)
    if spec.loader == "ogb":
        if force_reload:  # ogb's class has no force_reload
            import shutil

            shutil.rmtree(root / spec.processed, ignore_errors=True)
        from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
        from torch_geometric.data.storage import GlobalStorage

        # ogb 1.3 calls torch.load without weights_only; allow PyG's own classes only
        with torch.serialization.safe_globals([DataEdgeAttr, DataTensorAttr, GlobalStorage]):
            return cls(spec.loader_name, root=str(root))
    return cls(str(root / spec.loader_name), force_reload=force_reload)  # reddit, flickr


def _index_mask(index: torch.Tensor, n: int) -> torch.Tensor:
    mask = torch.zeros(n, dtype=torch.bool)
    mask[index] = True
    return mask


def graph_from(spec: DatasetSpec, dataset: Any) -> Data:
    """The single graph of ``dataset``: ``x`` float32, 1-D ``y``, one split's masks.

    WikiCS ships 20 train/val splits: split 0 is used. ogbn-arxiv's citation edges
    are made undirected, as in OGB's GCN example, and its time split becomes masks.
    """
    data = dataset[0]
    if spec.loader == "wikics":
        data.train_mask = data.train_mask[:, 0].contiguous()
        data.val_mask = data.val_mask[:, 0].contiguous()
        del data.stopping_mask
    if spec.loader == "ogb":
        from torch_geometric.utils import to_undirected

        n = int(data.num_nodes)
        split = dataset.get_idx_split()
        data.y = data.y.view(-1)
        data.edge_index = to_undirected(data.edge_index, num_nodes=n)
        data.train_mask = _index_mask(split["train"], n)
        data.val_mask = _index_mask(split["valid"], n)
        data.test_mask = _index_mask(split["test"], n)
        if "node_year" in data:
            del data.node_year
    data.x = data.x.to(torch.float32)
    return data
