"""Workers that die with their parent: no measurement process outlives a killed search.

A process pool's workers and a local Dask cluster's workers run :func:`die_with_parent`
when they start.
"""
from __future__ import annotations

import os
import threading
import time

__all__ = ["die_with_parent"]


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
