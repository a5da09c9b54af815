"""Cost-model features of a configuration: the bits of every field plus its average
bits, memory (MB) and saving (:mod:`sgquant.memory`).

:func:`config_features` computes them for one :class:`~sgquant.assignment.BitAssignment`;
:class:`FeatureCache` for a whole batch of bit vectors at once
(:func:`sgquant.memory.batch_memory`, the same formula as
:func:`sgquant.memory.feature_memory`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..assignment import BitAssignment
from ..memory import FeatureLayout, batch_memory, feature_memory
from .space import SearchSpace

__all__ = ["FEATURE_EXTRAS", "config_features", "feature_frame", "FeatureCache"]

#: Memory features added to the per-field bits (all from :mod:`sgquant.memory`).
FEATURE_EXTRAS = ("average_bits", "memory_mb", "saving")


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

    @property
    def saving_column(self) -> int:
        """Position of the ``saving`` feature in a row."""
        return self.columns.index("saving")

    def rows(self, vectors: np.ndarray) -> np.ndarray:
        idx = self.space.index
        v = np.asarray(vectors, dtype=np.int64).reshape(-1, len(idx.names))
        mem = batch_memory(self.layout, v[:, idx.att], v[:, idx.emb])
        out = np.empty((len(v), len(self.columns)), dtype=np.float64)
        out[:, :v.shape[1]] = v
        out[:, v.shape[1]:] = np.stack([mem["average_bits"], mem["memory_mb"],
                                        mem["saving"]], axis=1)
        return out
