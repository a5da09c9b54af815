"""Tests for sgquant.data: loading, offline mirror, splits, degree buckets."""
from __future__ import annotations

import os
import shutil
import socket
import stat
import time
from pathlib import Path

import pytest
import torch

from sgquant import data as D
from sgquant.data import (
    DATASETS,
    DatasetUnavailableError,
    DegreeBuckets,
    available_datasets,
    canonical_name,
    data_root,
    dataset_statistics,
    degree_buckets,
    load_dataset,
    per_class_split,
    raw_files,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
NEEDED = {"Cora": "Cora", "CiteSeer": "CiteSeer", "Amazon-Computers": "Computers"}


def _need_shared() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"offline raw files not found at {SHARED} (../shared/datasets)")


def _copy_raw(folder: str, dest_root: Path, skip: tuple[str, ...] = ()) -> Path:
    dest = dest_root / folder / "raw"
    dest.mkdir(parents=True, exist_ok=True)
    for f in (SHARED / folder / "raw").iterdir():
        if f.name not in skip:
            shutil.copyfile(f, dest / f.name)
    return dest


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SGQUANT_DATA", raising=False)
    monkeypatch.delenv("SGQUANT_DATA_MIRROR", raising=False)


@pytest.fixture(scope="session")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding copies of the offline raw files (Cora, CiteSeer, Computers)."""
    _need_shared()
    r = tmp_path_factory.mktemp("datasets")
    for folder in NEEDED.values():
        if not (SHARED / folder / "raw").is_dir():
            pytest.skip(f"{SHARED / folder / 'raw'} is absent")
        _copy_raw(folder, r)
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
    ],
)
def test_canonical_name(alias: str, expected: str) -> None:
    assert canonical_name(alias) == expected
    assert expected in DATASETS


def test_unknown_name_is_value_error() -> None:
    with pytest.raises(ValueError, match="ogbn-arxiv") as info:
        canonical_name("ogbn-arxiv")
    for name in DATASETS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="photo"):
        load_dataset("photo")
    with pytest.raises(ValueError):
        raw_files("amazon")


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


def test_available_datasets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _need_shared()
    _copy_raw("Cora", tmp_path)
    assert available_datasets(tmp_path) == ["Cora"]
    monkeypatch.setenv("SGQUANT_DATA_MIRROR", str(SHARED))
    assert available_datasets(tmp_path) == ["Cora", "CiteSeer", "Amazon-Computers"]
    assert not (tmp_path / "CiteSeer").exists()  # nothing copied or loaded
    monkeypatch.setenv("SGQUANT_DATA", str(tmp_path))
    assert "Cora" in available_datasets()


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
    tr, va, te = data.train_mask, data.val_mask, data.test_mask
    assert (int(tr.sum()), int(va.sum()), int(te.sum())) == (200, 300, 13752 - 500)
    assert not (tr & va).any() and not (tr & te).any() and not (va & te).any()
    assert bool((tr | va | te).all())
    assert torch.bincount(data.y[tr], minlength=10).tolist() == [20] * 10
    assert torch.bincount(data.y[va], minlength=10).tolist() == [30] * 10
    # deterministic: a fresh load (cache cleared) and the public function agree
    D.clear_dataset_cache()
    again = load_dataset("computers", root)
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
    _need_shared()
    if (SHARED / "PubMed" / "raw" / "ind.pubmed.allx").exists():
        pytest.skip("the mirror has ind.pubmed.allx; PubMed would load")
    before = _snapshot(SHARED)
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
    assert _snapshot(SHARED) == before
    # and without download it fails the same way, before any network attempt
    with pytest.raises(DatasetUnavailableError, match="ind.pubmed.allx"):
        load_dataset("pubmed", tmp_path, download=False)


def test_mirror_is_used_and_never_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _need_shared()
    mirror = tmp_path / "mirror"
    _copy_raw("Cora", mirror)  # a writable mirror, so a stray write would show
    before = _snapshot(mirror)
    monkeypatch.setenv("SGQUANT_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("SGQUANT_DATA", str(tmp_path / "root"))
    data = load_dataset("cora", download=False)
    assert data.num_nodes == 2708
    copied = tmp_path / "root" / "Cora" / "raw"
    assert sorted(os.listdir(copied)) == sorted(raw_files("cora"))
    assert all(os.access(copied / f, os.W_OK) for f in raw_files("cora"))
    assert _snapshot(mirror) == before


def test_failed_download_leaves_no_partial_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_network: None
) -> None:
    _need_shared()
    from torch_geometric.io import fs

    raw = _copy_raw("Cora", tmp_path, skip=("ind.cora.graph",))

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
    _need_shared()
    from torch_geometric.io import fs

    raw = _copy_raw("Cora", tmp_path, skip=("ind.cora.graph",))

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
    _need_shared()
    # state left by a process killed mid-download: raw files stashed aside, a
    # truncated download in raw/
    stash = _copy_raw("Cora", tmp_path).parent / ".raw-before-download"
    (tmp_path / "Cora" / "raw").rename(stash)
    raw = tmp_path / "Cora" / "raw"
    raw.mkdir()
    for f in raw_files("cora"):
        (raw / f).write_bytes(b"partial")
    assert load_dataset("cora", tmp_path, download=False).num_nodes == 2708
    assert not stash.exists()


def test_corrupt_processed_file_is_rebuilt(tmp_path: Path) -> None:
    _need_shared()
    _copy_raw("Cora", tmp_path)
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


# --- degree buckets ----------------------------------------------------------


def _graph_with_in_degrees(degs: list[int]) -> tuple[torch.Tensor, int]:
    n = len(degs)
    dst = [v for v, d in enumerate(degs) for _ in range(d)]
    src = [(v + 1) % n for v in dst]
    return torch.tensor([src, dst], dtype=torch.long), n


def test_degree_buckets_known_graph() -> None:
    ei, n = _graph_with_in_degrees([0, 1, 1, 2, 3, 5])
    b = degree_buckets(ei, n, 3)
    assert isinstance(b, DegreeBuckets)
    assert b.bucket.tolist() == [0, 0, 0, 1, 2, 2]
    assert b.edges == (1.0, 2.0)
    assert b.counts == [3, 1, 2]
    assert (b.num_buckets, b.num_nodes, b.num_edges) == (3, 6, 12)


def test_degree_buckets_use_in_degree() -> None:
    ei = torch.tensor([[0, 0, 0], [1, 2, 3]])  # node 0: out-degree 3, in-degree 0
    assert degree_buckets(ei, 4, 2).bucket.tolist() == [0, 1, 1, 1]


def test_degree_buckets_ties() -> None:
    # plain quantiles give edges (1, 1) and an empty middle bucket
    ei, n = _graph_with_in_degrees([1, 1, 1, 1, 1, 1, 2, 3])
    b = degree_buckets(ei, n, 3)
    assert b.bucket.tolist() == [0] * 6 + [1, 2]
    assert b.edges == (1.0, 2.0)
    # fewer distinct degrees than buckets: degrees fill the low buckets in order
    ei, n = _graph_with_in_degrees([2, 2, 2, 2])
    b = degree_buckets(ei, n, 3)
    assert b.bucket.tolist() == [0, 0, 0, 0] and b.counts == [4, 0, 0]
    ei, n = _graph_with_in_degrees([0, 0, 5, 0, 5])
    assert degree_buckets(ei, n, 4).counts == [3, 2, 0, 0]


@pytest.mark.parametrize("J", [2, 3, 4, 7])
def test_degree_buckets_monotone_and_complete(J: int) -> None:
    gen = torch.Generator().manual_seed(J)
    n = 300
    dst = (torch.rand(2000, generator=gen) ** 3 * n).long()  # skewed, heavily tied
    ei = torch.stack([torch.randint(0, n, (2000,), generator=gen), dst])
    b = degree_buckets(ei, n, J)
    deg = torch.bincount(ei[1], minlength=n)
    order = torch.argsort(deg, stable=True)
    ids, degs = b.bucket[order], deg[order]
    assert bool((ids[1:] >= ids[:-1]).all())  # monotone in degree
    for d in degs.unique():  # equal degrees share a bucket
        assert ids[degs == d].unique().numel() == 1
    assert sum(b.counts) == n and all(c > 0 for c in b.counts)
    edges = torch.tensor(b.edges)
    expected = (deg.unsqueeze(1) > edges.unsqueeze(0)).sum(1)
    assert torch.equal(b.bucket, expected)  # documented edge rule


def test_degree_buckets_cora(root: Path) -> None:
    data = load_dataset("cora", root)
    b = degree_buckets(data.edge_index, data.num_nodes)
    assert sum(b.counts) == 2708 and all(c > 0 for c in b.counts)
    assert b == degree_buckets(data.edge_index.clone(), data.num_nodes)


def test_degree_buckets_num_buckets() -> None:
    ei, n = _graph_with_in_degrees([0, 1, 1, 2, 3, 5])
    b = degree_buckets(ei, n, 1)
    assert b.bucket.tolist() == [0] * n and b.edges == () and b.counts == [n]
    for bad in (0, -1):
        with pytest.raises(ValueError, match="num_buckets"):
            degree_buckets(ei, n, bad)
    with pytest.raises(ValueError, match="outside"):
        degree_buckets(ei, 3, 3)


def test_check_graph() -> None:
    ei, n = _graph_with_in_degrees([0, 1, 1, 2, 3, 5])
    b = degree_buckets(ei, n, 3)
    b.check_graph(ei.clone(), n)  # same graph: fine
    assert b.fingerprint == degree_buckets(ei.clone(), n, 2).fingerprint
    with pytest.raises(ValueError, match="6 nodes"):
        b.check_graph(ei, 7)
    with pytest.raises(ValueError, match="12 edges"):
        b.check_graph(ei[:, :-1], n)
    other = ei.clone()
    other[1, 0] = 0  # same sizes, different graph
    with pytest.raises(ValueError, match="another graph"):
        b.check_graph(other, n)
    with pytest.raises(Exception):
        b.num_buckets = 4  # frozen


def test_normalize_features_option(root: Path) -> None:
    normed = load_dataset("Cora", root, normalize_features=True)
    sums = normed.x.sum(dim=1)
    assert torch.allclose(sums[sums > 0], torch.ones_like(sums[sums > 0]))
    assert set(load_dataset("Cora", root).x.unique().tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match="normalize_features"):
        load_dataset("Cora", root, normalize_features="yes")
