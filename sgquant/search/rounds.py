"""Measuring a search's configurations: through the one runner, whose driver owns the
cache.

:class:`MeasurementRun` holds one search's state (its FP32 setup, the records so
far). Each configuration becomes a :class:`~sgquant.runner.FinetuneJob` (the FP32
weights as arrays) run by a :class:`~sgquant.runner.Runner`: from the cache, else on
the executor, each returned record checked and written to the cache in the driver,
so the workers need no access to the results folder. Every outcome is counted by a
:class:`~sgquant.search.failures.FailureLog`, which stops the search when failures
are too many or share one cause.
"""
from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import replace
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..assignment import BitAssignment, as_assignment
from ..fidelity import Fidelity, get_fidelity
from ..measure import Setup, memory_record
from ..quantize import QuantOptions
from ..runner import FinetuneJob, FP32Weights, Outcome, Runner
from ..seeds import search_finetune_seed
from ..train import Finetune
from .candidates import ACCURACY_SLACK
from .failures import FailureLog, SearchFailed, describe
from .result import TEST_FIELDS
from .space import SearchSpace

__all__ = ["MeasurementRun", "Outcome"]


class MeasurementRun:
    """State of one search: the setup, the runner its jobs go through, and the records
    so far; ``data_root``: where the workers read the dataset.

    ``refresh`` makes a new executor when an owned process pool broke (a worker was
    killed); ``bar`` is a progress bar (``update(n)``); ``fidelity``
    (:class:`~sgquant.fidelity.Fidelity`, default ``full``) says when its fine-tunes stop
    early, judged against ``threshold``.
    """

    def __init__(self, setup: Setup, space: SearchSpace, threshold: float,
                 options: Optional[QuantOptions], runner: Runner, data_root: Optional[str],
                 refresh: Optional[Callable[[], Executor]], bar: Any,
                 finetune: Optional[Finetune] = None,
                 fidelity: "Fidelity | str | None" = "full") -> None:
        self.setup, self.space, self.threshold = setup, space, threshold
        self.options, self.data_root = options, data_root
        self.finetune = finetune or Finetune()
        self.fidelity = get_fidelity(fidelity)
        self.runner, self.refresh, self.bar = runner, refresh, bar
        self.failures = FailureLog()
        self.rows: list[dict] = []
        self.private: dict[str, dict] = {}  # config_key -> test accuracies
        self.vectors: list[np.ndarray] = []
        self._fp32 = FP32Weights.of(setup, data_root)
        runner.note_setup(setup)  # its FP32 model, in the ledger

    @property
    def executor(self) -> Executor:
        return self.runner.executor

    def measure_all(self, items: Sequence[tuple[BitAssignment, int]],
                    finetune: Optional[Finetune] = None,
                    purpose: str = "candidate") -> list[Outcome]:
        """Measure each ``(assignment, finetune seed)`` with ``finetune`` (default: the
        search's settings): from the cache, else as a job (``purpose`` in the ledger)."""
        ft = self.finetune if finetune is None else finetune
        jobs = [FinetuneJob.of(self.setup, self._fp32, a, options=self.options,
                               finetune_seed=seed, finetune=ft).for_purpose(purpose)
                for a, seed in items]
        try:
            done = self.runner.outcomes(jobs)
        except OSError as exc:
            raise SearchFailed(f"cannot write the results cache under {self.runner.cache.root} "
                               f"({describe(exc)}): make it writable or choose another "
                               "folder with --results") from None
        for o in done:
            self.failures.add(o.exception)
            self.bar.update(1)
        if self.refresh is not None and any("BrokenProcessPool" in (o.error or "")
                                            for o in done):
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.runner.executor = self.refresh()  # a fresh pool for the next round
        return done

    def stopping(self, finetune: Finetune, confirmation: bool = False,
                 every_run: bool = True) -> Finetune:
        """``finetune`` with this run's :class:`~sgquant.fidelity.StopRule` (judged
        against its threshold, less the feasibility slack); ``every_run=False``: a
        confirmation that averages its fine-tunes, which must not stop at the threshold."""
        epochs = finetune.epochs_for(self.setup.profile.finetune_epochs)
        rule = self.fidelity.rule(self.threshold - ACCURACY_SLACK, epochs,
                                  confirmation=confirmation, averaged=not every_run)
        return finetune if rule is None else replace(finetune, stop=rule)

    def measure_round(self, iteration: int, vectors: np.ndarray, sources: Sequence[str],
                      predicted: Optional[np.ndarray] = None) -> None:
        """Measure ``vectors`` (one search round) and append their rows."""
        assignments = [self.space.assignment(v) for v in vectors]
        seed = search_finetune_seed(self.setup.seed)  # the search's own stream
        outcomes = self.measure_all([(a, seed) for a in assignments],
                                    self.stopping(self.finetune))
        for i, (a, o) in enumerate(zip(assignments, outcomes)):
            rec = o.record or {}
            row = {"order": len(self.rows) + 1, "iteration": iteration, "source": sources[i],
                   "config_key": a.key(), "status": o.status, "error": o.error, **a.flat(),
                   **memory_record(self.setup, a),
                   "val_acc": float(rec.get("val_acc", np.nan)),
                   "val_acc_before": float(rec.get("val_acc_before", np.nan)),
                   "predicted_val_acc": np.nan if predicted is None else float(predicted[i]),
                   "seconds": float(rec.get("seconds", np.nan)),
                   "epochs_run": rec.get("epochs_run"),
                   "worker": rec.get("worker"), "assignment": a.to_json()}
            row["feasible"] = bool(o.record is not None
                                   and row["val_acc"] >= self.threshold - ACCURACY_SLACK)
            if o.record is not None:
                self.private[row["config_key"]] = {k: float(rec[k]) for k in TEST_FIELDS}
            self.rows.append(row)
        self.vectors.extend(np.asarray(v, dtype=np.int64) for v in vectors)
        self.failures.check()

    def measure_finetunes(self, keys: Sequence[str], finetune_seeds: Sequence[int],
                          finetune: Optional[Finetune] = None,
                          assignments: Optional[dict[str, str]] = None,
                          every_run: bool = False) -> list[dict]:
        """Re-measure the configurations ``keys`` once per ``finetune_seeds`` (this run's
        FP32 weights, other fine-tuning seeds; ``finetune``: other settings), through the
        cache and the executor; one row per fine-tune, in (key, seed) order. A key this
        run has not measured takes its assignment from ``assignments`` (key -> JSON: a
        configuration another run chose, confirmed on this run's FP32 model).
        ``every_run``: the confirmation needs every fine-tune within tolerance, so each
        may stop once it is (:meth:`stopping`)."""
        by_key = dict(assignments or {})
        by_key.update({r["config_key"]: r["assignment"] for r in self.rows})
        items = [(as_assignment(by_key[k]), int(s)) for k in keys for s in finetune_seeds]
        ft = self.stopping(self.finetune if finetune is None else finetune,
                           confirmation=True, every_run=every_run)
        outcomes = self.measure_all(items, ft, purpose="confirmation")
        rows = []
        for (a, seed), o in zip(items, outcomes):
            rec = o.record or {}
            rows.append({"config_key": a.key(), "finetune_seed": seed, "status": o.status,
                         "error": o.error, "worker": rec.get("worker"),
                         "fp32_seed": self.setup.seed, "epochs_run": rec.get("epochs_run"),
                         **{k: float(rec.get(k, np.nan))
                            for k in ("val_acc", "seconds", *TEST_FIELDS)}})
        self.failures.check()
        return rows

    def sibling(self, setup: Setup) -> "MeasurementRun":
        """A run on another FP32 model (``setup``) with this run's space, quantizer,
        fine-tuning, cache, executor and progress bar; its threshold is that model's
        validation accuracy minus this run's tolerance."""
        tolerance = float(self.setup.fp32["val_acc"]) - self.threshold
        return MeasurementRun(setup, self.space, float(setup.fp32["val_acc"]) - tolerance,
                              self.options, self.runner, self.data_root, None, self.bar,
                              self.finetune, self.fidelity)

    def epochs_spent(self) -> int:
        """Fine-tune epochs the candidates measured so far ran (from their records,
        cached or new, so a rerun counts the same; a failed one counts in full, one
        decided by its evaluation before fine-tuning as one epoch, so that an epoch
        budget always ends)."""
        full = self.finetune.epochs_for(self.setup.profile.finetune_epochs)
        return int(sum(full if r.get("epochs_run") is None else max(1, int(r["epochs_run"]))
                       for r in self.rows))

    def accuracy(self) -> np.ndarray:
        return np.array([r["val_acc"] if r["status"] != "failed" else np.nan
                         for r in self.rows], dtype=np.float64)
