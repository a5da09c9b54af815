"""Run-wide settings: where tensors live (the device) and where measurements run (the
scheduler).

``--device`` and ``--scheduler`` (on ``train``, ``search``, ``run`` and ``book``), the
``device`` and ``scheduler`` notebook parameters, and the environment variables
``SGQUANT_DEVICE`` and ``SGQUANT_SCHEDULER`` are one setting: an option or parameter sets
the variable for the run, so every process the run starts (notebook kernels, measurement
workers) sees the same. Both are checked here, before any work: a GPU that is not there,
a device spec of the wrong form, a scheduler address that is not a URL, or a scheduler
that does not answer within ``$SGQUANT_SCHEDULER_TIMEOUT`` seconds (default 10; or
something else answering there) is a one-line ``ValueError``: the command exits with 2.
"""
from __future__ import annotations

import os
from typing import Any, Optional

from .device import DEVICE_ENV, check_device_spec, describe_device, resolve_device
from .search.executors import SCHEDULER_ENV, check_scheduler, make_executor

__all__ = ["use_run_settings", "run_settings", "current_scheduler", "add_settings_arguments"]


def current_scheduler() -> Optional[str]:
    """The run's Dask scheduler (``$SGQUANT_SCHEDULER``), ``None`` for a local process pool."""
    return check_scheduler(os.environ.get(SCHEDULER_ENV) or None)


def use_run_settings(device: Optional[str] = None, scheduler: Optional[str] = None, *,
                     probe_scheduler: bool = False) -> dict[str, str]:
    """Set the run's ``device`` and ``scheduler`` (``None`` leaves each as it is) after
    checking them; with ``probe_scheduler`` a remote scheduler is reached once now
    (:class:`~sgquant.search.scheduler.SchedulerUnreachable`, a ``ValueError``, within
    ``$SGQUANT_SCHEDULER_TIMEOUT`` seconds if it does not answer or is not a Dask
    scheduler). Returns :func:`run_settings`."""
    if device is not None:
        spec = check_device_spec(device)
        resolve_device(spec)  # a GPU that is not here fails now, not inside a worker
        os.environ[DEVICE_ENV] = spec
    if scheduler is not None:
        scheduler = check_scheduler(scheduler)
        if probe_scheduler and scheduler != "local":
            make_executor(scheduler=scheduler).shutdown()
        os.environ[SCHEDULER_ENV] = scheduler
    return run_settings()


def run_settings() -> dict[str, str]:
    """What the run uses now, for run tables: the device (described) and the scheduler."""
    return {"device": describe_device(resolve_device(None)),
            "scheduler": current_scheduler() or "local process pool"}


def add_settings_arguments(parser: Any, scheduler: bool = True) -> None:
    """``--device`` (and ``--scheduler``) on a command's parser."""
    parser.add_argument("--device", default=None,
                        help="auto, cpu, cuda or cuda:N (default: $SGQUANT_DEVICE, else auto: "
                             "a GPU when torch sees one)")
    if scheduler:
        parser.add_argument("--scheduler", default=None,
                            help="run the measurements on Dask: 'local' (a LocalCluster on this "
                                 "machine) or a scheduler address such as tcp://host:8786 "
                                 "(default: $SGQUANT_SCHEDULER, else a local process pool; "
                                 "reached within $SGQUANT_SCHEDULER_TIMEOUT seconds, default "
                                 "10)")
