"""A Dask :class:`distributed.LocalCluster` for measurement jobs on this machine.

Its worker processes are children of this process; like the process pool's workers
they die with it, even when it is killed with ``SIGKILL``, and leave Ctrl-C to it
(:func:`sgquant.runner.orphans.owned_worker`, run in each worker by a
:class:`distributed.WorkerPlugin`; they are also started with ``SIGINT`` ignored).
An interrupted run ends the cluster at once (:func:`stop_local_cluster`). Imported
only when a local cluster is asked for.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from distributed import Client, LocalCluster, WorkerPlugin

from .orphans import interrupts_ignored, owned_worker

__all__ = ["DieWithDriver", "start_local_cluster", "stop_local_cluster"]


class DieWithDriver(WorkerPlugin):
    """Ends a worker process as soon as the driver (process ``pid``) is gone; the
    worker ignores ``SIGINT`` (the driver ends it)."""

    name = "sgquant-die-with-driver"

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def setup(self, worker: Any) -> None:
        if os.getppid() == self.pid:  # a worker process started by the driver itself
            owned_worker(self.pid)


def start_local_cluster(workers: int) -> tuple[Client, LocalCluster]:
    """A loopback-only cluster of ``workers`` single-threaded worker processes and a
    client to it. Dask logs errors only: a failed job is reported by the search
    (:mod:`sgquant.search.failures`), and stopping a busy worker is no warning."""
    with interrupts_ignored():  # the worker processes start with SIGINT ignored
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               silence_logs=logging.ERROR)
    client = Client(cluster)
    client.register_plugin(DieWithDriver(os.getpid()))
    return client, cluster


def stop_local_cluster(cluster: LocalCluster, grace: float = 0.5) -> None:
    """Close ``cluster`` at once: each worker process is asked to stop and killed
    after ``grace`` seconds (Dask's own close waits 4 s for a busy worker), then the
    scheduler closes."""
    async def close_workers() -> None:
        await asyncio.gather(*(nanny.close(timeout=grace, reason="sgquant-interrupted")
                               for nanny in list(cluster.workers.values())),
                             return_exceptions=True)

    try:
        cluster.sync(close_workers)
    finally:
        cluster.close()
