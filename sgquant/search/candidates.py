"""Candidate configurations for the cost model to score, made in whole batches.

:func:`propose_candidates` draws fresh (distinct, unmeasured) bit vectors: local moves
around the best configurations (mutations, recombinations) and uniform draws, all
vectorised, de-duplicated as packed rows (:func:`sgquant.search.space.first_unique`).
:class:`TrustRegion` tells which candidates lie within ``radius`` changed fields of a
configuration known to be within tolerance.
"""
from __future__ import annotations

from typing import Iterable, Optional, Union

import numpy as np

from ..checks import check_int
from .space import SearchSpace, fields_apart, first_unique, row_codes

__all__ = ["propose_candidates", "elite_rows", "TrustRegion", "ACCURACY_SLACK"]

#: Accuracies are fractions of 500/1000 nodes stored as float32: compare with slack.
ACCURACY_SLACK = 1e-6

#: how a candidate was made (the labels :func:`propose_candidates` returns)
SOURCES = np.array(["mutation", "crossover", "uniform"])

#: a search space this small is enumerated when random draws stop finding new rows
_ENUMERATE_BELOW = 10**6


def elite_rows(vectors: np.ndarray, val: np.ndarray, saving: np.ndarray, threshold: float,
           k: int = 5) -> np.ndarray:
    """Rows worth mutating: the ``k`` feasible ones with the largest saving
    and the ``k`` with the highest validation accuracy."""
    if len(vectors) == 0:
        return vectors
    feasible = np.flatnonzero(val >= threshold - ACCURACY_SLACK)
    by_saving = feasible[np.argsort(-saving[feasible], kind="stable")][:k]
    by_acc = np.argsort(-val, kind="stable")[:k]
    idx = list(dict.fromkeys([*by_saving.tolist(), *by_acc.tolist()]))
    return vectors[idx]


def _as_rows(exclude: Union[np.ndarray, Iterable[bytes]], width: int) -> np.ndarray:
    """Excluded vectors as rows: an array, or (older callers) a set of ``tobytes()``
    keys of int64 vectors."""
    if isinstance(exclude, np.ndarray):
        return exclude.reshape(-1, width)
    keys = list(exclude)
    if not keys:
        return np.zeros((0, width), dtype=np.int64)
    return np.frombuffer(b"".join(keys), dtype=np.int64).reshape(-1, width)


def _mutations(space: SearchSpace, rng: np.random.Generator, parents: np.ndarray
               ) -> np.ndarray:
    """Each parent with 1-3 distinct free fields redrawn from ``bit_choices``."""
    free = space.index.free
    choices = np.asarray(space.bit_choices, dtype=np.int64)
    n = len(parents)
    moves = rng.integers(1, min(3, free.size) + 1, size=n)
    fields = free[np.argsort(rng.random((n, free.size)), axis=1)]  # a random order per row
    take = np.arange(free.size)[None, :] < moves[:, None]  # its first `moves` fields
    values = choices[rng.integers(0, len(choices), size=(n, free.size))]
    out = parents.copy()
    rows = np.broadcast_to(np.arange(n)[:, None], take.shape)
    out[rows[take], fields[take]] = values[take]
    return out


def _crossovers(space: SearchSpace, rng: np.random.Generator, pool: np.ndarray, n: int
                ) -> np.ndarray:
    """Each field from one of two random rows of ``pool``; half of them get one
    field redrawn."""
    free = space.index.free
    choices = np.asarray(space.bit_choices, dtype=np.int64)
    a = pool[rng.integers(0, len(pool), size=n)]
    b = pool[rng.integers(0, len(pool), size=n)]
    cross = np.where(rng.random(a.shape) < 0.5, a, b)
    flip = rng.random(n) < 0.5
    cols = rng.choice(free, size=n)
    cross[flip, cols[flip]] = choices[rng.integers(0, len(choices), size=int(flip.sum()))]
    return cross


def propose_candidates(space: SearchSpace, rng: np.random.Generator, n_sample: int,
                       elites: np.ndarray, exclude: Union[np.ndarray, Iterable[bytes]],
                       local_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``n_sample`` fresh (distinct, not in ``exclude``) bit vectors and how each was made
    (an array of :data:`SOURCES` labels).

    ``local_share`` of them (when there are elites) are local moves around the
    best measured configurations: ``"mutation"`` (1-3 free fields redrawn from
    ``bit_choices``) and ``"crossover"`` (each field from one of two elites);
    the rest are ``"uniform"`` draws. ``exclude`` holds vectors as rows (or, as
    before, a set of their int64 ``tobytes()``). Fewer come back only when the
    space has fewer left.
    """
    n_sample = check_int(n_sample, "n_sample", minimum=1)
    width = len(space.fields)
    excluded = _as_rows(exclude, width)
    n_sample = min(n_sample, space.size - len(excluded))
    free = space.index.free
    parts: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    if len(elites) and free.size and local_share > 0:
        n_local = int(round(n_sample * local_share))
        n_mut, n_cross = n_local - n_local // 2, n_local // 2
        parts.append(_mutations(space, rng, elites[rng.integers(0, len(elites), size=n_mut)]))
        labels.append(np.full(n_mut, 0))
        if len(elites) > 1 and n_cross:
            parts.append(_crossovers(space, rng, elites, n_cross))
            labels.append(np.full(n_cross, 1))
    # uniform draws for the rest, with a margin for the local moves that repeat
    n_uniform = n_sample - sum(len(p) for p in parts) + sum(len(p) for p in parts) // 2 + 16
    parts.append(space.random_vectors(rng, n_uniform))
    labels.append(np.full(n_uniform, 2))
    codes_excluded = row_codes(excluded)

    def fresh() -> np.ndarray:
        rows = np.vstack(parts) if parts else np.zeros((0, width), np.int64)
        keep = first_unique(np.vstack([codes_excluded, row_codes(rows)]), len(excluded))
        return keep[:n_sample] - len(excluded)

    chosen = fresh()
    for _ in range(20):
        if len(chosen) >= n_sample:
            break
        need = max(n_sample - len(chosen), 16)
        parts.append(space.random_vectors(rng, need))
        labels.append(np.full(need, 2))
        chosen = fresh()
    if len(chosen) < n_sample and space.size <= _ENUMERATE_BELOW:  # small, mostly used
        grid = space.all_vectors()
        parts.append(grid[rng.permutation(len(grid))])
        labels.append(np.full(len(grid), 2))
        chosen = fresh()
    rows = np.vstack(parts) if parts else np.zeros((0, width), np.int64)
    source = SOURCES[np.concatenate(labels)] if labels else SOURCES[:0]
    return rows[chosen].astype(np.int64), source[chosen]


class TrustRegion:
    """Which vectors differ in at most ``radius`` fields from one of the ``anchors``
    (:func:`sgquant.search.space.fields_apart` on packed rows).
    ``radius=None``: no trust region (:meth:`mask` gives ``None``)."""

    def __init__(self, anchors: np.ndarray, radius: Optional[int]) -> None:
        self.radius = radius
        self.anchors = row_codes(np.asarray(anchors, dtype=np.int64))

    def mask(self, vectors: np.ndarray) -> Optional[np.ndarray]:
        if self.radius is None:
            return None
        if not len(self.anchors) or not len(vectors):
            return np.zeros(len(vectors), dtype=bool)
        return fields_apart(row_codes(vectors), self.anchors).min(axis=1) <= self.radius
