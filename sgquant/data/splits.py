"""Train/validation/test splits, and the readable description each graph carries.

``split`` (argument of :func:`~sgquant.data.load_dataset`):

* ``"public"``: the masks the dataset ships (Planetoid's public split, Reddit's,
  Flickr's, WikiCS split 0, ogbn-arxiv's time split, a graph file's own masks);
* ``"random-60-30-10"``: :func:`random_split`, 60% train / 30% validation / 10% test
  of the labelled nodes, seeded (as the authors' scripts split Amazon-Computers);
* ``"per-class-20-30"``: :func:`per_class_split`, 20 train and 30 validation nodes
  per class, the rest test (Shchur et al., 2018), seeded.

The default is ``"public"`` when the dataset has masks, else ``"random-60-30-10"``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..checks import check_choice, check_int, check_int_list

__all__ = ["SPLITS", "default_split", "resolve_split", "random_split", "per_class_split",
           "apply_split"]

SPLITS: tuple[str, ...] = ("public", "random-60-30-10", "per-class-20-30")


def default_split(has_own: bool) -> str:
    """``"public"`` for a dataset that ships masks, else ``"random-60-30-10"``."""
    return "public" if has_own else "random-60-30-10"


def resolve_split(split: Optional[str], has_own: bool, dataset: str) -> str:
    """``split`` checked against :data:`SPLITS` (None: :func:`default_split`)."""
    if split is None:
        return default_split(has_own)
    split = check_choice(split, "split", SPLITS)
    if split == "public" and not has_own:
        others = ", ".join(s for s in SPLITS if s != "public")
        raise ValueError(f"{dataset} has no public split (it ships no masks); choose one of "
                         f"{others}, or None for the default")
    return split


def random_split(y: Tensor, percent: Sequence[int] = (60, 30, 10), seed: int = 0
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """Seeded random split of the labelled nodes (``y >= 0``) by percentages.

    With ``n`` labelled nodes, ``n_train = round(n * p_train / 100)`` and ``n_val =
    round(n * p_val / 100)`` (halves up), the rest test; the nodes are taken in the
    order of ``torch.randperm(n)`` drawn from a generator seeded with ``seed``.
    """
    pct = check_int_list(percent, "percent", minimum=0)
    if len(pct) != 3 or sum(pct) != 100:
        raise ValueError(f"percent must be three integers (train, val, test) summing to 100, "
                         f"got {list(percent)!r}")
    seed = check_int(seed, "seed", minimum=0)
    if y.dim() != 1:
        raise ValueError(f"random_split needs 1-D labels, got shape {tuple(y.shape)}")
    labelled = (y.cpu() >= 0).nonzero(as_tuple=False).view(-1)
    n = labelled.numel()
    n_train, n_val = (n * pct[0] + 50) // 100, (n * pct[1] + 50) // 100
    order = labelled[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]
    masks = [torch.zeros(y.numel(), dtype=torch.bool) for _ in range(3)]
    masks[0][order[:n_train]] = True
    masks[1][order[n_train:n_train + n_val]] = True
    masks[2][order[n_train + n_val:]] = True
    return masks[0], masks[1], masks[2]


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
    num_train_per_class = check_int(num_train_per_class, "num_train_per_class", minimum=0)
    num_val_per_class = check_int(num_val_per_class, "num_val_per_class", minimum=0)
    y = y.cpu()
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
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


def apply_split(data: Data, split: str, seed: int, own: Optional[str]) -> Data:
    """Set ``data``'s masks for a resolved ``split`` and ``data.split``, its readable
    description (``own`` describes the dataset's own masks)."""
    if split == "public":
        data.split = own
        return data
    if split == "random-60-30-10":
        masks, text = random_split(data.y, (60, 30, 10), seed), f"random 60/30/10, seed {seed}"
    else:
        masks = per_class_split(data.y, 20, 30, seed)
        text = f"per class 20/30, rest test (Shchur et al.), seed {seed}"
    data.train_mask, data.val_mask, data.test_mask = masks
    data.split = text
    return data
