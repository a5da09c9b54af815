"""The searches: random search and the paper's cost-model search, end to end.

Both train (or read) the FP32 model once, measure configurations through a
:class:`~sgquant.search.rounds.MeasurementRun` (cache in the driver, jobs on
an executor), confirm the choice (:mod:`sgquant.search.confirm`) and return a
:class:`~sgquant.search.result.SearchResult`. See :mod:`sgquant.search` for the
method.
"""
from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import Executor
from typing import Any, Optional

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..assignment import as_assignment
from ..cache import check_results_folder, stale_records_notice
from ..checks import check_choice, check_optional_int
from ..measure import prepare
from ..profiles import Profile
from ..quantize import QuantOptions
from ..runner import (Runner, close_executor, cost_by_purpose, executor_workers,
                      make_executor)
from ..settings import RunSettings, as_run_settings
from ..variants import Variant
from .confirm import confirm_choice
from .features import FeatureCache
from .rounds import MeasurementRun
from .result import SearchResult
from .space import SearchSpace, Sampler, check_bit_choices
from .spec import (COST_MODEL_SETTINGS, SearchSpec, check_budget, check_epoch_budget,
                   check_tolerance)
from .step import cost_model_step
from .strategy import check_strategy

__all__ = ["METHODS", "random_search", "cost_model_search", "search", "check_tolerance",
           "resolve_rounds", "COST_MODEL_SETTINGS", "SearchSpec"]

METHODS = ("cost-model", "random")

log = logging.getLogger("sgquant.search")


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


def _cost_model_settings(budget: int, prof: Profile, spec: SearchSpec) -> dict:
    first, n_mea, n_iter = resolve_rounds(budget, spec.n_mea, spec.n_iter, prof)
    n_sample = prof.search_sample if spec.n_sample is None else spec.n_sample
    if n_sample < n_mea:
        raise ValueError(f"n_sample = {n_sample} must be >= n_mea = {n_mea} "
                         "(the top n_mea of n_sample candidates are measured)")
    return {"n_mea": n_mea, "n_sample": n_sample, "n_iter": n_iter, "first_round": first,
            "strategy": dict(check_strategy(spec.strategy)),
            "xgb_params": dict(spec.xgb_params or {})}


def _check_inputs(spec: Any, settings: Any, executor: Any) -> None:
    """The search's settings objects and executor are of their types."""
    if not isinstance(spec, SearchSpec):
        raise ValueError(f"spec must be a sgquant.search.SearchSpec, got {spec!r}")
    if not isinstance(settings, RunSettings):
        raise ValueError(f"settings must be a sgquant.settings.RunSettings, got {settings!r}")
    if executor is not None and not isinstance(executor, Executor):
        raise ValueError(f"executor must be a concurrent.futures.Executor, "
                         f"got {type(executor).__name__}")


def _results_folder(results: Any) -> str:
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


def _search(method: str, dataset: str, model: str, spec: SearchSpec, settings: RunSettings,
            executor: Optional[Executor], progress: bool) -> SearchResult:
    check_choice(method, "search method", METHODS)
    _check_inputs(spec, settings, executor)
    options, finetune, conf = spec.quantization()
    prof, seed = settings.profile, spec.seed
    budget = check_budget(prof.search_budget if spec.budget is None else spec.budget)
    choices = check_bit_choices(prof.bit_choices if spec.bit_choices is None
                                else spec.bit_choices)
    if method == "cost-model":
        run_settings = _cost_model_settings(budget, prof, spec)
    else:
        _reject_cost_model_settings(spec.cost_model_values())
        run_settings = {}
    if spec.epoch_budget is not None:
        run_settings.update(_epoch_budget_settings(method, budget, prof, spec, finetune))
    results_dir = _results_folder(settings.results)
    start = time.perf_counter()
    owns = executor is None
    workers, scheduler = settings.workers, settings.scheduler
    # a Dask scheduler is reached (or found unreachable) before any training
    pool = make_executor(workers, scheduler) if owns else executor
    run_settings.update(workers=executor_workers(pool) if owns else type(pool).__name__,
                        scheduler=scheduler)
    run: Optional[MeasurementRun] = None
    try:
        # the FP32 model is trained (or read from the cache) once, here, before any job
        setup = prepare(dataset, model, seed if spec.fp32_seed is None else spec.fp32_seed,
                        prof, results_dir, settings.data_root, settings.device)
        space = SearchSpace.from_layout(setup.layout, choices)
        if budget > space.size and spec.epoch_budget is None:
            raise ValueError(f"budget {budget} exceeds the {space.size} distinct "
                             f"configurations of the search space (bit choices "
                             f"{list(choices)}, {len(space.free_fields)} free fields)")
        refresh = (lambda: make_executor(workers)) if owns and scheduler is None else None
        bar = tqdm(total=budget if spec.epoch_budget is None else None,
                   desc=f"{method} {setup.dataset}/{setup.model_name} seed {seed}",
                   unit="config", disable=not progress, leave=False)
        runner = Runner(pool, results_dir, asked_by=f"search {method} seed {seed}")
        run = MeasurementRun(setup, space, setup.fp32["val_acc"] - spec.tolerance / 100.0,
                             options, runner, settings.data_root, refresh, bar, finetune,
                             spec.fidelity)
        try:
            _measure_budget(run, method, budget, seed, run_settings)
            if spec.epoch_budget is not None:
                run_settings["epochs_spent"] = run.epochs_spent()
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
    run_settings.update(confirm_top=conf.top, confirm_seeds=conf.seeds,
                        confirmation=conf.to_dict(), finetune=finetune.to_dict(),
                        options=(options or QuantOptions()).to_dict(),
                        fidelity=spec.fidelity.to_dict(),
                        variant=None if spec.variant is None else spec.variant.name,
                        device=str(setup.device), fp32_seed=setup.seed)
    return SearchResult(
        method=method, dataset=setup.dataset, model=setup.model_name, seed=seed,
        profile=prof.name, tolerance=spec.tolerance, budget=budget, bit_choices=choices,
        fp32_val_acc=float(setup.fp32["val_acc"]), fp32_test_acc=float(setup.fp32["test_acc"]),
        records=records, chosen=chosen, chosen_test_acc=test, chosen_best_test_acc=best_test,
        wall_seconds=time.perf_counter() - start, settings=run_settings,
        confirm_top=conf.top, confirm_seeds=conf.seeds, confirmations=confirmations,
        confirmed_val_acc=means.get("val_acc"), confirmed_test_acc=means.get("test_acc"),
        confirmed_best_test_acc=means.get("best_test_acc"), confirm_seconds=confirm_seconds,
        cost=cost_by_purpose(run.runner.spent))


def _epoch_budget_settings(method: str, budget: int, prof: Profile, spec: SearchSpec,
                           finetune: Any) -> dict:
    """The settings of a search whose budget is in epochs: the budget itself (checked
    against one full fine-tune) and, for random search, its rounds (the cost model's
    ``n_mea`` from the profile's iterations)."""
    out: dict = {"epoch_budget": check_epoch_budget(
        spec.epoch_budget, finetune.epochs_for(prof.finetune_epochs))}
    if method == "random":
        _, n_mea, _ = resolve_rounds(budget, None, None, prof)
        out.update(first_round=n_mea, n_mea=n_mea)
    return out


def _rounds_left(run: MeasurementRun, it: int, settings: dict) -> int:
    """How many configurations round ``it`` (>= 1) measures: ``n_mea`` (fewer where the
    space runs out); 0 once the budget is spent (``n_iter`` rounds, or, with an epoch
    budget, the candidates' epochs reaching it)."""
    epoch_budget = settings.get("epoch_budget")
    if epoch_budget is None:  # a random search's one round has no n_iter
        return settings["n_mea"] if it <= settings.get("n_iter", 0) else 0
    if run.epochs_spent() >= epoch_budget:
        return 0
    return min(settings["n_mea"], run.space.size - len(run.rows))


def _measure_budget(run: MeasurementRun, method: str, budget: int, seed: int,
                    settings: dict) -> None:
    """Spend the budget: uniform draws (random search, or the cost model's first
    round), then the cost-model rounds; with an epoch budget, rounds until its epochs
    are spent (:func:`_rounds_left`)."""
    space, sampler = run.space, Sampler(run.space, seed)
    first = settings.get("first_round", budget)
    run.measure_round(0, np.array([space.vector(a) for a in sampler.draw(first)]),
                      ["uniform"] * first)
    if method == "random":
        it = 1
        while n := _rounds_left(run, it, settings):
            run.measure_round(it, np.array([space.vector(a) for a in sampler.draw(n)]),
                              ["uniform"] * n)
            it += 1
        return
    strategy = check_strategy(settings["strategy"])
    anchor = float(run.setup.fp32["val_acc"]) if strategy.fp32_anchor else None
    features = FeatureCache(space, run.setup.layout)
    it = 1
    while n := _rounds_left(run, it, settings):
        rng = np.random.default_rng([seed, it, 0x5C0A7])
        picks = cost_model_step(space, features, np.array(run.vectors), run.accuracy(),
                                run.threshold, settings["n_sample"], n, rng,
                                seed=seed, strategy=strategy, fp32_accuracy=anchor,
                                **settings["xgb_params"])
        run.measure_round(it, picks["vectors"], picks["sources"], picks["predicted"])
        it += 1


def _reject_cost_model_settings(values: dict) -> None:
    for name, value in values.items():
        if value is not None:
            raise ValueError(f"{name} is a cost-model setting; random search takes "
                             f"only the budget, got {name}={value!r}")


def _spec_with(spec: Optional[SearchSpec], **given: Any) -> SearchSpec:
    """``spec`` (default: :class:`SearchSpec`'s defaults) with the ``given`` settings that
    are not ``None``."""
    if spec is not None and not isinstance(spec, SearchSpec):
        raise ValueError(f"spec must be a sgquant.search.SearchSpec, got {spec!r}")
    base = SearchSpec() if spec is None else spec
    changes = {k: v for k, v in given.items() if v is not None}
    return base.replace(**changes) if changes else base


def _settings_with(settings: Optional[RunSettings],
                   profile: "str | Profile | None") -> RunSettings:
    """``settings`` (default: :func:`sgquant.settings.get_config`), with ``profile`` if
    given."""
    if settings is not None and not isinstance(settings, RunSettings):
        raise ValueError(f"settings must be a sgquant.settings.RunSettings, got {settings!r}")
    base = as_run_settings(settings)
    return base if profile is None else base.replace(profile=profile)


def random_search(dataset: str, model: str, spec: Optional[SearchSpec] = None, *,
                  budget: Optional[int] = None, tolerance: Optional[float] = None,
                  seed: Optional[int] = None, fp32_seed: Optional[int] = None,
                  variant: "str | Variant | None" = None,
                  profile: "str | Profile | None" = None,
                  settings: Optional[RunSettings] = None,
                  executor: Optional[Executor] = None, progress: bool = True) -> SearchResult:
    """Measure ``budget`` (default: the profile's) uniformly random configurations
    and choose the largest saving within ``tolerance`` points of FP32 validation
    accuracy.

    ``spec`` (a :class:`~sgquant.search.SearchSpec`) holds every search setting;
    ``budget``, ``tolerance``, ``seed``, ``fp32_seed`` and ``variant``, when given,
    change it. ``settings`` (a :class:`~sgquant.settings.RunSettings`; default: the
    current ones, :func:`sgquant.settings.get_config`; ``profile``, if given, changes
    it) says where it runs: the profile, the device of the FP32 model and the
    in-process fine-tunes, the results and data folders, and, unless ``executor`` is
    given, the executor's ``workers`` and ``scheduler``
    (:func:`~sgquant.runner.make_executor`: a process pool, ``workers=0`` in-process,
    or a Dask cluster).

    ``seed`` selects the FP32 model (``measure.prepare``) and the sampler's stream;
    ``fp32_seed`` (default: ``seed``) selects the FP32 model apart from the search's own
    randomness, so several search seeds can share one FP32 model and its measurements.

    Confirmation (:func:`~sgquant.search.confirm_choice`, a
    :class:`~sgquant.variants.Confirmation`; the spec's ``confirm_top`` and
    ``confirm_seeds`` change its ``top`` and ``seeds``): the ``confirm_top`` feasible
    configurations with the largest savings are fine-tuned ``confirm_seeds`` more times
    and the chosen one is the largest saving whose mean validation accuracy (or its lower
    bound) stays within tolerance (``confirm_top=0``: the top feasible one). These extra
    fine-tunes are not part of the ``budget``. ``variant`` (``"sgquant"``, ``"sgquant+"``,
    an ablation step or a :class:`~sgquant.variants.Variant`) sets the quantizer
    options, fine-tuning and confirmation the spec does not give.

    Raises :class:`~sgquant.search.SearchFailed` when too many measurements failed
    (:class:`~sgquant.search.failures.FailureLog`).
    """
    return _search("random", dataset, model,
                   _spec_with(spec, budget=budget, tolerance=tolerance, seed=seed,
                              fp32_seed=fp32_seed, variant=variant),
                   _settings_with(settings, profile), executor, progress)


def cost_model_search(dataset: str, model: str, spec: Optional[SearchSpec] = None, *,
                      budget: Optional[int] = None, tolerance: Optional[float] = None,
                      seed: Optional[int] = None, fp32_seed: Optional[int] = None,
                      variant: "str | Variant | None" = None,
                      profile: "str | Profile | None" = None,
                      settings: Optional[RunSettings] = None,
                      executor: Optional[Executor] = None,
                      progress: bool = True) -> SearchResult:
    """The paper's cost-model search (steps 1-5, see :mod:`sgquant.search`).

    The ``budget`` is split into a random first round and ``n_iter`` (default:
    the profile's ``search_iterations``) cost-model rounds of ``n_mea`` (default
    ``budget // (n_iter + 1)``) measurements; the first round takes the rest,
    ``budget - n_iter * n_mea``. Each round scores ``n_sample`` (default: the
    profile's ``search_sample``) fresh candidates. ``strategy`` (a
    :class:`~sgquant.search.Strategy`, or a dict of fields to change in
    :data:`~sgquant.search.STRATEGY`; :data:`~sgquant.search.PAPER_STRATEGY` is the
    paper's plain version) says how candidates are generated, scored and picked;
    ``xgb_params`` adds regressor settings. These are fields of ``spec`` (a
    :class:`~sgquant.search.SearchSpec`); the other arguments (and the confirmation
    step, the same for both searches) as :func:`random_search`.
    """
    return _search("cost-model", dataset, model,
                   _spec_with(spec, budget=budget, tolerance=tolerance, seed=seed,
                              fp32_seed=fp32_seed, variant=variant),
                   _settings_with(settings, profile), executor, progress)


def search(dataset: str, model: str, method: str = "cost-model",
           spec: Optional[SearchSpec] = None, *, settings: Optional[RunSettings] = None,
           executor: Optional[Executor] = None, progress: bool = True) -> SearchResult:
    """:func:`cost_model_search` or :func:`random_search` by name (:data:`METHODS`), with
    the search's ``spec`` (default: :class:`SearchSpec`'s defaults) and the run's
    ``settings`` (default: the current ones)."""
    check_choice(method, "search method", METHODS)
    return _search(method, dataset, model, _spec_with(spec), _settings_with(settings, None),
                   executor, progress)
