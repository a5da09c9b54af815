"""One cost-model iteration (the paper's steps 2-4): fit, generate, score, pick.

:func:`cost_model_step` fits the :class:`~sgquant.search.cost_model.CostModel` on the
measured configurations, scores ``n_sample`` fresh candidates made in a few
generations (:func:`~sgquant.search.candidates.propose_candidates`), and picks the
``n_mea`` to measure next (:func:`~sgquant.search.selection.select_candidates`), as a
:class:`~sgquant.search.strategy.Strategy` says.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

from ..checks import check_int
from .candidates import ACCURACY_SLACK, TrustRegion, elite_rows, propose_candidates
from .cost_model import CostModel
from .features import FeatureCache
from .selection import select_candidates
from .space import SearchSpace
from .strategy import Strategy, check_strategy

__all__ = ["cost_model_step", "PHASES"]

#: the phases :func:`cost_model_step` times
PHASES = ("fit", "generate", "features", "predict", "select")


def _regressor_params(strategy: Strategy, extra: Mapping[str, Any]) -> dict[str, Any]:
    return {"num_boost_round": strategy.trees, "eta": strategy.learning_rate,
            "max_depth": strategy.max_depth, "max_bin": strategy.max_bin, **extra}


def cost_model_step(space: SearchSpace, features: FeatureCache, measured: np.ndarray,
                    accuracy: np.ndarray, threshold: float, n_sample: int, n_mea: int,
                    rng: np.random.Generator, seed: int = 0,
                    strategy: "Strategy | Mapping | None" = None,
                    fp32_accuracy: Optional[float] = None,
                    timings: Optional[dict] = None, **overrides: Any) -> dict:
    """One iteration of steps 2-4: fit on the ``measured`` vectors (with their
    validation ``accuracy``; NaN = failed), generate and score ``n_sample`` fresh
    candidates, pick the top ``n_mea`` (:func:`select_candidates`).

    ``strategy`` (default :data:`~sgquant.search.STRATEGY`) says how; keyword
    ``overrides`` change single fields of it (``ensemble=1`` ...), and any other
    keyword is a regressor parameter (see :class:`CostModel`).

    The candidates come in ``generations`` batches: the first is uniform
    draws and (a ``local_share`` of it) local moves around the best measured
    configurations; each later batch mutates and recombines the best
    candidates scored so far (those possibly within tolerance with the largest
    saving) and the measured elites, so that several improvements the model
    believes in can be chained before anything is measured. Every candidate
    is scored by the model.

    Trust region: the picks are taken first among candidates that differ in at most
    ``radius`` fields from a configuration known to be within tolerance.
    ``fp32_accuracy`` (the FP32 model's validation accuracy) makes the all-32-bit
    configuration such a known point, a training row and a parent for local moves:
    known without a measurement, it anchors the search when no measured
    configuration is within tolerance yet.

    Returns ``{"vectors", "sources", "predicted"}`` of the picks. ``timings``
    (if given) receives the seconds of each phase (:data:`PHASES`).
    """
    fields = set(Strategy.__dataclass_fields__)
    st = check_strategy(strategy).replace(**{k: v for k, v in overrides.items() if k in fields})
    params = _regressor_params(st, {k: v for k, v in overrides.items() if k not in fields})
    t = dict.fromkeys(PHASES, 0.0)
    n_sample = check_int(n_sample, "n_sample", minimum=1)
    n_mea = check_int(n_mea, "n_mea", minimum=1)
    measured = np.asarray(measured, dtype=np.int64).reshape(-1, len(space.fields))
    accuracy = np.asarray(accuracy, dtype=np.float64)
    ok = np.isfinite(accuracy)
    start = time.perf_counter()
    model, X_meas = _fit(space, features, measured[ok], accuracy[ok], st, params, seed,
                         fp32_accuracy)
    t["fit"] += time.perf_counter() - start
    known = _known_points(space, measured, ok, accuracy, X_meas[:, features.saving_column],
                          threshold, fp32_accuracy)
    if model is None:  # nothing measured successfully yet: uniform draws, no model
        start = time.perf_counter()
        cand, sources = propose_candidates(space, rng, n_mea, known.parents[:0],
                                           np.vstack(known.excluded))
        t["generate"] += time.perf_counter() - start
        if timings is not None:
            timings.update(t)
        return {"vectors": cand, "sources": sources.tolist(),
                "predicted": np.full(len(cand), np.nan)}
    scored = _scored_candidates(space, features, model, st, known, rng, n_sample, threshold, t)
    start = time.perf_counter()
    order = scored.pick(threshold, n_mea, known.best, hedge=st.hedge)
    t["select"] += time.perf_counter() - start
    if timings is not None:
        timings.update(t)
    return scored.picks(order)


def _fit(space: SearchSpace, features: FeatureCache, measured: np.ndarray,
         accuracy: np.ndarray, st: Strategy, params: dict[str, Any], seed: int,
         fp32_accuracy: Optional[float]) -> tuple[Optional[CostModel], np.ndarray]:
    """Step 2: the cost model fitted on the successfully ``measured`` vectors and their
    ``accuracy`` (and FP32, every field at 32 bits, as a known point when
    ``fp32_accuracy`` is given), ``None`` if nothing was measured; and their feature
    rows."""
    if not len(measured):
        return None, np.empty((0, len(features.columns)))
    X_meas = features.rows(measured)
    model = CostModel(features.columns, seed=seed, monotone=st.monotone,
                      ensemble=st.ensemble, **params)
    if fp32_accuracy is None:
        model.fit(X_meas, accuracy)
    else:  # FP32 (every field at 32 bits) is a known point: the model's anchor
        anchor = features.rows(space.fp32_vector()[None, :])
        model.fit(np.vstack([X_meas, anchor]), np.append(accuracy, fp32_accuracy))
    return model, X_meas


@dataclass
class _Known:
    """What is known before any candidate: the ``best`` saving measured within
    tolerance, the ``parents`` of local moves, the ``anchors`` of the trust region
    (known to be within tolerance) and the vectors ``excluded`` from the candidates."""

    best: float
    parents: np.ndarray
    anchors: np.ndarray
    excluded: list[np.ndarray]


def _known_points(space: SearchSpace, measured: np.ndarray, ok: np.ndarray,
                  accuracy: np.ndarray, saving: np.ndarray, threshold: float,
                  fp32_accuracy: Optional[float]) -> _Known:
    """:class:`_Known` from the ``measured`` vectors (``ok``: measured successfully,
    ``saving`` of those), with FP32 as a known point when ``fp32_accuracy`` is given."""
    feasible = accuracy[ok] >= threshold - ACCURACY_SLACK
    best = float(saving[feasible].max()) if feasible.any() else 0.0
    parents = elite_rows(measured[ok], accuracy[ok], saving, threshold)
    anchors = measured[ok][feasible]
    excluded = [measured]
    if fp32_accuracy is not None:
        fp32 = space.fp32_vector()[None, :]
        anchors = np.vstack([anchors, fp32])
        parents = np.vstack([parents, fp32])
        excluded.append(fp32)  # known: never worth a measurement
    return _Known(best, parents, anchors, excluded)


def _acquisition(st: Strategy, pred: np.ndarray, spread: np.ndarray) -> dict:
    """The keyword arguments of :func:`select_candidates` for ``st.acquisition``."""
    if st.acquisition == "ei":
        return {"spread": spread, "noise": st.noise}
    return {"upper": pred + st.optimism * spread}


@dataclass
class _Scored:
    """The candidates scored so far, batch by batch: vectors, how each was made, its
    generation, saving, predicted accuracy and spread, and whether the trust region
    allows it."""

    region: TrustRegion
    strategy: Strategy
    vectors: list[np.ndarray] = field(default_factory=list)
    sources: list[np.ndarray] = field(default_factory=list)
    generations: list[np.ndarray] = field(default_factory=list)
    savings: list[np.ndarray] = field(default_factory=list)
    predicted: list[np.ndarray] = field(default_factory=list)
    spreads: list[np.ndarray] = field(default_factory=list)
    allowed: list[Optional[np.ndarray]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.vectors)

    def add(self, generation: int, cand: np.ndarray, sources: np.ndarray, saving: np.ndarray,
            pred: np.ndarray, spread: np.ndarray) -> None:
        self.vectors.append(cand)
        self.sources.append(sources)
        self.generations.append(np.full(len(cand), generation))
        self.savings.append(saving)
        self.predicted.append(pred)
        self.spreads.append(spread)
        self.allowed.append(self.region.mask(cand))

    def pick(self, threshold: float, n: int, best: float, hedge: bool) -> np.ndarray:
        """Rows of the ``n`` candidates to take (:func:`select_candidates`)."""
        pred, spread = np.concatenate(self.predicted), np.concatenate(self.spreads)
        return select_candidates(pred, np.concatenate(self.savings), threshold, n, best,
                                 hedge=hedge, allowed=_joined(self.allowed),
                                 **_acquisition(self.strategy, pred, spread))

    def picks(self, order: np.ndarray) -> dict:
        """``{"vectors", "sources", "predicted"}`` of the candidates in ``order``."""
        cand, predicted = np.vstack(self.vectors), np.concatenate(self.predicted)
        gen, made = np.concatenate(self.generations)[order], np.concatenate(self.sources)[order]
        return {"vectors": cand[order],
                "sources": [str(s) if g == 0 else f"{s} (gen {g})" for s, g in zip(made, gen)],
                "predicted": predicted[order]}


def _scored_candidates(space: SearchSpace, features: FeatureCache, model: CostModel,
                       st: Strategy, known: _Known, rng: np.random.Generator, n_sample: int,
                       threshold: float, t: dict[str, float]) -> _Scored:
    """Steps 3-4 in ``st.generations`` batches of ``n_sample`` candidates in all: the
    first from uniform draws and local moves around ``known.parents``, each later one
    bred from the parents and the best five candidates scored so far; every batch
    scored by ``model``. ``t`` receives the seconds of each phase."""
    clock = time.perf_counter
    scored = _Scored(TrustRegion(known.anchors, st.radius), st)
    breeders = known.parents
    per_gen = -(-n_sample // st.generations)
    for g in range(st.generations):
        size = min(per_gen, n_sample - scored.count)
        if size <= 0:
            break
        start = clock()
        cand, sources = propose_candidates(space, rng, size, breeders, np.vstack(known.excluded),
                                           local_share=st.local_share if g == 0 else 1.0)
        known.excluded.append(cand)
        t["generate"] += clock() - start
        if not len(cand):
            break
        start = clock()
        X = features.rows(cand)
        t["features"] += clock() - start
        start = clock()
        pred, spread = model.predict_spread(X)
        t["predict"] += clock() - start
        start = clock()
        scored.add(g, cand, sources, X[:, features.saving_column], pred, spread)
        if g + 1 < st.generations:  # parents of the next batch: the best candidates so far
            chosen = np.vstack(scored.vectors)[scored.pick(threshold, 5, known.best, False)]
            breeders = np.vstack([known.parents, chosen]) if len(known.parents) else chosen
        t["select"] += clock() - start
    return scored


def _joined(masks: list) -> Optional[np.ndarray]:
    return None if masks[0] is None else np.concatenate(masks)
