"""Errors of the data layer: a dataset that cannot be had, a raw file that is bad.

Both subclass :class:`ValueError`, so the CLI prints them as one line and callers
that treat "bad dataset" uniformly keep working; chapters list either as
"not run: data unavailable".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

__all__ = ["DatasetUnavailableError", "CorruptRawFileError", "one_line"]


class DatasetUnavailableError(ValueError):
    """A dataset's raw files are missing and could not be downloaded.

    ``dataset``, ``raw_dir`` and ``missing`` describe what to provide.
    """

    def __init__(
        self,
        message: str,
        *,
        dataset: Optional[str] = None,
        raw_dir: Optional[Path] = None,
        missing: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.raw_dir = raw_dir
        self.missing = tuple(missing)

    def __reduce__(self) -> Any:  # keep the attributes across process pools
        return (rebuild_error, (type(self), str(self), self.dataset, self.raw_dir, self.missing))


class CorruptRawFileError(DatasetUnavailableError):
    """A raw file does not match its known checksum, or its reader failed on it.

    ``missing`` names the bad file(s) (relative to ``raw_dir``): they have to be
    replaced before the dataset can be loaded.
    """


def rebuild_error(
    cls: type, message: str, dataset: Optional[str], raw_dir: Optional[Path],
    missing: tuple[str, ...],
) -> DatasetUnavailableError:
    """Unpickle a :class:`DatasetUnavailableError` (or subclass) with its attributes."""
    return cls(message, dataset=dataset, raw_dir=raw_dir, missing=missing)


def one_line(exc: BaseException, limit: int = 200) -> str:
    """``"Type: message"`` on one line, the message cut to ``limit`` characters."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:limit]}" if text else type(exc).__name__
