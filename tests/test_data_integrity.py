"""Raw-file integrity and data-root errors: checksums before any reader runs, bad
files named in one line, unusable roots, non-finite features, permissions."""
from __future__ import annotations

import csv
import errno
import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from data_helpers import SHARED, amazon_arrays, copy_raw, need_shared, snapshot
from sgquant.data import (CorruptRawFileError, DatasetUnavailableError, clear_dataset_cache,
                          load_dataset, raw_files)
from sgquant.data import checksums as C
from sgquant.data import raw as R
from sgquant.data.catalogue import REGISTERED, spec_for


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SGQUANT_DATA", raising=False)
    monkeypatch.delenv("SGQUANT_DATA_MIRROR", raising=False)
    clear_dataset_cache()


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


def _flip_byte(path: Path, offset: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# --- 1. known checksums, checked before any reader ----------------------------


def test_every_shipped_checksum_matches_the_mirror() -> None:
    need_shared()
    with open(Path(C.__file__).with_name("raw_checksums.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    checked = 0
    for row in rows:
        path = SHARED / row["path"]
        expected = C.expected_for(row["path"])
        assert expected is not None and (expected.sha256 or expected.git_blob)
        if path.is_file():
            assert C.mismatch(path, expected) is None, row["path"]
            checked += 1
    assert checked >= 26  # every file of the mirror but the absent ind.pubmed.allx
    allx = C.expected_for("PubMed/raw/ind.pubmed.allx")
    assert allx.sha256 is None and allx.git_blob == "3b86bccf08111c37c632a9dd8ab63db25ea76361"


def test_pickle_read_datasets_have_a_checksum_for_every_raw_file() -> None:
    for name in REGISTERED:
        spec = spec_for(name)
        if spec.pickle_reader:
            for f in spec.files:
                assert C.expected_for(f"{spec.folder}/{f}") is not None, (name, f)
    assert [n for n in REGISTERED if spec_for(n).pickle_reader] == ["Cora", "CiteSeer", "PubMed"]


def test_git_blob_hash(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"hello\n")
    # `git hash-object` of "hello\n"
    blob = "ce013625030ba8dba906f756967f9e9ca394464a"
    assert C.file_digests(f) == (hashlib.sha256(b"hello\n").hexdigest(), blob)
    assert C.mismatch(f, C.Expected(None, None, blob)) is None
    f.write_bytes(b"hellO\n")
    assert "git blob" in C.mismatch(f, C.Expected(None, None, blob))
    assert "bytes" in C.mismatch(f, C.Expected(7, None, blob))


def test_pickle_reader_refuses_a_file_without_checksum(tmp_path: Path) -> None:
    spec = spec_for("Cora")
    unknown = type(spec)(**{**spec.__dict__, "folder": "Elsewhere/raw"})
    with pytest.raises(CorruptRawFileError, match="no known checksum") as info:
        R.verify_raw(unknown, tmp_path)
    assert "ind.cora.x" in _one_line(info)


def test_tampered_mirror_file_is_not_copied(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    copy_raw("Cora", mirror)
    _flip_byte(mirror / "Cora" / "raw" / "ind.cora.y")  # same size, other content
    before = snapshot(mirror)
    monkeypatch.setenv("SGQUANT_DATA_MIRROR", str(mirror))
    with pytest.raises(CorruptRawFileError) as info:
        load_dataset("cora", tmp_path / "root")
    msg = _one_line(info)
    assert "ind.cora.y" in msg and "SGQUANT_DATA_MIRROR" in msg and "sha256" in msg
    raw = tmp_path / "root" / "Cora" / "raw"
    assert "ind.cora.y" not in os.listdir(raw)
    assert not [p for p in os.listdir(raw) if p.endswith(".part")]
    assert not (tmp_path / "root" / "Cora" / "processed").exists()
    assert snapshot(mirror) == before


def test_downloaded_file_is_checked_before_the_reader_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import torch_geometric.datasets.planetoid as planetoid
    from torch_geometric.io import fs

    raw = copy_raw("Cora", tmp_path, skip=("ind.cora.graph",))
    good = (SHARED / "Cora" / "raw" / "ind.cora.graph").read_bytes()

    def tampered_cp(src: str, dst: str, *args: object, **kwargs: object) -> None:
        name = src.rsplit("/", 1)[-1]
        data = (SHARED / "Cora" / "raw" / name).read_bytes()
        if name == "ind.cora.graph":  # same size, one byte changed
            data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
        (Path(dst) / name).write_bytes(data)

    def reader_ran(*args: object, **kwargs: object) -> None:
        raise AssertionError("the pickle reader ran on an unchecked file")

    monkeypatch.setattr(fs, "cp", tampered_cp)
    monkeypatch.setattr(planetoid, "read_planetoid_data", reader_ran)
    with pytest.raises(CorruptRawFileError) as info:
        load_dataset("cora", tmp_path)
    msg = _one_line(info)
    assert msg.startswith("Downloaded raw file(s) of Cora") and "ind.cora.graph" in msg
    assert "ind.cora.x" not in msg  # the other downloaded files matched
    assert sorted(os.listdir(raw)) == sorted(f for f in raw_files("cora") if "graph" not in f)
    assert not (tmp_path / "Cora" / "processed").exists()
    assert len(good) == 59847


# --- 2. truncated raw files ---------------------------------------------------


def test_truncated_known_file_is_named(tmp_path: Path) -> None:
    raw = copy_raw("Cora", tmp_path)
    with open(raw / "ind.cora.allx", "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(CorruptRawFileError) as info:
        load_dataset("cora", tmp_path)
    msg = _one_line(info)
    assert str(raw / "ind.cora.allx") in msg and "1,000 bytes, expected 257,305" in msg
    assert "delete" in msg and "SGQUANT_DATA_MIRROR" in msg
    assert info.value.missing == ("ind.cora.allx",)
    assert (raw / "ind.cora.allx").stat().st_size == 1000  # the reader's own file is kept
    assert not (tmp_path / "Cora" / "processed").exists()


def test_truncated_file_without_checksum_is_named(tmp_path: Path) -> None:
    raw = tmp_path / "Photo" / "raw"
    raw.mkdir(parents=True)
    np.savez(raw / "amazon_electronics_photo.npz", **amazon_arrays())
    payload = (raw / "amazon_electronics_photo.npz").read_bytes()
    (raw / "amazon_electronics_photo.npz").write_bytes(payload[:1000])
    with pytest.raises(CorruptRawFileError) as info:
        load_dataset("photo", tmp_path, download=False)
    msg = _one_line(info)
    assert str(raw / "amazon_electronics_photo.npz") in msg and "could not be read" in msg
    assert not (tmp_path / "Photo" / "processed").exists()
    # restored, the same folder loads (no stale state left behind)
    np.savez(raw / "amazon_electronics_photo.npz", **amazon_arrays())
    data = load_dataset("photo", tmp_path, download=False)
    assert data.num_nodes == 30 and data.split == "random 60/30/10, seed 0"


# --- 3. unusable data roots ---------------------------------------------------


def test_data_root_that_is_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    monkeypatch.setenv("SGQUANT_DATA", str(afile))
    with pytest.raises(ValueError, match="is a file, not a folder") as info:
        load_dataset("cora")
    msg = _one_line(info)
    assert str(afile) in msg and "SGQUANT_DATA" in msg
    with pytest.raises(ValueError, match="cannot be created") as info:
        load_dataset("cora", afile / "sub")
    assert str(afile / "sub") in _one_line(info) and "root argument" in str(info.value)


def test_data_root_that_cannot_be_created(monkeypatch: pytest.MonkeyPatch) -> None:
    need_shared()
    monkeypatch.setenv("SGQUANT_DATA_MIRROR", str(SHARED))
    with pytest.raises(ValueError, match="cannot be created") as info:
        load_dataset("cora", "/proc/sgquant-test/root")
    assert "/proc/sgquant-test/root" in _one_line(info)


def test_data_root_that_cannot_be_written(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    need_shared()
    monkeypatch.setenv("SGQUANT_DATA_MIRROR", str(SHARED))

    def denied(src: str, dst: str, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr(R.shutil, "copyfile", denied)
    with pytest.raises(ValueError, match="cannot be written") as info:
        load_dataset("cora", tmp_path)
    msg = _one_line(info)
    assert str(tmp_path / "Cora" / "raw") in msg and "Permission denied" in msg
    assert not isinstance(info.value, PermissionError)


# --- 4. non-finite features ---------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, -np.inf])  # PyG's reader turns +inf into 1
def test_non_finite_features_are_refused_at_load(tmp_path: Path, bad: float) -> None:
    raw = tmp_path / "Photo" / "raw"
    raw.mkdir(parents=True)
    arrays = amazon_arrays()
    arrays["attr_data"][3] = bad  # PyG's Amazon reader keeps these
    np.savez(raw / "amazon_electronics_photo.npz", **arrays)
    with pytest.raises(ValueError, match="non-finite features") as info:
        load_dataset("Amazon-Photo", tmp_path, download=False)
    assert "'Amazon-Photo'" in _one_line(info)
    assert not isinstance(info.value, DatasetUnavailableError)


def test_non_finite_features_in_a_graph_file(tmp_path: Path) -> None:
    x = torch.rand(5, 3)
    x[2, 1] = float("nan")
    path = tmp_path / "g.pt"
    torch.save({"x": x, "edge_index": torch.tensor([[0, 1], [1, 0]]), "y": torch.zeros(5,
                dtype=torch.long)}, path)
    with pytest.raises(ValueError, match="non-finite") as info:
        load_dataset(path)
    msg = _one_line(info)
    assert str(path) in msg and "1 NaN" in msg and "node 2, feature 1" in msg


# --- 5. copies honour the umask -----------------------------------------------


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_mirror_copies_honour_the_umask(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                        umask: int, mode: int) -> None:
    need_shared()
    monkeypatch.setenv("SGQUANT_DATA_MIRROR", str(SHARED))
    old = os.umask(umask)
    try:
        load_dataset("cora", tmp_path)
    finally:
        os.umask(old)
    for f in raw_files("cora"):
        assert stat.S_IMODE((tmp_path / "Cora" / "raw" / f).stat().st_mode) == mode, f


def test_large_finite_features_are_accepted() -> None:
    from sgquant.data.graph import check_finite

    check_finite(torch.full((4, 3), 3e38), "big")  # row sums overflow, values are finite
    x = torch.full((4, 3), 3e38)
    x[3, 2] = float("inf")
    with pytest.raises(ValueError, match="1 Inf; first at node 3, feature 2"):
        check_finite(x, "big")


def test_pubmed_allx_is_checked_by_its_git_blob(tmp_path: Path) -> None:
    raw = copy_raw("PubMed", tmp_path)
    if (SHARED / "PubMed" / "raw" / "ind.pubmed.allx").exists():
        pytest.skip("the mirror has ind.pubmed.allx")
    (raw / "ind.pubmed.allx").write_bytes(b"\x80\x02 not the planetoid file")
    with pytest.raises(CorruptRawFileError, match="ind.pubmed.allx: git blob") as info:
        load_dataset("pubmed", tmp_path, download=False)
    assert info.value.missing == ("ind.pubmed.allx",)  # the 7 known files matched


def test_errors_survive_pickling() -> None:
    import pickle

    err = CorruptRawFileError("bad", dataset="Cora", raw_dir=Path("/r"), missing=("f",))
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is CorruptRawFileError and isinstance(back, DatasetUnavailableError)
    assert (str(back), back.dataset, back.raw_dir, back.missing) == ("bad", "Cora", Path("/r"),
                                                                      ("f",))
