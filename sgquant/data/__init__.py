"""Datasets: registered graphs by name, a reader's own graph file, splits, statistics.

``load_dataset(name)`` takes a registered dataset (see :mod:`sgquant.data.catalogue`
for the table of names, folders, readers and default splits) or a path to a
``.npz``/``.pt`` graph file (see :mod:`sgquant.data.files`). Raw files are read
with PyTorch Geometric from ``<root>/<Folder>/raw`` (PyG's raw layout), where
``root`` is :func:`data_root`. Features are used as given.

If ``SGQUANT_DATA_MIRROR`` names a folder in the same raw layout, raw files that the
root lacks are copied from it first (the mirror is only read). Missing raw files are
then downloaded by PyG when possible; otherwise :class:`DatasetUnavailableError`
names the folder to fill and the files missing. Raw files with a known checksum
are checked before any reader opens them.

Modules: ``registry`` (names, folders, readers), ``paths`` (the data root), ``raw``
(mirror copies, checksums, download rollback, locks), ``readers`` (PyG/ogb
classes), ``registered`` (loading a registered dataset), ``files`` (graph files),
``graph`` (checks of every loaded graph), ``splits``, ``names`` (canonical,
display and cache names), ``stats``, ``load`` (:func:`load_dataset`), ``permute``
(test labels permuted among the test nodes: a check that no choice reads them).
Degree buckets live in :mod:`sgquant.degree` (re-exported here).
"""
from __future__ import annotations

from ..degree import DegreeBuckets, degree_buckets
from .errors import CorruptRawFileError, DatasetUnavailableError
from .load import clear_dataset_cache, load_dataset
from .names import canonical_name, dataset_key, display_name, has_public_split
from .permute import (PERMUTE_ENV, label_permutation_seed, permute_test_labels,
                      permuted_test_labels)
from .paths import DATA_ENV, DEFAULT_ROOT, data_root
from .raw import DOWNLOAD_TIMEOUT_S, MIRROR_ENV
from .fetch import available_datasets, is_available
from .catalogue import DATASETS, REGISTERED, raw_dir, raw_files
from .splits import SPLITS, per_class_split, random_split
from .stats import dataset_statistics

__all__ = [
    "DATASETS",
    "REGISTERED",
    "SPLITS",
    "CorruptRawFileError",
    "DatasetUnavailableError",
    "PERMUTE_ENV",
    "DegreeBuckets",
    "available_datasets",
    "canonical_name",
    "clear_dataset_cache",
    "data_root",
    "dataset_key",
    "dataset_statistics",
    "has_public_split",
    "degree_buckets",
    "display_name",
    "is_available",
    "label_permutation_seed",
    "load_dataset",
    "per_class_split",
    "permute_test_labels",
    "permuted_test_labels",
    "random_split",
    "raw_dir",
    "raw_files",
]
