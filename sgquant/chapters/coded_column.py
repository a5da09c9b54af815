"""Chapter 3's coded column: the feature memory of each method's choice stored with
chapter 7's lossless code, one :class:`CodedStorageJob` per Table III row, run by the
chapter's :class:`~sgquant.runner.Runner` (cached under ``coded``; the driver writes it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np
import pandas as pd

from ..assignment import BitAssignment
from ..measure import fp32_key, single_thread
from ..profiles import Profile
from ..quantize import QuantOptions
from ..runner import FP32Weights, Job, Runner
from ..settings import RunSettings
from ..variants import get_variant
from .common import measurement_runner

__all__ = ["CodedStorageJob", "coded_storage_job", "coded_storage", "add_coded_storage"]


@dataclass(frozen=True)
class CodedStorageJob(Job):
    """Coded saving against dense FP32 and coded bits per element of ``assignment_json``
    quantized with ``options`` (``None``: the paper's quantizer) on ``fp32``."""

    kind: ClassVar[str] = "coded"
    fp32: Optional[FP32Weights] = None
    assignment_json: str = ""
    options: Optional[QuantOptions] = None

    def run(self) -> dict:
        from ..packed.baselines import storage_baselines, storage_totals

        setup = self.fp32.setup()
        with single_thread():
            totals = storage_totals(storage_baselines(
                setup.fp32_model(), setup.data, BitAssignment.from_json(self.assignment_json),
                setup.buckets, options=self.options))
        return {"coded_saving": float(totals["coded_saving_vs_fp32"].iloc[0]),
                "coded_bits": float(totals["coded_bits_per_element"].iloc[0])}

    def check(self, result: Any) -> dict:
        if not (isinstance(result, dict) and set(result) == {"coded_saving", "coded_bits"}
                and all(isinstance(v, float) and v > 0 for v in result.values())):
            raise ValueError(f"not a coded-storage record: {result!r}")
        return result


def coded_storage_job(runner: Runner, dataset: str, model: str, seed: int,
                      assignment_json: str,
                      options: Optional[QuantOptions] = None) -> CodedStorageJob:
    """The :class:`CodedStorageJob` of ``assignment_json`` on the FP32 model of ``seed``
    (its key: the FP32 model's, the assignment, and the options unless the paper's)."""
    setup, weights = runner.weights(dataset, model, seed)
    key = {"kind": "coded", "fp32": fp32_key(setup.dataset, setup.model_name, setup.seed,
                                             setup.profile),
           "assignment": BitAssignment.from_json(assignment_json).to_dict()}
    if options is not None and options != QuantOptions():  # the paper's keeps earlier keys
        key["options"] = options.to_dict()
    return CodedStorageJob(key, weights, assignment_json, options)


def coded_storage(settings: "str | Profile | RunSettings", dataset: str, model: str,
                  seed: int, assignment_json: str,
                  options: Optional[QuantOptions] = None) -> dict[str, float]:
    """One :func:`coded_storage_job`, run (or read from the cache) in this process."""
    with measurement_runner(settings, 0, asked_by="coded") as runner:
        (record,) = runner.run([coded_storage_job(runner, dataset, model, seed,
                                                  assignment_json, options)])
    return record


def add_coded_storage(table3: pd.DataFrame, runs: pd.DataFrame,
                      profile: "str | Profile | RunSettings" = "default",
                      workers: Optional[int] = None) -> pd.DataFrame:
    """``table3`` with ``coded_saving`` and ``coded_bits``: the feature memory of each
    (dataset, model, method)'s choice (its first search seed's), quantized with the
    method's own quantizer and stored with the lossless code of chapter 7
    (:func:`sgquant.packed.baselines.storage_baselines`, on the FP32 weights of the
    first evaluation seed; the codes of layer 1's input do not depend on the weights),
    against dense FP32 (a method by its name, :func:`~sgquant.variants.get_variant`). The
    rows run as :class:`CodedStorageJob` s of the chapter's runner (cached)."""
    out = table3.copy()
    out["coded_saving"], out["coded_bits"] = np.nan, np.nan
    ran = runs[runs["status"] == "run"]
    todo = []
    for i, r in out.iterrows():
        if r.get("status") != "run":
            continue
        sub = ran[(ran["dataset"] == r["dataset"]) & (ran["model"] == r["model"])
                  & (ran["variant"] == r["variant"])]
        first = sub.sort_values(["search_seed", "seed"]).iloc[0]
        todo.append((i, r["dataset"], r["model"], int(first["seed"]),
                     str(first["chosen_json"]), get_variant(r["variant"]).options))
    if not todo:
        return out
    with measurement_runner(profile, workers, asked_by="coded") as runner:
        jobs = [coded_storage_job(runner, d, m, s, a, o) for _, d, m, s, a, o in todo]
        for (i, *_), rec in zip(todo, runner.run(jobs)):
            out.at[i, "coded_saving"] = rec["coded_saving"]
            out.at[i, "coded_bits"] = rec["coded_bits"]
    return out
