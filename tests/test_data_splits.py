"""Splits: the seeded random 60/30/10 default, the options, their descriptions, and
the cache identity of a (dataset, split) pair."""
from __future__ import annotations

import pytest
import torch

from sgquant.data import SPLITS, dataset_key, load_dataset, random_split
from sgquant.data.splits import resolve_split


def test_random_split_sizes_and_rules() -> None:
    y = torch.tensor([0, 1, 2] * 30 + [-1] * 7)  # 90 labelled, 7 unlabelled
    tr, va, te = random_split(y, seed=3)
    assert [int(m.sum()) for m in (tr, va, te)] == [54, 27, 9]
    assert not (tr & va).any() and not (tr & te).any() and not (va & te).any()
    assert bool(((tr | va | te) == (y >= 0)).all())  # every labelled node, no other
    again = random_split(y, seed=3)
    assert all(torch.equal(a, b) for a, b in zip((tr, va, te), again))
    assert not torch.equal(random_split(y, seed=4)[0], tr)
    # halves round up: 5 nodes at 50/30/20 -> 3 (2.5), 2 (1.5), 0
    sizes = [int(m.sum()) for m in random_split(torch.zeros(5, dtype=torch.long), (50, 30, 20))]
    assert sizes == [3, 2, 0]


@pytest.mark.parametrize("percent", [(60, 30), (60, 30, 20), (60.0, 30, 10), "60/30/10"])
def test_random_split_rejects_bad_percentages(percent: object) -> None:
    with pytest.raises(ValueError, match="percent"):
        random_split(torch.zeros(10, dtype=torch.long), percent)


def test_resolve_split() -> None:
    assert SPLITS == ("public", "random-60-30-10", "per-class-20-30")
    assert resolve_split(None, True, "Cora") == "public"
    assert resolve_split(None, False, "X") == "random-60-30-10"
    with pytest.raises(ValueError, match="X has no public split"):
        resolve_split("public", False, "X")
    with pytest.raises(ValueError, match="unknown split 'random'; choose one of public"):
        resolve_split("random", True, "Cora")


def test_load_dataset_split_options(cora) -> None:
    assert cora.split == "Planetoid public split"
    data = load_dataset("Cora", split="random-60-30-10", split_seed=2)
    assert data.split == "random 60/30/10, seed 2"
    assert [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)] == \
        [1625, 812, 2708 - 1625 - 812]
    assert int(load_dataset("Cora").train_mask.sum()) == 140  # the cached graph is untouched
    for bad in ("random", 1, "Public"):
        with pytest.raises(ValueError, match="unknown split"):
            load_dataset("Cora", split=bad)
    for seed in (-1, 1.5, True):
        with pytest.raises(ValueError, match="split_seed"):
            load_dataset("Cora", split_seed=seed)


def test_dataset_key_of_registered_datasets() -> None:
    assert dataset_key("cora") == "Cora"
    assert dataset_key("Cora", "public", 5) == "Cora"  # the seed does not change a public split
    assert dataset_key("computers") == "Amazon-Computers"
    assert dataset_key("computers", "random-60-30-10") == "Amazon-Computers"
    assert dataset_key("computers", split_seed=1) == "Amazon-Computers|random-60-30-10|seed1"
    assert dataset_key("computers", "per-class-20-30") == \
        "Amazon-Computers|per-class-20-30|seed0"
    assert dataset_key("Cora", "random-60-30-10") == "Cora|random-60-30-10|seed0"
    with pytest.raises(ValueError, match="no public split"):
        dataset_key("Coauthor-CS", "public")
    with pytest.raises(ValueError, match="Unknown dataset"):
        dataset_key("nope")


def test_fp32_epoch_cap_follows_the_default_split(tmp_path) -> None:
    """Planetoid ships a public split: the profile's ``fp32_epochs``; a graph on the
    seeded random split (Amazon-Computers, a graph file): ``fp32_epochs_random``, and
    the FP32 cache key holds the cap that applies."""
    from sgquant.data import has_public_split
    from sgquant.measure import fp32_key
    from sgquant.profiles import get_profile

    assert has_public_split("cora") and has_public_split("CiteSeer")
    assert not has_public_split("Amazon-Computers") and not has_public_split("cs")
    with pytest.raises(ValueError, match="unknown dataset|Unknown dataset|not-a-dataset"):
        has_public_split("not-a-dataset")
    default = get_profile("default", fp32_schedule_random="constant")  # no schedule cap
    assert default.fp32_epochs_random > default.fp32_epochs
    assert default.fp32_epochs_for("Cora") == default.fp32_epochs
    assert default.fp32_epochs_for("computers") == default.fp32_epochs_random
    assert fp32_key("Cora", "gcn", 0, default)["epochs"] == default.fp32_epochs
    assert fp32_key("Amazon-Computers", "gcn", 0, default)["epochs"] == default.fp32_epochs_random
    # a profile that does not set the random cap uses fp32_epochs for every graph
    quick = get_profile("quick")
    assert quick.fp32_epochs_for("Amazon-Computers") == quick.fp32_epochs
    assert get_profile("default", fp32_epochs_random=None, fp32_schedule_random=None
                       ).fp32_epochs_for("Amazon-Computers") == default.fp32_epochs
