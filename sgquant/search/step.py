"""One cost-model iteration (the paper's steps 2-4): fit, generate, score, pick.

:func:`cost_model_step` fits the :class:`~sgquant.search.cost_model.CostModel` on the
measured configurations, scores ``n_sample`` fresh candidates made in a few
generations (:func:`~sgquant.search.candidates.propose_candidates`), and picks the
``n_mea`` to measure next (:func:`~sgquant.search.selection.select_candidates`), as a
:class:`~sgquant.search.strategy.Strategy` says.
"""
from __future__ import annotations

import time
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
    clock = time.perf_counter
    t = dict.fromkeys(PHASES, 0.0)
    n_sample = check_int(n_sample, "n_sample", minimum=1)
    n_mea = check_int(n_mea, "n_mea", minimum=1)
    measured = np.asarray(measured, dtype=np.int64).reshape(-1, len(space.fields))
    accuracy = np.asarray(accuracy, dtype=np.float64)
    ok = np.isfinite(accuracy)
    col = features.saving_column
    start = clock()
    X_meas = features.rows(measured[ok]) if ok.any() else np.empty((0, len(features.columns)))
    model = None
    if ok.any():
        model = CostModel(features.columns, seed=seed, monotone=st.monotone,
                          ensemble=st.ensemble, **params)
        if fp32_accuracy is None:
            model.fit(X_meas, accuracy[ok])
        else:  # FP32 (every field at 32 bits) is a known point: the model's anchor
            anchor = features.rows(space.fp32_vector()[None, :])
            model.fit(np.vstack([X_meas, anchor]), np.append(accuracy[ok], fp32_accuracy))
    t["fit"] += clock() - start
    feasible = accuracy[ok] >= threshold - ACCURACY_SLACK
    best = float(X_meas[feasible, col].max()) if feasible.any() else 0.0
    parents = elite_rows(measured[ok], accuracy[ok], X_meas[:, col], threshold)
    anchors = measured[ok][feasible]
    excluded = [measured]
    if fp32_accuracy is not None:
        fp32 = space.fp32_vector()[None, :]
        anchors = np.vstack([anchors, fp32])
        parents = np.vstack([parents, fp32])
        excluded.append(fp32)  # known: never worth a measurement
    if model is None:  # nothing measured successfully yet: uniform draws, no model
        start = clock()
        cand, sources = propose_candidates(space, rng, n_mea, parents[:0], np.vstack(excluded))
        t["generate"] += clock() - start
        if timings is not None:
            timings.update(t)
        return {"vectors": cand, "sources": sources.tolist(),
                "predicted": np.full(len(cand), np.nan)}

    def acquire(pred: np.ndarray, spread: np.ndarray) -> dict:
        if st.acquisition == "ei":
            return {"spread": spread, "noise": st.noise}
        return {"upper": pred + st.optimism * spread}

    region = TrustRegion(anchors, st.radius)
    vecs: list[np.ndarray] = []
    srcs: list[np.ndarray] = []
    savings, preds, spreads, masks, gens = [], [], [], [], []
    breeders = parents
    per_gen = -(-n_sample // st.generations)
    for g in range(st.generations):
        size = min(per_gen, n_sample - sum(len(v) for v in vecs))
        if size <= 0:
            break
        start = clock()
        cand, sources = propose_candidates(space, rng, size, breeders, np.vstack(excluded),
                                           local_share=st.local_share if g == 0 else 1.0)
        excluded.append(cand)
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
        vecs.append(cand)
        srcs.append(sources)
        gens.append(np.full(len(cand), g))
        savings.append(X[:, col]), preds.append(pred), spreads.append(spread)
        masks.append(region.mask(cand))
        if g + 1 < st.generations:  # parents of the next batch: the best candidates so far
            pool_pred, pool_spread = np.concatenate(preds), np.concatenate(spreads)
            top = select_candidates(pool_pred, np.concatenate(savings), threshold, 5, best,
                                    hedge=False, allowed=_joined(masks),
                                    **acquire(pool_pred, pool_spread))
            chosen = np.vstack(vecs)[top]
            breeders = np.vstack([parents, chosen]) if len(parents) else chosen
        t["select"] += clock() - start
    cand, predicted = np.vstack(vecs), np.concatenate(preds)
    start = clock()
    order = select_candidates(predicted, np.concatenate(savings), threshold, n_mea, best,
                              hedge=st.hedge, allowed=_joined(masks),
                              **acquire(predicted, np.concatenate(spreads)))
    t["select"] += clock() - start
    if timings is not None:
        timings.update(t)
    gen, made = np.concatenate(gens)[order], np.concatenate(srcs)[order]
    return {"vectors": cand[order],
            "sources": [str(s) if g == 0 else f"{s} (gen {g})" for s, g in zip(made, gen)],
            "predicted": predicted[order]}


def _joined(masks: list) -> Optional[np.ndarray]:
    return None if masks[0] is None else np.concatenate(masks)
