r"""Auto-bit selection: random search and the paper's XGBoost cost-model search.

Goal (DESIGN.md section 6): the :class:`~sgquant.bits.BitAssignment` with the
largest memory saving whose validation accuracy stays within ``tolerance``
percentage points of FP32,

.. math::

    a^\star = \arg\max_{a \in \mathcal{M}} \text{saving}(a) \quad\text{s.t.}\quad
    \text{val}(a) \ge \text{val}_{FP32} - \text{tolerance} / 100,

over the set :math:`\mathcal{M}` of *measured* configurations (each one
fine-tuned from the FP32 weights and scored on validation by
:func:`sgquant.measure.measure_job`). Test accuracy is reported for
:math:`a^\star` only.

* :func:`random_search` measures ``budget`` configurations drawn uniformly from
  the :class:`SearchSpace` (att bits per layer, emb bits per layer and degree
  bucket, each from ``bit_choices``).
* :func:`cost_model_search` follows the paper's steps 1-5: measure ``n_mea``
  random configurations (the same first draws as :func:`random_search` with the
  same seed); fit :class:`xgboost.XGBRegressor` models from configuration
  features (:func:`config_features`: bits per field, average bits, memory,
  saving) to validation accuracy; score ``n_sample`` fresh candidates; measure
  the top ``n_mea`` (:func:`select_candidates`); repeat ``n_iter`` times.

  Uniform candidates alone almost never find the large savings: on Cora and
  CiteSeer the binary layer-1 inputs are lossless at 1 bit and dominate the
  element count, so every layer-1 bucket must be at 1 bit together (a chance
  of 1 in 1000 per uniform draw). :data:`STRATEGY` (see
  :func:`cost_model_step`) therefore also scores mutations and recombinations
  of the best configurations (chained over a few generations scored by the
  model), keeps the model monotone in the bits, anchors it with FP32, trusts
  it only a few fields away from known-good configurations, and picks
  optimistically with a small bagged ensemble. :data:`PAPER_STRATEGY` is the
  plain version, kept as an ablation.

Confirmation (both searches, :func:`confirm_choice`): with 500 validation
nodes, 0.5 points is 2.5 nodes, so the feasible configuration with the
largest saving often passed by the luck of its one fine-tune (the winner's
curse). After the budget is spent, the ``confirm_top`` feasible configurations
with the largest savings are fine-tuned ``confirm_seeds`` more times from the
same FP32 weights (other fine-tune seeds) and the chosen one is the largest
saving whose *mean* validation accuracy stays within tolerance; its test
accuracy is reported as the mean over these fine-tunes too. The extra
fine-tunes are counted apart from the budget (``num_confirmations``).

Measurements are independent jobs submitted to a :class:`concurrent.futures.Executor`
(a "spawn" process pool by default, :class:`SerialExecutor` in-process); every
record is cached, so rerunning an interrupted search measures nothing twice.
"""
from __future__ import annotations

import argparse
import itertools
import math
import multiprocessing
import os
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from .bits import BitAssignment, as_assignment
from .cache import atomic_write_json, results_root
from .measure import Setup, measure_job, memory_record, prepare
from .memory import FeatureLayout, batch_memory, feature_memory
from .models import MODELS, QuantOptions
from .profiles import DEFAULT_BIT_CHOICES, PROFILES, Profile, get_profile
from .quantize import ALLOWED_BITS, FP32_BITS, check_bits

__all__ = [
    "METHODS",
    "FEATURE_EXTRAS",
    "SearchSpace",
    "Sampler",
    "SerialExecutor",
    "CostModel",
    "SearchResult",
    "config_features",
    "feature_frame",
    "FeatureCache",
    "propose_candidates",
    "select_candidates",
    "cost_model_step",
    "make_executor",
    "random_search",
    "cost_model_search",
    "search",
    "best_so_far",
    "curves",
    "check_bit_choices",
    "check_tolerance",
    "check_strategy",
    "confirm_choice",
    "confirmation_seeds",
    "STRATEGY",
    "PAPER_STRATEGY",
    "add_cli",
]

METHODS = ("cost-model", "random")

#: Memory features added to the per-field bits (all from :mod:`sgquant.memory`).
FEATURE_EXTRAS = ("average_bits", "memory_mb", "saving")

#: Accuracies are fractions of 500/1000 nodes stored as float32: compare with slack.
_EPS = 1e-6


# --------------------------------------------------------------- validation
def _check_int(value: Any, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_tolerance(tolerance: Any) -> float:
    """``tolerance`` (percentage points of validation accuracy) as a float >= 0."""
    if (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.floating))
            or not math.isfinite(float(tolerance)) or tolerance < 0):
        raise ValueError(
            f"tolerance must be a finite number of percentage points >= 0 (e.g. 0.5), "
            f"got {tolerance!r}")
    return float(tolerance)


def check_bit_choices(bit_choices: Any) -> tuple[int, ...]:
    """``bit_choices`` as a sorted tuple of distinct allowed widths (1..16 or 32)."""
    if bit_choices is None:
        return DEFAULT_BIT_CHOICES
    if isinstance(bit_choices, (str, bytes)) or not isinstance(bit_choices, Iterable):
        raise ValueError(f"bit_choices must be a list of bit widths from {ALLOWED_BITS}, "
                         f"got {bit_choices!r}")
    out = []
    for b in bit_choices:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b not in ALLOWED_BITS:
            raise ValueError(f"bit choice {b!r} is not allowed; choose from "
                             f"{', '.join(map(str, ALLOWED_BITS))}")
        out.append(int(b))
    if not out:
        raise ValueError("bit_choices is empty; give at least one of "
                         f"{', '.join(map(str, ALLOWED_BITS))}")
    return tuple(sorted(set(out)))


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown search method {method!r}; choose one of {', '.join(METHODS)}")
    return method


# ------------------------------------------------------------- search space
@dataclass(frozen=True)
class SearchSpace:
    """All :class:`BitAssignment` of an ``num_layers``-layer model with
    ``num_buckets`` degree buckets, each free field taking a value of
    ``bit_choices``; ``fixed`` fields (e.g. the ``att`` of a layer without
    edges, which stores nothing) keep their given value.

    A configuration is also written as a vector of bits over :attr:`fields`
    (the order of :meth:`BitAssignment.flat`).
    """

    num_layers: int
    num_buckets: int
    bit_choices: tuple[int, ...] = DEFAULT_BIT_CHOICES
    fixed: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        _check_int(self.num_layers, "num_layers")
        _check_int(self.num_buckets, "num_buckets")
        object.__setattr__(self, "bit_choices", check_bit_choices(self.bit_choices))
        names = tuple(BitAssignment.uniform(FP32_BITS, self.num_layers, self.num_buckets).flat())
        fixed = tuple(sorted((str(k), int(v)) for k, v in dict(self.fixed).items()))
        for name, bits in fixed:
            if name not in names:
                raise ValueError(f"fixed field {name!r} is not a field of this space; "
                                 f"fields are {', '.join(names)}")
            check_bits(bits)
        object.__setattr__(self, "fixed", fixed)

    @classmethod
    def from_layout(cls, layout: FeatureLayout,
                    bit_choices: Optional[Sequence[int]] = None) -> "SearchSpace":
        """The space of a model on a graph: fields that store no element (a
        layer without edge coefficients, an empty degree bucket) are fixed at 32."""
        J = len(layout.bucket_sizes)
        fixed = {}
        for k, spec in enumerate(layout.layers, start=1):
            if spec.num_edges * spec.heads == 0:
                fixed[f"att_L{k}"] = FP32_BITS
            for j, n in enumerate(layout.bucket_sizes):
                if n * spec.in_dim == 0:
                    fixed[f"emb_L{k}_B{j}"] = FP32_BITS
        return cls(layout.num_layers, J, check_bit_choices(bit_choices), tuple(fixed.items()))

    @property
    def fields(self) -> tuple[str, ...]:
        return _space_index(self)[0]

    @property
    def free_fields(self) -> tuple[str, ...]:
        fixed = dict(self.fixed)
        return tuple(f for f in self.fields if f not in fixed)

    @property
    def size(self) -> int:
        """Number of distinct configurations."""
        return len(self.bit_choices) ** len(self.free_fields)

    # vectors <-> assignments
    def _index(self) -> tuple[list[int], list[list[int]], np.ndarray, np.ndarray]:
        """Positions of att / emb fields in a vector, free positions, fixed values."""
        _, att, emb, free, base = _space_index(self)
        return att, emb, free.copy(), base.copy()

    def assignment(self, vector: Sequence[int]) -> BitAssignment:
        """The :class:`BitAssignment` of a bit vector over :attr:`fields`."""
        _, att, emb, _, _ = _space_index(self)
        v = [int(b) for b in vector]
        if len(v) != len(self.fields):
            raise ValueError(f"a configuration vector needs {len(self.fields)} entries "
                             f"({', '.join(self.fields)}), got {len(v)}")
        return BitAssignment.full([v[i] for i in att], [[v[i] for i in row] for row in emb])

    def vector(self, assignment: "BitAssignment | dict") -> np.ndarray:
        """The bit vector of ``assignment`` (checked to lie in this space)."""
        a = as_assignment(assignment)
        a.check_shape(self.num_layers)
        a = a.expand_buckets(self.num_buckets)
        flat = a.flat()
        v = np.array([flat[f] for f in self.fields], dtype=np.int64)
        fixed = dict(self.fixed)
        for f, b in zip(self.fields, v):
            allowed = (fixed[f],) if f in fixed else self.bit_choices
            if int(b) not in allowed:
                raise ValueError(f"field {f} = {int(b)} bits is outside the search space; "
                                 f"allowed: {', '.join(map(str, allowed))}")
        return v

    def fp32_vector(self) -> np.ndarray:
        """Every field at 32 bits (the FP32 model), fixed fields at their value."""
        _, _, free, base = self._index()
        out = base.copy()
        out[free] = FP32_BITS
        return out

    def random_vectors(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniform random bit vectors (rows), possibly repeated."""
        _, _, free, base = self._index()
        out = np.repeat(base[None, :], n, axis=0)
        choices = np.asarray(self.bit_choices, dtype=np.int64)
        out[:, free] = choices[rng.integers(0, len(choices), size=(n, free.size))]
        return out


@lru_cache(maxsize=64)
def _space_index(space: SearchSpace) -> tuple:
    """(field names, att positions, emb positions, free positions, base vector), computed
    once per space (vectors are converted to assignments thousands of times)."""
    names = tuple(BitAssignment.uniform(FP32_BITS, space.num_layers, space.num_buckets).flat())
    att = [names.index(f"att_L{k}") for k in range(1, space.num_layers + 1)]
    emb = [[names.index(f"emb_L{k}_B{j}") for j in range(space.num_buckets)]
           for k in range(1, space.num_layers + 1)]
    fixed = dict(space.fixed)
    free = np.array([i for i, f in enumerate(names) if f not in fixed], dtype=np.int64)
    base = np.array([fixed.get(f, 0) for f in names], dtype=np.int64)
    return names, att, emb, free, base


class Sampler:
    """Uniform random configurations of a :class:`SearchSpace`: a deterministic
    stream for a seed, never repeating a configuration (nor one in ``exclude``)."""

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.seed = _check_int(seed, "seed", low=0)
        self.rng = np.random.default_rng(self.seed)
        self._seen: set[bytes] = set()

    def draw(self, n: int, exclude: Iterable[np.ndarray] = ()) -> list[BitAssignment]:
        """The next ``n`` distinct configurations of the stream."""
        n = _check_int(n, "n", low=0)
        seen = self._seen | {np.asarray(v, dtype=np.int64).tobytes() for v in exclude}
        if n > self.space.size - len(seen):
            raise ValueError(f"cannot draw {n} new configurations: the search space has "
                             f"{self.space.size} and {len(seen)} are already taken")
        out = []
        while len(out) < n:
            # one row at a time: the stream's prefix does not depend on n
            v = self.space.random_vectors(self.rng, 1)[0]
            key = v.tobytes()
            if key in seen:
                continue
            seen.add(key)
            self._seen.add(key)
            out.append(self.space.assignment(v))
        return out


# ----------------------------------------------------------------- features
def config_features(assignment: BitAssignment, layout: FeatureLayout) -> dict[str, float]:
    """Cost-model features of one configuration: the bits of every field
    (:meth:`BitAssignment.flat`) plus its average bits, memory (MB) and saving
    (:func:`sgquant.memory.feature_memory`)."""
    report = feature_memory(layout, assignment)
    return {**assignment.flat(), "average_bits": report.average_bits,
            "memory_mb": report.mb, "saving": report.saving}


def feature_frame(assignments: Sequence[BitAssignment], layout: FeatureLayout) -> pd.DataFrame:
    """:func:`config_features` of many configurations, one row each."""
    return pd.DataFrame([config_features(a, layout) for a in assignments])


class FeatureCache:
    """:func:`config_features` of bit vectors of one space and layout, as a matrix
    (columns :attr:`columns`), computed for a whole batch of vectors at once by
    :func:`sgquant.memory.batch_memory` (the formula of ``feature_memory``)."""

    def __init__(self, space: SearchSpace, layout: FeatureLayout) -> None:
        self.space, self.layout = space, layout
        self.columns = list(space.fields) + list(FEATURE_EXTRAS)

    def rows(self, vectors: np.ndarray) -> np.ndarray:
        _, att, emb, _, _ = _space_index(self.space)
        v = np.asarray(vectors, dtype=np.int64).reshape(-1, len(self.space.fields))
        mem = batch_memory(self.layout, v[:, att], v[:, np.asarray(emb, dtype=np.int64)])
        out = np.empty((len(v), len(self.columns)), dtype=np.float64)
        out[:, :v.shape[1]] = v
        out[:, v.shape[1]:] = np.stack([mem["average_bits"], mem["memory_mb"],
                                        mem["saving"]], axis=1)
        return out


#: the name ``sgquant.experiments.autobit_latency`` uses
_FeatureCache = FeatureCache


# --------------------------------------------------------------- cost model
class CostModel:
    r"""XGBoost regressor from configuration features to validation accuracy.

    With ``monotone=True`` (default) the prediction is constrained to be
    non-decreasing in every bit field and in average bits / memory, and
    non-increasing in saving: more bits never predict a lower accuracy.

    With ``ensemble = B > 1`` it is a bagged ensemble: the first regressor
    sees all measured rows, the others bootstrap resamples; :meth:`predict`
    is their mean and :meth:`predict_spread` adds their standard deviation,
    the model's uncertainty (large where few measurements support a split).
    """

    def __init__(self, columns: Sequence[str], seed: int = 0, monotone: bool = True,
                 ensemble: int = 1, **params: Any) -> None:
        self.columns = list(columns)
        self.seed = _check_int(seed, "seed", low=0)
        self.ensemble = _check_int(ensemble, "ensemble")
        signs = [-1 if c == "saving" else 1 for c in self.columns]
        settings = {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.2,
                    "min_child_weight": 1.0, "n_jobs": 1,
                    "tree_method": "hist", "objective": "reg:squarederror"}
        if monotone:
            settings["monotone_constraints"] = "(" + ",".join(map(str, signs)) + ")"
        settings.update(params)
        self.settings = settings
        self.regressors: list = []

    def fit(self, features: np.ndarray, accuracy: np.ndarray) -> "CostModel":
        import xgboost

        X = np.asarray(features, dtype=np.float64)
        y = np.asarray(accuracy, dtype=np.float64)
        rng = np.random.default_rng(self.seed)
        self.regressors = []
        for b in range(self.ensemble):
            rows = np.arange(len(y)) if b == 0 else rng.integers(0, len(y), len(y))
            reg = xgboost.XGBRegressor(random_state=self.seed + b, **self.settings)
            self.regressors.append(reg.fit(X[rows], y[rows]))
        return self

    def predict_spread(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the ensemble's predictions."""
        if not self.regressors:
            raise ValueError("the cost model is not fitted: call fit() first")
        X = np.asarray(features, dtype=np.float64)
        preds = np.stack([r.predict(X).astype(np.float64) for r in self.regressors])
        return preds.mean(axis=0), preds.std(axis=0)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.predict_spread(features)[0]


def _elites(vectors: np.ndarray, val: np.ndarray, saving: np.ndarray, threshold: float,
            k: int = 5) -> np.ndarray:
    """Rows worth mutating: the ``k`` feasible ones with the largest saving
    and the ``k`` with the highest validation accuracy."""
    if len(vectors) == 0:
        return vectors
    feasible = np.flatnonzero(val >= threshold - _EPS)
    by_saving = feasible[np.argsort(-saving[feasible], kind="stable")][:k]
    by_acc = np.argsort(-val, kind="stable")[:k]
    idx = list(dict.fromkeys([*by_saving.tolist(), *by_acc.tolist()]))
    return vectors[idx]


def propose_candidates(space: SearchSpace, rng: np.random.Generator, n_sample: int,
                       elites: np.ndarray, exclude: set[bytes],
                       local_share: float = 0.5) -> tuple[np.ndarray, list[str]]:
    """``n_sample`` fresh (distinct, unmeasured) bit vectors and how each was made.

    ``local_share`` of them (when there are elites) are local moves around the
    best measured configurations: ``"mutation"`` (1-3 free fields redrawn from
    ``bit_choices``) and ``"crossover"`` (each field from one of two elites);
    the rest are ``"uniform"`` draws.
    """
    _, _, free, _ = space._index()
    choices = np.asarray(space.bit_choices, dtype=np.int64)
    n_sample = _check_int(n_sample, "n_sample")
    available = space.size - len(exclude)
    n_sample = min(n_sample, available)
    picked: dict[bytes, tuple[np.ndarray, str]] = {}

    def add(rows: np.ndarray, source: str) -> None:
        for row in rows:
            key = row.tobytes()
            if key not in exclude and key not in picked and len(picked) < n_sample:
                picked[key] = (row, source)

    if len(elites) and free.size and local_share > 0:
        n_local = int(round(n_sample * local_share))
        n_mut = n_local - n_local // 2
        n_cross = n_local // 2
        parents = elites[rng.integers(0, len(elites), size=n_mut)]
        mut = parents.copy()
        moves = rng.integers(1, min(3, free.size) + 1, size=n_mut)
        for i in range(n_mut):
            fields = rng.choice(free, size=moves[i], replace=False)
            mut[i, fields] = choices[rng.integers(0, len(choices), size=moves[i])]
        add(mut, "mutation")
        if len(elites) > 1 and n_cross:
            a = elites[rng.integers(0, len(elites), size=n_cross)]
            b = elites[rng.integers(0, len(elites), size=n_cross)]
            cross = np.where(rng.random(a.shape) < 0.5, a, b)
            flip = rng.random(n_cross) < 0.5  # and one redrawn field for half of them
            cols = rng.choice(free, size=n_cross)
            cross[flip, cols[flip]] = choices[rng.integers(0, len(choices), size=int(flip.sum()))]
            add(cross, "crossover")
    attempts = 0
    while len(picked) < n_sample and attempts < 20:
        add(space.random_vectors(rng, max(n_sample - len(picked), 16)), "uniform")
        attempts += 1
    if len(picked) < n_sample and space.size <= 10**6:  # small, mostly used: enumerate it
        _, _, _, base = space._index()
        grid = np.array(list(itertools.product(space.bit_choices, repeat=free.size)),
                        dtype=np.int64).reshape(-1, free.size)
        rows = np.repeat(base[None, :], len(grid), axis=0)
        rows[:, free] = grid
        add(rows[rng.permutation(len(rows))], "uniform")
    rows = [r for r, _ in picked.values()]
    vectors = np.array(rows, dtype=np.int64).reshape(len(rows), len(space.fields))
    return vectors, [s for _, s in picked.values()]


def select_candidates(predicted: np.ndarray, saving: np.ndarray, threshold: float, n: int,
                      best_saving: float = 0.0, hedge: bool = True,
                      allowed: Optional[np.ndarray] = None,
                      upper: Optional[np.ndarray] = None,
                      spread: Optional[np.ndarray] = None,
                      noise: float = 0.003) -> np.ndarray:
    r"""Indices of the ``n`` candidates to measure next.

    With ``spread`` (the model's uncertainty per candidate), the acquisition is
    the expected improvement under the accuracy constraint,

    .. math::

        \text{EI}(a) = \big(\text{saving}(a) - \text{best}\big)_+ \cdot
        P\big(\text{acc}(a) \ge \text{threshold}\big),\quad
        P = \Phi\Big(\frac{\hat{acc}(a) - \text{threshold}}
        {\sqrt{\text{spread}^2 + \text{noise}^2}}\Big),

    so a large saving is not bought with a needless risk (lowering a field
    that saves little). The candidates are taken by EI; with ``hedge`` every
    second pick is instead the most probably feasible improving one, so that
    one wrong belief of the model cannot waste a whole round.

    Without ``spread`` (the plain rule): the useful candidates are those that
    could be within tolerance (optimistic prediction ``upper``, default ``predicted``,
    :math:`\ge` ``threshold``) and would beat ``best_saving`` (the largest
    feasible saving measured so far). They are taken largest saving first;
    with ``hedge`` every second pick is instead the most confident one (highest
    ``predicted`` accuracy, itself within tolerance), so that one wrong belief
    of the model cannot waste a whole round. If fewer than ``n`` are useful, the other improving
    candidates follow by predicted accuracy (those closest to the tolerance),
    then the rest by predicted accuracy (ties keep the candidates' order).
    With an ``allowed`` mask (the trust region of :func:`cost_model_step`),
    allowed candidates come first, ranked as above, then the others.
    """
    predicted, saving = np.asarray(predicted, float), np.asarray(saving, float)
    upper = predicted if upper is None else np.maximum(np.asarray(upper, float), predicted)
    if allowed is not None:
        allowed = np.asarray(allowed, dtype=bool)
        out = []
        for part in (np.flatnonzero(allowed), np.flatnonzero(~allowed)):
            k = n - sum(len(o) for o in out)
            if k > 0 and len(part):
                out.append(part[select_candidates(
                    predicted[part], saving[part], threshold, k, best_saving, hedge,
                    upper=upper[part], spread=None if spread is None else spread[part],
                    noise=noise)])
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)
    n = min(int(n), len(predicted))
    idx = np.arange(len(predicted))
    improving = saving > best_saving * (1 + 1e-12)
    if spread is not None:
        from scipy.special import ndtr

        sigma = np.maximum(np.sqrt(np.asarray(spread, float) ** 2 + float(noise) ** 2), 1e-12)
        prob = ndtr((predicted - threshold) / sigma)
        gain = np.where(improving, saving - best_saving, 0.0)
        ei = gain * prob
        queues = [idx[improving][np.lexsort((-prob[improving], -ei[improving]))].tolist()]
        if hedge:
            queues.append(idx[improving][np.lexsort((-gain[improving],
                                                     -prob[improving]))].tolist())
        picks = _alternate(queues, n)
        rest = idx[~improving][np.argsort(-predicted[~improving], kind="stable")]
        return np.concatenate([np.array(picks, dtype=np.int64), rest])[:n].astype(np.int64)
    ok = improving & (upper >= threshold - _EPS)
    sure = improving & (predicted >= threshold - _EPS)
    bold = idx[ok][np.lexsort((-predicted[ok], -saving[ok]))].tolist()
    safe = idx[sure][np.lexsort((-saving[sure], -predicted[sure]))].tolist() if hedge else []
    picks = _alternate([bold, safe] if hedge else [bold], n)
    rest = improving & ~ok  # ties (a model that has seen no difference) keep their order
    second = idx[rest][np.argsort(-predicted[rest], kind="stable")]
    third = idx[~improving][np.argsort(-predicted[~improving], kind="stable")]
    order = np.concatenate([np.array(picks, dtype=np.int64), second, third])
    return order[:n].astype(np.int64)


def _alternate(queues: list[list[int]], n: int) -> list[int]:
    """Up to ``n`` distinct items taken in turn from the front of each queue."""
    picks: list[int] = []
    taken: set[int] = set()
    heads = [0] * len(queues)
    turn = 0
    while len(picks) < n and any(h < len(q) for h, q in zip(heads, queues)):
        k = turn % len(queues)
        queue = queues[k]
        while heads[k] < len(queue) and queue[heads[k]] in taken:
            heads[k] += 1
        if heads[k] < len(queue):
            picks.append(queue[heads[k]])
            taken.add(queue[heads[k]])
            heads[k] += 1
        turn += 1
    return picks


def _near(vectors: np.ndarray, anchors: np.ndarray, radius: Optional[int]) -> Optional[np.ndarray]:
    """Mask of ``vectors`` that differ in at most ``radius`` fields from an anchor."""
    if radius is None:
        return None
    mask = np.zeros(len(vectors), dtype=bool)
    for a in anchors:  # one (n, F) comparison per anchor: small and fast for 10^4 x 10^2
        mask |= (vectors != a).sum(axis=1) <= radius
    return mask


def cost_model_step(space: SearchSpace, features: "FeatureCache", measured: np.ndarray,
                    accuracy: np.ndarray, threshold: float, n_sample: int, n_mea: int,
                    rng: np.random.Generator, seed: int = 0, monotone: bool = True,
                    generations: int = 4, hedge: bool = True, radius: Optional[int] = 3,
                    ensemble: int = 5, optimism: float = 1.0, local_share: float = 0.5,
                    acquisition: str = "ei", noise: float = 0.003,
                    fp32_accuracy: Optional[float] = None,
                    timings: Optional[dict] = None, **params: Any) -> dict:
    """One iteration of steps 2-4: fit on the ``measured`` vectors (with their
    validation ``accuracy``; NaN = failed), generate and score ``n_sample`` fresh
    candidates, pick the top ``n_mea`` (:func:`select_candidates`).

    The candidates come in ``generations`` batches: the first is uniform
    draws and (a ``local_share`` of it) local moves around the best measured
    configurations; each later batch mutates and recombines the best
    candidates scored so far (those possibly within tolerance with the largest
    saving) and the measured elites, so that several improvements the model
    believes in can be chained before anything is measured. Every candidate
    is scored by the model.

    The model is a bagged ensemble of ``ensemble`` XGBoost regressors whose
    spread is its uncertainty. ``acquisition="ei"`` ranks candidates by their
    expected improvement of the saving under the accuracy constraint (with
    ``noise``, the measurement noise of an accuracy, see
    :func:`select_candidates`): a direction ruled out by one or two confounded
    measurements still gets tried, and a risky field is not lowered for a tiny
    gain. ``acquisition="plain"`` takes the largest saving among candidates
    whose mean + ``optimism`` x spread reaches the threshold.

    Trust region: the model is only believed near what was measured, so the
    picks are taken first among candidates that differ in at most ``radius``
    fields from a configuration known to be within tolerance (``None``: no
    trust region). ``fp32_accuracy`` (the FP32 model's validation accuracy)
    makes the all-32-bit configuration such a known point, a training row and
    a parent for local moves: known without a measurement, it anchors the
    search when no measured configuration is within tolerance yet.

    Returns ``{"vectors", "sources", "predicted"}`` of the picks. ``timings``
    (if given) receives the seconds of each phase (fit, generate, features,
    predict, select).
    """
    clock = time.perf_counter
    t = {k: 0.0 for k in ("fit", "generate", "features", "predict", "select")}
    n_sample, n_mea = _check_int(n_sample, "n_sample"), _check_int(n_mea, "n_mea")
    generations = _check_int(generations, "generations")
    measured = np.asarray(measured, dtype=np.int64).reshape(-1, len(space.fields))
    accuracy = np.asarray(accuracy, dtype=np.float64)
    ok = np.isfinite(accuracy)
    saving_col = features.columns.index("saving")
    start = clock()
    X_meas = features.rows(measured[ok]) if ok.any() else np.empty((0, len(features.columns)))
    model = None
    if ok.any():
        model = CostModel(features.columns, seed=seed, monotone=monotone, ensemble=ensemble,
                          **params)
        if fp32_accuracy is None:
            model.fit(X_meas, accuracy[ok])
        else:  # FP32 (every field at 32 bits) is a known point: the model's anchor
            anchor = features.rows(space.fp32_vector()[None, :])
            model.fit(np.vstack([X_meas, anchor]), np.append(accuracy[ok], fp32_accuracy))
    t["fit"] += clock() - start
    feasible = accuracy[ok] >= threshold - _EPS
    best = float(X_meas[feasible, saving_col].max()) if feasible.any() else 0.0
    measured_elites = _elites(measured[ok], accuracy[ok], X_meas[:, saving_col], threshold)
    anchors = measured[ok][feasible]
    if fp32_accuracy is not None:
        fp32 = space.fp32_vector()[None, :]
        anchors = np.vstack([anchors, fp32])
        measured_elites = np.vstack([measured_elites, fp32]) if len(measured_elites) else fp32
    exclude = {v.tobytes() for v in measured}
    if fp32_accuracy is not None:
        exclude.add(space.fp32_vector().tobytes())  # known: never worth a measurement
    if model is None:  # nothing measured successfully yet: uniform draws, no model
        start = clock()
        cand, sources = propose_candidates(space, rng, n_mea, measured_elites[:0], exclude)
        t["generate"] += clock() - start
        if timings is not None:
            timings.update(t)
        return {"vectors": cand, "sources": sources, "predicted": np.full(len(cand), np.nan)}
    if acquisition not in ("ei", "plain"):
        raise ValueError(f"acquisition must be 'ei' or 'plain', got {acquisition!r}")

    def acquire(pred: np.ndarray, spread: np.ndarray) -> dict:
        if acquisition == "ei":
            return {"spread": spread, "noise": noise}
        return {"upper": pred + optimism * spread}

    vecs, srcs, Xs, preds, spreads = [], [], [], [], []
    elites = measured_elites
    per_gen = -(-n_sample // generations)
    for g in range(generations):
        size = min(per_gen, n_sample - sum(len(v) for v in vecs))
        if size <= 0:
            break
        start = clock()
        cand, sources = propose_candidates(space, rng, size, elites, exclude,
                                           local_share=local_share if g == 0 else 1.0)
        exclude |= {v.tobytes() for v in cand}
        t["generate"] += clock() - start
        if not len(cand):
            break
        start = clock()
        X = features.rows(cand)
        t["features"] += clock() - start
        start = clock()
        pred, spread = model.predict_spread(X)
        t["predict"] += clock() - start
        vecs.append(cand), srcs.extend(sources if g == 0 else [f"{s} (gen {g})" for s in sources])
        Xs.append(X), preds.append(pred), spreads.append(spread)
        if g + 1 < generations:  # parents of the next batch: the best candidates so far
            start = clock()
            pool, pool_pred, pool_X = np.vstack(vecs), np.concatenate(preds), np.vstack(Xs)
            pool_spread = np.concatenate(spreads)
            top = select_candidates(pool_pred, pool_X[:, saving_col], threshold, 5, best,
                                    hedge=False, allowed=_near(pool, anchors, radius),
                                    **acquire(pool_pred, pool_spread))
            elites = np.vstack([measured_elites, pool[top]]) if len(
                measured_elites) else pool[top]
            t["select"] += clock() - start
    cand, X, predicted = np.vstack(vecs), np.vstack(Xs), np.concatenate(preds)
    start = clock()
    order = select_candidates(predicted, X[:, saving_col], threshold, n_mea, best, hedge=hedge,
                              allowed=_near(cand, anchors, radius),
                              **acquire(predicted, np.concatenate(spreads)))
    t["select"] += clock() - start
    if timings is not None:
        timings.update(t)
    return {"vectors": cand[order], "sources": [srcs[i] for i in order],
            "predicted": predicted[order]}


#: How :func:`cost_model_search` generates, scores and picks candidates (the
#: keyword arguments of :func:`cost_model_step`): sgquant's default ...
STRATEGY: dict[str, Any] = {"generations": 4, "local_share": 0.5, "ensemble": 5,
                            "acquisition": "ei", "noise": 0.003, "optimism": 1.0,
                            "hedge": True, "radius": 3, "monotone": True, "fp32_anchor": True}
#: ... and the paper's plain steps: one XGBoost model, uniform candidates,
#: top predicted-feasible saving (an ablation).
PAPER_STRATEGY: dict[str, Any] = {"generations": 1, "local_share": 0.0, "ensemble": 1,
                                  "acquisition": "plain", "noise": 0.003, "optimism": 0.0,
                                  "hedge": False, "radius": None,
                                  "monotone": False, "fp32_anchor": False}


def check_strategy(strategy: Optional[dict]) -> dict[str, Any]:
    """:data:`STRATEGY` updated with ``strategy`` (unknown keys: ``ValueError``)."""
    if strategy is None:
        return dict(STRATEGY)
    if not isinstance(strategy, dict):
        raise ValueError(f"strategy must be a dict with keys from {', '.join(STRATEGY)}, "
                         f"got {strategy!r}")
    unknown = set(strategy) - set(STRATEGY)
    if unknown:
        raise ValueError(f"unknown strategy key(s) {sorted(unknown)}; "
                         f"keys are {', '.join(STRATEGY)}")
    out = {**STRATEGY, **strategy}
    _check_int(out["generations"], "generations")
    _check_int(out["ensemble"], "ensemble")
    if out["radius"] is not None:
        _check_int(out["radius"], "radius", low=0)
    for key in ("hedge", "monotone", "fp32_anchor"):
        if not isinstance(out[key], bool):
            raise ValueError(f"strategy {key} must be True or False, got {out[key]!r}")
    if out["acquisition"] not in ("ei", "plain"):
        raise ValueError(f"strategy acquisition must be 'ei' or 'plain', "
                         f"got {out['acquisition']!r}")
    for key, low, high in (("local_share", 0.0, 1.0), ("optimism", 0.0, math.inf),
                           ("noise", 0.0, 1.0)):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
            raise ValueError(f"strategy {key} must be a number in [{low}, {high}], got {v!r}")
    return out


# ---------------------------------------------------------------- executors
class SerialExecutor(Executor):
    """Runs each job in this process as it is submitted (tests, notebooks, debugging)."""

    def __init__(self) -> None:
        self._shutdown = False

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: Future = Future()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # recorded by the caller as a failed measurement
            future.set_exception(exc)
        else:
            future.set_result(result)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True


def make_executor(workers: Optional[int] = None) -> Executor:
    """A "spawn" :class:`ProcessPoolExecutor` with ``workers`` processes (default and
    maximum: ``os.cpu_count()``); ``workers=0`` gives a :class:`SerialExecutor`."""
    cores = os.cpu_count() or 1
    if workers is None:
        workers = cores
    workers = _check_int(workers, "workers", low=0)
    if workers == 0:
        return SerialExecutor()
    return ProcessPoolExecutor(max_workers=min(workers, cores),
                               mp_context=multiprocessing.get_context("spawn"))


# ------------------------------------------------------------------- result
def best_so_far(records: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Best saving within tolerance after each measurement (Fig. 8).

    Columns ``measurements`` (1..n, in measurement order) and ``best_saving``;
    before the first configuration within tolerance the best is FP32 itself
    (saving 1).
    """
    df = records.sort_values("order")
    ok = (df["status"] != "failed") & (df["val_acc"] >= threshold - _EPS)
    running = df["saving"].where(ok, 1.0).cummax().clip(lower=1.0)
    return pd.DataFrame({"measurements": np.arange(1, len(df) + 1),
                         "best_saving": running.to_numpy()})


_TEST_FIELDS = ("test_acc", "best_test_acc")


@dataclass
class SearchResult:
    """Outcome of one search. Accuracies are fractions in [0, 1]; ``tolerance``
    is in percentage points. ``records`` has one row per measured configuration
    (no test accuracy: that is reported for the ``chosen`` one only)."""

    method: str
    dataset: str
    model: str
    seed: int
    profile: str
    tolerance: float
    budget: int
    bit_choices: tuple[int, ...]
    fp32_val_acc: float
    fp32_test_acc: float
    records: pd.DataFrame
    chosen: Optional[BitAssignment]
    chosen_test_acc: Optional[float]
    chosen_best_test_acc: Optional[float]
    wall_seconds: float
    settings: dict = field(default_factory=dict)
    #: the confirmation step (:func:`confirm_choice`): settings, one row per extra
    #: fine-tune (``confirm_top = 0``: no confirmation, the chosen is the top feasible)
    confirm_top: int = 0
    confirm_seeds: int = 0
    confirmations: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: means over the chosen configuration's 1 + ``confirm_seeds`` fine-tunes
    #: (``None`` without confirmation: see the ``*_mean`` properties' fallback)
    confirmed_val_acc: Optional[float] = None
    confirmed_test_acc: Optional[float] = None
    confirmed_best_test_acc: Optional[float] = None
    confirm_seconds: float = 0.0

    @property
    def threshold(self) -> float:
        """Lowest validation accuracy within tolerance: FP32 val - tolerance / 100."""
        return self.fp32_val_acc - self.tolerance / 100.0

    @property
    def chosen_record(self) -> Optional[dict]:
        if self.chosen is None:
            return None
        row = self.records[self.records["config_key"] == self.chosen.key()].iloc[0]
        return row.to_dict()

    def _chosen(self, name: str) -> Optional[float]:
        rec = self.chosen_record
        return None if rec is None else float(rec[name])

    @property
    def chosen_val_acc(self) -> Optional[float]:
        return self._chosen("val_acc")

    @property
    def chosen_saving(self) -> Optional[float]:
        return self._chosen("saving")

    @property
    def chosen_paper_saving(self) -> Optional[float]:
        return self._chosen("paper_saving")

    @property
    def chosen_average_bits(self) -> Optional[float]:
        return self._chosen("average_bits")

    @property
    def chosen_val_acc_mean(self) -> Optional[float]:
        """Validation accuracy of the chosen configuration, mean over its fine-tunes
        (the single search measurement when there was no confirmation)."""
        return self.chosen_val_acc if self.confirmed_val_acc is None else self.confirmed_val_acc

    @property
    def chosen_test_acc_mean(self) -> Optional[float]:
        """Test accuracy (at the best-validation epoch) of the chosen configuration,
        mean over its 1 + ``confirm_seeds`` fine-tunes (``chosen_test_acc``, the
        first fine-tune alone, when there was no confirmation)."""
        return self.chosen_test_acc if self.confirmed_test_acc is None \
            else self.confirmed_test_acc

    @property
    def chosen_best_test_acc_mean(self) -> Optional[float]:
        return self.chosen_best_test_acc if self.confirmed_best_test_acc is None \
            else self.confirmed_best_test_acc

    @property
    def num_measured(self) -> int:
        """Search measurements (the budget); confirmations are counted apart."""
        return int(len(self.records))

    @property
    def num_confirmations(self) -> int:
        """Extra fine-tunes of the confirmation step (not part of the budget)."""
        return int(len(self.confirmations))

    @property
    def num_failed(self) -> int:
        return int((self.records["status"] == "failed").sum())

    def best_so_far(self) -> pd.DataFrame:
        """:func:`best_so_far` of this search's records (Fig. 8)."""
        return best_so_far(self.records, self.threshold)

    def to_dict(self) -> dict:
        """JSON-able dict (NaN written as ``None``)."""
        import json
        return {
            "method": self.method, "dataset": self.dataset, "model": self.model,
            "seed": self.seed, "profile": self.profile, "tolerance": self.tolerance,
            "budget": self.budget, "bit_choices": list(self.bit_choices),
            "settings": self.settings, "wall_seconds": self.wall_seconds,
            "fp32": {"val_acc": self.fp32_val_acc, "test_acc": self.fp32_test_acc},
            "threshold": self.threshold,
            "chosen": None if self.chosen is None else {
                "assignment": self.chosen.to_dict(), "config_key": self.chosen.key(),
                "val_acc": self.chosen_val_acc, "test_acc": self.chosen_test_acc,
                "best_test_acc (authors' protocol)": self.chosen_best_test_acc,
                "average_bits": self.chosen_average_bits, "saving": self.chosen_saving,
                "paper_saving": self.chosen_paper_saving,
                "memory_mb": self._chosen("memory_mb"),
                "finetunes": 1 + (0 if self.confirmed_val_acc is None else self.confirm_seeds),
                "val_acc_mean": self.chosen_val_acc_mean,
                "test_acc_mean": self.chosen_test_acc_mean,
                "best_test_acc_mean (authors' protocol)": self.chosen_best_test_acc_mean},
            "num_measured": self.num_measured, "num_failed": self.num_failed,
            "confirm_top": self.confirm_top, "confirm_seeds": self.confirm_seeds,
            "num_confirmations": self.num_confirmations,
            "confirm_seconds": self.confirm_seconds,
            "confirmations": json.loads(self.confirmations.to_json(orient="records"))
            if len(self.confirmations) else [],
            "records": json.loads(self.records.to_json(orient="records")),
            "best_so_far": self.best_so_far()["best_saving"].tolist(),
        }

    def summary(self) -> str:
        pct = lambda x: f"{100 * x:.2f}"  # noqa: E731
        lines = [
            f"{self.method} search, {self.dataset} / {self.model}, seed {self.seed}, "
            f"profile {self.profile}: {self.num_measured} configurations measured "
            f"({self.num_failed} failed) in {self.wall_seconds:.1f} s",
            f"FP32: val {pct(self.fp32_val_acc)} / test {pct(self.fp32_test_acc)}; "
            f"tolerance {self.tolerance:g} points -> val >= {pct(self.threshold)}",
        ]
        if self.confirm_top:
            tried = (self.confirmations["config_key"].nunique()
                     if len(self.confirmations) else 0)
            lines.append(
                f"confirmation: top {self.confirm_top} feasible re-fine-tuned with "
                f"{self.confirm_seeds} more seed(s): {tried} configuration(s), "
                f"{self.num_confirmations} extra fine-tunes ({self.confirm_seconds:.1f} s), "
                "chosen = largest saving whose mean val is within tolerance")
        if self.chosen is None:
            lines.append("no measured configuration is within tolerance"
                         + (" (and confirmed)" if self.confirm_top else "")
                         + ": keep FP32 (saving 1x)")
        else:
            lines += [
                f"chosen: {self.chosen}",
                f"  average bits {self.chosen_average_bits:.3f}, saving "
                f"{self.chosen_saving:.2f}x "
                f"(paper's 32/avg bits: {self.chosen_paper_saving:.2f}x), "
                f"memory {self._chosen('memory_mb'):.3f} MB",
                f"  val {pct(self.chosen_val_acc)} / test {pct(self.chosen_test_acc)} "
                f"(authors' best-test protocol: {pct(self.chosen_best_test_acc)})"
                + (" [first fine-tune]" if self.confirmed_val_acc is not None else ""),
            ]
            if self.confirmed_val_acc is not None:
                lines.append(
                    f"  mean of {1 + self.confirm_seeds} fine-tunes: val "
                    f"{pct(self.chosen_val_acc_mean)} / test {pct(self.chosen_test_acc_mean)} "
                    f"(authors' protocol: {pct(self.chosen_best_test_acc_mean)}); "
                    f"test vs FP32 {100 * (self.chosen_test_acc_mean - self.fp32_test_acc):+.2f}"
                    " points")
        return "\n".join(lines)

    @classmethod
    def from_dict(cls, payload: dict) -> "SearchResult":
        """Read back :meth:`to_dict` (e.g. a JSON file written by ``sgquant search``)."""
        chosen = payload.get("chosen")
        return cls(
            method=payload["method"], dataset=payload["dataset"], model=payload["model"],
            seed=payload["seed"], profile=payload["profile"], tolerance=payload["tolerance"],
            budget=payload["budget"], bit_choices=tuple(payload["bit_choices"]),
            fp32_val_acc=payload["fp32"]["val_acc"], fp32_test_acc=payload["fp32"]["test_acc"],
            records=pd.DataFrame(payload["records"]),
            chosen=None if chosen is None else as_assignment(chosen["assignment"]),
            chosen_test_acc=None if chosen is None else chosen["test_acc"],
            chosen_best_test_acc=None if chosen is None
            else chosen["best_test_acc (authors' protocol)"],
            wall_seconds=payload["wall_seconds"], settings=payload.get("settings", {}),
            confirm_top=int(payload.get("confirm_top", 0)),
            confirm_seeds=int(payload.get("confirm_seeds", 0)),
            confirmations=pd.DataFrame(payload.get("confirmations") or []),
            confirmed_val_acc=_confirmed(payload, chosen, "val_acc_mean"),
            confirmed_test_acc=_confirmed(payload, chosen, "test_acc_mean"),
            confirmed_best_test_acc=_confirmed(
                payload, chosen, "best_test_acc_mean (authors' protocol)"),
            confirm_seconds=float(payload.get("confirm_seconds", 0.0)))


def _confirmed(payload: dict, chosen: Optional[dict], name: str) -> Optional[float]:
    """A ``*_mean`` of a written result, ``None`` where it had no confirmation."""
    if chosen is None or not payload.get("confirm_top") or chosen.get(name) is None:
        return None
    if int(chosen.get("finetunes", 1)) <= 1:
        return None
    return float(chosen[name])


def curves(results: Iterable[SearchResult]) -> pd.DataFrame:
    """Long table of :meth:`SearchResult.best_so_far` of many searches
    (columns method, dataset, model, seed, measurements, best_saving)."""
    frames = []
    for r in results:
        df = r.best_so_far()
        frames.append(df.assign(method=r.method, dataset=r.dataset, model=r.model, seed=r.seed))
    cols = ["method", "dataset", "model", "seed", "measurements", "best_saving"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


# -------------------------------------------------------------- the searches
@dataclass
class _Run:
    """State of one search: the setup, where jobs go, and the records so far."""

    setup: Setup
    space: SearchSpace
    features: FeatureCache
    threshold: float
    options: Optional[QuantOptions]
    results: str
    data_root: Optional[str]
    executor: Executor
    owns_executor: bool
    workers: Optional[int]
    bar: Any
    rows: list = field(default_factory=list)
    private: dict = field(default_factory=dict)  # config_key -> test accuracies
    vectors: list = field(default_factory=list)

    def measure_round(self, iteration: int, vectors: np.ndarray, sources: Sequence[str],
                      predicted: Optional[np.ndarray] = None) -> None:
        setup = self.setup
        futures: dict[Future, int] = {}
        pending: list[dict] = []
        for i, v in enumerate(vectors):
            a = self.space.assignment(v)
            row = {"order": len(self.rows) + len(pending) + 1, "iteration": iteration,
                   "source": sources[i], "config_key": a.key(), "status": "pending",
                   "error": None, **a.flat(), **memory_record(setup, a),
                   "val_acc": np.nan, "val_acc_before": np.nan,
                   "predicted_val_acc": np.nan if predicted is None else float(predicted[i]),
                   "seconds": np.nan, "assignment": a.to_json()}
            pending.append(row)
            try:
                fut = self.executor.submit(
                    measure_job, setup.dataset, setup.model_name, setup.seed, setup.profile,
                    a.to_dict(), self.options, self.results, self.data_root)
            except Exception as exc:  # e.g. a broken pool: recorded, the search goes on
                self._fail(row, exc)
                continue
            futures[fut] = len(pending) - 1
        for fut in as_completed(futures):
            row = pending[futures[fut]]
            try:
                rec = fut.result()
                update = {"status": "cached" if rec.get("cached") else "measured",
                          "val_acc": float(rec["val_acc"]),
                          "val_acc_before": float(rec["val_acc_before"]),
                          "seconds": float(rec["seconds"])}
                private = {k: float(rec[k]) for k in _TEST_FIELDS}
            except Exception as exc:  # the job raised (or returned no record): failed
                self._fail(row, exc)
            else:
                row.update(update)
                self.private[row["config_key"]] = private
                self.bar.update(1)
        for row in pending:
            if row["status"] == "pending":  # pragma: no cover - defensive
                self._fail(row, RuntimeError("job never completed"))
            row["feasible"] = bool(row["status"] != "failed"
                                   and row["val_acc"] >= self.threshold - _EPS)
        self.rows.extend(pending)
        self.vectors.extend(np.asarray(v, dtype=np.int64) for v in vectors)
        if self.owns_executor and any(r["status"] == "failed" and "BrokenProcessPool"
                                      in str(r["error"]) for r in pending):
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = make_executor(self.workers)  # a fresh pool for the next round

    def measure_finetunes(self, keys: Sequence[str], finetune_seeds: Sequence[int]
                          ) -> list[dict]:
        """Re-measure the configurations ``keys`` (already measured) once per
        ``finetune_seeds`` (same FP32 weights, other fine-tuning seeds), through the
        executor and the cache; one row per fine-tune, in (key, seed) order."""
        setup = self.setup
        by_key = {r["config_key"]: r for r in self.rows}
        futures: dict[Future, dict] = {}
        out: list[dict] = []
        for key in keys:
            a = as_assignment(by_key[key]["assignment"])
            for fs in finetune_seeds:
                row = {"config_key": key, "finetune_seed": int(fs), "status": "pending",
                       "error": None, "val_acc": np.nan, "test_acc": np.nan,
                       "best_test_acc": np.nan, "seconds": np.nan}
                out.append(row)
                try:
                    fut = self.executor.submit(
                        measure_job, setup.dataset, setup.model_name, setup.seed,
                        setup.profile, a.to_dict(), self.options, self.results,
                        self.data_root, finetune_seed=int(fs))
                except Exception as exc:
                    row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
                    continue
                futures[fut] = row
        for fut in as_completed(futures):
            row = futures[fut]
            try:
                rec = fut.result()
                row.update(status="cached" if rec.get("cached") else "measured",
                           **{k: float(rec[k]) for k in ("val_acc", "seconds", *_TEST_FIELDS)})
            except Exception as exc:
                row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        return out

    def _fail(self, row: dict, exc: BaseException) -> None:
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        self.bar.update(1)

    def accuracy(self) -> np.ndarray:
        return np.array([r["val_acc"] if r["status"] != "failed" else np.nan
                         for r in self.rows], dtype=np.float64)


def confirmation_seeds(seed: int, confirm_seeds: int) -> list[int]:
    """The fine-tune seeds of the confirmation of a search with ``seed``:
    ``seed * 1000 + 1 + i`` for ``i < confirm_seeds`` (never ``seed`` itself,
    the search measurements' fine-tune seed; disjoint across search seeds)."""
    return [seed * 1000 + 1 + i for i in range(confirm_seeds)]


def _check_confirm(confirm_top: Any, confirm_seeds: Any) -> tuple[int, int]:
    top = _check_int(confirm_top, "confirm_top", low=0)
    seeds = _check_int(confirm_seeds, "confirm_seeds", low=1)
    if seeds > 999:
        raise ValueError(f"confirm_seeds must be an integer in [1, 999], got {confirm_seeds!r}")
    return top, seeds


def confirm_choice(run: "_Run", records: pd.DataFrame, seed: int, confirm_top: int,
                   confirm_seeds: int) -> tuple[Optional[pd.Series], pd.DataFrame, dict]:
    r"""Step 6, against the winner's curse: the chosen configuration.

    Without confirmation (``confirm_top = 0``) it is the feasible record with the
    largest saving. Otherwise the ``confirm_top`` feasible records with the
    largest savings are fine-tuned again with ``confirm_seeds`` more seeds
    (:func:`confirmation_seeds`) and the chosen one is the largest saving whose
    mean validation accuracy over its :math:`1 + ` ``confirm_seeds`` fine-tunes
    is within tolerance (a failed fine-tune: not confirmed). If none is, the next
    ``confirm_top`` feasible ones are tried (at most ``4 * confirm_top`` in all);
    then ``None`` (keep FP32).

    Returns (chosen record or ``None``, one row per extra fine-tune, the chosen's
    mean val / test / best-test accuracies, empty without confirmation).
    """
    ok = records[records["feasible"]].sort_values(["saving", "val_acc", "order"],
                                                  ascending=[False, False, True])
    cols = ["rank", "config_key", "saving", "finetune_seed", "status", "error", "val_acc",
            "test_acc", "best_test_acc", "seconds", "mean_val_acc", "confirmed"]
    if not len(ok) or confirm_top == 0:
        return (ok.iloc[0] if len(ok) else None), pd.DataFrame(columns=cols), {}
    seeds = confirmation_seeds(seed, confirm_seeds)
    limit = min(len(ok), 4 * confirm_top)
    rows: list[dict] = []
    for start in range(0, limit, confirm_top):
        batch = ok.iloc[start:min(start + confirm_top, limit)]
        extra = run.measure_finetunes(list(batch["config_key"]), seeds)
        found = None
        for rank, (_, top) in enumerate(batch.iterrows(), start=start + 1):
            key = top["config_key"]
            mine = [r for r in extra if r["config_key"] == key]
            first = run.private[key]
            vals = [float(top["val_acc"])] + [r["val_acc"] for r in mine]
            good = all(r["status"] != "failed" for r in mine)
            mean_val = float(np.mean(vals)) if good else np.nan
            confirmed = bool(good and mean_val >= run.threshold - _EPS)
            for r in mine:
                rows.append({**r, "rank": rank, "saving": float(top["saving"]),
                             "mean_val_acc": mean_val, "confirmed": confirmed})
            if confirmed and found is None:
                found = (top, {"val_acc": mean_val, **{
                    f: float(np.mean([first[f]] + [r[f] for r in mine]))
                    for f in _TEST_FIELDS}})
        if found is not None:
            return found[0], pd.DataFrame(rows, columns=cols), found[1]
    return None, pd.DataFrame(rows, columns=cols), {}


def _resolve_rounds(budget: int, n_mea: Optional[int], n_iter: Optional[int],
                    profile: Profile) -> tuple[int, int, int]:
    """(size of the random first round, n_mea, n_iter) of a cost-model search."""
    if n_iter is None and n_mea is None:
        n_iter = profile.search_iterations
    if n_iter is not None:
        n_iter = _check_int(n_iter, "n_iter")
    if n_mea is not None:
        n_mea = _check_int(n_mea, "n_mea")
        if n_mea > budget:
            raise ValueError(f"n_mea = {n_mea} exceeds the budget of {budget} measurements")
    if n_iter is None:
        n_iter = budget // n_mea - 1
        if n_iter < 1:
            raise ValueError(f"budget {budget} with n_mea = {n_mea} leaves no cost-model "
                             f"iteration: the budget must be >= 2 * n_mea = {2 * n_mea}")
    if n_mea is None:
        n_mea = budget // (n_iter + 1)
        if n_mea < 1:
            raise ValueError(
                f"budget {budget} cannot measure one configuration in each of the "
                f"n_iter + 1 = {n_iter + 1} rounds (random + {n_iter} cost-model): "
                f"the budget must be >= {n_iter + 1}")
    if n_mea * (n_iter + 1) > budget:
        raise ValueError(f"n_mea * (n_iter + 1) = {n_mea} * {n_iter + 1} = "
                         f"{n_mea * (n_iter + 1)} measurements exceed the budget of {budget}")
    return budget - n_mea * n_iter, n_mea, n_iter


def _search(method: str, dataset: str, model: str, *, budget: Optional[int], tolerance: float,
            seed: int, profile: "str | Profile", bit_choices: Optional[Sequence[int]],
            executor: Optional[Executor], workers: Optional[int], results: Optional[str],
            data_root: Optional[str], options: Optional[QuantOptions], progress: bool,
            n_mea: Optional[int] = None, n_sample: Optional[int] = None,
            n_iter: Optional[int] = None, strategy: Optional[dict] = None,
            xgb_params: Optional[dict] = None, confirm_top: int = 3,
            confirm_seeds: int = 2) -> SearchResult:
    _check_method(method)
    confirm_top, confirm_seeds = _check_confirm(confirm_top, confirm_seeds)
    prof = get_profile(profile)
    tolerance = check_tolerance(tolerance)
    seed = _check_int(seed, "seed", low=0)
    budget = prof.search_budget if budget is None else budget
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ValueError(f"budget must be an integer >= 1 (number of configurations to "
                         f"measure), got {budget!r}: it cannot measure a single configuration")
    budget = int(budget)
    choices = check_bit_choices(prof.bit_choices if bit_choices is None else bit_choices)
    if workers is not None:
        _check_int(workers, "workers", low=0)
    if executor is not None and not isinstance(executor, Executor):
        raise ValueError(f"executor must be a concurrent.futures.Executor, "
                         f"got {type(executor).__name__}")
    if method == "cost-model":
        first, n_mea, n_iter = _resolve_rounds(budget, n_mea, n_iter, prof)
        n_sample = prof.search_sample if n_sample is None else _check_int(n_sample, "n_sample")
        if n_sample < n_mea:
            raise ValueError(f"n_sample = {n_sample} must be >= n_mea = {n_mea} "
                             "(the top n_mea of n_sample candidates are measured)")
        settings = {"n_mea": n_mea, "n_sample": n_sample, "n_iter": n_iter,
                    "first_round": first, "strategy": check_strategy(strategy),
                    "xgb_params": dict(xgb_params or {})}
    else:
        for name, value in (("n_mea", n_mea), ("n_sample", n_sample), ("n_iter", n_iter),
                            ("strategy", strategy), ("xgb_params", xgb_params)):
            if value is not None:
                raise ValueError(f"{name} is a cost-model setting; random search takes "
                                 f"only the budget, got {name}={value!r}")
        settings = {}
    results_dir = str(results_root(results).resolve())
    start = time.perf_counter()
    # the FP32 model is trained (or read from the cache) once, here, before any job
    setup = prepare(dataset, model, seed, prof, results_dir, data_root)
    space = SearchSpace.from_layout(setup.layout, choices)
    if budget > space.size:
        raise ValueError(f"budget {budget} exceeds the {space.size} distinct configurations "
                         f"of the search space (bit choices {list(choices)}, "
                         f"{len(space.free_fields)} free fields)")
    threshold = setup.fp32["val_acc"] - tolerance / 100.0
    owns = executor is None
    pool = make_executor(workers) if owns else executor
    settings["workers"] = (getattr(pool, "_max_workers", None) if owns
                           else type(pool).__name__)
    bar = tqdm(total=budget, desc=f"{method} {setup.dataset}/{setup.model_name} seed {seed}",
               unit="config", disable=not progress, leave=False)
    run = _Run(setup, space, FeatureCache(space, setup.layout), threshold, options,
               results_dir, data_root, pool, owns, workers, bar)
    sampler = Sampler(space, seed)
    try:
        if method == "random":
            vecs = [space.vector(a) for a in sampler.draw(budget)]
            run.measure_round(0, np.array(vecs), ["uniform"] * budget)
        else:
            vecs = [space.vector(a) for a in sampler.draw(first)]
            run.measure_round(0, np.array(vecs), ["uniform"] * first)
            step = dict(settings["strategy"])
            anchor = float(setup.fp32["val_acc"]) if step.pop("fp32_anchor") else None
            for it in range(1, n_iter + 1):
                rng = np.random.default_rng([seed, it, 0x5C0A7])
                picks = cost_model_step(space, run.features, np.array(run.vectors),
                                        run.accuracy(), threshold, n_sample, n_mea, rng,
                                        seed=seed, fp32_accuracy=anchor, **step,
                                        **settings["xgb_params"])
                run.measure_round(it, picks["vectors"], picks["sources"], picks["predicted"])
        records = pd.DataFrame(run.rows)
        confirm_start = time.perf_counter()
        top, confirmations, means = confirm_choice(run, records, seed, confirm_top,
                                                   confirm_seeds)
        confirm_seconds = time.perf_counter() - confirm_start
    finally:
        bar.close()
        if owns:
            run.executor.shutdown(wait=True, cancel_futures=True)
    chosen, test, best_test = None, None, None
    if top is not None:
        chosen = as_assignment(top["assignment"])
        test = float(run.private[top["config_key"]]["test_acc"])
        best_test = float(run.private[top["config_key"]]["best_test_acc"])
    settings.update(confirm_top=confirm_top, confirm_seeds=confirm_seeds)
    return SearchResult(
        method=method, dataset=setup.dataset, model=setup.model_name, seed=seed,
        profile=prof.name, tolerance=tolerance, budget=budget, bit_choices=choices,
        fp32_val_acc=float(setup.fp32["val_acc"]), fp32_test_acc=float(setup.fp32["test_acc"]),
        records=records, chosen=chosen, chosen_test_acc=test, chosen_best_test_acc=best_test,
        wall_seconds=time.perf_counter() - start, settings=settings,
        confirm_top=confirm_top, confirm_seeds=confirm_seeds, confirmations=confirmations,
        confirmed_val_acc=means.get("val_acc"), confirmed_test_acc=means.get("test_acc"),
        confirmed_best_test_acc=means.get("best_test_acc"), confirm_seconds=confirm_seconds)


def random_search(dataset: str, model: str, *, budget: Optional[int] = None,
                  tolerance: float = 0.5, seed: int = 0, profile: "str | Profile" = "default",
                  bit_choices: Optional[Sequence[int]] = None,
                  executor: Optional[Executor] = None, workers: Optional[int] = None,
                  results: Optional[str] = None, data_root: Optional[str] = None,
                  options: Optional[QuantOptions] = None,
                  progress: bool = True, confirm_top: int = 3,
                  confirm_seeds: int = 2) -> SearchResult:
    """Measure ``budget`` (default: the profile's) uniformly random configurations
    and choose the largest saving within ``tolerance`` points of FP32 validation
    accuracy.

    ``seed`` selects the FP32 model (``measure.prepare``) and the sampler's
    stream; ``executor`` (default: a process pool of ``workers`` processes,
    ``workers=0``: in-process) runs the measurements.

    Confirmation (:func:`confirm_choice`): the ``confirm_top`` feasible
    configurations with the largest savings are fine-tuned ``confirm_seeds``
    more times and the chosen one is the largest saving whose mean validation
    accuracy stays within tolerance (``confirm_top=0``: the top feasible one).
    These extra fine-tunes are not part of the ``budget``.
    """
    return _search("random", dataset, model, budget=budget, tolerance=tolerance, seed=seed,
                   profile=profile, bit_choices=bit_choices, executor=executor,
                   workers=workers, results=results, data_root=data_root, options=options,
                   progress=progress, confirm_top=confirm_top, confirm_seeds=confirm_seeds)


def cost_model_search(dataset: str, model: str, *, budget: Optional[int] = None,
                      tolerance: float = 0.5, seed: int = 0,
                      profile: "str | Profile" = "default",
                      n_mea: Optional[int] = None, n_sample: Optional[int] = None,
                      n_iter: Optional[int] = None,
                      bit_choices: Optional[Sequence[int]] = None,
                      executor: Optional[Executor] = None, workers: Optional[int] = None,
                      results: Optional[str] = None, data_root: Optional[str] = None,
                      options: Optional[QuantOptions] = None, progress: bool = True,
                      strategy: Optional[dict] = None,
                      xgb_params: Optional[dict] = None, confirm_top: int = 3,
                      confirm_seeds: int = 2) -> SearchResult:
    """The paper's cost-model search (steps 1-5, see the module docstring).

    The ``budget`` is split into a random first round and ``n_iter`` (default:
    the profile's ``search_iterations``) cost-model rounds of ``n_mea`` (default
    ``budget // (n_iter + 1)``) measurements; the first round takes the rest,
    ``budget - n_iter * n_mea``. Each round scores ``n_sample`` (default: the
    profile's ``search_sample``) fresh candidates. ``strategy`` overrides
    :data:`STRATEGY` (how candidates are generated and picked, see
    :func:`cost_model_step`; :data:`PAPER_STRATEGY` is the paper's plain
    version), ``xgb_params`` the regressor's settings. Other arguments (and the
    confirmation step, the same for both searches) as :func:`random_search`.
    """
    return _search("cost-model", dataset, model, budget=budget, tolerance=tolerance, seed=seed,
                   profile=profile, bit_choices=bit_choices, executor=executor,
                   workers=workers, results=results, data_root=data_root, options=options,
                   progress=progress, n_mea=n_mea, n_sample=n_sample, n_iter=n_iter,
                   strategy=strategy, xgb_params=xgb_params, confirm_top=confirm_top,
                   confirm_seeds=confirm_seeds)


def search(dataset: str, model: str, method: str = "cost-model", **kwargs: Any) -> SearchResult:
    """:func:`cost_model_search` or :func:`random_search` by name (``METHODS``)."""
    _check_method(method)
    if method == "random":
        for name in ("n_mea", "n_sample", "n_iter", "strategy", "xgb_params"):
            if name in kwargs:
                raise ValueError(f"{name} is a cost-model setting; random search takes "
                                 f"only the budget, got {name}={kwargs[name]!r}")
        return random_search(dataset, model, **kwargs)
    return cost_model_search(dataset, model, **kwargs)


# ---------------------------------------------------------------------- CLI
def _run_cli(args: argparse.Namespace) -> int:
    kwargs: dict[str, Any] = dict(budget=args.budget, tolerance=args.tolerance, seed=args.seed,
                                  profile=args.profile, bit_choices=args.bits,
                                  workers=args.workers, results=args.results,
                                  progress=not args.no_progress,
                                  confirm_top=args.confirm_top,
                                  confirm_seeds=args.confirm_seeds)
    if args.method == "cost-model":
        kwargs.update(n_mea=args.n_mea, n_sample=args.n_sample, n_iter=args.n_iter,
                      strategy=None if args.strategy in (None, "sgquant") else PAPER_STRATEGY)
    else:
        for opt in ("n_mea", "n_sample", "n_iter", "strategy"):
            if getattr(args, opt) is not None:
                raise ValueError(f"--{opt.replace('_', '-')} applies to --method cost-model "
                                 "only, not random")
    result = search(args.dataset, args.model, args.method, **kwargs)
    print(result.summary())
    out = Path(args.output) if args.output else (
        results_root(args.results) / "search"
        / f"{result.dataset}-{result.model}-{result.method}"
          f"{'-paper' if args.strategy == 'paper' else ''}-seed{result.seed}-{result.profile}.json")
    atomic_write_json(out, result.to_dict())
    print(f"wrote {out}")
    return 0


def add_cli(subparsers: Any) -> None:
    """Register ``sgquant search``."""
    p = subparsers.add_parser(
        "search", help="auto-bit selection: cost-model or random search",
        description="Find the bit assignment with the largest memory saving whose "
                    "validation accuracy is within --tolerance points of FP32 "
                    "(measured configurations are cached: a rerun resumes).")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--method", default="cost-model", choices=METHODS)
    p.add_argument("--budget", type=int, default=None,
                   help="configurations to measure (default: the profile's search_budget)")
    p.add_argument("--tolerance", type=float, default=0.5,
                   help="allowed validation accuracy drop, in percentage points (default 0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="default", choices=list(PROFILES))
    p.add_argument("--bits", type=int, nargs="+", default=None,
                   help="bit widths to choose from (default: the profile's bit_choices)")
    p.add_argument("--n-mea", type=int, default=None, help="cost model: measurements per round")
    p.add_argument("--n-sample", type=int, default=None,
                   help="cost model: candidates scored per round")
    p.add_argument("--n-iter", type=int, default=None, help="cost model: rounds after the first")
    p.add_argument("--strategy", default=None, choices=("sgquant", "paper"),
                   help="cost model: sgquant's candidate generation and picking (default) "
                        "or the paper's plain one (uniform candidates, one model)")
    p.add_argument("--confirm-top", type=int, default=3,
                   help="re-fine-tune the top N feasible configurations by saving and choose "
                        "the largest saving whose mean val accuracy is within tolerance "
                        "(default 3; 0: no confirmation, choose the top feasible one)")
    p.add_argument("--confirm-seeds", type=int, default=2,
                   help="extra fine-tune seeds per confirmed configuration (default 2)")
    p.add_argument("--workers", type=int, default=None,
                   help="measurement processes (default and maximum: the cores present; "
                        "0: in this process)")
    p.add_argument("--output", default=None,
                   help="JSON file for the result (default: RESULTS/search/<name>.json)")
    p.add_argument("--results", default=None,
                   help="results cache (default $SGQUANT_RESULTS or ./results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_cli)
