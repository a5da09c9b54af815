"""A Dask :class:`distributed.LocalCluster` for measurement jobs on this machine.

Its worker processes are children of this process; like the process pool's workers
they die with it, even when it is killed with ``SIGKILL``
(:func:`sgquant.search.orphans.die_with_parent`, run in each worker by a
:class:`distributed.WorkerPlugin`). Imported only when a local cluster is asked for.
"""
from __future__ import annotations

import os
from typing import Any

from distributed import Client, LocalCluster, WorkerPlugin

from .orphans import die_with_parent

__all__ = ["DieWithDriver", "start_local_cluster"]


class DieWithDriver(WorkerPlugin):
    """Ends a worker process as soon as the driver (process ``pid``) is gone."""

    name = "sgquant-die-with-driver"

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def setup(self, worker: Any) -> None:
        if os.getppid() == self.pid:  # a worker process started by the driver itself
            die_with_parent(self.pid)


def start_local_cluster(workers: int) -> tuple[Client, LocalCluster]:
    """A loopback-only cluster of ``workers`` single-threaded worker processes and a
    client to it."""
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    client.register_plugin(DieWithDriver(os.getpid()))
    return client, cluster
