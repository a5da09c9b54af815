"""Test labels permuted among the test nodes: a check that no choice reads them.

The protocol (book/architecture.md) chooses on validation only: FP32 training keeps its
best-validation epoch, a search its largest saving within tolerance on validation, a
chapter its points on validation; test accuracy is reported, never used. Permuting the
labels of the test nodes among themselves (seeded, so each class keeps its count) changes
every test accuracy and nothing else a choice may read, so under it every choice must come
out byte-identical (``tests/test_protocol.py`` checks it).

:func:`permute_test_labels` permutes one graph. ``$SGQUANT_PERMUTE_TEST_LABELS`` (a seed;
:func:`permuted_test_labels` sets it for a block) makes every
:func:`~sgquant.data.load_dataset` of this process, and of the measurement processes it
starts, return the permuted graph, and :func:`~sgquant.data.dataset_key` say so (results
on permuted labels never share a cache record with the real ones). A Dask cluster's
workers need the variable set where they run.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

import torch
from torch_geometric.data import Data

from ..checks import check_int

__all__ = ["PERMUTE_ENV", "permute_test_labels", "label_permutation_seed",
           "permuted_test_labels"]

#: The environment variable naming the seed of the permutation (unset or empty: none).
PERMUTE_ENV = "SGQUANT_PERMUTE_TEST_LABELS"


def permute_test_labels(data: Data, seed: int = 0) -> Data:
    r"""A copy of ``data`` whose labels at the test nodes :math:`T` (``test_mask``) are
    permuted among themselves, :math:`y'_T = y_{T}[\pi]` with :math:`\pi` torch's
    ``randperm`` under ``seed``; every other field (features, edges, masks, the training
    and validation labels) is unchanged, so each class keeps its count."""
    seed = check_int(seed, "seed", minimum=0)
    mask = data.get("test_mask")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError("permute_test_labels needs a graph with a boolean test_mask")
    idx = mask.nonzero(as_tuple=True)[0]
    order = torch.randperm(idx.numel(), generator=torch.Generator().manual_seed(seed))
    out = data.clone()
    out.y[idx] = data.y[idx[order]]
    return out


def label_permutation_seed() -> Optional[int]:
    """The seed in ``$SGQUANT_PERMUTE_TEST_LABELS`` (``None``: unset or empty, no
    permutation); anything but an integer >= 0 is a ``ValueError``."""
    raw = os.environ.get(PERMUTE_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"${PERMUTE_ENV} must be an integer >= 0 (the seed of the test "
                         f"labels' permutation), got {raw!r}")
    return value


@contextlib.contextmanager
def permuted_test_labels(seed: Optional[int] = 0) -> Iterator[Optional[int]]:
    """Inside the block, every dataset loaded (here and in the measurement processes
    started in it) has its test labels permuted with ``seed`` (``None``: not permuted);
    ``$SGQUANT_PERMUTE_TEST_LABELS`` is as it was after it."""
    before = os.environ.get(PERMUTE_ENV)
    if seed is None:
        os.environ.pop(PERMUTE_ENV, None)
    else:
        os.environ[PERMUTE_ENV] = str(check_int(seed, "seed", minimum=0))
    try:
        yield seed
    finally:
        if before is None:
            os.environ.pop(PERMUTE_ENV, None)
        else:
            os.environ[PERMUTE_ENV] = before
