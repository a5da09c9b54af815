"""The configuration a cost-model search chooses for one (dataset, model) under the
book's protocol: chapter 3's Table III searches make it, chapter 7 and
``benchmarks/coding.py`` store it."""
from __future__ import annotations

from concurrent.futures import Executor
from typing import Optional

from ..assignment import BitAssignment
from ..profiles import Profile, get_profile
from ..variants import Variant

__all__ = ["SEARCH_FP32_SEED", "search_choice"]

#: The FP32 model every search of a Table III row runs on (never an evaluation seed).
SEARCH_FP32_SEED = 100


def search_choice(dataset: str, model: str, profile: "str | Profile" = "default", *,
                  variant: "str | Variant" = "sgquant+", search_seed: int = 0,
                  tolerance: float = 0.5, executor: Optional[Executor] = None,
                  workers: Optional[int] = None) -> BitAssignment:
    """The configuration chapter 3's search chooses for (``dataset``, ``model``) with
    ``variant`` and ``search_seed`` (on the FP32 model of :data:`SEARCH_FP32_SEED`; read
    from the results cache when chapter 3 ran with the same profile), FP32 if none is
    within tolerance. The measurements run on ``executor`` (default: a pool of
    ``workers``, :func:`~sgquant.search.make_executor`)."""
    from .driver import cost_model_search

    prof = get_profile(profile)
    result = cost_model_search(dataset, model, tolerance=tolerance, seed=search_seed,
                               fp32_seed=SEARCH_FP32_SEED, profile=prof, executor=executor,
                               workers=workers, progress=False, variant=variant)
    if result.chosen is not None:
        return result.chosen
    return BitAssignment.fp32(int(result.records["assignment"].map(
        lambda a: len(BitAssignment.from_json(a).att_bits)).iloc[0]))
