"""Graphs at the edges: no node, one node, too few nodes for a split, no labelled node,
huge labels. Each is refused at load in one line naming the graph file and the problem,
so ``train`` and ``search`` never report 0% accuracy or fail with a traceback."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest
import torch

from sgquant.cli import main
from sgquant.data import clear_dataset_cache, load_dataset
from sgquant.data.graph import MAX_CLASSES


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_dataset_cache()


def _file(tmp_path: Path, n: int, y: Optional[torch.Tensor] = None, **masks: torch.Tensor
          ) -> Path:
    path = tmp_path / "g.pt"
    src = torch.arange(n)
    torch.save({"x": torch.rand(n, 4), "edge_index": torch.stack([src, src.flip(0)]),
                "y": torch.arange(n) % 2 if y is None else y, **masks}, path)
    return path


def _refused(path: Path, match: str) -> str:
    with pytest.raises(ValueError, match=match) as info:
        load_dataset(path)
    msg = str(info.value)
    assert msg.startswith(f"graph file {path.resolve()}: ") and "\n" not in msg, msg
    return msg


def test_one_node_leaves_validation_and_test_empty(tmp_path: Path) -> None:
    msg = _refused(_file(tmp_path, 1), "the validation set is empty \\(0 of 1 node")
    assert "split: random 60/30/10, seed 0" in msg


def test_a_split_too_small_for_a_test_node(tmp_path: Path) -> None:
    # 3 labelled nodes at 60/30/10: 2 train, 1 validation, 0 test
    _refused(_file(tmp_path, 3), "the test set is empty \\(0 of 3 node\\(s\\), 3 labelled")
    assert int(load_dataset(_file(tmp_path, 10)).test_mask.sum()) == 1  # 10 nodes: enough


def test_no_labelled_node(tmp_path: Path) -> None:
    _refused(_file(tmp_path, 5, y=torch.full((5,), -1)),
             "the training set is empty \\(0 of 5 node\\(s\\), 0 labelled")


def test_own_masks_with_an_empty_validation_set(tmp_path: Path) -> None:
    idx = torch.arange(6)
    path = _file(tmp_path, 6, train_mask=idx < 3, val_mask=torch.zeros(6, dtype=torch.bool),
                 test_mask=idx >= 3)
    _refused(path, "the validation set is empty \\(0 of 6 node\\(s\\), 6 labelled; val_mask "
                   "selects no node\\)")


def test_zero_nodes(tmp_path: Path) -> None:
    path = tmp_path / "g.pt"
    torch.save({"x": torch.zeros(0, 4), "edge_index": torch.zeros(2, 0, dtype=torch.long),
                "y": torch.zeros(0, dtype=torch.long)}, path)
    _refused(path, "the graph has no nodes \\(x has shape \\(0, 4\\)")


def test_labels_are_class_indices_up_to_a_bound(tmp_path: Path) -> None:
    y = torch.tensor([0, 1, 2, 2**40])
    _refused(_file(tmp_path, 4, y=y), "y holds label 1,099,511,627,776 \\(node 3\\), which "
                                      "would make 1,099,511,627,777 classes; labels are "
                                      "class indices 0 to 65,535")
    y = torch.tensor([0, 1, MAX_CLASSES - 1, 1] * 5)  # the largest label allowed loads
    assert int(load_dataset(_file(tmp_path, 20, y=y)).y.max()) == MAX_CLASSES - 1


@pytest.mark.parametrize("command", ["train", "search"])
@pytest.mark.parametrize("n,match", [(0, "the graph has no nodes"),
                                     (1, "the validation set is empty")])
def test_commands_refuse_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                     command: str, n: int, match: str) -> None:
    path = tmp_path / "g.pt"
    torch.save({"x": torch.rand(n, 4), "edge_index": torch.zeros(2, 0, dtype=torch.long),
                "y": torch.zeros(n, dtype=torch.long)}, path)
    code = main([command, "--dataset", str(path), "--model", "gcn", "--profile", "quick",
                 "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and match in err and str(path) in err, err
