"""``load_dataset``: any registered dataset or graph file as one checked PyG ``Data``."""
from __future__ import annotations

import os
import threading
from typing import Optional

import torch
from torch_geometric.data import Data

from ..checks import check_bool, check_choice, check_int
from .files import graph_path, read_graph_file
from .graph import MASKS, check_graph, check_sets
from .names import canonical_name
from .paths import check_data_root
from .fetch import load_registered
from .permute import label_permutation_seed, permute_test_labels
from .catalogue import lookup
from .splits import SPLITS, apply_split, resolve_split

__all__ = ["load_dataset", "clear_dataset_cache"]

#: The description ``data.split`` carries for a graph file's own masks.
FILE_SPLIT = "masks from the file"

_CACHE: dict[tuple, Data] = {}
_LOCK = threading.RLock()


def clear_dataset_cache() -> None:
    """Forget the in-process cache of :func:`load_dataset`."""
    with _LOCK:
        _CACHE.clear()


def _read_file(name: str) -> tuple[Data, Optional[str]]:
    path = graph_path(name)
    st = path.stat()
    key = ("file", str(path), st.st_size, st.st_mtime_ns)
    with _LOCK:
        data = _CACHE.get(key)
        if data is None:
            data = read_graph_file(path)
            check_graph(data, f"graph file {path}")
            data.x = data.x.to(torch.float32)
            data.edge_index = data.edge_index.long()
            data.y = data.y.long()
            _CACHE[key] = data
    return data, FILE_SPLIT if data.get(MASKS[0]) is not None else None


def load_dataset(
    name: "str | os.PathLike[str]", root: "str | os.PathLike[str] | None" = None, *,
    download: bool = True, normalize_features: bool = False, split: Optional[str] = None,
    split_seed: int = 0,
) -> Data:
    """Load a dataset as a single :class:`~torch_geometric.data.Data`.

    ``name`` is a registered dataset (case-insensitive: the paper's Cora, CiteSeer,
    PubMed, Amazon-Computers, Reddit, and Amazon-Photo, Coauthor-CS,
    Coauthor-Physics, WikiCS, Flickr, ogbn-arxiv) or a path to a graph file
    (``.npz`` in the Amazon/Coauthor layout, or ``.pt`` holding a dict of tensors;
    see :mod:`sgquant.data.files`).

    The result has ``x`` (float32), ``edge_index``, ``y``, ``train_mask``,
    ``val_mask``, ``test_mask``, ``name`` (:func:`canonical_name`) and ``split``, a
    readable description of the split (e.g. ``"random 60/30/10, seed 0"``). ``split``
    is one of ``"public"`` (the dataset's own masks), ``"random-60-30-10"``,
    ``"per-class-20-30"``, or None: ``"public"`` when the dataset has masks, else
    the seeded random 60/30/10 split (``split_seed``).

    Graphs are checked at load (shapes, dtypes, edge ids, labels, masks; features
    with NaN or Inf, and a split that leaves the training, validation or test set
    empty, are refused) and cached per dataset and root in-process; every call
    returns a fresh ``clone()``, so callers may modify it freely. Under
    ``$SGQUANT_PERMUTE_TEST_LABELS`` (:mod:`sgquant.data.permute`) the test nodes' labels
    are permuted among themselves.

    Features are used as given. ``normalize_features=True`` row-normalises them as
    PyG's examples and the authors' scripts do (``T.NormalizeFeatures``); on GCN this
    moves FP32 test accuracy from about 80.8 to 82.3 (Cora) and 68.6 to 71.0
    (CiteSeer), but the features are then no longer binary.

    Raises:
        ValueError: unknown ``name``, a bad graph file, a bad argument, or a data
            root that cannot be used (each one line).
        DatasetUnavailableError: raw files missing (after the mirror) and not
            downloadable (no network, or ``download=False``), or a raw file that
            fails its checksum or its reader (:class:`CorruptRawFileError`).
    """
    download = check_bool(download, "download")
    normalize_features = check_bool(normalize_features, "normalize_features")
    if split is not None:
        check_choice(split, "split", SPLITS)
    split_seed = check_int(split_seed, "split_seed", minimum=0)
    spec = lookup(name)
    if spec is None:
        label = canonical_name(name)  # a graph file's absolute path; raises if unknown
        base, own = _read_file(label)
    else:
        label, own = spec.name, spec.own_split
        root_path = check_data_root(root)
        key = (spec.name, str(root_path.resolve()))
        with _LOCK:
            base = _CACHE.get(key)
            if base is None:
                base = load_registered(spec, root_path, download, root)
                check_graph(base, f"dataset {spec.name!r}")
                _CACHE[key] = base
    chosen = resolve_split(split, own is not None, label)
    data = apply_split(base.clone(), chosen, split_seed, own)
    check_sets(data, f"graph file {label}" if spec is None else f"dataset {spec.name!r}")
    data.name = label
    permutation = label_permutation_seed()
    if permutation is not None:  # a check of the protocol (sgquant.data.permute)
        data = permute_test_labels(data, permutation)
    if normalize_features:
        from torch_geometric.transforms import NormalizeFeatures

        return NormalizeFeatures()(data)
    return data
