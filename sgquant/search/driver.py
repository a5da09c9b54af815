"""The searches: random search and the paper's cost-model search, end to end.

Both train (or read) the FP32 model once, measure configurations through a
:class:`~sgquant.search.rounds.MeasurementRun` (cache in the driver, jobs on
an executor), confirm the choice (:mod:`sgquant.search.confirm`) and return a
:class:`~sgquant.search.result.SearchResult`. See :mod:`sgquant.search` for the
method.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import time
from concurrent.futures import Executor
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..assignment import as_assignment
from ..cache import check_results_folder, stale_records_notice
from ..checks import check_choice, check_int, check_number, check_optional_int
from ..measure import prepare
from ..profiles import Profile, get_profile
from ..quantize import QuantOptions
from ..runner import (Runner, close_executor, cost_by_purpose, executor_workers,
                      make_executor)
from ..runner.scheduler import check_scheduler
from ..train import Finetune
from ..variants import Confirmation, Variant, get_variant
from .confirm import confirm_choice
from .features import FeatureCache
from .rounds import MeasurementRun
from .result import SearchResult
from .space import SearchSpace, Sampler, check_bit_choices
from .step import cost_model_step
from .strategy import check_strategy

__all__ = ["METHODS", "random_search", "cost_model_search", "search", "check_tolerance",
           "resolve_rounds", "COST_MODEL_SETTINGS"]

METHODS = ("cost-model", "random")

#: arguments only a cost-model search takes
COST_MODEL_SETTINGS = ("n_mea", "n_sample", "n_iter", "strategy", "xgb_params")

log = logging.getLogger("sgquant.search")


def check_tolerance(tolerance: Any) -> float:
    """``tolerance`` (percentage points of validation accuracy) as a float >= 0."""
    try:
        return check_number(tolerance, "tolerance", minimum=0.0)
    except ValueError:
        raise ValueError(f"tolerance must be a finite number of percentage points >= 0 "
                         f"(e.g. 0.5), got {tolerance!r}") from None


def _check_budget(budget: Any) -> int:
    try:
        return check_int(budget, "budget", minimum=1)
    except ValueError:
        raise ValueError(f"budget must be an integer >= 1 (number of configurations to "
                         f"measure), got {budget!r}: it cannot measure a single "
                         "configuration") from None


def resolve_rounds(budget: int, n_mea: Optional[int], n_iter: Optional[int],
                   profile: Profile) -> tuple[int, int, int]:
    """(size of the random first round, n_mea, n_iter) of a cost-model search."""
    if n_iter is None and n_mea is None:
        n_iter = profile.search_iterations
    n_iter = check_optional_int(n_iter, "n_iter", minimum=1)
    n_mea = check_optional_int(n_mea, "n_mea", minimum=1)
    if n_mea is not None and n_mea > budget:
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


def _cost_model_settings(budget: int, prof: Profile, n_mea: Optional[int],
                         n_sample: Optional[int], n_iter: Optional[int],
                         strategy: Any, xgb_params: Optional[dict]) -> dict:
    first, n_mea, n_iter = resolve_rounds(budget, n_mea, n_iter, prof)
    n_sample = prof.search_sample if n_sample is None else check_int(n_sample, "n_sample",
                                                                     minimum=1)
    if n_sample < n_mea:
        raise ValueError(f"n_sample = {n_sample} must be >= n_mea = {n_mea} "
                         "(the top n_mea of n_sample candidates are measured)")
    if xgb_params is not None and not isinstance(xgb_params, dict):
        raise ValueError(f"xgb_params must be a dict of xgboost parameters, got {xgb_params!r}")
    return {"n_mea": n_mea, "n_sample": n_sample, "n_iter": n_iter, "first_round": first,
            "strategy": dict(check_strategy(strategy)), "xgb_params": dict(xgb_params or {})}


def _variant_settings(variant: "str | Variant | None", options: Optional[QuantOptions],
                      finetune: Optional[Finetune], confirmation: Optional[Confirmation],
                      confirm_top: Optional[int], confirm_seeds: Optional[int]
                      ) -> tuple[Optional[Variant], Optional[QuantOptions], Finetune,
                                 Confirmation]:
    """The variant (if any) and the quantizer options, fine-tuning and confirmation a
    search uses: each given one, else the variant's, else the default."""
    var = None if variant is None else get_variant(variant)
    options = options if options is not None else (var.options if var else None)
    finetune = finetune if finetune is not None else (var.finetune if var else Finetune())
    if not isinstance(finetune, Finetune):
        raise ValueError(f"finetune must be a sgquant.train.Finetune, got {finetune!r}")
    conf = confirmation if confirmation is not None else (
        var.confirmation if var else Confirmation())
    if not isinstance(conf, Confirmation):
        raise ValueError(f"confirmation must be a sgquant.variants.Confirmation, got {conf!r}")
    conf = dataclasses.replace(conf, top=conf.top if confirm_top is None else confirm_top,
                               seeds=conf.seeds if confirm_seeds is None else confirm_seeds)
    return var, options, finetune, conf


def _check_where(workers: Optional[int], scheduler: Optional[str],
                 executor: Optional[Executor]) -> Optional[str]:
    """Check where the jobs run; returns the scheduler (:func:`check_scheduler`)."""
    if workers is not None:
        check_int(workers, "workers", minimum=0)
    scheduler = check_scheduler(scheduler)
    if executor is not None and not isinstance(executor, Executor):
        raise ValueError(f"executor must be a concurrent.futures.Executor, "
                         f"got {type(executor).__name__}")
    return scheduler


def _results_folder(results: Optional[str]) -> str:
    """The results folder, checked and absolute; a warning if it holds records of another
    results version, which are not reused (:func:`~sgquant.cache.stale_records_notice`)."""
    results_dir = str(check_results_folder(results, option="results").resolve())
    notice = stale_records_notice(results_dir)
    if notice:
        log.warning("sgquant: %s", notice)
    return results_dir


def _chosen(run: MeasurementRun, top: Optional[dict]
            ) -> tuple[Optional[Any], Optional[float], Optional[float]]:
    """The chosen assignment, its test and best-test accuracy (``None`` s if none)."""
    if top is None:
        return None, None, None
    private = run.private[top["config_key"]]
    return (as_assignment(top["assignment"]), float(private["test_acc"]),
            float(private["best_test_acc"]))


def _search(method: str, dataset: str, model: str, *, budget: Optional[int], tolerance: float,
            seed: int, profile: "str | Profile", bit_choices: Optional[Sequence[int]],
            executor: Optional[Executor], workers: Optional[int], results: Optional[str],
            data_root: Optional[str], options: Optional[QuantOptions], progress: bool,
            scheduler: Optional[str] = None, n_mea: Optional[int] = None,
            n_sample: Optional[int] = None, n_iter: Optional[int] = None,
            strategy: Any = None, xgb_params: Optional[dict] = None,
            confirm_top: Optional[int] = None, confirm_seeds: Optional[int] = None,
            confirmation: Optional[Confirmation] = None, finetune: Optional[Finetune] = None,
            variant: "str | Variant | None" = None, device: Any = None,
            fp32_seed: Optional[int] = None) -> SearchResult:
    check_choice(method, "search method", METHODS)
    fp32_seed = check_optional_int(fp32_seed, "fp32_seed", minimum=0)
    var, options, finetune, conf = _variant_settings(variant, options, finetune, confirmation,
                                                     confirm_top, confirm_seeds)
    confirm_top, confirm_seeds = conf.top, conf.seeds
    prof = get_profile(profile)
    tolerance = check_tolerance(tolerance)
    seed = check_int(seed, "seed", minimum=0)
    budget = _check_budget(prof.search_budget if budget is None else budget)
    choices = check_bit_choices(prof.bit_choices if bit_choices is None else bit_choices)
    scheduler = _check_where(workers, scheduler, executor)
    if method == "cost-model":
        settings = _cost_model_settings(budget, prof, n_mea, n_sample, n_iter, strategy,
                                        xgb_params)
    else:
        _reject_cost_model_settings(dict(n_mea=n_mea, n_sample=n_sample, n_iter=n_iter,
                                         strategy=strategy, xgb_params=xgb_params))
        settings = {}
    results_dir = _results_folder(results)
    start = time.perf_counter()
    owns = executor is None
    # a Dask scheduler is reached (or found unreachable) before any training
    pool = make_executor(workers, scheduler) if owns else executor
    settings.update(workers=executor_workers(pool) if owns else type(pool).__name__,
                    scheduler=scheduler)
    run: Optional[MeasurementRun] = None
    try:
        # the FP32 model is trained (or read from the cache) once, here, before any job
        setup = prepare(dataset, model, seed if fp32_seed is None else fp32_seed, prof,
                        results_dir, data_root, device)
        space = SearchSpace.from_layout(setup.layout, choices)
        if budget > space.size:
            raise ValueError(f"budget {budget} exceeds the {space.size} distinct "
                             f"configurations of the search space (bit choices "
                             f"{list(choices)}, {len(space.free_fields)} free fields)")
        refresh = (lambda: make_executor(workers)) if owns and scheduler is None else None
        bar = tqdm(total=budget, desc=f"{method} {setup.dataset}/{setup.model_name} seed {seed}",
                   unit="config", disable=not progress, leave=False)
        runner = Runner(pool, results_dir, asked_by=f"search {method} seed {seed}")
        run = MeasurementRun(setup, space, setup.fp32["val_acc"] - tolerance / 100.0,
                             options, runner, data_root, refresh, bar, finetune)
        try:
            _measure_budget(run, method, budget, seed, settings)
            records = pd.DataFrame(run.rows)
            confirm_start = time.perf_counter()
            top, confirmations, means = confirm_choice(run, records, seed, conf)
            confirm_seconds = time.perf_counter() - confirm_start
        finally:
            bar.close()
    finally:  # on Ctrl-C the jobs end at once; what they measured is in the cache
        if owns:
            close_executor(pool if run is None else run.executor,
                           interrupted=isinstance(sys.exc_info()[1], KeyboardInterrupt))
    chosen, test, best_test = _chosen(run, top)
    settings.update(confirm_top=confirm_top, confirm_seeds=confirm_seeds,
                    confirmation=conf.to_dict(), finetune=finetune.to_dict(),
                    options=(options or QuantOptions()).to_dict(),
                    variant=None if var is None else var.name,
                    device=str(setup.device), fp32_seed=setup.seed)
    return SearchResult(
        method=method, dataset=setup.dataset, model=setup.model_name, seed=seed,
        profile=prof.name, tolerance=tolerance, budget=budget, bit_choices=choices,
        fp32_val_acc=float(setup.fp32["val_acc"]), fp32_test_acc=float(setup.fp32["test_acc"]),
        records=records, chosen=chosen, chosen_test_acc=test, chosen_best_test_acc=best_test,
        wall_seconds=time.perf_counter() - start, settings=settings,
        confirm_top=confirm_top, confirm_seeds=confirm_seeds, confirmations=confirmations,
        confirmed_val_acc=means.get("val_acc"), confirmed_test_acc=means.get("test_acc"),
        confirmed_best_test_acc=means.get("best_test_acc"), confirm_seconds=confirm_seconds,
        cost=cost_by_purpose(run.runner.spent))


def _measure_budget(run: MeasurementRun, method: str, budget: int, seed: int,
                    settings: dict) -> None:
    """Spend the budget: uniform draws (random search, or the cost model's first
    round), then the cost-model rounds."""
    space, sampler = run.space, Sampler(run.space, seed)
    first = budget if method == "random" else settings["first_round"]
    run.measure_round(0, np.array([space.vector(a) for a in sampler.draw(first)]),
                      ["uniform"] * first)
    if method == "random":
        return
    strategy = check_strategy(settings["strategy"])
    anchor = float(run.setup.fp32["val_acc"]) if strategy.fp32_anchor else None
    features = FeatureCache(space, run.setup.layout)
    for it in range(1, settings["n_iter"] + 1):
        rng = np.random.default_rng([seed, it, 0x5C0A7])
        picks = cost_model_step(space, features, np.array(run.vectors), run.accuracy(),
                                run.threshold, settings["n_sample"], settings["n_mea"], rng,
                                seed=seed, strategy=strategy, fp32_accuracy=anchor,
                                **settings["xgb_params"])
        run.measure_round(it, picks["vectors"], picks["sources"], picks["predicted"])


def _reject_cost_model_settings(values: dict) -> None:
    for name, value in values.items():
        if value is not None:
            raise ValueError(f"{name} is a cost-model setting; random search takes "
                             f"only the budget, got {name}={value!r}")


def random_search(dataset: str, model: str, *, budget: Optional[int] = None,
                  tolerance: float = 0.5, seed: int = 0, profile: "str | Profile" = "default",
                  bit_choices: Optional[Sequence[int]] = None,
                  executor: Optional[Executor] = None, workers: Optional[int] = None,
                  scheduler: Optional[str] = None,
                  results: Optional[str] = None, data_root: Optional[str] = None,
                  options: Optional[QuantOptions] = None,
                  progress: bool = True, confirm_top: Optional[int] = None,
                  confirm_seeds: Optional[int] = None,
                  confirmation: Optional[Confirmation] = None,
                  finetune: Optional[Finetune] = None,
                  variant: "str | Variant | None" = None, device: Any = None,
                  fp32_seed: Optional[int] = None) -> SearchResult:
    """Measure ``budget`` (default: the profile's) uniformly random configurations
    and choose the largest saving within ``tolerance`` points of FP32 validation
    accuracy.

    ``seed`` selects the FP32 model (``measure.prepare``) and the sampler's
    stream; ``executor`` (default: :func:`~sgquant.runner.make_executor` of
    ``workers`` and ``scheduler``: a process pool, ``workers=0`` in-process, or a
    Dask cluster) runs the measurements.

    Confirmation (:func:`~sgquant.search.confirm_choice`, a
    :class:`~sgquant.variants.Confirmation`; ``confirm_top`` and ``confirm_seeds``
    change its ``top`` and ``seeds``): the ``confirm_top`` feasible configurations with
    the largest savings are fine-tuned ``confirm_seeds`` more times and the chosen one
    is the largest saving whose mean validation accuracy (or its lower bound) stays
    within tolerance (``confirm_top=0``: the top feasible one). These extra
    fine-tunes are not part of the ``budget``.

    ``variant`` (``"sgquant"``, ``"sgquant+"``, an ablation step or a
    :class:`~sgquant.variants.Variant`) sets ``options``, ``finetune`` and
    ``confirmation`` unless they are given; ``device`` where the FP32 model and the
    in-process fine-tunes run (:func:`sgquant.device.resolve_device`). ``fp32_seed``
    (default: ``seed``) selects the FP32 model apart from the search's own randomness,
    so several search seeds can share one FP32 model and its measurements.

    Raises :class:`~sgquant.search.SearchFailed` when too many measurements failed
    (:class:`~sgquant.search.failures.FailureLog`).
    """
    return _search("random", dataset, model, budget=budget, tolerance=tolerance, seed=seed,
                   profile=profile, bit_choices=bit_choices, executor=executor,
                   workers=workers, scheduler=scheduler, results=results,
                   data_root=data_root, options=options, progress=progress,
                   confirm_top=confirm_top, confirm_seeds=confirm_seeds,
                   confirmation=confirmation, finetune=finetune, variant=variant,
                   device=device, fp32_seed=fp32_seed)


def cost_model_search(dataset: str, model: str, *, budget: Optional[int] = None,
                      tolerance: float = 0.5, seed: int = 0,
                      profile: "str | Profile" = "default",
                      n_mea: Optional[int] = None, n_sample: Optional[int] = None,
                      n_iter: Optional[int] = None,
                      bit_choices: Optional[Sequence[int]] = None,
                      executor: Optional[Executor] = None, workers: Optional[int] = None,
                      scheduler: Optional[str] = None,
                      results: Optional[str] = None, data_root: Optional[str] = None,
                      options: Optional[QuantOptions] = None, progress: bool = True,
                      strategy: Any = None,
                      xgb_params: Optional[dict] = None, confirm_top: Optional[int] = None,
                      confirm_seeds: Optional[int] = None,
                      confirmation: Optional[Confirmation] = None,
                      finetune: Optional[Finetune] = None,
                      variant: "str | Variant | None" = None,
                      device: Any = None, fp32_seed: Optional[int] = None) -> SearchResult:
    """The paper's cost-model search (steps 1-5, see :mod:`sgquant.search`).

    The ``budget`` is split into a random first round and ``n_iter`` (default:
    the profile's ``search_iterations``) cost-model rounds of ``n_mea`` (default
    ``budget // (n_iter + 1)``) measurements; the first round takes the rest,
    ``budget - n_iter * n_mea``. Each round scores ``n_sample`` (default: the
    profile's ``search_sample``) fresh candidates. ``strategy`` (a
    :class:`~sgquant.search.Strategy`, or a dict of fields to change in
    :data:`~sgquant.search.STRATEGY`; :data:`~sgquant.search.PAPER_STRATEGY` is the
    paper's plain version) says how candidates are generated, scored and picked;
    ``xgb_params`` adds regressor settings. Other arguments (and the confirmation
    step, the same for both searches) as :func:`random_search`.
    """
    return _search("cost-model", dataset, model, budget=budget, tolerance=tolerance, seed=seed,
                   profile=profile, bit_choices=bit_choices, executor=executor,
                   workers=workers, scheduler=scheduler, results=results,
                   data_root=data_root, options=options, progress=progress, n_mea=n_mea,
                   n_sample=n_sample, n_iter=n_iter, strategy=strategy,
                   xgb_params=xgb_params, confirm_top=confirm_top,
                   confirm_seeds=confirm_seeds, confirmation=confirmation, finetune=finetune,
                   variant=variant, device=device, fp32_seed=fp32_seed)


def search(dataset: str, model: str, method: str = "cost-model", **kwargs: Any) -> SearchResult:
    """:func:`cost_model_search` or :func:`random_search` by name (:data:`METHODS`)."""
    check_choice(method, "search method", METHODS)
    if method == "random":
        _reject_cost_model_settings({k: kwargs[k] for k in COST_MODEL_SETTINGS if k in kwargs})
        return random_search(dataset, model, **kwargs)
    return cost_model_search(dataset, model, **kwargs)
