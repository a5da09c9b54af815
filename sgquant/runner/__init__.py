"""Running measurements: the jobs, the executors they run on, and the one runner whose
driver owns the results cache (the architecture page, "How a chapter reaches its
numbers").

Modules: :mod:`~sgquant.runner.jobs` (:class:`TrainJob`, :class:`FinetuneJob`),
:mod:`~sgquant.runner.runner` (:class:`Runner`), :mod:`~sgquant.runner.executors`
(process pool, Dask), :mod:`~sgquant.runner.scheduler` (a Dask scheduler address,
reached within a total timeout), :mod:`~sgquant.runner.local_cluster`,
:mod:`~sgquant.runner.orphans` (workers die with their parent and leave Ctrl-C to it),
:mod:`~sgquant.runner.ledger` (the epochs and CPU seconds every run asked for).
"""
from __future__ import annotations

from .executors import (DaskExecutor, SchedulerUnreachable, SerialExecutor, close_executor,
                        executor_workers, make_executor)
from .jobs import FinetuneJob, FP32Weights, Job, TrainJob, run_job
from .ledger import Account, accounting, cost_by_purpose, cost_sentence, cost_table
from .runner import Outcome, Runner, running

__all__ = ["DaskExecutor", "SchedulerUnreachable", "SerialExecutor", "close_executor",
           "executor_workers", "make_executor", "FinetuneJob", "FP32Weights", "Job",
           "TrainJob", "run_job", "Outcome", "Runner", "running", "Account", "accounting",
           "cost_by_purpose", "cost_sentence", "cost_table"]
