"""Run-wide settings, declared once: :class:`RunSettings` (the profile, the device, the
scheduler, the workers, the results and data folders), resolved and validated at the
entry point (a command, a chapter's parameters, the Python API) and passed down as one
argument; :func:`get_config`, :func:`set_config` and :func:`config_context` hold the
current one for the Python API (in the manner of scikit-learn's).

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

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from .cache import results_root
from .checks import check_optional_int
from .device import DEVICE_ENV, check_device_spec, describe_device, resolve_device
from .profiles import Profile, get_profile
from .runner.executors import SCHEDULER_ENV, check_scheduler, make_executor

__all__ = ["RunSettings", "as_run_settings", "get_config", "set_config", "config_context",
           "use_run_settings",
           "run_settings", "current_scheduler", "add_settings_arguments"]


@dataclass(frozen=True)
class RunSettings:
    """What a run uses, checked once: ``profile`` (a :class:`~sgquant.profiles.Profile`),
    ``device`` (a checked spec: ``auto``, ``cpu``, ``cuda[:N]``), ``scheduler`` (a Dask
    scheduler address or ``"local"``; ``None``: a local process pool), ``workers``
    (measurement processes; ``None``: every core; 0: in this process), ``results`` (the
    results folder, absolute) and ``data_root`` (``None``: each process's own,
    ``$SGQUANT_DATA`` or the default). Make one with :meth:`resolve`."""

    profile: Profile
    device: str
    scheduler: Optional[str]
    workers: Optional[int]
    results: Path
    data_root: Optional[str]

    @classmethod
    def resolve(cls, profile: "str | Profile" = "default", device: Optional[str] = None,
                scheduler: Optional[str] = None, workers: Optional[int] = None,
                results: "str | os.PathLike | None" = None,
                data_root: "str | os.PathLike | None" = None) -> "RunSettings":
        """Check each setting (a one-line ``ValueError`` names a bad one); ``None`` takes
        ``$SGQUANT_DEVICE``, ``$SGQUANT_SCHEDULER``, ``$SGQUANT_RESULTS``."""
        spec = check_device_spec(device or os.environ.get(DEVICE_ENV) or "auto")
        resolve_device(spec)  # a GPU that is not here fails now, not inside a worker
        return cls(get_profile(profile), spec,
                   check_scheduler(scheduler or os.environ.get(SCHEDULER_ENV) or None),
                   check_optional_int(workers, "workers", minimum=0),
                   results_root(results).resolve(),
                   None if data_root is None else str(data_root))

    def replace(self, **changes: Any) -> "RunSettings":
        """These settings with ``changes`` (checked again)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update(changes)
        return RunSettings.resolve(**values)


_current: Optional[RunSettings] = None


def get_config() -> RunSettings:
    """The current :class:`RunSettings` (the defaults and environment variables until
    :func:`set_config` changes them)."""
    return _current if _current is not None else RunSettings.resolve()


def set_config(**changes: Any) -> RunSettings:
    """Change the current settings (``profile=``, ``device=``, ``scheduler=``,
    ``workers=``, ``results=``, ``data_root=``); returns them."""
    global _current
    _current = get_config().replace(**changes)
    return _current


@contextlib.contextmanager
def config_context(**changes: Any) -> Iterator[RunSettings]:
    """The settings with ``changes`` inside the block, the previous ones after it."""
    global _current
    before = _current
    try:
        yield set_config(**changes)
    finally:
        _current = before


def as_run_settings(value: "str | Profile | RunSettings | None" = None) -> RunSettings:
    """``value`` itself when it is a :class:`RunSettings`; the current ones
    (:func:`get_config`) for ``None``; else the current ones with that profile."""
    if isinstance(value, RunSettings):
        return value
    if value is None:
        return get_config()
    if not isinstance(value, (str, Profile)):
        raise ValueError(f"run settings must be a sgquant.settings.RunSettings, a profile or "
                         f"a profile's name, got {value!r}")
    return get_config().replace(profile=get_profile(value))


def current_scheduler() -> Optional[str]:
    """The run's Dask scheduler (``$SGQUANT_SCHEDULER``), ``None`` for a local process pool."""
    return check_scheduler(os.environ.get(SCHEDULER_ENV) or None)


def use_run_settings(device: Optional[str] = None, scheduler: Optional[str] = None, *,
                     probe_scheduler: bool = False) -> dict[str, str]:
    """Set the run's ``device`` and ``scheduler`` (``None`` leaves each as it is) after
    checking them; with ``probe_scheduler`` a remote scheduler is reached once now
    (:class:`~sgquant.runner.scheduler.SchedulerUnreachable`, a ``ValueError``, within
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
