"""The configuration a cost-model search chooses for one (dataset, model) under the
book's protocol: chapter 3's Table III searches make it, chapter 7 and
``benchmarks/coding.py`` store it."""
from __future__ import annotations

from concurrent.futures import Executor
from typing import Optional

from ..assignment import BitAssignment
from ..profiles import Profile
from ..seeds import SeedPlan, get_plan
from ..settings import RunSettings, as_run_settings
from ..variants import Variant

__all__ = ["search_choice"]


def search_choice(dataset: str, model: str,
                  settings: "str | Profile | RunSettings" = "default", *,
                  variant: "str | Variant" = "sgquant+", search_seed: Optional[int] = None,
                  tolerance: float = 0.5, executor: Optional[Executor] = None,
                  plan: "str | SeedPlan" = "development") -> BitAssignment:
    """The configuration chapter 3's search chooses for (``dataset``, ``model``) with
    ``variant`` and ``search_seed`` (default: the seed plan's first, on that seed's FP32
    model, :meth:`~sgquant.seeds.SeedPlan.search_fp32`; read from the results cache when
    chapter 3 ran with the same profile and plan), FP32 if none is within tolerance.
    ``settings``: the run's (:class:`~sgquant.settings.RunSettings`), or a profile (the
    current settings with it, :func:`~sgquant.settings.as_run_settings`); the
    measurements run on ``executor`` (default: the settings' workers or scheduler,
    :func:`~sgquant.runner.make_executor`)."""
    from .driver import cost_model_search

    seeds = get_plan(plan)
    s = seeds.first_search_seed if search_seed is None else search_seed
    result = cost_model_search(dataset, model, tolerance=tolerance, seed=s,
                               fp32_seed=seeds.search_fp32(s), settings=as_run_settings(settings),
                               executor=executor, progress=False, variant=variant)
    if result.chosen is not None:
        return result.chosen
    return BitAssignment.fp32(int(result.records["assignment"].map(
        lambda a: len(BitAssignment.from_json(a).att_bits)).iloc[0]))
