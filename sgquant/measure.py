"""Measuring one bit assignment: the unit of work of every experiment and search.

:func:`prepare` loads a dataset, computes its degree buckets and trains (or
loads from the cache) the FP32 model of a (dataset, model, seed, profile);
:func:`measure` fine-tunes one :class:`~sgquant.bits.BitAssignment` from those
FP32 weights and returns a flat record (validation and test accuracy, average
bits, memory, saving, wall time), cached on disk. :func:`measure_job` is the
picklable form submitted to a :class:`concurrent.futures.Executor`.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, Optional

import torch
from torch_geometric.data import Data

from . import __version__
from .bits import BitAssignment, as_assignment
from .cache import ResultCache
from .data import DegreeBuckets, canonical_name, degree_buckets, load_dataset
from .memory import FeatureLayout, feature_layout, feature_memory
from .models import QuantGNN, QuantOptions, build_model
from .profiles import Profile, get_profile
from .train import finetune, train_model


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread (repeatable sums; parallelism comes from the executor)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Setup:
    """A dataset, its degree buckets and a trained FP32 model."""

    dataset: str
    model_name: str
    seed: int
    profile: Profile
    data: Data
    buckets: DegreeBuckets
    model: QuantGNN
    fp32_state: dict
    fp32: dict
    layout: FeatureLayout

    @property
    def num_layers(self) -> int:
        return self.model.num_layers

    def fp32_key(self) -> dict:
        return fp32_key(self.dataset, self.model_name, self.seed, self.profile)


def fp32_key(dataset: str, model: str, seed: int, profile: Profile) -> dict:
    return {"kind": "fp32", "dataset": dataset, "model": model, "seed": seed,
            "architecture": profile.architecture(model), "epochs": profile.fp32_epochs,
            "patience": profile.patience, "version": __version__}


def build_for(data: Data, model: str, profile: Profile) -> QuantGNN:
    return build_model(model, data.num_features, int(data.y.max()) + 1,
                       **profile.architecture(model))


@lru_cache(maxsize=8)
def _prepare_cached(dataset: str, model: str, seed: int, profile: Profile,
                    results: Optional[str], data_root: Optional[str]) -> Setup:
    data = load_dataset(dataset, data_root)
    buckets = degree_buckets(data.edge_index, data.num_nodes, profile.num_buckets)
    torch.manual_seed(seed)
    net = build_for(data, model, profile)  # weights initialised under the seed
    cache = ResultCache(results)
    key = fp32_key(dataset, model, seed, profile)
    state, summary = cache.get_state("fp32", key), cache.get("fp32", key)
    if state is None or summary is None:
        with single_thread():
            result = train_model(net, data, epochs=profile.fp32_epochs,
                                 patience=profile.patience, seed=seed)
        state, summary = result.state_dict, result.summary()
        cache.put_state("fp32", key, state)
        cache.put("fp32", key, summary)
    net.load_state_dict(state)
    net.set_bits(None)
    layout = feature_layout(net, data.edge_index, data.num_nodes, buckets)
    return Setup(dataset, model, seed, profile, data, buckets, net, state, summary, layout)


def prepare(dataset: str, model: str, seed: int = 0, profile: "str | Profile" = "default",
            results: Optional[str] = None, data_root: Optional[str] = None) -> Setup:
    """Load ``dataset`` and the FP32 ``model`` trained with ``seed`` under ``profile``
    (trained once, then read from the results cache)."""
    prof = get_profile(profile)
    name = canonical_name(dataset)
    key = str(model).lower()
    prof.architecture(key)  # validates the model name
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return _prepare_cached(name, key, seed, prof,
                           None if results is None else str(results),
                           None if data_root is None else str(data_root))


def measurement_key(setup: Setup, assignment: BitAssignment,
                    options: Optional[QuantOptions] = None,
                    finetune_seed: Optional[int] = None) -> dict:
    opts = options or QuantOptions()
    key = {"kind": "measure", "fp32": setup.fp32_key(), "assignment": assignment.to_dict(),
           "finetune_epochs": setup.profile.finetune_epochs,
           "num_buckets": setup.buckets.num_buckets,
           "rounding": opts.rounding, "clip_percentile": opts.clip_percentile}
    if finetune_seed is not None and finetune_seed != setup.seed:
        key["finetune_seed"] = finetune_seed
    return key


def memory_record(setup: Setup, assignment: BitAssignment) -> dict:
    """Average bits, MB, saving (ours and the paper's) of ``assignment`` on ``setup``."""
    return feature_memory(setup.layout, assignment).summary()


def measure(setup: Setup, assignment: "BitAssignment | dict", *,
            options: Optional[QuantOptions] = None,
            results: Optional[str] = None, use_cache: bool = True,
            finetune_seed: Optional[int] = None) -> dict:
    """Fine-tune ``assignment`` from the FP32 weights and score it (cached).

    ``finetune_seed`` (default: the FP32 model's seed) seeds the fine-tuning
    alone, so one configuration can be re-measured from the same FP32 weights
    with other dropout draws (a confirmation of a borderline choice).

    Returns a flat record: ``val_acc`` (selects configurations), ``test_acc``
    (at the best-validation epoch), ``best_test_acc`` (the authors' protocol),
    ``val_acc_before`` (quantized FP32 weights, no fine-tuning), memory fields
    and ``seconds`` (wall time of the fine-tuning).
    """
    assignment = as_assignment(assignment)
    assignment.check_shape(setup.num_layers, setup.buckets.num_buckets)
    if finetune_seed is not None and (isinstance(finetune_seed, bool)
                                      or not isinstance(finetune_seed, int) or finetune_seed < 0):
        raise ValueError(f"finetune_seed must be a non-negative integer, got {finetune_seed!r}")
    ft_seed = setup.seed if finetune_seed is None else finetune_seed
    cache = ResultCache(results)
    key = measurement_key(setup, assignment, options, ft_seed)
    if use_cache:
        hit = cache.get("measure", key)
        if hit is not None:
            return {**hit, "cached": True}
    start = time.perf_counter()
    with single_thread():
        model = build_for(setup.data, setup.model_name, setup.profile)
        result = finetune(model, setup.data, assignment, setup.fp32_state,
                          buckets=setup.buckets if assignment.num_buckets > 1 else None,
                          options=options, epochs=setup.profile.finetune_epochs,
                          seed=ft_seed)
    record = {
        "dataset": setup.dataset, "model": setup.model_name, "seed": setup.seed,
        "finetune_seed": ft_seed,
        "assignment": assignment.to_dict(), "config_key": assignment.key(),
        **{f: getattr(result, f) for f in ("val_acc", "test_acc", "best_test_acc", "epoch")},
        "val_acc_before": result.history[0]["val"],
        "fp32_val_acc": setup.fp32["val_acc"], "fp32_test_acc": setup.fp32["test_acc"],
        "fp32_best_test_acc": setup.fp32["best_test_acc"],
        **memory_record(setup, assignment),
        "rounding": (options or QuantOptions()).rounding,
        "clip_percentile": (options or QuantOptions()).clip_percentile,
        "seconds": time.perf_counter() - start,
    }
    cache.put("measure", key, record)
    return {**record, "cached": False}


def measure_job(dataset: str, model: str, seed: int, profile: Profile, assignment: dict,
                options: Optional[QuantOptions] = None, results: Optional[str] = None,
                data_root: Optional[str] = None, finetune_seed: Optional[int] = None) -> dict:
    """Picklable job for an executor: prepare (cached per process) and measure."""
    setup = prepare(dataset, model, seed, profile, results, data_root)
    return measure(setup, assignment, options=options, results=results,
                   finetune_seed=finetune_seed)
