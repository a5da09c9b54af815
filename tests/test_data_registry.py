"""Registered datasets beyond the offline mirror, read from small synthetic raw files
in each reader's layout (Reddit, WikiCS, Flickr, ogbn-arxiv), and the optional ogb."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from sgquant.data import (DatasetUnavailableError, clear_dataset_cache, dataset_statistics,
                          load_dataset, raw_dir, raw_files)
from sgquant.data.readers import OGB_INSTALL

N = 20


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SGQUANT_DATA", raising=False)
    monkeypatch.delenv("SGQUANT_DATA_MIRROR", raising=False)
    clear_dataset_cache()


def _ring() -> np.ndarray:
    src = np.arange(N)
    return np.stack([src, (src + 1) % N])


def _features() -> np.ndarray:
    return np.random.default_rng(0).random((N, 5)).astype(np.float32)


def _write_reddit(raw: Path) -> None:
    node_types = np.array([1] * 10 + [2] * 5 + [3] * 5)
    np.savez(raw / "reddit_data.npz", feature=_features(), label=np.arange(N) % 4,
             node_types=node_types)
    ring = _ring()
    sp.save_npz(raw / "reddit_graph.npz", sp.coo_matrix((np.ones(N), (ring[0], ring[1])),
                                                        shape=(N, N)))


def _write_wikics(raw: Path) -> None:
    # split s trains node s and validates node s + 1
    payload = {"features": _features().tolist(), "labels": [i % 4 for i in range(N)],
               "links": [[(i + 1) % N] for i in range(N)],
               "train_masks": [[i == s for i in range(N)] for s in range(20)],
               "val_masks": [[i == (s + 1) % N for i in range(N)] for s in range(20)],
               "stopping_masks": [[False] * N for _ in range(20)],
               "test_mask": [i >= 15 for i in range(N)]}
    (raw / "data.json").write_text(json.dumps(payload))


def _write_flickr(raw: Path) -> None:
    ring = _ring()
    adj = sp.csr_matrix((np.ones(N), (ring[0], ring[1])), shape=(N, N))
    np.savez(raw / "adj_full.npz", data=adj.data, indices=adj.indices, indptr=adj.indptr,
             shape=np.array(adj.shape))
    np.save(raw / "feats.npy", _features())
    (raw / "class_map.json").write_text(json.dumps({str(i): i % 7 for i in range(N)}))
    (raw / "role.json").write_text(json.dumps({"tr": list(range(12)), "va": list(range(12, 16)),
                                               "te": list(range(16, N))}))


def _write_arxiv(folder: Path) -> None:
    (folder / "raw").mkdir(parents=True)
    (folder / "split" / "time").mkdir(parents=True)

    def csv(path: Path, rows: np.ndarray) -> None:
        pd.DataFrame(rows).to_csv(path, header=False, index=False, compression="gzip")

    csv(folder / "raw" / "edge.csv.gz", _ring().T)  # directed citations
    csv(folder / "raw" / "node-feat.csv.gz", _features())
    csv(folder / "raw" / "node-label.csv.gz", (np.arange(N) % 4)[:, None])
    csv(folder / "raw" / "node_year.csv.gz", np.full((N, 1), 2020))
    csv(folder / "raw" / "num-node-list.csv.gz", np.array([[N]]))
    csv(folder / "raw" / "num-edge-list.csv.gz", np.array([[N]]))
    for name, ids in (("train", range(0, 10)), ("valid", range(10, 14)), ("test", range(14, N))):
        csv(folder / "split" / "time" / f"{name}.csv.gz", np.array(list(ids))[:, None])
    (folder / "RELEASE_v1.txt").write_text("")


WRITERS = {"Reddit": _write_reddit, "WikiCS": _write_wikics, "Flickr": _write_flickr}


@pytest.mark.parametrize("name,split,sizes", [
    ("Reddit", "Reddit's own split (GraphSAGE)", (10, 5, 5)),
    ("WikiCS", "WikiCS split 0 of 20", (1, 1, 5)),
    ("Flickr", "Flickr's own split (GraphSAINT)", (12, 4, 4)),
])
def test_pyg_readers_from_the_mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     name: str, split: str, sizes: tuple) -> None:
    mirror = raw_dir(name, tmp_path / "mirror")
    mirror.mkdir(parents=True)
    WRITERS[name](mirror)
    monkeypatch.setenv("SGQUANT_DATA_MIRROR", str(tmp_path / "mirror"))
    data = load_dataset(name, tmp_path / "root", download=False)
    assert data.name == name and data.split == split
    stats = dataset_statistics(data)
    assert (stats["nodes"], stats["features"], stats["train"], stats["val"], stats["test"]) == \
        (N, 5, *sizes)
    assert data.train_mask.dim() == 1 and data.x.dtype == torch.float32
    assert sorted(p.name for p in raw_dir(name, tmp_path / "root").iterdir()) == \
        sorted(raw_files(name))
    random = load_dataset(name, tmp_path / "root", split="random-60-30-10")
    assert [int(m.sum()) for m in (random.train_mask, random.val_mask, random.test_mask)] == \
        [12, 6, 2]


def test_ogbn_arxiv_through_ogb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("ogb.nodeproppred")
    _write_arxiv(raw_dir("ogbn-arxiv", tmp_path / "mirror"))
    monkeypatch.setenv("SGQUANT_DATA_MIRROR", str(tmp_path / "mirror"))
    data = load_dataset("arxiv", tmp_path / "root", download=False)
    assert data.name == "ogbn-arxiv" and data.split == "OGB time split"
    assert data.y.shape == (N,) and data.x.shape == (N, 5)
    stats = dataset_statistics(data)
    assert stats["is_undirected"] and stats["edges"] == 2 * N  # citations made undirected
    assert (stats["train"], stats["val"], stats["test"]) == (10, 4, 6)
    assert "node_year" not in data
    clear_dataset_cache()  # a second process would read the processed file
    assert torch.equal(load_dataset("ogbn-arxiv", tmp_path / "root", download=False).x, data.x)


def test_ogbn_arxiv_without_ogb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _write_arxiv(raw_dir("ogbn-arxiv", tmp_path))
    monkeypatch.setitem(sys.modules, "ogb.nodeproppred", None)  # import fails
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("ogbn-arxiv", tmp_path)
    msg = str(info.value)
    assert OGB_INSTALL in msg and "pip install 'sgquant[ogb]'" in msg and "\n" not in msg


def test_ogb_is_imported_only_when_asked() -> None:
    code = ("import sys, sgquant.data as D; D.canonical_name('ogbn-arxiv'); "
            "D.raw_files('arxiv'); print('ogb' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["ogbn-arxiv", "WikiCS", "Flickr", "Coauthor-CS", "Amazon-Photo"])
def test_missing_raw_files_fail_fast(tmp_path: Path, name: str) -> None:
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset(name, tmp_path, download=False)
    assert time.perf_counter() - start < 5
    msg = str(info.value)
    assert str(raw_dir(name, tmp_path)) in msg and "\n" not in msg
    assert all(f in msg for f in raw_files(name))
    assert not any(tmp_path.iterdir())  # nothing touched


@pytest.mark.parametrize("name", ["ogbn-arxiv", "Amazon-Photo", "WikiCS"])
def test_failed_download_leaves_the_root_as_it_was(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path, name: str) -> None:
    if name == "ogbn-arxiv":
        pytest.importorskip("ogb.nodeproppred")
    import socket

    def fail(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (blocked by test)")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    raw = raw_dir(name, tmp_path)
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match="download failed") as info:
        load_dataset(name, tmp_path)
    assert time.perf_counter() - start < 20
    assert info.value.__cause__ is not None and "\n" not in str(info.value)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert leftovers == [], leftovers
    assert not raw.exists() or not any(raw.iterdir())
