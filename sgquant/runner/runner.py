"""The one runner of measurements: the driver owns the results cache, the executor runs
the misses.

:class:`Runner` looks each job's key up in the cache (records are checked; an invalid
one is run again), submits only the misses to its executor
(:mod:`sgquant.runner.executors`), checks each returned result and writes it atomically
here, in the driver, and gives the records back in the order of the jobs. The searches
(:class:`~sgquant.search.rounds.MeasurementRun`) and every chapter use it; the
workers never need the results folder.
"""
from __future__ import annotations

import contextlib
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

from ..assignment import BitAssignment
from ..cache import ResultCache
from ..data import canonical_name
from ..measure import Setup, prepare
from ..quantize import QuantOptions
from ..train import Finetune
from .executors import close_executor, make_executor
from .jobs import FinetuneJob, FP32Weights, Job, TrainJob, run_job
from .ledger import current_account, note_record

if TYPE_CHECKING:
    from ..settings import RunSettings

__all__ = ["Runner", "Outcome", "describe", "running"]


def describe(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class Outcome:
    """One job's end: its record (``None`` if it failed), whether it came from the
    cache, and why it failed."""

    record: Optional[dict]
    cached: bool = False
    exception: Optional[BaseException] = None

    @property
    def error(self) -> Optional[str]:
        return None if self.exception is None else describe(self.exception)

    @property
    def status(self) -> str:
        return "failed" if self.record is None else ("cached" if self.cached else "measured")


class Runner:
    """Jobs through the cache under ``results`` (default ``$SGQUANT_RESULTS``, else
    ``./results``) and ``executor``; ``settings`` (a
    :class:`~sgquant.settings.RunSettings`, if any) is the run's."""

    def __init__(self, executor: Executor, results: "str | None" = None,
                 settings: "Optional[RunSettings]" = None, asked_by: str = "") -> None:
        self.executor, self.settings = executor, settings
        self.cache = ResultCache(results)
        self._weights: dict[tuple, FP32Weights] = {}
        #: the :func:`~sgquant.runner.ledger.accounting` context it was made in (if any)
        #: and who asks below it (``asked_by``)
        self.account, self.asked_by = current_account(), asked_by
        #: the ledger entries of this runner's jobs (:mod:`sgquant.runner.ledger`)
        self.spent: list[dict] = []

    def note(self, kind: str, key: dict, record: dict, *, purpose: str, dataset: str,
             model: str, profile: str, cached: bool) -> None:
        """Append a job's ledger line to the results folder's ledger of ``profile`` and
        the current account (:func:`sgquant.runner.ledger.note_record`), and to
        :attr:`spent`."""
        self.spent.append(note_record(
            self.cache.root, kind=kind, key=key, record=record, purpose=purpose,
            dataset=dataset, model=model, profile=profile, cached=cached,
            asked_by=self.asked_by))

    def note_job(self, job: Job, record: dict, cached: bool) -> None:
        """:meth:`note` of ``job``'s record."""
        labels = job.labels()
        if not labels["profile"]:
            labels["profile"] = self._settings().profile.name
        self.note(job.kind, job.key, record, purpose=job.purpose, cached=cached, **labels)

    def note_setup(self, setup: Setup, cached: bool = True) -> None:
        """:meth:`note` of an FP32 model prepared in the driver
        (:func:`sgquant.measure.prepare`), purpose ``fp32``."""
        self.note("fp32", setup.fp32_key(), setup.fp32, purpose="fp32",
                  dataset=setup.dataset, model=setup.model_name, profile=setup.profile.name,
                  cached=cached)

    def _settings(self) -> "RunSettings":
        if self.settings is None:
            raise ValueError("this Runner was made without run settings")
        return self.settings

    def setup(self, dataset: str, model: str, seed: int) -> Setup:
        """The FP32 setup of (``dataset``, ``model``, ``seed``) under the run's settings,
        in the driver (:func:`sgquant.measure.prepare`: read from the cache, trained on
        a miss)."""
        s = self._settings()
        return prepare(dataset, model, seed, s.profile, str(s.results), s.data_root, s.device)

    def train_job(self, dataset: str, model: str, seed: int) -> TrainJob:
        """The :class:`TrainJob` of (``dataset``, ``model``, ``seed``) under the run's
        settings."""
        s = self._settings()
        return TrainJob.of(canonical_name(dataset), str(model).lower(), seed, s.profile,
                           s.data_root, s.device)

    def finetune_job(self, dataset: str, model: str, seed: int,
                     assignment: "BitAssignment | dict", *,
                     options: Optional[QuantOptions] = None,
                     finetune: Optional[Finetune] = None,
                     finetune_seed: Optional[int] = None) -> FinetuneJob:
        """The :class:`FinetuneJob` of ``assignment`` on the FP32 model of
        (``dataset``, ``model``, ``seed``): its weights travel with the job (made once
        per FP32 model and kept)."""
        setup, weights = self.weights(dataset, model, seed)
        return FinetuneJob.of(setup, weights, assignment, options=options,
                              finetune_seed=finetune_seed, finetune=finetune)

    def weights(self, dataset: str, model: str, seed: int) -> tuple[Setup, FP32Weights]:
        """The setup of (``dataset``, ``model``, ``seed``) and its weights as a job
        carries them to a worker (made once per FP32 model and kept)."""
        setup = self.setup(dataset, model, seed)
        key = (setup.dataset, setup.model_name, setup.seed)
        if key not in self._weights:
            s = self._settings()
            self._weights[key] = FP32Weights.of(setup, s.data_root, s.device)
            self.note_setup(setup)
        return setup, self._weights[key]

    def outcomes(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Each job's :class:`Outcome`, in order: from the cache, else run on the
        executor (a job that raises, or returns an invalid result, is a failed outcome;
        a record that cannot be written raises its ``OSError``). Each record, cached or
        measured, gets its ledger line (:meth:`note_job`)."""
        out: list[Optional[Outcome]] = [None] * len(jobs)
        futures: dict[Future, int] = {}
        for i, job in enumerate(jobs):
            hit = job.read(self.cache)
            if hit is not None:
                out[i] = Outcome(hit, cached=True)
                self.note_job(job, hit, cached=True)
                continue
            try:
                futures[self.executor.submit(run_job, job)] = i
            except Exception as exc:  # e.g. a broken pool: recorded, the caller goes on
                out[i] = Outcome(None, exception=exc)
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                record = jobs[i].check(fut.result())
            except Exception as exc:  # the job raised, or returned no valid record
                out[i] = Outcome(None, exception=exc)
                continue
            out[i] = Outcome(jobs[i].write(self.cache, record))
            self.note_job(jobs[i], out[i].record, cached=False)
        return [o for o in out if o is not None]

    def run(self, jobs: Sequence[Job]) -> list[dict]:
        """The records of ``jobs``, in order; the first failure raises."""
        records = []
        for o in self.outcomes(jobs):
            if o.exception is not None:
                raise o.exception
            records.append(o.record)
        return records


@contextlib.contextmanager
def running(settings: "RunSettings", workers: Optional[int] = None) -> Iterator[Runner]:
    """A :class:`Runner` on a fresh executor of ``settings`` (its scheduler, else a
    process pool of ``workers``, default the settings'), closed after the block: after
    its running jobs, or at once on Ctrl-C; on an error, jobs not started are cancelled."""
    chosen = settings.workers if workers is None else workers
    pool = make_executor(chosen, settings.scheduler)
    try:
        yield Runner(pool, str(settings.results), settings)
    except BaseException as exc:
        close_executor(pool, interrupted=isinstance(exc, KeyboardInterrupt))
        raise
    pool.shutdown(wait=True)
