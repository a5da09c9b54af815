"""A reader's own graph file (.pt dict of tensors, .npz Amazon/Coauthor layout):
loading, names and cache keys, splits, and one-line errors for every bad file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from data_helpers import SHARED, amazon_arrays, need_shared
from sgquant.data import (canonical_name, clear_dataset_cache, dataset_key, display_name,
                          load_dataset)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_dataset_cache()


def _graph(n: int = 12, masks: bool = True) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    src = torch.arange(n)
    dst = (src + 1) % n
    g = {"x": torch.rand(n, 4, generator=gen),
         "edge_index": torch.stack([torch.cat([src, dst]), torch.cat([dst, src])]),
         "y": torch.arange(n) % 3}
    if masks:
        idx = torch.arange(n)
        g.update(train_mask=idx < 6, val_mask=(idx >= 6) & (idx < 9), test_mask=idx >= 9)
    return g


def _save(tmp_path: Path, obj: Any, name: str = "g.pt") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def _one_line_error(path: "Path | str", match: str) -> str:
    with pytest.raises(ValueError, match=match) as info:
        load_dataset(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


# --- .pt ----------------------------------------------------------------------


def test_pt_file_with_masks(tmp_path: Path) -> None:
    g = _graph()
    path = _save(tmp_path, g)
    data = load_dataset(path)
    for key in ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(data[key], g[key]), key
    assert data.x.dtype == torch.float32 and data.edge_index.dtype == torch.long
    assert data.split == "masks from the file"
    assert data.name == str(path.resolve()) == canonical_name(str(path))
    assert display_name(path) == "g.pt"
    assert load_dataset(data.name).num_nodes == 12  # the canonical name loads it again


def test_pt_file_from_a_pyg_data(cora, tmp_path: Path) -> None:
    path = _save(tmp_path, {k: cora[k] for k in ("x", "edge_index", "y", "train_mask",
                                                 "val_mask", "test_mask")}, "cora.pt")
    data = load_dataset(str(path))
    assert torch.equal(data.x, cora.x) and torch.equal(data.edge_index, cora.edge_index)
    assert int(data.train_mask.sum()) == 140
    # Data.to_dict() (the book's recipe) loads too
    assert load_dataset(_save(tmp_path, cora.to_dict(), "c2.pt")).num_nodes == 2708


def test_pt_file_without_masks_gets_the_seeded_random_split(tmp_path: Path) -> None:
    path = _save(tmp_path, _graph(n=40, masks=False))
    data = load_dataset(path)
    assert data.split == "random 60/30/10, seed 0"
    assert [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)] == [24, 12, 4]
    again = load_dataset(path)
    assert torch.equal(data.train_mask, again.train_mask)
    other = load_dataset(path, split_seed=1)
    assert not torch.equal(data.train_mask, other.train_mask)
    with pytest.raises(ValueError, match="class 0 has 14 nodes"):  # too small for 20 + 30
        load_dataset(path, split="per-class-20-30")
    with pytest.raises(ValueError, match="no public split"):
        load_dataset(path, split="public")


def test_relative_path_and_key_follow_the_content(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    path = _save(tmp_path, _graph())
    key = dataset_key("g.pt")
    assert key.startswith(f"{path.resolve()}@sha256:") and len(key.split(":")[-1]) == 16
    assert dataset_key(str(path)) == key and canonical_name("g.pt") == str(path.resolve())
    assert load_dataset("g.pt").num_nodes == 12
    g = _graph()
    g["x"] = g["x"] + 1
    torch.save(g, path)  # edited in place: new key, new data (no stale cache)
    os.utime(path, ns=(1, 1))
    assert dataset_key("g.pt") != key
    assert torch.equal(load_dataset("g.pt").x, g["x"])
    assert dataset_key("g.pt", split="random-60-30-10").endswith("|random-60-30-10|seed0")


# --- .npz ---------------------------------------------------------------------


def test_npz_file_in_the_amazon_layout(tmp_path: Path) -> None:
    arrays = amazon_arrays()
    np.savez(tmp_path / "g.npz", **arrays)
    data = load_dataset(tmp_path / "g.npz")
    assert data.num_nodes == 30 and data.x.shape == (30, 6)
    assert data.split == "random 60/30/10, seed 0"
    assert float(data.x.max()) > 1  # features as stored, not binarised
    ei = data.edge_index
    assert not bool((ei[0] == ei[1]).any())  # self-loops dropped
    pairs = set(map(tuple, ei.t().tolist()))
    assert all((b, a) in pairs for a, b in pairs)  # undirected
    # a dense attr_matrix gives the same features
    dense = {k: v for k, v in arrays.items() if not k.startswith("attr_")}
    dense["attr_matrix"] = data.x.numpy()
    np.savez(tmp_path / "dense.npz", **dense)
    assert torch.equal(load_dataset(tmp_path / "dense.npz").x, data.x)


def test_npz_file_matches_the_registered_reader() -> None:
    need_shared("Computers")  # the session's data root copies it from the mirror
    data = load_dataset(SHARED / "Computers" / "raw" / "amazon_electronics_computers.npz")
    ref = load_dataset("Amazon-Computers")
    assert torch.equal(data.edge_index, ref.edge_index)
    assert torch.equal(data.x, ref.x)  # binary features: binarising changes nothing
    assert torch.equal(data.train_mask, ref.train_mask)  # the same seeded split


# --- bad files ----------------------------------------------------------------


def _without(key: str) -> Callable[[dict], dict]:
    return lambda g: {k: v for k, v in g.items() if k != key}


def _with(key: str, value: Any) -> Callable[[dict], dict]:
    return lambda g: {**g, key: value}


@pytest.mark.parametrize("change,match", [
    (_without("y"), "lacks key.*y"),
    (_with("x", torch.ones(12, 4, dtype=torch.long)), "x must be a 2-D floating"),
    (_with("x", torch.ones(12)), "x must be a 2-D floating"),
    (_with("y", torch.zeros(12)), "y must be a 1-D integer tensor of length 12"),
    (_with("y", torch.zeros(11, dtype=torch.long)), "y must be a 1-D integer tensor of length 12"),
    (_with("edge_index", torch.zeros(3, 5, dtype=torch.long)), "edge_index must be an integer "
                                                               "tensor of shape \\[2, E\\]"),
    (_with("edge_index", torch.zeros(2, 5)), "edge_index must be an integer"),
    (_with("edge_index", torch.tensor([[0, 12], [1, 0]])), "points outside the 12 nodes"),
    (_with("edge_index", torch.tensor([[0, -1], [1, 0]])), "points outside the 12 nodes"),
    (_with("train_mask", torch.ones(11, dtype=torch.bool)), "train_mask must be a 1-D bool"),
    (_with("val_mask", torch.ones(12, dtype=torch.long)), "val_mask must be a 1-D bool"),
    (_with("test_mask", torch.arange(12) >= 8), "val_mask and test_mask overlap in 1 node.s., e.g. node 8"),
    (_with("test_mask", torch.zeros(12, dtype=torch.bool)), "test_mask selects no node"),
    (_without("val_mask"), "has train_mask, test_mask but not val_mask"),
    (_with("x", [[1.0]] * 12), "x is a list, expected a torch.Tensor"),
    (_with("y", torch.full((12,), -1)), "train_mask holds 6 node.s. without a label"),
])
def test_bad_pt_files_name_the_problem(tmp_path: Path, change: Callable, match: str) -> None:
    _one_line_error(_save(tmp_path, change(_graph())), match)


def test_pt_file_that_is_not_a_dict_of_tensors(cora, tmp_path: Path) -> None:
    # why it is refused, in plain words, not PyTorch's message cut to "Re-running ..."
    msg = _one_line_error(_save(tmp_path, cora), "holds objects that are not tensors "
                                                 "\\(torch_geometric.data.data.Data")
    assert "loading it would run code stored in the file" in msg
    assert "torch.save(data.to_dict(), path)" in msg  # the fix is named
    assert "Re-running" not in msg
    _one_line_error(_save(tmp_path, torch.zeros(3)), "holds a Tensor; expected a dict")
    (tmp_path / "junk.pt").write_bytes(b"\x80\x04 not a torch file")
    msg = _one_line_error(tmp_path / "junk.pt", "could not be read by torch.load")
    assert "Unsupported operand" in msg and "Re-running" not in msg  # the reason, not advice


def test_missing_folder_or_wrong_suffix(tmp_path: Path) -> None:
    _one_line_error(tmp_path / "nope.pt", "does not exist")
    _one_line_error(str(tmp_path / "sub/"), "does not exist")
    (tmp_path / "dir.npz").mkdir()
    _one_line_error(tmp_path / "dir.npz", "is not a file")
    (tmp_path / "g.csv").write_text("a,b\n")
    msg = _one_line_error(tmp_path / "g.csv", "suffix '.csv' is not one of .npz, .pt")
    assert "Amazon/Coauthor" in msg


@pytest.mark.parametrize("change,match", [
    (lambda a: {k: v for k, v in a.items() if k != "labels"}, "lacks array.*labels"),
    (lambda a: {k: v for k, v in a.items() if not k.startswith("attr_")},
     "lacks array.*attr_matrix"),
    (lambda a: {**a, "adj_shape": np.array([29, 29])}, "adj_data/adj_indices/adj_indptr do not "
                                                       "form a CSR|adj_shape must be"),
    (lambda a: {**a, "adj_indices": a["adj_indices"] + 100}, "do not form a CSR matrix"),
    (lambda a: {**a, "labels": a["labels"].astype(np.float32)}, "labels must be a 1-D integer"),
    (lambda a: {**a, "labels": a["labels"][:-1]}, "y must be a 1-D integer tensor of length 30"),
    (lambda a: {**a, "attr_shape": np.array([30.0, 6.0])}, "attr_shape must be two integers"),
    (lambda a: {**a, "labels": np.array([object()] * 30)}, "array 'labels' could not be read"),
])
def test_bad_npz_files_name_the_problem(tmp_path: Path, change: Callable, match: str) -> None:
    np.savez(tmp_path / "g.npz", **change(amazon_arrays()))
    _one_line_error(tmp_path / "g.npz", match)


def test_truncated_npz_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "g.npz", **amazon_arrays())
    payload = (tmp_path / "g.npz").read_bytes()
    (tmp_path / "g.npz").write_bytes(payload[: len(payload) // 2])
    _one_line_error(tmp_path / "g.npz", "could not be read")
