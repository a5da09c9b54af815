"""Helpers shared by the data-layer tests: the offline mirror, raw copies, small graphs."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"


def need_shared(folder: str = "") -> Path:
    """The offline mirror folder (``../shared/datasets/<folder>``), or skip."""
    path = SHARED / folder
    if not path.is_dir():
        pytest.skip(f"offline raw files not found at {path}")
    return path


def copy_raw(folder: str, dest_root: Path, skip: tuple[str, ...] = ()) -> Path:
    """Copy ``<mirror>/<folder>/raw`` into ``dest_root``; returns the raw folder."""
    src = need_shared(f"{folder}/raw")
    dest = dest_root / folder / "raw"
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name not in skip:
            shutil.copyfile(f, dest / f.name)
    return dest


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of everything below ``folder`` (to prove nothing was written)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def amazon_arrays(n: int = 30, f: int = 6, classes: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """A small random graph in the npz layout of PyG's Amazon/Coauthor loaders:
    directed random edges plus two self-loops, non-binary features."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, 4 * n)
    cols = rng.integers(0, n, 4 * n)
    rows, cols = np.concatenate([rows, [0, 1]]), np.concatenate([cols, [0, 1]])
    adj = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(n, n))
    attr = sp.random(n, f, density=0.5, format="csr", random_state=seed, dtype=np.float32)
    labels = np.arange(n) % classes
    return {"adj_data": adj.data, "adj_indices": adj.indices, "adj_indptr": adj.indptr,
            "adj_shape": np.array(adj.shape), "attr_data": attr.data * 3,
            "attr_indices": attr.indices, "attr_indptr": attr.indptr,
            "attr_shape": np.array(attr.shape), "labels": labels}


def ring_graph_file(path: Path, n: int = 40, features: int = 6, classes: int = 3) -> str:
    """A graph file (``.pt``) of an ``n``-node undirected ring with seeded random
    features and ``classes`` labels in turn: a graph a quick-profile run trains on in
    well under a second. Returns its path as a string."""
    import torch

    src = torch.arange(n)
    ring = torch.stack([torch.cat([src, (src + 1) % n]), torch.cat([(src + 1) % n, src])])
    torch.save({"x": torch.rand(n, features, generator=torch.Generator().manual_seed(0)),
                "y": src % classes, "edge_index": ring}, path)
    return str(path)
