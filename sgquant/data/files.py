"""A reader's own graph file: ``.npz`` (Amazon/Coauthor layout) or ``.pt`` (a dict).

``.npz``, the layout PyG's ``Amazon``/``Coauthor`` loaders read (read with
``numpy.load(allow_pickle=False)``): ``adj_data``, ``adj_indices``, ``adj_indptr``,
``adj_shape`` (CSR adjacency, N x N), features as CSR ``attr_data``,
``attr_indices``, ``attr_indptr``, ``attr_shape`` or a dense ``attr_matrix``
(N x F), ``labels`` (N integers), optional ``train_mask``/``val_mask``/``test_mask``.
As PyG does for those datasets, self-loops are dropped and the graph made
undirected; unlike PyG, features are kept as stored (not binarised).

``.pt``, a plain dict of tensors read with ``torch.load(weights_only=True)``: ``x``
(N x F float), ``edge_index`` ([2, E] integer, used as given), ``y`` (N integers),
optional ``train_mask``/``val_mask``/``test_mask`` (N bools).

Every problem is a one-line :class:`ValueError` naming the file.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from .errors import one_line
from .graph import MASKS

__all__ = ["SUFFIXES", "looks_like_path", "graph_path", "file_sha256", "read_graph_file"]

SUFFIXES = (".npz", ".pt")
_NPZ_GRAPH = ("adj_data", "adj_indices", "adj_indptr", "adj_shape", "labels")
_NPZ_ATTR = ("attr_data", "attr_indices", "attr_indptr", "attr_shape")
_PT_KEYS = ("x", "edge_index", "y")
_HASHES: dict[tuple[str, int, int], str] = {}


def looks_like_path(name: object) -> bool:
    """True for a ``PathLike``, or a string with a path separator or a ``.npz``/``.pt``
    suffix, or naming an existing file."""
    if isinstance(name, os.PathLike):
        return True
    if not isinstance(name, str):
        return False
    return ("/" in name or os.sep in name or name.lower().endswith(SUFFIXES)
            or os.path.isfile(name))


def _bad(path: Path, problem: str) -> ValueError:
    return ValueError(f"graph file {path}: {problem}")


def graph_path(name: "str | os.PathLike[str]") -> Path:
    """``name`` as an absolute path to an existing ``.npz``/``.pt`` file."""
    path = Path(name).expanduser()
    if not path.exists():
        raise _bad(path, "does not exist")
    if not path.is_file():
        raise _bad(path, "is not a file")
    if path.suffix.lower() not in SUFFIXES:
        raise _bad(path, f"suffix {path.suffix!r} is not one of {', '.join(SUFFIXES)} (.npz in "
                         f"the Amazon/Coauthor layout, .pt a dict of tensors)")
    return path.resolve()


def file_sha256(path: Path) -> str:
    """sha256 of a file's content (remembered per path, size and modification time)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _array(f: Any, key: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(f[key])
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _bad(path, f"array {key!r} could not be read ({one_line(exc)})") from None


def _csr(f: Any, prefix: str, path: Path) -> Any:
    import scipy.sparse as sp

    shape = _array(f, f"{prefix}_shape", path)
    if shape.shape != (2,) or not np.issubdtype(shape.dtype, np.integer):
        raise _bad(path, f"{prefix}_shape must be two integers, got {shape.tolist()!r}")
    parts = [_array(f, f"{prefix}_{k}", path) for k in ("data", "indices", "indptr")]
    try:
        matrix = sp.csr_matrix(tuple(parts), shape=tuple(int(s) for s in shape))
        matrix.check_format(full_check=True)
    except (ValueError, TypeError) as exc:
        raise _bad(path, f"{prefix}_data/{prefix}_indices/{prefix}_indptr do not form a CSR "
                         f"matrix of shape {tuple(shape.tolist())} ({one_line(exc)})") from None
    return matrix


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _bad(path, f"could not be read as .npz ({one_line(exc)})") from None
    with f:
        keys = set(f.files)
        absent = [k for k in _NPZ_GRAPH if k not in keys]
        if "attr_matrix" not in keys and not all(k in keys for k in _NPZ_ATTR):
            absent.append("attr_matrix (or attr_data, attr_indices, attr_indptr, attr_shape)")
        if absent:
            raise _bad(path, f"lacks array(s) {', '.join(absent)}; it has "
                             f"{', '.join(sorted(keys)) or 'none'}")
        adj = _csr(f, "adj", path)
        if "attr_matrix" in keys:
            x = _array(f, "attr_matrix", path)
            if x.ndim != 2:
                raise _bad(path, f"attr_matrix must be 2-D [nodes, features], got shape {x.shape}")
        else:
            x = _csr(f, "attr", path).toarray()
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise _bad(path, f"features must be numbers, got dtype {x.dtype}")
        n = x.shape[0]
        if adj.shape != (n, n):
            raise _bad(path, f"adj_shape must be ({n}, {n}) for {n} nodes (rows of the "
                             f"features), got {adj.shape}")
        labels = _array(f, "labels", path)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise _bad(path, f"labels must be a 1-D integer array, got shape {labels.shape}, "
                             f"dtype {labels.dtype}")
        out = {"x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
               "edge_index": _edges(adj, n), "y": torch.from_numpy(labels)}
        for m in MASKS:
            if m in keys:
                out[m] = torch.from_numpy(_array(f, m, path))
        return out


def _edges(adj: Any, n: int) -> torch.Tensor:
    from torch_geometric.utils import remove_self_loops, to_undirected

    coo = adj.tocoo()
    ei = torch.stack([torch.from_numpy(coo.row).long(), torch.from_numpy(coo.col).long()])
    return to_undirected(remove_self_loops(ei)[0], num_nodes=n)


def _load_error(path: Path, exc: Exception) -> ValueError:
    """Why ``torch.load(weights_only=True)`` refused ``path``, in plain words: objects
    that only running code could rebuild (the class named), or the unpickler's own
    reason without PyTorch's advice to load it unsafely."""
    text = " ".join(str(exc).split())
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if isinstance(exc, pickle.UnpicklingError) and found:
        return _bad(path, f"holds objects that are not tensors ({found.group(1)}), and "
                          f"loading it would run code stored in the file, so it is refused; "
                          f"save a plain dict of tensors instead: "
                          f"torch.save(data.to_dict(), path)")
    reason = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
    detail = f"{type(exc).__name__}: {reason.group(1)}" if reason else one_line(exc)
    return _bad(path, f"could not be read by torch.load(weights_only=True) ({detail})")


def _read_pt(path: Path) -> dict[str, Any]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise _load_error(path, exc) from None
    if not isinstance(obj, dict):
        raise _bad(path, f"holds a {type(obj).__name__}; expected a dict of tensors with keys "
                         f"{', '.join(_PT_KEYS)} (optional {', '.join(MASKS)})")
    absent = [k for k in _PT_KEYS if k not in obj]
    if absent:
        raise _bad(path, f"lacks key(s) {', '.join(absent)}; it has "
                         f"{', '.join(map(str, obj)) or 'none'}")
    out = {}
    for key in (*_PT_KEYS, *MASKS):
        if key in obj:
            if not isinstance(obj[key], torch.Tensor):
                raise _bad(path, f"{key} is a {type(obj[key]).__name__}, expected a torch.Tensor")
            out[key] = obj[key]
    return out


def read_graph_file(path: Path) -> Data:
    """The graph stored in ``path`` (see the module docstring for the layouts),
    not yet checked: :func:`~sgquant.data.graph.check_graph` does that."""
    tensors = _read_npz(path) if path.suffix.lower() == ".npz" else _read_pt(path)
    return Data(**tensors)
