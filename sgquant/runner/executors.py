"""Where measurement jobs run: any :class:`concurrent.futures.Executor`.

:func:`make_executor` gives

* ``workers=0``: a :class:`SerialExecutor` (in this process);
* by default: a "spawn" :class:`~concurrent.futures.ProcessPoolExecutor` whose
  workers die with this process, even when it is killed with ``SIGKILL``, and ignore
  Ctrl-C (:mod:`sgquant.runner.orphans`);
* ``scheduler="local"``: a Dask :class:`distributed.LocalCluster` (worker processes,
  loopback only, dying with this process too) and its client's executor;
* ``scheduler="tcp://host:8786"``: the executor of a :class:`distributed.Client`
  connected to a running Dask scheduler (any cluster: ``dask scheduler`` /
  ``dask worker`` by hand, Slurm through ``dask-jobqueue`` ...), reached within a
  total timeout (:mod:`sgquant.runner.scheduler`).

:func:`close_executor` ends one: after its running jobs, or at once on Ctrl-C.

Jobs write nothing (:mod:`sgquant.runner.jobs`), so Dask workers need no shared folder.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, Callable, Optional

from ..checks import check_int
from .orphans import QuietSpawnContext, owned_worker
from .scheduler import (SCHEDULER_ENV, SCHEDULER_SCHEMES, SchedulerUnreachable,
                        check_scheduler, connect_client, scheduler_timeout)

__all__ = ["SerialExecutor", "DaskExecutor", "SchedulerUnreachable", "make_executor",
           "close_executor", "check_scheduler", "executor_workers", "SCHEDULER_SCHEMES",
           "SCHEDULER_ENV"]


class SerialExecutor(Executor):
    """Runs each job in this process as it is submitted (tests, notebooks, debugging)."""

    def __init__(self) -> None:
        self._shutdown = False

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: Future = Future()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # recorded by the caller as a failed measurement
            future.set_exception(exc)
        else:
            future.set_result(result)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True




class DaskExecutor(Executor):
    """The executor of a :class:`distributed.Client` (and of the
    :class:`~distributed.LocalCluster` it owns, if any); :meth:`shutdown` closes both."""

    def __init__(self, client: Any, cluster: Any = None) -> None:
        self.client, self.cluster = client, cluster
        self._executor = client.get_executor(pure=False)

    @property
    def address(self) -> str:
        return str(self.client.scheduler.address)

    @property
    def num_workers(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._executor.shutdown(wait=wait and not cancel_futures)
        finally:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()

    def stop(self) -> None:
        """Shut down at once (an interrupted run): jobs are cancelled, a local
        cluster's workers killed within a second, Dask's closing messages silenced."""
        from distributed.utils import silence_logging_cmgr

        with silence_logging_cmgr(logging.CRITICAL):
            try:
                self._executor.shutdown(wait=False)
            finally:
                self.client.close()
                if self.cluster is not None:
                    from .local_cluster import stop_local_cluster

                    stop_local_cluster(self.cluster)


def _dask_executor(scheduler: str, workers: Optional[int], timeout: float) -> DaskExecutor:
    try:
        import distributed  # noqa: F401
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise ValueError(f"scheduler {scheduler!r} needs the 'distributed' package "
                         f"({exc})") from None
    if scheduler == "local":
        from .local_cluster import start_local_cluster

        client, cluster = start_local_cluster((os.cpu_count() or 1) if workers is None
                                              else max(workers, 1))
        return DaskExecutor(client, cluster)
    return DaskExecutor(connect_client(scheduler, timeout))


def make_executor(workers: Optional[int] = None, scheduler: Optional[str] = None,
                  connect_timeout: Optional[float] = None) -> Executor:
    """An executor for measurement jobs (see the module docstring).

    ``scheduler=None``: a "spawn" process pool of ``workers`` processes (default and
    maximum: ``os.cpu_count()``; ``workers=0``: a :class:`SerialExecutor`);
    ``"local"``: a Dask ``LocalCluster`` of ``workers`` processes (default: the cores);
    an address: the Dask scheduler there (``workers`` is ignored: the cluster has
    its own), reached within ``connect_timeout`` seconds (default
    ``$SGQUANT_SCHEDULER_TIMEOUT``, else 10) or :class:`SchedulerUnreachable`
    (:func:`sgquant.runner.scheduler.connect_client`).
    """
    scheduler = check_scheduler(scheduler)
    if workers is not None:
        workers = check_int(workers, "workers", minimum=0)
    if scheduler is not None:
        timeout = scheduler_timeout(connect_timeout)
        return _dask_executor(scheduler, workers, timeout)
    cores = os.cpu_count() or 1
    workers = cores if workers is None else workers
    if workers == 0:
        return SerialExecutor()
    return ProcessPoolExecutor(max_workers=min(workers, cores), mp_context=QuietSpawnContext(),
                               initializer=owned_worker, initargs=(os.getpid(),))


def close_executor(executor: Executor, *, interrupted: bool = False) -> None:
    """Shut ``executor`` down, queued jobs cancelled: after its running jobs end, or,
    when the run was ``interrupted`` (Ctrl-C), at once: a process pool's workers are
    terminated (they ignore ``SIGINT``, :mod:`sgquant.runner.orphans`) and a Dask
    executor stops (:meth:`DaskExecutor.stop`). Finished measurements are already in
    the cache."""
    if not interrupted:
        executor.shutdown(wait=True, cancel_futures=True)
    elif isinstance(executor, DaskExecutor):
        executor.stop()
    elif isinstance(executor, ProcessPoolExecutor):
        terminate = getattr(executor, "terminate_workers", None)  # Python >= 3.14
        if terminate is not None:
            terminate()
            return
        # before 3.14 the pool has no public way to end running jobs
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)  # quick: its workers are gone
    else:
        executor.shutdown(wait=False, cancel_futures=True)


def executor_workers(executor: Executor) -> "int | str":
    """How many processes ``executor`` runs jobs in (its class name if unknown)."""
    if isinstance(executor, SerialExecutor):
        return 0
    if isinstance(executor, DaskExecutor):
        return executor.num_workers
    count = getattr(executor, "_max_workers", None)
    return int(count) if count is not None else type(executor).__name__
