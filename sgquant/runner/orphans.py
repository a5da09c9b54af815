"""Worker processes the driver owns: they die with it and leave Ctrl-C to it.

A process pool's workers and a local Dask cluster's workers run :func:`owned_worker`
when they start: no measurement process outlives a killed search
(:func:`die_with_parent`), and a Ctrl-C in a terminal, which sends ``SIGINT`` to the
whole process group, interrupts the driver alone (:func:`ignore_interrupts`); the driver
then ends the workers itself (:func:`sgquant.runner.executors.close_executor`), so the
run stops at once with one line, not one traceback per worker. Workers are also
started with ``SIGINT`` already ignored (:func:`interrupts_ignored`, inherited by a
spawned Python), which covers the seconds before their initializer runs.
"""
from __future__ import annotations

import contextlib
import multiprocessing.context
import os
import signal
import threading
import time
from typing import Iterator

__all__ = ["die_with_parent", "ignore_interrupts", "interrupts_ignored", "owned_worker",
           "QuietSpawnContext"]


def _watch_parent(parent: int, every: float) -> None:
    while True:
        time.sleep(every)
        if os.getppid() != parent:
            os._exit(1)


def die_with_parent(parent: int, every: float = 0.25) -> None:
    """Worker initializer: end this process within ``every`` seconds of ``parent``'s
    death, however it died (``SIGKILL`` included).

    A daemon thread polls :func:`os.getppid`: an orphan is re-parented, so the pid
    changes. (Linux's ``prctl(PR_SET_PDEATHSIG)`` is not used: it fires when the
    *thread* that started the worker ends, and a pool may be first used from a
    short-lived thread.)
    """
    if os.getppid() != parent:  # the parent died before this worker started
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, every), daemon=True,
                     name="sgquant-watch-parent").start()


def ignore_interrupts() -> None:
    """Ignore ``SIGINT`` in this process (from its main thread; elsewhere a no-op)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def owned_worker(parent: int) -> None:
    """Worker initializer: :func:`ignore_interrupts` and :func:`die_with_parent`."""
    ignore_interrupts()
    die_with_parent(parent)


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Ignore ``SIGINT`` while the block starts worker processes: a process started
    then inherits the ignored signal, and Python keeps it ignored. Only in the main
    thread (elsewhere nothing changes); a Ctrl-C within the block is lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _QuietSpawnProcess(multiprocessing.context.SpawnProcess):
    def start(self) -> None:
        with interrupts_ignored():
            super().start()


class QuietSpawnContext(multiprocessing.context.SpawnContext):
    """The "spawn" start method, each process started with ``SIGINT`` ignored
    (:func:`interrupts_ignored`; a process pool's ``mp_context``)."""

    Process = _QuietSpawnProcess
