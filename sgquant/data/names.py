"""A dataset's names: canonical (loadable), for display, and as a cache identity.

A dataset is either registered (``"cora"``, ``"Coauthor-CS"`` ...) or a path to a
graph file (``.npz``/``.pt``). For a file, :func:`canonical_name` is its absolute
path (so ``load_dataset(canonical_name(x))`` loads ``x`` from any folder),
:func:`display_name` its file name, and :func:`dataset_key` adds the first 16 hex
digits of the content's sha256: a cache keyed by it never reuses results of a file
that has since been edited.
"""
from __future__ import annotations

import os
from typing import Optional

from ..checks import check_choice, check_int
from .files import SUFFIXES, file_sha256, graph_path, looks_like_path
from .catalogue import accepted_names, lookup
from .permute import label_permutation_seed
from .splits import SPLITS, default_split, resolve_split

__all__ = ["canonical_name", "display_name", "dataset_key", "unknown_dataset"]


def unknown_dataset(name: object) -> ValueError:
    """The error for a name that is neither registered nor a graph file path."""
    return ValueError(f"Unknown dataset {name!r}; allowed: {accepted_names()}, or a path to a "
                      f"graph file ({' or '.join(SUFFIXES)})")


def canonical_name(name: "str | os.PathLike[str]") -> str:
    """The canonical name of a registered dataset (case-insensitive alias, e.g.
    ``"computers"``, ``"amazon_computers"``, ``"cs"``), or the absolute path of a
    graph file (which must exist and end in ``.npz`` or ``.pt``).

    Raises :class:`ValueError` listing the accepted names for anything else.
    """
    spec = lookup(name)
    if spec is not None:
        return spec.name
    if looks_like_path(name):
        return str(graph_path(name))  # type: ignore[arg-type]
    raise unknown_dataset(name)


def has_public_split(name: "str | os.PathLike[str]") -> bool:
    """Whether ``name`` is a registered dataset that ships its own masks (Planetoid's
    public split, Reddit's), so its default split is not the seeded random one. A graph
    file counts as not (its own masks, if any, are read only when it is loaded)."""
    spec = lookup(name)
    if spec is not None:
        return spec.own_split is not None
    canonical_name(name)  # a graph file must exist; anything else is an unknown dataset
    return False


def display_name(name: "str | os.PathLike[str]") -> str:
    """A short name for tables: the canonical name, or a graph file's file name."""
    spec = lookup(name)
    if spec is not None:
        return spec.name
    if looks_like_path(name):
        return graph_path(name).name  # type: ignore[arg-type]
    raise unknown_dataset(name)


def dataset_key(name: "str | os.PathLike[str]", split: Optional[str] = None,
                split_seed: int = 0) -> str:
    """A stable identity for caching results of ``load_dataset(name, split=...,
    split_seed=...)``.

    Registered dataset with its default split and seed 0: the canonical name, e.g.
    ``"Cora"``. A graph file: ``"<absolute path>@sha256:<16 hex digits>"``, which
    changes whenever the file's content does. Another split or seed appends
    ``"|<split>|seed<k>"`` (a file's key takes it whenever ``split`` is given). Under
    ``$SGQUANT_PERMUTE_TEST_LABELS`` (:mod:`sgquant.data.permute`) the key ends in
    ``"|test-labels-permuted-seed<k>"``: another graph, other cache records.
    """
    key = _dataset_key(name, split, split_seed)
    permutation = label_permutation_seed()
    return key if permutation is None else f"{key}|test-labels-permuted-seed{permutation}"


def _dataset_key(name: "str | os.PathLike[str]", split: Optional[str],
                 split_seed: int) -> str:
    """:func:`dataset_key` of the graph as read (no permutation)."""
    if split is not None:
        check_choice(split, "split", SPLITS)
    seed = check_int(split_seed, "split_seed", minimum=0)
    spec = lookup(name)
    if spec is not None:
        has_own = spec.own_split is not None
        chosen = resolve_split(split, has_own, spec.name)
        plain = chosen == default_split(has_own) and (seed == 0 or chosen == "public")
        return spec.name if plain else f"{spec.name}|{chosen}|seed{seed}"
    if not looks_like_path(name):
        raise unknown_dataset(name)
    path = graph_path(name)  # type: ignore[arg-type]
    key = f"{path}@sha256:{file_sha256(path)[:16]}"
    if split is None and seed == 0:
        return key
    return f"{key}|{split or 'default'}|seed{seed}"
