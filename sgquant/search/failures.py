"""When a search must stop instead of answering: its failed measurements.

A few failed measurements (a worker lost, one fine-tune that diverged) leave the
search's answer sound: they are recorded (``status == "failed"``) and counted in the
summary and the JSON. But when failures are more than a small share of the
measurements, or when several failed all with the same cause (an unwritable folder,
a missing dataset on the workers, a broken pool), the answer would be built on what
could be measured, not on the search: :meth:`FailureLog.check` stops the search
with :class:`SearchFailed`, naming the cause.
"""
from __future__ import annotations

from typing import Optional

from ..runner.runner import describe

__all__ = ["SearchFailed", "FailureLog", "MAX_FAILED_SHARE", "describe", "failure_cause"]

#: the share of failed measurements a search tolerates
MAX_FAILED_SHARE = 0.2


class SearchFailed(RuntimeError):
    """A search stopped because its measurements failed; the message says why, in one
    line (measurements made so far stay in the cache: a rerun resumes)."""


def failure_cause(exc: BaseException) -> str:
    """What failures with the same cause share: the message without the file name
    for an ``OSError`` (each job writes its own files), else :func:`describe`."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"
    return describe(exc)


class FailureLog:
    """Counts a search's measurements and failures; :meth:`check` stops it when
    more than ``max_share`` of them failed (at least two, or all of them), or when
    two or more failed all with the same :func:`failure_cause`."""

    def __init__(self, max_share: float = MAX_FAILED_SHARE) -> None:
        self.max_share = max_share
        self.attempted = 0
        self.causes: list[str] = []
        self.errors: list[str] = []

    def add(self, error: Optional[BaseException]) -> Optional[str]:
        """Count one measurement (``error``: why it failed, ``None`` if it did not);
        returns the error's one-line description."""
        self.attempted += 1
        if error is None:
            return None
        self.causes.append(failure_cause(error))
        self.errors.append(describe(error))
        return self.errors[-1]

    @property
    def failed(self) -> int:
        return len(self.errors)

    def verdict(self) -> Optional[str]:
        """Why the search must stop, or ``None``."""
        n, total = self.failed, self.attempted
        if n == 0:
            return None
        if n >= 2 and len(set(self.causes)) == 1:
            return (f"{n} of {total} measurements failed, all with the same cause: "
                    f"{self.causes[0]}")
        if n == total or (n >= 2 and n > self.max_share * total):
            return (f"{n} of {total} measurements failed (more than "
                    f"{self.max_share:.0%}); the first: {self.errors[0]}")
        return None

    def check(self) -> None:
        """Raise :class:`SearchFailed` if :meth:`verdict` says to stop."""
        why = self.verdict()
        if why:
            raise SearchFailed(f"search stopped: {why} (what was measured is kept in the "
                               "cache: fix the cause and rerun to resume)")
