"""The configuration a search chooses for one (dataset, model): chapter 3 makes it, and
chapter 7 and ``benchmarks/coding.py`` store it."""
from __future__ import annotations

from typing import Optional

from ..bits import BitAssignment
from ..profiles import Profile
from ..variants import Variant
from .common import measurement_runner, search_settings

__all__ = ["SEARCH_FP32_SEED", "search_choice"]

#: The FP32 model every search of a Table III row runs on (never an evaluation seed).
SEARCH_FP32_SEED = 100


def search_choice(dataset: str, model: str, profile: "str | Profile" = "default", *,
                  variant: "str | Variant" = "sgquant+", search_seed: int = 0,
                  tolerance: float = 0.5, workers: Optional[int] = None) -> BitAssignment:
    """The configuration chapter 3's search chooses for (``dataset``, ``model``) with
    ``variant`` and ``search_seed`` (on the FP32 model of :data:`SEARCH_FP32_SEED`; read
    from the results cache when chapter 3 ran with the same profile), FP32 if none is
    within tolerance. Chapter 7 and ``benchmarks/coding.py`` store this choice."""
    from ..search import cost_model_search

    with measurement_runner(profile, workers) as runner:
        result = cost_model_search(dataset, model, tolerance=tolerance, seed=search_seed,
                                   fp32_seed=SEARCH_FP32_SEED, progress=False, variant=variant,
                                   **search_settings(runner))
    if result.chosen is not None:
        return result.chosen
    return BitAssignment.fp32(int(result.records["assignment"].map(
        lambda a: len(BitAssignment.from_json(a).att_bits)).iloc[0]))
