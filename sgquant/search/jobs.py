"""The measurement job of a search: everything a worker needs, nothing it must write.

The driver reads and writes the results cache; a worker (a local process, or a Dask
worker on another machine without the results folder) gets a :class:`FinetuneJob`
holding the FP32 weights as arrays, fine-tunes one configuration
(:func:`sgquant.measure.finetune_record`) and returns the
:class:`~sgquant.measure.Measurement` record. Only the dataset must be readable on
the worker. Each worker process keeps the setups it built (one per FP32 model), so
the weights are loaded once per process, not once per job.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
import torch

from ..measure import Setup, finetune_record, setup_from_state
from ..profiles import Profile
from ..quantize import QuantOptions
from ..train import Finetune

__all__ = ["FinetuneJob", "run_finetune_job", "state_arrays", "state_digest"]

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


@dataclass(frozen=True)
class FinetuneJob:
    """One fine-tune of ``assignment`` from the FP32 model of (``dataset``, ``model``,
    ``seed``, ``profile``) with ``finetune_seed``; ``fp32_state`` are its weights
    (:func:`state_arrays`, identified by ``fp32_digest``), ``fp32_summary`` its
    accuracies; ``data_root``: where the worker finds the dataset (``None``: its own
    default); ``finetune``: the fine-tune settings (epochs, distillation, epoch 0)."""

    dataset: str
    model: str
    seed: int
    profile: Profile
    assignment: dict
    finetune_seed: int
    options: Optional[QuantOptions]
    data_root: Optional[str]
    fp32_state: dict
    fp32_summary: dict
    fp32_digest: str
    finetune: Optional[Finetune] = None


def _setup_for(job: FinetuneJob) -> Setup:
    key = (job.dataset, job.model, job.seed, job.profile, job.data_root, job.fp32_digest)
    if key in _setups:
        _setups.move_to_end(key)
        return _setups[key]
    state = {k: torch.from_numpy(np.array(v)) for k, v in job.fp32_state.items()}
    setup = setup_from_state(job.dataset, job.model, job.seed, job.profile, job.data_root,
                             state, job.fp32_summary)
    _setups[key] = setup
    while len(_setups) > _KEEP_SETUPS:
        _setups.popitem(last=False)
    return setup


def run_finetune_job(job: FinetuneJob) -> dict[str, Any]:
    """Run ``job`` in this process: its :class:`~sgquant.measure.Measurement` record
    (as a dict, ``worker`` naming this process). Touches no results folder."""
    return finetune_record(_setup_for(job), job.assignment, options=job.options,
                           finetune_seed=job.finetune_seed, finetune=job.finetune)
