"""Dataset loading, the offline raw-file mirror, and degree buckets.

Datasets are read with PyTorch Geometric from ``<root>/<Folder>/raw`` (PyG's raw
layout), where ``root`` is :func:`data_root`:

=================  ======================  ==========================================
name               folder                  split
=================  ======================  ==========================================
Cora               ``Cora/raw``            Planetoid public split (140/500/1000)
CiteSeer           ``CiteSeer/raw``        Planetoid public split (120/500/1000)
PubMed             ``PubMed/raw``          Planetoid public split (60/500/1000)
Amazon-Computers   ``Computers/raw``       :func:`per_class_split` (20/30 per class, seed 0)
Reddit             ``Reddit/raw``          Reddit's own split
=================  ======================  ==========================================

Features are used as given (no ``NormalizeFeatures``).

If ``SGQUANT_DATA_MIRROR`` names a folder in the same raw layout, raw files that the
root lacks are copied from it first (the mirror is only read). Missing raw files are
then downloaded by PyG when possible; otherwise :class:`DatasetUnavailableError` names
the folder to fill and the files missing.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor
from torch_geometric.data import Data

__all__ = [
    "DATASETS",
    "DatasetUnavailableError",
    "DegreeBuckets",
    "available_datasets",
    "canonical_name",
    "clear_dataset_cache",
    "data_root",
    "dataset_statistics",
    "degree_buckets",
    "load_dataset",
    "per_class_split",
    "raw_dir",
    "raw_files",
]

DATASETS: tuple[str, ...] = ("Cora", "CiteSeer", "PubMed", "Amazon-Computers", "Reddit")

#: Environment variable naming the data root.
DATA_ENV = "SGQUANT_DATA"
#: Environment variable naming a read-only folder of raw files in PyG layout.
MIRROR_ENV = "SGQUANT_DATA_MIRROR"
#: Default data root when neither argument nor ``SGQUANT_DATA`` is given.
DEFAULT_ROOT = Path("~/.cache/sgquant/datasets")
#: Socket timeout (seconds) applied while PyG downloads, if none is set globally.
DOWNLOAD_TIMEOUT_S = 60.0

_ALIASES: dict[str, str] = {
    "cora": "Cora",
    "citeseer": "CiteSeer",
    "pubmed": "PubMed",
    "computers": "Amazon-Computers",
    "amazon-computers": "Amazon-Computers",
    "amazoncomputers": "Amazon-Computers",
    "reddit": "Reddit",
}

# Folder under the root that holds ``raw/`` and ``processed/`` (PyG 2.8 layout).
_FOLDER: dict[str, str] = {
    "Cora": "Cora",
    "CiteSeer": "CiteSeer",
    "PubMed": "PubMed",
    "Amazon-Computers": "Computers",
    "Reddit": "Reddit",
}

_PLANETOID_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


class DatasetUnavailableError(ValueError):
    """A dataset's raw files are missing and could not be downloaded.

    Subclasses :class:`ValueError` so callers treating "bad dataset" uniformly keep
    working. ``dataset``, ``raw_dir`` and ``missing`` describe what to provide.
    """

    def __init__(
        self,
        message: str,
        *,
        dataset: str | None = None,
        raw_dir: Path | None = None,
        missing: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.raw_dir = raw_dir
        self.missing = tuple(missing)

    def __reduce__(self) -> Any:  # keep attributes across process pools
        return (_rebuild_unavailable, (str(self), self.dataset, self.raw_dir, self.missing))


def _rebuild_unavailable(
    message: str, dataset: str | None, raw_dir: Path | None, missing: tuple[str, ...]
) -> DatasetUnavailableError:
    return DatasetUnavailableError(message, dataset=dataset, raw_dir=raw_dir, missing=missing)


# ---------------------------------------------------------------------------
# names and paths
# ---------------------------------------------------------------------------


def canonical_name(name: str) -> str:
    """Return the canonical dataset name for a case-insensitive alias.

    Accepts e.g. ``"cora"``, ``"citeseer"``, ``"pubmed"``, ``"computers"``,
    ``"amazon-computers"``, ``"amazon_computers"``, ``"reddit"``.
    """
    if isinstance(name, str):
        key = name.strip().lower().replace("_", "-").replace(" ", "-")
        if key in _ALIASES:
            return _ALIASES[key]
    raise ValueError(
        f"Unknown dataset {name!r}; allowed: {', '.join(DATASETS)} "
        f"(aliases, case-insensitive: {', '.join(sorted(_ALIASES))}, amazon_computers)"
    )


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``root`` if given, else ``$SGQUANT_DATA``, else
    ``~/.cache/sgquant/datasets``."""
    if root is None:
        root = os.environ.get(DATA_ENV) or DEFAULT_ROOT
    return Path(root).expanduser()


def raw_files(name: str) -> list[str]:
    """The raw file names PyG expects in ``<root>/<Folder>/raw`` for ``name``."""
    canon = canonical_name(name)
    if canon in ("Cora", "CiteSeer", "PubMed"):
        return [f"ind.{canon.lower()}.{s}" for s in _PLANETOID_SUFFIXES]
    if canon == "Amazon-Computers":
        return ["amazon_electronics_computers.npz"]
    return ["reddit_data.npz", "reddit_graph.npz"]  # Reddit


def raw_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder ``<root>/<Folder>/raw`` that holds ``name``'s raw files."""
    return data_root(root) / _FOLDER[canonical_name(name)] / "raw"


def _mirror_root() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    return Path(value).expanduser() if value else None


def _missing(directory: Path, files: list[str]) -> list[str]:
    return [f for f in files if not (directory / f).is_file()]


def available_datasets(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Canonical names whose raw files are all present, each file either in the root
    or in the ``SGQUANT_DATA_MIRROR`` folder. Nothing is loaded or copied."""
    mirror = _mirror_root()
    out = []
    for canon in DATASETS:
        missing = _missing(raw_dir(canon, root), raw_files(canon))
        if missing and mirror is not None:
            missing = _missing(mirror / _FOLDER[canon] / "raw", missing)
        if not missing:
            out.append(canon)
    return out


def _copy_from_mirror(canon: str, dest: Path) -> list[str]:
    """Copy raw files missing in ``dest`` from the mirror (read-only there).

    Each file goes to a temporary name and is renamed, so an interrupted copy leaves
    no partial raw file. Returns the names copied.
    """
    mirror = _mirror_root()
    if mirror is None:
        return []
    src_dir = mirror / _FOLDER[canon] / "raw"
    if not src_dir.is_dir():
        return []
    with contextlib.suppress(OSError):
        if dest.is_dir() and os.path.samefile(src_dir, dest):
            return []
    for stale in dest.glob(".*.part") if dest.is_dir() else ():  # interrupted copies
        _remove(stale)
    copied = []
    for fname in _missing(dest, raw_files(canon)):
        src = src_dir / fname
        if not src.is_file():
            continue
        dest.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=dest)
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)  # contents only: the copy stays writable
            os.replace(tmp, dest / fname)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        copied.append(fname)
    return copied


def _unavailable(
    canon: str, raw: Path, missing: list[str], reason: str
) -> DatasetUnavailableError:
    mirror = _mirror_root()
    if mirror is None:
        mirror_note = f"{MIRROR_ENV} is not set"
    elif (mirror / _FOLDER[canon] / "raw").is_dir():
        mirror_note = f"{MIRROR_ENV}={mirror} lacks them too"
    else:
        mirror_note = f"{MIRROR_ENV}={mirror} has no {_FOLDER[canon]}/raw folder"
    msg = (
        f"Dataset {canon!r} is unavailable: {reason}. "
        f"Place the missing raw file(s) {', '.join(missing)} in the folder {raw} "
        f"(PyG raw layout), or set {DATA_ENV} to a data root that has them, or "
        f"{MIRROR_ENV} to a folder in the same raw layout to copy them from "
        f"({mirror_note})."
    )
    return DatasetUnavailableError(msg, dataset=canon, raw_dir=raw, missing=tuple(missing))


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------

_CACHE: dict[tuple[str, str], Data] = {}
_LOCK = threading.RLock()


def clear_dataset_cache() -> None:
    """Forget the in-process cache of :func:`load_dataset`."""
    with _LOCK:
        _CACHE.clear()


@contextlib.contextmanager
def _download_timeout(seconds: float) -> Iterator[None]:
    # PyG's ``download_url`` calls ``urlopen`` without a timeout; bound it (process
    # wide, for the duration of the load) unless the caller already set one.
    if socket.getdefaulttimeout() is not None:
        yield
        return
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(None)


def _pyg_dataset(canon: str, root: Path, force_reload: bool) -> Any:
    from torch_geometric.datasets import Amazon, Planetoid, Reddit

    if canon in ("Cora", "CiteSeer", "PubMed"):
        return Planetoid(str(root), canon, split="public", force_reload=force_reload)
    if canon == "Amazon-Computers":
        return Amazon(str(root), "Computers", force_reload=force_reload)
    return Reddit(str(root / "Reddit"), force_reload=force_reload)


_PENDING = ".raw-before-download"  # sibling of raw/: raw files stashed during a download
_LOCKFILE = ".sgquant.lock"


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Exclusive inter-process lock on a dataset folder (POSIX ``flock``; a no-op
    where unavailable, e.g. a read-only root)."""
    try:
        import fcntl

        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / _LOCKFILE, "a")  # noqa: SIM115
    except (ImportError, OSError):
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _stash_raw(folder: Path) -> None:
    """Move every entry of ``raw/`` aside before PyG downloads (PyG re-downloads all
    raw files when one is missing, overwriting the others in place)."""
    raw, pending = folder / "raw", folder / _PENDING
    pending.mkdir(parents=True, exist_ok=True)
    raw.mkdir(parents=True, exist_ok=True)
    for entry in os.listdir(raw):
        os.replace(raw / entry, pending / entry)


def _restore_raw(folder: Path) -> None:
    """Undo a failed or interrupted download: ``raw/`` becomes what it was before."""
    raw, pending = folder / "raw", folder / _PENDING
    if not pending.is_dir():
        return
    raw.mkdir(parents=True, exist_ok=True)
    for entry in os.listdir(raw):  # possibly partial downloads
        _remove(raw / entry)
    for entry in os.listdir(pending):
        os.replace(pending / entry, raw / entry)
    shutil.rmtree(pending, ignore_errors=True)


def _load_uncached(canon: str, root: Path, download: bool) -> Data:
    folder = root / _FOLDER[canon]
    raw = folder / "raw"
    processed = folder / "processed"
    files = raw_files(canon)

    if not download:  # fail fast, touching nothing, when the files cannot be had
        mirror = _mirror_root()
        missing = _missing(raw, files)
        if missing and mirror is not None:
            missing = _missing(mirror / _FOLDER[canon] / "raw", missing)
        if missing and not (folder / _PENDING).is_dir():
            raise _unavailable(canon, raw, missing, "raw files are missing and download=False")

    with _folder_lock(folder):
        _restore_raw(folder)  # left by an interrupted download, if any
        _copy_from_mirror(canon, raw)
        missing = _missing(raw, files)
        if missing and not download:
            raise _unavailable(canon, raw, missing, "raw files are missing and download=False")

        processed_existed = processed.exists()
        if missing:
            _stash_raw(folder)
        try:
            with _download_timeout(DOWNLOAD_TIMEOUT_S):
                try:
                    dataset = _pyg_dataset(canon, root, force_reload=False)
                except Exception:
                    # A processed/ file left by an interrupted earlier run: rebuild
                    # it from the raw files once.
                    if missing or not processed_existed:
                        raise
                    dataset = _pyg_dataset(canon, root, force_reload=True)
        except Exception as exc:
            # Leave nothing half-written: a processed/ folder created by this attempt,
            # and raw files it downloaded (the previous raw files come back).
            if not processed_existed:
                shutil.rmtree(processed, ignore_errors=True)
            if missing:
                _restore_raw(folder)
                reason = (
                    f"raw files are missing and the download failed "
                    f"({type(exc).__name__}: {exc})"
                )
                raise _unavailable(canon, raw, _missing(raw, files) or missing, reason) from exc
            raise
        if missing:
            shutil.rmtree(folder / _PENDING, ignore_errors=True)

    data = dataset[0]
    data.x = data.x.to(torch.float32)
    if canon == "Amazon-Computers":
        data.train_mask, data.val_mask, data.test_mask = per_class_split(data.y)
    data.name = canon
    return data


def load_dataset(
    name: str, root: str | os.PathLike[str] | None = None, *, download: bool = True,
    normalize_features: bool = False,
) -> Data:
    """Load a dataset as a single :class:`~torch_geometric.data.Data`.

    The result has ``x`` (float32), ``edge_index``, ``y``, ``train_mask``,
    ``val_mask``, ``test_mask`` and ``name`` (canonical). Loaded graphs are cached
    per ``(name, root)`` in-process; every call returns a fresh ``clone()``, so
    callers may modify it freely.

    Features are used as given (the project's protocol: Cora's and CiteSeer's
    are binary). ``normalize_features=True`` row-normalises them as PyG's
    examples and the authors' scripts do (``T.NormalizeFeatures``); on GCN this
    moves FP32 test accuracy from about 80.8 to 82.3 (Cora) and 68.6 to 71.0
    (CiteSeer), but the features are then no longer binary.

    Raises:
        ValueError: unknown ``name``.
        DatasetUnavailableError: raw files missing (after the mirror) and not
            downloadable (no network, or ``download=False``).
    """
    canon = canonical_name(name)
    root_path = data_root(root)
    key = (canon, str(root_path.resolve()))
    with _LOCK:
        data = _CACHE.get(key)
        if data is None:
            data = _load_uncached(canon, root_path, download)
            _CACHE[key] = data
    if not isinstance(normalize_features, bool):
        raise ValueError(f"normalize_features must be True or False, got {normalize_features!r}")
    if normalize_features:
        from torch_geometric.transforms import NormalizeFeatures
        return NormalizeFeatures()(data.clone())
    return data.clone()


def per_class_split(
    y: Tensor,
    num_train_per_class: int = 20,
    num_val_per_class: int = 30,
    seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Seeded per-class split (Shchur et al., 2018): per class, ``num_train_per_class``
    nodes for training, ``num_val_per_class`` for validation, the rest for test.

    One ``torch.Generator`` seeded with ``seed`` draws a permutation of each class's
    nodes, classes in ascending label order. Nodes with a negative label are in no
    mask. Raises :class:`ValueError` if a class has no node left for test.
    """
    if y.dim() != 1:
        raise ValueError(f"per_class_split needs 1-D labels, got shape {tuple(y.shape)}")
    if num_train_per_class < 0 or num_val_per_class < 0:
        raise ValueError(
            f"num_train_per_class and num_val_per_class must be >= 0, got "
            f"{num_train_per_class} and {num_val_per_class}"
        )
    y = y.cpu()
    gen = torch.Generator().manual_seed(int(seed))
    train = torch.zeros(y.numel(), dtype=torch.bool)
    val = torch.zeros_like(train)
    test = torch.zeros_like(train)
    need = num_train_per_class + num_val_per_class
    for c in torch.unique(y[y >= 0]).tolist():
        idx = (y == c).nonzero(as_tuple=False).view(-1)
        if idx.numel() <= need:
            raise ValueError(
                f"class {c} has {idx.numel()} nodes; per_class_split needs more than "
                f"{num_train_per_class} + {num_val_per_class} = {need}"
            )
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        train[idx[:num_train_per_class]] = True
        val[idx[num_train_per_class:need]] = True
        test[idx[need:]] = True
    return train, val, test


# ---------------------------------------------------------------------------
# degree buckets
# ---------------------------------------------------------------------------


def _graph_fingerprint(edge_index: Tensor, num_nodes: int) -> str:
    ei = edge_index.detach().to("cpu", torch.int64).contiguous()
    digest = hashlib.blake2b(memoryview(ei.numpy()), digest_size=8).hexdigest()
    return f"n{int(num_nodes)}-e{ei.size(1)}-{digest}"


def _check_edge_index(edge_index: Tensor, num_nodes: int) -> None:
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index)
        raise ValueError(f"edge_index must be a [2, num_edges] tensor, got {shape}")
    if int(num_nodes) < 0:
        raise ValueError(f"num_nodes must be >= 0, got {num_nodes}")
    if edge_index.numel() and (
        int(edge_index.min()) < 0 or int(edge_index.max()) >= int(num_nodes)
    ):
        raise ValueError(
            f"edge_index has node ids outside [0, {int(num_nodes)}): "
            f"min {int(edge_index.min())}, max {int(edge_index.max())}"
        )


@dataclass(frozen=True)
class DegreeBuckets:
    """Nodes grouped by in-degree for topology-aware quantization.

    Node ``v`` is in bucket ``j`` iff ``edges[j-1] < deg(v) <= edges[j]`` (with
    ``edges[-1] = -inf`` and ``edges[num_buckets-1] = +inf``); bucket 0 holds the
    lowest degrees. ``fingerprint`` identifies the graph the buckets were computed on
    (see :meth:`check_graph`). Equality compares the fingerprint, edges and ids.
    """

    bucket: Tensor
    edges: tuple[float, ...]
    num_buckets: int
    num_nodes: int
    num_edges: int
    fingerprint: str

    def __post_init__(self) -> None:
        if self.num_buckets < 1:
            raise ValueError(f"num_buckets must be >= 1, got {self.num_buckets}")
        if len(self.edges) != self.num_buckets - 1:
            raise ValueError(
                f"need {self.num_buckets - 1} edges for {self.num_buckets} buckets, "
                f"got {len(self.edges)}"
            )
        if self.bucket.shape != (self.num_nodes,):
            raise ValueError(
                f"bucket must have shape ({self.num_nodes},), got {tuple(self.bucket.shape)}"
            )

    @property
    def counts(self) -> list[int]:
        """Number of nodes in each bucket (empty buckets give 0)."""
        return torch.bincount(self.bucket.cpu(), minlength=self.num_buckets).tolist()

    def check_graph(self, edge_index: Tensor, num_nodes: int) -> None:
        """Raise :class:`ValueError` unless these buckets were computed on this graph."""
        num_nodes = int(num_nodes)
        if num_nodes != self.num_nodes:
            raise ValueError(
                f"degree buckets were computed on a graph with {self.num_nodes} nodes, "
                f"got num_nodes={num_nodes}"
            )
        num_edges = int(edge_index.size(1)) if edge_index.dim() == 2 else -1
        if num_edges != self.num_edges:
            raise ValueError(
                f"degree buckets were computed on a graph with {self.num_edges} edges, "
                f"got edge_index with {num_edges} edges (shape {tuple(edge_index.shape)})"
            )
        fp = _graph_fingerprint(edge_index, num_nodes)
        if fp != self.fingerprint:
            raise ValueError(
                f"degree buckets were computed on another graph: fingerprint "
                f"{self.fingerprint} != {fp} (same node and edge counts, different "
                f"edge_index content or order)"
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DegreeBuckets):
            return NotImplemented
        return (
            self.fingerprint == other.fingerprint
            and self.edges == other.edges
            and self.num_buckets == other.num_buckets
            and torch.equal(self.bucket.cpu(), other.bucket.cpu())
        )

    def __hash__(self) -> int:
        return hash((self.fingerprint, self.edges, self.num_buckets))


def degree_buckets(edge_index: Tensor, num_nodes: int, num_buckets: int = 3) -> DegreeBuckets:
    """Split nodes into ``num_buckets`` in-degree buckets with quantile edges.

    In-degree counts edges at their target (``edge_index[1]``). The target edge
    ``j`` (``j = 1..J-1``) is the lower ``j/J`` quantile of the node degrees
    (``sorted_deg[floor(j/J * (N-1))]``). Degrees are heavily tied, so the targets are
    then snapped to distinct degree values, in order: edge ``j`` is moved up to the
    next distinct degree above edge ``j-1`` and down so that enough distinct degrees
    remain above it for the buckets after it. Hence, when the graph has at least
    ``J`` distinct in-degrees, every bucket is non-empty; with ``K < J`` distinct
    degrees, the ``K`` degrees take buckets ``0..K-1`` and the top buckets are empty.
    Equal degrees always share a bucket, and bucket ids are monotone in degree.
    """
    if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 1:
        raise ValueError(f"num_buckets must be an integer >= 1, got {num_buckets!r}")
    num_nodes = int(num_nodes)
    _check_edge_index(edge_index, num_nodes)
    from torch_geometric.utils import degree

    deg = degree(edge_index[1], num_nodes, dtype=torch.long)
    J = num_buckets
    distinct = torch.unique(deg)  # sorted ascending
    K = distinct.numel()
    if J == 1 or K == 0:
        edge_vals = [float(distinct[-1]) if K else 0.0] * (J - 1)
        bucket = torch.zeros(num_nodes, dtype=torch.long, device=deg.device)
    else:
        sorted_deg = torch.sort(deg).values
        n = sorted_deg.numel()
        edge_pos: list[int] = []  # positions in ``distinct``
        for j in range(1, J):
            target = sorted_deg[(j * (n - 1)) // J]
            pos = int(torch.searchsorted(distinct, target))
            lo = edge_pos[-1] + 1 if edge_pos else 0
            hi = K - 1 - (J - j)  # leave J - j distinct degrees above this edge
            pos = max(min(pos, hi), lo)
            edge_pos.append(min(pos, K - 1))
        thresholds = distinct[torch.tensor(edge_pos, device=distinct.device)]
        # number of edges strictly below the degree = bucket id
        bucket = torch.searchsorted(thresholds, deg, right=False)
        edge_vals = [float(t) for t in thresholds.tolist()]
    return DegreeBuckets(
        bucket=bucket,
        edges=tuple(edge_vals),
        num_buckets=J,
        num_nodes=num_nodes,
        num_edges=int(edge_index.size(1)),
        fingerprint=_graph_fingerprint(edge_index, num_nodes),
    )


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------


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
