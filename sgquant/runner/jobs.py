"""The jobs a :class:`~sgquant.runner.Runner` runs: everything a worker needs, nothing it
must write.

A job is a frozen dataclass with named fields: its cache ``kind`` and ``key`` (computed
by the driver), :meth:`Job.run` (what the worker does: a plain, picklable result),
:meth:`Job.check` (the driver's check of that result), and :meth:`Job.read` /
:meth:`Job.write` (the driver's cache look-up and atomic write). A worker (a local
process, or a Dask worker on another machine without the results folder) never opens
the results folder; only the dataset must be readable on it.

* :class:`TrainJob`: train one FP32 model; the worker returns its weights as arrays and
  its summary, the driver writes the ``fp32`` record (state and summary).
* :class:`FinetuneJob`: fine-tune one configuration from FP32 weights the job carries
  (:class:`FP32Weights`); the worker returns the
  :class:`~sgquant.measure.Measurement` record. Each worker process keeps the setups
  it built (one per FP32 model), so the weights are loaded once per process.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional

import numpy as np
import torch

from ..assignment import BitAssignment
from ..cache import ResultCache
from ..data import label_permutation_seed
from ..measure import (Measurement, Setup, check_fp32_summary, finetune_record, fp32_key,
                       measurement_key, setup_from_state, train_fp32)
from ..profiles import Profile
from ..quantize import QuantOptions
from ..train import Finetune

__all__ = ["Job", "TrainJob", "FinetuneJob", "FP32Weights", "run_job", "state_arrays",
           "state_digest"]

#: setups a worker process keeps (each holds a dataset's features)
_KEEP_SETUPS = 4
_setups: "OrderedDict[tuple, Setup]" = OrderedDict()


def state_arrays(state: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """A torch state dict as numpy arrays (plain pickles, for any executor)."""
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def state_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """A short hash of FP32 weights: names, dtypes, shapes and bytes."""
    h = hashlib.sha1()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}


@dataclass(frozen=True)
class Job:
    """What every job has: its cache ``kind`` and ``key`` (see the module docstring)."""

    kind: ClassVar[str] = ""
    key: dict
    #: what the job is for in the ledger (:mod:`sgquant.runner.ledger`): not part of
    #: its ``key`` (empty: ``fp32`` for a training, else the asking chapter's name)
    purpose: str = field(default="", kw_only=True, compare=False)

    def for_purpose(self, purpose: str) -> "Job":
        """This job with ``purpose`` (same key, same work)."""
        return dataclasses.replace(self, purpose=purpose)

    def labels(self) -> dict[str, str]:
        """Dataset, model and profile name of the job for its ledger line (empty where
        the job has none: its runner's profile is used)."""
        fp32 = getattr(self, "fp32", None)
        src = fp32 if isinstance(fp32, FP32Weights) else self
        prof = getattr(src, "profile", None)
        return {"dataset": str(getattr(src, "dataset", "") or ""),
                "model": str(getattr(src, "model", "") or ""),
                "profile": prof.name if isinstance(prof, Profile) else ""}

    def run(self) -> dict:  # pragma: no cover - every job defines it
        raise NotImplementedError

    def check(self, result: Any) -> dict:
        """The worker's ``result`` as the record to store (``ValueError`` if invalid)."""
        if not isinstance(result, dict):
            raise ValueError(f"a {type(self).__name__} returns a dict, got "
                             f"{type(result).__name__}")
        return result

    def read(self, cache: ResultCache) -> Optional[dict]:
        """The cached record (checked), or ``None``."""
        return cache.get(self.kind, self.key, validate=self.check)

    def write(self, cache: ResultCache, record: dict) -> dict:
        """Store ``record`` (atomically) and return what the caller gets."""
        cache.put(self.kind, self.key, record)
        return record


@dataclass(frozen=True)
class TrainJob(Job):
    """Train the FP32 ``model`` of ``dataset`` with ``seed`` under ``profile`` (the
    dataset read from ``data_root``, on ``device``, single-threaded on a CPU)."""

    kind: ClassVar[str] = "fp32"
    dataset: str = ""
    model: str = ""
    seed: int = 0
    profile: Optional[Profile] = None
    data_root: Optional[str] = None
    device: str = "cpu"

    @classmethod
    def of(cls, dataset: str, model: str, seed: int, profile: Profile,
           data_root: Optional[str] = None, device: str = "cpu") -> "TrainJob":
        return cls(fp32_key(dataset, model, seed, profile), dataset, model, seed, profile,
                   data_root, device)

    def run(self) -> dict:
        state, summary = train_fp32(self.dataset, self.model, self.seed, self.profile,
                                    self.data_root, self.device)
        return {"state": state_arrays(state), "summary": summary}

    def check(self, result: Any) -> dict:
        if not isinstance(result, dict) or set(result) != {"state", "summary"}:
            raise ValueError("an FP32 training returns its state and summary")
        check_fp32_summary(result["summary"])
        return result

    def read(self, cache: ResultCache) -> Optional[dict]:
        """The cached summary when both the summary and the weights are there (the
        weights are checked against the model by :func:`sgquant.measure.prepare`)."""
        summary = cache.get(self.kind, self.key, validate=check_fp32_summary)
        if summary is None or not cache.path(self.kind, self.key, ".pt").exists():
            return None
        return summary

    def write(self, cache: ResultCache, record: dict) -> dict:
        cache.put_state(self.kind, self.key, _tensors(record["state"]))
        cache.put(self.kind, self.key, record["summary"])
        return record["summary"]


@dataclass(frozen=True)
class FP32Weights:
    """Trained FP32 weights a driver sends its workers: the model of (``dataset``,
    ``model``, ``seed``, ``profile``), its weights as arrays (``state``, identified by
    ``digest``) and ``summary``; ``data_root``: where the worker finds the dataset
    (``None``: its own default); ``device``: where the worker fine-tunes."""

    dataset: str
    model: str
    seed: int
    profile: Profile
    data_root: Optional[str]
    state: dict = field(repr=False)
    summary: dict
    digest: str
    device: str = "cpu"

    @classmethod
    def of(cls, setup: Setup, data_root: Optional[str] = None,
           device: str = "cpu") -> "FP32Weights":
        arrays = state_arrays(setup.fp32_state)
        return cls(setup.dataset, setup.model_name, setup.seed, setup.profile, data_root,
                   arrays, dict(setup.fp32), state_digest(arrays), device)

    def setup(self) -> Setup:
        """The :class:`~sgquant.measure.Setup` of these weights in this process (kept; one
        per permutation of the test labels, :mod:`sgquant.data.permute`)."""
        key = (self.dataset, self.model, self.seed, self.profile, self.data_root,
               self.digest, self.device, label_permutation_seed())
        if key in _setups:
            _setups.move_to_end(key)
            return _setups[key]
        setup = setup_from_state(self.dataset, self.model, self.seed, self.profile,
                                 self.data_root, _tensors(self.state), self.summary,
                                 device=self.device)
        _setups[key] = setup
        while len(_setups) > _KEEP_SETUPS:
            _setups.popitem(last=False)
        return setup


@dataclass(frozen=True)
class FinetuneJob(Job):
    """One fine-tune of ``assignment`` (a dict) from ``fp32`` with ``finetune_seed``,
    the quantizer ``options`` and the fine-tune settings ``finetune`` (epochs,
    distillation, epoch 0)."""

    kind: ClassVar[str] = "measure"
    fp32: Optional[FP32Weights] = None
    assignment: dict = field(default_factory=dict)
    finetune_seed: int = 0
    options: Optional[QuantOptions] = None
    finetune: Optional[Finetune] = None

    @classmethod
    def of(cls, setup: Setup, fp32: FP32Weights, assignment: "BitAssignment | dict", *,
           options: Optional[QuantOptions] = None, finetune_seed: Optional[int] = None,
           finetune: Optional[Finetune] = None) -> "FinetuneJob":
        """The job of ``assignment`` on ``setup`` (whose weights ``fp32`` are), keyed by
        :func:`sgquant.measure.measurement_key`."""
        from ..assignment import as_assignment

        a = as_assignment(assignment)
        a.check_shape(setup.num_layers, setup.buckets.num_buckets)
        seed = setup.seed if finetune_seed is None else int(finetune_seed)
        return cls(measurement_key(setup, a, options, seed, finetune), fp32, a.to_dict(),
                   seed, options, finetune)

    def run(self) -> dict:
        return finetune_record(self.fp32.setup(), self.assignment, options=self.options,
                               finetune_seed=self.finetune_seed, finetune=self.finetune)

    def check(self, result: Any) -> dict:
        return Measurement.from_record(result).to_record()


def run_job(job: Job) -> dict:
    """Run ``job`` in this process (what an executor's worker calls); touches no
    results folder."""
    return job.run()
