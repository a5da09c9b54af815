"""Tests for sgquant.data: names, loading, offline mirror, download rollback."""
from __future__ import annotations

import os
import shutil
import socket
import stat
import time
from pathlib import Path

import pytest
import torch

from data_helpers import SHARED, copy_raw, need_shared, snapshot
from sgquant import data as D
from sgquant.data import (
    DATASETS,
    DatasetUnavailableError,
    REGISTERED,
    available_datasets,
    canonical_name,
    data_root,
    dataset_statistics,
    load_dataset,
    per_class_split,
    raw_dir,
    raw_files,
)

NEEDED = {"Cora": "Cora", "CiteSeer": "CiteSeer", "Amazon-Computers": "Computers"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SGQUANT_DATA", raising=False)
    monkeypatch.delenv("SGQUANT_DATA_MIRROR", raising=False)


@pytest.fixture(scope="session")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding copies of the offline raw files (Cora, CiteSeer, Computers)."""
    need_shared()
    r = tmp_path_factory.mktemp("datasets")
    for folder in NEEDED.values():
        if not (SHARED / folder / "raw").is_dir():
            pytest.skip(f"{SHARED / folder / 'raw'} is absent")
        copy_raw(folder, r)
    return r


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every DNS lookup fail, as on a machine without network."""

    def fail(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (blocked by test)")

    monkeypatch.setattr(socket, "getaddrinfo", fail)


# --- names and paths ---------------------------------------------------------


@pytest.mark.parametrize(
    "alias,expected",
    [
        ("cora", "Cora"),
        ("CORA", "Cora"),
        ("citeseer", "CiteSeer"),
        ("PubMed", "PubMed"),
        ("pubmed", "PubMed"),
        ("computers", "Amazon-Computers"),
        ("amazon-computers", "Amazon-Computers"),
        ("Amazon_Computers", "Amazon-Computers"),
        ("reddit", "Reddit"),
        ("photo", "Amazon-Photo"),
        ("amazon_photo", "Amazon-Photo"),
        ("coauthor-cs", "Coauthor-CS"),
        ("CS", "Coauthor-CS"),
        ("Coauthor Physics", "Coauthor-Physics"),
        ("wikics", "WikiCS"),
        ("flickr", "Flickr"),
        ("OGBN_arxiv", "ogbn-arxiv"),
    ],
)
def test_canonical_name(alias: str, expected: str) -> None:
    assert canonical_name(alias) == expected
    assert expected in REGISTERED
    assert canonical_name(expected) == expected  # idempotent


def test_paper_datasets_stay_five() -> None:
    assert DATASETS == ("Cora", "CiteSeer", "PubMed", "Amazon-Computers", "Reddit")
    assert set(DATASETS) < set(REGISTERED)
    for name in ("Amazon-Photo", "Coauthor-CS", "Coauthor-Physics", "WikiCS", "Flickr",
                 "ogbn-arxiv"):
        assert name in REGISTERED


def test_unknown_name_is_value_error() -> None:
    with pytest.raises(ValueError, match="ogbn-products") as info:
        canonical_name("ogbn-products")
    for name in REGISTERED:
        assert name in str(info.value)
    assert ".npz" in str(info.value) and ".pt" in str(info.value)  # a file is accepted too
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="amazon"):
        load_dataset("amazon")
    with pytest.raises(ValueError):
        raw_files("amazon")
    for bad in (None, 3, ["cora"]):
        with pytest.raises(ValueError, match="Unknown dataset"):
            canonical_name(bad)


def test_data_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert data_root() == Path("~/.cache/sgquant/datasets").expanduser()
    monkeypatch.setenv("SGQUANT_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root(str(tmp_path)) == tmp_path


def test_raw_files() -> None:
    assert raw_files("cora") == [
        f"ind.cora.{s}" for s in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
    ]
    assert "ind.pubmed.allx" in raw_files("PubMed")
    assert raw_files("computers") == ["amazon_electronics_computers.npz"]
    assert raw_files("reddit") == ["reddit_data.npz", "reddit_graph.npz"]
    assert raw_files("cs") == ["ms_academic_cs.npz"]
    assert raw_files("physics") == ["ms_academic_phy.npz"]
    assert raw_files("photo") == ["amazon_electronics_photo.npz"]
    assert raw_files("wikics") == ["data.json"]
    assert "raw/node-feat.csv.gz" in raw_files("ogbn-arxiv")
    assert raw_dir("Coauthor-CS", "/r") == Path("/r/CS/raw")
    assert raw_dir("ogbn-arxiv", "/r") == Path("/r/ogbn_arxiv")


def test_available_datasets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    need_shared()
    copy_raw("Cora", tmp_path)
    assert available_datasets(tmp_path) == ["Cora"]
    monkeypatch.setenv("SGQUANT_DATA_MIRROR", str(SHARED))
    assert available_datasets(tmp_path) == ["Cora", "CiteSeer", "Amazon-Computers"]
    assert not (tmp_path / "CiteSeer").exists()  # nothing copied or loaded
    others = available_datasets(tmp_path, include_other=True)
    assert {"Coauthor-CS", "Coauthor-Physics"} <= set(others) and "WikiCS" not in others
    monkeypatch.setenv("SGQUANT_DATA", str(tmp_path))
    assert "Cora" in available_datasets()


def test_is_available(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    need_shared()
    assert not D.is_available("Coauthor-CS", tmp_path)
    monkeypatch.setenv("SGQUANT_DATA_MIRROR", str(SHARED))
    assert D.is_available("cs", tmp_path) and not D.is_available("WikiCS", tmp_path)
    torch.save({"x": torch.ones(2, 1)}, tmp_path / "g.pt")
    assert D.is_available(tmp_path / "g.pt")  # content is checked by loading it
    assert not D.is_available(str(tmp_path / "absent.pt"))
    assert not any(tmp_path.glob("CS"))  # nothing copied
    with pytest.raises(ValueError, match="Unknown dataset"):
        D.is_available("nope")


# --- loading -----------------------------------------------------------------


def test_cora(root: Path) -> None:
    data = load_dataset("cora", root)
    assert data.name == "Cora"
    assert data.num_nodes == 2708
    assert data.edge_index.size(1) == 10556
    assert data.x.dtype == torch.float32
    assert data.x.size(1) == 1433
    assert int(data.y.max()) + 1 == 7
    sizes = [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)]
    assert sizes == [140, 500, 1000]
    assert float(data.x.sum()) == 49216.0  # features used as given (binary)


def test_load_returns_independent_copies(root: Path) -> None:
    a = load_dataset("Cora", root)
    a.extra = 1
    a.x[0, 0] = 123.0
    a.train_mask[:] = False
    b = load_dataset("Cora", root)
    assert "extra" not in b
    assert float(b.x[0, 0]) != 123.0
    assert int(b.train_mask.sum()) == 140


def test_citeseer(root: Path) -> None:
    data = load_dataset("CiteSeer", root)
    assert (data.num_nodes, data.edge_index.size(1)) == (3327, 9104)
    assert data.x.size(1) == 3703
    assert [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)] == [
        120,
        500,
        1000,
    ]


def test_amazon_computers(root: Path) -> None:
    data = load_dataset("amazon_computers", root)
    assert data.name == "Amazon-Computers"
    assert data.num_nodes == 13752
    assert data.x.size(1) == 767 and data.x.dtype == torch.float32
    assert int(data.y.max()) + 1 == 10
    # default: seeded random 60/30/10 of the 13,752 labelled nodes
    assert data.split == "random 60/30/10, seed 0"
    sizes = [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)]
    assert sizes == [8251, 4126, 13752 - 8251 - 4126]
    assert bool((data.train_mask | data.val_mask | data.test_mask).all())
    # the per-class split of Shchur et al. stays an option
    data = load_dataset("amazon_computers", root, split="per-class-20-30")
    assert data.split.startswith("per class 20/30")
    tr, va, te = data.train_mask, data.val_mask, data.test_mask
    assert (int(tr.sum()), int(va.sum()), int(te.sum())) == (200, 300, 13752 - 500)
    assert not (tr & va).any() and not (tr & te).any() and not (va & te).any()
    assert bool((tr | va | te).all())
    assert torch.bincount(data.y[tr], minlength=10).tolist() == [20] * 10
    assert torch.bincount(data.y[va], minlength=10).tolist() == [30] * 10
    # deterministic: a fresh load (cache cleared) and the public function agree
    D.clear_dataset_cache()
    again = load_dataset("computers", root, split="per-class-20-30")
    for m1, m2 in zip((tr, va, te), (again.train_mask, again.val_mask, again.test_mask)):
        assert torch.equal(m1, m2)
    assert torch.equal(per_class_split(data.y)[0], tr)


def test_per_class_split_rules() -> None:
    y = torch.tensor([0] * 10 + [1] * 12 + [-1] * 3)
    tr, va, te = per_class_split(y, 2, 3, seed=5)
    assert torch.bincount(y[tr]).tolist() == [2, 2]
    assert torch.bincount(y[va]).tolist() == [3, 3]
    assert int(te.sum()) == 5 + 7
    assert not (tr | va | te)[-3:].any()  # unlabeled nodes are in no mask
    tr2, va2, te2 = per_class_split(y, 2, 3, seed=5)
    assert torch.equal(tr, tr2) and torch.equal(va, va2) and torch.equal(te, te2)
    seeds_differ = any(
        not torch.equal(per_class_split(y, 2, 3, seed=s)[0], tr) for s in range(6, 12)
    )
    assert seeds_differ
    with pytest.raises(ValueError, match="class 0"):
        per_class_split(y, 5, 5)


def test_missing_cora_without_download(tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("cora", tmp_path, download=False)
    assert time.perf_counter() - start < 5
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(tmp_path / "Cora" / "raw") in msg
    for f in raw_files("cora"):
        assert f in msg
    assert "SGQUANT_DATA" in msg and "SGQUANT_DATA_MIRROR" in msg
    assert info.value.missing == tuple(raw_files("cora"))
    assert not (tmp_path / "Cora" / "processed").exists()


def test_pubmed_with_mirror_fails_fast_and_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_network: None
) -> None:
    need_shared()
    if (SHARED / "PubMed" / "raw" / "ind.pubmed.allx").exists():
        pytest.skip("the mirror has ind.pubmed.allx; PubMed would load")
    before = snapshot(SHARED)
    monkeypatch.setenv("SGQUANT_DATA_MIRROR", str(SHARED))
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("pubmed", tmp_path)  # download=True: tried, fails (no network)
    elapsed = time.perf_counter() - start
    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    raw = tmp_path / "PubMed" / "raw"
    assert "PubMed" in msg and "ind.pubmed.allx" in msg and str(raw) in msg
    assert "ind.pubmed.tx" not in msg  # only the file still missing is named
    assert info.value.missing == ("ind.pubmed.allx",)
    assert info.value.__cause__ is not None  # network error chained, not shown
    # the 7 mirror files were copied, nothing half-written was left behind
    assert sorted(os.listdir(raw)) == sorted(f for f in raw_files("pubmed") if "allx" not in f)
    assert not (tmp_path / "PubMed" / "processed").exists()
    assert all(os.stat(raw / f).st_mode & stat.S_IWUSR for f in os.listdir(raw))
    assert snapshot(SHARED) == before
    # and without download it fails the same way, before any network attempt
    with pytest.raises(DatasetUnavailableError, match="ind.pubmed.allx"):
        load_dataset("pubmed", tmp_path, download=False)


def test_mirror_is_used_and_never_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    need_shared()
    mirror = tmp_path / "mirror"
    copy_raw("Cora", mirror)  # a writable mirror, so a stray write would show
    before = snapshot(mirror)
    monkeypatch.setenv("SGQUANT_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("SGQUANT_DATA", str(tmp_path / "root"))
    data = load_dataset("cora", download=False)
    assert data.num_nodes == 2708
    copied = tmp_path / "root" / "Cora" / "raw"
    assert sorted(os.listdir(copied)) == sorted(raw_files("cora"))
    assert all(os.access(copied / f, os.W_OK) for f in raw_files("cora"))
    assert snapshot(mirror) == before


def test_failed_download_leaves_no_partial_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_network: None
) -> None:
    need_shared()
    from torch_geometric.io import fs

    raw = copy_raw("Cora", tmp_path, skip=("ind.cora.graph",))

    def partial_cp(src: str, dst: str, *args: object, **kwargs: object) -> None:
        name = src.rsplit("/", 1)[-1]
        with open(os.path.join(dst, name), "wb") as f:
            f.write(b"truncated")
        raise OSError("connection reset (simulated)")

    monkeypatch.setattr(fs, "cp", partial_cp)
    with pytest.raises(DatasetUnavailableError, match="ind.cora.graph") as info:
        load_dataset("cora", tmp_path)
    assert "simulated" in str(info.value.__cause__)
    assert sorted(os.listdir(raw)) == sorted(f for f in raw_files("cora") if "graph" not in f)
    assert not (tmp_path / "Cora" / "processed").exists()
    # the next attempt, with the file in place, works
    shutil.copyfile(SHARED / "Cora" / "raw" / "ind.cora.graph", raw / "ind.cora.graph")
    assert load_dataset("cora", tmp_path).num_nodes == 2708


def test_corrupt_download_leaves_no_processed_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    need_shared()
    from torch_geometric.io import fs

    raw = copy_raw("Cora", tmp_path, skip=("ind.cora.graph",))

    def garbage_cp(src: str, dst: str, *args: object, **kwargs: object) -> None:
        (Path(dst) / src.rsplit("/", 1)[-1]).write_bytes(b"<html>not a pickle</html>")

    with monkeypatch.context() as m:
        m.setattr(fs, "cp", garbage_cp)  # the "download" succeeds, processing fails
        with pytest.raises(DatasetUnavailableError, match="ind.cora.graph"):
            load_dataset("cora", tmp_path)
    assert not (tmp_path / "Cora" / "processed").exists()
    assert sorted(os.listdir(raw)) == sorted(f for f in raw_files("cora") if "graph" not in f)
    shutil.copyfile(SHARED / "Cora" / "raw" / "ind.cora.graph", raw / "ind.cora.graph")
    assert load_dataset("cora", tmp_path, download=False).num_nodes == 2708


def test_interrupted_download_is_undone(tmp_path: Path) -> None:
    need_shared()
    # state left by a process killed mid-download: raw files stashed aside, a
    # truncated download in raw/
    stash = copy_raw("Cora", tmp_path).parent / ".raw-before-download"
    (tmp_path / "Cora" / "raw").rename(stash)
    raw = tmp_path / "Cora" / "raw"
    raw.mkdir()
    for f in raw_files("cora"):
        (raw / f).write_bytes(b"partial")
    assert load_dataset("cora", tmp_path, download=False).num_nodes == 2708
    assert not stash.exists()


def test_corrupt_processed_file_is_rebuilt(tmp_path: Path) -> None:
    need_shared()
    copy_raw("Cora", tmp_path)
    processed = tmp_path / "Cora" / "processed"
    processed.mkdir()
    (processed / "data.pt").write_bytes(b"half-written")
    assert load_dataset("cora", tmp_path).num_nodes == 2708


def test_dataset_statistics(root: Path) -> None:
    s = dataset_statistics(load_dataset("cora", root))
    assert s["nodes"] == 2708 and s["edges"] == 10556 and s["undirected_edges"] == 5278
    assert (s["features"], s["classes"]) == (1433, 7)
    assert (s["train"], s["val"], s["test"]) == (140, 500, 1000)
    assert s["mean_degree"] == pytest.approx(10556 / 2708)
    assert s["isolated_nodes"] == 0 and s["is_undirected"]
    from torch_geometric.data import Data

    g = Data(edge_index=torch.tensor([[0, 1, 1], [1, 0, 2]]), num_nodes=4)
    s = dataset_statistics(g)
    assert (s["edges"], s["undirected_edges"], s["isolated_nodes"]) == (3, 2, 1)
    assert not s["is_undirected"]


def test_normalize_features_option(root: Path) -> None:
    normed = load_dataset("Cora", root, normalize_features=True)
    sums = normed.x.sum(dim=1)
    assert torch.allclose(sums[sums > 0], torch.ones_like(sums[sums > 0]))
    assert set(load_dataset("Cora", root).x.unique().tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match="normalize_features"):
        load_dataset("Cora", root, normalize_features="yes")


@pytest.mark.slow
@pytest.mark.parametrize("name,folder,sizes", [
    ("Coauthor-CS", "CS", (18333, 163788, 6805, 15)),
    ("Coauthor-Physics", "Physics", (34493, 495924, 8415, 5)),
])
def test_coauthor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, folder: str,
                  sizes: tuple) -> None:
    need_shared(folder)
    monkeypatch.setenv("SGQUANT_DATA_MIRROR", str(SHARED))
    s = dataset_statistics(load_dataset(name, tmp_path, download=False))
    assert (s["nodes"], s["edges"], s["features"], s["classes"]) == sizes  # the mirror's README
    n = sizes[0]
    assert (s["train"], s["val"], s["test"]) == ((n * 6 + 5) // 10, (n * 3 + 5) // 10,
                                                  n - (n * 6 + 5) // 10 - (n * 3 + 5) // 10)
    assert s["is_undirected"] and s["split"] == "random 60/30/10, seed 0"
